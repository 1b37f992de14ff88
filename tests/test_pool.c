/* SPDX-License-Identifier: MIT */
/*
 * The gift pool reuses what it is given back: the memory that a gift,
 * truncate, iomem_plain_fd or iomem_free lets go, and the buffers of a
 * process that died, make the next iomem_alloc buffers, zero-filled,
 * without the pool growing; it keeps no more than its limit of unused
 * memory, gives all of it back when the last handle closes, and spans a
 * bounded multiple of what it holds however the sizes mix. Each promise
 * is checked by the bytes another process reads. Run on each backend
 * with a gift pool.
 */
#include "config.h"
#include "common.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>

#define MIB ((size_t)1 << 20)
#define PIECE (2 * MIB)
#define KEEP_LIMIT (64 * MIB)

struct obj {
        struct iomem *f;
        char uri[128];
};

static void need_gift_pool(void)
{
        if (!(test_caps() & IOMEM_CAP_GIFT)) {
                printf("SKIP: %s has no gift pool\n", test_backend());
                exit(TEST_SKIP);
        }
}

/* A new object whose region (mshare) has room for size bytes of file and
 * as much of pool; unlinked by close_obj. */
static struct obj open_obj(const char *tag, size_t size)
{
        need_gift_pool();
        struct obj o;
        snprintf(o.uri, sizeof o.uri, "%s", test_uri(tag));
        struct iomem_opts *opts = NULL;
        ck_assert_int_eq(iomem_opts_new(&opts), 0);
        ck_assert_int_eq(iomem_opts_set_size(opts, size), 0);
        int r = iomem_open(&o.f, o.uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, opts);
        ck_assert_msg(r == 0, "open %s: %s", o.uri, iomem_errormsg());
        iomem_opts_delete(&opts);
        return o;
}

static void close_obj(struct obj *o)
{
        if (test_caps() & IOMEM_CAP_NAMED)
                ck_assert_int_eq(iomem_unlink(o->uri), 0);
        ck_assert_int_eq(iomem_close(&o->f), 0);
}

/* Another handle on the object, from nothing this handle's process shares
 * but the descriptor (memfd) or the name. */
static int reopen(const struct obj *o, struct iomem **g, int flags)
{
        if (test_caps() & IOMEM_CAP_NAMED)
                return iomem_open(g, o->uri, flags, NULL);
        return iomem_open_fd(g, test_backend(), dup(iomem_fd(o->f)), flags, NULL);
}

static struct iomem_stat stat_of(struct iomem *f)
{
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        return st;
}

static unsigned char *alloc_zeroed(struct iomem *f, size_t len)
{
        unsigned char *p;
        ck_assert_msg(iomem_alloc(f, len, (void **)&p) == 0, "alloc %zu: %s", len, iomem_errormsg());
        for (size_t i = 0; i < len; i += 512)
                ck_assert_msg(p[i] == 0, "byte %zu of a %zu-byte buffer is %d, not 0", i, len, p[i]);
        return p;
}

static void gift(struct iomem *f, void *p, size_t len, size_t off)
{
        struct iovec v = { p, len };
        ck_assert_msg(iomem_gift(f, off, len, &v, 1, IOMEM_GIFT_NOCOPY) == 1, "gift %zu at %zu: %s", len,
                      off, iomem_errormsg());
}

/* A second process, on a handle of its own, finds want at [0, len). */
static void other_process_reads(const struct obj *o, const unsigned char *want, size_t len)
{
        if (!test_forked_children_run("another process reads the bytes"))
                return;
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *g;
                unsigned char *got = malloc(len);
                if (!got || reopen(o, &g, IOMEM_RDONLY) || iomem_pread(g, got, len, 0) != (ssize_t)len)
                        _exit(2);
                _exit(memcmp(got, want, len) ? 1 : 0);
        }
        ck_assert_int_eq(test_wait(pid), 0);
}

/* The blocks of the descriptor this process has open whose path names
 * the object's pool (shm's sidecar, memfd's twin); -1 when there is none
 * (mshare keeps it in its region). */
