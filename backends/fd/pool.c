/* SPDX-License-Identifier: MIT */
/*
 * The gift pool's offsets (meta.h): the buffers iomem_alloc handed out,
 * by owner, and the ranges free for the next ones. What a gift, truncate,
 * settle or iomem_free lets go comes back here still backed, and the next
 * buffer is cut from it first, best fit: a producer that hands the same
 * range over again and again frees and faults no page. At most
 * iom_pool_keep_limit bytes stay backed; beyond that iom_pool_trim (at
 * every unlock) gives the memory of the highest free ranges back and keeps
 * their offsets, which later buffers reuse before the pool grows. So the
 * pool spans at most what was ever live at once plus what fragmentation
 * strands, and holds at most the limit of memory that nothing uses.
 *
 * Free ranges of one kind (backed or not) that touch are one record, so
 * that a buffer can be cut from what two frees left side by side.
 */
#include "fdobj.h"
#include "smap.h"
#include "undo.h"

#include <stdarg.h>
#include <stdio.h>

/* Free memory the pool keeps backed: enough for a producer's buffers in
 * flight, and two pages where pages are larger. */
#define POOL_KEEP (UINT64_C(64) << 20)
/* Ranges trim gives back per change: the undo log needs room for these. */
#define TRIM_BATCH 16

uint64_t iom_pool_keep_limit(const struct iomem *f)
{
        return iom_max(POOL_KEEP, 2 * (uint64_t)f->page_size);
}

static int add_to(struct iomem *f, uint64_t *counter, uint64_t add, uint64_t sub)
{
        return iom_undo_set(f, counter, *counter + add - sub);
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
        return err ? err : add_to(f, &m->pool_held, 0, iom_min(len, m->pool_held));
}

static int corrupt(struct iomem *f, uint64_t phys)
{
        return iom_fail(f->name, -EBADMSG, "the shared metadata is corrupt (the gift pool's free "
                        "ranges overlap at %#llx)", (unsigned long long)phys);
}

int iom_pool_recycle(struct iomem *f, uint64_t phys, uint64_t len, bool backed)
{
        struct iom_meta *m = fdo(f)->meta;
        if (!len)
                return 0;
        struct iom_rec r = { .key = phys, .free = { .len = len, .backed = backed } };
        const struct iom_rec *next = iom_smap_ceil(m, &m->pool_free, phys, NULL);
        if (next && next->key < phys + len)
                return corrupt(f, next->key);
        if (next && next->key == phys + len && next->free.backed == backed) {
                r.free.len += next->free.len;
                int err = iom_smap_erase(f, &m->pool_free, next->key);
                if (err)
                        return err;
        }
        const struct iom_rec *prev = iom_smap_floor(m, &m->pool_free, phys, NULL);
        if (prev && prev->key + prev->free.len > phys)
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
        return err || !backed ? err : add_to(f, &m->pool_kept, len, 0);
}

int iom_pool_claim(struct iomem *f, uint64_t phys, uint64_t len)
{
        struct iom_meta *m = fdo(f)->meta;
        const struct iom_rec *r = iom_smap_floor(m, &m->pool_free, phys, NULL);
        if (!r || r->key + r->free.len < phys + len)
                return iom_fail(f->name, -EBADMSG, "the shared metadata is corrupt ([%#llx, +%llu) "
                                "of the gift pool is not free)", (unsigned long long)phys,
                                (unsigned long long)len);
        struct iom_rec whole = *r;
        struct iom_rec head = whole, tail = whole;
        head.free.len = phys - whole.key;
        tail.key = phys + len;
        tail.free.len = whole.key + whole.free.len - tail.key;
        int err = head.free.len ? iom_smap_update(f, &m->pool_free, whole.key, &head)
                                : iom_smap_erase(f, &m->pool_free, whole.key);
        if (!err && tail.free.len)
                err = iom_smap_insert(f, &m->pool_free, &tail);
        if (!err && whole.free.backed)
                err = add_to(f, &m->pool_kept, 0, iom_min(len, m->pool_kept));
        return err;
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

/* Reap the dead among the owners of outstanding buffers, whose buffers
 * become free: true when one was. */
static bool reap_dead_holders(struct iomem *f)
{
        struct iom_meta *m = fdo(f)->meta;
        bool reaped = false;
        for (const struct iom_rec *r = iom_smap_ceil(m, &m->pool, 0, NULL); r;) {
                uint64_t at = r->key;
                uint32_t owner = (uint32_t)r->pool.owner;
                /* (Gone: reaped. An owner not registered, in metadata that
                 * does not hold together, would leave it.) */
                if (owner != fdo(f)->owner && iom_owner_check(f, owner) == 0 &&
                    !iom_smap_get(m, &m->pool, at))
                        reaped = true;
                r = iom_smap_ceil(m, &m->pool, at + 1, NULL);
        }
        return reaped;
}

int iom_pool_take(struct iomem *f, uint64_t len, uint64_t end, bool compact,
                  iom_pool_usable_fn *usable, struct iom_pool_take *out)
{
        struct iom_meta *m = fdo(f)->meta;
again:;
        /* Best fit, backed first: the least memory to zero or back, and
         * large ranges left whole for large buffers. An exact fit ends the
         * search. */
        struct iom_rec best = { 0 };
        struct iom_cursor c;
        uint64_t free = 0;
        for (const struct iom_rec *r = iom_smap_ceil(m, &m->pool_free, 0, &c); r;
             r = iom_smap_next(m, &m->pool_free, &c)) {
                free += r->free.len;
                if (r->free.len < len || (best.free.len && (best.free.backed > r->free.backed ||
                                                            (best.free.backed == r->free.backed &&
                                                             best.free.len <= r->free.len))))
                        continue;
                if (!usable(f, r->key, len, r->key, r->free.len))
                        continue;
                best = *r;
                if (best.free.backed && best.free.len == len)
                        break;
        }
        int err;
        if (best.free.len) {
                if ((err = iom_pool_claim(f, best.key, len)))
                        return err;
                *out = (struct iom_pool_take){ .phys = best.key, .from = best.key,
                                               .from_len = best.free.len, .backed = best.free.backed };
                return 0;
        }
        /* Nothing fits. A process that died holding buffers gave them
         * back: the pool looks again before it grows. */
        if (reap_dead_holders(f))
                goto again;
        /* The free ranges were all counted. */
        uint64_t span = m->pool_next - IOM_POOL_OFF, used = span - iom_min(free, span);
        if (compact && span + len > 2 * used + iom_pool_keep_limit(f))
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
        *out = (struct iom_pool_take){ .phys = phys, .from = phys };
        return 0;
}

int iom_pool_drop_owner(struct iomem *f, uint32_t owner)
{
        struct iom_fdobj *obj = fdo(f);
        struct iom_meta *m = obj->meta;
        /* This handle backed each of its buffers before handing it out; a
         * dead process may have died backing one. */
        bool backed = owner == obj->owner;
        int err = 0;
        for (const struct iom_rec *r = iom_smap_ceil(m, &m->pool, 0, NULL); r && !err;) {
                uint64_t phys = r->key, len = r->pool.len;
                if (r->pool.owner == owner && !(err = iom_pool_forget(f, phys)))
                        err = iom_pool_recycle(f, phys, len, backed);
                r = iom_smap_ceil(m, &m->pool, phys + 1, NULL);
        }
        return err;
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
        if (obj->meta->pool_kept <= keep || !iom_fd_writable(f))
                return;
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
}
