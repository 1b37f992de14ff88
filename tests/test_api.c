/* SPDX-License-Identifier: MIT */
/*
 * The public API's contract (API.md): for every function of iomem.h, each
 * error it can return, provoked and checked with its message, and the
 * conventions that hold for all of them (constructors, destructors,
 * overflow, NULL objects and arrays, zero lengths, iomem_errormsg).
 * Behaviour that only one backend has is tested on that backend's run.
 */
#include "config.h"
#include "common.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))
#define MIB ((size_t)1 << 20)
#define GIB ((size_t)1 << 30)
#define MAX_FILE ((size_t)1 << 44) /* 16 TiB, the largest file (API.md) */

/* Something for constructors to leave alone when they fail. */
static char sentinel_byte;
#define SENTINEL ((void *)&sentinel_byte)

static bool on_backend(const char *name)
{
        return strcmp(test_backend(), name) == 0;
}

/* Does the suite's backend attach by name? Then a second handle is
 * opened by name, and the name removed when the test is done with it;
 * else by descriptor. */
static bool named(void)
{
        return test_caps() & IOMEM_CAP_NAMED;
}

/*
 * ck_assert_err, and the message is this call's: it starts with the
 * function's name. A message from another function is left first, so a
 * failure that forgets to set one is caught. Call the function inside.
 */
static void poison_message(void)
{
        iomem_window_stat(NULL, NULL);
}

#define ck_assert_fail(call, err, fn)                                                              \
        do {                                                                                       \
                poison_message();                                                                  \
                long rf_ = (long)(call);                                                           \
                ck_assert_msg(rf_ == -(err), "%s: expected %s, got %ld (%s)", fn, #err, rf_,       \
                              iomem_errormsg());                                                   \
                ck_assert_err(rf_, err);                                                           \
                ck_assert_msg(!strncmp(iomem_errormsg(), fn ": ", strlen(fn ": ")),                \
                              "message \"%s\" is not from %s", iomem_errormsg(), fn);              \
        } while (0)

/*
 * Named objects the tests create, removed again when the suite ends, so
 * that a test that fails half way (Check ends its process there) leaves
 * nothing in /dev/shm. Shared memory: the tests run in child processes.
 */
struct made_list {
        int n;
        char uri[256][128];
};
static struct made_list *made;

static void remove_made(void)
{
        for (int i = 0; made && i < made->n && i < 256; i++)
                iomem_unlink(made->uri[i]);
}

static const char *new_uri(const char *tag)
{
        const char *uri = test_uri(tag);
        if (made && !strncmp(uri, "shm:", 4)) {
                int i = __atomic_fetch_add(&made->n, 1, __ATOMIC_RELAXED);
                if (i < 256)
                        snprintf(made->uri[i], sizeof made->uri[i], "%s", uri);
        }
        return uri;
}

static bool fd_is_open(int fd)
{
        return fcntl(fd, F_GETFD) >= 0;
}

/* Open descriptors of this process. */
static int count_fds(void)
{
        int n = 0;
        for (int fd = 0; fd < 4096; fd++)
                n += fd_is_open(fd);
        return n;
}

/* A new descriptor for the file behind fd, opened with oflag. */
static int reopen_fd(int fd, int oflag)
{
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        int r = open(path, oflag | O_CLOEXEC);
        ck_assert_msg(r >= 0, "open %s: %s", path, strerror(errno));
        return r;
}

/* Another handle on f's object, read-only, adopting a new descriptor. */
static struct iomem *open_ro_twin(struct iomem *f)
{
        int fd = reopen_fd(iomem_fd(f), O_RDONLY);
        struct iomem *g = NULL;
        int r = iomem_open_fd(&g, test_backend(), fd, IOMEM_RDONLY, NULL);
        ck_assert_msg(r == 0, "open_fd read-only: %d %s", r, iomem_errormsg());
        return g;
}

/*
 * Two read-write handles on one new object that share its metadata (pins,
 * locks): shm opens the name twice, memfd adopts a second descriptor.
 */
static void open_pair(const char *tag, size_t size, struct iomem **f, struct iomem **g)
{
        struct iomem_opts *o = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, size), 0);
        const char *uri = new_uri(tag);
        int r = iomem_open(f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o);
        iomem_opts_delete(&o);
        ck_assert_msg(r == 0, "open %s: %d %s", uri, r, iomem_errormsg());
        if (named()) {
                r = iomem_open(g, uri, IOMEM_RDWR, NULL);
                iomem_unlink(uri);
        } else {
                r = iomem_open_fd(g, test_backend(), reopen_fd(iomem_fd(*f), O_RDWR), IOMEM_RDWR,
                                  NULL);
        }
        ck_assert_msg(r == 0, "second handle: %d %s", r, iomem_errormsg());
}

static size_t acquired(struct iomem *f)
{
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        return st.acquired;
}

static size_t size_of(struct iomem *f)
{
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        return st.size;
}

/* The address retrieve gives for byte off, which is acquired. */
static char *address_of(struct iomem *f, size_t off)
{
        struct iovec v;
        ck_assert_int_eq(iomem_retrieve(f, off, 1, &v, 1), 1);
        ck_assert_uint_eq(v.iov_len, 1);
        return v.iov_base;
}

static void fill_pattern(char *p, size_t n, unsigned seed)
{
        for (size_t i = 0; i < n; i++)
                p[i] = (char)(seed + i * 131);
}

/* ---- iomem_errormsg ------------------------------------------------------ */

static void *fresh_thread_message(void *arg)
{
        (void)arg;
        const char *m = iomem_errormsg();
        return (void *)(m && *m ? strdup(m) : NULL);
}

static void *fail_in_thread(void *arg)
{
        (void)arg;
        int r = iomem_rdlock(NULL);
        return (void *)(r == -EINVAL ? strdup(iomem_errormsg()) : NULL);
}

START_TEST(errormsg_is_never_null_and_per_thread)
{
        pthread_t t;
        void *msg;
        /* A thread that never failed still gets a string. */
        ck_assert_int_eq(pthread_create(&t, NULL, fresh_thread_message, NULL), 0);
        ck_assert_int_eq(pthread_join(t, &msg), 0);
        ck_assert_ptr_nonnull(msg);
        free(msg);

        ck_assert_fail(iomem_stat(NULL, NULL), EINVAL, "iomem_stat");
        char mine[512];
        snprintf(mine, sizeof mine, "%s", iomem_errormsg());
        /* Another thread's failure leaves this thread's message alone. */
        ck_assert_int_eq(pthread_create(&t, NULL, fail_in_thread, NULL), 0);
        ck_assert_int_eq(pthread_join(t, &msg), 0);
        ck_assert_ptr_nonnull(msg);
        ck_assert_ptr_nonnull(strstr(msg, "iomem_rdlock: "));
        free(msg);
        ck_assert_str_eq(iomem_errormsg(), mine);

        /* Still a string after successes. */
        struct iomem *f = test_open_new("msg", PAGE);
        ck_assert_ptr_nonnull(iomem_errormsg());
        iomem_close(&f);
        ck_assert_ptr_nonnull(iomem_errormsg());
}
END_TEST

/* ---- iomem_open ---------------------------------------------------------- */

START_TEST(open_rejects_null_arguments)
{
        struct iomem *f = SENTINEL;
        ck_assert_fail(iomem_open(NULL, new_uri("null"), IOMEM_RDWR | IOMEM_CREATE, NULL), EINVAL,
                       "iomem_open");
        ck_assert_fail(iomem_open(&f, NULL, IOMEM_RDWR | IOMEM_CREATE, NULL), EINVAL, "iomem_open");
        ck_assert_ptr_eq(f, SENTINEL);
}
END_TEST

START_TEST(open_rejects_bad_flags)
{
        const char *uri = new_uri("flags");
        struct iomem *f = SENTINEL;
        ck_assert_fail(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | 0x10u, NULL), EINVAL,
                       "iomem_open");
        ck_assert_fail(iomem_open(&f, uri, 0x80000000u | IOMEM_CREATE, NULL), EINVAL, "iomem_open");
        ck_assert_fail(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_EXCL, NULL), EINVAL, "iomem_open");
        ck_assert_fail(iomem_open(&f, uri, IOMEM_EXCL, NULL), EINVAL, "iomem_open");
        ck_assert_ptr_eq(f, SENTINEL);
        /* None of them created it. */
        f = NULL;
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL), 0);
        ck_assert_ptr_nonnull(f);
        if (named())
                ck_assert_int_eq(iomem_unlink(uri), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

START_TEST(open_unknown_scheme_is_eprotonosupport)
{
        struct iomem *f = SENTINEL;
        ck_assert_fail(iomem_open(&f, "bogus:x", IOMEM_RDWR | IOMEM_CREATE, NULL), EPROTONOSUPPORT,
                       "iomem_open");
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "bogus"));
        ck_assert_fail(iomem_open(&f, ":x", IOMEM_RDWR | IOMEM_CREATE, NULL), EPROTONOSUPPORT,
                       "iomem_open");
        ck_assert_fail(iomem_open(&f, "memfdx:x", IOMEM_RDWR | IOMEM_CREATE, NULL), EPROTONOSUPPORT,
                       "iomem_open");
        ck_assert_ptr_eq(f, SENTINEL);
}
END_TEST

/* Is msharefs here: the suite runs on it (the kernel's, or the test
 * double's), or /sys/fs/mshare is one? */
static bool mshare_usable(void)
{
        struct statfs sf;
        return on_backend("mshare") ||
               (statfs("/sys/fs/mshare", &sf) == 0 && sf.f_type == 0x4d534852);
}

/* Is there a device-DAX device here (/sys/bus/dax/devices lists one)? */
static bool devdax_usable(void)
{
        DIR *d = opendir("/sys/bus/dax/devices");
        struct dirent *e = NULL;
        while (d && (e = readdir(d)) && e->d_name[0] == '.')
                ;
        if (d)
                closedir(d);
        return e != NULL;
}

START_TEST(open_backends_unusable_here)
{
        struct iomem *f = SENTINEL;
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        if (!IOMEM_PLATFORM_LINUX) {
                /* The POSIX platform layer builds neither: -ENOTSUP. */
                ck_assert_fail(iomem_open(&f, "mshare:x", IOMEM_RDWR | IOMEM_CREATE, NULL), ENOTSUP,
                               "iomem_open");
                ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "left out of this build"));
                ck_assert_fail(iomem_unlink("mshare:x"), ENOTSUP, "iomem_unlink");
                ck_assert_fail(iomem_open_fd(&f, "devdax", p[0], IOMEM_RDONLY, NULL), ENOTSUP,
                               "iomem_open_fd");
                ck_assert_ptr_eq(f, SENTINEL);
        } else {
                /* Without msharefs (mainline kernels): -ENODEV naming the mount
                 * point, by name, by descriptor and for removal. */
                if (!mshare_usable()) {
                        ck_assert_fail(iomem_open(&f, "mshare:x", IOMEM_RDWR | IOMEM_CREATE, NULL), ENODEV,
                                       "iomem_open");
                        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "mshare"));
                        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "/sys/fs/mshare"));
                        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "mount -t msharefs"));
                        ck_assert_fail(iomem_open_fd(&f, "mshare", p[0], IOMEM_RDONLY, NULL), ENODEV,
                                       "iomem_open_fd");
                        ck_assert_fail(iomem_unlink("mshare:x"), ENODEV, "iomem_unlink");
                } else {
                        /* With it, a descriptor that is not a region is refused,
                         * and stays the caller's. */
                        ck_assert_fail(iomem_open_fd(&f, "mshare", p[0], IOMEM_RDONLY, NULL), EINVAL,
                                       "iomem_open_fd");
                }
                ck_assert_ptr_eq(f, SENTINEL);
                /* Without a device-DAX device: -ENODEV naming what is missing;
                 * with one, a pipe is no device. */
                if (!devdax_usable()) {
                        ck_assert_fail(iomem_open(&f, "devdax:/dev/dax0.0", IOMEM_RDWR, NULL), ENODEV,
                                       "iomem_open");
                        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "/sys/bus/dax/devices"));
                        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "devdax mode"));
                        ck_assert_fail(iomem_open_fd(&f, "devdax", p[0], IOMEM_RDONLY, NULL), ENODEV,
                                       "iomem_open_fd");
                } else {
                        ck_assert_fail(iomem_open_fd(&f, "devdax", p[0], IOMEM_RDONLY, NULL), EINVAL,
                                       "iomem_open_fd");
                }
                ck_assert_ptr_eq(f, SENTINEL);
        }
        /* ... dax takes regular files only. */
        ck_assert_fail(iomem_open_fd(&f, "dax", p[0], IOMEM_RDONLY, NULL), EINVAL,
                       "iomem_open_fd");
        ck_assert_ptr_eq(f, SENTINEL);
        ck_assert(fd_is_open(p[0]));
        close(p[0]);
        close(p[1]);
        ck_assert_fail(iomem_unlink("dax:/nonexistent/iomem-test"), ENOENT, "iomem_unlink");
}
END_TEST

/* Restore IOMEM_BACKEND as it was (the suite may run without fork). */
static void restore_env(const char *name, char *saved)
{
        if (saved)
                setenv(name, saved, 1);
        else
                unsetenv(name);
        free(saved);
}

START_TEST(open_without_scheme_uses_iomem_backend)
{
        char *saved = getenv("IOMEM_BACKEND") ? strdup(getenv("IOMEM_BACKEND")) : NULL;
        const char *name = strchr(new_uri("dflt"), ':') + 1;
        struct iomem *f = NULL;
        struct iomem_stat st;

        setenv("IOMEM_BACKEND", test_backend(), 1);
        int r = iomem_open(&f, name, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL);
        ck_assert_msg(r == 0, "open %s: %d %s", name, r, iomem_errormsg());
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_str_eq(st.backend, test_backend());
        if (named())
                ck_assert_int_eq(iomem_unlink(name), 0); /* the same default */
        ck_assert_int_eq(iomem_close(&f), 0);

        f = SENTINEL;
        setenv("IOMEM_BACKEND", "bogus", 1);
        ck_assert_fail(iomem_open(&f, name, IOMEM_RDWR | IOMEM_CREATE, NULL), EPROTONOSUPPORT,
                       "iomem_open");
        ck_assert_fail(iomem_unlink(name), EPROTONOSUPPORT, "iomem_unlink");
        if (!mshare_usable()) {
                /* Built but not usable here, or (POSIX) not built. */
                setenv("IOMEM_BACKEND", "mshare", 1);
                ck_assert_fail(iomem_open(&f, name, IOMEM_RDWR | IOMEM_CREATE, NULL),
                               IOMEM_PLATFORM_LINUX ? ENODEV : ENOTSUP, "iomem_open");
                ck_assert_ptr_eq(f, SENTINEL);
        }

        /* Unset: memfd on Linux when it is usable, else shm. */
        unsetenv("IOMEM_BACKEND");
        struct iomem_backend_info info[16];
        ssize_t n = iomem_backends(info, 16);
        const char *expect = "shm";
        for (ssize_t i = 0; i < n && i < 16; i++)
                if (!strcmp(info[i].name, "memfd") && info[i].available)
                        expect = "memfd";
        f = NULL;
        name = strchr(new_uri("dflt"), ':') + 1;
        r = iomem_open(&f, name, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL);
        ck_assert_msg(r == 0, "open %s: %d %s", name, r, iomem_errormsg());
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_str_eq(st.backend, expect);
        if (!strcmp(expect, "shm"))
                iomem_unlink(name);
        ck_assert_int_eq(iomem_close(&f), 0);
        restore_env("IOMEM_BACKEND", saved);
}
END_TEST

START_TEST(open_shm_missing_without_create_is_enoent)
{
        const char *uri = new_uri("missing");
        struct iomem *f = SENTINEL;
        ck_assert_fail(iomem_open(&f, uri, IOMEM_RDWR, NULL), ENOENT, "iomem_open");
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), strchr(uri, ':') + 1));
        ck_assert_fail(iomem_open(&f, uri, IOMEM_RDONLY, NULL), ENOENT, "iomem_open");
        ck_assert_ptr_eq(f, SENTINEL);
        ck_assert_fail(iomem_unlink(uri), ENOENT, "iomem_unlink");
}
END_TEST

