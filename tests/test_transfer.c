/* SPDX-License-Identifier: MIT */
/*
 * Transfers out of and between objects (iomem_sendfile, iomem_copy) and
 * sharing objects with other processes (iomem_send / iomem_recv,
 * iomem_open_fd). Run once per backend (IOMEM_TEST_BACKEND).
 */
#include "config.h"
#include "common.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* ---- helpers ----------------------------------------------------------- */

/*
 * Every buffer and object of a test is listed here while it lives, so that
 * it stays reachable: forked children exit holding the parent's heap, and
 * under valgrind (CK_FORK=no) a failed test leaves its memory behind; both
 * would otherwise count as leaks.
 */

/* Are the object's holes seen as holes? A dax: file's are its
 * filesystem's, which the POSIX platform layer cannot see (no SEEK_HOLE):
 * there every byte is data, and reads as it is. */
static bool holes_visible(void)
{
        return IOMEM_PLATFORM_LINUX || strcmp(test_backend(), "dax");
}
static void *live[256];

static void track(void *p)
{
        for (size_t i = 0; p && i < sizeof live / sizeof live[0]; i++) {
                if (!live[i]) {
                        live[i] = p;
                        return;
                }
        }
}

static void untrack(void *p)
{
        for (size_t i = 0; p && i < sizeof live / sizeof live[0]; i++) {
                if (live[i] == p) {
                        live[i] = NULL;
                        return;
                }
        }
}

static void *tmalloc(size_t n)
{
        void *p = malloc(n);
        track(p);
        return p;
}

static void *tcalloc(size_t n, size_t size)
{
        void *p = calloc(n, size);
        track(p);
        return p;
}

static void tfree(void *p)
{
        untrack(p);
        free(p);
}

/* The objects a test has open, apart. */
static struct iomem *live_obj[16];

static void track_obj(struct iomem *f)
{
        for (size_t i = 0; f && i < sizeof live_obj / sizeof live_obj[0]; i++) {
                if (!live_obj[i]) {
                        live_obj[i] = f;
                        return;
                }
        }
        ck_abort_msg("more than %zu objects open", sizeof live_obj / sizeof live_obj[0]);
}

static void untrack_obj(struct iomem *f)
{
        for (size_t i = 0; f && i < sizeof live_obj / sizeof live_obj[0]; i++)
                if (live_obj[i] == f)
                        live_obj[i] = NULL;
}

static struct iomem *open_new(const char *tag, size_t size)
{
        struct iomem *f = test_open_new(tag, size);
        track_obj(f);
        return f;
}

static void close_obj(struct iomem **f)
{
        untrack_obj(*f);
        ck_assert_int_eq(iomem_close(f), 0);
        ck_assert_ptr_null(*f);
}

/* After every test, even a failed one (with CK_FORK=no a failure leaves
 * through longjmp): close what it left open, free what it left allocated. */
static void cleanup(void)
{
        for (size_t i = 0; i < sizeof live_obj / sizeof live_obj[0]; i++)
                if (live_obj[i])
                        iomem_close(&live_obj[i]);
        for (size_t i = 0; i < sizeof live / sizeof live[0]; i++) {
                free(live[i]);
                live[i] = NULL;
        }
}

/* A forked child's end: close the handles inherited from the parent
 * (which holds nothing in the child, so the parent's pins and locks stay)
 * so that nothing large stays mapped for valgrind's leak scan. */
static _Noreturn void child_exit(int status)
{
        for (size_t i = 0; i < sizeof live_obj / sizeof live_obj[0]; i++) {
                if (live_obj[i] && iomem_close(&live_obj[i]) != 0)
                        status = 1;
                live_obj[i] = NULL;
        }
        _exit(status);
}

/* In forked children: no Check machinery, just an exit status naming the
 * line that failed. */
#define CHILD_REQUIRE(c)                                                          \
        do {                                                                      \
                if (!(c)) {                                                       \
                        fprintf(stderr, "child %d: %s:%d: failed: %s (%s)\n",     \
                                (int)getpid(), __FILE__, __LINE__, #c,            \
                                iomem_errormsg());                                \
                        child_exit(1);                                            \
                }                                                                 \
        } while (0)


static size_t page_of(struct iomem *f)
{
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_gt(st.page_size, 0);
        return st.page_size;
}

static size_t size_of(struct iomem *f)
{
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        return st.size;
}

/* Deterministic bytes that differ with the position and the seed. */
static void fill(unsigned char *b, size_t n, unsigned seed)
{
        uint32_t x = seed * 2654435761u + 1;
        for (size_t i = 0; i < n; i++) {
                x = x * 1103515245u + 12345u;
                b[i] = (unsigned char)(x >> 16);
        }
}

static unsigned char *pattern(size_t n, unsigned seed)
{
        unsigned char *b = tmalloc(n + 1); /* never zero bytes */
        ck_assert_ptr_nonnull(b);
        fill(b, n, seed);
        return b;
}

static void put(struct iomem *f, size_t off, const void *b, size_t n)
{
        ssize_t r = iomem_pwrite(f, b, n, off);
        ck_assert_msg(r == (ssize_t)n, "pwrite %zu at %zu: %zd (%s)", n, off, r, iomem_errormsg());
}

/* Compare n bytes at off with want, naming the first difference. */
static void expect_bytes(struct iomem *f, size_t off, const unsigned char *want, size_t n)
{
        unsigned char *got = tmalloc(n ? n : 1);
        ck_assert_ptr_nonnull(got);
        ssize_t r = iomem_pread(f, got, n, off);
        ck_assert_msg(r == (ssize_t)n, "pread %zu at %zu: %zd (%s)", n, off, r, iomem_errormsg());
        for (size_t i = 0; i < n; i++)
                if (got[i] != want[i])
                        ck_abort_msg("byte %zu: %#x, expected %#x", off + i, got[i], want[i]);
        tfree(got);
}

static void expect_fd_bytes(int fd, off_t off, const unsigned char *want, size_t n)
{
        unsigned char *got = tmalloc(n ? n : 1);
        ck_assert_ptr_nonnull(got);
        ssize_t r = pread(fd, got, n, off);
        ck_assert_int_eq(r, (ssize_t)n);
        for (size_t i = 0; i < n; i++)
                if (got[i] != want[i])
                        ck_abort_msg("fd byte %zu: %#x, expected %#x", (size_t)off + i, got[i], want[i]);
        tfree(got);
}

/* Entries in /proc/self/fd (the directory's own fd included, the same
 * each time). */
static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        ck_assert_ptr_nonnull(d);
        int n = 0;
        for (struct dirent *e; (e = readdir(d));)
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

/* An anonymous regular file on disk (or wherever TMPDIR is). */
static int temp_file(void)
{
        const char *dir = getenv("TMPDIR");
        char path[512];
        snprintf(path, sizeof path, "%s/iomem-transfer-XXXXXX", dir && *dir ? dir : "/tmp");
        int fd = mkstemp(path);
        ck_assert_msg(fd >= 0, "mkstemp %s: %s", path, strerror(errno));
        unlink(path);
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        return fd;
}

static int read_full(int fd, void *buf, size_t n)
{
        for (size_t got = 0; got < n;) {
                ssize_t r = read(fd, (char *)buf + got, n - got);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return -1;
                got += (size_t)r;
        }
        return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
        for (size_t put = 0; put < n;) {
                ssize_t r = write(fd, (const char *)buf + put, n - put);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r <= 0)
                        return -1;
                put += (size_t)r;
        }
        return 0;
}

/* One byte as a step signal between processes. */
static void signal_peer(int fd, char c)
{
        ck_assert_int_eq(write_full(fd, &c, 1), 0);
}

static char wait_peer(int fd)
{
        char c = 0;
        ck_assert_msg(read_full(fd, &c, 1) == 0, "the other process went away");
        return c;
}

#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME  UINT64_C(0x100000001b3)

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                h ^= p[i];
                h *= FNV_PRIME;
        }
        return h;
}

struct digest {
        uint64_t bytes, hash;
};

struct drain {
        pid_t pid;
        int result; /* read end: the child's struct digest */
};

