/* SPDX-License-Identifier: MIT */
#include "ranges.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

size_t iom_ranges_first_after(const struct iom_ranges *r, uint64_t x)
{
        size_t lo = 0, hi = r->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (r->v[mid].end > x)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return lo;
}

int iom_ranges_covered(const struct iom_ranges *r, uint64_t start, uint64_t end)
{
        size_t i = iom_ranges_first_after(r, start);
        for (uint64_t pos = start; pos < end; i++) {
                if (i >= r->n || r->v[i].start > pos)
                        return 0;
                pos = r->v[i].end;
        }
        return 1;
}

int iom_ranges_all_nested(const struct iom_ranges *r, uint64_t start, uint64_t end)
{
        for (size_t i = iom_ranges_first_after(r, start); i < r->n && r->v[i].start < end; i++)
                if (r->v[i].count < 2)
                        return 0;
        return 1;
}

int iom_ranges_reserve(struct iom_ranges *r, size_t extra)
{
        if (r->n + extra <= r->cap)
                return 0;
        size_t cap = r->cap ? r->cap : 8;
        while (cap < r->n + extra)
                cap *= 2;
        struct iom_range *v = realloc(r->v, cap * sizeof *v);
        if (!v)
                return -ENOMEM;
        r->v = v;
        r->cap = cap;
        return 0;
}

static void open_gap(struct iom_ranges *r, size_t i)
{
        memmove(&r->v[i + 1], &r->v[i], (r->n - i) * sizeof r->v[0]);
        r->n++;
}

static void close_gap(struct iom_ranges *r, size_t i)
{
        memmove(&r->v[i], &r->v[i + 1], (r->n - i - 1) * sizeof r->v[0]);
        r->n--;
}

/* Make x a run boundary (the caller reserved room for one more run). */
static void split_at(struct iom_ranges *r, uint64_t x)
{
        size_t i = iom_ranges_first_after(r, x);
        if (i >= r->n || r->v[i].start >= x)
                return;
        open_gap(r, i);
        struct iom_range *left = &r->v[i], *right = &r->v[i + 1];
        right->phys = left->phys + (x - left->start);
        right->start = x;
        left->end = x;
}

static int mergeable(const struct iom_range *a, const struct iom_range *b)
{
        return a->end == b->start && a->count == b->count &&
               a->phys + (a->end - a->start) == b->phys;
}

/* Merge neighbours that agree, in the window of runs touching [start, end]. */
static void merge_around(struct iom_ranges *r, uint64_t start, uint64_t end)
{
        size_t i = iom_ranges_first_after(r, start);
        if (i > 0)
                i--;
        while (i + 1 < r->n && r->v[i].start <= end) {
                if (mergeable(&r->v[i], &r->v[i + 1])) {
                        r->v[i].end = r->v[i + 1].end;
                        close_gap(r, i + 1);
                } else {
                        i++;
                }
        }
}

void iom_ranges_inc(struct iom_ranges *r, uint64_t start, uint64_t end, uint64_t by)
{
        split_at(r, start);
        split_at(r, end);
        for (size_t i = iom_ranges_first_after(r, start); i < r->n && r->v[i].start < end; i++)
                r->v[i].count += by;
        merge_around(r, start, end);
}

void iom_ranges_insert(struct iom_ranges *r, uint64_t start, uint64_t end, uint64_t phys)
{
        size_t i = iom_ranges_first_after(r, start);
        open_gap(r, i);
        r->v[i] = (struct iom_range){ .start = start, .end = end, .phys = phys, .count = 1 };
        merge_around(r, start, end);
}

void iom_ranges_dec(struct iom_ranges *r, uint64_t start, uint64_t end,
                    void (*gone)(uint64_t, uint64_t, void *), void *arg)
{
        split_at(r, start);
        split_at(r, end);
        size_t i = iom_ranges_first_after(r, start);
        while (i < r->n && r->v[i].start < end) {
                if (--r->v[i].count > 0) {
                        i++;
                        continue;
                }
                uint64_t s = r->v[i].start, e = r->v[i].end;
                close_gap(r, i);
                if (gone)
                        gone(s, e, arg);
        }
        merge_around(r, start, end);
}

void iom_ranges_each_last(const struct iom_ranges *r, uint64_t start, uint64_t end,
                          void (*fn)(uint64_t, uint64_t, uint64_t, void *), void *arg)
{
        for (size_t i = iom_ranges_first_after(r, start); i < r->n && r->v[i].start < end; i++) {
                uint64_t a = start > r->v[i].start ? start : r->v[i].start;
                uint64_t b = end < r->v[i].end ? end : r->v[i].end;
                if (r->v[i].count == 1 && a < b)
                        fn(a, b, r->v[i].phys + (a - r->v[i].start), arg);
        }
}

uint64_t iom_ranges_bytes(const struct iom_ranges *r)
{
        uint64_t n = 0;
        for (size_t i = 0; i < r->n; i++)
                n += r->v[i].end - r->v[i].start;
        return n;
}

void iom_ranges_clear(struct iom_ranges *r)
{
        free(r->v);
        *r = (struct iom_ranges){ 0 };
}

int iom_ranges_fold_nest(void *arg, uint64_t start, uint64_t end, uint64_t count)
{
        struct iom_ranges *r = arg;
        if (iom_ranges_reserve(r, 2))
                return -ENOMEM;
        iom_ranges_inc(r, start, end, count);
        return 0;
}
