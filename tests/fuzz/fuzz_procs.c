/* SPDX-License-Identifier: MIT */
/*
 * Several processes drive one object at once with random calls of the
 * API (the six operations, alloc and free, pread and pwrite, truncate,
 * the I/O lock, stat, sync, sendfile and copy, send and recv, close and
 * open again),
 * while the parent SIGKILLs one of them at random moments and starts a
 * newcomer in its place.
 *
 * No process can know what the others do, so each checks what it can:
 * - Each process writes only its own stripe of pages (pwrite, gift, stores
 *   through retrieved memory), but pins, reads, borrows and truncates
 *   anywhere. The bytes of the pages it pins in its stripe never change
 *   under it unless it wrote them, and their addresses never move: checked
 *   through retrieve, borrow and pread.
 * - Every result is one the API documents for that call (API.md); the
 *   size never falls below the end of its pins; iomem_stat counts its own
 *   pins exactly and names it among the holders.
 * - No signal: a process that dies of anything but the parent's SIGKILL
 *   fails the run, as do the sanitizers' reports.
 * - The shared state holds together after every call: the process locks
 *   the metadata and walks every table (iom_meta_check) on the fd engine's
 *   objects.
 * At the end the parent checks that nothing is left pinned or locked by
 * the dead or the living, and prints the calls made.
 *
 * Each worker's calls come from a seed (printed on failure); a regression
 * input is a file of "BACKEND SEED WORKERS SECONDS" lines, replayed with
 * --replay (IOMEM_FUZZ_BACKEND=NAME keeps that backend's lines): the same
 * calls in each worker, the kills at the same moments of the parent's
 * clock, though not the same interleaving.
 *
 * usage: fuzz_procs BACKEND [SECONDS [WORKERS [SEED]]]
 *        fuzz_procs --replay FILE|FOLDER...
 * BACKEND: memfd (attached by descriptor), shm, mshare (on the msharefs
 * test double when linked with it), dax.
 */
#define _GNU_SOURCE
#include "fdobj.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <iomem.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_WORKERS 8
#define STRIPE 6                  /* pages each worker writes */
/* The stripes, 4 pages after them, and the page a size inside the last
 * of those reaches into (do_truncate). */
#define MAX_PAGES (MAX_WORKERS * STRIPE + 4 + 1)
#define LOCK_WAIT_MS 2000         /* no call waits longer for the I/O lock */

static size_t ps;
static int npages; /* the stripes and 4 pages after them, which anyone writes */

/* ---- shared between the parent and the workers ---------------------------- */

struct control {
        atomic_int stop;
        atomic_ullong calls[MAX_WORKERS];
        atomic_ullong checks;
};
static struct control *ctl;

/* ---- a worker ------------------------------------------------------------------ */

struct worker {
        int id;
        unsigned incarnation;
        uint64_t seed, rng;
        const char *backend;
        const char *uri;
        int memfd; /* memfd: the descriptor the handle is opened from */
        int devnull;
        int sock[2]; /* a socket pair, to pass the handle to ourselves */
        bool fd_engine;
        unsigned caps; /* IOMEM_CAP_* of the object */
        struct iomem *f;
        unsigned long long op;
        const char *what; /* the call in progress, for messages */
        uint32_t pins[MAX_PAGES];
        char *va[MAX_PAGES];               /* where retrieve put each pinned page */
        unsigned char *shadow[MAX_PAGES];  /* bytes of pinned pages of our stripe */
        unsigned rd, wr;                   /* I/O lock depth */
        struct { void *p; size_t len; } buf[8];
        int nbuf;
};

static uint64_t rnd(struct worker *w)
{
        /* xorshift64* */
        w->rng ^= w->rng >> 12;
        w->rng ^= w->rng << 25;
        w->rng ^= w->rng >> 27;
        return w->rng * UINT64_C(2685821657736338717);
}

static unsigned below(struct worker *w, unsigned n)
{
        return (unsigned)(rnd(w) % n);
}

__attribute__((noreturn, format(printf, 2, 3))) static void fail(struct worker *w, const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        fprintf(stderr,
                "fuzz_procs: %s: worker %d (pid %d, seed %llu, incarnation %u), call %llu (%s): %s "
                "[errormsg: %s]\n",
                w->backend, w->id, (int)getpid(), (unsigned long long)w->seed, w->incarnation, w->op,
                w->what, msg, iomem_errormsg());
        _exit(2);
}

