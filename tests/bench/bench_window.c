/* SPDX-License-Identifier: MIT */
/*
 * The DAX window's eviction policies, side by side: access traces replayed
 * through a real window (64 chunks of 2 MiB) over real files (576 MiB in
 * /var/tmp, chunks spread over two files), one iomem_borrow of a page per
 * access, each policy in turn on the same trace. Prints each policy's hit
 * ratio (from iomem_window_stat) and how many borrows it served per second
 * (a miss costs an mmap of the chunk over its slot, and an eviction), with
 * the hit ratio of Belady's optimal policy, computed offline from the
 * trace, as the upper bound. Rates are the median of --reps runs, at most
 * 3, so that the whole program takes under a minute.
 *
 * Then real traces (tests/traces, see its README.md, or the files named
 * on the command line: one id per line), replayed at the policy level:
 * the library's policies driven through their own calls (evict.h's
 * iom_evict_sim, as the window drives them, without mapping anything),
 * in windows of 1, 5, 10 and 25 % of each trace's distinct ids. Prints
 * the hit ratio of LRU, CLOCK, ARC, LIRS, S3-FIFO, SIEVE, FIFO and the
 * default, Belady's, and how far the default is from the best of the six
 * online references (negative: behind), then the worst distance per size.
 *
 * Traces (W = the window's 64 chunks):
 *   uniform     uniform over 2W chunks
 *   zipf-0.9    Zipf, s = 0.9, over 4W chunks (ranks shuffled over the files)
 *   zipf-1.2    Zipf, s = 1.2, over 4W chunks
 *   loop-1.5x   a loop over 1.5W chunks, in order, again and again
 *   scan+hot    half the accesses to a hot set of W/2 chunks, half a scan
 *               that goes on through 4W other chunks
 */
#include "bench.h"
#include "policy_replay.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <iomem.h>
#include <math.h>
#include <stdint.h>
#include <sys/uio.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)
#define CHUNK (2 * MIB)
#define W 64u                /* chunks in the window */
#define ACCESSES 100000u
#define NFILES 2
#define MAX_IDS (W / 2 + 4 * W) /* the largest trace's chunks */

static void die(const char *what)
{
        fprintf(stderr, "bench_window: %s: %s (%s)\n", what, strerror(errno), iomem_errormsg());
        exit(1);
}

/* ---- traces ------------------------------------------------------------------ */

static uint64_t rng_state;

static uint64_t rnd(void)
{
        uint64_t x = rng_state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        rng_state = x;
        return x * UINT64_C(0x2545F4914F6CDD1D);
}

static double rnd01(void)
{
        return (double)(rnd() >> 11) * 0x1.0p-53;
}

enum { T_UNIFORM, T_ZIPF09, T_ZIPF12, T_LOOP, T_MIX, T_COUNT };
static const char *const trace_name[T_COUNT] = { "uniform", "zipf-0.9", "zipf-1.2", "loop-1.5x",
                                                 "scan+hot" };

static void zipf(uint32_t *v, size_t n, uint32_t ids, double s)
{
        double *cdf = malloc(ids * sizeof *cdf), sum = 0;
        uint32_t *perm = malloc(ids * sizeof *perm);
        if (!cdf || !perm)
                die("malloc");
        for (uint32_t k = 0; k < ids; k++) {
                sum += pow(k + 1, -s);
                cdf[k] = sum;
                perm[k] = k;
        }
        for (uint32_t k = ids - 1; k > 0; k--) {
                uint32_t j = (uint32_t)(rnd() % (k + 1)), x = perm[k];
                perm[k] = perm[j];
                perm[j] = x;
        }
        for (size_t i = 0; i < n; i++) {
                double u = rnd01() * sum;
                uint32_t lo = 0, hi = ids - 1;
                while (lo < hi) {
                        uint32_t mid = (lo + hi) / 2;
                        if (cdf[mid] < u)
                                lo = mid + 1;
                        else
                                hi = mid;
                }
                v[i] = perm[lo];
        }
        free(cdf);
        free(perm);
}

