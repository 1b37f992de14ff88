/* SPDX-License-Identifier: MIT */
/*
 * Huge pages: memfd objects, and shm objects in a hugetlbfs mount, with
 * 2 MiB pages work at that granularity. Needs free huge pages; as root the
 * suite reserves them for itself (vm.nr_hugepages) and gives them back,
 * otherwise it is skipped. The shm tests mount hugetlbfs in a mount
 * namespace of their own (root only).
 */
#include "common.h"

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mount.h>
#include <sys/stat.h>

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

/* Zero-copy gift of a huge page from giver's pool (in huge pages too) at
 * [HUGE, 2 HUGE); reader sees it. */
static void gift_a_huge_page(struct iomem *giver, struct iomem *reader)
{
        void *buf;
        char out;
        ck_assert_int_eq(iomem_alloc(giver, HUGE, &buf), 0);
        ck_assert_uint_eq((uintptr_t)buf % HUGE, 0);
        memset(buf, 'g', HUGE);
        struct iovec v = { buf, HUGE };
        ck_assert_int_eq(iomem_gift(giver, HUGE, HUGE, &v, 1, IOMEM_GIFT_NOCOPY), 1);
        ck_assert_int_eq(iomem_pread(reader, &out, 1, 2 * HUGE - 1), 1);
        ck_assert_int_eq(out, 'g');
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
        gift_a_huge_page(f, f);
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
                printf("SKIP: memfd_huge_pages_bound_to_a_node: no NUMA policies here (%s)\n",
                       iomem_errormsg());
                return;
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

/* A mount namespace of this test's own, its hugetlbfs mounts detached;
 * with page != 0, one hugetlbfs of that page size mounted at *dir. */
static void private_hugetlbfs(size_t page, char dir[64])
{
        ck_assert_int_eq(unshare(CLONE_NEWNS), 0);
        ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        FILE *fp = fopen("/proc/self/mountinfo", "r");
        char line[1024], mnt[512];
        while (fp && fgets(line, sizeof line, fp))
                if (strstr(line, " - hugetlbfs ") && sscanf(line, "%*s %*s %*s %*s %511s", mnt) == 1)
                        umount2(mnt, MNT_DETACH);
        if (fp)
                fclose(fp);
        if (!page)
                return;
        snprintf(dir, 64, "/tmp/iomem-huge-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
        char opts[64];
        snprintf(opts, sizeof opts, "pagesize=%zuK,mode=1777", page >> 10);
        ck_assert_msg(mount("none", dir, "hugetlbfs", 0, opts) == 0, "mount hugetlbfs: %s",
                      strerror(errno));
}

static struct iomem_opts *huge_opts(size_t size)
{
        struct iomem_opts *o;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_hugepage(o, HUGE), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, size), 0);
        return o;
}

START_TEST(shm_without_hugetlbfs_is_enodev)
{
        char dir[64];
        private_hugetlbfs(0, dir);
        struct iomem_opts *o = huge_opts(HUGE);
        struct iomem *f = NULL;
        const char *uri = test_uri("nohuge");
        ck_assert_err(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, o), ENODEV);
        ck_assert_ptr_null(f);
        ck_assert_msg(strstr(iomem_errormsg(), "mount -t hugetlbfs") &&
                      strstr(iomem_errormsg(), uri + 4), "message: %s", iomem_errormsg());
        /* Nothing was made in /dev/shm either. */
        ck_assert_err(iomem_open(&f, uri, IOMEM_RDWR, NULL), ENOENT);
        iomem_opts_delete(&o);
}
END_TEST

