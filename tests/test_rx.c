/* SPDX-License-Identifier: MIT */
/*
 * Receiving into an object (iomem_rx_*): messages land in gift-pool
 * buffers and become the object's memory by gift without a copy; messages
 * that find no buffer wait, or with IOMEM_RX_DROP are dropped and counted;
 * every bad argument has its error. Run on each backend with a gift pool.
 */
#include "common.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))

static unsigned char msg_byte(unsigned msg, size_t x)
{
        return (unsigned char)(msg * 131 + x * 7 + (x >> 9));
}

static void send_msgs(int sock, unsigned first, unsigned n, size_t len)
{
        unsigned char *b = malloc(len);
        ck_assert_ptr_nonnull(b);
        for (unsigned m = first; m < first + n; m++) {
                for (size_t x = 0; x < len; x++)
                        b[x] = msg_byte(m, x);
                ck_assert_int_eq(send(sock, b, len, 0), (ssize_t)len);
        }
        free(b);
}

static bool is_msg(const unsigned char *p, unsigned msg, size_t len)
{
        for (size_t x = 0; x < len; x++)
                if (p[x] != msg_byte(msg, x))
                        return false;
        return true;
}

/* A receiver on a new object of the suite's backend, reading the first of
 * a connected pair of UNIX sockets; the test sends into the second. */
struct rig {
        struct iomem *f;
        int sv[2]; /* the receiver's end, the sender's; -1 once closed */
        struct iomem_rx *rx;
};

/* false (the test has nothing to do) when the backend has no gift pool. */
static bool rig_up(struct rig *r, const char *tag, int type, size_t buf_size, unsigned nbufs,
                   unsigned flags)
{
        if (!test_backend_has(IOMEM_CAP_GIFT, "receive into its gift pool"))
                return false;
        r->f = test_open_new(tag, 0);
        ck_assert_int_eq(socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, r->sv), 0);
        r->rx = NULL;
        ck_assert_int_eq(iomem_rx_new(&r->rx, r->f, r->sv[0], buf_size, nbufs, flags), 0);
        return true;
}

/* The sender closes its end. */
static void hang_up(struct rig *r)
{
        close(r->sv[1]);
        r->sv[1] = -1;
}

static void rig_down(struct rig *r)
{
        ck_assert_int_eq(iomem_rx_delete(&r->rx), 0);
        ck_assert_ptr_null(r->rx);
        for (int i = 0; i < 2; i++)
                if (r->sv[i] >= 0)
                        close(r->sv[i]);
        iomem_close(&r->f);
}

/* The next message is message msg, of len bytes, in a buffer of buf_size
 * bytes that goes back to the pool. */
static void receive_and_free(struct rig *r, unsigned msg, size_t len, size_t buf_size)
{
        void *b;
        ck_assert_int_eq(iomem_rx_next(r->rx, &b, 5000), (ssize_t)len);
        ck_assert(is_msg(b, msg, len));
        ck_assert_int_eq(iomem_free(r->f, b, buf_size), 0);
}

/* 16 messages through 4 buffers: those that find no free buffer wait in
 * the socket, none is lost, and each becomes the object's memory by a
 * zero-copy gift; then the peer's close is 0, every time after. */
START_TEST(messages_become_object_memory)
{
        size_t len = 2 * PAGE;
        struct rig r;
        if (!rig_up(&r, "rx", SOCK_SEQPACKET, len, 4, 0))
                return;
        send_msgs(r.sv[1], 0, 16, len);
        for (unsigned m = 0; m < 16; m++) {
                void *b;
                ck_assert_int_eq(iomem_rx_next(r.rx, &b, 5000), (ssize_t)len);
                ck_assert(is_msg(b, m, len));
                ck_assert_int_eq(iomem_rx_gift(r.rx, b, len, m * len, IOMEM_GIFT_NOCOPY), 0);
        }
        ck_assert_int_eq(iomem_rx_dropped(r.rx), 0);
        hang_up(&r);
        void *b = &b;
        ck_assert_int_eq(iomem_rx_next(r.rx, &b, 5000), 0);
        ck_assert_ptr_null(b);
        ck_assert_int_eq(iomem_rx_next(r.rx, &b, 0), 0);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(r.f, &st), 0);
        ck_assert_uint_eq(st.gift_copied, 0);
        ck_assert_uint_eq(st.gift_adopted, 16 * len);
        unsigned char *back = malloc(len);
        ck_assert_ptr_nonnull(back);
        for (unsigned m = 0; m < 16; m++) {
                ck_assert_int_eq(iomem_pread(r.f, back, len, m * len), (ssize_t)len);
                ck_assert(is_msg(back, m, len));
        }
        free(back);
        rig_down(&r);
}
END_TEST

