/* SPDX-License-Identifier: MIT */
/*
 * The msharefs ioctl ABIs (see mshare_abi.h). Numbers and layouts are the
 * kernel's: the structures are fixed-width and padded as the kernel pads
 * them, and checked at compile time.
 */
#define _GNU_SOURCE
#include "mshare_abi.h"
#include "syscalls.h"

#include <errno.h>
#include <stddef.h>
#include <linux/ioctl.h>
#include <sys/mman.h>

/* CREATE_MAPPING's argument in both: the first field is an offset into
 * the region in the 2025 v2/v3 postings, an absolute address before. */
struct mshare_create {
        uint64_t where, size, offset;
        uint32_t prot, flags, fd;
};
_Static_assert(sizeof(struct mshare_create) == 40, "struct mshare_create is 40 bytes");

/* The older postings' size and address of a region. */
struct mshare_info {
        uint64_t start, size;
};
_Static_assert(sizeof(struct mshare_info) == 16, "struct mshare_info is 16 bytes");

/* 2024 RFC v3 and 2025 v1. */
#define MSHAREFS_OLD_GET_SIZE       _IOR('x', 0, struct mshare_info)
#define MSHAREFS_OLD_SET_SIZE       _IOW('x', 1, struct mshare_info)
#define MSHAREFS_OLD_CREATE_MAPPING _IOW('x', 2, struct mshare_create)
/* 2025 v2 and v3 (UNMAP has SET_SIZE's old number; never sent before the
 * probe has ruled the older ABI out). */
#define MSHAREFS_CREATE_MAPPING     _IOW('x', 0, struct mshare_create)

static int ioctl_err(int fd, unsigned long req, void *arg)
{
        return iom_sys.ioctl(fd, req, arg) == 0 ? 0 : -errno;
}

static int create_with(int fd, unsigned long req, uint64_t where, uint64_t len, int prot,
                       int backing_fd, uint64_t backing_off)
{
        struct mshare_create c = {
                .where = where,
                .size = len,
                .offset = backing_off,
                .prot = (uint32_t)prot,
                .flags = MAP_SHARED | MAP_FIXED,
                .fd = (uint32_t)backing_fd,
        };
        return ioctl_err(fd, req, &c);
}

/* ---- 2024 RFC v3, 2025 v1: SET_SIZE/GET_SIZE, absolute addresses ------- */

/* GET_SIZE reads only, and its number is unused by the later ABI. */
static int old_probe(int fd)
{
        struct mshare_info info;
        int err = ioctl_err(fd, MSHAREFS_OLD_GET_SIZE, &info);
        return err == 0 ? 1 : err == -ENOTTY || err == -EINVAL ? 0 : err;
}

static int old_get_size(int fd, uint64_t *size, uint64_t *start)
{
        struct mshare_info info;
        int err = ioctl_err(fd, MSHAREFS_OLD_GET_SIZE, &info);
        if (!err) {
                *size = info.size;
                *start = info.start;
        }
        return err;
}

static int old_set_size(int fd, uint64_t size, uint64_t start)
{
        struct mshare_info info = { .start = start, .size = size };
        return ioctl_err(fd, MSHAREFS_OLD_SET_SIZE, &info);
}

static int old_create_mapping(int fd, char *base, uint64_t off, uint64_t len, int prot,
                              int backing_fd, uint64_t backing_off)
{
        return create_with(fd, MSHAREFS_OLD_CREATE_MAPPING, (uint64_t)(uintptr_t)(base + off), len,
                           prot, backing_fd, backing_off);
}

/* ---- 2025 v2/v3: ftruncate/fstat, offsets into the region ---------------- */

/* The fallback once the older ABI has said no: nothing to ask that the
 * older kernels would misread. */
static int new_probe(int fd)
{
        struct stat st;
        return iom_sys.fstat(fd, &st) == 0 ? 1 : -errno;
}

static int new_get_size(int fd, uint64_t *size, uint64_t *start)
{
        struct stat st;
        if (iom_sys.fstat(fd, &st))
                return -errno;
        *size = (uint64_t)st.st_size;
        *start = 0;
        return 0;
}

static int new_set_size(int fd, uint64_t size, uint64_t start)
{
        (void)start;
        return iom_sys.ftruncate(fd, (off_t)size) == 0 ? 0 : -errno;
}

static int new_create_mapping(int fd, char *base, uint64_t off, uint64_t len, int prot,
                              int backing_fd, uint64_t backing_off)
{
        (void)base;
        return create_with(fd, MSHAREFS_CREATE_MAPPING, off, len, prot, backing_fd, backing_off);
}

/* Probed in this order: each probe may rely on the ones before it having
 * answered no. */
static const struct mshare_abi abis[] = {
        {
                .name = "2024 RFC v3 / 2025 v1 (SET_SIZE, fixed address)",
                .fixed_address = true,
                .file_backing = false,
                .probe = old_probe,
                .get_size = old_get_size,
                .set_size = old_set_size,
                .create_mapping = old_create_mapping,
        },
        {
                .name = "2025 v2/v3 (ftruncate, region offsets)",
                .fixed_address = false,
                .file_backing = true, /* v3; v2 refuses, and anonymous memory is used */
                .probe = new_probe,
                .get_size = new_get_size,
                .set_size = new_set_size,
                .create_mapping = new_create_mapping,
        },
};

const struct mshare_abi *iom_mshare_abi_probe(int fd, int *err)
{
        for (size_t i = 0; i < sizeof abis / sizeof abis[0]; i++) {
                int r = abis[i].probe(fd);
                if (r == 1)
                        return &abis[i];
                if (r < 0) {
                        *err = r;
                        return NULL;
                }
        }
        *err = -ENOTTY;
        return NULL;
}
