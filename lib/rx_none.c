/* SPDX-License-Identifier: MIT */
/* Receiving into an object in a build without liburing (-Daio=disabled,
 * or liburing-dev missing): every call says so. lib/rx.c is the real one. */
#include "internal.h"

#define NOT_HERE(op)                                                                            \
        iom_result(op, iom_fail(NULL, -ENOTSUP,                                                 \
                                "receiving into an object is not in this build (it was built "  \
                                "without liburing: -Daio=disabled, liburing-dev missing, "     \
                                "or -Dplatform=posix)"))

IOM_PUBLIC int iomem_rx_new(struct iomem_rx **rx, struct iomem *f, int sock, size_t buf_size,
                            unsigned nbufs, unsigned flags)
{
        (void)f, (void)sock, (void)buf_size, (void)nbufs, (void)flags;
        if (!rx)
                return (int)iom_result(__func__, iom_fail(NULL, -EINVAL, "rx is NULL"));
        *rx = NULL;
        return (int)NOT_HERE(__func__);
}

IOM_PUBLIC ssize_t iomem_rx_next(struct iomem_rx *rx, void **buf, int timeout_ms)
{
        (void)rx, (void)timeout_ms;
        if (buf)
                *buf = NULL;
        return iom_result(__func__, iom_fail(NULL, -EINVAL, "the receiver is NULL (none can be made)"));
}

IOM_PUBLIC int iomem_rx_gift(struct iomem_rx *rx, void *buf, size_t len, size_t off, unsigned flags)
{
        (void)rx, (void)buf, (void)len, (void)off, (void)flags;
        return (int)iom_result(__func__, iom_fail(NULL, -EINVAL, "the receiver is NULL (none can be made)"));
}

IOM_PUBLIC int iomem_rx_fd(const struct iomem_rx *rx)
{
        (void)rx;
        return (int)iom_result(__func__, iom_fail(NULL, -EINVAL, "the receiver is NULL (none can be made)"));
}

IOM_PUBLIC ssize_t iomem_rx_dropped(const struct iomem_rx *rx)
{
        (void)rx;
        return iom_result(__func__, iom_fail(NULL, -EINVAL, "the receiver is NULL (none can be made)"));
}

IOM_PUBLIC int iomem_rx_delete(struct iomem_rx **rx)
{
        if (!rx)
                return (int)iom_result(__func__, iom_fail(NULL, -EINVAL, "rx is NULL"));
        *rx = NULL;
        return 0;
}
