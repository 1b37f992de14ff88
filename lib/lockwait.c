/* SPDX-License-Identifier: MIT */
/* Deadlines of lock calls and the per-thread count of read locks held
 * (lockwait.h). */
#include "lockwait.h"
#include "fork.h"

#include <errno.h>
#include <time.h>

uint64_t iom_monotonic_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct iom_deadline iom_deadline_after(int timeout_ms)
{
        if (timeout_ms < 0)
                return (struct iom_deadline){ .forever = true };
        return (struct iom_deadline){ .at_ns = iom_monotonic_ns() + (uint64_t)timeout_ms * 1000000u };
}

uint64_t iom_deadline_left_ns(const struct iom_deadline *d)
{
        if (d->forever)
                return UINT64_MAX;
        uint64_t now = iom_monotonic_ns();
        return now < d->at_ns ? d->at_ns - now : 0;
}

int iom_deadline_error(int timeout_ms)
{
        return timeout_ms == 0 ? -EBUSY : -ETIMEDOUT;
}

/* Objects whose read lock this thread holds, counted in the process it
 * was counted in: a forked child holds none of its parent's locks. */
static _Thread_local unsigned reads_held;
static _Thread_local unsigned reads_held_gen;

void iom_reads_held_add(int delta)
{
        unsigned gen = iom_fork_generation();
        if (reads_held_gen != gen) {
                reads_held_gen = gen;
                reads_held = 0;
        }
        reads_held += (unsigned)delta;
}

bool iom_may_pass_waiting_writers(void)
{
        return reads_held_gen == iom_fork_generation() && reads_held > 0;
}
