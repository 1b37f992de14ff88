/* SPDX-License-Identifier: MIT */
/*
 * Eviction policies of the DAX window (window.c). A policy sees the
 * window's slots by number and decides which resident chunk goes when a
 * new one needs room; it never maps or unmaps anything. The window calls
 * on_insert when a chunk is mapped into a slot, on_hit when a lookup finds
 * it, choose_victim when it needs a slot, and on_remove when the slot's
 * chunk leaves the policy: evicted (the victim chosen, evicted = true), or
 * taken out for another reason (pinned, its file closed). choose_victim
 * returns a slot the policy still tracks, without removing it: the window
 * may find it pinned and take it out with on_remove(evicted = false)
 * instead, then ask again. Every call is O(1) amortised.
 */
#ifndef IOMEM_EVICT_H
#define IOMEM_EVICT_H

#include <stdbool.h>
#include <stdint.h>

#define IOM_EVICT_NONE UINT32_MAX

struct iom_evict_ops {
        const char *name;
        /* State for a window of nslots slots; NULL when out of memory. */
        void *(*create)(uint32_t nslots);
        void (*destroy)(void *p);
        /* key names the chunk (file and index) across its lifetimes, for
         * policies that remember chunks they evicted. */
        void (*on_insert)(void *p, uint32_t slot, uint64_t key);
        void (*on_hit)(void *p, uint32_t slot);
        uint32_t (*choose_victim)(void *p); /* IOM_EVICT_NONE when tracking none */
        void (*on_remove)(void *p, uint32_t slot, bool evicted);
};

extern const struct iom_evict_ops iom_evict_fifo;  /* oldest mapping first */
extern const struct iom_evict_ops iom_evict_lifo;  /* newest mapping first */
extern const struct iom_evict_ops iom_evict_clock; /* second chance */
extern const struct iom_evict_ops iom_evict_lirs;  /* LIRS: the default */

/* ---- intrusive doubly linked lists over slot numbers ---------------------
 * A list is an array of links with one extra entry, the head, closing the
 * circle; a node not in the list has prev == IOM_EVICT_NONE. */

struct iom_link {
        uint32_t prev, next;
};

static inline void iom_list_init(struct iom_link *l, uint32_t head, uint32_t nodes)
{
        for (uint32_t i = 0; i < nodes; i++)
                l[i].prev = l[i].next = IOM_EVICT_NONE;
        l[head].prev = l[head].next = head;
}

static inline bool iom_list_has(const struct iom_link *l, uint32_t x)
{
        return l[x].prev != IOM_EVICT_NONE;
}

static inline bool iom_list_empty(const struct iom_link *l, uint32_t head)
{
        return l[head].next == head;
}

/* Put x after at (at == head: at the front). */
static inline void iom_list_insert_after(struct iom_link *l, uint32_t at, uint32_t x)
{
        uint32_t n = l[at].next;
        l[x].prev = at;
        l[x].next = n;
        l[n].prev = x;
        l[at].next = x;
}

static inline void iom_list_remove(struct iom_link *l, uint32_t x)
{
        l[l[x].prev].next = l[x].next;
        l[l[x].next].prev = l[x].prev;
        l[x].prev = l[x].next = IOM_EVICT_NONE;
}

/* Front is the newest end (head's next), back the oldest (head's prev). */
static inline void iom_list_push_front(struct iom_link *l, uint32_t head, uint32_t x)
{
        iom_list_insert_after(l, head, x);
}

static inline void iom_list_push_back(struct iom_link *l, uint32_t head, uint32_t x)
{
        iom_list_insert_after(l, l[head].prev, x);
}

static inline uint32_t iom_list_front(const struct iom_link *l, uint32_t head)
{
        return l[head].next == head ? IOM_EVICT_NONE : l[head].next;
}

static inline uint32_t iom_list_back(const struct iom_link *l, uint32_t head)
{
        return l[head].prev == head ? IOM_EVICT_NONE : l[head].prev;
}

#endif /* IOMEM_EVICT_H */
