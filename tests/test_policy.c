/* SPDX-License-Identifier: MIT */
/*
 * The DAX window's eviction policies at the policy level (evict.h, through
 * policy_replay.c): each reference policy behaves as published on traces
 * whose answer is known, Belady's optimum bounds them all, and on every
 * real trace of tests/traces (IOMEM_TRACES names the folder) at windows of
 * 1, 5, 10 and 25 % of its ids the default stays within a point of hit
 * ratio of the best of LRU, CLOCK, ARC, LIRS, S3-FIFO and SIEVE.
 */
#include "policy_replay.h"

#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct iom_evict_ops *const references[] = {
        &iom_evict_lru, &iom_evict_clock, &iom_evict_arc,
        &iom_evict_lirs, &iom_evict_s3fifo, &iom_evict_sieve,
};
#define NREF (sizeof references / sizeof references[0])
static const unsigned sizes_pct[] = { 1, 5, 10, 25 };

static struct replay_trace make_trace(size_t n, uint32_t ids)
{
        struct replay_trace t = { malloc(n * sizeof *t.v), n, ids };
        ck_assert_ptr_nonnull(t.v);
        return t;
}

static long long hits(const struct iom_evict_ops *ops, const struct replay_trace *t, uint32_t slots)
{
        long long h = replay_hits(ops, t, slots);
        ck_assert_int_ge(h, 0);
        return h;
}

/* A loop one larger than the window: whatever is used longest ago (or
 * was mapped first) is exactly what comes next. */
START_TEST(loop_defeats_recency)
{
        const uint32_t w = 50;
        struct replay_trace t = make_trace(20 * (w + 1), w + 1);
        for (size_t i = 0; i < t.n; i++)
                t.v[i] = (uint32_t)(i % (w + 1));
        ck_assert_int_eq(hits(&iom_evict_lru, &t, w), 0);
        ck_assert_int_eq(hits(&iom_evict_fifo, &t, w), 0);
        ck_assert_int_eq(hits(&iom_evict_clock, &t, w), 0);
        /* LIRS keeps the LIR set: all but about 1 % of the slots hit. */
        ck_assert_int_ge(hits(&iom_evict_lirs, &t, w), (long long)t.n * 8 / 10);
        /* The default follows what wins: LIRS here. */
        ck_assert_int_ge(hits(&iom_evict_adaptive, &t, w), (long long)t.n * 7 / 10);
        /* Belady misses once every w - 1 accesses or so once the window is full. */
        ck_assert_int_ge(replay_belady_hits(&t, w), (long long)t.n * 9 / 10);
        replay_trace_free(&t);
}
END_TEST

/* Everything fits: only the first use of each id misses. */
START_TEST(all_fit)
{
        struct replay_trace t = make_trace(5000, 100);
        uint64_t x = 7;
        for (size_t i = 0; i < t.n; i++) {
                x = x * 6364136223846793005u + 1442695040888963407u;
                t.v[i] = i < 100 ? (uint32_t)i : (uint32_t)((x >> 33) % 100);
        }
        for (size_t p = 0; p < NREF; p++)
                ck_assert_int_eq(hits(references[p], &t, 100), 4900);
        ck_assert_int_eq(hits(&iom_evict_adaptive, &t, 100), 4900);
        ck_assert_int_eq(replay_belady_hits(&t, 100), 4900);
        replay_trace_free(&t);
}
END_TEST

/* A hot set and a scan: S3-FIFO and SIEVE keep the hot set out of the
 * scan's way, LRU does not; Belady beats them all. */
START_TEST(scan_resistance)
{
        const uint32_t w = 100, hot = 50;
        struct replay_trace t = make_trace(40000, hot + 20000);
        uint64_t x = 3;
        size_t scan = 0;
        for (size_t i = 0; i < t.n; i++) {
                x = x * 6364136223846793005u + 1442695040888963407u;
                t.v[i] = (x >> 63) ? (uint32_t)((x >> 33) % hot) : hot + (uint32_t)(scan++ % 20000);
        }
        long long lru = hits(&iom_evict_lru, &t, w), opt = replay_belady_hits(&t, w);
        ck_assert_int_ge(hits(&iom_evict_s3fifo, &t, w), lru + 1000);
        ck_assert_int_ge(hits(&iom_evict_sieve, &t, w), lru + 1000);
        for (size_t p = 0; p < NREF; p++)
                ck_assert_int_le(hits(references[p], &t, w), opt);
        ck_assert_int_le(hits(&iom_evict_adaptive, &t, w), opt);
        replay_trace_free(&t);
}
END_TEST

/* The window's side of the contract (evict.h), as window.c drives it with
 * pinned chunks: a victim found busy is taken out (parked) and the policy
 * asked again, and parked chunks come back later without being accessed.
 * Every victim must be a slot the policy still tracks. */
