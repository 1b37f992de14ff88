/* SPDX-License-Identifier: MIT */
/* Helpers shared by the Check suites. */
#ifndef IOMEM_TEST_COMMON_H
#define IOMEM_TEST_COMMON_H

#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <iomem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Exit code that Meson counts as a skipped test. */
#define TEST_SKIP 77

/* The backend a behaviour suite runs against (IOMEM_TEST_BACKEND). */
static inline const char *test_backend(void)
{
        const char *b = getenv("IOMEM_TEST_BACKEND");
        return b && *b ? b : "memfd";
}

/* A URI unique to this process and call, on the suite's backend. */
static inline const char *test_uri(const char *tag)
{
        static __thread char buf[8][128];
        static __thread unsigned n;
        char *u = buf[n++ % 8];
        static unsigned seq;
        snprintf(u, 128, "%s:iomem-test-%d-%s-%u", test_backend(), (int)getpid(), tag,
                 __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED));
        return u;
}

/* Open a new object of size bytes on the suite's backend, or fail. */
static inline struct iomem *test_open_new(const char *tag, size_t size)
{
        struct iomem_opts *o = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, size), 0);
        struct iomem *f = NULL;
        const char *uri = test_uri(tag);
        int r = iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o);
        ck_assert_msg(r == 0, "open %s: %d %s", uri, r, iomem_errormsg());
        iomem_opts_delete(&o);
        if (!strncmp(uri, "shm:", 4))
                iomem_unlink(uri); /* gone when the test's process ends */
        return f;
}

/* Assert r == -err and that the message names the cause. */
#define ck_assert_err(r, err)                                                       \
        do {                                                                        \
                long r_ = (long)(r);                                                \
                ck_assert_msg(r_ == -(err), "expected %s (-%d), got %ld (%s)",      \
                              #err, err, r_, iomem_errormsg());                     \
                ck_assert_ptr_nonnull(strstr(iomem_errormsg(), ": "));              \
        } while (0)

/* Run a Check suite; exit status for Meson. */
static inline int test_run(Suite *s)
{
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* Wait for a child; return its exit status, or 128+signal. */
static inline int test_wait(pid_t pid)
{
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Open descriptors and mappings of this process: what must not leak. */
static inline int test_count_fds(void)
{
        int n = 0;
        char path[64];
        for (int fd = 0; fd < 1024; fd++) {
                snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
                n += access(path, F_OK) == 0;
        }
        return n;
}

/* Mappings of memfd and shm objects only: sanitizers' allocators map
 * anonymous memory of their own as they please. */
static inline int test_count_maps(void)
{
        FILE *fp = fopen("/proc/self/maps", "r");
        char line[512];
        int n = 0;
        while (fp && fgets(line, sizeof line, fp))
                n += strstr(line, "/memfd:") || strstr(line, "/dev/shm/");
        if (fp)
                fclose(fp);
        return n;
}

/* Mappings whose line in /proc/self/maps names tag (one object's). */
static inline int test_count_maps_of(const char *tag)
{
        FILE *fp = fopen("/proc/self/maps", "r");
        char line[512];
        int n = 0;
        while (fp && fgets(line, sizeof line, fp))
                n += strstr(line, tag) != NULL;
        if (fp)
                fclose(fp);
        return n;
}

#endif
