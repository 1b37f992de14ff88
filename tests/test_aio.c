/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous transfers (iomem_aio_*): reads with and without O_DIRECT,
 * writes, zero-copy and plain sends, and their failures. After every
 * request, success or not, the object holds no pin and the ring no
 * registered buffer (seen from the kernel's side, /proc/self/fdinfo).
 * Links the static archive for the switches that force the fallbacks.
 */
#include "common.h"

#include "internal.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))
#define MIB ((size_t)1 << 20)

/* ---- helpers ---------------------------------------------------------------- */

/* Buffers the kernel holds registered for the rings of this process. */
static int registered_buffers(void)
{
        int n = 0;
        DIR *d = opendir("/proc/self/fd");
        ck_assert_ptr_nonnull(d);
        for (struct dirent *e; (e = readdir(d));) {
                char path[300], link[64] = "";
                snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
                if (readlink(path, link, sizeof link - 1) < 0 || strcmp(link, "anon_inode:[io_uring]"))
                        continue;
                snprintf(path, sizeof path, "/proc/self/fdinfo/%s", e->d_name);
                FILE *fp = fopen(path, "r");
                ck_assert_ptr_nonnull(fp);
                char line[256];
                bool bufs = false;
                /* "UserBufs:\t3", then "    1: 0x55.../8192" or "    0: <none>". */
                while (fgets(line, sizeof line, fp)) {
                        if (!strncmp(line, "UserBufs:", 9)) {
                                bufs = true;
                                continue;
                        }
                        if (line[0] != ' ')
                                bufs = false;
                        n += bufs && strstr(line, ": 0x") != NULL;
                }
                fclose(fp);
        }
        closedir(d);
        return n;
}

static size_t pinned(struct iomem *f)
{
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        return st.acquired;
}

/* Nothing left behind by a request: no pin, no registration. */
#define ck_assert_clean(f)                                                             \
        do {                                                                           \
                ck_assert_uint_eq(pinned(f), 0);                                       \
                ck_assert_int_eq(registered_buffers(), 0);                             \
        } while (0)

/* The end of a test: nothing left behind, then everything closed. */
static void finish(struct iomem_aio **q, struct iomem **f, int fd)
{
        ck_assert_clean(*f);
        ck_assert_int_eq(iomem_aio_delete(q), 0);
        ck_assert_ptr_null(*q);
        ck_assert_int_eq(iomem_close(f), 0);
        if (fd >= 0)
                close(fd);
}

static struct iomem_aio *new_queue(unsigned depth)
{
        struct iomem_aio *q = NULL;
        int r = iomem_aio_new(&q, depth);
        ck_assert_msg(r == 0, "iomem_aio_new: %d %s", r, iomem_errormsg());
        return q;
}

/* Exactly one completion, or fail. */
static struct iomem_aio_cqe wait_one(struct iomem_aio *q)
{
        struct iomem_aio_cqe c;
        int n = iomem_aio_wait(q, &c, 1, 1, 10000);
        ck_assert_msg(n == 1, "iomem_aio_wait: %d %s", n, iomem_errormsg());
        return c;
}

static unsigned char pattern(size_t i)
{
        return (unsigned char)(i * 131 + i / 4099 + 7);
}

static void fill(unsigned char *p, size_t len, size_t base)
{
        for (size_t i = 0; i < len; i++)
                p[i] = pattern(base + i);
}

/* The first byte of p[0..len) that is not the pattern from base, or len.
 * (One assertion per byte would cost Check a write each.) */
static size_t mismatch(const unsigned char *p, size_t len, size_t base)
{
        size_t i = 0;
        while (i < len && p[i] == pattern(base + i))
                i++;
        return i;
}

#define ck_assert_pattern(p, len, base)                                                    \
        do {                                                                               \
                size_t at_ = mismatch(p, len, base);                                       \
                ck_assert_msg(at_ == (len), "byte %zu of %zu is not the pattern's", at_,   \
                              (size_t)(len));                                              \
        } while (0)

/* The object's bytes [off, off+len) are the pattern from base. */
static void ck_assert_object(struct iomem *f, size_t off, size_t len, size_t base)
{
        unsigned char *buf = malloc(len);
        ck_assert_int_eq(iomem_pread(f, buf, len, off), (ssize_t)len);
        ck_assert_pattern(buf, len, base);
        free(buf);
}

/* A file of len pattern bytes on a disk filesystem (tmpfs may refuse
 * O_DIRECT), removed at once: only the descriptor remains. */
static int pattern_file(size_t len, int flags)
{
        char path[] = "/var/tmp/iomem-aio-XXXXXX";
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        unsigned char *buf = malloc(len);
        fill(buf, len, 0);
        ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
        free(buf);
        ck_assert_int_eq(fsync(fd), 0);
        int fd2 = open(path, flags);
        int e = errno;
        unlink(path);
        close(fd);
        ck_assert_msg(fd2 >= 0 || (flags & O_DIRECT), "open %s: %s", path, strerror(e));
        return fd2;
}

/* The alignment the test expects in O_DIRECT messages. */
static unsigned dio_offset_align(int fd)
{
        struct statx sx;
        if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN) &&
            sx.stx_dio_offset_align)
                return sx.stx_dio_offset_align;
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        return (unsigned)st.st_blksize;
}

