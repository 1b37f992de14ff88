/* SPDX-License-Identifier: MIT */
/*
 * What a handle inherited across fork() must notice: in the child it is a
 * new attachment that pins, locks and owns nothing, over the parent's
 * mappings. The library bumps a generation at every fork; a handle whose
 * generation is older catches up once, in the first thread of the child
 * to use it (iom_enter in internal.h runs the backend's after_fork then).
 */
#ifndef IOMEM_FORK_H
#define IOMEM_FORK_H

#include <stdbool.h>

/* Bumped in the child at every fork. Read it with iom_fork_generation. */
extern unsigned iom_fork_gen;

static inline unsigned iom_fork_generation(void)
{
        return __atomic_load_n(&iom_fork_gen, __ATOMIC_RELAXED);
}

/* This thread's kernel id, cached; correct in a forked child. */
int iom_self_tid(void);

/* Reset an inherited object once, in the first thread of the child to use
 * it:
 *     if (iom_fork_reset_begin(&obj->fork_gen)) {
 *             ...forget what the parent held...
 *             iom_fork_reset_end(&obj->fork_gen, ok);
 *     }
 * begin returns false at once when *gen is current (the object was made or
 * reset in this process), or after waiting for another thread's reset;
 * true holds a process-wide lock until end, which records the current
 * generation in *gen if done (else the next call tries again). Resets
 * nest: an object may reset the objects it shares state with. */
bool iom_fork_reset_begin(const unsigned *gen);
void iom_fork_reset_end(unsigned *gen, bool done);

#endif /* IOMEM_FORK_H */
