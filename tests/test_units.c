/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the internal data structures: the pin ranges (ranges.c),
 * the extent map (extent_map.c) and the metadata validation (meta.c).
 * Linked against the static library, so the hidden iom_* names resolve.
 */
#include "common.h"

#include "fdmem.h"
#include "meta.h"
#include "ranges.h"

#define PG UINT64_C(4096)

/* For hot loops: Check's ck_assert_* records a mark point per call (a
 * message to the runner in fork mode), far too slow for millions. */
#define REQUIRE(c)                                                           \
        do {                                                                 \
                if (!(c))                                                    \
                        ck_abort_msg("%s:%d: failed: %s", __FILE__, __LINE__, #c); \
        } while (0)

/* ---- helpers: ranges --------------------------------------------------- */

/* Insert a run, with room reserved first as the callers in lib/ do. */
static void r_insert(struct iom_ranges *r, uint64_t s, uint64_t e, uint64_t phys)
{
        ck_assert_int_eq(iom_ranges_reserve(r, 2), 0);
        ck_assert_int_eq(iom_ranges_covered(r, s, e), 0);
        iom_ranges_insert(r, s, e, phys);
}

static void r_inc(struct iom_ranges *r, uint64_t s, uint64_t e)
{
        ck_assert_int_eq(iom_ranges_reserve(r, 2), 0);
        ck_assert_int_eq(iom_ranges_covered(r, s, e), 1);
        iom_ranges_inc(r, s, e);
}

struct gone_log {
        size_t n;
        uint64_t s[64], e[64];
};

static void gone_cb(uint64_t s, uint64_t e, void *arg)
{
        struct gone_log *g = arg;
        ck_assert_uint_lt(g->n, 64);
        g->s[g->n] = s;
        g->e[g->n] = e;
        g->n++;
}

static void r_dec(struct iom_ranges *r, uint64_t s, uint64_t e, struct gone_log *g)
{
        ck_assert_int_eq(iom_ranges_reserve(r, 2), 0);
        ck_assert_int_eq(iom_ranges_covered(r, s, e), 1);
        iom_ranges_dec(r, s, e, g ? gone_cb : NULL, g);
}

/* The invariants of a run list: sorted, disjoint, non-empty, counts > 0,
 * and no two neighbours that could have been merged. */
static void r_check(const struct iom_ranges *r)
{
        REQUIRE(r->n <= r->cap);
        for (size_t i = 0; i < r->n; i++) {
                const struct iom_range *a = &r->v[i];
                REQUIRE(a->start < a->end);
                REQUIRE(a->count > 0);
                if (i + 1 < r->n) {
                        const struct iom_range *b = &r->v[i + 1];
                        REQUIRE(a->end <= b->start);
                        if (a->end == b->start && a->count == b->count &&
                            a->phys + (a->end - a->start) == b->phys)
                                ck_abort_msg("runs %zu and %zu should have been merged", i, i + 1);
                }
        }
}

/* Run i is [s, e) at phys with count c. */
static void r_expect(const struct iom_ranges *r, size_t i, uint64_t s, uint64_t e, uint64_t phys,
                     uint32_t c)
{
        ck_assert_uint_lt(i, r->n);
        ck_assert_uint_eq(r->v[i].start, s);
        ck_assert_uint_eq(r->v[i].end, e);
        ck_assert_uint_eq(r->v[i].phys, phys);
        ck_assert_uint_eq(r->v[i].count, c);
}

/* ---- ranges --------------------------------------------------------------- */

START_TEST(ranges_insert_merge)
{
        struct iom_ranges r = { 0 };
        ck_assert_uint_eq(iom_ranges_bytes(&r), 0);
        ck_assert_uint_eq(iom_ranges_first_after(&r, 0), 0);
        ck_assert_int_eq(iom_ranges_covered(&r, 0, PG), 0);
        /* An empty range is trivially covered. */
        ck_assert_int_eq(iom_ranges_covered(&r, 5 * PG, 5 * PG), 1);

        r_insert(&r, 4 * PG, 6 * PG, 100 * PG);
        r_check(&r);
        ck_assert_uint_eq(r.n, 1);
        r_expect(&r, 0, 4 * PG, 6 * PG, 100 * PG, 1);

        /* Adjacent, physically contiguous, same count: merged. */
        r_insert(&r, 6 * PG, 7 * PG, 102 * PG);
        r_check(&r);
        ck_assert_uint_eq(r.n, 1);
        r_expect(&r, 0, 4 * PG, 7 * PG, 100 * PG, 1);

        /* Adjacent on the left, contiguous: merged, phys moves to the new start. */
        r_insert(&r, 3 * PG, 4 * PG, 99 * PG);
        r_check(&r);
        ck_assert_uint_eq(r.n, 1);
        r_expect(&r, 0, 3 * PG, 7 * PG, 99 * PG, 1);

        /* Adjacent but elsewhere physically: kept apart. */
        r_insert(&r, 7 * PG, 8 * PG, 500 * PG);
        r_check(&r);
        ck_assert_uint_eq(r.n, 2);
        r_expect(&r, 1, 7 * PG, 8 * PG, 500 * PG, 1);

        /* Not adjacent: kept apart, in order. */
        r_insert(&r, 0, PG, 0);
        r_check(&r);
        ck_assert_uint_eq(r.n, 3);
        r_expect(&r, 0, 0, PG, 0, 1);
        r_expect(&r, 1, 3 * PG, 7 * PG, 99 * PG, 1);

        /* A run filling a gap exactly, contiguous on both sides, joins all three. */
        struct iom_ranges q = { 0 };
        r_insert(&q, 0, PG, 10 * PG);
        r_insert(&q, 2 * PG, 3 * PG, 12 * PG);
        ck_assert_uint_eq(q.n, 2);
        r_insert(&q, PG, 2 * PG, 11 * PG);
        r_check(&q);
        ck_assert_uint_eq(q.n, 1);
        r_expect(&q, 0, 0, 3 * PG, 10 * PG, 1);
        iom_ranges_clear(&q);
        ck_assert_uint_eq(q.n, 0);
        ck_assert_ptr_null(q.v);

        ck_assert_uint_eq(iom_ranges_bytes(&r), 1 * PG + 4 * PG + 1 * PG);
        iom_ranges_clear(&r);
        ck_assert_uint_eq(r.n, 0);
        ck_assert_uint_eq(r.cap, 0);
        ck_assert_uint_eq(iom_ranges_bytes(&r), 0);
}
END_TEST

START_TEST(ranges_covered_first_after)
{
        struct iom_ranges r = { 0 };
        r_insert(&r, 2 * PG, 4 * PG, 2 * PG);
        r_insert(&r, 4 * PG, 5 * PG, 900 * PG); /* adjacent, separate run */
        r_insert(&r, 8 * PG, 10 * PG, 8 * PG);
        r_check(&r);
        ck_assert_uint_eq(r.n, 3);

        ck_assert_int_eq(iom_ranges_covered(&r, 2 * PG, 4 * PG), 1);
        ck_assert_int_eq(iom_ranges_covered(&r, 2 * PG, 5 * PG), 1); /* across two runs */
        ck_assert_int_eq(iom_ranges_covered(&r, 3 * PG, 3 * PG + 1), 1);
        ck_assert_int_eq(iom_ranges_covered(&r, PG, 3 * PG), 0);     /* starts before */
        ck_assert_int_eq(iom_ranges_covered(&r, 4 * PG, 6 * PG), 0); /* runs past */
        ck_assert_int_eq(iom_ranges_covered(&r, 2 * PG, 10 * PG), 0); /* gap inside */
        ck_assert_int_eq(iom_ranges_covered(&r, 5 * PG, 8 * PG), 0);
        ck_assert_int_eq(iom_ranges_covered(&r, 8 * PG, 10 * PG), 1);
        ck_assert_int_eq(iom_ranges_covered(&r, 9 * PG, 11 * PG), 0);
        ck_assert_int_eq(iom_ranges_covered(&r, 10 * PG, 11 * PG), 0);

        ck_assert_uint_eq(iom_ranges_first_after(&r, 0), 0);
        ck_assert_uint_eq(iom_ranges_first_after(&r, 2 * PG), 0);
        ck_assert_uint_eq(iom_ranges_first_after(&r, 4 * PG - 1), 0);
        ck_assert_uint_eq(iom_ranges_first_after(&r, 4 * PG), 1);
        ck_assert_uint_eq(iom_ranges_first_after(&r, 5 * PG), 2);
        ck_assert_uint_eq(iom_ranges_first_after(&r, 7 * PG), 2);
        ck_assert_uint_eq(iom_ranges_first_after(&r, 10 * PG - 1), 2);
        ck_assert_uint_eq(iom_ranges_first_after(&r, 10 * PG), 3);
        ck_assert_uint_eq(iom_ranges_bytes(&r), 5 * PG);
        iom_ranges_clear(&r);
}
END_TEST

START_TEST(ranges_inc_split_phys)
{
        struct iom_ranges r = { 0 };
        r_insert(&r, 0, 8 * PG, 1000 * PG);
        /* Nest a middle part: three runs, phys carried into each piece. */
        r_inc(&r, 2 * PG, 5 * PG);
        r_check(&r);
        ck_assert_uint_eq(r.n, 3);
        r_expect(&r, 0, 0, 2 * PG, 1000 * PG, 1);
        r_expect(&r, 1, 2 * PG, 5 * PG, 1002 * PG, 2);
        r_expect(&r, 2, 5 * PG, 8 * PG, 1005 * PG, 1);
        ck_assert_uint_eq(iom_ranges_bytes(&r), 8 * PG); /* bytes, not pins */

        /* Overlapping the split point: four runs with counts 1,2,3,1... */
        r_inc(&r, 4 * PG, 6 * PG);
        r_check(&r);
        ck_assert_uint_eq(r.n, 5);
        r_expect(&r, 0, 0, 2 * PG, 1000 * PG, 1);
        r_expect(&r, 1, 2 * PG, 4 * PG, 1002 * PG, 2);
        r_expect(&r, 2, 4 * PG, 5 * PG, 1004 * PG, 3);
        r_expect(&r, 3, 5 * PG, 6 * PG, 1005 * PG, 2);
        r_expect(&r, 4, 6 * PG, 8 * PG, 1006 * PG, 1);

        /* Making counts agree again merges them back. */
        r_inc(&r, 0, 2 * PG);
        r_inc(&r, 6 * PG, 8 * PG);
        r_inc(&r, 5 * PG, 8 * PG);
        r_inc(&r, 0, 4 * PG);
        r_check(&r);
        ck_assert_uint_eq(r.n, 1);
        r_expect(&r, 0, 0, 8 * PG, 1000 * PG, 3);

        /* Inc over a run boundary where the phys differs: counts rise,
         * the runs stay apart. */
        r_insert(&r, 8 * PG, 10 * PG, 7 * PG);
        r_inc(&r, 7 * PG, 9 * PG);
        r_check(&r);
        ck_assert_uint_eq(r.n, 4);
        r_expect(&r, 0, 0, 7 * PG, 1000 * PG, 3);
        r_expect(&r, 1, 7 * PG, 8 * PG, 1007 * PG, 4);
        r_expect(&r, 2, 8 * PG, 9 * PG, 7 * PG, 2);
        r_expect(&r, 3, 9 * PG, 10 * PG, 8 * PG, 1);
        ck_assert_uint_eq(iom_ranges_bytes(&r), 10 * PG);
        iom_ranges_clear(&r);
}
END_TEST

START_TEST(ranges_dec_gone)
{
        struct iom_ranges r = { 0 };
        struct gone_log g = { 0 };
        r_insert(&r, 0, 4 * PG, 40 * PG);
        r_inc(&r, PG, 2 * PG);
        /* Counts: [0,1)=1 [1,2)=2 [2,4)=1. Drop the whole range once: the
         * pieces that reach zero are reported, the nested one stays. */
        r_dec(&r, 0, 4 * PG, &g);
        r_check(&r);
        ck_assert_uint_eq(g.n, 2);
        ck_assert_uint_eq(g.s[0], 0);
        ck_assert_uint_eq(g.e[0], PG);
        ck_assert_uint_eq(g.s[1], 2 * PG);
        ck_assert_uint_eq(g.e[1], 4 * PG);
        ck_assert_uint_eq(r.n, 1);
        r_expect(&r, 0, PG, 2 * PG, 41 * PG, 1);
        ck_assert_int_eq(iom_ranges_covered(&r, 0, PG), 0);
        ck_assert_int_eq(iom_ranges_covered(&r, PG, 2 * PG), 1);

        g.n = 0;
        r_dec(&r, PG, 2 * PG, &g);
        ck_assert_uint_eq(g.n, 1);
        ck_assert_uint_eq(g.s[0], PG);
        ck_assert_uint_eq(g.e[0], 2 * PG);
        ck_assert_uint_eq(r.n, 0);
        ck_assert_uint_eq(iom_ranges_bytes(&r), 0);

        /* A hole punched in the middle of a run: the rest keeps its phys. */
        g.n = 0;
        r_insert(&r, 0, 6 * PG, 60 * PG);
        r_dec(&r, 2 * PG, 3 * PG, &g);
        r_check(&r);
        ck_assert_uint_eq(g.n, 1);
        ck_assert_uint_eq(g.s[0], 2 * PG);
        ck_assert_uint_eq(g.e[0], 3 * PG);
        ck_assert_uint_eq(r.n, 2);
        r_expect(&r, 0, 0, 2 * PG, 60 * PG, 1);
        r_expect(&r, 1, 3 * PG, 6 * PG, 63 * PG, 1);

        /* A decrement that leaves all counts above zero reports nothing,
         * and merges runs whose counts agree again. */
        g.n = 0;
        r_inc(&r, 0, 2 * PG);
        r_inc(&r, PG, 2 * PG); /* [0,1)=2 [1,2)=3 */
        r_dec(&r, PG, 2 * PG, &g);
        r_check(&r);
        ck_assert_uint_eq(g.n, 0);
        ck_assert_uint_eq(r.n, 2);
        r_expect(&r, 0, 0, 2 * PG, 60 * PG, 2);

        /* Across two runs, dropping all: one report per run removed, and
         * nothing without a callback. */
        r_dec(&r, 0, 2 * PG, NULL);
        ck_assert_uint_eq(r.n, 2);
        g.n = 0;
        r_dec(&r, 0, 2 * PG, &g);
        ck_assert_uint_eq(g.n, 1);
        ck_assert_uint_eq(g.s[0], 0);
        ck_assert_uint_eq(g.e[0], 2 * PG);
        g.n = 0;
        r_dec(&r, 3 * PG, 6 * PG, &g);
        ck_assert_uint_eq(g.n, 1);
        ck_assert_uint_eq(g.s[0], 3 * PG);
        ck_assert_uint_eq(g.e[0], 6 * PG);
        ck_assert_uint_eq(r.n, 0);
        iom_ranges_clear(&r);
}
END_TEST

/* Against a per-page model: random insert/inc/dec keep the runs equal to
 * the model, and gone() reports exactly the pages whose count hit zero. */
#define MODEL_PAGES 64
static uint32_t model[MODEL_PAGES];
static uint64_t model_phys[MODEL_PAGES];
static uint8_t gone_pages[MODEL_PAGES];

static void model_gone(uint64_t s, uint64_t e, void *arg)
{
        (void)arg;
        REQUIRE(s < e);
        REQUIRE(s % PG == 0);
        REQUIRE(e % PG == 0);
        for (uint64_t p = s / PG; p < e / PG; p++) {
                REQUIRE(p < MODEL_PAGES);
                REQUIRE(gone_pages[p] == 0); /* reported once */
                gone_pages[p] = 1;
        }
}

START_TEST(ranges_random_model)
{
        struct iom_ranges r = { 0 };
        memset(model, 0, sizeof model);
        unsigned seed = 12345;
        for (int step = 0; step < 20000; step++) {
                unsigned a = (unsigned)rand_r(&seed) % MODEL_PAGES;
                unsigned b = a + 1 + (unsigned)rand_r(&seed) % 8;
                if (b > MODEL_PAGES)
                        b = MODEL_PAGES;
                int all = 1, none = 1;
                for (unsigned p = a; p < b; p++) {
                        if (model[p])
                                none = 0;
                        else
                                all = 0;
                }
                REQUIRE(iom_ranges_covered(&r, a * PG, b * PG) == all);
                REQUIRE(iom_ranges_reserve(&r, 2) == 0);
                if (none) {
                        /* Physical placement: page p at p, or elsewhere by chance. */
                        uint64_t phys = (rand_r(&seed) & 1) ? a * PG : (1000 + a) * PG;
                        iom_ranges_insert(&r, a * PG, b * PG, phys);
                        for (unsigned p = a; p < b; p++) {
                                model[p] = 1;
                                model_phys[p] = phys + (p - a) * PG;
                        }
                } else if (all && (rand_r(&seed) & 1)) {
                        iom_ranges_inc(&r, a * PG, b * PG);
                        for (unsigned p = a; p < b; p++)
                                model[p]++;
                } else if (all) {
                        memset(gone_pages, 0, sizeof gone_pages);
                        iom_ranges_dec(&r, a * PG, b * PG, model_gone, NULL);
                        for (unsigned p = a; p < b; p++) {
                                model[p]--;
                                REQUIRE(gone_pages[p] == (model[p] == 0));
                        }
                        for (unsigned p = 0; p < MODEL_PAGES; p++)
                                if (p < a || p >= b)
                                        REQUIRE(gone_pages[p] == 0);
                } else {
                        continue;
                }
                r_check(&r);
                /* Every page agrees with the model. */
                uint64_t bytes = 0;
                for (unsigned p = 0; p < MODEL_PAGES; p++) {
                        size_t i = iom_ranges_first_after(&r, p * PG);
                        int in = i < r.n && r.v[i].start <= p * PG;
                        REQUIRE(in == (model[p] > 0));
                        if (!in)
                                continue;
                        bytes += PG;
                        REQUIRE(r.v[i].count == model[p]);
                        REQUIRE(r.v[i].phys + (p * PG - r.v[i].start) == model_phys[p]);
                }
                REQUIRE(iom_ranges_bytes(&r) == bytes);
        }
        iom_ranges_clear(&r);
}
END_TEST

/* ---- helpers: extent maps -------------------------------------------------- */

static struct iom_meta *meta_new(void)
{
        struct iom_meta *m = calloc(1, sizeof *m);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(iom_meta_init(m, PG, false), 0);
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);
        return m;
}

