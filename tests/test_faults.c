/* SPDX-License-Identifier: MIT */
/*
 * Fault injection through the syscall table: every failure of a system
 * call the library makes is reported with the right errno, changes
 * nothing, and leaks neither descriptors nor mappings.
 */
#include "config.h"
#include "common.h"

#include "internal.h"
#include "syscalls.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/mman.h>
#include <sys/socket.h>

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))

/* ---- the injector: fail the nth call of one kind with an errno ---------- */

enum call { C_MMAP, C_FALLOCATE, C_FTRUNCATE, C_MEMFD, C_SHM_OPEN, C_WRITEV, C_SENDMSG, C_RECVMSG, C_COUNT };

static struct {
        enum call which;
        int nth;  /* 1-based; 0: never */
        int err;
        int seen;
        int fired;
        int short_writes; /* writev: write at most this many bytes per call */
} inj;

static int hit(enum call c)
{
        if (c != inj.which || !inj.nth)
                return 0;
        if (++inj.seen != inj.nth)
                return 0;
        inj.fired = 1;
        errno = inj.err;
        return 1;
}

static void *f_mmap(void *a, size_t l, int p, int fl, int fd, off_t o)
{
        return hit(C_MMAP) ? MAP_FAILED : iom_sys_default.mmap(a, l, p, fl, fd, o);
}
static int f_fallocate(int fd, int m, off_t o, off_t l)
{
        /* Only allocations fail; punching holes cannot run out of room. */
        return !(m & FALLOC_FL_PUNCH_HOLE) && hit(C_FALLOCATE) ? -1 : iom_sys_default.fallocate(fd, m, o, l);
}
static int f_ftruncate(int fd, off_t l)
{
        return hit(C_FTRUNCATE) ? -1 : iom_sys_default.ftruncate(fd, l);
}
static int f_memfd(const char *n, unsigned fl)
{
        return hit(C_MEMFD) ? -1 : iom_sys_default.memfd_create(n, fl);
}
static int f_shm_open(const char *n, int o, mode_t m)
{
        return hit(C_SHM_OPEN) ? -1 : iom_sys_default.shm_open(n, o, m);
}
static ssize_t f_writev(int fd, const struct iovec *v, int n)
{
        if (hit(C_WRITEV))
                return -1;
        if (inj.short_writes && n > 0) {
                struct iovec one = v[0];
                if (one.iov_len > (size_t)inj.short_writes)
                        one.iov_len = (size_t)inj.short_writes;
                return iom_sys_default.writev(fd, &one, 1);
        }
        return iom_sys_default.writev(fd, v, n);
}
static ssize_t f_sendmsg(int fd, const struct msghdr *m, int fl)
{
        return hit(C_SENDMSG) ? -1 : iom_sys_default.sendmsg(fd, m, fl);
}
static ssize_t f_recvmsg(int fd, struct msghdr *m, int fl)
{
        return hit(C_RECVMSG) ? -1 : iom_sys_default.recvmsg(fd, m, fl);
}

static void inject(enum call which, int nth, int err)
{
        inj.which = which;
        inj.nth = nth;
        inj.err = err;
        inj.seen = inj.fired = inj.short_writes = 0;
        iom_sys.mmap = f_mmap;
        iom_sys.fallocate = f_fallocate;
        iom_sys.ftruncate = f_ftruncate;
        iom_sys.memfd_create = f_memfd;
        iom_sys.shm_open = f_shm_open;
        iom_sys.writev = f_writev;
        iom_sys.sendmsg = f_sendmsg;
        iom_sys.recvmsg = f_recvmsg;
}

static void heal(void)
{
        iom_sys = iom_sys_default;
        inj.nth = 0;
}

/* ---- what must not leak -------------------------------------------------------- */

/* Mappings of this process, less anonymous writable ones without a name:
 * the sanitizers' allocators map read-write ones as they please, valgrind
 * grows its translation cache in read-write-execute ones as new code runs,
 * and what the library maps for this workload is file-backed or not
 * writable (its zero pages). */
static int count_maps(void)
{
        FILE *fp = fopen("/proc/self/maps", "r");
        char line[512], perms[8], path[256];
        int n = 0;
        while (fp && fgets(line, sizeof line, fp)) {
                path[0] = 0;
                if (sscanf(line, "%*s %7s %*s %*s %*s %255s", perms, path) >= 1 &&
                    !((strcmp(perms, "rw-p") == 0 || strcmp(perms, "rwxp") == 0) && path[0] == 0))
                        n++;
        }
        if (fp)
                fclose(fp);
        return n;
}

