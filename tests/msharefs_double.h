/* SPDX-License-Identifier: MIT */
/*
 * A test double of msharefs, for kernels without it (mainline). It stands
 * in for the kernel behind the library's syscall table (iom_sys): a tmpfs
 * directory plays the mount, its files play the regions, and every call
 * the backend makes on them is checked against the rules the msharefs
 * postings document, failing with the errno the kernel gives:
 *
 * - statfs of the directory reports the msharefs magic; mshare_info holds
 *   the alignment as decimal text;
 * - a region is sized once, to a non-zero multiple of the alignment
 *   (ftruncate in the 2025 v2/v3 ABI, SET_SIZE with an aligned address in
 *   the older one, where ftruncate is refused) -- EINVAL otherwise;
 * - the ioctl numbers and structure sizes of the ABI in force; any other
 *   request is ENOTTY (so the older GET_SIZE is a safe probe);
 * - CREATE_MAPPING needs a sized region, MAP_SHARED|MAP_FIXED, a range
 *   inside the region, and (v1, v2) anonymous memory: EINVAL otherwise;
 * - mmap of a region covers it whole, MAP_SHARED, from offset 0, and in
 *   the older ABI at its start address: EINVAL otherwise;
 * - v3: the process that sized a region owns it; when that process exits
 *   the region's memory is taken away from every process that maps it.
 *
 * State lives in the files (an extended attribute of each region) so that
 * forked processes share it, as they would share the kernel's.
 */
#ifndef MSHAREFS_DOUBLE_H
#define MSHAREFS_DOUBLE_H

#include <stdint.h>

/* The ioctl ABIs: 1 = 2024 RFC v3 / 2025 v1, 2 and 3 = the 2025 postings. */
/* Install the double for ABI abi with alignment align: a fresh directory,
 * IOMEM_MSHARE_DIR pointing at it, the syscall table's entries swapped.
 * 0 or a negative errno. Removed (directory and all) when this process
 * exits. */
int msharefs_double_install(int abi, uint64_t align);
/* Put the table back as libc provides it (the directory stays). */
void msharefs_double_uninstall(void);
/* The alignment installed (0 when not installed). */
uint64_t msharefs_double_alignment(void);
/* The directory, or NULL when not installed. */
const char *msharefs_double_dir(void);
/* 1 when the double can take a v3 region's memory away when its owner
 * exits (it needs pidfd_open(2), which valgrind does not know). */
int msharefs_double_watches_owners(void);
/* v3: return once the memory of region fd's exited owner has been taken
 * away (call it only after the owner has exited). */
void msharefs_double_settle(int region_fd);
/* 1 when /sys/fs/mshare is a real msharefs. */
int msharefs_real_kernel(void);

/* The double installs itself before main when IOMEM_MSHARE_DOUBLE_ABI is
 * v1, v2 or v3 (IOMEM_MSHARE_DOUBLE_ALIGN bytes, default 1 GiB), unless
 * /sys/fs/mshare is a real msharefs: then the tests run on the kernel. */

#endif
