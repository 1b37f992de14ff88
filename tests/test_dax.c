/* SPDX-License-Identifier: MIT */
/*
 * The dax: backend and its window: window arguments, reading a file four
 * times the window's size through borrow, -ENOBUFS when pins fill the
 * window, every eviction policy, holes, truncate over pins and under
 * mappings, pins against other processes (no SIGBUS), gift, the DAX flag,
 * the read lock and the next borrow keeping borrowed chunks, and mmap
 * failures injected through the syscall table. Files live in
 * directories made under /var/tmp (ext4 here) and /dev/shm (tmpfs).
 *
 * The VM tier (tests/vm) runs this suite again inside a guest with the
 * first directory on a real DAX filesystem and on a virtio-fs mount:
 * IOMEM_TEST_DAX_DIR replaces /var/tmp, and IOMEM_TEST_DAX_EXPECT=1 says
 * that files there are DAX.
 */
#include "config.h"
#include "common.h"

#include "internal.h"
#include "meta.h"
#include "syscalls.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))
#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

int iom_dax_mount_fstype(const char *mountinfo, dev_t dev, char *out, size_t n);

static char sentinel_byte;
#define SENTINEL ((void *)&sentinel_byte)

/* ---- files ----------------------------------------------------------------- */

static char dirs[2][64]; /* /var/tmp/..., /dev/shm/... */

static const char *path_in(int where, const char *tag)
{
        static __thread char buf[8][128];
        static __thread unsigned n;
        char *p = buf[n++ % 8];
        snprintf(p, 128, "%s/%s-%d", dirs[where], tag, (int)getpid());
        return p;
}

static const char *uri_of(const char *path)
{
        static __thread char buf[8][160];
        static __thread unsigned n;
        char *u = buf[n++ % 8];
        snprintf(u, 160, "dax:%s", path);
        return u;
}

/* The byte at offset x of a file filled with seed. */
static uint8_t pattern(uint64_t x, uint64_t seed)
{
        uint64_t w = ((x >> 3) + seed) * UINT64_C(0x9e3779b97f4a7c15);
        w ^= w >> 29;
        return (uint8_t)(w >> (8 * (x & 7)));
}

static bool write_pattern(int fd, uint64_t off, uint64_t len, uint64_t seed)
{
        static uint8_t buf[1 << 20];
        while (len) {
                size_t n = len < sizeof buf ? (size_t)len : sizeof buf;
                for (size_t i = 0; i < n; i++)
                        buf[i] = pattern(off + i, seed);
                if (pwrite(fd, buf, n, (off_t)off) != (ssize_t)n)
                        return false;
                off += n;
                len -= n;
        }
        return true;
}

static void fill(int fd, uint64_t off, uint64_t len, uint64_t seed)
{
        ck_assert(write_pattern(fd, off, len, seed));
}

/* A file of size bytes of pattern seed; returns its path. */
static const char *make_file(int where, const char *tag, uint64_t size, uint64_t seed)
{
        const char *p = path_in(where, tag);
        int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
        ck_assert_int_ge(fd, 0);
        fill(fd, 0, size, seed);
        close(fd);
        return p;
}

static bool matches(const void *mem, uint64_t off, size_t len, uint64_t seed)
{
        const uint8_t *p = mem;
        for (size_t i = 0; i < len; i++)
                if (p[i] != pattern(off + i, seed))
                        return false;
        return true;
}

static struct iomem_window *new_window(size_t size, size_t chunk)
{
        struct iomem_window *w = NULL;
        int r = iomem_window_new(&w, size, chunk);
        ck_assert_msg(r == 0, "window_new: %d %s", r, iomem_errormsg());
        return w;
}

static struct iomem *open_dax(const char *path, unsigned flags, struct iomem_window *w)
{
        struct iomem_opts *o = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_window(o, w), 0);
        struct iomem *f = NULL;
        int r = iomem_open(&f, uri_of(path), flags, o);
        ck_assert_msg(r == 0, "open %s: %d %s", path, r, iomem_errormsg());
        iomem_opts_delete(&o);
        return f;
}

static struct iomem_window_stat wstat(struct iomem_window *w)
{
        struct iomem_window_stat st;
        ck_assert_int_eq(iomem_window_stat(w, &st), 0);
        return st;
}

/* Borrow [off, off+len) and check every byte; returns the entries. */
static ssize_t borrow_check(struct iomem *f, uint64_t off, size_t len, uint64_t seed)
{
        struct iovec iov[16];
        ssize_t n = iomem_borrow(f, off, len, iov, 16);
        ck_assert_msg(n > 0, "borrow %llu+%zu: %zd %s", (unsigned long long)off, len, n,
                      iomem_errormsg());
        size_t total = 0;
        for (ssize_t i = 0; i < n; i++) {
                ck_assert_ptr_nonnull(iov[i].iov_base);
                ck_assert_msg(matches(iov[i].iov_base, off + total, iov[i].iov_len, seed),
                              "bytes at %llu differ", (unsigned long long)(off + total));
                total += iov[i].iov_len;
        }
        ck_assert_uint_eq(total, len);
        return n;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return (x > y) - (x < y);
}

/* ---- windows ----------------------------------------------------------------- */

START_TEST(window_arguments)
{
        struct iomem_window *w = SENTINEL;
        struct iomem_window_stat st;
        ck_assert_err(iomem_window_new(NULL, 16 * MIB, 2 * MIB), EINVAL);
        ck_assert_err(iomem_window_new(&w, 16 * MIB, 3 * MIB), EINVAL);   /* not a power of two */
        ck_assert_err(iomem_window_new(&w, 16 * MIB, PAGE / 2), EINVAL);  /* below the page size */
        ck_assert_err(iomem_window_new(&w, 0, 2 * MIB), EINVAL);
        ck_assert_err(iomem_window_new(&w, 15 * MIB, 2 * MIB), EINVAL);   /* not a multiple */
        ck_assert_err(iomem_window_new(&w, 16 * MIB, 0), EINVAL);
        ck_assert_err(iomem_window_new(&w, SIZE_MAX - PAGE + 1, PAGE), EINVAL);
        ck_assert_ptr_eq(w, SENTINEL);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "iomem_window_new: "));

        w = new_window(16 * MIB, 2 * MIB);
        st = wstat(w);
        ck_assert_uint_eq(st.size, 16 * MIB);
        ck_assert_uint_eq(st.chunk, 2 * MIB);
        ck_assert_uint_eq(st.chunks_used + st.chunks_pinned + st.hits + st.misses + st.evictions, 0);
        ck_assert_err(iomem_window_set_policy(NULL, IOMEM_EVICT_FIFO), EINVAL);
        ck_assert_err(iomem_window_set_policy(w, -1), EINVAL);
        ck_assert_err(iomem_window_set_policy(w, IOMEM_EVICT_LRU + 1), EINVAL);
        for (int p = IOMEM_EVICT_DEFAULT; p <= IOMEM_EVICT_LRU; p++)
                ck_assert_int_eq(iomem_window_set_policy(w, p), 0);
        ck_assert_err(iomem_window_stat(NULL, &st), EINVAL);
        ck_assert_err(iomem_window_stat(w, NULL), EINVAL);
        ck_assert_err(iomem_window_delete(NULL), EINVAL);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
        ck_assert_ptr_null(w);
        ck_assert_int_eq(iomem_window_delete(&w), 0);

        /* One page per chunk is fine too. */
        w = new_window(4 * PAGE, PAGE);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

START_TEST(window_delete_busy)
{
        const char *p = make_file(0, "busy", 4 * MIB, 1);
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDONLY, w), *g = open_dax(p, IOMEM_RDONLY, w);
        ck_assert_err(iomem_window_delete(&w), EBUSY);
        ck_assert_ptr_nonnull(w);
        iomem_close(&f);
        ck_assert_err(iomem_window_delete(&w), EBUSY);
        borrow_check(g, 0, 4 * MIB, 1);
        iomem_close(&g);
        ck_assert_uint_eq(wstat(w).chunks_used, 0); /* closing evicts */
        ck_assert_int_eq(iomem_window_delete(&w), 0);
        ck_assert_ptr_null(w);
}
END_TEST

/* ---- reading through a small window ---------------------------------------------- */

/* 64 MiB through 16 MiB in 2 MiB chunks: every byte by borrow, pieces
 * of random size in random order. */
