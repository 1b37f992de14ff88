/* SPDX-License-Identifier: MIT */
/*
 * devdax: objects on a real device-DAX device (tests/vm, scenario
 * "devdax": the emulated NVDIMM's namespace in devdax mode), written
 * against the public API:
 *
 *   guest_devdax run DEVICE      the checks: the device's geometry and
 *                                fixed size, two processes sharing bytes,
 *                                pins and the I/O lock (a killed holder's
 *                                reclaimed), descriptors passed with
 *                                iomem_send, and a program that maps the
 *                                device without the library
 *   guest_devdax verify DEVICE   a later process finds what run wrote
 */
#include "guest.h"

#include <fcntl.h>
#include <iomem.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>

#define SEED_SHARED 7
#define SEED_RAW 8

static char uri[256];
static const char *device;

static uint8_t pattern(uint64_t x, uint64_t seed)
{
        uint64_t w = ((x >> 3) + seed) * UINT64_C(0x9e3779b97f4a7c15);
        w ^= w >> 29;
        return (uint8_t)(w >> (8 * (x & 7)));
}

/* The number in the device's sysfs attribute name. */
static uint64_t sysfs_number(const char *name)
{
        struct stat st;
        REQUIRE(stat(device, &st) == 0, "%s", strerror(errno));
        char path[128];
        snprintf(path, sizeof path, "/sys/dev/char/%u:%u/%s", major(st.st_rdev),
                 minor(st.st_rdev), name);
        FILE *fp = fopen(path, "r");
        REQUIRE(fp, "%s: %s", path, strerror(errno));
        unsigned long long v = 0;
        REQUIRE(fscanf(fp, "%llu", &v) == 1, "%s holds no number", path);
        fclose(fp);
        return v;
}

static struct iomem *open_device(unsigned flags)
{
        struct iomem *f = NULL;
        int r = iomem_open(&f, uri, flags, NULL);
        REQUIRE(r == 0, "iomem_open(%s) = %d: %s", uri, r, iomem_errormsg());
        return f;
}

static size_t page_of(struct iomem *f)
{
        struct iomem_stat st;
        REQUIRE(iomem_stat(f, &st) == 0, "%s", iomem_errormsg());
        return st.page_size;
}

static void check_geometry(const void *arg)
{
        (void)arg;
        struct iomem *f = open_device(IOMEM_RDWR);
        struct iomem_stat st;
        REQUIRE(iomem_stat(f, &st) == 0, "%s", iomem_errormsg());
        uint64_t size = sysfs_number("size"), align = sysfs_number("align");
        REQUIRE(st.size == size, "size %zu, sysfs says %llu", st.size, (unsigned long long)size);
        REQUIRE(st.page_size == align, "page size %zu, alignment %llu", st.page_size,
                (unsigned long long)align);
        REQUIRE(st.dax == 1 && (st.caps & IOMEM_CAP_DAX), "dax %d caps %#x", st.dax, st.caps);
        REQUIRE(!strcmp(st.backend, "devdax"), "backend %s", st.backend);
        size_t ps = st.page_size;
        REQUIRE(iomem_truncate(f, size) == 0, "%s", iomem_errormsg());
        int r = iomem_truncate(f, size + ps);
        REQUIRE(r == -ENOSPC, "truncate past the device = %d", r);
        r = iomem_truncate(f, size - ps);
        REQUIRE(r == -ENOTSUP, "truncate below the device = %d", r);
        char buf[64] = { 0 };
        ssize_t w = iomem_pwrite(f, buf, sizeof buf, size - 10);
        REQUIRE(w == -ENOSPC, "pwrite past the device = %zd", w);
        REQUIRE(iomem_unlink(uri) == -ENOTSUP, "unlink of a device");
        iomem_close(&f);
        guest_end(GUEST_PASS, "%llu bytes in %zu KiB pages, dax = 1; size changes refused "
                  "(-ENOSPC past it, -ENOTSUP below)", (unsigned long long)size, ps >> 10);
}

