/* SPDX-License-Identifier: MIT */
/*
 * Behaviour of one backend (IOMEM_TEST_BACKEND): data through every path,
 * the six operations, truncate, gift, seals, reopening.
 */
#include "config.h"
#include "common.h"

#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))
#define MIB (1024 * 1024)

static void fill_pattern(char *p, size_t n, unsigned seed)
{
        for (size_t i = 0; i < n; i++)
                p[i] = (char)(seed + i * 131);
}

static void check_pattern(const char *p, size_t n, unsigned seed)
{
        for (size_t i = 0; i < n; i++)
                ck_assert_msg(p[i] == (char)(seed + i * 131), "byte %zu differs", i);
}

/* A program that does not use the library (cp(1)) copies the plain
 * descriptor by its /proc path; the copy must be the object, byte for byte. */
static void check_copied_by_cp(struct iomem *f, int fd)
{
        char src[64], dst[] = "/tmp/iomem-plain-XXXXXX";
        int out = mkstemp(dst);
        ck_assert_int_ge(out, 0);
        close(out);
        snprintf(src, sizeof src, "/proc/%d/fd/%d", (int)getpid(), fd);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                execlp("cp", "cp", src, dst, (char *)NULL);
                _exit(127);
        }
        ck_assert_int_eq(test_wait(pid), 0);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        char *want = malloc(st.size + 1), *got = malloc(st.size + 1);
        ck_assert_int_eq(iomem_pread(f, want, st.size, 0), (ssize_t)st.size);
        out = open(dst, O_RDONLY);
        ck_assert_int_ge(out, 0);
        /* One more byte asked for: the copy must end where the object does. */
        ck_assert_int_eq(read(out, got, st.size + 1), (ssize_t)st.size);
        ck_assert_int_eq(memcmp(want, got, st.size), 0);
        close(out);
        unlink(dst);
        free(want);
        free(got);
}

START_TEST(stat_reports_the_object)
{
        struct iomem *f = test_open_new("stat", 3 * PAGE + 5);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.size, 3 * PAGE + 5);
        ck_assert_uint_eq(st.page_size, PAGE);
        ck_assert_str_eq(st.backend, test_backend());
        /* Its backend's capabilities, but for DAX, which is the file's. */
        ck_assert_uint_eq(st.caps & ~IOMEM_CAP_DAX, test_caps() & ~IOMEM_CAP_DAX);
        ck_assert_int_eq(st.dax, !!(st.caps & IOMEM_CAP_DAX));
        ck_assert_uint_eq(st.acquired, 0);
        ck_assert_int_ge(iomem_fd(f), 0);
        iomem_close(&f);
        ck_assert_ptr_null(f);
}
END_TEST

START_TEST(pwrite_pread_round_trip_and_growth)
{
        struct iomem *f = test_open_new("rw", 0);
        size_t n = 3 * PAGE + 123;
        char *in = malloc(n), *out = malloc(n + 100);
        fill_pattern(in, n, 7);
        ck_assert_int_eq(iomem_pwrite(f, in, n, 1000), (ssize_t)n);
        struct iomem_stat st;
        iomem_stat(f, &st);
        ck_assert_uint_eq(st.size, 1000 + n);
        ck_assert_int_eq(iomem_pread(f, out, n + 100, 1000), (ssize_t)n); /* stops at EOF */
        check_pattern(out, n, 7);
        /* The gap before the write reads as zeros. */
        ck_assert_int_eq(iomem_pread(f, out, 1000, 0), 1000);
        for (int i = 0; i < 1000; i++)
                ck_assert_int_eq(out[i], 0);
        ck_assert_int_eq(iomem_pread(f, out, 10, 1000 + n), 0);
        free(in);
        free(out);
        iomem_close(&f);
}
END_TEST

START_TEST(borrow_shows_holes_and_data)
{
        struct iomem *f = test_open_new("borrow", 8 * PAGE);
        ck_assert_int_eq(iomem_pwrite(f, "abc", 3, 2 * PAGE + 1), 3);
        struct iovec iov[8];
        ssize_t n = iomem_borrow(f, 0, 8 * PAGE, iov, 8);
        if (!IOMEM_PLATFORM_LINUX && !strcmp(test_backend(), "dax")) {
                /* A dax: file's holes are the filesystem's, which POSIX
                 * cannot see: every byte is data, and reads as it is. */
                ck_assert_int_eq(n, 1);
                ck_assert_uint_eq(iov[0].iov_len, 8 * PAGE);
                ck_assert_int_eq(((char *)iov[0].iov_base)[0], 0);
                ck_assert_int_eq(memcmp((char *)iov[0].iov_base + 2 * PAGE + 1, "abc", 3), 0);
                iomem_close(&f);
                return;
        }
        ck_assert_int_eq(n, 3);
        ck_assert_ptr_null(iov[0].iov_base);
        ck_assert_uint_eq(iov[0].iov_len, 2 * PAGE);
        ck_assert_ptr_nonnull(iov[1].iov_base);
        ck_assert_uint_eq(iov[1].iov_len, PAGE);
        ck_assert_int_eq(memcmp((char *)iov[1].iov_base + 1, "abc", 3), 0);
        ck_assert_ptr_null(iov[2].iov_base);
        ck_assert_int_eq(iomem_bufcount(f, 0, 8 * PAGE), n);
        /* Byte ranges, clamped at EOF. */
        n = iomem_borrow(f, 2 * PAGE + 2, 100 * PAGE, iov, 8);
        ck_assert_int_eq(n, 2);
        ck_assert_uint_eq(iov[0].iov_len + iov[1].iov_len, 6 * PAGE - 2);
        ck_assert_int_eq(*(char *)iov[0].iov_base, 'b');
        ck_assert_int_eq(iomem_borrow(f, 8 * PAGE, PAGE, iov, 8), 0);
        ck_assert_int_eq(iomem_bufcount(f, 9 * PAGE, PAGE), 0);
        iomem_close(&f);
}
END_TEST

START_TEST(acquire_retrieve_release)
{
        struct iomem *f = test_open_new("acq", 4 * PAGE);
        ck_assert_int_eq(iomem_acquire(f, 0, 4 * PAGE), (ssize_t)(4 * PAGE));
        struct iovec a, b;
        ck_assert_int_eq(iomem_retrieve(f, 0, 4 * PAGE, &a, 1), 1);
        ck_assert_uint_eq(a.iov_len, 4 * PAGE);
        fill_pattern(a.iov_base, 4 * PAGE, 3);
        /* Same addresses every time, byte offsets allowed. */
        ck_assert_int_eq(iomem_retrieve(f, PAGE + 7, 10, &b, 1), 1);
        ck_assert_ptr_eq(b.iov_base, (char *)a.iov_base + PAGE + 7);
        /* Written through the mapping, read through every other path. */
        char buf[64];
        ck_assert_int_eq(iomem_pread(f, buf, 64, PAGE), 64);
        check_pattern(buf, 0, 3);
        ck_assert_int_eq(memcmp(buf, (char *)a.iov_base + PAGE, 64), 0);
        struct iovec c;
        ck_assert_int_eq(iomem_borrow(f, 0, 4 * PAGE, &c, 1), 1);
        ck_assert_ptr_eq(c.iov_base, a.iov_base);
        struct iomem_stat st;
        iomem_stat(f, &st);
        ck_assert_uint_eq(st.acquired, 4 * PAGE);
        /* Nested, released in parts. */
        ck_assert_int_eq(iomem_acquire(f, PAGE, PAGE), (ssize_t)PAGE);
        ck_assert_int_eq(iomem_release(f, 0, 4 * PAGE), 0);
        ck_assert_int_eq(iomem_retrieve(f, PAGE, PAGE, &b, 1), 1);
        ck_assert_err(iomem_retrieve(f, 0, PAGE, &b, 1), ENOENT);
        iomem_stat(f, &st);
        ck_assert_uint_eq(st.acquired, PAGE);
        ck_assert_int_eq(iomem_release(f, PAGE, PAGE), 0);
        ck_assert_err(iomem_release(f, PAGE, PAGE), EINVAL);
        iomem_stat(f, &st);
        ck_assert_uint_eq(st.acquired, 0);
        iomem_close(&f);
}
END_TEST

