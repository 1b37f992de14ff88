/* SPDX-License-Identifier: MIT */
/*
 * Writing CPU cache lines back to memory from user space (cacheflush.c),
 * for iomem_persist on mappings that reach persistent memory directly
 * (MAP_SYNC on a DAX file, a device-DAX device): there the kernel tracks
 * nothing written through the mapping, and durability is the program's
 * own flush and fence, as in libpmem2.
 */
#ifndef IOMEM_CACHEFLUSH_H
#define IOMEM_CACHEFLUSH_H

#include <stddef.h>

/* The best instruction this CPU has: IOMEM_PERSIST_CLWB, _CLFLUSHOPT or
 * _CLFLUSH, or IOMEM_PERSIST_NONE where there is none (not x86). */
unsigned iom_cache_flush_kind(void);

/* Write back every cache line of [addr, addr+len) with instruction kind
 * (one iom_cache_flush_kind gave, or one the CPU also has); each page
 * must be mapped and readable. Then iom_cache_fence, once after several,
 * so that the lines reach memory before any store after it. */
void iom_cache_writeback(unsigned kind, const void *addr, size_t len);
void iom_cache_fence(void);

#endif /* IOMEM_CACHEFLUSH_H */
