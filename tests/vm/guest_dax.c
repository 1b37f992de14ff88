/* SPDX-License-Identifier: MIT */
/*
 * dax: objects on a real DAX filesystem and on a real virtio-fs mount
 * (tests/vm, scenario "dax"), written against the public API:
 *
 *   guest_dax run DIR dax|virtiofs   the checks, in a directory on ext4
 *                                    mounted dax=always on fsdax pmem, or
 *                                    on virtio-fs (QEMU 7.2: no DAX window)
 *   guest_dax make DIR               (host) the file the guest reads
 *   guest_dax verify DIR NAME        the file the guest wrote, read with
 *                                    pread: check NAME passes or fails
 *
 * On DAX the object must report dax = 1 and IOMEM_CAP_DAX, and its window
 * must map chunks with MAP_SYNC (VmFlags "sf" in /proc/self/smaps); on
 * virtio-fs it must name virtio-fs in its messages, report dax = 0 and map
 * the page cache. On both, acquire, retrieve, borrow, pwrite, truncate and
 * gift work and the bytes end up in the file.
 */
#include "guest.h"

#include <fcntl.h>
#include <iomem.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#define FUSE_SUPER_MAGIC 0x65735546

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

/* The file the guest writes: retrieve fills 8 MiB with one pattern,
 * pwrite and gift put others in two places, truncate cuts it. */
#define GUEST_FILE "written-by-guest.bin"
#define FIRST_SIZE (8 * MIB)
#define FINAL_SIZE (7 * MIB + 123)
#define PW_OFF (6 * MIB + 100)
#define PW_LEN 1000
#define GIFT_OFF (3 * MIB)
#define GIFT_LEN (8 * KIB)
#define SEED_RETRIEVE 11
#define SEED_PWRITE 22
#define SEED_GIFT 33
/* The file the host writes before boot (virtio-fs). */
#define HOST_FILE "written-by-host.bin"
#define HOST_SIZE (3 * MIB + 7)
#define SEED_HOST 44

struct where {
        const char *dir;
        bool dax; /* else virtio-fs */
};

static uint8_t pattern(uint64_t x, uint64_t seed)
{
        uint64_t w = ((x >> 3) + seed) * UINT64_C(0x9e3779b97f4a7c15);
        w ^= w >> 29;
        return (uint8_t)(w >> (8 * (x & 7)));
}

static uint8_t guest_byte(uint64_t x)
{
        if (x >= PW_OFF && x < PW_OFF + PW_LEN)
                return pattern(x, SEED_PWRITE);
        if (x >= GIFT_OFF && x < GIFT_OFF + GIFT_LEN)
                return pattern(x, SEED_GIFT);
        return pattern(x, SEED_RETRIEVE);
}

static void fill(uint8_t *p, uint64_t off, size_t len, uint64_t seed)
{
        for (size_t i = 0; i < len; i++)
                p[i] = pattern(off + i, seed);
}

/* The first offset in [off, off+len) where p differs from seed's pattern,
 * or -1. */
static long long mismatch(const uint8_t *p, uint64_t off, size_t len, uint64_t seed)
{
        for (size_t i = 0; i < len; i++)
                if (p[i] != pattern(off + i, seed))
                        return (long long)(off + i);
        return -1;
}

/* PREFIX DIR/NAME in one of a few static buffers. */
static const char *in_dir(const char *prefix, const char *dir, const char *name)
{
        static char buf[4][520];
        static unsigned n;
        char *p = buf[n++ % 4];
        snprintf(p, 520, "%s%s/%s", prefix, dir, name);
        return p;
}

#define path_of(dir, name) in_dir("", dir, name)
#define uri_of(dir, name) in_dir("dax:", dir, name)

/* The VmFlags of the mapping holding addr, from /proc/self/smaps. */
static bool vm_flags_of(const void *addr, char *out, size_t n)
{
        FILE *fp = fopen("/proc/self/smaps", "r");
        if (!fp)
                return false;
        char line[1024];
        bool inside = false, found = false;
        while (!found && fgets(line, sizeof line, fp)) {
                unsigned long lo, hi;
                if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' '))
                        inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
                else if (inside && !strncmp(line, "VmFlags:", 8)) {
                        size_t len = strcspn(line + 8, "\n");
                        len = len < n ? len : n - 1;
                        memcpy(out, line + 8, len);
                        out[len] = 0;
                        found = true;
                }
        }
        fclose(fp);
        return found;
}

