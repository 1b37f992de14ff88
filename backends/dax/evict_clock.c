/* SPDX-License-Identifier: MIT */
/*
 * CLOCK (second chance): the chunks in a ring in mapping order, a
 * reference bit set on every hit, and a hand that clears set bits as it
 * passes and stops at the first clear one. A new chunk goes just behind
 * the hand, so it is the last the hand reaches.
 */
#include "evict.h"

#include <stdlib.h>

struct clock {
        uint32_t head, hand; /* hand == head: at the start of the ring */
        uint8_t *ref;
        struct iom_link l[];
};

static void *clock_create(uint32_t n)
{
        struct clock *c = malloc(sizeof *c + ((size_t)n + 1) * sizeof c->l[0]);
        uint8_t *ref = calloc(n, 1);
        if (!c || !ref) {
                free(c);
                free(ref);
                return NULL;
        }
        c->head = c->hand = n;
        c->ref = ref;
        iom_list_init(c->l, n, n + 1);
        return c;
}

static void clock_destroy(void *p)
{
        struct clock *c = p;
        free(c->ref);
        free(c);
}

static void clock_insert(void *p, uint32_t slot, uint64_t key)
{
        struct clock *c = p;
        (void)key;
        c->ref[slot] = 0;
        iom_list_insert_after(c->l, c->l[c->hand].prev, slot);
}

static void clock_hit(void *p, uint32_t slot)
{
        struct clock *c = p;
        c->ref[slot] = 1;
}

static uint32_t clock_victim(void *p)
{
        struct clock *c = p;
        if (iom_list_empty(c->l, c->head))
                return IOM_EVICT_NONE;
        for (;;) {
                if (c->hand == c->head)
                        c->hand = c->l[c->head].next;
                if (!c->ref[c->hand])
                        return c->hand;
                c->ref[c->hand] = 0;
                c->hand = c->l[c->hand].next;
        }
}

static void clock_remove(void *p, uint32_t slot, bool evicted)
{
        struct clock *c = p;
        (void)evicted;
        if (c->hand == slot)
                c->hand = c->l[slot].next;
        iom_list_remove(c->l, slot);
}

const struct iom_evict_ops iom_evict_clock = {
        .name = "CLOCK",
        .create = clock_create,
        .destroy = clock_destroy,
        .on_insert = clock_insert,
        .on_hit = clock_hit,
        .choose_victim = clock_victim,
        .on_remove = clock_remove,
};
