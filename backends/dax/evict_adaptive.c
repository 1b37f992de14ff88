/* SPDX-License-Identifier: MIT */
/*
 * The default policy: follow whichever of LRU, CLOCK, ARC, LIRS, S3-FIFO
 * and SIEVE has been hitting most lately. No single one is best: LRU and
 * ARC win where recency rules, LIRS on loops and scans larger than the
 * window, S3-FIFO and SIEVE where most chunks are used once, and each
 * loses badly somewhere.
 *
 * Each candidate runs as a shadow (evict_sim.c): a window of as many slots
 * holding keys only, fed every access the real window sees (a hit, or the
 * miss announced by on_miss; chunks given back after parking and the
 * re-insertions of a policy change are not accesses). Each shadow's hits
 * are counted with weights that double every HALF_LIFE_SLOTS times the
 * slots' worth of accesses, so that old phases fade slowly.
 *
 * The real window follows one shadow, the leader, lazily. A shadow's
 * "outsiders" are the resident chunks it does not hold; the victim is the
 * leader's outsider that became one first, so once the window holds what
 * the leader holds the two evict the same chunks and hit alike. Every
 * shadow's outsiders are kept, in a list per shadow, changing only where
 * the shadow's content or the window's does (one key in and one out per
 * miss), so a change of leader is O(1). Changing costs up to one miss per
 * outsider of the new leader, which the window must still replace, so the
 * leader changes only when another shadow's weighted hits exceed the
 * leader's by more than SWITCH_COST times its outsiders (plus a few, to
 * keep near-equal shadows from trading places): a shadow that wins by a
 * lot takes over soon, one that wins by little only when that pays. A
 * window with no outsider (its chunks all in the leader, some slots
 * parked) evicts its least recently used chunk.
 */
#include "evict.h"

#include <stdlib.h>

/* Measured on tests/traces (bench_window): half-lives from 32 to 1000
 * windows and costs from 0.75 to 1 keep every case within a point. */
#define HALF_LIFE_SLOTS 64 /* hits fade over 64 windows' worth of accesses */
#define SWITCH_COST 1      /* misses a change of leader is charged per outsider */
#define SWITCH_MARGIN 2    /* hits more, so that equals do not trade places */

/* LIRS leads first: nothing tells the shadows apart until the window is
 * full, and by the time a loop or a scan shows which one wins, following
 * another costs a window's worth of misses. LIRS is the one that does not
 * collapse on either, and it was the default before. */
#define FIRST_LEADER 3
static const struct iom_evict_ops *const candidates[] = {
        &iom_evict_lru, &iom_evict_clock, &iom_evict_arc,
        &iom_evict_lirs, &iom_evict_s3fifo, &iom_evict_sieve,
};
#define NCAND ((uint32_t)(sizeof candidates / sizeof candidates[0]))

struct adaptive {
        uint32_t n, leader;
        double weight, growth;   /* a hit now counts weight; weight grows by growth an access */
        double score[NCAND];     /* hits, weighted */
        uint32_t noutsiders[NCAND];
        struct iom_evict_sim *shadow[NCAND];
        struct iom_keymap resident; /* slot -> key */
        /* Per shadow, its outsiders (newest first): slot s of shadow i is
         * entry i * (n + 1) + s, the head i * (n + 1) + n. */
        struct iom_link *outsiders;
        struct iom_link *recency;   /* n slots + head: most recently used first */
};

static void adaptive_destroy(void *p)
{
        struct adaptive *a = p;
        if (!a)
                return;
        for (uint32_t i = 0; i < NCAND; i++)
                iom_evict_sim_free(a->shadow[i]);
        iom_keymap_fini(&a->resident);
        free(a->outsiders);
        free(a->recency);
        free(a);
}

static void *adaptive_create(uint32_t n)
{
        struct adaptive *a = calloc(1, sizeof *a);
        if (!a)
                return NULL;
        a->n = n;
        a->weight = 1;
        /* (1 + ln 2 / h)^h is close to 2 for the h >= 64 used */
        a->growth = 1 + 0.6931471805599453 / (HALF_LIFE_SLOTS * (n > 64 ? n : 64));
        a->outsiders = malloc((size_t)NCAND * (n + 1) * sizeof *a->outsiders);
        a->recency = malloc(((size_t)n + 1) * sizeof *a->recency);
        bool ok = a->outsiders && a->recency && !iom_keymap_init(&a->resident, n);
        for (uint32_t i = 0; ok && i < NCAND; i++)
                ok = (a->shadow[i] = iom_evict_sim_new(candidates[i], n)) != NULL;
        if (!ok) {
                adaptive_destroy(a);
                return NULL;
        }
        for (uint32_t i = 0; i < NCAND; i++)
                iom_list_init(a->outsiders + (size_t)i * (n + 1), n, n + 1);
        iom_list_init(a->recency, n, n + 1);
        a->leader = FIRST_LEADER;
        return a;
}