START_TEST(open_shm_excl_on_existing_is_eexist)
{
        const char *uri = new_uri("excl");
        struct iomem *f = NULL, *g = SENTINEL;
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL), 0);
        ck_assert_fail(iomem_open(&g, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL), EEXIST,
                       "iomem_open");
        ck_assert_fail(iomem_open(&g, uri, IOMEM_RDONLY | IOMEM_CREATE | IOMEM_EXCL, NULL), EEXIST,
                       "iomem_open");
        ck_assert_ptr_eq(g, SENTINEL);
        /* Without EXCL it opens the same object. */
        g = NULL;
        ck_assert_int_eq(iomem_open(&g, uri, IOMEM_RDWR | IOMEM_CREATE, NULL), 0);
        ck_assert_int_eq(iomem_pwrite(f, "shared", 6, 0), 6);
        char buf[8] = { 0 };
        ck_assert_int_eq(iomem_pread(g, buf, sizeof buf, 0), 6);
        ck_assert_str_eq(buf, "shared");
        /* A leading slash names the same object. */
        char slashed[160];
        snprintf(slashed, sizeof slashed, "shm:/%s", strchr(uri, ':') + 1);
        struct iomem *h = NULL;
        ck_assert_int_eq(iomem_open(&h, slashed, IOMEM_RDONLY, NULL), 0);
        ck_assert_uint_eq(size_of(h), 6);
        ck_assert_int_eq(iomem_close(&h), 0);
        ck_assert_int_eq(iomem_unlink(uri), 0);
        ck_assert_fail(iomem_unlink(uri), ENOENT, "iomem_unlink");
        ck_assert_fail(iomem_open(&h, uri, IOMEM_RDWR, NULL), ENOENT, "iomem_open");
        ck_assert_int_eq(iomem_close(&f), 0);
        ck_assert_int_eq(iomem_close(&g), 0);
}
END_TEST

START_TEST(open_shm_bad_names)
{
        static const char *const invalid[] = { "shm:",  "shm:/",  "shm:a/b", "shm:/a/b",
                                               "shm:.", "shm:..", "shm:/..", "shm://x" };
        struct iomem *f = SENTINEL;
        for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++) {
                ck_assert_fail(iomem_open(&f, invalid[i], IOMEM_RDWR | IOMEM_CREATE, NULL), EINVAL,
                               "iomem_open");
                ck_assert_fail(iomem_unlink(invalid[i]), EINVAL, "iomem_unlink");
        }
        char lng[320];
        static const int lengths[] = { NAME_MAX + 1, 300 };
        for (size_t i = 0; i < 2; i++) {
                int len = lengths[i];
                snprintf(lng, sizeof lng, "shm:%0*d", len, 0);
                ck_assert_uint_eq(strlen(lng), 4 + (size_t)len);
                ck_assert_fail(iomem_open(&f, lng, IOMEM_RDWR | IOMEM_CREATE, NULL), ENAMETOOLONG,
                               "iomem_open");
                ck_assert_fail(iomem_unlink(lng), ENAMETOOLONG, "iomem_unlink");
        }
        ck_assert_fail(iomem_open(&f, "shm:x.iomem", IOMEM_RDWR | IOMEM_CREATE, NULL), EINVAL,
                       "iomem_open");
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), ".iomem"));
        ck_assert_fail(iomem_unlink("shm:x.iomem"), EINVAL, "iomem_unlink");
        ck_assert_ptr_eq(f, SENTINEL);

        /* The metadata object of a real one cannot be opened or removed. */
        const char *uri = new_uri("side");
        struct iomem *g = NULL;
        ck_assert_int_eq(iomem_open(&g, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL), 0);
        char side[160];
        snprintf(side, sizeof side, "%s.iomem", uri);
        ck_assert_fail(iomem_open(&f, side, IOMEM_RDWR, NULL), EINVAL, "iomem_open");
        ck_assert_fail(iomem_unlink(side), EINVAL, "iomem_unlink");
        ck_assert_ptr_eq(f, SENTINEL);
        ck_assert_int_eq(iomem_unlink(uri), 0);
        ck_assert_int_eq(iomem_close(&g), 0);
}
END_TEST

START_TEST(open_shm_rejects_memfd_only_options)
{
        const char *uri = new_uri("opts");
        struct iomem_opts *o = NULL;
        struct iomem *f = SENTINEL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_seals(o, IOMEM_SEAL_GROW), 0);
        ck_assert_fail(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, o), ENOTSUP, "iomem_open");
        ck_assert_ptr_eq(f, SENTINEL);
        iomem_opts_delete(&o);
        /* Nothing was created. */
        ck_assert_fail(iomem_open(&f, uri, IOMEM_RDWR, NULL), ENOENT, "iomem_open");
}
END_TEST

START_TEST(open_shm_larger_than_free_space_is_enospc)
{
        struct statvfs sv;
        ck_assert_int_eq(statvfs("/dev/shm", &sv), 0);
        uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
        const char *uri = new_uri("big");
        struct iomem_opts *o = NULL;
        struct iomem *f = SENTINEL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, MAX_FILE), 0);
        if (sv.f_blocks && avail < MAX_FILE) {
                ck_assert_fail(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, o), ENOSPC,
                               "iomem_open");
                ck_assert_ptr_eq(f, SENTINEL);
                /* A failed create leaves no object behind. */
                ck_assert_fail(iomem_open(&f, uri, IOMEM_RDWR, NULL), ENOENT, "iomem_open");
        } else {
                f = NULL;
                ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, o), 0);
                ck_assert_uint_eq(size_of(f), MAX_FILE);
                iomem_unlink(uri);
                iomem_close(&f);
        }
        iomem_opts_delete(&o);
}
END_TEST

/* One rule for growth: a write or a gift far past the end of a shm object
 * is refused at once when the growth cannot fit in /dev/shm, as a
 * truncate to that size is, and changes nothing. */
START_TEST(shm_growth_by_write_or_gift_follows_truncate)
{
        struct statvfs sv;
        ck_assert_int_eq(statvfs("/dev/shm", &sv), 0);
        uint64_t avail = (uint64_t)sv.f_bavail * sv.f_frsize;
        if (!sv.f_blocks || avail + (UINT64_C(1) << 30) >= MAX_FILE) {
                printf("SKIP: /dev/shm has no limit under the largest file here\n");
                return;
        }
        size_t far = (size_t)(avail + (UINT64_C(1) << 30)) / PAGE * PAGE;
        const char *uri = new_uri("grow");
        struct iomem *f = NULL;
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL), 0);
        iomem_unlink(uri);
        ck_assert_fail(iomem_truncate(f, far), ENOSPC, "iomem_truncate");
        ck_assert_fail(iomem_pwrite(f, "x", 1, far), ENOSPC, "iomem_pwrite");
        void *b = NULL;
        ck_assert_int_eq(iomem_alloc(f, PAGE, &b), 0);
        ck_assert_fail(iomem_gift(f, far, PAGE, &(struct iovec){ b, PAGE }, 1, 0), ENOSPC, "iomem_gift");
        ck_assert_int_eq(iomem_free(f, b, PAGE), 0);
        ck_assert_uint_eq(size_of(f), 0);
        /* What fits still grows. */
        ck_assert_int_eq(iomem_pwrite(f, "x", 1, 4 * PAGE), 1);
        ck_assert_uint_eq(size_of(f), 4 * PAGE + 1);
        iomem_close(&f);
}
END_TEST

START_TEST(open_shm_mode_from_opts)
{
        mode_t mask = umask(0);
        umask(mask);
        const char *uri = new_uri("mode");
        struct iomem_opts *o = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_mode(o, 0640), 0);
        ck_assert_fail(iomem_opts_set_mode(o, 01640), EINVAL, "iomem_opts_set_mode");
        struct iomem *f = NULL;
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o), 0);
        iomem_unlink(uri);
        struct stat st;
        ck_assert_int_eq(fstat(iomem_fd(f), &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0640 & ~mask); /* the failed set changed nothing */
        iomem_opts_delete(&o);
        iomem_close(&f);
}
END_TEST

START_TEST(open_shm_read_only_by_name)
{
        const char *uri = new_uri("ro");
        struct iomem *f = NULL, *r = NULL;
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL), 0);
        ck_assert_int_eq(iomem_pwrite(f, "data", 4, 0), 4);
        ck_assert_int_eq(iomem_open(&r, uri, IOMEM_RDONLY, NULL), 0);
        iomem_unlink(uri);
        char buf[4];
        ck_assert_int_eq(iomem_pread(r, buf, 4, 0), 4);
        ck_assert_int_eq(memcmp(buf, "data", 4), 0);
        ck_assert_fail(iomem_pwrite(r, "x", 1, 0), EROFS, "iomem_pwrite");
        ck_assert_fail(iomem_truncate(r, 0), EROFS, "iomem_truncate");
        ck_assert_int_eq(iomem_acquire(r, 0, PAGE), (ssize_t)PAGE);
        struct iovec v;
        ck_assert_fail(iomem_retrieve(r, 0, 4, &v, 1), EROFS, "iomem_retrieve");
        ck_assert_int_eq(iomem_borrow(r, 0, 4, &v, 1), 1);
        ck_assert_int_eq(memcmp(v.iov_base, "data", 4), 0);
        /* Its pin keeps the writer's truncate away: they share the metadata. */
        ck_assert_fail(iomem_truncate(f, 0), EBUSY, "iomem_truncate");
        ck_assert_int_eq(iomem_release(r, 0, PAGE), 0);
        ck_assert_int_eq(iomem_truncate(f, 0), 0);
        iomem_close(&r);
        iomem_close(&f);
}
END_TEST

START_TEST(open_memfd_label_length)
{
        /* memfd_create(2) takes names of at most 249 bytes. */
        char uri[300];
        struct iomem *f = NULL;
        snprintf(uri, sizeof uri, "memfd:%0249d", 0);
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
        f = SENTINEL;
        snprintf(uri, sizeof uri, "memfd:%0250d", 0);
        ck_assert_fail(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL), ENAMETOOLONG,
                       "iomem_open");
        snprintf(uri, sizeof uri, "memfd:%0290d", 0);
        ck_assert_fail(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL), ENAMETOOLONG,
                       "iomem_open");
        ck_assert_ptr_eq(f, SENTINEL);
        /* An empty label is a label. */
        f = NULL;
        ck_assert_int_eq(iomem_open(&f, "memfd:", IOMEM_RDWR | IOMEM_CREATE, NULL), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
        /* memfd objects have no name to remove. */
        ck_assert_fail(iomem_unlink("memfd:x"), ENOTSUP, "iomem_unlink");
}
END_TEST

static struct iomem *open_sealed(unsigned seals, size_t size)
{
        struct iomem_opts *o = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, size), 0);
        ck_assert_int_eq(iomem_opts_set_seals(o, seals), 0);
        struct iomem *f = NULL;
        int r = iomem_open(&f, new_uri("seal"), IOMEM_RDWR | IOMEM_CREATE, o);
        ck_assert_msg(r == 0, "open sealed: %d %s", r, iomem_errormsg());
        iomem_opts_delete(&o);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert(st.caps & IOMEM_CAP_SEAL);
        return f;
}

START_TEST(memfd_seals_are_eperm)
{
        char buf[16] = "0123456789abcdef";
        struct iovec v = { buf, 4 };

        struct iomem *f = open_sealed(IOMEM_SEAL_SHRINK, 2 * PAGE);
        ck_assert_fail(iomem_truncate(f, PAGE), EPERM, "iomem_truncate");
        ck_assert_int_eq(iomem_truncate(f, 3 * PAGE), 0);
        ck_assert_uint_eq(size_of(f), 3 * PAGE);
        iomem_close(&f);

        f = open_sealed(IOMEM_SEAL_GROW, 2 * PAGE);
        ck_assert_fail(iomem_truncate(f, 3 * PAGE), EPERM, "iomem_truncate");
        ck_assert_fail(iomem_pwrite(f, buf, 4, 2 * PAGE - 2), EPERM, "iomem_pwrite");
        ck_assert_fail(iomem_gift(f, 2 * PAGE, 4, &v, 1, 0), EPERM, "iomem_gift");
        ck_assert_uint_eq(size_of(f), 2 * PAGE);
        ck_assert_int_eq(iomem_pwrite(f, buf, 4, 2 * PAGE - 4), 4);
        ck_assert_int_eq(iomem_truncate(f, PAGE), 0);
        iomem_close(&f);

        f = open_sealed(IOMEM_SEAL_WRITE, 2 * PAGE);
        struct iomem *src = test_open_new("src", PAGE);
        ck_assert_fail(iomem_pwrite(f, buf, 4, 0), EPERM, "iomem_pwrite");
        ck_assert_fail(iomem_truncate(f, PAGE), EPERM, "iomem_truncate");
        ck_assert_fail(iomem_gift(f, 0, 4, &v, 1, 0), EPERM, "iomem_gift");
        ck_assert_fail(iomem_copy(f, 0, src, 0, PAGE), EPERM, "iomem_copy");
        char out[4];
        ck_assert_int_eq(iomem_pread(f, out, 4, 0), 4);
        ck_assert_int_eq(out[0], 0);
        iomem_close(&src);
        iomem_close(&f);
}
END_TEST

/* ---- iomem_open_fd ------------------------------------------------------- */

START_TEST(open_fd_rejects_null_and_bad_descriptors)
{
        struct iomem *f = SENTINEL;
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        ck_assert_fail(iomem_open_fd(NULL, test_backend(), p[0], IOMEM_RDONLY, NULL), EINVAL,
                       "iomem_open_fd");
        ck_assert_fail(iomem_open_fd(&f, NULL, p[0], IOMEM_RDONLY, NULL), EINVAL, "iomem_open_fd");
        ck_assert_fail(iomem_open_fd(&f, test_backend(), p[0], 0x8u, NULL), EINVAL,
                       "iomem_open_fd");
        ck_assert_fail(iomem_open_fd(&f, test_backend(), p[0], IOMEM_RDWR | IOMEM_EXCL, NULL),
                       EINVAL, "iomem_open_fd");
        ck_assert_fail(iomem_open_fd(&f, test_backend(), -1, IOMEM_RDONLY, NULL), EBADF,
                       "iomem_open_fd");
        ck_assert_fail(iomem_open_fd(&f, test_backend(), INT_MIN, IOMEM_RDONLY, NULL), EBADF,
                       "iomem_open_fd");
        int closed = dup(p[0]);
        close(closed);
        ck_assert_fail(iomem_open_fd(&f, test_backend(), closed, IOMEM_RDONLY, NULL), EBADF,
                       "iomem_open_fd");
        ck_assert_ptr_eq(f, SENTINEL);
        ck_assert(fd_is_open(p[0]));
        close(p[0]);
        close(p[1]);
}
END_TEST

START_TEST(open_fd_unknown_backend_is_eprotonosupport)
{
        struct iomem *g = test_open_new("fdb", PAGE);
        int fd = reopen_fd(iomem_fd(g), O_RDWR);
        struct iomem *f = SENTINEL;
        ck_assert_fail(iomem_open_fd(&f, "bogus", fd, IOMEM_RDWR, NULL), EPROTONOSUPPORT,
                       "iomem_open_fd");
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "bogus"));
        ck_assert_fail(iomem_open_fd(&f, "", fd, IOMEM_RDWR, NULL), EPROTONOSUPPORT,
                       "iomem_open_fd");
        ck_assert_fail(iomem_open_fd(&f, "bogus:memfd", fd, IOMEM_RDWR, NULL), EPROTONOSUPPORT,
                       "iomem_open_fd");
        ck_assert_ptr_eq(f, SENTINEL);
        ck_assert(fd_is_open(fd));
        /* A backend name is not a URI: "memfd:" names no backend. (Cleaned
         * up before asserting, so that a failure leaks nothing.) */
        poison_message();
        int r = iomem_open_fd(&f, "memfd:", fd, IOMEM_RDWR, NULL);
        char msg[512];
        snprintf(msg, sizeof msg, "%s", iomem_errormsg());
        if (r == 0 && f != SENTINEL)
                iomem_close(&f); /* it took the fd */
        else if (fd_is_open(fd))
                close(fd);
        iomem_close(&g);
        ck_assert_msg(r == -EPROTONOSUPPORT,
                      "iomem_open_fd(\"memfd:\"): expected "
                      "EPROTONOSUPPORT, got %d (%s)",
                      r, msg);
        ck_assert_ptr_eq(f, SENTINEL);
        ck_assert_msg(!strncmp(msg, "iomem_open_fd: ", 15), "message: %s", msg);
}
END_TEST

