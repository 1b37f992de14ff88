/* SPDX-License-Identifier: MIT */
/*
 * Asynchronous transfers: 1 GiB read from a file on disk into a memfd
 * object with iomem_aio_read and O_DIRECT at depths 1, 4, 16 and 64,
 * against pread with O_DIRECT into a heap buffer plus memcpy into the
 * object, and against buffered pread straight into the object; then 1 GiB
 * sent over loopback TCP with iomem_aio_send, with write() from borrowed
 * memory and with sendfile(2). Contenders take turns (A B C ... A B C ...)
 * in one run; GiB/s of wall time and CPU seconds per GiB (getrusage of the
 * process, io_uring's workers included).
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <iomem.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define GIB ((size_t)1 << 30)
#define LEN GIB
#define CHUNK ((size_t)1 << 20)
#define SEND_DEPTH 16

static void die(const char *what)
{
        fprintf(stderr, "bench_aio: %s: %s (%s)\n", what, strerror(errno), iomem_errormsg());
        exit(1);
}

struct sample {
        double gibps, cpu_per_gib;
};

struct timer {
        double t, cpu;
};

static struct timer start(void)
{
        return (struct timer){ bench_now(), bench_cpu_now() };
}

static struct sample stop(struct timer s)
{
        double secs = bench_now() - s.t, cpu = bench_cpu_now() - s.cpu;
        return (struct sample){ (double)LEN / GIB / secs, cpu / ((double)LEN / GIB) };
}

/* Queue len bytes in CHUNK requests with depth in flight; send or read. */
static unsigned long run_aio(struct iomem_aio *q, int fd, struct iomem *f, unsigned depth, bool send)
{
        size_t queued = 0, done = 0;
        unsigned inflight = 0;
        unsigned long copied = 0;
        struct iomem_aio_cqe cqe[64];
        while (done < LEN) {
                while (queued < LEN && inflight < depth) {
                        int r = send ? iomem_aio_send(q, fd, f, queued, CHUNK, queued)
                                     : iomem_aio_read(q, fd, queued, f, queued, CHUNK, queued);
                        if (r)
                                die("queue");
                        queued += CHUNK;
                        inflight++;
                }
                if (iomem_aio_submit(q) < 0)
                        die("submit");
                int n = iomem_aio_wait(q, cqe, 64, 1, -1);
                if (n < 0)
                        die("wait");
                for (int i = 0; i < n; i++) {
                        if (cqe[i].res != (ssize_t)CHUNK) {
                                errno = cqe[i].res < 0 ? (int)-cqe[i].res : EIO;
                                die("transfer");
                        }
                        copied += (cqe[i].flags & IOMEM_AIO_COPIED) != 0;
                }
                done += (size_t)n * CHUNK;
                inflight -= (unsigned)n;
        }
        return copied;
}

/* ---- reading a file ---------------------------------------------------------- */

enum rd { R_AIO1, R_AIO4, R_AIO16, R_AIO64, R_PREAD_COPY, R_PREAD, R_COUNT };
static const char *const rd_name[R_COUNT] = {
        "iomem_aio_read O_DIRECT, depth 1", "iomem_aio_read O_DIRECT, depth 4",
        "iomem_aio_read O_DIRECT, depth 16", "iomem_aio_read O_DIRECT, depth 64",
        "pread O_DIRECT to heap + memcpy", "pread buffered into the object",
};
static const unsigned rd_depth[4] = { 1, 4, 16, 64 };

struct reader {
        int direct, buffered;
        struct iomem *f;
        char *mem;  /* the object's memory (acquired, one piece) */
        char *heap; /* CHUNK bytes, aligned for O_DIRECT */
};

static struct sample read_once(struct reader *rd, enum rd c)
{
        struct timer t = start();
        if (c <= R_AIO64) {
                struct iomem_aio *q;
                if (iomem_aio_new(&q, rd_depth[c]))
                        die("aio_new");
                run_aio(q, rd->direct, rd->f, rd_depth[c], false);
                iomem_aio_delete(&q);
        } else {
                for (size_t off = 0; off < LEN; off += CHUNK) {
                        char *dst = c == R_PREAD ? rd->mem + off : rd->heap;
                        if (pread(c == R_PREAD ? rd->buffered : rd->direct, dst, CHUNK, (off_t)off) !=
                            (ssize_t)CHUNK)
                                die("pread");
                        if (c == R_PREAD_COPY)
                                memcpy(rd->mem + off, rd->heap, CHUNK);
                }
        }
        struct sample s = stop(t);
        if (memcmp(rd->mem + LEN - 8, "iomemend", 8))
                die("the object does not hold the file's last bytes");
        memset(rd->mem + LEN - 8, 0, 8);
        return s;
}