static void ck_assert_msg_has(const char *what)
{
        ck_assert_msg(strstr(iomem_errormsg(), what), "\"%s\" is not in \"%s\"", what, iomem_errormsg());
}

/* A connected loopback TCP pair. */
static void tcp_pair(int *client, int *server)
{
        int ls = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof a;
        ck_assert_int_ge(ls, 0);
        ck_assert_int_eq(bind(ls, (void *)&a, sizeof a), 0);
        ck_assert_int_eq(listen(ls, 1), 0);
        ck_assert_int_eq(getsockname(ls, (void *)&a, &al), 0);
        *client = socket(AF_INET, SOCK_STREAM, 0);
        ck_assert_int_eq(connect(*client, (void *)&a, sizeof a), 0);
        *server = accept(ls, NULL, NULL);
        ck_assert_int_ge(*server, 0);
        close(ls);
}

/* Reads len bytes from fd in a child process and checks them against the
 * pattern from base. A process, not a thread: valgrind does not count
 * io_uring_enter as a blocking call, so a thread of ours would never run
 * while the test waits for the completion that needs it. */
struct reader {
        pid_t pid;
};

enum { READ_ALL = 0, READ_SHORT = 1, READ_WRONG = 2 };

static void reader_start(struct reader *r, int fd, size_t len, size_t base)
{
        r->pid = fork();
        ck_assert_int_ge(r->pid, 0);
        if (r->pid)
                return;
        unsigned char *buf = malloc(len);
        size_t got = 0;
        while (buf && got < len) {
                ssize_t n = read(fd, buf + got, len - got);
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        int verdict = got < len ? READ_SHORT : mismatch(buf, len, base) < len ? READ_WRONG : READ_ALL;
        free(buf);
        _exit(verdict);
}

static void reader_join(struct reader *r)
{
        int verdict = test_wait(r->pid);
        ck_assert_msg(verdict == READ_ALL, "the reader %s", verdict == READ_SHORT ? "got too few bytes" :
                      verdict == READ_WRONG ? "got wrong bytes" : "died");
}

/* ---- the acceptance program ---------------------------------------------- */

/* Read a file with O_DIRECT into a memfd: object; its bytes are there by
 * borrow once the completion says res == len, and truncate under the
 * read in flight is -EBUSY. */
START_TEST(direct_read_into_memfd)
{
        const size_t len = 4 * MIB;
        int fd = pattern_file(len, O_RDONLY | O_DIRECT);
        ck_assert_msg(fd >= 0, "/var/tmp does not take O_DIRECT: %s", strerror(errno));
        struct iomem_opts *o;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, len), 0);
        struct iomem *f = NULL;
        ck_assert_int_eq(iomem_open(&f, "memfd:aio-accept", IOMEM_RDWR | IOMEM_CREATE, o), 0);
        iomem_opts_delete(&o);
        struct iomem_aio *q = new_queue(4);

        ck_assert_int_eq(iomem_aio_read(q, fd, 0, f, 0, len, 42), 0);
        ck_assert_uint_eq(pinned(f), len);
        ck_assert_int_eq(iomem_aio_submit(q), 1);
        ck_assert_err(iomem_truncate(f, 0), EBUSY);
        ck_assert_msg_has("pinned");
        ck_assert_err(iomem_close(&f), EBUSY);
        ck_assert_msg_has("memfd:aio-accept");
        ck_assert_msg_has("iomem_aio_wait");
        ck_assert_ptr_nonnull(f);

        struct iomem_aio_cqe c = wait_one(q);
        ck_assert_uint_eq(c.tag, 42);
        ck_assert_int_eq(c.res, (ssize_t)len);
        ck_assert_clean(f);
        struct iovec iov[64];
        ssize_t n = iomem_borrow(f, 0, len, iov, 64);
        ck_assert_int_gt(n, 0);
        size_t at = 0;
        for (ssize_t i = 0; i < n; at += iov[i].iov_len, i++)
                ck_assert_pattern((unsigned char *)iov[i].iov_base, iov[i].iov_len, at);
        ck_assert_uint_eq(at, len);
        ck_assert_int_eq(iomem_truncate(f, 0), 0);
        finish(&q, &f, fd);
}
END_TEST