static long long pool_file_blocks(const struct obj *o)
{
        const char *name = strchr(o->uri, ':') + 1;
        DIR *d = opendir("/proc/self/fd");
        ck_assert_ptr_nonnull(d);
        long long blocks = -1;
        for (struct dirent *e; (e = readdir(d));) {
                char path[300], target[512];
                snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
                ssize_t n = readlink(path, target, sizeof target - 1);
                if (n <= 0)
                        continue;
                target[n] = 0;
                struct stat st;
                if (strstr(target, name) && strstr(target, ".iomem") && stat(path, &st) == 0)
                        blocks = (long long)st.st_blocks;
        }
        closedir(d);
        return blocks;
}

/* A producer allocates, fills and gifts over the same range again and
 * again: from its third round on, each buffer is the memory the gift
 * before gave back, at the same address, zero-filled, and the pool stops
 * growing. */
START_TEST(a_producer_reuses_what_its_gifts_replaced)
{
        struct obj o = open_obj("producer", 4 * PIECE);
        unsigned char *seen[2] = { 0 };
        uint64_t span = 0;
        for (int round = 0; round < 50; round++) {
                unsigned char *p = alloc_zeroed(o.f, PIECE);
                if (round >= 2) {
                        ck_assert_ptr_eq(p, seen[round % 2]);
                        ck_assert_uint_eq(stat_of(o.f).pool_span, span);
                }
                seen[round % 2] = p;
                memset(p, round + 1, PIECE);
                gift(o.f, p, PIECE, PIECE);
                struct iomem_stat st = stat_of(o.f);
                span = st.pool_span;
                ck_assert_uint_eq(st.pool_held, 0);
                ck_assert_uint_eq(st.pool_free, round ? PIECE : 0);
        }
        ck_assert_uint_eq(span, 2 * PIECE);
        /* A hole, then the last round's bytes. */
        unsigned char *want = calloc(1, 2 * PIECE);
        memset(want + PIECE, 50, PIECE);
        other_process_reads(&o, want, 2 * PIECE);
        free(want);
        close_obj(&o);
}
END_TEST

/* iomem_free gives the buffer back; the next one of that size is it,
 * zeroed, and another size is cut from it when it fits. */
START_TEST(a_freed_buffer_is_the_next_one_zeroed)
{
        struct obj o = open_obj("free", 16 * MIB);
        unsigned char *p = alloc_zeroed(o.f, 4 * MIB);
        memset(p, 0xab, 4 * MIB);
        ck_assert_uint_eq(stat_of(o.f).pool_held, 4 * MIB);
        ck_assert_int_eq(iomem_free(o.f, p, 4 * MIB), 0);
        struct iomem_stat st = stat_of(o.f);
        ck_assert_uint_eq(st.pool_held, 0);
        ck_assert_uint_eq(st.pool_free, 4 * MIB);
        ck_assert_ptr_eq(alloc_zeroed(o.f, 4 * MIB), p);
        ck_assert_int_eq(iomem_free(o.f, p, 4 * MIB), 0);
        unsigned char *q = alloc_zeroed(o.f, MIB);
        ck_assert_ptr_eq(q, p);
        st = stat_of(o.f);
        ck_assert_uint_eq(st.pool_free, 3 * MIB);
        ck_assert_uint_eq(st.pool_span, 4 * MIB);
        close_obj(&o);
}
END_TEST

/* Truncate and iomem_plain_fd let the pool's pages of the file go: they
 * are free for the next buffers, and the bytes stay right. */
START_TEST(truncate_and_putting_in_place_give_pages_back)
{
        struct obj o = open_obj("cut", 16 * MIB);
        unsigned char *p = alloc_zeroed(o.f, 4 * MIB);
        memset(p, 7, 4 * MIB);
        gift(o.f, p, 4 * MIB, 0);
        ck_assert_int_eq(iomem_truncate(o.f, MIB), 0);
        ck_assert_uint_eq(stat_of(o.f).pool_free, 3 * MIB);
        unsigned char *want = malloc(MIB), *got = malloc(MIB);
        memset(want, 7, MIB);
        other_process_reads(&o, want, MIB);
        if (strcmp(test_backend(), "mshare")) {
                ck_assert_int_ge(iomem_plain_fd(o.f), 0);
                ck_assert_uint_eq(stat_of(o.f).pool_free, 4 * MIB);
                ck_assert_int_eq(pread(iomem_fd(o.f), got, MIB, 0), (ssize_t)MIB);
                ck_assert(!memcmp(got, want, MIB));
        } else {
                printf("mshare has no plain descriptor; the rest is shm's and memfd's\n");
        }
        free(want);
        free(got);
        close_obj(&o);
}
END_TEST

