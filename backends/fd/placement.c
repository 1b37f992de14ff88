/* SPDX-License-Identifier: MIT */
#include "placement.h"
#include "config.h"
#include "fdobj.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if IOMEM_HAVE_NUMA
#include <numa.h>
#include <numaif.h>

int iom_numa_apply(struct iomem *f, void *va, size_t len)
{
        struct iom_fdobj *obj = fdo(f);
        if (obj->numa_policy == IOMEM_NUMA_DEFAULT)
                return 0;
        unsigned long mask[16] = { 0 };
        unsigned long maxnode = sizeof mask * 8;
        int mode;
        if (obj->numa_policy == IOMEM_NUMA_INTERLEAVE) {
                struct bitmask *allowed = numa_get_mems_allowed();
                for (unsigned i = 0; allowed && i < allowed->size && i < maxnode; i++)
                        if (numa_bitmask_isbitset(allowed, i))
                                mask[i / (8 * sizeof mask[0])] |= 1ul << (i % (8 * sizeof mask[0]));
                if (allowed)
                        numa_bitmask_free(allowed);
                mode = MPOL_INTERLEAVE;
        } else {
                unsigned n = (unsigned)obj->numa_node;
                mask[n / (8 * sizeof mask[0])] |= 1ul << (n % (8 * sizeof mask[0]));
                mode = obj->numa_policy == IOMEM_NUMA_BIND ? MPOL_BIND : MPOL_PREFERRED;
        }
        if (mbind(va, len, mode, mask, maxnode, 0) == 0)
                return 0;
        int e = errno;
        return iom_fail(f->name, -e, "cannot place its memory (mbind): %s", strerror(e));
}

int iom_numa_node_of(void *const *pages, unsigned n)
{
        enum { MAX_NODES = 64 };
        int *status = malloc(n * sizeof *status), count[MAX_NODES] = { 0 }, best = -1;
        if (status && n && move_pages(0, n, (void **)pages, NULL, status, 0) == 0)
                for (unsigned i = 0; i < n; i++)
                        if (status[i] >= 0 && status[i] < MAX_NODES &&
                            ++count[status[i]] > (best < 0 ? 0 : count[best]))
                                best = status[i];
        free(status);
        return best;
}

#else

int iom_numa_apply(struct iomem *f, void *va, size_t len)
{
        (void)f, (void)va, (void)len;
        return 0;
}

int iom_numa_node_of(void *const *pages, unsigned n)
{
        (void)pages, (void)n;
        return -1;
}

#endif
