/* SPDX-License-Identifier: MIT */
/* Pinned bytes and holding processes, for iomem_stat (holders.h). */
#include "holders.h"

#include <errno.h>
#include <stdlib.h>

static int span_order(const void *a, const void *b)
{
        const struct iom_span *x = a, *y = b;
        return x->start < y->start ? -1 : x->start > y->start;
}

uint64_t iom_spans_union_bytes(struct iom_span *v, size_t n)
{
        if (n == 0)
                return 0;
        qsort(v, n, sizeof *v, span_order);
        uint64_t bytes = 0, reach = 0;
        for (size_t i = 0; i < n; i++) {
                uint64_t s = v[i].start > reach ? v[i].start : reach;
                if (v[i].end > s)
                        bytes += v[i].end - s;
                if (v[i].end > reach)
                        reach = v[i].end;
        }
        return bytes;
}

int iom_holders_add(struct iom_holders *h, int pid)
{
        if (h->n == h->cap) {
                size_t cap = h->cap ? 2 * h->cap : 16;
                int *v = realloc(h->pid, cap * sizeof *v);
                if (!v)
                        return -ENOMEM;
                h->pid = v;
                h->cap = cap;
        }
        h->pid[h->n++] = pid;
        return 0;
}

static int pid_order(const void *a, const void *b)
{
        int x = *(const int *)a, y = *(const int *)b;
        return (x > y) - (x < y);
}

void iom_holders_report(struct iom_holders *h, struct iomem_stat *st)
{
        if (h->n)
                qsort(h->pid, h->n, sizeof *h->pid, pid_order);
        st->nholders = 0;
        for (size_t i = 0; i < h->n; i++) {
                if (i && h->pid[i] == h->pid[i - 1])
                        continue;
                if (st->nholders < IOMEM_STAT_HOLDERS)
                        st->holders[st->nholders] = h->pid[i];
                st->nholders++;
        }
        free(h->pid);
        *h = (struct iom_holders){ 0 };
}
