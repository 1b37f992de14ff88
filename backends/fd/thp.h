/* SPDX-License-Identifier: MIT */
/*
 * Transparent huge pages for tmpfs memory (shm and memfd objects): what
 * the kernel does for a file's pages, and whether it waits for advice.
 */
#ifndef IOMEM_THP_H
#define IOMEM_THP_H

#include <stddef.h>

enum iom_thp {
        IOM_THP_NEVER,  /* base pages only */
        IOM_THP_ADVISE, /* huge pages where a mapping asks (MADV_HUGEPAGE) */
        IOM_THP_ALWAYS, /* huge pages wherever they fit, advice or not */
};

/* The policy for the pages of the tmpfs file open at fd: its mount's
 * huge= option, or for the kernel's own mount (memfd) the sysctl
 * /sys/kernel/mm/transparent_hugepage/shmem_enabled, which also forces
 * or denies huge pages on every mount. IOM_THP_NEVER when fd is not on
 * tmpfs or nothing can be read. */
enum iom_thp iom_thp_of(int fd);

/* The selected word of a sysfs choice ("never [advise] always") into
 * out, "" when the file cannot be read. */
void iom_sysfs_choice(const char *path, char *out, size_t cap);

#endif /* IOMEM_THP_H */
