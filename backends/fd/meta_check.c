/* SPDX-License-Identifier: MIT */
/*
 * A walk over every shared table of an object, checking what the engine
 * promises of them at rest (meta.h's iom_meta_check). The tests and the
 * multi-process fuzzer run it after every operation; the library itself
 * never needs it, since each table is checked as it is read.
 */
#include "fdobj.h"
#include "extent_map.h"
#include "smap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

struct phys_run {
        uint64_t phys, len;
        const char *what; /* "extent", "pool buffer" or "free pool range" */
        uint64_t key;
};

struct phys_runs {
        struct phys_run *v;
        size_t n, cap;
};

IOM_PRINTF(2, 3) static int broken(struct iomem *f, const char *fmt, ...)
{
        char why[200];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        return iom_fail(f->name, -EBADMSG, "the shared metadata is inconsistent: %s", why);
}

static int add_run(struct iomem *f, struct phys_runs *r, struct phys_run x)
{
        if (r->n == r->cap) {
                size_t cap = r->cap ? 2 * r->cap : 64;
                struct phys_run *v = realloc(r->v, cap * sizeof *v);
                if (!v)
                        return iom_fail(f->name, -ENOMEM, "out of memory");
                r->v = v;
                r->cap = cap;
        }
        r->v[r->n++] = x;
        return 0;
}

/* Keys strictly ascending, as many records as the map counts. */
static int check_order(struct iomem *f, const struct iom_smap *s, const char *name)
{
        const struct iom_meta *m = fdo(f)->meta;
        struct iom_cursor c;
        uint64_t n = 0, last = 0;
        for (const struct iom_rec *r = iom_smap_ceil(m, s, 0, &c); r; r = iom_smap_next(m, s, &c), n++) {
                if (n && r->key <= last)
                        return broken(f, "the %s table's keys go back (%llu after %llu)", name,
                                      (unsigned long long)r->key, (unsigned long long)last);
                last = r->key;
        }
        if (n != s->count)
                return broken(f, "the %s table holds %llu records but counts %llu", name,
                              (unsigned long long)n, (unsigned long long)s->count);
        return 0;
}

static bool owner_known(const struct iom_meta *m, uint64_t owner)
{
        return owner <= UINT32_MAX && iom_smap_get(m, &m->owners, owner);
}

/* The extents tile [0, round_up(size)), merged where they continue each
 * other, each in the data area or the gift pool. */
static int check_extents(struct iomem *f, struct phys_runs *runs)
{
        const struct iom_meta *m = fdo(f)->meta;
        uint64_t ps = f->page_size, end = iom_round_up(m->size, ps), pos = 0;
        struct iom_extent prev = { 0 };
        struct iom_cursor c;
        int err = 0;
        for (const struct iom_rec *r = iom_smap_ceil(m, &m->extents, 0, &c); r && !err;
             r = iom_smap_next(m, &m->extents, &c)) {
                struct iom_extent e = { r->key, r->ext.len, r->ext.phys };
                if (e.off != pos || !e.len || (e.len & (ps - 1)) || e.len > end - pos)
                        return broken(f, "an extent at byte %llu does not continue the one before "
                                      "it (which ends at %llu) within the file",
                                      (unsigned long long)e.off, (unsigned long long)pos);
                bool continues = pos && (e.phys == IOM_HOLE ? prev.phys == IOM_HOLE
                                                            : prev.phys != IOM_HOLE &&
                                                                      prev.phys + prev.len == e.phys);
                if (continues)
                        return broken(f, "extents at bytes %llu and %llu continue each other "
                                      "but are not merged",
                                      (unsigned long long)prev.off, (unsigned long long)e.off);
                if (e.phys != IOM_HOLE) {
                        bool data = e.phys <= IOM_DATA_END && e.len <= IOM_DATA_END - e.phys;
                        bool pool = e.phys >= IOM_POOL_OFF && e.phys <= m->pool_next &&
                                    e.len <= m->pool_next - e.phys;
                        if ((e.phys & (ps - 1)) || (!data && !pool))
                                return broken(f, "the extent at byte %llu points at %#llx, outside "
                                              "the data area and the gift pool handed out",
                                              (unsigned long long)e.off, (unsigned long long)e.phys);
                        err = add_run(f, runs, (struct phys_run){ .phys = e.phys, .len = e.len, .what = "extent", .key = e.off });
                }
                prev = e;
                pos += e.len;
        }
        if (!err && pos != end)
                return broken(f, "the extents end at byte %llu, the file's pages at %llu",
                              (unsigned long long)pos, (unsigned long long)end);
        return err;
}

