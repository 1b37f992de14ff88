/* SPDX-License-Identifier: MIT */
/*
 * Running out of backing memory is an error, never SIGBUS. shm: a small
 * tmpfs over /dev/shm in a private mount namespace, filled to the brim.
 * memfd: a hugetlb object whose huge page pool is used up. Both need
 * root; without it the suite is skipped.
 */
#include "common.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))
#define MIB ((size_t)1 << 20)


/* Fill the filesystem of /dev/shm; returns the filler's fd. */
static int fill_dev_shm(void)
{
        int fd = open("/dev/shm/filler", O_RDWR | O_CREAT | O_TRUNC, 0600);
        ck_assert_int_ge(fd, 0);
        static char block[64 * 1024];
        memset(block, 1, sizeof block);
        while (write(fd, block, sizeof block) > 0)
                ;
        ck_assert_int_eq(errno, ENOSPC);
        /* The last partial block. */
        while (write(fd, block, PAGE) > 0)
                ;
        return fd;
}

START_TEST(shm_full_dev_shm_is_enospc)
{
        test_fail_on_sigbus();
        /* This test runs in its own process (Check forks): the mount
         * namespace and the small tmpfs are gone when it ends. */
        ck_assert_int_eq(unshare(CLONE_NEWNS), 0);
        ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        ck_assert_int_eq(mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=4m"), 0);

        struct iomem *f;
        ck_assert_int_eq(iomem_open(&f, "shm:full", IOMEM_RDWR | IOMEM_CREATE, NULL), 0);
        /* More than the filesystem holds: refused at once. */
        ck_assert_err(iomem_truncate(f, 64 * MIB), ENOSPC);
        ck_assert_int_eq(iomem_truncate(f, 2 * MIB), 0);
        int filler = fill_dev_shm();

        struct iomem_stat st;
        ck_assert_err(iomem_acquire(f, 0, 2 * MIB), ENOSPC);
        iomem_stat(f, &st);
        ck_assert_uint_eq(st.acquired, 0);
        static char data[256 * 1024];
        memset(data, 'd', sizeof data);
        ck_assert_err(iomem_pwrite(f, data, sizeof data, 0), ENOSPC);
        struct iovec v = { data, sizeof data };
        ck_assert_err(iomem_gift(f, 0, sizeof data, &v, 1, 0), ENOSPC);
        void *buf = NULL;
        int r = iomem_alloc(f, MIB, &buf);
        ck_assert_msg(r == -ENOSPC || r == -ENOMEM, "alloc: %d %s", r, iomem_errormsg());
        ck_assert_ptr_null(buf);
        ck_assert_err(iomem_truncate(f, 4 * MIB), ENOSPC);
        /* Nothing changed, and it all works once there is room again. */
        iomem_stat(f, &st);
        ck_assert_uint_eq(st.size, 2 * MIB);
        struct iovec b;
        ck_assert_int_eq(iomem_borrow(f, 0, 2 * MIB, &b, 1), 1);
        ck_assert_ptr_null(b.iov_base);
        close(filler);
        ck_assert_int_eq(unlink("/dev/shm/filler"), 0);
        ck_assert_int_eq(iomem_pwrite(f, data, sizeof data, 0), (ssize_t)sizeof data);
        ck_assert_int_eq(iomem_acquire(f, 0, 2 * MIB), (ssize_t)(2 * MIB));
        ck_assert_int_eq(iomem_release(f, 0, 2 * MIB), 0);
        iomem_close(&f);
        iomem_unlink("shm:full");
}
END_TEST

/* Set vm.nr_hugepages; returns the previous value, or -1. */
static long set_hugepages(long n)
{
        FILE *fp = fopen("/proc/sys/vm/nr_hugepages", "r+");
        if (!fp)
                return -1;
        long old = -1;
        if (fscanf(fp, "%ld", &old) != 1)
                old = -1;
        rewind(fp);
        fprintf(fp, "%ld\n", n);
        int bad = fclose(fp) != 0;
        return bad ? -1 : old;
}

static long hugepages_free(void)
{
        return test_proc_number("/proc/meminfo", "HugePages_Free: %ld");
}

START_TEST(memfd_exhausted_huge_pages_is_enomem)
{
        test_fail_on_sigbus();
        ck_assert_int_eq(hugepages_free(), 4); /* main reserved exactly these */
        struct iomem_opts *o;
        iomem_opts_new(&o);
        iomem_opts_set_hugepage(o, 2 * MIB);
        iomem_opts_set_size(o, 16 * MIB);
        struct iomem *f;
        ck_assert_int_eq(iomem_open(&f, "memfd:huge-full", IOMEM_RDWR, o), 0);
        /* One huge page went to the metadata; three are left. */
        ck_assert_int_eq(iomem_acquire(f, 0, 2 * MIB), (ssize_t)(2 * MIB));
        ssize_t r = iomem_acquire(f, 2 * MIB, 8 * MIB);
        ck_assert_err(r, ENOMEM);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "vm.nr_hugepages"));
        static char data[6 * MIB]; /* more than the two pages left */
        ck_assert_err(iomem_pwrite(f, data, sizeof data, 8 * MIB), ENOMEM);
        struct iomem_stat st;
        iomem_stat(f, &st);
        ck_assert_uint_eq(st.acquired, 2 * MIB);
        ck_assert_uint_eq(st.page_size, 2 * MIB);
        iomem_close(&f);
        iomem_opts_delete(&o);
}
END_TEST

int main(void)
{
        if (geteuid() != 0) {
                printf("SKIP: filling a filesystem or the huge page pool needs root\n");
                return TEST_SKIP;
        }
        Suite *s = suite_create("enospc");
        TCase *tc = tcase_create(test_backend());
        if (!strcmp(test_backend(), "shm")) {
                if (access("/dev/shm", W_OK)) {
                        printf("SKIP: no /dev/shm here\n");
                        return TEST_SKIP;
                }
                tcase_add_test(tc, shm_full_dev_shm_is_enospc);
        } else {
                long old = set_hugepages(4);
                if (old < 0 || hugepages_free() != 4) {
                        if (old >= 0)
                                set_hugepages(old);
                        printf("SKIP: cannot reserve exactly 4 free huge pages (vm.nr_hugepages)\n");
                        return TEST_SKIP;
                }
                tcase_add_test(tc, memfd_exhausted_huge_pages_is_enomem);
                suite_add_tcase(s, tc);
                int status = test_run(s);
                set_hugepages(old);
                return status;
        }
        suite_add_tcase(s, tc);
        return test_run(s);
}