static void meta_free(struct iom_meta *m)
{
        pthread_mutex_destroy(&m->mutex);
        free(m);
}

/* The extents tile [0, round_up(size)) in order, page-granular and
 * non-empty, and no two neighbours could have been joined. */
static void map_check(const struct iom_extent_map *x)
{
        REQUIRE(x->count <= IOM_MAX_EXTENTS);
        uint64_t pos = 0;
        for (uint32_t i = 0; i < x->count; i++) {
                const struct iom_extent *e = &x->ext[i];
                if (e->off != pos)
                        ck_abort_msg("extent %u starts at %llu, not %llu", i,
                                     (unsigned long long)e->off, (unsigned long long)pos);
                REQUIRE(e->len > 0);
                REQUIRE(e->len % PG == 0);
                if (i + 1 < x->count) {
                        const struct iom_extent *n = &x->ext[i + 1];
                        int same = (e->phys == IOM_HOLE || n->phys == IOM_HOLE)
                                           ? e->phys == n->phys
                                           : e->phys + e->len == n->phys;
                        if (same)
                                ck_abort_msg("extents %u and %u should have been joined", i, i + 1);
                }
                pos += e->len;
        }
        REQUIRE(pos == iom_round_up(x->size, PG));
}

static void ext_expect(const struct iom_extent_map *x, uint32_t i, uint64_t off, uint64_t len,
                       uint64_t phys)
{
        ck_assert_uint_lt(i, x->count);
        ck_assert_uint_eq(x->ext[i].off, off);
        ck_assert_uint_eq(x->ext[i].len, len);
        ck_assert_uint_eq(x->ext[i].phys, phys);
}