/* Pins: of known owners, inside the file, keyed by owner and start, and
 * one owner's pins do not overlap. */
static int check_pins(struct iomem *f)
{
        const struct iom_meta *m = fdo(f)->meta;
        uint64_t ps = f->page_size, end = iom_round_up(m->size, ps), last_owner = UINT64_MAX, last_end = 0;
        struct iom_cursor c;
        for (const struct iom_rec *r = iom_smap_ceil(m, &m->pins, 0, &c); r; r = iom_smap_next(m, &m->pins, &c)) {
                uint64_t owner = r->pin.owner, s = r->pin.start, e = r->pin.end;
                if (!owner_known(m, owner))
                        return broken(f, "a pin at byte %llu belongs to owner %llu, who is not registered",
                                      (unsigned long long)s, (unsigned long long)owner);
                if (r->key != iom_pin_key((uint32_t)owner, s, ps) || s >= e || ((s | e) & (ps - 1)))
                        return broken(f, "the pin [%llu, %llu) is malformed", (unsigned long long)s,
                                      (unsigned long long)e);
                if (e > end)
                        return broken(f, "the pin [%llu, %llu) reaches past the file's pages",
                                      (unsigned long long)s, (unsigned long long)e);
                if (owner == last_owner && s < last_end)
                        return broken(f, "one owner's pins overlap at byte %llu (the one before ends at %llu)",
                                      (unsigned long long)s, (unsigned long long)last_end);
                last_owner = owner;
                last_end = e;
        }
        return 0;
}

/* Within the gift pool handed out, page-aligned, and not empty. */
static bool in_pool(const struct iom_meta *m, uint64_t phys, uint64_t len, uint64_t ps)
{
        return phys >= IOM_POOL_OFF && phys < m->pool_next && len && !((phys | len) & (ps - 1)) &&
               len <= m->pool_next - phys;
}

/* Gift-pool buffers not yet gifted, of known owners, and the free ranges:
 * inside the pool, and the counts in the header add up. */
static int check_pool(struct iomem *f, struct phys_runs *runs)
{
        const struct iom_meta *m = fdo(f)->meta;
        uint64_t ps = f->page_size, held = 0, kept = 0, unbacked = 0;
        struct iom_cursor c;
        for (const struct iom_rec *r = iom_smap_ceil(m, &m->pool, 0, &c); r; r = iom_smap_next(m, &m->pool, &c)) {
                if (!owner_known(m, r->pool.owner))
                        return broken(f, "the pool buffer at %#llx belongs to owner %llu, who is not registered",
                                      (unsigned long long)r->key, (unsigned long long)r->pool.owner);
                if (!in_pool(m, r->key, r->pool.len, ps))
                        return broken(f, "the pool buffer at %#llx (%llu bytes) is malformed",
                                      (unsigned long long)r->key, (unsigned long long)r->pool.len);
                int err = add_run(f, runs, (struct phys_run){ .phys = r->key, .len = r->pool.len, .what = "pool buffer", .key = r->key });
                if (err)
                        return err;
                held += r->pool.len;
        }
        for (const struct iom_rec *r = iom_smap_ceil(m, &m->pool_free, 0, &c); r;
             r = iom_smap_next(m, &m->pool_free, &c)) {
                if (!in_pool(m, r->key, r->free.len, ps) || r->free.backed > 1)
                        return broken(f, "the free pool range at %#llx (%llu bytes) is malformed",
                                      (unsigned long long)r->key, (unsigned long long)r->free.len);
                int err = add_run(f, runs, (struct phys_run){ .phys = r->key, .len = r->free.len, .what = "free pool range", .key = r->key });
                if (err)
                        return err;
                *(r->free.backed ? &kept : &unbacked) += r->free.len;
        }
        if (held != m->pool_held || kept != m->pool_kept || unbacked != m->pool_unbacked)
                return broken(f, "the pool's buffers hold %llu bytes and its free ranges %llu backed "
                              "and %llu not; the header says %llu, %llu and %llu",
                              (unsigned long long)held, (unsigned long long)kept,
                              (unsigned long long)unbacked, (unsigned long long)m->pool_held,
                              (unsigned long long)m->pool_kept, (unsigned long long)m->pool_unbacked);
        return 0;
}