START_TEST(random_borrow_covers_file)
{
        uint64_t size = 64 * MIB, seed = 7;
        const char *p = make_file(0, "random", size, seed);
        struct iomem_window *w = new_window(16 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDONLY, w);
        enum { PIECES = 4096 };
        static uint64_t cut[PIECES + 1];
        for (size_t i = 1; i < PIECES; i++)
                cut[i] = rnd() % size;
        cut[0] = 0;
        cut[PIECES] = size;
        qsort(cut, PIECES + 1, sizeof cut[0], cmp_u64);
        static uint32_t order[PIECES];
        for (uint32_t i = 0; i < PIECES; i++)
                order[i] = i;
        for (uint32_t i = PIECES - 1; i > 0; i--) {
                uint32_t j = (uint32_t)(rnd() % (i + 1)), t = order[i];
                order[i] = order[j];
                order[j] = t;
        }
        uint64_t covered = 0;
        for (size_t k = 0; k < PIECES; k++) {
                uint64_t a = cut[order[k]], b = cut[order[k] + 1];
                if (a == b)
                        continue;
                borrow_check(f, a, b - a, seed);
                covered += b - a;
        }
        ck_assert_uint_eq(covered, size);
        struct iomem_window_stat st = wstat(w);
        ck_assert_uint_le(st.chunks_used, 8);
        ck_assert_uint_gt(st.misses, 32);
        ck_assert_uint_gt(st.evictions, 0);
        ck_assert_uint_eq(st.misses - st.evictions, st.chunks_used);
        ck_assert_uint_eq(st.chunks_pinned, 0);
        /* A range over several chunks: one entry per run of adjacent slots. */
        struct iovec iov[8];
        ssize_t n = iomem_borrow(f, 3 * MIB, 10 * MIB, iov, 8);
        ck_assert_int_ge(n, 1);
        ck_assert_int_le(n, 6);
        ck_assert_int_le(n, iomem_bufcount(f, 3 * MIB, 10 * MIB));
        ck_assert_int_eq(iomem_bufcount(f, size, 1), 0);
        ck_assert_int_eq(iomem_borrow(f, size, 1, iov, 8), 0);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* ---- pins and -ENOBUFS ---------------------------------------------------------------- */

static void enobufs_after_pinning(size_t window, size_t ask_chunks)
{
        uint64_t size = 64 * MIB, seed = 11;
        const char *p = make_file(0, "pin", size, seed);
        struct iomem_window *w = new_window(window, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDWR, w);
        ck_assert_int_eq(iomem_acquire(f, 0, 16 * MIB), (ssize_t)(16 * MIB)); /* 8 chunks */
        struct iovec pinned[8], again[8];
        ssize_t np = iomem_retrieve(f, 0, 16 * MIB, pinned, 8);
        ck_assert_int_ge(np, 1);
        ck_assert_int_le(np, 8);
        struct iomem_window_stat before = wstat(w);
        ck_assert_uint_eq(before.chunks_pinned, 8);
        struct iomem_stat fst;
        ck_assert_int_eq(iomem_stat(f, &fst), 0);
        ck_assert_uint_eq(fst.acquired, 16 * MIB);

        /* ask_chunks is 5 more than remain */
        size_t off = 32 * MIB, len = ask_chunks * 2 * MIB;
        struct iovec iov[16];
        ck_assert_err(iomem_acquire(f, off, len), ENOBUFS);
        ck_assert_err(iomem_borrow(f, off, len, iov, 16), ENOBUFS);
        struct iomem_window_stat after = wstat(w);
        ck_assert_mem_eq(&after, &before, sizeof before);
        ck_assert_int_eq(iomem_stat(f, &fst), 0);
        ck_assert_uint_eq(fst.acquired, 16 * MIB);
        ck_assert_err(iomem_release(f, off, 2 * MIB), EINVAL); /* nothing got pinned */
        /* The pinned chunks: same addresses, same bytes. */
        ck_assert_int_eq(iomem_retrieve(f, 0, 16 * MIB, again, 8), np);
        size_t at = 0;
        for (ssize_t i = 0; i < np; i++) {
                ck_assert_ptr_eq(again[i].iov_base, pinned[i].iov_base);
                ck_assert_uint_eq(again[i].iov_len, pinned[i].iov_len);
                ck_assert(matches(pinned[i].iov_base, at, pinned[i].iov_len, seed));
                at += pinned[i].iov_len;
        }
        /* Unpinned, it fits. */
        ck_assert_int_eq(iomem_release(f, 0, 16 * MIB), 0);
        ck_assert_uint_eq(wstat(w).chunks_pinned, 0);
        if (len <= window)
                ck_assert_int_eq(iomem_acquire(f, off, len), (ssize_t)len);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}

START_TEST(enobufs_window_full_of_pins)
{
        enobufs_after_pinning(16 * MIB, 5); /* 8 slots, all pinned */
}
END_TEST

START_TEST(enobufs_five_more_than_remain)
{
        enobufs_after_pinning(32 * MIB, 13); /* 16 slots, 8 pinned, 8 remain */
}
END_TEST

/* WILLNEED maps chunks ahead, as far as the window has room, and evicts no
 * pinned chunk; the borrow that follows finds them (hits, no misses). */
START_TEST(willneed_maps_chunks_ahead_within_the_window)
{
        const char *p = make_file(1, "ahead", 8 * 2 * MIB, 11);
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB); /* 4 chunks */
        struct iomem *f = open_dax(p, IOMEM_RDWR, w);
        ck_assert_int_eq(iomem_acquire(f, 0, PAGE), (ssize_t)PAGE);
        struct iovec pinned, v;
        ck_assert_int_eq(iomem_retrieve(f, 0, PAGE, &pinned, 1), 1);
        struct iomem_window_stat before = wstat(w);
        ck_assert_uint_eq(before.chunks_used, 1);
        ck_assert_int_eq(iomem_advise(f, 2 * MIB, 14 * MIB, MADV_WILLNEED), 0);
        struct iomem_window_stat after = wstat(w);
        ck_assert_uint_eq(after.chunks_used, 4);   /* the room there was */
        ck_assert_uint_eq(after.chunks_pinned, 1);
        ck_assert_uint_eq(after.misses, before.misses); /* advice is no access */
        ck_assert_uint_eq(after.hits, before.hits);
        /* Over the pinned chunk too: it takes no room, nothing moves. */
        ck_assert_int_eq(iomem_advise(f, 0, 16 * MIB, MADV_WILLNEED), 0);
        ck_assert_uint_eq(wstat(w).chunks_used, 4);
        ck_assert_uint_eq(wstat(w).evictions, after.evictions);
        ck_assert_int_eq(iomem_retrieve(f, 0, PAGE, &v, 1), 1);
        ck_assert_ptr_eq(v.iov_base, pinned.iov_base);
        ck_assert(matches(v.iov_base, 0, PAGE, 11));
        /* The chunks mapped ahead: borrowed without a miss. */
        ck_assert_int_eq(iomem_borrow(f, 2 * MIB, 6 * MIB, &v, 1), 1);
        ck_assert_uint_eq(wstat(w).misses, after.misses);
        ck_assert(matches(v.iov_base, 2 * MIB, 6 * MIB, 11));
        /* Other advice touches what is mapped only. */
        ck_assert_int_eq(iomem_advise(f, 0, 16 * MIB, MADV_DONTNEED), 0);
        if (IOMEM_PLATFORM_LINUX) /* MADV_PAGEOUT: Linux's */
                ck_assert_int_eq(iomem_advise(f, 0, 16 * MIB, MADV_PAGEOUT), 0);
        ck_assert_uint_eq(wstat(w).chunks_used, 4);
        ck_assert(matches(pinned.iov_base, 0, PAGE, 11));
        ck_assert_int_eq(iomem_release(f, 0, PAGE), 0);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
        unlink(p);
}
END_TEST

START_TEST(pins_nest_and_release_in_parts)
{
        const char *p = make_file(1, "nest", 8 * MIB, 3);
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDWR, w);
        ck_assert_int_eq(iomem_acquire(f, 0, 4 * MIB), (ssize_t)(4 * MIB));
        ck_assert_int_eq(iomem_acquire(f, MIB, MIB), (ssize_t)MIB); /* nested */
        ck_assert_err(iomem_acquire(f, 1, PAGE), EINVAL);
        ck_assert_int_eq(iomem_release(f, 0, 2 * MIB), 0);
        ck_assert_uint_eq(wstat(w).chunks_pinned, 2); /* [1, 2) MiB is still pinned */
        ck_assert_int_eq(iomem_release(f, MIB, MIB), 0);
        ck_assert_uint_eq(wstat(w).chunks_pinned, 1);
        ck_assert_err(iomem_release(f, 0, PAGE), EINVAL);
        ck_assert_int_eq(iomem_release(f, 2 * MIB, 2 * MIB), 0);
        ck_assert_uint_eq(wstat(w).chunks_pinned, 0);
        /* Clamped to the file; nothing past its end. */
        ck_assert_int_eq(iomem_acquire(f, 6 * MIB, 4 * MIB), (ssize_t)(2 * MIB));
        ck_assert_int_eq(iomem_acquire(f, 6 * MIB, 4 * MIB), (ssize_t)(2 * MIB)); /* nested */
        ck_assert_int_eq(iomem_acquire(f, 8 * MIB, PAGE), 0);
        ck_assert_int_eq(iomem_release(f, 6 * MIB, 2 * MIB), 0);
        struct iovec iov[2];
        ck_assert_err(iomem_retrieve(f, 0, PAGE, iov, 2), ENOENT);
        /* Writes through retrieve reach the file. */
        ck_assert_int_eq(iomem_retrieve(f, 6 * MIB + 5, 10, iov, 2), 1);
        memcpy(iov[0].iov_base, "0123456789", 10);
        char buf[10];
        ck_assert_int_eq(iomem_pread(f, buf, 10, 6 * MIB + 5), 10);
        ck_assert_mem_eq(buf, "0123456789", 10);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* ---- policies ------------------------------------------------------------------------- */

/* Loop over 12 chunks through 8 slots, then a skewed stream; returns the
 * hit ratio of the loop after its first pass. */
static double loop_hits(int policy)
{
        uint64_t seed = 21;
        const char *p = make_file(1, "policy", 24 * MIB, seed);
        struct iomem_window *w = new_window(16 * MIB, 2 * MIB);
        ck_assert_int_eq(iomem_window_set_policy(w, policy), 0);
        struct iomem *f = open_dax(p, IOMEM_RDONLY, w);
        for (int c = 0; c < 12; c++)
                borrow_check(f, (uint64_t)c * 2 * MIB + 100, 100, seed);
        struct iomem_window_stat s0 = wstat(w);
        for (int pass = 0; pass < 20; pass++)
                for (int c = 0; c < 12; c++)
                        borrow_check(f, (uint64_t)c * 2 * MIB + 4096 * (uint64_t)pass, 64, seed);
        struct iomem_window_stat s1 = wstat(w);
        ck_assert_uint_eq((s1.hits - s0.hits) + (s1.misses - s0.misses), 240);
        ck_assert_uint_le(s1.chunks_used, 8);
        ck_assert_uint_eq(s1.misses - s1.evictions, s1.chunks_used);
        /* Switching policies keeps what is mapped. */
        ck_assert_int_eq(iomem_window_set_policy(w, (policy + 1) % (IOMEM_EVICT_LRU + 1)), 0);
        ck_assert_uint_eq(wstat(w).chunks_used, s1.chunks_used);
        for (int i = 0; i < 200; i++) {
                uint64_t c = rnd() % 12;
                c = c * c / 12; /* low chunks more often */
                borrow_check(f, c * 2 * MIB + (rnd() % (2 * MIB - 64)), 64, seed);
        }
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
        return (double)(s1.hits - s0.hits) / 240.0;
}

START_TEST(every_policy)
{
        double fifo = loop_hits(IOMEM_EVICT_FIFO), lifo = loop_hits(IOMEM_EVICT_LIFO);
        double clock = loop_hits(IOMEM_EVICT_CLOCK), def = loop_hits(IOMEM_EVICT_DEFAULT);
        double lru = loop_hits(IOMEM_EVICT_LRU), lirs = loop_hits(IOMEM_EVICT_LIRS);
        /* ARC, S3-FIFO and SIEVE keep the window's contract (loop_hits'
         * checks); what they hit on a loop is test_policy's to check. */
        loop_hits(IOMEM_EVICT_ARC);
        loop_hits(IOMEM_EVICT_S3FIFO);
        loop_hits(IOMEM_EVICT_SIEVE);
        /* A loop larger than the window: FIFO, CLOCK and LRU always evict
         * the chunk needed next; LIFO and LIRS keep most of the loop, and
         * the default follows LIRS there. */
        ck_assert_msg(fifo == 0 && clock == 0 && lru == 0, "FIFO %.2f CLOCK %.2f LRU %.2f", fifo,
                      clock, lru);
        ck_assert_msg(lifo > 0.5 && lirs > 0.5 && def > 0.5, "LIFO %.2f LIRS %.2f default %.2f",
                      lifo, lirs, def);
}
END_TEST

/* ---- holes, truncate, gift ---------------------------------------------------------- */

static void holes_come_back_null(int where)
{
        const char *p = path_in(where, "sparse");
        int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 8 * MIB), 0);
        fill(fd, 2 * MIB + 100, 4900, 5);
        fill(fd, 6 * MIB, PAGE, 5);
        close(fd);
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDONLY, w);
        struct iovec iov[8];
        ssize_t n = iomem_borrow(f, 0, 8 * MIB, iov, 8);
        ck_assert_int_eq(n, 5);
        ck_assert_int_le(n, iomem_bufcount(f, 0, 8 * MIB));
        ck_assert_ptr_null(iov[0].iov_base);
        ck_assert_uint_eq(iov[0].iov_len, 2 * MIB);
        ck_assert_ptr_nonnull(iov[1].iov_base);
        ck_assert_uint_eq(iov[1].iov_len, iom_round_up(5000, PAGE));
        ck_assert(matches((char *)iov[1].iov_base + 100, 2 * MIB + 100, 4900, 5));
        ck_assert_ptr_null(iov[2].iov_base);
        ck_assert_ptr_nonnull(iov[3].iov_base);
        ck_assert_uint_eq(iov[3].iov_len, PAGE);
        ck_assert(matches(iov[3].iov_base, 6 * MIB, PAGE, 5));
        ck_assert_ptr_null(iov[4].iov_base);
        size_t total = 0;
        for (int i = 0; i < 5; i++)
                total += iov[i].iov_len;
        ck_assert_uint_eq(total, 8 * MIB);
        /* Only the chunks with data were mapped. */
        ck_assert_uint_eq(wstat(w).chunks_used, 2);
        /* All hole: nothing mapped. */
        ck_assert_int_eq(iomem_borrow(f, 4 * MIB, MIB, iov, 8), 1);
        ck_assert_ptr_null(iov[0].iov_base);
        ck_assert_uint_eq(iov[0].iov_len, MIB);
        ck_assert_uint_eq(wstat(w).chunks_used, 2);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}

START_TEST(holes_on_ext4)
{
        holes_come_back_null(0);
}
END_TEST

START_TEST(holes_on_tmpfs)
{
        holes_come_back_null(1);
}
END_TEST

/* Borrow remembers the data run it found (SEEK_HOLE walks a dense tmpfs
 * file to its end). Another program punching a hole in that run then shows
 * zeros where it punched, and a hole filled later is data at once. */
