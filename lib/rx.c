/* SPDX-License-Identifier: MIT */
/*
 * Receiving into an object (iomem_rx_*): a socket's messages land in
 * buffers of the object's gift pool, so that iomem_gift makes each the
 * object's memory without a copy.
 *
 * The buffers come from iomem_alloc and sit in an io_uring provided-buffer
 * ring, which one multishot recv (Linux 6.0; a recv rearmed per message
 * before) fills: the kernel picks a free buffer for each message. A
 * message handed out becomes the caller's, as from iomem_alloc, and a new
 * buffer takes its place in the ring at once. When the kernel finds no
 * free buffer, the recv ends with -ENOBUFS; the next call rearms it, and
 * with IOMEM_RX_DROP first reads away (and counts) what waited in the
 * socket meanwhile, where without it that waits for the buffers.
 *
 * One thread at a time uses a receiver, like a struct io_uring.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#define FAIL(op, obj, err, ...) iom_result(op, iom_fail(obj, err, __VA_ARGS__))

#define MAX_BUFS 32768u /* the kernel's limit on a buffer ring's entries */
#define MAX_BUF_SIZE ((size_t)1 << 30)
#define GROUP 0 /* the ring's buffer group: one ring per receiver */
#define RECV_TAG 1
#define CANCEL_TAG 2

struct iomem_rx {
        struct iomem *f;
        int sock;
        unsigned flags;
        struct io_uring ring;
        struct io_uring_buf_ring *br;
        size_t br_len;
        void **buf; /* by buffer id: posted in the ring, NULL while empty */
        size_t buf_size;
        unsigned nbufs, posted;
        int type;       /* SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET */
        bool armed;     /* a recv is in flight, or queued to be */
        bool unsent;    /* that recv's submission failed: submitted again first */
        bool multishot; /* the kernel takes IORING_RECV_MULTISHOT */
        bool dry;       /* the recv ended for want of a buffer */
        bool ended;     /* the peer closed: every later call is 0 */
        uint64_t dropped;
        char *scratch; /* IOMEM_RX_DROP: where a message without a buffer goes */
        int efd;       /* iomem_rx_fd: readable while a completion waits */
};

/* Put a new pool buffer in every empty slot; a buffer that cannot be had
 * now leaves its slot empty, for the next call. */
static int refill(struct iomem_rx *rx)
{
        int err = 0;
        unsigned added = 0, mask = (unsigned)io_uring_buf_ring_mask(rx->nbufs);
        for (unsigned id = 0; id < rx->nbufs && rx->posted + added < rx->nbufs; id++) {
                if (rx->buf[id])
                        continue;
                if ((err = iomem_alloc(rx->f, rx->buf_size, &rx->buf[id])) < 0) {
                        rx->buf[id] = NULL;
                        break;
                }
                io_uring_buf_ring_add(rx->br, rx->buf[id], (unsigned)rx->buf_size, (unsigned short)id, mask,
                                      (int)added++);
        }
        io_uring_buf_ring_advance(rx->br, (int)added);
        rx->posted += added;
        return err;
}

static int send_unsent(struct iomem_rx *rx)
{
        if (!rx->unsent)
                return 0;
        int r = io_uring_submit(&rx->ring);
        if (r < 0)
                return iom_fail(rx->f->name, r, "cannot submit the receive: %s", strerror(-r));
        rx->unsent = false;
        return 0;
}