START_TEST(acquire_clamps_to_the_last_page)
{
        struct iomem *f = test_open_new("clamp", 2 * PAGE + 1);
        ck_assert_int_eq(iomem_acquire(f, 0, 10 * PAGE), (ssize_t)(3 * PAGE));
        ck_assert_int_eq(iomem_acquire(f, 3 * PAGE, PAGE), 0);
        ck_assert_int_eq(iomem_bufcount(f, 0, 3 * PAGE), 1);
        ck_assert_int_eq(iomem_release(f, 0, 3 * PAGE), 0);
        iomem_close(&f);
}
END_TEST

START_TEST(retrieve_fills_what_fits)
{
        if (!test_backend_has(IOMEM_CAP_GIFT, "retrieve of a range split by an adopted gift"))
                return;
        struct iomem *f = test_open_new("fits", 4 * PAGE);
        void *buf;
        ck_assert_int_eq(iomem_alloc(f, PAGE, &buf), 0);
        struct iovec g = { buf, PAGE };
        ck_assert_int_eq(iomem_gift(f, PAGE, PAGE, &g, 1, IOMEM_GIFT_NOCOPY), 1);
        ck_assert_int_eq(iomem_acquire(f, 0, 4 * PAGE), (ssize_t)(4 * PAGE));
        ssize_t need = iomem_bufcount(f, 0, 4 * PAGE);
        ck_assert_int_eq(need, 3);
        struct iovec iov[3] = { { 0 } };
        ck_assert_int_eq(iomem_retrieve(f, 0, 4 * PAGE, iov, 2), 2);
        ck_assert_ptr_eq(iov[1].iov_base, buf);
        ck_assert_int_eq(iomem_retrieve(f, 0, 4 * PAGE, iov, 3), 3);
        ck_assert_uint_eq(iov[0].iov_len + iov[1].iov_len + iov[2].iov_len, 4 * PAGE);
        iomem_release(f, 0, 4 * PAGE);
        iomem_close(&f);
}
END_TEST

START_TEST(truncate_shrinks_zeroes_and_grows)
{
        struct iomem *f = test_open_new("trunc", 0);
        char in[3 * 4096];
        memset(in, 'z', sizeof in);
        ck_assert_int_eq(iomem_pwrite(f, in, sizeof in, 0), (ssize_t)sizeof in);
        ck_assert_int_eq(iomem_truncate(f, 100), 0);
        struct iomem_stat st;
        iomem_stat(f, &st);
        ck_assert_uint_eq(st.size, 100);
        ck_assert_int_eq(iomem_truncate(f, sizeof in), 0);
        char out[sizeof in];
        ck_assert_int_eq(iomem_pread(f, out, sizeof out, 0), (ssize_t)sizeof out);
        for (size_t i = 0; i < sizeof out; i++)
                ck_assert_int_eq(out[i], i < 100 ? 'z' : 0);
        ck_assert_err(iomem_truncate(f, (size_t)1 << 50), EFBIG);
        iomem_close(&f);
}
END_TEST

START_TEST(truncate_and_gift_refused_over_pins)
{
        struct iomem *f = test_open_new("pins", 4 * PAGE);
        ck_assert_int_eq(iomem_acquire(f, 2 * PAGE, PAGE), (ssize_t)PAGE);
        ck_assert_err(iomem_truncate(f, 2 * PAGE + 1), EBUSY);
        ck_assert_int_eq(iomem_truncate(f, 3 * PAGE), 0);
        char x[16] = "gift";
        struct iovec g = { x, sizeof x };
        ck_assert_err(iomem_gift(f, 2 * PAGE + 8, sizeof x, &g, 1, 0), EBUSY);
        ck_assert_int_eq(iomem_gift(f, PAGE, sizeof x, &g, 1, 0), 1);
        ck_assert_int_eq(iomem_release(f, 2 * PAGE, PAGE), 0);
        ck_assert_int_eq(iomem_truncate(f, 0), 0);
        iomem_close(&f);
}
END_TEST

START_TEST(gift_adopts_alloc_memory_without_copy)
{
        if (!test_backend_has(IOMEM_CAP_GIFT, "adoption of iomem_alloc memory"))
                return;
        struct iomem *f = test_open_new("gift", 0);
        size_t n = 4 * PAGE;
        void *buf;
        ck_assert_int_eq(iomem_alloc(f, n, &buf), 0);
        ck_assert_uint_eq((uintptr_t)buf % PAGE, 0);
        fill_pattern(buf, n, 11);
        struct iovec g = { buf, n };
        ck_assert_int_eq(iomem_gift(f, 0, n, &g, 1, IOMEM_GIFT_NOCOPY), 1);
        struct iomem_stat st;
        iomem_stat(f, &st);
        ck_assert_uint_eq(st.size, n);
        ck_assert_uint_eq(st.gift_adopted, n);
        ck_assert_uint_eq(st.gift_copied, 0);
        /* The file's memory is the buffer itself: no copy was made. */
        struct iovec r;
        ck_assert_int_eq(iomem_acquire(f, 0, n), (ssize_t)n);
        ck_assert_int_eq(iomem_retrieve(f, 0, n, &r, 1), 1);
        ck_assert_ptr_eq(r.iov_base, buf);
        char out[64];
        ck_assert_int_eq(iomem_pread(f, out, 64, PAGE), 64);
        ck_assert_int_eq(memcmp(out, (char *)buf + PAGE, 64), 0);
        ck_assert_int_eq(iomem_release(f, 0, n), 0);
        /* It is the file's now, not the caller's. */
        ck_assert_err(iomem_free(f, buf, n), EINVAL);
        iomem_close(&f);
}
END_TEST

/* Reading gifted memory page by page from another handle maps it in large
 * pieces, not a mapping per page (which would run into vm.max_map_count). */
START_TEST(gifted_memory_is_mapped_in_few_pieces)
{
        if (!test_backend_has(IOMEM_CAP_GIFT | IOMEM_CAP_FDPASS,
                              "the mappings of adopted memory, read through a descriptor"))
                return;
        /* Named, so that a shm descriptor finds its metadata. */
        const char *uri = test_uri("giftmaps");
        struct iomem *f;
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL), 0);
        size_t n = 1024 * PAGE;
        void *buf;
        ck_assert_int_eq(iomem_alloc(f, n, &buf), 0);
        memset(buf, 'p', n);
        struct iovec g = { buf, n };
        ck_assert_int_eq(iomem_gift(f, 0, n, &g, 1, IOMEM_GIFT_NOCOPY), 1);
        struct iomem *h;
        ck_assert_int_eq(iomem_open_fd(&h, test_backend(), dup(iomem_fd(f)), IOMEM_RDONLY, NULL), 0);
        int before = test_count_maps();
        for (size_t off = 0; off < n; off += PAGE) {
                char c = 0;
                ck_assert_int_eq(iomem_pread(h, &c, 1, off), 1);
                ck_assert_int_eq(c, 'p');
        }
        ck_assert_int_le(test_count_maps() - before, 4);
        iomem_close(&h);
        iomem_close(&f);
        if (test_caps() & IOMEM_CAP_NAMED)
                ck_assert_int_eq(iomem_unlink(uri), 0);
}
END_TEST

