/* SPDX-License-Identifier: MIT */
/*
 * Gift: 1 GiB handed to an object in 2 MiB buffers, by zero-copy gift of
 * iomem_alloc memory, by gift of ordinary memory (copied) and by pwrite.
 * The buffers are filled before the clock starts: what is timed is the
 * hand-over. A second process then checks the bytes.
 */
#include "bench.h"

#include <iomem.h>
#include <sys/wait.h>
#include <unistd.h>

#define GIB ((size_t)1 << 30)
#define PIECE ((size_t)2 << 20)
#define PIECES (GIB / PIECE)

enum way { W_ADOPT, W_COPY, W_PWRITE, W_COUNT };
static const char *const way_name[W_COUNT] = { "gift, iomem_alloc memory (zero-copy)",
                                               "gift, ordinary memory (copied)", "pwrite" };

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

/* Seconds for one hand-over of 1 GiB; fills *adopted and *copied. */
static double hand_over(struct iomem *f, enum way w, char *plain, uint64_t *adopted, uint64_t *copied)
{
        char *pool = NULL;
        if (w == W_ADOPT) {
                if (iomem_alloc(f, GIB, (void **)&pool))
                        die("alloc");
                for (size_t off = 0; off < GIB; off += PIECE)
                        memset(pool + off, pattern(off), PIECE);
        }
        struct iomem_stat before, after;
        iomem_stat(f, &before);
        double t = bench_now();
        for (size_t off = 0; off < GIB; off += PIECE) {
                struct iovec v = { (w == W_ADOPT ? pool : plain) + off, PIECE };
                ssize_t r = w == W_PWRITE ? iomem_pwrite(f, v.iov_base, PIECE, off)
                                          : iomem_gift(f, off, PIECE, &v, 1,
                                                       w == W_ADOPT ? IOMEM_GIFT_NOCOPY : 0);
                if (r < 0)
                        die(way_name[w]);
        }
        double secs = bench_now() - t;
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
                       "| backend | way | ms | GiB/s | adopted | copied | checked by a second process | "
                       "pwrite / this |\n|---|---|---|---|---|---|---|---|\n",
                       o.reps);
        for (int b = 0; b < 2; b++) {
                char uri[64];
                snprintf(uri, sizeof uri, "%s:iomem-bench-gift-%d", backends[b], (int)getpid());
                struct iomem *f;
                if (iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL))
                        die(uri);
                struct bench_series ms[W_COUNT] = { 0 };
                uint64_t adopted[W_COUNT] = { 0 }, copied[W_COUNT] = { 0 };
                int checked[W_COUNT] = { 0 };
                for (int r = 0; r < o.reps; r++) {
                        for (int w = 0; w < W_COUNT; w++) {
                                if (iomem_truncate(f, 0))
                                        die("truncate");
                                bench_add(&ms[w], 1e3 * hand_over(f, (enum way)w, plain, &adopted[w],
                                                                  &copied[w]));
                                if (r == 0)
                                        checked[w] = confirm(f, backends[b], uri);
                        }
                }
                double pw = bench_summarise(&ms[W_PWRITE]).median;
                for (int w = 0; w < W_COUNT; w++) {
                        struct bench_summary s = bench_summarise(&ms[w]);
                        if (o.json) {
                                char row[96];
                                snprintf(row, sizeof row, "%s: %s", backends[b], way_name[w]);
                                bench_json("gift", row, "ms", s.median, "adopted", (double)adopted[w],
                                           "copied", (double)copied[w], "checked", (double)checked[w],
                                           "pwrite_ratio", pw / s.median, (const char *)NULL);
                        } else {
                                printf("| %s | %s | %s | %.1f | %llu | %llu | %s | %.1fx |\n", backends[b],
                                       way_name[w], bench_fmt(s, 2), 1e3 / s.median,
                                       (unsigned long long)adopted[w], (unsigned long long)copied[w],
                                       checked[w] ? "yes" : "NO", pw / s.median);
                        }
                        if (!checked[w])
                                fprintf(stderr, "bench_gift: %s %s: the second process saw other bytes\n",
                                        backends[b], way_name[w]);
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
