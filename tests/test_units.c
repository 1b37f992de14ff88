/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the internal data structures: the pin ranges (ranges.c),
 * the extent map (extent_map.c) and the metadata validation (meta.c).
 * Linked against the static library, so the hidden iom_* names resolve.
 */
#include "common.h"
#include "cacheflush.h"

#include "extent_map.h"
#include "fdmem.h"
#include "lanes.h"
#include "syscalls.h"
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

/* Bytes covered by runs. */
static uint64_t ranges_bytes(const struct iom_ranges *r)
{
        uint64_t total = 0;
        for (size_t i = 0; i < r->n; i++)
                total += r->v[i].end - r->v[i].start;
        return total;
}

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
        iom_ranges_inc(r, s, e, 1);
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
        ck_assert_uint_eq(ranges_bytes(&r), 0);
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

        ck_assert_uint_eq(ranges_bytes(&r), 1 * PG + 4 * PG + 1 * PG);
        iom_ranges_clear(&r);
        ck_assert_uint_eq(r.n, 0);
        ck_assert_uint_eq(r.cap, 0);
        ck_assert_uint_eq(ranges_bytes(&r), 0);
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
        ck_assert_uint_eq(ranges_bytes(&r), 5 * PG);
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
        ck_assert_uint_eq(ranges_bytes(&r), 8 * PG); /* bytes, not pins */

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
        ck_assert_uint_eq(ranges_bytes(&r), 10 * PG);
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
        ck_assert_uint_eq(ranges_bytes(&r), 0);

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
                        iom_ranges_inc(&r, a * PG, b * PG, 1);
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
                REQUIRE(ranges_bytes(&r) == bytes);
        }
        iom_ranges_clear(&r);
}
END_TEST

/* ---- helpers: extent maps -------------------------------------------------- */

/* An object whose extent map a test changes directly, its metadata
 * locked: a memfd object, as the engine makes them. */
static struct iomem *map_new(void)
{
        struct iomem *f = test_open_new("units-map", 0);
        ck_assert_int_eq(iom_meta_lock(f), 0);
        return f;
}

/* Keep the changes (the tables must hold together for the close). */
static void map_free(struct iomem *f)
{
        ck_assert_int_eq(iom_meta_validate(fdo(f)->meta, PG, fdo(f)->meta_map_len), 0);
        iom_meta_unlock(f);
        ck_assert_int_eq(iomem_close(&f), 0);
}

static uint64_t map_count(struct iomem *f)
{
        return fdo(f)->meta->extents.count;
}

static uint64_t map_size(struct iomem *f)
{
        return fdo(f)->meta->size;
}

/* The extents tile [0, round_up(size)) in order, page-granular and
 * non-empty, no two neighbours could have been joined, and the count
 * agrees. */
static void map_check(struct iomem *f)
{
        struct iom_ext_iter it;
        struct iom_extent e, prev = { 0 };
        uint64_t pos = 0, n = 0;
        int r;
        for (r = iom_ext_first(&it, f, 0, &e); r > 0; r = iom_ext_next(&it, &e), n++) {
                if (e.off != pos)
                        ck_abort_msg("extent %llu starts at %llu, not %llu", (unsigned long long)n,
                                     (unsigned long long)e.off, (unsigned long long)pos);
                REQUIRE(e.len > 0 && e.len % PG == 0);
                if (n > 0) {
                        int same = (prev.phys == IOM_HOLE || e.phys == IOM_HOLE)
                                           ? prev.phys == e.phys
                                           : prev.phys + prev.len == e.phys;
                        if (same)
                                ck_abort_msg("extents %llu and %llu should have been joined",
                                             (unsigned long long)n - 1, (unsigned long long)n);
                }
                prev = e;
                pos += e.len;
        }
        REQUIRE(r == 0);
        REQUIRE(pos == iom_round_up(map_size(f), PG));
        REQUIRE(n == map_count(f));
}

/* The i-th extent is [off, off+len) at phys. */
static void ext_expect(struct iomem *f, uint64_t i, uint64_t off, uint64_t len, uint64_t phys)
{
        struct iom_ext_iter it;
        struct iom_extent e;
        int r = iom_ext_first(&it, f, 0, &e);
        for (uint64_t k = 0; k < i && r > 0; k++)
                r = iom_ext_next(&it, &e);
        ck_assert_int_eq(r, 1);
        ck_assert_uint_eq(e.off, off);
        ck_assert_uint_eq(e.len, len);
        ck_assert_uint_eq(e.phys, phys);
}

