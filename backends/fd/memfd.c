/* SPDX-License-Identifier: MIT */
/*
 * memfd: anonymous objects from memfd_create(2), shared by passing the
 * descriptor. The file's bytes, its metadata and its gift pool live in
 * the one descriptor (see meta.h), so one fd is all a peer needs.
 * The descriptor's own size never changes (it is sealed so), so no peer
 * can shrink it under another's mappings; the file size is kept in the
 * metadata.
 */
#define _GNU_SOURCE
#include "config.h"
#include "fdmem.h"
#include "syscalls.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <unistd.h>

#ifndef MFD_HUGE_2MB /* in linux/memfd.h, which clashes with sys/mman.h */
#define MFD_HUGE_2MB (21u << 26)
#define MFD_HUGE_1GB (30u << 26)
#endif

#define MEMFD_NAME_MAX 249 /* memfd_create: 255 minus "memfd:" */
#define MIB (UINT64_C(1) << 20)

#define MEMFD_CAPS (IOMEM_CAP_FDPASS | IOMEM_CAP_SEAL | IOMEM_CAP_HUGEPAGE | \
                    IOMEM_CAP_GIFT | IOMEM_CAP_RESIZE | IOMEM_CAP_SHARED | \
                    (IOMEM_HAVE_NUMA ? IOMEM_CAP_NUMA : 0))

static int memfd_probe(const char **why)
{
        static int usable = -1;
        if (usable < 0) {
                int fd = iom_sys.memfd_create("iomem-probe", MFD_CLOEXEC);
                usable = fd >= 0 || errno != ENOSYS;
                if (fd >= 0)
                        close(fd);
        }
        if (!usable)
                *why = "memfd_create(2) is not available (Linux 3.17 or later is needed)";
        return usable;
}

static int apply_seals(struct iomem *f, unsigned seals)
{
        /* The physical span is fixed: nobody may resize the descriptor. */
        int kseals = F_SEAL_SHRINK | F_SEAL_GROW;
        if (seals & IOMEM_SEAL_WRITE)
                kseals |= F_SEAL_FUTURE_WRITE;
        if (iom_sys.fcntl(f->data_fd, F_ADD_SEALS, kseals) == 0)
                return 0;
        int e = errno;
        return iom_fail(f->name, -e, "cannot seal it: %s", strerror(e));
}

static int memfd_open(struct iomem *f, const char *label, unsigned flags, const struct iomem_opts *o)
{
        (void)flags;
        iom_fdmem_init(f);
        if (strlen(label) > MEMFD_NAME_MAX)
                return iom_fail(f->name, -ENAMETOOLONG, "the label is longer than %d bytes",
                                MEMFD_NAME_MAX);
        unsigned mflags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
        if (o->hugepage) {
                mflags |= MFD_HUGETLB | (o->hugepage == 2 * MIB ? MFD_HUGE_2MB : MFD_HUGE_1GB);
                f->page_size = o->hugepage;
        }
        int fd = iom_sys.memfd_create(label, mflags);
        if (fd < 0) {
                int e = errno;
                if (o->hugepage && e == EINVAL)
                        return iom_fail(f->name, -ENODEV, "the kernel has no %zu KiB huge pages",
                                        o->hugepage >> 10);
                return iom_fail(f->name, -e, "memfd_create: %s", strerror(e));
        }
        f->data_fd = fdo(f)->aux_fd = fd;
        int err = 0;
        if (iom_sys.ftruncate(fd, (off_t)IOM_PHYS_END) < 0) {
                int e = errno;
                err = iom_fail(f->name, -e, "cannot size it: %s", strerror(e));
        }
        if (!err)
                err = iom_fdmem_attach(f, IOM_ATTACH_NEW, o);
        if (!err)
                err = apply_seals(f, o->seals);
        if (err) {
                iom_fdmem_close(f);
                return err;
        }
        return 0;
}

/* Is fd one of ours (fixed span, our metadata)? 1 yes, 0 no, -EBADMSG
 * when it has our span but not our metadata (a peer scribbled on it),
 * -errno when it cannot be examined. */
