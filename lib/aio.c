/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous transfers between an object's memory and descriptors, on
 * io_uring (liburing).
 *
 * A request pins the object's pages it covers with the object's own
 * acquire, so truncate and gift over them are -EBUSY, from the queuing
 * call until iomem_aio_wait hands its completion back; only then are they
 * released. One request is one SQE: a contiguous piece of memory goes as
 * read_fixed/write_fixed/send_zc on a registered buffer, memory in several
 * pieces as readv/writev/sendmsg (registered buffers describe one range).
 *
 * A queue is used by one thread at a time, like a struct io_uring.
 */
#define _GNU_SOURCE
#include "enter.h"
#include "internal.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* liburing 2.3's copy of the uapi header predates the usage report
 * (Linux 6.2); the values are ABI. */
#ifndef IORING_SEND_ZC_REPORT_USAGE
#define IORING_SEND_ZC_REPORT_USAGE (1U << 3)
#endif
#ifndef IORING_NOTIF_USAGE_ZC_COPIED
#define IORING_NOTIF_USAGE_ZC_COPIED (1U << 31)
#endif

#define FAIL(op, obj, err, ...) iom_result(op, iom_fail(obj, err, __VA_ARGS__))

/* The largest depth: the completion ring holds two entries per request
 * (a zero-copy send's result and its notification). */
#define MAX_DEPTH 4096u
/* The kernel transfers at most this much in one read or write. */
#define MAX_LEN ((size_t)INT_MAX & ~(size_t)4095)
#define NONE UINT_MAX

struct iom_aio_knobs iom_aio_knobs;

enum kind { K_READ, K_WRITE, K_SEND };

struct aio_req {
        struct iomem *f;       /* NULL when the slot is free */
        uint64_t pin_off, pin_len; /* the pages acquired */
        uint64_t tag;
        size_t len;
        ssize_t res;
        unsigned flags;        /* IOMEM_AIO_* for the caller */
        bool wait_notif;       /* a zero-copy send's notification is still to come */
        int buf;               /* fixed-buffer slot, or -1 */
        struct iovec *iov;     /* the object's memory, in pieces */
        struct iovec one;      /* iov when there is one piece */
        int iovcnt;
        struct msghdr msg;     /* for sendmsg: must live until completion */
        unsigned next;         /* free list or ready list */
};

/* A registered buffer, shared by the requests whose memory it covers. */
struct reg_slot {
        char *base;
        size_t len;
        unsigned users;
};

struct iomem_aio {
        struct io_uring ring;
        unsigned depth;
        int efd;
        bool fixed;          /* the sparse buffer table exists */
        bool send_zc, sendmsg_zc;
        unsigned used;       /* slots taken: queued, in flight or ready */
        /* The last SQE queued since the last submission, when it went to
         * a socket or pipe (chain_fd), so that the next one to the same
         * descriptor is linked behind it: io_uring does not otherwise keep
         * the order of requests on one stream. */
        struct io_uring_sqe *chain_sqe;
        int chain_fd;
        unsigned free_head;
        unsigned ready_head, ready_tail, nready;
        struct aio_req *req;
        struct reg_slot *reg;
};

static const char *queue_name(const struct iomem_aio *q)
{
        static __thread char buf[48];
        snprintf(buf, sizeof buf, "aio queue (depth %u)", q->depth);
        return buf;
}

/* ---- registered buffers --------------------------------------------------- */

/* A slot covering [base, base+len), registering it if none does; -1 when
 * the memory cannot be registered. */
static int reg_get(struct iomem_aio *q, char *base, size_t len)
{
        if (!q->fixed || iom_aio_knobs.no_fixed)
                return -1;
        int free_slot = -1;
        for (unsigned i = 0; i < q->depth; i++) {
                struct reg_slot *r = &q->reg[i];
                if (r->users && base >= r->base && base + len <= r->base + r->len) {
                        r->users++;
                        return (int)i;
                }
                if (!r->users && free_slot < 0)
                        free_slot = (int)i;
        }
        /* Every request holds at most one slot and there are depth of
         * them, so one is free. Registration can still fail: memory the
         * kernel will not pin for long (a dax: file on a disk filesystem
         * needs dirty tracking), RLIMIT_MEMLOCK without CAP_IPC_LOCK, or
         * an older kernel. The request then uses plain read/write/send,
         * which pin the pages for the duration of each call instead. */
        if (free_slot < 0)
                return -1;
        struct iovec iov = { base, len };
        if (io_uring_register_buffers_update_tag(&q->ring, (unsigned)free_slot, &iov, NULL, 1) != 1) {
                iom_debug("aio: cannot register %zu bytes at %p as a fixed buffer", len, (void *)base);
                return -1;
        }
        q->reg[free_slot] = (struct reg_slot){ base, len, 1 };
        return free_slot;
}