/* Physical offset that file byte off maps to, IOM_HOLE for a hole. */
static uint64_t phys_of(struct iomem *f, uint64_t off)
{
        struct iom_ext_iter it;
        struct iom_extent e;
        int r_ = iom_ext_first(&it, f, off, &e);
        if (r_ != 1)
                ck_abort_msg("extent at %llu: %d %s", (unsigned long long)off, r_, iomem_errormsg());
        REQUIRE(e.off <= off && e.off + e.len > off);
        return e.phys == IOM_HOLE ? IOM_HOLE : e.phys + (off - e.off);
}

/* ---- extent maps ------------------------------------------------------------- */

START_TEST(map_resize_tiles)
{
        struct iomem *f = map_new();
        ck_assert_uint_eq(map_count(f), 0);
        ck_assert_uint_eq(map_size(f), 0);
        ck_assert_int_eq(iom_map_resize(f, 10000), 0);
        map_check(f);
        ck_assert_uint_eq(map_size(f), 10000);
        ck_assert_uint_eq(map_count(f), 1);
        ext_expect(f, 0, 0, 3 * PG, IOM_HOLE);

        /* Growth inside the last page changes only the size. */
        ck_assert_int_eq(iom_map_resize(f, 12288), 0);
        map_check(f);
        ext_expect(f, 0, 0, 3 * PG, IOM_HOLE);
        /* Growth after a hole extends the hole. */
        ck_assert_int_eq(iom_map_resize(f, 5 * PG + 1), 0);
        map_check(f);
        ck_assert_uint_eq(map_count(f), 1);
        ext_expect(f, 0, 0, 6 * PG, IOM_HOLE);
        /* Growth after data adds a hole. */
        ck_assert_int_eq(iom_map_set(f, 5 * PG, PG, 5 * PG), 0);
        ck_assert_int_eq(iom_map_resize(f, 8 * PG), 0);
        map_check(f);
        ck_assert_uint_eq(map_count(f), 3);
        ext_expect(f, 0, 0, 5 * PG, IOM_HOLE);
        ext_expect(f, 1, 5 * PG, PG, 5 * PG);
        ext_expect(f, 2, 6 * PG, 2 * PG, IOM_HOLE);

        /* Shrinking trims the extent the new end falls in and drops the rest. */
        ck_assert_int_eq(iom_map_resize(f, 5 * PG + 100), 0);
        map_check(f);
        ck_assert_uint_eq(map_count(f), 2);
        ck_assert_uint_eq(map_size(f), 5 * PG + 100);
        ext_expect(f, 1, 5 * PG, PG, 5 * PG);
        ck_assert_int_eq(iom_map_resize(f, 2 * PG + 1), 0);
        map_check(f);
        ck_assert_uint_eq(map_count(f), 1);
        ext_expect(f, 0, 0, 3 * PG, IOM_HOLE);
        /* Shrinking to an extent boundary. */
        ck_assert_int_eq(iom_map_set(f, PG, PG, 77 * PG), 0);
        ck_assert_int_eq(iom_map_resize(f, PG), 0);
        map_check(f);
        ck_assert_uint_eq(map_count(f), 1);
        ext_expect(f, 0, 0, PG, IOM_HOLE);
        ck_assert_int_eq(iom_map_resize(f, 0), 0);
        map_check(f);
        ck_assert_uint_eq(map_count(f), 0);
        ck_assert_uint_eq(map_size(f), 0);
        map_free(f);
}
END_TEST

