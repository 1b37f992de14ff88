/* SPDX-License-Identifier: MIT */
/*
 * Who holds an object, for iomem_stat: the bytes pinned (spans of
 * several handles may overlap) and the processes that hold pins or the
 * I/O lock.
 */
#ifndef IOMEM_HOLDERS_H
#define IOMEM_HOLDERS_H

#include <iomem.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes covered by n spans that may overlap (sorts v). */
struct iom_span {
        uint64_t start, end;
};
uint64_t iom_spans_union_bytes(struct iom_span *v, size_t n);

/* The processes that hold an object: add pids (-ENOMEM), then put them in
 * the caller's stat, each once, in order. */
struct iom_holders {
        int *pid;
        size_t n, cap;
};
int iom_holders_add(struct iom_holders *h, int pid);
void iom_holders_report(struct iom_holders *h, struct iomem_stat *st);

#endif /* IOMEM_HOLDERS_H */
