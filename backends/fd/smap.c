/* SPDX-License-Identifier: MIT */
/* Sorted maps of shared records (smap.h). */
#include "smap.h"
#include "fdobj.h"
#include "heap.h"
#include "undo.h"

#include <string.h>

#define LEAF_RECS IOM_SMAP_LEAF_RECS
_Static_assert(sizeof(struct iom_smap_leaf) <= IOM_HEAP_BLOCK, "a leaf is one block");

#define INITIAL_DIR_CAP (IOM_HEAP_BLOCK / sizeof(struct iom_smap_dirent))

IOM_SEQ_READER static struct iom_smap_dirent *dir_of(const struct iom_meta *m, const struct iom_smap *s)
{
        if (!s->nleaves || s->nleaves > s->dir_cap || s->dir_cap > m->span / sizeof(struct iom_smap_dirent) ||
            !iom_heap_holds(m, s->dir, s->dir_cap * sizeof(struct iom_smap_dirent)))
                return NULL;
        return (struct iom_smap_dirent *)((char *)m + s->dir);
}

/* A leaf is never empty, except the only leaf of a map that was emptied
 * (kept, so that a map going from empty to one record and back, as the
 * pins of a busy handle do, allocates nothing). */
IOM_SEQ_READER static struct iom_smap_leaf *leaf_of(const struct iom_meta *m, const struct iom_smap *s,
                                     const struct iom_smap_dirent *d)
{
        if (!iom_heap_holds(m, d->leaf, sizeof(struct iom_smap_leaf)))
                return NULL;
        struct iom_smap_leaf *l = (struct iom_smap_leaf *)((char *)m + d->leaf);
        return (l->n || s->nleaves == 1) && l->n <= LEAF_RECS ? l : NULL;
}

/* The leaf that holds k or would: the last whose first key is <= k, or
 * the first. */
