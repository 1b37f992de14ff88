/* SPDX-License-Identifier: MIT */
/*
 * The gift pool's offsets (meta.h): the buffers iomem_alloc handed out,
 * by owner, and the ranges free for the next ones. What a gift, truncate,
 * settle or iomem_free lets go comes back here still backed, and the next
 * buffer is cut from it first, best fit: a producer that hands the same
 * range over again and again frees and faults no page. At most
 * iom_pool_keep_limit bytes stay backed (as much as the file has in the
 * pool, and 64 MiB); beyond that iom_pool_trim (at every unlock) gives the
 * memory of the highest free ranges back and keeps their offsets, which
 * later buffers reuse before the pool grows. So the pool spans at most
 * what was ever live at once plus what fragmentation strands, and holds at
 * most the limit of memory that nothing uses.
 *
 * Free ranges of one kind (backed or not) that touch are one record; a
 * buffer is cut from a run of them of either kind. Records are checked
 * against the pool's bounds before use: a peer that spoilt them cannot
 * make this process write to, or punch, anything but the pool.
 */
#include "fdobj.h"
#include "smap.h"
#include "undo.h"

#include <stdarg.h>
#include <stdio.h>

/* Free memory the pool keeps backed beyond what the file has in it:
 * enough for a producer's buffers in flight. */
#define POOL_KEEP (UINT64_C(64) << 20)
/* Ranges trim gives back per change: the undo log needs room for these. */
#define TRIM_BATCH 16

/* As much as the file has in the pool (gifted and not yet put in place)
 * and POOL_KEEP more, so that a producer that replaces all of it at once,
 * with buffers in flight, finds all of it again; two pages more where
 * pages are larger. */
uint64_t iom_pool_keep_limit(const struct iomem *f)
{
        const struct iom_meta *m = fdo(f)->meta;
        uint64_t span = m->pool_next - IOM_POOL_OFF, other = m->pool_held + m->pool_kept + m->pool_unbacked;
        return (span > other ? span - other : 0) + iom_max(POOL_KEEP, 2 * (uint64_t)f->page_size);
}

static int add_to(struct iomem *f, uint64_t *counter, uint64_t add, uint64_t sub)
{
        return iom_undo_set(f, counter, *counter + add - iom_min(sub, *counter + add));
}

/* The counter of free bytes of a kind. */
static uint64_t *free_counter(struct iom_meta *m, bool backed)
{
        return backed ? &m->pool_kept : &m->pool_unbacked;
}

/* Does free record r lie within the pool handed out? */
static bool in_bounds(const struct iom_meta *m, const struct iom_rec *r)
{
        return r->key >= IOM_POOL_OFF && r->key < m->pool_next && r->free.len &&
               r->free.len <= m->pool_next - r->key && r->free.backed <= 1;
}

int iom_pool_add(struct iomem *f, uint32_t owner, uint64_t phys, uint64_t len)
{
        struct iom_meta *m = fdo(f)->meta;
        struct iom_rec r = { .key = phys, .pool = { .len = len, .owner = owner } };
        int err = iom_smap_insert(f, &m->pool, &r);
        return err ? err : add_to(f, &m->pool_held, len, 0);
}

int iom_pool_forget(struct iomem *f, uint64_t phys)
{
        struct iom_meta *m = fdo(f)->meta;
        const struct iom_rec *r = iom_smap_get(m, &m->pool, phys);
        if (!r)
                return 0;
        uint64_t len = r->pool.len;
        int err = iom_smap_erase(f, &m->pool, phys);
        return err ? err : add_to(f, &m->pool_held, 0, len);
}

static int corrupt(struct iomem *f, uint64_t phys)
{
        return iom_fail(f->name, -EBADMSG, "the shared metadata is corrupt (the gift pool's free "
                        "ranges are malformed or overlap at %#llx)", (unsigned long long)phys);
}