START_TEST(data_runs_stay_right_when_holes_change)
{
        uint64_t seed = 21;
        const char *p = make_file(1, "punch", 8 * MIB, seed);
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDWR, w);
        borrow_check(f, 0, 8 * MIB, seed);
        int fd = open(p, O_RDWR);
        ck_assert_int_ge(fd, 0);
        for (uint64_t at = 3 * MIB; at < 7 * MIB; at += 2 * MIB)
                ck_assert_int_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                           (off_t)at, MIB), 0);
        struct iovec iov[8];
        ssize_t n = iomem_borrow(f, 2 * MIB, 3 * MIB, iov, 8);
        ck_assert_int_gt(n, 0);
        uint64_t at = 2 * MIB;
        for (ssize_t i = 0; i < n; at += iov[i].iov_len, i++) {
                for (size_t k = 0; k < iov[i].iov_len; k += PAGE) {
                        uint64_t pos = at + k;
                        const char *b = iov[i].iov_base ? (char *)iov[i].iov_base + k : NULL;
                        if (pos >= 3 * MIB && pos < 4 * MIB)
                                ck_assert_msg(!b || (!b[0] && !memcmp(b, b + 1, PAGE - 1)),
                                              "punched page at %llu is not zero",
                                              (unsigned long long)pos);
                        else
                                ck_assert_msg(b && matches(b, pos, PAGE, seed),
                                              "page at %llu differs", (unsigned long long)pos);
                }
        }
        ck_assert_uint_eq(at, 5 * MIB);
        /* A new handle sees the other hole (which no mapping has read, and
         * so filled with a page of zeros) as one; once it is filled from
         * outside, the next borrow finds the bytes. */
        struct iomem *g = open_dax(p, IOMEM_RDWR, w);
        ck_assert_int_eq(iomem_borrow(g, 5 * MIB, MIB, iov, 8), 1);
        ck_assert_ptr_null(iov[0].iov_base);
        fill(fd, 3 * MIB, 4 * MIB, seed);
        close(fd);
        borrow_check(g, 0, 8 * MIB, seed);
        borrow_check(f, 0, 8 * MIB, seed);
        /* Cut and grown back through the library, the bytes past the cut
         * are a hole again for every handle. */
        ck_assert_int_eq(iomem_truncate(g, 2 * MIB), 0);
        ck_assert_int_eq(iomem_truncate(g, 8 * MIB), 0);
        for (int i = 0; i < 2; i++) {
                ck_assert_int_eq(iomem_borrow(i ? g : f, 4 * MIB, MIB, iov, 8), 1);
                ck_assert_ptr_null(iov[0].iov_base);
        }
        iomem_close(&g);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

START_TEST(truncate_over_pins_is_busy)
{
        const char *p = make_file(0, "trunc", 8 * MIB, 9);
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDWR, w), *g = open_dax(p, IOMEM_RDWR, w);
        ck_assert_int_eq(iomem_acquire(f, 2 * MIB, 2 * MIB), (ssize_t)(2 * MIB));
        ck_assert_err(iomem_truncate(f, 3 * MIB), EBUSY);
        ck_assert_err(iomem_truncate(f, 3 * MIB + 1), EBUSY); /* would cut a pinned page */
        ck_assert_err(iomem_truncate(g, 0), EBUSY);          /* pins are every handle's */
        ck_assert_err(iomem_gift(g, 3 * MIB, 4, &(struct iovec){ "abcd", 4 }, 1, 0), EBUSY);
        ck_assert_int_eq(iomem_truncate(f, 4 * MIB), 0);     /* past the pins */
        ck_assert_int_eq(iomem_truncate(f, 16 * MIB), 0);    /* growing */
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(g, &st), 0);
        ck_assert_uint_eq(st.size, 16 * MIB);
        ck_assert_int_eq(iomem_release(f, 2 * MIB, 2 * MIB), 0);
        ck_assert_int_eq(iomem_truncate(g, MIB), 0);
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.size, MIB);
        iomem_close(&f);
        iomem_close(&g);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* In a child: open the file by another name (a hard link: the same
 * device and inode) and try to cut or replace what the parent pins. */
static int cut_from_another_process(const char *alias, pid_t pinner)
{
        struct iomem *g = NULL;
        if (iomem_open(&g, uri_of(alias), IOMEM_RDWR, NULL))
                return 1;
        char who[32];
        snprintf(who, sizeof who, "process %d", (int)pinner);
        if (iomem_truncate(g, 0) != -EBUSY || !strstr(iomem_errormsg(), who))
                return 2;
        if (iomem_truncate(g, 3 * MIB) != -EBUSY)
                return 3;
        if (iomem_gift(g, 3 * MIB, 4, &(struct iovec){ "abcd", 4 }, 1, 0) != -EBUSY)
                return 4;
        struct iomem_stat st;
        if (iomem_stat(g, &st) || st.pinned != 2 * MIB || st.acquired != 0 || st.nholders != 1 ||
            st.holders[0] != pinner)
                return 5;
        if (iomem_truncate(g, 4 * MIB)) /* past the pins */
                return 6;
        iomem_close(&g);
        return 0;
}

/* Pins are the file's, whatever name or process reaches it: another
 * process cannot cut or replace pinned pages (-EBUSY naming the pinner),
 * and the pinner reads them after, with no SIGBUS. Once released, the
 * other process may cut. */
START_TEST(pins_hold_against_other_processes)
{
        uint64_t seed = 43;
        const char *p = make_file(0, "xproc", 8 * MIB, seed);
        char alias[140];
        snprintf(alias, sizeof alias, "%s.link", p);
        ck_assert_int_eq(link(p, alias), 0);
        test_fail_on_sigbus();
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDWR, w);
        ck_assert_int_eq(iomem_acquire(f, 2 * MIB, 2 * MIB), (ssize_t)(2 * MIB));
        struct iovec iov[2];
        ck_assert_int_eq(iomem_retrieve(f, 2 * MIB, 2 * MIB, iov, 2), 1);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(cut_from_another_process(alias, getppid()));
        ck_assert_int_eq(test_wait(pid), 0);
        ck_assert(matches(iov[0].iov_base, 2 * MIB, 2 * MIB, seed));
        ((char *)iov[0].iov_base)[0] = 1; /* writable too */
        ck_assert_int_eq(iomem_release(f, 2 * MIB, 2 * MIB), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct iomem *g = NULL;
                _exit(iomem_open(&g, uri_of(alias), IOMEM_RDWR, NULL) || iomem_truncate(g, 0));
        }
        ck_assert_int_eq(test_wait(pid), 0);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.size, 0);
        iomem_close(&f);
        ck_assert_int_eq(unlink(alias), 0);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* The file's shared state: named after its device and inode, readable and
 * writable by each class of user that may read the file, whatever the
 * umask, and gone with the last handle. */
static void sidecar_path(const char *file, char *out, size_t n)
{
        struct stat st;
        unsigned maj, min;
        ck_assert_int_eq(stat(file, &st), 0);
        iom_dev_split(st.st_dev, &maj, &min); /* as the platform layer names devices */
        snprintf(out, n, "/dev/shm/iomem-dax.%u.%u.%llu.iomem", maj, min, (unsigned long long)st.st_ino);
}

START_TEST(the_shared_state_comes_and_goes_with_the_handles)
{
        const char *p = make_file(0, "sidecar", MIB, 3);
        ck_assert_int_eq(chmod(p, 0640), 0);
        char side[128];
        sidecar_path(p, side, sizeof side);
        mode_t old = umask(077);
        struct iomem *f = open_dax(p, IOMEM_RDONLY, NULL), *g = open_dax(p, IOMEM_RDONLY, NULL);
        umask(old);
        struct stat st;
        ck_assert_int_eq(stat(side, &st), 0);
        ck_assert_uint_eq(st.st_mode & 0777, 0660);
        iomem_close(&f);
        ck_assert_int_eq(stat(side, &st), 0);
        iomem_close(&g);
        ck_assert_int_eq(stat(side, &st), -1);
        ck_assert_int_eq(errno, ENOENT);
}
END_TEST

/* Pins are recorded to 16 TiB (the shared state's page numbers): past it
 * a sparse file's pages can be borrowed but not acquired. */
START_TEST(pins_past_16_tib_are_efbig)
{
        const char *p = make_file(1, "huge", MIB, 11);
        struct iomem *f = open_dax(p, IOMEM_RDWR, NULL);
        const size_t tib16 = (size_t)1 << 44;
        ck_assert_int_eq(iomem_truncate(f, tib16 + 4 * MIB), 0);
        ck_assert_err(iomem_acquire(f, tib16, PAGE), EFBIG);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "shared state"));
        ck_assert_err(iomem_acquire(f, tib16 - PAGE, 2 * PAGE), EFBIG);
        ck_assert_int_eq(iomem_acquire(f, tib16 - PAGE, PAGE), (ssize_t)PAGE);
        struct iovec iov[2];
        ck_assert_int_eq(iomem_borrow(f, tib16, PAGE, iov, 2), 1); /* a hole */
        ck_assert_int_eq(iomem_release(f, tib16 - PAGE, PAGE), 0);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.acquired, 0);
        ck_assert_int_eq(iomem_truncate(f, MIB), 0);
        iomem_close(&f);
}
END_TEST

/* A process that died left the shared state of a file broken, and the
 * file's inode went to a new file: opening the new one replaces it. */
START_TEST(a_broken_shared_state_is_made_anew)
{
        const char *p = make_file(0, "broken", MIB, 7);
        char side[128];
        sidecar_path(p, side, sizeof side);
        struct iomem *f = open_dax(p, IOMEM_RDWR, NULL);
        struct iom_meta m;
        int fd = open(side, O_RDONLY);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(pread(fd, &m, sizeof m, 0), (ssize_t)sizeof m);
        close(fd);
        iomem_close(&f);
        m.extents.count = 12345; /* a table that does not hold together */
        fd = open(side, O_RDWR | O_CREAT | O_EXCL, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t)IOM_META_SPAN), 0);
        ck_assert_int_eq(pwrite(fd, &m, sizeof m, 0), (ssize_t)sizeof m);
        close(fd);
        f = open_dax(p, IOMEM_RDWR, NULL);
        ck_assert_int_eq(iomem_acquire(f, 0, PAGE), (ssize_t)PAGE);
        ck_assert_err(iomem_truncate(f, 0), EBUSY);
        ck_assert_int_eq(iomem_release(f, 0, PAGE), 0);
        iomem_close(&f);
        struct stat st;
        ck_assert_int_eq(stat(side, &st), -1);
        /* One made by another version of the library may be in use: it is
         * left alone, and the open says which it is. */
        m.extents.count = 0;
        m.version++;
        fd = open(side, O_RDWR | O_CREAT | O_EXCL, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t)IOM_META_SPAN), 0);
        ck_assert_int_eq(pwrite(fd, &m, sizeof m, 0), (ssize_t)sizeof m);
        close(fd);
        ck_assert_err(iomem_open(&f, uri_of(p), IOMEM_RDWR, NULL), EBADMSG);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "another version"));
        ck_assert_int_eq(stat(side, &st), 0);
        ck_assert_int_eq(unlink(side), 0);
}
END_TEST

/* A child's inherited handle attaches afresh: the parent may have closed
 * (and so removed the shared state) before the child's first call; the
 * child's pins are then seen by a process that opens the file after. */
START_TEST(a_child_attaches_afresh_after_the_parent_closed)
{
        const char *p = make_file(0, "orphan", 4 * MIB, 5);
        struct iomem *f = open_dax(p, IOMEM_RDWR, NULL);
        int go[2], done[2];
        ck_assert_int_eq(pipe(go), 0);
        ck_assert_int_eq(pipe(done), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char c;
                if (read(go[0], &c, 1) != 1 || iomem_acquire(f, 0, 2 * MIB) != (ssize_t)(2 * MIB) ||
                    write(done[1], "p", 1) != 1 || read(go[0], &c, 1) != 1)
                        _exit(1);
                _exit(iomem_release(f, 0, 2 * MIB) ? 2 : 0);
        }
        iomem_close(&f); /* the last handle here: the shared state goes */
        ck_assert_int_eq(write(go[1], "a", 1), 1);
        char c;
        ck_assert_int_eq(read(done[0], &c, 1), 1);
        struct iomem *g = open_dax(p, IOMEM_RDWR, NULL);
        ck_assert_err(iomem_truncate(g, 0), EBUSY);
        ck_assert_int_eq(write(go[1], "r", 1), 1);
        ck_assert_int_eq(test_wait(pid), 0);
        ck_assert_int_eq(iomem_truncate(g, 0), 0);
        iomem_close(&g);
        close(go[0]), close(go[1]), close(done[0]), close(done[1]);
}
END_TEST

