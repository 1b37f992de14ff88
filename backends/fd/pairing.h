/* SPDX-License-Identifier: MIT */
/*
 * How a data descriptor finds its metadata (pairing.c). shm and memfd keep
 * an object's bytes in a data file of exactly the object's size, which
 * other programs may be handed, and the metadata and gift pool in a twin
 * whose name ends in IOM_PAIR_SUFFIX (shm's "NAME.iomem" in /dev/shm, an
 * anonymous memfd "LABEL.iomem" for memfd). The twin records the data
 * file's inode; the data file carries a mark naming its twin, so that a
 * descriptor of it that cannot reach the twin is refused, never given
 * metadata of its own.
 */
#ifndef IOMEM_PAIRING_H
#define IOMEM_PAIRING_H

#include "fdobj.h"

#include <sys/types.h>

#define IOM_PAIR_SUFFIX ".iomem"

/* Does the metadata in meta_fd describe the data file with inode ino?
 * 1 yes, 0 no, -errno when it cannot be read (a failed read must never
 * pass for "no", or an opener would rebuild the metadata under everyone). */
int iom_pair_describes(int meta_fd, uint64_t ino);

/* 0 when a descriptor of the data file is open as a handle opened with
 * flags needs (mapping needs read access, IOMEM_RDWR write access). */
int iom_pair_check_access(struct iomem *f, int fd, unsigned flags);

/* Mark f's data file as paired with the twin called twin. */
void iom_pair_mark(struct iomem *f, const char *twin);

/* Keep a descriptor of f's twin (attached) where a descriptor of its data
 * file alone can find it, until iom_pair_drop at f's close: 0 or -errno. */
int iom_pair_hold(struct iomem *f);
void iom_pair_drop(const struct iomem *f);

/*
 * Attach f (data_fd and page_size set, sized_data) given the descriptors
 * fds[0..nfds) a caller passed: the data file, and its twin when nfds is
 * 2. found is a twin the backend found by name (-1: none; closed here when
 * not used) and why the error met looking for it. Without a twin that
 * describes it, another handle of this process may hold one; else a
 * marked data file is refused, an unmarked one (made by another program)
 * attaches with metadata of its own. On failure data_fd is -1 again and
 * the caller still owns what it passed.
 */
int iom_pair_open_fds(struct iomem *f, const int *fds, int nfds, int found, int why,
                      const struct iomem_opts *o);

#endif /* IOMEM_PAIRING_H */
