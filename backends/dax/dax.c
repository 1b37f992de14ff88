/* SPDX-License-Identifier: MIT */
/*
 * dax: ordinary files, reached through a window of mapped chunks
 * (window.c), as a virtio-fs guest reaches host files through its DAX
 * window. On a DAX filesystem (fsdax on pmem, virtio-fs with a DAX window)
 * the chunks map the memory itself, with MAP_SYNC where the kernel offers
 * it; anywhere else they map the page cache.
 *
 * The file belongs to the filesystem, not to the library: its size is
 * whatever fstat says now (another program may have truncated it), holes
 * come from SEEK_DATA/SEEK_HOLE, and writes, truncate and gift go through
 * the file's own system calls. Pins and the I/O lock are shared by every
 * handle of every process that uses the file through the library
 * (daxfile.h); a program that does not use it can still cut the file
 * under them.
 */
#include "cacheflush.h"
#include "daxfile.h"
#include "syscalls.h"
#include "undo.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAX_CAPS (IOMEM_CAP_NAMED | IOMEM_CAP_DAX | IOMEM_CAP_RESIZE | IOMEM_CAP_SHARED)

static struct dax_handle *handle(const struct iomem *f)
{
        return f->priv;
}

static int fail_errno(struct iomem *f, int e, const char *what)
{
        return iom_fail(f->name, -e, "%s: %s", what, strerror(e));
}

static int file_size(struct iomem *f, uint64_t *size)
{
        struct stat st;
        *size = 0; /* callers' compilers cannot see that a failure is never 0 */
        if (iom_sys.fstat(f->data_fd, &st) < 0)
                return fail_errno(f, errno, "fstat");
        *size = (uint64_t)st.st_size;
        return 0;
}

/*
 * The size the shared state knows (meta->dax_size): set under the
 * metadata's lock by every truncate and gift through the library, raised
 * by pwrite (which holds the I/O read lock, so never runs beside a
 * truncate), and learnt from fstat by calls that look at the file: borrow
 * and bufcount when they map, acquire when a chunk of its range is not
 * mapped or it reaches past the size known. It can be low (a program
 * outside grew the file; a call reaching past it looks), and high only
 * after a cut by a program that does not use the library, which may then
 * fault on pages it pinned anyway.
 */
static uint64_t known_size(const struct iomem *f)
{
        return __atomic_load_n(&handle(f)->fd.meta->dax_size, __ATOMIC_ACQUIRE);
}

/* The file's size from fstat, learnt by the shared state (the metadata
 * locked). A pwrite that raised it meanwhile (without that lock) knows
 * better than what fstat saw before it: the size is replaced only if it
 * did not move. */
static int learn_size(struct iomem *f, uint64_t *size)
{
        uint64_t *known = &handle(f)->fd.meta->dax_size;
        uint64_t before = __atomic_load_n(known, __ATOMIC_ACQUIRE);
        int err = file_size(f, size);
        if (!err && *size != before &&
            !__atomic_compare_exchange_n(known, &before, *size, false, __ATOMIC_RELEASE,
                                         __ATOMIC_ACQUIRE))
                *size = before;
        return err;
}

/* learn_size, taking the metadata's lock for it. */
static int refresh_size(struct iomem *f, uint64_t *size)
{
        int err = iom_meta_lock(f);
        if (!err) {
                err = learn_size(f, size);
                iom_meta_unlock(f);
        }
        return err;
}

/* The file reaches end now (a write through the library). */
static void raise_size(struct iomem *f, uint64_t end)
{
        uint64_t *p = &handle(f)->fd.meta->dax_size, now = __atomic_load_n(p, __ATOMIC_RELAXED);
        while (now < end && !__atomic_compare_exchange_n(p, &now, end, true, __ATOMIC_RELEASE,
                                                         __ATOMIC_RELAXED))
                ;
}

/* A handle inherited across fork() holds nothing in the child. */
static int dax_after_fork(struct iomem *f)
{
        uint64_t size;
        int err = iom_dax_share_after_fork(handle(f));
        return err ? err : refresh_size(f, &size);
}

/* ---- chunks of a request -------------------------------------------------- */

struct chunks {
        uint64_t *idx;
        char **addr;
        size_t n, cap;
        uint64_t idx_stack[16];
        char *addr_stack[16];
};

static void chunks_init(struct chunks *c)
{
        c->idx = c->idx_stack;
        c->addr = c->addr_stack;
        c->n = 0;
        c->cap = 16;
}

static void chunks_free(struct chunks *c)
{
        if (c->idx != c->idx_stack) {
                free(c->idx);
                free(c->addr);
        }
}

/* Append chunk i (ascending; a repeat of the last is ignored). */
static int chunks_add(struct chunks *c, uint64_t i)
{
        if (c->n && c->idx[c->n - 1] == i)
                return 0;
        if (c->n == c->cap) {
                size_t cap = 2 * c->cap;
                uint64_t *idx = malloc(cap * sizeof *idx);
                char **addr = malloc(cap * sizeof *addr);
                if (!idx || !addr) {
                        free(idx);
                        free(addr);
                        return -ENOMEM;
                }
                memcpy(idx, c->idx, c->n * sizeof *idx);
                chunks_free(c);
                c->idx = idx;
                c->addr = addr;
                c->cap = cap;
        }
        c->idx[c->n++] = i;
        return 0;
}

/* Chunks first..last. */
static int chunks_span(struct iomem *f, struct chunks *c, uint64_t first, uint64_t last)
{
        for (uint64_t i = first; i <= last; i++)
                if (chunks_add(c, i))
                        return iom_fail(f->name, -ENOMEM, "out of memory");
        return 0;
}

/* ---- iovec output ------------------------------------------------------------- */

/* Entries for borrow, retrieve and bufcount (iov NULL: count only). A
 * data piece continues the last entry when its address does. */
struct out {
        struct iovec *iov;
        size_t cap, n;
        char *next;
};

/* Add len bytes at p (NULL and not a hole: a chunk bufcount found
 * unmapped, an entry of its own). */
static bool out_put(struct out *o, char *p, size_t len, bool hole)
{
        if (!hole && p && o->n && p == o->next) {
                if (o->iov)
                        o->iov[o->n - 1].iov_len += len;
                o->next += len;
                return true;
        }
        if (o->n == o->cap)
                return false;
        if (o->iov)
                o->iov[o->n] = (struct iovec){ hole ? NULL : p, len };
        o->n++;
        o->next = hole || !p ? NULL : p + len;
        return true;
}

/* Emit file bytes [off, end), all in chunks c (from index *k on). */
static bool out_data(struct out *o, const struct chunks *c, size_t *k, unsigned shift,
                     uint64_t off, uint64_t end)
{
        while (off < end) {
                uint64_t ci = off >> shift, cend = (ci + 1) << shift;
                while (c->idx[*k] != ci)
                        ++*k;
                uint64_t n = iom_min(end, cend) - off;
                char *p = c->addr[*k] ? c->addr[*k] + (off - (ci << shift)) : NULL;
                if (!out_put(o, p, n, false))
                        return false;
                off += n;
        }
        return true;
}

/* ---- holes ------------------------------------------------------------------------- */

struct seg {
        uint64_t start, end;
        bool data;
};

struct segs {
        struct seg *v;
        size_t n, cap;
};

