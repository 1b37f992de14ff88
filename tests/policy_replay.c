/* SPDX-License-Identifier: MIT */
/* Traces through the eviction policies and Belady's optimum (policy_replay.h). */
#include "policy_replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int replay_trace_load(struct replay_trace *t, const char *path)
{
        *t = (struct replay_trace){ 0 };
        FILE *f = fopen(path, "r");
        if (!f)
                return -errno;
        size_t cap = 0;
        struct iom_keymap renumber = { 0 };
        uint32_t renumber_cap = 0;
        unsigned long long id;
        int err = 0;
        while (fscanf(f, "%llu", &id) == 1) {
                if (t->n == cap) {
                        cap = cap ? 2 * cap : 4096;
                        uint32_t *v = realloc(t->v, cap * sizeof *v);
                        if (!v) {
                                err = -ENOMEM;
                                break;
                        }
                        t->v = v;
                }
                if (t->ids == renumber_cap) { /* grow the map: add every id again */
                        struct iom_keymap bigger;
                        uint32_t bigger_cap = renumber_cap ? 2 * renumber_cap : 4096;
                        if (iom_keymap_init(&bigger, bigger_cap)) {
                                err = -ENOMEM;
                                break;
                        }
                        for (uint32_t k = 0; k < t->ids; k++)
                                iom_keymap_add(&bigger, k, renumber.key[k]);
                        iom_keymap_fini(&renumber);
                        renumber = bigger;
                        renumber_cap = bigger_cap;
                }
                uint32_t k = iom_keymap_find(&renumber, id);
                if (k == IOM_EVICT_NONE) {
                        k = t->ids++;
                        iom_keymap_add(&renumber, k, id);
                }
                t->v[t->n++] = k;
        }
        if (!err && ferror(f))
                err = -EIO;
        fclose(f);
        iom_keymap_fini(&renumber);
        if (err)
                replay_trace_free(t);
        return err;
}

void replay_trace_free(struct replay_trace *t)
{
        free(t->v);
        *t = (struct replay_trace){ 0 };
}

long long replay_hits(const struct iom_evict_ops *ops, const struct replay_trace *t,
                      uint32_t slots)
{
        struct iom_evict_sim *s = iom_evict_sim_new(ops, slots);
        if (!s)
                return -ENOMEM;
        long long hits = 0;
        for (size_t i = 0; i < t->n; i++) {
                bool evicted;
                uint64_t gone;
                hits += iom_evict_sim_access(s, t->v[i], &evicted, &gone);
        }
        iom_evict_sim_free(s);
        return hits;
}

/* ---- Belady ------------------------------------------------------------------ */

/* A max-heap of (next use, id); an entry is stale once its id is used
 * again or evicted, and is skipped when it comes to the top. */
struct use {
        size_t next;
        uint32_t id;
};

static void heap_push(struct use *h, size_t *n, struct use u)
{
        size_t i = (*n)++;
        while (i && h[(i - 1) / 2].next < u.next) {
                h[i] = h[(i - 1) / 2];
                i = (i - 1) / 2;
        }
        h[i] = u;
}

static struct use heap_pop(struct use *h, size_t *n)
{
        struct use top = h[0], last = h[--*n];
        size_t i = 0;
        for (;;) {
                size_t c = 2 * i + 1;
                if (c >= *n)
                        break;
                if (c + 1 < *n && h[c + 1].next > h[c].next)
                        c++;
                if (h[c].next <= last.next)
                        break;
                h[i] = h[c];
                i = c;
        }
        if (*n)
                h[i] = last;
        return top;
}

long long replay_belady_hits(const struct replay_trace *t, uint32_t slots)
{
        size_t *next = malloc((t->n ? t->n : 1) * sizeof *next);
        size_t *next_use = malloc((t->ids ? t->ids : 1) * sizeof *next_use); /* SIZE_MAX: not held */
        struct use *heap = malloc((t->n ? t->n : 1) * sizeof *heap);
        long long hits = -ENOMEM;
        if (!next || !next_use || !heap)
                goto out;
        for (uint32_t k = 0; k < t->ids; k++)
                next_use[k] = SIZE_MAX;
        for (size_t i = t->n; i-- > 0;) {
                next[i] = next_use[t->v[i]] == SIZE_MAX ? t->n + t->v[i] : next_use[t->v[i]];
                next_use[t->v[i]] = i; /* reused below: reset after */
        }
        for (uint32_t k = 0; k < t->ids; k++)
                next_use[k] = SIZE_MAX;
        size_t held = 0, nheap = 0;
        hits = 0;
        for (size_t i = 0; i < t->n; i++) {
                uint32_t id = t->v[i];
                if (next_use[id] != SIZE_MAX) {
                        hits++;
                } else if (held < slots) {
                        held++;
                } else {
                        for (;;) { /* the held chunk used again last; stale entries skipped */
                                struct use u = heap_pop(heap, &nheap);
                                if (next_use[u.id] == u.next) {
                                        next_use[u.id] = SIZE_MAX;
                                        break;
                                }
                        }
                }
                next_use[id] = next[i];
                heap_push(heap, &nheap, (struct use){ next[i], id });
        }
out:
        free(next);
        free(next_use);
        free(heap);
        return hits;
}
