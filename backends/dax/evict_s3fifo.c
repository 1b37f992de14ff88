/* SPDX-License-Identifier: MIT */
/*
 * S3-FIFO (Yang et al., SOSP 2023), with libCacheSim's defaults: a small
 * FIFO of 10 % of the slots where new chunks start, a main FIFO of the
 * rest, and a ghost FIFO remembering the keys of up to 90 % of the slots'
 * worth of chunks evicted from the small one. A hit only counts (a 2-bit
 * frequency, capped at 3). The small queue's oldest chunk moves to main if
 * it was hit twice (libCacheSim's move-to-main threshold), else it is
 * evicted and becomes a ghost; a chunk coming back as a ghost goes
 * straight to main. Main is a CLOCK with the frequency as its counter: the
 * oldest chunk goes if its count is 0, else it is put back at the front
 * with the count (capped at 3) less one. Main gives a victim when it holds
 * more than its share, or the small queue is empty. Most chunks are used
 * once: they pass through the small queue quickly and never disturb main.
 *
 * As in libCacheSim, until the first eviction a new chunk goes to main
 * once the small queue is full, so a window filling up keeps what it has.
 */
#include "evict.h"

#include <stdlib.h>

#define MOVE_TO_MAIN 2 /* hits in the small queue that earn a place in main */
#define FREQ_MAX 3

enum { SMALL, MAIN };

struct s3fifo {
        uint32_t small_max, main_max;
        bool has_evicted;
        uint8_t *freq;            /* per slot */
        uint64_t *key;            /* per slot: its ghost's key when evicted */
        struct iom_lists q;       /* SMALL and MAIN */
        struct iom_ghosts ghosts;
};

static void s3fifo_destroy(void *p)
{
        struct s3fifo *s = p;
        if (!s)
                return;
        iom_ghosts_fini(&s->ghosts);
        iom_lists_fini(&s->q);
        free(s->freq);
        free(s->key);
        free(s);
}

static void *s3fifo_create(uint32_t n)
{
        struct s3fifo *s = calloc(1, sizeof *s);
        if (!s)
                return NULL;
        s->small_max = n / 10 ? n / 10 : 1;
        s->main_max = n > s->small_max ? n - s->small_max : 1;
        s->freq = calloc((size_t)n + 1, 1);
        s->key = malloc(((size_t)n + 1) * sizeof *s->key);
        if (!s->freq || !s->key || iom_lists_init(&s->q, n) ||
            iom_ghosts_init(&s->ghosts, (uint32_t)((uint64_t)n * 9 / 10), 1)) {
                s3fifo_destroy(s);
                return NULL;
        }
        return s;
}

static void to_main(struct s3fifo *s, uint32_t slot)
{
        iom_lists_take(&s->q, slot);
        iom_lists_put(&s->q, slot, MAIN);
}

static void s3fifo_insert(void *p, uint32_t slot, uint64_t key)
{
        struct s3fifo *s = p;
        s->key[slot] = key;
        s->freq[slot] = 0;
        if (iom_ghosts_take(&s->ghosts, key) >= 0 ||
            (!s->has_evicted && s->q.count[SMALL] >= s->small_max))
                iom_lists_put(&s->q, slot, MAIN);
        else
                iom_lists_put(&s->q, slot, SMALL);
}

static void s3fifo_hit(void *p, uint32_t slot)
{
        struct s3fifo *s = p;
        if (s->freq[slot] < FREQ_MAX)
                s->freq[slot]++;
}

static uint32_t s3fifo_victim(void *p)
{
        struct s3fifo *s = p;
        s->has_evicted = true;
        if (s->q.count[MAIN] <= s->main_max && s->q.count[SMALL]) {
                /* Chunks hit often enough move to main until one is not. */
                uint32_t x;
                while ((x = iom_lists_oldest(&s->q, SMALL)) != IOM_EVICT_NONE) {
                        if (s->freq[x] < MOVE_TO_MAIN)
                                return x;
                        s->freq[x] = 0;
                        to_main(s, x);
                }
        }
        for (;;) {
                uint32_t x = iom_lists_oldest(&s->q, MAIN);
                if (x == IOM_EVICT_NONE)
                        return iom_lists_oldest(&s->q, SMALL);
                if (!s->freq[x])
                        return x;
                s->freq[x]--;
                to_main(s, x);
        }
}

static void s3fifo_remove(void *p, uint32_t slot, bool evicted)
{
        struct s3fifo *s = p;
        if (evicted && s->q.which[slot] == SMALL)
                iom_ghosts_add(&s->ghosts, 0, s->key[slot]);
        iom_lists_take(&s->q, slot);
}

const struct iom_evict_ops iom_evict_s3fifo = {
        .name = "S3-FIFO",
        .create = s3fifo_create,
        .destroy = s3fifo_destroy,
        .on_insert = s3fifo_insert,
        .on_hit = s3fifo_hit,
        .choose_victim = s3fifo_victim,
        .on_remove = s3fifo_remove,
};