/* A child that reads rfd to its end, then reports how many bytes it read
 * and their FNV-1a hash. close_fd is the parent's end, closed in the
 * child so that end of file can come. */
static struct drain drain_start(int rfd, int close_fd)
{
        int res[2];
        ck_assert_int_eq(pipe(res), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(res[0]);
                close(close_fd);
                static unsigned char buf[1 << 16];
                struct digest d = { 0, FNV_OFFSET };
                for (;;) {
                        ssize_t r = read(rfd, buf, sizeof buf);
                        if (r < 0 && errno == EINTR)
                                continue;
                        CHILD_REQUIRE(r >= 0);
                        if (r == 0)
                                break;
                        d.hash = fnv1a(d.hash, buf, (size_t)r);
                        d.bytes += (uint64_t)r;
                }
                CHILD_REQUIRE(write_full(res[1], &d, sizeof d) == 0);
                child_exit(0);
        }
        close(res[1]);
        close(rfd);
        return (struct drain){ pid, res[0] };
}

static struct digest drain_finish(struct drain *d)
{
        struct digest got = { 0, 0 };
        ck_assert_int_eq(read_full(d->result, &got, sizeof got), 0);
        close(d->result);
        ck_assert_int_eq(test_wait(d->pid), 0);
        return got;
}

/* ---- iomem_sendfile ------------------------------------------------------ */

START_TEST(sendfile_regular_file)
{
        int fds0 = count_fds();
        struct iomem *f = open_new("sf-file", 0);
        size_t ps = page_of(f), size = 3 * ps + 123;
        unsigned char *src = pattern(size, 1);
        put(f, 0, src, size);
        ck_assert_uint_eq(size_of(f), size);

        int fd = temp_file();
        ck_assert_int_eq(iomem_sendfile(fd, f, 0, size), (ssize_t)size);
        /* The descriptor's offset moved like after write(2). */
        ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), (off_t)size);
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, (off_t)size);
        expect_fd_bytes(fd, 0, src, size);

        /* A piece from the middle, appended. */
        ck_assert_int_eq(iomem_sendfile(fd, f, ps - 7, ps + 20), (ssize_t)(ps + 20));
        expect_fd_bytes(fd, (off_t)size, src + ps - 7, ps + 20);
        /* Nothing to send: 0, nothing written. */
        ck_assert_int_eq(iomem_sendfile(fd, f, 5, 0), 0);
        ck_assert_int_eq(lseek(fd, 0, SEEK_CUR), (off_t)(size + ps + 20));
        close(fd);
        /* The object is unchanged. */
        expect_bytes(f, 0, src, size);

        tfree(src);
        close_obj(&f);
        ck_assert_ptr_null(f);
        ck_assert_int_eq(count_fds(), fds0);
}
END_TEST

START_TEST(sendfile_bad_args)
{
        struct iomem *f = open_new("sf-args", 100);
        ck_assert_err(iomem_sendfile(1, NULL, 0, 10), EINVAL);
        ck_assert_err(iomem_sendfile(-1, f, 0, 10), EBADF);
        ck_assert_err(iomem_sendfile(1, f, 1, SIZE_MAX), EOVERFLOW);
        /* A descriptor that is not open, and one open only for reading. */
        int fd = temp_file();
        int closed = dup(fd);
        ck_assert_int_ge(closed, 0);
        close(closed);
        ck_assert_err(iomem_sendfile(closed, f, 0, 10), EBADF);
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        int ro = open(path, O_RDONLY);
        ck_assert_int_ge(ro, 0);
        ck_assert_err(iomem_sendfile(ro, f, 0, 10), EBADF);
        close(ro);
        close(fd);
        close_obj(&f);
}
END_TEST

/* Loop tests run a second time (_i == 1) on a write-sealed object, whose
 * pages go into pipes by reference (splice). */
#define SEAL_ON_SECOND_RUN(f) \
        do { \
                if (_i) \
                        ck_assert_int_eq(iomem_seal(f, IOMEM_SEAL_WRITE), 0); \
        } while (0)

/* Through a pipe to another process, across more than one batch of the
 * read lock (16 MiB). */
START_TEST(sendfile_pipe_child)
{
        struct iomem *f = open_new("sf-pipe", 0);
        size_t size = (size_t)17 << 20;
        size += 4321;
        unsigned char *src = pattern(size, 2);
        put(f, 0, src, size);
        uint64_t want = fnv1a(FNV_OFFSET, src, size);
        SEAL_ON_SECOND_RUN(f);

        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        struct drain d = drain_start(p[0], p[1]);
        ssize_t r = iomem_sendfile(p[1], f, 0, size);
        close(p[1]);
        struct digest got = drain_finish(&d);
        ck_assert_int_eq(r, (ssize_t)size);
        ck_assert_uint_eq(got.bytes, size);
        ck_assert_uint_eq(got.hash, want);
        /* The parent's view of the object hashes the same. */
        unsigned char *back = tmalloc(size);
        ck_assert_ptr_nonnull(back);
        ck_assert_int_eq(iomem_pread(f, back, size, 0), (ssize_t)size);
        ck_assert_uint_eq(fnv1a(FNV_OFFSET, back, size), got.hash);
        tfree(back);
        tfree(src);
        close_obj(&f);
}
END_TEST

START_TEST(sendfile_socket)
{
        int fds0 = count_fds();
        struct iomem *f = open_new("sf-sock", 0);
        size_t ps = page_of(f);

        /* Small: read back in this process. */
        size_t small = 3 * ps + 5;
        unsigned char *src = pattern(small, 3);
        put(f, 0, src, small);
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        ck_assert_int_eq(iomem_sendfile(sv[0], f, 0, small), (ssize_t)small);
        ck_assert_int_eq(shutdown(sv[0], SHUT_WR), 0);
        unsigned char *got = tmalloc(small + 1);
        ck_assert_ptr_nonnull(got);
        ck_assert_int_eq(read_full(sv[1], got, small), 0);
        ck_assert_int_eq(memcmp(got, src, small), 0);
        ck_assert_int_eq(read(sv[1], got, 1), 0); /* nothing more */
        close(sv[0]);
        close(sv[1]);
        tfree(got);
        tfree(src);

        /* Large: more than the socket buffer, drained by a child. */
        size_t size = (size_t)3 << 20;
        size += 99;
        src = pattern(size, 4);
        put(f, 0, src, size);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        struct drain d = drain_start(sv[1], sv[0]);
        ssize_t r = iomem_sendfile(sv[0], f, 0, size);
        close(sv[0]);
        struct digest dg = drain_finish(&d);
        ck_assert_int_eq(r, (ssize_t)size);
        ck_assert_uint_eq(dg.bytes, size);
        ck_assert_uint_eq(dg.hash, fnv1a(FNV_OFFSET, src, size));
        tfree(src);
        close_obj(&f);
        ck_assert_int_eq(count_fds(), fds0);
}
END_TEST

/* A write-sealed object into a socket (copied, as from any object) and into
 * a pipe (by reference), clamped at its end, from an offset inside a page:
 * the bytes as they are, nothing past the end. */
START_TEST(sendfile_sealed_to_socket)
{
        struct iomem *f = open_new("sf-sealed", 0);
        size_t size = ((size_t)2 << 20) + 77;
        unsigned char *src = pattern(size, 12);
        put(f, 0, src, size);
        ck_assert_int_eq(iomem_seal(f, IOMEM_SEAL_WRITE), 0);
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        struct drain d = drain_start(sv[1], sv[0]);
        ssize_t r = iomem_sendfile(sv[0], f, 1000, SIZE_MAX - 1000);
        close(sv[0]);
        struct digest dg = drain_finish(&d);
        ck_assert_int_eq(r, (ssize_t)(size - 1000));
        ck_assert_uint_eq(dg.bytes, size - 1000);
        ck_assert_uint_eq(dg.hash, fnv1a(FNV_OFFSET, src + 1000, size - 1000));
        ck_assert_int_eq(iomem_sendfile(sv[1], f, size, 10), 0);
        close(sv[1]);
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        d = drain_start(p[0], p[1]);
        r = iomem_sendfile(p[1], f, 1000, SIZE_MAX - 1000);
        close(p[1]);
        dg = drain_finish(&d);
        ck_assert_int_eq(r, (ssize_t)(size - 1000));
        ck_assert_uint_eq(dg.hash, fnv1a(FNV_OFFSET, src + 1000, size - 1000));
        tfree(src);
        close_obj(&f);
}
END_TEST