/* ---- reads ------------------------------------------------------------------ */

START_TEST(direct_misaligned)
{
        int fd = pattern_file(MIB, O_RDONLY | O_DIRECT);
        ck_assert_msg(fd >= 0, "/var/tmp does not take O_DIRECT: %s", strerror(errno));
        unsigned align = dio_offset_align(fd);
        char want[32];
        snprintf(want, sizeof want, "multiples of %u", align);
        struct iomem *f = test_open_new("dio", 2 * MIB);
        struct iomem_aio *q = new_queue(2);
        /* A file offset, then a length, off the block size. */
        ck_assert_err(iomem_aio_read(q, fd, align / 2, f, 0, 64 * 1024, 1), EINVAL);
        ck_assert_msg_has("O_DIRECT");
        ck_assert_msg_has(want);
        ck_assert_msg_has("iomem_aio_read: ");
        ck_assert_err(iomem_aio_read(q, fd, 0, f, 0, align + 1, 1), EINVAL);
        ck_assert_msg_has(want);
        ck_assert_clean(f);
        /* Memory off the alignment (the object's byte 1): refused after
         * the pin was taken, which must be given back. */
        ck_assert_err(iomem_aio_read(q, fd, 0, f, 1, 64 * 1024, 1), EINVAL);
        ck_assert_msg_has("O_DIRECT");
        ck_assert_msg_has("memory");
        ck_assert_clean(f);
        /* Nothing was queued. */
        struct iomem_aio_cqe c;
        ck_assert_int_eq(iomem_aio_wait(q, &c, 1, 1, 0), 0);
        finish(&q, &f, fd);
}
END_TEST

/* Buffered reads at unaligned offsets, the queue filled to -EAGAIN,
 * completions matched by tag. */
