/* SPDX-License-Identifier: MIT */
/*
 * The object's I/O lock: a reader-writer lock in the shared metadata,
 * held per thread, that survives the death of a holder. State changes
 * happen under the metadata's robust mutex; waiters sleep on a futex in
 * the same area and, while they wait, check now and then that the
 * holders are still alive (a dead process cannot wake anyone).
 *
 * Readers never wait for waiting writers, only for a writer that holds
 * the lock: so taking the read lock of two objects in any order cannot
 * deadlock. The writing thread may take the lock again (either mode).
 */
#ifndef IOMEM_IOLOCK_H
#define IOMEM_IOLOCK_H

#include <stdbool.h>
#include <stdint.h>

struct iomem;
struct iom_meta;

int iom_iolock_rdlock(struct iomem *f);
int iom_iolock_wrlock(struct iomem *f);
int iom_iolock_unlock(struct iomem *f);
/* Release everything owner holds (metadata locked). */
void iom_iolock_reap(struct iom_meta *m, uint32_t owner);

/* This thread's kernel id, cached; correct in a forked child. */
int iom_self_tid(void);
/* Bumped in the child at every fork: handles compare it to notice that
 * they were inherited. */
unsigned iom_fork_generation(void);

/* Reset an inherited object once, in the first thread of the child to use
 * it:
 *     if (iom_fork_reset_begin(&obj->fork_gen)) {
 *             ...forget what the parent held...
 *             iom_fork_reset_end(&obj->fork_gen, ok);
 *     }
 * begin returns false at once when *gen is current (the object was made or
 * reset in this process), or after waiting for another thread's reset;
 * true holds a process-wide lock until end, which records the current
 * generation in *gen if done (else the next call tries again). */
bool iom_fork_reset_begin(const unsigned *gen);
void iom_fork_reset_end(unsigned *gen, bool done);

#endif /* IOMEM_IOLOCK_H */