static struct iom_link *outsiders_of(const struct adaptive *a, uint32_t i)
{
        return a->outsiders + (size_t)i * (a->n + 1);
}

static void mark_outsider(struct adaptive *a, uint32_t i, uint32_t slot, bool outsider)
{
        struct iom_link *l = outsiders_of(a, i);
        if (outsider && !iom_list_has(l, slot)) {
                iom_list_push_front(l, a->n, slot);
                a->noutsiders[i]++;
        } else if (!outsider && iom_list_has(l, slot)) {
                iom_list_remove(l, slot);
                a->noutsiders[i]--;
        }
}

/* Another leader when its lead pays for its outsiders. */
static void maybe_switch(struct adaptive *a)
{
        uint32_t best = a->leader;
        for (uint32_t i = 0; i < NCAND; i++)
                if (a->score[i] > a->score[best])
                        best = i;
        if (best == a->leader)
                return;
        double lead = (a->score[best] - a->score[a->leader]) / a->weight;
        if (lead > SWITCH_COST * a->noutsiders[best] + SWITCH_MARGIN)
                a->leader = best;
}

/* Every shadow sees key; their outsiders follow their changes. */
static void access_key(struct adaptive *a, uint64_t key)
{
        uint32_t in = iom_keymap_find(&a->resident, key);
        for (uint32_t i = 0; i < NCAND; i++) {
                bool evicted;
                uint64_t gone;
                if (iom_evict_sim_access(a->shadow[i], key, &evicted, &gone)) {
                        a->score[i] += a->weight;
                        continue;
                }
                if (in != IOM_EVICT_NONE)
                        mark_outsider(a, i, in, false);
                uint32_t s;
                if (evicted && (s = iom_keymap_find(&a->resident, gone)) != IOM_EVICT_NONE)
                        mark_outsider(a, i, s, true);
        }
        a->weight *= a->growth;
        if (a->weight > 0x1p500) { /* rescale before it overflows; ratios stay */
                for (uint32_t i = 0; i < NCAND; i++)
                        a->score[i] *= 0x1p-500;
                a->weight *= 0x1p-500;
        }
        maybe_switch(a);
}

static void adaptive_insert(void *p, uint32_t slot, uint64_t key)
{
        struct adaptive *a = p;
        iom_keymap_add(&a->resident, slot, key);
        iom_list_push_front(a->recency, a->n, slot);
        for (uint32_t i = 0; i < NCAND; i++)
                mark_outsider(a, i, slot, !iom_evict_sim_holds(a->shadow[i], key));
}

static void adaptive_hit(void *p, uint32_t slot)
{
        struct adaptive *a = p;
        iom_list_remove(a->recency, slot);
        iom_list_push_front(a->recency, a->n, slot);
        access_key(a, a->resident.key[slot]);
}

static void adaptive_miss(void *p, uint64_t key)
{
        access_key(p, key);
}

static uint32_t adaptive_victim(void *p)
{
        struct adaptive *a = p;
        uint32_t s = iom_list_back(outsiders_of(a, a->leader), a->n);
        return s != IOM_EVICT_NONE ? s : iom_list_back(a->recency, a->n);
}

static void adaptive_remove(void *p, uint32_t slot, bool evicted)
{
        struct adaptive *a = p;
        (void)evicted;
        iom_keymap_del(&a->resident, slot);
        iom_list_remove(a->recency, slot);
        for (uint32_t i = 0; i < NCAND; i++)
                mark_outsider(a, i, slot, false);
}

const struct iom_evict_ops iom_evict_adaptive = {
        .name = "adaptive",
        .create = adaptive_create,
        .destroy = adaptive_destroy,
        .on_insert = adaptive_insert,
        .on_hit = adaptive_hit,
        .choose_victim = adaptive_victim,
        .on_remove = adaptive_remove,
        .on_miss = adaptive_miss,
};