static int arm(struct iomem_rx *rx)
{
        struct io_uring_sqe *sqe = io_uring_get_sqe(&rx->ring);
        if (!sqe)
                return iom_fail(rx->f->name, -EBUSY, "the receiver's ring is full");
        if (rx->flags & IOMEM_RX_FILL) /* one recv per buffer: MSG_WAITALL is not multishot's */
                io_uring_prep_recv(sqe, rx->sock, NULL, rx->buf_size, MSG_WAITALL);
        else if (rx->multishot)
                io_uring_prep_recv_multishot(sqe, rx->sock, NULL, 0, 0);
        else
                io_uring_prep_recv(sqe, rx->sock, NULL, rx->buf_size, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = GROUP;
        io_uring_sqe_set_data64(sqe, RECV_TAG);
        /* A queued request cannot be taken back: if the submission fails,
         * it counts as in flight, is submitted again by the next call
         * (send_unsent), and is cancelled as such. */
        rx->armed = true;
        rx->unsent = true;
        return send_unsent(rx);
}

/* What a dropped message is read into: a longer one is cut, and is still
 * one message. */
static size_t scratch_size(size_t buf_size)
{
        return buf_size < 65536 ? buf_size : 65536;
}

/* IOMEM_RX_DROP, the ring having run dry: read away what waits in the
 * socket now, counting each message. */
static int drop_waiting(struct iomem_rx *rx)
{
        for (;;) {
                ssize_t n = recv(rx->sock, rx->scratch, scratch_size(rx->buf_size), MSG_DONTWAIT);
                if (n > 0) {
                        rx->dropped++;
                        continue;
                }
                if (n == 0 && rx->type == SOCK_DGRAM) {
                        rx->dropped++; /* an empty datagram */
                        continue;
                }
                if (n == 0)
                        rx->ended = true;
                if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK)
                        return 0;
                if (errno != EINTR)
                        return iom_fail(rx->f->name, -errno, "cannot read socket %d: %s", rx->sock,
                                        strerror(errno));
        }
}

static void free_posted(struct iomem_rx *rx)
{
        for (unsigned id = 0; id < rx->nbufs; id++)
                if (rx->buf[id])
                        iomem_free(rx->f, rx->buf[id], rx->buf_size);
}

/* Stop the recv and wait for its last completion, so that the kernel
 * writes into no buffer after this; messages it still delivered are let
 * go with their buffers. false when that could not be made sure of. */
static bool disarm(struct iomem_rx *rx)
{
        if (!rx->armed)
                return true;
        struct io_uring_sqe *sqe = io_uring_get_sqe(&rx->ring);
        if (!sqe)
                return false;
        io_uring_prep_cancel64(sqe, RECV_TAG, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, CANCEL_TAG);
        if (io_uring_submit(&rx->ring) < 0)
                return false;
        while (rx->armed) {
                struct io_uring_cqe *cqe;
                int r = io_uring_wait_cqe(&rx->ring, &cqe);
                if (r == -EINTR)
                        continue;
                if (r < 0)
                        return false;
                if (io_uring_cqe_get_data64(cqe) == RECV_TAG && !(cqe->flags & IORING_CQE_F_MORE))
                        rx->armed = false;
                io_uring_cqe_seen(&rx->ring, cqe);
        }
        return true;
}

static void destroy(struct iomem_rx *rx)
{
        __atomic_sub_fetch(&rx->f->receivers, 1, __ATOMIC_RELEASE);
        /* A recv that might still pick a buffer keeps them all: they stay
         * the handle's pool memory, given back when it closes. */
        bool stopped = disarm(rx);
        io_uring_queue_exit(&rx->ring);
        if (rx->efd >= 0)
                close(rx->efd);
        if (rx->br)
                munmap(rx->br, rx->br_len);
        if (stopped)
                free_posted(rx);
        free(rx->buf);
        free(rx->scratch);
        free(rx);
}

