/* SPDX-License-Identifier: MIT */
/*
 * The file's logical-to-physical map: extents that tile [0, round_up(size,
 * page)), in a sorted map by file offset (smap.h). Neighbours that continue
 * each other are merged, so rewriting a region does not grow the map.
 * Changes go through the undo log: a process killed in the middle of one
 * leaves the previous map (and size) whole.
 */
#include "extent_map.h"
#include "fdobj.h"
#include "smap.h"
#include "undo.h"

IOM_SEQ_READER static uint64_t tiled_end(const struct iom_meta *m)
{
        return iom_round_up(m->size, m->page_size);
}

static int not_tiled(struct iomem *f, uint64_t off)
{
        return iom_fail(f->name, -EBADMSG,
                        "the shared metadata is corrupt: its extents do not cover byte %llu",
                        (unsigned long long)off);
}

/* Take record r as extent *e if it is one the file can have and starts at
 * pos (or, for the first, holds it). */
IOM_SEQ_READER static int take(struct iom_ext_iter *it, const struct iom_rec *r, uint64_t pos, bool first,
                struct iom_extent *e)
{
        const struct iom_meta *m = fdo(it->f)->meta;
        uint64_t page = m->page_size, end = tiled_end(m);
        if (!r)
                return not_tiled(it->f, pos);
        *e = (struct iom_extent){ r->key, r->ext.len, r->ext.phys };
        bool placed = first ? e->off <= pos && pos - e->off < e->len : e->off == pos;
        bool phys_ok = e->phys == IOM_HOLE ||
                       (!(e->phys & (page - 1)) && e->phys < IOM_PHYS_END &&
                        (e->phys < IOM_META_OFF || e->phys >= IOM_POOL_OFF) &&
                        e->len <= IOM_PHYS_END - e->phys);
        if (!placed || !e->len || (e->len & (page - 1)) || (e->off & (page - 1)) || e->off > end ||
            e->len > end - e->off || !phys_ok)
                return not_tiled(it->f, pos);
        it->pos = e->off + e->len;
        return 1;
}

IOM_SEQ_READER int iom_ext_first(struct iom_ext_iter *it, struct iomem *f, uint64_t off, struct iom_extent *e)
{
        const struct iom_meta *m = fdo(f)->meta;
        it->f = f;
        if (off >= tiled_end(m))
                return 0;
        return take(it, iom_smap_floor(m, &m->extents, off, &it->c), off, true, e);
}

IOM_SEQ_READER int iom_ext_next(struct iom_ext_iter *it, struct iom_extent *e)
{
        const struct iom_meta *m = fdo(it->f)->meta;
        if (it->pos >= tiled_end(m))
                return 0;
        return take(it, iom_smap_next(m, &m->extents, &it->c), it->pos, false, e);
}

static struct iom_rec ext_rec(uint64_t off, uint64_t len, uint64_t phys)
{
        return (struct iom_rec){ .key = off, .ext = { .len = len, .phys = phys } };
}

static uint64_t phys_at(const struct iom_extent *e, uint64_t off)
{
        return e->phys == IOM_HOLE ? IOM_HOLE : e->phys + (off - e->off);
}

static bool joinable(const struct iom_extent *a, const struct iom_extent *b)
{
        if (a->phys == IOM_HOLE || b->phys == IOM_HOLE)
                return a->phys == b->phys;
        return a->phys + a->len == b->phys;
}

/* Merge the extent at off with the ones before and after it, where they
 * continue each other. */
static int merge_around(struct iomem *f, uint64_t off)
{
        struct iom_meta *m = fdo(f)->meta;
        struct iom_ext_iter it;
        struct iom_extent cur, prev, next;
        int r = iom_ext_first(&it, f, off, &cur);
        if (r <= 0)
                return r;
        if (off > 0 && iom_ext_first(&it, f, off - 1, &prev) > 0 && joinable(&prev, &cur)) {
                struct iom_rec joined = ext_rec(prev.off, prev.len + cur.len, prev.phys);
                int err = iom_smap_erase(f, &m->extents, cur.off);
                if (err || (err = iom_smap_update(f, &m->extents, prev.off, &joined)))
                        return err;
                cur = (struct iom_extent){ prev.off, prev.len + cur.len, prev.phys };
        }
        if (iom_ext_first(&it, f, cur.off + cur.len, &next) > 0 && joinable(&cur, &next)) {
                struct iom_rec joined = ext_rec(cur.off, cur.len + next.len, cur.phys);
                int err = iom_smap_erase(f, &m->extents, next.off);
                if (err || (err = iom_smap_update(f, &m->extents, cur.off, &joined)))
                        return err;
        }
        return 0;
}