START_TEST(buffered_reads_and_full_queue)
{
        const size_t len = 3 * MIB;
        int fd = pattern_file(len, O_RDONLY);
        struct iomem *f = test_open_new("rd", len + PAGE);
        struct iomem_aio *q = new_queue(4);
        const size_t piece = len / 4;
        for (int i = 0; i < 4; i++)
                ck_assert_int_eq(iomem_aio_read(q, fd, i * piece, f, 100 + i * piece, piece, 10 + i), 0);
        ck_assert_err(iomem_aio_read(q, fd, 0, f, 0, 1, 99), EAGAIN);
        ck_assert_msg_has("full");
        ck_assert_msg_has("aio queue");
        ck_assert_int_eq(iomem_aio_submit(q), 4);
        ck_assert_int_eq(iomem_aio_submit(q), 0);
        struct iomem_aio_cqe c[8];
        int got = 0;
        while (got < 4) {
                int n = iomem_aio_wait(q, c + got, 8 - (unsigned)got, 1, 10000);
                ck_assert_int_gt(n, 0);
                got += n;
        }
        unsigned seen = 0;
        for (int i = 0; i < 4; i++) {
                ck_assert_int_eq(c[i].res, (ssize_t)piece);
                ck_assert_uint_eq(c[i].flags, 0);
                ck_assert(c[i].tag >= 10 && c[i].tag < 14);
                seen |= 1u << (c[i].tag - 10);
        }
        ck_assert_uint_eq(seen, 0xf);
        ck_assert_object(f, 100, len, 0);
        finish(&q, &f, fd);
}
END_TEST

/* A read that runs into the end of the file comes back short. */
START_TEST(short_file)
{
        int fd = pattern_file(5000, O_RDONLY);
        struct iomem *f = test_open_new("short", 4 * PAGE);
        struct iomem_aio *q = new_queue(1);
        ck_assert_int_eq(iomem_aio_read(q, fd, 0, f, 0, 3 * PAGE, 7), 0);
        struct iomem_aio_cqe c = wait_one(q); /* wait submits what is queued */
        ck_assert_uint_eq(c.tag, 7);
        ck_assert_int_eq(c.res, 5000);
        ck_assert_object(f, 0, 5000, 0);
        finish(&q, &f, fd);
}
END_TEST

START_TEST(bad_descriptors_and_ranges)
{
        int fd = pattern_file(PAGE, O_RDONLY);
        struct iomem *f = test_open_new("bad", 4 * PAGE);
        struct iomem_aio *q = new_queue(2);
        int closed = dup(fd);
        close(closed);
        ck_assert_err(iomem_aio_read(q, closed, 0, f, 0, PAGE, 1), EBADF);
        ck_assert_msg_has("is not an open descriptor");
        ck_assert_msg_has(test_backend());
        ck_assert_err(iomem_aio_write(q, fd, 0, f, 0, PAGE, 1), EBADF);
        ck_assert_msg_has("not open for writing");
        ck_assert_err(iomem_aio_send(q, fd, f, 0, PAGE, 1), ENOTSOCK);
        ck_assert_msg_has("not a socket");
        ck_assert_err(iomem_aio_read(q, fd, 0, f, 3 * PAGE, 2 * PAGE, 1), EINVAL);
        ck_assert_msg_has("past its end");
        ck_assert_err(iomem_aio_read(q, fd, 0, f, 0, 0, 1), EINVAL);
        ck_assert_err(iomem_aio_read(q, fd, 0, f, SIZE_MAX, 2, 1), EOVERFLOW);
        ck_assert_err(iomem_aio_new(&q, 0), EINVAL);
        ck_assert_clean(f);

        /* Closed between queuing and submitting: the kernel says so. */
        int gone = dup(fd);
        ck_assert_int_eq(iomem_aio_read(q, gone, 0, f, 0, PAGE, 5), 0);
        close(gone);
        struct iomem_aio_cqe c = wait_one(q);
        ck_assert_uint_eq(c.tag, 5);
        ck_assert_int_eq(c.res, -EBADF);
        ck_assert_clean(f);

        /* A read-only object cannot be read into. */
        struct iomem *ro = NULL;
        ck_assert_int_eq(iomem_open_fd(&ro, test_backend(), dup(iomem_fd(f)), IOMEM_RDONLY, NULL), 0);
        ck_assert_err(iomem_aio_read(q, fd, 0, ro, 0, PAGE, 1), EROFS);
        ck_assert_msg_has("read-only");
        ck_assert_int_eq(iomem_close(&ro), 0);

        struct iomem_aio_cqe cq;
        ck_assert_err(iomem_aio_wait(q, &cq, 1, 2, 0), EINVAL);
        ck_assert_err(iomem_aio_wait(q, NULL, 1, 0, 0), EINVAL);
        finish(&q, &f, fd);
}
END_TEST