START_TEST(parking)
{
        const struct iom_evict_ops *all[] = {
                &iom_evict_fifo, &iom_evict_lifo, &iom_evict_clock, &iom_evict_lru,
                &iom_evict_lirs, &iom_evict_arc, &iom_evict_s3fifo, &iom_evict_sieve,
                &iom_evict_adaptive,
        };
        enum { N = 16, IDS = 40 };
        for (size_t p = 0; p < sizeof all / sizeof all[0]; p++) {
                const struct iom_evict_ops *ops = all[p];
                void *st = ops->create(N);
                ck_assert_ptr_nonnull(st);
                uint64_t key[N];
                int32_t slot_of[IDS];
                bool used[N] = { false }, parked[N] = { false };
                for (int k = 0; k < IDS; k++)
                        slot_of[k] = -1;
                uint64_t x = 11 + p;
                for (int i = 0; i < 20000; i++) {
                        x = x * 6364136223846793005u + 1442695040888963407u;
                        uint32_t id = (uint32_t)((x >> 33) % IDS), r = (uint32_t)(x >> 20) & 0xff;
                        if (r < 20) { /* a parked chunk is no longer busy */
                                for (uint32_t s = 0; s < N; s++) {
                                        if (parked[s]) {
                                                parked[s] = false;
                                                ops->on_insert(st, s, key[s]);
                                                break;
                                        }
                                }
                                continue;
                        }
                        int32_t s = slot_of[id];
                        if (s >= 0) {
                                if (!parked[s])
                                        ops->on_hit(st, (uint32_t)s);
                                continue;
                        }
                        if (ops->on_miss)
                                ops->on_miss(st, id);
                        uint32_t free_slot = IOM_EVICT_NONE;
                        for (uint32_t f = 0; f < N && free_slot == IOM_EVICT_NONE; f++)
                                if (!used[f])
                                        free_slot = f;
                        while (free_slot == IOM_EVICT_NONE) {
                                uint32_t v = ops->choose_victim(st);
                                if (v == IOM_EVICT_NONE)
                                        break; /* everything is parked */
                                ck_assert_msg(v < N && used[v] && !parked[v],
                                              "%s offered slot %u, which it does not track",
                                              ops->name, v);
                                if (((x >> 8) & 3) == 0 && (x & 0x10)) {
                                        ops->on_remove(st, v, false); /* busy: parked */
                                        parked[v] = true;
                                        x ^= x >> 7;
                                        continue;
                                }
                                ops->on_remove(st, v, true);
                                slot_of[key[v]] = -1;
                                used[v] = false;
                                free_slot = v;
                        }
                        if (free_slot == IOM_EVICT_NONE)
                                continue;
                        used[free_slot] = true;
                        key[free_slot] = id;
                        slot_of[id] = (int32_t)free_slot;
                        ops->on_insert(st, free_slot, id);
                }
                ops->destroy(st);
        }
}
END_TEST

/* ---- real traces ---------------------------------------------------------------- */

static int trace_count;
static char trace_path[32][512];

static void find_traces(void)
{
        const char *dir = getenv("IOMEM_TRACES");
        ck_assert_msg(dir != NULL, "IOMEM_TRACES names the folder of traces");
        DIR *d = opendir(dir);
        ck_assert_msg(d != NULL, "%s: cannot open", dir);
        struct dirent *e;
        trace_count = 0;
        while ((e = readdir(d)) && trace_count < 32) {
                size_t len = strlen(e->d_name);
                if (len > 4 && !strcmp(e->d_name + len - 4, ".txt"))
                        snprintf(trace_path[trace_count++], sizeof trace_path[0], "%s/%s", dir,
                                 e->d_name);
        }
        closedir(d);
        ck_assert_int_ge(trace_count, 1);
}

START_TEST(default_near_the_best)
{
        char behind[4096] = "";
        size_t used = 0;
        find_traces();
        for (int k = 0; k < trace_count; k++) {
                struct replay_trace t;
                ck_assert_int_eq(replay_trace_load(&t, trace_path[k]), 0);
                for (size_t z = 0; z < sizeof sizes_pct / sizeof sizes_pct[0]; z++) {
                        uint32_t slots = replay_slots(&t, sizes_pct[z]);
                        long long opt = replay_belady_hits(&t, slots), best = 0;
                        const char *best_name = "";
                        for (size_t p = 0; p < NREF; p++) {
                                long long h = hits(references[p], &t, slots);
                                ck_assert_msg(h <= opt, "%s at %u%%: %s beats Belady", trace_path[k],
                                              sizes_pct[z], references[p]->name);
                                if (h > best) {
                                        best = h;
                                        best_name = references[p]->name;
                                }
                        }
                        long long def = hits(&iom_evict_adaptive, &t, slots);
                        double gap = 100.0 * (double)(best - def) / (double)t.n;
                        ck_assert_msg(def <= opt, "%s at %u%%: the default beats Belady",
                                      trace_path[k], sizes_pct[z]);
                        if (gap > 1.0 && used < sizeof behind)
                                used += (size_t)snprintf(behind + used, sizeof behind - used,
                                                         "\n%s at %u%% (%u slots): the default hits "
                                                         "%.2f %%, %s %.2f %%: %.2f points behind",
                                                         trace_path[k], sizes_pct[z], slots,
                                                         100.0 * (double)def / (double)t.n,
                                                         best_name,
                                                         100.0 * (double)best / (double)t.n, gap);
                }
                replay_trace_free(&t);
        }
        ck_assert_msg(!*behind, "more than a point behind the best:%s", behind);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("policy");
        TCase *tc = tcase_create("references");
        tcase_add_test(tc, loop_defeats_recency);
        tcase_add_test(tc, all_fit);
        tcase_add_test(tc, scan_resistance);
        tcase_add_test(tc, parking);
        suite_add_tcase(s, tc);
        tc = tcase_create("real traces");
        tcase_add_test(tc, default_near_the_best);
        suite_add_tcase(s, tc);
        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