IOM_SEQ_READER static uint64_t leaf_for(const struct iom_smap_dirent *d, uint64_t n, uint64_t k)
{
        uint64_t lo = 0, hi = n;
        while (lo < hi) {
                uint64_t mid = lo + (hi - lo) / 2;
                if (d[mid].first_key <= k)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo ? lo - 1 : 0;
}

/* Index of the first record of l with a key >= k (l->n when none). */
IOM_SEQ_READER static uint32_t ceil_in(const struct iom_smap_leaf *l, uint64_t k)
{
        uint32_t lo = 0, hi = l->n;
        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (l->r[mid].key < k)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

IOM_SEQ_READER static const struct iom_rec *at(const struct iom_meta *m, const struct iom_smap *s,
                                struct iom_cursor *c)
{
        struct iom_smap_dirent *d = dir_of(m, s);
        struct iom_smap_leaf *l = d && c->leaf < s->nleaves ? leaf_of(m, s, &d[c->leaf]) : NULL;
        return l && c->i < l->n ? &l->r[c->i] : NULL;
}

IOM_SEQ_READER const struct iom_rec *iom_smap_next(const struct iom_meta *m, const struct iom_smap *s,
                                    struct iom_cursor *c)
{
        struct iom_smap_dirent *d = dir_of(m, s);
        struct iom_smap_leaf *l = d && c->leaf < s->nleaves ? leaf_of(m, s, &d[c->leaf]) : NULL;
        if (!l)
                return NULL;
        if (++c->i >= l->n) {
                c->leaf++;
                c->i = 0;
        }
        return at(m, s, c);
}

IOM_SEQ_READER const struct iom_rec *iom_smap_prev(const struct iom_meta *m, const struct iom_smap *s,
                                    struct iom_cursor *c)
{
        if (c->i > 0) {
                c->i--;
                return at(m, s, c);
        }
        struct iom_smap_dirent *d = dir_of(m, s);
        if (!d || c->leaf == 0 || c->leaf > s->nleaves)
                return NULL;
        struct iom_smap_leaf *l = leaf_of(m, s, &d[--c->leaf]);
        if (!l || !l->n)
                return NULL;
        c->i = l->n - 1;
        return &l->r[c->i];
}

/* The leaf that holds k or would, with c at its first record whose key
 * is >= k (c->i == n when none); NULL when the map is empty or spoilt. */
IOM_SEQ_READER static const struct iom_smap_leaf *seek(const struct iom_meta *m,
                                                        const struct iom_smap *s, uint64_t k,
                                                        struct iom_cursor *c)
{
        struct iom_smap_dirent *d = dir_of(m, s);
        if (!d)
                return NULL;
        c->leaf = leaf_for(d, s->nleaves, k);
        struct iom_smap_leaf *l = leaf_of(m, s, &d[c->leaf]);
        if (l)
                c->i = ceil_in(l, k);
        return l;
}

IOM_SEQ_READER const struct iom_rec *iom_smap_ceil(const struct iom_meta *m, const struct iom_smap *s,
                                    uint64_t k, struct iom_cursor *c)
{
        struct iom_cursor tmp;
        c = c ? c : &tmp;
        const struct iom_smap_leaf *l = seek(m, s, k, c);
        if (!l || !l->n)
                return NULL;
        if (c->i < l->n)
                return &l->r[c->i];
        c->i = l->n - 1;
        return iom_smap_next(m, s, c);
}

IOM_SEQ_READER const struct iom_rec *iom_smap_floor(const struct iom_meta *m, const struct iom_smap *s,
                                     uint64_t k, struct iom_cursor *c)
{
        struct iom_cursor tmp;
        c = c ? c : &tmp;
        const struct iom_smap_leaf *l = seek(m, s, k, c);
        if (!l)
                return NULL;
        if (c->i < l->n && l->r[c->i].key == k)
                return &l->r[c->i];
        return iom_smap_prev(m, s, c); /* the record before c->i is the floor */
}

IOM_SEQ_READER const struct iom_rec *iom_smap_get(const struct iom_meta *m, const struct iom_smap *s, uint64_t k)
{
        const struct iom_rec *r = iom_smap_ceil(m, s, k, NULL);
        return r && r->key == k ? r : NULL;
}

/* ---- changes ------------------------------------------------------------ */

static int corrupt(struct iomem *f)
{
        return iom_fail(f->name, -EBADMSG, "the shared metadata is corrupt");
}

/* Make room at index p of the directory and put e there. */
static int dir_insert(struct iomem *f, struct iom_smap *s, uint64_t p, struct iom_smap_dirent e)
{
        struct iom_meta *m = fdo(f)->meta;
        struct iom_smap_dirent *d = dir_of(m, s);
        uint64_t n = s->nleaves;
        int err;
        if (n < s->dir_cap) {
                if ((err = iom_undo_save(f, &d[p], (n - p + 1) * sizeof *d)))
                        return err;
                memmove(&d[p + 1], &d[p], (n - p) * sizeof *d);
                d[p] = e;
                return iom_undo_set(f, &s->nleaves, n + 1);
        }
        /* Full: a block twice the size, which nobody sees until s points
         * at it. */
        uint64_t cap = 2 * s->dir_cap, off;
        if ((err = iom_heap_alloc(f, cap * sizeof *d, &off)))
                return err;
        struct iom_smap_dirent *nd = (struct iom_smap_dirent *)((char *)m + off);
        memcpy(nd, d, p * sizeof *d);
        nd[p] = e;
        memcpy(&nd[p + 1], &d[p], (n - p) * sizeof *d);
        if ((err = iom_heap_free(f, s->dir, s->dir_cap * sizeof *d)) ||
            (err = iom_undo_set(f, &s->dir, off)) || (err = iom_undo_set(f, &s->dir_cap, cap)))
                return err;
        return iom_undo_set(f, &s->nleaves, n + 1);
}

static int first_leaf(struct iomem *f, struct iom_smap *s, const struct iom_rec *r)
{
        struct iom_meta *m = fdo(f)->meta;
        uint64_t doff, loff;
        int err;
        if ((err = iom_heap_alloc(f, INITIAL_DIR_CAP * sizeof(struct iom_smap_dirent), &doff)) ||
            (err = iom_heap_alloc(f, sizeof(struct iom_smap_leaf), &loff)))
                return err;
        struct iom_smap_leaf *l = (struct iom_smap_leaf *)((char *)m + loff);
        l->n = 1;
        l->r[0] = *r;
        struct iom_smap_dirent *d = (struct iom_smap_dirent *)((char *)m + doff);
        d[0] = (struct iom_smap_dirent){ r->key, loff };
        if ((err = iom_undo_set(f, &s->dir, doff)) ||
            (err = iom_undo_set(f, &s->dir_cap, INITIAL_DIR_CAP)) ||
            (err = iom_undo_set(f, &s->nleaves, 1)))
                return err;
        return iom_undo_set(f, &s->count, 1);
}

/* Move the upper half of leaf li into a new leaf after it. */
static int split(struct iomem *f, struct iom_smap *s, uint64_t li)
{
        struct iom_meta *m = fdo(f)->meta;
        uint64_t off;
        int err = iom_heap_alloc(f, sizeof(struct iom_smap_leaf), &off);
        if (err)
                return err;
        struct iom_smap_leaf *l = leaf_of(m, s, &dir_of(m, s)[li]);
        struct iom_smap_leaf *nl = (struct iom_smap_leaf *)((char *)m + off);
        uint32_t keep = l->n / 2;
        nl->n = l->n - keep;
        memcpy(nl->r, &l->r[keep], nl->n * sizeof nl->r[0]);
        if ((err = iom_undo_set32(f, &l->n, keep)))
                return err;
        return dir_insert(f, s, li + 1, (struct iom_smap_dirent){ nl->r[0].key, off });
}

static int insert(struct iomem *f, struct iom_smap *s, const struct iom_rec *r)
{
        struct iom_meta *m = fdo(f)->meta;
        if (!s->nleaves)
                return first_leaf(f, s, r);
        struct iom_smap_dirent *d = dir_of(m, s);
        if (!d)
                return corrupt(f);
        uint64_t li = leaf_for(d, s->nleaves, r->key);
        struct iom_smap_leaf *l = leaf_of(m, s, &d[li]);
        if (!l)
                return corrupt(f);
        int err;
        if (l->n == LEAF_RECS) {
                if ((err = split(f, s, li)))
                        return err;
                d = dir_of(m, s); /* it may have moved */
                if (r->key >= d[li + 1].first_key)
                        li++;
                l = leaf_of(m, s, &d[li]);
        }
        uint32_t i = ceil_in(l, r->key);
        if (i < l->n && l->r[i].key == r->key)
                return iom_fail(f->name, -EEXIST, "the shared metadata is corrupt: key %llu twice",
                                (unsigned long long)r->key);
        if ((err = iom_undo_save(f, &l->r[i], (l->n - i + 1) * sizeof l->r[0])))
                return err;
        memmove(&l->r[i + 1], &l->r[i], (l->n - i) * sizeof l->r[0]);
        l->r[i] = *r;
        if ((err = iom_undo_set32(f, &l->n, l->n + 1)))
                return err;
        if (r->key < d[li].first_key && (err = iom_undo_set(f, &d[li].first_key, r->key)))
                return err;
        return iom_undo_set(f, &s->count, s->count + 1);
}

/* The leaf and index of the record with key k. */
static int find_exact(struct iomem *f, struct iom_smap *s, uint64_t k, struct iom_cursor *c)
{
        const struct iom_rec *r = iom_smap_ceil(fdo(f)->meta, s, k, c);
        if (!r || r->key != k)
                return iom_fail(f->name, -ENOENT, "the shared metadata has no record %llu",
                                (unsigned long long)k);
        return 0;
}

/* Free leaf li, which is empty and not the only one. */
static int drop_leaf(struct iomem *f, struct iom_smap *s, uint64_t li)
{
        struct iom_meta *m = fdo(f)->meta;
        struct iom_smap_dirent *d = dir_of(m, s);
        uint64_t n = s->nleaves;
        int err = iom_heap_free(f, d[li].leaf, sizeof(struct iom_smap_leaf));
        if (err)
                return err;
        if ((err = iom_undo_save(f, &d[li], (n - li) * sizeof *d)))
                return err;
        memmove(&d[li], &d[li + 1], (n - li - 1) * sizeof *d);
        return iom_undo_set(f, &s->nleaves, n - 1);
}

static int erase(struct iomem *f, struct iom_smap *s, uint64_t k)
{
        struct iom_meta *m = fdo(f)->meta;
        struct iom_cursor c;
        int err = find_exact(f, s, k, &c);
        if (err)
                return err;
        struct iom_smap_leaf *l = leaf_of(m, s, &dir_of(m, s)[c.leaf]);
        if (l->n == 1 && s->nleaves > 1)
                err = drop_leaf(f, s, c.leaf);
        else if (!(err = iom_undo_save(f, &l->r[c.i], (l->n - c.i) * sizeof l->r[0]))) {
                memmove(&l->r[c.i], &l->r[c.i + 1], (l->n - c.i - 1) * sizeof l->r[0]);
                err = iom_undo_set32(f, &l->n, l->n - 1);
        }
        return err ? err : iom_undo_set(f, &s->count, s->count - 1);
}

static int update(struct iomem *f, struct iom_smap *s, uint64_t k, const struct iom_rec *r)
{
        struct iom_meta *m = fdo(f)->meta;
        struct iom_cursor c;
        int err = find_exact(f, s, k, &c);
        if (err)
                return err;
        if (r->key != k) {
                struct iom_cursor p = c, n = c;
                const struct iom_rec *prev = iom_smap_prev(m, s, &p);
                const struct iom_rec *next = iom_smap_next(m, s, &n);
                if ((prev && prev->key >= r->key) || (next && next->key <= r->key))
                        return iom_fail(f->name, -EINVAL, "key %llu would not sort where %llu was",
                                        (unsigned long long)r->key, (unsigned long long)k);
        }
        struct iom_smap_dirent *d = dir_of(m, s);
        struct iom_smap_leaf *l = leaf_of(m, s, &d[c.leaf]);
        if ((err = iom_undo_save(f, &l->r[c.i], sizeof l->r[0])))
                return err;
        l->r[c.i] = *r;
        /* Keep each leaf's lower bound between its keys and the last key
         * of the leaf before: a key that moved below its leaf's bound
         * lowers it; one that reached the next leaf's bound (which may lie
         * below that leaf's lowest key) raises that bound to the key that
         * is really lowest there. */
        if (r->key < d[c.leaf].first_key)
                err = iom_undo_set(f, &d[c.leaf].first_key, r->key);
        if (!err && c.leaf + 1 < s->nleaves && r->key >= d[c.leaf + 1].first_key) {
                const struct iom_smap_leaf *nl = leaf_of(m, s, &d[c.leaf + 1]);
                if (!nl || nl->r[0].key <= r->key)
                        return corrupt(f);
                err = iom_undo_set(f, &d[c.leaf + 1].first_key, nl->r[0].key);
        }
        return err;
}

/* Each change is whole: one that fails (a full log, a spoilt map) leaves
 * the map as it was. */
int iom_smap_insert(struct iomem *f, struct iom_smap *s, const struct iom_rec *r)
{
        return IOM_UNDO_STEP(f, insert(f, s, r));
}

int iom_smap_erase(struct iomem *f, struct iom_smap *s, uint64_t k)
{
        return IOM_UNDO_STEP(f, erase(f, s, k));
}

int iom_smap_update(struct iomem *f, struct iom_smap *s, uint64_t k, const struct iom_rec *r)
{
        return IOM_UNDO_STEP(f, update(f, s, k, r));
}