START_TEST(map_set_split_merge)
{
        struct iomem *f = map_new();
        ck_assert_int_eq(iom_map_resize(f, 16 * PG), 0);

        /* Data in the middle of a hole: split into three. */
        ck_assert_int_eq(iom_map_set(f, 4 * PG, 2 * PG, 100 * PG), 0);
        map_check(f);
        ck_assert_uint_eq(map_count(f), 3);
        ext_expect(f, 0, 0, 4 * PG, IOM_HOLE);
        ext_expect(f, 1, 4 * PG, 2 * PG, 100 * PG);
        ext_expect(f, 2, 6 * PG, 10 * PG, IOM_HOLE);

        /* Physically contiguous data right after: joined. */
        ck_assert_int_eq(iom_map_set(f, 6 * PG, PG, 102 * PG), 0);
        map_check(f);
        ck_assert_uint_eq(map_count(f), 3);
        ext_expect(f, 1, 4 * PG, 3 * PG, 100 * PG);
        /* ...and right before. */
        ck_assert_int_eq(iom_map_set(f, 3 * PG, PG, 99 * PG), 0);
        map_check(f);
        ck_assert_uint_eq(map_count(f), 3);
        ext_expect(f, 0, 0, 3 * PG, IOM_HOLE);
        ext_expect(f, 1, 3 * PG, 4 * PG, 99 * PG);

        /* Adjacent but not contiguous physically: kept apart. */
        ck_assert_int_eq(iom_map_set(f, 7 * PG, PG, 500 * PG), 0);
        map_check(f);
        ck_assert_uint_eq(map_count(f), 4);
        ext_expect(f, 2, 7 * PG, PG, 500 * PG);

        /* A hole in the middle of data splits it; the right part keeps its
         * physical placement. */
        ck_assert_int_eq(iom_map_set(f, 4 * PG, PG, IOM_HOLE), 0);
        map_check(f);
        ck_assert_uint_eq(map_count(f), 6);
        ext_expect(f, 1, 3 * PG, PG, 99 * PG);
        ext_expect(f, 2, 4 * PG, PG, IOM_HOLE);
        ext_expect(f, 3, 5 * PG, 2 * PG, 101 * PG);
        ck_assert_uint_eq(phys_of(f, 6 * PG + 17), 102 * PG + 17);

        /* Overwriting across several extents with one. */
        ck_assert_int_eq(iom_map_set(f, 2 * PG, 7 * PG, 200 * PG), 0);
        map_check(f);
        ck_assert_uint_eq(map_count(f), 3);
        ext_expect(f, 0, 0, 2 * PG, IOM_HOLE);
        ext_expect(f, 1, 2 * PG, 7 * PG, 200 * PG);
        ext_expect(f, 2, 9 * PG, 7 * PG, IOM_HOLE);

        /* Holes over the data joined with the holes on both sides: one hole. */
        ck_assert_int_eq(iom_map_set(f, 2 * PG, 7 * PG, IOM_HOLE), 0);
        map_check(f);
        ck_assert_uint_eq(map_count(f), 1);
        ext_expect(f, 0, 0, 16 * PG, IOM_HOLE);

        /* Data over the whole map, then in the first and last page only. */
        ck_assert_int_eq(iom_map_set(f, 0, 16 * PG, 0), 0);
        map_check(f);
        ck_assert_uint_eq(map_count(f), 1);
        ck_assert_int_eq(iom_map_set(f, 0, PG, IOM_HOLE), 0);
        ck_assert_int_eq(iom_map_set(f, 15 * PG, PG, IOM_HOLE), 0);
        map_check(f);
        ck_assert_uint_eq(map_count(f), 3);
        ext_expect(f, 1, PG, 14 * PG, PG);
        /* Putting the pages back where they were merges all of it. */
        ck_assert_int_eq(iom_map_set(f, 0, PG, 0), 0);
        ck_assert_int_eq(iom_map_set(f, 15 * PG, PG, 15 * PG), 0);
        map_check(f);
        ck_assert_uint_eq(map_count(f), 1);
        ext_expect(f, 0, 0, 16 * PG, 0);

        /* Past the tiled end: refused, nothing changed. */
        ck_assert_int_eq(iom_map_set(f, 16 * PG, PG, 0), -ERANGE);
        ck_assert_int_eq(iom_map_set(f, 15 * PG, 2 * PG, 0), -ERANGE);
        map_check(f);
        ext_expect(f, 0, 0, 16 * PG, 0);
        map_free(f);
}
END_TEST

/* Random map_set over a per-page model, on a map of hundreds of leaves: it
 * always tiles, stays merged, and places every page as the model does. */
