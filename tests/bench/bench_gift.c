/* SPDX-License-Identifier: MIT */
/*
 * Gift: 1 GiB handed to an object in 2 MiB buffers, by zero-copy gift of
 * iomem_alloc memory, by gift of ordinary memory (copied) and by pwrite,
 * into an empty range; then the steady state of a producer, over a range
 * already filled, by pwrite or by an earlier gift: with the whole GiB
 * allocated at once, or allocating, filling and gifting piece after
 * piece, so that each buffer may be cut from the memory the gift before
 * gave back to the pool. What is timed is the hand-over (and, in one row,
 * the iomem_alloc before it), never the filling. A second process then
 * checks the bytes.
 */
#include "bench.h"

#include <iomem.h>
#include <sys/wait.h>
#include <unistd.h>

#define GIB ((size_t)1 << 30)
#define PIECE ((size_t)2 << 20)
#define PIECES (GIB / PIECE)

/* W_ADOPT: zero-copy gift of a GiB allocated and filled at once;
 * W_PRODUCE: iomem_alloc, fill and zero-copy gift piece by piece, the gift
 * timed; W_CYCLE: the same, iomem_alloc timed too. */
enum way { W_ADOPT, W_COPY, W_PWRITE, W_PRODUCE, W_CYCLE };
/* What the range holds before the clock starts: a producer's first
 * hand-over meets an empty range; from its second on, one it filled. */
enum before { B_EMPTY, B_PWRITTEN, B_GIFTED };
static const struct row {
        enum way way;
        enum before before;
        const char *name;
} rows[] = {
        { W_ADOPT, B_EMPTY, "gift, iomem_alloc memory (zero-copy)" },
        { W_COPY, B_EMPTY, "gift, ordinary memory (copied)" },
        { W_PWRITE, B_EMPTY, "pwrite" },
        { W_ADOPT, B_PWRITTEN, "zero-copy gift over a range pwrite filled" },
        { W_ADOPT, B_GIFTED, "zero-copy gift over a range a gift filled" },
        { W_PRODUCE, B_GIFTED, "the same, alloc + fill + gift piece by piece" },
        { W_CYCLE, B_GIFTED, "the same, iomem_alloc timed too" },
        { W_PWRITE, B_PWRITTEN, "pwrite over a range pwrite filled" },
};
enum { NROWS = sizeof rows / sizeof rows[0], FIRST_STEADY = 3, PWRITE_EMPTY = 2, PWRITE_STEADY = 7 };

static void die(const char *what)
{
        fprintf(stderr, "bench_gift: %s: %s\n", what, iomem_errormsg());
        exit(1);
}

static unsigned char pattern(size_t off) { return (unsigned char)(off / PIECE * 31 + 7); }

