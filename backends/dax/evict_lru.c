/* SPDX-License-Identifier: MIT */
/*
 * LRU: the chunk used longest ago goes. One list in order of use, newest
 * at the front; a hit moves the chunk to the front.
 */
#include "evict.h"

#include <stdlib.h>

struct lru {
        uint32_t head;
        struct iom_link l[];
};

static void *lru_create(uint32_t n)
{
        struct lru *r = malloc(sizeof *r + ((size_t)n + 1) * sizeof r->l[0]);
        if (!r)
                return NULL;
        r->head = n;
        iom_list_init(r->l, n, n + 1);
        return r;
}

static void lru_destroy(void *p) { free(p); }

static void lru_insert(void *p, uint32_t slot, uint64_t key)
{
        struct lru *r = p;
        (void)key;
        iom_list_push_front(r->l, r->head, slot);
}

static void lru_hit(void *p, uint32_t slot)
{
        struct lru *r = p;
        iom_list_remove(r->l, slot);
        iom_list_push_front(r->l, r->head, slot);
}

static uint32_t lru_victim(void *p)
{
        struct lru *r = p;
        return iom_list_back(r->l, r->head);
}

static void lru_remove(void *p, uint32_t slot, bool evicted)
{
        struct lru *r = p;
        (void)evicted;
        iom_list_remove(r->l, slot);
}

const struct iom_evict_ops iom_evict_lru = {
        .name = "LRU",
        .create = lru_create,
        .destroy = lru_destroy,
        .on_insert = lru_insert,
        .on_hit = lru_hit,
        .choose_victim = lru_victim,
        .on_remove = lru_remove,
};
