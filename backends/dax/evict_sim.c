/* SPDX-License-Identifier: MIT */
/*
 * A policy over keys alone (evict.h): the window's calls, made as the
 * window makes them, for a window that holds keys instead of mappings.
 * Each access is one lookup plus the policy's own O(1) amortised work.
 */
#include "evict.h"

#include <stdlib.h>

struct iom_evict_sim {
        const struct iom_evict_ops *ops;
        void *state;
        uint32_t nslots, used; /* slots 0..used-1 have been filled */
        struct iom_keymap held; /* slot -> key */
};

void iom_evict_sim_free(struct iom_evict_sim *s)
{
        if (!s)
                return;
        if (s->state)
                s->ops->destroy(s->state);
        iom_keymap_fini(&s->held);
        free(s);
}

struct iom_evict_sim *iom_evict_sim_new(const struct iom_evict_ops *ops, uint32_t nslots)
{
        struct iom_evict_sim *s = calloc(1, sizeof *s);
        if (!s)
                return NULL;
        s->ops = ops;
        s->nslots = nslots;
        if (iom_keymap_init(&s->held, nslots) || !(s->state = ops->create(nslots))) {
                iom_evict_sim_free(s);
                return NULL;
        }
        return s;
}

bool iom_evict_sim_holds(const struct iom_evict_sim *s, uint64_t key)
{
        return iom_keymap_find(&s->held, key) != IOM_EVICT_NONE;
}

bool iom_evict_sim_access(struct iom_evict_sim *s, uint64_t key, bool *evicted,
                          uint64_t *evicted_key)
{
        uint32_t slot = iom_keymap_find(&s->held, key);
        *evicted = false;
        if (!s->nslots)
                return false;
        if (slot != IOM_EVICT_NONE) {
                s->ops->on_hit(s->state, slot);
                return true;
        }
        if (s->ops->on_miss)
                s->ops->on_miss(s->state, key);
        if (s->used < s->nslots) {
                slot = s->used++;
        } else {
                slot = s->ops->choose_victim(s->state);
                s->ops->on_remove(s->state, slot, true);
                iom_keymap_del(&s->held, slot);
                *evicted = true;
                *evicted_key = s->held.key[slot];
        }
        iom_keymap_add(&s->held, slot, key);
        s->ops->on_insert(s->state, slot, key);
        return false;
}