/* Holes come back from borrow as NULL entries and go out as zeros. */
START_TEST(sendfile_sparse)
{
        struct iomem *f = open_new("sf-sparse", 0);
        size_t ps = page_of(f);
        size_t size = 5 * ps + 200;
        unsigned char *model = tcalloc(1, size);
        ck_assert_ptr_nonnull(model);

        unsigned char a[90], b[4096 * 4];
        ck_assert_uint_le(ps, sizeof b);
        fill(a, sizeof a, 5);
        fill(b, ps, 6);
        put(f, ps + 10, a, sizeof a);           /* page 1 */
        memcpy(model + ps + 10, a, sizeof a);
        ck_assert_int_eq(iomem_truncate(f, size), 0); /* grows with holes */
        ck_assert_uint_eq(size_of(f), size);
        put(f, 3 * ps, b, ps);                  /* page 3 */
        memcpy(model + 3 * ps, b, ps);

        struct iovec iov[16];
        if (holes_visible()) {
                ck_assert_int_eq(iomem_bufcount(f, 0, size), 5);
                ck_assert_int_eq(iomem_borrow(f, 0, size, iov, 16), 5);
                ck_assert_ptr_null(iov[0].iov_base);
                ck_assert_uint_eq(iov[0].iov_len, ps);
                ck_assert_ptr_nonnull(iov[1].iov_base);
                ck_assert_uint_eq(iov[1].iov_len, ps);
                ck_assert_int_eq(memcmp(iov[1].iov_base, model + ps, ps), 0);
                ck_assert_ptr_null(iov[2].iov_base);
                ck_assert_uint_eq(iov[2].iov_len, ps);
                ck_assert_ptr_nonnull(iov[3].iov_base);
                ck_assert_uint_eq(iov[3].iov_len, ps);
                ck_assert_int_eq(memcmp(iov[3].iov_base, b, ps), 0);
                ck_assert_ptr_null(iov[4].iov_base);
                ck_assert_uint_eq(iov[4].iov_len, ps + 200); /* clamped at the size */
                /* A byte range inside a hole. */
                ck_assert_int_eq(iomem_borrow(f, 2 * ps + 3, 10, iov, 16), 1);
                ck_assert_ptr_null(iov[0].iov_base);
                ck_assert_uint_eq(iov[0].iov_len, 10);
        }
        expect_bytes(f, 0, model, size);
        SEAL_ON_SECOND_RUN(f);

        int fd = temp_file();
        ck_assert_int_eq(iomem_sendfile(fd, f, 0, size), (ssize_t)size);
        expect_fd_bytes(fd, 0, model, size);
        /* Starting and ending inside holes. */
        ck_assert_int_eq(iomem_sendfile(fd, f, ps / 2, 4 * ps), (ssize_t)(4 * ps));
        expect_fd_bytes(fd, (off_t)size, model + ps / 2, 4 * ps);
        close(fd);

        /* Through a pipe as well. */
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        struct drain d = drain_start(p[0], p[1]);
        ssize_t r = iomem_sendfile(p[1], f, 0, size);
        close(p[1]);
        struct digest dg = drain_finish(&d);
        ck_assert_int_eq(r, (ssize_t)size);
        ck_assert_uint_eq(dg.bytes, size);
        ck_assert_uint_eq(dg.hash, fnv1a(FNV_OFFSET, model, size));

        tfree(model);
        close_obj(&f);
}
END_TEST

/* Holes bigger than the library's zero region, and more extents than one
 * batch of iovecs. */
START_TEST(sendfile_fragmented)
{
        struct iomem *f = open_new("sf-frag", 0);
        size_t ps = page_of(f);
        size_t big = (size_t)3 << 20, pages = 200;
        size_t size = big + pages * ps + 11;
        ck_assert_int_eq(iomem_truncate(f, size), 0);
        unsigned char *model = tcalloc(1, size);
        ck_assert_ptr_nonnull(model);
        unsigned char *pg = tmalloc(ps);
        ck_assert_ptr_nonnull(pg);
        /* A 3 MiB hole, then every other page written. */
        for (size_t i = 0; i < pages; i += 2) {
                size_t off = big + i * ps;
                fill(pg, ps, (unsigned)i + 10);
                put(f, off, pg, ps);
                memcpy(model + off, pg, ps);
        }
        fill(pg, 11, 99);
        put(f, size - 11, pg, 11);
        memcpy(model + size - 11, pg, 11);
        /* The big hole, pages alternately data and hole, the last page. */
        if (holes_visible())
                ck_assert_int_eq(iomem_bufcount(f, 0, size), (ssize_t)(1 + pages + 1));

        int fd = temp_file();
        ck_assert_int_eq(iomem_sendfile(fd, f, 0, size), (ssize_t)size);
        expect_fd_bytes(fd, 0, model, size);
        close(fd);

        /* iomem_copy of the same into a new object. */
        struct iomem *g = open_new("sf-frag-dst", 0);
        ck_assert_int_eq(iomem_copy(g, 0, f, 0, size), (ssize_t)size);
        ck_assert_uint_eq(size_of(g), size);
        expect_bytes(g, 0, model, size);
        tfree(pg);
        tfree(model);
        close_obj(&g);
        close_obj(&f);
}
END_TEST

START_TEST(sendfile_clamped_at_eof)
{
        struct iomem *f = open_new("sf-eof", 0);
        size_t size = 10000;
        unsigned char *src = pattern(size, 7);
        put(f, 0, src, size);
        int fd = temp_file();
        ck_assert_int_eq(iomem_sendfile(fd, f, 8000, 10000), 2000);
        expect_fd_bytes(fd, 0, src + 8000, 2000);
        ck_assert_int_eq(iomem_sendfile(fd, f, size, 10), 0);
        ck_assert_int_eq(iomem_sendfile(fd, f, size + 12345, 10), 0);
        ck_assert_int_eq(iomem_sendfile(fd, f, 0, SIZE_MAX), (ssize_t)size);
        expect_fd_bytes(fd, 2000, src, size);
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, (off_t)(2000 + size));
        close(fd);
        tfree(src);
        close_obj(&f);
}
END_TEST

/* A non-blocking pipe that nobody drains: the bytes that fit, then
 * -EAGAIN once nothing fits. */
START_TEST(sendfile_nonblocking_pipe)
{
        struct iomem *f = open_new("sf-nb", 0);
        int p[2];
        ck_assert_int_eq(pipe2(p, O_NONBLOCK), 0);
        int cap = fcntl(p[1], F_GETPIPE_SZ);
        ck_assert_int_gt(cap, 0);
        size_t size = 4 * (size_t)cap + 100;
        unsigned char *src = pattern(size, 8);
        put(f, 0, src, size);
        SEAL_ON_SECOND_RUN(f);

        ssize_t r = iomem_sendfile(p[1], f, 0, size);
        ck_assert_msg(r > 0 && (size_t)r < size, "partial send: %zd (%s)", r, iomem_errormsg());
        ck_assert_int_le(r, cap);
        size_t sent = (size_t)r;
        /* Fill whatever room is left, then it must refuse. */
        int rounds = 0;
        while ((r = iomem_sendfile(p[1], f, sent, size - sent)) > 0 && rounds++ < 100)
                sent += (size_t)r;
        ck_assert_err(r, EAGAIN);
        ck_assert_uint_le(sent, (size_t)cap);

        /* Drain and continue until all of it went through, in order. */
        unsigned char *got = tmalloc(size);
        ck_assert_ptr_nonnull(got);
        size_t recvd = 0;
        for (rounds = 0; recvd < size && rounds < 10000; rounds++) {
                ssize_t k = 0;
                while (recvd < size && (k = read(p[0], got + recvd, size - recvd)) > 0)
                        recvd += (size_t)k;
                ck_assert(recvd == size || (k < 0 && errno == EAGAIN));
                ck_assert_uint_eq(recvd, sent);
                if (sent < size) {
                        r = iomem_sendfile(p[1], f, sent, size - sent);
                        ck_assert_msg(r > 0, "after draining: %zd (%s)", r, iomem_errormsg());
                        sent += (size_t)r;
                }
        }
        ck_assert_uint_eq(recvd, size);
        ck_assert_int_eq(memcmp(got, src, size), 0);
        close(p[0]);
        close(p[1]);
        tfree(got);
        tfree(src);
        close_obj(&f);
}
END_TEST