START_TEST(map_random_model)
{
        enum { PAGES = 20000 };
        static uint64_t pm[PAGES];
        struct iomem *f = map_new();
        ck_assert_int_eq(iom_map_resize(f, PAGES * PG), 0);
        for (unsigned p = 0; p < PAGES; p++)
                pm[p] = IOM_HOLE;
        unsigned seed = 777;
        for (int step = 0; step < 40000; step++) {
                unsigned a = (unsigned)rand_r(&seed) % PAGES;
                unsigned n = 1 + (unsigned)rand_r(&seed) % 12;
                if (a + n > PAGES)
                        n = PAGES - a;
                unsigned kind = (unsigned)rand_r(&seed) % 3;
                /* Holes, data at the page's own offset (merges readily), or
                 * data somewhere else. */
                uint64_t phys = kind == 0 ? IOM_HOLE : kind == 1 ? a * PG
                                                                 : (uint64_t)(100000 + rand_r(&seed) % 100000) * PG;
                REQUIRE(iom_map_set(f, a * PG, n * PG, phys) == 0);
                for (unsigned p = a; p < a + n; p++)
                        pm[p] = phys == IOM_HOLE ? IOM_HOLE : phys + (p - a) * PG;
                for (unsigned p = a ? a - 1 : a; p < a + n + 1 && p < PAGES; p++)
                        REQUIRE(phys_of(f, p * PG + 1) == (pm[p] == IOM_HOLE ? IOM_HOLE : pm[p] + 1));
                if (step % 4000 == 0) {
                        map_check(f);
                        for (unsigned p = 0; p < PAGES; p++)
                                REQUIRE(phys_of(f, p * PG + 1) == (pm[p] == IOM_HOLE ? IOM_HOLE : pm[p] + 1));
                }
        }
        map_check(f);
        ck_assert_uint_gt(map_count(f), 4 * IOM_SMAP_LEAF_RECS);
        /* Shrinking drops hundreds of leaves at once, and growing back
         * gives one hole. */
        ck_assert_int_eq(iom_map_resize(f, 3 * PG), 0);
        map_check(f);
        ck_assert_int_eq(iom_map_resize(f, PAGES * PG), 0);
        map_check(f);
        ck_assert_uint_eq(phys_of(f, (PAGES - 1) * PG), IOM_HOLE);
        map_free(f);
}
END_TEST

/* Where the old table stopped (2048 extents), the map goes on: 10^5
 * separate extents, every one found again. */
START_TEST(map_has_no_wall)
{
        enum { EXTENTS = 100000 };
        struct iomem *f = map_new();
        ck_assert_int_eq(iom_map_resize(f, 2 * EXTENTS * PG), 0);
        for (uint64_t i = 0; i < EXTENTS; i++)
                REQUIRE(iom_map_set(f, 2 * i * PG, PG, (3 * i + 7) * PG) == 0);
        ck_assert_uint_eq(map_count(f), 2 * EXTENTS);
        map_check(f);
        for (uint64_t i = 0; i < EXTENTS; i++) {
                REQUIRE(phys_of(f, 2 * i * PG + 5) == (3 * i + 7) * PG + 5);
                REQUIRE(phys_of(f, (2 * i + 1) * PG) == IOM_HOLE);
        }
        map_free(f);
}
END_TEST

/* A change undone (a failure half way, or a holder that died) leaves the
 * map exactly as it was, however many leaves it split or freed. */
START_TEST(map_undo_restores)
{
        enum { PAGES = 3000 };
        struct iomem *f = map_new();
        ck_assert_int_eq(iom_map_resize(f, PAGES * PG), 0);
        for (uint64_t p = 0; p < PAGES; p += 3)
                REQUIRE(iom_map_set(f, p * PG, PG, (p + 50000) * PG) == 0);
        iom_meta_keep(f);
        uint64_t count = map_count(f);
        static uint64_t before[PAGES];
        for (uint64_t p = 0; p < PAGES; p++)
                before[p] = phys_of(f, p * PG);
        /* Thousands of splits, merges and frees in one change... */
        for (uint64_t p = 1; p < PAGES; p += 3)
                REQUIRE(iom_map_set(f, p * PG, 2 * PG, p * PG) == 0);
        ck_assert_int_eq(iom_map_resize(f, 7 * PG), 0);
        ck_assert_uint_ne(map_count(f), count);
        /* ...undone. */
        iom_meta_undo(f);
        map_check(f);
        ck_assert_uint_eq(map_count(f), count);
        ck_assert_uint_eq(map_size(f), PAGES * PG);
        for (uint64_t p = 0; p < PAGES; p++)
                REQUIRE(phys_of(f, p * PG) == before[p]);
        map_free(f);
}
END_TEST

