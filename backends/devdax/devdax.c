/* SPDX-License-Identifier: MIT */
/*
 * devdax: device-DAX character devices (/dev/daxX.Y), the memory of
 * persistent memory in devdax mode or of CXL memory, mapped with no page
 * cache and no filesystem between the program and the media.
 *
 * A device is not a file: its size is fixed, nothing can be truncated,
 * punched or allocated in it, read(2) and write(2) do not reach it, and
 * every mapping must be aligned to the device's alignment (sysfs: align,
 * or its region's). So the object's page size is that alignment, its
 * bytes are the device's at their own offsets (one extent, all data), and
 * a change of size is refused: past the device -ENOSPC, anything else
 * -ENOTSUP.
 *
 * Pins, the I/O lock and the owners are the fd-memory engine's
 * (backends/fd), shared by every process through a sidecar in /dev/shm
 * named after the device's number, "iomem-devdax.MAJOR.MINOR.iomem": the
 * metadata alone, at its start, built under an flock by the first opener.
 * Gifts are copied (the device cannot adopt memory).
 */
#define _GNU_SOURCE
#include "cacheflush.h"
#include "extent_map.h"
#include "fdmem.h"
#include "sidecar.h"
#include "syscalls.h"
#include "undo.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define DEVDAX_CAPS (IOMEM_CAP_NAMED | IOMEM_CAP_FDPASS | IOMEM_CAP_DAX | IOMEM_CAP_SHARED)
#define DAX_BUS "/sys/bus/dax/devices"

static int devdax_probe(const char **why)
{
        DIR *d = opendir(DAX_BUS);
        struct dirent *e = NULL;
        while (d && (e = readdir(d)) && e->d_name[0] == '.')
                ;
        if (d)
                closedir(d);
        if (e)
                return 1;
        *why = "no device-DAX device here: " DAX_BUS " lists none (persistent memory in "
               "devdax mode, e.g. `ndctl create-namespace --mode=devdax`, or CXL memory)";
        return 0;
}

/* ---- the device ------------------------------------------------------------ */

/* A number from the device's sysfs directory (rel relative to it): 0 and
 * the value, or -1 when the attribute is not there or not a number. */