static int check_args(struct iomem *f, int sock, size_t buf_size, unsigned nbufs, unsigned flags,
                      int *type)
{
        struct stat st;
        if (flags & ~(IOMEM_RX_DROP | IOMEM_RX_FILL))
                return iom_fail(f->name, -EINVAL, "unknown flags %#x", flags & ~(IOMEM_RX_DROP | IOMEM_RX_FILL));
        if (!buf_size || buf_size % f->page_size || buf_size > MAX_BUF_SIZE)
                return iom_fail(f->name, -EINVAL, "buffer size %zu is not a multiple of the page size %zu "
                                "between it and 1 GiB", buf_size, f->page_size);
        if (!nbufs || nbufs > MAX_BUFS || (nbufs & (nbufs - 1)))
                return iom_fail(f->name, -EINVAL, "%u buffers: the ring takes a power of two up to %u",
                                nbufs, MAX_BUFS);
        if (!(f->caps & IOMEM_CAP_GIFT))
                return iom_fail(f->name, -ENOTSUP, "the %s backend has no gift pool to receive into "
                                "(IOMEM_CAP_GIFT)", f->backend->name);
        if (!(f->flags & IOMEM_RDWR))
                return iom_fail(f->name, -EROFS, "the object is open read-only");
        if (fstat(sock, &st) < 0)
                return iom_fail(f->name, -errno, "socket %d: %s", sock, strerror(errno));
        if (!S_ISSOCK(st.st_mode))
                return iom_fail(f->name, -ENOTSOCK, "descriptor %d is not a socket", sock);
        socklen_t tl = sizeof *type;
        if (getsockopt(sock, SOL_SOCKET, SO_TYPE, type, &tl) < 0)
                return iom_fail(f->name, -errno, "socket %d: %s", sock, strerror(errno));
        if ((flags & IOMEM_RX_DROP) && *type == SOCK_STREAM)
                return iom_fail(f->name, -EINVAL, "socket %d is a stream: dropping bytes of it would "
                                "break it (IOMEM_RX_DROP is for messages)", sock);
        return 0;
}

IOM_PUBLIC int iomem_rx_new(struct iomem_rx **out, struct iomem *f, int sock, size_t buf_size,
                            unsigned nbufs, unsigned flags)
{
        if (out)
                *out = NULL;
        if (!out || !f)
                return (int)FAIL(__func__, NULL, -EINVAL, "%s is NULL", out ? "the object" : "rx");
        int type = 0;
        int err = check_args(f, sock, buf_size, nbufs, flags, &type);
        if (err)
                return (int)iom_result(__func__, err);
        struct iomem_rx *rx = calloc(1, sizeof *rx);
        void **buf = calloc(nbufs, sizeof *buf);
        char *scratch = flags & IOMEM_RX_DROP ? malloc(scratch_size(buf_size)) : NULL;
        if (!rx || !buf || (flags & IOMEM_RX_DROP && !scratch)) {
                free(rx);
                free(buf);
                free(scratch);
                return (int)FAIL(__func__, f->name, -ENOMEM, "out of memory");
        }
        *rx = (struct iomem_rx){ .f = f, .sock = sock, .flags = flags, .type = type, .buf = buf,
                                 .buf_size = buf_size, .nbufs = nbufs, .multishot = true, .scratch = scratch,
                                 .efd = -1 };
        /* Room for a completion per buffer, so that a full completion
         * queue never ends the multishot recv early. */
        struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE, .cq_entries = 2 * nbufs < 8 ? 8 : 2 * nbufs };
        if ((err = io_uring_queue_init_params(4, &rx->ring, &p)) < 0) {
                free(rx->buf);
                free(rx->scratch);
                free(rx);
                return (int)FAIL(__func__, f->name, err, "cannot create an io_uring: %s%s", strerror(-err),
                                 err == -EPERM ? " (see the sysctl kernel.io_uring_disabled)" : "");
        }
        __atomic_add_fetch(&f->receivers, 1, __ATOMIC_RELEASE); /* destroy takes it back */
        rx->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (rx->efd < 0 || (err = io_uring_register_eventfd(&rx->ring, rx->efd)) < 0) {
                err = rx->efd < 0 ? -errno : err;
                destroy(rx);
                return (int)FAIL(__func__, f->name, err, "cannot make the receiver's descriptor: %s",
                                 strerror(-err));
        }
        rx->br_len = iom_round_up(nbufs * sizeof(struct io_uring_buf), iom_system_page_size());
        rx->br = mmap(NULL, rx->br_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (rx->br == MAP_FAILED) {
                rx->br = NULL;
                err = iom_fail(f->name, -errno, "cannot map the buffer ring: %s", strerror(errno));
        } else {
                io_uring_buf_ring_init(rx->br);
                struct io_uring_buf_reg reg = { .ring_addr = (uintptr_t)rx->br, .ring_entries = nbufs,
                                                .bgid = GROUP };
                if ((err = io_uring_register_buf_ring(&rx->ring, &reg, 0)) < 0)
                        err = iom_fail(f->name, err == -EINVAL ? -ENOTSUP : err,
                                       "cannot register a provided-buffer ring: %s%s", strerror(-err),
                                       err == -EINVAL ? " (the kernel has none before Linux 5.19)" : "");
        }
        if (!err)
                err = refill(rx);
        if (!err)
                err = arm(rx);
        if (err) {
                destroy(rx);
                return (int)iom_result(__func__, err);
        }
        *out = rx;
        return 0;
}