static bool has_flag(const char *flags, const char *flag)
{
        char padded[300];
        snprintf(padded, sizeof padded, " %s ", flags);
        char want[8];
        snprintf(want, sizeof want, " %s ", flag);
        return strstr(padded, want) != NULL;
}

/* ---- the checks --------------------------------------------------------------- */

/* The mount is what the scenario says, seen without the library. */
static void filesystem(const void *arg)
{
        const struct where *w = arg;
        const char *p = path_of(w->dir, "plain.bin");
        int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
        REQUIRE(fd >= 0, "open %s: %s", p, strerror(errno));
        REQUIRE(ftruncate(fd, 2 * MIB) == 0, "%s", strerror(errno));
        struct statx stx;
        REQUIRE(statx(fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &stx) == 0, "statx: %s", strerror(errno));
        bool dax = stx.stx_attributes & STATX_ATTR_DAX;
        REQUIRE(dax == w->dax, "STATX_ATTR_DAX is %d", dax);
        struct statfs sf;
        REQUIRE(fstatfs(fd, &sf) == 0, "fstatfs: %s", strerror(errno));
        REQUIRE(w->dax || sf.f_type == FUSE_SUPER_MAGIC, "f_type %#lx", (unsigned long)sf.f_type);
        void *m = mmap(NULL, 2 * MIB, PROT_READ | PROT_WRITE, MAP_SHARED_VALIDATE | MAP_SYNC, fd, 0);
        int e = errno;
        if (w->dax) {
                REQUIRE(m != MAP_FAILED, "MAP_SYNC: %s", strerror(e));
                memset(m, 'x', 4096);
                munmap(m, 2 * MIB);
        } else {
                REQUIRE(m == MAP_FAILED && e == EOPNOTSUPP, "MAP_SYNC: %s",
                        m == MAP_FAILED ? strerror(e) : "mapped");
        }
        close(fd);
        unlink(p);
        guest_end(GUEST_PASS, "STATX_ATTR_DAX %d, MAP_SYNC %s", dax,
                  w->dax ? "maps" : "EOPNOTSUPP");
}

/* iomem_stat and the object's messages say what the file is on; the
 * window's chunks are MAP_SYNC mappings on DAX, page cache elsewhere. */
static void detected(const void *arg)
{
        const struct where *w = arg;
        const char *uri = uri_of(w->dir, "detect.bin");
        struct iomem *f = NULL;
        int r = iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL);
        REQUIRE(r == 0, "open %s: %d %s", uri, r, iomem_errormsg());
        REQUIRE((r = iomem_truncate(f, 4 * MIB)) == 0, "truncate: %d %s", r, iomem_errormsg());
        struct iomem_stat st;
        REQUIRE(iomem_stat(f, &st) == 0, "stat: %s", iomem_errormsg());
        REQUIRE(!strcmp(st.backend, "dax"), "backend %s", st.backend);
        REQUIRE(st.dax == w->dax, "iomem_stat().dax is %d", st.dax);
        REQUIRE(!!(st.caps & IOMEM_CAP_DAX) == w->dax, "caps %#x", st.caps);
        REQUIRE(st.size == 4 * MIB, "size %zu", st.size);
        /* Every message names the kind of mount. */
        struct iovec v;
        ssize_t n = iomem_retrieve(f, 0, 4096, &v, 1);
        REQUIRE(n == -ENOENT, "retrieve of a range not acquired: %zd", n);
        const char *kind = w->dax ? "(DAX)" : "(virtio-fs, no DAX window)";
        char msg[512];
        snprintf(msg, sizeof msg, "%s", iomem_errormsg());
        REQUIRE(strstr(msg, kind), "the message does not say %s: %s", kind, msg);
        ssize_t a = iomem_acquire(f, 0, 4 * MIB);
        REQUIRE(a == (ssize_t)(4 * MIB), "acquire: %zd %s", a, iomem_errormsg());
        REQUIRE((n = iomem_retrieve(f, 0, 4 * MIB, &v, 1)) == 1, "retrieve: %zd %s", n, iomem_errormsg());
        memset(v.iov_base, 'd', 4096);
        char flags[256];
        REQUIRE(vm_flags_of(v.iov_base, flags, sizeof flags), "no mapping at %p in smaps", v.iov_base);
        REQUIRE(has_flag(flags, "sf") == w->dax, "VmFlags:%s", flags);
        REQUIRE(has_flag(flags, "sh"), "not a shared mapping: VmFlags:%s", flags);
        iomem_release(f, 0, 4 * MIB);
        iomem_close(&f);
        REQUIRE(iomem_unlink(uri) == 0, "unlink: %s", iomem_errormsg());
        guest_end(GUEST_PASS, "dax %d, caps %#x, chunks mapped with VmFlags%s; message: %s", st.dax,
                  st.caps, flags, msg);
}