static int count_fds(void)
{
        int n = 0;
        char p[64];
        for (int fd = 0; fd < 1024; fd++) {
                snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
                n += access(p, F_OK) == 0;
        }
        return n;
}

/* ---- a workload that uses every path ------------------------------------------ */

/* Returns 0, or the first error (with everything it opened closed). */
static int workload(const char *backend)
{
        char uri[96];
        snprintf(uri, sizeof uri, "%s:iomem-fault-%d", backend, (int)getpid());
        struct iomem_opts *o;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        iomem_opts_set_size(o, 4 * PAGE);
        struct iomem *f = NULL;
        int r = iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, o);
        iomem_opts_delete(&o);
        if (r)
                return r;
        char data[3 * 4096];
        memset(data, 'w', sizeof data);
        void *buf = NULL;
        struct iovec v;
        ssize_t n = iomem_pwrite(f, data, sizeof data, 100);
        if (n >= 0)
                n = iomem_acquire(f, 0, 4 * PAGE);
        if (n >= 0)
                n = iomem_retrieve(f, 0, 4 * PAGE, &v, 1);
        if (n >= 0)
                n = iomem_release(f, 0, 4 * PAGE);
        if (n >= 0)
                n = iomem_alloc(f, 2 * PAGE, &buf);
        if (n >= 0) {
                struct iovec g = { buf, 2 * PAGE };
                n = iomem_gift(f, 8 * PAGE, 2 * PAGE, &g, 1, 0);
                if (n < 0)
                        iomem_free(f, buf, 2 * PAGE);
        }
        if (n >= 0)
                n = iomem_truncate(f, 20 * PAGE);
        if (n >= 0)
                n = iomem_borrow(f, 0, 20 * PAGE, &v, 1);
        if (n >= 0)
                n = iomem_truncate(f, PAGE);
        iomem_close(&f);
        iomem_unlink(uri);
        return n < 0 ? (int)n : 0;
}

static void each_failure_of(enum call which, int err, const char *backend)
{
        if (!IOMEM_PLATFORM_LINUX && !strcmp(backend, "memfd"))
                return; /* not built on the POSIX platform layer */
        heal();
        ck_assert_int_eq(workload(backend), 0); /* warm up: lazily made mappings */
        int fds = count_fds(), maps = count_maps();
        for (int nth = 1; nth < 200; nth++) {
                inject(which, nth, err);
                int r = workload(backend);
                int fired = inj.fired;
                heal();
                if (!fired) {
                        ck_assert_int_eq(r, 0);
                        ck_assert_int_gt(nth, 1); /* it was reached at least once */
                        return;
                }
                ck_assert_msg(r == -err || (err == ENOSPC && r == -ENOMEM),
                              "%s call %d failing with %s gave %d (%s)", backend, nth,
                              strerror(err), r, iomem_errormsg());
                ck_assert_int_eq(count_fds(), fds);
                ck_assert_int_eq(count_maps(), maps);
                /* And everything works again afterwards. */
                ck_assert_int_eq(workload(backend), 0);
        }
        ck_abort_msg("the workload never finished");
}

START_TEST(every_mmap_failure)
{
        each_failure_of(C_MMAP, ENOMEM, "memfd");
        each_failure_of(C_MMAP, ENOMEM, "shm");
}
END_TEST

START_TEST(every_fallocate_failure)
{
        each_failure_of(C_FALLOCATE, ENOSPC, "memfd");
        each_failure_of(C_FALLOCATE, ENOSPC, "shm");
}
END_TEST

START_TEST(every_ftruncate_failure)
{
        each_failure_of(C_FTRUNCATE, EFBIG, "memfd");
        each_failure_of(C_FTRUNCATE, EFBIG, "shm");
}
END_TEST

START_TEST(memfd_create_and_shm_open_failures)
{
        each_failure_of(C_MEMFD, EMFILE, "memfd");
        /* (EACCES on the metadata object is not an error: the process then
         * keeps its pins to itself.) */
        each_failure_of(C_SHM_OPEN, EMFILE, "shm");
}
END_TEST