static int segs_add(struct iomem *f, struct segs *s, uint64_t start, uint64_t end, bool data)
{
        if (s->n == s->cap) {
                size_t cap = s->cap ? 2 * s->cap : 8;
                struct seg *v = realloc(s->v, cap * sizeof *v);
                if (!v)
                        return iom_fail(f->name, -ENOMEM, "out of memory");
                s->v = v;
                s->cap = cap;
        }
        s->v[s->n++] = (struct seg){ start, end, data };
        return 0;
}

/*
 * Two runs of the file per handle spare the calls that walk every page:
 * the run it last saw holding data (iom_seek_data), for find_segments, since a
 * SEEK_HOLE on a file without holes goes to its end (tmpfs looks at each
 * page); and the run it last gave blocks (fallocate), for back, since a
 * fallocate of blocks that exist still visits them (70 us for 2 MiB on
 * tmpfs). They are kept apart because blocks that fallocate gave are still
 * holes to SEEK_DATA until written: taking them for data would make
 * borrow map chunks for holes, and answer differently through a handle
 * that did not acquire them. Data and blocks go away only when a program
 * punches or cuts the file: a cut through the library, in any process,
 * makes every handle forget its runs (the shared cut count); after one by
 * a program that does not use the library a mapping reads the hole as
 * zeros, and a write into it may find no space (SIGBUS), as with any
 * shared mapping of a file changed under it. A hole is never remembered,
 * since a write may fill it at any time.
 */

/* The shared count of cuts now: runs seen before a cut are forgotten. */
static uint64_t cuts_now(const struct dax_handle *h)
{
        return __atomic_load_n(&h->fd.meta->cuts, __ATOMIC_ACQUIRE);
}

/* Lock the runs, forgetting them when a handle cut the file since. */
static void runs_lock(struct dax_handle *h)
{
        pthread_mutex_lock(&h->bufs_lock);
        uint64_t cuts = cuts_now(h);
        if (cuts != h->cuts_seen) {
                h->data = h->blocks = (struct dax_run){ 0, 0 };
                h->cuts_seen = cuts;
        }
}

static bool run_holds(struct iomem *f, const struct dax_run *r, uint64_t off, uint64_t end)
{
        runs_lock(handle(f));
        bool known = off >= r->from && end <= r->to;
        pthread_mutex_unlock(&handle(f)->bufs_lock);
        return known;
}

/* Where the run holding pos ends, 0 if none does. */
static uint64_t run_end_after(struct iomem *f, const struct dax_run *r, uint64_t pos)
{
        runs_lock(handle(f));
        uint64_t to = pos >= r->from && pos < r->to ? r->to : 0;
        pthread_mutex_unlock(&handle(f)->bufs_lock);
        return to;
}

/* Join [from, to) to the run it touches, else put it in its place when
 * it is the longer (bufs_lock held). */
static void run_merge(struct dax_run *r, uint64_t from, uint64_t to)
{
        if (from <= r->to && to >= r->from && r->to > r->from) {
                r->from = iom_min(from, r->from);
                r->to = iom_max(to, r->to);
        } else if (to - from > r->to - r->from) {
                r->from = from;
                r->to = to;
        }
}

/* Remember [from, to), found when the cut count was seen. */
static void run_add(struct iomem *f, struct dax_run *r, uint64_t from, uint64_t to, uint64_t seen)
{
        runs_lock(handle(f));
        if (seen == handle(f)->cuts_seen) /* else cut meanwhile: it may be a hole by now */
                run_merge(r, from, to);
        pthread_mutex_unlock(&handle(f)->bufs_lock);
}

/* Split [off, end) into data and holes. A filesystem that cannot tell
 * says all is data. */
static int find_segments(struct iomem *f, uint64_t off, uint64_t end, struct segs *s)
{
        int err = 0;
        for (uint64_t pos = off; pos < end && !err;) {
                uint64_t known_to = run_end_after(f, &handle(f)->data, pos);
                if (known_to) {
                        uint64_t stop = iom_min(known_to, end);
                        err = segs_add(f, s, pos, stop, true);
                        pos = stop;
                        continue;
                }
                uint64_t seen = cuts_now(handle(f));
                off_t d = iom_sys.lseek(f->data_fd, (off_t)pos, iom_seek_data);
                if (d < 0 && errno == ENXIO)
                        d = (off_t)end; /* only a hole to the end */
                else if (d < 0 && errno == EINVAL)
                        d = (off_t)pos;
                else if (d < 0)
                        return fail_errno(f, errno, "lseek(iom_seek_data)");
                uint64_t data = iom_min((uint64_t)d, end);
                if (data > pos && (err = segs_add(f, s, pos, data, false)))
                        break;
                if (data >= end)
                        break;
                off_t hole = iom_sys.lseek(f->data_fd, (off_t)data, iom_seek_hole);
                if (hole < 0 && errno != ENXIO && errno != EINVAL)
                        return fail_errno(f, errno, "lseek(iom_seek_hole)");
                uint64_t stop = hole < 0 ? end : iom_min((uint64_t)hole, end);
                if (stop <= data) /* shrunk meanwhile */
                        break;
                if (hole > 0)
                        run_add(f, &handle(f)->data, data, (uint64_t)hole, seen);
                err = segs_add(f, s, data, stop, true);
                pos = stop;
        }
        return err;
}

/* ---- acquire / release / retrieve / borrow / bufcount ----------------------------- */

static unsigned chunk_shift(const struct dax_handle *h)
{
        return (unsigned)__builtin_ctzll(iom_window_chunk(h->wf.w));
}

/* Gaps in this handle's pins within [off, end), as pairs in out (NULL:
 * count only). */
static size_t pin_gaps(const struct iom_ranges *r, uint64_t off, uint64_t end, uint64_t *out)
{
        size_t n = 0, i = iom_ranges_first_after(r, off);
        for (uint64_t pos = off; pos < end;) {
                if (i < r->n && r->v[i].start <= pos) {
                        pos = r->v[i++].end;
                        continue;
                }
                uint64_t e = i < r->n ? iom_min(r->v[i].start, end) : end;
                if (out) {
                        out[2 * n] = pos;
                        out[2 * n + 1] = e;
                }
                n++;
                pos = e;
        }
        return n;
}

/* Give [off, end) disk blocks now, so that writing through the mapping
 * cannot fail later with SIGBUS. */
static int back(struct iomem *f, uint64_t off, uint64_t end)
{
        struct dax_handle *h = handle(f);
        if (end <= off || run_holds(f, &h->data, off, end) || run_holds(f, &h->blocks, off, end))
                return 0;
        uint64_t seen = cuts_now(h);
        if (iom_sys.fallocate(f->data_fd, IOM_FALLOC_KEEP_SIZE, (off_t)off, (off_t)(end - off)) == 0) {
                run_add(f, &h->blocks, off, end, seen);
                return 0;
        }
        int e = errno;
        if (e == EOPNOTSUPP || e == ENOSYS)
                return 0; /* the filesystem allocates on write only */
        if (e == ENOSPC)
                return iom_fail(f->name, -ENOSPC, "no space on its filesystem for bytes [%llu, %llu)",
                                (unsigned long long)off, (unsigned long long)end);
        return fail_errno(f, e, "fallocate");
}

/* Unpin the window's chunks over [off, end) in which this handle pins
 * nothing (any more), and forget where they are. Called with the whole
 * handle lock held. */