/* ---- writes ---------------------------------------------------------------- */

START_TEST(write_to_file)
{
        const size_t len = 2 * MIB + 123;
        struct iomem *f = test_open_new("wr", len);
        unsigned char *buf = malloc(len);
        fill(buf, len, 0);
        ck_assert_int_eq(iomem_pwrite(f, buf, len, 0), (ssize_t)len);
        char path[] = "/var/tmp/iomem-aio-w-XXXXXX";
        int fd = mkstemp(path);
        unlink(path);
        struct iomem_aio *q = new_queue(2);
        ck_assert_int_eq(iomem_aio_write(q, fd, 4096, f, 0, len, 1), 0);
        ck_assert_int_eq(iomem_aio_submit(q), 1);
        struct iomem_aio_cqe c = wait_one(q);
        ck_assert_int_eq(c.res, (ssize_t)len);
        memset(buf, 0, len);
        ck_assert_int_eq(pread(fd, buf, len, 4096), (ssize_t)len);
        ck_assert_pattern(buf, len, 0);
        free(buf);
        finish(&q, &f, fd);
}
END_TEST

/* ---- fixed buffers ---------------------------------------------------------- */

/* The request's memory is registered while it is in flight (or not at
 * all when registration is impossible: switched off, or the memory of a
 * filesystem's file, which io_uring does not pin for long), and never
 * afterwards. */
static void fixed_buffers(bool allow)
{
        bool registers = allow && !(test_caps() & IOMEM_CAP_DAX);
        iom_aio_knobs.no_fixed = !allow;
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        struct iomem *f = test_open_new("fixed", 4 * PAGE);
        struct iomem_aio *q = new_queue(2);
        /* A pipe read stays in flight until the pipe has data. */
        ck_assert_int_eq(iomem_aio_read(q, p[0], 12345, f, 0, PAGE, 1), 0);
        ck_assert_int_eq(iomem_aio_submit(q), 1);
        ck_assert_int_eq(registered_buffers(), registers ? 1 : 0);
        struct iomem_aio_cqe c;
        ck_assert_int_eq(iomem_aio_wait(q, &c, 1, 1, 20), 0); /* times out */
        unsigned char buf[4096];
        fill(buf, sizeof buf, 0);
        ck_assert_int_eq(write(p[1], buf, PAGE), (ssize_t)PAGE);
        c = wait_one(q);
        ck_assert_int_eq(c.res, (ssize_t)PAGE);
        ck_assert_object(f, 0, PAGE, 0);
        finish(&q, &f, p[0]);
        close(p[1]);
        iom_aio_knobs.no_fixed = false;
}

START_TEST(fixed_registered_in_flight)
{
        fixed_buffers(true);
}
END_TEST

START_TEST(fixed_fallback)
{
        fixed_buffers(false);
}
END_TEST

/* ---- sends --------------------------------------------------------------------- */