/* A regular file on a filesystem that is not tmpfs, or -1. */
static int plain_file(void)
{
        static const char *const dirs[] = { ".", "/var/tmp", "/tmp" };
        for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
                char path[PATH_MAX];
                snprintf(path, sizeof path, "%s/iomem-test-plain-XXXXXX", dirs[i]);
                int fd = mkstemp(path);
                if (fd < 0)
                        continue;
                unlink(path);
                struct statfs sf;
                if (fstatfs(fd, &sf) == 0 && sf.f_type != TMPFS_MAGIC &&
                    sf.f_type != HUGETLBFS_MAGIC)
                        return fd;
                close(fd);
        }
        return -1;
}

START_TEST(open_fd_memfd_rejects_other_files)
{
        struct iomem *f = SENTINEL;
        int fd = plain_file();
        ck_assert_msg(fd >= 0, "no filesystem other than tmpfs to make a plain file on");
        ck_assert_int_eq(write(fd, "plain", 5), 5);
        ck_assert_fail(iomem_open_fd(&f, "memfd", fd, IOMEM_RDWR, NULL), EINVAL, "iomem_open_fd");
        ck_assert_fail(iomem_open_fd(&f, "memfd", fd, IOMEM_RDONLY, NULL), EINVAL, "iomem_open_fd");
        ck_assert(fd_is_open(fd));
        close(fd);
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        ck_assert_fail(iomem_open_fd(&f, "memfd", p[0], IOMEM_RDONLY, NULL), EINVAL,
                       "iomem_open_fd");
        ck_assert(fd_is_open(p[0]));
        close(p[0]);
        close(p[1]);
        ck_assert_ptr_eq(f, SENTINEL);

        /* A memfd that libiomem did not make is adopted as it is. */
        fd = memfd_create("plain", MFD_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "hello", 5), 5);
        f = NULL;
        ck_assert_int_eq(iomem_open_fd(&f, "memfd", fd, IOMEM_RDWR, NULL), 0);
        char buf[5];
        ck_assert_int_eq(iomem_pread(f, buf, 5, 0), 5);
        ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
        ck_assert_int_eq(iomem_fd(f), fd);
        ck_assert_int_eq(iomem_close(&f), 0);
        ck_assert(!fd_is_open(fd)); /* the object owned it */
}
END_TEST

START_TEST(open_fd_memfd_rejects_tmpfs_files)
{
        /* Files on tmpfs answer F_GET_SEALS too, but are not memfds. */
        int fd = open("/dev/shm", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
        ck_assert_msg(fd >= 0, "O_TMPFILE in /dev/shm: %s", strerror(errno));
        ck_assert_int_eq(write(fd, "tmpfs", 5), 5);
        struct iomem *f = SENTINEL;
        poison_message();
        int r = iomem_open_fd(&f, "memfd", fd, IOMEM_RDWR, NULL);
        char msg[512];
        snprintf(msg, sizeof msg, "%s", iomem_errormsg());
        if (r == 0 && f != SENTINEL)
                iomem_close(&f); /* closes fd */
        else
                close(fd);
        ck_assert_msg(r == -EINVAL, "expected EINVAL, got %d (%s)", r, msg);
        ck_assert_ptr_eq(f, SENTINEL);
        ck_assert_msg(!strncmp(msg, "iomem_open_fd: ", 15), "message: %s", msg);
}
END_TEST

START_TEST(open_fd_write_only_descriptor_is_eacces)
{
        /* A descriptor that cannot be read cannot back an object, for
         * reading or for writing. */
        struct iomem *f = test_open_new("wronly", PAGE);
        ck_assert_int_eq(iomem_pwrite(f, "abc", 3, 0), 3);
        static const unsigned flags[] = { IOMEM_RDONLY, IOMEM_RDWR };
        for (size_t i = 0; i < 2; i++) {
                int fd = reopen_fd(iomem_fd(f), O_WRONLY);
                struct iomem *g = SENTINEL;
                poison_message();
                int r = iomem_open_fd(&g, test_backend(), fd, flags[i], NULL);
                char msg[512];
                snprintf(msg, sizeof msg, "%s", iomem_errormsg());
                bool kept = fd_is_open(fd);
                if (r == 0 && g != SENTINEL)
                        iomem_close(&g);
                else
                        close(fd);
                if (r != -EACCES)
                        iomem_close(&f);
                ck_assert_msg(r == -EACCES, "flags %u: expected EACCES, got %d (%s)", flags[i], r,
                              msg);
                ck_assert_ptr_eq(g, SENTINEL);
                ck_assert(kept);
                ck_assert_msg(!strncmp(msg, "iomem_open_fd: ", 15), "message: %s", msg);
        }
        iomem_close(&f);
}
END_TEST

START_TEST(open_fd_shm_rejects_other_files)
{
        struct iomem *f = SENTINEL;
        int p[2], s[2];
        ck_assert_int_eq(pipe(p), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
        int dir = open("/", O_RDONLY | O_DIRECTORY);
        ck_assert_int_ge(dir, 0);
        int fds[] = { p[0], s[0], dir };
        for (size_t i = 0; i < 3; i++) {
                ck_assert_fail(iomem_open_fd(&f, "shm", fds[i], IOMEM_RDONLY, NULL), EINVAL,
                               "iomem_open_fd");
                ck_assert(fd_is_open(fds[i]));
        }
        ck_assert_ptr_eq(f, SENTINEL);
        close(p[0]);
        close(p[1]);
        close(s[0]);
        close(s[1]);
        close(dir);
}
END_TEST

START_TEST(open_fd_read_only_descriptor_with_rdwr_is_eacces)
{
        struct iomem *f = test_open_new("eacces", PAGE);
        ck_assert_int_eq(iomem_pwrite(f, "abc", 3, 0), 3);
        int fd = reopen_fd(iomem_fd(f), O_RDONLY);
        struct iomem *g = SENTINEL;
        ck_assert_fail(iomem_open_fd(&g, test_backend(), fd, IOMEM_RDWR, NULL), EACCES,
                       "iomem_open_fd");
        ck_assert_ptr_eq(g, SENTINEL);
        ck_assert(fd_is_open(fd));
        /* Read-only is what it can be. */
        g = NULL;
        ck_assert_int_eq(iomem_open_fd(&g, test_backend(), fd, IOMEM_RDONLY, NULL), 0);
        char buf[3];
        ck_assert_int_eq(iomem_pread(g, buf, 3, 0), 3);
        ck_assert_int_eq(memcmp(buf, "abc", 3), 0);
        ck_assert_fail(iomem_pwrite(g, "x", 1, 0), EROFS, "iomem_pwrite");
        ck_assert_int_eq(iomem_close(&g), 0);
        ck_assert(!fd_is_open(fd)); /* adopted, closed with the object */
        iomem_close(&f);
}
END_TEST

/* One more handle on f's object (named uri on shm), or a negative error;
 * *fd_left is a descriptor the caller still owns after a failure, or -1. */
static int open_another(struct iomem *f, const char *uri, struct iomem **out, int *fd_left)
{
        *fd_left = -1;
        poison_message();
        if (named())
                return iomem_open(out, uri, IOMEM_RDWR, NULL);
        int fd = reopen_fd(iomem_fd(f), O_RDWR);
        int r = iomem_open_fd(out, test_backend(), fd, IOMEM_RDWR, NULL);
        if (r)
                *fd_left = fd;
        return r;
}

START_TEST(open_as_many_handles_as_descriptors_allow)
{
        /* Each handle of an fd-engine object maps 1 GiB of address space
         * for its metadata; valgrind gives a process 128 GiB in all. */
        const int LIMIT = test_under_valgrind() ? 64 : 4096;
        const char *uri = new_uri("emfile");
        struct iomem *f = NULL;
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL), 0);
        struct iomem **h = calloc(LIMIT + 1, sizeof *h);
        ck_assert_ptr_nonnull(h);
        int n = 0, r = 0, fd = -1;
        while (n < LIMIT && (r = open_another(f, uri, &h[n], &fd)) == 0)
                n++;
        const char *fn = named() ? "iomem_open: " : "iomem_open_fd: ";
        char msg[512];
        snprintf(msg, sizeof msg, "%s", iomem_errormsg());
        /* A closed handle frees its place. */
        int again = -1, fd2 = -1;
        if (n > 0 && iomem_close(&h[0]) == 0)
                again = open_another(f, uri, &h[0], &fd2);
        if (named())
                iomem_unlink(uri);
        for (int i = 0; i < n; i++)
                iomem_close(&h[i]);
        /* Handles have no table of their own to fill: the process's
         * descriptors run out first (-EMFILE), or they all open. */
        ck_assert_msg(n > 0, "no handle opened: %d (%s)", r, msg);
        if (n < LIMIT) {
                ck_assert_msg(r == -EMFILE, "expected EMFILE, got %d (%s)", r, msg);
                ck_assert_msg(!strncmp(msg, fn, strlen(fn)), "message: %s", msg);
                ck_assert_ptr_nonnull(strstr(msg + strlen(fn), ": "));
                ck_assert_ptr_null(h[n]);
        }
        ck_assert_int_eq(again, 0);
        if (fd >= 0) {
                ck_assert(fd_is_open(fd)); /* still the caller's */
                close(fd);
        }
        free(h);
        iomem_close(&f);
}
END_TEST

/* ---- iomem_close / iomem_unlink ------------------------------------------ */

START_TEST(close_conventions)
{
        ck_assert_fail(iomem_close(NULL), EINVAL, "iomem_close");
        struct iomem *f = NULL;
        ck_assert_int_eq(iomem_close(&f), 0);
        f = test_open_new("close", PAGE);
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(iomem_close(&f), 0);
        ck_assert_ptr_null(f);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

START_TEST(unlink_errors)
{
        ck_assert_fail(iomem_unlink(NULL), EINVAL, "iomem_unlink");
        ck_assert_fail(iomem_unlink("bogus:x"), EPROTONOSUPPORT, "iomem_unlink");
        ck_assert_fail(iomem_unlink(":x"), EPROTONOSUPPORT, "iomem_unlink");
}
END_TEST

/* ---- acquire / release --------------------------------------------------- */

START_TEST(acquire_release_argument_errors)
{
        size_t ps = PAGE, top = SIZE_MAX & ~(ps - 1);
        struct iomem *f = test_open_new("acqarg", 4 * ps);
        ck_assert_fail(iomem_acquire(NULL, 0, ps), EINVAL, "iomem_acquire");
        ck_assert_fail(iomem_acquire(NULL, 0, 0), EINVAL, "iomem_acquire");
        ck_assert_fail(iomem_acquire(f, 1, ps), EINVAL, "iomem_acquire");
        ck_assert_fail(iomem_acquire(f, 0, ps + 1), EINVAL, "iomem_acquire");
        ck_assert_fail(iomem_acquire(f, 0, 1), EINVAL, "iomem_acquire");
        ck_assert_fail(iomem_acquire(f, ps / 2, ps / 2), EINVAL, "iomem_acquire");
        ck_assert_fail(iomem_acquire(f, top, ps), EOVERFLOW, "iomem_acquire");
        ck_assert_fail(iomem_acquire(f, ps, top), EOVERFLOW, "iomem_acquire");
        ck_assert_int_eq(iomem_acquire(f, 1, 0), 0); /* zero length: no alignment check */
        ck_assert_fail(iomem_release(NULL, 0, ps), EINVAL, "iomem_release");
        ck_assert_fail(iomem_release(NULL, 0, 0), EINVAL, "iomem_release");
        ck_assert_fail(iomem_release(f, 1, ps), EINVAL, "iomem_release");
        ck_assert_fail(iomem_release(f, 0, ps - 1), EINVAL, "iomem_release");
        ck_assert_fail(iomem_release(f, top, ps), EOVERFLOW, "iomem_release");
        ck_assert_int_eq(iomem_release(f, 1, 0), 0);
        ck_assert_int_eq(iomem_release(f, 0, 0), 0);
        ck_assert_uint_eq(acquired(f), 0);
        iomem_close(&f);
}
END_TEST

START_TEST(acquire_clamps_to_the_size_in_pages)
{
        size_t ps = PAGE;
        struct iomem *f = test_open_new("clamp", 3 * ps + 5);
        ck_assert_int_eq(iomem_acquire(f, 0, 8 * ps), (ssize_t)(4 * ps));
        ck_assert_uint_eq(acquired(f), 4 * ps);
        ck_assert_int_eq(iomem_acquire(f, 4 * ps, ps), 0);
        ck_assert_int_eq(iomem_acquire(f, 100 * ps, ps), 0);
        ck_assert_uint_eq(acquired(f), 4 * ps);
        /* The last page, partly past the end, is retrievable whole. */
        struct iovec v[4];
        ssize_t n = iomem_retrieve(f, 3 * ps, ps, v, 4);
        ck_assert_int_ge(n, 1);
        ck_assert_fail(iomem_retrieve(f, 3 * ps, ps + 1, v, 4), ENOENT, "iomem_retrieve");
        /* Straddling the end: the part before it. */
        ck_assert_int_eq(iomem_acquire(f, 3 * ps, 2 * ps), (ssize_t)ps);
        ck_assert_int_eq(iomem_release(f, 0, 4 * ps), 0);
        ck_assert_uint_eq(acquired(f), ps); /* page 3 was acquired twice */
        ck_assert_int_eq(iomem_release(f, 3 * ps, ps), 0);
        ck_assert_uint_eq(acquired(f), 0);
        ck_assert_fail(iomem_release(f, 3 * ps, ps), EINVAL, "iomem_release");
        iomem_close(&f);

        f = test_open_new("clamp0", 0);
        ck_assert_int_eq(iomem_acquire(f, 0, ps), 0);
        ck_assert_uint_eq(acquired(f), 0);
        ck_assert_fail(iomem_release(f, 0, ps), EINVAL, "iomem_release");
        iomem_close(&f);
}
END_TEST

START_TEST(acquire_nests_per_page)
{
        size_t ps = PAGE;
        struct iomem *f = test_open_new("nest", 4 * ps);
        ck_assert_int_eq(iomem_acquire(f, 0, 2 * ps), (ssize_t)(2 * ps));
        ck_assert_int_eq(iomem_acquire(f, ps, 2 * ps), (ssize_t)(2 * ps));
        ck_assert_uint_eq(acquired(f), 3 * ps);
        char *a1 = address_of(f, ps), *a2 = address_of(f, 2 * ps);
        /* Page 0 once, page 1 twice, page 2 once. */
        ck_assert_int_eq(iomem_release(f, 0, 2 * ps), 0);
        ck_assert_uint_eq(acquired(f), 2 * ps);
        struct iovec v;
        ck_assert_fail(iomem_retrieve(f, 0, 1, &v, 1), ENOENT, "iomem_retrieve");
        ck_assert_ptr_eq(address_of(f, ps), a1);
        ck_assert_ptr_eq(address_of(f, 2 * ps), a2);
        ck_assert_int_eq(iomem_release(f, ps, 2 * ps), 0);
        ck_assert_uint_eq(acquired(f), 0);
        ck_assert_fail(iomem_release(f, ps, ps), EINVAL, "iomem_release");
        ck_assert_fail(iomem_retrieve(f, ps, 1, &v, 1), ENOENT, "iomem_retrieve");
        iomem_close(&f);
}
END_TEST

START_TEST(release_in_parts)
{
        size_t ps = PAGE;
        struct iomem *f = test_open_new("part", 4 * ps);
        ck_assert_int_eq(iomem_acquire(f, 0, 4 * ps), (ssize_t)(4 * ps));
        char *a0 = address_of(f, 0), *a3 = address_of(f, 3 * ps);
        ck_assert_int_eq(iomem_release(f, ps, ps), 0);
        ck_assert_uint_eq(acquired(f), 3 * ps);
        struct iovec v[4];
        ck_assert_int_ge(iomem_retrieve(f, 0, ps, v, 4), 1);
        ck_assert_fail(iomem_retrieve(f, ps, ps, v, 4), ENOENT, "iomem_retrieve");
        ck_assert_fail(iomem_retrieve(f, 0, 2 * ps, v, 4), ENOENT, "iomem_retrieve");
        ck_assert_int_ge(iomem_retrieve(f, 2 * ps, 2 * ps, v, 4), 1);
        /* Releasing the whole range again fails (page 1 is not held) and
         * changes nothing. */
        ck_assert_fail(iomem_release(f, 0, 4 * ps), EINVAL, "iomem_release");
        ck_assert_uint_eq(acquired(f), 3 * ps);
        ck_assert_ptr_eq(address_of(f, 0), a0);
        ck_assert_ptr_eq(address_of(f, 3 * ps), a3);
        ck_assert_int_eq(iomem_release(f, 0, ps), 0);
        ck_assert_int_eq(iomem_release(f, 2 * ps, 2 * ps), 0);
        ck_assert_uint_eq(acquired(f), 0);
        iomem_close(&f);
}
END_TEST

/*
 * A read-only handle on an object another handle writes: by name for shm,
 * from a read-only descriptor for memfd (what a peer that may only read
 * gets). It sees the object as it is now, and its pins count.
 */
START_TEST(read_only_handle_sees_the_object_as_it_is)
{
        size_t ps = PAGE;
        const char *uri = new_uri("rolive");
        struct iomem_opts *o = NULL;
        struct iomem *f = NULL, *r = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, ps), 0);
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o), 0);
        iomem_opts_delete(&o);
        if (named()) {
                ck_assert_int_eq(iomem_open(&r, uri, IOMEM_RDONLY, NULL), 0);
                iomem_unlink(uri);
        } else {
                r = open_ro_twin(f);
        }
        /* Written and grown after the reader opened it. */
        ck_assert_int_eq(iomem_pwrite(f, "later", 5, 0), 5);
        ck_assert_int_eq(iomem_truncate(f, 3 * ps), 0);
        char buf[8] = { 0 };
        ssize_t n = iomem_pread(r, buf, 5, 0);
        size_t size = size_of(r);
        ck_assert_int_eq(iomem_acquire(r, 0, ps), (ssize_t)ps);
        poison_message();
        int t = iomem_truncate(f, 0);
        char msg[512];
        snprintf(msg, sizeof msg, "%s", iomem_errormsg());
        iomem_release(r, 0, ps);
        iomem_close(&r);
        iomem_close(&f);
        ck_assert_msg(n == 5 && !memcmp(buf, "later", 5), "reader's pread: %zd \"%s\"", n, buf);
        ck_assert_uint_eq(size, 3 * ps);
        ck_assert_msg(t == -EBUSY, "truncate over the reader's pin: %d (%s)", t, msg);
}
END_TEST

