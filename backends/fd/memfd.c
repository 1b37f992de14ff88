/* SPDX-License-Identifier: MIT */
/*
 * memfd: anonymous objects from memfd_create(2), shared by passing
 * descriptors. The object's bytes are a memfd of exactly the object's
 * size, which other programs can be handed (iomem_fd); its metadata and
 * gift pool are a twin memfd "LABEL.iomem" (pairing.h). iomem_send passes
 * both; a descriptor of the data alone reaches the twin through another
 * handle of the same process, or is refused where the data file carries
 * the library's mark (tmpfs from Linux 6.6).
 */
#define _GNU_SOURCE
#include "config.h"
#include "fdmem.h"
#include "pairing.h"
#include "undo.h"
#include "syscalls.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#ifndef MFD_HUGE_2MB /* in linux/memfd.h, which clashes with sys/mman.h */
#define MFD_HUGE_2MB (21u << 26)
#define MFD_HUGE_1GB (30u << 26)
#endif

#define MEMFD_NAME_MAX 249 /* memfd_create: 255 minus "memfd:" */
#define MIB (UINT64_C(1) << 20)

#define MEMFD_CAPS (IOMEM_CAP_FDPASS | IOMEM_CAP_SEAL | IOMEM_CAP_HUGEPAGE | IOMEM_CAP_RESERVED | \
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

/* IOMEM_SEAL_* as the kernel's seals of the data file. */
static int kernel_seals(unsigned seals)
{
        return (seals & IOMEM_SEAL_SHRINK ? F_SEAL_SHRINK : 0) |
               (seals & IOMEM_SEAL_GROW ? F_SEAL_GROW : 0) |
               (seals & IOMEM_SEAL_WRITE ? F_SEAL_WRITE : 0);
}

static unsigned iomem_seals(int kseals)
{
        return (kseals & F_SEAL_SHRINK ? IOMEM_SEAL_SHRINK : 0) |
               (kseals & F_SEAL_GROW ? IOMEM_SEAL_GROW : 0) |
               (kseals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE) ? IOMEM_SEAL_WRITE : 0);
}

/* The engine's seal_data: -EBUSY (for the engine to explain) while a
 * writable mapping of the data exists anywhere. */
static int seal_data(struct iomem *f, unsigned seals)
{
        if (!seals || iom_sys.fcntl(f->data_fd, F_ADD_SEALS, kernel_seals(seals)) == 0)
                return 0;
        int e = errno;
        if (e == EBUSY)
                return -EBUSY;
        if (e == EPERM)
                return iom_fail(f->name, -EPERM, "its memfd takes no more seals (made without "
                                "MFD_ALLOW_SEALING, or sealed with F_SEAL_SEAL)");
        return iom_fail(f->name, -e, "cannot seal it: %s", strerror(e));
}

static int make_memfd(struct iomem *f, const char *label, unsigned mflags, const struct iomem_opts *o)
{
        int fd = iom_sys.memfd_create(label, mflags);
        if (fd >= 0)
                return fd;
        int e = errno;
        if (o->hugepage && e == EINVAL)
                return iom_fail(f->name, -ENODEV, "the kernel has no %zu KiB huge pages", o->hugepage >> 10);
        return iom_fail(f->name, -e, "memfd_create: %s", strerror(e));
}

/* The twin holds the metadata at its fixed offsets and the gift pool; no
 * peer may resize it under another's mappings. */
static int shape_twin(struct iomem *f)
{
        int fd = fdo(f)->aux_fd;
        if (iom_sys.ftruncate(fd, (off_t)IOM_PHYS_END) == 0 &&
            iom_sys.fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) == 0)
                return 0;
        int e = errno;
        return iom_fail(f->name, -e, "cannot size its metadata: %s", strerror(e));
}