/* A short message lands whole-page where it ends the object (adopted, the
 * buffer's other pages freed), and is copied where it lands inside it at
 * no page boundary (the buffer freed); with IOMEM_GIFT_NOCOPY that is
 * -EXDEV and the buffer stays the caller's. */
START_TEST(short_messages_adopted_or_copied)
{
        size_t len = 4 * PAGE, small = 100;
        struct rig r;
        if (!rig_up(&r, "rxshort", SOCK_SEQPACKET, len, 4, 0))
                return;
        send_msgs(r.sv[1], 0, 3, small);
        void *b;
        ck_assert_int_eq(iomem_rx_next(r.rx, &b, 5000), (ssize_t)small);
        ck_assert_int_eq(iomem_rx_gift(r.rx, b, small, 0, 0), 0); /* ends the object */
        ck_assert_int_eq(iomem_rx_next(r.rx, &b, 5000), (ssize_t)small);
        ck_assert_err(iomem_rx_gift(r.rx, b, small, 10, IOMEM_GIFT_NOCOPY), EXDEV);
        ck_assert(is_msg(b, 1, small)); /* still the caller's, untouched */
        ck_assert_int_eq(iomem_rx_gift(r.rx, b, small, 10, 0), 0); /* copied */
        ck_assert_err(iomem_free(r.f, b, len), EINVAL); /* and its buffer freed */
        ck_assert_int_eq(iomem_rx_next(r.rx, &b, 5000), (ssize_t)small);
        ck_assert_err(iomem_rx_gift(NULL, b, small, 0, 0), EINVAL);
        ck_assert_err(iomem_rx_gift(r.rx, NULL, small, 0, 0), EINVAL);
        ck_assert_err(iomem_rx_gift(r.rx, b, 0, 0, 0), EINVAL);
        ck_assert_err(iomem_rx_gift(r.rx, b, len + 1, 0, 0), EINVAL);
        ck_assert_err(iomem_rx_gift(r.rx, b, small, 0, 0x2), EINVAL);
        ck_assert_int_eq(iomem_free(r.f, b, len), 0);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(r.f, &st), 0);
        ck_assert_uint_eq(st.gift_copied, small);
        ck_assert_uint_eq(st.size, 10 + small);
        unsigned char back[110];
        ck_assert_int_eq(iomem_pread(r.f, back, sizeof back, 0), (ssize_t)sizeof back);
        ck_assert(is_msg(back, 0, 10));
        ck_assert(is_msg(back + 10, 1, small));
        rig_down(&r);
}
END_TEST

/* On a stream, IOMEM_RX_FILL hands out whole buffers whatever the pieces
 * the sender wrote: 3 pieces of a page and a half less 100 bytes through
 * buffers of 2 pages arrive as 2 pages, 2 pages and, once the sender
 * closes, what is left; each adopted. */
START_TEST(fill_makes_whole_buffers)
{
        size_t len = 2 * PAGE, piece = PAGE + PAGE / 2 - 100;
        struct rig r;
        if (!rig_up(&r, "rxfill", SOCK_STREAM, len, 2, IOMEM_RX_FILL))
                return;
        unsigned char *b3 = malloc(3 * piece);
        ck_assert_ptr_nonnull(b3);
        for (size_t x = 0; x < 3 * piece; x++)
                b3[x] = msg_byte(0, x);
        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(send(r.sv[1], b3 + i * piece, piece, 0), (ssize_t)piece);
        hang_up(&r);
        size_t end = 0;
        const ssize_t want[] = { (ssize_t)len, (ssize_t)len, (ssize_t)(3 * piece - 2 * len), 0 };
        for (int i = 0; i < 4; i++) {
                void *b;
                ssize_t n = iomem_rx_next(r.rx, &b, 5000);
                ck_assert_int_eq(n, want[i]);
                if (!n)
                        break;
                ck_assert_int_eq(memcmp(b, b3 + end, (size_t)n), 0);
                ck_assert_int_eq(iomem_rx_gift(r.rx, b, (size_t)n, end, IOMEM_GIFT_NOCOPY), 0);
                end += (size_t)n;
        }
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(r.f, &st), 0);
        ck_assert_uint_eq(st.gift_copied, 0);
        ck_assert_uint_eq(st.size, 3 * piece);
        free(b3);
        rig_down(&r);
}
END_TEST