START_TEST(release_of_pages_not_acquired_changes_nothing)
{
        size_t ps = PAGE;
        struct iomem *f = NULL, *g = NULL;
        open_pair("relx", 4 * ps, &f, &g);
        ck_assert_fail(iomem_release(f, 0, ps), EINVAL, "iomem_release");
        ck_assert_int_eq(iomem_acquire(f, 0, 2 * ps), (ssize_t)(2 * ps));
        char *a0 = address_of(f, 0), *a1 = address_of(f, ps);
        ck_assert_fail(iomem_release(f, ps, 2 * ps), EINVAL, "iomem_release");
        ck_assert_fail(iomem_release(f, 2 * ps, ps), EINVAL, "iomem_release");
        ck_assert_fail(iomem_release(f, 3 * ps, ps), EINVAL, "iomem_release");
        /* Another handle's pins are not this handle's to release. */
        ck_assert_fail(iomem_release(g, 0, ps), EINVAL, "iomem_release");
        ck_assert_uint_eq(acquired(f), 2 * ps);
        /* acquired counts this process's pins, whichever handle took them. */
        ck_assert_uint_eq(acquired(g), 2 * ps);
        ck_assert_ptr_eq(address_of(f, 0), a0);
        ck_assert_ptr_eq(address_of(f, ps), a1);
        /* The pins are all still there: nobody may cut them off. */
        ck_assert_fail(iomem_truncate(g, ps), EBUSY, "iomem_truncate");
        ck_assert_int_eq(iomem_release(f, 0, 2 * ps), 0);
        ck_assert_int_eq(iomem_truncate(g, 0), 0);
        iomem_close(&g);
        iomem_close(&f);
}
END_TEST

/* ---- retrieve / borrow / bufcount ---------------------------------------- */

START_TEST(retrieve_errors)
{
        size_t ps = PAGE;
        struct iomem *f = test_open_new("retr", 4 * ps);
        struct iovec v[4];
        ck_assert_fail(iomem_retrieve(NULL, 0, ps, v, 4), EINVAL, "iomem_retrieve");
        ck_assert_fail(iomem_retrieve(NULL, 0, 0, NULL, 0), EINVAL, "iomem_retrieve");
        ck_assert_fail(iomem_retrieve(f, 0, ps, NULL, 1), EINVAL, "iomem_retrieve");
        ck_assert_fail(iomem_retrieve(f, SIZE_MAX, 2, v, 4), EOVERFLOW, "iomem_retrieve");
        ck_assert_fail(iomem_retrieve(f, 0, ps, v, 4), ENOENT, "iomem_retrieve");
        ck_assert_int_eq(iomem_retrieve(f, 0, 0, v, 4), 0);
        ck_assert_int_eq(iomem_retrieve(f, 0, 0, NULL, 0), 0);
        ck_assert_int_eq(iomem_acquire(f, ps, ps), (ssize_t)ps);
        ck_assert_fail(iomem_retrieve(f, 0, 2 * ps, v, 4), ENOENT, "iomem_retrieve");
        ck_assert_fail(iomem_retrieve(f, ps, ps + 1, v, 4), ENOENT, "iomem_retrieve");
        ck_assert_fail(iomem_retrieve(f, ps - 1, 2, v, 4), ENOENT, "iomem_retrieve");
        /* Byte offsets inside an acquired range are fine. */
        ck_assert_int_eq(iomem_retrieve(f, ps + 5, 10, v, 4), 1);
        ck_assert_uint_eq(v[0].iov_len, 10);
        ck_assert_ptr_eq(v[0].iov_base, address_of(f, ps) + 5);
        memcpy(v[0].iov_base, "retrieved!", 10);
        char buf[10];
        ck_assert_int_eq(iomem_pread(f, buf, 10, ps + 5), 10);
        ck_assert_int_eq(memcmp(buf, "retrieved!", 10), 0);

        /* Read-only handles have no writable memory to give. */
        struct iomem *r = open_ro_twin(f);
        ck_assert_fail(iomem_retrieve(r, ps, ps, v, 4), EROFS, "iomem_retrieve");
        ck_assert_int_eq(iomem_acquire(r, ps, ps), (ssize_t)ps);
        ck_assert_fail(iomem_retrieve(r, ps, ps, v, 4), EROFS, "iomem_retrieve");
        ck_assert_int_ge(iomem_borrow(r, ps + 5, 10, v, 4), 1);
        ck_assert_int_eq(memcmp(v[0].iov_base, "retrieved!", 10), 0);
        ck_assert_int_eq(iomem_release(r, ps, ps), 0);
        iomem_close(&r);
        ck_assert_int_eq(iomem_release(f, ps, ps), 0);
        iomem_close(&f);
}
END_TEST

/*
 * An object whose pages are not one run of memory: page 1 is a page of
 * iomem_alloc memory given to it. The pattern seed of each page is its
 * index.
 */
static struct iomem *open_scattered(const char *tag)
{
        size_t ps = PAGE;
        struct iomem *f = test_open_new(tag, 3 * ps);
        char *buf = malloc(3 * ps);
        for (unsigned i = 0; i < 3; i++)
                fill_pattern(buf + i * ps, ps, i);
        ck_assert_int_eq(iomem_pwrite(f, buf, 3 * ps, 0), (ssize_t)(3 * ps));
        void *page;
        ck_assert_int_eq(iomem_alloc(f, ps, &page), 0);
        memcpy(page, buf + ps, ps);
        struct iovec v = { page, ps };
        ck_assert_int_eq(iomem_gift(f, ps, ps, &v, 1, IOMEM_GIFT_NOCOPY), 1);
        free(buf);
        return f;
}

static void check_entries(const struct iovec *a, const struct iovec *b, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                ck_assert_ptr_eq(a[i].iov_base, b[i].iov_base);
                ck_assert_uint_eq(a[i].iov_len, b[i].iov_len);
        }
}

START_TEST(retrieve_and_borrow_fill_a_short_array)
{
        size_t ps = PAGE;
        if (!test_backend_has(IOMEM_CAP_GIFT, "short arrays of a range split by an adopted gift"))
                return;
        struct iomem *f = open_scattered("short");
        ssize_t n = iomem_bufcount(f, 0, 3 * ps);
        ck_assert_int_ge(n, 2); /* the gifted page is memory of its own */
        struct iovec all[8], few[8];
        ck_assert_int_eq(iomem_borrow(f, 0, 3 * ps, all, 8), n);
        size_t total = 0;
        for (ssize_t i = 0; i < n; i++)
                total += all[i].iov_len;
        ck_assert_uint_eq(total, 3 * ps);
        memset(few, 0, sizeof few);
        ck_assert_int_eq(iomem_borrow(f, 0, 3 * ps, few, (size_t)n - 1), n - 1);
        check_entries(all, few, (size_t)n - 1);
        ck_assert_ptr_null(few[n - 1].iov_base); /* nothing past iovcnt */
        ck_assert_int_eq(iomem_borrow(f, 0, 3 * ps, few, 0), 0);
        ck_assert_int_eq(iomem_borrow(f, 0, 3 * ps, NULL, 0), 0);

        ck_assert_int_eq(iomem_acquire(f, 0, 3 * ps), (ssize_t)(3 * ps));
        ck_assert_int_eq(iomem_retrieve(f, 0, 3 * ps, all, 8), n);
        memset(few, 0, sizeof few);
        ck_assert_int_eq(iomem_retrieve(f, 0, 3 * ps, few, (size_t)n - 1), n - 1);
        check_entries(all, few, (size_t)n - 1);
        ck_assert_ptr_null(few[n - 1].iov_base);
        ck_assert_int_eq(iomem_retrieve(f, 0, 3 * ps, few, 1), 1);
        check_entries(all, few, 1);
        ck_assert_int_eq(iomem_retrieve(f, 0, 3 * ps, NULL, 0), 0);
        /* The memory holds the file's bytes, in order. */
        char *expect = malloc(ps);
        size_t at = 0;
        for (ssize_t i = 0; i < n; i++) {
                for (size_t k = 0; k < all[i].iov_len; k += ps) {
                        fill_pattern(expect, ps, (unsigned)((at + k) / ps));
                        ck_assert_int_eq(memcmp((char *)all[i].iov_base + k, expect, ps), 0);
                }
                at += all[i].iov_len;
        }
        free(expect);
        ck_assert_int_eq(iomem_release(f, 0, 3 * ps), 0);
        iomem_close(&f);
}
END_TEST

/* A page pinned through a handle keeps its address when the handle then
 * allocates gift-pool memory beside pool memory it maps already (found by
 * tests/fuzz/fuzz_procs.c: the new buffer's mapping overlapped the one of
 * the pool, and retrieve moved to it). */
START_TEST(a_pinned_gift_keeps_its_address_when_the_pool_grows)
{
        size_t ps = PAGE;
        if (!test_backend_has(IOMEM_CAP_GIFT, "pool memory pinned beside a new buffer"))
                return;
        const char *uri = test_uri("pool-va");
        struct iomem_opts *o;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, 4 * ps), 0);
        struct iomem *f, *g;
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o), 0);
        iomem_opts_delete(&o);
        if (test_caps() & IOMEM_CAP_NAMED) {
                ck_assert_int_eq(iomem_open(&g, uri, IOMEM_RDWR, NULL), 0);
                iomem_unlink(uri);
        } else {
                int fd = dup(iomem_fd(f));
                ck_assert_int_eq(iomem_open_fd(&g, test_backend(), fd, IOMEM_RDWR, NULL), 0);
        }
        /* f gives page 0 pool memory; g pins it, which maps that pool. */
        void *b, *c;
        ck_assert_int_eq(iomem_alloc(f, ps, &b), 0);
        memset(b, 7, ps);
        ck_assert_int_eq(iomem_gift(f, 0, ps, &(struct iovec){ b, ps }, 1, IOMEM_GIFT_NOCOPY), 1);
        struct iovec before, after;
        ck_assert_int_eq(iomem_acquire(g, 0, ps), (ssize_t)ps);
        ck_assert_int_eq(iomem_retrieve(g, 0, ps, &before, 1), 1);
        /* g's own buffer comes from the pool's next offsets. */
        ck_assert_int_eq(iomem_alloc(g, ps, &c), 0);
        ck_assert_int_eq(iomem_retrieve(g, 0, ps, &after, 1), 1);
        ck_assert_ptr_eq(after.iov_base, before.iov_base);
        ck_assert_int_eq(((unsigned char *)after.iov_base)[ps - 1], 7);
        ck_assert_int_eq(iomem_free(g, c, ps), 0);
        ck_assert_int_eq(iomem_release(g, 0, ps), 0);
        ck_assert_int_eq(iomem_close(&g), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

START_TEST(borrow_and_bufcount_errors)
{
        size_t ps = PAGE;
        struct iomem *f = test_open_new("borrow", 4 * ps);
        struct iovec v[4];
        ck_assert_fail(iomem_borrow(NULL, 0, ps, v, 4), EINVAL, "iomem_borrow");
        ck_assert_fail(iomem_borrow(NULL, 0, 0, NULL, 0), EINVAL, "iomem_borrow");
        ck_assert_fail(iomem_borrow(f, 0, ps, NULL, 2), EINVAL, "iomem_borrow");
        ck_assert_fail(iomem_borrow(f, SIZE_MAX, 2, v, 4), EOVERFLOW, "iomem_borrow");
        ck_assert_fail(iomem_borrow(f, 2, SIZE_MAX - 1, v, 4), EOVERFLOW, "iomem_borrow");
        ck_assert_fail(iomem_bufcount(NULL, 0, ps), EINVAL, "iomem_bufcount");
        ck_assert_fail(iomem_bufcount(NULL, 0, 0), EINVAL, "iomem_bufcount");
        ck_assert_fail(iomem_bufcount(f, SIZE_MAX, 2), EOVERFLOW, "iomem_bufcount");
        /* Zero length, and at or past the end: nothing. */
        ck_assert_int_eq(iomem_borrow(f, 0, 0, v, 4), 0);
        ck_assert_int_eq(iomem_bufcount(f, 0, 0), 0);
        ck_assert_int_eq(iomem_borrow(f, 4 * ps, ps, v, 4), 0);
        ck_assert_int_eq(iomem_bufcount(f, 4 * ps, ps), 0);
        ck_assert_int_eq(iomem_borrow(f, 100 * ps, ps, v, 4), 0);
        ck_assert_int_eq(iomem_bufcount(f, SIZE_MAX - 1, 1), 0); /* ends at SIZE_MAX: no overflow */
        /* A sparse file: hole, data, hole, and clamped at the end. A dax:
         * file's holes are the filesystem's, which POSIX cannot see. */
        ck_assert_int_eq(iomem_pwrite(f, "x", 1, 2 * ps), 1);
        if (!IOMEM_PLATFORM_LINUX && !strcmp(test_backend(), "dax")) {
                ck_assert_int_eq(iomem_bufcount(f, 0, 100 * ps), 1);
                ck_assert_int_eq(iomem_borrow(f, 0, 100 * ps, v, 4), 1);
                ck_assert_int_eq(((char *)v[0].iov_base)[2 * ps], 'x');
                iomem_close(&f);
                return;
        }
        ck_assert_int_eq(iomem_bufcount(f, 0, 100 * ps), 3);
        ck_assert_int_eq(iomem_borrow(f, 0, 100 * ps, v, 4), 3);
        ck_assert_ptr_null(v[0].iov_base);
        ck_assert_uint_eq(v[0].iov_len, 2 * ps);
        ck_assert_ptr_nonnull(v[1].iov_base);
        ck_assert_int_eq(*(char *)v[1].iov_base, 'x');
        ck_assert_ptr_null(v[2].iov_base);
        ck_assert_uint_eq(v[0].iov_len + v[1].iov_len + v[2].iov_len, 4 * ps);
        ck_assert_int_eq(iomem_borrow(f, 4 * ps - 10, 100, v, 4), 1);
        ck_assert_uint_eq(v[0].iov_len, 10);
        iomem_close(&f);
}
END_TEST

/* ---- gift ---------------------------------------------------------------- */

START_TEST(gift_argument_errors)
{
        size_t ps = PAGE;
        struct iomem *f = test_open_new("giftarg", 2 * ps);
        char buf[16] = "abcdefghijklmnop";
        struct iovec v = { buf, 10 };
        ck_assert_fail(iomem_gift(NULL, 0, 10, &v, 1, 0), EINVAL, "iomem_gift");
        ck_assert_fail(iomem_gift(NULL, 0, 0, NULL, 0, 0), EINVAL, "iomem_gift");
        ck_assert_fail(iomem_gift(f, 0, 10, NULL, 1, 0), EINVAL, "iomem_gift");
        ck_assert_fail(iomem_gift(f, SIZE_MAX, 10, &v, 1, 0), EOVERFLOW, "iomem_gift");
        ck_assert_fail(iomem_gift(f, 0, 10, &v, 1, 0x2u), EINVAL, "iomem_gift");
        ck_assert_fail(iomem_gift(f, 0, 10, &v, 1, ~IOMEM_GIFT_NOCOPY), EINVAL, "iomem_gift");
        ck_assert_fail(iomem_gift(f, 0, 9, &v, 1, 0), EINVAL, "iomem_gift");
        ck_assert_fail(iomem_gift(f, 0, 11, &v, 1, 0), EINVAL, "iomem_gift");
        ck_assert_fail(iomem_gift(f, 0, 10, &v, 0, 0), EINVAL, "iomem_gift");
        struct iovec two[2] = { { buf, 5 }, { NULL, 5 } };
        ck_assert_fail(iomem_gift(f, 0, 10, two, 2, 0), EINVAL, "iomem_gift");
        struct iovec huge[2] = { { buf, SIZE_MAX }, { buf, 2 } };
        ck_assert_fail(iomem_gift(f, 0, 1, huge, 2, 0), EOVERFLOW, "iomem_gift");
        ck_assert_fail(iomem_gift(f, MAX_FILE, 10, &v, 1, 0), EFBIG, "iomem_gift");
        ck_assert_fail(iomem_gift(f, MAX_FILE - 5, 10, &v, 1, 0), EFBIG, "iomem_gift");
        /* Zero length is nothing to do, once the object is there. */
        ck_assert_int_eq(iomem_gift(f, 0, 0, NULL, 0, 0), 0);
        ck_assert_int_eq(iomem_gift(f, 0, 0, &v, 0, 0), 0);
        /* None of it changed the file. */
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.size, 2 * ps);
        ck_assert_uint_eq(st.gift_adopted + st.gift_copied, 0);
        ck_assert_int_eq(iomem_bufcount(f, 0, 2 * ps), 1); /* still one hole */
        /* Empty entries count toward neither length nor failure. */
        struct iovec with_empty[3] = { { NULL, 0 }, { buf, 10 }, { buf, 0 } };
        ck_assert_int_eq(iomem_gift(f, 0, 10, with_empty, 3, 0), 3);
        char out[10];
        ck_assert_int_eq(iomem_pread(f, out, 10, 0), 10);
        ck_assert_int_eq(memcmp(out, buf, 10), 0);
        iomem_close(&f);
}
END_TEST

