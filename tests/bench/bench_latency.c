/* SPDX-License-Identifier: MIT */
/*
 * Operation latency on a resident 2 MiB range, per call, for each backend,
 * beside mmap+munmap of the same range and a pread of 4 KiB; then
 * acquire+retrieve+release from two threads on disjoint ranges and on the
 * same range, as throughput and its ratio to one thread.
 */
#include "bench.h"

#include <iomem.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#define RANGE ((size_t)2 << 20)
#define BATCH 1000000
#define MAP_BATCH 100000

static void die(const char *what)
{
        fprintf(stderr, "bench_latency: %s: %s\n", what, iomem_errormsg());
        exit(1);
}

enum op { O_ACQUIRE, O_RETRIEVE, O_RELEASE, O_BORROW, O_BUFCOUNT, O_CYCLE, O_MMAP, O_PREAD, O_COUNT };
static const char *const op_name[O_COUNT] = { "acquire", "retrieve", "release", "borrow",
                                              "bufcount", "acquire+retrieve+release",
                                              "mmap+munmap (same range)", "pread 4 KiB" };

/* ns per call of one batch. */
static double batch(struct iomem *f, enum op op)
{
        struct iovec v;
        static char buf[4096];
        int fd = iomem_fd(f);
        int n = op == O_MMAP ? MAP_BATCH : BATCH;
        if (op == O_RETRIEVE || op == O_RELEASE)
                for (int i = 0; i < (op == O_RELEASE ? n : 1); i++)
                        if (iomem_acquire(f, 0, RANGE) != (ssize_t)RANGE)
                                die("acquire");
        double t = bench_now();
        for (int i = 0; i < n; i++) {
                switch (op) {
                case O_ACQUIRE:
                        iomem_acquire(f, 0, RANGE);
                        break;
                case O_RETRIEVE:
                        iomem_retrieve(f, 0, RANGE, &v, 1);
                        break;
                case O_RELEASE:
                        iomem_release(f, 0, RANGE);
                        break;
                case O_BORROW:
                        iomem_borrow(f, 0, RANGE, &v, 1);
                        break;
                case O_BUFCOUNT:
                        iomem_bufcount(f, 0, RANGE);
                        break;
                case O_CYCLE:
                        iomem_acquire(f, 0, RANGE);
                        iomem_retrieve(f, 0, RANGE, &v, 1);
                        iomem_release(f, 0, RANGE);
                        break;
                case O_MMAP: {
                        void *p = mmap(NULL, RANGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                        if (p == MAP_FAILED)
                                die("mmap");
                        munmap(p, RANGE);
                        break;
                }
                case O_PREAD:
                        if (pread(fd, buf, sizeof buf, (off_t)((size_t)i % 512) * 4096) != sizeof buf)
                                die("pread");
                        break;
                default:
                        break;
                }
        }
        double ns = (bench_now() - t) * 1e9 / n;
        if (op == O_ACQUIRE)
                for (int i = 0; i < n; i++)
                        iomem_release(f, 0, RANGE);
        if (op == O_RETRIEVE)
                iomem_release(f, 0, RANGE);
        return ns;
}

/* ---- two threads ------------------------------------------------------------------ */

struct worker {
        struct iomem *f;
        size_t off;
        int n;
        pthread_barrier_t *go;
};

static void *cycle_thread(void *arg)
{
        struct worker *w = arg;
        struct iovec v;
        pthread_barrier_wait(w->go);
        for (int i = 0; i < w->n; i++) {
                iomem_acquire(w->f, w->off, RANGE);
                iomem_retrieve(w->f, w->off, RANGE, &v, 1);
                iomem_release(w->f, w->off, RANGE);
        }
        return NULL;
}

/* Cycles per second with nthreads threads (same: all on one range). */
static double threaded(struct iomem *f, int nthreads, int same)
{
        pthread_t t[2];
        struct worker w[2];
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, (unsigned)nthreads + 1);
        for (int i = 0; i < nthreads; i++) {
                w[i] = (struct worker){ f, same ? 0 : (size_t)i * RANGE, BATCH / 2, &go };
                pthread_create(&t[i], NULL, cycle_thread, &w[i]);
        }
        pthread_barrier_wait(&go);
        double start = bench_now();
        for (int i = 0; i < nthreads; i++)
                pthread_join(t[i], NULL);
        double secs = bench_now() - start;
        pthread_barrier_destroy(&go);
        return nthreads * (BATCH / 2) / secs;
}