/* The metadata's memory cannot grow (its filesystem is full): the change
 * fails with -ENOSPC and a message, and the map is as it was. */
static int fallocate_no_space(int fd, int mode, off_t off, off_t len)
{
        (void)fd, (void)mode, (void)off, (void)len;
        errno = ENOSPC;
        return -1;
}

START_TEST(map_enospc)
{
        struct iomem *f = map_new();
        ck_assert_int_eq(iom_map_resize(f, 100000 * PG), 0);
        iom_meta_keep(f);
        int (*real)(int, int, off_t, off_t) = iom_sys.fallocate;
        iom_sys.fallocate = fallocate_no_space;
        int r = 0;
        uint64_t p;
        for (p = 0; p < 100000 && r == 0; p += 2)
                r = iom_map_set(f, p * PG, PG, (p + 1000000) * PG);
        iom_sys.fallocate = real;
        ck_assert_int_eq(r, -ENOSPC);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "units-map"));
        /* Everything before the failing step stands, that step left no
         * trace. */
        map_check(f);
        ck_assert_uint_eq(map_count(f), p - 2); /* data, hole, data, ..., hole */
        ck_assert_uint_eq(phys_of(f, (p - 4) * PG), (p - 4 + 1000000) * PG);
        ck_assert_uint_eq(phys_of(f, (p - 2) * PG), IOM_HOLE);
        /* With room again, it goes on. */
        ck_assert_int_eq(iom_map_set(f, (p - 2) * PG, PG, 7 * PG), 0);
        map_check(f);
        map_free(f);
}
END_TEST

/* ---- metadata validation ----------------------------------------------------- */