START_TEST(gift_nocopy_of_foreign_memory_is_exdev)
{
        size_t ps = PAGE;
        struct iomem *f = test_open_new("exdev", 2 * ps);
        struct iomem *other = test_open_new("exdev2", 0);
        char *heap = malloc(ps);
        memset(heap, 'h', ps);
        void *mine, *theirs;
        ck_assert_int_eq(iomem_alloc(f, 2 * ps, &mine), 0);
        ck_assert_int_eq(iomem_alloc(other, ps, &theirs), 0);
        memset(mine, 'm', 2 * ps);
        struct iovec heap_v = { heap, ps }, theirs_v = { theirs, ps };
        struct iovec odd_v = { (char *)mine + 1, ps }, mixed[2] = { { mine, ps }, { heap, ps } };
        ck_assert_fail(iomem_gift(f, 0, ps, &heap_v, 1, IOMEM_GIFT_NOCOPY), EXDEV, "iomem_gift");
        ck_assert_fail(iomem_gift(f, 0, ps, &theirs_v, 1, IOMEM_GIFT_NOCOPY), EXDEV, "iomem_gift");
        ck_assert_fail(iomem_gift(f, 0, ps, &odd_v, 1, IOMEM_GIFT_NOCOPY), EXDEV, "iomem_gift");
        ck_assert_fail(iomem_gift(f, 0, 2 * ps, mixed, 2, IOMEM_GIFT_NOCOPY), EXDEV, "iomem_gift");
        /* Landing off a page boundary it would have to be copied too. */
        struct iovec mine_v = { mine, ps };
        ck_assert_fail(iomem_gift(f, 1, ps, &mine_v, 1, IOMEM_GIFT_NOCOPY), EXDEV, "iomem_gift");
        /* Nothing changed, and the buffer is still the caller's. */
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.size, 2 * ps);
        ck_assert_uint_eq(st.gift_adopted + st.gift_copied, 0);
        ck_assert_int_eq(iomem_bufcount(f, 0, 2 * ps), 1);
        ck_assert_int_eq(iomem_free(f, mine, 2 * ps), 0);

        /* Without NOCOPY, foreign memory is copied and stays the caller's. */
        ck_assert_int_eq(iomem_gift(f, 0, ps, &heap_v, 1, 0), 1);
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.gift_copied, ps);
        ck_assert_uint_eq(st.gift_adopted, 0);
        memset(heap, 'x', ps);
        char c;
        ck_assert_int_eq(iomem_pread(f, &c, 1, ps - 1), 1);
        ck_assert_int_eq(c, 'h');
        ck_assert_int_eq(iomem_free(other, theirs, ps), 0);
        free(heap);
        iomem_close(&other);
        iomem_close(&f);
}
END_TEST

START_TEST(gift_over_a_pinned_range_is_ebusy)
{
        size_t ps = PAGE;
        struct iomem *f = NULL, *g = NULL;
        open_pair("giftbusy", 3 * ps, &f, &g);
        char *buf = malloc(2 * ps);
        memset(buf, 'g', 2 * ps);
        struct iovec one = { buf, ps }, two = { buf, 2 };
        ck_assert_int_eq(iomem_acquire(f, ps, ps), (ssize_t)ps);
        ck_assert_fail(iomem_gift(f, ps, ps, &one, 1, 0), EBUSY, "iomem_gift");
        ck_assert_fail(iomem_gift(f, ps - 1, 2, &two, 1, 0), EBUSY, "iomem_gift");
        ck_assert_fail(iomem_gift(f, 2 * ps - 1, 2, &two, 1, 0), EBUSY, "iomem_gift");
        /* Pins are seen by every handle. */
        ck_assert_fail(iomem_gift(g, ps + 10, 2, &two, 1, 0), EBUSY, "iomem_gift");
        void *page;
        ck_assert_int_eq(iomem_alloc(g, ps, &page), 0);
        struct iovec adopt = { page, ps };
        ck_assert_fail(iomem_gift(g, ps, ps, &adopt, 1, test_gift_flags()), EBUSY, "iomem_gift");
        char c = 1;
        ck_assert_int_eq(iomem_pread(f, &c, 1, ps), 1);
        ck_assert_int_eq(c, 0);
        /* Next to it is fine. */
        ck_assert_int_eq(iomem_gift(f, 0, ps, &one, 1, 0), 1);
        ck_assert_int_eq(iomem_gift(g, 2 * ps, ps, &adopt, 1, test_gift_flags()), 1);
        ck_assert_int_eq(iomem_release(f, ps, ps), 0);
        ck_assert_int_eq(iomem_gift(g, ps, 2, &two, 1, 0), 1);
        free(buf);
        iomem_close(&g);
        iomem_close(&f);
}
END_TEST

START_TEST(gift_and_alloc_on_read_only_are_erofs)
{
        size_t ps = PAGE;
        struct iomem *f = test_open_new("giftro", ps);
        struct iomem *r = open_ro_twin(f);
        char buf[8] = "readonly";
        struct iovec v = { buf, 8 };
        ck_assert_fail(iomem_gift(r, 0, 8, &v, 1, 0), EROFS, "iomem_gift");
        ck_assert_fail(iomem_gift(r, 0, 8, &v, 1, IOMEM_GIFT_NOCOPY), EROFS, "iomem_gift");
        void *p = SENTINEL;
        ck_assert_fail(iomem_alloc(r, ps, &p), EROFS, "iomem_alloc");
        ck_assert_ptr_eq(p, SENTINEL);
        char out[8] = { 1 };
        ck_assert_int_eq(iomem_pread(f, out, 8, 0), 8);
        ck_assert_int_eq(out[0], 0);
        iomem_close(&r);
        iomem_close(&f);
}
END_TEST

/* ---- alloc / free -------------------------------------------------------- */

START_TEST(alloc_errors)
{
        size_t ps = PAGE;
        struct iomem *f = test_open_new("alloc", 0);
        void *p = SENTINEL;
        ck_assert_fail(iomem_alloc(NULL, ps, &p), EINVAL, "iomem_alloc");
        ck_assert_fail(iomem_alloc(f, ps, NULL), EINVAL, "iomem_alloc");
        ck_assert_fail(iomem_alloc(NULL, 0, NULL), EINVAL, "iomem_alloc");
        ck_assert_fail(iomem_alloc(f, SIZE_MAX, &p), ENOMEM, "iomem_alloc");
        ck_assert_fail(iomem_alloc(f, MAX_FILE + 1, &p), ENOMEM, "iomem_alloc");
        ck_assert_ptr_eq(p, SENTINEL);
        ck_assert_int_eq(iomem_alloc(f, 0, &p), 0);
        ck_assert_ptr_null(p);
        ck_assert_int_eq(iomem_alloc(f, ps + 1, &p), 0);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % ps, 0);
        memset(p, 'a', 2 * ps); /* whole pages */
        ck_assert_int_eq(iomem_free(f, p, ps + 1), 0);
        iomem_close(&f);
}
END_TEST

START_TEST(free_errors)
{
        size_t ps = PAGE;
        struct iomem *f = test_open_new("free", 0), *other = test_open_new("free2", 0);
        void *p, *q;
        char stack[64];
        ck_assert_int_eq(iomem_alloc(f, 2 * ps, &p), 0);
        ck_assert_fail(iomem_free(NULL, p, 2 * ps), EINVAL, "iomem_free");
        ck_assert_fail(iomem_free(NULL, NULL, 0), EINVAL, "iomem_free");
        ck_assert_fail(iomem_free(f, NULL, 2 * ps), EINVAL, "iomem_free");
        ck_assert_fail(iomem_free(f, stack, sizeof stack), EINVAL, "iomem_free");
        ck_assert_fail(iomem_free(f, p, ps), EINVAL, "iomem_free");
        ck_assert_fail(iomem_free(f, p, 3 * ps), EINVAL, "iomem_free");
        ck_assert_fail(iomem_free(f, (char *)p + ps, ps), EINVAL, "iomem_free");
        ck_assert_fail(iomem_free(other, p, 2 * ps), EINVAL, "iomem_free");
        ck_assert_int_eq(iomem_free(f, p, 0), 0);
        ck_assert_int_eq(iomem_free(f, NULL, 0), 0);
        /* None of those freed it. */
        memset(p, 'p', 2 * ps);
        ck_assert_int_eq(iomem_free(f, p, 2 * ps), 0);
        ck_assert_fail(iomem_free(f, p, 2 * ps), EINVAL, "iomem_free");

        /* Gifted memory is the file's. */
        ck_assert_int_eq(iomem_alloc(f, ps, &q), 0);
        memset(q, 'q', ps);
        struct iovec v = { q, ps };
        ck_assert_int_eq(iomem_gift(f, 0, ps, &v, 1, test_gift_flags()), 1);
        ck_assert_fail(iomem_free(f, q, ps), EINVAL, "iomem_free");
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        test_assert_gifted(&st, ps);
        char c;
        ck_assert_int_eq(iomem_pread(f, &c, 1, ps - 1), 1);
        ck_assert_int_eq(c, 'q');
        iomem_close(&other);
        iomem_close(&f);
}
END_TEST

/* ---- locking ------------------------------------------------------------- */

START_TEST(lock_errors)
{
        struct iomem *f = test_open_new("lock", 0);
        ck_assert_fail(iomem_rdlock(NULL), EINVAL, "iomem_rdlock");
        ck_assert_fail(iomem_wrlock(NULL), EINVAL, "iomem_wrlock");
        ck_assert_fail(iomem_unlock(NULL), EINVAL, "iomem_unlock");
        ck_assert_fail(iomem_unlock(f), EPERM, "iomem_unlock");
        /* The reader cannot become the writer. */
        ck_assert_int_eq(iomem_rdlock(f), 0);
        ck_assert_fail(iomem_wrlock(f), EDEADLK, "iomem_wrlock");
        ck_assert_int_eq(iomem_rdlock(f), 0);
        ck_assert_int_eq(iomem_unlock(f), 0);
        ck_assert_int_eq(iomem_unlock(f), 0);
        ck_assert_fail(iomem_unlock(f), EPERM, "iomem_unlock");
        /* The writer may lock again, and read. */
        ck_assert_int_eq(iomem_wrlock(f), 0);
        ck_assert_int_eq(iomem_wrlock(f), 0);
        ck_assert_int_eq(iomem_rdlock(f), 0);
        ck_assert_int_eq(iomem_unlock(f), 0);
        ck_assert_int_eq(iomem_unlock(f), 0);
        ck_assert_int_eq(iomem_unlock(f), 0);
        ck_assert_fail(iomem_unlock(f), EPERM, "iomem_unlock");
        /* Its own writes under its own write lock. */
        ck_assert_int_eq(iomem_wrlock(f), 0);
        ck_assert_int_eq(iomem_pwrite(f, "w", 1, 0), 1);
        ck_assert_int_eq(iomem_truncate(f, 10), 0);
        ck_assert_int_eq(iomem_unlock(f), 0);
        iomem_close(&f);
}
END_TEST

struct lock_try {
        struct iomem *f;
        int r;
        char msg[512];
};

static void *unlock_in_thread(void *arg)
{
        struct lock_try *t = arg;
        t->r = iomem_unlock(t->f);
        snprintf(t->msg, sizeof t->msg, "%s", iomem_errormsg());
        return NULL;
}

START_TEST(unlock_by_another_thread_is_eperm)
{
        struct iomem *f = test_open_new("lockthr", 0);
        struct lock_try t = { .f = f };
        pthread_t th;
        ck_assert_int_eq(iomem_wrlock(f), 0);
        ck_assert_int_eq(pthread_create(&th, NULL, unlock_in_thread, &t), 0);
        ck_assert_int_eq(pthread_join(th, NULL), 0);
        ck_assert_int_eq(t.r, -EPERM);
        ck_assert_msg(!strncmp(t.msg, "iomem_unlock: ", 14), "message: %s", t.msg);
        ck_assert_int_eq(iomem_unlock(f), 0);
        iomem_close(&f);
}
END_TEST

/* Readers that hold the read lock until the pipe closes. */
struct reader {
        struct iomem *f;
        sem_t *ready;
        int gate;
        int r;
        char msg[512];
};

static void *hold_read_lock(void *arg)
{
        struct reader *rd = arg;
        rd->r = iomem_rdlock(rd->f);
        snprintf(rd->msg, sizeof rd->msg, "%s", iomem_errormsg());
        sem_post(rd->ready);
        char c;
        while (read(rd->gate, &c, 1) < 0 && errno == EINTR)
                ;
        if (rd->r == 0)
                iomem_unlock(rd->f);
        return NULL;
}

START_TEST(rdlock_with_too_many_readers_is_eagain)
{
        /* Past the fd engine's table of 128 readers; valgrind runs at most
         * 500 threads. */
        const int LIMIT = test_under_valgrind() ? 400 : 2048;
        struct iomem *f = test_open_new("readers", 0);
        struct reader *rd = calloc(LIMIT, sizeof *rd);
        pthread_t *th = calloc(LIMIT, sizeof *th);
        sem_t ready;
        int gate[2];
        ck_assert_int_eq(sem_init(&ready, 0, 0), 0);
        ck_assert_int_eq(pipe(gate), 0);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 64 * 1024);
        int n = 0;
        while (n < LIMIT) {
                rd[n] = (struct reader){ .f = f, .ready = &ready, .gate = gate[0] };
                ck_assert_int_eq(pthread_create(&th[n], &attr, hold_read_lock, &rd[n]), 0);
                while (sem_wait(&ready) < 0 && errno == EINTR)
                        ;
                if (rd[n++].r)
                        break;
        }
        close(gate[1]);
        for (int i = 0; i < n; i++)
                pthread_join(th[i], NULL);
        pthread_attr_destroy(&attr);
        close(gate[0]);
        sem_destroy(&ready);
        struct reader last = rd[n - 1];
        free(rd);
        free(th);
        /* A lock with a table of readers refuses one past it with
         * -EAGAIN; one without takes them all. */
        ck_assert_msg(n > 1, "%d readers", n);
        if (n < LIMIT || last.r) {
                ck_assert_int_eq(last.r, -EAGAIN);
                ck_assert_msg(!strncmp(last.msg, "iomem_rdlock: ", 14), "message: %s", last.msg);
                ck_assert_ptr_nonnull(strstr(last.msg + 14, ": "));
        }
        /* All gone: a writer gets in. */
        ck_assert_int_eq(iomem_wrlock(f), 0);
        ck_assert_int_eq(iomem_unlock(f), 0);
        iomem_close(&f);
}
END_TEST