/* Physical offset that file byte off maps to, IOM_HOLE for a hole. */
static uint64_t phys_of(const struct iom_extent_map *x, uint64_t off)
{
        uint32_t i = iom_map_find(x, off);
        REQUIRE(i < x->count);
        const struct iom_extent *e = &x->ext[i];
        REQUIRE(e->off <= off);
        REQUIRE(e->off + e->len > off);
        return e->phys == IOM_HOLE ? IOM_HOLE : e->phys + (off - e->off);
}

/* ---- extent maps ------------------------------------------------------------- */

START_TEST(map_resize_tiles)
{
        struct iom_meta *m = meta_new();
        const struct iom_extent_map *cur = iom_map(m);
        ck_assert_uint_eq(cur->count, 0);
        ck_assert_uint_eq(cur->size, 0);

        struct iom_extent_map *x = iom_map_begin(m);
        ck_assert_ptr_ne(x, cur);
        ck_assert_int_eq(iom_map_resize(x, 10000, PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->size, 10000);
        ck_assert_uint_eq(x->count, 1);
        ext_expect(x, 0, 0, 3 * PG, IOM_HOLE);
        /* Not published yet. */
        ck_assert_uint_eq(iom_map(m)->size, 0);
        ck_assert_uint_eq(iom_map(m)->count, 0);
        iom_map_commit(m);
        ck_assert_ptr_eq(iom_map(m), x);
        ck_assert_uint_eq(iom_map(m)->size, 10000);
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);

        /* Growth inside the last page changes only the size. */
        x = iom_map_begin(m);
        ck_assert_ptr_ne(x, iom_map(m));
        ck_assert_uint_eq(x->count, 1);
        ck_assert_int_eq(iom_map_resize(x, 12288, PG), 0);
        map_check(x);
        ext_expect(x, 0, 0, 3 * PG, IOM_HOLE);
        /* Growth after a hole extends the hole. */
        ck_assert_int_eq(iom_map_resize(x, 5 * PG + 1, PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 1);
        ext_expect(x, 0, 0, 6 * PG, IOM_HOLE);
        /* Growth after data adds a hole. */
        ck_assert_int_eq(iom_map_set(x, 5 * PG, PG, 5 * PG), 0);
        ck_assert_int_eq(iom_map_resize(x, 8 * PG, PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 3);
        ext_expect(x, 0, 0, 5 * PG, IOM_HOLE);
        ext_expect(x, 1, 5 * PG, PG, 5 * PG);
        ext_expect(x, 2, 6 * PG, 2 * PG, IOM_HOLE);
        iom_map_commit(m);
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);

        /* Shrinking trims the extent the new end falls in and drops the rest. */
        x = iom_map_begin(m);
        ck_assert_int_eq(iom_map_resize(x, 5 * PG + 100, PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 2);
        ck_assert_uint_eq(x->size, 5 * PG + 100);
        ext_expect(x, 1, 5 * PG, PG, 5 * PG);
        ck_assert_int_eq(iom_map_resize(x, 2 * PG + 1, PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 1);
        ext_expect(x, 0, 0, 3 * PG, IOM_HOLE);
        /* Shrinking to an extent boundary. */
        ck_assert_int_eq(iom_map_set(x, PG, PG, 77 * PG), 0);
        ck_assert_int_eq(iom_map_resize(x, PG, PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 1);
        ext_expect(x, 0, 0, PG, IOM_HOLE);
        ck_assert_int_eq(iom_map_resize(x, 0, PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 0);
        ck_assert_uint_eq(x->size, 0);
        iom_map_commit(m);
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);
        meta_free(m);
}
END_TEST

START_TEST(map_set_split_merge)
{
        struct iom_meta *m = meta_new();
        struct iom_extent_map *x = iom_map_begin(m);
        ck_assert_int_eq(iom_map_resize(x, 16 * PG, PG), 0);

        /* Data in the middle of a hole: split into three. */
        ck_assert_int_eq(iom_map_set(x, 4 * PG, 2 * PG, 100 * PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 3);
        ext_expect(x, 0, 0, 4 * PG, IOM_HOLE);
        ext_expect(x, 1, 4 * PG, 2 * PG, 100 * PG);
        ext_expect(x, 2, 6 * PG, 10 * PG, IOM_HOLE);

        /* Physically contiguous data right after: joined. */
        ck_assert_int_eq(iom_map_set(x, 6 * PG, PG, 102 * PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 3);
        ext_expect(x, 1, 4 * PG, 3 * PG, 100 * PG);
        /* ...and right before. */
        ck_assert_int_eq(iom_map_set(x, 3 * PG, PG, 99 * PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 3);
        ext_expect(x, 0, 0, 3 * PG, IOM_HOLE);
        ext_expect(x, 1, 3 * PG, 4 * PG, 99 * PG);

        /* Adjacent but not contiguous physically: kept apart. */
        ck_assert_int_eq(iom_map_set(x, 7 * PG, PG, 500 * PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 4);
        ext_expect(x, 2, 7 * PG, PG, 500 * PG);

        /* A hole in the middle of data splits it; the right part keeps its
         * physical placement. */
        ck_assert_int_eq(iom_map_set(x, 4 * PG, PG, IOM_HOLE), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 6);
        ext_expect(x, 1, 3 * PG, PG, 99 * PG);
        ext_expect(x, 2, 4 * PG, PG, IOM_HOLE);
        ext_expect(x, 3, 5 * PG, 2 * PG, 101 * PG);
        ck_assert_uint_eq(phys_of(x, 6 * PG + 17), 102 * PG + 17);

        /* Overwriting across several extents with one. */
        ck_assert_int_eq(iom_map_set(x, 2 * PG, 7 * PG, 200 * PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 3);
        ext_expect(x, 0, 0, 2 * PG, IOM_HOLE);
        ext_expect(x, 1, 2 * PG, 7 * PG, 200 * PG);
        ext_expect(x, 2, 9 * PG, 7 * PG, IOM_HOLE);

        /* Holes over the data joined with the holes on both sides: one hole. */
        ck_assert_int_eq(iom_map_set(x, 2 * PG, 7 * PG, IOM_HOLE), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 1);
        ext_expect(x, 0, 0, 16 * PG, IOM_HOLE);

        /* Data over the whole map, then in the first and last page only. */
        ck_assert_int_eq(iom_map_set(x, 0, 16 * PG, 0), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 1);
        ck_assert_int_eq(iom_map_set(x, 0, PG, IOM_HOLE), 0);
        ck_assert_int_eq(iom_map_set(x, 15 * PG, PG, IOM_HOLE), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 3);
        ext_expect(x, 1, PG, 14 * PG, PG);
        /* Putting the pages back where they were merges all of it. */
        ck_assert_int_eq(iom_map_set(x, 0, PG, 0), 0);
        ck_assert_int_eq(iom_map_set(x, 15 * PG, PG, 15 * PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 1);
        ext_expect(x, 0, 0, 16 * PG, 0);

        /* Past the tiled end: refused. */
        ck_assert_int_eq(iom_map_set(x, 16 * PG, PG, 0), -ERANGE);
        ck_assert_int_eq(iom_map_set(x, 15 * PG, 2 * PG, 0), -ERANGE);
        map_check(x);

        iom_map_commit(m);
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);
        meta_free(m);
}
END_TEST

START_TEST(map_find)
{
        struct iom_meta *m = meta_new();
        struct iom_extent_map *x = iom_map_begin(m);
        ck_assert_uint_eq(iom_map_find(x, 0), 0); /* empty: count */
        ck_assert_int_eq(iom_map_resize(x, 10 * PG, PG), 0);
        ck_assert_int_eq(iom_map_set(x, 2 * PG, 3 * PG, 50 * PG), 0);
        ck_assert_int_eq(iom_map_set(x, 7 * PG, PG, 70 * PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, 5);
        for (uint64_t off = 0; off < 10 * PG; off += 512) {
                uint32_t i = iom_map_find(x, off);
                ck_assert_uint_lt(i, x->count);
                ck_assert_uint_le(x->ext[i].off, off);
                ck_assert_uint_gt(x->ext[i].off + x->ext[i].len, off);
        }
        ck_assert_uint_eq(iom_map_find(x, 0), 0);
        ck_assert_uint_eq(iom_map_find(x, 2 * PG - 1), 0);
        ck_assert_uint_eq(iom_map_find(x, 2 * PG), 1);
        ck_assert_uint_eq(iom_map_find(x, 7 * PG + 5), 3);
        ck_assert_uint_eq(iom_map_find(x, 10 * PG - 1), 4);
        ck_assert_uint_eq(iom_map_find(x, 10 * PG), x->count);
        ck_assert_uint_eq(phys_of(x, 3 * PG + 9), 51 * PG + 9);
        ck_assert_uint_eq(phys_of(x, 6 * PG), IOM_HOLE);
        meta_free(m);
}
END_TEST

/* Random map_set over a per-page model: the map always tiles, stays
 * merged, and describes the same placement as the model. */
START_TEST(map_random_model)
{
        enum { PAGES = 200 };
        static uint64_t pm[PAGES];
        struct iom_meta *m = meta_new();
        struct iom_extent_map *x = iom_map_begin(m);
        ck_assert_int_eq(iom_map_resize(x, PAGES * PG, PG), 0);
        for (unsigned p = 0; p < PAGES; p++)
                pm[p] = IOM_HOLE;
        unsigned seed = 777;
        for (int step = 0; step < 5000; step++) {
                unsigned a = (unsigned)rand_r(&seed) % PAGES;
                unsigned n = 1 + (unsigned)rand_r(&seed) % 12;
                if (a + n > PAGES)
                        n = PAGES - a;
                unsigned kind = (unsigned)rand_r(&seed) % 3;
                /* Holes, data at the page's own offset (merges readily), or
                 * data somewhere else. */
                uint64_t phys = kind == 0 ? IOM_HOLE : kind == 1 ? a * PG
                                                                 : (uint64_t)(1000 + rand_r(&seed) % 1000) * PG;
                REQUIRE(iom_map_set(x, a * PG, n * PG, phys) == 0);
                for (unsigned p = a; p < a + n; p++)
                        pm[p] = phys == IOM_HOLE ? IOM_HOLE : phys + (p - a) * PG;
                map_check(x);
                for (unsigned p = 0; p < PAGES; p++)
                        REQUIRE(phys_of(x, p * PG + 1) == (pm[p] == IOM_HOLE ? IOM_HOLE : pm[p] + 1));
        }
        iom_map_commit(m);
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);
        meta_free(m);
}
END_TEST

START_TEST(map_enospc)
{
        struct iom_meta *m = meta_new();
        struct iom_extent_map *x = iom_map_begin(m);
        const uint64_t pages = 2 * IOM_MAX_EXTENTS;
        ck_assert_int_eq(iom_map_resize(x, pages * PG, PG), 0);
        /* Data at even pages 0 .. 2*(MAX/2 - 1), each at a physical offset
         * contiguous with nothing it touches; holes between them and one
         * long hole after: exactly IOM_MAX_EXTENTS extents. */
        for (uint64_t p = 0; p < IOM_MAX_EXTENTS; p += 2) {
                int r = iom_map_set(x, p * PG, PG, (10 * p + 1) * PG);
                ck_assert_msg(r == 0, "set page %llu: %d", (unsigned long long)p, r);
        }
        map_check(x);
        ck_assert_uint_eq(x->count, IOM_MAX_EXTENTS);
        ext_expect(x, IOM_MAX_EXTENTS - 1, (IOM_MAX_EXTENTS - 1) * PG,
                   (pages - IOM_MAX_EXTENTS + 1) * PG, IOM_HOLE);

        struct iom_extent_map *saved = malloc(sizeof *saved);
        ck_assert_ptr_nonnull(saved);
        memcpy(saved, x, sizeof *saved);
        /* Splitting the last hole in the middle needs two more: refused,
         * and the map is unchanged. */
        ck_assert_int_eq(iom_map_set(x, 3000 * PG, PG, 3000 * PG), -ENOSPC);
        ck_assert_int_eq(memcmp(saved, x, sizeof *saved), 0);
        /* At its start, one more: refused too. */
        ck_assert_int_eq(iom_map_set(x, (IOM_MAX_EXTENTS - 1) * PG, PG, 99999 * PG), -ENOSPC);
        ck_assert_int_eq(memcmp(saved, x, sizeof *saved), 0);
        /* Data in the middle of a data page's hole neighbour, whole page:
         * replaces one extent by one, fits. */
        ck_assert_int_eq(iom_map_set(x, PG, PG, 55555 * PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, IOM_MAX_EXTENTS);
        ext_expect(x, 1, PG, PG, 55555 * PG);
        /* Growth after the last (a hole) extends it and fits... */
        ck_assert_int_eq(iom_map_resize(x, (pages + 1) * PG, PG), 0);
        ck_assert_uint_eq(x->count, IOM_MAX_EXTENTS);
        /* ...but after data, with the map full, it cannot. */
        ck_assert_int_eq(iom_map_resize(x, (IOM_MAX_EXTENTS - 1) * PG + 1, PG), 0);
        ck_assert_uint_eq(x->count, IOM_MAX_EXTENTS);
        ck_assert_int_eq(iom_map_set(x, (IOM_MAX_EXTENTS - 1) * PG, PG, 123457 * PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, IOM_MAX_EXTENTS);
        memcpy(saved, x, sizeof *saved);
        ck_assert_int_eq(iom_map_resize(x, IOM_MAX_EXTENTS * PG + 1, PG), -ENOSPC);
        ck_assert_int_eq(memcmp(saved, x, sizeof *saved), 0);
        /* Growth within the last page needs no extent. */
        ck_assert_int_eq(iom_map_resize(x, IOM_MAX_EXTENTS * PG, PG), 0);
        ck_assert_uint_eq(x->count, IOM_MAX_EXTENTS);

        /* A change that merges frees room: page 3 joined to pages 2 and 4
         * (each data page p at (10p+1)*PG, so make 2, 3, 4 contiguous). */
        ck_assert_int_eq(iom_map_set(x, 2 * PG, 3 * PG, 21 * PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, IOM_MAX_EXTENTS - 2);
        /* ...and the split refused before fits now. */
        ck_assert_int_eq(iom_map_resize(x, IOM_MAX_EXTENTS * PG + 1, PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, IOM_MAX_EXTENTS - 1);
        ck_assert_int_eq(iom_map_set(x, IOM_MAX_EXTENTS * PG, PG, 7 * PG), 0);
        map_check(x);
        ck_assert_uint_eq(x->count, IOM_MAX_EXTENTS - 1);

        iom_map_commit(m);
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);
        free(saved);
        meta_free(m);
}
END_TEST

/* ---- metadata validation ----------------------------------------------------- */

/* A map with a hole, data and a hole over 10 pages, published. */
static struct iom_meta *meta_good(void)
{
        struct iom_meta *m = meta_new();
        struct iom_extent_map *x = iom_map_begin(m);
        ck_assert_int_eq(iom_map_resize(x, 10 * PG - 5, PG), 0);
        ck_assert_int_eq(iom_map_set(x, 3 * PG, 4 * PG, 3 * PG), 0);
        iom_map_commit(m);
        ck_assert_uint_eq(iom_map(m)->count, 3);
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);
        return m;
}

START_TEST(validate_good)
{
        struct iom_meta *m = meta_good();
        /* Valid tables of pins, pool records and readers are accepted. */
        m->npins = 1;
        m->pins[0] = (struct iom_pin){ .owner = 0, .start = 0, .end = PG };
        m->npool = 1;
        m->pool[0] = (struct iom_pool_rec){ .owner = IOM_MAX_OWNERS - 1, .phys = IOM_POOL_OFF, .len = PG };
        m->nreaders = 1;
        m->readers[0] = (struct iom_reader){ .owner = 3, .tid = 1, .count = 1 };
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);
        /* Pool-resident data is a legal placement. */
        struct iom_extent_map *x = iom_map_begin(m);
        ck_assert_int_eq(iom_map_set(x, 0, PG, IOM_POOL_OFF + 8 * PG), 0);
        iom_map_commit(m);
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);
        /* The other map can be anything: only the current one counts. */
        m->maps[!(m->active_map & 1)].count = IOM_MAX_EXTENTS + 5;
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);
        /* The page size must match. */
        ck_assert_int_eq(iom_meta_validate(m, 2 * PG), -EBADMSG);
        meta_free(m);
}
END_TEST

START_TEST(validate_bad_magic)
{
        struct iom_meta *m = meta_good();
        m->magic ^= 1;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        m->magic = 0;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        m->magic = IOM_META_MAGIC;
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);
        m->version++;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        meta_free(m);
}
END_TEST

START_TEST(validate_bad_extents)
{
        struct iom_meta *m = meta_good();
        struct iom_extent_map *x = &m->maps[m->active_map & 1];
        struct iom_extent_map *saved = malloc(sizeof *saved);
        ck_assert_ptr_nonnull(saved);
        memcpy(saved, x, sizeof *saved);

        /* Overlapping: the second extent starts inside the first. */
        x->ext[1].off -= PG;
        x->ext[1].len += PG;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        memcpy(x, saved, sizeof *saved);
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);

        /* A gap between extents. */
        x->ext[1].off += PG;
        x->ext[1].len -= PG;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        memcpy(x, saved, sizeof *saved);

        /* Count beyond the table. */
        x->count = IOM_MAX_EXTENTS + 1;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        x->count = UINT32_MAX;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        memcpy(x, saved, sizeof *saved);

        /* Extents that stop short of the size, or run past it. */
        x->size += PG;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        x->size -= 2 * PG;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        memcpy(x, saved, sizeof *saved);

        /* An empty extent, a partial page, a misaligned or impossible phys. */
        x->ext[1].len = 0;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        memcpy(x, saved, sizeof *saved);
        x->ext[1].phys += 1;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        memcpy(x, saved, sizeof *saved);
        x->ext[1].phys = IOM_META_OFF; /* the metadata is not file data */
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        memcpy(x, saved, sizeof *saved);
        x->ext[1].phys = IOM_PHYS_END;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        memcpy(x, saved, sizeof *saved);

        /* An active index that names no map. */
        uint32_t active = m->active_map;
        m->active_map = 2;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        m->active_map = active;
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);

        free(saved);
        meta_free(m);
}
END_TEST

START_TEST(validate_bad_tables)
{
        struct iom_meta *m = meta_good();
        /* A pin whose owner is outside the owner table. */
        m->npins = 2;
        m->pins[0] = (struct iom_pin){ .owner = 1, .start = 0, .end = PG };
        m->pins[1] = (struct iom_pin){ .owner = IOM_MAX_OWNERS, .start = PG, .end = 2 * PG };
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        m->pins[1].owner = IOM_MAX_OWNERS - 1;
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);
        /* An empty or backwards pin. */
        m->pins[1].end = m->pins[1].start;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        m->pins[1].end = 2 * PG;
        /* More pins than the table holds. */
        m->npins = IOM_MAX_PINS + 1;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        m->npins = 2;
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);

        /* Pool records: owner out of range, outside the pool. */
        m->npool = 1;
        m->pool[0] = (struct iom_pool_rec){ .owner = IOM_MAX_OWNERS, .phys = IOM_POOL_OFF, .len = PG };
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        m->pool[0].owner = 0;
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);
        m->pool[0].phys = 0;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        m->pool[0].phys = IOM_PHYS_END - PG;
        m->pool[0].len = 2 * PG;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        m->npool = IOM_MAX_ALLOCS + 1;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        m->npool = 0;

        /* Readers and the writer. */
        m->nreaders = 1;
        m->readers[0] = (struct iom_reader){ .owner = IOM_MAX_OWNERS, .tid = 1, .count = 1 };
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        m->readers[0].owner = 0;
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);
        m->nreaders = IOM_MAX_READERS + 1;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        m->nreaders = 0;
        m->writer_owner = IOM_MAX_OWNERS;
        ck_assert_int_eq(iom_meta_validate(m, PG), -EBADMSG);
        m->writer_owner = 5;
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);
        m->writer_owner = IOM_NO_OWNER;
        ck_assert_int_eq(iom_meta_validate(m, PG), 0);
        meta_free(m);
}
END_TEST