/* The objects measured: one per backend (dax: a file on tmpfs). */
static const char *const backends[] = { "memfd", "shm", "dax" };
#define NB (sizeof backends / sizeof backends[0])

static struct iomem *open_object(const char *backend, char *uri, size_t cap)
{
        if (!strcmp(backend, "dax"))
                snprintf(uri, cap, "dax:/dev/shm/iomem-bench-lat-%d", (int)getpid());
        else
                snprintf(uri, cap, "%s:iomem-bench-lat-%d", backend, (int)getpid());
        struct iomem_opts *opts;
        struct iomem *f;
        iomem_opts_new(&opts);
        iomem_opts_set_size(opts, 2 * RANGE);
        if (iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, opts))
                die(uri);
        iomem_opts_delete(&opts);
        if (strcmp(backend, "memfd"))
                iomem_unlink(uri); /* the handle keeps it */
        static char fill[2 * RANGE];
        memset(fill, 1, sizeof fill);
        if (iomem_pwrite(f, fill, sizeof fill, 0) != (ssize_t)sizeof fill)
                die("fill"); /* resident, backed */
        return f;
}

int main(int argc, char **argv)
{
        struct bench_opts o = bench_parse(argc, argv);
        if (!o.json) {
                printf("### Operation latency: resident 2 MiB range, ns per call, median (min-max) of %d "
                       "batches of %d (mmap+munmap: of %d)\n\n| operation |",
                       o.reps, BATCH, MAP_BATCH);
                for (size_t b = 0; b < NB; b++)
                        printf(" %s |", backends[b]);
                printf("\n|---|");
                for (size_t b = 0; b < NB; b++)
                        printf("---|");
                printf("\n");
        }
        struct iomem *f[NB];
        for (size_t b = 0; b < NB; b++) {
                char uri[96];
                f[b] = open_object(backends[b], uri, sizeof uri);
        }
        struct bench_series s[NB][O_COUNT] = { 0 };
        for (int r = 0; r < o.reps; r++)
                for (int op = 0; op < O_COUNT; op++)
                        for (size_t b = 0; b < NB; b++)
                                bench_add(&s[b][op], batch(f[b], (enum op)op));
        for (int op = 0; op < O_COUNT; op++) {
                struct bench_summary m[NB];
                for (size_t b = 0; b < NB; b++)
                        m[b] = bench_summarise(&s[b][op]);
                if (o.json) {
                        bench_json("latency", op_name[op], "memfd_ns", m[0].median, "shm_ns", m[1].median,
                                   "dax_ns", m[2].median, (const char *)NULL);
                        continue;
                }
                printf("| %s |", op_name[op]);
                for (size_t b = 0; b < NB; b++)
                        printf(" %s |", bench_fmt(m[b], 1));
                printf("\n");
        }
        for (size_t b = 0; b < NB && !o.json; b++) {
                struct bench_summary c = bench_summarise(&s[b][O_CYCLE]), mm = bench_summarise(&s[b][O_MMAP]);
                printf("%s%s: acquire+retrieve+release is %.1fx faster than mmap+munmap",
                       b ? ", " : "\n", backends[b], mm.median / c.median);
        }
        if (!o.json)
                printf("\n\n### acquire+retrieve+release from threads, million cycles per second, median "
                       "(min-max)\n\n| backend | 1 thread | 2 threads, disjoint ranges | ratio | "
                       "2 threads, same range | ratio |\n|---|---|---|---|---|---|\n");
        for (size_t b = 0; b < NB; b++) {
                struct bench_series one = { 0 }, dis = { 0 }, same = { 0 };
                for (int r = 0; r < o.reps; r++) {
                        bench_add(&one, threaded(f[b], 1, 0) / 1e6);
                        bench_add(&dis, threaded(f[b], 2, 0) / 1e6);
                        bench_add(&same, threaded(f[b], 2, 1) / 1e6);
                }
                struct bench_summary a = bench_summarise(&one), d = bench_summarise(&dis),
                                     m = bench_summarise(&same);
                if (o.json)
                        bench_json("latency-threads", backends[b], "one_mops", a.median, "disjoint_mops",
                                   d.median, "same_mops", m.median, (const char *)NULL);
                else
                        printf("| %s | %s | %s | %.2fx | %s | %.2fx |\n", backends[b], bench_fmt(a, 2),
                               bench_fmt(d, 2), d.median / a.median, bench_fmt(m, 2),
                               m.median / a.median);
        }
        if (!o.json)
                printf("\n");
        for (size_t b = 0; b < NB; b++)
                iomem_close(&f[b]);
        return 0;
}
