/* SPDX-License-Identifier: MIT */
/*
 * An object moved between two hosts: 1 GiB from one network namespace to
 * another over a veth pair (tests/two_hosts.h), three ways, taking turns
 * in one run:
 *   rma        iomem_export on the sender, iomem_remote_fetch into the
 *              receiver's object (libfabric's tcp provider);
 *   sendfile   iomem_sendfile of the object over a TCP socket, into a
 *              receiver that recv()s and iomem_pwrite()s;
 *   plain      sendfile(2) of a plain memfd over TCP, into a receiver that
 *              recv()s into a buffer it reuses (the system's own tools).
 * GiB/s of wall time as the receiver sees it, CPU seconds per GiB on both
 * sides (getrusage of each process: libfabric's and the export's threads
 * included, and the kernel's network work that runs in them), and, as
 * the machine's limit, memcpy of 1 GiB in the receiver.
 */
#include "bench.h"
#include "../two_hosts.h"

#include <arpa/inet.h>
#include <iomem.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>

#define GIB ((size_t)1 << 30)
#define LEN GIB
#define CHUNK ((size_t)1 << 20)
#define PORT 7877

enum method { RMA, SENDFILE, PLAIN, COPY, METHODS };
static const char *const method_name[METHODS] = {
        "RMA: iomem_export / iomem_remote_fetch",
        "iomem_sendfile / recv + iomem_pwrite",
        "sendfile(2) / recv (plain)",
        "memcpy of 1 GiB in the receiver (the memory's limit)",
};

static struct bench_opts opts;

static void die(const char *what)
{
        fprintf(stderr, "bench_fabric: %s: %s (%s)\n", what, strerror(errno), iomem_errormsg());
        exit(1);
}

static struct iomem *object(const char *label)
{
        struct iomem *f;
        char uri[64];
        snprintf(uri, sizeof uri, "memfd:%s", label);
        if (iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL))
                die(uri);
        return f;
}

/* ---- the sender ---------------------------------------------------------- */

static int sender(struct link *l, void *arg)
{
        (void)arg;
        struct iomem *f = object("bench-fabric-source");
        char *buf = malloc(CHUNK);
        int plain = memfd_create("bench-fabric-plain", MFD_CLOEXEC);
        if (!buf || plain < 0)
                die("setup");
        for (size_t off = 0; off < LEN; off += CHUNK) {
                for (size_t i = 0; i < CHUNK; i += 64)
                        buf[i] = (char)(off + i);
                if (iomem_pwrite(f, buf, CHUNK, off) != (ssize_t)CHUNK ||
                    pwrite(plain, buf, CHUNK, (off_t)off) != (ssize_t)CHUNK)
                        die("fill");
        }
        struct iomem_export *x;
        if (iomem_export(&x, f, 0, LEN, EXPORTER_IP ":0", 0))
                die("export");
        int lsock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(PORT) };
        inet_pton(AF_INET, EXPORTER_IP, &sa.sin_addr);
        setsockopt(lsock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(lsock, (struct sockaddr *)&sa, sizeof sa) || listen(lsock, 4))
                die("listen");
        char addr[64] = { 0 };
        snprintf(addr, sizeof addr, "%s", iomem_export_addr(x));
        if (say(l, addr, sizeof addr))
                die("say");
        for (int rep = 0; rep < opts.reps; rep++) {
                for (int m = 0; m < COPY; m++) {
                        int sock = m == RMA ? -1 : accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
                        char c;
                        if ((m != RMA && sock < 0) || hear(l, &c, 1))
                                die("go");
                        double cpu = bench_cpu_now();
                        if (m == SENDFILE && iomem_sendfile(sock, f, 0, LEN) != (ssize_t)LEN)
                                die("iomem_sendfile");
                        for (off_t off = 0; m == PLAIN && off < (off_t)LEN;)
                                if (sendfile(sock, plain, &off, LEN - (size_t)off) <= 0)
                                        die("sendfile");
                        if (hear(l, &c, 1)) /* the receiver has it all */
                                die("done");
                        cpu = bench_cpu_now() - cpu;
                        if (sock >= 0)
                                close(sock);
                        if (say(l, &cpu, sizeof cpu))
                                die("say");
                }
        }
        close(lsock);
        close(plain);
        free(buf);
        if (iomem_export_close(&x) || iomem_close(&f))
                die("close");
        return 0;
}

/* ---- the receiver -------------------------------------------------------- */

static int connect_to_sender(void)
{
        int sock = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(PORT) };
        inet_pton(AF_INET, EXPORTER_IP, &sa.sin_addr);
        if (sock < 0 || connect(sock, (struct sockaddr *)&sa, sizeof sa))
                die("connect");
        return sock;
}