static int memfd_open(struct iomem *f, const char *label, unsigned flags, const struct iomem_opts *o)
{
        (void)flags;
        struct iom_fdobj *obj = fdo(f);
        iom_fdmem_init(f);
        if (strlen(label) > MEMFD_NAME_MAX)
                return iom_fail(f->name, -ENAMETOOLONG, "the label is longer than %d bytes",
                                MEMFD_NAME_MAX);
        unsigned mflags = MFD_CLOEXEC | MFD_ALLOW_SEALING;
        if (o->hugepage) {
                mflags |= MFD_HUGETLB | (o->hugepage == 2 * MIB ? MFD_HUGE_2MB : MFD_HUGE_1GB);
                f->page_size = o->hugepage;
        }
        char twin[MEMFD_NAME_MAX + 1];
        snprintf(twin, sizeof twin, "%.*s%s", (int)(MEMFD_NAME_MAX - strlen(IOM_PAIR_SUFFIX)), label,
                 IOM_PAIR_SUFFIX);
        obj->sized_data = true;
        obj->seal_data = seal_data;
        int err = f->data_fd = make_memfd(f, label, mflags, o);
        if (err >= 0)
                err = obj->aux_fd = make_memfd(f, twin, mflags, o);
        struct stat st;
        if (err >= 0 && iom_sys.fstat(f->data_fd, &st) < 0)
                err = iom_fail(f->name, -errno, "fstat: %s", strerror(errno));
        if (err >= 0 && !(err = shape_twin(f)) && !(err = iom_fdmem_attach(f, IOM_ATTACH_NEW, o))) {
                obj->meta->data_ino = (uint64_t)st.st_ino;
                iom_pair_mark(f, twin);
                err = seal_data(f, o->seals);
        }
        if (err < 0) {
                iom_fdmem_close(f);
                return err;
        }
        return 0;
}

/* What a descriptor of the fixed size 2^60 with our metadata at its offset
 * is: 0 for neither, OLD_LAYOUT for an object of the library's first memfd
 * layout, which kept data, metadata and pool in one descriptor (it never
 * recorded a data file), TWIN for the metadata of a data file; -errno
 * when it cannot be examined. */
enum { OLD_LAYOUT = 1, TWIN };
static int fixed_span_kind(int fd)
{
        struct stat st;
        struct iom_meta head;
        if (iom_sys.fstat(fd, &st) < 0)
                return -errno;
        if ((uint64_t)st.st_size != IOM_PHYS_END)
                return 0;
        size_t n = offsetof(struct iom_meta, seals);
        ssize_t r = iom_sys.pread(fd, &head, n, (off_t)IOM_META_OFF);
        if (r < 0)
                return -errno;
        if (r != (ssize_t)n || head.magic != IOM_META_MAGIC)
                return 0;
        return head.data_ino ? TWIN : OLD_LAYOUT;
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
        iom_fdmem_init(f);
        if (nfds < 1 || nfds > 2)
                return iom_fail(f->name, -EINVAL, "a memfd object is one or two descriptors (its data, "
                                "then its metadata), not %d", nfds);
        for (int i = 0; i < nfds; i++)
                if (!is_memfd(fds[i]))
                        return iom_fail(f->name, -EINVAL, "fd %d is not a memfd", fds[i]);
        int err = iom_pair_check_access(f, fds[0], flags);
        if (err)
                return err;
        int kind = fixed_span_kind(fds[0]);
        if (kind < 0)
                return iom_fail(f->name, kind, "cannot examine fd %d: %s", fds[0], strerror(-kind));
        if (kind == OLD_LAYOUT)
                return iom_fail(f->name, -EPROTO, "fd %d is a memfd object of an earlier layout, which "
                                "kept its metadata in the same descriptor; open it with the library "
                                "that made it", fds[0]);
        if (kind == TWIN)
                return iom_fail(f->name, -EINVAL, "fd %d is the metadata of a memfd object; its data "
                                "descriptor comes first", fds[0]);
        struct iom_fsinfo sf;
        if (iom_sys.fstatfs(fds[0], &sf) == 0 && sf.kind == IOM_FS_HUGETLBFS)
                f->page_size = (size_t)sf.block_size;
        f->data_fd = fds[0];
        fdo(f)->sized_data = true;
        fdo(f)->seal_data = seal_data;
        if ((err = iom_pair_open_fds(f, fds, nfds, -1, 0, o)))
                return err;
        /* The kernel's seals are the object's: those of a memfd another
         * program made and sealed, and those a sealer set before it was
         * killed, ahead of the library's record. */
        int kseals = iom_sys.fcntl(fds[0], F_GET_SEALS, 0);
        unsigned missing = kseals > 0 ? iomem_seals(kseals) & ~fdo(f)->meta->seals : 0;
        if (missing && fdo(f)->meta_private)
                fdo(f)->meta->seals |= missing;
        else if (missing && (err = iom_meta_lock(f)) == 0) {
                err = iom_undo_set32(f, &fdo(f)->meta->seals, fdo(f)->meta->seals | missing);
                iom_meta_unlock(f);
        }
        if (err)
                iom_fdmem_close(f);
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
