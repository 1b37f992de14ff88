/* SPDX-License-Identifier: MIT */
/* Allocation of object handles, and process-wide helpers. */
#include "internal.h"
#include "syscalls.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

extern const struct iom_object_ops iom_no_ops; /* stubs.c */

typedef void (*slot_fn)(void);
_Static_assert((sizeof(struct iom_object_ops) - offsetof(struct iom_object_ops, before_call)) %
                       sizeof(slot_fn) == 0,
               "every slot after base is a function pointer");

/* The backend's operations: each empty slot (or one past the size its
 * table was built with) taken from its base table, else from the stubs. */
static void set_ops(struct iom_object_ops *out, const struct iom_object_ops *ops)
{
        if (ops->base)
                set_ops(out, ops->base);
        else
                *out = iom_no_ops;
        size_t end = iom_min(ops->size, sizeof *ops);
        for (size_t at = offsetof(struct iom_object_ops, before_call); at + sizeof(slot_fn) <= end;
             at += sizeof(slot_fn)) {
                slot_fn fn;
                memcpy(&fn, (const char *)ops + at, sizeof fn);
                if (fn)
                        memcpy((char *)out + at, &fn, sizeof fn);
        }
}

int iom_object_new(struct iomem **out, const struct iom_backend *b, const char *name,
                   unsigned flags, const struct iomem_opts *o)
{
        /* The backend's state follows the object, aligned for anything. */
        size_t head = iom_round_up(sizeof(struct iomem), _Alignof(max_align_t));
        struct iomem *f = calloc(1, head + b->priv_size);
        if (!f)
                return iom_fail(name, -ENOMEM, "out of memory");
        size_t n = strlen(b->name) + 1 + strlen(name) + 1;
        f->name = malloc(n);
        if (!f->name) {
                free(f);
                return iom_fail(name, -ENOMEM, "out of memory");
        }
        snprintf(f->name, n, "%s:%s", b->name, name);
        set_ops(&f->ops, b->ops);
        f->backend = b;
        f->flags = flags;
        f->caps = iom_platform_caps(b->caps);
        f->data_fd = -1;
        f->page_size = iom_system_page_size();
        f->fork_gen = iom_fork_generation();
        f->lock_timeout_ms = iom_opts_or_default(o)->lock_timeout_ms;
        f->priv = b->priv_size ? (char *)f + head : NULL;
        *out = f;
        return 0;
}

void iom_object_free(struct iomem *f)
{
        if (!f)
                return;
        free(f->name);
        free(f);
}

int iom_object_catch_up(struct iomem *f)
{
        if (!iom_fork_reset_begin(&f->fork_gen))
                return 0;
        int err = f->ops.after_fork(f);
        iom_fork_reset_end(&f->fork_gen, !err);
        return err;
}

void iom_mutex_init(pthread_mutex_t *mu)
{
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        iom_mutexattr_adaptive(&a);
        pthread_mutex_init(mu, &a);
        pthread_mutexattr_destroy(&a);
}

size_t iom_system_page_size(void)
{
        static size_t page;
        if (!page)
                page = (size_t)sysconf(_SC_PAGESIZE);
        return page;
}

const void *iom_zero_pages(size_t *len)
{
        /* Untouched private anonymous memory reads as zeros and costs no
         * memory: every read maps the kernel's zero page. */
        static const void *zeros;
        enum { ZERO_LEN = 1 << 20 };
        const void *z = __atomic_load_n(&zeros, __ATOMIC_ACQUIRE);
        if (!z) {
                void *p = mmap(NULL, ZERO_LEN, PROT_READ, MAP_PRIVATE | iom_map_anonymous, -1, 0);
                if (p == MAP_FAILED)
                        return NULL;
                const void *expected = NULL;
                if (!__atomic_compare_exchange_n(&zeros, &expected, p, false, __ATOMIC_ACQ_REL,
                                                 __ATOMIC_ACQUIRE)) {
                        munmap(p, ZERO_LEN);
                        p = (void *)expected;
                }
                z = p;
        }
        *len = ZERO_LEN;
        return z;
}