/* Chunk ids in [0, *ids); the same trace every run. */
static uint32_t *make_trace(int t, size_t n, uint32_t *ids)
{
        uint32_t *v = malloc(n * sizeof *v);
        if (!v)
                die("malloc");
        rng_state = UINT64_C(0x2545F4914F6CDD1D) + (uint64_t)t;
        switch (t) {
        case T_UNIFORM:
                *ids = 2 * W;
                for (size_t i = 0; i < n; i++)
                        v[i] = (uint32_t)(rnd() % *ids);
                break;
        case T_ZIPF09:
        case T_ZIPF12:
                *ids = 4 * W;
                zipf(v, n, *ids, t == T_ZIPF09 ? 0.9 : 1.2);
                break;
        case T_LOOP:
                *ids = W + W / 2;
                for (size_t i = 0; i < n; i++)
                        v[i] = (uint32_t)(i % *ids);
                break;
        default: {
                uint32_t hot = W / 2, scan = 4 * W;
                size_t pos = 0;
                *ids = hot + scan;
                for (size_t i = 0; i < n; i++)
                        v[i] = rnd01() < 0.5 ? (uint32_t)(rnd() % hot) : hot + (uint32_t)(pos++ % scan);
        }
        }
        return v;
}

/* ---- the window ----------------------------------------------------------------- */

static const int policy_id[] = { IOMEM_EVICT_FIFO, IOMEM_EVICT_LIFO, IOMEM_EVICT_CLOCK,
                                 IOMEM_EVICT_DEFAULT };
#define NPOLICIES 4

static char paths[NFILES][64];

static void make_files(void)
{
        char *buf = malloc(CHUNK);
        if (!buf)
                die("malloc");
        for (int k = 0; k < NFILES; k++) {
                snprintf(paths[k], sizeof paths[k], "/var/tmp/iomem-bench-window-%d-%d", (int)getpid(), k);
                int fd = open(paths[k], O_RDWR | O_CREAT | O_TRUNC, 0600);
                if (fd < 0)
                        die(paths[k]);
                for (uint32_t c = 0; c < MAX_IDS / NFILES; c++) {
                        memset(buf, (int)(c * NFILES + (uint32_t)k) | 1, CHUNK);
                        if (pwrite(fd, buf, CHUNK, (off_t)c * (off_t)CHUNK) != (ssize_t)CHUNK)
                                die("writing the files");
                }
                close(fd);
        }
        free(buf);
}

struct result {
        double hit_ratio, maps_per_s;
};

/* Replay v through a new window under policy p. */
static struct result replay(const uint32_t *v, size_t n, int p)
{
        struct iomem_window *w = NULL;
        struct iomem_opts *o = NULL;
        struct iomem *f[NFILES];
        if (iomem_window_new(&w, W * CHUNK, CHUNK) || iomem_window_set_policy(w, p) ||
            iomem_opts_new(&o) || iomem_opts_set_window(o, w))
                die("window");
        for (int k = 0; k < NFILES; k++) {
                char uri[160];
                snprintf(uri, sizeof uri, "dax:%s", paths[k]);
                if (iomem_open(&f[k], uri, IOMEM_RDONLY, o))
                        die(uri);
        }
        uint64_t page_rng = 1, sum = 0;
        double t = bench_now();
        for (size_t i = 0; i < n; i++) {
                uint32_t id = v[i];
                page_rng = page_rng * 6364136223846793005u + 1442695040888963407u;
                size_t off = (size_t)(id / NFILES) * CHUNK + ((page_rng >> 33) % (CHUNK / 4096)) * 4096;
                struct iovec iov;
                if (iomem_borrow(f[id % NFILES], off, 4096, &iov, 1) != 1)
                        die("borrow");
                sum += *(volatile unsigned char *)iov.iov_base;
        }
        double secs = bench_now() - t;
        struct iomem_window_stat st;
        if (iomem_window_stat(w, &st))
                die("stat");
        if (sum == 0)
                die("the files read as zeros");
        for (int k = 0; k < NFILES; k++)
                iomem_close(&f[k]);
        iomem_opts_delete(&o);
        iomem_window_delete(&w);
        return (struct result){ (double)st.hits / (double)(st.hits + st.misses), (double)n / secs };
}

