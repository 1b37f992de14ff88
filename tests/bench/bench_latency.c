/* SPDX-License-Identifier: MIT */
/*
 * Operation latency on a resident 2 MiB range, per call, for each backend,
 * beside mmap+munmap of the same range and a pread of 4 KiB; then
 * acquire+retrieve+release from two threads on disjoint ranges and on the
 * same range, as throughput and its ratio to one thread; then the same
 * cycle on pages already pinned (the hot path: the acquire nests, the
 * release keeps a pin), from two threads through one handle and from two
 * processes with a handle each, on disjoint ranges and on the same range.
 */
#include "bench.h"

#include <iomem.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
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
        bool nested; /* holds a pin on its range throughout */
};

static void *cycle_thread(void *arg)
{
        struct worker *w = arg;
        struct iovec v;
        if (w->nested && iomem_acquire(w->f, w->off, RANGE) != (ssize_t)RANGE)
                die("base pin");
        pthread_barrier_wait(w->go);
        for (int i = 0; i < w->n; i++) {
                iomem_acquire(w->f, w->off, RANGE);
                iomem_retrieve(w->f, w->off, RANGE, &v, 1);
                iomem_release(w->f, w->off, RANGE);
        }
        if (w->nested)
                iomem_release(w->f, w->off, RANGE);
        return NULL;
}

/* Cycles per second with nthreads threads (same: all on one range;
 * nested: each holds a pin on its range). */
static double threaded(struct iomem *f, int nthreads, int same, bool nested)
{
        pthread_t t[2];
        struct worker w[2];
        pthread_barrier_t go;
        pthread_barrier_init(&go, NULL, (unsigned)nthreads + 1);
        for (int i = 0; i < nthreads; i++) {
                w[i] = (struct worker){ f, same ? 0 : (size_t)i * RANGE, BATCH / 2, &go, nested };
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

/* Nested cycles per second in two processes, each with the handle it
 * inherits (a new attachment of its own), on disjoint ranges or on one:
 * each times its own cycles from a common start. */
static double two_processes(struct iomem *f, int same)
{
        int go[2], done[2];
        if (pipe(go) || pipe(done))
                die("pipe");
        pid_t pid[2];
        for (int i = 0; i < 2; i++) {
                if ((pid[i] = fork()) == 0) {
                        struct worker w = { f, same ? 0 : (size_t)i * RANGE, BATCH / 2, NULL, true };
                        struct iovec v;
                        char c;
                        if (iomem_acquire(f, w.off, RANGE) != (ssize_t)RANGE)
                                _exit(1);
                        if (write(done[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
                                _exit(1);
                        double t = bench_now();
                        for (int k = 0; k < w.n; k++) {
                                iomem_acquire(f, w.off, RANGE);
                                iomem_retrieve(f, w.off, RANGE, &v, 1);
                                iomem_release(f, w.off, RANGE);
                        }
                        double secs = bench_now() - t;
                        _exit(write(done[1], &secs, sizeof secs) == sizeof secs ? 0 : 1);
                }
        }
        char c;
        for (int i = 0; i < 2; i++)
                if (read(done[0], &c, 1) != 1)
                        die("child");
        if (write(go[1], "gg", 2) != 2)
                die("go");
        double slowest = 0;
        for (int i = 0; i < 2; i++) {
                double secs;
                if (read(done[0], &secs, sizeof secs) != sizeof secs)
                        die("child");
                slowest = secs > slowest ? secs : slowest;
        }
        for (int i = 0; i < 2; i++)
                waitpid(pid[i], NULL, 0);
        for (int i = 0; i < 2; i++) {
                close(go[i]);
                close(done[i]);
        }
        return 2 * (BATCH / 2) / slowest;
}

static void ratio_cell(struct bench_summary one, struct bench_summary two)
{
        printf(" %s | %.2fx |", bench_fmt(two, 2), two.median / one.median);
}

/* One row of the first-pin scaling table: one thread, then two threads on
 * disjoint ranges and on one range, each as a ratio to one thread. */
static void scaling_row(const struct bench_opts *o, struct iomem *f, const char *backend)
{
        struct bench_series one = { 0 }, x = { 0 }, y = { 0 };
        for (int r = 0; r < o->reps; r++) {
                bench_add(&one, threaded(f, 1, 0, false) / 1e6);
                bench_add(&x, threaded(f, 2, 0, false) / 1e6);
                bench_add(&y, threaded(f, 2, 1, false) / 1e6);
        }
        struct bench_summary a = bench_summarise(&one), d = bench_summarise(&x), m = bench_summarise(&y);
        if (o->json) {
                bench_json("latency-threads", backend, "one_mops", a.median, "disjoint_mops", d.median,
                           "same_mops", m.median, (const char *)NULL);
                return;
        }
        printf("| %s | %s |", backend, bench_fmt(a, 2));
        ratio_cell(a, d);
        ratio_cell(a, m);
        printf("\n");
}

/* One row of the nested table: one thread, then two threads through one
 * handle and two processes with a handle each, on disjoint ranges and on
 * one range. */
static void nested_row(const struct bench_opts *o, struct iomem *f, const char *backend)
{
        struct bench_series one = { 0 }, t[2] = { 0 }, p[2] = { 0 };
        for (int r = 0; r < o->reps; r++) {
                bench_add(&one, threaded(f, 1, 0, true) / 1e6);
                for (int same = 0; same < 2; same++) {
                        bench_add(&t[same], threaded(f, 2, same, true) / 1e6);
                        bench_add(&p[same], two_processes(f, same) / 1e6);
                }
        }
        struct bench_summary a = bench_summarise(&one), td = bench_summarise(&t[0]),
                             ts = bench_summarise(&t[1]), pd = bench_summarise(&p[0]),
                             ps = bench_summarise(&p[1]);
        if (o->json) {
                bench_json("latency-nested", backend, "one_mops", a.median, "threads_disjoint_mops",
                           td.median, "threads_same_mops", ts.median, "processes_disjoint_mops",
                           pd.median, "processes_same_mops", ps.median, (const char *)NULL);
                return;
        }
        printf("| %s | %s |", backend, bench_fmt(a, 2));
        ratio_cell(a, td);
        ratio_cell(a, ts);
        ratio_cell(a, pd);
        ratio_cell(a, ps);
        printf("\n");
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
        for (size_t b = 0; b < NB; b++)
                scaling_row(&o, f[b], backends[b]);
        if (!o.json)
                printf("\n### The same on pages already pinned (a base pin held: the acquire nests, the "
                       "release keeps a pin), million cycles per second, median (min-max)\n\n"
                       "| backend | 1 thread | 2 threads, one handle, disjoint | ratio | same range | ratio | "
                       "2 processes, a handle each, disjoint | ratio | same range | ratio |\n"
                       "|---|---|---|---|---|---|---|---|---|---|\n");
        for (size_t b = 0; b < NB; b++)
                nested_row(&o, f[b], backends[b]);
        if (!o.json)
                printf("\n");
        for (size_t b = 0; b < NB; b++)
                iomem_close(&f[b]);
        return 0;
}
