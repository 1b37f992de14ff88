/* SPDX-License-Identifier: MIT */
/*
 * What several eviction policies share (evict.h): a chained hash from keys
 * to nodes, lists that know their lengths, and on both the ghosts, keys of
 * evicted chunks that ARC and S3-FIFO remember so that a chunk coming back
 * soon is known to be reused. Chains are short (at least as many buckets
 * as nodes), so every call is O(1) expected.
 */
#include "evict.h"

#include <errno.h>
#include <stdlib.h>

/* Keys may be small dense numbers (a trace's ids) or already mixed (the
 * window's chunk keys): mix again so that either spreads over the buckets. */
static uint32_t bucket_of(const struct iom_keymap *m, uint64_t key)
{
        key ^= key >> 31;
        key *= UINT64_C(0x9e3779b97f4a7c15);
        return (uint32_t)(key >> 32) & m->mask;
}

int iom_keymap_init(struct iom_keymap *m, uint32_t nodes)
{
        uint32_t buckets = 1;
        while (buckets < nodes)
                buckets *= 2;
        m->mask = buckets - 1;
        m->bucket = malloc((size_t)buckets * sizeof *m->bucket);
        m->next = malloc(((size_t)nodes + 1) * sizeof *m->next);
        m->key = malloc(((size_t)nodes + 1) * sizeof *m->key);
        if (!m->bucket || !m->next || !m->key) {
                iom_keymap_fini(m);
                return -ENOMEM;
        }
        for (uint32_t b = 0; b < buckets; b++)
                m->bucket[b] = IOM_EVICT_NONE;
        return 0;
}

void iom_keymap_fini(struct iom_keymap *m)
{
        free(m->bucket);
        free(m->next);
        free(m->key);
        m->bucket = m->next = NULL;
        m->key = NULL;
}

uint32_t iom_keymap_find(const struct iom_keymap *m, uint64_t key)
{
        for (uint32_t x = m->bucket[bucket_of(m, key)]; x != IOM_EVICT_NONE; x = m->next[x])
                if (m->key[x] == key)
                        return x;
        return IOM_EVICT_NONE;
}

void iom_keymap_add(struct iom_keymap *m, uint32_t node, uint64_t key)
{
        uint32_t *b = &m->bucket[bucket_of(m, key)];
        m->key[node] = key;
        m->next[node] = *b;
        *b = node;
}

void iom_keymap_del(struct iom_keymap *m, uint32_t node)
{
        uint32_t *p = &m->bucket[bucket_of(m, m->key[node])];
        while (*p != node)
                p = &m->next[*p];
        *p = m->next[node];
}

/* ---- counted lists ----------------------------------------------------------- */

int iom_lists_init(struct iom_lists *q, uint32_t nodes)
{
        *q = (struct iom_lists){ .nodes = nodes };
        q->which = calloc((size_t)nodes + 1, 1);
        q->l = malloc(((size_t)nodes + IOM_LISTS_MAX) * sizeof *q->l);
        if (!q->which || !q->l) {
                iom_lists_fini(q);
                return -ENOMEM;
        }
        iom_list_init(q->l, nodes, nodes + IOM_LISTS_MAX);
        for (uint32_t k = 1; k < IOM_LISTS_MAX; k++)
                iom_list_init(q->l, nodes + k, 0);
        return 0;
}

void iom_lists_fini(struct iom_lists *q)
{
        free(q->which);
        free(q->l);
        q->which = NULL;
        q->l = NULL;
}

/* ---- ghosts ------------------------------------------------------------------ */

int iom_ghosts_init(struct iom_ghosts *g, uint32_t cap, uint32_t nlists)
{
        *g = (struct iom_ghosts){ .cap = cap, .nlists = nlists };
        g->lists = malloc(sizeof *g->lists);
        if (!g->lists || iom_lists_init(g->lists, cap) || iom_keymap_init(&g->map, cap)) {
                iom_ghosts_fini(g);
                return -ENOMEM;
        }
        for (uint32_t x = 0; x < cap; x++)
                iom_lists_put(g->lists, x, nlists);
        return 0;
}

void iom_ghosts_fini(struct iom_ghosts *g)
{
        iom_keymap_fini(&g->map);
        if (g->lists)
                iom_lists_fini(g->lists);
        free(g->lists);
        g->lists = NULL;
}

int iom_ghosts_find(const struct iom_ghosts *g, uint64_t key)
{
        uint32_t x = iom_keymap_find(&g->map, key);
        return x == IOM_EVICT_NONE ? -1 : (int)g->lists->which[x];
}

static void forget(struct iom_ghosts *g, uint32_t x)
{
        iom_keymap_del(&g->map, x);
        iom_lists_take(g->lists, x);
        iom_lists_put(g->lists, x, g->nlists);
}

int iom_ghosts_take(struct iom_ghosts *g, uint64_t key)
{
        uint32_t x = iom_keymap_find(&g->map, key);
        if (x == IOM_EVICT_NONE)
                return -1;
        int list = (int)g->lists->which[x];
        forget(g, x);
        return list;
}

void iom_ghosts_drop_oldest(struct iom_ghosts *g, uint32_t list)
{
        uint32_t x = iom_lists_oldest(g->lists, list);
        if (x != IOM_EVICT_NONE)
                forget(g, x);
}

uint32_t iom_ghosts_count(const struct iom_ghosts *g, uint32_t list)
{
        return g->lists->count[list];
}

void iom_ghosts_add(struct iom_ghosts *g, uint32_t list, uint64_t key)
{
        if (!g->cap)
                return;
        if (!g->lists->count[g->nlists]) {
                uint32_t longest = 0;
                for (uint32_t k = 1; k < g->nlists; k++)
                        if (g->lists->count[k] > g->lists->count[longest])
                                longest = k;
                iom_ghosts_drop_oldest(g, longest);
        }
        uint32_t x = iom_lists_oldest(g->lists, g->nlists);
        iom_lists_take(g->lists, x);
        iom_lists_put(g->lists, x, list);
        iom_keymap_add(&g->map, x, key);
}