/* ---- real traces, policy by policy ----------------------------------------------- */

static const struct iom_evict_ops *const trace_policies[] = {
        &iom_evict_lru, &iom_evict_clock, &iom_evict_arc, &iom_evict_lirs,
        &iom_evict_s3fifo, &iom_evict_sieve, &iom_evict_fifo, &iom_evict_adaptive,
};
#define NTRACE_POLICIES 8
#define NREFERENCES 6 /* the first six: what the default is measured against */
static const unsigned sizes_pct[] = { 1, 5, 10, 25 };
#define NSIZES 4

static double ratio(long long hits, const struct replay_trace *t)
{
        if (hits < 0)
                die("malloc");
        return (double)hits / (double)t->n;
}

/* One row per trace and size; the worst distance per size in worst[]. */
static void replay_real(const char *path, bool json, double *worst)
{
        struct replay_trace t;
        int err = replay_trace_load(&t, path);
        if (err) {
                errno = -err;
                die(path);
        }
        const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        for (int z = 0; z < NSIZES; z++) {
                uint32_t slots = replay_slots(&t, sizes_pct[z]);
                double hit[NTRACE_POLICIES], best = 0;
                int best_p = 0;
                for (int p = 0; p < NTRACE_POLICIES; p++) {
                        hit[p] = ratio(replay_hits(trace_policies[p], &t, slots), &t);
                        if (p < NREFERENCES && hit[p] > best) {
                                best = hit[p];
                                best_p = p;
                        }
                }
                double opt_hit = ratio(replay_belady_hits(&t, slots), &t);
                double distance = hit[NTRACE_POLICIES - 1] - best;
                if (distance < worst[z])
                        worst[z] = distance;
                char row[300];
                snprintf(row, sizeof row, "%s@%u%%", name, sizes_pct[z]);
                if (json) {
                        bench_json("window-trace", row, "slots", (double)slots, "lru_hit", hit[0],
                                   "clock_hit", hit[1], "arc_hit", hit[2], "lirs_hit", hit[3],
                                   "s3fifo_hit", hit[4], "sieve_hit", hit[5], "fifo_hit", hit[6],
                                   "default_hit", hit[7], "belady_hit", opt_hit,
                                   "default_minus_best", distance, (const char *)NULL);
                        continue;
                }
                printf("| %s | %u%% | %u |", name, sizes_pct[z], slots);
                for (int p = 0; p < NTRACE_POLICIES; p++)
                        printf(" %.2f |", 100 * hit[p]);
                printf(" %.2f | %s | %+.2f |\n", 100 * opt_hit, trace_policies[best_p]->name,
                       100 * distance);
                fflush(stdout);
        }
        replay_trace_free(&t);
}