static void send_tcp(bool zc, size_t len, unsigned *flags)
{
        iom_aio_knobs.no_send_zc = !zc;
        int cl, sv;
        tcp_pair(&cl, &sv);
        struct iomem *f = test_open_new("send", len);
        unsigned char *buf = malloc(len);
        fill(buf, len, 0);
        ck_assert_int_eq(iomem_pwrite(f, buf, len, 0), (ssize_t)len);
        free(buf);
        struct reader rd;
        reader_start(&rd, sv, len - 10, 10);
        struct iomem_aio *q = new_queue(4);
        ck_assert_int_eq(iomem_aio_send(q, cl, f, 10, len - 10, 3), 0);
        ck_assert_int_eq(iomem_aio_submit(q), 1);
        struct iomem_aio_cqe c = wait_one(q);
        ck_assert_int_eq(c.res, (ssize_t)(len - 10));
        ck_assert_uint_eq(c.tag, 3);
        *flags = c.flags;
        reader_join(&rd);
        finish(&q, &f, cl);
        close(sv);
        iom_aio_knobs.no_send_zc = false;
}

/* On loopback the receiving socket gets the sender's pages, which the
 * kernel copies before the send completes (the usage report says so). */
START_TEST(send_zero_copy_loopback)
{
        unsigned flags;
        send_tcp(true, 4 * MIB, &flags);
        ck_assert_uint_eq(flags, IOMEM_AIO_COPIED);
}
END_TEST

START_TEST(send_plain_fallback)
{
        unsigned flags;
        send_tcp(false, MIB, &flags);
        ck_assert_uint_eq(flags, IOMEM_AIO_COPIED);
}
END_TEST

/* Requests on one stream queued before one submission arrive in order
 * (the library links them), zero-copy or not. */
static void sends_in_order(bool zc)
{
        iom_aio_knobs.no_send_zc = !zc;
        const size_t piece = 256 * 1024, len = 16 * piece;
        int cl, sv;
        tcp_pair(&cl, &sv);
        struct iomem *f = test_open_new("order", len);
        unsigned char *buf = malloc(len);
        fill(buf, len, 0);
        ck_assert_int_eq(iomem_pwrite(f, buf, len, 0), (ssize_t)len);
        free(buf);
        struct reader rd;
        reader_start(&rd, sv, len, 0);
        struct iomem_aio *q = new_queue(16);
        for (unsigned i = 0; i < 16; i++)
                ck_assert_int_eq(iomem_aio_send(q, cl, f, i * piece, piece, i), 0);
        ck_assert_int_eq(iomem_aio_submit(q), 16);
        struct iomem_aio_cqe c[16];
        for (int got = 0; got < 16;) {
                int n = iomem_aio_wait(q, c + got, 16 - (unsigned)got, 1, 10000);
                ck_assert_int_gt(n, 0);
                for (int i = got; i < got + n; i++)
                        ck_assert_int_eq(c[i].res, (ssize_t)piece);
                got += n;
        }
        reader_join(&rd);
        finish(&q, &f, cl);
        close(sv);
        iom_aio_knobs.no_send_zc = false;
}

START_TEST(send_order_zc)
{
        sends_in_order(true);
}
END_TEST

START_TEST(send_order_plain)
{
        sends_in_order(false);
}
END_TEST