START_TEST(gift_copies_foreign_memory)
{
        struct iomem *f = test_open_new("giftcopy", 0);
        char a[100], b[5000];
        fill_pattern(a, sizeof a, 1);
        fill_pattern(b, sizeof b, 2);
        struct iovec g[2] = { { a, sizeof a }, { b, sizeof b } };
        ck_assert_int_eq(iomem_gift(f, 10, sizeof a + sizeof b, g, 2, 0), 2);
        struct iomem_stat st;
        iomem_stat(f, &st);
        ck_assert_uint_eq(st.size, 10 + sizeof a + sizeof b);
        ck_assert_uint_eq(st.gift_copied, sizeof a + sizeof b);
        ck_assert_uint_eq(st.gift_adopted, 0);
        char out[sizeof b];
        ck_assert_int_eq(iomem_pread(f, out, sizeof a, 10), (ssize_t)sizeof a);
        check_pattern(out, sizeof a, 1);
        ck_assert_int_eq(iomem_pread(f, out, sizeof b, 10 + sizeof a), (ssize_t)sizeof b);
        check_pattern(out, sizeof b, 2);
        /* The caller's memory stays the caller's. */
        memset(a, 0, sizeof a);
        ck_assert_int_eq(iomem_pread(f, out, sizeof a, 10), (ssize_t)sizeof a);
        check_pattern(out, sizeof a, 1);
        ck_assert_err(iomem_gift(f, 0, sizeof a, g, 1, IOMEM_GIFT_NOCOPY), EXDEV);
        iomem_close(&f);
}
END_TEST

START_TEST(gift_part_of_a_buffer_and_replace_data)
{
        struct iomem *f = test_open_new("giftpart", 0);
        char old[4096 * 2];
        memset(old, 'o', sizeof old);
        ck_assert_int_eq(iomem_pwrite(f, old, sizeof old, 0), (ssize_t)sizeof old);
        void *buf;
        ck_assert_int_eq(iomem_alloc(f, 3 * PAGE, &buf), 0);
        memset(buf, 'n', 3 * PAGE);
        /* The middle page replaces the file's second page; the rest of the
         * buffer stays the caller's. */
        struct iovec g = { (char *)buf + PAGE, PAGE };
        ck_assert_int_eq(iomem_gift(f, PAGE, PAGE, &g, 1, test_gift_flags()), 1);
        char out[8];
        ck_assert_int_eq(iomem_pread(f, out, 1, 0), 1);
        ck_assert_int_eq(out[0], 'o');
        ck_assert_int_eq(iomem_pread(f, out, 1, PAGE), 1);
        ck_assert_int_eq(out[0], 'n');
        ck_assert_err(iomem_free(f, buf, 3 * PAGE), EINVAL);
        ck_assert_int_eq(iomem_free(f, buf, PAGE), 0);
        ck_assert_int_eq(iomem_free(f, (char *)buf + 2 * PAGE, PAGE), 0);
        iomem_close(&f);
}
END_TEST

START_TEST(gift_ending_the_file_with_a_partial_page)
{
        struct iomem *f = test_open_new("gifttail", 0);
        void *buf;
        ck_assert_int_eq(iomem_alloc(f, 2 * PAGE, &buf), 0);
        memset(buf, 'q', 2 * PAGE);
        struct iovec g = { buf, PAGE + 10 };
        ck_assert_int_eq(iomem_gift(f, 0, PAGE + 10, &g, 1, test_gift_flags()), 1);
        struct iomem_stat st;
        iomem_stat(f, &st);
        ck_assert_uint_eq(st.size, PAGE + 10);
        test_assert_gifted(&st, PAGE + 10);
        /* Growing shows zeros past the old end, not the buffer's bytes. */
        ck_assert_int_eq(iomem_truncate(f, 2 * PAGE), 0);
        char out[32];
        ck_assert_int_eq(iomem_pread(f, out, 20, PAGE), 20);
        for (int i = 0; i < 20; i++)
                ck_assert_int_eq(out[i], i < 10 ? 'q' : 0);
        iomem_close(&f);
}
END_TEST

START_TEST(free_returns_unused_buffers)
{
        struct iomem *f = test_open_new("free", 0);
        void *a, *b;
        ck_assert_int_eq(iomem_alloc(f, 100, &a), 0);
        ck_assert_int_eq(iomem_alloc(f, 5 * PAGE, &b), 0);
        ck_assert_ptr_ne(a, b);
        memset(a, 1, 100);
        ck_assert_int_eq(iomem_free(f, a, 100), 0);
        ck_assert_err(iomem_free(f, a, 100), EINVAL);
        ck_assert_err(iomem_free(f, b, PAGE), EINVAL);
        ck_assert_int_eq(iomem_free(f, b, 5 * PAGE), 0);
        iomem_close(&f);
}
END_TEST

START_TEST(second_handle_shares_pins_and_data)
{
        /* A shm descriptor finds its metadata by the object's name, so the
         * name must still exist here (test_open_new removes it at once). */
        const char *uri = test_uri("twice");
        struct iomem_opts *o;
        iomem_opts_new(&o);
        iomem_opts_set_size(o, 4 * PAGE);
        struct iomem *f, *g = NULL;
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, o), 0);
        iomem_opts_delete(&o);
        int fd = dup(iomem_fd(f));
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(iomem_open_fd(&g, test_backend(), fd, IOMEM_RDWR, NULL), 0);
        ck_assert_int_eq(iomem_acquire(f, 0, PAGE), (ssize_t)PAGE);
        ck_assert_err(iomem_truncate(g, 0), EBUSY);
        ck_assert_int_eq(iomem_pwrite(g, "shared", 6, 10), 6);
        struct iovec v;
        ck_assert_int_eq(iomem_retrieve(f, 10, 6, &v, 1), 1);
        ck_assert_int_eq(memcmp(v.iov_base, "shared", 6), 0);
        /* Closing a handle drops its pins. */
        iomem_close(&f);
        ck_assert_int_eq(iomem_truncate(g, 0), 0);
        iomem_close(&g);
        if (test_caps() & IOMEM_CAP_NAMED)
                ck_assert_int_eq(iomem_unlink(uri), 0);
}
END_TEST

START_TEST(shm_reopens_by_name)
{
        const char *uri = test_uri("name");
        struct iomem *f, *g, *h = NULL;
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL), 0);
        ck_assert_int_eq(iomem_pwrite(f, "persist", 7, 0), 7);
        ck_assert_err(iomem_open(&h, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL), EEXIST);
        ck_assert_ptr_null(h);
        ck_assert_int_eq(iomem_open(&g, uri, IOMEM_RDONLY, NULL), 0);
        char out[8] = { 0 };
        ck_assert_int_eq(iomem_pread(g, out, 7, 0), 7);
        ck_assert_str_eq(out, "persist");
        ck_assert_int_eq(iomem_acquire(g, 0, PAGE), (ssize_t)PAGE);
        ck_assert_err(iomem_truncate(f, 0), EBUSY);
        struct iovec v;
        ck_assert_err(iomem_retrieve(g, 0, 7, &v, 1), EROFS);
        iomem_close(&g);
        ck_assert_int_eq(iomem_truncate(f, 0), 0);
        /* The data object holds exactly the file's bytes. */
        struct stat st;
        ck_assert_int_eq(fstat(iomem_fd(f), &st), 0);
        ck_assert_int_eq(st.st_size, 0);
        iomem_close(&f);
        ck_assert_int_eq(iomem_unlink(uri), 0);
        ck_assert_err(iomem_open(&f, uri, IOMEM_RDWR, NULL), ENOENT);
        ck_assert_err(iomem_unlink(uri), ENOENT);
}
END_TEST

START_TEST(shm_adopts_an_object_made_elsewhere)
{
        char name[64];
        snprintf(name, sizeof name, "/iomem-test-foreign-%d", (int)getpid());
        int fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 3 * PAGE), 0);
        ck_assert_int_eq(pwrite(fd, "elsewhere", 9, PAGE), 9);
        close(fd);
        char uri[80];
        snprintf(uri, sizeof uri, "shm:%s", name + 1);
        struct iomem *f;
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR, NULL), 0);
        struct iomem_stat st;
        iomem_stat(f, &st);
        ck_assert_uint_eq(st.size, 3 * PAGE);
        struct iovec v[4];
        if (IOMEM_PLATFORM_LINUX) {
                /* Its hole is seen as one (SEEK_HOLE). */
                ck_assert_int_eq(iomem_borrow(f, 0, 3 * PAGE, v, 4), 3);
                ck_assert_ptr_null(v[0].iov_base);
                ck_assert_int_eq(memcmp(v[1].iov_base, "elsewhere", 9), 0);
        } else {
                /* POSIX cannot tell holes: every byte is data, and reads so. */
                ck_assert_int_eq(iomem_borrow(f, 0, 3 * PAGE, v, 4), 1);
                ck_assert_int_eq(((char *)v[0].iov_base)[0], 0);
                ck_assert_int_eq(memcmp((char *)v[0].iov_base + PAGE, "elsewhere", 9), 0);
        }
        iomem_close(&f);
        ck_assert_int_eq(iomem_unlink(uri), 0);
}
END_TEST