static void unpin_unheld_chunks(struct iomem *f, uint64_t off, uint64_t end)
{
        struct dax_handle *h = handle(f);
        unsigned shift = chunk_shift(h);
        for (uint64_t ci = off >> shift; ci <= (end - 1) >> shift; ci++) {
                uint64_t cs = ci << shift, ce = cs + (UINT64_C(1) << shift);
                size_t i = iom_ranges_first_after(&h->fd.pins, cs);
                if (i < h->fd.pins.n && h->fd.pins.v[i].start < ce)
                        continue;
                iom_window_unpin(&h->wf, ci);
                /* A split needs room: the caller reserved it. */
                if (iom_ranges_covered(&h->mapped, cs, ce))
                        iom_ranges_dec(&h->mapped, cs, ce, NULL, NULL);
        }
}

/* Remember where the chunks of a request that pinned them are (the whole
 * handle lock held; room reserved). */
static void remember_chunks(struct dax_handle *h, const struct chunks *c)
{
        unsigned shift = chunk_shift(h);
        for (size_t k = 0; k < c->n; k++) {
                uint64_t cs = c->idx[k] << shift, ce = cs + (UINT64_C(1) << shift);
                if (!iom_ranges_covered(&h->mapped, cs, ce))
                        iom_ranges_insert(&h->mapped, cs, ce, (uintptr_t)c->addr[k]);
        }
}

/* Drop the shared pins of the gaps [gaps[2i], gaps[2i+1]) again. */
static void unpin_gaps(struct iomem *f, const uint64_t *gaps, size_t ngaps)
{
        if (iom_meta_lock(f))
                return; /* they stay until the handle closes */
        for (size_t i = 0; i < ngaps; i++)
                iom_pin_let_go(gaps[2 * i], gaps[2 * i + 1], f);
        iom_meta_unlock(f);
}

/* Pin the gaps of this handle's pins in the shared state, within the
 * file's size (read under the same hold of the metadata as the pins are
 * made, so that a truncate through the library either sees them or has
 * cut the file first; from the file when look is set, else as the shared
 * state knows it): *end is clamped to *size, *ngaps and *gaps say what
 * was pinned. 0 with *ngaps 0 and *end <= off: past the end. */
static int pin_shared(struct iomem *f, uint64_t off, uint64_t *end, bool look, uint64_t *size,
                      uint64_t **gaps, size_t *ngaps)
{
        struct dax_handle *h = handle(f);
        *gaps = NULL;
        *ngaps = 0;
        int err = iom_meta_lock(f);
        if (err)
                return err;
        *size = known_size(f);
        if (look || *end > *size) /* lowered since the caller looked */
                err = learn_size(f, size);
        if (err || off >= iom_round_up(*size, f->page_size)) {
                *end = off;
                iom_meta_unlock(f);
                return err;
        }
        *end = iom_min(*end, iom_round_up(*size, f->page_size));
        size_t n = pin_gaps(&h->fd.pins, off, *end, NULL);
        if (*end > IOM_DATA_END)
                err = iom_fail(f->name, -EFBIG, "bytes [%llu, %llu) reach past %llu, the most the "
                               "shared state records pins of", (unsigned long long)off,
                               (unsigned long long)*end, (unsigned long long)IOM_DATA_END);
        else if (n && !(*gaps = malloc(2 * n * sizeof **gaps)))
                err = iom_fail(f->name, -ENOMEM, "out of memory");
        if (!err)
                pin_gaps(&h->fd.pins, off, *end, *gaps);
        for (size_t i = 0; i < n && !err; i++)
                err = iom_pin_add(f, h->fd.owner, (*gaps)[2 * i], (*gaps)[2 * i + 1]);
        if (err)
                iom_meta_undo(f);
        else
                *ngaps = n;
        iom_meta_unlock(f);
        if (err) {
                free(*gaps);
                *gaps = NULL;
        }
        return err;
}

/*
 * acquire, release and retrieve share the handle's lanes (lanes.h) as the
 * fd engine's do: a nested acquire of pages this handle pins, the release
 * of such a nested pin and a retrieve take only the lane of the CPU they
 * run on, and no system call (the chunks' addresses are in h->mapped, the
 * size in the shared state). Everything else takes the whole lock.
 */
/* fn(va, n, arg) on each piece of [off, end), all in chunks this handle
 * pins, in order, until fn returns non-zero; returns that, or 0. */
static int each_mapped(const struct dax_handle *h, uint64_t off, uint64_t end,
                       int (*fn)(char *va, uint64_t n, void *arg), void *arg)
{
        const struct iom_ranges *m = &h->mapped;
        int r = 0;
        for (size_t i = iom_ranges_first_after(m, off); !r && off < end && i < m->n; i++) {
                uint64_t n = iom_min(end, m->v[i].end) - off;
                r = fn((char *)(uintptr_t)m->v[i].phys + (off - m->v[i].start), n, arg);
                off += n;
        }
        return r;
}

static int mlock_piece(char *va, uint64_t n, void *f)
{
        if (iom_sys.mlock(va, n) < 0)
                return iom_mlock_failure(((struct iomem *)f)->name, errno, n);
        return 0;
}

static int munlock_piece(char *va, uint64_t n, void *f)
{
        (void)f;
        iom_sys.munlock(va, n);
        return 0;
}

/* mlock (lock set) or munlock bytes [off, end) of the chunks this handle
 * pins, widened to whole pages (the whole handle lock held). */
static int lock_mapped(struct iomem *f, uint64_t off, uint64_t end, bool lock)
{
        return each_mapped(handle(f), off, iom_round_up(end, f->page_size),
                           lock ? mlock_piece : munlock_piece, f);
}

/* A wired handle's acquire: lock the pages it pins for the first time
 * (gaps), within the file; all or none. */
static int wire_gaps(struct iomem *f, const uint64_t *gaps, size_t ngaps, uint64_t size)
{
        int err = 0;
        size_t i = 0;
        for (; i < ngaps && !err; i++)
                err = lock_mapped(f, gaps[2 * i], iom_min(gaps[2 * i + 1], size), true);
        while (err && i-- > 0)
                lock_mapped(f, gaps[2 * i], iom_min(gaps[2 * i + 1], size), false);
        return err;
}

/* A piece of this handle's pins that a release lets go, unlocked
 * (iom_ranges_each_last). */
static void unwire(uint64_t start, uint64_t end, uint64_t phys, void *f)
{
        (void)phys;
        lock_mapped(f, start, end, false);
}

