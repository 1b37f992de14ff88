/* SPDX-License-Identifier: MIT */
/*
 * SIEVE (Zhang et al., NSDI 2024): one queue in mapping order, newest at
 * the front, a visited bit set on every hit, and a hand that moves from
 * the back (oldest) towards the front, clearing the bits it passes and
 * stopping at the first chunk without one: the victim. Unlike CLOCK a
 * chunk that survives stays where it is instead of moving to the front,
 * so new chunks that are not reused soon leave first (quick demotion),
 * and the hand resumes at the victim's neighbour the next time.
 */
#include "evict.h"

#include <stdlib.h>

struct sieve {
        uint32_t head;
        uint32_t hand; /* the next chunk to look at; IOM_EVICT_NONE: the back */
        uint8_t *visited;
        struct iom_link l[];
};

static void sieve_destroy(void *p)
{
        struct sieve *s = p;
        if (s)
                free(s->visited);
        free(s);
}

static void *sieve_create(uint32_t n)
{
        struct sieve *s = malloc(sizeof *s + ((size_t)n + 1) * sizeof s->l[0]);
        if (!s)
                return NULL;
        s->visited = calloc(n ? n : 1, 1);
        if (!s->visited) {
                sieve_destroy(s);
                return NULL;
        }
        s->head = n;
        s->hand = IOM_EVICT_NONE;
        iom_list_init(s->l, n, n + 1);
        return s;
}

static void sieve_insert(void *p, uint32_t slot, uint64_t key)
{
        struct sieve *s = p;
        (void)key;
        s->visited[slot] = 0;
        iom_list_push_front(s->l, s->head, slot);
}

static void sieve_hit(void *p, uint32_t slot)
{
        struct sieve *s = p;
        s->visited[slot] = 1;
}

/* Towards the front, wrapping from the front to the back. */
static uint32_t newer(const struct sieve *s, uint32_t x)
{
        uint32_t y = s->l[x].prev;
        return y == s->head ? iom_list_back(s->l, s->head) : y;
}

static uint32_t sieve_victim(void *p)
{
        struct sieve *s = p;
        if (iom_list_empty(s->l, s->head))
                return IOM_EVICT_NONE;
        uint32_t x = s->hand != IOM_EVICT_NONE ? s->hand : iom_list_back(s->l, s->head);
        while (s->visited[x]) {
                s->visited[x] = 0;
                x = newer(s, x);
        }
        s->hand = x; /* on_remove moves it on */
        return x;
}

static void sieve_remove(void *p, uint32_t slot, bool evicted)
{
        struct sieve *s = p;
        (void)evicted;
        if (s->hand == slot) {
                uint32_t y = s->l[slot].prev;
                s->hand = y == s->head ? IOM_EVICT_NONE : y;
        }
        iom_list_remove(s->l, slot);
}

const struct iom_evict_ops iom_evict_sieve = {
        .name = "SIEVE",
        .create = sieve_create,
        .destroy = sieve_destroy,
        .on_insert = sieve_insert,
        .on_hit = sieve_hit,
        .choose_victim = sieve_victim,
        .on_remove = sieve_remove,
};