static int recycle(struct iomem *f, uint64_t phys, uint64_t len, bool backed)
{
        struct iom_meta *m = fdo(f)->meta;
        struct iom_rec r = { .key = phys, .free = { .len = len, .backed = backed } };
        const struct iom_rec *next = iom_smap_ceil(m, &m->pool_free, phys, NULL);
        if (next && (next->key < phys + len || !in_bounds(m, next)))
                return corrupt(f, next->key);
        if (next && next->key == phys + len && next->free.backed == backed) {
                r.free.len += next->free.len;
                int err = iom_smap_erase(f, &m->pool_free, next->key);
                if (err)
                        return err;
        }
        const struct iom_rec *prev = iom_smap_floor(m, &m->pool_free, phys, NULL);
        if (prev && (prev->key + prev->free.len > phys || !in_bounds(m, prev)))
                return corrupt(f, phys);
        int err;
        if (prev && prev->key + prev->free.len == phys && prev->free.backed == backed) {
                uint64_t at = prev->key;
                r.key = at;
                r.free.len += prev->free.len;
                err = iom_smap_update(f, &m->pool_free, at, &r);
        } else {
                err = iom_smap_insert(f, &m->pool_free, &r);
        }
        return err ? err : add_to(f, free_counter(m, backed), len, 0);
}

int iom_pool_recycle(struct iomem *f, uint64_t phys, uint64_t len, bool backed)
{
        return len ? IOM_UNDO_STEP(f, recycle(f, phys, len, backed)) : 0;
}

bool iom_pool_is_free(struct iomem *f, uint64_t phys, uint64_t len)
{
        struct iom_meta *m = fdo(f)->meta;
        struct iom_cursor c;
        const struct iom_rec *r = iom_smap_floor(m, &m->pool_free, phys, &c);
        uint64_t end = phys + len;
        /* Free ranges of either kind, end to end, from phys to end. */
        for (uint64_t at = phys; r && r->key <= at && in_bounds(m, r);
             r = iom_smap_next(m, &m->pool_free, &c)) {
                at = iom_max(at, r->key + r->free.len);
                if (at >= end)
                        return true;
        }
        return false;
}

/* Take [phys, phys+len) out of the one free range that holds it. */
static int claim_within(struct iomem *f, const struct iom_rec *r, uint64_t phys, uint64_t len)
{
        struct iom_meta *m = fdo(f)->meta;
        struct iom_rec whole = *r;
        struct iom_rec head = whole, tail = whole;
        head.free.len = phys - whole.key;
        tail.key = phys + len;
        tail.free.len = whole.key + whole.free.len - tail.key;
        int err = head.free.len ? iom_smap_update(f, &m->pool_free, whole.key, &head)
                                : iom_smap_erase(f, &m->pool_free, whole.key);
        if (!err && tail.free.len)
                err = iom_smap_insert(f, &m->pool_free, &tail);
        if (!err)
                err = add_to(f, free_counter(m, whole.free.backed), 0, len);
        return err;
}

int iom_pool_claim(struct iomem *f, uint64_t phys, uint64_t len)
{
        struct iom_meta *m = fdo(f)->meta;
        uint64_t mark = iom_undo_mark(f);
        /* From each of the free ranges, end to end, that it spans. */
        for (uint64_t at = phys, end = phys + len; at < end;) {
                const struct iom_rec *r = iom_smap_floor(m, &m->pool_free, at, NULL);
                if (!r || r->key + r->free.len <= at || !in_bounds(m, r)) {
                        iom_undo_back_to(f, mark);
                        return iom_fail(f->name, -EBADMSG, "the shared metadata is corrupt ([%#llx, "
                                        "+%llu) of the gift pool is not free)",
                                        (unsigned long long)phys, (unsigned long long)len);
                }
                uint64_t n = iom_min(end, r->key + r->free.len) - at;
                int err = claim_within(f, r, at, n);
                if (err) {
                        iom_undo_back_to(f, mark);
                        return err;
                }
                at += n;
        }
        return 0;
}

/* Nothing to take, for the reason given. */
static int IOM_PRINTF(2, 3) no_room(struct iomem *f, const char *fmt, ...)
{
        char why[300];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        iom_fail(f->name, -ENOSPC, "%s", why);
        return 1;
}

/* Reap the dead among the object's owners, whose buffers become free:
 * true when that freed some. */
