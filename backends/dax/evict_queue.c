/* SPDX-License-Identifier: MIT */
/*
 * FIFO and LIFO eviction: one queue in mapping order, use ignored. FIFO
 * evicts the oldest mapping, as Linux's fs/fuse/dax.c reclaims the
 * oldest busy range; LIFO the newest, as OSv's dax_manager pops its stack.
 */
#include "evict.h"

#include <stdlib.h>

struct queue {
        uint32_t head; /* the newest mapping is head's next */
        bool lifo;
        struct iom_link l[];
};

static void *queue_create(uint32_t n, bool lifo)
{
        struct queue *q = malloc(sizeof *q + ((size_t)n + 1) * sizeof q->l[0]);
        if (!q)
                return NULL;
        q->head = n;
        q->lifo = lifo;
        iom_list_init(q->l, n, n + 1);
        return q;
}

static void *fifo_create(uint32_t n) { return queue_create(n, false); }
static void *lifo_create(uint32_t n) { return queue_create(n, true); }

static void queue_destroy(void *p) { free(p); }

static void queue_insert(void *p, uint32_t slot, uint64_t key)
{
        struct queue *q = p;
        (void)key;
        iom_list_push_front(q->l, q->head, slot);
}

static void queue_hit(void *p, uint32_t slot) { (void)p, (void)slot; }

static uint32_t queue_victim(void *p)
{
        struct queue *q = p;
        return q->lifo ? iom_list_front(q->l, q->head) : iom_list_back(q->l, q->head);
}

static void queue_remove(void *p, uint32_t slot, bool evicted)
{
        struct queue *q = p;
        (void)evicted;
        iom_list_remove(q->l, slot);
}

const struct iom_evict_ops iom_evict_fifo = {
        .name = "FIFO",
        .create = fifo_create,
        .destroy = queue_destroy,
        .on_insert = queue_insert,
        .on_hit = queue_hit,
        .choose_victim = queue_victim,
        .on_remove = queue_remove,
};

const struct iom_evict_ops iom_evict_lifo = {
        .name = "LIFO",
        .create = lifo_create,
        .destroy = queue_destroy,
        .on_insert = queue_insert,
        .on_hit = queue_hit,
        .choose_victim = queue_victim,
        .on_remove = queue_remove,
};
