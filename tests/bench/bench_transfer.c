/* SPDX-License-Identifier: MIT */
/*
 * Transfer: 1 GiB from an object to a destination, iomem_sendfile against
 * the system's own copy paths, taken in turns (A B C ... A B C ...) in one
 * run, with one memcpy of 1 GiB between resident buffers as the limit.
 */
#include "bench.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <iomem.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define GIB ((size_t)1 << 30)
#define LEN GIB
#define RW_BLOCK (128 * 1024)
#define PIPE_SIZE (1 << 20)

static void die(const char *what)
{
        fprintf(stderr, "bench_transfer: %s: %s (%s)\n", what, strerror(errno), iomem_errormsg());
        exit(1);
}

/* ---- destinations ----------------------------------------------------------- */

enum dest_kind { D_TMPFS, D_DISK, D_NULL, D_PIPE, D_TCP, D_COUNT };
static const char *const dest_name[D_COUNT] = { "tmpfs file", "disk file", "/dev/null",
                                                 "pipe (drained)", "loopback TCP" };
static const char *const dest_path[D_COUNT] = { "/dev/shm/iomem-bench-dst",
                                                 "/var/tmp/iomem-bench-dst", "/dev/null", NULL, NULL };

/* A child that reads and discards, and says "done" after each LEN bytes. */
struct drain {
        int fd;     /* where the contenders write */
        int ack;    /* one byte per LEN drained */
        pid_t pid;
};

static void drain_loop(int in, int ack)
{
        static char buf[1 << 20];
        size_t got = 0;
        for (;;) {
                ssize_t n = read(in, buf, sizeof buf);
                if (n <= 0)
                        _exit(0);
                got += (size_t)n;
                while (got >= LEN) {
                        got -= LEN;
                        if (write(ack, "d", 1) != 1)
                                _exit(1);
                }
        }
}

static struct drain drain_start(enum dest_kind k)
{
        struct drain d;
        int ack[2];
        if (pipe(ack))
                die("pipe");
        int in, out;
        if (k == D_PIPE) {
                int p[2];
                if (pipe(p))
                        die("pipe");
                fcntl(p[1], F_SETPIPE_SZ, PIPE_SIZE);
                in = p[0];
                out = p[1];
        } else {
                int ls = socket(AF_INET, SOCK_STREAM, 0);
                struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
                socklen_t al = sizeof a;
                if (ls < 0 || bind(ls, (void *)&a, sizeof a) || listen(ls, 1) ||
                    getsockname(ls, (void *)&a, &al))
                        die("listen");
                out = socket(AF_INET, SOCK_STREAM, 0);
                if (connect(out, (void *)&a, sizeof a))
                        die("connect");
                in = accept(ls, NULL, NULL);
                close(ls);
        }
        d.pid = fork();
        if (d.pid == 0) {
                close(out);
                close(ack[0]);
                drain_loop(in, ack[1]);
        }
        close(in);
        close(ack[1]);
        d.fd = out;
        d.ack = ack[0];
        return d;
}

static void drain_wait(struct drain *d)
{
        char c;
        if (read(d->ack, &c, 1) != 1)
                die("drain");
}

static void drain_stop(struct drain *d)
{
        close(d->fd);
        close(d->ack);
        waitpid(d->pid, NULL, 0);
}

/* ---- contenders -------------------------------------------------------------- */

enum contender { C_IOMEM, C_CP, C_SENDFILE, C_SPLICE, C_RW, C_COUNT };
static const char *const contender_name[C_COUNT] = { "iomem_sendfile", "cp", "sendfile(2)",
                                                      "splice", "read/write 128K" };

struct source {
        const char *name;
        char path[64]; /* for cp: the file's own path (a memfd's in /proc) */
        struct iomem *f;
        int fd; /* the object's own descriptor: what the system tools read */
};

/*
 * Destination files are overwritten in place: their pages exist, so a run
 * measures the copy, not the allocation of fresh memory (which on a virtual
 * machine can cost a host page fault per page and swing runs twofold).
 * cp truncates before it writes, so its column includes that allocation.
 */
static int open_dest(enum dest_kind k, struct drain *d)
{
        if (k == D_PIPE || k == D_TCP)
                return d->fd;
        int fd = open(dest_path[k], O_WRONLY | O_CREAT, 0600);
        if (fd < 0)
                die(dest_path[k]);
        return fd;
}

static void close_dest(enum dest_kind k, int fd, struct drain *d)
{
        if (k == D_PIPE || k == D_TCP)
                drain_wait(d);
        else
                close(fd);
}

static void run_cp(const struct source *s, enum dest_kind k)
{
        pid_t pid = fork();
        if (pid == 0) {
                execlp("cp", "cp", s->path, dest_path[k], (char *)NULL);
                _exit(127);
        }
        int st;
        waitpid(pid, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st))
                die("cp");
}

