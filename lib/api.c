/* SPDX-License-Identifier: MIT */
/*
 * The public entry points: argument checks common to every backend, then
 * the object's operations. Every error leaves "<function>: <object>:
 * <cause>" in iomem_errormsg().
 */
#include "enter.h"
#include "internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FAIL(op, obj, err, ...) iom_result(op, iom_fail(obj, err, __VA_ARGS__))

/* The checks every range operation starts with. Returns 1 to go on, 0 for
 * a zero length (a no-op), or a negative error. */
static int check_range(const char *op, const struct iomem *f, size_t off, size_t len)
{
        if (!f)
                return (int)FAIL(op, NULL, -EINVAL, "the object is NULL");
        if (off + len < off)
                return (int)FAIL(op, f->name, -EOVERFLOW, "offset %zu + length %zu overflows", off, len);
        return len != 0;
}

static int check_pages(const char *op, const struct iomem *f, size_t off, size_t len)
{
        size_t ps = f->page_size;
        if ((off | len) & (ps - 1))
                return (int)FAIL(op, f->name, -EINVAL,
                                 "offset %zu and length %zu must be multiples of the page size %zu",
                                 off, len, ps);
        return 1;
}

static int check_writable(const char *op, const struct iomem *f)
{
        if (!(f->flags & IOMEM_RDWR))
                return (int)FAIL(op, f->name, -EROFS, "the object is open read-only");
        return 1;
}

#define BEGIN_RANGE(f, off, len)                                       \
        do {                                                           \
                int c_ = check_range(__func__, f, off, len);           \
                if (c_ <= 0)                                           \
                        return c_;                                     \
        } while (0)

/* Run the object's before-call work, then its operation op(args). */
#define CALL(f, call) (iom_enter(f) ?: (f)->ops.call)

#define CHECK(expr)                     \
        do {                            \
                int c_ = (expr);        \
                if (c_ <= 0)            \
                        return c_;      \
        } while (0)

/* ---- opening ------------------------------------------------------------ */

static int check_flags(const char *op, unsigned flags)
{
        if (flags & ~(IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL | IOMEM_NOFOLLOW))
                return (int)FAIL(op, NULL, -EINVAL, "unknown flags %#x", flags);
        if ((flags & IOMEM_EXCL) && !(flags & IOMEM_CREATE))
                return (int)FAIL(op, NULL, -EINVAL, "IOMEM_EXCL needs IOMEM_CREATE");
        return 1;
}

IOM_PUBLIC int iomem_open(struct iomem **out, const char *uri, unsigned flags,
                          const struct iomem_opts *opts)
{
        if (!out || !uri)
                return (int)FAIL(__func__, NULL, -EINVAL, "%s is NULL", out ? "uri" : "out");
        CHECK(check_flags(__func__, flags));
        const struct iom_backend *b;
        const char *rest;
        int err = iom_backend_for_uri(uri, &b, &rest);
        if (err)
                return (int)iom_result(__func__, err);
        struct iomem *f;
        if ((err = iom_object_new(&f, b, rest, flags, opts)))
                return (int)iom_result(__func__, err);
        if ((err = b->open(f, rest, flags, iom_opts_or_default(opts)))) {
                iom_object_free(f);
                return (int)iom_result(__func__, err);
        }
        *out = f;
        return 0;
}

IOM_PUBLIC int iomem_open_fd(struct iomem **out, const char *backend, int fd, unsigned flags,
                             const struct iomem_opts *opts)
{
        if (!out || !backend)
                return (int)FAIL(__func__, NULL, -EINVAL, "%s is NULL", out ? "backend" : "out");
        if (flags & ~IOMEM_RDWR)
                return (int)FAIL(__func__, NULL, -EINVAL,
                                 "flags %#x: only IOMEM_RDWR applies to a descriptor", flags);
        if (fd < 0 || fcntl(fd, F_GETFD) < 0)
                return (int)FAIL(__func__, NULL, -EBADF, "%d is not an open file descriptor", fd);
        const struct iom_backend *b;
        int err = iom_backend_lookup(backend, strlen(backend), backend, &b);
        if (err)
                return (int)iom_result(__func__, err);
        char name[32];
        snprintf(name, sizeof name, "fd %d", fd);
        struct iomem *f;
        err = iom_object_new(&f, b, name, flags, opts);
        if (!err && (err = b->open_fds(f, &fd, 1, flags, iom_opts_or_default(opts))))
                iom_object_free(f);
        if (err)
                return (int)iom_result(__func__, err);
        *out = f;
        return 0;
}