static ssize_t dax_acquire(struct iomem *f, size_t off, size_t len)
{
        struct dax_handle *h = handle(f);
        struct iom_ranges *pins = &h->fd.pins;
        uint64_t end = (uint64_t)off + len, size, *gaps;
        size_t ngaps;
        struct iom_lane *ln = iom_lane_enter(&h->fd.lock);
        if (ln) {
                /* Nested: these chunks are pinned already. */
                bool nested = iom_ranges_covered(pins, off, end) && iom_lane_nest(ln, off, end);
                iom_lane_leave(ln);
                if (nested)
                        return (ssize_t)len;
        }
        iom_lanes_lock(&h->fd.lock);
        int err = iom_lanes_fold(&h->fd.lock, iom_ranges_fold_nest, pins);
        if (!err && iom_ranges_covered(pins, off, end)) {
                if ((err = iom_ranges_reserve(pins, 2)) == 0)
                        iom_ranges_inc(pins, off, end, 1);
                iom_lanes_unlock(&h->fd.lock);
                return err ? iom_fail(f->name, err, "out of memory") : (ssize_t)len;
        }
        unsigned shift = chunk_shift(h);
        if (err || iom_ranges_reserve(pins, pin_gaps(pins, off, end, NULL) + 2)) {
                iom_lanes_unlock(&h->fd.lock);
                return iom_fail(f->name, -ENOMEM, "out of memory");
        }
        /* A request that maps a chunk reads the size from the file (so
         * sees what a program outside the library did to it); one whose
         * chunks are all in the window takes the size the shared state
         * knows, and so makes no system call. */
        struct chunks c;
        chunks_init(&c);
        bool look = true;
        if (end <= known_size(f) && !(err = chunks_span(f, &c, off >> shift, (end - 1) >> shift))) {
                iom_window_peek(&h->wf, c.idx, c.n, c.addr);
                look = false;
                for (size_t k = 0; k < c.n && !look; k++)
                        look = !c.addr[k];
        }
        c.n = 0;
        if (err || (err = pin_shared(f, off, &end, look, &size, &gaps, &ngaps)) || end <= off) {
                iom_lanes_unlock(&h->fd.lock);
                chunks_free(&c);
                return err;
        }
        err = chunks_span(f, &c, off >> shift, (end - 1) >> shift);
        if (!err && iom_ranges_reserve(&h->mapped, c.n + 2))
                err = iom_fail(f->name, -ENOMEM, "out of memory");
        /* The window before the blocks: a request it cannot hold
         * (-ENOBUFS) allocates nothing in the file. */
        if (!err && (err = iom_window_pin(&h->wf, c.idx, c.n, c.addr)) == 0)
                remember_chunks(h, &c);
        if (!err && (((f->flags & IOMEM_RDWR) && (err = back(f, off, iom_min(end, size)))) ||
                     (h->fd.wired && (err = wire_gaps(f, gaps, ngaps, size)))))
                unpin_unheld_chunks(f, off, end);
        if (err) {
                unpin_gaps(f, gaps, ngaps);
        } else {
                iom_ranges_inc(pins, off, end, 1);
                for (size_t i = 0; i < ngaps; i++)
                        iom_ranges_insert(pins, gaps[2 * i], gaps[2 * i + 1], gaps[2 * i]);
        }
        iom_lanes_unlock(&h->fd.lock);
        chunks_free(&c);
        free(gaps);
        return err ? err : (ssize_t)(end - off);
}

static int not_acquired(struct iomem *f, uint64_t off, uint64_t end, int err)
{
        return iom_fail(f->name, err, "bytes [%llu, %llu) are not all acquired by this handle",
                        (unsigned long long)off, (unsigned long long)end);
}

static int dax_release(struct iomem *f, size_t off, size_t len)
{
        struct dax_handle *h = handle(f);
        struct iom_ranges *pins = &h->fd.pins;
        uint64_t end = (uint64_t)off + len;
        struct iom_lane *ln = iom_lane_enter(&h->fd.lock);
        if (ln) {
                /* A pin this lane nested: the runs under it stay pinned. */
                bool unnested = iom_lane_unnest(ln, off, end);
                iom_lane_leave(ln);
                if (unnested)
                        return 0;
        }
        iom_lanes_lock(&h->fd.lock);
        unsigned shift = chunk_shift(h);
        uint64_t chunks = end > off ? ((end - 1) >> shift) - (off >> shift) + 1 : 0;
        int err = iom_ranges_covered(pins, off, end) ? 0 : not_acquired(f, off, end, -EINVAL);
        if (!err && (iom_lanes_fold(&h->fd.lock, iom_ranges_fold_nest, pins) ||
                     iom_ranges_reserve(pins, 2) || iom_ranges_reserve(&h->mapped, chunks + 2)))
                err = iom_fail(f->name, -ENOMEM, "out of memory");
        if (!err && iom_ranges_all_nested(pins, off, end)) {
                /* No page is let go: the shared pins stay as they are. */
                iom_ranges_dec(pins, off, end, NULL, NULL);
        } else if (!err && (err = iom_meta_lock(f)) == 0) {
                if (h->fd.wired) /* before the chunks' places are forgotten */
                        iom_ranges_each_last(pins, off, end, unwire, f);
                iom_ranges_dec(pins, off, end, iom_pin_let_go, f);
                iom_meta_unlock(f);
                unpin_unheld_chunks(f, off, end);
        }
        iom_lanes_unlock(&h->fd.lock);
        return err;
}

static int out_piece(char *va, uint64_t n, void *o)
{
        return !out_put(o, va, n, false);
}

/* Through the CPU's lane of the handle (or its whole lock): when this
 * handle pins all of [off, end), fn(va, n, arg) on each piece of it below
 * the end the shared state knows (never an address past it), and true;
 * else false. */
static bool each_pinned(struct iomem *f, uint64_t off, uint64_t end,
                        int (*fn)(char *va, uint64_t n, void *arg), void *arg)
{
        struct dax_handle *h = handle(f);
        struct iom_lane *ln = iom_lane_enter(&h->fd.lock);
        if (!ln)
                iom_lanes_lock(&h->fd.lock);
        bool pinned = iom_ranges_covered(&h->fd.pins, off, end);
        uint64_t stop = iom_min(end, iom_round_up(known_size(f), f->page_size));
        if (pinned && off < stop)
                each_mapped(h, off, stop, fn, arg);
        if (ln)
                iom_lane_leave(ln);
        else
                iom_lanes_unlock(&h->fd.lock);
        return pinned;
}

static ssize_t dax_retrieve(struct iomem *f, size_t off, size_t len, struct iovec *iov,
                            size_t iovcnt)
{
        uint64_t end = (uint64_t)off + len;
        struct out o = { .iov = iov, .cap = iovcnt };
        return each_pinned(f, off, end, out_piece, &o) ? (ssize_t)o.n : not_acquired(f, off, end, -ENOENT);
}

/*
 * borrow and bufcount (o->iov NULL: count only): [off, off+len) clamped
 * to the file's size. borrow maps the chunks and holds them for the
 * calling thread: until it unlocks when it holds the I/O lock through
 * this handle, else until its next borrow in the window. bufcount maps
 * and holds nothing: a chunk not mapped yet counts as an entry of its own,
 * which borrow may join to a neighbour (where it lands decides), so the
 * count is exact for mapped chunks and never less than borrow needs.
 *
 * The fast path, with no system call and no lock but the handle's runs':
 * a range of known data within the size the shared state knows, all in
 * chunks the thread still holds from its last borrow without a lock
 * (iom_window_recall), while it holds no I/O lock (a borrow under one must
 * be kept until the unlock, which the window's holds see to).
 */
static bool describe_recalled(struct iomem *f, uint64_t off, uint64_t end, struct out *o)
{
        struct dax_handle *h = handle(f);
        unsigned shift = chunk_shift(h);
        uint64_t idx[IOM_WINDOW_RECALL_MAX];
        char *addr[IOM_WINDOW_RECALL_MAX];
        if (end <= off || end > known_size(f) ||
            ((end - 1) >> shift) - (off >> shift) >= IOM_WINDOW_RECALL_MAX ||
            iom_dax_caller_holds_locks() || !run_holds(f, &h->data, off, end))
                return false;
        struct chunks c = { .idx = idx, .addr = addr, .cap = IOM_WINDOW_RECALL_MAX };
        for (uint64_t ci = off >> shift; ci <= (end - 1) >> shift; ci++)
                c.idx[c.n++] = ci;
        if (!iom_window_recall(&h->wf, c.idx, c.n, o->iov != NULL, c.addr))
                return false;
        size_t k = 0;
        out_data(o, &c, &k, shift, off, end);
        return true;
}

