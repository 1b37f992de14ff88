/* SPDX-License-Identifier: MIT */
/*
 * iomem_persist against libpmem2's pmem2_persist, side by side, on the
 * same range of one file on a DAX filesystem (tests/vm, scenario dax):
 *
 *   bench_persist DIR
 *
 * Each round stores one byte into every cache line of the range through
 * the program's mapping (the dax: window's chunk; libpmem2's own map of
 * the file), then makes the range durable; only the second step is timed.
 * Both must take the user-space path (a MAP_SYNC mapping flushed by cache
 * line), and the bytes must read back through pread: those are the
 * checks. The times are a benchmark, printed, never asserted; under TCG
 * the flush instructions are emulated, so the ratio says what the
 * libraries add around them.
 */
#include "guest.h"

#include <fcntl.h>
#include <iomem.h>
#include <libpmem2.h>
#include <stdint.h>
#include <sys/uio.h>
#include <time.h>

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define LINE 64
#define FILE_SIZE (2 * MIB)

static const char *dir;

static double now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void dirty(char *p, size_t len, unsigned round)
{
        for (size_t i = 0; i < len; i += LINE)
                p[i] = (char)(round + i / LINE);
}

static void bytes_read_back(int fd, size_t len, unsigned round)
{
        char *b = malloc(len);
        REQUIRE(b, "out of memory");
        REQUIRE(pread(fd, b, len, 0) == (ssize_t)len, "pread: %s", strerror(errno));
        for (size_t i = 0; i < len; i += LINE)
                REQUIRE(b[i] == (char)(round + i / LINE), "byte %zu differs", i);
        free(b);
}

static void side_by_side(const void *arg)
{
        (void)arg;
        char path[256], uri[300];
        snprintf(path, sizeof path, "%s/bench-persist.bin", dir);
        snprintf(uri, sizeof uri, "dax:%s", path);
        struct iomem *f = NULL;
        int r = iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL);
        REQUIRE(r == 0, "open %s: %s", uri, iomem_errormsg());
        REQUIRE(iomem_truncate(f, FILE_SIZE) == 0, "truncate: %s", iomem_errormsg());
        REQUIRE(iomem_acquire(f, 0, FILE_SIZE) == (ssize_t)FILE_SIZE, "acquire: %s", iomem_errormsg());
        struct iovec v;
        REQUIRE(iomem_retrieve(f, 0, FILE_SIZE, &v, 1) == 1, "retrieve: %s", iomem_errormsg());
        struct iomem_stat st;
        REQUIRE(iomem_stat(f, &st) == 0, "stat: %s", iomem_errormsg());
        REQUIRE(st.persist >= IOMEM_PERSIST_CLWB, "iomem_stat().persist is %u", st.persist);

        int fd = open(path, O_RDWR);
        REQUIRE(fd >= 0, "%s: %s", path, strerror(errno));
        struct pmem2_source *src;
        struct pmem2_config *cfg;
        struct pmem2_map *map;
        REQUIRE(pmem2_source_from_fd(&src, fd) == 0, "pmem2_source_from_fd: %s", pmem2_errormsg());
        REQUIRE(pmem2_config_new(&cfg) == 0, "pmem2_config_new: %s", pmem2_errormsg());
        REQUIRE(pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_PAGE) == 0,
                "%s", pmem2_errormsg());
        REQUIRE(pmem2_map_new(&map, cfg, src) == 0, "pmem2_map_new: %s", pmem2_errormsg());
        enum pmem2_granularity g = pmem2_map_get_store_granularity(map);
        REQUIRE(g == PMEM2_GRANULARITY_CACHE_LINE || g == PMEM2_GRANULARITY_BYTE,
                "libpmem2 maps with page granularity (%d): it would msync, not flush", (int)g);
        char *theirs = pmem2_map_get_address(map);
        pmem2_persist_fn persist = pmem2_get_persist_fn(map);

        static const size_t sizes[] = { 4 * KIB, 64 * KIB, 2 * MIB };
        char line[3][160];
        for (size_t k = 0; k < 3; k++) {
                size_t len = sizes[k];
                unsigned rounds = (unsigned)(64 * MIB / len);
                double ours = 0, pmem2 = 0;
                for (unsigned i = 0; i < rounds; i++) {
                        dirty(v.iov_base, len, i);
                        double t = now();
                        r = iomem_persist(f, 0, len);
                        ours += now() - t;
                        REQUIRE(r == 0, "iomem_persist: %s", iomem_errormsg());
                        dirty(theirs, len, i + 1);
                        t = now();
                        persist(theirs, len);
                        pmem2 += now() - t;
                }
                bytes_read_back(fd, len, rounds);
                snprintf(line[k], sizeof line[k], "%7zu KiB: iomem_persist %8.0f ns, pmem2_persist %8.0f ns: %.2fx",
                         len / KIB, ours / rounds * 1e9, pmem2 / rounds * 1e9, pmem2 / ours);
        }
        pmem2_map_delete(&map);
        pmem2_config_delete(&cfg);
        pmem2_source_delete(&src);
        close(fd);
        iomem_release(f, 0, FILE_SIZE);
        iomem_close(&f);
        unlink(path);
        for (size_t k = 0; k < 3; k++)
                guest_note("%s", line[k]);
        guest_end(GUEST_PASS, "both flush by cache line (iomem_stat().persist %u, libpmem2 granularity %d); "
                  "times above, pmem2's over ours (above 1: ours faster)", st.persist, (int)g);
}

int main(int argc, char **argv)
{
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (argc != 2) {
                fprintf(stderr, "usage: bench_persist DIR\n");
                return 2;
        }
        dir = argv[1];
        guest_run("dax: iomem_persist against libpmem2's pmem2_persist, side by side", side_by_side, NULL);
        return guest_status();
}