static int read_attr(dev_t rdev, const char *rel, uint64_t *out)
{
        char path[128], text[32];
        snprintf(path, sizeof path, "/sys/dev/char/%u:%u/%s", major(rdev), minor(rdev), rel);
        int fd = iom_sys.open(path, O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        ssize_t n = iom_sys.pread(fd, text, sizeof text - 1, 0);
        close(fd);
        if (n <= 0)
                return -1;
        text[n] = 0;
        char *end;
        unsigned long long v = strtoull(text, &end, 0);
        if (end == text)
                return -1;
        *out = v;
        return 0;
}

/* The device's size and mapping alignment; -EINVAL when fd is not a
 * device-DAX device. */
static int device_geometry(struct iomem *f, const struct stat *st, uint64_t *size,
                           uint64_t *align)
{
        if (!S_ISCHR(st->st_mode))
                return iom_fail(f->name, -EINVAL,
                                "not a character device (device DAX is /dev/daxX.Y)");
        if (read_attr(st->st_rdev, "size", size))
                return iom_fail(f->name, -EINVAL,
                                "character device %u:%u is not device DAX (no size in "
                                "/sys/dev/char/%u:%u)", major(st->st_rdev), minor(st->st_rdev),
                                major(st->st_rdev), minor(st->st_rdev));
        /* Kernels before 5.10 publish the alignment on the region only. */
        if (read_attr(st->st_rdev, "align", align) &&
            read_attr(st->st_rdev, "../dax_region/align", align))
                *align = iom_system_page_size();
        if (*align < iom_system_page_size() || !iom_is_pow2((size_t)*align) || *size % *align)
                return iom_fail(f->name, -EINVAL,
                                "its alignment (%llu) is not a power of two of at least a page "
                                "that divides its size (%llu)", (unsigned long long)*align,
                                (unsigned long long)*size);
        if (*size > IOM_FILE_MAX)
                return iom_fail(f->name, -EFBIG, "%llu bytes is more than an object can hold "
                                "(%llu)", (unsigned long long)*size,
                                (unsigned long long)IOM_FILE_MAX);
        return 0;
}

static uint64_t device_size(const struct iomem *f)
{
        return fdo(f)->data_limit;
}

/* ---- physical offsets: the device, and the metadata in the sidecar ------- */

/* The file's bytes are the device's; the metadata starts the sidecar. */
static void *devdax_map(struct iomem *f, void *hint, uint64_t phys, uint64_t len, int prot,
                        int flags)
{
        const struct iom_phys_ops *ops = phys < IOM_META_OFF ? &iom_phys_fd : &iom_phys_sidecar;
        return ops->map(f, hint, phys, len, prot, flags);
}

static void devdax_unmap(struct iomem *f, void *va, uint64_t len)
{
        iom_phys_fd.unmap(f, va, len);
}

/* The device's memory is always there; the sidecar's is given now. */
static int devdax_back(struct iomem *f, uint64_t phys, uint64_t len)
{
        return phys < IOM_META_OFF ? 0 : iom_phys_sidecar.back(f, phys, len);
}

/* The engine frees memory only where extents change (holes filled, a
 * shrink, adopted gifts), and a device's one extent never does. */
static void devdax_punch(struct iomem *f, uint64_t phys, uint64_t len)
{
        (void)f, (void)phys, (void)len;
}

static const struct iom_phys_ops devdax_phys = {
        .map = devdax_map,
        .unmap = devdax_unmap,
        .back = devdax_back,
        .punch = devdax_punch,
};

/* ---- operations: the engine's, within a fixed size ------------------------ */

static int past_device(struct iomem *f, uint64_t end)
{
        return iom_fail(f->name, -ENOSPC, "bytes up to %llu reach past the device's %llu",
                        (unsigned long long)end, (unsigned long long)device_size(f));
}

static int devdax_truncate(struct iomem *f, size_t size)
{
        if (size > device_size(f))
                return past_device(f, size);
        if (size < device_size(f))
                return iom_fail(f->name, -ENOTSUP, "a device's size is fixed (%llu bytes)",
                                (unsigned long long)device_size(f));
        return 0;
}

static ssize_t devdax_pwrite(struct iomem *f, const void *buf, size_t len, size_t off)
{
        if ((uint64_t)off + len > device_size(f))
                return past_device(f, (uint64_t)off + len);
        return iom_fdmem_ops.pwrite(f, buf, len, off);
}

static ssize_t devdax_gift(struct iomem *f, size_t off, size_t len, const struct iovec *iov,
                           size_t iovcnt, unsigned flags)
{
        if ((uint64_t)off + len > device_size(f))
                return past_device(f, (uint64_t)off + len);
        return iom_fdmem_ops.gift(f, off, len, iov, iovcnt, flags);
}

static int devdax_stat(struct iomem *f, struct iomem_stat *st)
{
        int err = iom_fdmem_ops.stat(f, st);
        st->dax = 1;
        st->persist = iom_cache_flush_kind();
        return err;
}

/* The bytes are the device's at their own offsets, but a character device
 * has no file size for another program to stop at. */
static int devdax_settle(struct iomem *f)
{
        return iom_fail(f->name, -ENOTSUP, "a device has no file size to give other programs; "
                        "copy its bytes out (iomem_sendfile)");
}

/* Device memory is never paged, read ahead or given back: every advice is
 * already the case, or has nothing to act on. */
static int devdax_advise(struct iomem *f, size_t off, size_t len, int advice)
{
        (void)f, (void)off, (void)len, (void)advice;
        return 0;
}

static int write_back_piece(struct iomem *f, char *va, size_t len, void *kind)
{
        (void)f;
        iom_cache_writeback(*(unsigned *)kind, va, len);
        return 0;
}

/*
 * The device is the media: no page cache, no filesystem, and no fsync;
 * what was stored through this process's mappings is made durable by
 * writing the CPU's cache lines back and fencing, as libpmem2 does on
 * device DAX. Mappings are never cut short here (the device's size is
 * fixed), so the write-back cannot fault.
 */
static int devdax_sync(struct iomem *f, size_t off, size_t len)
{
        unsigned kind = iom_cache_flush_kind();
        if (kind == IOMEM_PERSIST_NONE)
                return iom_fail(f->name, -ENOTSUP, "this CPU has no cache write-back instruction "
                                "the library knows, and a device-DAX device has no fsync");
        int err = iom_fdmem_each_mapped(f, off, len, false, write_back_piece, &kind);
        iom_cache_fence();
        return err;
}

static const struct iom_object_ops devdax_ops = {
        .size = sizeof(struct iom_object_ops),
        .base = &iom_fdmem_ops,
        .truncate = devdax_truncate,
        .pwrite = devdax_pwrite,
        .gift = devdax_gift,
        .stat = devdax_stat,
        .settle = devdax_settle,
        .advise = devdax_advise,
        .sync = devdax_sync,
};

/* ---- the sidecar ------------------------------------------------------------- */

struct device_id {
        dev_t rdev;
        uint64_t size;
};

/* Does the sidecar describe this device (its number and size; the
 * alignment is the page size the metadata was checked against)? */
static bool sidecar_describes(const struct iom_meta *m, const void *id)
{
        const struct device_id *d = id;
        return m->data_ino == (uint64_t)d->rdev && m->size == d->size;
}

/* A new sidecar's metadata: the device as one extent of data. */
static int describe_device(struct iomem *f, const void *id)
{
        const struct device_id *d = id;
        struct iom_fdobj *obj = fdo(f);
        int err = iom_meta_lock(f);
        if (err)
                return err;
        if ((err = iom_map_resize(f, d->size)) || (err = iom_map_set(f, 0, d->size, 0)) ||
            (err = iom_undo_set(f, &obj->meta->data_ino, (uint64_t)d->rdev)))
                iom_meta_undo(f);
        iom_meta_unlock(f);
        return err;
}

/* Attach the device open at data_fd through its sidecar: sfd when given
 * (passed with the device), else found or made by name. */
static int attach(struct iomem *f, int sfd, const struct iomem_opts *o)
{
        struct iom_fdobj *obj = fdo(f);
        const char *unfit = o->hugepage ? "huge pages" : o->seals ? "seals"
                          : o->numa_policy != IOMEM_NUMA_DEFAULT ? "NUMA policies" : NULL;
        if (unfit) /* the device's alignment and node are its own */
                return iom_fail(f->name, -ENOTSUP, "%s do not apply to devdax objects", unfit);
        struct stat st;
        uint64_t size, align;
        if (iom_sys.fstat(f->data_fd, &st) < 0) {
                int e = errno;
                return iom_fail(f->name, -e, "fstat: %s", strerror(e));
        }
        int err = device_geometry(f, &st, &size, &align);
        if (err)
                return err;
        if (o->size > size)
                return past_device(f, o->size);
        f->page_size = (size_t)iom_max(align, iom_system_page_size());
        obj->phys = &devdax_phys;
        obj->data_limit = size;
        obj->pool_end = IOM_POOL_OFF; /* no gift pool: gifts are copied */
        struct device_id id = { st.st_rdev, size };
        struct iom_sidecar s = { .mode = st.st_mode & 0666, .describes = sidecar_describes,
                                 .build = describe_device, .id = &id };
        snprintf(s.name, sizeof s.name, "/iomem-devdax.%u.%u.iomem", major(st.st_rdev),
                 minor(st.st_rdev));
        err = iom_sidecar_attach(f, &s, sfd, o);
        /* Transparent huge pages are tmpfs's; a device maps in its own. */
        obj->thp_advise = false;
        f->caps = DEVDAX_CAPS;
        f->bytes_in_page_cache = false;
        return err;
}

static int open_device(const char *path, unsigned flags)
{
        int oflags = O_CLOEXEC | (flags & IOMEM_RDWR ? O_RDWR : O_RDONLY) |
                     (flags & IOMEM_NOFOLLOW ? O_NOFOLLOW : 0);
        return iom_sys.open(path, oflags, 0);
}

static int devdax_open(struct iomem *f, const char *path, unsigned flags,
                       const struct iomem_opts *o)
{
        iom_fdmem_init(f);
        if (!*path)
                return iom_fail(f->name, -EINVAL, "the path is empty");
        if ((flags & IOMEM_CREATE) && (flags & IOMEM_EXCL))
                return iom_fail(f->name, -EEXIST, "a device exists already (IOMEM_EXCL)");
        if (o->size && !(flags & IOMEM_RDWR))
                return iom_fail(f->name, -EINVAL, "a read-only handle cannot give it a size");
        f->data_fd = open_device(path, flags);
        if (f->data_fd < 0) {
                int e = errno;
                if (e == ENOENT)
                        return iom_fail(f->name, -e, "no such device");
                if (e == ELOOP && (flags & IOMEM_NOFOLLOW))
                        return iom_fail(f->name, -e, "it is a symbolic link (IOMEM_NOFOLLOW)");
                return iom_fail(f->name, -e, "open: %s", strerror(e));
        }
        int err = attach(f, -1, o);
        if (err)
                iom_fdmem_close(f);
        return err;
}

/* Adopt the device's descriptor, and its sidecar's when iomem_send passed
 * it along. */
static int devdax_open_fds(struct iomem *f, const int *fds, int nfds, unsigned flags,
                           const struct iomem_opts *o)
{
        iom_fdmem_init(f);
        if (nfds < 1 || nfds > 2)
                return iom_fail(f->name, -EINVAL, "a devdax object is one or two descriptors, "
                                "not %d", nfds);
        int mode = iom_sys.fcntl(fds[0], F_GETFL, 0) & O_ACCMODE;
        if (mode == O_WRONLY)
                return iom_fail(f->name, -EACCES, "fd %d is open write-only; mapping needs read "
                                "access", fds[0]);
        if ((flags & IOMEM_RDWR) && mode == O_RDONLY)
                return iom_fail(f->name, -EACCES, "fd %d is open read-only", fds[0]);
        f->data_fd = fds[0];
        int err = attach(f, nfds == 2 ? fds[1] : -1, o);
        if (err) {
                /* The caller keeps what it passed. */
                f->data_fd = -1;
                if (nfds == 2)
                        fdo(f)->aux_fd = -1;
                iom_fdmem_close(f);
        }
        return err;
}

static int devdax_unlink(const char *path)
{
        return iom_fail(path, -ENOTSUP, "a device is not removed through the library "
                        "(its namespace or region is, with ndctl or daxctl)");
}

const struct iom_backend iom_backend_devdax = {
        .name = "devdax",
        .caps = DEVDAX_CAPS,
        .priv_size = sizeof(struct iom_fdobj),
        .ops = &devdax_ops,
        .probe = devdax_probe,
        .open = devdax_open,
        .open_fds = devdax_open_fds,
        .unlink = devdax_unlink,
};