/* A non-blocking socket: the same as a pipe. */
START_TEST(sendfile_nonblocking_socket)
{
        struct iomem *f = open_new("sf-nbsock", 0);
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        int sndbuf = 0;
        socklen_t sl = sizeof sndbuf;
        ck_assert_int_eq(getsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, &sl), 0);
        size_t size = 8 * (size_t)sndbuf + 100;
        unsigned char *src = pattern(size, 14);
        put(f, 0, src, size);

        size_t sent = 0;
        ssize_t r = iomem_sendfile(sv[0], f, 0, size);
        ck_assert_msg(r > 0 && (size_t)r < size, "partial send: %zd (%s)", r, iomem_errormsg());
        sent = (size_t)r;
        int rounds = 0;
        while ((r = iomem_sendfile(sv[0], f, sent, size - sent)) > 0 && rounds++ < 100)
                sent += (size_t)r;
        ck_assert_err(r, EAGAIN);

        unsigned char *got = tmalloc(size);
        ck_assert_ptr_nonnull(got);
        size_t recvd = 0;
        for (rounds = 0; recvd < size && rounds < 100000; rounds++) {
                ssize_t k = 0;
                while (recvd < size && (k = read(sv[1], got + recvd, size - recvd)) > 0)
                        recvd += (size_t)k;
                ck_assert(recvd == size || (k < 0 && errno == EAGAIN));
                ck_assert_uint_eq(recvd, sent);
                if (sent < size) {
                        r = iomem_sendfile(sv[0], f, sent, size - sent);
                        ck_assert_msg(r > 0, "after draining: %zd (%s)", r, iomem_errormsg());
                        sent += (size_t)r;
                }
        }
        ck_assert_uint_eq(recvd, size);
        ck_assert_int_eq(memcmp(got, src, size), 0);
        close(sv[0]);
        close(sv[1]);
        tfree(got);
        tfree(src);
        close_obj(&f);
}
END_TEST

/* Process state letter from /proc/PID/stat, 0 when unknown. */
static char proc_state(pid_t pid)
{
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        const char *p = strrchr(buf, ')');
        return p && p[1] == ' ' ? p[2] : 0;
}

static volatile sig_atomic_t usr1_seen;

static void on_usr1(int sig)
{
        (void)sig;
        usr1_seen++;
}

/* Signals without SA_RESTART while sendfile is blocked on a full pipe:
 * it resumes, and every byte arrives once, in order. */
START_TEST(sendfile_resumes_after_eintr)
{
        struct sigaction sa = { .sa_handler = on_usr1 }, old; /* no SA_RESTART */
        sigemptyset(&sa.sa_mask);
        ck_assert_int_eq(sigaction(SIGUSR1, &sa, &old), 0);
        usr1_seen = 0;

        struct iomem *f = open_new("sf-eintr", 0);
        size_t size = ((size_t)2 << 20) + 333;
        unsigned char *src = pattern(size, 15);
        put(f, 0, src, size);
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        int cap = fcntl(p[1], F_GETPIPE_SZ);
        ck_assert_int_gt(cap, 0);
        enum { KICKS = 3 };
        pid_t parent = getpid();

        int res[2];
        ck_assert_int_eq(pipe(res), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(p[1]);
                close(res[0]);
                static unsigned char buf[1 << 16];
                struct digest d = { 0, FNV_OFFSET };
                for (int kick = 0; kick < KICKS; kick++) {
                        /* Wait (spinning) until the pipe is full and the
                         * writer asleep: it is blocked in the write. */
                        for (;;) {
                                int q = 0;
                                CHILD_REQUIRE(ioctl(p[0], FIONREAD, &q) == 0);
                                if (q >= cap && proc_state(parent) == 'S')
                                        break;
                                sched_yield();
                        }
                        CHILD_REQUIRE(kill(parent, SIGUSR1) == 0);
                        /* Make some room so that it goes on. */
                        ssize_t r = read(p[0], buf, (size_t)cap / 2);
                        CHILD_REQUIRE(r > 0);
                        d.hash = fnv1a(d.hash, buf, (size_t)r);
                        d.bytes += (uint64_t)r;
                }
                for (;;) {
                        ssize_t r = read(p[0], buf, sizeof buf);
                        if (r < 0 && errno == EINTR)
                                continue;
                        CHILD_REQUIRE(r >= 0);
                        if (r == 0)
                                break;
                        d.hash = fnv1a(d.hash, buf, (size_t)r);
                        d.bytes += (uint64_t)r;
                }
                CHILD_REQUIRE(write_full(res[1], &d, sizeof d) == 0);
                child_exit(0);
        }
        close(res[1]);
        close(p[0]);
        ssize_t r = iomem_sendfile(p[1], f, 0, size);
        close(p[1]);
        struct drain dr = { pid, res[0] };
        struct digest got = drain_finish(&dr);
        ck_assert_int_eq(r, (ssize_t)size);
        ck_assert_uint_eq(got.bytes, size);
        ck_assert_uint_eq(got.hash, fnv1a(FNV_OFFSET, src, size));
        ck_assert_int_eq(usr1_seen, KICKS);
        ck_assert_int_eq(sigaction(SIGUSR1, &old, NULL), 0);
        tfree(src);
        close_obj(&f);
}
END_TEST

/* A reader that is gone: -EPIPE, and no SIGPIPE kills the process or is
 * left pending. */
START_TEST(sendfile_epipe)
{
        struct sigaction dfl = { .sa_handler = SIG_DFL }, old;
        ck_assert_int_eq(sigaction(SIGPIPE, &dfl, &old), 0);
        sigset_t none, mask0;
        sigemptyset(&none);
        ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, &none, &mask0), 0);

        struct iomem *f = open_new("sf-epipe", 0);
        size_t size = 3 * page_of(f);
        unsigned char *src = pattern(size, 9);
        put(f, 0, src, size);
        SEAL_ON_SECOND_RUN(f);

        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        close(p[0]);
        ck_assert_err(iomem_sendfile(p[1], f, 0, size), EPIPE);
        sigset_t pend, cur;
        ck_assert_int_eq(sigpending(&pend), 0);
        ck_assert_int_eq(sigismember(&pend, SIGPIPE), 0);
        ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, NULL, &cur), 0);
        ck_assert_int_eq(sigismember(&cur, SIGPIPE), 0); /* mask restored */
        close(p[1]);

        /* A socket whose peer closed. */
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        close(sv[1]);
        ck_assert_err(iomem_sendfile(sv[0], f, 0, size), EPIPE);
        ck_assert_int_eq(sigpending(&pend), 0);
        ck_assert_int_eq(sigismember(&pend, SIGPIPE), 0);
        close(sv[0]);

        /* A SIGPIPE the caller had blocked and pending stays pending. */
        sigset_t pipe_set;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        ck_assert_int_eq(pthread_sigmask(SIG_BLOCK, &pipe_set, NULL), 0);
        ck_assert_int_eq(raise(SIGPIPE), 0);
        ck_assert_int_eq(pipe(p), 0);
        close(p[0]);
        ck_assert_err(iomem_sendfile(p[1], f, 0, size), EPIPE);
        close(p[1]);
        ck_assert_int_eq(sigpending(&pend), 0);
        ck_assert_int_eq(sigismember(&pend, SIGPIPE), 1);
        struct timespec zero = { 0, 0 };
        ck_assert_int_eq(sigtimedwait(&pipe_set, NULL, &zero), SIGPIPE);
        ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, NULL, &cur), 0);
        ck_assert_int_eq(sigismember(&cur, SIGPIPE), 1); /* still the caller's mask */

        ck_assert_int_eq(pthread_sigmask(SIG_SETMASK, &mask0, NULL), 0);
        ck_assert_int_eq(sigaction(SIGPIPE, &old, NULL), 0);
        tfree(src);
        close_obj(&f);
}
END_TEST