/* Another program truncates the file under mapped chunks: the next borrow
 * that is no repeat of chunks its thread holds from its last borrow sees
 * the new size and hands out no page past it, nor does retrieve after. */
START_TEST(external_truncate_then_borrow)
{
        uint64_t seed = 13;
        const char *p = make_file(0, "shrink", 8 * MIB, seed);
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDWR, w);
        ck_assert_int_eq(iomem_rdlock(f), 0); /* held until the unlock, not the next borrow */
        borrow_check(f, 0, 8 * MIB, seed);
        ck_assert_int_eq(iomem_unlock(f), 0);
        ck_assert_int_eq(iomem_acquire(f, 4 * MIB, 4 * MIB), (ssize_t)(4 * MIB));
        ck_assert_int_eq(truncate(p, 5 * MIB + 10), 0);
        struct iovec iov[8];
        ck_assert_int_eq(iomem_borrow(f, 6 * MIB, MIB, iov, 8), 0);
        ck_assert_int_eq(iomem_bufcount(f, 6 * MIB, MIB), 0);
        ssize_t n = iomem_borrow(f, 4 * MIB, 4 * MIB, iov, 8);
        ck_assert_int_eq(n, 1);
        ck_assert_uint_eq(iov[0].iov_len, MIB + 10);
        ck_assert(matches(iov[0].iov_base, 4 * MIB, MIB + 10, seed));
        /* retrieve stops at the last page too */
        n = iomem_retrieve(f, 4 * MIB, 4 * MIB, iov, 8);
        ck_assert_int_eq(n, 1);
        ck_assert_uint_eq(iov[0].iov_len, MIB + PAGE);
        volatile char *last = (char *)iov[0].iov_base + MIB + PAGE - 1;
        ck_assert_int_eq(*last, 0);
        char buf[16];
        ck_assert_int_eq(iomem_pread(f, buf, 16, 5 * MIB + 4), 6);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

START_TEST(gift_copies)
{
        const char *p = make_file(1, "gift", 2 * MIB, 17);
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDWR, w);
        borrow_check(f, 0, 2 * MIB, 17); /* mapped before: the gift shows through */
        char mine[3000];
        memset(mine, 'g', sizeof mine);
        struct iovec two[2] = { { mine, 1000 }, { mine + 1000, 2000 } };
        ck_assert_int_eq(iomem_gift(f, 100, 3000, two, 2, 0), 2);
        ck_assert_err(iomem_gift(f, 100, 3000, two, 2, IOMEM_GIFT_NOCOPY), EXDEV);
        struct iovec iov[4];
        ck_assert_int_eq(iomem_borrow(f, 0, 4096, iov, 4), 1);
        ck_assert(matches(iov[0].iov_base, 0, 100, 17));
        for (int i = 100; i < 3100; i++)
                ck_assert_int_eq(((char *)iov[0].iov_base)[i], 'g');
        ck_assert(matches((char *)iov[0].iov_base + 3100, 3100, 996, 17));
        /* From iomem_alloc: copied as well, and the buffer is the file's now. */
        void *buf = NULL;
        ck_assert_int_eq(iomem_alloc(f, 3 * PAGE, &buf), 0);
        memset(buf, 'a', 3 * PAGE);
        ck_assert_int_eq(iomem_gift(f, 3 * MIB, PAGE, &(struct iovec){ (char *)buf + PAGE, PAGE }, 1, 0), 1);
        ck_assert_err(iomem_free(f, buf, 3 * PAGE), EINVAL);
        ck_assert_int_eq(iomem_free(f, buf, PAGE), 0);                      /* the head */
        ck_assert_int_eq(iomem_free(f, (char *)buf + 2 * PAGE, PAGE), 0); /* the tail */
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.size, 3 * MIB + PAGE);  /* it grew */
        ck_assert_uint_eq(st.gift_copied, 3000 + PAGE);
        ck_assert_uint_eq(st.gift_adopted, 0);
        ck_assert_int_eq(iomem_borrow(f, 3 * MIB, PAGE, iov, 4), 1);
        ck_assert_int_eq(((char *)iov[0].iov_base)[PAGE - 1], 'a');
        ck_assert_int_eq(iomem_borrow(f, 2 * MIB, MIB, iov, 4), 1); /* grown bytes: a hole */
        if (IOMEM_PLATFORM_LINUX) /* where the platform sees holes (SEEK_HOLE) */
                ck_assert_ptr_null(iov[0].iov_base);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* The largest dax: file is the largest off_t: a write reaching past it
 * fails whole with -EFBIG (the kernel would have written the part below it
 * and grown the file to 8 EiB), a read from past it finds the end of the
 * file, and a read longer than the address space reads what there is
 * (found by fuzzing: -EINVAL and -EFAULT from the kernel). */
START_TEST(largest_file_offsets)
{
        const char *p = make_file(1, "large", 3 * PAGE, 5);
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDWR, w);
        char buf[4 * 4096];
        memset(buf, 'x', sizeof buf);
        size_t top = (size_t)INT64_MAX;
        ck_assert_err(iomem_pwrite(f, buf, 20, top - 10), EFBIG);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "largest file"));
        ck_assert_err(iomem_pwrite(f, buf, 1, top), EFBIG);
        ck_assert_int_eq(iomem_pwrite(f, buf, 1, top - 1), 1); /* the very last byte */
        ck_assert_int_eq(iomem_truncate(f, 3 * PAGE), 0);
        struct iovec v = { buf, 20 };
        ck_assert_err(iomem_gift(f, top - 10, 20, &v, 1, 0), EFBIG);
        ck_assert_err(iomem_gift(f, (size_t)1 << 63, 20, &v, 1, 0), EFBIG);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.size, 3 * PAGE);
        ck_assert_uint_eq(st.gift_copied, 0);
        ck_assert_int_eq(iomem_pread(f, buf, 16, top), 0);
        ck_assert_int_eq(iomem_pread(f, buf, 16, (size_t)1 << 63), 0);
        ck_assert_int_eq(iomem_pread(f, buf, SIZE_MAX / 2, PAGE), 2 * PAGE);
        ck_assert(matches(buf, PAGE, 2 * PAGE, 5));
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* bufcount only looks: it maps, evicts and holds nothing, counts no hit or
 * miss and never fails for want of room. A chunk not mapped yet counts as
 * an entry of its own, so the count is never less than what borrow then
 * gives (four chunks in neighbouring slots: one entry), and exact once the
 * chunks are mapped. */
START_TEST(bufcount_looks_only)
{
        const char *p = make_file(1, "count", 8 * MIB, 8);
        struct iomem_window *w = new_window(16 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDWR, w), *g = open_dax(p, IOMEM_RDWR, w);
        struct iomem *e = open_dax(p, IOMEM_RDONLY, w);
        struct iomem_window_stat before = wstat(w);
        ck_assert_int_eq(iomem_bufcount(f, 0, 8 * MIB), 4);
        ck_assert_int_eq(iomem_bufcount(f, MIB, 2 * MIB), 2);
        struct iomem_window_stat after = wstat(w);
        ck_assert_uint_eq(after.chunks_used + after.hits + after.misses + after.evictions,
                          before.chunks_used + before.hits + before.misses + before.evictions);
        ck_assert_int_eq(iomem_rdlock(f), 0);
        ck_assert_int_eq(borrow_check(f, 0, 8 * MIB, 8), 1);
        ck_assert_int_eq(iomem_bufcount(f, 0, 8 * MIB), 1);
        ck_assert_int_eq(iomem_bufcount(f, MIB, 2 * MIB), 1);
        /* f's four chunks held under its read lock and g's four pinned:
         * the window has none left for e, whose bufcount still counts. */
        ck_assert_int_eq(iomem_acquire(g, 0, 8 * MIB), 8 * MIB);
        before = wstat(w);
        ck_assert_int_eq(iomem_bufcount(e, 0, PAGE), 1);
        ck_assert_uint_eq(wstat(w).misses, before.misses);
        ck_assert_err(iomem_borrow(e, 0, PAGE, (struct iovec[1]){ { 0 } }, 1), ENOBUFS);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "window"));
        ck_assert_int_eq(iomem_unlock(f), 0);
        ck_assert_int_eq(iomem_borrow(e, 0, PAGE, (struct iovec[1]){ { 0 } }, 1), 1);
        ck_assert_int_eq(iomem_release(g, 0, 8 * MIB), 0);
        iomem_close(&e);
        iomem_close(&g);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* Blocks that acquire gave a sparse file (fallocate) are still holes until
 * written: borrow says so through the handle that acquired them as through
 * any other, and maps no chunk for them (found by fuzzing: the handle took
 * them for data, mapped them and ran out of window). */
START_TEST(acquired_blocks_stay_holes)
{
        const char *p = path_in(1, "blocks");
        int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 4 * MIB), 0);
        close(fd);
        struct iomem_window *w = new_window(2 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDWR, w), *g = open_dax(p, IOMEM_RDONLY, w);
        ck_assert_int_eq(iomem_acquire(f, 0, 2 * MIB), 2 * MIB);
        ck_assert_int_eq(iomem_release(f, 0, 2 * MIB), 0);
        struct iovec iov[4];
        for (int i = 0; i < 2; i++) {
                struct iomem *h = i ? g : f;
                ck_assert_int_eq(iomem_bufcount(h, 0, 4 * MIB), 1);
                ck_assert_int_eq(iomem_borrow(h, 0, 4 * MIB, iov, 4), 1);
                ck_assert_ptr_null(iov[0].iov_base);
                ck_assert_uint_eq(iov[0].iov_len, 4 * MIB);
        }
        /* Written, the first page is data for both. */
        ck_assert_int_eq(iomem_pwrite(f, "abc", 3, 0), 3);
        for (int i = 0; i < 2; i++) {
                struct iomem *h = i ? g : f;
                ck_assert_int_eq(iomem_borrow(h, 0, 4 * MIB, iov, 4), 2);
                ck_assert_ptr_nonnull(iov[0].iov_base);
                ck_assert_int_eq(memcmp(iov[0].iov_base, "abc", 3), 0);
                ck_assert_ptr_null(iov[1].iov_base);
        }
        iomem_close(&g);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

static int no_space_fallocate(int fd, int mode, off_t off, off_t len)
{
        (void)fd, (void)mode, (void)off, (void)len;
        errno = ENOSPC;
        return -1;
}

/* What persistence asked of the kernel: the msync ranges, relative to
 * the file (the mapping that msync was given starts at the file offset
 * the last mmap of data_fd asked for), and the fdatasync calls. */
static struct {
        int fd, msyncs, fdatasyncs, fail_msync, fail_fdatasync;
        off_t mapped_at;
        char *map;
        uint64_t from, to;
} seen;

static void *seen_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
        void *p = iom_sys_default.mmap(addr, len, prot, flags, fd, off);
        if (fd == seen.fd && !addr && p != MAP_FAILED) {
                seen.map = p;
                seen.mapped_at = off;
        }
        return p;
}

static int seen_msync(void *addr, size_t len, int flags)
{
        ck_assert_int_eq(flags, MS_SYNC);
        ck_assert_ptr_eq(addr, seen.map);
        seen.msyncs++;
        seen.from = (uint64_t)seen.mapped_at;
        seen.to = (uint64_t)seen.mapped_at + len;
        if (seen.fail_msync) {
                errno = EIO;
                return -1;
        }
        return iom_sys_default.msync(addr, len, flags);
}

static int seen_fdatasync(int fd)
{
        seen.fdatasyncs++;
        if (seen.fail_fdatasync) {
                errno = EIO;
                return -1;
        }
        return iom_sys_default.fdatasync(fd);
}

static void *no_memory_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
        (void)addr, (void)len, (void)prot, (void)flags, (void)fd, (void)off;
        errno = ENOMEM;
        return MAP_FAILED;
}

static void watch_persistence(int fd)
{
        memset(&seen, 0, sizeof seen);
        seen.fd = fd;
        iom_sys.mmap = seen_mmap;
        iom_sys.msync = seen_msync;
        iom_sys.fdatasync = seen_fdatasync;
}