static void reg_put(struct iomem_aio *q, int slot)
{
        if (slot < 0 || --q->reg[slot].users)
                return;
        /* An empty entry unregisters: the kernel drops its page references. */
        struct iovec none = { NULL, 0 };
        io_uring_register_buffers_update_tag(&q->ring, (unsigned)slot, &none, NULL, 1);
        q->reg[slot] = (struct reg_slot){ 0 };
}

/* ---- request slots ----------------------------------------------------------- */

/* Give back everything a request holds: its pin, its buffer slot, its
 * iovecs, its count on the object. */
static void req_finish(struct iomem_aio *q, struct aio_req *r)
{
        struct iomem *f = r->f;
        if (f->ops.release(f, r->pin_off, r->pin_len) < 0)
                iom_debug("aio: %s: cannot release [%llu, +%llu): %s", f->name,
                          (unsigned long long)r->pin_off, (unsigned long long)r->pin_len,
                          iomem_errormsg());
        reg_put(q, r->buf);
        if (r->iov != &r->one)
                free(r->iov);
        __atomic_sub_fetch(&f->aio_inflight, 1, __ATOMIC_RELEASE);
        unsigned idx = (unsigned)(r - q->req);
        *r = (struct aio_req){ .next = q->free_head, .buf = -1 };
        q->free_head = idx;
        q->used--;
}

static void ready_push(struct iomem_aio *q, unsigned idx)
{
        q->req[idx].next = NONE;
        if (q->ready_tail == NONE)
                q->ready_head = idx;
        else
                q->req[q->ready_tail].next = idx;
        q->ready_tail = idx;
        q->nready++;
}

static struct aio_req *ready_pop(struct iomem_aio *q)
{
        if (q->ready_head == NONE)
                return NULL;
        struct aio_req *r = &q->req[q->ready_head];
        q->ready_head = r->next;
        if (q->ready_head == NONE)
                q->ready_tail = NONE;
        q->nready--;
        return r;
}

/* Move the ring's completions to the requests. A zero-copy send posts its
 * result with IORING_CQE_F_MORE, then a notification once the kernel is
 * done with the memory; the request is complete only then. */
static void reap(struct iomem_aio *q)
{
        struct io_uring_cqe *cqe;
        unsigned head, n = 0;
        io_uring_for_each_cqe(&q->ring, head, cqe)
        {
                n++;
                uint64_t idx = io_uring_cqe_get_data64(cqe);
                if (idx >= q->depth || !q->req[idx].f)
                        continue;
                struct aio_req *r = &q->req[idx];
                if (cqe->flags & IORING_CQE_F_NOTIF) {
                        if ((uint32_t)cqe->res & IORING_NOTIF_USAGE_ZC_COPIED)
                                r->flags |= IOMEM_AIO_COPIED;
                        r->wait_notif = false;
                } else {
                        r->res = cqe->res;
                        r->wait_notif = (cqe->flags & IORING_CQE_F_MORE) != 0;
                }
                if (!r->wait_notif)
                        ready_push(q, (unsigned)idx);
        }
        io_uring_cq_advance(&q->ring, n);
}

/* ---- creating and deleting --------------------------------------------------- */