/* ---- stat / truncate / pread / pwrite / sync / fd ------------------------ */

START_TEST(stat_errors_and_fields)
{
        size_t ps = PAGE;
        struct iomem *f = test_open_new("stat", 3 * ps + 5);
        struct iomem_stat st, before;
        memset(&st, 0xab, sizeof st);
        before = st;
        ck_assert_fail(iomem_stat(NULL, &st), EINVAL, "iomem_stat");
        ck_assert_fail(iomem_stat(f, NULL), EINVAL, "iomem_stat");
        ck_assert_fail(iomem_stat(NULL, NULL), EINVAL, "iomem_stat");
        ck_assert_int_eq(memcmp(&st, &before, sizeof st), 0);
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.size, 3 * ps + 5);
        ck_assert_uint_eq(st.page_size, ps);
        ck_assert_str_eq(st.backend, test_backend());
        ck_assert_int_eq(st.dax, 0);
        ck_assert_uint_eq(st.acquired, 0);
        ck_assert_uint_eq(st.gift_adopted, 0);
        ck_assert_uint_eq(st.gift_copied, 0);
        ck_assert_int_ge(st.numa_node, -1);
        /* The object's capabilities are its backend's, but for DAX, which
         * is its file's (dax: on a filesystem without DAX has none). */
        unsigned backend = test_caps();
        ck_assert_uint_ne(backend, 0);
        ck_assert_uint_eq(st.caps & ~IOMEM_CAP_DAX, backend & ~IOMEM_CAP_DAX);
        ck_assert_uint_eq(!!(st.caps & IOMEM_CAP_DAX), st.dax);
        iomem_close(&f);
}
END_TEST

START_TEST(truncate_errors)
{
        size_t ps = PAGE;
        struct iomem *f = NULL, *g = NULL;
        open_pair("trunc", 3 * ps, &f, &g);
        ck_assert_fail(iomem_truncate(NULL, 0), EINVAL, "iomem_truncate");
        ck_assert_fail(iomem_truncate(f, MAX_FILE + 1), EFBIG, "iomem_truncate");
        ck_assert_fail(iomem_truncate(f, SIZE_MAX), EFBIG, "iomem_truncate");
        struct iomem *r = open_ro_twin(f);
        ck_assert_fail(iomem_truncate(r, 0), EROFS, "iomem_truncate");
        ck_assert_fail(iomem_truncate(r, 10 * ps), EROFS, "iomem_truncate");
        iomem_close(&r);
        /* Cutting into a pinned page is refused, by every handle. */
        ck_assert_int_eq(iomem_acquire(f, ps, ps), (ssize_t)ps);
        ck_assert_fail(iomem_truncate(f, ps), EBUSY, "iomem_truncate");
        ck_assert_fail(iomem_truncate(f, ps + 1), EBUSY, "iomem_truncate");
        ck_assert_fail(iomem_truncate(f, 0), EBUSY, "iomem_truncate");
        ck_assert_fail(iomem_truncate(g, 0), EBUSY, "iomem_truncate");
        ck_assert_uint_eq(size_of(f), 3 * ps);
        ck_assert_int_eq(iomem_truncate(f, 2 * ps), 0);
        ck_assert_int_eq(iomem_truncate(g, 10 * ps), 0);
        ck_assert_uint_eq(size_of(f), 10 * ps);
        ck_assert_int_eq(iomem_release(f, ps, ps), 0);
        ck_assert_int_eq(iomem_truncate(g, 0), 0);
        ck_assert_uint_eq(size_of(f), 0);

        /* The largest size: refused only for want of space. */
        struct statfs sf;
        ck_assert_int_eq(fstatfs(iomem_fd(f), &sf), 0);
        if (test_caps() & IOMEM_CAP_DAX) {
                /* A file's own filesystem decides: sparse, or refused. */
                int r = iomem_truncate(f, MAX_FILE);
                ck_assert_msg(r == 0 || r == -EFBIG || r == -ENOSPC, "%d: %s", r, iomem_errormsg());
                ck_assert_uint_eq(size_of(f), r ? 0 : MAX_FILE);
                ck_assert_int_eq(iomem_truncate(f, 0), 0);
        } else if (on_backend("mshare")) {
                /* ... but a region's capacity was fixed when it was created. */
                ck_assert_fail(iomem_truncate(f, MAX_FILE), EFBIG, "iomem_truncate");
                ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "capacity"));
                ck_assert_uint_eq(size_of(f), 0);
        } else if (sf.f_blocks && (uint64_t)sf.f_bavail * sf.f_bsize < MAX_FILE) {
                ck_assert_fail(iomem_truncate(f, MAX_FILE), ENOSPC, "iomem_truncate");
                ck_assert_uint_eq(size_of(f), 0);
        } else {
                ck_assert_int_eq(iomem_truncate(f, MAX_FILE), 0);
                ck_assert_uint_eq(size_of(f), MAX_FILE);
                ck_assert_int_eq(iomem_truncate(f, 0), 0);
        }
        iomem_close(&g);
        iomem_close(&f);
}
END_TEST

START_TEST(pread_pwrite_errors)
{
        size_t ps = PAGE;
        struct iomem *f = test_open_new("rw", ps);
        char buf[8] = "abcdefgh";
        ck_assert_fail(iomem_pread(NULL, buf, 8, 0), EINVAL, "iomem_pread");
        ck_assert_fail(iomem_pread(NULL, NULL, 0, 0), EINVAL, "iomem_pread");
        ck_assert_fail(iomem_pread(f, NULL, 8, 0), EINVAL, "iomem_pread");
        ck_assert_fail(iomem_pread(f, buf, 8, SIZE_MAX - 4), EOVERFLOW, "iomem_pread");
        ck_assert_fail(iomem_pwrite(NULL, buf, 8, 0), EINVAL, "iomem_pwrite");
        ck_assert_fail(iomem_pwrite(NULL, NULL, 0, 0), EINVAL, "iomem_pwrite");
        ck_assert_fail(iomem_pwrite(f, NULL, 8, 0), EINVAL, "iomem_pwrite");
        ck_assert_fail(iomem_pwrite(f, buf, 8, SIZE_MAX - 4), EOVERFLOW, "iomem_pwrite");
        ck_assert_fail(iomem_pwrite(f, buf, 8, MAX_FILE), EFBIG, "iomem_pwrite");
        ck_assert_fail(iomem_pwrite(f, buf, 8, MAX_FILE - 4), EFBIG, "iomem_pwrite");
        ck_assert_fail(iomem_pwrite(f, buf, 1, SIZE_MAX - 1), EFBIG, "iomem_pwrite");
        ck_assert_uint_eq(size_of(f), ps);
        ck_assert_int_eq(iomem_pread(f, NULL, 0, 0), 0);
        ck_assert_int_eq(iomem_pwrite(f, NULL, 0, 0), 0);
        ck_assert_int_eq(iomem_pwrite(f, buf, 0, 10 * ps), 0);
        ck_assert_uint_eq(size_of(f), ps); /* zero length does not grow it */
        ck_assert_int_eq(iomem_pread(f, buf, 8, ps), 0);
        ck_assert_int_eq(iomem_pread(f, buf, 8, SIZE_MAX - 8), 0);
        ck_assert_int_eq(iomem_pwrite(f, "abcdefgh", 8, ps - 4), 8);
        struct iomem *r = open_ro_twin(f);
        ck_assert_fail(iomem_pwrite(r, buf, 8, 0), EROFS, "iomem_pwrite");
        ck_assert_int_eq(iomem_pread(r, buf, 8, ps - 4), 8);
        ck_assert_int_eq(memcmp(buf, "abcdefgh", 8), 0);
        iomem_close(&r);
        iomem_close(&f);
}
END_TEST

START_TEST(sync_errors)
{
        size_t ps = PAGE;
        struct iomem *f = test_open_new("sync", ps);
        ck_assert_fail(iomem_sync(NULL, 0, ps), EINVAL, "iomem_sync");
        ck_assert_fail(iomem_sync(NULL, 0, 0), EINVAL, "iomem_sync");
        ck_assert_fail(iomem_sync(f, SIZE_MAX, 2), EOVERFLOW, "iomem_sync");
        ck_assert_fail(iomem_sync(f, 2, SIZE_MAX), EOVERFLOW, "iomem_sync");
        ck_assert_int_eq(iomem_sync(f, 0, 0), 0);
        ck_assert_int_eq(iomem_sync(f, 0, ps), 0);
        ck_assert_int_eq(iomem_sync(f, 5, 100 * ps), 0);
        ck_assert_fail(iomem_persist(NULL, 0, ps), EINVAL, "iomem_persist");
        ck_assert_fail(iomem_persist(f, SIZE_MAX, 2), EOVERFLOW, "iomem_persist");
        ck_assert_int_eq(iomem_persist(f, 0, 0), 0);
        ck_assert_int_eq(iomem_persist(f, 5, 100 * ps), 0);
        /* Memory has nothing behind it; a file is flushed by msync, or
         * from user space where its mapping is the media (MAP_SYNC). */
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        if (!strcmp(st.backend, "dax") || !strcmp(st.backend, "devdax"))
                ck_assert_uint_eq(st.persist, st.dax && test_cpu_flush_kind() != IOMEM_PERSIST_NONE
                                                  ? test_cpu_flush_kind()
                                                  : IOMEM_PERSIST_MSYNC);
        else
                ck_assert_uint_eq(st.persist, IOMEM_PERSIST_NONE);
        iomem_close(&f);
}
END_TEST

START_TEST(fd_errors_and_descriptor)
{
        struct iomem *f = test_open_new("fd", 3 * PAGE + 1);
        ck_assert_fail(iomem_fd(NULL), EINVAL, "iomem_fd");
        int fd = iomem_fd(f);
        ck_assert_int_ge(fd, 0);
        ck_assert(fd_is_open(fd));
        ck_assert_int_eq(iomem_fd(f), fd);
        ck_assert_int_eq(iomem_pwrite(f, "fd!", 3, 0), 3);
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        if (on_backend("memfd")) /* a memfd, which takes seals */
                ck_assert_int_ge(fcntl(fd, F_GET_SEALS), 0);
        if (on_backend("mshare")) {
                /* The region file: sized once, at least the file. */
                ck_assert_int_ge(st.st_size, (off_t)(3 * PAGE + 1));
        } else {
                /* The data object holds exactly the file's bytes. */
                ck_assert_int_eq(st.st_size, (off_t)(3 * PAGE + 1));
                char buf[3];
                ck_assert_int_eq(pread(fd, buf, 3, 0), 3);
                ck_assert_int_eq(memcmp(buf, "fd!", 3), 0);
        }
        iomem_close(&f);
}
END_TEST

/* ---- sendfile / copy ----------------------------------------------------- */

START_TEST(sendfile_errors)
{
        size_t ps = PAGE;
        struct iomem *f = test_open_new("sendf", 4 * ps);
        ck_assert_int_eq(iomem_pwrite(f, "payload", 7, 0), 7);
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        ck_assert_fail(iomem_sendfile(p[1], NULL, 0, 7), EINVAL, "iomem_sendfile");
        ck_assert_fail(iomem_sendfile(p[1], NULL, 0, 0), EINVAL, "iomem_sendfile");
        ck_assert_fail(iomem_sendfile(-1, f, 0, 7), EBADF, "iomem_sendfile");
        ck_assert_fail(iomem_sendfile(-1, f, 0, 0), EBADF, "iomem_sendfile");
        ck_assert_fail(iomem_sendfile(p[1], f, SIZE_MAX, 2), EOVERFLOW, "iomem_sendfile");
        ck_assert_fail(iomem_sendfile(p[1], f, 3, SIZE_MAX - 1), EOVERFLOW, "iomem_sendfile");
        ck_assert_fail(iomem_sendfile(p[0], f, 0, 7), EBADF, "iomem_sendfile"); /* read end */
        int closed = dup(p[1]);
        close(closed);
        ck_assert_fail(iomem_sendfile(closed, f, 0, 7), EBADF, "iomem_sendfile");
        /* Nothing was written by any of them. */
        int avail = -1;
        ck_assert_int_eq(ioctl(p[0], FIONREAD, &avail), 0);
        ck_assert_int_eq(avail, 0);
        ck_assert_int_eq(iomem_sendfile(p[1], f, 0, 0), 0);
        ck_assert_int_eq(iomem_sendfile(p[1], f, 4 * ps, 10), 0);
        ck_assert_int_eq(iomem_sendfile(p[1], f, SIZE_MAX - 1, 1), 0);
        ck_assert_int_eq(iomem_sendfile(p[1], f, 0, 7), 7);
        char buf[8];
        ck_assert_int_eq(read(p[0], buf, 8), 7);
        ck_assert_int_eq(memcmp(buf, "payload", 7), 0);
        /* A pipe nobody reads: -EPIPE, and no SIGPIPE. */
        close(p[0]);
        ck_assert_fail(iomem_sendfile(p[1], f, 0, 7), EPIPE, "iomem_sendfile");
        close(p[1]);
        iomem_close(&f);
}
END_TEST

START_TEST(sendfile_to_a_full_nonblocking_pipe)
{
        int p[2];
        ck_assert_int_eq(pipe2(p, O_NONBLOCK), 0);
        int cap = fcntl(p[1], F_GETPIPE_SZ);
        ck_assert_int_gt(cap, 0);
        size_t len = 4 * (size_t)cap;
        struct iomem *f = test_open_new("eagain", len);
        char *buf = malloc(len);
        fill_pattern(buf, len, 3);
        ck_assert_int_eq(iomem_pwrite(f, buf, len, 0), (ssize_t)len);
        /* Some bytes, then EAGAIN: the count so far. */
        ssize_t n = iomem_sendfile(p[1], f, 0, len);
        ck_assert_int_gt(n, 0);
        ck_assert_int_lt(n, (ssize_t)len);
        int avail = -1;
        ck_assert_int_eq(ioctl(p[0], FIONREAD, &avail), 0);
        ck_assert_int_eq(avail, n);
        /* Full: EAGAIN before any byte is an error. */
        ck_assert_fail(iomem_sendfile(p[1], f, (size_t)n, len - (size_t)n), EAGAIN,
                       "iomem_sendfile");
        char *out = malloc((size_t)n);
        ck_assert_int_eq(read(p[0], out, (size_t)n), n);
        ck_assert_int_eq(memcmp(out, buf, (size_t)n), 0);
        free(out);
        free(buf);
        close(p[0]);
        close(p[1]);
        iomem_close(&f);
}
END_TEST

START_TEST(copy_errors)
{
        size_t ps = PAGE;
        struct iomem *src = test_open_new("csrc", ps), *dst = test_open_new("cdst", 0);
        ck_assert_int_eq(iomem_pwrite(src, "copy me", 7, 0), 7);
        ck_assert_fail(iomem_copy(NULL, 0, src, 0, 7), EINVAL, "iomem_copy");
        ck_assert_fail(iomem_copy(dst, 0, NULL, 0, 7), EINVAL, "iomem_copy");
        ck_assert_fail(iomem_copy(NULL, 0, NULL, 0, 0), EINVAL, "iomem_copy");
        ck_assert_fail(iomem_copy(dst, SIZE_MAX, src, 0, 2), EOVERFLOW, "iomem_copy");
        ck_assert_fail(iomem_copy(dst, 0, src, SIZE_MAX, 2), EOVERFLOW, "iomem_copy");
        ck_assert_fail(iomem_copy(dst, 0, src, 1, SIZE_MAX), EOVERFLOW, "iomem_copy");
        ck_assert_fail(iomem_copy(dst, MAX_FILE, src, 0, 7), EFBIG, "iomem_copy");
        struct iomem *r = open_ro_twin(dst);
        ck_assert_fail(iomem_copy(r, 0, src, 0, 7), EROFS, "iomem_copy");
        iomem_close(&r);
        ck_assert_uint_eq(size_of(dst), 0);
        ck_assert_int_eq(iomem_copy(dst, 0, src, 0, 0), 0);
        ck_assert_int_eq(iomem_copy(dst, 0, src, ps, 10), 0); /* past the end */
        ck_assert_int_eq(iomem_copy(dst, 0, src, SIZE_MAX - 1, 1), 0);
        ck_assert_uint_eq(size_of(dst), 0);
        /* A read-only source is fine. */
        r = open_ro_twin(src);
        ck_assert_int_eq(iomem_copy(dst, 3, r, 0, 7), 7);
        iomem_close(&r);
        char buf[10];
        ck_assert_int_eq(iomem_pread(dst, buf, 10, 0), 10);
        ck_assert_int_eq(memcmp(buf, "\0\0\0copy me", 10), 0);
        iomem_close(&src);
        iomem_close(&dst);
}
END_TEST