static void print_row(const char *name, const struct bench_series *g, const struct bench_series *c)
{
        printf("| %s | %s | %s |\n", name, bench_fmt(bench_summarise(g), 2),
               bench_fmt(bench_summarise(c), 3));
}

static void bench_read(struct bench_opts o, struct iomem *f, char *mem)
{
        char path[] = "/var/tmp/iomem-bench-aio-XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0)
                die(path);
        static char block[CHUNK];
        for (size_t i = 0; i < CHUNK; i++)
                block[i] = (char)(i * 7 + 1);
        for (size_t off = 0; off < LEN; off += CHUNK) {
                if (off + CHUNK == LEN)
                        memcpy(block + CHUNK - 8, "iomemend", 8);
                if (pwrite(fd, block, CHUNK, (off_t)off) != (ssize_t)CHUNK)
                        die("fill");
        }
        fsync(fd);
        struct reader rd = { .f = f, .mem = mem, .buffered = fd };
        rd.direct = open(path, O_RDONLY | O_DIRECT);
        int e = errno;
        unlink(path);
        if (!o.json)
                printf("### Reading 1 GiB from a file on disk into an object (memfd), median "
                       "(min-max) of %d runs\n\n| contender | GiB/s | CPU s per GiB |\n|---|---|---|\n",
                       o.reps);
        if (rd.direct < 0) {
                if (o.json)
                        bench_json("aio", "read: O_DIRECT refused", (const char *)NULL);
                else
                        printf("| O_DIRECT refused by the filesystem of /var/tmp (%s): no rows "
                               "| - | - |\n\n", strerror(e));
                close(fd);
                return;
        }
        if (posix_memalign((void **)&rd.heap, 4096, CHUNK))
                die("posix_memalign");
        struct bench_series g[R_COUNT] = { 0 }, c[R_COUNT] = { 0 };
        for (int k = 0; k < R_COUNT; k++) /* warm every path once */
                read_once(&rd, (enum rd)k);
        for (int r = 0; r < o.reps; r++)
                for (int k = 0; k < R_COUNT; k++) {
                        struct sample s = read_once(&rd, (enum rd)k);
                        bench_add(&g[k], s.gibps);
                        bench_add(&c[k], s.cpu_per_gib);
                }
        for (int k = 0; k < R_COUNT; k++) {
                if (o.json)
                        bench_json("aio", rd_name[k], "gibps", bench_summarise(&g[k]).median,
                                   "cpu_s_per_gib", bench_summarise(&c[k]).median, (const char *)NULL);
                else
                        print_row(rd_name[k], &g[k], &c[k]);
        }
        if (!o.json)
                printf("\nThe buffered pread reads the page cache (the file is cached after the "
                       "first run); the O_DIRECT rows read the device every time.\n\n");
        free(rd.heap);
        close(rd.direct);
        close(fd);
}

/* ---- sending over loopback TCP ------------------------------------------------ */

enum snd { S_AIO, S_WRITE, S_SENDFILE, S_COUNT };
static const char *const snd_name[S_COUNT] = { "iomem_aio_send, depth 16",
                                                "write() from borrowed memory", "sendfile(2)" };

/* A child that drains the connection and says "d" after each LEN bytes. */
struct drain {
        int fd, ack;
        pid_t pid;
};

static struct drain drain_start(void)
{
        int ack[2];
        if (pipe(ack))
                die("pipe");
        int ls = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t al = sizeof a;
        if (ls < 0 || bind(ls, (void *)&a, sizeof a) || listen(ls, 1) || getsockname(ls, (void *)&a, &al))
                die("listen");
        struct drain d = { .fd = socket(AF_INET, SOCK_STREAM, 0), .ack = ack[0] };
        if (connect(d.fd, (void *)&a, sizeof a))
                die("connect");
        int in = accept(ls, NULL, NULL);
        close(ls);
        d.pid = fork();
        if (d.pid == 0) {
                /* The sender's end must not stay open here, or the
                 * drain never sees the end of the stream. */
                close(d.fd);
                close(ack[0]);
                static char buf[1 << 20];
                size_t got = 0;
                for (ssize_t n; (n = read(in, buf, sizeof buf)) > 0;) {
                        for (got += (size_t)n; got >= LEN; got -= LEN)
                                if (write(ack[1], "d", 1) != 1)
                                        _exit(1);
                }
                _exit(0);
        }
        close(in);
        close(ack[1]);
        return d;
}