/* ---- iomem_copy -------------------------------------------------------------- */

START_TEST(copy_between_objects)
{
        int fds0 = count_fds();
        struct iomem *src = open_new("cp-src", 0), *dst = open_new("cp-dst", 0);
        size_t ps = page_of(src);
        size_t ssize = 5 * ps + 300, dsize = 2 * ps;
        unsigned char *s = pattern(ssize, 10), *d = tmalloc(4 * ps + 100);
        ck_assert_ptr_nonnull(d);
        memset(d, 0xAA, dsize);
        put(src, 0, s, ssize);
        put(dst, 0, d, dsize);

        /* Unaligned on both sides, growing the destination. */
        ck_assert_int_eq(iomem_copy(dst, 100, src, 50, 3 * ps), (ssize_t)(3 * ps));
        memcpy(d + 100, s + 50, 3 * ps);
        ck_assert_uint_eq(size_of(dst), 3 * ps + 100);
        expect_bytes(dst, 0, d, 3 * ps + 100);
        /* The source is unchanged. */
        expect_bytes(src, 0, s, ssize);
        /* Zero length: nothing. */
        ck_assert_int_eq(iomem_copy(dst, 0, src, 0, 0), 0);
        expect_bytes(dst, 0, d, 3 * ps + 100);

        tfree(s);
        tfree(d);
        close_obj(&src);
        close_obj(&dst);
        ck_assert_int_eq(count_fds(), fds0);
}
END_TEST

START_TEST(copy_holes_become_zeros)
{
        struct iomem *dst = open_new("cp-hdst", 0);
        size_t ps = page_of(dst);
        struct iomem *src = open_new("cp-hsrc", 4 * ps); /* all holes */
        unsigned char *pg = pattern(ps, 11);
        put(src, ps, pg, ps);
        unsigned char *d = tmalloc(4 * ps);
        ck_assert_ptr_nonnull(d);
        memset(d, 0xAA, 4 * ps);
        put(dst, 0, d, 4 * ps);

        ck_assert_int_eq(iomem_copy(dst, 0, src, 0, 4 * ps), (ssize_t)(4 * ps));
        memset(d, 0, 4 * ps);
        memcpy(d + ps, pg, ps);
        expect_bytes(dst, 0, d, 4 * ps);

        /* Growth past the end of an empty destination: the gap reads as zeros. */
        struct iomem *g = open_new("cp-grow", 0);
        ck_assert_int_eq(iomem_copy(g, 5 * ps + 7, src, ps, 1000), 1000);
        ck_assert_uint_eq(size_of(g), 5 * ps + 1007);
        unsigned char *want = tcalloc(1, 5 * ps + 1007);
        ck_assert_ptr_nonnull(want);
        memcpy(want + 5 * ps + 7, pg, 1000);
        expect_bytes(g, 0, want, 5 * ps + 1007);

        tfree(want);
        tfree(pg);
        tfree(d);
        close_obj(&g);
        close_obj(&src);
        close_obj(&dst);
}
END_TEST

START_TEST(copy_stops_at_source_eof)
{
        struct iomem *src = open_new("cp-eof-src", 0), *dst = open_new("cp-eof-dst", 0);
        unsigned char *s = pattern(10000, 12);
        put(src, 0, s, 10000);
        ck_assert_int_eq(iomem_copy(dst, 0, src, 6000, 10000), 4000);
        ck_assert_uint_eq(size_of(dst), 4000);
        expect_bytes(dst, 0, s + 6000, 4000);
        ck_assert_int_eq(iomem_copy(dst, 0, src, 10000, 5), 0);
        ck_assert_int_eq(iomem_copy(dst, 0, src, 20000, 5), 0);
        ck_assert_uint_eq(size_of(dst), 4000);
        /* Within one object too. */
        ck_assert_int_eq(iomem_copy(src, 0, src, 9950, 200), 50);
        memmove(s, s + 9950, 50);
        ck_assert_uint_eq(size_of(src), 10000);
        expect_bytes(src, 0, s, 10000);
        tfree(s);
        close_obj(&src);
        close_obj(&dst);
}
END_TEST

START_TEST(copy_bad_args)
{
        struct iomem *a = open_new("cp-args", 100);
        ck_assert_err(iomem_copy(NULL, 0, a, 0, 10), EINVAL);
        ck_assert_err(iomem_copy(a, 0, NULL, 0, 10), EINVAL);
        ck_assert_err(iomem_copy(a, 1, a, 0, SIZE_MAX), EOVERFLOW);
        ck_assert_err(iomem_copy(a, 0, a, 1, SIZE_MAX), EOVERFLOW);

        /* A read-only destination. */
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        ck_assert_int_eq(iomem_send(sv[0], a), 0);
        struct iomem *ro = NULL;
        ck_assert_int_eq(iomem_recv(sv[1], &ro, IOMEM_RDONLY), 0);
        track_obj(ro);
        close(sv[0]);
        close(sv[1]);
        ck_assert_err(iomem_copy(ro, 0, a, 0, 10), EROFS);
        /* ...is a fine source. */
        ck_assert_int_eq(iomem_pwrite(a, "hello", 5, 0), 5);
        ck_assert_int_eq(iomem_copy(a, 50, ro, 0, 5), 5);
        char buf[5];
        ck_assert_int_eq(iomem_pread(a, buf, 5, 50), 5);
        ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
        close_obj(&ro);
        close_obj(&a);
}
END_TEST

/* Overlapping copies within one object behave like memmove, in both
 * directions and across the library's 1 MiB bounce buffer. */
START_TEST(copy_within_overlap)
{
        struct iomem *f = open_new("cp-within", 0);
        size_t size = ((size_t)3 << 20) + 12345;
        unsigned char *m = pattern(size + 200, 13);
        put(f, 0, m, size);

        struct { size_t doff, soff, len; } cases[] = {
                { 1000, 5000, ((size_t)2 << 20) + 777 },   /* down, overlapping */
                { 7000, 100, ((size_t)2 << 20) + 999 },    /* up, overlapping */
                { 1, 0, 100000 },                          /* up by one byte */
                { 0, 1, 100000 },                          /* down by one byte */
                { 4096, 0, ((size_t)1 << 20) + 4096 },     /* page-aligned, up */
                { 300, 300, 5000 },                        /* onto itself */
        };
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                ssize_t r = iomem_copy(f, cases[i].doff, f, cases[i].soff, cases[i].len);
                ck_assert_msg(r == (ssize_t)cases[i].len, "case %zu: %zd (%s)", i, r, iomem_errormsg());
                memmove(m + cases[i].doff, m + cases[i].soff, cases[i].len);
                expect_bytes(f, 0, m, size);
        }
        /* Past the end: the object grows. */
        ck_assert_int_eq(iomem_copy(f, size - 10, f, 0, 100), 100);
        memmove(m + size - 10, m, 100);
        ck_assert_uint_eq(size_of(f), size + 90);
        expect_bytes(f, 0, m, size + 90);
        tfree(m);
        close_obj(&f);
}
END_TEST

/* ---- sharing between processes ---------------------------------------------- */

/* The child: receive, read the parent's bytes, write its own through
 * retrieve, pin, and unpin when told. */
