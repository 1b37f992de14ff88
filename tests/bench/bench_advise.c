/* SPDX-License-Identifier: MIT */
/*
 * Advice: a sequential read of a file through a dax: window, with and
 * without iomem_advise(MADV_WILLNEED) a few chunks ahead of the reader,
 * against read(2) of the same file, taken in turns in one run. The file is
 * on the disk (/var/tmp) and out of the page cache before every run
 * (written back, then dropped with POSIX_FADV_DONTNEED), so the read
 * waits for the device unless something read ahead.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <iomem.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB ((size_t)1 << 20)
#define LEN (512 * MIB)
#define CHUNK (2 * MIB)
#define WINDOW (64 * MIB)
#define AHEAD (8 * CHUNK) /* a reader advises the next AHEAD as it starts on one */
#define PATH "/var/tmp/iomem-bench-advise"

static void die(const char *what)
{
        fprintf(stderr, "bench_advise: %s: %s (%s)\n", what, strerror(errno), iomem_errormsg());
        exit(1);
}

static void drop_cache(void)
{
        int fd = open(PATH, O_RDONLY);
        if (fd < 0 || fdatasync(fd) || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED))
                die("dropping the file's cache");
        close(fd);
}

/* The sum of every 8-byte word of n bytes: the reader touches them all. */
static uint64_t sum(const void *p, size_t n)
{
        const uint64_t *w = p;
        uint64_t s = 0;
        for (size_t i = 0; i < n / 8; i++)
                s += w[i];
        return s;
}

static uint64_t checksum;

/* GiB/s of a sequential read through the window, borrowing chunk by chunk. */
static double read_through_window(struct iomem_window *w, bool advise)
{
        struct iomem_opts *o;
        struct iomem *f;
        if (iomem_opts_new(&o) || iomem_opts_set_window(o, w) ||
            iomem_open(&f, "dax:" PATH, IOMEM_RDONLY, o))
                die("open");
        iomem_opts_delete(&o);
        uint64_t s = 0;
        double t = bench_now();
        for (size_t off = 0; off < LEN; off += CHUNK) {
                /* Once per AHEAD, for the AHEAD after the one being read. */
                if (advise && off % AHEAD == 0 && iomem_advise(f, off + AHEAD, AHEAD, MADV_WILLNEED))
                        die("advise");
                struct iovec v[2];
                ssize_t n = iomem_borrow(f, off, CHUNK, v, 2);
                if (n < 1)
                        die("borrow");
                for (ssize_t i = 0; i < n; i++)
                        s += sum(v[i].iov_base, v[i].iov_len);
        }
        double secs = bench_now() - t;
        iomem_close(&f);
        if (checksum && s != checksum)
                die("the bytes read differ");
        checksum = s;
        return (double)LEN / (1 << 30) / secs;
}

/* GiB/s of read(2) in chunks into one buffer, summed alike. */
static double read_syscall(void)
{
        static char buf[CHUNK];
        int fd = open(PATH, O_RDONLY);
        if (fd < 0)
                die("open");
        uint64_t s = 0;
        double t = bench_now();
        for (size_t off = 0; off < LEN;) {
                ssize_t n = read(fd, buf, sizeof buf);
                if (n <= 0)
                        die("read");
                s += sum(buf, (size_t)n);
                off += (size_t)n;
        }
        double secs = bench_now() - t;
        close(fd);
        if (s != checksum)
                die("read(2) read other bytes");
        return (double)LEN / (1 << 30) / secs;
}

int main(int argc, char **argv)
{
        struct bench_opts o = bench_parse(argc, argv);
        int fd = open(PATH, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd < 0)
                die(PATH);
        static uint64_t block[MIB / 8];
        for (size_t off = 0; off < LEN; off += sizeof block) {
                for (size_t i = 0; i < MIB / 8; i++)
                        block[i] = (off + i * 8) * 0x9e3779b97f4a7c15u;
                if (write(fd, block, sizeof block) != (ssize_t)sizeof block)
                        die("write");
        }
        close(fd);
        struct iomem_window *w;
        if (iomem_window_new(&w, WINDOW, CHUNK))
                die("window");
        enum { PLAIN, ADVISED, SYSCALL, N };
        struct bench_series ser[N] = { 0 };
        for (int r = 0; r < o.reps; r++) {
                drop_cache();
                bench_add(&ser[PLAIN], read_through_window(w, false));
                drop_cache();
                bench_add(&ser[ADVISED], read_through_window(w, true));
                drop_cache();
                bench_add(&ser[SYSCALL], read_syscall());
        }
        iomem_window_delete(&w);
        unlink(PATH);
        struct bench_summary s[N];
        for (int i = 0; i < N; i++)
                s[i] = bench_summarise(&ser[i]);
        if (o.json) {
                bench_json("advise", "sequential read, cold", "borrow", s[PLAIN].median, "borrow_willneed",
                           s[ADVISED].median, "read", s[SYSCALL].median, "ratio_willneed",
                           s[ADVISED].median / s[PLAIN].median, (const char *)NULL);
                return 0;
        }
        printf("### Advice: sequential read of a %zu MiB disk file through a dax: window of %zu MiB, "
               "page cache cold, GiB/s median (min-max) of %d runs\n\n",
               (size_t)LEN / MIB, (size_t)WINDOW / MIB, o.reps);
        printf("| borrow chunk by chunk | the same, MADV_WILLNEED %zu MiB ahead | read(2) of %zu MiB | "
               "WILLNEED / without | WILLNEED / read(2) |\n|---|---|---|---|---|\n",
               (size_t)AHEAD / MIB, (size_t)CHUNK / MIB);
        printf("| %s | %s | %s | %.2fx | %.2fx |\n\n", bench_fmt(s[PLAIN], 2), bench_fmt(s[ADVISED], 2),
               bench_fmt(s[SYSCALL], 2), s[ADVISED].median / s[PLAIN].median,
               s[ADVISED].median / s[SYSCALL].median);
        return 0;
}