static ssize_t describe(struct iomem *f, size_t off, size_t len, struct out *o)
{
        struct dax_handle *h = handle(f);
        uint64_t end = (uint64_t)off + len, size;
        if (!o->cap)
                return 0;
        if (describe_recalled(f, off, end, o))
                return (ssize_t)o->n;
        int err = refresh_size(f, &size);
        if (err || off >= size)
                return err;
        end = iom_min(end, size);
        unsigned shift = chunk_shift(h);
        struct segs s = { 0 };
        struct chunks c;
        chunks_init(&c);
        err = find_segments(f, off, end, &s);
        for (size_t i = 0; i < s.n && !err; i++)
                if (s.v[i].data)
                        err = chunks_span(f, &c, s.v[i].start >> shift, (s.v[i].end - 1) >> shift);
        if (!err && !o->iov) {
                iom_window_peek(&h->wf, c.idx, c.n, c.addr);
        } else if (!err) {
                pthread_mutex_lock(&h->borrowers_lock);
                err = iom_window_borrow(&h->wf, c.idx, c.n, iom_dax_lock_holds(h), c.addr);
                pthread_mutex_unlock(&h->borrowers_lock);
        }
        size_t k = 0;
        for (size_t i = 0; i < s.n && !err; i++) {
                bool room = s.v[i].data ? out_data(o, &c, &k, shift, s.v[i].start, s.v[i].end)
                                        : out_put(o, NULL, s.v[i].end - s.v[i].start, true);
                if (!room)
                        break;
        }
        free(s.v);
        chunks_free(&c);
        return err ? err : (ssize_t)o->n;
}

static ssize_t dax_borrow(struct iomem *f, size_t off, size_t len, struct iovec *iov, size_t iovcnt)
{
        struct out o = { .iov = iov, .cap = iovcnt };
        return describe(f, off, len, &o);
}

static ssize_t dax_bufcount(struct iomem *f, size_t off, size_t len)
{
        struct out o = { .cap = SIZE_MAX };
        return describe(f, off, len, &o);
}

/* ---- writing -------------------------------------------------------------------------- */

static int write_out(struct iomem *f, const char *buf, size_t len, uint64_t off)
{
        while (len) {
                ssize_t n = iom_sys.pwrite(f->data_fd, buf, len, (off_t)off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        int e = n < 0 ? errno : EIO;
                        if (e == ENOSPC)
                                return iom_fail(f->name, -ENOSPC, "no space left on its filesystem");
                        return fail_errno(f, e, "pwrite");
                }
                buf += n;
                len -= (size_t)n;
                off += (uint64_t)n;
        }
        return 0;
}

/* A write(2) or a change of size through this handle has ended (in part
 * or whole): its metadata is durable only by the file's flush, also where
 * the chunks are MAP_SYNC (persist_mapped). */
static void changed_by_syscall(struct dax_handle *h)
{
        __atomic_add_fetch(&h->changes, 1, __ATOMIC_RELEASE);
}

static int write_all(struct iomem *f, const char *buf, size_t len, uint64_t off)
{
        int err = write_out(f, buf, len, off);
        changed_by_syscall(handle(f));
        return err;
}

/* No file reaches past the largest off_t: bytes [off, off+len) past it are
 * refused before anything is written, not written in part. */
static int check_file_end(struct iomem *f, size_t off, size_t len)
{
        if ((uint64_t)off + len > (uint64_t)INT64_MAX)
                return iom_fail(f->name, -EFBIG, "bytes [%zu, %llu) reach past the largest file "
                                "(%llu bytes)", off, (unsigned long long)off + len,
                                (unsigned long long)INT64_MAX);
        return 0;
}

static ssize_t dax_pread(struct iomem *f, void *buf, size_t len, size_t off)
{
        struct dax_handle *h = handle(f);
        uint64_t size;
        int err = iom_dax_rdlock(h, f->lock_timeout_ms);
        if (err)
                return err;
        /* Ask for no more than the file holds when the read starts: the
         * kernel refuses a length that reaches past the address space
         * (-EFAULT) or an offset past the largest file (-EINVAL), where
         * the contract says the file has ended. */
        if ((err = file_size(f, &size)) || off >= size) {
                iom_dax_unlock(h);
                return err;
        }
        len = (size_t)iom_min(len, size - off);
        size_t done = 0;
        while (done < len) {
                ssize_t n = iom_sys.pread(f->data_fd, (char *)buf + done, len - done, (off_t)(off + done));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        err = fail_errno(f, errno, "pread");
                if (n <= 0)
                        break;
                done += (size_t)n;
        }
        iom_dax_unlock(h);
        return err && !done ? err : (ssize_t)done;
}

static ssize_t dax_pwrite(struct iomem *f, const void *buf, size_t len, size_t off)
{
        struct dax_handle *h = handle(f);
        int err = check_file_end(f, off, len);
        if (err || (err = iom_dax_rdlock(h, f->lock_timeout_ms)))
                return err;
        if ((err = write_all(f, buf, len, off)) == 0)
                raise_size(f, (uint64_t)off + len);
        iom_dax_unlock(h);
        return err ? err : (ssize_t)len;
}

static int dax_truncate(struct iomem *f, size_t size)
{
        struct dax_handle *h = handle(f);
        uint64_t old;
        int err = check_file_end(f, 0, size);
        if (err || (err = iom_dax_wrlock(h, f->lock_timeout_ms)))
                return err;
        /* Under the metadata, so that no acquire reads the size between
         * the look at the pins and the cut (pin_shared). */
        if ((err = iom_meta_lock(f)) == 0) {
                if (!(err = file_size(f, &old)) && size < old)
                        err = iom_pin_refuse(f, iom_round_down(size, f->page_size), UINT64_MAX);
                /* What is cut off is a hole when it grows back: every
                 * handle forgets the runs it saw (runs_lock). Counted,
                 * and the size the shared state knows lowered, before the
                 * cut, so that a process that dies after it has done
                 * both: a count without a cut costs a lookup, and a size
                 * known low a look at the file, while a size known high
                 * would let an acquire pin pages past the end. Neither is
                 * in the undo log, which would put the old size back. */
                uint64_t *known = &h->fd.meta->dax_size;
                if (!err && size < old) {
                        __atomic_add_fetch(&h->fd.meta->cuts, 1, __ATOMIC_RELEASE);
                        __atomic_store_n(known, (uint64_t)size, __ATOMIC_RELEASE);
                }
                if (!err && iom_sys.ftruncate(f->data_fd, (off_t)size) < 0)
                        err = fail_errno(f, errno, "ftruncate");
                changed_by_syscall(h);
                if (!err) /* a failed cut leaves it known low: safe */
                        __atomic_store_n(known, (uint64_t)size, __ATOMIC_RELEASE);
                iom_meta_unlock(f);
        }
        iom_dax_unlock(h);
        return err;
}

/* ---- iomem_alloc / iomem_free / gift --------------------------------------------------- */

/*
 * Buffers from iomem_alloc are plain memory (a dax file cannot adopt
 * pages, so gift copies them), kept as runs of addresses in h->bufs. The
 * "physical" offset of a run is its buffer's serial number in the high
 * bits, so that neighbouring buffers never merge into one run while the
 * pieces of one buffer stay one run.
 */