static struct sample send_once(struct drain *d, struct iomem *f, enum snd c, unsigned long *copied)
{
        struct timer t = start();
        if (c == S_AIO) {
                struct iomem_aio *q;
                if (iomem_aio_new(&q, SEND_DEPTH))
                        die("aio_new");
                *copied += run_aio(q, d->fd, f, SEND_DEPTH, true);
                iomem_aio_delete(&q);
        } else if (c == S_WRITE) {
                for (size_t off = 0; off < LEN; off += CHUNK) {
                        struct iovec v[16];
                        ssize_t n = iomem_borrow(f, off, CHUNK, v, 16);
                        if (n <= 0)
                                die("borrow");
                        for (ssize_t i = 0; i < n; i++)
                                for (size_t w = 0; w < v[i].iov_len;) {
                                        ssize_t k = write(d->fd, (char *)v[i].iov_base + w, v[i].iov_len - w);
                                        if (k <= 0)
                                                die("write");
                                        w += (size_t)k;
                                }
                }
        } else {
                off_t off = 0;
                for (size_t left = LEN; left;) {
                        ssize_t n = sendfile(d->fd, iomem_fd(f), &off, left);
                        if (n <= 0)
                                die("sendfile");
                        left -= (size_t)n;
                }
        }
        char ack;
        if (read(d->ack, &ack, 1) != 1)
                die("drain");
        return stop(t);
}

static void bench_send(struct bench_opts o, struct iomem *f)
{
        struct drain d = drain_start();
        struct bench_series g[S_COUNT] = { 0 }, c[S_COUNT] = { 0 };
        unsigned long copied = 0, warm = 0;
        for (int k = 0; k < S_COUNT; k++)
                send_once(&d, f, (enum snd)k, &warm);
        for (int r = 0; r < o.reps; r++)
                for (int k = 0; k < S_COUNT; k++) {
                        struct sample s = send_once(&d, f, (enum snd)k, &copied);
                        bench_add(&g[k], s.gibps);
                        bench_add(&c[k], s.cpu_per_gib);
                }
        close(d.fd);
        close(d.ack);
        waitpid(d.pid, NULL, 0);
        unsigned long requests = (unsigned long)o.reps * (LEN / CHUNK);
        if (o.json) {
                for (int k = 0; k < S_COUNT; k++)
                        bench_json("aio", snd_name[k], "gibps", bench_summarise(&g[k]).median,
                                   "cpu_s_per_gib", bench_summarise(&c[k]).median, (const char *)NULL);
                bench_json("aio", "send: copied", "copied", (double)copied, "requests",
                           (double)requests, (const char *)NULL);
                return;
        }
        printf("### Sending 1 GiB of an object (memfd) over loopback TCP, median (min-max) of %d "
               "runs\n\n| contender | GiB/s | CPU s per GiB |\n|---|---|---|\n", o.reps);
        for (int k = 0; k < S_COUNT; k++)
                print_row(snd_name[k], &g[k], &c[k]);
        printf("\nIOMEM_AIO_COPIED on %lu of %lu iomem_aio_send requests. CPU time is the "
               "sender's process only; the receiving child is not counted.\n\n",
               copied, requests);
}

int main(int argc, char **argv)
{
        struct bench_opts o = bench_parse(argc, argv);
        signal(SIGPIPE, SIG_IGN);
        struct iomem_aio *probe = NULL;
        if (iomem_aio_new(&probe, 1)) {
                if (!o.json)
                        printf("### Asynchronous transfers\n\nNot measured: %s\n\n", iomem_errormsg());
                return 0;
        }
        iomem_aio_delete(&probe);
        struct iomem_opts *opts;
        iomem_opts_new(&opts);
        iomem_opts_set_size(opts, LEN);
        struct iomem *f;
        if (iomem_open(&f, "memfd:bench-aio", IOMEM_RDWR | IOMEM_CREATE, opts))
                die("open");
        iomem_opts_delete(&opts);
        /* All of it acquired once, so that the contenders that copy by hand
         * have one piece of memory to copy into. */
        struct iovec v;
        if (iomem_acquire(f, 0, LEN) != (ssize_t)LEN || iomem_retrieve(f, 0, LEN, &v, 1) != 1)
                die("acquire");
        memset(v.iov_base, 0, LEN);
        bench_read(o, f, v.iov_base);
        bench_send(o, f);
        iomem_release(f, 0, LEN);
        iomem_close(&f);
        return 0;
}
