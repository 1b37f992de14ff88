/* SPDX-License-Identifier: MIT */
/*
 * What the core runs before every operation of an object (api.c,
 * transfer.c, aio.c): the backend's before_call, then, in a forked
 * child's first call on an inherited handle, its after_fork. Inline: it
 * is on the path of every call, where a function call of its own costs a
 * few nanoseconds each time.
 */
#ifndef IOMEM_ENTER_H
#define IOMEM_ENTER_H

#include "internal.h"

static inline int iom_enter(struct iomem *f)
{
        int err = f->ops.before_call(f);
        if (err || __builtin_expect(__atomic_load_n(&f->fork_gen, __ATOMIC_ACQUIRE) ==
                                            iom_fork_generation(), 1))
                return err;
        return iom_object_catch_up(f);
}

#endif /* IOMEM_ENTER_H */
