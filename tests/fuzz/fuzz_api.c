/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness for the public API. The input is decoded into a
 * sequence of calls on up to three objects, one memfd, one shm and one
 * dax: file in a private directory on tmpfs, each with up to two handles
 * (the second attached as another process would: by descriptor or by name,
 * read-write or read-only). Offsets, lengths and iovec arrays are drawn
 * from small ranges and from hostile values (overflowing, past the largest
 * file, unaligned, NULL). IOMEM_FUZZ_BACKEND=memfd, shm or dax keeps one.
 *
 * The dax: object goes through a window of its own, a few chunks of 4 to
 * 32 KiB under a policy the input picks (and changes), so that requests
 * evict chunks and some fail with -ENOBUFS. The model predicts those
 * exactly: a request fails when the chunks it needs that this handle does
 * not already keep busy (pinned, or borrowed under its I/O lock) outnumber
 * the chunks no handle keeps busy. Which chunks a borrow needs depends on
 * the file's holes, which the harness asks the file (SEEK_DATA) for.
 *
 * A model keeps what each object must hold: its bytes, its size, the
 * pages each handle has pinned (with the addresses retrieve gave), the
 * I/O lock each handle holds, the buffers iomem_alloc handed out and the
 * gift totals. Every call's result is predicted exactly from the model and
 * the API contract (API.md); after every call the objects are checked
 * against the model (size, stat.acquired, gift totals, every byte through
 * pread, retrieve and borrow). Any difference calls abort(), as do the
 * sanitizers on any memory error, and libFuzzer on a leak.
 *
 * Lengths that would grow a file are kept under MAX_SIZE unless the call
 * must fail before touching memory, so that the model stays small and a
 * run never asks the machine for real gigabytes.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <iomem.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_PAGES 24
#define MAX_ALLOCS 12
#define DATA_END ((size_t)1 << 44) /* the largest file (API.md: 16 TiB) */
#define DAX_END ((size_t)INT64_MAX) /* a dax: file is an ordinary file */
#define DAX_ALLOC_MAX (((size_t)1 << 48) - 4096) /* backends/dax/dax.c: BUF_SERIAL_SHIFT */

static size_t PS;       /* page size */
static size_t MAX_SIZE; /* MAX_PAGES pages */
static size_t data_end; /* the largest file of the object in use */

/* ---- input decoding ----------------------------------------------------- */

static const uint8_t *in;
static size_t in_left;

static uint8_t u8(void)
{
        if (!in_left)
                return 0;
        in_left--;
        return *in++;
}

static uint16_t u16(void)
{
        return (uint16_t)(u8() | u8() << 8);
}

static uint64_t u64(void)
{
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
                v |= (uint64_t)u8() << (8 * i);
        return v;
}

/* ---- reporting ----------------------------------------------------------- */

static const char *cur_op = "";
static bool trace; /* IOMEM_FUZZ_TRACE: say each call, to read a failing input */

