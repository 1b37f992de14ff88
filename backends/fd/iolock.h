/* SPDX-License-Identifier: MIT */
/*
 * The object's I/O lock: a reader-writer lock in the shared metadata,
 * held per thread, that survives the death of a holder. State changes
 * happen under the metadata's robust mutex; waiters sleep on a futex in
 * the same area and, while they wait, check now and then that the
 * holders are still alive (a dead process cannot wake anyone).
 *
 * The lock is fair (lockwait.h): once a writer waits, new readers queue
 * behind it, unless they hold a read lock already. The writing thread may
 * take the lock again (either mode). A waiting writer is counted with its
 * owner, so one that dies does not hold readers back.
 */
#ifndef IOMEM_IOLOCK_H
#define IOMEM_IOLOCK_H

#include <stdbool.h>
#include <stdint.h>

struct iomem;
struct iom_meta;

/* Wait at most timeout_ms milliseconds (negative: forever); -EBUSY when
 * timeout_ms is 0 and the lock is taken, else -ETIMEDOUT. */
int iom_iolock_rdlock(struct iomem *f, int timeout_ms);
int iom_iolock_wrlock(struct iomem *f, int timeout_ms);
int iom_iolock_unlock(struct iomem *f);
/* Add the processes that hold the lock to who (metadata locked). */
struct iom_holders;
int iom_iolock_holders(struct iomem *f, struct iom_holders *who);
/* Release everything owner holds or waits for (metadata locked). */
int iom_iolock_reap(struct iomem *f, uint32_t owner);

#endif /* IOMEM_IOLOCK_H */