IOM_PUBLIC int iomem_aio_new(struct iomem_aio **out, unsigned depth)
{
        if (!out)
                return (int)FAIL(__func__, NULL, -EINVAL, "q is NULL");
        if (depth == 0 || depth > MAX_DEPTH)
                return (int)FAIL(__func__, NULL, -EINVAL, "depth %u is not in 1..%u", depth, MAX_DEPTH);
        struct iomem_aio *q = calloc(1, sizeof *q);
        if (q) {
                q->req = calloc(depth, sizeof *q->req);
                q->reg = calloc(depth, sizeof *q->reg);
        }
        if (!q || !q->req || !q->reg) {
                if (q) {
                        free(q->req);
                        free(q->reg);
                }
                free(q);
                return (int)FAIL(__func__, NULL, -ENOMEM, "out of memory for %u requests", depth);
        }
        q->depth = depth;
        struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE, .cq_entries = 2 * depth };
        int err = io_uring_queue_init_params(depth, &q->ring, &p);
        if (err < 0) {
                free(q->req);
                free(q->reg);
                free(q);
                return (int)FAIL(__func__, NULL, err,
                                 "cannot create an io_uring of %u entries: %s%s", depth,
                                 strerror(-err),
                                 err == -EPERM ? " (see the sysctl kernel.io_uring_disabled)" : "");
        }
        q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (q->efd < 0 || (err = io_uring_register_eventfd(&q->ring, q->efd)) < 0) {
                err = q->efd < 0 ? -errno : err;
                if (q->efd >= 0)
                        close(q->efd);
                io_uring_queue_exit(&q->ring);
                free(q->req);
                free(q->reg);
                free(q);
                return (int)FAIL(__func__, NULL, err, "cannot set up its eventfd: %s", strerror(-err));
        }
        struct io_uring_probe *probe = io_uring_get_probe_ring(&q->ring);
        if (probe) {
                q->send_zc = io_uring_opcode_supported(probe, IORING_OP_SEND_ZC);
                q->sendmsg_zc = io_uring_opcode_supported(probe, IORING_OP_SENDMSG_ZC);
                io_uring_free_probe(probe);
        }
        /* A sparse table (Linux 5.19) lets buffers come and go with the
         * requests; without it every request uses plain read/write. */
        q->fixed = io_uring_register_buffers_sparse(&q->ring, depth) == 0;
        for (unsigned i = 0; i < depth; i++)
                q->req[i] = (struct aio_req){ .next = i + 1 < depth ? i + 1 : NONE, .buf = -1 };
        q->free_head = 0;
        q->ready_head = q->ready_tail = NONE;
        *out = q;
        return 0;
}

IOM_PUBLIC int iomem_aio_delete(struct iomem_aio **qp)
{
        if (!qp)
                return (int)FAIL(__func__, NULL, -EINVAL, "q is NULL");
        struct iomem_aio *q = *qp;
        if (!q)
                return 0;
        /* Requests still queued go out too: their pins can only be
         * dropped once the kernel has finished with their memory. */
        if (io_uring_sq_ready(&q->ring))
                io_uring_submit(&q->ring);
        q->chain_sqe = NULL;
        while (q->used) {
                reap(q);
                for (struct aio_req *r; (r = ready_pop(q));)
                        req_finish(q, r);
                if (!q->used)
                        break;
                struct io_uring_cqe *cqe;
                int err = io_uring_wait_cqe(&q->ring, &cqe);
                if (err < 0 && err != -EINTR && err != -ETIME)
                        return (int)FAIL(__func__, queue_name(q), err,
                                         "cannot wait for %u transfers in flight: %s", q->used,
                                         strerror(-err));
        }
        if (q->fixed)
                io_uring_unregister_buffers(&q->ring);
        io_uring_unregister_eventfd(&q->ring);
        io_uring_queue_exit(&q->ring);
        close(q->efd);
        free(q->req);
        free(q->reg);
        free(q);
        *qp = NULL;
        return 0;
}

/* ---- queuing ------------------------------------------------------------------- */

/* The alignment O_DIRECT needs on fd: of file offsets and lengths (*off)
 * and of memory addresses (*mem). */