static void recv_child(int sock, int to_parent, int from_parent, size_t ps, const unsigned char *a,
                       const unsigned char *b)
{
        struct iomem *g = NULL;
        CHILD_REQUIRE(iomem_recv(sock, &g, IOMEM_RDWR) == 0);
        close(sock);
        struct iomem_stat st;
        CHILD_REQUIRE(iomem_stat(g, &st) == 0);
        CHILD_REQUIRE(st.size == 4 * ps);
        CHILD_REQUIRE(strcmp(st.backend, test_backend()) == 0);
        CHILD_REQUIRE(st.acquired == 0);

        /* The parent's bytes, through borrow and pread. */
        struct iovec iov[8];
        ssize_t n = iomem_borrow(g, 0, 4 * ps, iov, 8);
        CHILD_REQUIRE(n >= 1);
        size_t at = 0;
        for (ssize_t i = 0; i < n; i++) {
                CHILD_REQUIRE(iov[i].iov_base != NULL);
                CHILD_REQUIRE(memcmp(iov[i].iov_base, a + at, iov[i].iov_len) == 0);
                at += iov[i].iov_len;
        }
        CHILD_REQUIRE(at == 4 * ps);
        unsigned char *buf = tmalloc(4 * ps);
        CHILD_REQUIRE(buf != NULL);
        CHILD_REQUIRE(iomem_pread(g, buf, 4 * ps, 0) == (ssize_t)(4 * ps));
        CHILD_REQUIRE(memcmp(buf, a, 4 * ps) == 0);
        tfree(buf);

        /* Its own bytes into page 3 through retrieve; pins on 0-1 and 3. */
        CHILD_REQUIRE(iomem_acquire(g, 3 * ps, ps) == (ssize_t)ps);
        n = iomem_retrieve(g, 3 * ps, ps, iov, 8);
        CHILD_REQUIRE(n >= 1);
        at = 0;
        for (ssize_t i = 0; i < n; i++) {
                memcpy(iov[i].iov_base, b + at, iov[i].iov_len);
                at += iov[i].iov_len;
        }
        CHILD_REQUIRE(at == ps);
        CHILD_REQUIRE(iomem_acquire(g, 0, 2 * ps) == (ssize_t)(2 * ps));
        CHILD_REQUIRE(iomem_stat(g, &st) == 0 && st.acquired == 3 * ps);
        CHILD_REQUIRE(write_full(to_parent, "r", 1) == 0);

        char c;
        CHILD_REQUIRE(read_full(from_parent, &c, 1) == 0 && c == 'g');
        CHILD_REQUIRE(iomem_release(g, 0, 2 * ps) == 0);
        CHILD_REQUIRE(iomem_release(g, 3 * ps, ps) == 0);
        CHILD_REQUIRE(iomem_stat(g, &st) == 0 && st.acquired == 0);
        CHILD_REQUIRE(write_full(to_parent, "u", 1) == 0);

        CHILD_REQUIRE(read_full(from_parent, &c, 1) == 0 && c == 'd');
        /* The parent truncated to one page meanwhile. */
        CHILD_REQUIRE(iomem_stat(g, &st) == 0 && st.size == ps);
        CHILD_REQUIRE(iomem_close(&g) == 0 && g == NULL);
        child_exit(0);
}

START_TEST(send_recv_fork)
{
        if (!test_backend_has(IOMEM_CAP_FDPASS | IOMEM_CAP_SHARED,
                              "a received handle's pins and memory shared with the sender"))
                return;
        int fds0 = count_fds();
        struct iomem *f = open_new("sendrecv", 0);
        size_t ps = page_of(f);
        unsigned char *a = pattern(4 * ps, 20), *b = pattern(ps, 21);
        put(f, 0, a, 4 * ps);
        /* The parent's own view of page 3, kept by a pin. */
        ck_assert_int_eq(iomem_acquire(f, 3 * ps, ps), (ssize_t)ps);
        struct iovec piov[4];
        ck_assert_int_eq(iomem_retrieve(f, 3 * ps, ps, piov, 4), 1);
        unsigned char *p3 = piov[0].iov_base;
        ck_assert_int_eq(memcmp(p3, a + 3 * ps, ps), 0);

        int sv[2], up[2], down[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        ck_assert_int_eq(pipe(up), 0);
        ck_assert_int_eq(pipe(down), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(sv[0]);
                close(up[0]);
                close(down[1]);
                /* The handle inherited across fork holds nothing here:
                 * closing it must leave the parent's pins alone. */
                untrack_obj(f);
                CHILD_REQUIRE(iomem_close(&f) == 0);
                recv_child(sv[1], up[1], down[0], ps, a, b);
        }
        close(sv[1]);
        close(up[1]);
        close(down[0]);
        ck_assert_int_eq(iomem_send(sv[0], f), 0);
        close(sv[0]);
        ck_assert_int_eq(wait_peer(up[0]), 'r');

        /* The child's bytes are in the parent's memory: no copy anywhere. */
        ck_assert_int_eq(memcmp(p3, b, ps), 0);
        expect_bytes(f, 3 * ps, b, ps);
        expect_bytes(f, 0, a, 3 * ps);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.acquired, ps); /* only this process's pins */
        ck_assert_int_eq(iomem_release(f, 3 * ps, ps), 0);

        /* The child's pins hold against the parent. */
        ck_assert_err(iomem_truncate(f, 0), EBUSY);
        ck_assert_err(iomem_truncate(f, ps), EBUSY);
        ck_assert_err(iomem_truncate(f, 3 * ps + 1), EBUSY); /* page 3 */
        ck_assert_uint_eq(size_of(f), 4 * ps);
        /* Growing touches no pin. */
        ck_assert_int_eq(iomem_truncate(f, 5 * ps), 0);
        ck_assert_int_eq(iomem_truncate(f, 4 * ps), 0);
        /* Nor does a gift over unpinned page 2. */
        unsigned char *c2 = pattern(ps, 22);
        struct iovec giov = { c2, ps };
        ck_assert_int_eq(iomem_gift(f, 2 * ps, ps, &giov, 1, 0), 1);
        ck_assert_err(iomem_gift(f, ps, ps, &giov, 1, 0), EBUSY);

        signal_peer(down[1], 'g');
        ck_assert_int_eq(wait_peer(up[0]), 'u');
        ck_assert_int_eq(iomem_truncate(f, ps), 0);
        ck_assert_uint_eq(size_of(f), ps);
        expect_bytes(f, 0, a, ps);
        signal_peer(down[1], 'd');
        ck_assert_int_eq(test_wait(pid), 0);
        close(up[0]);
        close(down[1]);
        tfree(c2);
        tfree(a);
        tfree(b);
        close_obj(&f);
        ck_assert_int_eq(count_fds(), fds0);
}
END_TEST

START_TEST(recv_rdonly)
{
        int fds0 = count_fds();
        struct iomem *f = open_new("recv-ro", 0);
        size_t ps = page_of(f);
        unsigned char *a = pattern(2 * ps, 30);
        put(f, 0, a, 2 * ps);

        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        struct iomem *g = NULL;
        ck_assert_err(iomem_recv(sv[1], &g, IOMEM_CREATE), EINVAL);
        ck_assert_ptr_null(g);
        ck_assert_int_eq(iomem_send(sv[0], f), 0);
        ck_assert_int_eq(iomem_recv(sv[1], &g, IOMEM_RDONLY), 0);
        track_obj(g);
        ck_assert_ptr_nonnull(g);

        struct iovec iov[4];
        ck_assert_int_eq(iomem_acquire(g, 0, ps), (ssize_t)ps);
        ck_assert_err(iomem_retrieve(g, 0, ps, iov, 4), EROFS);
        ck_assert_int_eq(iomem_borrow(g, 0, 2 * ps, iov, 4), 1);
        ck_assert_int_eq(memcmp(iov[0].iov_base, a, 2 * ps), 0);
        unsigned char buf[16];
        ck_assert_err(iomem_pwrite(g, buf, sizeof buf, 0), EROFS);
        ck_assert_err(iomem_truncate(g, 0), EROFS);
        ck_assert_err(iomem_copy(g, 0, f, 0, 10), EROFS);
        /* Its pin is shared: the writer cannot cut it away. */
        ck_assert_err(iomem_truncate(f, 0), EBUSY);
        ck_assert_int_eq(iomem_release(g, 0, ps), 0);
        /* Writes by the other handle show through. */
        fill(buf, sizeof buf, 31);
        put(f, 5, buf, sizeof buf);
        ck_assert_int_eq(iomem_pread(g, a, sizeof buf, 5), (ssize_t)sizeof buf);
        ck_assert_int_eq(memcmp(a, buf, sizeof buf), 0);
        ck_assert_int_eq(iomem_truncate(f, 0), 0);

        close(sv[0]);
        close(sv[1]);
        tfree(a);
        close_obj(&g);
        close_obj(&f);
        ck_assert_int_eq(count_fds(), fds0);
}
END_TEST