START_TEST(memfd_seals)
{
        struct iomem_opts *o;
        struct iomem *f;
        iomem_opts_new(&o);
        iomem_opts_set_size(o, 2 * PAGE);
        iomem_opts_set_seals(o, IOMEM_SEAL_SHRINK | IOMEM_SEAL_GROW);
        ck_assert_int_eq(iomem_open(&f, "memfd:sealed", IOMEM_RDWR, o), 0);
        ck_assert_err(iomem_truncate(f, PAGE), EPERM);
        ck_assert_err(iomem_truncate(f, 3 * PAGE), EPERM);
        ck_assert_err(iomem_pwrite(f, "x", 1, 2 * PAGE), EPERM);
        ck_assert_int_eq(iomem_pwrite(f, "x", 1, 0), 1);
        /* Nobody can resize the descriptor itself. */
        ck_assert_int_eq(ftruncate(iomem_fd(f), 0), -1);
        ck_assert_int_eq(errno, EPERM);
        iomem_close(&f);

        iomem_opts_set_seals(o, IOMEM_SEAL_WRITE);
        ck_assert_int_eq(iomem_open(&f, "memfd:frozen", IOMEM_RDWR, o), 0);
        ck_assert_err(iomem_pwrite(f, "x", 1, 0), EPERM);
        ck_assert_err(iomem_truncate(f, 0), EPERM);
        /* A peer gets a read-only view of the same bytes. */
        struct iomem *g;
        ck_assert_int_eq(iomem_open_fd(&g, "memfd", dup(iomem_fd(f)), IOMEM_RDONLY, NULL), 0);
        struct iomem_stat st;
        iomem_stat(g, &st);
        ck_assert_uint_eq(st.size, 2 * PAGE);
        iomem_close(&g);
        iomem_close(&f);
        iomem_opts_delete(&o);
}
END_TEST

/* A memfd object is two descriptors: its data, which other programs may
 * be handed, and its metadata. The data alone, in a process with no other
 * handle of the object, is refused (never given metadata of its own);
 * both, as iomem_send passes them, reach the shared state. */
START_TEST(memfd_data_descriptor_alone_is_refused_elsewhere)
{
        struct iomem *f = test_open_new("alone", PAGE);
        ck_assert_int_eq(iomem_pwrite(f, "both", 4, 0), 4);
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int data = dup(iomem_fd(f));
                iomem_close(&f); /* the handle came along with fork */
                struct iomem *g = NULL;
                if (iomem_open_fd(&g, "memfd", data, IOMEM_RDWR, NULL) != -ENOENT ||
                    !strstr(iomem_errormsg(), "iomem_send"))
                        _exit(1);
                close(data);
                char out[4];
                if (iomem_recv(sv[1], &g, IOMEM_RDWR) || iomem_pread(g, out, 4, 0) != 4 ||
                    memcmp(out, "both", 4) || iomem_acquire(g, 0, PAGE) != (ssize_t)PAGE)
                        _exit(2);
                /* Pinned here, seen there. */
                if (write(sv[1], "p", 1) != 1 || read(sv[1], out, 1) != 1)
                        _exit(3);
                iomem_close(&g);
                _exit(0);
        }
        ck_assert_int_eq(iomem_send(sv[0], f), 0);
        char c;
        ck_assert_int_eq(read(sv[0], &c, 1), 1);
        ck_assert_err(iomem_truncate(f, 0), EBUSY);
        ck_assert_int_eq(write(sv[0], "g", 1), 1);
        ck_assert_int_eq(test_wait(pid), 0);
        ck_assert_int_eq(iomem_truncate(f, 0), 0);
        close(sv[0]);
        close(sv[1]);
        /* The metadata's descriptor is no data descriptor. */
        int fds[2];
        struct iomem *g = NULL;
        ck_assert_int_eq(test_sent_fds(f, fds, 2), 2);
        ck_assert_err(iomem_open_fd(&g, "memfd", fds[1], IOMEM_RDWR, NULL), EINVAL);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "metadata"));
        close(fds[0]);
        close(fds[1]);
        iomem_close(&f);
}
END_TEST

START_TEST(seal_is_not_supported)
{
        struct iomem *f = test_open_new("no-seal", PAGE);
        ck_assert_err(iomem_seal(f, IOMEM_SEAL_WRITE), ENOTSUP);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.seals, 0);
        ck_assert_int_eq(iomem_pwrite(f, "x", 1, 0), 1);
        iomem_close(&f);
}
END_TEST

/* Fill, then seal: the kernel's own F_SEAL_WRITE (not FUTURE_WRITE, which
 * a consumer checking F_GET_SEALS refuses), gifted bytes in place first,
 * every write refused with one code, reads and borrows as before. */
START_TEST(memfd_seal_after_filling)
{
        struct iomem *f = test_open_new("fill-seal", 0);
        char page[4096];
        memset(page, 'f', sizeof page);
        ck_assert_int_eq(iomem_pwrite(f, page, PAGE, 0), (ssize_t)PAGE);
        void *buf;
        ck_assert_int_eq(iomem_alloc(f, PAGE, &buf), 0);
        fill_pattern(buf, PAGE, 31);
        struct iovec g = { buf, PAGE };
        ck_assert_int_eq(iomem_gift(f, PAGE, PAGE, &g, 1, IOMEM_GIFT_NOCOPY), 1);
        /* Mapped for writing by this handle, released: no obstacle. */
        struct iovec r;
        ck_assert_int_eq(iomem_acquire(f, 0, 2 * PAGE), (ssize_t)(2 * PAGE));
        ck_assert_int_eq(iomem_retrieve(f, 0, PAGE, &r, 1), 1);
        ((char *)r.iov_base)[0] = 'F';
        ck_assert_err(iomem_seal(f, IOMEM_SEAL_WRITE), EBUSY);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "(this one)"));
        ck_assert_int_eq(iomem_release(f, 0, 2 * PAGE), 0);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.seals, 0);
        ck_assert_int_eq(iomem_seal(f, IOMEM_SEAL_WRITE), 0);
        ck_assert_int_eq(iomem_seal(f, IOMEM_SEAL_WRITE), 0); /* already: nothing to add */
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.seals, IOMEM_SEAL_WRITE);
        int fd = iomem_fd(f);
        ck_assert_int_eq(fcntl(fd, F_GET_SEALS) & F_SEAL_WRITE, F_SEAL_WRITE);
        /* What a consumer that does not use the library sees. */
        char in[2 * 4096];
        ck_assert_int_eq(pread(fd, in, 2 * PAGE, 0), (ssize_t)(2 * PAGE));
        ck_assert_int_eq(in[0], 'F');
        ck_assert_int_eq(memcmp(in + 1, page + 1, PAGE - 1), 0);
        check_pattern(in + PAGE, PAGE, 31);
        check_copied_by_cp(f, fd);
        ck_assert_int_eq(iomem_plain_fd(f), fd);
        errno = 0;
        ck_assert_int_eq(pwrite(fd, "x", 1, 0), -1);
        ck_assert_int_eq(errno, EPERM);
        ck_assert_ptr_eq(mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
        void *ro = mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0);
        ck_assert_ptr_ne(ro, MAP_FAILED);
        ck_assert_int_eq(((char *)ro)[0], 'F');
        munmap(ro, PAGE);
        /* Every write through the library: -EPERM. */
        ck_assert_err(iomem_pwrite(f, "x", 1, 0), EPERM);
        ck_assert_err(iomem_truncate(f, PAGE), EPERM);
        ck_assert_err(iomem_gift(f, 0, 1, &(struct iovec){ page, 1 }, 1, 0), EPERM);
        ck_assert_err(iomem_copy(f, 0, f, PAGE, 10), EPERM);
        ck_assert_int_eq(iomem_acquire(f, 0, PAGE), (ssize_t)PAGE);
        ck_assert_err(iomem_retrieve(f, 0, PAGE, &r, 1), EPERM);
        ck_assert_int_eq(iomem_borrow(f, 0, PAGE, &r, 1), 1);
        ck_assert_int_eq(((char *)r.iov_base)[0], 'F');
        ck_assert_int_eq(iomem_release(f, 0, PAGE), 0);
        iomem_close(&f);
}
END_TEST