/* Free memory beyond the keep limit (as much as the file has in the pool,
 * and 64 MiB) goes back to the system at once; what was given back is
 * reused before the pool grows; the last close gives the rest back. */
START_TEST(unused_memory_is_bounded_and_given_back)
{
        const size_t n = 40, len = 4 * MIB;
        struct obj o = open_obj("bound", n * len);
        ck_assert_int_eq(iomem_truncate(o.f, 0), 0);
        unsigned char *p[40];
        for (size_t i = 0; i < n; i++)
                memset(p[i] = alloc_zeroed(o.f, len), 0x5a, len);
        for (size_t i = 0; i < n; i++)
                ck_assert_int_eq(iomem_free(o.f, p[i], len), 0);
        struct iomem_stat st = stat_of(o.f);
        ck_assert_uint_eq(st.pool_free, KEEP_LIMIT);
        ck_assert_uint_eq(st.pool_span, n * len);
        long long blocks = pool_file_blocks(&o);
        /* The metadata's few MiB, and what is kept; the POSIX platform
         * layer cannot punch holes, so what it gives back stays backed
         * (as zeros) until the object is truncated or removed. */
        if (blocks >= 0 && IOMEM_PLATFORM_LINUX)
                ck_assert_int_le(blocks * 512, (long long)(KEEP_LIMIT + 8 * MIB));
        /* Given back or kept, the offsets make the next buffers, zeroed. */
        for (size_t i = 0; i < n; i++)
                p[i] = alloc_zeroed(o.f, len);
        ck_assert_uint_eq(stat_of(o.f).pool_span, n * len);
        /* What the file has in the pool lets it keep as much more. */
        const size_t gifted = 8;
        for (size_t i = 0; i < gifted; i++)
                gift(o.f, p[i], len, i * len);
        for (size_t i = gifted; i < n; i++)
                ck_assert_int_eq(iomem_free(o.f, p[i], len), 0);
        ck_assert_uint_eq(stat_of(o.f).pool_free, gifted * len + KEEP_LIMIT);
        ck_assert_int_eq(iomem_truncate(o.f, 0), 0);
        ck_assert_uint_eq(stat_of(o.f).pool_free, KEEP_LIMIT);
        if (!(test_caps() & IOMEM_CAP_NAMED) || blocks < 0) {
                close_obj(&o);
                return;
        }
        /* A named object outlives its handles: the last close leaves it no
         * free memory. */
        ck_assert_int_eq(iomem_close(&o.f), 0);
        ck_assert_int_eq(reopen(&o, &o.f, IOMEM_RDWR), 0);
        st = stat_of(o.f);
        ck_assert_uint_eq(st.pool_free, 0);
        if (IOMEM_PLATFORM_LINUX) /* (no holes punched on POSIX, above) */
                ck_assert_int_le(pool_file_blocks(&o) * 512, (long long)(8 * MIB));
        close_obj(&o);
}
END_TEST

/* A buffer larger than the keep limit, freed and allocated again: the
 * part given back and the part kept make it again, at the same offsets,
 * zeroed, without putting anything in place. */
START_TEST(a_buffer_larger_than_the_limit_is_reused)
{
        const size_t len = 100 * MIB;
        struct obj o = open_obj("large", 2 * len);
        ck_assert_int_eq(iomem_truncate(o.f, 0), 0);
        for (int round = 0; round < 3; round++) {
                unsigned char *p = alloc_zeroed(o.f, len);
                memset(p, round + 1, len);
                ck_assert_int_eq(iomem_free(o.f, p, len), 0);
                struct iomem_stat st = stat_of(o.f);
                ck_assert_uint_eq(st.pool_span, len);
                ck_assert_uint_eq(st.pool_free, KEEP_LIMIT);
        }
        close_obj(&o);
}
END_TEST

