/* SPDX-License-Identifier: MIT */
/*
 * ARC (Megiddo and Modha, FAST 2003). Resident chunks are in T1 (used
 * once since they came in) or T2 (used again); each list has a ghost list
 * of keys it evicted, B1 and B2. The target size p of T1 adapts: a chunk
 * coming back from B1 says T1 was too small (p grows by max(|B2|/|B1|, 1)),
 * from B2 that T2 was (p shrinks by max(|B1|/|B2|, 1)). The victim is T1's
 * oldest when T1 is over p (or at p and the incoming chunk is in B2), else
 * T2's oldest. |T1| + |B1| stays within the slots, and all four lists
 * within twice the slots.
 *
 * The window asks for a victim only when it has no free slot, so the
 * paper's REPLACE comes first (choose_victim, knowing the incoming key
 * from on_miss) and the trimming of the ghost lists after it (on_insert);
 * the lists end up as in the paper.
 */
#include "evict.h"

#include <stdlib.h>

enum { T1, T2 };
enum { B1, B2 };

struct arc {
        uint32_t c, p;
        int incoming_ghost;  /* the list of the chunk on_miss announced, or -1 */
        uint64_t *key;       /* per slot */
        struct iom_lists t;  /* T1 and T2 */
        struct iom_ghosts b; /* B1 and B2 */
};

static void arc_destroy(void *p)
{
        struct arc *a = p;
        if (!a)
                return;
        iom_ghosts_fini(&a->b);
        iom_lists_fini(&a->t);
        free(a->key);
        free(a);
}

static void *arc_create(uint32_t n)
{
        struct arc *a = calloc(1, sizeof *a);
        if (!a)
                return NULL;
        a->c = n;
        a->incoming_ghost = -1;
        a->key = malloc(((size_t)n + 1) * sizeof *a->key);
        if (!a->key || iom_lists_init(&a->t, n) || iom_ghosts_init(&a->b, 2 * n, 2)) {
                arc_destroy(a);
                return NULL;
        }
        return a;
}

static void arc_miss(void *p, uint64_t key)
{
        struct arc *a = p;
        uint32_t b1 = iom_ghosts_count(&a->b, B1), b2 = iom_ghosts_count(&a->b, B2);
        a->incoming_ghost = iom_ghosts_find(&a->b, key);
        if (a->incoming_ghost == B1) {
                uint32_t delta = b2 > b1 ? b2 / b1 : 1;
                a->p = a->p + delta < a->c ? a->p + delta : a->c;
        } else if (a->incoming_ghost == B2) {
                uint32_t delta = b1 > b2 ? b1 / b2 : 1;
                a->p = a->p > delta ? a->p - delta : 0;
        }
}

static void arc_insert(void *p, uint32_t slot, uint64_t key)
{
        struct arc *a = p;
        a->key[slot] = key;
        a->incoming_ghost = -1;
        if (iom_ghosts_take(&a->b, key) >= 0) {
                iom_lists_put(&a->t, slot, T2);
                return;
        }
        /* A new chunk: keep |T1| + |B1| <= c and everything <= 2c. */
        uint32_t t1 = a->t.count[T1], b1 = iom_ghosts_count(&a->b, B1);
        if (t1 + b1 >= a->c)
                iom_ghosts_drop_oldest(&a->b, B1);
        else if (t1 + a->t.count[T2] + b1 + iom_ghosts_count(&a->b, B2) >= 2 * a->c)
                iom_ghosts_drop_oldest(&a->b, B2);
        iom_lists_put(&a->t, slot, T1);
}

static void arc_hit(void *p, uint32_t slot)
{
        struct arc *a = p;
        iom_lists_take(&a->t, slot);
        iom_lists_put(&a->t, slot, T2);
}

static uint32_t arc_victim(void *p)
{
        struct arc *a = p;
        uint32_t t1 = a->t.count[T1];
        bool from_t1 = t1 && (t1 > a->p || (a->incoming_ghost == B2 && t1 == a->p));
        if (!a->t.count[T2])
                from_t1 = true;
        return iom_lists_oldest(&a->t, from_t1 ? T1 : T2);
}

static void arc_remove(void *p, uint32_t slot, bool evicted)
{
        struct arc *a = p;
        if (evicted)
                iom_ghosts_add(&a->b, a->t.which[slot] == T1 ? B1 : B2, a->key[slot]);
        iom_lists_take(&a->t, slot);
}

const struct iom_evict_ops iom_evict_arc = {
        .name = "ARC",
        .create = arc_create,
        .destroy = arc_destroy,
        .on_insert = arc_insert,
        .on_hit = arc_hit,
        .choose_victim = arc_victim,
        .on_remove = arc_remove,
        .on_miss = arc_miss,
};