/* A second process attaches and checks one byte in every page. */
static int confirm(struct iomem *f, const char *backend, const char *uri)
{
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *g;
                int r = !strcmp(backend, "shm") ? iomem_open(&g, uri, IOMEM_RDONLY, NULL)
                                                : iomem_open_fd(&g, "memfd", dup(iomem_fd(f)),
                                                                IOMEM_RDONLY, NULL);
                if (r)
                        _exit(2);
                for (size_t off = 0; off < GIB; off += 4096) {
                        unsigned char c;
                        if (iomem_pread(g, &c, 1, off) != 1 || c != pattern(off))
                                _exit(1);
                }
                iomem_close(&g);
                _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* 1 GiB in PIECE pieces, the way w, from pool memory (zero-copy) or plain. */
static void hand_all(struct iomem *f, enum way w, char *pool, char *plain)
{
        for (size_t off = 0; off < GIB; off += PIECE) {
                struct iovec v = { (w == W_ADOPT ? pool : plain) + off, PIECE };
                ssize_t r = w == W_PWRITE ? iomem_pwrite(f, v.iov_base, PIECE, off)
                                          : iomem_gift(f, off, PIECE, &v, 1,
                                                       w == W_ADOPT ? IOMEM_GIFT_NOCOPY : 0);
                if (r < 0)
                        die(w == W_PWRITE ? "pwrite" : "gift");
        }
}

static char *filled_pool(struct iomem *f)
{
        char *pool;
        if (iomem_alloc(f, GIB, (void **)&pool))
                die("alloc");
        for (size_t off = 0; off < GIB; off += PIECE)
                memset(pool + off, pattern(off), PIECE);
        return pool;
}

/* A producer's 1 GiB, piece by piece: iomem_alloc, fill, zero-copy gift;
 * the seconds in the gifts (and in the allocations, with alloc_too). */
static double produce(struct iomem *f, bool alloc_too)
{
        double secs = 0;
        for (size_t off = 0; off < GIB; off += PIECE) {
                char *piece;
                double t = bench_now();
                if (iomem_alloc(f, PIECE, (void **)&piece))
                        die("alloc");
                if (alloc_too)
                        secs += bench_now() - t;
                memset(piece, pattern(off), PIECE);
                struct iovec v = { piece, PIECE };
                t = bench_now();
                if (iomem_gift(f, off, PIECE, &v, 1, IOMEM_GIFT_NOCOPY) < 0)
                        die("gift");
                secs += bench_now() - t;
        }
        return secs;
}

/* Seconds for one hand-over of 1 GiB, the range filled first as the row
 * says; fills *adopted and *copied. */
static double hand_over(struct iomem *f, const struct row *row, char *plain, uint64_t *adopted,
                        uint64_t *copied)
{
        if (iomem_truncate(f, 0))
                die("truncate");
        if (row->before == B_PWRITTEN)
                hand_all(f, W_PWRITE, NULL, plain);
        else if (row->before == B_GIFTED)
                hand_all(f, W_ADOPT, filled_pool(f), plain);
        bool piecewise = row->way == W_PRODUCE || row->way == W_CYCLE;
        char *pool = row->way == W_ADOPT ? filled_pool(f) : NULL;
        struct iomem_stat before, after;
        iomem_stat(f, &before);
        double secs;
        if (piecewise) {
                secs = produce(f, row->way == W_CYCLE);
        } else {
                double t = bench_now();
                hand_all(f, row->way, pool, plain);
                secs = bench_now() - t;
        }
        iomem_stat(f, &after);
        *adopted = after.gift_adopted - before.gift_adopted;
        *copied = after.gift_copied - before.gift_copied;
        return secs;
}

int main(int argc, char **argv)
{
        struct bench_opts o = bench_parse(argc, argv);
        char *plain = malloc(GIB);
        if (!plain)
                die("malloc");
        for (size_t off = 0; off < GIB; off += PIECE)
                memset(plain + off, pattern(off), PIECE);
        const char *backends[] = { "memfd", "shm" };
        if (!o.json)
                printf("### Gift: 1 GiB in 2 MiB buffers, milliseconds, median (min-max) of %d runs\n\n"
                       "Against pwrite: into an empty range for the first three rows, over a range "
                       "pwrite filled for the rest (the steady state of a producer that hands the "
                       "same range over again and again, with the GiB allocated at once or piece by "
                       "piece).\n\n"
                       "| backend | way | ms | GiB/s | adopted | copied | checked by a second process | "
                       "pwrite / this |\n|---|---|---|---|---|---|---|---|\n",
                       o.reps);
        for (int b = 0; b < 2; b++) {
                char uri[64];
                snprintf(uri, sizeof uri, "%s:iomem-bench-gift-%d", backends[b], (int)getpid());
                struct iomem *f;
                if (iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL))
                        die(uri);
                struct bench_series ms[NROWS] = { 0 };
                uint64_t adopted[NROWS] = { 0 }, copied[NROWS] = { 0 };
                int checked[NROWS] = { 0 };
                for (int r = 0; r < o.reps; r++) {
                        for (int w = 0; w < NROWS; w++) {
                                bench_add(&ms[w], 1e3 * hand_over(f, &rows[w], plain, &adopted[w], &copied[w]));
                                if (r == 0)
                                        checked[w] = confirm(f, backends[b], uri);
                        }
                }
                for (int w = 0; w < NROWS; w++) {
                        struct bench_summary s = bench_summarise(&ms[w]);
                        double pw = bench_summarise(&ms[w < FIRST_STEADY ? PWRITE_EMPTY : PWRITE_STEADY]).median;
                        if (o.json) {
                                char row[96];
                                snprintf(row, sizeof row, "%s: %s", backends[b], rows[w].name);
                                bench_json("gift", row, "ms", s.median, "adopted", (double)adopted[w],
                                           "copied", (double)copied[w], "checked", (double)checked[w],
                                           "pwrite_ratio", pw / s.median, (const char *)NULL);
                        } else {
                                printf("| %s | %s | %s | %.1f | %llu | %llu | %s | %.1fx |\n", backends[b],
                                       rows[w].name, bench_fmt(s, 2), 1e3 / s.median,
                                       (unsigned long long)adopted[w], (unsigned long long)copied[w],
                                       checked[w] ? "yes" : "NO", pw / s.median);
                        }
                        if (!checked[w])
                                fprintf(stderr, "bench_gift: %s %s: the second process saw other bytes\n",
                                        backends[b], rows[w].name);
                }
                iomem_close(&f);
                if (b == 1)
                        iomem_unlink(uri);
        }
        if (!o.json)
                printf("\n");
        free(plain);
        return 0;
}
