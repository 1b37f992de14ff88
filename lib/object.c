/* SPDX-License-Identifier: MIT */
/* Allocation of object handles, and process-wide helpers. */
#define _GNU_SOURCE
#include "internal.h"
#include "syscalls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int iom_object_new(struct iomem **out, const struct iom_backend *b, const char *name,
                   unsigned flags, size_t priv_size)
{
        struct iomem *f = calloc(1, sizeof *f + priv_size);
        if (!f)
                return iom_fail(name, -ENOMEM, "out of memory");
        size_t n = strlen(b->name) + 1 + strlen(name) + 1;
        f->name = malloc(n);
        if (!f->name) {
                free(f);
                return iom_fail(name, -ENOMEM, "out of memory");
        }
        snprintf(f->name, n, "%s:%s", b->name, name);
        f->backend = b;
        f->flags = flags;
        f->caps = b->caps;
        f->data_fd = f->aux_fd = -1;
        f->phys = &iom_phys_fd;
        f->data_limit = IOM_DATA_END;
        f->pool_end = IOM_PHYS_END;
        f->owner = IOM_NO_OWNER;
        f->page_size = iom_system_page_size();
        f->priv = priv_size ? (char *)(f + 1) : NULL;
        iom_mutex_init(&f->lock);
        *out = f;
        return 0;
}

void iom_object_free(struct iomem *f)
{
        if (!f)
                return;
        pthread_mutex_destroy(&f->lock);
        free(f->name);
        free(f);
}

void iom_mutex_init(pthread_mutex_t *mu)
{
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
#ifdef __GLIBC__
        pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
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
                void *p = mmap(NULL, ZERO_LEN, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
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