/* ---- send / recv --------------------------------------------------------- */

START_TEST(send_errors)
{
        struct iomem *f = test_open_new("send", 0);
        int s[2], p[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
        ck_assert_int_eq(pipe(p), 0);
        ck_assert_fail(iomem_send(s[0], NULL), EINVAL, "iomem_send");
        ck_assert_fail(iomem_send(-1, f), EBADF, "iomem_send");
        int closed = dup(s[0]);
        close(closed);
        ck_assert_fail(iomem_send(closed, f), EBADF, "iomem_send");
        ck_assert_fail(iomem_send(p[1], f), ENOTSOCK, "iomem_send");
        /* Nothing reached the peer. */
        int avail = -1;
        ck_assert_int_eq(ioctl(s[1], FIONREAD, &avail), 0);
        ck_assert_int_eq(avail, 0);
        close(s[1]);
        ck_assert_fail(iomem_send(s[0], f), EPIPE, "iomem_send"); /* no SIGPIPE either */
        close(s[0]);
        close(p[0]);
        close(p[1]);
        iomem_close(&f);
}
END_TEST

/* Send bytes, and nfds descriptors (at most 8), as one message. */
static void send_raw(int sock, const void *data, size_t len, const int *fds, int nfds)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * 8)];
                struct cmsghdr align;
        } ctl;
        memset(&ctl, 0, sizeof ctl);
        struct iovec iov = { (void *)data, len };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        if (nfds > 0) {
                msg.msg_control = ctl.buf;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
        }
        ck_assert_int_eq(sendmsg(sock, &msg, MSG_NOSIGNAL), (ssize_t)len);
}

/* Throw away whatever is waiting on a stream socket. */
static void drain(int sock)
{
        char buf[256];
        while (recv(sock, buf, sizeof buf, MSG_DONTWAIT) > 0)
                ;
}

START_TEST(recv_errors)
{
        struct iomem *f = SENTINEL;
        int s[2], p[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
        ck_assert_int_eq(pipe(p), 0);
        ck_assert_fail(iomem_recv(s[1], NULL, 0), EINVAL, "iomem_recv");
        ck_assert_fail(iomem_recv(s[1], &f, IOMEM_CREATE), EINVAL, "iomem_recv");
        ck_assert_fail(iomem_recv(s[1], &f, IOMEM_RDWR | IOMEM_EXCL), EINVAL, "iomem_recv");
        ck_assert_fail(iomem_recv(s[1], &f, 0x100u), EINVAL, "iomem_recv");
        ck_assert_fail(iomem_recv(-1, &f, 0), EBADF, "iomem_recv");
        int closed = dup(s[1]);
        close(closed);
        ck_assert_fail(iomem_recv(closed, &f, 0), EBADF, "iomem_recv");
        ck_assert_fail(iomem_recv(p[0], &f, 0), ENOTSOCK, "iomem_recv");
        /* Bytes that are not an object. */
        char junk[64];
        memset(junk, 'j', sizeof junk);
        send_raw(s[0], junk, sizeof junk, NULL, 0);
        ck_assert_fail(iomem_recv(s[1], &f, IOMEM_RDWR), EBADMSG, "iomem_recv");
        drain(s[1]);
        send_raw(s[0], junk, 3, NULL, 0);
        ck_assert_fail(iomem_recv(s[1], &f, IOMEM_RDWR), EBADMSG, "iomem_recv");
        drain(s[1]);
        /* ... with a descriptor, which is not kept. */
        int before = count_fds();
        send_raw(s[0], junk, 3, &p[0], 1);
        ck_assert_fail(iomem_recv(s[1], &f, IOMEM_RDWR), EBADMSG, "iomem_recv");
        ck_assert_int_eq(count_fds(), before);
        drain(s[1]);
        /* The peer went away. */
        close(s[0]);
        ck_assert_fail(iomem_recv(s[1], &f, IOMEM_RDWR), ECONNRESET, "iomem_recv");
        ck_assert_ptr_eq(f, SENTINEL);
        close(s[1]);
        close(p[0]);
        close(p[1]);
}
END_TEST

START_TEST(recv_of_a_damaged_message)
{
        struct iomem *f = test_open_new("damaged", PAGE), *g = SENTINEL;
        int s[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET, 0, s), 0);
        /* Capture what iomem_send sends. */
        ck_assert_int_eq(iomem_send(s[0], f), 0);
        char msg[256];
        union {
                char buf[CMSG_SPACE(sizeof(int) * 8)];
                struct cmsghdr align;
        } ctl;
        struct iovec iov = { msg, sizeof msg };
        struct msghdr mh = { .msg_iov = &iov,
                             .msg_iovlen = 1,
                             .msg_control = ctl.buf,
                             .msg_controllen = sizeof ctl.buf };
        ssize_t len = recvmsg(s[1], &mh, MSG_CMSG_CLOEXEC);
        ck_assert_int_gt(len, 0);
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        ck_assert_ptr_nonnull(c);
        int nfds = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int)), fds[8];
        ck_assert_int_ge(nfds, 1);
        memcpy(fds, CMSG_DATA(c), sizeof(int) * (size_t)nfds);
        int before = count_fds();

        /* The header without its descriptors. */
        send_raw(s[0], msg, (size_t)len, NULL, 0);
        ck_assert_fail(iomem_recv(s[1], &g, IOMEM_RDWR), EBADMSG, "iomem_recv");
        /* Too long for a header: truncated. */
        char longer[512] = { 0 };
        memcpy(longer, msg, (size_t)len);
        send_raw(s[0], longer, sizeof longer, NULL, 0);
        ck_assert_fail(iomem_recv(s[1], &g, IOMEM_RDWR), EMSGSIZE, "iomem_recv");
        /* Naming a backend this library does not have. */
        char *name = memmem(msg, (size_t)len, test_backend(), strlen(test_backend()));
        ck_assert_ptr_nonnull(name);
        memset(name, 'z', strlen(test_backend()));
        send_raw(s[0], msg, (size_t)len, fds, nfds);
        ck_assert_fail(iomem_recv(s[1], &g, IOMEM_RDWR), EPROTONOSUPPORT, "iomem_recv");
        ck_assert_int_eq(count_fds(), before);
        ck_assert_ptr_eq(g, SENTINEL);
        for (int i = 0; i < nfds; i++)
                close(fds[i]);
        close(s[0]);
        close(s[1]);
        iomem_close(&f);
}
END_TEST

START_TEST(send_recv_round_trip)
{
        struct iomem *f = test_open_new("pass", PAGE), *g = NULL, *r = NULL;
        int s[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
        ck_assert_int_eq(iomem_send(s[0], f), 0);
        ck_assert_int_eq(iomem_send(s[0], f), 0);
        ck_assert_int_eq(iomem_recv(s[1], &g, IOMEM_RDWR), 0);
        ck_assert_int_eq(iomem_recv(s[1], &r, IOMEM_RDONLY), 0);
        ck_assert_int_eq(iomem_pwrite(g, "passed", 6, 0), 6);
        char buf[6];
        ck_assert_int_eq(iomem_pread(f, buf, 6, 0), 6);
        ck_assert_int_eq(memcmp(buf, "passed", 6), 0);
        ck_assert_int_eq(iomem_pread(r, buf, 6, 0), 6);
        ck_assert_int_eq(memcmp(buf, "passed", 6), 0);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(g, &st), 0);
        ck_assert_str_eq(st.backend, test_backend());
        ck_assert_fail(iomem_pwrite(r, "x", 1, 0), EROFS, "iomem_pwrite");
        ck_assert_int_eq(iomem_acquire(r, 0, PAGE), (ssize_t)PAGE);
        struct iovec v;
        ck_assert_fail(iomem_retrieve(r, 0, 1, &v, 1), EROFS, "iomem_retrieve");
        /* The received handles share the pins. */
        ck_assert_fail(iomem_truncate(f, 0), EBUSY, "iomem_truncate");
        ck_assert_int_eq(iomem_release(r, 0, PAGE), 0);
        ck_assert_int_eq(iomem_close(&r), 0);
        ck_assert_int_eq(iomem_close(&g), 0);
        close(s[0]);
        close(s[1]);
        iomem_close(&f);
}
END_TEST

/* ---- options ------------------------------------------------------------- */

START_TEST(opts_new_and_delete)
{
        ck_assert_fail(iomem_opts_new(NULL), EINVAL, "iomem_opts_new");
        struct iomem_opts *o = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_ptr_nonnull(o);
        iomem_opts_delete(&o);
        ck_assert_ptr_null(o);
        iomem_opts_delete(&o); /* NULL: nothing */
        ck_assert_ptr_null(o);
        iomem_opts_delete(NULL);
}
END_TEST

START_TEST(opts_setters_reject_null)
{
        ck_assert_fail(iomem_opts_set_size(NULL, 0), EINVAL, "iomem_opts_set_size");
        ck_assert_fail(iomem_opts_set_mode(NULL, 0600), EINVAL, "iomem_opts_set_mode");
        ck_assert_fail(iomem_opts_set_hugepage(NULL, 0), EINVAL, "iomem_opts_set_hugepage");
        ck_assert_fail(iomem_opts_set_numa(NULL, IOMEM_NUMA_DEFAULT, 0), EINVAL,
                       "iomem_opts_set_numa");
        ck_assert_fail(iomem_opts_set_seals(NULL, 0), EINVAL, "iomem_opts_set_seals");
        ck_assert_fail(iomem_opts_set_window(NULL, NULL), EINVAL, "iomem_opts_set_window");
}
END_TEST

START_TEST(opts_set_size)
{
        struct iomem_opts *o = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, 0), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, MAX_FILE), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, 3 * PAGE + 1), 0);
        ck_assert_fail(iomem_opts_set_size(o, MAX_FILE + 1), EFBIG, "iomem_opts_set_size");
        ck_assert_fail(iomem_opts_set_size(o, SIZE_MAX), EFBIG, "iomem_opts_set_size");
        /* The failures left the last good size. */
        struct iomem *f = NULL;
        const char *uri = new_uri("optsize");
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o), 0);
        if (named())
                iomem_unlink(uri);
        ck_assert_uint_eq(size_of(f), 3 * PAGE + 1);
        iomem_close(&f);
        iomem_opts_delete(&o);
}
END_TEST

START_TEST(opts_set_mode)
{
        struct iomem_opts *o = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_mode(o, 0), 0);
        ck_assert_int_eq(iomem_opts_set_mode(o, 0777), 0);
        ck_assert_int_eq(iomem_opts_set_mode(o, 0600), 0);
        ck_assert_fail(iomem_opts_set_mode(o, 01000), EINVAL, "iomem_opts_set_mode");
        ck_assert_fail(iomem_opts_set_mode(o, 04755), EINVAL, "iomem_opts_set_mode");
        ck_assert_fail(iomem_opts_set_mode(o, UINT_MAX), EINVAL, "iomem_opts_set_mode");
        iomem_opts_delete(&o);
}
END_TEST

START_TEST(opts_set_hugepage)
{
        struct iomem_opts *o = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_hugepage(o, 0), 0);
        ck_assert_int_eq(iomem_opts_set_hugepage(o, 2 * MIB), 0);
        ck_assert_int_eq(iomem_opts_set_hugepage(o, GIB), 0);
        static const size_t bad[] = { 1, 4096, MIB, 4 * MIB, 2 * GIB, SIZE_MAX };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
                ck_assert_fail(iomem_opts_set_hugepage(o, bad[i]), EINVAL,
                               "iomem_opts_set_hugepage");
        ck_assert_int_eq(iomem_opts_set_hugepage(o, 0), 0);
        iomem_opts_delete(&o);
}
END_TEST

START_TEST(opts_set_numa)
{
        struct iomem_opts *o = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_numa(o, IOMEM_NUMA_DEFAULT, 0), 0);
        ck_assert_int_eq(iomem_opts_set_numa(o, IOMEM_NUMA_DEFAULT, -1), 0);
        ck_assert_fail(iomem_opts_set_numa(o, -1, 0), EINVAL, "iomem_opts_set_numa");
        ck_assert_fail(iomem_opts_set_numa(o, IOMEM_NUMA_INTERLEAVE + 1, 0), EINVAL,
                       "iomem_opts_set_numa");
        ck_assert_fail(iomem_opts_set_numa(o, INT_MAX, 0), EINVAL, "iomem_opts_set_numa");
        ck_assert_fail(iomem_opts_set_numa(o, IOMEM_NUMA_BIND, -1), EINVAL, "iomem_opts_set_numa");
        ck_assert_fail(iomem_opts_set_numa(o, IOMEM_NUMA_PREFERRED, -1), EINVAL,
                       "iomem_opts_set_numa");
        /* Node 0 exists on every machine, node 1000 on none; without
         * libnuma placement is -ENOTSUP. */
        struct iomem_backend_info info[16];
        ssize_t nb = iomem_backends(info, 16);
        int numa = 0; /* options are the library's: any backend's placement */
        for (ssize_t i = 0; i < nb && i < 16; i++)
                numa |= !!(info[i].caps & IOMEM_CAP_NUMA);
        if (numa) {
                ck_assert_int_eq(iomem_opts_set_numa(o, IOMEM_NUMA_BIND, 0), 0);
                ck_assert_int_eq(iomem_opts_set_numa(o, IOMEM_NUMA_PREFERRED, 0), 0);
                ck_assert_int_eq(iomem_opts_set_numa(o, IOMEM_NUMA_INTERLEAVE, -1), 0);
                ck_assert_fail(iomem_opts_set_numa(o, IOMEM_NUMA_BIND, 1000), EINVAL,
                               "iomem_opts_set_numa");
                ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "1000"));
        } else {
                ck_assert_fail(iomem_opts_set_numa(o, IOMEM_NUMA_BIND, 0), ENOTSUP,
                               "iomem_opts_set_numa");
        }
        iomem_opts_delete(&o);
}
END_TEST

START_TEST(opts_set_seals_and_window)
{
        struct iomem_opts *o = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_seals(o, 0), 0);
        ck_assert_int_eq(iomem_opts_set_seals(o, IOMEM_SEAL_SHRINK), 0);
        ck_assert_int_eq(iomem_opts_set_seals(o, IOMEM_SEAL_GROW), 0);
        ck_assert_int_eq(iomem_opts_set_seals(o, IOMEM_SEAL_WRITE), 0);
        ck_assert_int_eq(
            iomem_opts_set_seals(o, IOMEM_SEAL_SHRINK | IOMEM_SEAL_GROW | IOMEM_SEAL_WRITE), 0);
        ck_assert_fail(iomem_opts_set_seals(o, 0x8u), EINVAL, "iomem_opts_set_seals");
        ck_assert_fail(iomem_opts_set_seals(o, UINT_MAX), EINVAL, "iomem_opts_set_seals");
        ck_assert_int_eq(iomem_opts_set_window(o, NULL), 0);
        iomem_opts_delete(&o);
}
END_TEST

/* ---- window (tests/test_dax.c has the rest) and aio (tests/test_aio.c) --------- */

/* A non-NULL handle of a kind that cannot be made in this build. */
static char fake_handle[64];