static double now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Wait for the receive's next completion until deadline_ms (CLOCK_MONOTONIC;
 * timeout_ms 0: not at all, negative: for ever): 0 with *cqe, or -EAGAIN,
 * -ETIMEDOUT, or another error. */
static int next_cqe(struct iomem_rx *rx, struct io_uring_cqe **cqe, int timeout_ms, double deadline_ms)
{
        int r;
        if (timeout_ms < 0) {
                r = io_uring_wait_cqe(&rx->ring, cqe);
        } else if (timeout_ms == 0) {
                r = io_uring_peek_cqe(&rx->ring, cqe);
        } else {
                double left = deadline_ms - now_ms();
                long long ns = left > 0 ? (long long)(left * 1e6) : 0;
                struct __kernel_timespec ts = { ns / 1000000000, ns % 1000000000 };
                r = io_uring_wait_cqe_timeout(&rx->ring, cqe, &ts);
        }
        if (r == -EAGAIN || r == -ETIME)
                return iom_fail(rx->f->name, timeout_ms ? -ETIMEDOUT : -EAGAIN,
                                "no message within %d ms", timeout_ms);
        if (r < 0)
                return iom_fail(rx->f->name, r, "waiting for a message: %s", strerror(-r));
        return 0;
}

static ssize_t next_message(struct iomem_rx *rx, void **buf, int timeout_ms);

/* iomem_rx_fd is level-triggered as a poller expects: the eventfd the
 * kernel signals per completion is emptied on the way in, and signalled
 * again on the way out while the next call has something to return. */
IOM_PUBLIC ssize_t iomem_rx_next(struct iomem_rx *rx, void **buf, int timeout_ms)
{
        if (!rx || !buf)
                return FAIL(__func__, NULL, -EINVAL, "%s is NULL", rx ? "buf" : "the receiver");
        uint64_t n;
        if (read(rx->efd, &n, sizeof n) < 0 && errno != EAGAIN)
                return FAIL(__func__, rx->f->name, -errno, "reading the receiver's descriptor: %s",
                            strerror(errno));
        ssize_t r = next_message(rx, buf, timeout_ms);
        /* Also when no recv is in flight to complete (the end, an error,
         * a submission to try again): the next call has that to say. */
        if (io_uring_cq_ready(&rx->ring) || rx->ended || rx->unsent || !rx->armed)
                eventfd_write(rx->efd, 1);
        return r;
}

IOM_PUBLIC int iomem_rx_fd(const struct iomem_rx *rx)
{
        if (!rx)
                return (int)FAIL(__func__, NULL, -EINVAL, "the receiver is NULL");
        return rx->efd;
}