/* iomem_persist: on DAX (MAP_SYNC) a cache write-back from user space with
 * no system call, until the handle writes with pwrite (then one fdatasync
 * for the metadata); on virtio-fs the page cache's msync. */
static void persisted(const void *arg)
{
        const struct where *w = arg;
        const char *uri = uri_of(w->dir, "persist.bin");
        struct iomem *f = NULL;
        int r = iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL);
        REQUIRE(r == 0, "open %s: %d %s", uri, r, iomem_errormsg());
        REQUIRE((r = iomem_truncate(f, 4 * MIB)) == 0, "truncate: %d %s", r, iomem_errormsg());
        ssize_t a = iomem_acquire(f, 0, 4 * MIB);
        REQUIRE(a == (ssize_t)(4 * MIB), "acquire: %zd %s", a, iomem_errormsg());
        struct iovec v;
        ssize_t n = iomem_retrieve(f, 0, 4 * MIB, &v, 1);
        REQUIRE(n == 1, "retrieve: %zd %s", n, iomem_errormsg());
        memset(v.iov_base, 'q', 4 * MIB);
        REQUIRE((r = iomem_persist(f, 0, 4 * MIB)) == 0, "persist: %d %s", r, iomem_errormsg());
        struct iomem_stat st;
        REQUIRE(iomem_stat(f, &st) == 0, "stat: %s", iomem_errormsg());
        if (w->dax)
                REQUIRE(st.persist >= IOMEM_PERSIST_CLWB && st.persist <= IOMEM_PERSIST_CLFLUSH,
                        "persist %u on MAP_SYNC chunks", st.persist);
        else
                REQUIRE(st.persist == IOMEM_PERSIST_MSYNC, "persist %u on the page cache", st.persist);
        r = guest_persist_without_syscalls(f, 0, v.iov_base, 4 * MIB, false);
        REQUIRE(r == (w->dax ? 0 : -1), "persist without system calls: %d (0: none made, -1: killed "
                "for making one)", r);
        int after_pwrite = guest_persist_without_syscalls(f, 0, v.iov_base, 4 * MIB, true);
        REQUIRE(after_pwrite == -1, "persist after pwrite made no system call (%d)", after_pwrite);
        iomem_release(f, 0, 4 * MIB);
        iomem_close(&f);
        REQUIRE(iomem_unlink(uri) == 0, "unlink: %s", iomem_errormsg());
        guest_end(GUEST_PASS, "iomem_stat().persist %u (%s); %s", st.persist,
                  w->dax ? "a cache write-back" : "msync",
                  w->dax ? "4 MiB persisted under a seccomp filter that allows none, after a pwrite it took fdatasync"
                         : "msync under a seccomp filter that allows no system call was refused, as it must be");
}

/* The six operations and the file operations, and the bytes in the file
 * read back with pread after close. */