/* iomem_recv of something that is not an object. */
START_TEST(recv_garbage)
{
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        char junk[40];
        memset(junk, 'j', sizeof junk);
        ck_assert_int_eq(write(sv[0], junk, sizeof junk), (ssize_t)sizeof junk);
        struct iomem *g = NULL;
        ck_assert_err(iomem_recv(sv[1], &g, IOMEM_RDWR), EBADMSG);
        ck_assert_ptr_null(g);
        /* Whatever of the junk it did not take, then the end. */
        while (recv(sv[1], junk, sizeof junk, MSG_DONTWAIT) > 0)
                ;
        close(sv[0]);
        ck_assert_err(iomem_recv(sv[1], &g, IOMEM_RDWR), ECONNRESET);
        ck_assert_ptr_null(g);
        close(sv[1]);
        ck_assert_err(iomem_recv(-1, &g, IOMEM_RDWR), EBADF);
        ck_assert_err(iomem_recv(0, NULL, IOMEM_RDWR), EINVAL);
        ck_assert_err(iomem_send(-1, NULL), EINVAL);
}
END_TEST

/* iomem_open_fd on a duplicate of iomem_fd(): the same object, pins and
 * all. shm finds its metadata by name, so the name is kept until the end. */
START_TEST(open_fd_same_object)
{
        int fds0 = count_fds();
        char uri[160];
        snprintf(uri, sizeof uri, "%s", test_uri("openfd"));
        struct iomem_opts *o = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, 3 * 4096), 0);
        struct iomem *f = NULL;
        int r = iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o);
        iomem_opts_delete(&o);
        ck_assert_msg(r == 0, "open %s: %d (%s)", uri, r, iomem_errormsg());
        track_obj(f);
        size_t ps = page_of(f);
        ck_assert_int_eq(iomem_truncate(f, 3 * ps), 0);

        int fd = dup(iomem_fd(f));
        ck_assert_int_ge(fd, 0);
        struct iomem *g = NULL;
        r = iomem_open_fd(&g, test_backend(), fd, IOMEM_RDWR, NULL);
        if (r)
                close(fd);
        ck_assert_msg(r == 0, "open_fd: %d (%s)", r, iomem_errormsg());
        track_obj(g);
        ck_assert_int_eq(iomem_fd(g), fd); /* adopted, not duplicated */
        /* Both are attached: the name has served its purpose. */
        if (test_caps() & IOMEM_CAP_NAMED)
                ck_assert_int_eq(iomem_unlink(uri), 0);
        ck_assert_uint_eq(size_of(g), 3 * ps);

        /* Bytes both ways. */
        unsigned char *a = pattern(ps, 40), *b = pattern(ps, 41);
        put(g, 0, a, ps);
        expect_bytes(f, 0, a, ps);
        put(f, ps, b, ps);
        expect_bytes(g, ps, b, ps);

        /* Pins both ways. */
        ck_assert_int_eq(iomem_acquire(g, 0, ps), (ssize_t)ps);
        ck_assert_err(iomem_truncate(f, 0), EBUSY);
        ck_assert_int_eq(iomem_truncate(f, ps), 0); /* past the pin: fine */
        ck_assert_uint_eq(size_of(g), ps);
        ck_assert_int_eq(iomem_release(g, 0, ps), 0);
        ck_assert_int_eq(iomem_truncate(g, 2 * ps), 0);
        ck_assert_int_eq(iomem_acquire(f, ps, ps), (ssize_t)ps);
        ck_assert_err(iomem_truncate(g, ps), EBUSY);
        ck_assert_err(iomem_truncate(g, 0), EBUSY);
        ck_assert_int_eq(iomem_release(f, ps, ps), 0);
        ck_assert_int_eq(iomem_truncate(g, 0), 0);
        ck_assert_uint_eq(size_of(f), 0);

        /* Closing one leaves the other working. */
        close_obj(&g);
        put(f, 0, b, ps);
        expect_bytes(f, 0, b, ps);
        close_obj(&f);

        /* Not an object of this backend: refused, and the fd stays the caller's. */
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        ck_assert_err(iomem_open_fd(&g, test_backend(), p[0], IOMEM_RDWR, NULL), EINVAL);
        ck_assert_ptr_null(g);
        ck_assert_int_ge(fcntl(p[0], F_GETFD), 0);
        close(p[0]);
        close(p[1]);
        tfree(a);
        tfree(b);
        ck_assert_int_eq(count_fds(), fds0);
}
END_TEST

/* iomem_copy between two handles of one object, overlapping: the bytes
 * are one object's, so the result must be memmove's. */
START_TEST(copy_two_handles_overlap)
{
        struct iomem *f = open_new("cp-2h", 0);
        size_t size = 256 * 1024;
        unsigned char *m = pattern(size, 50);
        put(f, 0, m, size);
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        ck_assert_int_eq(iomem_send(sv[0], f), 0);
        struct iomem *g = NULL;
        ck_assert_int_eq(iomem_recv(sv[1], &g, IOMEM_RDWR), 0);
        track_obj(g);
        close(sv[0]);
        close(sv[1]);

        /* The model, moved like memmove would (GCC's bounds check under
         * ASan cannot see through pattern(), so move it by hand). */
        ck_assert_int_eq(iomem_copy(g, 100, f, 0, 100000), 100000);
        for (size_t i = 100000; i-- > 0;)
                m[100 + i] = m[i];
        expect_bytes(f, 0, m, size);
        ck_assert_int_eq(iomem_copy(g, 0, f, 333, 100000), 100000);
        for (size_t i = 0; i < 100000; i++)
                m[i] = m[333 + i];
        expect_bytes(f, 0, m, size);
        tfree(m);
        close_obj(&g);
        close_obj(&f);
}
END_TEST

/* ---- an object never goes into its own files ------------------------------------- */

/* A named object that keeps its name, so that its files can be opened
 * by path; *uri receives its URI. */
static struct iomem *open_named(const char *tag, size_t size, char *uri, size_t cap)
{
        snprintf(uri, cap, "%s", test_uri(tag));
        struct iomem_opts *o = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, size), 0);
        struct iomem *f = NULL;
        int r = iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o);
        iomem_opts_delete(&o);
        ck_assert_msg(r == 0, "open %s: %d (%s)", uri, r, iomem_errormsg());
        track_obj(f);
        return f;
}

/* Written into its own data file (a dup of iomem_fd, or the file opened
 * again by path) or into its metadata file, an object would be overwritten
 * with itself, as `cp f f` empties f: sendfile and the asynchronous
 * transfers refuse, and nothing changes. */
START_TEST(a_transfer_into_its_own_files_is_refused)
{
        char uri[160];
        struct iomem *f = open_named("own", 0, uri, sizeof uri);
        size_t ps = page_of(f);
        unsigned char *a = pattern(2 * ps, 60);
        put(f, 0, a, 2 * ps);
        /* Memory handed out before: once the object was wrecked, reading
         * it raised SIGBUS. */
        test_fail_on_sigbus();
        struct iovec pinned[2];
        ck_assert_int_eq(iomem_acquire(f, 0, 2 * ps), (ssize_t)(2 * ps));
        ssize_t npinned = iomem_retrieve(f, 0, 2 * ps, pinned, 2);
        ck_assert_int_ge(npinned, 1);
        int own[3], nown = 0;
        own[nown++] = dup(iomem_fd(f));
        if (!strcmp(test_backend(), "shm")) {
                char path[200];
                snprintf(path, sizeof path, "/dev/shm/%s", uri + 4);
                own[nown++] = open(path, O_RDWR);
                snprintf(path, sizeof path, "/dev/shm/%s.iomem", uri + 4);
                own[nown++] = open(path, O_RDWR);
        } else if (!strcmp(test_backend(), "dax")) {
                own[nown++] = open(uri + 4, O_RDWR);
        }
        if (test_caps() & IOMEM_CAP_NAMED)
                ck_assert_int_eq(iomem_unlink(uri), 0); /* the descriptors keep the files */
        struct iomem_aio *q = NULL;
        bool aio = iomem_aio_new(&q, 2) == 0;
        for (int i = 0; i < nown; i++) {
                ck_assert_int_ge(own[i], 0);
                ck_assert_err(iomem_sendfile(own[i], f, 0, 2 * ps), EINVAL);
                ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "own"));
                if (aio) {
                        ck_assert_err(iomem_aio_write(q, own[i], 0, f, 0, ps, 1), EINVAL);
                        ck_assert_err(iomem_aio_read(q, own[i], 0, f, 0, ps, 1), EINVAL);
                }
                close(own[i]);
        }
        if (aio)
                iomem_aio_delete(&q);
        ck_assert_uint_eq(size_of(f), 2 * ps);
        expect_bytes(f, 0, a, 2 * ps);
        for (ssize_t i = 0, at = 0; i < npinned; at += (ssize_t)pinned[i].iov_len, i++)
                ck_assert_int_eq(memcmp(pinned[i].iov_base, a + at, pinned[i].iov_len), 0);
        ck_assert_int_eq(iomem_release(f, 0, 2 * ps), 0);
        /* Another file takes it. */
        char tmp[] = "/tmp/iomem-own-XXXXXX";
        int fd = mkstemp(tmp);
        ck_assert_int_ge(fd, 0);
        unlink(tmp);
        ck_assert_int_eq(iomem_sendfile(fd, f, 0, 2 * ps), (ssize_t)(2 * ps));
        close(fd);
        close_obj(&f);
        tfree(a);
}
END_TEST

