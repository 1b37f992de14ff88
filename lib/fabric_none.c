/* SPDX-License-Identifier: MIT */
/* Fabric exports in a build without libfabric (-Dfabric=disabled,
 * libfabric-dev missing, or the POSIX platform layer): every call says so. lib/fabric.c is the real one. */
#include "internal.h"

#define NOT_HERE(op)                                                                            \
        iom_result(op, iom_fail(NULL, -ENOTSUP,                                                 \
                                "fabric exports are not in this build (it was built without "   \
                                "libfabric: -Dfabric=disabled, libfabric-dev missing, or "     \
                                "-Dplatform=posix)"))

IOM_PUBLIC int iomem_export(struct iomem_export **out, struct iomem *f, size_t off, size_t len,
                            const char *addr, unsigned flags)
{
        (void)out, (void)f, (void)off, (void)len, (void)addr, (void)flags;
        return (int)NOT_HERE(__func__);
}

/* No export or remote can exist in this build: closing one is closing NULL. */
IOM_PUBLIC int iomem_export_close(struct iomem_export **x)
{
        if (!x)
                return (int)iom_result(__func__, iom_fail(NULL, -EINVAL, "the export is NULL"));
        *x = NULL;
        return 0;
}

IOM_PUBLIC const char *iomem_export_addr(const struct iomem_export *x)
{
        (void)x;
        return NULL;
}

IOM_PUBLIC ssize_t iomem_export_peers(struct iomem_export *x, uint64_t *served)
{
        (void)x, (void)served;
        return NOT_HERE(__func__);
}

IOM_PUBLIC int iomem_remote_open(struct iomem_remote **out, const char *addr)
{
        (void)out, (void)addr;
        return (int)NOT_HERE(__func__);
}

IOM_PUBLIC int iomem_remote_close(struct iomem_remote **r)
{
        if (!r)
                return (int)iom_result(__func__, iom_fail(NULL, -EINVAL, "the remote is NULL"));
        *r = NULL;
        return 0;
}

IOM_PUBLIC ssize_t iomem_remote_size(const struct iomem_remote *r)
{
        (void)r;
        return NOT_HERE(__func__);
}

IOM_PUBLIC ssize_t iomem_remote_read(struct iomem_remote *r, size_t roff, struct iomem *f, size_t off,
                                     size_t len)
{
        (void)r, (void)roff, (void)f, (void)off, (void)len;
        return NOT_HERE(__func__);
}

IOM_PUBLIC ssize_t iomem_remote_write(struct iomem_remote *r, size_t roff, struct iomem *f, size_t off,
                                      size_t len)
{
        (void)r, (void)roff, (void)f, (void)off, (void)len;
        return NOT_HERE(__func__);
}

IOM_PUBLIC ssize_t iomem_remote_fetch(struct iomem_remote *r, struct iomem *f)
{
        (void)r, (void)f;
        return NOT_HERE(__func__);
}
