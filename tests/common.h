/* SPDX-License-Identifier: MIT */
/* Helpers shared by the Check suites. */
#ifndef IOMEM_TEST_COMMON_H
#define IOMEM_TEST_COMMON_H

#define _GNU_SOURCE
#include <check.h>
#include <grp.h>
#include <pwd.h>
#include <errno.h>
#include <iomem.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif

/* Exit code that Meson counts as a skipped test. */
#define TEST_SKIP 77

/* SIGBUS is a fault the library promises never to let through: a test
 * that calls test_fail_on_sigbus dies of it with a message instead. */
static inline void test_on_sigbus_(int sig)
{
        (void)sig;
        static const char msg[] = "SIGBUS: the library let a fault through\n";
        if (write(2, msg, sizeof msg - 1) < 0)
                _exit(98);
        _exit(99);
}

static inline void test_fail_on_sigbus(void)
{
        struct sigaction sa = { .sa_handler = test_on_sigbus_ };
        ck_assert_int_eq(sigaction(SIGBUS, &sa, NULL), 0);
}

/* The backend a behaviour suite runs against (IOMEM_TEST_BACKEND). */
static inline const char *test_backend(void)
{
        const char *b = getenv("IOMEM_TEST_BACKEND");
        return b && *b ? b : "memfd";
}

/* The IOMEM_CAP_* bits of the suite's backend, as iomem_backends() says:
 * where backends differ, a suite asks these rather than names. */
static inline unsigned test_caps(void)
{
        struct iomem_backend_info info[16];
        ssize_t n = iomem_backends(info, 16);
        for (ssize_t i = 0; i < n && i < 16; i++)
                if (!strcmp(info[i].name, test_backend()))
                        return info[i].caps;
        return 0;
}

/* Whether the suite's backend has every bit of cap; when it has not, a
 * SKIP line says what the test leaves out, and why. */
#define test_backend_has(cap, what) test_backend_has_(cap, #cap, what)
static inline bool test_backend_has_(unsigned cap, const char *cap_name, const char *what)
{
        if ((test_caps() & cap) == cap)
                return true;
        printf("SKIP: %s (%s has no %s)\n", what, test_backend(), cap_name);
        return false;
}

/* How to gift memory from iomem_alloc: adopted without a copy where the
 * backend can (IOMEM_CAP_GIFT), copied where it cannot. */
static inline unsigned test_gift_flags(void)
{
        return test_caps() & IOMEM_CAP_GIFT ? IOMEM_GIFT_NOCOPY : 0;
}

/* What iomem_stat counts once n bytes of iomem_alloc memory are gifted
 * to an object that had no gifts: adopted, or copied without GIFT. */
#define test_assert_gifted(st, n)                                                         \
        do {                                                                              \
                bool adopts_ = test_caps() & IOMEM_CAP_GIFT;                              \
                ck_assert_uint_eq((st)->gift_adopted, adopts_ ? (uint64_t)(n) : 0);       \
                ck_assert_uint_eq((st)->gift_copied, adopts_ ? 0 : (uint64_t)(n));        \
        } while (0)

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
        if (test_caps() & IOMEM_CAP_NAMED)
                iomem_unlink(uri); /* gone when the test's process ends */
        return f;
}

/* A dax: window of chunks chunks of chunk bytes, in *w, with options *opts
 * that name it, whose odd chunks *filler (opened at filler_uri, its file
 * unlinked) holds pinned: the next object opened with *opts is given
 * chunks that are not side by side, its memory as many buffers. */
static inline void test_fragmented_window(size_t chunk, size_t chunks, const char *filler_uri,
                                          struct iomem_window **w, struct iomem_opts **opts,
                                          struct iomem **filler)
{
        ck_assert_int_eq(iomem_window_new(w, chunks * chunk, chunk), 0);
        ck_assert_int_eq(iomem_opts_new(opts), 0);
        ck_assert_int_eq(iomem_opts_set_window(*opts, *w), 0);
        ck_assert_int_eq(iomem_open(filler, filler_uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, *opts), 0);
        ck_assert_int_eq(iomem_unlink(filler_uri), 0);
        ck_assert_int_eq(iomem_truncate(*filler, chunks * chunk), 0);
        ck_assert_int_eq(iomem_acquire(*filler, 0, chunks * chunk), (ssize_t)(chunks * chunk));
        ck_assert_int_eq(iomem_release(*filler, 0, chunks * chunk), 0);
        for (size_t k = 1; k < chunks; k += 2)
                ck_assert_int_eq(iomem_acquire(*filler, k * chunk, chunk), (ssize_t)chunk);
}