/* A process killed holding buffers it filled gives them back: the next
 * buffers are cut from them, zeroed, and the pool does not grow. */
START_TEST(a_dead_process_buffers_come_back)
{
        if (!test_forked_children_run("a child holds buffers and dies"))
                return;
        struct obj o = open_obj("dead", 16 * MIB);
        int ready[2];
        ck_assert_int_eq(pipe(ready), 0);
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *g;
                void *b;
                if (reopen(&o, &g, IOMEM_RDWR))
                        _exit(2);
                for (int i = 0; i < 3; i++) {
                        if (iomem_alloc(g, MIB, &b))
                                _exit(3);
                        memset(b, 0xee, MIB);
                }
                if (write(ready[1], "k", 1) != 1)
                        _exit(4);
                pause();
                _exit(5);
        }
        close(ready[1]);
        char c;
        ck_assert_int_eq(read(ready[0], &c, 1), 1);
        close(ready[0]);
        ck_assert_uint_eq(stat_of(o.f).pool_held, 3 * MIB);
        kill(pid, SIGKILL);
        ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
        for (int i = 0; i < 3; i++)
                alloc_zeroed(o.f, MIB);
        struct iomem_stat st = stat_of(o.f);
        ck_assert_uint_eq(st.pool_span, 3 * MIB);
        ck_assert_uint_eq(st.pool_held, 3 * MIB);
        close_obj(&o);
}
END_TEST

/* Gifts of mixed sizes at random places, 100 times the file's size: the
 * pool spans no more than twice what it holds plus the keep limit (what
 * the file has in the pool and 64 MiB) and a buffer (putting gifted bytes in place when its free offsets are in
 * pieces too small), and every byte is the last one given. */
START_TEST(mixed_sizes_keep_fragmentation_bounded)
{
        const size_t size = 8 * MIB;
        static const size_t lens[] = { 4096, 16384, 65536, 262144, MIB, 2 * MIB };
        struct obj o = open_obj("mixed", size);
        ck_assert_int_eq(iomem_truncate(o.f, size), 0);
        unsigned char *shadow = calloc(1, size);
        uint64_t rng = 7, gifted = 0, widest = 0;
        for (unsigned i = 1; gifted < 100 * size; i++) {
                rng = rng * 6364136223846793005u + 1442695040888963407u;
                size_t len = lens[(rng >> 33) % 6];
                size_t off = (size_t)((rng >> 13) % ((size - len) / 4096 + 1)) * 4096;
                unsigned char *p = alloc_zeroed(o.f, len);
                memset(p, (int)(i & 0xff), len);
                gift(o.f, p, len, off);
                memset(shadow + off, (int)(i & 0xff), len);
                gifted += len;
                struct iomem_stat st = stat_of(o.f);
                widest = st.pool_span > widest ? st.pool_span : widest;
        }
        ck_assert_uint_le(widest, 3 * size + KEEP_LIMIT + 2 * MIB);
        printf("%s: %llu bytes gifted over %zu; the pool spanned %llu at most\n", test_backend(),
               (unsigned long long)gifted, size, (unsigned long long)widest);
        other_process_reads(&o, shadow, size);
        free(shadow);
        close_obj(&o);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("pool");
        TCase *t = tcase_create("pool");
        tcase_add_test(t, a_producer_reuses_what_its_gifts_replaced);
        tcase_add_test(t, a_freed_buffer_is_the_next_one_zeroed);
        tcase_add_test(t, truncate_and_putting_in_place_give_pages_back);
        tcase_add_test(t, unused_memory_is_bounded_and_given_back);
        tcase_add_test(t, a_buffer_larger_than_the_limit_is_reused);
        tcase_add_test(t, a_dead_process_buffers_come_back);
        tcase_add_test(t, mixed_sizes_keep_fragmentation_bounded);
        suite_add_tcase(s, t);
        return test_run(s);
}
