/* SPDX-License-Identifier: MIT */
/*
 * NUMA placement of an object's memory through libnuma. A policy is set
 * on each mapping before anything is allocated through it; for tmpfs
 * memory mbind(2) on a shared mapping sets the file's shared policy, so
 * every process allocating those pages later follows it. hugetlbfs has no
 * shared policy: fdmem.c populates huge pages through the placed mapping.
 */
#ifndef IOMEM_PLACEMENT_H
#define IOMEM_PLACEMENT_H

#include <stddef.h>

struct iomem;

/* Apply the object's policy to [va, va+len) (no-op for the default). */
int iom_numa_apply(struct iomem *f, void *va, size_t len);
/* The node that holds most of pages[0..n) (mapped in this process), or
 * -1 when none is resident or the build has no libnuma. */
int iom_numa_node_of(void *const *pages, unsigned n);

#endif
