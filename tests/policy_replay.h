/* SPDX-License-Identifier: MIT */
/*
 * Traces replayed through the DAX window's eviction policies at the policy
 * level (evict.h's iom_evict_sim: the policy's own calls, no mappings),
 * and Belady's offline optimum for comparison: what bench_window's table
 * and the policy suite's checks share. Link the static library.
 */
#ifndef IOMEM_POLICY_REPLAY_H
#define IOMEM_POLICY_REPLAY_H

#include "evict.h"

#include <stddef.h>
#include <stdint.h>

/* A trace: ids in [0, ids), one access each. */
struct replay_trace {
        uint32_t *v;
        size_t n;
        uint32_t ids;
};

/* Read a text file of one non-negative id per line (densely numbered or
 * not: ids are renumbered in order of first use). 0, or -errno. */
int replay_trace_load(struct replay_trace *t, const char *path);
void replay_trace_free(struct replay_trace *t);

/* Hits of ops in a window of slots slots; -ENOMEM when out of memory. */
long long replay_hits(const struct iom_evict_ops *ops, const struct replay_trace *t,
                      uint32_t slots);
/* Hits of Belady's policy (evict the chunk used again last), in
 * O(n log n); -ENOMEM when out of memory. */
long long replay_belady_hits(const struct replay_trace *t, uint32_t slots);

/* The window sizes the tables use: pct % of the trace's ids, at least 1. */
static inline uint32_t replay_slots(const struct replay_trace *t, unsigned pct)
{
        uint32_t s = (uint32_t)((uint64_t)t->ids * pct / 100);
        return s ? s : 1;
}

#endif /* IOMEM_POLICY_REPLAY_H */
