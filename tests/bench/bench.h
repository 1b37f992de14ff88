/* SPDX-License-Identifier: MIT */
/*
 * What every benchmark program shares: a clock, repeated interleaved
 * measurements summarised as median and range, and output as a Markdown
 * table or JSON lines (--json). Numbers are only ever compared with
 * numbers from the same run.
 */
#ifndef IOMEM_BENCH_H
#define IOMEM_BENCH_H

#define _GNU_SOURCE
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define BENCH_MAX_REPS 64

static inline double bench_now(void)
{
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* CPU seconds of this process so far, user and system, all its threads. */
static inline double bench_cpu_now(void)
{
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
               (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/* Repeated measurements of one contender. */
struct bench_series {
        double v[BENCH_MAX_REPS];
        int n;
};

static inline void bench_add(struct bench_series *s, double v)
{
        if (s->n < BENCH_MAX_REPS)
                s->v[s->n++] = v;
}

static int bench_cmp(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return (x > y) - (x < y);
}

struct bench_summary {
        double median, min, max;
};

static inline struct bench_summary bench_summarise(const struct bench_series *s)
{
        double v[BENCH_MAX_REPS];
        memcpy(v, s->v, sizeof(double) * (size_t)s->n);
        qsort(v, (size_t)s->n, sizeof v[0], bench_cmp);
        struct bench_summary r = { 0, 0, 0 };
        if (s->n) {
                r.min = v[0];
                r.max = v[s->n - 1];
                r.median = s->n % 2 ? v[s->n / 2] : (v[s->n / 2 - 1] + v[s->n / 2]) / 2;
        }
        return r;
}

/* Options every program takes. */
struct bench_opts {
        bool json;
        int reps;
};

static inline struct bench_opts bench_parse(int argc, char **argv)
{
        struct bench_opts o = { .json = false, .reps = 5 };
        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--json"))
                        o.json = true;
                else if (!strncmp(argv[i], "--reps=", 7))
                        o.reps = atoi(argv[i] + 7);
                else {
                        fprintf(stderr, "usage: %s [--json] [--reps=N]\n", argv[0]);
                        exit(2);
                }
        }
        if (o.reps < 1 || o.reps > BENCH_MAX_REPS)
                o.reps = 5;
        return o;
}

/* "1.23 (1.10-1.30)" */
static inline const char *bench_fmt(struct bench_summary s, int prec)
{
        static __thread char buf[8][64];
        static __thread int k;
        char *b = buf[k++ % 8];
        snprintf(b, 64, "%.*f (%.*f-%.*f)", prec, s.median, prec, s.min, prec, s.max);
        return b;
}

/* A JSON line: {"bench":..., "key":value, ...}; pairs of const char *name,
 * double value, ended by NULL. */
static inline void bench_json(const char *bench, const char *row, ...)
{
        printf("{\"bench\":\"%s\",\"row\":\"%s\"", bench, row);
        va_list ap;
        va_start(ap, row);
        for (const char *k; (k = va_arg(ap, const char *));)
                printf(",\"%s\":%.6g", k, va_arg(ap, double));
        va_end(ap);
        printf("}\n");
}

#endif
