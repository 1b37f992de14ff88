/* SPDX-License-Identifier: MIT */
/* Asynchronous transfers in a build without liburing (-Daio=disabled, or
 * liburing-dev missing): every call says so. lib/aio.c is the real one. */
#include "internal.h"

#define NOT_HERE(op)                                                                            \
        iom_result(op, iom_fail(NULL, -ENOTSUP,                                                 \
                                "asynchronous transfers are not in this build (it was built "  \
                                "without liburing: -Daio=disabled, liburing-dev missing, "     \
                                "or -Dplatform=posix)"))

struct iom_aio_knobs iom_aio_knobs;
/* A NULL queue is -EINVAL, like every NULL object. */
#define CHECK_QUEUE(q, op)                                                                  \
        do {                                                                                \
                if (!(q))                                                                   \
                        return (int)iom_result(op, iom_fail(NULL, -EINVAL, "the queue is NULL")); \
        } while (0)

IOM_PUBLIC int iomem_aio_new(struct iomem_aio **q, unsigned depth)
{
        (void)depth;
        if (!q)
                return (int)iom_result(__func__, iom_fail(NULL, -EINVAL, "q is NULL"));
        return (int)NOT_HERE(__func__);
}

IOM_PUBLIC int iomem_aio_delete(struct iomem_aio **q)
{
        if (!q)
                return (int)iom_result(__func__, iom_fail(NULL, -EINVAL, "q is NULL"));
        *q = NULL; /* no queue can exist in this version */
        return 0;
}

IOM_PUBLIC int iomem_aio_read(struct iomem_aio *q, int fd, uint64_t fd_off, struct iomem *f,
                              size_t off, size_t len, uint64_t tag)
{
        CHECK_QUEUE(q, __func__);
        (void)q, (void)fd, (void)fd_off, (void)f, (void)off, (void)len, (void)tag;
        return (int)NOT_HERE(__func__);
}

IOM_PUBLIC int iomem_aio_write(struct iomem_aio *q, int fd, uint64_t fd_off, struct iomem *f,
                               size_t off, size_t len, uint64_t tag)
{
        CHECK_QUEUE(q, __func__);
        (void)q, (void)fd, (void)fd_off, (void)f, (void)off, (void)len, (void)tag;
        return (int)NOT_HERE(__func__);
}

IOM_PUBLIC int iomem_aio_send(struct iomem_aio *q, int sock, struct iomem *f, size_t off,
                              size_t len, uint64_t tag)
{
        CHECK_QUEUE(q, __func__);
        (void)q, (void)sock, (void)f, (void)off, (void)len, (void)tag;
        return (int)NOT_HERE(__func__);
}

IOM_PUBLIC int iomem_aio_submit(struct iomem_aio *q)
{
        CHECK_QUEUE(q, __func__);
        (void)q;
        return (int)NOT_HERE(__func__);
}

IOM_PUBLIC int iomem_aio_wait(struct iomem_aio *q, struct iomem_aio_cqe *cqe, unsigned n,
                              unsigned min, int timeout_ms)
{
        CHECK_QUEUE(q, __func__);
        (void)q, (void)cqe, (void)n, (void)min, (void)timeout_ms;
        return (int)NOT_HERE(__func__);
}

IOM_PUBLIC int iomem_aio_fd(struct iomem_aio *q)
{
        CHECK_QUEUE(q, __func__);
        (void)q;
        return (int)NOT_HERE(__func__);
}