/* On the page cache, persist and sync are one msync of the range asked
 * (from its page, to the file's end at most), whatever the window holds;
 * a read-only handle, whose shared mapping msync would skip, flushes the
 * file; a failed msync says so. */
static void persist_by_msync(struct iomem *f, const char *p, struct iomem_window *w)
{
        size_t ps = (size_t)sysconf(_SC_PAGESIZE);
        watch_persistence(iomem_fd(f));
        ck_assert_int_eq(iomem_persist(f, ps + 10, 3 * MIB), 0);
        ck_assert_int_eq(seen.msyncs, 1);
        ck_assert_uint_eq(seen.from, ps);
        ck_assert_uint_eq(seen.to, ps + 10 + 3 * MIB);
        ck_assert_int_eq(iomem_sync(f, 8 * MIB, MIB), 0); /* ends at the file's end */
        ck_assert_int_eq(seen.msyncs, 2);
        ck_assert_uint_eq(seen.from, 8 * MIB);
        ck_assert_uint_eq(seen.to, 8 * MIB + 100);
        ck_assert_int_eq(iomem_persist(f, 9 * MIB, MIB), 0); /* past it: nothing */
        ck_assert_int_eq(iomem_persist(f, 0, 0), 0);
        ck_assert_int_eq(seen.msyncs, 2);
        ck_assert_int_eq(seen.fdatasyncs, 0);
        seen.fail_msync = 1;
        ck_assert_err(iomem_persist(f, 0, ps), EIO);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "msync"));
        iom_sys.mmap = no_memory_mmap;
        ck_assert_err(iomem_persist(f, 0, ps), ENOMEM);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "mmap for msync"));
        iom_sys = iom_sys_default;

        /* A cut leaves no page of the range to write back: the file's own
         * flush makes the new size durable, once; a failed one is tried
         * again by the next call. */
        ck_assert_int_eq(iomem_truncate(f, 8 * MIB), 0);
        watch_persistence(iomem_fd(f));
        seen.fail_fdatasync = 1;
        ck_assert_err(iomem_persist(f, 8 * MIB, 100), EIO);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "fdatasync"));
        seen.fail_fdatasync = 0;
        ck_assert_int_eq(iomem_persist(f, 8 * MIB, 100), 0);
        ck_assert_int_eq(iomem_persist(f, 8 * MIB, 100), 0);
        ck_assert_int_eq(seen.fdatasyncs, 2);
        ck_assert_int_eq(seen.msyncs, 0);
        iom_sys = iom_sys_default;

        struct iomem *r = open_dax(p, 0, w);
        watch_persistence(iomem_fd(r));
        ck_assert_int_eq(iomem_persist(r, 0, ps), 0);
        ck_assert_int_eq(seen.msyncs, 0);
        ck_assert_int_eq(seen.fdatasyncs, 1);
        iom_sys = iom_sys_default;
        iomem_close(&r);
}

/* On MAP_SYNC chunks (a DAX filesystem), stores through the mapping are
 * made durable from user space, with no system call; what the handle wrote
 * with pwrite or a change of size needs one fdatasync, once. */
static void persist_from_user_space(struct iomem *f)
{
        watch_persistence(iomem_fd(f));
        ck_assert_int_eq(iomem_persist(f, 0, 8 * MIB), 0);
        ck_assert_int_eq(iomem_sync(f, MIB, MIB), 0);
        ck_assert_int_eq(seen.msyncs + seen.fdatasyncs, 0);
        char b[100] = { 1 };
        ck_assert_int_eq(iomem_pwrite(f, b, sizeof b, 3 * MIB), sizeof b);
        ck_assert_int_eq(iomem_persist(f, 0, 4096), 0);
        ck_assert_int_eq(seen.fdatasyncs, 1);
        ck_assert_int_eq(iomem_persist(f, 0, 4096), 0);
        ck_assert_int_eq(seen.fdatasyncs, 1);
        ck_assert_int_eq(iomem_truncate(f, 8 * MIB + 100), 0);
        ck_assert_int_eq(iomem_persist(f, 0, 4096), 0);
        ck_assert_int_eq(seen.fdatasyncs, 2);
        ck_assert_int_eq(seen.msyncs, 0);
        iom_sys = iom_sys_default;
}

START_TEST(persist_takes_the_narrowest_way)
{
        const char *p = make_file(0, "persist", 8 * MIB + 100, 5);
        struct iomem_window *w = new_window(4 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDWR, w);
        ck_assert_int_eq(iomem_acquire(f, 0, 2 * MIB), 2 * MIB);
        struct iovec iov[2];
        ck_assert_int_eq(iomem_retrieve(f, 0, 2 * MIB, iov, 2), 1);
        memset(iov[0].iov_base, 0x5a, 2 * MIB);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        if (st.dax) {
                ck_assert_uint_eq(st.persist, test_cpu_flush_kind());
                persist_from_user_space(f);
        } else {
                ck_assert_uint_eq(st.persist, IOMEM_PERSIST_MSYNC);
                persist_by_msync(f, p, w);
        }
        ck_assert_int_eq(iomem_release(f, 0, 2 * MIB), 0);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
        unlink(p);
}
END_TEST

/* An acquire the window cannot hold allocates no blocks of a sparse file
 * (it allocated them, then found the window full); one whose blocks cannot
 * be allocated leaves pinned only the chunks other pins hold. */
START_TEST(failed_acquire_allocates_and_pins_nothing)
{
        const char *p = path_in(1, "nothing");
        int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 16 * MIB), 0);
        struct iomem_window *w = new_window(4 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDWR, w);
        ck_assert_int_eq(iomem_acquire(f, 0, 4 * MIB), 4 * MIB); /* both slots */
        struct stat before, after;
        ck_assert_int_eq(fstat(fd, &before), 0);
        ck_assert_err(iomem_acquire(f, 8 * MIB, 2 * MIB), ENOBUFS);
        ck_assert_int_eq(fstat(fd, &after), 0);
        ck_assert_int_eq(after.st_blocks, before.st_blocks);
        ck_assert_int_eq(iomem_release(f, 0, 4 * MIB), 0);

        /* Chunk 4 is pinned by [8, 9) MiB; acquiring [9, 12) MiB pins
         * chunk 5 too, then fails to allocate: chunk 4 stays, 5 goes. */
        ck_assert_int_eq(iomem_acquire(f, 8 * MIB, MIB), MIB);
        ck_assert_uint_eq(wstat(w).chunks_pinned, 1);
        iom_sys.fallocate = no_space_fallocate;
        ck_assert_err(iomem_acquire(f, 9 * MIB, 3 * MIB), ENOSPC);
        iom_sys = iom_sys_default;
        ck_assert_uint_eq(wstat(w).chunks_pinned, 1);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.acquired, MIB);
        ck_assert_err(iomem_release(f, 9 * MIB, MIB), EINVAL);
        ck_assert_int_eq(iomem_release(f, 8 * MIB, MIB), 0);
        ck_assert_uint_eq(wstat(w).chunks_pinned, 0);
        ck_assert_int_eq(iomem_acquire(f, 9 * MIB, 3 * MIB), 3 * MIB);
        ck_assert_int_eq(iomem_release(f, 9 * MIB, 3 * MIB), 0);
        close(fd);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* An asynchronous read into a sparse file: the blocks acquire gave are
 * holes to borrow until written, and the read fills them through the
 * pinned memory (it failed with -EIO, "a hole was not filled"). Whether
 * or not the handle has a longer data run elsewhere in mind. A read past
 * the end of the file is -EINVAL, and keeps no memory (a leak on that
 * path showed under valgrind). */
START_TEST(aio_read_into_holes)
{
        struct iomem_aio *q = NULL;
        int r = iomem_aio_new(&q, 2);
        if (r == -ENOTSUP)
                return; /* built without liburing */
        ck_assert_msg(r == 0, "aio_new: %d %s", r, iomem_errormsg());
        const char *src = make_file(1, "aio-src", 2 * PAGE, 31);
        int fd = open(src, O_RDONLY);
        ck_assert_int_ge(fd, 0);
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        for (int elsewhere = 0; elsewhere < 2; elsewhere++) {
                const char *p = path_in(1, "aio-dst");
                int dfd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
                ck_assert_int_ge(dfd, 0);
                ck_assert_int_eq(ftruncate(dfd, 4 * MIB), 0);
                if (elsewhere)
                        fill(dfd, 2 * MIB, 2 * MIB, 3);
                close(dfd);
                struct iomem *f = open_dax(p, IOMEM_RDWR, w);
                struct iovec iov[4];
                ck_assert_int_gt(iomem_borrow(f, 0, 4 * MIB, iov, 4), 0); /* learns the data run */
                ck_assert_int_eq(iomem_aio_read(q, fd, 0, f, PAGE, 2 * PAGE, 5), 0);
                struct iomem_aio_cqe c;
                ck_assert_int_eq(iomem_aio_wait(q, &c, 1, 1, 10000), 1);
                ck_assert_int_eq(c.res, (ssize_t)(2 * PAGE));
                char buf[2 * 4096];
                ck_assert_int_eq(iomem_pread(f, buf, 2 * PAGE, PAGE), (ssize_t)(2 * PAGE));
                ck_assert(matches(buf, 0, 2 * PAGE, 31));
                iomem_close(&f);
        }
        /* Past the end: the last page holds data, then a hole, then the end. */
        const char *p = path_in(1, "aio-end");
        int dfd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
        ck_assert_int_ge(dfd, 0);
        fill(dfd, 0, 100, 4);
        ck_assert_int_eq(ftruncate(dfd, 2 * PAGE + 100), 0);
        close(dfd);
        struct iomem *f = open_dax(p, IOMEM_RDONLY, w);
        int out = open(path_in(1, "aio-out"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        ck_assert_int_ge(out, 0);
        ck_assert_err(iomem_aio_write(q, out, 0, f, 0, 3 * PAGE, 6), EINVAL);
        close(out);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "past its end"));
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.acquired, 0);
        iomem_close(&f);
        ck_assert_int_eq(iomem_aio_delete(&q), 0);
        close(fd);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* ---- detection ---------------------------------------------------------------------- */

/* Files are DAX only where the VM tier says so (never on tmpfs). */
static int expect_dax(int where)
{
        const char *v = getenv("IOMEM_TEST_DAX_EXPECT");
        return where == 0 && v && !strcmp(v, "1");
}

START_TEST(dax_flag_as_expected)
{
        for (int where = 0; where < 2; where++) {
                const char *p = make_file(where, "flag", PAGE, 1);
                struct iomem *f = open_dax(p, IOMEM_RDONLY, NULL); /* the default window */
                struct iomem_stat st;
                ck_assert_int_eq(iomem_stat(f, &st), 0);
                ck_assert_int_eq(st.dax, expect_dax(where));
                ck_assert_str_eq(st.backend, "dax");
                ck_assert_uint_eq(st.caps & IOMEM_CAP_DAX, expect_dax(where) ? IOMEM_CAP_DAX : 0);
                ck_assert_uint_eq(st.caps & IOMEM_CAP_RESIZE, IOMEM_CAP_RESIZE);
                ck_assert_uint_eq(st.page_size, PAGE);
                borrow_check(f, 0, PAGE, 1);
                iomem_close(&f);
        }
}
END_TEST

START_TEST(mountinfo_names_virtiofs)
{
        const char *p = path_in(0, "mountinfo");
        FILE *fp = fopen(p, "w");
        ck_assert_ptr_nonnull(fp);
        fputs("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
              "40 22 0:45 / /mnt/host rw,relatime shared:20 - virtiofs hostshare rw\n"
              "41 22 0:46 / /mnt/fuse rw,nosuid shared:21 - fuse.sshfs me@host: rw\n", fp);
        fclose(fp);
        char type[64];
        ck_assert_int_eq(iom_dax_mount_fstype(p, makedev(0, 45), type, sizeof type), 0);
        ck_assert_str_eq(type, "virtiofs");
        ck_assert_int_eq(iom_dax_mount_fstype(p, makedev(0, 46), type, sizeof type), 0);
        ck_assert_str_eq(type, "fuse.sshfs");
        ck_assert_int_eq(iom_dax_mount_fstype(p, makedev(0, 47), type, sizeof type), -ENOENT);
        ck_assert_int_eq(iom_dax_mount_fstype("/nonexistent", makedev(0, 45), type, sizeof type), -ENOENT);
}
END_TEST