static int has_our_metadata(int fd)
{
        struct stat st;
        uint64_t magic = 0;
        if (iom_sys.fstat(fd, &st))
                return -errno;
        if ((uint64_t)st.st_size != IOM_PHYS_END)
                return 0;
        ssize_t n = iom_sys.pread(fd, &magic, sizeof magic, (off_t)IOM_META_OFF);
        if (n < 0)
                return -errno;
        return n == sizeof magic && magic == IOM_META_MAGIC ? 1 : -EBADMSG;
}

/* memfd descriptors link to "/memfd:LABEL" in /proc/self/fd. */
static bool is_memfd(int fd)
{
        char link[64], target[32];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        return n > 0 && (target[n] = 0, !strncmp(target, "/memfd:", 7));
}

static int memfd_open_fds(struct iomem *f, const int *fds, int nfds, unsigned flags,
                          const struct iomem_opts *o)
{
        struct iom_fdobj *obj = fdo(f);
        int fd = fds[0];
        iom_fdmem_init(f);
        if (nfds != 1)
                return iom_fail(f->name, -EINVAL, "a memfd object is one descriptor, not %d", nfds);
        if (!is_memfd(fd))
                return iom_fail(f->name, -EINVAL, "fd %d is not a memfd", fd);
        int mode = iom_sys.fcntl(fd, F_GETFL, 0) & O_ACCMODE;
        if (mode == O_WRONLY)
                return iom_fail(f->name, -EACCES, "fd %d is open write-only; mapping needs read access", fd);
        if ((flags & IOMEM_RDWR) && mode == O_RDONLY)
                return iom_fail(f->name, -EACCES, "fd %d is open read-only", fd);
        struct statfs sf;
        if (iom_sys.fstatfs(fd, &sf) == 0 && sf.f_type == HUGETLBFS_MAGIC)
                f->page_size = (size_t)sf.f_bsize;
        f->data_fd = fd;
        int err, ours = has_our_metadata(fd);
        if (ours == -EBADMSG)
                return iom_fail(f->name, ours, "its metadata is not valid");
        if (ours < 0)
                return iom_fail(f->name, ours, "cannot examine it: %s", strerror(-ours));
        if (ours) {
                /* Pins and locks are written to the metadata even by a reader:
                 * a read-only descriptor gets a read-write twin for it. */
                obj->aux_fd = fd;
                if (mode == O_RDONLY) {
                        char path[64];
                        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
                        obj->aux_fd = open(path, O_RDWR | O_CLOEXEC);
                }
                err = obj->aux_fd < 0 ? -EACCES : iom_fdmem_attach(f, IOM_ATTACH_SHARED, o);
                if (err == -EPERM || err == -EACCES) {
                        /* Sealed against writing (or no write access at all):
                         * a private copy of the metadata. For a sealed object
                         * that copy is exact, since nothing can change. */
                        iom_debug("%s: metadata not writable; using a private copy", f->name);
                        if (obj->aux_fd != fd && obj->aux_fd >= 0)
                                close(obj->aux_fd);
                        obj->aux_fd = fd;
                        err = iom_fdmem_attach(f, IOM_ATTACH_SNAPSHOT, o);
                }
        } else {
                obj->sized_data = true; /* a plain memfd: its size is the file's */
                err = iom_fdmem_attach(f, IOM_ATTACH_PRIVATE, o);
        }
        if (err) {
                /* The caller keeps the descriptor it passed. */
                if (obj->aux_fd == fd)
                        obj->aux_fd = -1;
                f->data_fd = -1;
                iom_fdmem_close(f);
        }
        return err;
}

const struct iom_backend iom_backend_memfd = {
        .name = "memfd",
        .caps = MEMFD_CAPS,
        .priv_size = sizeof(struct iom_fdobj),
        .ops = &iom_fdmem_ops,
        .probe = memfd_probe,
        .open = memfd_open,
        .open_fds = memfd_open_fds,
        .unlink = iom_no_unlink,
};
