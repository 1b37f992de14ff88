/* SPDX-License-Identifier: MIT */
/*
 * What every backend's I/O lock shares: how long a caller may wait, and
 * the rule that keeps a fair lock free of deadlock.
 *
 * The locks are fair: once a writer waits, new readers queue behind it,
 * so a stream of readers cannot starve it. A thread that already holds
 * a read lock (of this object or of any other) passes waiting writers,
 * because making it queue could deadlock: thread A holding X's read lock
 * would wait on Y behind a writer that waits for thread B, who holds Y
 * and waits on X behind a writer that waits for A.
 */
#ifndef IOMEM_LOCKWAIT_H
#define IOMEM_LOCKWAIT_H

#include <stdbool.h>
#include <stdint.h>

/* When a lock call gives up: never (forever), at once (timeout 0), or at
 * a CLOCK_MONOTONIC instant. */
struct iom_deadline {
        bool forever;
        uint64_t at_ns;
};

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t iom_monotonic_ns(void);
/* Start the clock for a call that may wait timeout_ms milliseconds
 * (negative: forever). */
struct iom_deadline iom_deadline_after(int timeout_ms);
/* Nanoseconds left, 0 when the deadline has passed; UINT64_MAX forever. */
uint64_t iom_deadline_left_ns(const struct iom_deadline *d);
/* The error of a lock call that gave up: -EBUSY when it was not allowed
 * to wait at all, -ETIMEDOUT when its time ran out. */
int iom_deadline_error(int timeout_ms);

/* The calling thread took or dropped its first read lock of an object. */
void iom_reads_held_add(int delta);
/* May the calling thread pass writers that are waiting? */
bool iom_may_pass_waiting_writers(void);

#endif /* IOMEM_LOCKWAIT_H */
