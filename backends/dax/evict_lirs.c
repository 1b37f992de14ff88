/* SPDX-License-Identifier: MIT */
/*
 * LIRS (Jiang and Zhang, SIGMETRICS 2002): IOMEM_EVICT_LIRS, and the
 * adaptive default's first leader (evict_adaptive.c).
 *
 * A chunk is ranked by its reuse distance (how many other chunks were used
 * between its last two uses) rather than by its recency alone. Most slots
 * hold LIR chunks, those with short reuse distances; a few (1 %, at least
 * one) hold HIR chunks, which are the ones evicted. A HIR chunk that comes
 * back while the stack S still remembers its last use has shown a short
 * reuse distance and becomes LIR, demoting the LIR chunk used longest ago.
 * So a scan or a loop larger than the window passes through the few HIR
 * slots and leaves the LIR set alone (a loop keeps hitting in it, where
 * FIFO and CLOCK hit nothing), while a skewed (Zipf) workload keeps its
 * frequent chunks LIR.
 *
 * S (recency stack, newest first) holds LIR chunks, resident HIR chunks and
 * "ghosts": non-resident HIR chunks, remembered by key only. Q holds the
 * resident HIR chunks in eviction order. The bottom of S is always LIR
 * ("pruning" drops what lies below the oldest LIR chunk). Ghosts are
 * bounded by a pool (twice the slots); when it runs out the oldest ghost
 * is forgotten. Every operation is O(1) amortised: pruning removes each
 * entry at most once per insertion into S.
 *
 * Entries 0..n-1 are the window's slots; n..n+g-1 are ghosts.
 */
#include "evict.h"

#include <stdlib.h>

enum state { FREE, LIR, HIR, GHOST };

struct lirs {
        uint32_t n, g;        /* slots, ghosts */
        uint32_t lir_max;     /* slots for LIR chunks */
        uint32_t nlir;
        uint32_t s_head, q_head, age_head;
        uint32_t nfree;       /* free ghost entries, on free_ghost[0..nfree) */
        uint32_t *free_ghost;
        uint64_t *slot_key;   /* per slot */
        struct iom_keymap ghost_keys; /* ghost entry - n -> key */
        uint8_t *state;       /* per entry */
        struct iom_link *s;   /* n + g entries + head */
        struct iom_link *q;   /* n slots + head */
        struct iom_link *age; /* ghosts, newest first + head (indices - n) */
};

static void lirs_destroy(void *p)
{
        struct lirs *L = p;
        if (!L)
                return;
        free(L->free_ghost);
        free(L->slot_key);
        iom_keymap_fini(&L->ghost_keys);
        free(L->state);
        free(L->s);
        free(L->q);
        free(L->age);
        free(L);
}

static void *lirs_create(uint32_t n)
{
        struct lirs *L = calloc(1, sizeof *L);
        if (!L)
                return NULL;
        uint32_t hir = n / 100 ? n / 100 : 1;
        L->n = n;
        L->g = 2 * n;
        L->lir_max = n > hir ? n - hir : 1;
        uint32_t e = n + L->g;
        L->free_ghost = malloc(((size_t)L->g + 1) * sizeof *L->free_ghost);
        L->slot_key = malloc(((size_t)n + 1) * sizeof *L->slot_key);
        L->state = calloc(e, 1);
        L->s = malloc(((size_t)e + 1) * sizeof *L->s);
        L->q = malloc(((size_t)n + 1) * sizeof *L->q);
        L->age = malloc(((size_t)L->g + 1) * sizeof *L->age);
        if (!L->free_ghost || !L->slot_key || !L->state || !L->s || !L->q || !L->age ||
            iom_keymap_init(&L->ghost_keys, L->g)) {
                lirs_destroy(L);
                return NULL;
        }
        L->s_head = e;
        L->q_head = n;
        L->age_head = L->g;
        iom_list_init(L->s, e, e + 1);
        iom_list_init(L->q, n, n + 1);
        iom_list_init(L->age, L->g, L->g + 1);
        for (uint32_t i = e; i-- > n;)
                L->free_ghost[L->nfree++] = i;
        return L;
}

/* ---- ghosts ---------------------------------------------------------------- */

static uint32_t ghost_find(const struct lirs *L, uint64_t key)
{
        uint32_t x = iom_keymap_find(&L->ghost_keys, key);
        return x == IOM_EVICT_NONE ? x : x + L->n;
}

/* Forget ghost x: out of S, the keys and the age list, back to the pool. */
static void ghost_free(struct lirs *L, uint32_t x)
{
        iom_keymap_del(&L->ghost_keys, x - L->n);
        if (iom_list_has(L->s, x))
                iom_list_remove(L->s, x);
        iom_list_remove(L->age, x - L->n);
        L->state[x] = FREE;
        L->free_ghost[L->nfree++] = x;
}

