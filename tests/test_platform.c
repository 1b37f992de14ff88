/* SPDX-License-Identifier: MIT */
/*
 * The platform layer (lib/platform.h) as each build has it: Linux's, or
 * POSIX alone (meson -Dplatform=posix). Each case checks what the layer
 * promises on the platform built, and where a fallback promises less,
 * that it says so rather than pretending. Linked against the static
 * library, so the hidden iom_* names resolve.
 */
#include "config.h"
#include "common.h"
#include "platform.h"
#include "syscalls.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#define PG 4096

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- waiting on a shared word ------------------------------------------ */

START_TEST(word_wait_times_out_while_unchanged)
{
        uint32_t word = 7;
        uint64_t t0 = now_ns();
        ck_assert_int_eq(iom_word_wait(&word, 7, 30000000), -ETIMEDOUT);
        ck_assert_uint_ge(now_ns() - t0, 30000000);
        /* A word that differs already: no wait at all. */
        ck_assert_int_eq(iom_word_wait(&word, 8, 5000000000u), 0);
}
END_TEST

struct waker {
        uint32_t *word;
};

static void *change_and_wake(void *arg)
{
        struct waker *w = arg;
        __atomic_store_n(w->word, 1, __ATOMIC_RELEASE);
        iom_word_wake_all(w->word);
        return NULL;
}

/* Whatever the order of the change and the wait, the wait ends long
 * before its 10 s: woken, or it saw the change. */
START_TEST(word_wait_ends_when_another_thread_changes_it)
{
        for (int round = 0; round < 20; round++) {
                uint32_t word = 0;
                struct waker w = { &word };
                pthread_t t;
                uint64_t t0 = now_ns();
                ck_assert_int_eq(pthread_create(&t, NULL, change_and_wake, &w), 0);
                int r;
                while ((r = iom_word_wait(&word, 0, 10000000000u)) == -EINTR)
                        ;
                ck_assert_int_eq(r, 0);
                ck_assert_uint_lt(now_ns() - t0, 5000000000u);
                pthread_join(t, NULL);
        }
}
END_TEST

/* The same across processes, on shared memory. */
START_TEST(word_wait_ends_when_another_process_changes_it)
{
        uint32_t *word = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(word, MAP_FAILED);
        *word = 0;
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int r;
                while ((r = iom_word_wait(word, 0, 10000000000u)) == -EINTR)
                        ;
                _exit(r == 0 && *word == 1 ? 0 : 1);
        }
        __atomic_store_n(word, 1, __ATOMIC_RELEASE);
        iom_word_wake_all(word);
        ck_assert_int_eq(test_wait(pid), 0);
        munmap(word, PG);
}
END_TEST

/* ---- threads ----------------------------------------------------------- */

static void *report_id(void *arg)
{
        *(int *)arg = iom_thread_id();
        return NULL;
}

START_TEST(a_thread_is_gone_once_it_has_exited)
{
        int self = iom_thread_id(), other = 0;
        ck_assert_int_ne(self, 0);
        ck_assert_int_eq(iom_thread_id(), self);
        ck_assert(!iom_thread_gone(self));
        pthread_t t;
        ck_assert_int_eq(pthread_create(&t, NULL, report_id, &other), 0);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
        ck_assert_int_ne(other, 0);
        ck_assert_int_ne(other, self);
        ck_assert(iom_thread_gone(other));
        ck_assert(!iom_thread_gone(self));
}
END_TEST

/* ---- files ------------------------------------------------------------- */

static int temp_file(char *path, size_t cap)
{
        snprintf(path, cap, "/dev/shm/iomem-test-%d-platform-XXXXXX", (int)getpid());
        int fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        unlink(path);
        return fd;
}

static long blocks_of(int fd)
{
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        return (long)st.st_blocks;
}

/* A punched range reads as zeros and the size stays; a hole punched
 * again takes no memory (Linux frees it; POSIX writes zeros only over
 * bytes that are not zero). */