static int by_name(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The traces named on the command line, else every .txt of tests/traces. */
static void replay_real_traces(char **named, int nnamed, bool json)
{
        char *found[64];
        int n = 0;
        if (!nnamed) {
                DIR *d = opendir(IOMEM_TRACES_DIR);
                if (!d)
                        die(IOMEM_TRACES_DIR);
                for (struct dirent *e; (e = readdir(d)) && n < 64;) {
                        size_t len = strlen(e->d_name);
                        if (len > 4 && !strcmp(e->d_name + len - 4, ".txt") &&
                            asprintf(&found[n++], "%s/%s", IOMEM_TRACES_DIR, e->d_name) < 0)
                                die("asprintf");
                }
                closedir(d);
                qsort(found, (size_t)n, sizeof found[0], by_name);
                named = found;
                nnamed = n;
        }
        double worst[NSIZES] = { 0 };
        if (!json) {
                printf("\nReal traces at the policy level: hit ratio in %%, window of 1, 5, 10 and 25 %% "
                       "of the ids; distance: the default minus the best of LRU..SIEVE\n\n");
                printf("| trace | size | slots | LRU | CLOCK | ARC | LIRS | S3-FIFO | SIEVE | FIFO "
                       "| default | Belady (OPT) | best | distance |\n");
                printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|\n");
        }
        for (int k = 0; k < nnamed; k++)
                replay_real(named[k], json, worst);
        if (json) {
                bench_json("window-trace", "worst", "at_1pct", worst[0], "at_5pct", worst[1],
                           "at_10pct", worst[2], "at_25pct", worst[3], (const char *)NULL);
        } else {
                printf("\nWorst distance of the default from the best:");
                for (int z = 0; z < NSIZES; z++)
                        printf("%s %u %%: %+.2f", z ? "," : "", sizes_pct[z], 100 * worst[z]);
                printf(" points\n");
        }
        for (int k = 0; k < n; k++)
                free(found[k]);
}

int main(int argc, char **argv)
{
        /* Arguments that are not options are trace files. */
        char *options[argc + 1], *traces[argc + 1];
        int noptions = 1, ntraces = 0;
        options[0] = argv[0];
        for (int i = 1; i < argc; i++) {
                if (!strncmp(argv[i], "--", 2))
                        options[noptions++] = argv[i];
                else
                        traces[ntraces++] = argv[i];
        }
        options[noptions] = NULL;
        struct bench_opts opt = bench_parse(noptions, options);
        if (opt.reps > 3)
                opt.reps = 3; /* the whole run stays under a minute */
        make_files();
        if (!opt.json) {
                printf("Window: %u chunks of %zu MiB (%zu MiB); %u borrows of a page per trace; "
                       "hit ratio in %%, then thousands of borrows per second (median of %d runs)\n\n",
                       W, CHUNK / MIB, W * CHUNK / MIB, ACCESSES, opt.reps);
                printf("| trace | FIFO | LIFO | CLOCK | default | Belady (OPT) "
                       "| FIFO k/s | LIFO k/s | CLOCK k/s | default k/s |\n");
                printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        }
        for (int t = 0; t < T_COUNT; t++) {
                uint32_t ids;
                uint32_t *v = make_trace(t, ACCESSES, &ids);
                struct replay_trace tr = { v, ACCESSES, ids };
                long long opt_hits = replay_belady_hits(&tr, W);
                if (opt_hits < 0)
                        die("malloc");
                double opt_hit = (double)opt_hits / ACCESSES;
                double hit[NPOLICIES];
                struct bench_series rate[NPOLICIES] = { 0 };
                for (int r = 0; r < opt.reps; r++) {
                        for (int p = 0; p < NPOLICIES; p++) {
                                struct result res = replay(v, ACCESSES, policy_id[p]);
                                hit[p] = res.hit_ratio; /* the same every run */
                                bench_add(&rate[p], res.maps_per_s);
                        }
                }
                double med[NPOLICIES];
                for (int p = 0; p < NPOLICIES; p++)
                        med[p] = bench_summarise(&rate[p]).median;
                if (opt.json) {
                        bench_json("window", trace_name[t], "fifo_hit", hit[0], "lifo_hit", hit[1],
                                   "clock_hit", hit[2], "default_hit", hit[3], "belady_hit", opt_hit,
                                   "fifo_maps_per_s", med[0], "lifo_maps_per_s", med[1],
                                   "clock_maps_per_s", med[2], "default_maps_per_s", med[3],
                                   (const char *)NULL);
                } else {
                        printf("| %s |", trace_name[t]);
                        for (int p = 0; p < NPOLICIES; p++)
                                printf(" %.1f |", 100 * hit[p]);
                        printf(" %.1f |", 100 * opt_hit);
                        for (int p = 0; p < NPOLICIES; p++)
                                printf(" %.0f |", med[p] / 1000);
                        printf("\n");
                }
                fflush(stdout);
                free(v);
        }
        for (int k = 0; k < NFILES; k++)
                unlink(paths[k]);
        replay_real_traces(traces, ntraces, opt.json);
        return 0;
}
