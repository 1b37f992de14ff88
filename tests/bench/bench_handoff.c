/* SPDX-License-Identifier: MIT */
/*
 * Cross-process handoff: a producer fills records and a consumer process
 * reads them (checksums every byte), through a hand-written ring in a
 * shared object (acquire + retrieve once, then plain memory), through a
 * channel over the same object (iomem_chan_*: loan, publish, receive,
 * release), through a pipe, and through a UNIX socket carrying the same
 * bytes.
 */
#include "bench.h"

#include <iomem.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define TOTAL ((size_t)512 << 20) /* bytes handed over per run */
#define RING_BYTES ((size_t)8 << 20)

static void die(const char *what)
{
        fprintf(stderr, "bench_handoff: %s: %s\n", what, iomem_errormsg());
        exit(1);
}

/* Not inlined: every way reads with the same code (the compiler vectorises
 * an inlined copy in one caller and not in another, which alone moved a
 * way between 20 and 35 GiB/s). */
__attribute__((noinline)) static uint64_t checksum(const unsigned char *p, size_t n)
{
        uint64_t s = 0;
        for (size_t i = 0; i < n; i += 8) {
                uint64_t w;
                memcpy(&w, p + i, sizeof w);
                s += w;
        }
        return s;
}

__attribute__((noinline)) static void produce(unsigned char *p, size_t n, uint64_t seq)
{
        memset(p, (int)(seq & 0xff), n);
}

/* ---- through a shared object -------------------------------------------------- */

/* The ring's first page holds the two counters; records follow. */
struct ring_head {
        _Atomic uint64_t head; /* records published */
        _Atomic uint64_t tail; /* records consumed */
};

static double via_object(const char *backend, size_t rec)
{
        char uri[64];
        snprintf(uri, sizeof uri, "%s:iomem-bench-ring-%d", backend, (int)getpid());
        struct iomem_opts *o;
        iomem_opts_new(&o);
        size_t page = (size_t)sysconf(_SC_PAGESIZE), bytes = page + RING_BYTES;
        iomem_opts_set_size(o, bytes);
        struct iomem *f;
        if (iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, o))
                die(uri);
        iomem_opts_delete(&o);
        size_t slots = RING_BYTES / rec, count = TOTAL / rec;
        pid_t pid = fork();
        if (pid == 0) {
                /* The consumer attaches like any other process would. */
                struct iomem *g;
                int r = !strcmp(backend, "shm") ? iomem_open(&g, uri, IOMEM_RDWR, NULL)
                                                : iomem_open_fd(&g, "memfd", dup(iomem_fd(f)), IOMEM_RDWR, NULL);
                struct iovec v;
                if (r || iomem_acquire(g, 0, bytes) < 0 || iomem_retrieve(g, 0, bytes, &v, 1) != 1)
                        _exit(2);
                struct ring_head *h = v.iov_base;
                unsigned char *slot0 = (unsigned char *)v.iov_base + page;
                uint64_t sum = 0;
                for (uint64_t i = 0; i < count; i++) {
                        while (atomic_load_explicit(&h->head, memory_order_acquire) <= i)
                                sched_yield();
                        sum += checksum(slot0 + (i % slots) * rec, rec);
                        atomic_store_explicit(&h->tail, i + 1, memory_order_release);
                }
                _exit(sum ? 0 : 3);
        }
        struct iovec v;
        if (iomem_acquire(f, 0, bytes) < 0 || iomem_retrieve(f, 0, bytes, &v, 1) != 1)
                die("acquire");
        struct ring_head *h = v.iov_base;
        unsigned char *slot0 = (unsigned char *)v.iov_base + page;
        double t = bench_now();
        for (uint64_t i = 0; i < count; i++) {
                while (i - atomic_load_explicit(&h->tail, memory_order_acquire) >= slots)
                        sched_yield();
                produce(slot0 + (i % slots) * rec, rec, i);
                atomic_store_explicit(&h->head, i + 1, memory_order_release);
        }
        int st;
        waitpid(pid, &st, 0);
        double secs = bench_now() - t;
        if (!WIFEXITED(st) || WEXITSTATUS(st))
                die("consumer");
        iomem_release(f, 0, bytes);
        iomem_close(&f);
        if (!strcmp(backend, "shm"))
                iomem_unlink(uri);
        return secs;
}

/* ---- through a channel ----------------------------------------------------- */

static double via_channel(const char *backend, size_t rec)
{
        char uri[64];
        snprintf(uri, sizeof uri, "%s:iomem-bench-chan-%d", backend, (int)getpid());
        struct iomem *f;
        struct iomem_chan *c;
        if (iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL) ||
            iomem_chan_open(&c, f, rec, RING_BYTES / rec, 0))
                die(uri);
        size_t count = TOTAL / rec;
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *g;
                struct iomem_chan *d;
                int r = !strcmp(backend, "shm") ? iomem_open(&g, uri, IOMEM_RDWR, NULL)
                                                : iomem_open_fd(&g, "memfd", dup(iomem_fd(f)), IOMEM_RDWR, NULL);
                if (r || iomem_chan_open(&d, g, 0, 0, 0))
                        _exit(2);
                uint64_t sum = 0;
                for (uint64_t i = 0; i < count; i++) {
                        const void *m;
                        if (iomem_chan_receive(d, &m) != (ssize_t)rec)
                                _exit(3);
                        sum += checksum(m, rec);
                        iomem_chan_release(d, m);
                }
                _exit(sum ? 0 : 3);
        }
        double t = bench_now();
        for (uint64_t i = 0; i < count; i++) {
                void *slot;
                if (iomem_chan_loan(c, &slot))
                        die("loan");
                produce(slot, rec, i);
                iomem_chan_publish(c, slot, rec);
        }
        int st;
        waitpid(pid, &st, 0);
        double secs = bench_now() - t;
        if (!WIFEXITED(st) || WEXITSTATUS(st))
                die("consumer");
        iomem_chan_close(&c);
        iomem_close(&f);
        if (!strcmp(backend, "shm"))
                iomem_unlink(uri);
        return secs;
}