/* Another process holds writable memory acquired: -EBUSY naming it. Once
 * it released (its handle still open), the seal goes through, and its
 * next write is refused. */
START_TEST(memfd_seal_waits_for_other_processes)
{
        struct iomem *f = test_open_new("seal-other", 2 * PAGE);
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                iomem_close(&f);
                struct iomem *g = NULL;
                struct iovec r;
                char c;
                if (iomem_recv(sv[1], &g, IOMEM_RDWR) || iomem_acquire(g, 0, PAGE) != (ssize_t)PAGE ||
                    iomem_retrieve(g, 0, PAGE, &r, 1) != 1)
                        _exit(1);
                memcpy(r.iov_base, "other", 5);
                if (iomem_pwrite(g, "more", 4, PAGE) != 4 || write(sv[1], "a", 1) != 1 ||
                    read(sv[1], &c, 1) != 1 || iomem_release(g, 0, PAGE) || write(sv[1], "r", 1) != 1 ||
                    read(sv[1], &c, 1) != 1)
                        _exit(2);
                if (iomem_pwrite(g, "late", 4, 0) != -EPERM)
                        _exit(3);
                iomem_close(&g);
                _exit(0);
        }
        ck_assert_int_eq(iomem_send(sv[0], f), 0);
        char c, want[32];
        ck_assert_int_eq(read(sv[0], &c, 1), 1);
        ck_assert_err(iomem_seal(f, IOMEM_SEAL_WRITE), EBUSY);
        snprintf(want, sizeof want, "process %d", (int)pid);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), want));
        ck_assert_int_eq(write(sv[0], "g", 1), 1);
        ck_assert_int_eq(read(sv[0], &c, 1), 1);
        ck_assert_int_eq(iomem_seal(f, IOMEM_SEAL_WRITE), 0);
        ck_assert_int_eq(write(sv[0], "g", 1), 1);
        ck_assert_int_eq(test_wait(pid), 0);
        char out[8];
        ck_assert_int_eq(pread(iomem_fd(f), out, 5, 0), 5);
        ck_assert_int_eq(memcmp(out, "other", 5), 0);
        ck_assert_int_eq(pread(iomem_fd(f), out, 4, PAGE), 4);
        ck_assert_int_eq(memcmp(out, "more", 4), 0);
        close(sv[0]);
        close(sv[1]);
        iomem_close(&f);
}
END_TEST

/* A seal refused because another handle had a range acquired: that
 * handle's mappings turn read-only at its last release, and writable again
 * in place when it writes, at the same addresses. */
START_TEST(memfd_refused_seal_leaves_writers_writing)
{
        struct iomem *f = test_open_new("seal-refused", 2 * PAGE), *g = NULL;
        ck_assert_int_eq(iomem_open_fd(&g, "memfd", dup(iomem_fd(f)), IOMEM_RDWR, NULL), 0);
        struct iovec r, again;
        ck_assert_int_eq(iomem_acquire(g, 0, PAGE), (ssize_t)PAGE);
        ck_assert_int_eq(iomem_retrieve(g, 0, PAGE, &r, 1), 1);
        memcpy(r.iov_base, "first", 5);
        ck_assert_err(iomem_seal(f, IOMEM_SEAL_WRITE), EBUSY);
        ck_assert_int_eq(iomem_release(g, 0, PAGE), 0);
        ck_assert_int_eq(iomem_acquire(g, 0, PAGE), (ssize_t)PAGE);
        ck_assert_int_eq(iomem_retrieve(g, 0, PAGE, &again, 1), 1);
        ck_assert_ptr_eq(again.iov_base, r.iov_base);
        memcpy(again.iov_base, "again", 5);
        ck_assert_int_eq(iomem_release(g, 0, PAGE), 0);
        ck_assert_int_eq(iomem_pwrite(g, "write", 5, PAGE), 5);
        char out[5];
        ck_assert_int_eq(iomem_pread(f, out, 5, 0), 5);
        ck_assert_int_eq(memcmp(out, "again", 5), 0);
        ck_assert_int_eq(iomem_pread(f, out, 5, PAGE), 5);
        ck_assert_int_eq(memcmp(out, "write", 5), 0);
        /* g maps its bytes still: named, then gone with it. */
        ck_assert_err(iomem_seal(f, IOMEM_SEAL_WRITE), EBUSY);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "(this one) (for writing)"));
        iomem_close(&g);
        ck_assert_int_eq(iomem_seal(f, IOMEM_SEAL_WRITE), 0);
        iomem_close(&f);
}
END_TEST

/* Shrink and grow seals after creation are the kernel's too, so they
 * bind programs that do not use the library; bad calls fail cleanly. */
START_TEST(memfd_seal_size_and_errors)
{
        struct iomem *f = test_open_new("seal-size", 2 * PAGE);
        ck_assert_err(iomem_seal(f, 0x8), EINVAL);
        ck_assert_err(iomem_seal(NULL, IOMEM_SEAL_WRITE), EINVAL);
        ck_assert_int_eq(iomem_seal(f, 0), 0);
        ck_assert_int_eq(iomem_seal(f, IOMEM_SEAL_SHRINK), 0);
        ck_assert_err(iomem_truncate(f, PAGE), EPERM);
        errno = 0;
        ck_assert_int_eq(ftruncate(iomem_fd(f), PAGE), -1);
        ck_assert_int_eq(errno, EPERM);
        ck_assert_int_eq(iomem_truncate(f, 3 * PAGE), 0);
        ck_assert_int_eq(iomem_truncate(f, 3 * PAGE + 100), 0);
        ck_assert_int_eq(iomem_seal(f, IOMEM_SEAL_GROW), 0);
        /* The last page, part of the file, is still written and pinned. */
        ck_assert_int_eq(iomem_pwrite(f, "y", 1, 3 * PAGE + 50), 1);
        ck_assert_int_eq(iomem_acquire(f, 3 * PAGE, PAGE), (ssize_t)PAGE);
        ck_assert_int_eq(iomem_release(f, 3 * PAGE, PAGE), 0);
        ck_assert_err(iomem_truncate(f, 4 * PAGE), EPERM);
        ck_assert_err(iomem_pwrite(f, "x", 1, 3 * PAGE + 100), EPERM);
        ck_assert_int_eq(iomem_pwrite(f, "x", 1, 0), 1);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.seals, IOMEM_SEAL_SHRINK | IOMEM_SEAL_GROW);
        /* A read-only handle may not seal. */
        struct iomem *ro = NULL;
        ck_assert_int_eq(iomem_open_fd(&ro, "memfd", dup(iomem_fd(f)), IOMEM_RDONLY, NULL), 0);
        ck_assert_err(iomem_seal(ro, IOMEM_SEAL_WRITE), EROFS);
        ck_assert_err(iomem_plain_fd(NULL), EINVAL);
        ck_assert_int_eq(iomem_stat(ro, &st), 0);
        ck_assert_uint_eq(st.seals, IOMEM_SEAL_SHRINK | IOMEM_SEAL_GROW);
        iomem_close(&ro);
        iomem_close(&f);
}
END_TEST

/* A memfd another program made without MFD_ALLOW_SEALING takes no seal:
 * -EPERM saying so, and it stays writable. */
