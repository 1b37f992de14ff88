/* SPDX-License-Identifier: MIT */
/* A handle's lock with a lane per CPU (lanes.h). */
#include "lanes.h"
#include "internal.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void iom_lanes_init(struct iom_lanes *l)
{
        *l = (struct iom_lanes){ 0 };
        iom_mutex_init(&l->mu);
}

void iom_lanes_destroy(struct iom_lanes *l)
{
        free(l->lane);
        free(l->active);
        pthread_mutex_destroy(&l->mu);
        *l = (struct iom_lanes){ 0 };
}

void iom_lanes_after_fork(struct iom_lanes *l)
{
        iom_mutex_init(&l->mu);
        if (l->lane)
                memset(l->lane, 0, l->nlanes * sizeof *l->lane);
        l->nactive = 0;
}

/* The lane of the CPU this thread runs on: threads running at once never
 * share one. A thread that moves between picking its lane and leaving it
 * still holds the right lock, only the other CPU's. */
static unsigned lane_index(const struct iom_lanes *l)
{
        int cpu = iom_current_cpu();
        return (unsigned)(cpu >= 0 ? cpu : iom_self_tid()) % l->nlanes;
}

static void hold(struct iom_lane *ln)
{
        __atomic_store_n(&ln->whole, 1, __ATOMIC_SEQ_CST);
        /* The hot path holds a lane for a lookup and a few stores, never
         * across a system call, and does not come back while whole is up:
         * spin, and let a preempted holder run. */
        for (unsigned spins = 0; __atomic_load_n(&ln->hot, __ATOMIC_SEQ_CST);)
                if (++spins % 128 == 0)
                        sched_yield();
}

static void make_lanes(struct iom_lanes *l)
{
        long cpus = sysconf(_SC_NPROCESSORS_CONF);
        unsigned n = cpus > 0 ? (unsigned)cpus : 1;
        struct iom_lane *lane = aligned_alloc(_Alignof(struct iom_lane), n * sizeof *lane);
        unsigned *active = malloc(n * sizeof *active);
        if (!lane || !active) {
                free(lane);
                free(active);
                return; /* the hot path stays off */
        }
        memset(lane, 0, n * sizeof *lane);
        l->nlanes = n;
        l->active = active;
        /* The hot path reads nlanes once it sees the lanes. */
        __atomic_store_n(&l->lane, lane, __ATOMIC_RELEASE);
}

void iom_lanes_lock(struct iom_lanes *l)
{
        pthread_mutex_lock(&l->mu);
        for (unsigned i = 0; i < l->nactive; i++)
                hold(&l->lane[l->active[i]]);
        if (!l->lane)
                make_lanes(l);
        if (!l->lane || l->nactive == l->nlanes)
                return;
        struct iom_lane *ln = &l->lane[lane_index(l)];
        if (!ln->in_use) {
                hold(ln);
                ln->in_use = true;
                l->active[l->nactive++] = (unsigned)(ln - l->lane);
        }
}

void iom_lanes_unlock(struct iom_lanes *l)
{
        for (unsigned i = 0; i < l->nactive; i++)
                __atomic_store_n(&l->lane[l->active[i]].whole, 0, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&l->mu);
}

int iom_lanes_fold(struct iom_lanes *l,
                   int (*fold)(void *arg, uint64_t start, uint64_t end, uint64_t count), void *arg)
{
        for (unsigned i = 0; i < l->nactive; i++) {
                struct iom_lane *ln = &l->lane[l->active[i]];
                for (int k = 0; k < IOM_LANE_NESTS; k++) {
                        struct iom_nest *n = &ln->nest[k];
                        if (!n->count)
                                continue;
                        int err = fold(arg, n->start, n->end, n->count);
                        if (err)
                                return err;
                        n->count = 0;
                }
        }
        return 0;
}

struct iom_lane *iom_lane_enter(struct iom_lanes *l)
{
        struct iom_lane *lanes = __atomic_load_n(&l->lane, __ATOMIC_ACQUIRE);
        if (!lanes)
                return NULL;
        struct iom_lane *ln = &lanes[lane_index(l)];
        /* A lane is this CPU's, so another thread holds it hot only if it
         * was preempted in the middle: then take the whole lock too. */
        if (__atomic_exchange_n(&ln->hot, 1, __ATOMIC_SEQ_CST))
                return NULL;
        if (__atomic_load_n(&ln->whole, __ATOMIC_SEQ_CST) || !ln->in_use) {
                iom_lane_leave(ln);
                return NULL;
        }
        return ln;
}

void iom_lane_leave(struct iom_lane *ln)
{
        __atomic_store_n(&ln->hot, 0, __ATOMIC_RELEASE);
}

bool iom_lane_nest(struct iom_lane *ln, uint64_t start, uint64_t end)
{
        struct iom_nest *free_nest = NULL;
        for (int k = 0; k < IOM_LANE_NESTS; k++) {
                struct iom_nest *n = &ln->nest[k];
                if (n->count && n->start == start && n->end == end) {
                        n->count++;
                        return true;
                }
                if (!n->count && !free_nest)
                        free_nest = n;
        }
        if (!free_nest)
                return false;
        *free_nest = (struct iom_nest){ start, end, 1 };
        return true;
}

bool iom_lane_unnest(struct iom_lane *ln, uint64_t start, uint64_t end)
{
        for (int k = 0; k < IOM_LANE_NESTS; k++) {
                struct iom_nest *n = &ln->nest[k];
                if (n->count && n->start == start && n->end == end) {
                        n->count--;
                        return true;
                }
        }
        return false;
}