IOM_PUBLIC int iomem_close(struct iomem **fp)
{
        if (!fp)
                return (int)FAIL(__func__, NULL, -EINVAL, "the object pointer is NULL");
        struct iomem *f = *fp;
        if (!f)
                return 0;
        unsigned busy = __atomic_load_n(&f->aio_inflight, __ATOMIC_ACQUIRE);
        if (busy)
                return (int)FAIL(__func__, f->name, -EBUSY,
                                 "%u asynchronous transfer%s on it %s not been collected by "
                                 "iomem_aio_wait yet (the kernel may still use its memory)",
                                 busy, busy == 1 ? "" : "s", busy == 1 ? "has" : "have");
        if ((busy = __atomic_load_n(&f->receivers, __ATOMIC_ACQUIRE)))
                return (int)FAIL(__func__, f->name, -EBUSY,
                                 "%u receiver%s on it (iomem_rx_new) %s not been deleted yet (the "
                                 "kernel may still receive into its memory)",
                                 busy, busy == 1 ? "" : "s", busy == 1 ? "has" : "have");
        if ((busy = __atomic_load_n(&f->channels, __ATOMIC_ACQUIRE)))
                return (int)FAIL(__func__, f->name, -EBUSY, "%u channel%s on it (iomem_chan_open) %s not been closed",
                                 busy, busy == 1 ? "" : "s", busy == 1 ? "has" : "have");
        if ((busy = __atomic_load_n(&f->exports, __ATOMIC_ACQUIRE)))
                return (int)FAIL(__func__, f->name, -EBUSY,
                                 "%u fabric export%s of it (iomem_export) %s not been closed (peers may "
                                 "still reach its memory)",
                                 busy, busy == 1 ? "" : "s", busy == 1 ? "has" : "have");
        f->ops.close(f);
        iom_object_free(f);
        *fp = NULL;
        return 0;
}

IOM_PUBLIC int iomem_unlink(const char *uri)
{
        if (!uri)
                return (int)FAIL(__func__, NULL, -EINVAL, "uri is NULL");
        const struct iom_backend *b;
        const char *rest;
        int err = iom_backend_for_uri(uri, &b, &rest);
        if (!err)
                err = b->unlink(rest);
        return (int)iom_result(__func__, err);
}

/* ---- the six memory operations ------------------------------------------- */

IOM_PUBLIC ssize_t iomem_acquire(struct iomem *f, size_t off, size_t len)
{
        BEGIN_RANGE(f, off, len);
        CHECK(check_pages(__func__, f, off, len));
        return iom_result(__func__, CALL(f, acquire(f, off, len)));
}

IOM_PUBLIC int iomem_release(struct iomem *f, size_t off, size_t len)
{
        BEGIN_RANGE(f, off, len);
        CHECK(check_pages(__func__, f, off, len));
        return (int)iom_result(__func__, CALL(f, release(f, off, len)));
}

static int check_iov(const char *op, const struct iomem *f, const void *iov, size_t iovcnt)
{
        if (f && !iov && iovcnt)
                return (int)FAIL(op, f->name, -EINVAL, "iov is NULL but iovcnt is %zu", iovcnt);
        return 1;
}

IOM_PUBLIC ssize_t iomem_retrieve(struct iomem *f, size_t off, size_t len, struct iovec *iov,
                                  size_t iovcnt)
{
        CHECK(check_iov(__func__, f, iov, iovcnt));
        BEGIN_RANGE(f, off, len);
        if (!(f->flags & IOMEM_RDWR))
                return FAIL(__func__, f->name, -EROFS,
                            "the object is open read-only; use iomem_borrow");
        return iom_result(__func__, CALL(f, retrieve(f, off, len, iov, iovcnt)));
}