static void dio_alignment(int fd, unsigned *off, unsigned *mem)
{
#ifdef STATX_DIOALIGN
        struct statx sx;
        if (statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
            (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align) {
                *off = sx.stx_dio_offset_align;
                *mem = sx.stx_dio_mem_align ? sx.stx_dio_mem_align : sx.stx_dio_offset_align;
                return;
        }
#endif
        struct stat st;
        int ss = 0;
        if (fstat(fd, &st) == 0 && S_ISBLK(st.st_mode) && ioctl(fd, BLKSSZGET, &ss) == 0 && ss > 0)
                *off = *mem = (unsigned)ss;
        else
                *off = *mem = fstat(fd, &st) == 0 && st.st_blksize > 0 ? (unsigned)st.st_blksize : 512;
}

/* The descriptor suits the transfer: open, the right way round. */
static int check_fd(const struct iomem *f, enum kind k, int fd, int *fl)
{
        if (fd < 0 || (*fl = fcntl(fd, F_GETFL)) < 0)
                return iom_fail(f->name, -EBADF, "fd %d is not an open descriptor", fd);
        int acc = *fl & O_ACCMODE;
        if (k == K_READ && acc == O_WRONLY)
                return iom_fail(f->name, -EBADF, "fd %d is not open for reading", fd);
        if (k == K_WRITE && acc == O_RDONLY)
                return iom_fail(f->name, -EBADF, "fd %d is not open for writing", fd);
        struct stat st;
        if (k == K_SEND && (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode)))
                return iom_fail(f->name, -ENOTSOCK, "fd %d is not a socket", fd);
        return 0;
}

/* O_DIRECT moves bytes straight between the device and the object's
 * memory, so every piece must meet the device's alignment; a bounce
 * buffer would hide the cost the caller chose O_DIRECT to avoid. */
static int check_direct(const struct iomem *f, int fd, uint64_t fd_off, size_t len,
                        const struct iovec *iov, int iovcnt)
{
        unsigned oa, ma;
        dio_alignment(fd, &oa, &ma);
        if (fd_off % oa || len % oa)
                return iom_fail(f->name, -EINVAL,
                                "fd %d is open with O_DIRECT: its offset %llu and the length %zu "
                                "must be multiples of %u bytes (its logical block size); "
                                "nothing is copied through a bounce buffer",
                                fd, (unsigned long long)fd_off, len, oa);
        for (int i = 0; iov && i < iovcnt; i++)
                if ((uintptr_t)iov[i].iov_base % ma || iov[i].iov_len % oa)
                        return iom_fail(f->name, -EINVAL,
                                        "fd %d is open with O_DIRECT: the object's memory (a piece "
                                        "of %zu bytes at %p) must start on a multiple of %u bytes "
                                        "and hold a multiple of %u; nothing is copied through a "
                                        "bounce buffer",
                                        fd, iov[i].iov_len, iov[i].iov_base, ma, oa);
        return 0;
}

/* The object's memory for [off, off+len) of a pinned range, by borrow,
 * which stops at the object's size (cheaper to learn so than by stat,
 * which also looks up NUMA placement). A hole of a read-only handle goes
 * out as the shared zero pages. A writable one's memory was given by
 * acquire, but may still be a hole to borrow (a dax: file's blocks stay
 * holes to the filesystem until written): a read, which fills it, takes
 * what retrieve gives instead. */
static int describe(struct aio_req *r, enum kind k, size_t off, size_t len)
{
        struct iomem *f = r->f;
        ssize_t n = f->ops.bufcount(f, off, len);
        if (n <= 0)
                return n < 0 ? (int)n : iom_fail(f->name, -EIO, "no memory describes [%zu, +%zu)", off, len);
        struct iovec *src = n == 1 ? &r->one : calloc((size_t)n, sizeof *src);
        if (!src)
                return iom_fail(f->name, -ENOMEM, "out of memory");
        ssize_t got = f->ops.borrow(f, off, len, src, (size_t)n);
        size_t zlen = 0, out = 0, bytes = 0;
        const void *zeros = NULL;
        bool holes = false;
        for (ssize_t i = 0; i < got; i++)
                bytes += src[i].iov_len;
        if (got >= 0 && bytes < len)
                got = iom_fail(f->name, -EINVAL,
                               "bytes [%zu, %zu) go past its end (%zu); an asynchronous transfer "
                               "uses the memory the object has",
                               off, off + len, off + bytes);
        bool any_hole = false;
        for (ssize_t i = 0; i < got; i++)
                any_hole |= !src[i].iov_base;
        if (got > 0 && any_hole && k == K_READ) {
                struct iovec *mem = src;
                got = iom_retrieve_all(f, off, len, (size_t)got + 1, &mem);
                if (src != &r->one && mem != src)
                        free(src);
                src = mem;
        }
        for (ssize_t i = 0; i < got; i++) {
                if (src[i].iov_base) {
                        out++;
                } else if (k == K_READ) {
                        got = iom_fail(f->name, -EIO, "a hole at %zu was not filled", off);
                } else if (zeros || (zeros = iom_zero_pages(&zlen))) {
                        holes = true;
                        out += (src[i].iov_len + zlen - 1) / zlen;
                } else {
                        got = iom_fail(f->name, -ENOMEM, "cannot map zero pages for a hole");
                }
        }
        struct iovec *v = src;
        if (got > 0 && holes && !(v = calloc(out, sizeof *v)))
                got = iom_fail(f->name, -ENOMEM, "out of memory");
        if (got > 0 && v != src) {
                size_t j = 0;
                for (ssize_t i = 0; i < got; i++) {
                        if (src[i].iov_base)
                                v[j++] = src[i];
                        for (size_t d = 0; !src[i].iov_base && d < src[i].iov_len; d += zlen)
                                v[j++] = (struct iovec){ (void *)zeros, iom_min(zlen, src[i].iov_len - d) };
                }
        }
        if (src != &r->one && (src != v || got <= 0))
                free(src);
        if (got <= 0)
                return got < 0 ? (int)got : iom_fail(f->name, -EIO, "no memory describes [%zu, +%zu)", off, len);
        r->iov = v;
        r->iovcnt = (int)out;
        return 0;
}