/* A receive that fails says so: a TCP peer that resets the connection is
 * -ECONNRESET naming the socket. */
START_TEST(a_reset_connection_is_an_error)
{
        if (!test_backend_has(IOMEM_CAP_GIFT, "receive into its gift pool"))
                return;
        struct iomem *f = test_open_new("rxreset", 0);
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof a;
        ck_assert_int_ge(l, 0);
        ck_assert_int_eq(bind(l, (struct sockaddr *)&a, sizeof a), 0);
        ck_assert_int_eq(listen(l, 1), 0);
        ck_assert_int_eq(getsockname(l, (struct sockaddr *)&a, &al), 0);
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(connect(c, (struct sockaddr *)&a, sizeof a), 0);
        int s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(s, 0);
        struct iomem_rx *rx = NULL;
        ck_assert_int_eq(iomem_rx_new(&rx, f, s, PAGE, 2, 0), 0);
        struct linger now = { 1, 0 }; /* close sends a reset */
        ck_assert_int_eq(setsockopt(c, SOL_SOCKET, SO_LINGER, &now, sizeof now), 0);
        close(c);
        void *b;
        ck_assert_err(iomem_rx_next(rx, &b, 5000), ECONNRESET);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "socket"));
        ck_assert_ptr_null(b);
        ck_assert_int_eq(iomem_rx_delete(&rx), 0);
        close(s);
        close(l);
        iomem_close(&f);
}
END_TEST

/* With IOMEM_RX_DROP and 2 buffers, 10 messages sent at once: 2 land, the
 * 8 that found no buffer are dropped and counted, and a later message
 * lands again. A buffer not gifted goes back with iomem_free. */
START_TEST(drop_counts_what_found_no_buffer)
{
        size_t len = PAGE;
        struct rig r;
        if (!rig_up(&r, "rxdrop", SOCK_SEQPACKET, len, 2, IOMEM_RX_DROP))
                return;
        send_msgs(r.sv[1], 0, 10, len);
        for (unsigned m = 0; m < 2; m++)
                receive_and_free(&r, m, len, len);
        void *b;
        ck_assert_err(iomem_rx_next(r.rx, &b, 0), EAGAIN);
        ck_assert_int_eq(iomem_rx_dropped(r.rx), 8);
        send_msgs(r.sv[1], 10, 1, len);
        receive_and_free(&r, 10, len, len);
        ck_assert_err(iomem_rx_next(r.rx, &b, 20), ETIMEDOUT);
        ck_assert_int_eq(iomem_rx_dropped(r.rx), 8);
        rig_down(&r);
}
END_TEST

static bool readable(int fd, int timeout_ms)
{
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int n = poll(&p, 1, timeout_ms);
        ck_assert_int_ge(n, 0);
        return n == 1 && (p.revents & POLLIN);
}

/* iomem_rx_fd is readable exactly while iomem_rx_next has something to
 * return without waiting: a message, or the peer's close. */
START_TEST(the_descriptor_polls_readable)
{
        size_t len = PAGE;
        struct rig r;
        if (!rig_up(&r, "rxfd", SOCK_SEQPACKET, len, 4, 0))
                return;
        int fd = iomem_rx_fd(r.rx);
        ck_assert_int_ge(fd, 0);
        ck_assert(!readable(fd, 0));
        send_msgs(r.sv[1], 0, 2, len);
        for (unsigned m = 0; m < 2; m++) {
                ck_assert(readable(fd, 5000));
                receive_and_free(&r, m, len, len);
        }
        ck_assert(!readable(fd, 0));
        void *b;
        ck_assert_err(iomem_rx_next(r.rx, &b, 0), EAGAIN);
        ck_assert(!readable(fd, 0));
        hang_up(&r);
        ck_assert(readable(fd, 5000));
        ck_assert_int_eq(iomem_rx_next(r.rx, &b, 0), 0);
        ck_assert(readable(fd, 0)); /* the end stays readable */
        ck_assert_err(iomem_rx_fd(NULL), EINVAL);
        rig_down(&r);
}
END_TEST

/* IOMEM_RX_DROP drops only what found no buffer: with a recv per buffer
 * (IOMEM_RX_FILL) and buffers to spare, every message arrives. */