#define BUF_SERIAL_SHIFT 48

/* The run of h->bufs holding [p, p+len), or NULL (h->bufs_lock held). */
static const struct iom_range *buf_holding(const struct dax_handle *h, const char *p, size_t len)
{
        uint64_t a = (uintptr_t)p;
        size_t i = iom_ranges_first_after(&h->bufs, a);
        if (i < h->bufs.n && h->bufs.v[i].start <= a && a + len <= h->bufs.v[i].end)
                return &h->bufs.v[i];
        return NULL;
}

static int dax_alloc(struct iomem *f, size_t len, void **out)
{
        static uint64_t serial;
        struct dax_handle *h = handle(f);
        uint64_t n = iom_round_up(len, f->page_size);
        if (n < len || n >> BUF_SERIAL_SHIFT)
                return iom_fail(f->name, -ENOMEM, "%zu bytes cannot be allocated", len);
        pthread_mutex_lock(&handle(f)->bufs_lock);
        int err = 0;
        void *va = MAP_FAILED;
        if (iom_ranges_reserve(&h->bufs, 1))
                err = iom_fail(f->name, -ENOMEM, "out of memory");
        else if ((va = iom_sys.mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | iom_map_anonymous,
                                    -1, 0)) == MAP_FAILED)
                err = iom_fail(f->name, -ENOMEM, "cannot map %llu bytes: %s", (unsigned long long)n,
                               strerror(errno));
        if (!err) {
                uint64_t id = __atomic_add_fetch(&serial, 1, __ATOMIC_RELAXED) << BUF_SERIAL_SHIFT;
                iom_ranges_insert(&h->bufs, (uintptr_t)va, (uintptr_t)va + n, id);
                *out = va;
        }
        pthread_mutex_unlock(&handle(f)->bufs_lock);
        return err;
}

static int dax_free(struct iomem *f, void *buf, size_t len)
{
        struct dax_handle *h = handle(f);
        uint64_t n = iom_round_up(len, f->page_size);
        pthread_mutex_lock(&handle(f)->bufs_lock);
        const struct iom_range *r = buf_holding(h, buf, n);
        int err = 0;
        if (r && r->start == (uintptr_t)buf && r->end == (uintptr_t)buf + n) {
                iom_ranges_dec(&h->bufs, r->start, r->end, NULL, NULL);
                iom_sys.munmap(buf, n);
        } else if (r && r->start == (uintptr_t)buf) {
                err = iom_fail(f->name, -EINVAL, "buffer %p holds %llu bytes, not %zu", buf,
                               (unsigned long long)(r->end - r->start), len);
        } else {
                err = iom_fail(f->name, -EINVAL, "%p is not a buffer from iomem_alloc on this "
                               "object that is still the caller's", buf);
        }
        pthread_mutex_unlock(&handle(f)->bufs_lock);
        return err;
}

/* A gifted buffer from iomem_alloc is the file's now: its pages go away,
 * what is left of the buffer on either side stays the caller's. */
static void buf_consume(struct iomem *f, char *p, size_t len)
{
        struct dax_handle *h = handle(f);
        size_t n = iom_round_up(len, f->page_size);
        if (!len || ((uintptr_t)p & (f->page_size - 1)))
                return;
        pthread_mutex_lock(&handle(f)->bufs_lock);
        if (buf_holding(h, p, n) && !iom_ranges_reserve(&h->bufs, 2)) {
                iom_ranges_dec(&h->bufs, (uintptr_t)p, (uintptr_t)p + n, NULL, NULL);
                iom_sys.munmap(p, n);
        }
        pthread_mutex_unlock(&handle(f)->bufs_lock);
}

static ssize_t dax_gift(struct iomem *f, size_t off, size_t len, const struct iovec *iov,
                        size_t iovcnt, unsigned flags)
{
        struct dax_handle *h = handle(f);
        uint64_t end = (uint64_t)off + len, ps = f->page_size, copied = 0;
        int err = check_file_end(f, off, len);
        if (err || (err = iom_dax_wrlock(h, f->lock_timeout_ms)))
                return err;
        /* The metadata stays locked through the copy, so that no process
         * pins the range between the look and the last byte (acquire pins
         * under it: pin_shared). */
        if ((err = iom_meta_lock(f)))
                goto out;
        err = iom_pin_refuse(f, iom_round_down(off, ps), iom_round_up(end, ps));
        for (size_t i = 0; i < iovcnt && !err; i++)
                if (iov[i].iov_len && (flags & IOMEM_GIFT_NOCOPY))
                        err = iom_fail(f->name, -EXDEV, "entry %zu (%p, %zu bytes) would have to be "
                                       "copied: dax objects take gifts by copying only", i,
                                       iov[i].iov_base, iov[i].iov_len);
        /* Blocks first, so that the copy cannot run out of space half way. */
        if (!err)
                err = back(f, off, end);
        for (size_t i = 0, dst = off; i < iovcnt && !err; dst += iov[i].iov_len, i++) {
                if ((err = write_all(f, iov[i].iov_base, iov[i].iov_len, dst)) == 0)
                        copied += iov[i].iov_len;
        }
        struct iom_meta *m = h->fd.meta;
        if (!err)
                raise_size(f, end);
        if (copied && iom_undo_set(f, &m->gift_copied, m->gift_copied + copied))
                iom_meta_undo(f); /* a statistic: not worth failing the gift */
        iom_meta_unlock(f);
        for (size_t i = 0; i < iovcnt && !err; i++)
                buf_consume(f, iov[i].iov_base, iov[i].iov_len);
out:
        iom_dax_unlock(h);
        return err ? err : (ssize_t)iovcnt;
}

/* ---- locks, stat, sync, close ----------------------------------------------------------- */

static int dax_rdlock_op(struct iomem *f, int timeout_ms)
{
        return iom_dax_rdlock(handle(f), timeout_ms);
}

static int dax_wrlock_op(struct iomem *f, int timeout_ms)
{
        return iom_dax_wrlock(handle(f), timeout_ms);
}

static int dax_unlock_op(struct iomem *f)
{
        return iom_dax_unlock(handle(f));
}

/* How iomem_persist makes this file's bytes durable (iomem_stat). */
static unsigned persist_kind(const struct dax_handle *h)
{
        unsigned kind = iom_cache_flush_kind();
        return __atomic_load_n(&h->wf.try_sync, __ATOMIC_RELAXED) && kind != IOMEM_PERSIST_NONE ? kind
                                                                                  : IOMEM_PERSIST_MSYNC;
}

static int dax_stat(struct iomem *f, struct iomem_stat *st)
{
        uint64_t size;
        int err = file_size(f, &size);
        if (err)
                return err;
        st->size = (size_t)size;
        st->dax = iom_file_is_dax(f->data_fd);
        st->caps = st->dax ? DAX_CAPS : DAX_CAPS & ~IOMEM_CAP_DAX;
        if ((err = iom_meta_lock(f)) == 0) {
                err = iom_stat_shared(f, st);
                iom_meta_unlock(f);
        }
        struct dax_handle *h = handle(f);
        iom_lanes_lock(&h->fd.lock);
        st->wired = h->fd.wired ? iom_ranges_bytes(&h->fd.pins) : 0;
        iom_lanes_unlock(&h->fd.lock);
        st->persist = persist_kind(h);
        return err;
}

