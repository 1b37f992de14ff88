/* SPDX-License-Identifier: MIT */
/*
 * Memory for the shared tables, inside the metadata's span: blocks of
 * 4 KiB times a power of two, handed out from the top of the heap or from
 * a free list of their size. Every change goes through the undo log, so a
 * block handed out by a change that does not complete is free again.
 * Memory is backed (fallocate) before the heap or the log reaches it:
 * growing never leaves a mapping that could raise SIGBUS, and a full
 * filesystem is -ENOSPC.
 */
#ifndef IOMEM_HEAP_H
#define IOMEM_HEAP_H

#include <stdint.h>

#include "meta.h"

#define IOM_HEAP_BLOCK UINT64_C(4096) /* the smallest block */

/* A block of at least bytes; its offset in the metadata in *off. */
int iom_heap_alloc(struct iomem *f, uint64_t bytes, uint64_t *off);
/* Give back the block at off, of the size it was asked for with. */
int iom_heap_free(struct iomem *f, uint64_t off, uint64_t bytes);

/* Is [off, off+len) inside the blocks handed out? A check for offsets
 * read from the shared tables, which another process may have spoilt. */
static inline bool iom_heap_holds(const struct iom_meta *m, uint64_t off, uint64_t len)
{
        return off >= IOM_HEAP_OFF && len <= m->heap_top && off <= m->heap_top - len &&
               !(off & 7);
}

/* Back the log's last need bytes (undo.c). */
int iom_heap_back_log(struct iomem *f, uint64_t need);
/* After a change: give back the log's memory beyond what small changes
 * use. */
void iom_heap_trim_log(struct iomem *f);

#endif /* IOMEM_HEAP_H */
