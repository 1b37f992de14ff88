/* SPDX-License-Identifier: MIT */
/*
 * A handle's lock, split so that threads scale on the hot path.
 *
 * Changes to a handle's state (its pins, mappings, buffers) take the
 * whole lock: a mutex, then every lane in use. The hot path (a nested
 * acquire of pages already pinned, retrieve, the release of such a
 * nested pin, borrow, bufcount) takes only the lane of the CPU it runs
 * on: a flag on a cache line of its own, which no other CPU writes while
 * nothing changes, so two threads on two CPUs share no written line.
 * Holding any lane, the state cannot change under the reader.
 *
 * A nested acquire on the hot path cannot count its pin in the handle's
 * shared run list (that would be a write), so it counts it in its lane:
 * a few (range, count) nests, added on top of the runs' own counts. A
 * release of exactly such a range takes one back. Everything else folds
 * the nests into the runs first (iom_lanes_fold), under the whole lock.
 * A nest exists only over runs that were pinned when it was made, and no
 * run can lose its last pin before the nests are folded, so a nested
 * pin never stands on a page that was let go.
 */
#ifndef IOMEM_LANES_H
#define IOMEM_LANES_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Nested pins a lane counts before the hot path gives way to the whole
 * lock: ranges a thread keeps nesting at once, not a limit on pins. */
#define IOM_LANE_NESTS 4

struct iom_lane {
        /* Two flags, each written by one side (the way a big-reader lock
         * pairs them): the hot path raises hot, then backs off if whole is
         * up; the whole lock raises whole, then waits for hot to fall. A
         * hot path that keeps coming back cannot starve the whole lock. */
        int hot;
        int whole;
        bool in_use; /* the whole lock takes it; the hot path may */
        struct iom_nest {
                uint64_t start, end; /* [start, end) exactly as acquired */
                uint64_t count;      /* 0: a free nest */
        } nest[IOM_LANE_NESTS];
} __attribute__((aligned(128))); /* two cache lines: the adjacent-line
                                  * prefetcher fetches in pairs */
_Static_assert(sizeof(struct iom_lane) == 128, "a lane is two cache lines");

struct iom_lanes {
        pthread_mutex_t mu;
        struct iom_lane *lane; /* nlanes of them, made at the first lock */
        unsigned nlanes;
        unsigned *active;      /* indexes of the lanes in use */
        unsigned nactive;
};

void iom_lanes_init(struct iom_lanes *l);
void iom_lanes_destroy(struct iom_lanes *l);
/* In a forked child: no thread holds anything, no nest counts (the
 * child's handle pins nothing). */
void iom_lanes_after_fork(struct iom_lanes *l);

/* The whole lock. It puts the lane of the CPU it runs on in use, so that
 * the hot path finds it next time (without memory for the lanes, the hot
 * path stays off and everything takes this lock, as correct and slower). */
void iom_lanes_lock(struct iom_lanes *l);
void iom_lanes_unlock(struct iom_lanes *l);
/* Under the whole lock: hand each lane's nests to fold(arg, start, end,
 * count) and forget them. Stops at fold's first error and returns it;
 * the nests not handed over stay. */
int iom_lanes_fold(struct iom_lanes *l,
                   int (*fold)(void *arg, uint64_t start, uint64_t end, uint64_t count),
                   void *arg);

/* The hot path: this CPU's lane, held, or NULL when it is not in use yet
 * or the whole lock has it (then take the whole lock: never wait here). */
struct iom_lane *iom_lane_enter(struct iom_lanes *l);
void iom_lane_leave(struct iom_lane *ln);
/* Count one nested pin of [start, end), which the handle has pinned;
 * false when the lane has no free nest. */
bool iom_lane_nest(struct iom_lane *ln, uint64_t start, uint64_t end);
/* Take back one nested pin of exactly [start, end); false when the lane
 * counts none. */
bool iom_lane_unnest(struct iom_lane *ln, uint64_t start, uint64_t end);

#endif /* IOMEM_LANES_H */