/* Only TCP and UDP over IP can send zero-copy; SEND_ZC on any other
 * socket (AF_UNIX, say) fails with -EOPNOTSUPP in the completion. */
static bool zc_socket(int fd)
{
        int dom = 0;
        socklen_t l = sizeof dom;
        return getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l) == 0 &&
               (dom == AF_INET || dom == AF_INET6);
}

/* Prepare the SQE of request r (its memory described). */
static void prep(struct iomem_aio *q, struct aio_req *r, struct io_uring_sqe *sqe, enum kind k,
                 int fd, uint64_t fd_off)
{
        /* A send must not raise SIGPIPE, and goes out whole unless it
         * fails (io_uring retries a partial send on a stream socket). */
        const int msg_flags = MSG_NOSIGNAL | MSG_WAITALL;
        void *base = r->iov[0].iov_base;
        unsigned len = (unsigned)r->len, cnt = (unsigned)r->iovcnt;
        bool zc = k == K_SEND && !iom_aio_knobs.no_send_zc &&
                  (cnt == 1 ? q->send_zc : q->sendmsg_zc) && zc_socket(fd);
        if (k == K_READ && cnt == 1 && r->buf >= 0)
                io_uring_prep_read_fixed(sqe, fd, base, len, fd_off, r->buf);
        else if (k == K_READ && cnt == 1)
                io_uring_prep_read(sqe, fd, base, len, fd_off);
        else if (k == K_READ)
                io_uring_prep_readv(sqe, fd, r->iov, cnt, fd_off);
        else if (k == K_WRITE && cnt == 1 && r->buf >= 0)
                io_uring_prep_write_fixed(sqe, fd, base, len, fd_off, r->buf);
        else if (k == K_WRITE && cnt == 1)
                io_uring_prep_write(sqe, fd, base, len, fd_off);
        else if (k == K_WRITE)
                io_uring_prep_writev(sqe, fd, r->iov, cnt, fd_off);
        else if (cnt == 1 && zc && r->buf >= 0)
                io_uring_prep_send_zc_fixed(sqe, fd, base, len, msg_flags,
                                            IORING_SEND_ZC_REPORT_USAGE, (unsigned)r->buf);
        else if (cnt == 1 && zc)
                io_uring_prep_send_zc(sqe, fd, base, len, msg_flags, IORING_SEND_ZC_REPORT_USAGE);
        else if (cnt == 1)
                io_uring_prep_send(sqe, fd, base, len, msg_flags);
        else {
                r->msg = (struct msghdr){ .msg_iov = r->iov, .msg_iovlen = cnt };
                if (zc) {
                        io_uring_prep_sendmsg_zc(sqe, fd, &r->msg, (unsigned)msg_flags);
                        sqe->ioprio |= IORING_SEND_ZC_REPORT_USAGE;
                } else {
                        io_uring_prep_sendmsg(sqe, fd, &r->msg, (unsigned)msg_flags);
                }
        }
        /* Without zero-copy the kernel copies, and the flag says so. */
        if (k == K_SEND && !zc)
                r->flags |= IOMEM_AIO_COPIED;
        io_uring_sqe_set_data64(sqe, (uint64_t)(r - q->req));
}

