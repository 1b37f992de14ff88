/* SPDX-License-Identifier: MIT */
/*
 * Transparent huge pages. Where tmpfs gives huge pages only to mappings
 * that ask for them (huge=advise), an object's memory comes in 2 MiB
 * pages and iomem_stat() says IOMEM_CAP_THP; where tmpfs never gives
 * them, neither. Huge pages are counted where the kernel maps them,
 * ShmemPmdMapped in /proc/self/smaps.
 *
 * shm objects get a tmpfs of their own over /dev/shm, in a mount
 * namespace of each test's own. memfd objects live in the kernel's own
 * mount, whose policy is the sysctl shmem_enabled: the suite sets it for
 * each test and puts it back at the end (it runs alone). Both need root.
 * Links the static archive for the library's reading of sysfs.
 */
#include "common.h"

#include "thp.h"

#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mount.h>

#define MIB ((size_t)1 << 20)
#define HUGE (2 * MIB)
#define SHMEM_ENABLED "/sys/kernel/mm/transparent_hugepage/shmem_enabled"
#define SHMEM_ENABLED_PMD "/sys/kernel/mm/transparent_hugepage/hugepages-2048kB/shmem_enabled"

static bool is_shm(void)
{
        return !strcmp(test_backend(), "shm");
}

static bool write_word(const char *path, const char *word)
{
        FILE *fp = fopen(path, "w");
        return fp && fputs(word, fp) >= 0 && fclose(fp) == 0;
}

/* The memory of this test's objects is given huge pages per mode
 * ("advise" or "never"). */
static void tmpfs_policy(const char *mode)
{
        if (!is_shm()) {
                ck_assert_msg(write_word(SHMEM_ENABLED, mode), "write %s: %s", SHMEM_ENABLED,
                              strerror(errno));
                return;
        }
        char opts[64];
        snprintf(opts, sizeof opts, "huge=%s,size=64m,mode=1777", mode);
        ck_assert_int_eq(unshare(CLONE_NEWNS), 0);
        ck_assert_int_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
        ck_assert_msg(mount("tmpfs", "/dev/shm", "tmpfs", 0, opts) == 0, "mount tmpfs %s: %s", opts,
                      strerror(errno));
}

/* kB of the mapping around addr that the kernel maps in huge pages. */
static long huge_mapped_kb(const void *addr)
{
        FILE *fp = fopen("/proc/self/smaps", "r");
        char line[512];
        bool inside = false;
        long kb = -1;
        while (fp && kb < 0 && fgets(line, sizeof line, fp)) {
                uintptr_t lo, hi;
                if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
                        inside = lo <= (uintptr_t)addr && (uintptr_t)addr < hi;
                else if (inside)
                        sscanf(line, "ShmemPmdMapped: %ld kB", &kb);
        }
        if (fp)
                fclose(fp);
        ck_assert_msg(kb >= 0, "no ShmemPmdMapped for %p in /proc/self/smaps", addr);
        return kb;
}

/* Acquire all of f, fill it, and return how many kB of it are huge. */
static long fill_and_measure(struct iomem *f, size_t len)
{
        struct iovec v[4];
        ck_assert_int_eq(iomem_acquire(f, 0, len), (ssize_t)len);
        ck_assert_int_eq(iomem_retrieve(f, 0, len, v, 4), 1);
        memset(v[0].iov_base, 't', len);
        long kb = huge_mapped_kb(v[0].iov_base);
        ck_assert_int_eq(iomem_release(f, 0, len), 0);
        return kb;
}

START_TEST(huge_pages_where_tmpfs_waits_for_advice)
{
        tmpfs_policy("advise");
        const size_t len = 8 * MIB;
        struct iomem *f = test_open_new("thp", len);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.caps & IOMEM_CAP_THP, IOMEM_CAP_THP);
        ck_assert_uint_eq(st.page_size, (size_t)sysconf(_SC_PAGESIZE));
        long kb = fill_and_measure(f, len);
        printf("%s: %ld of %zu kB in huge pages\n", test_backend(), kb, len >> 10);
        ck_assert_int_ge(kb, (long)(HUGE >> 10));
        /* Base-page operations split a huge page where they must: the cut
         * off bytes come back as zeros, the rest stays. */
        ck_assert_int_eq(iomem_truncate(f, 3 * MIB + 5), 0);
        ck_assert_int_eq(iomem_truncate(f, len), 0);
        char out[8];
        ck_assert_int_eq(iomem_pread(f, out, 8, 3 * MIB), 8);
        ck_assert_int_eq(memcmp(out, "ttttt\0\0\0", 8), 0);
        ck_assert_int_eq(iomem_pread(f, out, 1, len - 1), 1);
        ck_assert_int_eq(out[0], 0);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

START_TEST(base_pages_where_tmpfs_never_gives_huge)
{
        tmpfs_policy("never");
        struct iomem *f = test_open_new("nothp", 8 * MIB);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.caps & IOMEM_CAP_THP, 0);
        ck_assert_int_eq(fill_and_measure(f, 8 * MIB), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

int main(void)
{
        char global[32], pmd[32];
        iom_sysfs_choice(SHMEM_ENABLED, global, sizeof global);
        iom_sysfs_choice(SHMEM_ENABLED_PMD, pmd, sizeof pmd);
        if (geteuid() != 0) {
                printf("SKIP: the tmpfs policy for huge pages is set by root\n");
                return TEST_SKIP;
        }
        if (!*global || !strcmp(global, "deny") || !strcmp(global, "force") ||
            (!is_shm() && strcmp(pmd, "inherit"))) {
                printf("SKIP: shmem_enabled is [%s] (2 MiB: [%s]): it overrides what the test sets\n",
                       global, pmd);
                return TEST_SKIP;
        }
        Suite *s = suite_create("thp");
        TCase *tc = tcase_create(test_backend());
        tcase_add_test(tc, huge_pages_where_tmpfs_waits_for_advice);
        tcase_add_test(tc, base_pages_where_tmpfs_never_gives_huge);
        suite_add_tcase(s, tc);
        int status = test_run(s);
        if (!is_shm() && !write_word(SHMEM_ENABLED, global)) {
                fprintf(stderr, "cannot put %s back to %s: %s\n", SHMEM_ENABLED, global, strerror(errno));
                status = EXIT_FAILURE;
        }
        return status;
}