START_TEST(window_arguments)
{
        struct iomem_window *w = SENTINEL;
        struct iomem_window_stat st;
        ck_assert_fail(iomem_window_new(NULL, GIB, 2 * MIB), EINVAL, "iomem_window_new");
        ck_assert_fail(iomem_window_new(&w, GIB, 3 * MIB), EINVAL, "iomem_window_new");
        ck_assert_fail(iomem_window_new(&w, GIB + MIB, 2 * MIB), EINVAL, "iomem_window_new");
        ck_assert_ptr_eq(w, SENTINEL);
        ck_assert_fail(iomem_window_delete(NULL), EINVAL, "iomem_window_delete");
        w = NULL;
        ck_assert_int_eq(iomem_window_delete(&w), 0);
        ck_assert_ptr_null(w);
        ck_assert_int_eq(iomem_window_new(&w, GIB, 2 * MIB), 0);
        ck_assert_fail(iomem_window_set_policy(NULL, IOMEM_EVICT_CLOCK), EINVAL,
                       "iomem_window_set_policy");
        ck_assert_fail(iomem_window_set_policy(w, 42), EINVAL, "iomem_window_set_policy");
        ck_assert_int_eq(iomem_window_set_policy(w, IOMEM_EVICT_CLOCK), 0);
        ck_assert_fail(iomem_window_stat(NULL, &st), EINVAL, "iomem_window_stat");
        ck_assert_fail(iomem_window_stat(w, NULL), EINVAL, "iomem_window_stat");
        ck_assert_int_eq(iomem_window_stat(w, &st), 0);
        ck_assert_uint_eq(st.size, GIB);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
        ck_assert_ptr_null(w);
}
END_TEST

START_TEST(aio_arguments)
{
        struct iomem_aio *q = SENTINEL, *fake = (struct iomem_aio *)fake_handle;
        struct iomem *f = test_open_new("aio", PAGE);
        struct iomem_aio_cqe cqe;
        ck_assert_fail(iomem_aio_new(NULL, 8), EINVAL, "iomem_aio_new");
        ck_assert_fail(iomem_aio_delete(NULL), EINVAL, "iomem_aio_delete");
        ck_assert_fail(iomem_aio_read(NULL, 0, 0, f, 0, PAGE, 1), EINVAL, "iomem_aio_read");
        ck_assert_fail(iomem_aio_write(NULL, 1, 0, f, 0, PAGE, 2), EINVAL, "iomem_aio_write");
        ck_assert_fail(iomem_aio_send(NULL, 1, f, 0, PAGE, 3), EINVAL, "iomem_aio_send");
        ck_assert_fail(iomem_aio_submit(NULL), EINVAL, "iomem_aio_submit");
        ck_assert_fail(iomem_aio_wait(NULL, &cqe, 1, 0, 0), EINVAL, "iomem_aio_wait");
        ck_assert_fail(iomem_aio_fd(NULL), EINVAL, "iomem_aio_fd");
        int r = iomem_aio_new(&q, 8);
        if (r == -ENOTSUP) {
                /* Built without liburing: no queue can exist. */
                ck_assert_fail(iomem_aio_new(&q, 8), ENOTSUP, "iomem_aio_new");
                ck_assert_ptr_eq(q, SENTINEL);
                ck_assert_fail(iomem_aio_read(fake, 0, 0, f, 0, PAGE, 1), ENOTSUP, "iomem_aio_read");
                ck_assert_fail(iomem_aio_write(fake, 1, 0, f, 0, PAGE, 2), ENOTSUP, "iomem_aio_write");
                ck_assert_fail(iomem_aio_send(fake, 1, f, 0, PAGE, 3), ENOTSUP, "iomem_aio_send");
                ck_assert_fail(iomem_aio_submit(fake), ENOTSUP, "iomem_aio_submit");
                ck_assert_fail(iomem_aio_wait(fake, &cqe, 1, 0, 0), ENOTSUP, "iomem_aio_wait");
                ck_assert_fail(iomem_aio_fd(fake), ENOTSUP, "iomem_aio_fd");
                q = NULL;
        } else {
                /* tests/test_aio.c has the rest. */
                ck_assert_msg(r == 0, "iomem_aio_new: %d %s", r, iomem_errormsg());
                ck_assert_ptr_ne(q, SENTINEL);
                ck_assert_fail(iomem_aio_read(q, 0, 0, NULL, 0, PAGE, 1), EINVAL, "iomem_aio_read");
                ck_assert_fail(iomem_aio_wait(q, NULL, 1, 0, 0), EINVAL, "iomem_aio_wait");
                ck_assert_int_ge(iomem_aio_fd(q), 0);
        }
        ck_assert_int_eq(iomem_aio_delete(&q), 0);
        ck_assert_ptr_null(q);
        ck_assert_int_eq(iomem_aio_delete(&q), 0);
        iomem_close(&f);
}
END_TEST

/* ---- iomem_backends ------------------------------------------------------ */

START_TEST(backends_list)
{
        ck_assert_fail(iomem_backends(NULL, 1), EINVAL, "iomem_backends");
        ssize_t total = iomem_backends(NULL, 0);
        ck_assert_int_ge(total, IOMEM_PLATFORM_LINUX ? 4 : 2);
        struct iomem_backend_info *all = calloc((size_t)total + 1, sizeof *all);
        memset(&all[total], 0x5a, sizeof all[total]);
        struct iomem_backend_info guard = all[total];
        ck_assert_int_eq(iomem_backends(all, (size_t)total + 1), total);
        ck_assert_int_eq(memcmp(&all[total], &guard, sizeof guard), 0); /* only `total` filled */
        /* A short array gets the first n, and the total. */
        struct iomem_backend_info one[2];
        memset(one, 0x5a, sizeof one);
        ck_assert_int_eq(iomem_backends(one, 1), total);
        ck_assert_str_eq(one[0].name, all[0].name);
        ck_assert_int_eq(memcmp(&one[1], &guard, sizeof guard), 0);

        static const char *const names[] = { "memfd", "shm", "mshare", "dax", "devdax" };
        const int usable[] = { 1, 1, mshare_usable(), 1, devdax_usable() };
        /* The POSIX platform layer builds shm and dax only. */
        const int built[] = { IOMEM_PLATFORM_LINUX, 1, IOMEM_PLATFORM_LINUX, 1, IOMEM_PLATFORM_LINUX };
        for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
                int seen = 0;
                for (ssize_t i = 0; i < total; i++) {
                        if (strcmp(all[i].name, names[k]))
                                continue;
                        seen++;
                        ck_assert_int_eq(all[i].available, usable[k]);
                        if (usable[k]) {
                                ck_assert_ptr_null(all[i].why);
                        } else {
                                ck_assert_ptr_nonnull(all[i].why);
                                ck_assert_int_gt(strlen(all[i].why), 0);
                        }
                        ck_assert_uint_ne(all[i].caps, 0);
                }
                ck_assert_msg(seen == built[k], "backend %s listed %d times", names[k], seen);
        }
        for (ssize_t i = 0; i < total; i++) {
                if (!strcmp(all[i].name, "shm"))
                        ck_assert(all[i].caps & IOMEM_CAP_NAMED);
                if (!strcmp(all[i].name, "memfd"))
                        ck_assert(all[i].caps & IOMEM_CAP_FDPASS);
        }
        free(all);
}
END_TEST

/* ---- conventions across functions ---------------------------------------- */

START_TEST(zero_length_is_a_noop_after_the_checks)
{
        size_t ps = PAGE;
        struct iomem *f = test_open_new("zero", ps);
        struct iomem *r = open_ro_twin(f);
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        /* Unaligned, unacquired, past the end, NULL arrays: all nothing. */
        ck_assert_int_eq(iomem_acquire(f, 7, 0), 0);
        ck_assert_int_eq(iomem_release(f, 7, 0), 0);
        ck_assert_int_eq(iomem_retrieve(f, 7, 0, NULL, 0), 0);
        ck_assert_int_eq(iomem_borrow(f, 100 * ps, 0, NULL, 0), 0);
        ck_assert_int_eq(iomem_bufcount(f, 100 * ps, 0), 0);
        ck_assert_int_eq(iomem_gift(f, 100 * ps, 0, NULL, 0, 0), 0);
        ck_assert_int_eq(iomem_pread(f, NULL, 0, 100 * ps), 0);
        ck_assert_int_eq(iomem_pwrite(f, NULL, 0, 100 * ps), 0);
        ck_assert_int_eq(iomem_sync(f, 100 * ps, 0), 0);
        ck_assert_int_eq(iomem_sendfile(p[1], f, 100 * ps, 0), 0);
        ck_assert_int_eq(iomem_copy(f, 100 * ps, f, 100 * ps, 0), 0);
        ck_assert_int_eq(iomem_free(f, NULL, 0), 0);
        ck_assert_int_eq(iomem_pwrite(r, NULL, 0, 0), 0);
        ck_assert_uint_eq(size_of(f), ps);
        ck_assert_uint_eq(acquired(f), 0);
        /* The object checks come first. */
        ck_assert_fail(iomem_acquire(NULL, 7, 0), EINVAL, "iomem_acquire");
        ck_assert_fail(iomem_pwrite(NULL, NULL, 0, 0), EINVAL, "iomem_pwrite");
        ck_assert_fail(iomem_sendfile(p[1], NULL, 0, 0), EINVAL, "iomem_sendfile");
        ck_assert_fail(iomem_copy(NULL, 0, f, 0, 0), EINVAL, "iomem_copy");
        close(p[0]);
        close(p[1]);
        iomem_close(&r);
        iomem_close(&f);
}
END_TEST

START_TEST(overflow_is_eoverflow_everywhere)
{
        size_t ps = PAGE, off = SIZE_MAX & ~(ps - 1);
        struct iomem *f = test_open_new("ovf", ps);
        char *buf = malloc(2 * ps);
        struct iovec v[2] = { { buf, ps }, { buf + ps, ps } };
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        ck_assert_fail(iomem_acquire(f, off, 2 * ps), EOVERFLOW, "iomem_acquire");
        ck_assert_fail(iomem_release(f, off, 2 * ps), EOVERFLOW, "iomem_release");
        ck_assert_fail(iomem_retrieve(f, off, 2 * ps, v, 2), EOVERFLOW, "iomem_retrieve");
        ck_assert_fail(iomem_borrow(f, off, 2 * ps, v, 2), EOVERFLOW, "iomem_borrow");
        ck_assert_fail(iomem_bufcount(f, off, 2 * ps), EOVERFLOW, "iomem_bufcount");
        ck_assert_fail(iomem_gift(f, off, 2 * ps, v, 2, 0), EOVERFLOW, "iomem_gift");
        ck_assert_fail(iomem_pread(f, buf, 2, SIZE_MAX), EOVERFLOW, "iomem_pread");
        ck_assert_fail(iomem_pwrite(f, buf, 2, SIZE_MAX), EOVERFLOW, "iomem_pwrite");
        ck_assert_fail(iomem_sync(f, off, 2 * ps), EOVERFLOW, "iomem_sync");
        ck_assert_fail(iomem_sendfile(p[1], f, off, 2 * ps), EOVERFLOW, "iomem_sendfile");
        ck_assert_fail(iomem_copy(f, off, f, 0, 2 * ps), EOVERFLOW, "iomem_copy");
        ck_assert_fail(iomem_copy(f, 0, f, off, 2 * ps), EOVERFLOW, "iomem_copy");
        /* Ending exactly at SIZE_MAX is no overflow. */
        ck_assert_int_eq(iomem_borrow(f, SIZE_MAX - 1, 1, v, 2), 0);
        ck_assert_int_eq(iomem_pread(f, buf, 1, SIZE_MAX - 1), 0);
        ck_assert_int_eq(iomem_sync(f, SIZE_MAX - 1, 1), 0);
        ck_assert_uint_eq(size_of(f), ps);
        free(buf);
        close(p[0]);
        close(p[1]);
        iomem_close(&f);
}
END_TEST

int main(void)
{
        if (!test_backend_usable())
                return TEST_SKIP;
        made = mmap(NULL, sizeof *made, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (made == MAP_FAILED)
                made = NULL;
        atexit(remove_made);
        Suite *s = suite_create("api");
        TCase *tc;

        tc = tcase_create("errors");
        tcase_add_test(tc, errormsg_is_never_null_and_per_thread);
        tcase_add_test(tc, zero_length_is_a_noop_after_the_checks);
        tcase_add_test(tc, overflow_is_eoverflow_everywhere);
        suite_add_tcase(s, tc);

        tc = tcase_create("open");
        tcase_add_test(tc, open_rejects_null_arguments);
        tcase_add_test(tc, open_rejects_bad_flags);
        tcase_add_test(tc, open_unknown_scheme_is_eprotonosupport);
        tcase_add_test(tc, open_backends_unusable_here);
        tcase_add_test(tc, open_without_scheme_uses_iomem_backend);
        tcase_add_test(tc, open_fd_rejects_null_and_bad_descriptors);
        tcase_add_test(tc, open_fd_unknown_backend_is_eprotonosupport);
        tcase_add_test(tc, open_fd_read_only_descriptor_with_rdwr_is_eacces);
        tcase_add_test(tc, open_fd_write_only_descriptor_is_eacces);
        tcase_add_test(tc, open_as_many_handles_as_descriptors_allow);
        tcase_add_test(tc, close_conventions);
        tcase_add_test(tc, unlink_errors);
        if (on_backend("shm")) {
                tcase_add_test(tc, open_shm_missing_without_create_is_enoent);
                tcase_add_test(tc, open_shm_excl_on_existing_is_eexist);
                tcase_add_test(tc, open_shm_bad_names);
                tcase_add_test(tc, open_shm_rejects_memfd_only_options);
                tcase_add_test(tc, open_shm_larger_than_free_space_is_enospc);
        tcase_add_test(tc, shm_growth_by_write_or_gift_follows_truncate);
                tcase_add_test(tc, open_shm_mode_from_opts);
                tcase_add_test(tc, open_shm_read_only_by_name);
                tcase_add_test(tc, open_fd_shm_rejects_other_files);
        }
        if (on_backend("memfd")) {
                tcase_add_test(tc, open_memfd_label_length);
                tcase_add_test(tc, memfd_seals_are_eperm);
                tcase_add_test(tc, open_fd_memfd_rejects_other_files);
                tcase_add_test(tc, open_fd_memfd_rejects_tmpfs_files);
        }
        suite_add_tcase(s, tc);

        tc = tcase_create("memory");
        tcase_add_test(tc, acquire_release_argument_errors);
        tcase_add_test(tc, acquire_clamps_to_the_size_in_pages);
        tcase_add_test(tc, acquire_nests_per_page);
        tcase_add_test(tc, release_in_parts);
        tcase_add_test(tc, release_of_pages_not_acquired_changes_nothing);
        tcase_add_test(tc, read_only_handle_sees_the_object_as_it_is);
        tcase_add_test(tc, retrieve_errors);
        tcase_add_test(tc, retrieve_and_borrow_fill_a_short_array);
        tcase_add_test(tc, a_pinned_gift_keeps_its_address_when_the_pool_grows);
        tcase_add_test(tc, borrow_and_bufcount_errors);
        tcase_add_test(tc, gift_argument_errors);
        tcase_add_test(tc, gift_nocopy_of_foreign_memory_is_exdev);
        tcase_add_test(tc, gift_over_a_pinned_range_is_ebusy);
        tcase_add_test(tc, gift_and_alloc_on_read_only_are_erofs);
        tcase_add_test(tc, alloc_errors);
        tcase_add_test(tc, free_errors);
        suite_add_tcase(s, tc);

        tc = tcase_create("locks");
        tcase_add_test(tc, lock_errors);
        tcase_add_test(tc, unlock_by_another_thread_is_eperm);
        tcase_add_test(tc, rdlock_with_too_many_readers_is_eagain);
        suite_add_tcase(s, tc);

        tc = tcase_create("file");
        tcase_add_test(tc, stat_errors_and_fields);
        tcase_add_test(tc, truncate_errors);
        tcase_add_test(tc, pread_pwrite_errors);
        tcase_add_test(tc, sync_errors);
        tcase_add_test(tc, fd_errors_and_descriptor);
        tcase_add_test(tc, sendfile_errors);
        tcase_add_test(tc, sendfile_to_a_full_nonblocking_pipe);
        tcase_add_test(tc, copy_errors);
        suite_add_tcase(s, tc);

        tc = tcase_create("sharing");
        tcase_add_test(tc, send_errors);
        tcase_add_test(tc, recv_errors);
        tcase_add_test(tc, recv_of_a_damaged_message);
        tcase_add_test(tc, send_recv_round_trip);
        suite_add_tcase(s, tc);

        tc = tcase_create("options");
        tcase_add_test(tc, opts_new_and_delete);
        tcase_add_test(tc, opts_setters_reject_null);
        tcase_add_test(tc, opts_set_size);
        tcase_add_test(tc, opts_set_mode);
        tcase_add_test(tc, opts_set_hugepage);
        tcase_add_test(tc, opts_set_numa);
        tcase_add_test(tc, opts_set_seals_and_window);
        tcase_add_test(tc, window_arguments);
        tcase_add_test(tc, aio_arguments);
        tcase_add_test(tc, backends_list);
        suite_add_tcase(s, tc);

        return test_run(s);
}