static void run_sendfile(int in, int out)
{
        off_t off = 0;
        for (size_t left = LEN; left;) {
                ssize_t n = sendfile(out, in, &off, left);
                if (n <= 0)
                        die("sendfile");
                left -= (size_t)n;
        }
}

static void run_splice(int in, int out, enum dest_kind k)
{
        loff_t off = 0;
        if (k == D_PIPE) {
                for (size_t left = LEN; left;) {
                        ssize_t n = splice(in, &off, out, NULL, left, SPLICE_F_MOVE);
                        if (n <= 0)
                                die("splice");
                        left -= (size_t)n;
                }
                return;
        }
        int p[2];
        if (pipe(p))
                die("pipe");
        fcntl(p[1], F_SETPIPE_SZ, PIPE_SIZE);
        for (size_t left = LEN; left;) {
                ssize_t n = splice(in, &off, p[1], NULL, left < PIPE_SIZE ? left : PIPE_SIZE, SPLICE_F_MOVE);
                if (n <= 0)
                        die("splice in");
                for (ssize_t m = n; m;) {
                        ssize_t w = splice(p[0], NULL, out, NULL, (size_t)m, SPLICE_F_MOVE);
                        if (w <= 0)
                                die("splice out");
                        m -= w;
                }
                left -= (size_t)n;
        }
        close(p[0]);
        close(p[1]);
}

static void run_rw(int in, int out)
{
        static char buf[RW_BLOCK];
        for (size_t off = 0; off < LEN;) {
                ssize_t n = pread(in, buf, sizeof buf, (off_t)off);
                if (n <= 0)
                        die("pread");
                for (ssize_t w = 0; w < n;) {
                        ssize_t k = write(out, buf + w, (size_t)(n - w));
                        if (k <= 0)
                                die("write");
                        w += k;
                }
                off += (size_t)n;
        }
}

/* GiB/s of one run; -1 when the contender does not apply. */
static double run(enum contender c, const struct source *s, enum dest_kind k, struct drain *d)
{
        /* cp copies files: not into pipes or sockets. */
        if (c == C_CP && (k == D_PIPE || k == D_TCP))
                return -1;
        int out = open_dest(k, d);
        double t = bench_now();
        switch (c) {
        case C_IOMEM:
                if (iomem_sendfile(out, s->f, 0, LEN) != (ssize_t)LEN)
                        die("iomem_sendfile");
                break;
        case C_CP:
                close(out);
                run_cp(s, k);
                out = open(dest_path[k], O_RDONLY);
                break;
        case C_SENDFILE:
                run_sendfile(s->fd, out);
                break;
        case C_SPLICE:
                run_splice(s->fd, out, k);
                break;
        case C_RW:
                run_rw(s->fd, out);
                break;
        default:
                break;
        }
        close_dest(k, out, d);
        double secs = bench_now() - t;
        return (double)LEN / GIB / secs;
}

static double memcpy_limit(char *a, char *b)
{
        double t = bench_now();
        memcpy(b, a, LEN);
        double secs = bench_now() - t;
        if (b[LEN - 1] != a[LEN - 1])
                die("memcpy");
        return (double)LEN / GIB / secs;
}

/* Sources: objects of each backend holding LEN bytes of a pattern. A dax:
 * source is a plain file (on tmpfs or on the disk) read through the window.
 * A write-sealed memfd sends its pages into pipes and sockets by reference,
 * as sendfile and splice do. */
static const struct {
        const char *uri, *path;
        bool sealed;
} sources[] = {
        { "memfd:bench-src", NULL, false },
        { "memfd:bench-src-sealed", NULL, true },
        { "shm:iomem-bench-src", "/dev/shm/iomem-bench-src", false },
        { "dax:/dev/shm/iomem-bench-src-file", "/dev/shm/iomem-bench-src-file", false },
        { "dax:/var/tmp/iomem-bench-src-file", "/var/tmp/iomem-bench-src-file", false },
};

static struct source make_source(const char *uri, const char *path, bool sealed)
{
        struct source s = { .name = uri };
        struct iomem_opts *o;
        iomem_opts_new(&o);
        iomem_opts_set_size(o, LEN);
        if (iomem_open(&s.f, uri, IOMEM_RDWR | IOMEM_CREATE, o))
                die(uri);
        iomem_opts_delete(&o);
        static char block[1 << 20];
        for (size_t i = 0; i < sizeof block; i++)
                block[i] = (char)(i * 7 + 1);
        for (size_t off = 0; off < LEN; off += sizeof block)
                if (iomem_pwrite(s.f, block, sizeof block, off) != (ssize_t)sizeof block)
                        die("fill");
        if (sealed && iomem_seal(s.f, IOMEM_SEAL_WRITE))
                die("seal");
        s.fd = iomem_plain_fd(s.f);
        if (s.fd < 0)
                die("plain fd");
        if (path)
                snprintf(s.path, sizeof s.path, "%s", path);
        else /* cp, a child, reads the memfd as this process holds it */
                snprintf(s.path, sizeof s.path, "/proc/%d/fd/%d", (int)getpid(), s.fd);
        return s;
}