IOM_PUBLIC ssize_t iomem_borrow(struct iomem *f, size_t off, size_t len, struct iovec *iov,
                                size_t iovcnt)
{
        CHECK(check_iov(__func__, f, iov, iovcnt));
        BEGIN_RANGE(f, off, len);
        return iom_result(__func__, CALL(f, borrow(f, off, len, iov, iovcnt)));
}

IOM_PUBLIC ssize_t iomem_bufcount(struct iomem *f, size_t off, size_t len)
{
        BEGIN_RANGE(f, off, len);
        return iom_result(__func__, CALL(f, bufcount(f, off, len)));
}

IOM_PUBLIC ssize_t iomem_gift(struct iomem *f, size_t off, size_t len, const struct iovec *iov,
                              size_t iovcnt, unsigned flags)
{
        CHECK(check_iov(__func__, f, iov, iovcnt));
        BEGIN_RANGE(f, off, len);
        if (flags & ~IOMEM_GIFT_NOCOPY)
                return FAIL(__func__, f->name, -EINVAL, "unknown flags %#x", flags);
        CHECK(check_writable(__func__, f));
        size_t total = 0;
        for (size_t i = 0; i < iovcnt; i++) {
                if (iov[i].iov_len && !iov[i].iov_base)
                        return FAIL(__func__, f->name, -EINVAL, "entry %zu has no address", i);
                if (total + iov[i].iov_len < total)
                        return FAIL(__func__, f->name, -EOVERFLOW, "the entries' lengths overflow");
                total += iov[i].iov_len;
        }
        if (total != len)
                return FAIL(__func__, f->name, -EINVAL,
                            "len is %zu but the entries hold %zu bytes", len, total);
        return iom_result(__func__, CALL(f, gift(f, off, len, iov, iovcnt, flags)));
}

IOM_PUBLIC int iomem_alloc(struct iomem *f, size_t len, void **out)
{
        if (!f || !out)
                return (int)FAIL(__func__, f ? f->name : NULL, -EINVAL, "%s is NULL",
                                 f ? "out" : "the object");
        if (!len) {
                *out = NULL;
                return 0;
        }
        CHECK(check_writable(__func__, f));
        return (int)iom_result(__func__, CALL(f, alloc(f, len, out)));
}

IOM_PUBLIC int iomem_free(struct iomem *f, void *buf, size_t len)
{
        if (f && !buf && len)
                return (int)FAIL(__func__, f->name, -EINVAL, "buf is NULL but len is %zu", len);
        BEGIN_RANGE(f, 0, len);
        return (int)iom_result(__func__, CALL(f, free(f, buf, len)));
}

/* ---- locking ------------------------------------------------------------------ */

#define CHECK_OBJECT(f)                                                                   \
        do {                                                                              \
                if (!(f))                                                                 \
                        return (int)FAIL(__func__, NULL, -EINVAL, "the object is NULL");  \
        } while (0)

/* iomem_rdlock and iomem_rdlock_timed, the same for wrlock. */
#define LOCK_OP(name)                                                                     \
        IOM_PUBLIC int iomem_##name(struct iomem *f)                                      \
        {                                                                                 \
                CHECK_OBJECT(f);                                                          \
                return (int)iom_result(__func__, CALL(f, name(f, f->lock_timeout_ms)));    \
        }                                                                                 \
        IOM_PUBLIC int iomem_##name##_timed(struct iomem *f, int timeout_ms)              \
        {                                                                                 \
                CHECK_OBJECT(f);                                                          \
                return (int)iom_result(__func__, CALL(f, name(f, timeout_ms))); \
        }
LOCK_OP(rdlock)
LOCK_OP(wrlock)

IOM_PUBLIC int iomem_unlock(struct iomem *f)
{
        CHECK_OBJECT(f);
        return (int)iom_result(__func__, CALL(f, unlock(f)));
}

IOM_PUBLIC int iomem_set_lock_timeout(struct iomem *f, int timeout_ms)
{
        CHECK_OBJECT(f);
        f->lock_timeout_ms = timeout_ms;
        return 0;
}

/* ---- file operations ----------------------------------------------------------- */