/* ---- through a pipe or a socket --------------------------------------------- */

static double via_stream(int socket_pair, size_t rec)
{
        int fd[2];
        if (socket_pair ? socketpair(AF_UNIX, SOCK_STREAM, 0, fd) : pipe(fd))
                die("pipe");
        int rd = socket_pair ? fd[1] : fd[0], wr = socket_pair ? fd[0] : fd[1];
        size_t count = TOTAL / rec;
        unsigned char *buf = malloc(rec);
        pid_t pid = fork();
        if (pid == 0) {
                close(wr);
                uint64_t sum = 0;
                for (uint64_t i = 0; i < count; i++) {
                        for (size_t got = 0; got < rec;) {
                                ssize_t n = read(rd, buf + got, rec - got);
                                if (n <= 0)
                                        _exit(2);
                                got += (size_t)n;
                        }
                        sum += checksum(buf, rec);
                }
                _exit(sum ? 0 : 3);
        }
        close(rd);
        double t = bench_now();
        for (uint64_t i = 0; i < count; i++) {
                produce(buf, rec, i);
                for (size_t put = 0; put < rec;) {
                        ssize_t n = write(wr, buf + put, rec - put);
                        if (n <= 0)
                                die("write");
                        put += (size_t)n;
                }
        }
        close(wr);
        int st;
        waitpid(pid, &st, 0);
        double secs = bench_now() - t;
        if (!WIFEXITED(st) || WEXITSTATUS(st))
                die("reader");
        free(buf);
        return secs;
}

enum way { W_MEMFD, W_SHM, W_CHAN_MEMFD, W_CHAN_SHM, W_PIPE, W_SOCKET, W_COUNT };
static const char *const way_name[W_COUNT] = {
        "memfd object (acquire/retrieve), hand-written ring",
        "shm object (acquire/retrieve), hand-written ring",
        "memfd object, channel (iomem_chan)",
        "shm object, channel (iomem_chan)",
        "pipe",
        "UNIX socket",
};
/* The hand-written ring each way is held against (itself for the rings). */
static const enum way ring_of[W_COUNT] = { W_MEMFD, W_SHM, W_MEMFD, W_SHM, W_MEMFD, W_MEMFD };

int main(int argc, char **argv)
{
        struct bench_opts o = bench_parse(argc, argv);
        size_t sizes[] = { 4096, 64 * 1024, 2 << 20 };
        if (!o.json)
                printf("### Cross-process handoff: 512 MiB in records, producer and consumer processes, "
                       "median (min-max) of %d runs\n\n| record | way | messages/s | GiB/s | "
                       "vs pipe | vs the hand-written ring |\n|---|---|---|---|---|---|\n",
                       o.reps);
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
                size_t rec = sizes[si];
                struct bench_series s[W_COUNT] = { 0 };
                for (int r = 0; r < o.reps; r++) {
                        bench_add(&s[W_MEMFD], via_object("memfd", rec));
                        bench_add(&s[W_SHM], via_object("shm", rec));
                        bench_add(&s[W_CHAN_MEMFD], via_channel("memfd", rec));
                        bench_add(&s[W_CHAN_SHM], via_channel("shm", rec));
                        bench_add(&s[W_PIPE], via_stream(0, rec));
                        bench_add(&s[W_SOCKET], via_stream(1, rec));
                }
                double pipe_secs = bench_summarise(&s[W_PIPE]).median;
                for (int w = 0; w < W_COUNT; w++) {
                        struct bench_summary secs = bench_summarise(&s[w]);
                        double ring_secs = bench_summarise(&s[ring_of[w]]).median;
                        double msgs = (double)(TOTAL / rec);
                        /* Rates: the fastest run gives the highest rate. */
                        struct bench_summary mps = { msgs / secs.median, msgs / secs.max,
                                                     msgs / secs.min };
                        double gibps = (double)TOTAL / (1 << 30) / secs.median;
                        char label[32];
                        snprintf(label, sizeof label, "%zu KiB", rec >> 10);
                        if (o.json) {
                                char row[96];
                                snprintf(row, sizeof row, "%s: %s", label, way_name[w]);
                                bench_json("handoff", row, "msgs_per_s", mps.median, "gibps", gibps,
                                           "vs_pipe", pipe_secs / secs.median, "vs_ring", ring_secs / secs.median,
                                           (const char *)NULL);
                        } else {
                                printf("| %s | %s | %s | %.2f | %.2fx | %.2fx |\n", label, way_name[w],
                                       bench_fmt(mps, 0), gibps, pipe_secs / secs.median, ring_secs / secs.median);
                        }
                }
        }
        if (!o.json)
                printf("\n");
        return 0;
}