static void operations(const void *arg)
{
        const struct where *w = arg;
        const char *uri = uri_of(w->dir, GUEST_FILE);
        struct iomem *f = NULL;
        int r = iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL);
        REQUIRE(r == 0, "open %s: %d %s", uri, r, iomem_errormsg());
        REQUIRE((r = iomem_truncate(f, FIRST_SIZE)) == 0, "truncate: %d %s", r, iomem_errormsg());
        ssize_t a = iomem_acquire(f, 0, FIRST_SIZE);
        REQUIRE(a == (ssize_t)FIRST_SIZE, "acquire: %zd %s", a, iomem_errormsg());
        ssize_t cnt = iomem_bufcount(f, 0, FIRST_SIZE);
        REQUIRE(cnt >= 1 && cnt <= 8, "bufcount: %zd %s", cnt, iomem_errormsg());
        struct iovec iov[8], again[8];
        REQUIRE(iomem_retrieve(f, 0, FIRST_SIZE, iov, 8) == cnt, "retrieve: %s", iomem_errormsg());
        uint64_t off = 0;
        for (ssize_t i = 0; i < cnt; i++) {
                fill(iov[i].iov_base, off, iov[i].iov_len, SEED_RETRIEVE);
                off += iov[i].iov_len;
        }
        REQUIRE(off == FIRST_SIZE, "retrieve covered %llu bytes", (unsigned long long)off);
        REQUIRE(iomem_retrieve(f, 0, FIRST_SIZE, again, 8) == cnt &&
                        !memcmp(iov, again, (size_t)cnt * sizeof iov[0]),
                "a second retrieve returned other addresses");
        REQUIRE((r = iomem_sync(f, 0, FIRST_SIZE)) == 0, "sync: %d %s", r, iomem_errormsg());
        REQUIRE((r = iomem_truncate(f, FINAL_SIZE)) == -EBUSY, "truncate over the pin: %d", r);

        /* borrow reads what retrieve wrote. */
        REQUIRE(iomem_rdlock(f) == 0, "rdlock: %s", iomem_errormsg());
        struct iovec b[8];
        ssize_t nb = iomem_borrow(f, MIB + 5, 3 * MIB, b, 8);
        REQUIRE(nb >= 1, "borrow: %zd %s", nb, iomem_errormsg());
        off = MIB + 5;
        for (ssize_t i = 0; i < nb; i++) {
                long long bad = mismatch(b[i].iov_base, off, b[i].iov_len, SEED_RETRIEVE);
                REQUIRE(bad < 0, "borrow: byte %lld differs", bad);
                off += b[i].iov_len;
        }
        iomem_unlock(f);

        /* pwrite is seen through the acquired memory. */
        static uint8_t buf[GIFT_LEN];
        fill(buf, PW_OFF, PW_LEN, SEED_PWRITE);
        ssize_t wr = iomem_pwrite(f, buf, PW_LEN, PW_OFF);
        REQUIRE(wr == PW_LEN, "pwrite: %zd %s", wr, iomem_errormsg());
        const uint8_t *at = NULL;
        for (ssize_t i = 0, o = 0; i < cnt; o += (ssize_t)iov[i].iov_len, i++)
                if (PW_OFF >= (size_t)o && PW_OFF < (size_t)o + iov[i].iov_len)
                        at = (const uint8_t *)iov[i].iov_base + (PW_OFF - (size_t)o);
        REQUIRE(at && mismatch(at, PW_OFF, PW_LEN, SEED_PWRITE) < 0, "pwrite not seen in the mapping");
        REQUIRE(iomem_release(f, 0, FIRST_SIZE) == 0, "release: %s", iomem_errormsg());

        /* gift of foreign memory copies it into the file. */
        fill(buf, GIFT_OFF, GIFT_LEN, SEED_GIFT);
        struct iovec g = { buf, GIFT_LEN };
        ssize_t gifted = iomem_gift(f, GIFT_OFF, GIFT_LEN, &g, 1, 0);
        REQUIRE(gifted == 1, "gift: %zd %s", gifted, iomem_errormsg());
        REQUIRE((r = iomem_truncate(f, FINAL_SIZE)) == 0, "truncate: %d %s", r, iomem_errormsg());
        struct iomem_stat st;
        REQUIRE(iomem_stat(f, &st) == 0, "stat: %s", iomem_errormsg());
        REQUIRE(st.size == FINAL_SIZE && st.gift_copied == GIFT_LEN && st.acquired == 0,
                "size %zu, gift_copied %llu, acquired %zu", st.size,
                (unsigned long long)st.gift_copied, st.acquired);
        uint8_t tail[200];
        ssize_t rd = iomem_pread(f, tail, sizeof tail, FINAL_SIZE - 100);
        REQUIRE(rd == 100, "pread at the end: %zd %s", rd, iomem_errormsg());
        REQUIRE(mismatch(tail, FINAL_SIZE - 100, 100, SEED_RETRIEVE) < 0, "pread: bytes differ");
        REQUIRE((r = iomem_sync(f, 0, FINAL_SIZE)) == 0, "sync: %d %s", r, iomem_errormsg());
        REQUIRE(iomem_close(&f) == 0, "close: %s", iomem_errormsg());
        guest_end(GUEST_PASS, "%zd iovec(s) for 8 MiB, borrow %zd, pwrite/gift/truncate to %zu bytes, dax %d",
                  cnt, nb, st.size, st.dax);
}