/* Owners, readers and the writer: the counts of waiting writers add up,
 * and every reader and the writer is a registered owner. */
static int check_lock(struct iomem *f)
{
        const struct iom_meta *m = fdo(f)->meta;
        uint64_t waiting = 0;
        struct iom_cursor c;
        for (const struct iom_rec *r = iom_smap_ceil(m, &m->owners, 0, &c); r; r = iom_smap_next(m, &m->owners, &c)) {
                if (r->key > UINT32_MAX || r->key == IOM_NO_OWNER || r->owner.pid <= 0)
                        return broken(f, "owner %llu has pid %lld", (unsigned long long)r->key,
                                      (long long)r->owner.pid);
                waiting += r->owner.writers_waiting;
        }
        if (waiting != m->writers_waiting)
                return broken(f, "the owners count %llu waiting writers, the header %llu",
                              (unsigned long long)waiting, (unsigned long long)m->writers_waiting);
        for (const struct iom_rec *r = iom_smap_ceil(m, &m->readers, 0, &c); r; r = iom_smap_next(m, &m->readers, &c))
                if (!owner_known(m, r->key >> 32) || !r->reader.count)
                        return broken(f, "a reader of owner %llu holds the lock %llu times",
                                      (unsigned long long)(r->key >> 32), (unsigned long long)r->reader.count);
        if (m->writer_owner != IOM_NO_OWNER && (!owner_known(m, m->writer_owner) || !m->writer_depth))
                return broken(f, "the writer, owner %llu, holds the lock %llu times",
                              (unsigned long long)m->writer_owner, (unsigned long long)m->writer_depth);
        return 0;
}

static int by_phys(const void *a, const void *b)
{
        const struct phys_run *x = a, *y = b;
        return x->phys < y->phys ? -1 : x->phys > y->phys;
}

int iom_meta_check(struct iomem *f)
{
        const struct iom_meta *m = fdo(f)->meta;
        if (!iom_meta_sound(f) || (m->change_seq & 1))
                return broken(f, "the header does not hold together (or a change is in progress: "
                              "%llu undo bytes, change count %llu)",
                              (unsigned long long)m->log_len, (unsigned long long)m->change_seq);
        const struct { const struct iom_smap *s; const char *name; } maps[] = {
                { &m->extents, "extents" }, { &m->pins, "pins" }, { &m->pool, "pool" },
                { &m->owners, "owners" }, { &m->readers, "readers" }, { &m->pool_free, "pool_free" },
        };
        int err = 0;
        for (size_t i = 0; i < sizeof maps / sizeof maps[0] && !err; i++)
                err = check_order(f, maps[i].s, maps[i].name);
        struct phys_runs runs = { 0 };
        if (!err && !(err = check_extents(f, &runs)) && !(err = check_pool(f, &runs)) &&
            !(err = check_pins(f)) && !(err = check_lock(f)) && runs.n) {
                /* No memory is two things at once: every extent, every
                 * outstanding buffer and every free range has physical
                 * pages of its own. */
                qsort(runs.v, runs.n, sizeof *runs.v, by_phys);
                for (size_t i = 1; i < runs.n && !err; i++)
                        if (runs.v[i - 1].phys + runs.v[i - 1].len > runs.v[i].phys)
                                err = broken(f, "physical offset %#llx is the memory of the %s at "
                                             "%#llx and of the %s at %#llx",
                                             (unsigned long long)runs.v[i].phys, runs.v[i - 1].what,
                                             (unsigned long long)runs.v[i - 1].key, runs.v[i].what,
                                             (unsigned long long)runs.v[i].key);
        }
        free(runs.v);
        return err;
}