/* ---- opening ------------------------------------------------------------------------ */

START_TEST(open_create_unlink)
{
        const char *p = path_in(0, "create");
        struct iomem *f = SENTINEL;
        ck_assert_err(iomem_open(&f, uri_of(p), IOMEM_RDWR, NULL), ENOENT);
        ck_assert_ptr_eq(f, SENTINEL);
        ck_assert_err(iomem_open(&f, "dax:", IOMEM_RDONLY, NULL), EINVAL);
        struct iomem_opts *o = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, 3 * MIB), 0);
        ck_assert_int_eq(iomem_opts_set_mode(o, 0640), 0);
        mode_t old = umask(0);
        ck_assert_int_eq(iomem_open(&f, uri_of(p), IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o), 0);
        umask(old);
        struct iomem *g = SENTINEL;
        ck_assert_err(iomem_open(&g, uri_of(p), IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o), EEXIST);
        ck_assert_ptr_eq(g, SENTINEL);
        ck_assert_err(iomem_open(&g, uri_of(dirs[0]), IOMEM_RDONLY, NULL), EINVAL); /* a directory */
        ck_assert_int_eq(iomem_opts_set_seals(o, IOMEM_SEAL_GROW), 0);
        ck_assert_err(iomem_open(&g, uri_of(p), IOMEM_RDWR, o), ENOTSUP);
        ck_assert_ptr_eq(g, SENTINEL);
        iomem_opts_delete(&o);
        struct stat sb;
        ck_assert_int_eq(stat(p, &sb), 0);
        ck_assert_int_eq(sb.st_size, (off_t)(3 * MIB));
        ck_assert_int_eq(sb.st_mode & 0777, 0640);
        ck_assert_int_eq(fcntl(iomem_fd(f), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
        ck_assert_int_eq(iomem_pwrite(f, "hello", 5, 3 * MIB), 5);
        ck_assert_int_eq(iomem_sync(f, 0, 1), 0);
        char buf[8] = { 0 };
        ck_assert_int_eq(iomem_pread(f, buf, 8, 3 * MIB), 5);
        ck_assert_str_eq(buf, "hello");
        ck_assert_int_eq(iomem_pread(f, buf, 8, 4 * MIB), 0);
        iomem_close(&f);
        ck_assert_int_eq(iomem_unlink(uri_of(p)), 0);
        ck_assert_err(iomem_unlink(uri_of(p)), ENOENT);
}
END_TEST

/* IOMEM_NOFOLLOW: a symbolic link as the last component is -ELOOP, also
 * for a link to nowhere with IOMEM_CREATE (which must create nothing). */
START_TEST(nofollow_refuses_symlinks)
{
        uint64_t seed = 41;
        const char *p = make_file(0, "target", MIB, seed);
        const char *l = path_in(0, "link"), *nowhere = path_in(0, "nowhere");
        const char *dangling = path_in(0, "dangling");
        ck_assert_int_eq(symlink(p, l), 0);
        ck_assert_int_eq(symlink(nowhere, dangling), 0);
        int fds = test_count_fds();
        struct iomem *f = SENTINEL;
        ck_assert_err(iomem_open(&f, uri_of(l), IOMEM_RDONLY | IOMEM_NOFOLLOW, NULL), ELOOP);
        ck_assert_ptr_eq(f, SENTINEL);
        ck_assert_msg(strstr(iomem_errormsg(), "symbolic link") && strstr(iomem_errormsg(), l),
                      "message: %s", iomem_errormsg());
        ck_assert_err(iomem_open(&f, uri_of(dangling), IOMEM_RDWR | IOMEM_CREATE | IOMEM_NOFOLLOW,
                                 NULL), ELOOP);
        ck_assert_int_eq(access(nowhere, F_OK), -1);
        ck_assert_int_eq(test_count_fds(), fds);
        /* The file itself, and the link without the flag, open. */
        f = open_dax(p, IOMEM_RDONLY | IOMEM_NOFOLLOW, NULL);
        iomem_close(&f);
        struct iomem_window *w = new_window(2 * MIB, 2 * MIB);
        f = open_dax(l, IOMEM_RDONLY, w);
        borrow_check(f, 0, MIB, seed);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
        unlink(l);
        unlink(dangling);
}
END_TEST

START_TEST(open_fd_adopts_regular_files)
{
        const char *p = make_file(1, "fd", MIB, 4);
        int fd = open(p, O_RDONLY | O_CLOEXEC);
        struct iomem *f = SENTINEL;
        ck_assert_err(iomem_open_fd(&f, "dax", fd, IOMEM_RDWR, NULL), EACCES);
        ck_assert_int_eq(iomem_open_fd(&f, "dax", fd, IOMEM_RDONLY, NULL), 0);
        ck_assert_int_eq(iomem_fd(f), fd);
        borrow_check(f, 0, MIB, 4);
        iomem_close(&f);
        ck_assert_int_eq(fcntl(fd, F_GETFD), -1); /* the object closed it */
        int pfd[2];
        ck_assert_int_eq(pipe(pfd), 0);
        ck_assert_err(iomem_open_fd(&f, "dax", pfd[0], IOMEM_RDONLY, NULL), EINVAL);
        ck_assert_int_ge(fcntl(pfd[0], F_GETFD), 0); /* still the caller's */
        close(pfd[0]);
        close(pfd[1]);
        fd = open(p, O_WRONLY);
        ck_assert_err(iomem_open_fd(&f, "dax", fd, IOMEM_RDONLY, NULL), EACCES);
        close(fd);
        /* Writes through O_APPEND land at the end, not where asked. */
        fd = open(p, O_RDWR | O_APPEND);
        ck_assert_err(iomem_open_fd(&f, "dax", fd, IOMEM_RDWR, NULL), EINVAL);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "O_APPEND"));
        ck_assert_int_eq(iomem_open_fd(&f, "dax", fd, IOMEM_RDONLY, NULL), 0);
        iomem_close(&f);
}
END_TEST

/* IOMEM_DAX_WINDOW sizes the default window, made once per process: so
 * each size is tried in a new program (this one, run again). */
static int default_window_program(const char *dir, const char *len_text)
{
        char path[128];
        snprintf(path, sizeof path, "%s/default-%d", dir, (int)getpid());
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
        if (fd < 0 || !write_pattern(fd, 0, 16 * MIB, 2))
                return 3;
        close(fd);
        struct iomem *f = NULL;
        int r = iomem_open(&f, uri_of(path), IOMEM_RDONLY, NULL);
        unlink(path);
        if (r < 0)
                return r == -EINVAL && strstr(iomem_errormsg(), "IOMEM_DAX_WINDOW") ? 10 : 1;
        struct iovec iov[16];
        ssize_t n = iomem_borrow(f, 0, strtoull(len_text, NULL, 10), iov, 16);
        iomem_close(&f);
        return n > 0 ? 0 : n == -ENOBUFS ? 11 : 2;
}

static char self[4096]; /* this program (not valgrind's, as /proc/self/exe would be) */

static int default_window_child(const char *size, size_t borrow_len)
{
        char len[32];
        snprintf(len, sizeof len, "%zu", borrow_len);
        pid_t pid = fork();
        if (pid == 0) {
                setenv("IOMEM_DAX_WINDOW", size, 1);
                execl(self, self, "--default-window", dirs[0], len, (char *)NULL);
                _exit(4);
        }
        return test_wait(pid);
}

START_TEST(default_window_size)
{
        ck_assert_int_eq(default_window_child("3M", MIB), 10);
        ck_assert_int_eq(default_window_child("lots", MIB), 10);
        ck_assert_int_eq(default_window_child("4M", 4 * MIB), 0);
        ck_assert_int_eq(default_window_child("4194304", 6 * MIB), 11);
        ck_assert_int_eq(default_window_child("", 16 * MIB), 0); /* 1 GiB */
}
END_TEST

/* ---- the read lock keeps borrowed chunks -------------------------------------------- */

struct other {
        struct iomem *f;
        ssize_t r;
};

static void *borrow_elsewhere(void *arg)
{
        struct other *o = arg;
        struct iovec iov[2];
        o->r = iomem_borrow(o->f, 10 * MIB, 100, iov, 2);
        return NULL;
}

/* A thread that borrows through f: a chunk, or many each ending the one
 * before. */
struct borrower {
        struct iomem *f;
        uint64_t seed;
        int chunk;
        int failed;
};

static void *borrow_many(void *arg)
{
        struct borrower *b = arg;
        struct iovec iov[1];
        for (int c = 1; c < 12; c++) {
                uint64_t off = (uint64_t)c * 2 * MIB;
                if (iomem_borrow(b->f, off, PAGE, iov, 1) != 1 ||
                    !matches(iov[0].iov_base, off, PAGE, b->seed))
                        b->failed = c;
        }
        return NULL;
}

/* A borrow without the read lock stays valid until its thread's next
 * borrow, however many chunks other threads borrow meanwhile (before,
 * FIFO handed its slot to a later chunk: the pointer read chunk 8's
 * bytes). The thread's next borrow lets it go. */
START_TEST(a_borrow_is_kept_until_the_next)
{
        uint64_t seed = 47;
        const char *p = make_file(0, "keep", 32 * MIB, seed);
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        ck_assert_int_eq(iomem_window_set_policy(w, IOMEM_EVICT_FIFO), 0);
        struct iomem *f = open_dax(p, IOMEM_RDONLY, w);
        struct iovec first[1];
        ck_assert_int_eq(iomem_borrow(f, 0, 2 * MIB, first, 1), 1);
        struct borrower b = { f, seed, 0, 0 };
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, borrow_many, &b), 0);
        pthread_join(t, NULL);
        ck_assert_int_eq(b.failed, 0);
        ck_assert_uint_ge(wstat(w).evictions, 8);
        ck_assert(matches(first[0].iov_base, 0, 2 * MIB, seed));
        /* This thread's next borrow ends the first: chunk 0 may go now. */
        struct iovec next[1];
        ck_assert_int_eq(iomem_borrow(f, 30 * MIB, PAGE, next, 1), 1);
        b.failed = 0;
        ck_assert_int_eq(pthread_create(&t, NULL, borrow_many, &b), 0);
        pthread_join(t, NULL);
        ck_assert_int_eq(b.failed, 0);
        ck_assert(matches(next[0].iov_base, 30 * MIB, PAGE, seed));
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

static void *borrow_and_exit(void *arg)
{
        struct borrower *b = arg;
        struct iovec iov[1];
        uint64_t off = (uint64_t)b->chunk * 2 * MIB;
        b->failed = iomem_borrow(b->f, off, PAGE, iov, 1) != 1 ||
                    !matches(iov[0].iov_base, off, PAGE, b->seed);
        return NULL;
}

/* A thread's last borrow goes with the thread: threads that each borrow
 * a chunk and exit do not fill the window. */
START_TEST(borrows_go_with_their_threads)
{
        uint64_t seed = 53;
        const char *p = make_file(0, "threadexit", 16 * MIB, seed);
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDONLY, w);
        for (int c = 0; c < 8; c++) {
                struct borrower b = { f, seed, c, 0 };
                pthread_t t;
                ck_assert_int_eq(pthread_create(&t, NULL, borrow_and_exit, &b), 0);
                pthread_join(t, NULL);
                ck_assert_msg(b.failed == 0, "thread %d: %s", c, iomem_errormsg());
        }
        ck_assert_int_eq(iomem_acquire(f, 0, 6 * MIB), (ssize_t)(6 * MIB));
        ck_assert_int_eq(iomem_release(f, 0, 6 * MIB), 0);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