static int set(struct iomem *f, uint64_t off, uint64_t len, uint64_t phys)
{
        struct iom_meta *m = fdo(f)->meta;
        struct iom_smap *x = &m->extents;
        uint64_t end = off + len;
        if (end > tiled_end(m) || end < off)
                return iom_fail(f->name, -ERANGE, "bytes [%llu, %llu) are past its end",
                                (unsigned long long)off, (unsigned long long)end);
        struct iom_ext_iter it;
        struct iom_extent e;
        int err = iom_ext_first(&it, f, off, &e);
        if (err <= 0)
                return err ? err : not_tiled(f, off);
        if (e.off < off) {
                /* Cut the extent that starts before off; what it had past
                 * end stays, after the new one. */
                struct iom_rec left = ext_rec(e.off, off - e.off, e.phys);
                if ((err = iom_smap_update(f, x, e.off, &left)))
                        return err;
                if (e.off + e.len > end) {
                        struct iom_rec right = ext_rec(end, e.off + e.len - end, phys_at(&e, end));
                        if ((err = iom_smap_insert(f, x, &right)))
                                return err;
                }
        }
        /* Drop the extents that start in [off, end); cut the last one. */
        for (const struct iom_rec *r; (r = iom_smap_ceil(m, x, off, NULL)) && r->key < end;) {
                struct iom_extent y = { r->key, r->ext.len, r->ext.phys };
                if (y.off + y.len <= end) {
                        err = iom_smap_erase(f, x, y.off);
                } else {
                        struct iom_rec right = ext_rec(end, y.off + y.len - end, phys_at(&y, end));
                        err = iom_smap_update(f, x, y.off, &right);
                }
                if (err)
                        return err;
        }
        struct iom_rec mid = ext_rec(off, len, phys);
        if ((err = iom_smap_insert(f, x, &mid)))
                return err;
        return merge_around(f, off);
}

static int resize(struct iomem *f, uint64_t size)
{
        struct iom_meta *m = fdo(f)->meta;
        struct iom_smap *x = &m->extents;
        uint64_t old_end = tiled_end(m), new_end = iom_round_up(size, m->page_size);
        int err = 0;
        if (new_end > old_end) {
                const struct iom_rec *last = iom_smap_floor(m, x, UINT64_MAX, NULL);
                if (last && last->ext.phys == IOM_HOLE) {
                        struct iom_rec longer = ext_rec(last->key, last->ext.len + new_end - old_end, IOM_HOLE);
                        err = iom_smap_update(f, x, last->key, &longer);
                } else {
                        struct iom_rec hole = ext_rec(old_end, new_end - old_end, IOM_HOLE);
                        err = iom_smap_insert(f, x, &hole);
                }
        }
        for (const struct iom_rec *last; !err && (last = iom_smap_floor(m, x, UINT64_MAX, NULL)) &&
                                        last->key + last->ext.len > new_end;) {
                if (last->key >= new_end) {
                        err = iom_smap_erase(f, x, last->key);
                } else {
                        struct iom_rec shorter = ext_rec(last->key, new_end - last->key, last->ext.phys);
                        err = iom_smap_update(f, x, last->key, &shorter);
                }
        }
        return err ? err : iom_undo_set(f, &m->size, size);
}

/* Each change is whole: one that fails leaves the map tiling the file as
 * before. */
int iom_map_set(struct iomem *f, uint64_t off, uint64_t len, uint64_t phys)
{
        return IOM_UNDO_STEP(f, set(f, off, len, phys));
}

int iom_map_resize(struct iomem *f, uint64_t size)
{
        return IOM_UNDO_STEP(f, resize(f, size));
}