/* Assert r == -err and that the message names the cause. */
#define ck_assert_err(r, err)                                                       \
        do {                                                                        \
                long r_ = (long)(r);                                                \
                ck_assert_msg(r_ == -(err), "expected %s (-%d), got %ld (%s)",      \
                              #err, err, r_, iomem_errormsg());                     \
                ck_assert_ptr_nonnull(strstr(iomem_errormsg(), ": "));              \
        } while (0)

/* Can the suite's backend open objects on this machine? When it cannot
 * (devdax without a device, mshare without msharefs), a SKIP line says
 * why, and the suite exits TEST_SKIP. */
static inline bool test_backend_usable(void)
{
        struct iomem_backend_info info[16];
        ssize_t n = iomem_backends(info, 16);
        for (ssize_t i = 0; i < n && i < 16; i++) {
                if (strcmp(info[i].name, test_backend()))
                        continue;
                if (!info[i].available)
                        printf("SKIP: %s is not usable here: %s\n", test_backend(), info[i].why);
                return info[i].available;
        }
        printf("SKIP: %s is not in this build\n", test_backend());
        return false;
}

/* Run a Check suite; exit status for Meson (skipped where the suite's
 * backend cannot be used here). */
static inline int test_run(Suite *s)
{
        SRunner *sr = srunner_create(s);
        if (!test_backend_usable()) {
                srunner_free(sr);
                return TEST_SKIP;
        }
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

/* Whether this process runs under valgrind (Debian's valgrind package
 * brings the header; without it, false). */
static inline bool test_under_valgrind(void)
{
#if __has_include(<valgrind/valgrind.h>)
        return RUNNING_ON_VALGRIND;
#else
        return false;
#endif
}

/*
 * Under valgrind (3.19) a child forked by a process that has a shared
 * mapping reaching past its file's end can spin on SIGBUS forever (seen
 * with a bare memfd, no libiomem; the children of some tests do, those of
 * others not). shm objects map their data so: the tests named by what run
 * on memfd only there. False, saying so, when they cannot run here.
 */
static inline bool test_forked_children_run(const char *what)
{
        if (test_under_valgrind() && strcmp(test_backend(), "memfd")) {
                printf("SKIP: %s (valgrind cannot fork over shm mappings; they run under "
                       "valgrind with memfd)\n", what);
                return false;
        }
        return true;
}

/* The descriptors iomem_send passes for f, received raw (without
 * iomem_recv) as a peer that does not use the library gets them: the data
 * first. Returns how many, at most max. */
static inline int test_sent_fds(const struct iomem *f, int *fds, int max)
{
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        ck_assert_int_eq(iomem_send(sv[0], f), 0);
        char head[64];
        union {
                char buf[CMSG_SPACE(8 * sizeof(int))];
                struct cmsghdr align;
        } ctl;
        struct iovec iov = { head, sizeof head };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                              .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
        ck_assert_int_gt(recvmsg(sv[1], &msg, MSG_CMSG_CLOEXEC), 0);
        close(sv[0]);
        close(sv[1]);
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        ck_assert_ptr_nonnull(c);
        int n = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        ck_assert_int_le(n, max);
        memcpy(fds, CMSG_DATA(c), (size_t)n * sizeof(int));
        return n;
}

/* Become nobody:nogroup with no supplementary groups; 0 on success. */
static inline int test_become_nobody(void)
{
        struct passwd *pw = getpwnam("nobody");
        struct group *gr = getgrnam("nogroup");
        gid_t gid = gr ? gr->gr_gid : pw ? pw->pw_gid : 65534;
        uid_t uid = pw ? pw->pw_uid : 65534;
        if (setgroups(0, NULL) || setresgid(gid, gid, gid) || setresuid(uid, uid, uid))
                return -1;
        return getuid() == uid && geteuid() == uid ? 0 : -1;
}

/* A number from a line "NAME: value" of a /proc file (fmt scans it, as
 * "VmLck: %ld kB"); -1 when it is not there. */
static inline long test_proc_number(const char *path, const char *fmt)
{
        FILE *fp = fopen(path, "r");
        char line[128];
        long n = -1;
        while (fp && fgets(line, sizeof line, fp))
                if (sscanf(line, fmt, &n) == 1)
                        break;
        if (fp)
                fclose(fp);
        return n;
}

/* Whether the kernel's /proc/cpuinfo lists flag for this CPU. */
static inline bool test_cpu_flag(const char *flag)
{
        FILE *fp = fopen("/proc/cpuinfo", "r");
        char line[8192];
        bool has = false;
        while (fp && fgets(line, sizeof line, fp)) {
                char *colon = strchr(line, ':');
                if (strncmp(line, "flags", 5) || !colon)
                        continue;
                for (char *save, *w = strtok_r(colon + 1, " \n", &save); w && !has;
                     w = strtok_r(NULL, " \n", &save))
                        has = !strcmp(w, flag);
                break;
        }
        if (fp)
                fclose(fp);
        return has;
}

/* The cache write-back iomem_persist should use on this CPU, from the
 * kernel's flags rather than from CPUID as the library reads them. */
static inline unsigned test_cpu_flush_kind(void)
{
        return test_cpu_flag("clwb") ? IOMEM_PERSIST_CLWB
               : test_cpu_flag("clflushopt") ? IOMEM_PERSIST_CLFLUSHOPT
               : test_cpu_flag("clflush") ? IOMEM_PERSIST_CLFLUSH
               : IOMEM_PERSIST_NONE;
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

/* Run fn(0, ctx) ... fn(n - 1, ctx) in n threads (at most 8) released
 * together; 0 when every call returned 0, else 1. */
#define TEST_MAX_TOGETHER 8

struct test_together {
        int (*fn)(int i, void *ctx);
        void *ctx;
        int i, result;
        pthread_barrier_t *start;
};

static inline void *test_together_thread(void *arg)
{
        struct test_together *t = arg;
        pthread_barrier_wait(t->start);
        t->result = t->fn(t->i, t->ctx);
        return NULL;
}

static inline int test_run_together(int n, int (*fn)(int i, void *ctx), void *ctx)
{
        pthread_barrier_t start;
        pthread_t tid[TEST_MAX_TOGETHER];
        struct test_together t[TEST_MAX_TOGETHER];
        if (n < 1 || n > TEST_MAX_TOGETHER)
                return 1;
        pthread_barrier_init(&start, NULL, (unsigned)n);
        for (int i = 0; i < n; i++) {
                t[i] = (struct test_together){ .fn = fn, .ctx = ctx, .i = i, .start = &start };
                if (pthread_create(&tid[i], NULL, test_together_thread, &t[i]))
                        return 1; /* the others wait at the barrier: callers _exit */
        }
        int failed = 0;
        for (int i = 0; i < n; i++) {
                pthread_join(tid[i], NULL);
                failed |= t[i].result != 0;
        }
        pthread_barrier_destroy(&start);
        return failed;
}

/* Threads of a forked child making their first calls on a handle inherited
 * from the parent, all at once: each acquires, retrieves and releases a
 * range of its own (unit bytes at (1 + its index) * unit), so a pin one of
 * them took while another reset the handle would be lost. */
#define TEST_FIRST_CALLERS 4

struct test_first_calls {
        struct iomem *f;
        size_t unit;
};

static inline int test_first_call(int i, void *ctx)
{
        const struct test_first_calls *c = ctx;
        size_t off = (size_t)(i + 1) * c->unit;
        struct iovec iov[4];
        return iomem_acquire(c->f, off, c->unit) != (ssize_t)c->unit ||
               iomem_retrieve(c->f, off, c->unit, iov, 4) < 1 ||
               iomem_release(c->f, off, c->unit) != 0;
}

/* In the child: 0 when every thread's calls succeeded and the handle holds
 * no pin after them, else 1. */
static inline int test_first_calls_from_threads(struct iomem *f, size_t unit)
{
        struct test_first_calls c = { .f = f, .unit = unit };
        struct iomem_stat st;
        return test_run_together(TEST_FIRST_CALLERS, test_first_call, &c) ||
               iomem_stat(f, &st) || st.acquired != 0;
}

#endif