START_TEST(read_lock_keeps_borrowed_chunks)
{
        uint64_t seed = 19;
        const char *p = make_file(0, "lock", 16 * MIB, seed);
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDONLY, w);
        ck_assert_int_eq(iomem_rdlock(f), 0);
        struct iovec held[4], iov[2];
        for (int c = 0; c < 4; c++)
                ck_assert_int_eq(iomem_borrow(f, (uint64_t)c * 2 * MIB, 2 * MIB, &held[c], 1), 1);
        /* Neither this thread nor another may evict them now. */
        ck_assert_err(iomem_borrow(f, 8 * MIB, 100, iov, 2), ENOBUFS);
        struct other o = { f, 0 };
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, borrow_elsewhere, &o), 0);
        pthread_join(t, NULL);
        ck_assert_int_eq(o.r, -ENOBUFS);
        for (int c = 0; c < 4; c++)
                ck_assert(matches(held[c].iov_base, (uint64_t)c * 2 * MIB, 2 * MIB, seed));
        ck_assert_err(iomem_wrlock(f), EDEADLK);
        ck_assert_int_eq(iomem_unlock(f), 0);
        ck_assert_err(iomem_unlock(f), EPERM);
        borrow_check(f, 8 * MIB, 100, seed);
        ck_assert_uint_eq(wstat(w).evictions, 1);
        /* The writer may borrow and read too. */
        ck_assert_int_eq(iomem_wrlock(f), 0);
        ck_assert_int_eq(iomem_rdlock(f), 0);
        borrow_check(f, 12 * MIB, 100, seed);
        ck_assert_int_eq(iomem_unlock(f), 0);
        ck_assert_int_eq(iomem_unlock(f), 0);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* Readers that overlap so that the lock is never free, and a thread that
 * pins: every borrow is released at its own thread's unlock, so the window
 * never fills with borrowed chunks. */
struct worker {
        struct iomem *f;
        uint64_t seed, rng;
        int pinner;
        int bad;
};

static void *work(void *arg)
{
        struct worker *k = arg;
        for (int i = 0; i < 3000 && !k->bad; i++) {
                k->rng = k->rng * 6364136223846793005u + 1442695040888963407u;
                uint64_t c = (k->rng >> 33) % 16, off = c * 2 * MIB + ((k->rng >> 13) % (2 * MIB - 64));
                struct iovec iov[2];
                if (k->pinner) {
                        uint64_t at = c * 2 * MIB;
                        if (iomem_acquire(k->f, at, 4 * MIB) != (ssize_t)(4 * MIB) ||
                            iomem_retrieve(k->f, at, 4 * MIB, iov, 2) < 1 ||
                            !matches(iov[0].iov_base, at, 64, k->seed) ||
                            iomem_release(k->f, at, 4 * MIB))
                                k->bad = 1;
                        continue;
                }
                if (iomem_rdlock(k->f) || iomem_borrow(k->f, off, 64, iov, 2) != 1 ||
                    !matches(iov[0].iov_base, off, 64, k->seed) || iomem_unlock(k->f))
                        k->bad = 1;
        }
        return NULL;
}