static void not_a_device(const void *arg)
{
        (void)arg;
        struct iomem *f = NULL;
        int fd = open("/tmp/plain", O_CREAT | O_RDWR, 0600);
        REQUIRE(fd >= 0, "%s", strerror(errno));
        close(fd);
        int r = iomem_open(&f, "devdax:/tmp/plain", IOMEM_RDWR, NULL);
        REQUIRE(r == -EINVAL && strstr(iomem_errormsg(), "character device"), "%d: %s", r,
                iomem_errormsg());
        r = iomem_open(&f, "devdax:/dev/null", IOMEM_RDWR, NULL);
        REQUIRE(r == -EINVAL && strstr(iomem_errormsg(), "not device DAX"), "%d: %s", r,
                iomem_errormsg());
        r = iomem_open(&f, "devdax:/dev/no-such-dax", IOMEM_RDWR, NULL);
        REQUIRE(r == -ENOENT, "%d: %s", r, iomem_errormsg());
        guest_end(GUEST_PASS, "a file, /dev/null and a missing path are refused");
}

/* One byte through a pipe, to step two processes. */
static void say(int fd, char c)
{
        REQUIRE(write(fd, &c, 1) == 1, "%s", strerror(errno));
}

static char hear(int fd)
{
        char c = 0;
        REQUIRE(read(fd, &c, 1) == 1, "the other process ended first");
        return c;
}

/* The child's part: pin [0, 2 pages), fill them and say so; then take
 * the write lock when told ('L'), say so, and wait to be killed. */
static void pin_and_fill(int tell, int wait_for)
{
        struct iomem *g = open_device(IOMEM_RDWR);
        size_t ps = page_of(g);
        REQUIRE(iomem_acquire(g, 0, 2 * ps) == (ssize_t)(2 * ps), "%s", iomem_errormsg());
        struct iovec v[4];
        ssize_t n = iomem_retrieve(g, 0, 2 * ps, v, 4);
        REQUIRE(n >= 1, "%s", iomem_errormsg());
        uint64_t at = 0;
        for (ssize_t i = 0; i < n; i++)
                for (size_t k = 0; k < v[i].iov_len; k++, at++)
                        ((uint8_t *)v[i].iov_base)[k] = pattern(at, SEED_SHARED);
        say(tell, 'R');
        REQUIRE(hear(wait_for) == 'L', "no order to lock");
        REQUIRE(iomem_wrlock(g) == 0, "%s", iomem_errormsg());
        say(tell, 'K');
        hear(wait_for);
        _exit(0);
}

