/* SPDX-License-Identifier: MIT */
/*
 * Receiving into an object: a sender process streams LEN bytes in records
 * of REC bytes; the receiver appends them to a memfd object, either with
 * iomem_rx (messages land in gift-pool buffers, iomem_rx_gift makes them
 * the object's memory) or with recv(2) into a heap buffer and
 * iomem_pwrite, taken in turns in one run, over loopback TCP, a UNIX
 * stream socket and a UNIX sequenced-packet socket. Streams are received
 * with IOMEM_RX_FILL, so that each record is whole pages at a page
 * boundary; the table says how much was adopted.
 */
#include "bench.h"

#include <errno.h>
#include <iomem.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)
#define LEN (256 * MIB)
#define REC ((size_t)65536)
#define NBUFS 64

static void die(const char *what)
{
        fprintf(stderr, "bench_rx: %s: %s (%s)\n", what, strerror(errno), iomem_errormsg());
        exit(1);
}

enum transport { TCP, UNIX_STREAM, UNIX_SEQPACKET, NT };
static const char *const transport_name[NT] = { "loopback TCP", "UNIX stream", "UNIX seqpacket" };

/* A connected pair: [0] the receiver's end, [1] the sender's. */
static void connect_pair(enum transport t, int sv[2])
{
        if (t != TCP) {
                if (socketpair(AF_UNIX, (t == UNIX_STREAM ? SOCK_STREAM : SOCK_SEQPACKET) | SOCK_CLOEXEC, 0, sv))
                        die("socketpair");
                return;
        }
        int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof a;
        if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 1) ||
            getsockname(l, (struct sockaddr *)&a, &al))
                die("listen");
        sv[1] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (sv[1] < 0 || connect(sv[1], (struct sockaddr *)&a, sizeof a))
                die("connect");
        if ((sv[0] = accept4(l, NULL, NULL, SOCK_CLOEXEC)) < 0)
                die("accept");
        close(l);
}

static pid_t start_sender(int sock)
{
        pid_t pid = fork();
        if (pid < 0)
                die("fork");
        if (pid)
                return pid;
        static char rec[REC];
        memset(rec, 'r', sizeof rec);
        for (size_t sent = 0; sent < LEN; sent += REC)
                if (send(sock, rec, REC, 0) != (ssize_t)REC)
                        _exit(1);
        _exit(0);
}

struct result {
        double gibps;
        double adopted; /* share of the bytes adopted without a copy */
};

static struct result receive(enum transport t, struct iomem *f, bool rx_path)
{
        if (iomem_truncate(f, 0))
                die("truncate");
        struct iomem_stat before, after;
        if (iomem_stat(f, &before))
                die("stat");
        int sv[2];
        connect_pair(t, sv);
        struct iomem_rx *rx = NULL;
        if (rx_path && iomem_rx_new(&rx, f, sv[0], REC, NBUFS, t == UNIX_SEQPACKET ? 0 : IOMEM_RX_FILL))
                die("iomem_rx_new");
        static char heap[REC];
        double t0 = bench_now();
        pid_t pid = start_sender(sv[1]);
        close(sv[1]);
        size_t end = 0;
        for (;;) {
                ssize_t n;
                if (rx_path) {
                        void *b;
                        if ((n = iomem_rx_next(rx, &b, -1)) > 0 && iomem_rx_gift(rx, b, (size_t)n, end, 0))
                                die("iomem_rx_gift");
                } else if ((n = recv(sv[0], heap, sizeof heap, 0)) > 0 &&
                           iomem_pwrite(f, heap, (size_t)n, end) != n) {
                        die("iomem_pwrite");
                }
                if (n < 0)
                        die(rx_path ? "iomem_rx_next" : "recv");
                if (n == 0)
                        break;
                end += (size_t)n;
        }
        double secs = bench_now() - t0;
        int st;
        if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) || end != LEN)
                die("the sender");
        iomem_rx_delete(&rx);
        close(sv[0]);
        if (iomem_stat(f, &after))
                die("stat");
        return (struct result){ LEN / secs / (1 << 30),
                                (double)(after.gift_adopted - before.gift_adopted) / LEN };
}

int main(int argc, char **argv)
{
        struct bench_opts o = bench_parse(argc, argv);
        signal(SIGPIPE, SIG_IGN);
        struct iomem *f;
        if (iomem_open(&f, "memfd:bench-rx", IOMEM_RDWR | IOMEM_CREATE, NULL))
                die("open");
        struct bench_series rx[NT] = { 0 }, pw[NT] = { 0 }, adopted[NT] = { 0 };
        for (int r = 0; r < o.reps; r++) {
                for (int t = 0; t < NT; t++) {
                        struct result a = receive(t, f, true);
                        bench_add(&rx[t], a.gibps);
                        bench_add(&adopted[t], a.adopted * 100);
                        bench_add(&pw[t], receive(t, f, false).gibps);
                }
        }
        iomem_close(&f);
        if (o.json) {
                for (int t = 0; t < NT; t++)
                        bench_json("rx", transport_name[t], "rx_gift", bench_summarise(&rx[t]).median,
                                   "recv_pwrite", bench_summarise(&pw[t]).median, "ratio",
                                   bench_summarise(&rx[t]).median / bench_summarise(&pw[t]).median,
                                   "adopted_pct", bench_summarise(&adopted[t]).median, (const char *)NULL);
                return 0;
        }
        printf("### Receiving %zu MiB in %zu KiB records into a memfd object, GiB/s median (min-max) of %d runs\n\n",
               LEN / MIB, REC / 1024, o.reps);
        printf("| transport | iomem_rx_next + iomem_rx_gift (%d buffers) | recv + iomem_pwrite | ratio | "
               "bytes adopted, %% |\n|---|---|---|---|---|\n", NBUFS);
        for (int t = 0; t < NT; t++) {
                struct bench_summary a = bench_summarise(&rx[t]), b = bench_summarise(&pw[t]);
                printf("| %s | %s | %s | %.2fx | %.0f |\n", transport_name[t], bench_fmt(a, 2), bench_fmt(b, 2),
                       a.median / b.median, bench_summarise(&adopted[t]).median);
        }
        printf("\n");
        return 0;
}