START_TEST(threads_share_a_window)
{
        uint64_t seed = 31;
        const char *p = make_file(1, "threads", 34 * MIB, seed);
        struct iomem_window *w = new_window(16 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDWR, w);
        struct worker k[5];
        pthread_t t[5];
        for (int i = 0; i < 5; i++) {
                k[i] = (struct worker){ f, seed, (uint64_t)i + 1, i == 4, 0 };
                ck_assert_int_eq(pthread_create(&t[i], NULL, work, &k[i]), 0);
        }
        for (int i = 0; i < 5; i++) {
                pthread_join(t[i], NULL);
                ck_assert_msg(!k[i].bad, "thread %d: %s", i, iomem_errormsg());
        }
        struct iomem_window_stat st = wstat(w);
        ck_assert_uint_eq(st.chunks_pinned, 0);
        ck_assert_uint_eq(st.misses - st.evictions, st.chunks_used);
        /* A lookup per borrow and per chunk acquired; retrieve reads the
         * handle's own record of the chunks it pins, not the window. */
        ck_assert_uint_eq(st.hits + st.misses, 4 * 3000 + 2 * 3000);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* A handle inherited across fork holds nothing in the child: no pins, no
 * lock; the parent keeps both. */
static int child_after_fork(struct iomem *f, struct iomem_window *w, uint64_t seed)
{
        struct iomem_stat st;
        struct iomem_window_stat ws;
        struct iovec iov[8];
        if (iomem_stat(f, &st) || st.acquired != 0)
                return 1;
        if (iomem_window_stat(w, &ws) || ws.chunks_pinned != 0)
                return 2;
        /* The parent's read lock is the object's, shared with the child. */
        if (iomem_unlock(f) != -EPERM || iomem_wrlock_timed(f, 0) != -EBUSY || iomem_rdlock(f) ||
            iomem_unlock(f))
                return 3;
        ssize_t n = iomem_borrow(f, 0, 8 * MIB, iov, 8);
        size_t at = 0;
        for (ssize_t i = 0; i < n; at += iov[i].iov_len, i++)
                if (!matches(iov[i].iov_base, at, iov[i].iov_len, seed))
                        return 4;
        if (n < 1 || at != 8 * MIB)
                return 5;
        if (iomem_acquire(f, 0, 8 * MIB) != (ssize_t)(8 * MIB) || iomem_release(f, 0, 8 * MIB))
                return 6;
        return 0;
}

START_TEST(fork_child_starts_clean)
{
        uint64_t seed = 37;
        const char *p = make_file(0, "fork", 8 * MIB, seed);
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDWR, w);
        ck_assert_int_eq(iomem_acquire(f, 0, 2 * MIB), (ssize_t)(2 * MIB));
        ck_assert_int_eq(iomem_rdlock(f), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(child_after_fork(f, w, seed));
        ck_assert_int_eq(test_wait(pid), 0);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.acquired, 2 * MIB);
        ck_assert_uint_eq(wstat(w).chunks_pinned, 1);
        ck_assert_int_eq(iomem_unlock(f), 0);
        ck_assert_int_eq(iomem_release(f, 0, 2 * MIB), 0);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* Threads of the child all making their first call on the inherited handle
 * at once: one resets the handle, its file and its window for the child; the
 * others wait for that rather than resetting them under their pins. */
START_TEST(threads_of_a_child_share_the_inherited_handle)
{
        const size_t unit = 2 * MIB;
        const char *p = make_file(0, "forkthreads", (TEST_FIRST_CALLERS + 1) * unit, 41);
        struct iomem_window *w = new_window(16 * MIB, unit);
        struct iomem *f = open_dax(p, IOMEM_RDWR, w);
        ck_assert_int_eq(iomem_acquire(f, 0, unit), (ssize_t)unit);
        for (int round = 0; round < 10; round++) {
                pid_t pid = fork();
                ck_assert_int_ge(pid, 0);
                if (pid == 0)
                        _exit(test_first_calls_from_threads(f, unit));
                ck_assert_int_eq(test_wait(pid), 0);
        }
        ck_assert_uint_eq(wstat(w).chunks_pinned, 1); /* the parent's pin stays */
        ck_assert_int_eq(iomem_release(f, 0, unit), 0);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* In the child, one thread shrinks the file through one handle (which locks
 * the file's other handles) while another makes its first call through a
 * second handle of the same file: neither may meet the other's handle half
 * reset (TSan sees it). */
struct two_handles {
        struct iomem *f, *g;
        size_t unit;
};

/* Thread 0 shrinks the file through f; thread 1 pins and unpins through g. */
static int truncate_or_first_call(int i, void *ctx)
{
        const struct two_handles *h = ctx;
        if (i == 0)
                return iomem_truncate(h->f, h->unit) != 0;
        return iomem_acquire(h->g, 0, h->unit) != (ssize_t)h->unit ||
               iomem_release(h->g, 0, h->unit) != 0;
}

START_TEST(a_child_truncates_beside_a_first_call_through_another_handle)
{
        const size_t unit = 2 * MIB;
        const char *p = make_file(0, "forktrunc", 2 * unit, 43);
        struct iomem_window *w = new_window(16 * MIB, unit);
        struct iomem *f = open_dax(p, IOMEM_RDWR, w), *g = open_dax(p, IOMEM_RDWR, w);
        struct two_handles h = { .f = f, .g = g, .unit = unit };
        for (int round = 0; round < 10; round++) {
                pid_t pid = fork();
                ck_assert_int_ge(pid, 0);
                if (pid == 0)
                        _exit(test_run_together(2, truncate_or_first_call, &h));
                ck_assert_int_eq(test_wait(pid), 0);
                ck_assert_int_eq(iomem_truncate(f, 2 * unit), 0);
        }
        iomem_close(&g);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* sendfile and copy through a window smaller than their batches. */
START_TEST(transfers_through_small_window)
{
        uint64_t seed = 23, size = 40 * MIB;
        const char *p = make_file(0, "send", size, seed);
        const char *q = path_in(0, "sent");
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDONLY, w);
        int out = open(q, O_RDWR | O_CREAT | O_TRUNC, 0600);
        ck_assert_int_ge(out, 0);
        ck_assert_int_eq(iomem_sendfile(out, f, MIB, size - MIB), (ssize_t)(size - MIB));
        char *got = mmap(NULL, size - MIB, PROT_READ, MAP_SHARED, out, 0);
        ck_assert_ptr_ne(got, MAP_FAILED);
        ck_assert(matches(got, MIB, size - MIB, seed));
        munmap(got, size - MIB);
        close(out);
        struct iomem *g = open_dax(q, IOMEM_RDWR, w);
        ck_assert_int_eq(iomem_copy(g, 0, f, 0, size), (ssize_t)size);
        borrow_check(g, 5 * MIB, 3 * MIB, seed);
        iomem_close(&g);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* ---- fault injection ---------------------------------------------------------------- */

static struct {
        int nth, seen, err;
        int also_next; /* fail the call after it too */
} inj;

static void *f_mmap(void *a, size_t l, int p, int fl, int fd, off_t o)
{
        int k = ++inj.seen;
        if (inj.nth && (k == inj.nth || (inj.also_next && k == inj.nth + 1))) {
                errno = inj.err;
                return MAP_FAILED;
        }
        return iom_sys_default.mmap(a, l, p, fl, fd, o);
}

static ssize_t fail_splice(int in, loff_t *in_off, int out, loff_t *out_off, size_t len,
                           unsigned flags)
{
        (void)in, (void)in_off, (void)out, (void)out_off, (void)len, (void)flags;
        errno = EIO;
        return -1;
}

static void inject_mmap(int nth, int err, int also_next)
{
        inj.nth = nth;
        inj.seen = 0;
        inj.err = err;
        inj.also_next = also_next;
        iom_sys.mmap = f_mmap;
}

/* Do bytes [0, len) match the file's pattern from src_off, with zeros in
 * [hole, hole_end)? */
static bool sent_right(const char *got, uint64_t src_off, uint64_t len, uint64_t seed,
                       uint64_t hole, uint64_t hole_end)
{
        for (uint64_t at = 0; at < len; at++) {
                uint64_t pos = src_off + at;
                if ((uint8_t)got[at] != (pos >= hole && pos < hole_end ? 0 : pattern(pos, seed))) {
                        fprintf(stderr, "byte %llu differs\n", (unsigned long long)pos);
                        return false;
                }
        }
        return true;
}

/* The bytes of sendfile's destination [0, len) against the file's
 * pattern from src_off, holes of the source in [hole, hole_end) as zeros. */
static void check_sent(int fd, uint64_t src_off, uint64_t len, uint64_t seed, uint64_t hole,
                       uint64_t hole_end)
{
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_uint_eq((uint64_t)st.st_size, len);
        char *got = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
        ck_assert_ptr_ne(got, MAP_FAILED);
        ck_assert_msg(sent_right(got, src_off, len, seed, hole, hole_end), "bytes differ");
        munmap(got, len);
}

/* From a file in the page cache of a disk filesystem into a regular file,
 * sendfile splices; into a file opened to append (which takes no splice)
 * and into a pipe it writes from the window. Every way gives the same
 * bytes, holes as zeros, and stops at the end of the file. */
START_TEST(sendfile_every_way_out)
{
        uint64_t seed = 31, size = 12 * MIB + 123;
        const char *p = make_file(0, "ways", size, seed);
        int fd = open(p, O_RDWR);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 4 * MIB, 2 * MIB), 0);
        close(fd);
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDONLY, w);
        uint64_t off = 3 * MIB + 5, want = size - off;
        for (int way = 0; way < 2; way++) {
                const char *q = path_in(0, way ? "append" : "plain");
                int out = open(q, O_RDWR | O_CREAT | O_TRUNC | (way ? O_APPEND : 0), 0600);
                ck_assert_int_ge(out, 0);
                ck_assert_int_eq(iomem_sendfile(out, f, off, 64 * MIB), (ssize_t)want);
                check_sent(out, off, want, seed, 4 * MIB, 6 * MIB);
                close(out);
                unlink(q);
        }
        /* Into a pipe that holds a megabyte, read back by this thread. */
        int pp[2];
        ck_assert_int_eq(pipe(pp), 0);
        ck_assert_int_ge(fcntl(pp[1], F_SETPIPE_SZ, (int)MIB), (int)MIB);
        char *back = malloc(MIB);
        for (uint64_t at = 0; at < 3 * MIB; at += MIB) {
                ck_assert_int_eq(iomem_sendfile(pp[1], f, 3 * MIB + at, MIB), (ssize_t)MIB);
                size_t got = 0;
                while (got < MIB) {
                        ssize_t n = read(pp[0], back + got, MIB - got);
                        ck_assert_int_gt(n, 0);
                        got += (size_t)n;
                }
                ck_assert(sent_right(back, 3 * MIB + at, MIB, seed, 4 * MIB, 6 * MIB));
        }
        free(back);
        close(pp[0]);
        close(pp[1]);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* A failed splice: its errno, nothing sent, and the next call works. */
START_TEST(sendfile_splice_failure)
{
        uint64_t seed = 37, size = 6 * MIB;
        const char *p = make_file(0, "splicefail", size, seed);
        struct iomem_window *w = new_window(8 * MIB, 2 * MIB);
        struct iomem *f = open_dax(p, IOMEM_RDONLY, w);
        struct iomem_stat st;
        struct statfs sf;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_int_eq(statfs(p, &sf), 0);
        const char *why = st.dax ? "DAX, where nothing is in the page cache"
                        : sf.f_type == TMPFS_MAGIC ? "tmpfs" : NULL;
        const char *q = path_in(0, "splicefail-out");
        int out = open(q, O_RDWR | O_CREAT | O_TRUNC, 0600);
        ck_assert_int_ge(out, 0);
        if (why) {
                printf("SKIP: sendfile_splice_failure: %s is %s: sendfile does not splice there\n",
                       dirs[0], why);
        } else {
                iom_sys.splice = fail_splice;
                ck_assert_err(iomem_sendfile(out, f, 0, size), EIO);
                ck_assert_msg(strstr(iomem_errormsg(), p), "message names the object: %s",
                              iomem_errormsg());
                iom_sys = iom_sys_default;
                ck_assert_int_eq(lseek(out, 0, SEEK_CUR), 0);
        }
        ck_assert_int_eq(iomem_sendfile(out, f, 0, size), (ssize_t)size);
        check_sent(out, 0, size, seed, 0, 0);
        close(out);
        unlink(q);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

START_TEST(mmap_failure_leaves_window_whole)
{
        uint64_t seed = 29;
        const char *p = make_file(1, "fault", 16 * MIB, seed);
        struct iomem_window *w = SENTINEL;
        inject_mmap(1, ENOMEM, 0);
        ck_assert_err(iomem_window_new(&w, 8 * MIB, 2 * MIB), ENOMEM);
        ck_assert_ptr_eq(w, SENTINEL);
        iom_sys = iom_sys_default;
        w = new_window(8 * MIB, 2 * MIB); /* 4 slots */
        struct iomem *f = open_dax(p, IOMEM_RDWR, w);
        borrow_check(f, 0, 4 * MIB, seed); /* chunks 0 and 1 */

        /* A miss whose mapping fails (with eviction, and without). */
        for (int c = 2; c < 8; c++) {
                struct iomem_window_stat before = wstat(w);
                struct iovec iov[2];
                inject_mmap(1, ENOMEM, 0);
                ck_assert_err(iomem_borrow(f, (uint64_t)c * 2 * MIB, 100, iov, 2), ENOMEM);
                iom_sys = iom_sys_default;
                struct iomem_window_stat after = wstat(w);
                ck_assert_uint_eq(after.misses, before.misses);
                ck_assert_uint_eq(after.misses - after.evictions, after.chunks_used);
                borrow_check(f, (uint64_t)c * 2 * MIB, 100, seed);
        }
        /* Part way through an acquire of three chunks that are not mapped
         * (FIFO after reading chunks 0 to 3 holds just those): nothing is
         * pinned, the chunk mapped before the failure stays. */
        ck_assert_int_eq(iomem_window_set_policy(w, IOMEM_EVICT_FIFO), 0);
        ck_assert_int_eq(iomem_rdlock(f), 0); /* held until the unlock, not the next borrow */
        borrow_check(f, 0, 8 * MIB, seed);
        ck_assert_int_eq(iomem_unlock(f), 0);
        struct iomem_window_stat before = wstat(w);
        inject_mmap(2, ENOMEM, 0);
        ck_assert_err(iomem_acquire(f, 8 * MIB, 6 * MIB), ENOMEM);
        ck_assert_uint_eq(wstat(w).misses, before.misses + 1);
        iom_sys = iom_sys_default;
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.acquired, 0);
        ck_assert_uint_eq(wstat(w).chunks_pinned, 0);
        ck_assert_err(iomem_release(f, 0, PAGE), EINVAL);
        ck_assert_int_eq(iomem_acquire(f, 0, 8 * MIB), (ssize_t)(8 * MIB));
        ck_assert_uint_eq(wstat(w).chunks_pinned, 4);
        ck_assert_int_eq(iomem_release(f, 0, 8 * MIB), 0);

        /* Even putting the reservation back fails: that slot is given up,
         * the others go on. */
        inject_mmap(1, ENOMEM, 1);
        struct iovec iov[2];
        ck_assert_err(iomem_borrow(f, 14 * MIB, 100, iov, 2), ENOMEM);
        iom_sys = iom_sys_default;
        /* Down to chunk 0: the last borrow, held until the next, is of a
         * chunk the acquire below asks for. */
        for (int c = 7; c >= 0; c--)
                borrow_check(f, (uint64_t)c * 2 * MIB + 7, 1000, seed);
        ck_assert_uint_le(wstat(w).chunks_used, 3);
        ck_assert_int_eq(iomem_acquire(f, 0, 6 * MIB), (ssize_t)(6 * MIB));
        ck_assert_err(iomem_acquire(f, 6 * MIB, 2 * MIB), ENOBUFS);
        iomem_close(&f);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* ---- the suite ------------------------------------------------------------------------ */

/* Remove the files of directory d whose names end with suffix. */
static void remove_files(const char *d, const char *suffix)
{
        DIR *dp = opendir(d);
        if (!dp)
                return;
        struct dirent *e;
        char path[512];
        size_t n = strlen(suffix);
        while ((e = readdir(dp))) {
                size_t len = strlen(e->d_name);
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && len >= n &&
                    !strcmp(e->d_name + len - n, suffix)) {
                        snprintf(path, sizeof path, "%s/%s", d, e->d_name);
                        unlink(path);
                }
        }
        closedir(dp);
}

static void remove_dir(const char *d)
{
        remove_files(d, "");
        rmdir(d);
}

/* A test's files go when it ends (path_in names them after its process):
 * in the VM tier the DAX filesystem holds a few hundred MiB. */
static void remove_test_files(void)
{
        char suffix[32];
        snprintf(suffix, sizeof suffix, "-%d", (int)getpid());
        remove_files(dirs[0], suffix);
        remove_files(dirs[1], suffix);
}

int main(int argc, char **argv)
{
        if (argc == 4 && !strcmp(argv[1], "--default-window"))
                return default_window_program(argv[2], argv[3]);
        if (!realpath(argv[0], self))
                snprintf(self, sizeof self, "/proc/self/exe");
        const char *under = getenv("IOMEM_TEST_DAX_DIR");
        if (!under || !*under)
                under = "/var/tmp";
        snprintf(dirs[0], sizeof dirs[0], "%.40s/iomem-dax-XXXXXX", under);
        snprintf(dirs[1], sizeof dirs[1], "/dev/shm/iomem-dax-XXXXXX");
        if (!mkdtemp(dirs[0]) || !mkdtemp(dirs[1])) {
                printf("SKIP: cannot make directories in %s and /dev/shm\n", under);
                return TEST_SKIP;
        }
        Suite *s = suite_create("dax");
        TCase *tc = tcase_create("window");
        tcase_set_timeout(tc, 120);
        tcase_add_checked_fixture(tc, NULL, remove_test_files);
        tcase_add_test(tc, window_arguments);
        tcase_add_test(tc, window_delete_busy);
        tcase_add_test(tc, random_borrow_covers_file);
        tcase_add_test(tc, enobufs_window_full_of_pins);
        tcase_add_test(tc, willneed_maps_chunks_ahead_within_the_window);
        tcase_add_test(tc, enobufs_five_more_than_remain);
        tcase_add_test(tc, pins_nest_and_release_in_parts);
        tcase_add_test(tc, every_policy);
        suite_add_tcase(s, tc);
        tc = tcase_create("file");
        tcase_set_timeout(tc, 120);
        tcase_add_checked_fixture(tc, NULL, remove_test_files);
        if (IOMEM_PLATFORM_LINUX) { /* SEEK_HOLE: Linux's */
                tcase_add_test(tc, holes_on_ext4);
                tcase_add_test(tc, holes_on_tmpfs);
        }
        if (!IOMEM_PLATFORM_LINUX)
                printf("SKIP: the cases of holes and splice (the POSIX platform layer has neither "
                       "SEEK_HOLE nor splice)\n");
        if (IOMEM_PLATFORM_LINUX) /* SEEK_HOLE: Linux's */
                tcase_add_test(tc, data_runs_stay_right_when_holes_change);
        tcase_add_test(tc, truncate_over_pins_is_busy);
        tcase_add_test(tc, pins_hold_against_other_processes);
        tcase_add_test(tc, the_shared_state_comes_and_goes_with_the_handles);
        tcase_add_test(tc, a_child_attaches_afresh_after_the_parent_closed);
        tcase_add_test(tc, a_broken_shared_state_is_made_anew);
        tcase_add_test(tc, pins_past_16_tib_are_efbig);
        tcase_add_test(tc, external_truncate_then_borrow);
        tcase_add_test(tc, gift_copies);
        tcase_add_test(tc, largest_file_offsets);
        tcase_add_test(tc, bufcount_looks_only);
        if (IOMEM_PLATFORM_LINUX) /* SEEK_HOLE: Linux's */
                tcase_add_test(tc, acquired_blocks_stay_holes);
        tcase_add_test(tc, failed_acquire_allocates_and_pins_nothing);
        tcase_add_test(tc, persist_takes_the_narrowest_way);
        tcase_add_test(tc, aio_read_into_holes);
        tcase_add_test(tc, dax_flag_as_expected);
        tcase_add_test(tc, mountinfo_names_virtiofs);
        tcase_add_test(tc, open_create_unlink);
        tcase_add_test(tc, nofollow_refuses_symlinks);
        tcase_add_test(tc, open_fd_adopts_regular_files);
        tcase_add_test(tc, default_window_size);
        tcase_add_test(tc, read_lock_keeps_borrowed_chunks);
        tcase_add_test(tc, a_borrow_is_kept_until_the_next);
        tcase_add_test(tc, borrows_go_with_their_threads);
        tcase_add_test(tc, threads_share_a_window);
        tcase_add_test(tc, fork_child_starts_clean);
        tcase_add_test(tc, threads_of_a_child_share_the_inherited_handle);
        tcase_add_test(tc, a_child_truncates_beside_a_first_call_through_another_handle);
        tcase_add_test(tc, transfers_through_small_window);
        tcase_add_test(tc, mmap_failure_leaves_window_whole);
        tcase_add_test(tc, sendfile_every_way_out);
        if (IOMEM_PLATFORM_LINUX) /* splice: Linux's */
                tcase_add_test(tc, sendfile_splice_failure);
        suite_add_tcase(s, tc);
        int r = test_run(s);
        remove_dir(dirs[0]);
        remove_dir(dirs[1]);
        return r;
}