static void two_processes(const void *arg)
{
        (void)arg;
        struct iomem *f = open_device(IOMEM_RDWR);
        size_t ps = page_of(f);
        int up[2], down[2];
        REQUIRE(pipe(up) == 0 && pipe(down) == 0, "%s", strerror(errno));
        pid_t pid = fork();
        REQUIRE(pid >= 0, "%s", strerror(errno));
        if (pid == 0)
                pin_and_fill(up[1], down[0]);
        REQUIRE(hear(up[0]) == 'R', "the child did not get ready");
        /* Its bytes, seen through another handle and process. */
        struct iovec v[4];
        ssize_t n = iomem_borrow(f, 0, 2 * ps, v, 4);
        REQUIRE(n >= 1, "%s", iomem_errormsg());
        uint64_t at = 0;
        for (ssize_t i = 0; i < n; i++)
                for (size_t k = 0; k < v[i].iov_len; k++, at++)
                        REQUIRE(((uint8_t *)v[i].iov_base)[k] == pattern(at, SEED_SHARED),
                                "byte %llu differs", (unsigned long long)at);
        /* Its pins keep this process's gift away. */
        char *buf = malloc(ps);
        REQUIRE(buf, "out of memory");
        memset(buf, 0x5a, ps);
        struct iovec g = { buf, ps };
        ssize_t r = iomem_gift(f, 0, ps, &g, 1, 0);
        REQUIRE(r == -EBUSY, "gift over the other process's pin = %zd", r);
        r = iomem_gift(f, 2 * ps, ps, &g, 1, 0);
        REQUIRE(r == 1, "gift beside it = %zd: %s", r, iomem_errormsg());
        /* It takes the write lock and is killed: the lock and the pins
         * come back. */
        say(down[1], 'L');
        REQUIRE(hear(up[0]) == 'K', "the child did not lock");
        kill(pid, SIGKILL);
        int st;
        REQUIRE(waitpid(pid, &st, 0) == pid && WIFSIGNALED(st), "the child was not killed");
        REQUIRE(iomem_rdlock(f) == 0, "%s", iomem_errormsg());
        REQUIRE(iomem_unlock(f) == 0, "%s", iomem_errormsg());
        memset(buf, 0, ps);
        r = iomem_pwrite(f, buf, ps, 3 * ps); /* clean the page the raw check uses */
        REQUIRE(r == (ssize_t)ps, "%s", iomem_errormsg());
        r = iomem_gift(f, ps, ps, &g, 1, 0);
        REQUIRE(r == 1, "gift once the pinner died = %zd: %s", r, iomem_errormsg());
        /* Put the pattern back for the checks that follow. */
        for (size_t k = 0; k < ps; k++)
                buf[k] = (char)pattern(ps + k, SEED_SHARED);
        REQUIRE(iomem_pwrite(f, buf, ps, ps) == (ssize_t)ps, "%s", iomem_errormsg());
        free(buf);
        iomem_close(&f);
        guest_end(GUEST_PASS, "bytes, pins (-EBUSY for the other's gift) and the write lock "
                  "shared; a killed holder's lock and pins reclaimed");
}

static void passed_descriptors(const void *arg)
{
        (void)arg;
        struct iomem *f = open_device(IOMEM_RDWR);
        size_t ps = page_of(f);
        int sv[2], done[2];
        REQUIRE(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 && pipe(done) == 0, "%s",
                strerror(errno));
        pid_t pid = fork();
        REQUIRE(pid >= 0, "%s", strerror(errno));
        if (pid == 0) {
                struct iomem *g = NULL;
                REQUIRE(iomem_recv(sv[1], &g, IOMEM_RDWR) == 0, "%s", iomem_errormsg());
                REQUIRE(iomem_acquire(g, 0, ps) == (ssize_t)ps, "%s", iomem_errormsg());
                say(sv[1], 'R');
                hear(done[0]);
                _exit(0);
        }
        REQUIRE(iomem_send(sv[0], f) == 0, "%s", iomem_errormsg());
        REQUIRE(hear(sv[0]) == 'R', "the child did not get ready");
        char buf[64] = { 0 };
        struct iovec g = { buf, sizeof buf };
        ssize_t r = iomem_gift(f, 0, sizeof buf, &g, 1, 0);
        say(done[1], 'Q');
        int st;
        REQUIRE(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "the receiving child failed");
        REQUIRE(r == -EBUSY, "gift over the receiver's pin = %zd", r);
        iomem_close(&f);
        guest_end(GUEST_PASS, "a handle received with iomem_recv pins for everyone");
}

/* The device is the media: iomem_persist writes the cache lines back from
 * user space, with no system call, also after an iomem_pwrite (a copy into
 * the mapping here). Pages 4 to 7 of the device, which no other check uses. */