/* The metadata of a live object passes validation too. */
START_TEST(validate_live_object)
{
        struct iomem *f = test_open_new("units", 3 * PG + 7);
        ck_assert_int_eq(iomem_pwrite(f, "x", 1, PG), 1);
        ck_assert_int_eq(iomem_acquire(f, 0, PG), (ssize_t)PG);
        ck_assert_ptr_nonnull(fdo(f)->meta);
        ck_assert_uint_eq(f->page_size, PG);
        ck_assert_int_eq(iom_meta_validate(fdo(f)->meta, f->page_size), 0);
        const struct iom_extent_map *x = iom_map(fdo(f)->meta);
        map_check(x);
        ck_assert_uint_eq(x->size, 3 * PG + 7);
        /* The pages written and acquired are backed, the rest are holes. */
        ck_assert_uint_ne(phys_of(x, 0), IOM_HOLE);
        ck_assert_uint_ne(phys_of(x, PG), IOM_HOLE);
        ck_assert_uint_eq(phys_of(x, 2 * PG), IOM_HOLE);
        ck_assert_uint_eq(phys_of(x, 3 * PG), IOM_HOLE);
        ck_assert_uint_ge(fdo(f)->meta->npins, 1);
        ck_assert_int_eq(iomem_release(f, 0, PG), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
        ck_assert_ptr_null(f);
}
END_TEST

static Suite *units_suite(void)
{
        Suite *s = suite_create("units");
        TCase *tc = tcase_create("ranges");
        tcase_add_test(tc, ranges_insert_merge);
        tcase_add_test(tc, ranges_covered_first_after);
        tcase_add_test(tc, ranges_inc_split_phys);
        tcase_add_test(tc, ranges_dec_gone);
        tcase_add_test(tc, ranges_random_model);
        suite_add_tcase(s, tc);

        tc = tcase_create("extent_map");
        tcase_add_test(tc, map_resize_tiles);
        tcase_add_test(tc, map_set_split_merge);
        tcase_add_test(tc, map_find);
        tcase_add_test(tc, map_random_model);
        tcase_add_test(tc, map_enospc);
        suite_add_tcase(s, tc);

        tc = tcase_create("meta");
        tcase_add_test(tc, validate_good);
        tcase_add_test(tc, validate_bad_magic);
        tcase_add_test(tc, validate_bad_extents);
        tcase_add_test(tc, validate_bad_tables);
        tcase_add_test(tc, validate_live_object);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        if (iom_system_page_size() != PG) {
                fprintf(stderr, "units: written for 4 KiB pages\n");
                return TEST_SKIP;
        }
        return test_run(units_suite());
}
