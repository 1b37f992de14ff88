/* SPDX-License-Identifier: MIT */
/*
 * What a backend leaves out (like libfabric's fi_no_*): one shared stub
 * per slot, so the core never calls through NULL and every backend says
 * "not supported" in the same words.
 */
#include "internal.h"

static int unsupported(const struct iomem *f, const char *what)
{
        return iom_fail(f->name, -ENOTSUP, "backend %s cannot %s", f->backend->name, what);
}

/* before_call and after_fork left out: nothing to check, nothing to forget. */
static int nothing_to_do(struct iomem *f)
{
        (void)f;
        return 0;
}

static ssize_t no_acquire(struct iomem *f, size_t off, size_t len)
{
        (void)off, (void)len;
        return unsupported(f, "pin memory (acquire)");
}

static int no_release(struct iomem *f, size_t off, size_t len)
{
        (void)off, (void)len;
        return unsupported(f, "pin memory (release)");
}

static ssize_t no_retrieve(struct iomem *f, size_t off, size_t len, struct iovec *iov, size_t n)
{
        (void)off, (void)len, (void)iov, (void)n;
        return unsupported(f, "give its memory for writing (retrieve)");
}

static ssize_t no_borrow(struct iomem *f, size_t off, size_t len, struct iovec *iov, size_t n)
{
        (void)off, (void)len, (void)iov, (void)n;
        return unsupported(f, "lend its memory (borrow)");
}

static ssize_t no_bufcount(struct iomem *f, size_t off, size_t len)
{
        (void)off, (void)len;
        return unsupported(f, "count its buffers (bufcount)");
}

static ssize_t no_gift(struct iomem *f, size_t off, size_t len, const struct iovec *iov, size_t n,
                       unsigned flags)
{
        (void)off, (void)len, (void)iov, (void)n, (void)flags;
        return unsupported(f, "take gifts");
}

static int no_alloc(struct iomem *f, size_t len, void **out)
{
        (void)len, (void)out;
        return unsupported(f, "allocate gift buffers");
}

static int no_free(struct iomem *f, void *buf, size_t len)
{
        (void)buf, (void)len;
        return unsupported(f, "free gift buffers");
}

static int no_rdlock(struct iomem *f, int timeout_ms)
{
        (void)timeout_ms;
        return unsupported(f, "lock for reading");
}

static int no_wrlock(struct iomem *f, int timeout_ms)
{
        (void)timeout_ms;
        return unsupported(f, "lock for writing");
}

static int no_unlock(struct iomem *f)
{
        return unsupported(f, "unlock");
}

static int no_stat(struct iomem *f, struct iomem_stat *st)
{
        (void)st;
        return unsupported(f, "describe its objects (stat)");
}

static int no_truncate(struct iomem *f, size_t size)
{
        (void)size;
        return unsupported(f, "change the size");
}

static ssize_t no_pread(struct iomem *f, void *buf, size_t len, size_t off)
{
        (void)buf, (void)len, (void)off;
        return unsupported(f, "read");
}

static ssize_t no_pwrite(struct iomem *f, const void *buf, size_t len, size_t off)
{
        (void)buf, (void)len, (void)off;
        return unsupported(f, "write");
}

static int no_sync(struct iomem *f, size_t off, size_t len)
{
        (void)off, (void)len;
        return unsupported(f, "sync");
}

static int no_send_fds(const struct iomem *f, int *fds, int max)
{
        (void)fds, (void)max;
        return unsupported(f, "pass its objects to another process");
}

static void no_close(struct iomem *f)
{
        (void)f;
}

static int no_advise(struct iomem *f, size_t off, size_t len, int advice)
{
        (void)off, (void)len, (void)advice;
        return unsupported(f, "take advice");
}

static bool never_frozen(const struct iomem *f, uint64_t *size)
{
        (void)f, (void)size;
        return false;
}

static int no_seal(struct iomem *f, unsigned seals)
{
        (void)seals;
        return unsupported(f, "seal its objects (memfd objects can be sealed)");
}

static int no_settle(struct iomem *f)
{
        return unsupported(f, "give a descriptor that holds the object's bytes at their own offsets");
}

const struct iom_object_ops iom_no_ops = {
        .size = sizeof(struct iom_object_ops),
        .before_call = nothing_to_do,
        .after_fork = nothing_to_do,
        .acquire = no_acquire,
        .release = no_release,
        .retrieve = no_retrieve,
        .borrow = no_borrow,
        .bufcount = no_bufcount,
        .gift = no_gift,
        .alloc = no_alloc,
        .free = no_free,
        .rdlock = no_rdlock,
        .wrlock = no_wrlock,
        .unlock = no_unlock,
        .stat = no_stat,
        .truncate = no_truncate,
        .pread = no_pread,
        .pwrite = no_pwrite,
        .sync = no_sync,
        .send_fds = no_send_fds,
        .close = no_close,
        .settle = no_settle,
        .seal = no_seal,
        .frozen = never_frozen,
        .advise = no_advise,
};

int iom_no_open(struct iomem *f, const char *rest, unsigned flags, const struct iomem_opts *o)
{
        (void)rest, (void)flags, (void)o;
        return unsupported(f, "open objects yet");
}

int iom_no_open_fds(struct iomem *f, const int *fds, int nfds, unsigned flags,
                    const struct iomem_opts *o)
{
        (void)fds, (void)nfds, (void)flags, (void)o;
        return unsupported(f, "adopt descriptors");
}

int iom_no_unlink(const char *rest)
{
        return iom_fail(rest, -ENOTSUP, "objects of this backend have no name to remove");
}

int iom_in_place(struct iomem *f)
{
        (void)f;
        return 0;
}

int iom_send_data_fd(const struct iomem *f, int *fds, int max)
{
        (void)max;
        fds[0] = f->data_fd;
        return 1;
}
