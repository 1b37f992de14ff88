/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "placement.h"
#include "config.h"
#include "fdmem.h"

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

int iom_numa_node(struct iomem *f)
{
        enum { SAMPLES = 1024, MAX_NODES = 64 };
        void *pages[SAMPLES];
        int status[SAMPLES], count[MAX_NODES] = { 0 };
        unsigned n = 0;
        const struct iom_extent_map *m = iom_map(fdo(f)->meta);
        uint64_t data = 0;
        for (uint32_t i = 0; i < m->count; i++)
                if (m->ext[i].phys != IOM_HOLE)
                        data += m->ext[i].len;
        uint64_t step = iom_max(f->page_size, iom_round_up(data / SAMPLES + 1, f->page_size));
        for (uint32_t i = 0; i < m->count && n < SAMPLES; i++) {
                const struct iom_extent *e = &m->ext[i];
                if (e->phys == IOM_HOLE)
                        continue;
                for (uint64_t off = 0; off < e->len && n < SAMPLES; off += step) {
                        uint64_t contig;
                        int err;
                        char *va = iom_seg_resolve(f, e->phys + off, f->page_size, &contig, &err);
                        if (!va)
                                continue;
                        /* move_pages sees only pages this process has mapped. */
                        madvise(va, f->page_size, MADV_POPULATE_READ);
                        pages[n++] = va;
                }
        }
        if (!n || move_pages(0, n, pages, NULL, status, 0) < 0)
                return -1;
        int best = -1;
        for (unsigned i = 0; i < n; i++)
                if (status[i] >= 0 && status[i] < MAX_NODES && ++count[status[i]] > (best < 0 ? 0 : count[best]))
                        best = status[i];
        return best;
}

#else

int iom_numa_apply(struct iomem *f, void *va, size_t len)
{
        (void)f, (void)va, (void)len;
        return 0;
}

int iom_numa_node(struct iomem *f)
{
        (void)f;
        return -1;
}

#endif
