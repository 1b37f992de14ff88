/* SPDX-License-Identifier: MIT */
/*
 * An object's own backing files (its data file, its metadata sidecar),
 * told apart from other descriptors: writing an object into one of them
 * would overwrite the object with itself, the way `cp f f` empties f.
 */
#include "internal.h"
#include "syscalls.h"

#include <sys/stat.h>

/* The files of f: what iomem_send passes, or the data file alone. */
static int backing_files(struct iomem *f, struct stat *st, int max)
{
        int fds[4], n = f->ops.send_fds(f, fds, 4);
        if (n <= 0) {
                fds[0] = f->data_fd;
                n = 1;
        }
        int k = 0;
        for (int i = 0; i < n && k < max; i++)
                if (fds[i] >= 0 && iom_sys.fstat(fds[i], &st[k]) == 0)
                        k++;
        return k;
}

/* One file, or one device (a devdax object's file is its device node). */
static bool same_file(const struct stat *a, const struct stat *b)
{
        if (S_ISCHR(a->st_mode) || S_ISBLK(a->st_mode))
                return S_ISCHR(a->st_mode) == S_ISCHR(b->st_mode) && S_ISBLK(a->st_mode) == S_ISBLK(b->st_mode) &&
                       a->st_rdev == b->st_rdev;
        return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

int iom_refuse_own_backing(struct iomem *f, int fd)
{
        struct stat st, own[4];
        if (iom_sys.fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
                return 0; /* pipes and sockets are nobody's backing */
        int n = backing_files(f, own, 4);
        for (int i = 0; i < n; i++)
                if (same_file(&st, &own[i]))
                        return iom_fail(f->name, -EINVAL,
                                        "fd %d is the object's own %s: the transfer would overwrite "
                                        "the object with itself",
                                        fd, i ? "metadata file" : "data file or device");
        return 0;
}

int iom_refuse_shared_backing(struct iomem *a, struct iomem *b)
{
        struct stat x[4], y[4];
        int nx = backing_files(a, x, 4), ny = backing_files(b, y, 4);
        for (int i = 0; i < nx; i++)
                for (int j = 0; j < ny; j++)
                        if (same_file(&x[i], &y[j]))
                                return iom_fail(a->name, -EINVAL,
                                                "it is stored in a file of %s (its %s): copying "
                                                "between them would overwrite one with the other",
                                                b->name, j ? "metadata file" : "data file");
        return 0;
}