START_TEST(punching_zeroes_and_keeps_the_size)
{
        char path[128], buf[4 * PG], zeros[4 * PG] = { 0 };
        int fd = temp_file(path, sizeof path);
        ck_assert_int_eq(ftruncate(fd, 16 * PG), 0);
        memset(buf, 'x', sizeof buf);
        ck_assert_int_eq(pwrite(fd, buf, sizeof buf, 4 * PG), (ssize_t)sizeof buf);
        ck_assert_int_eq(iom_sys.fallocate(fd, IOM_FALLOC_PUNCH_HOLE | IOM_FALLOC_KEEP_SIZE, 4 * PG,
                                           4 * PG), 0);
        ck_assert_int_eq(pread(fd, buf, sizeof buf, 4 * PG), (ssize_t)sizeof buf);
        ck_assert_int_eq(memcmp(buf, zeros, sizeof buf), 0);
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, 16 * PG);
        long before = blocks_of(fd);
        ck_assert_int_eq(iom_sys.fallocate(fd, IOM_FALLOC_PUNCH_HOLE | IOM_FALLOC_KEEP_SIZE, 8 * PG,
                                           8 * PG), 0);
        ck_assert_int_le(blocks_of(fd), before);
        close(fd);
}
END_TEST

/* Allocation reserves memory (the file's blocks grow) without changing
 * the size when asked to keep it; past the end, nothing is reserved on
 * POSIX, which cannot keep the size. */
START_TEST(allocation_reserves_and_keeps_the_size)
{
        char path[128];
        int fd = temp_file(path, sizeof path);
        ck_assert_int_eq(ftruncate(fd, 8 * PG), 0);
        long before = blocks_of(fd);
        ck_assert_int_eq(iom_sys.fallocate(fd, IOM_FALLOC_KEEP_SIZE, 0, 16 * PG), 0);
        struct stat st;
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, 8 * PG);
        if (iom_platform_allocation_reserves)
                ck_assert_int_ge(blocks_of(fd) - before, 8 * PG / 512);
        ck_assert_int_eq(iom_sys.fallocate(fd, 0, 0, 12 * PG), 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(st.st_size, 12 * PG);
        close(fd);
}
END_TEST

START_TEST(filesystems_are_told_apart_where_the_platform_can)
{
        char path[128];
        int fd = temp_file(path, sizeof path);
        struct iom_fsinfo info;
        ck_assert_int_eq(iom_sys.fstatfs(fd, &info), 0);
        ck_assert_int_eq(info.kind, IOMEM_PLATFORM_LINUX ? IOM_FS_TMPFS : IOM_FS_OTHER);
        ck_assert_uint_gt(info.block_size, 0);
        close(fd);
}
END_TEST

/* Linux reopens a descriptor and lists this process's files; POSIX says
 * it cannot (ENOTSUP), never an answer made up. */
START_TEST(descriptors_reopen_and_list_only_where_they_can)
{
        char path[128], got[4096];
        int fd = temp_file(path, sizeof path);
        int ro = iom_file_reopen(fd, O_RDONLY | O_CLOEXEC);
        if (IOMEM_PLATFORM_LINUX) {
                ck_assert_int_ge(ro, 0);
                ck_assert_int_eq(fcntl(ro, F_GETFL) & O_ACCMODE, O_RDONLY);
                close(ro);
                ck_assert_int_eq(iom_file_path(fd, got, sizeof got), -ENOENT); /* unlinked */
                ck_assert(iom_platform_lists_files);
        } else {
                ck_assert_int_eq(ro, -1);
                ck_assert_int_eq(errno, ENOTSUP);
                ck_assert_int_eq(iom_file_path(fd, got, sizeof got), -ENOTSUP);
                ck_assert(!iom_platform_lists_files);
                ck_assert_int_eq(iom_xattr_get(fd, "user.x", got, sizeof got), -1);
                ck_assert_int_eq(errno, ENOSYS);
        }
        close(fd);
}
END_TEST

START_TEST(process_state_is_known_only_where_it_can_be)
{
        char state = 0;
        long threads = 0;
        uint64_t start = 0;
        bool known = iom_process_stat(getpid(), &state, &threads, &start);
        ck_assert(known == IOMEM_PLATFORM_LINUX);
        if (known) {
                ck_assert(state == 'R' || state == 'S');
                ck_assert_int_ge(threads, 1);
                ck_assert_uint_gt(start, 0);
        }
}
END_TEST

