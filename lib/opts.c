/* SPDX-License-Identifier: MIT */
/* Options for iomem_open and iomem_open_fd. */
#include "internal.h"
#include "config.h"

#include <stdlib.h>

#if IOMEM_HAVE_NUMA
#include <numa.h>
#endif

#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

static const struct iomem_opts defaults = { .mode = 0600, .lock_timeout_ms = -1 };

const struct iomem_opts *iom_opts_or_default(const struct iomem_opts *o)
{
        return o ? o : &defaults;
}

IOM_PUBLIC int iomem_opts_new(struct iomem_opts **o)
{
        if (!o)
                return (int)iom_result(__func__, iom_fail(NULL, -EINVAL, "o is NULL"));
        struct iomem_opts *n = malloc(sizeof *n);
        if (!n)
                return (int)iom_result(__func__, iom_fail(NULL, -ENOMEM, "out of memory"));
        *n = defaults;
        *o = n;
        return 0;
}

IOM_PUBLIC void iomem_opts_delete(struct iomem_opts **o)
{
        if (o) {
                free(*o);
                *o = NULL;
        }
}

#define CHECK_OPTS(o)                                                                 \
        do {                                                                          \
                if (!(o))                                                             \
                        return (int)iom_result(__func__,                              \
                                               iom_fail(NULL, -EINVAL, "o is NULL")); \
        } while (0)

IOM_PUBLIC int iomem_opts_set_size(struct iomem_opts *o, size_t size)
{
        CHECK_OPTS(o);
        if (size > IOM_FILE_MAX)
                return (int)iom_result(__func__, iom_fail(NULL, -EFBIG,
                                                          "%zu bytes is larger than the largest file (%llu)",
                                                          size, (unsigned long long)IOM_FILE_MAX));
        o->size = size;
        return 0;
}

IOM_PUBLIC int iomem_opts_set_mode(struct iomem_opts *o, unsigned mode)
{
        CHECK_OPTS(o);
        if (mode & ~0777u)
                return (int)iom_result(__func__, iom_fail(NULL, -EINVAL,
                                                          "mode %#o has bits beyond 0777", mode));
        o->mode = mode;
        return 0;
}

IOM_PUBLIC int iomem_opts_set_hugepage(struct iomem_opts *o, size_t page)
{
        CHECK_OPTS(o);
        if (page != 0 && page != 2 * MIB && page != GIB)
                return (int)iom_result(__func__, iom_fail(NULL, -EINVAL,
                                                          "huge page size %zu is not 0, 2 MiB or 1 GiB",
                                                          page));
        o->hugepage = page;
        return 0;
}

/* -ENODEV when the kernel has no NUMA, -EINVAL when node does not exist
 * here, -ENOTSUP without libnuma. */
static int numa_check(int policy, int node)
{
        if (policy == IOMEM_NUMA_DEFAULT)
                return 0;
#if IOMEM_HAVE_NUMA
        if (numa_available() < 0)
                return iom_fail(NULL, -ENODEV, "the kernel has no NUMA support");
        if (policy == IOMEM_NUMA_INTERLEAVE)
                return 0;
        if (node > numa_max_node() || !numa_bitmask_isbitset(numa_all_nodes_ptr, (unsigned)node))
                return iom_fail(NULL, -EINVAL, "NUMA node %d does not exist here (nodes 0-%d)", node,
                                numa_max_node());
        return 0;
#else
        (void)node;
        return iom_fail(NULL, -ENOTSUP, "built without libnuma (-Dnuma=disabled, libnuma-dev missing, "
                        "or -Dplatform=posix)");
#endif
}

IOM_PUBLIC int iomem_opts_set_numa(struct iomem_opts *o, int policy, int node)
{
        CHECK_OPTS(o);
        if (policy < IOMEM_NUMA_DEFAULT || policy > IOMEM_NUMA_INTERLEAVE)
                return (int)iom_result(__func__, iom_fail(NULL, -EINVAL, "unknown NUMA policy %d", policy));
        if ((policy == IOMEM_NUMA_BIND || policy == IOMEM_NUMA_PREFERRED) && node < 0)
                return (int)iom_result(__func__, iom_fail(NULL, -EINVAL, "NUMA node %d is negative", node));
        int err = numa_check(policy, node);
        if (err)
                return (int)iom_result(__func__, err);
        o->numa_policy = policy;
        o->numa_node = node;
        return 0;
}

IOM_PUBLIC int iomem_opts_set_seals(struct iomem_opts *o, unsigned seals)
{
        CHECK_OPTS(o);
        unsigned all = IOMEM_SEAL_SHRINK | IOMEM_SEAL_GROW | IOMEM_SEAL_WRITE;
        if (seals & ~all)
                return (int)iom_result(__func__, iom_fail(NULL, -EINVAL, "unknown seal bits %#x", seals & ~all));
        o->seals = seals;
        return 0;
}

IOM_PUBLIC int iomem_opts_set_window(struct iomem_opts *o, struct iomem_window *w)
{
        CHECK_OPTS(o);
        o->window = w;
        return 0;
}

IOM_PUBLIC int iomem_opts_set_wired(struct iomem_opts *o, int wired)
{
        CHECK_OPTS(o);
        if (wired != 0 && wired != 1)
                return (int)iom_result(__func__, iom_fail(NULL, -EINVAL, "wired is %d, not 0 or 1", wired));
        o->wired = wired;
        return 0;
}

IOM_PUBLIC int iomem_opts_set_lock_timeout(struct iomem_opts *o, int timeout_ms)
{
        CHECK_OPTS(o);
        o->lock_timeout_ms = timeout_ms;
        return 0;
}