START_TEST(drop_with_buffers_free_drops_nothing)
{
        size_t len = PAGE;
        struct rig r;
        if (!rig_up(&r, "rxdropfill", SOCK_SEQPACKET, len, 4, IOMEM_RX_DROP | IOMEM_RX_FILL))
                return;
        send_msgs(r.sv[1], 0, 3, len);
        for (unsigned m = 0; m < 3; m++)
                receive_and_free(&r, m, len, len);
        ck_assert_int_eq(iomem_rx_dropped(r.rx), 0);
        rig_down(&r);
}
END_TEST

/* On a datagram socket an empty datagram is no end: it is passed over. */
START_TEST(an_empty_datagram_is_not_the_end)
{
        struct rig r;
        if (!rig_up(&r, "rxdgram", SOCK_DGRAM, PAGE, 2, 0))
                return;
        ck_assert_int_eq(send(r.sv[1], "", 0, 0), 0);
        send_msgs(r.sv[1], 7, 1, 100);
        receive_and_free(&r, 7, 100, PAGE);
        rig_down(&r);
}
END_TEST

/* Deleting a receiver with messages in flight and buffers posted leaves
 * nothing the kernel could still write into, and a new one on the same
 * socket reads on where it stopped. */
START_TEST(delete_mid_stream)
{
        size_t len = PAGE;
        struct rig r;
        if (!rig_up(&r, "rxdel", SOCK_SEQPACKET, len, 4, 0))
                return;
        send_msgs(r.sv[1], 0, 8, len);
        receive_and_free(&r, 0, len, len);
        ck_assert_int_eq(iomem_rx_delete(&r.rx), 0);
        /* The ones received into buffers but never handed out went with
         * them; those still in the socket come to the next receiver. */
        ck_assert_int_eq(iomem_rx_new(&r.rx, r.f, r.sv[0], len, 4, 0), 0);
        receive_and_free(&r, 4, len, len);
        rig_down(&r);
}
END_TEST

START_TEST(every_error)
{
        size_t ps = PAGE;
        struct rig r;
        if (!rig_up(&r, "rxerr", SOCK_SEQPACKET, ps, 4, 0))
                return;
        struct iomem *f = r.f;
        int sock = r.sv[0], pipefd[2];
        ck_assert_int_eq(pipe(pipefd), 0);
        struct iomem *busy = f; /* its receiver still receives into its pool */
        ck_assert_err(iomem_close(&busy), EBUSY);
        ck_assert_ptr_eq(busy, f);
        void *b = &b;
        ck_assert_err(iomem_rx_next(NULL, &b, 0), EINVAL);
        ck_assert_err(iomem_rx_next(r.rx, NULL, 0), EINVAL);
        ck_assert_err(iomem_rx_next(r.rx, &b, 0), EAGAIN);
        ck_assert_ptr_null(b);
        ck_assert_err(iomem_rx_next(r.rx, &b, 10), ETIMEDOUT);
        ck_assert_err(iomem_rx_dropped(NULL), EINVAL);
        ck_assert_err(iomem_rx_delete(NULL), EINVAL);
        ck_assert_int_eq(iomem_rx_delete(&r.rx), 0);
        ck_assert_int_eq(iomem_rx_delete(&r.rx), 0); /* NULL already */

        struct iomem_rx *rx = (struct iomem_rx *)&rx;
        ck_assert_err(iomem_rx_new(NULL, f, sock, ps, 4, 0), EINVAL);
        ck_assert_err(iomem_rx_new(&rx, NULL, sock, ps, 4, 0), EINVAL);
        ck_assert_ptr_null(rx);
        ck_assert_err(iomem_rx_new(&rx, f, sock, ps, 4, 0x4), EINVAL);
        ck_assert_err(iomem_rx_new(&rx, f, sock, 0, 4, 0), EINVAL);
        ck_assert_err(iomem_rx_new(&rx, f, sock, ps + 1, 4, 0), EINVAL);
        ck_assert_err(iomem_rx_new(&rx, f, sock, (size_t)2 << 30, 4, 0), EINVAL);
        ck_assert_err(iomem_rx_new(&rx, f, sock, ps, 0, 0), EINVAL);
        ck_assert_err(iomem_rx_new(&rx, f, sock, ps, 3, 0), EINVAL);
        ck_assert_err(iomem_rx_new(&rx, f, sock, ps, 65536, 0), EINVAL);
        ck_assert_err(iomem_rx_new(&rx, f, -1, ps, 4, 0), EBADF);
        ck_assert_err(iomem_rx_new(&rx, f, pipefd[0], ps, 4, 0), ENOTSOCK);
        ck_assert_ptr_null(rx);
        int st[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, st), 0);
        ck_assert_err(iomem_rx_new(&rx, f, st[0], ps, 4, IOMEM_RX_DROP), EINVAL);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "stream"));
        ck_assert_int_eq(iomem_rx_new(&rx, f, st[0], ps, 1, 0), 0); /* one buffer is a ring */
        ck_assert_int_eq(iomem_rx_delete(&rx), 0);
        close(st[0]);
        close(st[1]);
        /* A read-only handle on the same object, through its descriptor
         * opened again read-only (the handle adopts it). */
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", iomem_fd(f));
        int ro_fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(ro_fd, 0);
        struct iomem *ro = NULL;
        ck_assert_int_eq(iomem_open_fd(&ro, test_backend(), ro_fd, IOMEM_RDONLY, NULL), 0);
        ck_assert_err(iomem_rx_new(&rx, ro, sock, ps, 4, 0), EROFS);
        iomem_close(&ro);
        close(pipefd[0]);
        close(pipefd[1]);
        rig_down(&r);
}
END_TEST