START_TEST(memfd_without_sealing_refuses_seals)
{
        int fd = memfd_create("unsealable", MFD_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, PAGE), 0);
        struct iomem *f = NULL;
        ck_assert_int_eq(iomem_open_fd(&f, "memfd", fd, IOMEM_RDWR, NULL), 0);
        ck_assert_err(iomem_seal(f, IOMEM_SEAL_WRITE), EPERM);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "MFD_ALLOW_SEALING"));
        ck_assert_int_eq(iomem_pwrite(f, "still", 5, 0), 5);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.seals, 0);
        iomem_close(&f);
}
END_TEST

START_TEST(foreign_memfd_is_usable_without_metadata)
{
        int fd = memfd_create("plain", MFD_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, 2 * PAGE), 0);
        ck_assert_int_eq(pwrite(fd, "raw", 3, PAGE), 3);
        struct iomem *f;
        ck_assert_int_eq(iomem_open_fd(&f, "memfd", fd, IOMEM_RDWR, NULL), 0);
        struct iomem_stat st;
        iomem_stat(f, &st);
        ck_assert_uint_eq(st.size, 2 * PAGE);
        ck_assert_uint_eq(st.caps & IOMEM_CAP_GIFT, 0);
        char out[4] = { 0 };
        ck_assert_int_eq(iomem_pread(f, out, 3, PAGE), 3);
        ck_assert_str_eq(out, "raw");
        void *buf;
        ck_assert_int_eq(iomem_alloc(f, PAGE, &buf), 0);
        struct iovec g = { buf, PAGE };
        ck_assert_err(iomem_gift(f, 0, PAGE, &g, 1, IOMEM_GIFT_NOCOPY), EXDEV);
        ck_assert_int_eq(iomem_gift(f, 0, PAGE, &g, 1, 0), 1);
        ck_assert_int_eq(iomem_free(f, buf, PAGE), 0);
        iomem_close(&f);
}
END_TEST

START_TEST(plain_fd_holds_the_objects_bytes_in_place)
{
        struct iomem *f = test_open_new("plain", 0);
        size_t n = 3 * PAGE;
        char *page = malloc(PAGE);
        memset(page, 'a', PAGE);
        ck_assert_int_eq(iomem_pwrite(f, page, PAGE, 0), (ssize_t)PAGE);
        /* Two pages gifted (adopted where the backend can), then a tail
         * that ends the object mid-page. */
        void *buf;
        ck_assert_int_eq(iomem_alloc(f, 2 * PAGE, &buf), 0);
        fill_pattern(buf, 2 * PAGE, 21);
        struct iovec g = { buf, 2 * PAGE };
        ck_assert_int_eq(iomem_gift(f, PAGE, 2 * PAGE, &g, 1, 0), 1);
        ck_assert_int_eq(iomem_pwrite(f, "tail", 4, n), 4);
        int fd = iomem_plain_fd(f);
        if (!strcmp(test_backend(), "mshare") || !strcmp(test_backend(), "devdax")) {
                ck_assert_err(fd, ENOTSUP);
                free(page);
                iomem_close(&f);
                return;
        }
        ck_assert_int_eq(fd, iomem_fd(f));
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, (off_t)(n + 4));
        char *in = malloc(n + 4);
        ck_assert_int_eq(pread(fd, in, n + 4, 0), (ssize_t)(n + 4));
        ck_assert_int_eq(memcmp(in, page, PAGE), 0);
        check_pattern(in + PAGE, 2 * PAGE, 21);
        ck_assert_int_eq(memcmp(in + n, "tail", 4), 0);
        check_copied_by_cp(f, fd);

        if (test_caps() & IOMEM_CAP_GIFT) {
                /* A new zero-copy gift leaves the pool again; while it is
                 * acquired it cannot move, and nothing changes. */
                ck_assert_int_eq(iomem_alloc(f, PAGE, &buf), 0);
                fill_pattern(buf, PAGE, 22);
                g = (struct iovec){ buf, PAGE };
                ck_assert_int_eq(iomem_gift(f, 0, PAGE, &g, 1, IOMEM_GIFT_NOCOPY), 1);
                ck_assert_int_eq(pread(fd, in, PAGE, 0), (ssize_t)PAGE);
                ck_assert_int_eq(in[0], 0); /* not in place yet: the old page was freed */
                ck_assert_int_eq(iomem_acquire(f, 0, PAGE), (ssize_t)PAGE);
                struct iovec r;
                ck_assert_int_eq(iomem_retrieve(f, 0, PAGE, &r, 1), 1);
                ck_assert_ptr_eq(r.iov_base, buf);
                ck_assert_err(iomem_plain_fd(f), EBUSY);
                ck_assert_int_eq(iomem_retrieve(f, 0, PAGE, &r, 1), 1);
                ck_assert_ptr_eq(r.iov_base, buf);
                ck_assert_int_eq(iomem_release(f, 0, PAGE), 0);
                /* A read-only handle may not move bytes. */
                struct iomem *ro = NULL;
                int rofd = dup(iomem_fd(f));
                ck_assert_int_eq(iomem_open_fd(&ro, test_backend(), rofd, IOMEM_RDONLY, NULL), 0);
                ck_assert_err(iomem_plain_fd(ro), EROFS);
                ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "out of place"));
                ck_assert_int_eq(iomem_plain_fd(f), fd);
                ck_assert_int_eq(pread(fd, in, PAGE, 0), (ssize_t)PAGE);
                check_pattern(in, PAGE, 22);
                check_copied_by_cp(f, fd);
                /* Nothing is out of place now: a reader may have it too. */
                ck_assert_int_eq(iomem_plain_fd(ro), iomem_fd(ro));
                iomem_close(&ro);
        }
        free(in);
        free(page);
        iomem_close(&f);
}
END_TEST

/* The data file is exactly as large as the object, whatever wrote its last
 * page: a pwrite into a hole there, an acquire of it, a zero-copy gift that
 * ends the object mid-page, put in place. */
START_TEST(data_file_size_is_the_objects)
{
        struct iomem *f = test_open_new("exact", 0);
        size_t size = PAGE + 100;
        struct stat st;
        ck_assert_int_eq(iomem_truncate(f, size), 0);
        ck_assert_int_eq(iomem_pwrite(f, "h", 1, PAGE + 10), 1);
        ck_assert_int_eq(fstat(iomem_fd(f), &st), 0);
        ck_assert_int_eq(st.st_size, (off_t)size);
        ck_assert_int_eq(iomem_acquire(f, PAGE, PAGE), (ssize_t)PAGE);
        ck_assert_int_eq(iomem_release(f, PAGE, PAGE), 0);
        ck_assert_int_eq(fstat(iomem_fd(f), &st), 0);
        ck_assert_int_eq(st.st_size, (off_t)size);
        void *buf;
        ck_assert_int_eq(iomem_alloc(f, PAGE, &buf), 0);
        memset(buf, 'g', 100);
        struct iovec g = { buf, 100 };
        ck_assert_int_eq(iomem_gift(f, PAGE, 100, &g, 1, test_gift_flags()), 1);
        int fd = iomem_plain_fd(f);
        ck_assert_int_eq(fd, iomem_fd(f));
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, (off_t)size);
        char in[128];
        ck_assert_int_eq(pread(fd, in, sizeof in, PAGE), 100);
        for (int i = 0; i < 100; i++)
                ck_assert_int_eq(in[i], 'g');
        check_copied_by_cp(f, fd);
        iomem_close(&f);
}
END_TEST

/* This process's locked memory, from the kernel (/proc/self/status). */
static long locked_bytes(void)
{
        long kb = test_proc_number("/proc/self/status", "VmLck: %ld kB");
        ck_assert_int_ge(kb, 0);
        return kb * 1024;
}

static struct iomem *open_wired(const char *tag, size_t size)
{
        struct iomem_opts *o;
        struct iomem *f = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_wired(o, 1), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, size), 0);
        ck_assert_err(iomem_opts_set_wired(o, 2), EINVAL);
        const char *uri = test_uri(tag);
        int r = iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, o);
        ck_assert_msg(r == 0, "open wired: %s", iomem_errormsg());
        iomem_opts_delete(&o);
        if (test_caps() & IOMEM_CAP_NAMED)
                ck_assert_int_eq(iomem_unlink(uri), 0);
        return f;
}