#define CHECK(cond, ...)                                                            \
        do {                                                                        \
                if (!(cond)) {                                                      \
                        fprintf(stderr, "invariant broken in %s: %s: ", cur_op, #cond); \
                        fprintf(stderr, __VA_ARGS__);                               \
                        fprintf(stderr, " [%s]\n", iomem_errormsg());               \
                        abort();                                                    \
                }                                                                   \
        } while (0)

#define EXPECT(got, want)                                                           \
        CHECK((long long)(got) == (long long)(want), "got %lld, expected %lld",     \
              (long long)(got), (long long)(want))

/* The call's result is decided: check it and leave the operation. */
#define EXPECT_DONE(got, want)          \
        do {                            \
                EXPECT(got, want);      \
                return;                 \
        } while (0)

/* ---- the model ------------------------------------------------------------- */

struct piece {
        char *va;
        size_t len; /* whole pages */
};

struct handle {
        struct iomem *f;
        bool open, rdonly;
        uint32_t pins[MAX_PAGES];  /* per page */
        char *pin_va[MAX_PAGES];   /* address retrieve gave, while pinned */
        unsigned rd, wr;           /* I/O lock depth held by this handle */
        struct piece allocs[MAX_ALLOCS * 4 + 8]; /* carving splits them */
        int nallocs;
        /* dax: chunks borrowed while holding the lock as a reader and as
         * the writer, kept from eviction until that hold ends; and those of
         * the thread's last borrow without the lock, if it was through this
         * handle, kept until its next borrow in the window. */
        uint64_t held_r, held_w, loose;
};

struct object {
        const char *backend;
        char uri[160];
        bool dax;
        size_t data_end, alloc_max;
        struct iomem_window *w; /* dax: */
        size_t chunk;
        unsigned nslots;
        unsigned seals;
        unsigned char bytes[MAX_PAGES * 4096 + 8192];
        size_t size;
        uint64_t adopted, copied;
        struct handle h[2];
};

static struct object objs[3];
static char dax_dir[64]; /* the dax: file's directory, made once */
static unsigned char scratch[(MAX_PAGES + 2) * 4096];
static unsigned char source[(MAX_PAGES + 2) * 4096];

static size_t round_up(size_t x)
{
        return (x + PS - 1) / PS * PS;
}

static bool overflows(size_t a, size_t b)
{
        return a + b < a;
}

/* The bytes this process pins through any open handle of o, each once:
 * iomem_stat's acquired (and pinned: no other process holds o). */
static size_t pinned_bytes(const struct object *o)
{
        size_t n = 0;
        for (int p = 0; p < MAX_PAGES; p++)
                for (int i = 0; i < 2; i++)
                        if (o->h[i].open && o->h[i].pins[p]) {
                                n += PS;
                                break;
                        }
        return n;
}

/* Does this process hold o: pins or the I/O lock, through any handle? */
static bool holds(const struct object *o)
{
        for (int i = 0; i < 2; i++)
                if (o->h[i].open && (o->h[i].rd || o->h[i].wr))
                        return true;
        return pinned_bytes(o) > 0;
}

/* Is any page of [s, e) pinned by any handle of o? */
static bool any_pin(const struct object *o, size_t s, size_t e)
{
        for (size_t p = s / PS; p * PS < e && p < MAX_PAGES; p++)
                for (int i = 0; i < 2; i++)
                        if (o->h[i].open && o->h[i].pins[p])
                                return true;
        return false;
}

/* Are all pages of byte range [s, e) pinned by h? */
static bool covered(const struct handle *h, size_t s, size_t e)
{
        if (e > MAX_PAGES * PS)
                return false;
        for (size_t p = s / PS; p * PS < e; p++)
                if (!h->pins[p])
                        return false;
        return true;
}

static struct handle *other(struct object *o, struct handle *h)
{
        return h == &o->h[0] ? &o->h[1] : &o->h[0];
}

/* Would taking the lock for reading / writing block on the other handle? */
static bool rd_blocks(struct object *o, struct handle *h)
{
        struct handle *g = other(o, h);
        return g->open && g->wr;
}

static bool wr_blocks(struct object *o, struct handle *h)
{
        struct handle *g = other(o, h);
        return g->open && (g->wr || g->rd);
}

static void set_size(struct object *o, size_t size)
{
        if (size < o->size)
                memset(o->bytes + size, 0, o->size - size);
        o->size = size;
}

/* ---- the dax: window ----------------------------------------------------------------- */

/* The chunks of [s, e) (not empty), as bits. The model's file is far
 * smaller than 64 chunks. */
static uint64_t chunk_span(const struct object *o, size_t s, size_t e)
{
        uint64_t m = 0;
        for (size_t c = s / o->chunk; c * o->chunk < e; c++) {
                CHECK(c < 64, "chunk %zu of [%zu, %zu)", c, s, e);
                m |= UINT64_C(1) << c;
        }
        return m;
}

/* The chunks holding data within [off, end): what borrow maps (holes need
 * none). Asked of the file itself, as the library does. */
static uint64_t data_chunks(const struct object *o, const struct handle *h, size_t off, size_t end)
{
        int fd = iomem_fd(h->f);
        uint64_t m = 0;
        for (size_t pos = off; pos < end;) {
                off_t d = lseek(fd, (off_t)pos, SEEK_DATA);
                if (d < 0 || (size_t)d >= end)
                        break;
                off_t hole = lseek(fd, d, SEEK_HOLE);
                size_t stop = hole < 0 || (size_t)hole > end ? end : (size_t)hole;
                m |= chunk_span(o, (size_t)d, stop);
                pos = stop;
        }
        return m;
}

/* The chunks holding a page that h pinned. */
static uint64_t pin_chunks(const struct object *o, const struct handle *h)
{
        uint64_t m = 0;
        for (size_t p = 0; p < MAX_PAGES; p++)
                if (h->pins[p])
                        m |= UINT64_C(1) << (p * PS / o->chunk);
        return m;
}

/* The chunks h keeps from eviction: pinned, held under its lock, or by
 * the thread's last borrow without it. */
static uint64_t busy_chunks(const struct object *o, const struct handle *h)
{
        return pin_chunks(o, h) | h->held_r | h->held_w | h->loose;
}

/* Can h map the chunks `want` now? Each handle has chunks of its own in
 * the window; those no handle keeps busy can all be evicted. */
static bool window_fits(const struct object *o, const struct handle *h, uint64_t want)
{
        unsigned busy = 0;
        for (int i = 0; i < 2; i++)
                if (o->h[i].open)
                        busy += (unsigned)__builtin_popcountll(busy_chunks(o, &o->h[i]));
        CHECK(busy <= o->nslots, "%u busy chunks in a window of %u", busy, o->nslots);
        return (unsigned)__builtin_popcountll(want & ~busy_chunks(o, h)) <= o->nslots - busy;
}

/* A borrow of `want` through h begins: the thread's last borrow without
 * the lock, through either handle, is let go first. Can it map them? */
static bool borrow_fits(struct object *o, struct handle *h, uint64_t want)
{
        o->h[0].loose = o->h[1].loose = 0;
        return window_fits(o, h, want);
}

/* h borrowed `chunks`: under its lock they stay until that hold ends (the
 * writer's hold outlives reads nested in it); without it, until the
 * thread's next borrow. */
static void hold(struct handle *h, uint64_t chunks)
{
        if (h->wr)
                h->held_w |= chunks;
        else if (h->rd)
                h->held_r |= chunks;
        else
                h->loose = chunks;
}

/* ---- checks against the model ---------------------------------------------------- */

/* The iovecs describe bytes [off, off + total) of o; compare them. */
static size_t check_iov(struct object *o, const struct iovec *v, size_t n, size_t off, bool holes)
{
        size_t pos = off;
        for (size_t i = 0; i < n; i++) {
                CHECK(v[i].iov_len > 0, "entry %zu is empty", i);
                CHECK(holes || v[i].iov_base, "entry %zu is a hole", i);
                for (size_t j = 0; j < v[i].iov_len; j++, pos++) {
                        if (pos >= o->size)
                                continue; /* a pinned tail past the end */
                        unsigned char c = v[i].iov_base ? ((unsigned char *)v[i].iov_base)[j] : 0;
                        CHECK(c == o->bytes[pos], "byte %zu is %#x, expected %#x", pos, c,
                              o->bytes[pos]);
                }
        }
        return pos - off;
}

static void check_object(struct object *o)
{
        for (int i = 0; i < 2; i++) {
                struct handle *h = &o->h[i];
                if (!h->open)
                        continue;
                struct iomem_stat st;
                EXPECT(iomem_stat(h->f, &st), 0);
                EXPECT(st.size, o->size);
                EXPECT(st.page_size, PS);
                EXPECT(st.acquired, pinned_bytes(o));
                EXPECT(st.pinned, pinned_bytes(o));
                EXPECT(st.nholders, holds(o) ? 1 : 0);
                if (st.nholders)
                        EXPECT(st.holders[0], getpid());
                EXPECT(st.gift_adopted, o->adopted);
                EXPECT(st.gift_copied, o->copied);
        }
        /* Every byte, through a handle that can take the read lock. */
        struct handle *h = NULL;
        for (int i = 0; i < 2 && !h; i++)
                if (o->h[i].open && !rd_blocks(o, &o->h[i]))
                        h = &o->h[i];
        if (h) {
                ssize_t r = iomem_pread(h->f, scratch, sizeof scratch, 0);
                EXPECT(r, o->size);
                for (size_t i = 0; i < o->size; i++)
                        CHECK(scratch[i] == o->bytes[i], "pread byte %zu is %#x, expected %#x", i,
                              scratch[i], o->bytes[i]);
        }
        if (o->dax) {
                struct iomem_window_stat ws;
                EXPECT(iomem_window_stat(o->w, &ws), 0);
                EXPECT(ws.size, o->nslots * o->chunk);
                EXPECT(ws.chunk, o->chunk);
                unsigned pinned = 0;
                for (int i = 0; i < 2; i++)
                        if (o->h[i].open)
                                pinned += (unsigned)__builtin_popcountll(pin_chunks(o, &o->h[i]));
                EXPECT(ws.chunks_pinned, pinned);
                CHECK(ws.chunks_used >= pinned && ws.chunks_used <= o->nslots, "%zu chunks used",
                      ws.chunks_used);
        }
        /* borrow of everything agrees with bufcount and the bytes. */
        h = o->h[0].open ? &o->h[0] : &o->h[1];
        struct iovec v[MAX_PAGES + 2];
        uint64_t need = o->dax && o->size ? data_chunks(o, h, 0, o->size) : 0;
        if (trace && o->dax)
                fprintf(stderr, "  check: need %#llx, busy %#llx %#llx, %u chunks of %zu\n",
                        (unsigned long long)need, (unsigned long long)busy_chunks(o, &o->h[0]),
                        (unsigned long long)busy_chunks(o, &o->h[1]), o->nslots, o->chunk);
        /* bufcount only looks: never short of room, never less than the
         * borrow after it needs (dax: a chunk not mapped yet is an entry
         * of its own, which borrow may join to a neighbour). */
        ssize_t n = iomem_bufcount(h->f, 0, SIZE_MAX);
        CHECK(n >= (o->size ? 1 : 0) && n <= MAX_PAGES + 1, "bufcount %zd", n);
        if (o->dax && o->size && !borrow_fits(o, h, need)) {
                EXPECT(iomem_borrow(h->f, 0, SIZE_MAX, v, MAX_PAGES + 2), -ENOBUFS);
                return;
        }
        ssize_t r = iomem_borrow(h->f, 0, SIZE_MAX, v, MAX_PAGES + 2);
        if (o->dax && o->size)
                hold(h, need);
        CHECK(r >= (o->size ? 1 : 0) && r <= n && (o->dax || r == n), "borrow %zd, bufcount %zd", r, n);
        EXPECT(check_iov(o, v, (size_t)r, 0, true), o->size);
}

/* The data descriptor put in place (iomem_plain_fd): its bytes and size are
 * the model's, for a program that does not use the library. A gifted range
 * that is pinned stays where it is: -EBUSY, only with pins. */
static void check_plain(struct object *o)
{
        struct handle *h = !o->h[0].rdonly && o->h[0].open ? &o->h[0]
                           : !o->h[1].rdonly && o->h[1].open ? &o->h[1] : NULL;
        if (!h || o->h[0].rd || o->h[0].wr || o->h[1].rd || o->h[1].wr)
                return; /* it would wait for a lock, or find it taken */
        int fd = iomem_plain_fd(h->f);
        if (fd == -EBUSY) {
                CHECK(pinned_bytes(o) > 0, "busy without a pin");
                return;
        }
        EXPECT(fd, iomem_fd(h->f));
        struct stat st;
        CHECK(fstat(fd, &st) == 0, "fstat of the plain descriptor");
        EXPECT(st.st_size, o->size);
        EXPECT(pread(fd, scratch, sizeof scratch, 0), o->size);
        for (size_t i = 0; i < o->size; i++)
                CHECK(scratch[i] == o->bytes[i], "plain descriptor byte %zu is %#x, expected %#x", i,
                      scratch[i], o->bytes[i]);
}

/* ---- picking values --------------------------------------------------------------- */

/* An offset or length: mostly small and page-aligned, sometimes unaligned,
 * sometimes hostile. */
static size_t pick(void)
{
        uint8_t sel = u8();
        switch (sel % 16) {
        case 0: return SIZE_MAX;
        case 1: return SIZE_MAX - PS + 1;
        case 2: return data_end;
        case 3: return data_end + PS;
        case 4: return (size_t)1 << 63;
        case 5: return u64();
        case 6: case 7: return u16() % (MAX_SIZE + 2 * PS);
        case 8: return 0;
        default: return (size_t)(u8() % (MAX_PAGES + 2)) * PS;
        }
}

/* ---- operations ------------------------------------------------------------------- */

static void op_acquire(struct object *o, struct handle *h)
{
        size_t off = pick(), len = pick();
        ssize_t r = iomem_acquire(h->f, off, len);
        if (overflows(off, len))
                EXPECT_DONE(r, -EOVERFLOW);
        if (!len)
                EXPECT_DONE(r, 0);
        if ((off | len) % PS)
                EXPECT_DONE(r, -EINVAL);
        if (covered(h, off, off + len)) {
                EXPECT(r, len);
        } else {
                size_t limit = round_up(o->size);
                if (off >= limit)
                        EXPECT_DONE(r, 0);
                len = (off + len > limit ? limit : off + len) - off;
                if (o->dax && !window_fits(o, h, chunk_span(o, off, off + len)))
                        EXPECT_DONE(r, -ENOBUFS);
                EXPECT(r, len);
        }
        for (size_t p = off / PS; p * PS < off + len; p++)
                h->pins[p]++;
}

static void op_release(struct object *o, struct handle *h)
{
        (void)o;
        size_t off = pick(), len = pick();
        int r = iomem_release(h->f, off, len);
        if (overflows(off, len))
                EXPECT_DONE(r, -EOVERFLOW);
        if (!len)
                EXPECT_DONE(r, 0);
        if ((off | len) % PS || !covered(h, off, off + len))
                EXPECT_DONE(r, -EINVAL);
        EXPECT(r, 0);
        for (size_t p = off / PS; p * PS < off + len; p++)
                if (--h->pins[p] == 0)
                        h->pin_va[p] = NULL;
}

static void op_retrieve(struct object *o, struct handle *h)
{
        size_t off = pick(), len = pick();
        uint8_t sel = u8();
        size_t cnt = sel % 8;
        struct iovec v[8];
        struct iovec *iov = sel & 0x80 ? NULL : v;
        ssize_t r = iomem_retrieve(h->f, off, len, iov, cnt);
        if (!iov && cnt)
                EXPECT_DONE(r, -EINVAL);
        if (overflows(off, len))
                EXPECT_DONE(r, -EOVERFLOW);
        if (!len)
                EXPECT_DONE(r, 0);
        if (h->rdonly)
                EXPECT_DONE(r, -EROFS);
        if (!covered(h, off, off + len))
                EXPECT_DONE(r, -ENOENT);
        CHECK(r >= 0 && (size_t)r <= cnt && (cnt == 0 || r >= 1), "retrieve gave %zd of %zu", r, cnt);
        size_t got = check_iov(o, v, (size_t)r, off, false);
        CHECK(got <= len && ((size_t)r == cnt || got == len), "retrieve covered %zu of %zu", got,
              len);
        /* The same addresses for as long as the pages stay pinned. */
        size_t pos = off;
        for (ssize_t i = 0; i < r; i++) {
                for (size_t j = 0; j < v[i].iov_len; j++, pos++) {
                        if (pos % PS && pos != off)
                                continue;
                        char *page = (char *)v[i].iov_base + j - pos % PS;
                        size_t p = pos / PS;
                        CHECK(!h->pin_va[p] || h->pin_va[p] == page, "page %zu moved from %p to %p",
                              p, (void *)h->pin_va[p], (void *)page);
                        h->pin_va[p] = page;
                }
        }
        /* Write through the memory, and the file has it. */
        if (sel & 0x40) {
                unsigned char c = u8();
                pos = off;
                for (ssize_t i = 0; i < r; i++)
                        for (size_t j = 0; j < v[i].iov_len; j++, pos++)
                                if (pos < o->size) {
                                        ((unsigned char *)v[i].iov_base)[j] = (unsigned char)(c + pos);
                                        o->bytes[pos] = (unsigned char)(c + pos);
                                }
        }
}

static void op_borrow(struct object *o, struct handle *h)
{
        size_t off = pick(), len = pick();
        uint8_t sel = u8();
        size_t cnt = sel % 8;
        struct iovec v[8];
        struct iovec *iov = sel & 0x80 ? NULL : v;
        bool inside = !overflows(off, len) && len && off < o->size;
        uint64_t need = o->dax && inside ? data_chunks(o, h, off, off + len > o->size ? o->size : off + len) : 0;
        /* A borrow that reaches the window (entries asked for, a range in
         * the file) lets the last one go; the count only looks. */
        bool reaches = o->dax && iov && cnt && inside;
        bool nobufs = reaches && !borrow_fits(o, h, need);
        ssize_t r = iomem_borrow(h->f, off, len, iov, cnt);
        if (reaches && r >= 0)
                hold(h, need);
        ssize_t c = iomem_bufcount(h->f, off, len);
        if (!iov && cnt)
                EXPECT(r, -EINVAL);
        else if (overflows(off, len))
                EXPECT(r, -EOVERFLOW);
        if (overflows(off, len))
                EXPECT_DONE(c, -EOVERFLOW);
        if (!len || off >= o->size) {
                EXPECT(c, 0);
                if (iov || !cnt)
                        EXPECT(r, 0);
                return;
        }
        CHECK(c >= 1, "bufcount %zd", c);
        if (nobufs)
                EXPECT_DONE(r, -ENOBUFS); /* nothing mapped, nothing held */
        if (!iov && cnt)
                return;
        size_t want = (off + len > o->size || overflows(off, len) ? o->size : off + len) - off;
        CHECK(r >= 0 && (size_t)r <= cnt, "borrow gave %zd of %zu", r, cnt);
        size_t got = check_iov(o, v, (size_t)r, off, true);
        if ((size_t)r < cnt) {
                EXPECT(r, c);
                EXPECT(got, want);
        } else {
                CHECK(got <= want, "borrow covered %zu of %zu", got, want);
                CHECK(r < c || got == want, "borrow filled %zd of %zd entries", r, c);
        }
}

static void op_pread(struct object *o, struct handle *h)
{
        size_t off = pick(), len = pick();
        bool null = u8() == 0xff;
        if (!null && !overflows(off, len) && rd_blocks(o, h))
                return;
        ssize_t r = iomem_pread(h->f, null ? NULL : scratch, len, off);
        if (null && len)
                EXPECT_DONE(r, -EINVAL);
        if (overflows(off, len))
                EXPECT_DONE(r, -EOVERFLOW);
        if (!len || off >= o->size)
                EXPECT_DONE(r, 0);
        size_t want = (off + len > o->size ? o->size : off + len) - off;
        EXPECT(r, want);
        for (size_t i = 0; i < want; i++)
                CHECK(scratch[i] == o->bytes[off + i], "pread byte %zu is %#x, expected %#x", off + i,
                      scratch[i], o->bytes[off + i]);
}

/* Fill the source with a pattern of this call. */
static void pattern(unsigned char *p, size_t n)
{
        unsigned char c = u8();
        for (size_t i = 0; i < n; i++)
                p[i] = (unsigned char)(c + i * 7);
}

static void op_pwrite(struct object *o, struct handle *h)
{
        size_t off = pick(), len = pick();
        bool null = u8() == 0xff;
        bool fails_early = (null && len) || overflows(off, len) || !len || h->rdonly ||
                           off + len > o->data_end;
        if (!fails_early) {
                /* Keep the file small: land inside the model. */
                if (len > MAX_SIZE)
                        len = len % MAX_SIZE + 1;
                if (off + len > MAX_SIZE)
                        off %= MAX_SIZE - len + 1;
                if (rd_blocks(o, h))
                        return;
        }
        pattern(source, len < sizeof source ? len : sizeof source);
        ssize_t r = iomem_pwrite(h->f, null ? NULL : source, len, off);
        if (null && len)
                EXPECT_DONE(r, -EINVAL);
        if (overflows(off, len))
                EXPECT_DONE(r, -EOVERFLOW);
        if (!len)
                EXPECT_DONE(r, 0);
        if (h->rdonly)
                EXPECT_DONE(r, -EROFS);
        if (off + len > o->data_end)
                EXPECT_DONE(r, -EFBIG);
        if (off + len > o->size && (o->seals & IOMEM_SEAL_GROW))
                EXPECT_DONE(r, -EPERM);
        EXPECT(r, len);
        if (off + len > o->size)
                set_size(o, off + len);
        memcpy(o->bytes + off, source, len);
}

static void op_truncate(struct object *o, struct handle *h)
{
        size_t size = pick();
        if (size <= o->data_end && size > MAX_SIZE)
                size %= MAX_SIZE + 1;
        bool locks = !h->rdonly && size <= o->data_end;
        if (locks && wr_blocks(o, h))
                return;
        int r = iomem_truncate(h->f, size);
        if (h->rdonly)
                EXPECT_DONE(r, -EROFS);
        if (size > o->data_end)
                EXPECT_DONE(r, -EFBIG);
        if (h->rd && !h->wr)
                EXPECT_DONE(r, -EDEADLK);
        if (size == o->size)
                EXPECT_DONE(r, 0);
        if (size < o->size && (o->seals & IOMEM_SEAL_SHRINK))
                EXPECT_DONE(r, -EPERM);
        if (size > o->size && (o->seals & IOMEM_SEAL_GROW))
                EXPECT_DONE(r, -EPERM);
        if (size < o->size && any_pin(o, size / PS * PS, round_up(o->size)))
                EXPECT_DONE(r, -EBUSY);
        EXPECT(r, 0);
        set_size(o, size);
}

static int find_piece(struct handle *h, const char *p, size_t n)
{
        for (int i = 0; i < h->nallocs; i++)
                if (p >= h->allocs[i].va && p + n <= h->allocs[i].va + h->allocs[i].len)
                        return i;
        return -1;
}

/* [p, p+n) stops being the caller's: keep what is left on either side. */
static void carve(struct handle *h, int i, char *p, size_t n)
{
        struct piece whole = h->allocs[i];
        h->allocs[i] = h->allocs[--h->nallocs];
        if (p > whole.va)
                h->allocs[h->nallocs++] = (struct piece){ whole.va, (size_t)(p - whole.va) };
        if (p + n < whole.va + whole.len)
                h->allocs[h->nallocs++] = (struct piece){ p + n, (size_t)(whole.va + whole.len - p - n) };
}

static void op_alloc(struct object *o, struct handle *h)
{
        uint8_t sel = u8();
        size_t len;
        switch (sel % 8) {
        case 0: len = 0; break;
        case 1: len = SIZE_MAX - (sel >> 3); break;
        case 2: len = o->alloc_max + 1; break;
        default: len = (size_t)u16() % (4 * PS) + 1; break;
        }
        bool room = h->nallocs < MAX_ALLOCS;
        if (len && len <= o->alloc_max && !h->rdonly && !room)
                return;
        void *p = (void *)&sel;
        int r = iomem_alloc(h->f, len, &p);
        if (!len) {
                EXPECT(r, 0);
                CHECK(p == NULL, "alloc of 0 bytes gave %p", p);
                return;
        }
        if (h->rdonly)
                EXPECT_DONE(r, -EROFS);
        if (len > o->alloc_max)
                EXPECT_DONE(r, -ENOMEM);
        EXPECT(r, 0);
        CHECK(((uintptr_t)p % PS) == 0, "%p is not page-aligned", p);
        memset(p, 0xa5, round_up(len)); /* the caller's, every page of it */
        h->allocs[h->nallocs++] = (struct piece){ p, round_up(len) };
}

static void op_free(struct object *o, struct handle *h)
{
        (void)o;
        uint8_t sel = u8();
        char *p = NULL;
        size_t len = 0;
        if (h->nallocs && sel % 4) {
                struct piece *a = &h->allocs[u8() % h->nallocs];
                p = a->va;
                len = a->len;
                if (sel & 0x10)
                        len -= PS - 1; /* rounds up to the same */
                if (sel & 0x20)
                        len += PS;   /* too long */
                if (sel & 0x40)
                        p += PS;     /* not its start */
        } else if (sel & 0x10) {
                p = (char *)source;
                len = PS;
        } else {
                len = sel & 0x20 ? PS : 0; /* NULL */
        }
        int r = iomem_free(h->f, p, len);
        if (!p && len)
                EXPECT_DONE(r, -EINVAL);
        if (!len)
                EXPECT_DONE(r, 0);
        int i = find_piece(h, p, round_up(len));
        if (i < 0 || h->allocs[i].va != p || h->allocs[i].len != round_up(len))
                EXPECT_DONE(r, -EINVAL);
        EXPECT(r, 0);
        h->allocs[i] = h->allocs[--h->nallocs];
}

static void op_gift(struct object *o, struct handle *h)
{
        struct iovec v[6];
        bool adopt[6] = { false };
        int ai[6];
        uint8_t sel = u8();
        size_t cnt = sel % 7, total = 0, src = 0;
        bool hostile = false, has_null = false, tot_over = false;
        for (size_t i = 0; i < cnt; i++) {
                uint8_t k = u8();
                ai[i] = -1;
                if (k % 4 == 0 && h->nallocs) {
                        /* From an alloc buffer: whole, or a part of it. */
                        int a = u8() % h->nallocs;
                        bool used = false;
                        for (size_t j = 0; j < i; j++)
                                used |= ai[j] == a;
                        if (used)
                                goto from_source;
                        struct piece *pc = &h->allocs[a];
                        size_t skip = (k & 0x10) ? (size_t)(u8() % (pc->len / PS)) * PS : 0;
                        size_t n = pc->len - skip;
                        if (k & 0x20)
                                n = (size_t)u16() % n + 1;
                        if (k & 0x40 && n > 1) {
                                skip += 1; /* unaligned: copied */
                                n -= 1;
                        }
                        v[i] = (struct iovec){ pc->va + skip, n };
                        ai[i] = a;
                } else if (k % 16 == 1) {
                        v[i] = (struct iovec){ NULL, (size_t)(k >> 4) };
                } else if (k % 16 == 2) {
                        /* Past the largest file of every backend. */
                        v[i] = (struct iovec){ source, SIZE_MAX / 2 + 1 + (k >> 4) };
                        hostile = true;
                } else {
                from_source:;
                        size_t n = (size_t)u16() % (2 * PS + 1);
                        if (src + n > sizeof source)
                                n = 0;
                        v[i] = (struct iovec){ source + src, n };
                        src += n;
                }
                /* The library stops at the first bad entry. */
                if (!has_null && !tot_over) {
                        if (v[i].iov_len && !v[i].iov_base)
                                has_null = true;
                        else if (overflows(total, v[i].iov_len))
                                tot_over = true;
                        else
                                total += v[i].iov_len;
                }
        }
        pattern(source, src);
        uint8_t how = u8();
        size_t off = pick(), len = total;
        if (how % 8 == 0)
                len = pick(); /* probably not the total */
        unsigned flags = how & 0x10 ? IOMEM_GIFT_NOCOPY : 0;
        if (how % 32 == 31)
                flags |= 0x40;
        bool null_iov = how % 64 == 63 && cnt;
        bool fails_early = null_iov || overflows(off, len) || !len || (flags & ~IOMEM_GIFT_NOCOPY) ||
                           h->rdonly || has_null || tot_over || total != len || off + len > o->data_end;
        (void)hostile;
        if (!fails_early) {
                if (off + len > MAX_SIZE) {
                        if (len > MAX_SIZE)
                                return;
                        off %= MAX_SIZE - len + 1;
                }
                if (how & 0x20)
                        off = off / PS * PS;
                if (wr_blocks(o, h))
                        return;
        }
        /* What the library adopts (API.md: page-aligned iomem_alloc memory
         * landing on a page boundary, whole pages unless it ends the file).
         * A dax: object copies everything, and frees the buffer of an
         * entry that starts on a page of one (iomem_gift.3). */
        size_t end = off + len, want_adopted = 0, want_copied = 0, dst = off;
        for (size_t i = 0; i < cnt && !fails_early; dst += v[i].iov_len, i++) {
                size_t n = v[i].iov_len;
                char *p = v[i].iov_base;
                if (!n)
                        continue;
                adopt[i] = ai[i] >= 0 && (uintptr_t)p % PS == 0 &&
                           (o->dax || (dst % PS == 0 && (n % PS == 0 || (dst + n == end && end >= o->size)))) &&
                           find_piece(h, p, round_up(n)) >= 0;
                if (adopt[i] && !o->dax)
                        want_adopted += n;
                else
                        want_copied += n;
        }
        /* The bytes given, read now: a dax: object frees the buffers. */
        static unsigned char given[MAX_PAGES * 4096];
        for (size_t i = 0, at = 0; i < cnt && !fails_early; at += v[i].iov_len, i++)
                if (v[i].iov_len)
                        memcpy(given + at, v[i].iov_base, v[i].iov_len);
        ssize_t r = iomem_gift(h->f, off, len, null_iov ? NULL : v, cnt, flags);
        if (null_iov)
                EXPECT_DONE(r, -EINVAL);
        if (overflows(off, len))
                EXPECT_DONE(r, -EOVERFLOW);
        if (!len)
                EXPECT_DONE(r, 0);
        if (flags & ~IOMEM_GIFT_NOCOPY)
                EXPECT_DONE(r, -EINVAL);
        if (h->rdonly)
                EXPECT_DONE(r, -EROFS);
        if (has_null)
                EXPECT_DONE(r, -EINVAL);
        if (tot_over)
                EXPECT_DONE(r, -EOVERFLOW);
        if (total != len)
                EXPECT_DONE(r, -EINVAL);
        if (end > o->data_end)
                EXPECT_DONE(r, -EFBIG);
        if (h->rd && !h->wr)
                EXPECT_DONE(r, -EDEADLK);
        if (end > o->size && (o->seals & IOMEM_SEAL_GROW))
                EXPECT_DONE(r, -EPERM);
        if (any_pin(o, off / PS * PS, round_up(end)))
                EXPECT_DONE(r, -EBUSY);
        if ((flags & IOMEM_GIFT_NOCOPY) && want_copied)
                EXPECT_DONE(r, -EXDEV);
        EXPECT(r, cnt);
        if (end > o->size)
                set_size(o, end);
        memcpy(o->bytes + off, given, len);
        o->adopted += want_adopted;
        o->copied += want_copied;
        /* Adopted memory is the file's now: forget it. */
        for (size_t i = 0; i < cnt; i++) {
                if (!adopt[i])
                        continue;
                size_t n = round_up(v[i].iov_len);
                int a = find_piece(h, v[i].iov_base, n);
                CHECK(a >= 0, "adopted entry %zu was not a buffer", i);
                carve(h, a, v[i].iov_base, n);
        }
}

static void op_lock(struct object *o, struct handle *h)
{
        uint8_t k = u8() % 3;
        if (k == 0) {
                if (rd_blocks(o, h))
                        return;
                EXPECT(iomem_rdlock(h->f), 0);
                h->rd++;
        } else if (k == 1) {
                if (!h->wr && !h->rd && wr_blocks(o, h))
                        return;
                int r = iomem_wrlock(h->f);
                if (!h->wr && h->rd)
                        EXPECT_DONE(r, -EDEADLK);
                EXPECT(r, 0);
                h->wr++;
        } else {
                int r = iomem_unlock(h->f);
                if (h->rd) {
                        if (--h->rd == 0)
                                h->held_r = 0;
                } else if (h->wr) {
                        if (--h->wr == 0)
                                h->held_w = 0;
                } else {
                        EXPECT_DONE(r, -EPERM);
                }
                EXPECT(r, 0);
        }
}

static void forget(struct handle *h)
{
        memset(h->pins, 0, sizeof h->pins);
        memset(h->pin_va, 0, sizeof h->pin_va);
        h->rd = h->wr = 0;
        h->held_r = h->held_w = h->loose = 0;
        h->nallocs = 0;
        h->open = false;
}

/* Attach handle h as another process would, from the other handle. */
static void op_reopen(struct object *o, struct handle *h)
{
        struct handle *g = other(o, h);
        bool rdonly = u8() & 1;
        if (!g->open)
                return;
        if (h->open) {
                EXPECT(iomem_close(&h->f), 0);
                forget(h);
        }
        int r;
        if (o->dax) {
                /* By name or by descriptor, through the same window. */
                struct iomem_opts *opts;
                EXPECT(iomem_opts_new(&opts), 0);
                EXPECT(iomem_opts_set_window(opts, o->w), 0);
                if (u8() & 1) {
                        r = iomem_open(&h->f, o->uri, rdonly ? IOMEM_RDONLY : IOMEM_RDWR, opts);
                } else {
                        int fd = open(o->uri + 4, (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
                        CHECK(fd >= 0, "reopen the dax file");
                        r = iomem_open_fd(&h->f, "dax", fd, rdonly ? IOMEM_RDONLY : IOMEM_RDWR, opts);
                        if (r)
                                close(fd);
                }
                iomem_opts_delete(&opts);
        } else if (!strcmp(o->backend, "memfd")) {
                char path[64];
                snprintf(path, sizeof path, "/proc/self/fd/%d", iomem_fd(g->f));
                int fd = open(path, (rdonly ? O_RDONLY : O_RDWR) | O_CLOEXEC);
                CHECK(fd >= 0, "reopen the memfd");
                r = iomem_open_fd(&h->f, "memfd", fd, rdonly ? IOMEM_RDONLY : IOMEM_RDWR, NULL);
                if (r)
                        close(fd);
        } else {
                r = iomem_open(&h->f, o->uri, rdonly ? IOMEM_RDONLY : IOMEM_RDWR, NULL);
        }
        EXPECT(r, 0);
        h->open = true;
        h->rdonly = rdonly;
}

static void op_misuse(struct object *o, struct handle *h)
{
        (void)o;
        /* NULL objects and arrays; the handle itself stays untouched. */
        struct iovec v;
        EXPECT(iomem_acquire(NULL, 0, PS), -EINVAL);
        EXPECT(iomem_borrow(h->f, 0, PS, NULL, 1), -EINVAL);
        EXPECT(iomem_bufcount(NULL, 0, 1), -EINVAL);
        EXPECT(iomem_gift(NULL, 0, 1, &v, 1, 0), -EINVAL);
        EXPECT(iomem_stat(h->f, NULL), -EINVAL);
        EXPECT(iomem_alloc(h->f, 1, NULL), -EINVAL);
        EXPECT(iomem_truncate(NULL, 0), -EINVAL);
        EXPECT(iomem_unlock(NULL), -EINVAL);
}

/* The dax: window's eviction policy, valid or not: whatever the policy,
 * the same requests fit (check_object and the -ENOBUFS predictions). */
static void op_window(struct object *o, struct handle *h)
{
        (void)h;
        int policy = (int)(u8() % 11) - 1;
        int r = iomem_window_set_policy(o->dax ? o->w : NULL, policy);
        if (!o->dax || policy < IOMEM_EVICT_DEFAULT || policy > IOMEM_EVICT_LRU)
                EXPECT_DONE(r, -EINVAL);
        EXPECT(r, 0);
}

typedef void (*op_fn)(struct object *o, struct handle *h);
static const struct {
        const char *name;
        op_fn fn;
} ops[] = {
        { "acquire", op_acquire }, { "release", op_release }, { "retrieve", op_retrieve },
        { "borrow", op_borrow },   { "pread", op_pread },     { "pwrite", op_pwrite },
        { "truncate", op_truncate }, { "alloc", op_alloc },   { "free", op_free },
        { "gift", op_gift },       { "lock", op_lock },       { "reopen", op_reopen },
        { "misuse", op_misuse },   { "window", op_window },
};
#define NOPS (sizeof ops / sizeof ops[0])

/* ---- leaks: descriptors and mappings ------------------------------------------ */

/* Descriptors of objects this harness made (memfd, shm or dax). All of them
 * are looked at, not counted: libFuzzer's own thread opens files now and
 * then. */
static int count_object_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        int n = 0;
        for (struct dirent *e; d && (e = readdir(d));) {
                char p[300], t[256];
                snprintf(p, sizeof p, "/proc/self/fd/%s", e->d_name);
                ssize_t len = readlink(p, t, sizeof t - 1);
                t[len > 0 ? len : 0] = 0;
                n += strstr(t, "iomem-fuzz") != NULL;
        }
        if (d)
                closedir(d);
        return n;
}

/* Mappings of objects this harness made (memfd, shm or dax). */
static int count_object_maps(void)
{
        FILE *fp = fopen("/proc/self/maps", "r");
        char line[512];
        int n = 0;
        while (fp && fgets(line, sizeof line, fp))
                n += strstr(line, "iomem-fuzz") != NULL;
        if (fp)
                fclose(fp);
        return n;
}

/* ---- one input --------------------------------------------------------------------- */

static void remove_dax_dir(void)
{
        rmdir(dax_dir);
}

/* wcfg, for dax: the window's chunk size, number of chunks and policy. */
static void open_object(struct object *o, const char *backend, unsigned seals, size_t size,
                        uint8_t wcfg)
{
        memset(o, 0, sizeof *o);
        o->backend = backend;
        o->seals = seals;
        o->dax = !strcmp(backend, "dax");
        o->data_end = o->dax ? DAX_END : DATA_END;
        o->alloc_max = o->dax ? DAX_ALLOC_MAX : DATA_END;
        struct iomem_opts *opts;
        EXPECT(iomem_opts_new(&opts), 0);
        EXPECT(iomem_opts_set_size(opts, size), 0);
        if (seals)
                EXPECT(iomem_opts_set_seals(opts, seals), 0);
        if (o->dax) {
                if (!dax_dir[0]) {
                        snprintf(dax_dir, sizeof dax_dir, "/dev/shm/iomem-fuzz-XXXXXX");
                        CHECK(mkdtemp(dax_dir), "mkdtemp %s", dax_dir);
                        atexit(remove_dax_dir);
                }
                snprintf(o->uri, sizeof o->uri, "dax:%s/file", dax_dir);
                o->chunk = PS << (wcfg & 3);
                o->nslots = 2 + (wcfg >> 2) % 14;
                EXPECT(iomem_window_new(&o->w, o->nslots * o->chunk, o->chunk), 0);
                EXPECT(iomem_window_set_policy(o->w, wcfg >> 6), 0);
                EXPECT(iomem_opts_set_window(opts, o->w), 0);
        } else {
                snprintf(o->uri, sizeof o->uri, "%s:iomem-fuzz-%d", backend, (int)getpid());
        }
        if (strcmp(backend, "memfd"))
                iomem_unlink(o->uri); /* left by a run that crashed */
        EXPECT(iomem_open(&o->h[0].f, o->uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, opts), 0);
        iomem_opts_delete(&opts);
        o->h[0].open = true;
        o->size = size;
}

static void close_object(struct object *o)
{
        for (int i = 0; i < 2; i++)
                if (o->h[i].open)
                        EXPECT(iomem_close(&o->h[i].f), 0);
        if (strcmp(o->backend, "memfd"))
                EXPECT(iomem_unlink(o->uri), 0);
        if (o->dax) {
                struct iomem_window_stat ws;
                EXPECT(iomem_window_stat(o->w, &ws), 0);
                EXPECT(ws.chunks_used, 0);
                EXPECT(iomem_window_delete(&o->w), 0);
        }
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const names[3] = { "memfd", "shm", "dax" };
        if (!PS) {
                PS = (size_t)sysconf(_SC_PAGESIZE);
                MAX_SIZE = MAX_PAGES * PS;
                if (PS != 4096) /* the model's arrays assume 4 KiB pages */
                        abort();
        }
        in = data;
        in_left = size;
        /* The first byte: which backends, seals and sizes (the second, with
         * dax: the window). */
        uint8_t cfg = u8();
        const char *only = getenv("IOMEM_FUZZ_BACKEND");
        trace = getenv("IOMEM_FUZZ_TRACE") != NULL;
        bool use[3];
        int inuse[3], nuse = 0;
        for (int b = 0; b < 3; b++)
                if ((use[b] = !only || !strcmp(only, names[b])))
                        inuse[nuse++] = b;
        if (!nuse) {
                fprintf(stderr, "IOMEM_FUZZ_BACKEND=%s: not memfd, shm or dax\n", only);
                abort();
        }
        unsigned seals = (cfg & 1 ? IOMEM_SEAL_SHRINK : 0) | (cfg & 2 ? IOMEM_SEAL_GROW : 0);
        if (use[0])
                open_object(&objs[0], "memfd", seals, (size_t)(cfg >> 2 & 7) * PS + (cfg >> 5), 0);
        if (use[1])
                open_object(&objs[1], "shm", 0, (size_t)(cfg >> 5) * PS, 0);
        if (use[2])
                open_object(&objs[2], "dax", 0, (size_t)(cfg >> 2 & 7) * PS + (cfg >> 5) * 1000, u8());
        for (int steps = 0; in_left && steps < 200; steps++) {
                uint8_t k = u8();
                struct object *o = &objs[inuse[((k & 1) | (k >> 6 & 2)) % nuse]];
                struct handle *h = &o->h[k >> 1 & 1];
                size_t i = (size_t)(k >> 2) % NOPS;
                if (!h->open && ops[i].fn != op_reopen)
                        h = other(o, h);
                data_end = o->data_end;
                if (trace)
                        fprintf(stderr, "%s: %s through handle %d, size %zu\n", o->backend,
                                ops[i].name, (int)(h - o->h), o->size);
                cur_op = ops[i].name;
                ops[i].fn(o, h);
                cur_op = "check after it";
                check_object(o);
        }
        for (int b = 0; b < 3; b++) {
                if (!use[b])
                        continue;
                cur_op = "plain descriptor";
                check_plain(&objs[b]);
        }
        /* Let go of every lock first so that closing cannot wait. */
        for (int b = 0; b < 3; b++) {
                if (!use[b])
                        continue;
                cur_op = "closing";
                close_object(&objs[b]);
        }
        cur_op = "leak check";
        EXPECT(count_object_fds(), 0);
        EXPECT(count_object_maps(), 0);
        return 0;
}