#define REQUIRE(w, cond, fmt, ...)                                      \
        do {                                                            \
                if (!(cond))                                            \
                        fail(w, "%s: " fmt, #cond, ##__VA_ARGS__);      \
        } while (0)

/* One documented error of the call (API.md), or fail. */
static void documented(struct worker *w, long r, const int *allowed)
{
        /* dax: a call that needs more chunks than the window has free. */
        if (!w->fd_engine && r == -ENOBUFS)
                return;
        for (; *allowed; allowed++)
                if (r == -*allowed)
                        return;
        fail(w, "returned %ld (%s), which this call does not document here", r, strerror((int)-r));
}

static void counted(struct worker *w)
{
        atomic_fetch_add_explicit(&ctl->calls[w->id], 1, memory_order_relaxed);
}

static bool in_stripe(const struct worker *w, int page)
{
        return page >= w->id * STRIPE && page < (w->id + 1) * STRIPE;
}

static size_t pinned_end(const struct worker *w)
{
        for (int p = MAX_PAGES; p-- > 0;)
                if (w->pins[p])
                        return (size_t)(p + 1) * ps;
        return 0;
}

static const unsigned char zeros[65536];

/* A pinned page of our stripe must read as we left it, at the address
 * retrieve gave. */
static void check_page(struct worker *w, int p, const unsigned char *bytes)
{
        if (w->pins[p] && in_stripe(w, p) && bytes && memcmp(bytes, w->shadow[p], ps))
                fail(w, "page %d, pinned by this process in its own stripe, changed under it", p);
}

/* Walk iov over [off, ...): each whole page's bytes to check_page, and
 * when same_va, each pinned page at its recorded address. */
static void check_iov(struct worker *w, size_t off, const struct iovec *iov, ssize_t n, bool same_va)
{
        size_t pos = off;
        for (ssize_t i = 0; i < n; i++)
                for (size_t k = 0; k < iov[i].iov_len; k += ps, pos += ps) {
                        int p = (int)(pos / ps);
                        const unsigned char *b = iov[i].iov_base ? (const unsigned char *)iov[i].iov_base + k : NULL;
                        if (p >= MAX_PAGES || !w->pins[p])
                                continue;
                        if (same_va && (const char *)b != w->va[p])
                                fail(w, "pinned page %d moved from %p to %p", p, (void *)w->va[p], (void *)b);
                        if (!b && w->fd_engine)
                                fail(w, "pinned page %d is described as a hole", p);
                        /* dax: a page that acquire allocated but nobody
                         * wrote is still a hole to the file, read as zeros. */
                        check_page(w, p, b ? b : zeros);
                }
}

static void check_shared_state(struct worker *w)
{
        /* What iomem_stat says of us. */
        struct iomem_stat st;
        w->what = "iomem_stat";
        int r = iomem_stat(w->f, &st);
        counted(w);
        if (r)
                fail(w, "iomem_stat failed: %d", r);
        size_t mine = 0;
        for (int p = 0; p < MAX_PAGES; p++)
                mine += w->pins[p] ? ps : 0;
        if (st.acquired != mine) {
                for (int p = 0; p < MAX_PAGES; p++)
                        if (w->pins[p])
                                fprintf(stderr, "fuzz_procs: worker %d pins page %d %u times\n", w->id, p, w->pins[p]);
                fail(w, "acquired %zu, this process pins %zu bytes", st.acquired, mine);
        }
        REQUIRE(w, st.pinned >= mine, "pinned %zu < acquired %zu", st.pinned, mine);
        REQUIRE(w, iom_round_up(st.size, ps) >= pinned_end(w), "size %zu under this process's pins (to %zu)",
                st.size, pinned_end(w));
        bool named = false;
        for (unsigned i = 0; i < st.nholders && i < IOMEM_STAT_HOLDERS; i++)
                named |= st.holders[i] == getpid();
        REQUIRE(w, !mine || named || st.nholders > IOMEM_STAT_HOLDERS,
                "this process pins %zu bytes but is not among the %u holders", mine, st.nholders);
        if (!w->fd_engine)
                return;
        /* Every table, walked. */
        w->what = "iom_meta_check";
        if ((r = iom_meta_lock(w->f)) == 0) {
                r = iom_meta_check(w->f);
                iom_meta_unlock(w->f);
        }
        if (r)
                fail(w, "the shared state does not hold together (%d)", r);
        atomic_fetch_add_explicit(&ctl->checks, 1, memory_order_relaxed);
}

static void open_handle(struct worker *w)
{
        struct iomem_opts *o;
        if (iomem_opts_new(&o) || iomem_opts_set_lock_timeout(o, LOCK_WAIT_MS))
                fail(w, "options");
        int r;
        w->what = "iomem_open";
        if (w->memfd >= 0) {
                int fd = dup(w->memfd);
                r = fd < 0 ? -errno : iomem_open_fd(&w->f, "memfd", fd, IOMEM_RDWR, o);
                if (r && fd >= 0)
                        close(fd);
        } else {
                r = iomem_open(&w->f, w->uri, IOMEM_RDWR, o);
        }
        iomem_opts_delete(&o);
        counted(w);
        if (r)
                fail(w, "cannot open the object: %d", r);
        struct iomem_stat st;
        if ((r = iomem_stat(w->f, &st)))
                fail(w, "stat: %d", r);
        w->caps = st.caps;
        memset(w->pins, 0, sizeof w->pins);
        w->rd = w->wr = 0;
        w->nbuf = 0;
}

static void close_handle(struct worker *w)
{
        w->what = "iomem_close";
        int r = iomem_close(&w->f);
        counted(w);
        if (r)
                fail(w, "close: %d", r);
        memset(w->pins, 0, sizeof w->pins);
        w->rd = w->wr = 0;
        w->nbuf = 0; /* close frees what alloc handed out */
}

/* ---- the calls ------------------------------------------------------------------- */

static void random_range(struct worker *w, size_t *off, size_t *len)
{
        *off = below(w, (unsigned)npages + 2) * ps;
        *len = (1 + below(w, 4)) * ps;
        if (!below(w, 32))
                *off += 1 + below(w, (unsigned)ps - 1); /* unaligned */
}

static void do_acquire(struct worker *w)
{
        size_t off, len;
        random_range(w, &off, &len);
        w->what = "iomem_acquire";
        ssize_t r = iomem_acquire(w->f, off, len);
        counted(w);
        if (off % ps) {
                REQUIRE(w, r == -EINVAL, "an unaligned acquire gave %zd", r);
                return;
        }
        if (r < 0) {
                documented(w, r, (const int[]){ ENOMEM, ENOSPC, ETIMEDOUT, 0 });
                return;
        }
        REQUIRE(w, (size_t)r <= len && r % (ssize_t)ps == 0, "acquired %zd of %zu", r, len);
        if (!r)
                return;
        struct iovec iov[8];
        w->what = "iomem_retrieve";
        ssize_t n = iomem_retrieve(w->f, off, (size_t)r, iov, 8);
        counted(w);
        REQUIRE(w, n >= 1, "retrieve of what was just acquired gave %zd", n);
        size_t pos = off;
        for (ssize_t i = 0; i < n; i++)
                for (size_t k = 0; k < iov[i].iov_len; k += ps, pos += ps) {
                        int p = (int)(pos / ps);
                        char *b = (char *)iov[i].iov_base + k;
                        if (w->pins[p]) {
                                REQUIRE(w, b == w->va[p], "pinned page %d moved", p);
                                check_page(w, p, (unsigned char *)b);
                        } else {
                                w->va[p] = b;
                                if (in_stripe(w, p))
                                        memcpy(w->shadow[p], b, ps);
                        }
                        w->pins[p]++;
                }
        REQUIRE(w, pos == off + (size_t)r, "retrieve described %zu bytes of %zd", pos - off, r);
}

/* A run of pages this process pins, starting at a random pinned page. */
static bool pinned_run(struct worker *w, size_t *off, size_t *len)
{
        int start = (int)below(w, MAX_PAGES);
        for (int k = 0; k < MAX_PAGES; k++) {
                int p = (start + k) % MAX_PAGES;
                if (!w->pins[p])
                        continue;
                int e = p + 1;
                while (e < MAX_PAGES && w->pins[e] && e - p < 4)
                        e++;
                *off = (size_t)p * ps;
                *len = (size_t)(e - p) * ps;
                return true;
        }
        return false;
}

static void do_release(struct worker *w)
{
        size_t off, len;
        bool pinned = pinned_run(w, &off, &len);
        if (!pinned || !below(w, 8))
                random_range(w, &off, &len);
        bool covered = off % ps == 0;
        for (size_t p = off / ps; covered && p < (off + len) / ps; p++)
                covered = p < MAX_PAGES && w->pins[p];
        w->what = "iomem_release";
        int r = iomem_release(w->f, off, len);
        counted(w);
        if (!covered) {
                REQUIRE(w, r == -EINVAL, "a release of what is not all pinned gave %d", r);
                return;
        }
        if (r) {
                documented(w, r, (const int[]){ ENOMEM, 0 });
                return;
        }
        for (size_t p = off / ps; p < (off + len) / ps; p++)
                w->pins[p]--;
}

static void do_store(struct worker *w)
{
        size_t off, len;
        if (!pinned_run(w, &off, &len))
                return;
        for (size_t p = off / ps; p < (off + len) / ps; p++) {
                if (!in_stripe(w, (int)p))
                        continue;
                size_t at = below(w, (unsigned)ps), n = below(w, (unsigned)(ps - at)) + 1;
                unsigned char v = (unsigned char)rnd(w);
                memset(w->va[p] + at, v, n);
                memset(w->shadow[p] + at, v, n);
        }
}

static void do_retrieve(struct worker *w)
{
        size_t off, len;
        if (!pinned_run(w, &off, &len))
                return;
        struct iovec iov[8];
        w->what = "iomem_retrieve";
        ssize_t n = iomem_retrieve(w->f, off, len, iov, 8);
        counted(w);
        REQUIRE(w, n >= 1, "retrieve of pinned pages gave %zd", n);
        check_iov(w, off, iov, n, true);
}

static void do_borrow(struct worker *w)
{
        size_t off, len;
        random_range(w, &off, &len);
        struct iovec iov[8];
        bool count = !below(w, 4);
        w->what = count ? "iomem_bufcount" : "iomem_borrow";
        ssize_t n = count ? iomem_bufcount(w->f, off, len) : iomem_borrow(w->f, off, len, iov, 8);
        counted(w);
        if (n < 0) {
                documented(w, n, (const int[]){ ENOMEM, ENOBUFS, ETIMEDOUT, 0 });
                return;
        }
        if (!count && off % ps == 0)
                check_iov(w, off, iov, n, false);
}

static void do_pread(struct worker *w)
{
        size_t off, len;
        random_range(w, &off, &len);
        off -= off % ps;
        unsigned char *b = malloc(len);
        REQUIRE(w, b != NULL, "malloc");
        w->what = "iomem_pread";
        ssize_t r = iomem_pread(w->f, b, len, off);
        counted(w);
        if (r < 0) {
                free(b);
                documented(w, r, (const int[]){ ENOMEM, ETIMEDOUT, 0 });
                return;
        }
        REQUIRE(w, (size_t)r <= len, "read %zd of %zu", r, len);
        for (size_t k = 0; k + ps <= (size_t)r; k += ps) {
                int p = (int)((off + k) / ps);
                if (p < MAX_PAGES)
                        check_page(w, p, b + k);
        }
        free(b);
}

/* A range of our stripe, possibly past the end (which grows the object). */
static void stripe_range(struct worker *w, size_t *off, size_t *len)
{
        unsigned first = below(w, STRIPE);
        *off = ((size_t)w->id * STRIPE + first) * ps;
        *len = (1 + below(w, STRIPE - first)) * ps;
}

static void do_pwrite(struct worker *w)
{
        size_t off, len;
        stripe_range(w, &off, &len);
        if (below(w, 2)) {
                /* From inside a page, to the end of one: a write that grows
                 * the object leaves its size at a page boundary (see
                 * do_truncate). */
                size_t in = below(w, (unsigned)ps);
                off += in;
                len -= in;
        }
        unsigned char *b = malloc(len);
        REQUIRE(w, b != NULL, "malloc");
        memset(b, (int)(rnd(w) & 0xff), len);
        w->what = "iomem_pwrite";
        ssize_t r = iomem_pwrite(w->f, b, len, off);
        counted(w);
        if (r < 0) {
                free(b);
                documented(w, r, (const int[]){ ENOMEM, ENOSPC, ETIMEDOUT, 0 });
                return;
        }
        REQUIRE(w, (size_t)r == len, "wrote %zd of %zu", r, len);
        for (size_t pos = off; pos < off + len;) {
                size_t p = pos / ps, end = iom_min((p + 1) * ps, off + len);
                if (w->pins[p])
                        memcpy(w->shadow[p] + pos % ps, b + (pos - off), end - pos);
                pos = end;
        }
        free(b);
}

static void do_truncate(struct worker *w)
{
        size_t size = below(w, (unsigned)npages + 1) * ps;
        /* A size inside a page only past the stripes: a pinned page of a
         * stripe is then always whole in the file, and its bytes past the
         * end (which a later growth zeroes, as the API promises) never
         * count as changed. */
        if (size >= (size_t)(npages - 4) * ps && below(w, 2))
                size += below(w, (unsigned)ps);
        w->what = "iomem_truncate";
        int r = iomem_truncate(w->f, size);
        counted(w);
        if (iom_round_up(size, ps) < pinned_end(w))
                REQUIRE(w, r == -EBUSY || r == -ETIMEDOUT || (w->rd && r == -EDEADLK),
                        "a truncate to %zu under this process's pins gave %d", size, r);
        else if (r)
                documented(w, r, (const int[]){ EBUSY, ENOMEM, ENOSPC, ETIMEDOUT, EDEADLK, 0 });
}

static void do_gift(struct worker *w)
{
        size_t off, len;
        stripe_range(w, &off, &len);
        bool pool = below(w, 2);
        void *b = NULL;
        if (pool) {
                w->what = "iomem_alloc";
                int r = iomem_alloc(w->f, len, &b);
                counted(w);
                if (r) {
                        documented(w, r, (const int[]){ ENOMEM, ENOSPC, 0 });
                        return;
                }
        } else if (!(b = malloc(len))) {
                fail(w, "malloc");
        }
        memset(b, (int)(rnd(w) & 0xff), len);
        bool busy = false;
        for (size_t p = off / ps; p < (off + len) / ps; p++)
                busy |= w->pins[p] != 0;
        struct iovec v = { b, len };
        unsigned flags = below(w, 2) ? IOMEM_GIFT_NOCOPY : 0;
        w->what = "iomem_gift";
        ssize_t r = iomem_gift(w->f, off, len, &v, 1, flags);
        counted(w);
        /* Memory it cannot adopt, it must copy: NOCOPY refuses that. */
        bool copies = !pool || !(w->caps & IOMEM_CAP_GIFT);
        if (copies && (flags & IOMEM_GIFT_NOCOPY))
                REQUIRE(w, r == -EXDEV || r == -EBUSY || r == -ETIMEDOUT || (w->rd && r == -EDEADLK),
                        "a gift of memory that must be copied, with IOMEM_GIFT_NOCOPY, gave %zd", r);
        else if (busy)
                REQUIRE(w, r == -EBUSY || r == -ETIMEDOUT || (w->rd && r == -EDEADLK),
                        "a gift over this process's pins gave %zd", r);
        else if (r < 0)
                documented(w, r, (const int[]){ EBUSY, ENOMEM, ENOSPC, ETIMEDOUT, EDEADLK, 0 });
        else
                REQUIRE(w, r == 1, "gifted %zd entries of 1", r);
        if (!pool) {
                free(b);
        } else if (r < 0) {
                /* Still ours: keep it for a later free, or free it now. */
                if (w->nbuf < 8 && below(w, 2)) {
                        w->buf[w->nbuf].p = b;
                        w->buf[w->nbuf++].len = len;
                } else {
                        w->what = "iomem_free";
                        int e = iomem_free(w->f, b, len);
                        counted(w);
                        REQUIRE(w, e == 0, "free of an alloc buffer gave %d", e);
                }
        }
}

static void do_free(struct worker *w)
{
        if (!w->nbuf)
                return;
        w->nbuf--;
        w->what = "iomem_free";
        int r = iomem_free(w->f, w->buf[w->nbuf].p, w->buf[w->nbuf].len);
        counted(w);
        REQUIRE(w, r == 0, "free gave %d", r);
}

static void do_lock(struct worker *w)
{
        int r;
        if ((w->rd || w->wr) && below(w, 2)) {
                w->what = "iomem_unlock";
                r = iomem_unlock(w->f);
                counted(w);
                REQUIRE(w, r == 0, "unlock gave %d", r);
                if (w->wr)
                        w->wr--;
                else
                        w->rd--;
                return;
        }
        bool write = below(w, 3) == 0;
        int wait = (int)below(w, 20);
        w->what = write ? "iomem_wrlock_timed" : "iomem_rdlock_timed";
        r = write ? iomem_wrlock_timed(w->f, wait) : iomem_rdlock_timed(w->f, wait);
        counted(w);
        if (r) {
                if (write && w->rd)
                        REQUIRE(w, r == -EDEADLK, "a reader asking to write got %d", r);
                else
                        documented(w, r, (const int[]){ EBUSY, ETIMEDOUT, 0 });
                return;
        }
        if (write || w->wr)
                w->wr++; /* the writer taking it again counts as writing */
        else
                w->rd++;
}

static void do_sync(struct worker *w)
{
        size_t off, len;
        random_range(w, &off, &len);
        w->what = "iomem_sync";
        int r = iomem_sync(w->f, off, len);
        counted(w);
        if (r)
                documented(w, r, (const int[]){ EINVAL, EIO, ENOMEM, 0 });
}

/* A single-copy transfer out of the object (to /dev/null), and a copy
 * within it into pages of our stripe that we do not pin (their bytes then
 * come from wherever the source's were). */
static void do_transfer(struct worker *w)
{
        size_t off, len;
        random_range(w, &off, &len);
        ssize_t r;
        if (below(w, 2)) {
                w->what = "iomem_sendfile";
                r = iomem_sendfile(w->devnull, w->f, off, len);
        } else {
                size_t doff, dlen;
                stripe_range(w, &doff, &dlen);
                for (size_t p = doff / ps; p < (doff + dlen) / ps; p++)
                        if (w->pins[p])
                                return;
                len = iom_min(len, dlen);
                w->what = "iomem_copy";
                r = iomem_copy(w->f, doff, w->f, off, len);
        }
        counted(w);
        if (r < 0)
                documented(w, r, (const int[]){ ENOMEM, ENOSPC, ETIMEDOUT, EDEADLK, 0 });
        else
                REQUIRE(w, (size_t)r <= len, "moved %zd bytes of %zu", r, len);
}

/* The handle passed over a socket to ourselves, as to another process:
 * the new handle pins and releases on its own. */
static void do_pass(struct worker *w)
{
        w->what = "iomem_send";
        int r = iomem_send(w->sock[0], w->f);
        counted(w);
        if (r) {
                REQUIRE(w, r == -ENOTSUP && !(w->caps & IOMEM_CAP_FDPASS), "send gave %d", r);
                return;
        }
        struct iomem *g;
        w->what = "iomem_recv";
        r = iomem_recv(w->sock[1], &g, IOMEM_RDWR);
        counted(w);
        REQUIRE(w, r == 0, "recv of what was just sent gave %d", r);
        size_t off = (size_t)w->id * STRIPE * ps;
        w->what = "iomem_acquire (received handle)";
        ssize_t got = iomem_acquire(g, off, ps);
        counted(w);
        if (got > 0) {
                w->what = "iomem_release (received handle)";
                REQUIRE(w, iomem_release(g, off, ps) == 0, "release through the received handle");
                counted(w);
        } else if (got < 0) {
                documented(w, got, (const int[]){ ENOMEM, ENOSPC, 0 });
        }
        w->what = "iomem_close (received handle)";
        REQUIRE(w, iomem_close(&g) == 0, "close of the received handle");
        counted(w);
}

static void do_reopen(struct worker *w)
{
        close_handle(w);
        open_handle(w);
}

/* The calls and how often each comes. */
static const struct {
        unsigned weight;
        void (*call)(struct worker *w);
} calls[] = {
        { 16, do_acquire }, { 14, do_release }, { 8, do_retrieve },  { 8, do_store },
        { 10, do_borrow },  { 8, do_pread },    { 10, do_pwrite },   { 6, do_truncate },
        { 7, do_gift },     { 3, do_free },     { 9, do_lock },      { 1, do_reopen },
        { 2, do_sync },     { 4, do_transfer }, { 1, do_pass },
};

static unsigned total_weight(void)
{
        unsigned sum = 0;
        for (size_t k = 0; k < sizeof calls / sizeof calls[0]; k++)
                sum += calls[k].weight;
        return sum;
}

static void worker_run(struct worker *w)
{
        for (int p = 0; p < MAX_PAGES; p++)
                if (!(w->shadow[p] = malloc(ps)))
                        fail(w, "malloc");
        if ((w->devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0 ||
            socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, w->sock))
                fail(w, "/dev/null or a socket pair: %s", strerror(errno));
        open_handle(w);
        while (!atomic_load(&ctl->stop)) {
                w->op++;
                unsigned pick = below(w, total_weight());
                size_t k = 0;
                while (pick >= calls[k].weight)
                        pick -= calls[k++].weight;
                calls[k].call(w);
                /* Hold the I/O lock only for a few calls: the others wait. */
                while ((w->rd || w->wr) && below(w, 3) == 0)
                        do_lock(w);
                check_shared_state(w);
        }
        while (w->rd || w->wr) {
                w->what = "iomem_unlock";
                int r = iomem_unlock(w->f);
                REQUIRE(w, r == 0, "unlock gave %d", r);
                if (w->wr)
                        w->wr--;
                else
                        w->rd--;
        }
        close_handle(w);
        close(w->devnull);
        close(w->sock[0]);
        close(w->sock[1]);
        for (int p = 0; p < MAX_PAGES; p++)
                free(w->shadow[p]);
}

/* ---- the parent ------------------------------------------------------------------- */

struct run {
        const char *backend;
        unsigned seconds, workers;
        uint64_t seed;
};

static double now(void)
{
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static pid_t start_worker(const struct run *run, int id, unsigned incarnation, const char *uri, int memfd)
{
        pid_t pid = fork();
        if (pid != 0)
                return pid;
        static struct worker w;
        w = (struct worker){ .id = id, .incarnation = incarnation, .backend = run->backend, .uri = uri,
                             .memfd = memfd, .fd_engine = strcmp(run->backend, "dax") != 0 };
        w.seed = run->seed * 1000003u + (uint64_t)id * 7919u + incarnation;
        w.rng = w.seed | 1;
        worker_run(&w);
        _exit(0);
}

/* The uri of the object and, for memfd, the creator's handle. */
static int make_object(const struct run *run, char *uri, size_t cap, struct iomem **keep)
{
        if (!strcmp(run->backend, "dax")) {
                char dir[] = "/dev/shm/iomem-fuzz-procs-XXXXXX";
                if (!mkdtemp(dir))
                        return -errno;
                snprintf(uri, cap, "dax:%s/object", dir);
        } else {
                snprintf(uri, cap, "%s:iomem-fuzz-procs-%d", run->backend, (int)getpid());
        }
        struct iomem_opts *o;
        if (iomem_opts_new(&o))
                return -ENOMEM;
        iomem_opts_set_size(o, (size_t)npages * ps);
        int r = iomem_open(keep, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o);
        iomem_opts_delete(&o);
        return r;
}

static void remove_object(const char *backend, const char *uri)
{
        iomem_unlink(uri);
        if (!strcmp(backend, "dax")) {
                char dir[200];
                snprintf(dir, sizeof dir, "%s", uri + 4);
                *strrchr(dir, '/') = 0;
                rmdir(dir);
        }
}

/* Kill moments: the parent's clock, from the seed, so a replay kills at
 * the same times. */
static double next_kill(uint64_t *rng, double t)
{
        *rng ^= *rng >> 12;
        *rng ^= *rng << 25;
        *rng ^= *rng >> 27;
        return t + (double)(*rng * UINT64_C(2685821657736338717) % 40000) / 1e6; /* 0-40 ms */
}

static int run_one(const struct run *run)
{
        npages = (int)run->workers * STRIPE + 4;
        char uri[200];
        struct iomem *keep = NULL;
        int r = make_object(run, uri, sizeof uri, &keep);
        if (r == -ENODEV || r == -ENOTSUP || r == -EPROTONOSUPPORT) {
                printf("fuzz_procs: %s: SKIP: %s\n", run->backend, iomem_errormsg());
                return 77;
        }
        if (r) {
                fprintf(stderr, "fuzz_procs: %s: cannot make the object: %s\n", run->backend, iomem_errormsg());
                return 1;
        }
        int memfd = !strcmp(run->backend, "memfd") ? iomem_fd(keep) : -1;
        memset(ctl, 0, sizeof *ctl);
        pid_t pid[MAX_WORKERS];
        unsigned incarnation[MAX_WORKERS] = { 0 };
        for (unsigned i = 0; i < run->workers; i++)
                pid[i] = start_worker(run, (int)i, 0, uri, memfd);
        uint64_t krng = run->seed | 1;
        double start = now(), end = start + run->seconds, kill_at = next_kill(&krng, start);
        unsigned kills = 0;
        int status = 0;
        while (!status && now() < end) {
                struct timespec nap = { 0, 1000000 }; /* chaos, not synchronisation */
                nanosleep(&nap, NULL);
                for (unsigned i = 0; i < run->workers && !status; i++) {
                        int st;
                        if (waitpid(pid[i], &st, WNOHANG) == pid[i])
                                status = WIFEXITED(st) ? 1 : 128 + WTERMSIG(st);
                }
                if (status || now() < kill_at)
                        continue;
                unsigned victim = (unsigned)(krng % run->workers);
                kill(pid[victim], SIGKILL);
                int st;
                waitpid(pid[victim], &st, 0);
                if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL) {
                        status = WIFEXITED(st) ? 1 : 128 + WTERMSIG(st);
                        break;
                }
                kills++;
                pid[victim] = start_worker(run, (int)victim, ++incarnation[victim], uri, memfd);
                kill_at = next_kill(&krng, now());
        }
        atomic_store(&ctl->stop, 1);
        for (unsigned i = 0; i < run->workers; i++) {
                int st;
                if (waitpid(pid[i], &st, 0) == pid[i] && !(WIFEXITED(st) && WEXITSTATUS(st) == 0) && !status)
                        status = WIFEXITED(st) ? 1 : 128 + WTERMSIG(st);
        }
        double secs = now() - start;
        unsigned long long calls = 0;
        for (unsigned i = 0; i < run->workers; i++)
                calls += atomic_load(&ctl->calls[i]);
        /* Nothing left held: the dead were reaped, the living closed. */
        struct iomem_stat st = { 0 };
        if (!status && (iomem_stat(keep, &st) || st.pinned || st.nholders)) {
                fprintf(stderr, "fuzz_procs: %s: after the run %zu bytes stay pinned by %u processes [%s]\n",
                        run->backend, st.pinned, st.nholders, iomem_errormsg());
                status = 1;
        }
        if (!status && strcmp(run->backend, "dax")) {
                if (!(r = iom_meta_lock(keep))) {
                        r = iom_meta_check(keep);
                        iom_meta_unlock(keep);
                }
                if (r) {
                        fprintf(stderr, "fuzz_procs: %s: after the run: %s\n", run->backend, iomem_errormsg());
                        status = 1;
                }
        }
        iomem_close(&keep);
        remove_object(run->backend, uri);
        printf("fuzz_procs: %s: %u processes, seed %llu, %u killed and restarted: %llu calls in %.1f s "
               "(%.0f calls/s), the shared state walked %llu times: %s\n",
               run->backend, run->workers, (unsigned long long)run->seed, kills, calls, secs, calls / secs,
               (unsigned long long)atomic_load(&ctl->checks),
               status ? "FAILED" : "no broken promise");
        if (status)
                fprintf(stderr, "fuzz_procs: reproduce with: fuzz_procs %s %u %u %llu (exit %d)\n",
                        run->backend, run->seconds, run->workers, (unsigned long long)run->seed, status);
        return status ? 1 : 0;
}

static int replay_file(const char *path)
{
        FILE *in = fopen(path, "r");
        if (!in) {
                perror(path);
                return 1;
        }
        const char *only = getenv("IOMEM_FUZZ_BACKEND");
        char backend[32], line[256];
        int status = 0;
        while (!status && fgets(line, sizeof line, in)) {
                struct run run;
                unsigned long long seed;
                if (line[0] == '#' || sscanf(line, "%31s %llu %u %u", backend, &seed, &run.workers,
                                             &run.seconds) != 4 ||
                    (only && strcmp(only, backend)))
                        continue;
                if (run.workers < 1 || run.workers > MAX_WORKERS) {
                        fprintf(stderr, "fuzz_procs: %s: 1 to %d workers, not %u\n", path, MAX_WORKERS,
                                run.workers);
                        status = 2;
                        break;
                }
                run.backend = backend;
                run.seed = seed;
                int r = run_one(&run);
                status = r == 77 ? 0 : r;
        }
        fclose(in);
        return status;
}

static int not_hidden(const struct dirent *e)
{
        return e->d_name[0] != '.' && strncmp(e->d_name, "README", 6);
}

/* A file of lines, or every file of a folder (but README). */
static int replay(const char *path)
{
        struct stat st;
        if (stat(path, &st) || !S_ISDIR(st.st_mode))
                return replay_file(path);
        struct dirent **names;
        int n = scandir(path, &names, not_hidden, alphasort), status = n < 0;
        for (int i = 0; i < n; i++) {
                char file[PATH_MAX];
                snprintf(file, sizeof file, "%s/%s", path, names[i]->d_name);
                if (!status)
                        status = replay_file(file);
                free(names[i]);
        }
        if (n >= 0)
                free(names);
        return status;
}

int main(int argc, char **argv)
{
        ps = (size_t)sysconf(_SC_PAGESIZE);
        ctl = mmap(NULL, sizeof *ctl, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (ctl == MAP_FAILED)
                return 1;
        if (argc >= 3 && !strcmp(argv[1], "--replay")) {
                int status = 0;
                for (int i = 2; i < argc && !status; i++)
                        status = replay(argv[i]);
                return status;
        }
        if (argc < 2 || argc > 5) {
                fprintf(stderr, "usage: fuzz_procs BACKEND [SECONDS [WORKERS [SEED]]]\n"
                                "       fuzz_procs --replay FILE|FOLDER...\n");
                return 2;
        }
        struct run run = { .backend = argv[1], .seconds = 10, .workers = 3, .seed = (uint64_t)time(NULL) };
        if (argc > 2)
                run.seconds = (unsigned)strtoul(argv[2], NULL, 10);
        if (argc > 3)
                run.workers = (unsigned)strtoul(argv[3], NULL, 10);
        if (argc > 4)
                run.seed = strtoull(argv[4], NULL, 10);
        if (run.workers < 1 || run.workers > MAX_WORKERS) {
                fprintf(stderr, "fuzz_procs: 1 to %d workers\n", MAX_WORKERS);
                return 2;
        }
        return run_one(&run);
}