START_TEST(shm_works_in_huge_pages)
{
        char dir[64], path[128];
        private_hugetlbfs(HUGE, dir);
        const char *uri = test_uri("huge");
        struct iomem_opts *o = huge_opts(3 * HUGE);
        struct iomem *f = NULL, *g = NULL;
        ck_assert_msg(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o) == 0, "open: %s",
                      iomem_errormsg());
        iomem_opts_delete(&o);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.page_size, HUGE);
        ck_assert_uint_eq(st.size, 3 * HUGE);
        /* Both files are in the mount, private to their owner. */
        struct stat sb;
        snprintf(path, sizeof path, "%s/%s", dir, uri + 4);
        ck_assert_int_eq(stat(path, &sb), 0);
        ck_assert_int_eq(sb.st_mode & 0777, 0600);
        snprintf(path, sizeof path, "%s/%s.iomem", dir, uri + 4);
        ck_assert_int_eq(stat(path, &sb), 0);
        ck_assert_err(iomem_acquire(f, 0, 4096), EINVAL);
        ck_assert_int_eq(iomem_acquire(f, 0, 2 * HUGE), (ssize_t)(2 * HUGE));
        struct iovec v;
        ck_assert_int_eq(iomem_retrieve(f, 0, 2 * HUGE, &v, 1), 1);
        ck_assert_uint_eq((uintptr_t)v.iov_base % HUGE, 0);
        memset(v.iov_base, 'h', 2 * HUGE);
        ck_assert_int_eq(iomem_release(f, 0, 2 * HUGE), 0);
        /* Another handle, without asking for huge pages, finds it by name. */
        ck_assert_msg(iomem_open(&g, uri, IOMEM_RDWR, NULL) == 0, "attach: %s", iomem_errormsg());
        ck_assert_int_eq(iomem_stat(g, &st), 0);
        ck_assert_uint_eq(st.page_size, HUGE);
        char out[16];
        ck_assert_int_eq(iomem_pread(g, out, 16, HUGE + 5), 16);
        ck_assert_int_eq(out[15], 'h');
        gift_a_huge_page(g, f);
        /* Sizes in bytes; the file itself in whole huge pages. */
        ck_assert_int_eq(iomem_truncate(f, HUGE + 3), 0);
        ck_assert_int_eq(iomem_stat(g, &st), 0);
        ck_assert_uint_eq(st.size, HUGE + 3);
        snprintf(path, sizeof path, "%s/%s", dir, uri + 4);
        ck_assert_int_eq(stat(path, &sb), 0);
        ck_assert_uint_eq((uint64_t)sb.st_size, 2 * HUGE);
        ck_assert_int_eq(iomem_pwrite(g, "tail", 4, 2 * HUGE + 1), 4);
        ck_assert_int_eq(iomem_pread(f, out, 6, 2 * HUGE - 1), 6);
        ck_assert_int_eq(out[0], 0);
        ck_assert_int_eq(memcmp(out + 2, "tail", 4), 0);
        iomem_close(&g);
        iomem_close(&f);
        ck_assert_int_eq(iomem_unlink(uri), 0);
        ck_assert_int_eq(stat(path, &sb), -1);
        ck_assert_err(iomem_unlink(uri), ENOENT);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("hugepage");
        TCase *tc = tcase_create(test_backend());
        bool shm = !strcmp(test_backend(), "shm");
        if (!(test_caps() & IOMEM_CAP_HUGEPAGE)) {
                printf("SKIP: %s has no huge pages in this build (IOMEM_CAP_HUGEPAGE: hugetlbfs is "
                       "Linux's)\n", test_backend());
                return TEST_SKIP;
        }
        if (shm && geteuid() != 0) {
                printf("SKIP: shm huge pages are tested in a mount namespace of their own (root)\n");
                return TEST_SKIP;
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
        if (shm) {
                tcase_add_test(tc, shm_without_hugetlbfs_is_enodev);
                tcase_add_test(tc, shm_works_in_huge_pages);
        } else {
                tcase_add_test(tc, memfd_works_in_huge_pages);
                tcase_add_test(tc, memfd_huge_pages_bound_to_a_node);
        }
        suite_add_tcase(s, tc);
        int status = test_run(s);
        if (raised)
                write_long(nr, old);
        return status;
}
