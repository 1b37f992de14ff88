/* SPDX-License-Identifier: MIT */
/*
 * The shared pins (meta.h), and what iomem_stat says of them. Pins
 * are kept per owner, sorted by start: an owner's pins over a range are
 * one lookup away, and a survivor reaps a dead owner's pins as one run.
 * Each change is whole (IOM_UNDO_STEP): one that fails leaves the tables
 * as they were.
 */
#include "fdobj.h"
#include "holders.h"
#include "iolock.h"
#include "smap.h"
#include "undo.h"

#include <stdlib.h>
#include <unistd.h>

/* ---- pins ------------------------------------------------------------ */

static struct iom_rec pin_rec(const struct iomem *f, uint32_t owner, uint64_t start, uint64_t end)
{
        return (struct iom_rec){ .key = iom_pin_key(owner, start, f->page_size),
                                 .pin = { .start = start, .end = end, .owner = owner } };
}

/* Owner's pin that starts at or before start (NULL when none). */
static const struct iom_rec *pin_at_or_before(struct iomem *f, uint32_t owner, uint64_t start)
{
        const struct iom_meta *m = fdo(f)->meta;
        const struct iom_rec *r = iom_smap_floor(m, &m->pins, iom_pin_key(owner, start, f->page_size), NULL);
        return r && r->pin.owner == owner ? r : NULL;
}

static int pin_add(struct iomem *f, uint32_t owner, uint64_t start, uint64_t end)
{
        struct iom_meta *m = fdo(f)->meta;
        /* Extend the owner's pin that ends where this one starts. */
        const struct iom_rec *prev = start ? pin_at_or_before(f, owner, start - 1) : NULL;
        if (prev && prev->pin.end == start) {
                struct iom_rec longer = pin_rec(f, owner, prev->pin.start, end);
                return iom_smap_update(f, &m->pins, prev->key, &longer);
        }
        struct iom_rec r = pin_rec(f, owner, start, end);
        return iom_smap_insert(f, &m->pins, &r);
}

int iom_pin_add(struct iomem *f, uint32_t owner, uint64_t start, uint64_t end)
{
        return IOM_UNDO_STEP(f, pin_add(f, owner, start, end));
}

static int pin_remove(struct iomem *f, uint32_t owner, uint64_t start, uint64_t end)
{
        struct iom_meta *m = fdo(f)->meta;
        const struct iom_rec *r = pin_at_or_before(f, owner, start);
        if (!r || r->pin.end <= start)
                r = iom_smap_ceil(m, &m->pins, iom_pin_key(owner, start, f->page_size), NULL);
        int err = 0;
        while (!err && r && r->pin.owner == owner && r->pin.start < end) {
                struct iom_rec p = *r;
                uint64_t next = p.key + 1;
                if (p.pin.start >= start && p.pin.end <= end) {
                        err = iom_smap_erase(f, &m->pins, p.key);
                } else if (p.pin.start < start) {
                        /* Keep the part before; the part after, if any, is
                         * a pin of its own. */
                        struct iom_rec before = pin_rec(f, owner, p.pin.start, start);
                        err = iom_smap_update(f, &m->pins, p.key, &before);
                        if (!err && p.pin.end > end) {
                                struct iom_rec after = pin_rec(f, owner, end, p.pin.end);
                                err = iom_smap_insert(f, &m->pins, &after);
                        }
                } else {
                        struct iom_rec after = pin_rec(f, owner, end, p.pin.end);
                        err = iom_smap_update(f, &m->pins, p.key, &after);
                }
                r = iom_smap_ceil(m, &m->pins, next, NULL);
        }
        return err;
}

int iom_pin_remove(struct iomem *f, uint32_t owner, uint64_t start, uint64_t end)
{
        return IOM_UNDO_STEP(f, pin_remove(f, owner, start, end));
}

int iom_pin_drop_owner(struct iomem *f, uint32_t owner)
{
        return iom_pin_remove(f, owner, 0, UINT64_MAX);
}