static int enqueue(const char *op, struct iomem_aio *q, enum kind k, int fd, uint64_t fd_off,
                   struct iomem *f, size_t off, size_t len, uint64_t tag)
{
        if (!q || !f)
                return (int)FAIL(op, NULL, -EINVAL, "%s is NULL", q ? "the object" : "the queue");
        if (off + len < off)
                return (int)FAIL(op, f->name, -EOVERFLOW, "offset %zu + length %zu overflows", off, len);
        if (len == 0 || len > MAX_LEN)
                return (int)FAIL(op, f->name, -EINVAL, "length %zu is not in 1..%zu", len, MAX_LEN);
        int fl = 0, err = check_fd(f, k, fd, &fl);
        if (err || (err = iom_enter(f)))
                return (int)iom_result(op, err);
        if (k == K_READ && !(f->flags & IOMEM_RDWR))
                return (int)FAIL(op, f->name, -EROFS, "the object is open read-only; a read would write it");
        if (k != K_SEND && (err = iom_refuse_own_backing(f, fd)))
                return (int)iom_result(op, err);
        bool direct = k != K_SEND && (fl & O_DIRECT);
        if (direct && (err = check_direct(f, fd, fd_off, len, NULL, 0)))
                return (int)iom_result(op, err);
        if (q->used == q->depth)
                return (int)FAIL(op, queue_name(q), -EAGAIN,
                                 "the queue is full: %u requests are in flight or not yet collected "
                                 "by iomem_aio_wait", q->used);
        /* A descriptor that cannot seek takes no offset: -1 tells
         * io_uring to use none. */
        if (k != K_SEND && lseek(fd, 0, SEEK_CUR) < 0 && errno == ESPIPE)
                fd_off = (uint64_t)-1;

        unsigned next_free = q->req[q->free_head].next;
        struct aio_req *r = &q->req[q->free_head];
        uint64_t ps = f->page_size, pin_off = iom_round_down(off, ps);
        uint64_t pin_len = iom_round_up(off + len, ps) - pin_off;
        ssize_t got = f->ops.acquire(f, pin_off, pin_len);
        if (got < 0)
                return (int)iom_result(op, got);
        if ((uint64_t)got < pin_len) {
                if (got > 0)
                        f->ops.release(f, pin_off, (size_t)got);
                return (int)FAIL(op, f->name, -EINVAL,
                                 "bytes [%zu, %zu) go past its end; an asynchronous transfer uses "
                                 "the memory the object has",
                                 off, off + len);
        }
        *r = (struct aio_req){ .f = f, .pin_off = pin_off, .pin_len = pin_len, .tag = tag,
                               .len = len, .buf = -1, .next = NONE };
        if ((err = describe(r, k, off, len)))
                goto unpin;
        if (direct && (err = check_direct(f, fd, fd_off, len, r->iov, r->iovcnt))) {
                if (r->iov != &r->one)
                        free(r->iov);
                goto unpin;
        }
        struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
        if (!sqe) {
                /* Cannot happen while the ring has depth entries and at
                 * most depth requests exist; said rather than assumed. */
                err = iom_fail(queue_name(q), -EAGAIN, "the submission ring is full");
                if (r->iov != &r->one)
                        free(r->iov);
                goto unpin;
        }
        if (r->iovcnt == 1)
                r->buf = reg_get(q, r->iov[0].iov_base, len);
        prep(q, r, sqe, k, fd, fd_off);
        bool stream = k == K_SEND || fd_off == (uint64_t)-1;
        if (stream && q->chain_sqe && q->chain_fd == fd)
                q->chain_sqe->flags |= IOSQE_IO_LINK;
        q->chain_sqe = stream ? sqe : NULL;
        q->chain_fd = fd;
        q->free_head = next_free;
        q->used++;
        __atomic_add_fetch(&f->aio_inflight, 1, __ATOMIC_RELEASE);
        return 0;

unpin:
        f->ops.release(f, pin_off, pin_len);
        *r = (struct aio_req){ .next = next_free, .buf = -1 };
        return (int)iom_result(op, err);
}