/* An object without a gift pool (dax:) cannot take received messages. */
START_TEST(no_gift_pool_no_receiver)
{
        char path[] = "/var/tmp/iomem-rx-XXXXXX", uri[64];
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        close(fd);
        snprintf(uri, sizeof uri, "dax:%s", path);
        struct iomem *f = NULL;
        int r = iomem_open(&f, uri, IOMEM_RDWR, NULL);
        if (r == -EPROTONOSUPPORT || r == -ENODEV) { /* a build without dax */
                unlink(path);
                return;
        }
        ck_assert_int_eq(r, 0);
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        struct iomem_rx *rx = NULL;
        ck_assert_err(iomem_rx_new(&rx, f, sv[0], PAGE, 4, 0), ENOTSUP);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "gift pool"));
        ck_assert_ptr_null(rx);
        close(sv[0]);
        close(sv[1]);
        iomem_close(&f);
        unlink(path);
}
END_TEST

static Suite *rx_suite(void)
{
        Suite *s = suite_create("rx");
        TCase *tc = tcase_create("rx");
        tcase_add_test(tc, messages_become_object_memory);
        tcase_add_test(tc, short_messages_adopted_or_copied);
        tcase_add_test(tc, fill_makes_whole_buffers);
        tcase_add_test(tc, a_reset_connection_is_an_error);
        tcase_add_test(tc, drop_counts_what_found_no_buffer);
        tcase_add_test(tc, the_descriptor_polls_readable);
        tcase_add_test(tc, drop_with_buffers_free_drops_nothing);
        tcase_add_test(tc, an_empty_datagram_is_not_the_end);
        tcase_add_test(tc, delete_mid_stream);
        tcase_add_test(tc, every_error);
        tcase_add_test(tc, no_gift_pool_no_receiver);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        /* A build without liburing, or a kernel without io_uring or its
         * provided-buffer rings, has nothing to test: skip, saying why. */
        int sv[2];
        struct iomem *f = NULL;
        struct iomem_rx *rx = NULL;
        char uri[64];
        snprintf(uri, sizeof uri, "%s:iomem-rx-probe-%d", test_backend(), (int)getpid());
        int r = iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL);
        if (r == 0 && (test_caps() & IOMEM_CAP_NAMED))
                iomem_unlink(uri);
        if (r || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
                fprintf(stderr, "rx: cannot make the probe's object or sockets: %s\n", iomem_errormsg());
                return EXIT_FAILURE;
        }
        r = iomem_rx_new(&rx, f, sv[0], PAGE, 2, 0);
        iomem_rx_delete(&rx);
        close(sv[0]);
        close(sv[1]);
        iomem_close(&f);
        if (r == -ENOTSUP || r == -ENOSYS || r == -EPERM) {
                printf("rx: skipped: %s\n", iomem_errormsg());
                return TEST_SKIP;
        }
        if (r) {
                fprintf(stderr, "rx: the probe's receiver: %s\n", iomem_errormsg());
                return EXIT_FAILURE;
        }
        return test_run(rx_suite());
}