static void drop_source(struct source *s)
{
        iomem_close(&s->f);
        if (!strncmp(s->name, "shm:", 4))
                iomem_unlink(s->name);
        else if (!strncmp(s->name, "dax:", 4))
                unlink(s->path);
}

/* A destination file of LEN bytes, so that every run overwrites pages. */
static void make_dest(enum dest_kind k)
{
        if (k != D_TMPFS && k != D_DISK)
                return;
        static char block[1 << 20];
        int fd = open(dest_path[k], O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
                die(dest_path[k]);
        for (size_t off = 0; off < LEN; off += sizeof block)
                if (write(fd, block, sizeof block) != (ssize_t)sizeof block)
                        die(dest_path[k]);
        close(fd);
}

int main(int argc, char **argv)
{
        struct bench_opts o = bench_parse(argc, argv);
        signal(SIGPIPE, SIG_IGN);
        char *a = malloc(LEN), *b = malloc(LEN);
        if (!a || !b)
                die("malloc");
        memset(a, 1, LEN);
        memset(b, 2, LEN);
        struct bench_series limit = { 0 };

        if (!o.json)
                printf("### Transfer: 1 GiB, page cache warm, GiB/s median (min-max) of %d runs\n\n",
                       o.reps);
        for (size_t si = 0; si < sizeof sources / sizeof sources[0]; si++) {
                struct source s = make_source(sources[si].uri, sources[si].path, sources[si].sealed);
                if (!o.json) {
                        printf("Source `%s`%s\n\n| destination |", s.name,
                               sources[si].sealed ? ", sealed with IOMEM_SEAL_WRITE" : "");
                        for (int c = 0; c < C_COUNT; c++)
                                printf(" %s |", contender_name[c]);
                        printf(" iomem / best of cp, sendfile, splice |\n|---|");
                        for (int c = 0; c <= C_COUNT; c++)
                                printf("---|");
                        printf("\n");
                }
                for (int k = 0; k < D_COUNT; k++) {
                        struct drain d = { .fd = -1 };
                        if (k == D_PIPE || k == D_TCP)
                                d = drain_start((enum dest_kind)k);
                        make_dest((enum dest_kind)k);
                        struct bench_series ser[C_COUNT] = { 0 };
                        for (int c = 0; c < C_COUNT; c++) /* warm up every path once */
                                run((enum contender)c, &s, (enum dest_kind)k, &d);
                        for (int r = 0; r < o.reps; r++) {
                                for (int c = 0; c < C_COUNT; c++) {
                                        double v = run((enum contender)c, &s, (enum dest_kind)k, &d);
                                        if (v >= 0)
                                                bench_add(&ser[c], v);
                                }
                                if (si == 0 && k == 0)
                                        bench_add(&limit, memcpy_limit(a, b));
                        }
                        if (d.fd >= 0)
                                drain_stop(&d);
                        if (k == D_TMPFS || k == D_DISK)
                                unlink(dest_path[k]);
                        struct bench_summary sum[C_COUNT];
                        double best = 0;
                        for (int c = 0; c < C_COUNT; c++) {
                                sum[c] = bench_summarise(&ser[c]);
                                if ((c == C_CP || c == C_SENDFILE || c == C_SPLICE) && sum[c].median > best)
                                        best = sum[c].median;
                        }
                        double ratio = best > 0 ? sum[C_IOMEM].median / best : 0;
                        if (o.json) {
                                char row[96];
                                snprintf(row, sizeof row, "%s -> %s", s.name, dest_name[k]);
                                bench_json("transfer", row, "iomem", sum[C_IOMEM].median, "cp",
                                           ser[C_CP].n ? sum[C_CP].median : -1.0, "sendfile",
                                           sum[C_SENDFILE].median, "splice", sum[C_SPLICE].median,
                                           "rw128k", sum[C_RW].median, "ratio_vs_best", ratio,
                                           (const char *)NULL);
                                continue;
                        }
                        printf("| %s |", dest_name[k]);
                        for (int c = 0; c < C_COUNT; c++)
                                printf(" %s |", ser[c].n ? bench_fmt(sum[c], 2) : "n/a");
                        printf(" %.2fx |\n", ratio);
                }
                if (!o.json)
                        printf("\n");
                drop_source(&s);
        }
        struct bench_summary lim = bench_summarise(&limit);
        if (o.json)
                bench_json("transfer", "memcpy limit", "gibps", lim.median, (const char *)NULL);
        else
                printf("Limit: one memcpy of 1 GiB between resident buffers: %s GiB/s\n\n"
                       "Destination files are overwritten in place (cp truncates them first, so "
                       "its column also pays for fresh memory).\n"
                       "n/a: cp writes files only. cp reads a memfd through /proc/PID/fd.\n\n",
                       bench_fmt(lim, 2));
        free(a);
        free(b);
        return 0;
}