/* All LEN bytes from sock, into g with iomem_pwrite, or into buf alone. */
static void receive(int sock, char *buf, struct iomem *g)
{
        for (size_t off = 0; off < LEN;) {
                ssize_t n = recv(sock, buf, CHUNK, 0);
                if (n <= 0)
                        die("recv");
                if (g && iomem_pwrite(g, buf, (size_t)n, off) != n)
                        die("iomem_pwrite");
                off += (size_t)n;
        }
}

static void print_table(struct bench_series gibs[METHODS], struct bench_series tx[METHODS],
                        struct bench_series rx[METHODS])
{
        double plain = bench_summarise(&gibs[PLAIN]).median;
        if (opts.json) {
                for (int m = 0; m < METHODS; m++)
                        bench_json("fabric", method_name[m], "gib_per_s", bench_summarise(&gibs[m]).median,
                                   "vs_plain", bench_summarise(&gibs[m]).median / plain, "sender_cpu_s_per_gib",
                                   bench_summarise(&tx[m]).median, "receiver_cpu_s_per_gib",
                                   bench_summarise(&rx[m]).median, (const char *)NULL);
                return;
        }
        printf("### 1 GiB between two network namespaces (veth, TCP), median (range) of %d\n\n", opts.reps);
        printf("| way | GiB/s | vs plain | sender CPU s/GiB | receiver CPU s/GiB |\n|---|---|---|---|---|\n");
        for (int m = 0; m < METHODS; m++) {
                struct bench_summary g = bench_summarise(&gibs[m]);
                printf("| %s | %s | %.2fx | ", method_name[m], bench_fmt(g, 2), g.median / plain);
                if (m == COPY)
                        printf("- | %s |\n", bench_fmt(bench_summarise(&rx[m]), 3));
                else
                        printf("%s | %s |\n", bench_fmt(bench_summarise(&tx[m]), 3),
                               bench_fmt(bench_summarise(&rx[m]), 3));
        }
        printf("\n");
}

static int receiver(struct link *l, void *arg)
{
        (void)arg;
        char addr[64];
        if (hear(l, addr, sizeof addr))
                die("no address");
        struct iomem *g = object("bench-fabric-copy");
        struct iomem_remote *r;
        if (iomem_remote_open(&r, addr))
                die("remote");
        char *buf = malloc(CHUNK), *a = malloc(LEN), *b = malloc(LEN);
        if (!buf || !a || !b)
                die("malloc");
        memset(a, 1, LEN);
        memset(b, 2, LEN);
        /* Every way lands in memory already there: the object's pages are
         * made by one fetch before the clock runs. */
        if (iomem_remote_fetch(r, g) != (ssize_t)LEN)
                die("iomem_remote_fetch");
        static struct bench_series gibs[METHODS], tx[METHODS], rx[METHODS];
        for (int rep = 0; rep < opts.reps; rep++) {
                for (int m = 0; m < METHODS; m++) {
                        int sock = m == SENDFILE || m == PLAIN ? connect_to_sender() : -1;
                        if (m != COPY && say(l, "g", 1))
                                die("say");
                        double t = bench_now(), cpu = bench_cpu_now(), sender_cpu = 0;
                        if (m == RMA && iomem_remote_fetch(r, g) != (ssize_t)LEN)
                                die("iomem_remote_fetch");
                        if (m == SENDFILE || m == PLAIN)
                                receive(sock, buf, m == SENDFILE ? g : NULL);
                        if (m == COPY)
                                memcpy(b, a, LEN);
                        t = bench_now() - t;
                        cpu = bench_cpu_now() - cpu;
                        if (m != COPY && (say(l, "d", 1) || hear(l, &sender_cpu, sizeof sender_cpu)))
                                die("done");
                        if (sock >= 0)
                                close(sock);
                        bench_add(&gibs[m], (double)LEN / GIB / t);
                        bench_add(&tx[m], sender_cpu / ((double)LEN / GIB));
                        bench_add(&rx[m], cpu / ((double)LEN / GIB));
                }
        }
        print_table(gibs, tx, rx);
        free(buf);
        free(a);
        free(b);
        if (iomem_remote_close(&r) || iomem_close(&g))
                die("close");
        return 0;
}

int main(int argc, char **argv)
{
        opts = bench_parse(argc, argv);
        int status[2];
        int r = two_hosts(sender, receiver, NULL, 0, status);
        if (r == TWO_HOSTS_SKIP)
                return 0; /* it said why */
        if (r || status[0] || status[1]) {
                fprintf(stderr, "bench_fabric: the sender ended with %d, the receiver with %d\n", status[0],
                        status[1]);
                return 1;
        }
        return 0;
}