START_TEST(validate_header)
{
        struct iomem *f = map_new();
        struct iom_meta *m = fdo(f)->meta;
        uint64_t span = fdo(f)->meta_map_len;
        ck_assert_int_eq(iom_meta_validate(m, PG, span), 0);
        ck_assert_int_eq(iom_meta_validate(m, 2 * PG, span), -EBADMSG); /* page size */
        ck_assert_int_eq(iom_meta_validate(m, PG, span / 2), -EBADMSG); /* span */
        struct iom_meta saved = *m;
#define SPOIL(what)                                                          \
        do {                                                                 \
                what;                                                        \
                ck_assert_msg(iom_meta_validate(m, PG, span) == -EBADMSG, "%s", #what); \
                memcpy(m, &saved, offsetof(struct iom_meta, mutex));         \
                memcpy((char *)m + offsetof(struct iom_meta, span),          \
                       (char *)&saved + offsetof(struct iom_meta, span),     \
                       sizeof saved - offsetof(struct iom_meta, span));      \
                ck_assert_int_eq(iom_meta_validate(m, PG, span), 0);         \
        } while (0)
        SPOIL(m->magic ^= 1);
        SPOIL(m->version++);
        SPOIL(m->heap_top = m->heap_backed + PG);
        SPOIL(m->heap_top = IOM_HEAP_OFF - 8);
        SPOIL(m->heap_backed = span);
        SPOIL(m->log_len = m->log_backed + 8);
        SPOIL(m->log_backed = span);
        SPOIL(m->size = IOM_DATA_END + 1);
        SPOIL(m->pool_next = IOM_POOL_OFF - PG);
        SPOIL(m->extents.nleaves = m->extents.dir_cap + 1);
        SPOIL(m->pins.count = 1000);
        SPOIL(m->owners.nleaves = 0); /* records, but no leaf */
#undef SPOIL
        map_free(f);
}
END_TEST

/* Extents another process spoilt are refused as they are read. */
START_TEST(validate_extents_as_read)
{
        struct iomem *f = map_new();
        struct iom_meta *m = fdo(f)->meta;
        ck_assert_int_eq(iom_map_resize(f, 10 * PG - 5), 0);
        ck_assert_int_eq(iom_map_set(f, 3 * PG, 4 * PG, 3 * PG), 0);
        map_check(f);
        /* The middle extent, in place. */
        struct iom_rec *x = (struct iom_rec *)iom_smap_get(m, &m->extents, 3 * PG);
        ck_assert_ptr_nonnull(x);
        struct iom_rec saved = *x;
        struct iom_ext_iter it;
        struct iom_extent e;
#define SPOIL(what)                                                          \
        do {                                                                 \
                what;                                                        \
                int r_ = iom_ext_first(&it, f, 0, &e);                      \
                while (r_ > 0)                                               \
                        r_ = iom_ext_next(&it, &e);                          \
                ck_assert_msg(r_ == -EBADMSG, "%s: %d", #what, r_);          \
                *x = saved;                                                  \
        } while (0)
        SPOIL(x->ext.len += PG);                    /* overlaps the next */
        SPOIL(x->ext.len -= PG);                    /* leaves a gap */
        SPOIL(x->ext.len = 0);
        SPOIL(x->ext.len = 100 * PG);               /* past the end */
        SPOIL(x->ext.phys += 1);                    /* not page-aligned */
        SPOIL(x->ext.phys = IOM_META_OFF);          /* the metadata is not file data */
        SPOIL(x->ext.phys = IOM_PHYS_END);
        SPOIL(x->ext.phys = IOM_PHYS_END - PG);     /* runs past the end */
#undef SPOIL
        map_check(f);
        /* Pool-resident data is a legal placement. */
        ck_assert_int_eq(iom_map_set(f, 0, PG, IOM_POOL_OFF + 8 * PG), 0);
        map_check(f);
        map_free(f);
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
        ck_assert_int_eq(iom_meta_lock(f), 0);
        map_check(f);
        ck_assert_uint_eq(map_size(f), 3 * PG + 7);
        /* The pages written and acquired are backed, the rest are holes. */
        ck_assert_uint_ne(phys_of(f, 0), IOM_HOLE);
        ck_assert_uint_ne(phys_of(f, PG), IOM_HOLE);
        ck_assert_uint_eq(phys_of(f, 2 * PG), IOM_HOLE);
        ck_assert_uint_eq(phys_of(f, 3 * PG), IOM_HOLE);
        ck_assert_uint_ge(fdo(f)->meta->pins.count, 1);
        iom_meta_unlock(f);
        ck_assert_int_eq(iomem_release(f, 0, PG), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
        ck_assert_ptr_null(f);
}
END_TEST

/* ---- lanes ------------------------------------------------------------- */

static int fold_sum(void *arg, uint64_t start, uint64_t end, uint64_t count)
{
        uint64_t *pages = arg;
        *pages += (end - start) / PG * count;
        return 0;
}

static int fold_fails(void *arg, uint64_t start, uint64_t end, uint64_t count)
{
        (void)start, (void)end, (void)count;
        return --*(int *)arg < 0 ? -ENOMEM : 0;
}

/* A lane counts nests by exact range, as many ranges as it has nests;
 * the whole lock holds it away from the hot path; folding hands every
 * count over once, and a failed fold keeps what it did not hand over. */
START_TEST(lane_nests_and_folds)
{
        cpu_set_t mine, one;
        ck_assert_int_eq(pthread_getaffinity_np(pthread_self(), sizeof mine, &mine), 0);
        CPU_ZERO(&one);
        CPU_SET(sched_getcpu(), &one);
        ck_assert_int_eq(pthread_setaffinity_np(pthread_self(), sizeof one, &one), 0);
        struct iom_lanes l;
        iom_lanes_init(&l);
        ck_assert_ptr_null(iom_lane_enter(&l)); /* not in use before a lock */
        iom_lanes_lock(&l);
        ck_assert_ptr_null(iom_lane_enter(&l)); /* the whole lock has it */
        iom_lanes_unlock(&l);
        struct iom_lane *ln = iom_lane_enter(&l);
        ck_assert_ptr_nonnull(ln);
        for (uint64_t i = 0; i < IOM_LANE_NESTS; i++)
                ck_assert(iom_lane_nest(ln, i * PG, (i + 1) * PG));
        ck_assert(!iom_lane_nest(ln, 100 * PG, 101 * PG)); /* full */
        ck_assert(iom_lane_nest(ln, 0, PG));                /* counted again */
        ck_assert(!iom_lane_unnest(ln, 0, 2 * PG));         /* not exactly a nest */
        ck_assert(iom_lane_unnest(ln, PG, 2 * PG));
        ck_assert(!iom_lane_unnest(ln, PG, 2 * PG));        /* no count left */
        ck_assert(iom_lane_nest(ln, 100 * PG, 101 * PG));   /* a freed nest */
        iom_lane_leave(ln);
        iom_lanes_lock(&l);
        int budget = 2;
        ck_assert_int_eq(iom_lanes_fold(&l, fold_fails, &budget), -ENOMEM);
        uint64_t pages = 0;
        ck_assert_int_eq(iom_lanes_fold(&l, fold_sum, &pages), 0);
        /* The first two nests went before the failure ([0, 1) twice and
         * [100, 101)); pages 2 to IOM_LANE_NESTS - 1 are left, once each. */
        ck_assert_uint_eq(pages, IOM_LANE_NESTS - 2);
        pages = 0;
        ck_assert_int_eq(iom_lanes_fold(&l, fold_sum, &pages), 0);
        ck_assert_uint_eq(pages, 0); /* once only */
        iom_lanes_unlock(&l);
        ln = iom_lane_enter(&l);
        ck_assert_ptr_nonnull(ln);
        ck_assert(!iom_lane_unnest(ln, 0, PG));
        iom_lane_leave(ln);
        iom_lanes_destroy(&l);
        ck_assert_int_eq(pthread_setaffinity_np(pthread_self(), sizeof mine, &mine), 0);
}
END_TEST

/* The library finds the CPU's best write-back as the kernel lists it, and
 * every instruction the CPU has writes a range back, unaligned ends
 * included, leaving the bytes as they were. Under valgrind, whose CPU
 * answers CPUID for itself (CLFLUSH, neither CLWB nor CLFLUSHOPT), the
 * library goes by that answer: then its choice must be one the kernel
 * lists, and it alone is run. */
START_TEST(cache_write_back)
{
        static const char *const flag[] = { [IOMEM_PERSIST_CLWB] = "clwb",
                                            [IOMEM_PERSIST_CLFLUSHOPT] = "clflushopt",
                                            [IOMEM_PERSIST_CLFLUSH] = "clflush" };
        unsigned chosen = iom_cache_flush_kind();
        bool valgrind = test_under_valgrind();
        if (valgrind)
                ck_assert(chosen == IOMEM_PERSIST_NONE || test_cpu_flag(flag[chosen]));
        else
                ck_assert_uint_eq(chosen, test_cpu_flush_kind());
        if (chosen == IOMEM_PERSIST_NONE)
                return;
        enum { LEN = 3 * 4096 + 100 };
        unsigned char *b = malloc(LEN + 64);
        ck_assert_ptr_nonnull(b);
        for (size_t i = 0; i < LEN + 64; i++)
                b[i] = (unsigned char)(i * 7);
        for (unsigned kind = IOMEM_PERSIST_CLWB; kind <= IOMEM_PERSIST_CLFLUSH; kind++) {
                if (valgrind ? kind != chosen : !test_cpu_flag(flag[kind]))
                        continue;
                iom_cache_writeback(kind, b + 5, LEN);
                iom_cache_writeback(kind, b + 1, 1);
                iom_cache_fence();
        }
        for (size_t i = 0; i < LEN + 64; i++)
                ck_assert_uint_eq(b[i], (unsigned char)(i * 7));
        free(b);
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
        tcase_add_test(tc, map_random_model);
        tcase_add_test(tc, map_has_no_wall);
        tcase_add_test(tc, map_undo_restores);
        tcase_add_test(tc, map_enospc);
        suite_add_tcase(s, tc);

        tc = tcase_create("lanes");
        tcase_add_test(tc, lane_nests_and_folds);
        suite_add_tcase(s, tc);

        tc = tcase_create("meta");
        tcase_add_test(tc, validate_header);
        tcase_add_test(tc, validate_extents_as_read);
        tcase_add_test(tc, validate_live_object);
        suite_add_tcase(s, tc);

        tc = tcase_create("cacheflush");
        tcase_add_test(tc, cache_write_back);
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