/* Read the guest's file with plain pread: the bytes each operation wrote. */
static void verify_guest_file(const void *arg)
{
        const char *dir = arg;
        const char *p = path_of(dir, GUEST_FILE);
        int fd = open(p, O_RDONLY);
        REQUIRE(fd >= 0, "open %s: %s", p, strerror(errno));
        struct stat st;
        REQUIRE(fstat(fd, &st) == 0 && st.st_size == (off_t)FINAL_SIZE, "size %lld",
                (long long)st.st_size);
        static uint8_t buf[MIB];
        for (uint64_t off = 0; off < FINAL_SIZE; off += sizeof buf) {
                size_t n = FINAL_SIZE - off < sizeof buf ? FINAL_SIZE - off : sizeof buf;
                REQUIRE(pread(fd, buf, n, (off_t)off) == (ssize_t)n, "pread: %s", strerror(errno));
                for (size_t i = 0; i < n; i++)
                        REQUIRE(buf[i] == guest_byte(off + i), "byte %llu is %#x, not %#x",
                                (unsigned long long)(off + i), buf[i], guest_byte(off + i));
        }
        close(fd);
        guest_end(GUEST_PASS, "%zu bytes of %s as written", FINAL_SIZE, p);
}

/* A file the host wrote before boot, read through borrow. */
static void host_file(const void *arg)
{
        const struct where *w = arg;
        const char *uri = uri_of(w->dir, HOST_FILE);
        struct iomem *f = NULL;
        int r = iomem_open(&f, uri, IOMEM_RDONLY, NULL);
        REQUIRE(r == 0, "open %s: %d %s", uri, r, iomem_errormsg());
        struct iomem_stat st;
        REQUIRE(iomem_stat(f, &st) == 0 && st.size == HOST_SIZE, "size %zu", st.size);
        REQUIRE(iomem_rdlock(f) == 0, "rdlock: %s", iomem_errormsg());
        struct iovec v[8];
        ssize_t n = iomem_borrow(f, 0, HOST_SIZE, v, 8);
        REQUIRE(n >= 1, "borrow: %zd %s", n, iomem_errormsg());
        uint64_t off = 0;
        for (ssize_t i = 0; i < n; i++) {
                long long bad = mismatch(v[i].iov_base, off, v[i].iov_len, SEED_HOST);
                REQUIRE(bad < 0, "byte %lld differs", bad);
                off += v[i].iov_len;
        }
        REQUIRE(off == HOST_SIZE, "borrow covered %llu bytes", (unsigned long long)off);
        iomem_unlock(f);
        iomem_close(&f);
        guest_end(GUEST_PASS, "%zu bytes through borrow", (size_t)HOST_SIZE);
}

/* ---- the program ------------------------------------------------------------------- */

static int make_host_file(const char *dir)
{
        const char *p = path_of(dir, HOST_FILE);
        static uint8_t buf[HOST_SIZE];
        fill(buf, 0, HOST_SIZE, SEED_HOST);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || pwrite(fd, buf, HOST_SIZE, 0) != (ssize_t)HOST_SIZE || close(fd) < 0) {
                fprintf(stderr, "guest_dax: %s: %s\n", p, strerror(errno));
                return GUEST_FAIL;
        }
        return 0;
}

int main(int argc, char **argv)
{
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (argc == 3 && !strcmp(argv[1], "make"))
                return make_host_file(argv[2]);
        if (argc == 4 && !strcmp(argv[1], "verify")) {
                guest_run(argv[3], verify_guest_file, argv[2]);
                return guest_failed ? GUEST_FAIL : GUEST_PASS;
        }
        if (argc != 4 || strcmp(argv[1], "run") ||
            (strcmp(argv[3], "dax") && strcmp(argv[3], "virtiofs"))) {
                fprintf(stderr, "usage: guest_dax run DIR dax|virtiofs | make DIR | verify DIR NAME\n");
                return 2;
        }
        const struct where w = { argv[2], !strcmp(argv[3], "dax") };
        const char *kind = w.dax ? "dax" : "virtio-fs";
        char name[128];
        snprintf(name, sizeof name, "%s: %s", kind,
                 w.dax ? "ext4 dax=always on fsdax pmem: STATX_ATTR_DAX, MAP_SYNC works"
                       : "virtio-fs mount without a DAX window: MAP_SYNC refused");
        guest_run(name, filesystem, &w);
        snprintf(name, sizeof name, "%s: iomem_stat, messages and the window's mappings", kind);
        guest_run(name, detected, &w);
        snprintf(name, sizeof name, "%s: acquire, retrieve, borrow, pwrite, gift, truncate", kind);
        guest_run(name, operations, &w);
        snprintf(name, sizeof name, "%s: iomem_persist, and the system calls it makes", kind);
        guest_run(name, persisted, &w);
        snprintf(name, sizeof name, "%s: pread after close reads what they wrote", kind);
        guest_run(name, verify_guest_file, w.dir);
        if (!w.dax)
                guest_run("virtio-fs: the guest reads a file the host made, through borrow", host_file, &w);
        return guest_status();
}