static bool reap_dead_holders(struct iomem *f)
{
        struct iom_meta *m = fdo(f)->meta;
        uint64_t held = m->pool_held;
        for (const struct iom_rec *o = iom_smap_ceil(m, &m->owners, 0, NULL); o && held;) {
                uint32_t owner = (uint32_t)o->key;
                if (owner != fdo(f)->owner)
                        iom_owner_check(f, owner);
                o = iom_smap_ceil(m, &m->owners, (uint64_t)owner + 1, NULL);
        }
        return m->pool_held < held;
}

/* Free ranges end to end, of either kind, as a buffer may be cut from
 * their start: the first backed bytes of them need zeroing only. */
struct run {
        uint64_t start, len, backed;
};

/* Is run a better place for a buffer of len bytes than best? Best fit,
 * backed first: the least memory to zero or back, and large runs left
 * whole for large buffers. */
static bool better(const struct run *run, const struct run *best, uint64_t len)
{
        bool backed = run->backed >= len, best_backed = best->backed >= len;
        return run->len >= len && (!best->len || backed > best_backed ||
                                   (backed == best_backed && run->len < best->len));
}

int iom_pool_take(struct iomem *f, uint64_t len, uint64_t end, bool compact,
                  iom_pool_usable_fn *usable, struct iom_pool_take *out)
{
        struct iom_meta *m = fdo(f)->meta;
again:;
        struct run best = { 0 }, cur = { 0 };
        uint64_t free = 0;
        struct iom_cursor c;
        for (const struct iom_rec *r = iom_smap_ceil(m, &m->pool_free, 0, &c);;
             r = iom_smap_next(m, &m->pool_free, &c)) {
                if (r && !in_bounds(m, r))
                        return corrupt(f, r->key);
                if (r && cur.len && r->key == cur.start + cur.len) {
                        if (cur.backed == cur.len && r->free.backed)
                                cur.backed += r->free.len;
                        cur.len += r->free.len;
                } else {
                        if (better(&cur, &best, len) && usable(f, cur.start, len))
                                best = cur;
                        /* An exact fit ends the search. */
                        if (!r || (best.backed >= len && best.len == len))
                                break;
                        cur = (struct run){ r->key, r->free.len, r->free.backed ? r->free.len : 0 };
                }
                free += r->free.len;
        }
        int err;
        if (best.len) {
                if ((err = iom_pool_claim(f, best.start, len)))
                        return err;
                *out = (struct iom_pool_take){ .phys = best.start, .recycled = true,
                                               .backed = best.backed >= len };
                return 0;
        }
        /* Nothing fits. A process that died holding buffers gave them
         * back: the pool looks again before it grows. */
        if (reap_dead_holders(f))
                goto again;
        /* The free ranges were all counted. Compaction (putting gifted
         * bytes in place) helps when the pool holds more than buffers. */
        uint64_t span = m->pool_next - IOM_POOL_OFF, used = span - iom_min(free, span);
        if (compact && used > m->pool_held && span + len > 2 * used + iom_pool_keep_limit(f))
                return no_room(f,
                                "its gift pool's free offsets (%llu of %llu bytes) are in pieces "
                                "smaller than %llu bytes", (unsigned long long)(span - used),
                                (unsigned long long)span, (unsigned long long)len);
        if (m->pool_next > end || len > end - m->pool_next)
                return no_room(f,
                                "its gift pool (%llu bytes) has no free range of %llu bytes: %llu are "
                                "buffers not yet gifted, %llu free and backed, the rest the file's "
                                "or free in smaller pieces",
                                (unsigned long long)(end - IOM_POOL_OFF), (unsigned long long)len,
                                (unsigned long long)m->pool_held, (unsigned long long)m->pool_kept);
        uint64_t phys = m->pool_next;
        if ((err = iom_undo_set(f, &m->pool_next, phys + len)))
                return err;
        *out = (struct iom_pool_take){ .phys = phys };
        return 0;
}

/* Is buffer record r within the pool handed out, page-aligned? */
static bool buffer_in_bounds(const struct iomem *f, const struct iom_meta *m, const struct iom_rec *r)
{
        return r->key >= IOM_POOL_OFF && r->key < m->pool_next && r->pool.len &&
               r->pool.len <= m->pool_next - r->key && !((r->key | r->pool.len) & (f->page_size - 1));
}

