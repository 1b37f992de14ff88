/* SPDX-License-Identifier: MIT */
/*
 * Huge pages: memfd objects with 2 MiB pages work at that granularity.
 * Needs free huge pages; as root the suite reserves them for itself
 * (vm.nr_hugepages) and gives them back, otherwise it is skipped.
 */
#include "common.h"

#include <stdbool.h>
#include <stdint.h>

#define MIB ((size_t)1 << 20)
#define HUGE (2 * MIB)

static long read_long(const char *path, const char *key)
{
        FILE *fp = fopen(path, "r");
        char line[128];
        long n = -1;
        while (fp && fgets(line, sizeof line, fp)) {
                if (!key) {
                        sscanf(line, "%ld", &n);
                        break;
                }
                if (!strncmp(line, key, strlen(key)) && sscanf(line + strlen(key), "%ld", &n) == 1)
                        break;
        }
        if (fp)
                fclose(fp);
        return n;
}

static int write_long(const char *path, long v)
{
        FILE *fp = fopen(path, "w");
        if (!fp)
                return -1;
        fprintf(fp, "%ld\n", v);
        return fclose(fp);
}

START_TEST(memfd_works_in_huge_pages)
{
        struct iomem_opts *o;
        iomem_opts_new(&o);
        ck_assert_int_eq(iomem_opts_set_hugepage(o, HUGE), 0);
        iomem_opts_set_size(o, 3 * HUGE);
        struct iomem *f;
        ck_assert_int_eq(iomem_open(&f, "memfd:huge", IOMEM_RDWR, o), 0);
        struct iomem_stat st;
        iomem_stat(f, &st);
        ck_assert_uint_eq(st.page_size, HUGE);
        ck_assert(st.caps & IOMEM_CAP_HUGEPAGE);
        ck_assert_err(iomem_acquire(f, 0, 4096), EINVAL);
        ck_assert_int_eq(iomem_acquire(f, 0, 2 * HUGE), (ssize_t)(2 * HUGE));
        struct iovec v;
        ck_assert_int_eq(iomem_retrieve(f, 0, 2 * HUGE, &v, 1), 1);
        ck_assert_uint_eq((uintptr_t)v.iov_base % HUGE, 0);
        memset(v.iov_base, 'h', 2 * HUGE);
        char out[16];
        ck_assert_int_eq(iomem_pread(f, out, 16, HUGE + 5), 16);
        ck_assert_int_eq(out[15], 'h');
        ck_assert_int_eq(iomem_release(f, 0, 2 * HUGE), 0);
        /* pwrite reaches hugetlbfs memory through the mapping. */
        ck_assert_int_eq(iomem_pwrite(f, "tail", 4, 2 * HUGE + 1), 4);
        ck_assert_int_eq(iomem_pread(f, out, 4, 2 * HUGE + 1), 4);
        ck_assert_int_eq(memcmp(out, "tail", 4), 0);
        void *buf;
        ck_assert_int_eq(iomem_alloc(f, HUGE, &buf), 0);
        memset(buf, 'g', HUGE);
        struct iovec g = { buf, HUGE };
        ck_assert_int_eq(iomem_gift(f, HUGE, HUGE, &g, 1, IOMEM_GIFT_NOCOPY), 1);
        ck_assert_int_eq(iomem_pread(f, out, 1, HUGE), 1);
        ck_assert_int_eq(out[0], 'g');
        ck_assert_int_eq(iomem_truncate(f, HUGE + 3), 0);
        iomem_stat(f, &st);
        ck_assert_uint_eq(st.size, HUGE + 3);
        iomem_close(&f);
        iomem_opts_delete(&o);
}
END_TEST

/* Huge pages under a NUMA policy are populated through the placed mapping
 * (hugetlbfs ignores a mapping's policy in fallocate): they come from the
 * node, and more than the pool holds is -ENOMEM, never SIGBUS. The VM
 * tier does this across two nodes; here node 0 is every node. */
START_TEST(memfd_huge_pages_bound_to_a_node)
{
        struct iomem_opts *o;
        iomem_opts_new(&o);
        iomem_opts_set_hugepage(o, HUGE);
        int r = iomem_opts_set_numa(o, IOMEM_NUMA_BIND, 0);
        if (r == -ENOTSUP || r == -ENODEV) {
                iomem_opts_delete(&o);
                return; /* built without libnuma, or no NUMA here */
        }
        ck_assert_int_eq(r, 0);
        struct iomem *f;
        ck_assert_int_eq(iomem_open(&f, "memfd:huge-bound", IOMEM_RDWR, o), 0);
        ck_assert_int_eq(iomem_acquire(f, 0, 0), 0);
        long free_now = read_long("/proc/meminfo", "HugePages_Free:");
        ck_assert_int_ge(free_now, 2);
        size_t over = (size_t)(free_now + 1) * HUGE;
        ck_assert_int_eq(iomem_truncate(f, over), 0);
        ck_assert_err(iomem_acquire(f, 0, over), ENOMEM);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "vm.nr_hugepages"));
        ck_assert_int_eq(read_long("/proc/meminfo", "HugePages_Free:"), free_now);
        ck_assert_int_eq(iomem_acquire(f, 0, 2 * HUGE), (ssize_t)(2 * HUGE));
        ck_assert_int_eq(read_long("/proc/meminfo", "HugePages_Free:"), free_now - 2);
        struct iovec v;
        ck_assert_int_eq(iomem_retrieve(f, 0, 2 * HUGE, &v, 1), 1);
        memset(v.iov_base, 'n', 2 * HUGE);
        struct iomem_stat st;
        iomem_stat(f, &st);
        ck_assert_int_eq(st.numa_node, 0);
        iomem_close(&f);
        iomem_opts_delete(&o);
}
END_TEST

START_TEST(shm_huge_pages_are_not_supported)
{
        struct iomem_opts *o;
        iomem_opts_new(&o);
        iomem_opts_set_hugepage(o, HUGE);
        struct iomem *f = NULL;
        ck_assert_err(iomem_open(&f, test_uri("huge"), IOMEM_RDWR | IOMEM_CREATE, o), ENOTSUP);
        ck_assert_ptr_null(f);
        iomem_opts_delete(&o);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("hugepage");
        TCase *tc = tcase_create(test_backend());
        if (!strcmp(test_backend(), "shm")) {
                tcase_add_test(tc, shm_huge_pages_are_not_supported);
                suite_add_tcase(s, tc);
                return test_run(s);
        }
        const char *nr = "/proc/sys/vm/nr_hugepages";
        long want = 8, old = read_long(nr, NULL);
        long free_now = read_long("/proc/meminfo", "HugePages_Free:");
        bool raised = false;
        if (free_now < want) {
                if (geteuid() != 0 || old < 0 || write_long(nr, old + want - free_now)) {
                        printf("SKIP: %ld free 2 MiB huge pages, %ld needed (root can raise "
                               "vm.nr_hugepages)\n", free_now, want);
                        return TEST_SKIP;
                }
                raised = true;
                if (read_long("/proc/meminfo", "HugePages_Free:") < want) {
                        write_long(nr, old);
                        printf("SKIP: the kernel could not reserve %ld huge pages\n", want);
                        return TEST_SKIP;
                }
        }
        tcase_add_test(tc, memfd_works_in_huge_pages);
        tcase_add_test(tc, memfd_huge_pages_bound_to_a_node);
        suite_add_tcase(s, tc);
        int status = test_run(s);
        if (raised)
                write_long(nr, old);
        return status;
}