static ssize_t next_message(struct iomem_rx *rx, void **buf, int timeout_ms)
{
        *buf = NULL;
        double deadline = timeout_ms > 0 ? now_ms() + timeout_ms : 0;
        for (;;) {
                if (rx->ended)
                        return 0;
                int err = 0;
                if (!rx->armed) {
                        int short_of = refill(rx);
                        if (!rx->posted)
                                return iom_result("iomem_rx_next", short_of ? short_of :
                                                  iom_fail(rx->f->name, -ENOMEM, "no buffer to receive into"));
                        /* Only what waited while no buffer was free. */
                        if (rx->dry && (rx->flags & IOMEM_RX_DROP))
                                err = drop_waiting(rx);
                        rx->dry = false;
                        if (!err && !rx->ended)
                                err = arm(rx);
                        if (err || rx->ended)
                                return err ? iom_result("iomem_rx_next", err) : 0;
                }
                struct io_uring_cqe *cqe;
                if ((err = send_unsent(rx)) || (err = next_cqe(rx, &cqe, timeout_ms, deadline)))
                        return iom_result("iomem_rx_next", err);
                int res = cqe->res;
                unsigned cflags = cqe->flags;
                bool ours = io_uring_cqe_get_data64(cqe) == RECV_TAG;
                io_uring_cqe_seen(&rx->ring, cqe);
                if (!ours)
                        continue;
                if (!(cflags & IORING_CQE_F_MORE))
                        rx->armed = false;
                if (cflags & IORING_CQE_F_BUFFER) {
                        unsigned id = cflags >> IORING_CQE_BUFFER_SHIFT;
                        void *b = rx->buf[id];
                        rx->buf[id] = NULL;
                        rx->posted--;
                        if (res > 0) {
                                refill(rx);
                                *buf = b;
                                return res;
                        }
                        iomem_free(rx->f, b, rx->buf_size); /* refilled on the next arm */
                }
                if (res == 0 && rx->type == SOCK_DGRAM)
                        continue; /* an empty datagram: nothing to hand out */
                if (res == 0) {
                        rx->ended = true;
                        return 0;
                }
                if (res == -ENOBUFS) {
                        rx->dry = true; /* rearmed, after dropping with IOMEM_RX_DROP */
                        continue;
                }
                if (res == -EINVAL && rx->multishot) {
                        rx->multishot = false; /* before Linux 6.0: one recv per message */
                        continue;
                }
                if (res < 0)
                        return FAIL("iomem_rx_next", rx->f->name, res, "cannot receive from socket %d: %s",
                                    rx->sock, strerror(-res));
        }
}

/*
 * The object adopts what iomem_gift can take without a copy; else (with
 * IOMEM_GIFT_NOCOPY, the caller's refusal) the bytes are copied. Either
 * way what of the buffer the object did not adopt is freed here, so that
 * the caller has nothing left to free: the pages after an adopted message,
 * or the whole buffer of a copied one.
 */
IOM_PUBLIC int iomem_rx_gift(struct iomem_rx *rx, void *buf, size_t len, size_t off, unsigned flags)
{
        if (!rx || !buf)
                return (int)FAIL(__func__, NULL, -EINVAL, "%s is NULL", rx ? "buf" : "the receiver");
        struct iomem *f = rx->f;
        if (!len || len > rx->buf_size)
                return (int)FAIL(__func__, f->name, -EINVAL, "length %zu is not that of a message in a "
                                 "buffer of %zu bytes", len, rx->buf_size);
        if (flags & ~IOMEM_GIFT_NOCOPY)
                return (int)FAIL(__func__, f->name, -EINVAL, "unknown flags %#x", flags & ~IOMEM_GIFT_NOCOPY);
        struct iovec v = { buf, len };
        ssize_t r = iomem_gift(f, off, len, &v, 1, IOMEM_GIFT_NOCOPY);
        if (r >= 0) {
                size_t kept = iom_round_up(len, f->page_size);
                if (kept < rx->buf_size)
                        iomem_free(f, (char *)buf + kept, rx->buf_size - kept);
                return 0;
        }
        if (r != -EXDEV || (flags & IOMEM_GIFT_NOCOPY))
                return (int)iom_result(__func__, r);
        if ((r = iomem_gift(f, off, len, &v, 1, 0)) < 0)
                return (int)iom_result(__func__, r);
        /* Copied, unless the object changed under it (another handle cut
         * it short) so that this gift could adopt after all: then only
         * the pages after the message are still the buffer's. */
        size_t kept = iom_round_up(len, f->page_size);
        if (iomem_free(f, buf, rx->buf_size) < 0 && kept < rx->buf_size)
                iomem_free(f, (char *)buf + kept, rx->buf_size - kept);
        return 0;
}

IOM_PUBLIC ssize_t iomem_rx_dropped(const struct iomem_rx *rx)
{
        if (!rx)
                return FAIL(__func__, NULL, -EINVAL, "the receiver is NULL");
        return (ssize_t)rx->dropped;
}

IOM_PUBLIC int iomem_rx_delete(struct iomem_rx **rx)
{
        if (!rx)
                return (int)FAIL(__func__, NULL, -EINVAL, "rx is NULL");
        if (*rx)
                destroy(*rx);
        *rx = NULL;
        return 0;
}