static int drop_owner(struct iomem *f, uint32_t owner)
{
        struct iom_fdobj *obj = fdo(f);
        struct iom_meta *m = obj->meta;
        int err = 0;
        for (const struct iom_rec *r = iom_smap_ceil(m, &m->pool, 0, NULL); r && !err;) {
                uint64_t phys = r->key, len = r->pool.len;
                if (r->pool.owner == owner && !buffer_in_bounds(f, m, r)) {
                        err = iom_pool_forget(f, phys); /* spoilt: nothing of it is touched */
                } else if (r->pool.owner == owner) {
                        /* Emptied first, so that its memory counts nowhere
                         * and nothing a late writer leaves in it reaches
                         * the next buffer unzeroed; should this change be
                         * undone, the buffer is still the owner's, for the
                         * next reaper. */
                        obj->phys->punch(f, phys, len);
                        if (!(err = iom_pool_forget(f, phys)))
                                err = iom_pool_recycle(f, phys, len, false);
                }
                r = iom_smap_ceil(m, &m->pool, phys + 1, NULL);
        }
        return err;
}

int iom_pool_drop_owner(struct iomem *f, uint32_t owner)
{
        return IOM_UNDO_STEP(f, drop_owner(f, owner));
}

struct range {
        uint64_t phys, len;
};

/* Mark up to TRIM_BATCH backed ranges, from the highest offsets, unbacked
 * until no more than keep bytes are backed; into v. The count, or -errno. */
static int unback_some(struct iomem *f, uint64_t keep, struct range *v)
{
        struct iom_meta *m = fdo(f)->meta;
        int n = 0;
        for (const struct iom_rec *r = iom_smap_floor(m, &m->pool_free, UINT64_MAX, NULL);
             r && n < TRIM_BATCH && m->pool_kept > keep;) {
                if (!in_bounds(m, r))
                        return corrupt(f, r->key);
                uint64_t at = r->key, len = r->free.len;
                if (r->free.backed) {
                        /* The range's top, as much as is over the limit. */
                        uint64_t cut = iom_min(len, iom_round_up(m->pool_kept - keep, f->page_size));
                        uint64_t from = at + len - cut;
                        int err = iom_pool_claim(f, from, cut);
                        if (!err)
                                err = iom_pool_recycle(f, from, cut, false);
                        if (err)
                                return err;
                        v[n].phys = from;
                        v[n++].len = cut;
                }
                r = at > IOM_POOL_OFF ? iom_smap_floor(m, &m->pool_free, at - 1, NULL) : NULL;
        }
        return n;
}

void iom_pool_trim(struct iomem *f, uint64_t keep)
{
        struct iom_fdobj *obj = fdo(f);
        /* The pool can be punched through a handle open for writing, even
         * where the data is sealed against writes. */
        if (obj->meta->pool_kept <= keep || !(f->flags & IOMEM_RDWR))
                return;
        struct iom_error_saved saved;
        iom_error_save(&saved);
        struct range v[TRIM_BATCH];
        int n;
        /* Marked before punched, each batch kept first: a process killed
         * in between leaves memory marked unbacked, which the next buffer
         * cut from it punches and backs again, never a range marked
         * backed that has none. */
        while ((n = unback_some(f, keep, v)) > 0) {
                iom_meta_keep(f);
                for (int i = 0; i < n; i++)
                        obj->phys->punch(f, v[i].phys, v[i].len);
        }
        if (n < 0) /* no room for the change: the memory stays for a later trim */
                iom_meta_undo(f);
        iom_error_restore(&saved);
}

void iom_pool_empty(struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        struct iom_meta *m = obj->meta;
        if (!(f->flags & IOMEM_RDWR))
                return;
        iom_pool_trim(f, 0);
        struct iom_cursor c;
        for (const struct iom_rec *r = iom_smap_ceil(m, &m->pool_free, 0, &c); r && in_bounds(m, r);
             r = iom_smap_next(m, &m->pool_free, &c))
                if (!r->free.backed)
                        obj->phys->punch(f, r->key, r->free.len);
}