static void persisted(const void *arg)
{
        (void)arg;
        struct iomem *f = open_device(IOMEM_RDWR);
        size_t ps = page_of(f);
        struct iomem_stat st;
        REQUIRE(iomem_stat(f, &st) == 0, "%s", iomem_errormsg());
        REQUIRE(st.persist >= IOMEM_PERSIST_CLWB && st.persist <= IOMEM_PERSIST_CLFLUSH,
                "iomem_stat().persist is %u", st.persist);
        ssize_t a = iomem_acquire(f, 4 * ps, 4 * ps);
        REQUIRE(a == (ssize_t)(4 * ps), "acquire: %zd %s", a, iomem_errormsg());
        struct iovec v;
        REQUIRE(iomem_retrieve(f, 4 * ps, 4 * ps, &v, 1) == 1, "retrieve: %s", iomem_errormsg());
        int r = guest_persist_without_syscalls(f, 4 * ps, v.iov_base, 4 * ps, false);
        REQUIRE(r == 0, "persist under a seccomp filter that allows none: %d (-1: killed for a system call)", r);
        r = guest_persist_without_syscalls(f, 4 * ps, v.iov_base, 4 * ps, true);
        REQUIRE(r == 0, "persist after pwrite under a seccomp filter that allows none: %d", r);
        iomem_release(f, 4 * ps, 4 * ps);
        iomem_close(&f);
        guest_end(GUEST_PASS, "iomem_stat().persist %u; %zu bytes persisted without a system call, "
                  "after a store and after a pwrite", st.persist, 4 * ps);
}

/* A program that does not use the library: the device's own mapping. */
static void without_the_library(const void *arg)
{
        (void)arg;
        struct iomem *f = open_device(IOMEM_RDWR);
        size_t ps = page_of(f);
        int fd = open(device, O_RDWR | O_CLOEXEC);
        REQUIRE(fd >= 0, "%s", strerror(errno));
        uint8_t *p = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        REQUIRE(p != MAP_FAILED, "mmap of %s: %s", device, strerror(errno));
        for (size_t x = 0; x < 2 * ps; x++)
                REQUIRE(p[x] == pattern(x, SEED_SHARED), "byte %zu differs", x);
        for (size_t x = 3 * ps; x < 4 * ps; x++)
                p[x] = pattern(x, SEED_RAW);
        uint8_t *back = malloc(ps);
        REQUIRE(back, "out of memory");
        REQUIRE(iomem_pread(f, back, ps, 3 * ps) == (ssize_t)ps, "%s", iomem_errormsg());
        for (size_t k = 0; k < ps; k++)
                REQUIRE(back[k] == pattern(3 * ps + k, SEED_RAW), "byte %zu differs", 3 * ps + k);
        free(back);
        munmap(p, 4 * ps);
        close(fd);
        iomem_close(&f);
        guest_end(GUEST_PASS, "its own mapping of %s holds the object's bytes at their offsets, "
                  "and the object reads what it wrote", device);
}

static void verify(const void *arg)
{
        (void)arg;
        struct iomem *f = open_device(IOMEM_RDONLY);
        size_t ps = page_of(f);
        uint8_t *buf = malloc(4 * ps);
        REQUIRE(buf, "out of memory");
        REQUIRE(iomem_pread(f, buf, 4 * ps, 0) == (ssize_t)(4 * ps), "%s", iomem_errormsg());
        for (size_t x = 0; x < 2 * ps; x++)
                REQUIRE(buf[x] == pattern(x, SEED_SHARED), "byte %zu differs", x);
        for (size_t x = 3 * ps; x < 4 * ps; x++)
                REQUIRE(buf[x] == pattern(x, SEED_RAW), "byte %zu differs", x);
        free(buf);
        iomem_close(&f);
        guest_end(GUEST_PASS, "a new process reads what earlier ones wrote");
}

int main(int argc, char **argv)
{
        if (argc != 3 || (strcmp(argv[1], "run") && strcmp(argv[1], "verify"))) {
                fprintf(stderr, "usage: %s run|verify DEVICE\n", argv[0]);
                return 2;
        }
        device = argv[2];
        snprintf(uri, sizeof uri, "devdax:%s", device);
        if (!strcmp(argv[1], "verify")) {
                guest_run("devdax: a later process", verify, NULL);
                return guest_status();
        }
        guest_run("devdax: geometry and fixed size", check_geometry, NULL);
        guest_run("devdax: what is not a device", not_a_device, NULL);
        guest_run("devdax: two processes", two_processes, NULL);
        guest_run("devdax: descriptors passed", passed_descriptors, NULL);
        guest_run("devdax: without the library", without_the_library, NULL);
        guest_run("devdax: iomem_persist without system calls", persisted, NULL);
        return guest_status();
}