int iom_pin_busy(struct iomem *f, uint64_t start, uint64_t end, struct iom_pin_holder *who)
{
        struct iom_meta *m = fdo(f)->meta;
        if (!m->pins.count)
                return 0;
        for (const struct iom_rec *o = iom_smap_ceil(m, &m->owners, 0, NULL); o;) {
                uint32_t owner = (uint32_t)o->key;
                /* The owner's last pin starting before end: it reaches
                 * start or none of the owner's does. */
                const struct iom_rec *p = pin_at_or_before(f, owner, end - 1);
                if (p && p->pin.end > start) {
                        struct iom_pin_holder h = { iom_max(start, p->pin.start),
                                                    iom_min(end, p->pin.end), (int)o->owner.pid };
                        int alive = iom_owner_check(f, owner);
                        if (alive) {
                                if (who)
                                        *who = h;
                                return 1;
                        }
                }
                o = iom_smap_ceil(m, &m->owners, (uint64_t)owner + 1, NULL);
        }
        return 0;
}

void iom_pin_let_go(uint64_t start, uint64_t end, void *f)
{
        iom_pin_remove(f, fdo(f)->owner, start, end);
}

int iom_pin_refuse(struct iomem *f, uint64_t start, uint64_t end)
{
        struct iom_pin_holder who;
        int r = iom_pin_busy(f, start, end, &who);
        if (r <= 0)
                return r;
        return iom_fail(f->name, -EBUSY,
                        "bytes [%llu, %llu) are pinned (acquired) by process %d%s",
                        (unsigned long long)who.start, (unsigned long long)who.end, who.pid,
                        who.pid == getpid() ? " (this one)" : "");
}

/* ---- who holds what, for iomem_stat --------------------------------------- */

static int add_span(struct iom_span **v, size_t *n, size_t *cap, uint64_t start, uint64_t end)
{
        if (*n == *cap) {
                size_t c = *cap ? 2 * *cap : 64;
                struct iom_span *nv = realloc(*v, c * sizeof *nv);
                if (!nv)
                        return -ENOMEM;
                *v = nv;
                *cap = c;
        }
        (*v)[(*n)++] = (struct iom_span){ start, end };
        return 0;
}

int iom_pin_census(struct iomem *f, uint64_t *pinned, uint64_t *mine, struct iom_holders *who)
{
        struct iom_meta *m = fdo(f)->meta;
        /* The dead hold nothing: reap them first. */
        for (const struct iom_rec *o = iom_smap_ceil(m, &m->owners, 0, NULL); o;) {
                uint32_t owner = (uint32_t)o->key;
                const struct iom_rec *p = iom_smap_ceil(m, &m->pins, iom_pin_key(owner, 0, f->page_size), NULL);
                if (p && p->pin.owner == owner)
                        iom_owner_check(f, owner);
                o = iom_smap_ceil(m, &m->owners, (uint64_t)owner + 1, NULL);
        }
        struct iom_span *all = NULL, *own = NULL;
        size_t nall = 0, call = 0, nown = 0, cown = 0;
        int err = 0, self = getpid(), pid = 0;
        uint32_t last = IOM_NO_OWNER;
        struct iom_cursor c;
        for (const struct iom_rec *p = iom_smap_ceil(m, &m->pins, 0, &c); p && !err;
             p = iom_smap_next(m, &m->pins, &c)) {
                if (p->pin.owner != last) {
                        last = (uint32_t)p->pin.owner;
                        pid = iom_owner_pid(f, last);
                        if (pid && (err = iom_holders_add(who, pid)))
                                break;
                }
                if (!pid || p->pin.end <= p->pin.start)
                        continue; /* of no owner: holds nothing */
                err = add_span(&all, &nall, &call, p->pin.start, p->pin.end);
                if (!err && pid == self)
                        err = add_span(&own, &nown, &cown, p->pin.start, p->pin.end);
        }
        if (!err) {
                *pinned = iom_spans_union_bytes(all, nall);
                *mine = iom_spans_union_bytes(own, nown);
        }
        free(all);
        free(own);
        return err ? iom_fail(f->name, err, "out of memory") : 0;
}

int iom_stat_shared(struct iomem *f, struct iomem_stat *st)
{
        struct iom_meta *m = fdo(f)->meta;
        struct iom_holders who = { 0 };
        uint64_t pinned = 0, mine = 0;
        int err = iom_pin_census(f, &pinned, &mine, &who);
        if (!err)
                err = iom_iolock_holders(f, &who);
        if (!err) {
                st->pinned = pinned;
                st->acquired = mine; /* of every handle of this process */
        }
        st->gift_adopted = m->gift_adopted;
        st->gift_copied = m->gift_copied;
        st->pool_held = m->pool_held;
        st->pool_free = m->pool_kept;
        st->pool_span = m->pool_next - IOM_POOL_OFF;
        iom_holders_report(&who, st);
        return err;
}