START_TEST(failed_pwrite_changes_nothing)
{
        struct iomem *f = test_open_new("pw", PAGE);
        ck_assert_int_eq(iomem_pwrite(f, "keep", 4, 0), 4);
        inject(C_FALLOCATE, 1, ENOSPC);
        char big[8192];
        memset(big, 'x', sizeof big);
        ck_assert_err(iomem_pwrite(f, big, sizeof big, 2 * PAGE), ENOSPC);
        heal();
        struct iomem_stat st;
        iomem_stat(f, &st);
        ck_assert_uint_eq(st.size, PAGE);
        char out[4];
        ck_assert_int_eq(iomem_pread(f, out, 4, 0), 4);
        ck_assert_int_eq(memcmp(out, "keep", 4), 0);
        ck_assert_int_eq(iomem_pwrite(f, big, sizeof big, 2 * PAGE), (ssize_t)sizeof big);
        iomem_close(&f);
}
END_TEST

/* sendfile into a socket that takes a few bytes at a time and is
 * interrupted now and then still delivers every byte, in order. */
START_TEST(sendfile_resumes_short_writes_and_eintr)
{
        struct iomem *f = test_open_new("sf", 0);
        static char data[200000];
        for (size_t i = 0; i < sizeof data; i++)
                data[i] = (char)(i * 13);
        ck_assert_int_eq(iomem_pwrite(f, data, sizeof data, 0), (ssize_t)sizeof data);
        char path[] = "/tmp/iomem-faults-XXXXXX";
        int out = mkstemp(path);
        ck_assert_int_ge(out, 0);
        unlink(path);
        inject(C_WRITEV, 3, EINTR);
        inj.short_writes = 4093;
        ck_assert_int_eq(iomem_sendfile(out, f, 0, sizeof data), (ssize_t)sizeof data);
        heal();
        static char back[sizeof data];
        ck_assert_int_eq(pread(out, back, sizeof back, 0), (ssize_t)sizeof back);
        ck_assert_int_eq(memcmp(back, data, sizeof data), 0);
        /* EAGAIN after some bytes: the count so far. */
        ck_assert_int_eq(ftruncate(out, 0), 0);
        ck_assert_int_eq(lseek(out, 0, SEEK_SET), 0);
        inject(C_WRITEV, 2, EAGAIN);
        inj.short_writes = 1000;
        ck_assert_int_eq(iomem_sendfile(out, f, 0, sizeof data), 1000);
        inject(C_WRITEV, 1, EAGAIN);
        ck_assert_err(iomem_sendfile(out, f, 0, sizeof data), EAGAIN);
        heal();
        close(out);
        iomem_close(&f);
}
END_TEST

START_TEST(send_and_recv_survive_eintr_and_report_errors)
{
        struct iomem *f = test_open_new("pass", PAGE);
        int sv[2];
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        int fds = count_fds();
        inject(C_SENDMSG, 1, EINTR);
        ck_assert_int_eq(iomem_send(sv[0], f), 0);
        heal();
        inject(C_RECVMSG, 1, EINTR);
        struct iomem *g = NULL;
        ck_assert_int_eq(iomem_recv(sv[1], &g, IOMEM_RDWR), 0);
        heal();
        iomem_close(&g);
        inject(C_SENDMSG, 1, ENOBUFS);
        ck_assert_err(iomem_send(sv[0], f), ENOBUFS);
        inject(C_RECVMSG, 1, ENOMEM);
        ck_assert_err(iomem_recv(sv[1], &g, IOMEM_RDWR), ENOMEM);
        ck_assert_ptr_null(g);
        heal();
        ck_assert_int_eq(count_fds(), fds);
        close(sv[0]);
        close(sv[1]);
        iomem_close(&f);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("faults");
        if (!IOMEM_PLATFORM_LINUX)
                printf("SKIP: the memfd workloads (memfd is not built on the POSIX platform layer)\n");
        TCase *tc = tcase_create("syscalls");
        tcase_set_timeout(tc, 300);
        tcase_add_test(tc, every_mmap_failure);
        tcase_add_test(tc, every_fallocate_failure);
        tcase_add_test(tc, every_ftruncate_failure);
        tcase_add_test(tc, memfd_create_and_shm_open_failures);
        tcase_add_test(tc, failed_pwrite_changes_nothing);
        tcase_add_test(tc, sendfile_resumes_short_writes_and_eintr);
        tcase_add_test(tc, send_and_recv_survive_eintr_and_report_errors);
        suite_add_tcase(s, tc);
        return test_run(s);
}
