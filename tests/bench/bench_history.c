/* SPDX-License-Identifier: MIT */
/*
 * Cost that does not grow with an object's history: acquire+retrieve+
 * release of one page (a first pin, so the shared pin table changes each
 * time) and a 4 KiB pwrite into a backed page, on memfd objects whose
 * extent maps hold 1, 10^3, 10^5 and 10^6 extents, while another handle
 * holds pins all over the object (up to 10^4). Each row's ratio is to the
 * 1-extent row of the same run.
 */
#include "bench.h"

#include <iomem.h>
#include <unistd.h>

#define BATCH 200000

static const size_t extents[] = { 1, 1000, 100000, 1000000 };
#define NROWS (sizeof extents / sizeof extents[0])

static void die(const char *what)
{
        fprintf(stderr, "bench_history: %s: %s\n", what, iomem_errormsg());
        exit(1);
}

struct object {
        struct iomem *f, *other; /* other: the handle that holds pins */
        size_t pages, pins;
};

/* An object of about n extents: a data page, a hole, a data page, ...
 * (each data page alone in the map: its neighbours are holes), the last
 * page data; another handle pins every 50th data page, 10^4 at most. */
static struct object make(size_t n)
{
        struct object o = { .pages = n < 2 ? 1 : n + (n % 2 == 0) };
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        char uri[64];
        snprintf(uri, sizeof uri, "memfd:iomem-bench-history-%zu", n);
        struct iomem_opts *opts;
        iomem_opts_new(&opts);
        iomem_opts_set_size(opts, o.pages * page);
        if (iomem_open(&o.f, uri, IOMEM_RDWR | IOMEM_CREATE, opts))
                die(uri);
        iomem_opts_delete(&opts);
        for (size_t p = 0; p < o.pages; p += 2)
                if (iomem_pwrite(o.f, "x", 1, p * page) != 1)
                        die("pwrite");
        int fd = dup(iomem_fd(o.f));
        if (iomem_open_fd(&o.other, "memfd", fd, IOMEM_RDWR, NULL))
                die("second handle");
        for (size_t p = 2; p < o.pages && o.pins < 10000; p += 100, o.pins++)
                if (iomem_acquire(o.other, p * page, page) != (ssize_t)page)
                        die("pin");
        return o;
}

/* ns per acquire+retrieve+release of the middle data page. */
static double cycle(struct object *o)
{
        size_t page = (size_t)sysconf(_SC_PAGESIZE), off = (o->pages / 4) * 2 * page;
        struct iovec v;
        double t = bench_now();
        for (int i = 0; i < BATCH; i++) {
                iomem_acquire(o->f, off, page);
                iomem_retrieve(o->f, off, page, &v, 1);
                iomem_release(o->f, off, page);
        }
        return (bench_now() - t) * 1e9 / BATCH;
}

/* ns per 4 KiB pwrite into the middle data page. */
static double write4k(struct object *o)
{
        size_t page = (size_t)sysconf(_SC_PAGESIZE), off = (o->pages / 4) * 2 * page;
        static char buf[4096];
        double t = bench_now();
        for (int i = 0; i < BATCH; i++)
                if (iomem_pwrite(o->f, buf, sizeof buf < page ? sizeof buf : page, off) <= 0)
                        die("pwrite 4 KiB");
        return (bench_now() - t) * 1e9 / BATCH;
}

int main(int argc, char **argv)
{
        struct bench_opts opt = bench_parse(argc, argv);
        struct object o[NROWS];
        size_t have[NROWS];
        for (size_t r = 0; r < NROWS; r++) {
                o[r] = make(extents[r]);
                have[r] = (size_t)iomem_bufcount(o[r].f, 0, o[r].pages * (size_t)sysconf(_SC_PAGESIZE));
        }
        struct bench_series c[NROWS] = { 0 }, w[NROWS] = { 0 };
        for (int rep = 0; rep < opt.reps; rep++)
                for (size_t r = 0; r < NROWS; r++) {
                        bench_add(&c[r], cycle(&o[r]));
                        bench_add(&w[r], write4k(&o[r]));
                }
        if (!opt.json)
                printf("### Cost against history: memfd, ns per call, median (min-max) of %d batches "
                       "of %d; ratio to the 1-extent row\n\n"
                       "| extents | pins of another handle | acquire+retrieve+release (first pin) | ratio "
                       "| pwrite 4 KiB | ratio |\n|---|---|---|---|---|---|\n",
                       opt.reps, BATCH);
        struct bench_summary c0 = bench_summarise(&c[0]), w0 = bench_summarise(&w[0]);
        for (size_t r = 0; r < NROWS; r++) {
                struct bench_summary cs = bench_summarise(&c[r]), ws = bench_summarise(&w[r]);
                if (opt.json) {
                        char row[32];
                        snprintf(row, sizeof row, "%zu extents", have[r]);
                        bench_json("history", row, "cycle_ns", cs.median, "cycle_ratio",
                                   cs.median / c0.median, "pwrite_ns", ws.median, "pwrite_ratio",
                                   ws.median / w0.median, (const char *)NULL);
                        continue;
                }
                printf("| %zu | %zu | %s | %.2fx | %s | %.2fx |\n", have[r], o[r].pins,
                       bench_fmt(cs, 1), cs.median / c0.median, bench_fmt(ws, 1), ws.median / w0.median);
        }
        if (!opt.json)
                printf("\n");
        for (size_t r = 0; r < NROWS; r++) {
                iomem_close(&o[r].other);
                iomem_close(&o[r].f);
        }
        return 0;
}