/* A wired handle's acquired memory is locked while pinned, counted once
 * where ranges nest or overlap, as the kernel counts it (VmLck), and
 * unlocked by the release that lets a page go, and by close. */
START_TEST(wired_ranges_are_locked_while_acquired)
{
        struct iomem *f = open_wired("wired", 8 * PAGE);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        /* The kernel counts no locked DAX or hugetlb pages in VmLck. */
        ck_assert_msg(!st.dax && st.page_size == PAGE, "VmLck cannot tell here");
        long base = locked_bytes();
        ck_assert_int_eq(iomem_acquire(f, 0, 4 * PAGE), (ssize_t)(4 * PAGE));
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.wired, 4 * PAGE);
        ck_assert_int_eq(locked_bytes() - base, (long)(4 * PAGE));
        ck_assert_int_eq(iomem_acquire(f, 2 * PAGE, 4 * PAGE), (ssize_t)(4 * PAGE));
        ck_assert_int_eq(iomem_acquire(f, 2 * PAGE, PAGE), (ssize_t)PAGE); /* nested */
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.wired, 6 * PAGE);
        ck_assert_int_eq(locked_bytes() - base, (long)(6 * PAGE));
        ck_assert_int_eq(iomem_release(f, 0, 4 * PAGE), 0); /* pages 2, 3 stay pinned */
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.wired, 4 * PAGE);
        ck_assert_int_eq(locked_bytes() - base, (long)(4 * PAGE));
        ck_assert_int_eq(iomem_release(f, 2 * PAGE, PAGE), 0);
        ck_assert_int_eq(iomem_release(f, 2 * PAGE, 4 * PAGE), 0);
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.wired, 0);
        ck_assert_int_eq(locked_bytes(), base);
        /* Advice to page locked memory out has nothing to act on. */
        ck_assert_int_eq(iomem_acquire(f, 0, 8 * PAGE), (ssize_t)(8 * PAGE));
        if (IOMEM_PLATFORM_LINUX)
                ck_assert_int_eq(iomem_advise(f, 0, 8 * PAGE, MADV_PAGEOUT), 0);
        ck_assert_int_eq(iomem_advise(f, 0, 8 * PAGE, MADV_DONTNEED), 0);
        ck_assert_int_eq(locked_bytes() - base, (long)(8 * PAGE));
        iomem_close(&f); /* with its pins */
        ck_assert_int_eq(locked_bytes(), base);
        /* A handle without the option locks nothing. */
        f = test_open_new("unwired", 4 * PAGE);
        ck_assert_int_eq(iomem_acquire(f, 0, 4 * PAGE), (ssize_t)(4 * PAGE));
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.wired, 0);
        ck_assert_int_eq(locked_bytes(), base);
        iomem_close(&f);
}
END_TEST

/* The handles of a process share one mapping of an mshare region: wired
 * memory, locked per handle, is refused there with a reason. */
START_TEST(wired_memory_is_refused_on_mshare)
{
        struct iomem_opts *o;
        struct iomem *f = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_wired(o, 1), 0);
        ck_assert_err(iomem_open(&f, test_uri("wired-mshare"), IOMEM_RDWR | IOMEM_CREATE, o), ENOTSUP);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "one mapping"));
        ck_assert_ptr_null(f);
        iomem_opts_delete(&o);
}
END_TEST

/* Under a small RLIMIT_MEMLOCK (a process without CAP_IPC_LOCK): what
 * fits is locked, the acquire that would pass it is -ENOMEM naming the
 * limit and `ulimit -l`, and leaves nothing pinned or locked. */
START_TEST(wired_memory_stops_at_rlimit_memlock)
{
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct rlimit rl = { 16 * PAGE, 16 * PAGE };
                if (test_become_nobody() || setrlimit(RLIMIT_MEMLOCK, &rl))
                        _exit(70);
                struct iomem *f = open_wired("wired-limit", 64 * PAGE);
                long base = locked_bytes();
                struct iomem_stat st;
                if (iomem_acquire(f, 0, 8 * PAGE) != (ssize_t)(8 * PAGE))
                        _exit(1);
                if (iomem_acquire(f, 8 * PAGE, 32 * PAGE) != -ENOMEM ||
                    !strstr(iomem_errormsg(), "RLIMIT_MEMLOCK") || !strstr(iomem_errormsg(), "ulimit -l"))
                        _exit(2);
                if (iomem_stat(f, &st) || st.wired != 8 * PAGE || st.acquired != 8 * PAGE ||
                    locked_bytes() - base != (long)(8 * PAGE))
                        _exit(3);
                /* Let go, and the room is there again. */
                if (iomem_release(f, 0, 8 * PAGE) || iomem_acquire(f, 8 * PAGE, 12 * PAGE) != (ssize_t)(12 * PAGE))
                        _exit(4);
                iomem_close(&f);
                _exit(0);
        }
        int status = test_wait(pid);
        if (status == 70) {
                fprintf(stderr, "SKIP: cannot become nobody to drop CAP_IPC_LOCK here\n");
                return;
        }
        ck_assert_int_eq(status, 0);
}
END_TEST

/* Every advice API.md names, on every backend: 0, the bytes untouched,
 * a pinned range's address and contents kept; anything else -EINVAL
 * (MADV_REMOVE and MADV_FREE would throw bytes away). POSIX has the first
 * four only: on its platform layer the others are -EINVAL, saying so. */
START_TEST(advise_every_value)
{
        static const int linux_only[] = { MADV_COLD, MADV_PAGEOUT, MADV_HUGEPAGE, MADV_NOHUGEPAGE };
#if IOMEM_PLATFORM_LINUX
        static const int all[] = { MADV_WILLNEED, MADV_DONTNEED, MADV_SEQUENTIAL, MADV_RANDOM,
                                   MADV_COLD, MADV_PAGEOUT, MADV_HUGEPAGE, MADV_NOHUGEPAGE };
#else
        static const int all[] = { MADV_WILLNEED, MADV_DONTNEED, MADV_SEQUENTIAL, MADV_RANDOM };
#endif
        struct iomem *f = test_open_new("advise", 0);
        for (size_t i = 0; !IOMEM_PLATFORM_LINUX && i < sizeof linux_only / sizeof linux_only[0]; i++) {
                ck_assert_err(iomem_advise(f, 0, PAGE, linux_only[i]), EINVAL);
                ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "platform: posix"));
        }
        char *src = malloc(4 * PAGE), *back = malloc(4 * PAGE);
        fill_pattern(src, 4 * PAGE, 41);
        ck_assert_int_eq(iomem_pwrite(f, src, 4 * PAGE, 0), (ssize_t)(4 * PAGE));
        ck_assert_int_eq(iomem_acquire(f, PAGE, PAGE), (ssize_t)PAGE);
        struct iovec pinned, v;
        ck_assert_int_eq(iomem_retrieve(f, PAGE, PAGE, &pinned, 1), 1);
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
                ck_assert_msg(iomem_advise(f, 0, 4 * PAGE, all[i]) == 0, "advice %d: %s", all[i],
                              iomem_errormsg());
                ck_assert_int_eq(iomem_advise(f, 10, 100, all[i]), 0);         /* inside a page */
                ck_assert_int_eq(iomem_advise(f, 100 * PAGE, PAGE, all[i]), 0); /* past the end */
                ck_assert_int_eq(iomem_advise(f, 0, 0, all[i]), 0);
                ck_assert_int_eq(iomem_pread(f, back, 4 * PAGE, 0), (ssize_t)(4 * PAGE));
                ck_assert_int_eq(memcmp(back, src, 4 * PAGE), 0);
                ck_assert_int_eq(iomem_retrieve(f, PAGE, PAGE, &v, 1), 1);
                ck_assert_ptr_eq(v.iov_base, pinned.iov_base);
                ck_assert_int_eq(memcmp(v.iov_base, src + PAGE, PAGE), 0);
        }
        ck_assert_err(iomem_advise(f, 0, PAGE, MADV_REMOVE), EINVAL);
        ck_assert_err(iomem_advise(f, 0, PAGE, MADV_FREE), EINVAL);
        ck_assert_err(iomem_advise(f, 0, 0, 12345), EINVAL);
        ck_assert_err(iomem_advise(f, SIZE_MAX, 2, MADV_WILLNEED), EOVERFLOW);
        ck_assert_err(iomem_advise(NULL, 0, PAGE, MADV_WILLNEED), EINVAL);
        ck_assert_int_eq(iomem_release(f, PAGE, PAGE), 0);
        free(src);
        free(back);
        iomem_close(&f);
}
END_TEST