/* ---- advice ------------------------------------------------------------ */

START_TEST(advice_values_are_the_systems_own)
{
        ck_assert_int_eq(iom_advice_kind(POSIX_MADV_WILLNEED), IOM_ADV_WILLNEED);
        ck_assert_int_eq(iom_advice_kind(POSIX_MADV_DONTNEED), IOM_ADV_DONTNEED);
        ck_assert_ptr_nonnull(iom_advice_name(POSIX_MADV_RANDOM));
        ck_assert_int_eq(iom_advice_kind(12345), IOM_ADV_UNKNOWN);
        ck_assert_ptr_null(iom_advice_name(12345));
        void *p = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(p, MAP_FAILED);
        ck_assert_int_eq(iom_advise(p, PG, IOM_ADV_WILLNEED), 0);
        if (!IOMEM_PLATFORM_LINUX) {
                ck_assert_int_eq(iom_advise(p, PG, IOM_ADV_COLD), -1);
                ck_assert_int_eq(errno, ENOTSUP);
        }
        munmap(p, PG);
}
END_TEST

/* ---- datagram names ---------------------------------------------------- */

START_TEST(datagram_names_are_unique_checked_and_let_go)
{
        char a[24], b[24];
        size_t na, nb;
        int s1 = socket(AF_UNIX, SOCK_DGRAM, 0), s2 = socket(AF_UNIX, SOCK_DGRAM, 0);
        ck_assert_int_ge(s1, 0);
        ck_assert_int_ge(s2, 0);
        ck_assert_int_eq(iom_dgram_bind_unique(s1, a, sizeof a, &na), 0);
        ck_assert_int_eq(iom_dgram_bind_unique(s2, b, sizeof b, &nb), 0);
        ck_assert(na != nb || memcmp(a, b, na));
        ck_assert(iom_dgram_name_valid(a, na));
        /* Spoilt names from shared memory are never sent to. */
        ck_assert(!iom_dgram_name_valid("/etc/passwd", 12));
        ck_assert(!iom_dgram_name_valid(a, 0));
        char spoilt[24];
        memcpy(spoilt, a, na);
        spoilt[0] ^= 0x55;
        ck_assert(!iom_dgram_name_valid(spoilt, na));
        if (!IOMEM_PLATFORM_LINUX) {
                /* A file under /tmp, removed when let go. */
                struct stat st;
                ck_assert_int_eq(stat(a, &st), 0);
                ck_assert(S_ISSOCK(st.st_mode));
                memcpy(spoilt, a, na);
                spoilt[na - 1] = 'x'; /* no NUL */
                ck_assert(!iom_dgram_name_valid(spoilt, na));
                iom_dgram_unbind(a, na);
                ck_assert_int_eq(stat(a, &st), -1);
                ck_assert_int_eq(errno, ENOENT);
                iom_dgram_unbind(b, nb);
        }
        close(s1);
        close(s2);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("platform");
        TCase *tc = tcase_create(iom_platform_name);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, word_wait_times_out_while_unchanged);
        tcase_add_test(tc, word_wait_ends_when_another_thread_changes_it);
        tcase_add_test(tc, word_wait_ends_when_another_process_changes_it);
        tcase_add_test(tc, a_thread_is_gone_once_it_has_exited);
        tcase_add_test(tc, punching_zeroes_and_keeps_the_size);
        tcase_add_test(tc, allocation_reserves_and_keeps_the_size);
        tcase_add_test(tc, filesystems_are_told_apart_where_the_platform_can);
        tcase_add_test(tc, descriptors_reopen_and_list_only_where_they_can);
        tcase_add_test(tc, process_state_is_known_only_where_it_can_be);
        tcase_add_test(tc, advice_values_are_the_systems_own);
        tcase_add_test(tc, datagram_names_are_unique_checked_and_let_go);
        suite_add_tcase(s, tc);
        return test_run(s);
}