/* A ghost for key, taking resident slot's place in S. */
static void ghost_replace(struct lirs *L, uint32_t slot)
{
        if (!L->nfree)
                ghost_free(L, iom_list_back(L->age, L->age_head) + L->n);
        uint32_t x = L->free_ghost[--L->nfree];
        L->state[x] = GHOST;
        iom_keymap_add(&L->ghost_keys, x - L->n, L->slot_key[slot]);
        iom_list_insert_after(L->s, L->s[slot].prev, x);
        iom_list_remove(L->s, slot);
        iom_list_push_front(L->age, L->age_head, x - L->n);
}

/* ---- the stack ---------------------------------------------------------------- */

/* Drop entries below the oldest LIR chunk: HIR chunks stay in Q, ghosts go. */
static void prune(struct lirs *L)
{
        for (;;) {
                uint32_t x = iom_list_back(L->s, L->s_head);
                if (x == IOM_EVICT_NONE || L->state[x] == LIR)
                        return;
                if (L->state[x] == GHOST)
                        ghost_free(L, x);
                else
                        iom_list_remove(L->s, x);
        }
}

/* The LIR chunk used longest ago becomes a resident HIR chunk. */
static void demote_oldest_lir(struct lirs *L)
{
        prune(L);
        uint32_t x = iom_list_back(L->s, L->s_head);
        if (x == IOM_EVICT_NONE)
                return;
        iom_list_remove(L->s, x);
        L->state[x] = HIR;
        L->nlir--;
        iom_list_push_front(L->q, L->q_head, x);
        prune(L);
}

static void to_top(struct lirs *L, uint32_t x)
{
        bool was_bottom = iom_list_back(L->s, L->s_head) == x;
        if (iom_list_has(L->s, x))
                iom_list_remove(L->s, x);
        iom_list_push_front(L->s, L->s_head, x);
        if (was_bottom)
                prune(L);
}

static void make_lir(struct lirs *L, uint32_t x)
{
        L->state[x] = LIR;
        L->nlir++;
        to_top(L, x);
        if (L->nlir > L->lir_max)
                demote_oldest_lir(L);
}

/* ---- the policy ------------------------------------------------------------------ */

static void lirs_insert(void *p, uint32_t slot, uint64_t key)
{
        struct lirs *L = p;
        uint32_t ghost = ghost_find(L, key);
        L->slot_key[slot] = key;
        if (ghost != IOM_EVICT_NONE)
                ghost_free(L, ghost); /* back while S remembers it: a short reuse distance */
        if (ghost != IOM_EVICT_NONE || L->nlir < L->lir_max) {
                make_lir(L, slot);
                return;
        }
        L->state[slot] = HIR;
        to_top(L, slot);
        iom_list_push_front(L->q, L->q_head, slot);
}

static void lirs_hit(void *p, uint32_t slot)
{
        struct lirs *L = p;
        if (L->state[slot] == LIR) {
                to_top(L, slot);
        } else if (iom_list_has(L->s, slot)) {
                iom_list_remove(L->q, slot);
                make_lir(L, slot);
        } else {
                to_top(L, slot);
                iom_list_remove(L->q, slot);
                iom_list_push_front(L->q, L->q_head, slot);
        }
}

static uint32_t lirs_victim(void *p)
{
        struct lirs *L = p;
        if (iom_list_empty(L->q, L->q_head))
                demote_oldest_lir(L); /* every tracked chunk is LIR (some were taken out) */
        return iom_list_back(L->q, L->q_head);
}

static void lirs_remove(void *p, uint32_t slot, bool evicted)
{
        struct lirs *L = p;
        if (L->state[slot] == LIR) {
                L->nlir--;
                bool was_bottom = iom_list_back(L->s, L->s_head) == slot;
                iom_list_remove(L->s, slot);
                if (was_bottom)
                        prune(L);
        } else {
                iom_list_remove(L->q, slot);
                if (iom_list_has(L->s, slot)) {
                        if (evicted)
                                ghost_replace(L, slot);
                        else
                                iom_list_remove(L->s, slot);
                }
        }
        L->state[slot] = FREE;
}

const struct iom_evict_ops iom_evict_lirs = {
        .name = "LIRS",
        .create = lirs_create,
        .destroy = lirs_destroy,
        .on_insert = lirs_insert,
        .on_hit = lirs_hit,
        .choose_victim = lirs_victim,
        .on_remove = lirs_remove,
};
