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
 * instead, then ask again. on_miss, when a policy has it, comes first
 * for each chunk a lookup did not find, with the chunk's key: the access
 * that the victim is chosen for (ARC's choice depends on it, and the
 * adaptive policy counts it). on_insert is not an access: a parked chunk
 * given back, or every resident chunk when the policy changes, is inserted
 * again without being used. Every call is O(1) amortised.
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
        void (*on_miss)(void *p, uint64_t key); /* may be NULL */
};

extern const struct iom_evict_ops iom_evict_fifo;     /* oldest mapping first */
extern const struct iom_evict_ops iom_evict_lifo;     /* newest mapping first */
extern const struct iom_evict_ops iom_evict_clock;    /* second chance */
extern const struct iom_evict_ops iom_evict_lru;      /* least recently used */
extern const struct iom_evict_ops iom_evict_lirs;     /* LIRS */
extern const struct iom_evict_ops iom_evict_arc;      /* ARC */
extern const struct iom_evict_ops iom_evict_s3fifo;   /* S3-FIFO */
extern const struct iom_evict_ops iom_evict_sieve;    /* SIEVE */
extern const struct iom_evict_ops iom_evict_adaptive; /* follows the best of the above: the default */

/* ---- keys to nodes (evict_shared.c) ------------------------------------------
 * A chained hash from a 64-bit key to one of a fixed set of nodes numbered
 * 0..nodes-1, at most one key per node; what the policies that remember
 * evicted chunks, the shadows of the adaptive policy and the replays of
 * traces (evict_sim.c) look keys up with. */

struct iom_keymap {
        uint32_t mask;   /* buckets - 1 */
        uint32_t *bucket; /* first node of each bucket */
        uint32_t *next;   /* per node: the next in its bucket */
        uint64_t *key;    /* per node */
};

int iom_keymap_init(struct iom_keymap *m, uint32_t nodes); /* -ENOMEM */
void iom_keymap_fini(struct iom_keymap *m);
/* The node holding key, or IOM_EVICT_NONE. */
uint32_t iom_keymap_find(const struct iom_keymap *m, uint64_t key);
void iom_keymap_add(struct iom_keymap *m, uint32_t node, uint64_t key);
void iom_keymap_del(struct iom_keymap *m, uint32_t node);

/* ---- ghosts (evict_shared.c) ----------------------------------------------------
 * Keys of evicted chunks, at most cap of them, kept in nlists (1 or 2)
 * lists in the order they were added, each list's count known; what ARC's
 * B1 and B2 and S3-FIFO's ghost queue are made of. */

struct iom_lists;
struct iom_ghosts {
        struct iom_keymap map;
        struct iom_lists *lists; /* nlists, then the free nodes' */
        uint32_t cap, nlists;
};

int iom_ghosts_init(struct iom_ghosts *g, uint32_t cap, uint32_t nlists); /* -ENOMEM */
void iom_ghosts_fini(struct iom_ghosts *g);
/* The list key is a ghost in, or -1. */
int iom_ghosts_find(const struct iom_ghosts *g, uint64_t key);
/* Forget key (a ghost), returning its list, or -1 if it was none. */
int iom_ghosts_take(struct iom_ghosts *g, uint64_t key);
/* Key becomes list's newest ghost; when all cap are used, the oldest of
 * the longest list is forgotten first. */
void iom_ghosts_add(struct iom_ghosts *g, uint32_t list, uint64_t key);
void iom_ghosts_drop_oldest(struct iom_ghosts *g, uint32_t list);
uint32_t iom_ghosts_count(const struct iom_ghosts *g, uint32_t list);

/* ---- a policy over keys alone (evict_sim.c) ----------------------------------
 * A window of nslots slots that maps nothing: a key is found or not, and
 * when not, the policy's victim makes room. The adaptive policy's shadows
 * are these; so are the benchmark's and the tests' replays of traces. */

struct iom_evict_sim;

struct iom_evict_sim *iom_evict_sim_new(const struct iom_evict_ops *ops, uint32_t nslots);
void iom_evict_sim_free(struct iom_evict_sim *s);
/* One access: true for a hit. A miss makes key resident; when that took
 * another key's place, *evicted is set and *evicted_key names it. */
bool iom_evict_sim_access(struct iom_evict_sim *s, uint64_t key, bool *evicted,
                          uint64_t *evicted_key);
bool iom_evict_sim_holds(const struct iom_evict_sim *s, uint64_t key);

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

/* ---- counted lists (evict_shared.c) -------------------------------------------
 * Nodes 0..nodes-1, each in at most one of up to IOM_LISTS_MAX lists kept
 * in the order nodes were put in (front: newest), each with its length:
 * ARC's T1 and T2, S3-FIFO's small and main queues, the ghosts' lists. */

#define IOM_LISTS_MAX 3

struct iom_lists {
        uint32_t nodes;
        uint32_t count[IOM_LISTS_MAX];
        uint8_t *which;     /* per node: its list */
        struct iom_link *l; /* nodes, then a head per list */
};

int iom_lists_init(struct iom_lists *q, uint32_t nodes); /* -ENOMEM */
void iom_lists_fini(struct iom_lists *q);

static inline void iom_lists_put(struct iom_lists *q, uint32_t x, unsigned list)
{
        q->which[x] = (uint8_t)list;
        q->count[list]++;
        iom_list_push_front(q->l, q->nodes + list, x);
}

static inline void iom_lists_take(struct iom_lists *q, uint32_t x)
{
        q->count[q->which[x]]--;
        iom_list_remove(q->l, x);
}

static inline uint32_t iom_lists_oldest(const struct iom_lists *q, unsigned list)
{
        return iom_list_back(q->l, q->nodes + list);
}

#endif /* IOMEM_EVICT_H */