/* The permissions of the mapping at address a in this process, from
 * /proc/self/maps ("rw-s"), or "" when nothing is mapped there. */
static const char *perms_at(const void *a)
{
        static char perms[8];
        char line[512];
        FILE *maps = fopen("/proc/self/maps", "r");
        perms[0] = 0;
        while (maps && fgets(line, sizeof line, maps)) {
                unsigned long lo, hi;
                char p[8];
                if (sscanf(line, "%lx-%lx %7s", &lo, &hi, p) == 3 && (uintptr_t)a >= lo && (uintptr_t)a < hi) {
                        snprintf(perms, sizeof perms, "%s", p);
                        break;
                }
        }
        if (maps)
                fclose(maps);
        return perms;
}

/* A data file sized like its object is mapped to its end only: what lies
 * past it is held without access (nothing reads past the file and takes a
 * SIGBUS), and the file grows into it at the same addresses. */
START_TEST(data_mapping_ends_at_the_file_and_grows_in_place)
{
        struct iomem *f = test_open_new("held", PAGE);
        struct iovec v;
        ck_assert_int_eq(iomem_acquire(f, 0, PAGE), (ssize_t)PAGE);
        ck_assert_int_eq(iomem_retrieve(f, 0, PAGE, &v, 1), 1);
        char *base = v.iov_base;
        ck_assert_int_eq(perms_at(base)[0], 'r');
        ck_assert_str_eq(perms_at(base + 2 * PAGE), "---p");
        ck_assert_int_eq(iomem_pwrite(f, "grown", 5, 2 * PAGE), 5);
        ck_assert_int_eq(iomem_acquire(f, 2 * PAGE, PAGE), (ssize_t)PAGE);
        ck_assert_int_eq(iomem_retrieve(f, 2 * PAGE, PAGE, &v, 1), 1);
        ck_assert_ptr_eq(v.iov_base, base + 2 * PAGE);
        ck_assert_int_eq(memcmp(v.iov_base, "grown", 5), 0);
        ck_assert_str_eq(perms_at(base + 4 * PAGE), "---p");
        ck_assert_int_eq(iomem_release(f, 0, PAGE), 0);
        ck_assert_int_eq(iomem_release(f, 2 * PAGE, PAGE), 0);
        /* Cut short, the tail is held without access again. */
        ck_assert_int_eq(iomem_truncate(f, PAGE), 0);
        ck_assert_str_eq(perms_at(base + 2 * PAGE), "---p");
        iomem_close(&f);
}
END_TEST

START_TEST(close_releases_everything)
{
        int fds = test_count_fds(), maps = test_count_maps();
        struct iomem *f = test_open_new("leak", 4 * PAGE);
        void *b;
        ck_assert_int_eq(iomem_acquire(f, 0, 4 * PAGE), (ssize_t)(4 * PAGE));
        ck_assert_int_eq(iomem_alloc(f, PAGE, &b), 0);
        ck_assert_int_eq(iomem_rdlock(f), 0);
        iomem_close(&f);
        ck_assert_int_eq(test_count_fds(), fds);
        ck_assert_int_eq(test_count_maps(), maps);
}
END_TEST

/* A BIND policy places every page on its node (node 0 exists everywhere;
 * the two-node placement is checked in the VM tier). */
START_TEST(numa_bind_places_memory)
{
        struct iomem_opts *o;
        iomem_opts_new(&o);
        ck_assert_int_eq(iomem_opts_set_numa(o, IOMEM_NUMA_BIND, 0), 0);
        struct iomem *f;
        const char *uri = test_uri("numa");
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, o), 0);
        iomem_opts_delete(&o);
        static char data[1 << 20];
        memset(data, 'n', sizeof data);
        ck_assert_int_eq(iomem_pwrite(f, data, sizeof data, 0), (ssize_t)sizeof data);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert(st.caps & IOMEM_CAP_NUMA);
        ck_assert_int_eq(st.numa_node, 0);
        iomem_close(&f);
        if (test_caps() & IOMEM_CAP_NAMED)
                iomem_unlink(uri);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("backend");
        TCase *tc = tcase_create(test_backend());
        tcase_add_test(tc, stat_reports_the_object);
        tcase_add_test(tc, pwrite_pread_round_trip_and_growth);
        tcase_add_test(tc, borrow_shows_holes_and_data);
        tcase_add_test(tc, acquire_retrieve_release);
        tcase_add_test(tc, acquire_clamps_to_the_last_page);
        tcase_add_test(tc, retrieve_fills_what_fits);
        tcase_add_test(tc, truncate_shrinks_zeroes_and_grows);
        tcase_add_test(tc, truncate_and_gift_refused_over_pins);
        tcase_add_test(tc, gift_adopts_alloc_memory_without_copy);
        tcase_add_test(tc, gifted_memory_is_mapped_in_few_pieces);
        tcase_add_test(tc, gift_copies_foreign_memory);
        tcase_add_test(tc, gift_part_of_a_buffer_and_replace_data);
        tcase_add_test(tc, gift_ending_the_file_with_a_partial_page);
        tcase_add_test(tc, free_returns_unused_buffers);
        tcase_add_test(tc, second_handle_shares_pins_and_data);
        if (!strcmp(test_backend(), "shm")) {
                /* shm's own: its names, objects other programs made. */
                tcase_add_test(tc, shm_reopens_by_name);
                tcase_add_test(tc, shm_adopts_an_object_made_elsewhere);
        }
        if (test_caps() & IOMEM_CAP_SEAL) {
                /* memfd's own: seals, memfds other programs made. */
                tcase_add_test(tc, memfd_seals);
                tcase_add_test(tc, foreign_memfd_is_usable_without_metadata);
                tcase_add_test(tc, memfd_data_descriptor_alone_is_refused_elsewhere);
                tcase_add_test(tc, memfd_seal_after_filling);
                tcase_add_test(tc, memfd_seal_waits_for_other_processes);
                tcase_add_test(tc, memfd_refused_seal_leaves_writers_writing);
                tcase_add_test(tc, memfd_seal_size_and_errors);
                tcase_add_test(tc, memfd_without_sealing_refuses_seals);
        } else {
                tcase_add_test(tc, seal_is_not_supported);
        }
        tcase_add_test(tc, plain_fd_holds_the_objects_bytes_in_place);
        /* Only shm and memfd keep a data file sized like the object. */
        if (!strcmp(test_backend(), "shm") || !strcmp(test_backend(), "memfd")) {
                tcase_add_test(tc, data_file_size_is_the_objects);
                tcase_add_test(tc, data_mapping_ends_at_the_file_and_grows_in_place);
        }
        tcase_add_test(tc, advise_every_value);
        if (strcmp(test_backend(), "mshare"))
                tcase_add_test(tc, wired_ranges_are_locked_while_acquired);
        else
                tcase_add_test(tc, wired_memory_is_refused_on_mshare);
        /* Objects a process without privileges may make. */
        if (!strcmp(test_backend(), "memfd") || !strcmp(test_backend(), "shm"))
                tcase_add_test(tc, wired_memory_stops_at_rlimit_memlock);
        tcase_add_test(tc, close_releases_everything);
        if (test_caps() & IOMEM_CAP_NUMA)
                tcase_add_test(tc, numa_bind_places_memory);
        suite_add_tcase(s, tc);
        return test_run(s);
}
