/* SPDX-License-Identifier: MIT */
/* The undo log of the shared metadata (undo.h). */
#include "undo.h"
#include "fdobj.h"
#include "heap.h"

#include <string.h>

/* A saved range: its offset in the metadata and length, then its old
 * bytes, padded to 8. The newest record is lowest in memory, so walking up
 * from span - log_len undoes the newest first. */
struct undo_rec {
        uint64_t off, len;
};

static uint64_t rec_bytes(uint64_t len)
{
        return sizeof(struct undo_rec) + iom_round_up(len, 8);
}

int iom_undo_save(struct iomem *f, const void *p, size_t len)
{
        struct iom_meta *m = fdo(f)->meta;
        uint64_t off = (uint64_t)((const char *)p - (const char *)m);
        uint64_t need = m->log_len + rec_bytes(len);
        int err = iom_heap_back_log(f, need);
        if (err)
                return err;
        if (m->log_len == 0) {
                /* The first change since locking: readers that hold no
                 * lock (iom_seq_read_begin) retry until it is kept. */
                __atomic_store_n(&m->change_seq, m->change_seq | 1, __ATOMIC_RELAXED);
                IOM_FENCE(__ATOMIC_RELEASE);
        }
        char *at = (char *)m + m->span - need;
        struct undo_rec r = { off, len };
        memcpy(at, &r, sizeof r);
        memcpy(at + sizeof r, p, len);
        /* The record is whole before it counts: a process killed after
         * this store has not changed the bytes yet, or has saved them. */
        __atomic_store_n(&m->log_len, need, __ATOMIC_RELEASE);
        return 0;
}

int iom_undo_set(struct iomem *f, uint64_t *p, uint64_t v)
{
        int err = *p == v ? 0 : iom_undo_save(f, p, sizeof *p);
        if (!err)
                *p = v;
        return err;
}

int iom_undo_set32(struct iomem *f, uint32_t *p, uint32_t v)
{
        int err = *p == v ? 0 : iom_undo_save(f, p, sizeof *p);
        if (!err)
                *p = v;
        return err;
}

void iom_undo_commit(struct iomem *f)
{
        struct iom_meta *m = fdo(f)->meta;
        if (!m->log_len)
                return;
        __atomic_store_n(&m->log_len, 0, __ATOMIC_RELEASE);
        __atomic_store_n(&m->change_seq, (m->change_seq | 1) + 1, __ATOMIC_RELEASE);
        iom_heap_trim_log(f);
}

uint64_t iom_undo_mark(const struct iomem *f)
{
        return fdo(f)->meta->log_len;
}

/* Put back the bytes of the records newer than mark, newest first. */
static void undo_to(struct iom_meta *m, uint64_t mark)
{
        uint64_t len = m->log_len, span = m->span;
        if (len > span || len > m->log_backed || mark > len)
                return; /* not ours to walk: the lock's checks refuse it */
        for (uint64_t pos = span - len; pos + sizeof(struct undo_rec) <= span - mark;) {
                struct undo_rec r;
                memcpy(&r, (char *)m + pos, sizeof r);
                if (r.len > span || rec_bytes(r.len) > span - pos || r.off > span ||
                    r.len > span - r.off)
                        break;
                memmove((char *)m + r.off, (char *)m + pos + sizeof r, r.len);
                pos += rec_bytes(r.len);
        }
        /* Once the bytes are back: a process killed before this store
         * undoes the same records again, to the same effect. */
        __atomic_store_n(&m->log_len, mark, __ATOMIC_RELEASE);
        if (mark == 0 && (m->change_seq & 1))
                __atomic_store_n(&m->change_seq, m->change_seq + 1, __ATOMIC_RELEASE);
}

void iom_undo_back_to(struct iomem *f, uint64_t mark)
{
        undo_to(fdo(f)->meta, mark);
}

void iom_undo_rollback(struct iom_meta *m)
{
        undo_to(m, 0);
}
