/* SPDX-License-Identifier: MIT */
/*
 * The file's logical-to-physical map. Changes are made on the spare copy
 * and published by flipping one index, so a process killed in the middle
 * of a change leaves the old map (and the size stored with it) intact:
 * survivors see all of a change or none of it.
 */
#include "internal.h"
#include "meta.h"

#include <string.h>

uint32_t iom_map_find(const struct iom_extent_map *m, uint64_t off)
{
        uint32_t lo = 0, hi = m->count;
        while (lo < hi) {
                uint32_t mid = lo + (hi - lo) / 2;
                if (m->ext[mid].off + m->ext[mid].len > off)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return lo;
}

struct iom_extent_map *iom_map_begin(struct iom_meta *meta)
{
        const struct iom_extent_map *cur = iom_map(meta);
        struct iom_extent_map *spare = &meta->maps[!(meta->active_map & 1)];
        spare->size = cur->size;
        spare->count = cur->count;
        memcpy(spare->ext, cur->ext, cur->count * sizeof cur->ext[0]);
        return spare;
}

void iom_map_commit(struct iom_meta *meta)
{
        __atomic_store_n(&meta->active_map, !(meta->active_map & 1), __ATOMIC_RELEASE);
}

static uint64_t ext_end(const struct iom_extent *e) { return e->off + e->len; }

static int joinable(const struct iom_extent *a, const struct iom_extent *b)
{
        if (a->phys == IOM_HOLE || b->phys == IOM_HOLE)
                return a->phys == b->phys;
        return a->phys + a->len == b->phys;
}

/* Merge neighbours that agree among extents [lo, hi]. */
static void merge_window(struct iom_extent_map *m, uint32_t lo, uint32_t hi)
{
        if (lo > 0)
                lo--;
        for (uint32_t i = lo; i + 1 < m->count && i <= hi;) {
                if (joinable(&m->ext[i], &m->ext[i + 1])) {
                        m->ext[i].len += m->ext[i + 1].len;
                        memmove(&m->ext[i + 1], &m->ext[i + 2],
                                (m->count - i - 2) * sizeof m->ext[0]);
                        m->count--;
                        if (hi > 0)
                                hi--;
                } else {
                        i++;
                }
        }
}

int iom_map_set(struct iom_extent_map *m, uint64_t off, uint64_t len, uint64_t phys)
{
        uint64_t end = off + len;
        uint32_t i = iom_map_find(m, off), k = iom_map_find(m, end - 1);
        if (k >= m->count)
                return -ERANGE;
        struct iom_extent left = m->ext[i], right = m->ext[k];
        uint32_t pieces = (left.off < off) + 1u + (ext_end(&right) > end);
        uint32_t replaced = k - i + 1;
        if (m->count - replaced + pieces > IOM_MAX_EXTENTS)
                return -ENOSPC;
        memmove(&m->ext[i + pieces], &m->ext[k + 1], (m->count - k - 1) * sizeof m->ext[0]);
        m->count = m->count - replaced + pieces;
        uint32_t j = i;
        if (left.off < off)
                m->ext[j++] = (struct iom_extent){ left.off, off - left.off, left.phys };
        m->ext[j++] = (struct iom_extent){ off, len, phys };
        if (ext_end(&right) > end) {
                uint64_t cut = end - right.off;
                m->ext[j++] = (struct iom_extent){
                        end, right.len - cut,
                        right.phys == IOM_HOLE ? IOM_HOLE : right.phys + cut };
        }
        merge_window(m, i, j);
        return 0;
}

int iom_map_resize(struct iom_extent_map *m, uint64_t size, uint64_t page)
{
        uint64_t new_end = iom_round_up(size, page);
        uint64_t old_end = m->count ? ext_end(&m->ext[m->count - 1]) : 0;
        if (new_end > old_end) {
                if (m->count && m->ext[m->count - 1].phys == IOM_HOLE) {
                        m->ext[m->count - 1].len += new_end - old_end;
                } else {
                        if (m->count == IOM_MAX_EXTENTS)
                                return -ENOSPC;
                        m->ext[m->count++] = (struct iom_extent){ old_end, new_end - old_end, IOM_HOLE };
                }
        } else if (new_end < old_end) {
                uint32_t i = iom_map_find(m, new_end);
                if (i < m->count && m->ext[i].off < new_end) {
                        m->ext[i].len = new_end - m->ext[i].off;
                        i++;
                }
                m->count = i;
        }
        m->size = size;
        return 0;
}