IOM_PUBLIC int iomem_aio_read(struct iomem_aio *q, int fd, uint64_t fd_off, struct iomem *f,
                              size_t off, size_t len, uint64_t tag)
{
        return enqueue(__func__, q, K_READ, fd, fd_off, f, off, len, tag);
}

IOM_PUBLIC int iomem_aio_write(struct iomem_aio *q, int fd, uint64_t fd_off, struct iomem *f,
                               size_t off, size_t len, uint64_t tag)
{
        return enqueue(__func__, q, K_WRITE, fd, fd_off, f, off, len, tag);
}

IOM_PUBLIC int iomem_aio_send(struct iomem_aio *q, int sock, struct iomem *f, size_t off,
                              size_t len, uint64_t tag)
{
        return enqueue(__func__, q, K_SEND, sock, 0, f, off, len, tag);
}

/* ---- submitting and collecting -------------------------------------------- */

IOM_PUBLIC int iomem_aio_submit(struct iomem_aio *q)
{
        if (!q)
                return (int)FAIL(__func__, NULL, -EINVAL, "the queue is NULL");
        if (!io_uring_sq_ready(&q->ring))
                return 0;
        int n = io_uring_submit(&q->ring);
        q->chain_sqe = NULL;
        if (n < 0)
                return (int)FAIL(__func__, queue_name(q), n, "io_uring_enter: %s", strerror(-n));
        return n;
}

static double now(void)
{
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

IOM_PUBLIC int iomem_aio_wait(struct iomem_aio *q, struct iomem_aio_cqe *cqe, unsigned n,
                              unsigned min, int timeout_ms)
{
        if (!q)
                return (int)FAIL(__func__, NULL, -EINVAL, "the queue is NULL");
        if (!cqe && n)
                return (int)FAIL(__func__, queue_name(q), -EINVAL, "cqe is NULL but n is %u", n);
        if (min > n)
                return (int)FAIL(__func__, queue_name(q), -EINVAL, "min %u is more than n %u", min, n);
        /* Reset the eventfd before looking, so a completion after the
         * look makes it readable again. */
        uint64_t ev;
        if (read(q->efd, &ev, sizeof ev) < 0 && errno != EAGAIN)
                iom_debug("aio: eventfd read: %s", strerror(errno));
        double deadline = timeout_ms >= 0 ? now() + timeout_ms / 1e3 : 0;
        reap(q);
        while (q->nready < min) {
                /* Nothing outstanding: waiting would never end. */
                if (q->used == q->nready)
                        break;
                struct __kernel_timespec ts, *tsp = NULL;
                if (timeout_ms >= 0) {
                        double left = deadline - now();
                        if (left <= 0)
                                break;
                        ts.tv_sec = (long long)left;
                        ts.tv_nsec = (long long)((left - (double)ts.tv_sec) * 1e9);
                        tsp = &ts;
                }
                /* Submits what is queued, too. */
                struct io_uring_cqe *c;
                int err = io_uring_submit_and_wait_timeout(&q->ring, &c, 1, tsp, NULL);
                q->chain_sqe = NULL;
                if (err < 0 && err != -ETIME && err != -EINTR)
                        return (int)FAIL(__func__, queue_name(q), err, "io_uring_enter: %s",
                                         strerror(-err));
                reap(q);
        }
        unsigned got = 0;
        for (struct aio_req *r; got < n && (r = ready_pop(q)); got++) {
                cqe[got] = (struct iomem_aio_cqe){ .tag = r->tag, .res = r->res, .flags = r->flags };
                req_finish(q, r);
        }
        /* Completions left for the next call keep the descriptor readable. */
        if (q->nready) {
                ev = 1;
                if (write(q->efd, &ev, sizeof ev) < 0)
                        iom_debug("aio: eventfd write: %s", strerror(errno));
        }
        return (int)got;
}

IOM_PUBLIC int iomem_aio_fd(struct iomem_aio *q)
{
        if (!q)
                return (int)FAIL(__func__, NULL, -EINVAL, "the queue is NULL");
        return q->efd;
}
