/* SPDX-License-Identifier: MIT */
/*
 * The ioctl interfaces msharefs has had. The patches are not in mainline
 * and their ABI changed between postings (the same ioctl number means
 * SET_SIZE in one and UNMAP in the other), so the backend talks to the
 * kernel only through one of these, chosen by iom_mshare_abi_probe. A new
 * posting (the next one moves to system calls) is one more entry in
 * mshare_abi.c; nothing else changes.
 */
#ifndef IOMEM_MSHARE_ABI_H
#define IOMEM_MSHARE_ABI_H

#include <stdbool.h>
#include <stdint.h>

/* Every call returns 0 or a negative errno. */
struct mshare_abi {
        const char *name;        /* for messages and iomem-mshare(7) */
        /* Every process must map the region at the address it was given
         * when it was sized (the older postings). */
        bool fixed_address;
        /* Can a file (memfd, hugetlb) back the region, or only anonymous
         * shared memory? May be refined by create_mapping's answer. */
        bool file_backing;
        /* 1 when the kernel behind region file fd speaks this ABI, 0 when
         * not; asks only what is unambiguous and changes nothing. */
        int (*probe)(int fd);
        /* The region's size (0: not sized yet) and, with fixed_address,
         * its address. */
        int (*get_size)(int fd, uint64_t *size, uint64_t *start);
        /* Size the region once; start is its address with fixed_address. */
        int (*set_size)(int fd, uint64_t size, uint64_t start);
        /* Map len bytes of backing_fd from backing_off (backing_fd -1:
         * anonymous shared memory) at off in the region, which this
         * process has mapped at base. */
        int (*create_mapping)(int fd, char *base, uint64_t off, uint64_t len, int prot,
                              int backing_fd, uint64_t backing_off);
};

/* The ABI the kernel behind region file fd speaks: NULL with *err set
 * (-ENOTTY when none of those known) otherwise. */
const struct mshare_abi *iom_mshare_abi_probe(int fd, int *err);

#endif /* IOMEM_MSHARE_ABI_H */