/* A dax: object over the data file of a shm object is another object on
 * the same file: copying between them is refused (the shm object's
 * gifted bytes and metadata are not in that file). */
START_TEST(a_copy_between_objects_on_one_file_is_refused)
{
        if (strcmp(test_backend(), "shm")) {
                printf("SKIP: a dax: object over a shm object's file (the shm suite shows it)\n");
                return;
        }
        char uri[160], over[200];
        struct iomem *f = open_named("onefile", 0, uri, sizeof uri);
        size_t ps = page_of(f);
        unsigned char *a = pattern(ps, 61);
        put(f, 0, a, ps);
        snprintf(over, sizeof over, "dax:/dev/shm/%s", uri + 4);
        struct iomem *g = NULL;
        int r = iomem_open(&g, over, IOMEM_RDWR, NULL);
        if (r == -EPROTONOSUPPORT || r == -ENOTSUP) {
                printf("SKIP: no dax: backend in this build\n");
        } else {
                ck_assert_msg(r == 0, "open %s: %d (%s)", over, r, iomem_errormsg());
                track_obj(g);
                ck_assert_err(iomem_copy(g, 0, f, 0, ps), EINVAL);
                ck_assert_err(iomem_copy(f, 0, g, 0, ps), EINVAL);
                close_obj(&g);
        }
        expect_bytes(f, 0, a, ps);
        ck_assert_int_eq(iomem_unlink(uri), 0);
        close_obj(&f);
        tfree(a);
}
END_TEST

/* A shm object's descriptor whose name (and metadata object) was removed
 * reaches the shared state through another handle of this process, and
 * when there is none, attaching it is refused, where it used to take
 * metadata of its own (reading zeros for gifted bytes, truncating under
 * the others' pins). A shm object that another program made, with no
 * metadata anywhere, still attaches with private metadata (libiomem(7)). */
START_TEST(a_descriptor_that_lost_its_metadata_is_refused)
{
        if (strcmp(test_backend(), "shm")) {
                printf("SKIP: descriptors of shm objects without their name (the shm suite)\n");
                return;
        }
        char uri[160];
        struct iomem *f = open_named("lost", 0, uri, sizeof uri);
        size_t ps = page_of(f);
        ck_assert_int_eq(iomem_unlink(uri), 0);
        struct iomem *g = NULL;
        ck_assert_int_eq(iomem_open_fd(&g, "shm", dup(iomem_fd(f)), IOMEM_RDWR, NULL), 0);
        track_obj(g);
        ck_assert_int_eq(iomem_truncate(f, 2 * ps), 0);
        ck_assert_int_eq(iomem_acquire(g, ps, ps), (ssize_t)ps);
        struct iovec pinned[1];
        ck_assert_int_eq(iomem_retrieve(g, ps, ps, pinned, 1), 1);
        memset(pinned[0].iov_base, 'g', ps);
        ck_assert_err(iomem_truncate(f, 0), EBUSY); /* g's pin, shared */
        /* With private metadata the cut went through, and touching the
         * pinned page raised SIGBUS. */
        test_fail_on_sigbus();
        ck_assert_int_eq(((volatile char *)pinned[0].iov_base)[ps - 1], 'g');
        ck_assert_int_eq(iomem_release(g, ps, ps), 0);
        close_obj(&g);
        int fd = dup(iomem_fd(f));
        close_obj(&f); /* the last handle that holds the metadata object */
        ck_assert_err(iomem_open_fd(&g, "shm", fd, IOMEM_RDWR, NULL), ENOENT);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "cannot be found"));
        ck_assert_ptr_null(g);
        ck_assert_int_ge(fcntl(fd, F_GETFD), 0); /* still the caller's */
        close(fd);

        char name[80];
        snprintf(name, sizeof name, "/iomem-foreign-%d", (int)getpid());
        int foreign = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
        ck_assert_int_ge(foreign, 0);
        shm_unlink(name);
        ck_assert_int_eq(ftruncate(foreign, (off_t)ps), 0);
        if (!IOMEM_PLATFORM_LINUX) {
                /* No extended attributes to mark ours with: a descriptor
                 * alone cannot be told from one of ours, and is refused. */
                ck_assert_err(iomem_open_fd(&g, "shm", foreign, IOMEM_RDWR, NULL), ENOENT);
                ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "no extended attributes"));
                close(foreign);
                return;
        }
        ck_assert_int_eq(iomem_open_fd(&g, "shm", foreign, IOMEM_RDWR, NULL), 0);
        ck_assert_uint_eq(size_of(g), ps);
        iomem_close(&g);
}
END_TEST

static Suite *transfer_suite(void)
{
        int seal_runs = test_caps() & IOMEM_CAP_SEAL ? 2 : 1;
        Suite *s = suite_create("transfer");
        TCase *tc = tcase_create("sendfile");
        tcase_add_checked_fixture(tc, NULL, cleanup);
        tcase_add_test(tc, sendfile_regular_file);
        tcase_add_test(tc, sendfile_bad_args);
        tcase_add_loop_test(tc, sendfile_pipe_child, 0, seal_runs);
        tcase_add_test(tc, sendfile_socket);
        tcase_add_loop_test(tc, sendfile_sparse, 0, seal_runs);
        tcase_add_test(tc, sendfile_fragmented);
        tcase_add_test(tc, sendfile_clamped_at_eof);
        tcase_add_loop_test(tc, sendfile_nonblocking_pipe, 0, seal_runs);
        tcase_add_test(tc, sendfile_nonblocking_socket);
        tcase_add_test(tc, sendfile_resumes_after_eintr);
        tcase_add_loop_test(tc, sendfile_epipe, 0, seal_runs);
        if (test_caps() & IOMEM_CAP_SEAL)
                tcase_add_test(tc, sendfile_sealed_to_socket);
        tcase_add_test(tc, a_transfer_into_its_own_files_is_refused);
        suite_add_tcase(s, tc);

        tc = tcase_create("copy");
        tcase_add_checked_fixture(tc, NULL, cleanup);
        tcase_add_test(tc, copy_between_objects);
        tcase_add_test(tc, copy_holes_become_zeros);
        tcase_add_test(tc, copy_stops_at_source_eof);
        tcase_add_test(tc, copy_bad_args);
        tcase_add_test(tc, copy_within_overlap);
        tcase_add_test(tc, copy_two_handles_overlap);
        tcase_add_test(tc, a_copy_between_objects_on_one_file_is_refused);
        suite_add_tcase(s, tc);

        tc = tcase_create("sharing");
        tcase_add_checked_fixture(tc, NULL, cleanup);
        tcase_add_test(tc, send_recv_fork);
        tcase_add_test(tc, recv_rdonly);
        tcase_add_test(tc, recv_garbage);
        tcase_add_test(tc, open_fd_same_object);
        tcase_add_test(tc, a_descriptor_that_lost_its_metadata_is_refused);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return test_run(transfer_suite());
}
