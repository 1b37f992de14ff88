/* SPDX-License-Identifier: MIT */
/*
 * A process's pinned pages as sorted, disjoint runs, each with a pin
 * count and the physical offset of its first byte. Counting per run
 * rather than per page keeps a 1 GiB acquisition one entry; runs split
 * where counts or physical placement differ and merge back when they
 * agree again.
 */
#ifndef IOMEM_RANGES_H
#define IOMEM_RANGES_H

#include <stddef.h>
#include <stdint.h>

struct iom_range {
        uint64_t start, end; /* [start, end) in file offsets */
        uint64_t phys;       /* physical offset of start */
        uint64_t count;
};

struct iom_ranges {
        struct iom_range *v;
        size_t n, cap;
};

/* Index of the first run that ends after x (n when none). */
size_t iom_ranges_first_after(const struct iom_ranges *r, uint64_t x);
/* 1 when every byte of [start, end) lies in some run. */
int iom_ranges_covered(const struct iom_ranges *r, uint64_t start, uint64_t end);
/* 1 when every run meeting [start, end) counts 2 or more: a release of
 * the range drops no page. */
int iom_ranges_all_nested(const struct iom_ranges *r, uint64_t start, uint64_t end);
/* Make room for extra more runs so that the next changes cannot fail. */
int iom_ranges_reserve(struct iom_ranges *r, size_t extra);
/* Count +by on every run inside [start, end), which must be covered. */
void iom_ranges_inc(struct iom_ranges *r, uint64_t start, uint64_t end, uint64_t by);
/* Insert a new run of count 1; [start, end) must be uncovered. */
void iom_ranges_insert(struct iom_ranges *r, uint64_t start, uint64_t end, uint64_t phys);
/* Count -1 on [start, end) (covered); calls gone(start, end, arg) for each
 * piece whose count reached zero, after it is removed. */
void iom_ranges_dec(struct iom_ranges *r, uint64_t start, uint64_t end,
                    void (*gone)(uint64_t, uint64_t, void *), void *arg);

/* Count a lane's nested pins (lanes.h) in the runs at arg, for
 * iom_lanes_fold: -ENOMEM when there is no room. */
int iom_ranges_fold_nest(void *arg, uint64_t start, uint64_t end, uint64_t count);

/* Call fn(start, end, phys, arg) for each piece of [start, end) counted
 * once: what a release of the range lets go. */
void iom_ranges_each_last(const struct iom_ranges *r, uint64_t start, uint64_t end,
                          void (*fn)(uint64_t, uint64_t, uint64_t, void *), void *arg);
/* The bytes the runs cover. */
uint64_t iom_ranges_bytes(const struct iom_ranges *r);

void iom_ranges_clear(struct iom_ranges *r);

#endif /* IOMEM_RANGES_H */