/* A unix socket cannot send zero-copy: a plain send, flagged copied. */
START_TEST(send_unix_socket)
{
        int sp[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
        struct iomem *f = test_open_new("unix", 8 * PAGE);
        unsigned char buf[4096];
        fill(buf, sizeof buf, 0);
        ck_assert_int_eq(iomem_pwrite(f, buf, PAGE, 0), (ssize_t)PAGE);
        struct iomem_aio *q = new_queue(1);
        ck_assert_int_eq(iomem_aio_send(q, sp[0], f, 0, PAGE, 9), 0);
        struct iomem_aio_cqe c = wait_one(q);
        ck_assert_int_eq(c.res, (ssize_t)PAGE);
        ck_assert_uint_eq(c.flags, IOMEM_AIO_COPIED);
        memset(buf, 0, sizeof buf);
        ck_assert_int_eq(read(sp[1], buf, PAGE), (ssize_t)PAGE);
        ck_assert_pattern(buf, PAGE, 0);
        finish(&q, &f, sp[0]);
        close(sp[1]);
}
END_TEST

/* The peer resets the connection: the send fails in res, and no SIGPIPE
 * kills the process (SIGPIPE is left at its default here). */
static void peer_resets(bool zc)
{
        iom_aio_knobs.no_send_zc = !zc;
        signal(SIGPIPE, SIG_DFL);
        int cl, sv;
        tcp_pair(&cl, &sv);
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        ck_assert_int_eq(setsockopt(sv, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
        close(sv); /* sends a reset */
        struct pollfd pfd = { .fd = cl, .events = POLLIN };
        ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
        ck_assert(pfd.revents & (POLLERR | POLLHUP));
        struct iomem *f = test_open_new("reset", MIB);
        struct iomem_aio *q = new_queue(2);
        for (int i = 0; i < 2; i++) {
                ck_assert_int_eq(iomem_aio_send(q, cl, f, 0, MIB, 1), 0);
                struct iomem_aio_cqe c = wait_one(q);
                ck_assert_msg(c.res == -ECONNRESET || c.res == -EPIPE, "send %d: res %zd", i, c.res);
                }
        finish(&q, &f, cl);
        iom_aio_knobs.no_send_zc = false;
}

START_TEST(send_peer_reset_zc)
{
        peer_resets(true);
}
END_TEST

START_TEST(send_peer_reset_plain)
{
        peer_resets(false);
}
END_TEST

/* ---- the queue's life ---------------------------------------------------------- */

/* Deleting a queue waits for what is in flight, then unpins it. The pipe
 * is written by a child process (see struct reader for why not a thread)
 * once the test is about to delete the queue. */
START_TEST(delete_waits_then_unpins)
{
        int p[4];
        ck_assert_int_eq(pipe(p), 0);
        ck_assert_int_eq(pipe(p + 2), 0);
        struct iomem *f = test_open_new("del", 4 * PAGE);
        struct iomem_aio *q = new_queue(2);
        ck_assert_int_eq(iomem_aio_read(q, p[0], 0, f, PAGE, 4096, 1), 0);
        ck_assert_int_eq(iomem_aio_submit(q), 1);
        ck_assert_err(iomem_truncate(f, 0), EBUSY);
        ck_assert_err(iomem_close(&f), EBUSY);
        ck_assert_msg_has("iomem_close: ");
        pid_t writer = fork();
        ck_assert_int_ge(writer, 0);
        if (writer == 0) {
                unsigned char buf[4096];
                fill(buf, sizeof buf, 0);
                char go;
                _exit(read(p[2], &go, 1) == 1 && write(p[1], buf, sizeof buf) == (ssize_t)sizeof buf ? 0 : 1);
        }
        ck_assert_int_eq(write(p[3], "g", 1), 1);
        ck_assert_int_eq(iomem_aio_delete(&q), 0);
        ck_assert_ptr_null(q);
        ck_assert_int_eq(test_wait(writer), 0);
        /* The kernel had finished writing the object when delete returned. */
        ck_assert_object(f, PAGE, 4096, 0);
        ck_assert_clean(f);
        ck_assert_int_eq(iomem_truncate(f, 0), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
        for (int i = 0; i < 4; i++)
                close(p[i]);
}
END_TEST

/* Gift over an in-flight range is -EBUSY too. */
START_TEST(gift_over_in_flight)
{
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        struct iomem *f = test_open_new("gift", 4 * PAGE);
        struct iomem_aio *q = new_queue(1);
        ck_assert_int_eq(iomem_aio_read(q, p[0], 0, f, 0, PAGE, 1), 0);
        ck_assert_int_eq(iomem_aio_submit(q), 1);
        unsigned char buf[4096] = { 1 };
        struct iovec v = { buf, PAGE };
        ck_assert_err(iomem_gift(f, 0, PAGE, &v, 1, 0), EBUSY);
        ck_assert_msg_has("pinned");
        ck_assert_int_eq(iomem_gift(f, 2 * PAGE, PAGE, &v, 1, 0), 1); /* elsewhere: fine */
        ck_assert_int_eq(write(p[1], buf, PAGE), (ssize_t)PAGE);
        struct iomem_aio_cqe c = wait_one(q);
        ck_assert_int_eq(c.res, (ssize_t)PAGE);
        ck_assert_clean(f);
        ck_assert_int_eq(iomem_gift(f, 0, PAGE, &v, 1, 0), 1);
        finish(&q, &f, p[0]);
        close(p[1]);
}
END_TEST

/* The eventfd is readable while completions wait, and only then. */
START_TEST(eventfd_readable)
{
        int fd = pattern_file(2 * PAGE, O_RDONLY);
        struct iomem *f = test_open_new("efd", 2 * PAGE);
        struct iomem_aio *q = new_queue(2);
        int efd = iomem_aio_fd(q);
        ck_assert_int_ge(efd, 0);
        struct pollfd pfd = { .fd = efd, .events = POLLIN };
        ck_assert_int_eq(poll(&pfd, 1, 0), 0);
        ck_assert_int_eq(iomem_aio_read(q, fd, 0, f, 0, PAGE, 1), 0);
        ck_assert_int_eq(iomem_aio_read(q, fd, PAGE, f, PAGE, PAGE, 2), 0);
        ck_assert_int_eq(iomem_aio_submit(q), 2);
        ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
        /* Both done (a wait for two), one collected: still readable. */
        struct iomem_aio_cqe c[2];
        int n = iomem_aio_wait(q, c, 1, 1, 10000);
        ck_assert_int_eq(n, 1);
        if (poll(&pfd, 1, 0) == 0) {
                /* The second had not completed yet: it will signal. */
                ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
        }
        ck_assert_int_eq(iomem_aio_wait(q, c + 1, 1, 1, 10000), 1);
        ck_assert_int_eq(poll(&pfd, 1, 0), 0);
        ck_assert_uint_eq(c[0].tag + c[1].tag, 3);
        finish(&q, &f, fd);
}
END_TEST

static Suite *aio_suite(void)
{
        Suite *s = suite_create("aio");
        TCase *tc = tcase_create("aio");
        tcase_set_timeout(tc, 120);
        bool fork_peers = test_forked_children_run("aio: sends and delete-waits");
        if (!strcmp(test_backend(), "memfd"))
                tcase_add_test(tc, direct_read_into_memfd);
        tcase_add_test(tc, direct_misaligned);
        tcase_add_test(tc, buffered_reads_and_full_queue);
        tcase_add_test(tc, short_file);
        tcase_add_test(tc, bad_descriptors_and_ranges);
        tcase_add_test(tc, write_to_file);
        tcase_add_test(tc, fixed_registered_in_flight);
        tcase_add_test(tc, fixed_fallback);
        if (fork_peers) {
                tcase_add_test(tc, send_zero_copy_loopback);
                tcase_add_test(tc, send_plain_fallback);
                tcase_add_test(tc, send_order_zc);
                tcase_add_test(tc, send_order_plain);
        }
        tcase_add_test(tc, send_unix_socket);
        tcase_add_test(tc, send_peer_reset_zc);
        tcase_add_test(tc, send_peer_reset_plain);
        if (fork_peers)
                tcase_add_test(tc, delete_waits_then_unpins);
        tcase_add_test(tc, gift_over_in_flight);
        tcase_add_test(tc, eventfd_readable);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        /* A build without liburing, or a kernel without io_uring, has
         * nothing to test: skip, saying why. */
        struct iomem_aio *q = NULL;
        int r = iomem_aio_new(&q, 1);
        if (r < 0) {
                printf("aio: skipped: %s\n", iomem_errormsg());
                return r == -ENOTSUP || r == -ENOSYS || r == -EPERM ? TEST_SKIP : EXIT_FAILURE;
        }
        iomem_aio_delete(&q);
        return test_run(aio_suite());
}
