/* SPDX-License-Identifier: MIT */
/* Blocks for the shared tables (heap.h). */
#include "heap.h"
#include "fdobj.h"
#include "undo.h"

/* Memory is backed in steps of this much (or of a page, if larger). */
#define BACK_STEP (UINT64_C(64) << 10)
/* The log keeps this much memory between changes. */
#define LOG_KEEP (UINT64_C(1) << 20)

static uint64_t back_step(const struct iomem *f)
{
        return iom_max(BACK_STEP, f->page_size);
}

/* Memory for [rel, rel+len) of the metadata. */
static int back(struct iomem *f, uint64_t rel, uint64_t len)
{
        struct iom_fdobj *obj = fdo(f);
        if (obj->meta_private)
                return 0; /* anonymous memory */
        return obj->phys->back(f, IOM_META_OFF + rel, len);
}

static int no_room(struct iomem *f, uint64_t want)
{
        return iom_fail(f->name, -ENOSPC,
                        "its shared tables need %llu bytes more than the %llu their metadata may use",
                        (unsigned long long)want, (unsigned long long)fdo(f)->meta->span);
}

static unsigned size_class(uint64_t bytes)
{
        unsigned c = 0;
        while ((IOM_HEAP_BLOCK << c) < bytes)
                c++;
        return c;
}

int iom_heap_alloc(struct iomem *f, uint64_t bytes, uint64_t *off)
{
        struct iom_meta *m = fdo(f)->meta;
        unsigned c = size_class(bytes);
        if (c >= IOM_HEAP_CLASSES)
                return no_room(f, bytes);
        uint64_t size = IOM_HEAP_BLOCK << c, head = m->free_blocks[c];
        if (head) {
                if (!iom_heap_holds(m, head, size))
                        return iom_fail(f->name, -EBADMSG, "the shared metadata is corrupt");
                uint64_t next = *(uint64_t *)((char *)m + head);
                int err = iom_undo_set(f, &m->free_blocks[c], next);
                if (!err)
                        *off = head;
                return err;
        }
        uint64_t top = m->heap_top;
        if (size > m->span || top > m->span - size || top + size > m->span - m->log_backed)
                return no_room(f, size);
        if (top + size > m->heap_backed) {
                uint64_t step = back_step(f);
                uint64_t to = iom_min(iom_round_up(top + size, step), m->span - m->log_backed);
                int err = back(f, m->heap_backed, to - m->heap_backed);
                if (err)
                        return err;
                m->heap_backed = to; /* not undone: the memory stays backed */
        }
        int err = iom_undo_set(f, &m->heap_top, top + size);
        if (!err)
                *off = top;
        return err;
}

int iom_heap_free(struct iomem *f, uint64_t off, uint64_t bytes)
{
        struct iom_meta *m = fdo(f)->meta;
        unsigned c = size_class(bytes);
        uint64_t *link = (uint64_t *)((char *)m + off);
        int err = iom_undo_set(f, link, m->free_blocks[c]);
        return err ? err : iom_undo_set(f, &m->free_blocks[c], off);
}

int iom_heap_back_log(struct iomem *f, uint64_t need)
{
        struct iom_meta *m = fdo(f)->meta;
        if (need <= m->log_backed)
                return 0;
        uint64_t to = iom_round_up(need, back_step(f));
        if (to > m->span || m->heap_backed > m->span - to)
                return no_room(f, need - m->log_backed);
        int err = back(f, m->span - to, to - m->log_backed);
        if (!err)
                m->log_backed = to;
        return err;
}

void iom_heap_trim_log(struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        struct iom_meta *m = obj->meta;
        uint64_t keep = iom_round_up(LOG_KEEP, back_step(f));
        if (m->log_backed <= keep || obj->meta_private)
                return;
        obj->phys->punch(f, IOM_META_OFF + m->span - m->log_backed, m->log_backed - keep);
        m->log_backed = keep;
}