IOM_PUBLIC int iomem_stat(struct iomem *f, struct iomem_stat *st)
{
        if (!f || !st)
                return (int)FAIL(__func__, f ? f->name : NULL, -EINVAL, "%s is NULL",
                                 f ? "st" : "the object");
        struct iomem_stat s = {
                .page_size = f->page_size,
                .backend = f->backend->name,
                .caps = f->caps,
                .numa_node = -1,
        };
        int err = iom_enter(f);
        if (!err)
                err = f->ops.stat(f, &s);
        if (!err)
                *st = s;
        return (int)iom_result(__func__, err);
}

IOM_PUBLIC int iomem_truncate(struct iomem *f, size_t size)
{
        if (!f)
                return (int)FAIL(__func__, NULL, -EINVAL, "the object is NULL");
        CHECK(check_writable(__func__, f));
        return (int)iom_result(__func__, CALL(f, truncate(f, size)));
}

IOM_PUBLIC ssize_t iomem_pread(struct iomem *f, void *buf, size_t len, size_t off)
{
        CHECK(check_iov(__func__, f, buf, len));
        BEGIN_RANGE(f, off, len);
        return iom_result(__func__, CALL(f, pread(f, buf, len, off)));
}

IOM_PUBLIC ssize_t iomem_pwrite(struct iomem *f, const void *buf, size_t len, size_t off)
{
        CHECK(check_iov(__func__, f, buf, len));
        BEGIN_RANGE(f, off, len);
        CHECK(check_writable(__func__, f));
        return iom_result(__func__, CALL(f, pwrite(f, buf, len, off)));
}

IOM_PUBLIC int iomem_sync(struct iomem *f, size_t off, size_t len)
{
        BEGIN_RANGE(f, off, len);
        return (int)iom_result(__func__, CALL(f, sync(f, off, len)));
}

/* The same operation as iomem_sync, by its persistent-memory name: each
 * backend's sync already takes the narrowest way it has. */
IOM_PUBLIC int iomem_persist(struct iomem *f, size_t off, size_t len)
{
        BEGIN_RANGE(f, off, len);
        return (int)iom_result(__func__, CALL(f, sync(f, off, len)));
}

IOM_PUBLIC int iomem_fd(const struct iomem *f)
{
        if (!f)
                return (int)FAIL(__func__, NULL, -EINVAL, "the object is NULL");
        return f->data_fd;
}

IOM_PUBLIC int iomem_advise(struct iomem *f, size_t off, size_t len, int advice)
{
        if (!f)
                return (int)FAIL(__func__, NULL, -EINVAL, "the object is NULL");
        /* API.md's advice, as far as this system's madvise has it. */
        enum iom_advice kind = iom_advice_kind(advice);
        if (kind == IOM_ADV_UNKNOWN || kind == IOM_ADV_POPULATE_READ || kind == IOM_ADV_POPULATE_WRITE)
                return (int)FAIL(__func__, f->name, -EINVAL,
                                 "advice %d is not one of MADV_WILLNEED, MADV_DONTNEED, MADV_SEQUENTIAL, "
                                 "MADV_RANDOM, MADV_COLD, MADV_PAGEOUT, MADV_HUGEPAGE, MADV_NOHUGEPAGE "
                                 "that this system has (platform: %s)", advice, iom_platform_name);
        BEGIN_RANGE(f, off, len);
        return (int)iom_result(__func__, CALL(f, advise(f, off, len, advice)));
}

IOM_PUBLIC int iomem_seal(struct iomem *f, unsigned seals)
{
        if (!f)
                return (int)FAIL(__func__, NULL, -EINVAL, "the object is NULL");
        unsigned all = IOMEM_SEAL_SHRINK | IOMEM_SEAL_GROW | IOMEM_SEAL_WRITE;
        if (seals & ~all)
                return (int)FAIL(__func__, f->name, -EINVAL, "unknown seal bits %#x", seals & ~all);
        CHECK(check_writable(__func__, f));
        return (int)iom_result(__func__, CALL(f, seal(f, seals)));
}

IOM_PUBLIC int iomem_plain_fd(struct iomem *f)
{
        if (!f)
                return (int)FAIL(__func__, NULL, -EINVAL, "the object is NULL");
        int err = CALL(f, settle(f));
        return err ? (int)iom_result(__func__, err) : f->data_fd;
}