/*
 * fdatasync when this handle changed the file by a system call since a
 * flush last covered it. The count of changes is read before the flush
 * and marked flushed after it, so that a change that ends during the
 * flush is flushed by the next call, and a flush that fails marks nothing.
 */
static int sync_changes(struct iomem *f)
{
        struct dax_handle *h = handle(f);
        uint64_t now = __atomic_load_n(&h->changes, __ATOMIC_ACQUIRE);
        uint64_t done = __atomic_load_n(&h->changes_flushed, __ATOMIC_ACQUIRE);
        if (done >= now)
                return 0;
        if (iom_sys.fdatasync(f->data_fd) < 0)
                return fail_errno(f, errno, "fdatasync");
        while (done < now && !__atomic_compare_exchange_n(&h->changes_flushed, &done, now, true,
                                                          __ATOMIC_RELEASE, __ATOMIC_ACQUIRE))
                ;
        return 0;
}

static int write_back_piece(char *va, uint64_t n, void *kind)
{
        iom_cache_writeback(*(unsigned *)kind, va, n);
        return 0;
}

/*
 * MAP_SYNC chunks: the kernel keeps no record of what was stored through
 * them (their faults made the blocks durable already), so the bytes are
 * made durable by writing back the CPU's cache lines from here, without a
 * system call. Only what this handle has mapped can hold its stores; a
 * store through a chunk the window has let go of is the caller's to have
 * persisted while it held the range (iomem_persist(3)). The write-back
 * must not meet a page a truncate cut (a SIGBUS): a range this handle pins
 * cannot be cut, and is reached through the CPU's lane alone, as retrieve
 * is; any other range is written back under the metadata lock, which
 * every cut holds, and only below the size the shared state knows, which
 * every cut lowers first. What this handle changed with write(2) or a
 * change of size needs the file's own flush for its metadata, once
 * (sync_changes).
 */
static int persist_mapped(struct iomem *f, size_t off, size_t len, unsigned kind)
{
        struct dax_handle *h = handle(f);
        uint64_t end = (uint64_t)off + len;
        bool pinned = each_pinned(f, off, end, write_back_piece, &kind);
        int err = pinned ? 0 : iom_meta_lock(f);
        if (err)
                return err;
        if (!pinned) {
                uint64_t stop = iom_min(end, known_size(f));
                if (off < stop)
                        iom_window_persist(&h->wf, off, stop, kind);
                iom_meta_unlock(f);
        }
        iom_cache_fence();
        return sync_changes(f);
}

/*
 * The page cache: msync(MS_SYNC) writes back the dirty pages of its range
 * of the file, and the metadata they need, whatever mapping dirtied them
 * (the kernel's fsync of that range). The range gets a mapping of its own
 * for it, so that the window's chunks are neither needed nor disturbed.
 * A read-only descriptor's shared mapping is not flushed by msync: there
 * it is fdatasync of the file.
 */
static int persist_by_msync(struct iomem *f, size_t off, size_t len)
{
        if (!(f->flags & IOMEM_RDWR)) {
                if (iom_sys.fdatasync(f->data_fd) < 0)
                        return fail_errno(f, errno, "fdatasync");
                return 0;
        }
        uint64_t size;
        int err = file_size(f, &size);
        uint64_t ps = iom_system_page_size(), from = iom_round_down(off, ps);
        uint64_t to = iom_min((uint64_t)off + len, size);
        if (err)
                return err;
        if (from >= to) /* no page to write back; a cut this handle made still counts */
                return sync_changes(f);
        size_t n = (size_t)(to - from);
        void *p = iom_sys.mmap(NULL, n, PROT_READ, MAP_SHARED, f->data_fd, (off_t)from);
        if (p == MAP_FAILED)
                return fail_errno(f, errno, "mmap for msync");
        if (iom_sys.msync(p, n, MS_SYNC) < 0)
                err = fail_errno(f, errno, "msync");
        iom_sys.munmap(p, n);
        return err;
}

static int dax_sync(struct iomem *f, size_t off, size_t len)
{
        unsigned kind = persist_kind(handle(f));
        return kind == IOMEM_PERSIST_MSYNC ? persist_by_msync(f, off, len) : persist_mapped(f, off, len, kind);
}

/* Chunks of [off, off+len) in the window (WILLNEED maps them ahead, as
 * OSv's aggressive read, as far as the window has room, and the kernel
 * reads them ahead); what the window does not hold has no mapping to
 * advise. */
static int dax_advise(struct iomem *f, size_t off, size_t len, int advice)
{
        struct dax_handle *h = handle(f);
        uint64_t size, resident;
        /* A wired handle's memory stays (the kernel refuses to drop locked
         * pages); DAX memory is no page cache, to reclaim or age. */
        enum iom_advice kind = iom_advice_kind(advice);
        bool ages = kind == IOM_ADV_COLD || kind == IOM_ADV_PAGEOUT;
        bool reclaims = kind == IOM_ADV_DONTNEED || ages;
        if ((h->fd.wired && reclaims) || (ages && iom_file_is_dax(f->data_fd)))
                return 0;
        int err = file_size(f, &size);
        if (err || off >= size)
                return err;
        uint64_t chunk = iom_window_chunk(h->wf.w);
        uint64_t from = iom_round_down(off, f->page_size);
        uint64_t end = iom_round_up(iom_min((uint64_t)off + len, size), f->page_size);
        uint64_t first = from / chunk, last = (end - 1) / chunk;
        /* WILLNEED on a chunk mapped ahead has the kernel read it ahead too. */
        return iom_window_advise(&h->wf, first, last - first + 1, from, end, advice, &resident);
}

static void dax_close(struct iomem *f)
{
        struct dax_handle *h = handle(f);
        /* An inherited handle is reset in this process first. */
        iom_object_catch_up(f);
        iom_dax_share_leave(h);
        iom_window_detach(&h->wf);
        for (size_t i = 0; i < h->bufs.n; i++)
                iom_sys.munmap((void *)(uintptr_t)h->bufs.v[i].start,
                               (size_t)(h->bufs.v[i].end - h->bufs.v[i].start));
        iom_ranges_clear(&h->bufs);
        iom_ranges_clear(&h->mapped);
        if (f->data_fd >= 0)
                close(f->data_fd);
        f->data_fd = -1;
        pthread_mutex_destroy(&h->borrowers_lock);
        pthread_mutex_destroy(&h->bufs_lock);
}

static const struct iom_object_ops dax_ops = {
        .size = sizeof(struct iom_object_ops),
        .after_fork = dax_after_fork,
        .acquire = dax_acquire,
        .release = dax_release,
        .retrieve = dax_retrieve,
        .borrow = dax_borrow,
        .bufcount = dax_bufcount,
        .gift = dax_gift,
        .alloc = dax_alloc,
        .free = dax_free,
        .rdlock = dax_rdlock_op,
        .wrlock = dax_wrlock_op,
        .unlock = dax_unlock_op,
        .stat = dax_stat,
        .truncate = dax_truncate,
        .pread = dax_pread,
        .pwrite = dax_pwrite,
        .sync = dax_sync,
        .send_fds = iom_send_data_fd,
        .close = dax_close,
        .settle = iom_in_place, /* the file keeps its own bytes, gifts copied in */
        .advise = dax_advise,
};

/* ---- opening ---------------------------------------------------------------------------- */

/* Name the kind of mount in the object's name, so that every message and
 * the debug log say it: virtio-fs (FUSE with fstype "virtiofs" in
 * mountinfo), with or without a DAX window, or another DAX filesystem. */
static int name_mount(struct iomem *f, int fd, const struct stat *st, bool dax)
{
        struct iom_fsinfo sf;
        char type[64];
        const char *kind = NULL, *mounts = iom_mountinfo_path();
        if (iom_sys.fstatfs(fd, &sf) == 0 && sf.kind == IOM_FS_FUSE && mounts &&
            iom_dax_mount_fstype(mounts, st->st_dev, type, sizeof type) == 0 &&
            !strcmp(type, "virtiofs"))
                kind = dax ? "virtio-fs, DAX window" : "virtio-fs, no DAX window";
        else if (dax)
                kind = "DAX";
        iom_debug("%s: %s; chunks map %s", f->name, kind ? kind : "not DAX",
                  dax ? "the memory directly (MAP_SYNC where the kernel takes it)" : "the page cache");
        if (!kind)
                return 0;
        size_t n = strlen(f->name) + strlen(kind) + 4;
        char *name = realloc(f->name, n);
        if (!name)
                return iom_fail(f->name, -ENOMEM, "out of memory");
        snprintf(name + strlen(name), n - strlen(name), " (%s)", kind);
        f->name = name;
        return 0;
}

/* Make fd the object's file (the caller closes fd on failure). */
static int attach(struct iomem *f, int fd, unsigned flags, const struct iomem_opts *o)
{
        const char *unfit = o->hugepage ? "huge pages" : o->seals ? "seals"
                          : o->numa_policy != IOMEM_NUMA_DEFAULT ? "NUMA policies" : NULL;
        if (unfit) /* the file's filesystem places its memory */
                return iom_fail(f->name, -ENOTSUP, "%s do not apply to dax objects", unfit);
        struct stat st;
        if (iom_sys.fstat(fd, &st) < 0)
                return fail_errno(f, errno, "fstat");
        if (!S_ISREG(st.st_mode))
                return iom_fail(f->name, -EINVAL, "not a regular file");
        bool dax = iom_file_is_dax(fd);
        int err = name_mount(f, fd, &st, dax);
        if (err)
                return err;
        struct dax_handle *h = handle(f);
        h->f = f;
        iom_mutex_init(&h->borrowers_lock);
        iom_mutex_init(&h->bufs_lock);
        h->wf = (struct iom_wfile){
                .fd = fd,
                .prot = PROT_READ | (flags & IOMEM_RDWR ? PROT_WRITE : 0),
                .try_sync = dax,
                .name = f->name,
        };
        f->data_fd = fd;
        if ((err = iom_window_attach(&h->wf, o->window)) == 0 &&
            (err = iom_dax_share_join(h, &st, o->wired)))
                iom_window_detach(&h->wf);
        uint64_t size;
        if (!err && (err = refresh_size(f, &size))) {
                iom_dax_share_leave(h);
                iom_window_detach(&h->wf);
        }
        if (err) {
                f->data_fd = -1; /* the caller's to close */
                pthread_mutex_destroy(&h->borrowers_lock);
                pthread_mutex_destroy(&h->bufs_lock);
                return err;
        }
        f->bytes_in_page_cache = !dax;
        f->caps = dax ? DAX_CAPS : DAX_CAPS & ~IOMEM_CAP_DAX;
        return 0;
}

static int open_file(const char *path, unsigned flags, mode_t mode, bool *created)
{
        int access = O_CLOEXEC | (flags & IOMEM_RDWR ? O_RDWR : O_RDONLY) |
                     (flags & IOMEM_NOFOLLOW ? O_NOFOLLOW : 0);
        *created = false;
        if (flags & IOMEM_CREATE) {
                int fd = iom_sys.open(path, access | O_CREAT | O_EXCL, mode);
                *created = fd >= 0;
                if (fd >= 0 || errno != EEXIST || (flags & IOMEM_EXCL))
                        return fd;
        }
        /* It exists (O_CREAT still, in case it went away meanwhile: then
         * someone else's, not ours to size or remove). */
        return iom_sys.open(path, access | (flags & IOMEM_CREATE ? O_CREAT : 0), mode);
}

static int dax_open(struct iomem *f, const char *path, unsigned flags, const struct iomem_opts *o)
{
        if (!*path)
                return iom_fail(f->name, -EINVAL, "the path is empty");
        if (o->size && !(flags & IOMEM_RDWR))
                return iom_fail(f->name, -EINVAL, "a read-only handle cannot give the file a size");
        bool created;
        int fd = open_file(path, flags, (mode_t)o->mode, &created);
        if (fd < 0) {
                int e = errno;
                if (e == ENOENT)
                        return iom_fail(f->name, -e, "no such file (open with IOMEM_CREATE to create it)");
                if (e == EEXIST)
                        return iom_fail(f->name, -e, "it exists already (IOMEM_EXCL)");
                if (e == ELOOP && (flags & IOMEM_NOFOLLOW))
                        return iom_fail(f->name, -e, "it is a symbolic link (IOMEM_NOFOLLOW)");
                return fail_errno(f, e, "open");
        }
        int err = 0;
        if (created && o->size && iom_sys.ftruncate(fd, (off_t)o->size) < 0)
                err = fail_errno(f, errno, "cannot size it");
        if (!err)
                err = attach(f, fd, flags, o);
        if (err) {
                close(fd);
                if (created)
                        iom_sys.unlink(path);
        }
        return err;
}

static int dax_open_fds(struct iomem *f, const int *fds, int nfds, unsigned flags,
                        const struct iomem_opts *o)
{
        if (nfds != 1)
                return iom_fail(f->name, -EINVAL, "a dax object is one descriptor, not %d", nfds);
        struct stat st;
        if (iom_sys.fstat(fds[0], &st) == 0 && !S_ISREG(st.st_mode))
                return iom_fail(f->name, -EINVAL, "fd %d is not a regular file", fds[0]);
        int fl = iom_sys.fcntl(fds[0], F_GETFL, 0), mode = fl & O_ACCMODE;
        bool readable = mode != O_WRONLY, writable = mode != O_RDONLY;
        if (!readable || ((flags & IOMEM_RDWR) && !writable))
                return iom_fail(f->name, -EACCES, "fd %d is open %s", fds[0],
                                readable ? "read-only" : "write-only; mapping needs read access");
        if ((flags & IOMEM_RDWR) && (fl & O_APPEND))
                return iom_fail(f->name, -EINVAL, "fd %d is open with O_APPEND: a write through "
                                "it lands at the end, not at the offset asked for", fds[0]);
        return attach(f, fds[0], flags, o);
}

static int dax_unlink(const char *path)
{
        if (!*path)
                return iom_fail(path, -EINVAL, "the path is empty");
        if (iom_sys.unlink(path) == 0)
                return 0;
        int e = errno;
        return iom_fail(path, -e, "unlink: %s", strerror(e));
}

static int dax_probe(const char **why)
{
        (void)why; /* ordinary files are everywhere */
        return 1;
}

const struct iom_backend iom_backend_dax = {
        .name = "dax",
        .caps = DAX_CAPS,
        .priv_size = sizeof(struct dax_handle),
        .ops = &dax_ops,
        .probe = dax_probe,
        .open = dax_open,
        .open_fds = dax_open_fds,
        .unlink = dax_unlink,
};
