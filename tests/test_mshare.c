/* SPDX-License-Identifier: MIT */
/*
 * What only the mshare: backend does: say where msharefs is missing, size
 * a region once (its capacity), map it at one address under the older
 * ABI, and fail cleanly once a v3 region's creator has exited. Runs on
 * the msharefs test double of IOMEM_MSHARE_DOUBLE_ABI, or on the kernel's
 * msharefs when /sys/fs/mshare is one.
 */
#include "common.h"
#include "msharefs_double.h"
#include "syscalls.h"

#include <fcntl.h>
#include <linux/ioctl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/uio.h>

#define MIB (UINT64_C(1) << 20)

/* The ABI under test: 1, 2 or 3 on the double, 0 on a real kernel. */
static int abi(void)
{
        const char *a = getenv("IOMEM_MSHARE_DOUBLE_ABI");
        if (!msharefs_double_dir())
                return 0;
        return a[0] == 'v' ? a[1] - '0' : a[0] - '0';
}

static void need_msharefs(void)
{
        if (!msharefs_double_dir() && !msharefs_real_kernel()) {
                printf("no msharefs here and IOMEM_MSHARE_DOUBLE_ABI is not set\n");
                exit(TEST_SKIP);
        }
}

static const char *uri(const char *tag)
{
        static char u[8][96];
        static unsigned n;
        char *s = u[n++ % 8];
        snprintf(s, 96, "mshare:iomem-test-%d-%s", (int)getpid(), tag);
        return s;
}

static struct iomem *create(const char *u, size_t size)
{
        struct iomem_opts *o = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, size), 0);
        struct iomem *f = NULL;
        int r = iomem_open(&f, u, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o);
        ck_assert_msg(r == 0, "open %s: %d %s", u, r, iomem_errormsg());
        iomem_opts_delete(&o);
        return f;
}

START_TEST(missing_msharefs_is_enodev_naming_the_mount)
{
        char *saved = getenv("IOMEM_MSHARE_DIR") ? strdup(getenv("IOMEM_MSHARE_DIR")) : NULL;
        setenv("IOMEM_MSHARE_DIR", "/tmp", 1);
        struct iomem *f = NULL;
        ck_assert_err(iomem_open(&f, "mshare:x", IOMEM_RDWR | IOMEM_CREATE, NULL), ENODEV);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "/tmp"));
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "mount -t msharefs"));
        ck_assert_ptr_null(f);
        struct iomem_backend_info info[8];
        ssize_t n = iomem_backends(info, 8);
        int seen = 0;
        for (ssize_t i = 0; i < n; i++)
                if (!strcmp(info[i].name, "mshare")) {
                        seen = 1;
                        ck_assert(!info[i].available);
                        ck_assert_ptr_nonnull(strstr(info[i].why, "msharefs"));
                }
        ck_assert(seen);
        if (saved)
                setenv("IOMEM_MSHARE_DIR", saved, 1);
        else
                unsetenv("IOMEM_MSHARE_DIR");
        free(saved);
}
END_TEST

START_TEST(names_are_one_component)
{
        need_msharefs();
        struct iomem *f = NULL;
        ck_assert_err(iomem_open(&f, "mshare:a/b", IOMEM_RDWR | IOMEM_CREATE, NULL), EINVAL);
        ck_assert_err(iomem_open(&f, "mshare:mshare_info", IOMEM_RDWR | IOMEM_CREATE, NULL), EINVAL);
        ck_assert_err(iomem_open(&f, uri("none"), IOMEM_RDWR, NULL), ENOENT);
        ck_assert_ptr_null(f);
}
END_TEST

START_TEST(capacity_is_fixed_when_created)
{
        need_msharefs();
        const char *u = uri("cap");
        struct iomem *f = create(u, MIB);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.size, MIB);
        /* The region is a whole number of alignments (the double's: 1 GiB
         * unless told otherwise); growing within it works, past it not. */
        ck_assert_int_eq(iomem_truncate(f, 64 * MIB), 0);
        char b = 9;
        ck_assert_int_eq(iomem_pwrite(f, &b, 1, 64 * MIB - 1), 1);
        ck_assert_err(iomem_truncate(f, (size_t)1 << 44), EFBIG);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "capacity"));
        ck_assert_int_eq(iomem_unlink(u), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
        ck_assert_err(iomem_open(&f, u, IOMEM_RDWR, NULL), ENOENT);
}
END_TEST

START_TEST(older_abi_maps_every_process_at_one_address)
{
        need_msharefs();
        if (abi() != 1) {
                printf("the fixed address is the older ABI's (running ABI %d)\n", abi());
                return;
        }
        const char *u = uri("fixed");
        struct iomem *f = create(u, MIB);
        struct iovec v;
        ck_assert_int_eq(iomem_acquire(f, 0, MIB), (ssize_t)MIB);
        ck_assert_int_eq(iomem_retrieve(f, 0, MIB, &v, 1), 1);
        pid_t pid = fork();
        if (pid == 0) {
                /* A fresh attachment in another process (the inherited one
                 * closed, so nothing is mapped): the same address. */
                struct iomem *g = NULL;
                struct iovec w;
                if (iomem_close(&f) || iomem_open(&g, u, IOMEM_RDWR, NULL) || iomem_acquire(g, 0, MIB) != (ssize_t)MIB ||
                    iomem_retrieve(g, 0, MIB, &w, 1) != 1)
                        _exit(1);
                _exit(w.iov_base == v.iov_base ? 0 : 2);
        }
        ck_assert_int_eq(test_wait(pid), 0);
        iomem_unlink(u);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

START_TEST(hugepages_need_file_backed_regions)
{
        need_msharefs();
        if (abi() == 3 || abi() == 0) {
                printf("ABI %d may map huge pages; the vm tier proves them\n", abi());
                return;
        }
        struct iomem_opts *o = NULL;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_hugepage(o, 2 * MIB), 0);
        struct iomem *f = NULL;
        ck_assert_err(iomem_open(&f, uri("huge"), IOMEM_RDWR | IOMEM_CREATE, o), ENOTSUP);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "v3"));
        iomem_opts_delete(&o);
        iomem_unlink(uri("huge"));
}
END_TEST

/* The creator (a child) makes the region and exits; an attacher's next
 * call fails with -EIDRM under v3 and finds the bytes under v1/v2. */
START_TEST(creator_exit_under_v3_is_eidrm)
{
        need_msharefs();
        if (abi() == 3 && !msharefs_double_watches_owners()) {
                printf("no pidfd_open(2) here (valgrind?): the double cannot see owners exit\n");
                return;
        }
        const char *u = uri("owner");
        int go[2], back[2];
        ck_assert_int_eq(pipe(go), 0);
        ck_assert_int_eq(pipe(back), 0);
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *c = NULL;
                struct iomem_opts *o = NULL;
                char x;
                if (iomem_opts_new(&o) || iomem_opts_set_size(o, MIB) ||
                    iomem_open(&c, u, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o) ||
                    iomem_pwrite(c, "hello", 5, 0) != 5)
                        _exit(1);
                if (write(back[1], "", 1) != 1 || read(go[0], &x, 1) != 1)
                        _exit(2);
                _exit(0); /* without closing: the kernel's rule holds however it exits */
        }
        char x, buf[5];
        ck_assert_int_eq(read(back[0], &x, 1), 1);
        struct iomem *f = NULL;
        int r = iomem_open(&f, u, IOMEM_RDWR, NULL);
        ck_assert_msg(r == 0, "attach: %d %s", r, iomem_errormsg());
        ck_assert_int_eq(iomem_pread(f, buf, 5, 0), 5);
        ck_assert(!memcmp(buf, "hello", 5));
        ck_assert_int_eq(write(go[1], "", 1), 1);
        ck_assert_int_eq(test_wait(pid), 0);
        if (msharefs_double_dir())
                msharefs_double_settle(iomem_fd(f));
        ssize_t r0 = iomem_pread(f, buf, 5, 0);
        if (abi() == 0) {
                /* The kernel's own: v3 takes the memory, the others keep
                 * it; either way an answer, never a signal. */
                ck_assert_msg(r0 == -EIDRM || (r0 == 5 && !memcmp(buf, "hello", 5)),
                              "after the creator exited: %zd %s", r0, iomem_errormsg());
        } else if (abi() == 3) {
                ck_assert_err(r0, EIDRM);
                ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "exited"));
                ck_assert_err(iomem_acquire(f, 0, 4096), EIDRM);
                struct iomem *g = NULL;
                ck_assert_err(iomem_open(&g, u, IOMEM_RDWR, NULL), EIDRM);
                ck_assert_ptr_null(g);
        } else {
                ck_assert_int_eq(r0, 5);
                ck_assert(!memcmp(buf, "hello", 5));
        }
        int fds = test_count_fds();
        ck_assert_int_eq(iomem_close(&f), 0);
        ck_assert_int_eq(test_count_fds(), fds - 1);
        if (abi() == 3) {
                /* A process that has not mapped it yet learns it too. */
                struct iomem *g = NULL;
                ck_assert_err(iomem_open(&g, u, IOMEM_RDWR, NULL), EIDRM);
                ck_assert_ptr_null(g);
                ck_assert_int_eq(test_count_fds(), fds - 1);
        }
        iomem_unlink(u);
}
END_TEST

static int (*next_ioctl)(int, unsigned long, void *);

/* CREATE_MAPPING, in either ABI the only request with 40 bytes, fails. */
static int create_mapping_fails(int fd, unsigned long req, void *arg)
{
        if (_IOC_SIZE(req) == 40) {
                errno = ENOMEM;
                return -1;
        }
        return next_ioctl(fd, req, arg);
}

START_TEST(a_failed_creation_leaves_no_region_behind)
{
        need_msharefs();
        if (!msharefs_double_dir()) {
                printf("the failure is injected into the double\n");
                return;
        }
        const char *u = uri("failed");
        struct iomem *f = NULL;
        int fds = test_count_fds();
        next_ioctl = iom_sys.ioctl;
        iom_sys.ioctl = create_mapping_fails;
        int r = iomem_open(&f, u, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL);
        iom_sys.ioctl = next_ioctl;
        ck_assert_err(r, ENOMEM);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "into its region"));
        ck_assert_ptr_null(f);
        ck_assert_int_eq(test_count_fds(), fds);
        /* A region is sized once: the half-made one is gone, name and all. */
        ck_assert_err(iomem_open(&f, u, IOMEM_RDWR, NULL), ENOENT);
        f = create(u, MIB);
        ck_assert_int_eq(iomem_pwrite(f, "ok", 2, 0), 2);
        ck_assert_int_eq(iomem_close(&f), 0);
        ck_assert_int_eq(iomem_unlink(u), 0);
}
END_TEST

static int (*next_fstat)(int, struct stat *);
static int reports_left;

/* The region's size reads as 0 once more: another process sizes it
 * between our look and our ftruncate (the 2025 ABI). */
static int size_not_yet_set(int fd, struct stat *st)
{
        int r = next_fstat(fd, st);
        if (r == 0 && reports_left && S_ISREG(st->st_mode) && st->st_size) {
                reports_left--;
                st->st_size = 0;
        }
        return r;
}

/* The same through the older ABI's GET_SIZE. */
static int get_size_not_yet_set(int fd, unsigned long req, void *arg)
{
        int r = next_ioctl(fd, req, arg);
        if (r == 0 && reports_left && req == 0x80107800ul) { /* GET_SIZE */
                reports_left--;
                ((uint64_t *)arg)[1] = 0;
        }
        return r;
}

START_TEST(creating_what_another_process_just_created_attaches)
{
        need_msharefs();
        if (!msharefs_double_dir()) {
                printf("the race is staged in the double\n");
                return;
        }
        const char *u = uri("race");
        struct iomem *first = create(u, MIB), *second = NULL;
        ck_assert_int_eq(iomem_pwrite(first, "theirs", 6, 0), 6);
        next_fstat = iom_sys.fstat;
        next_ioctl = iom_sys.ioctl;
        if (abi() == 1)
                iom_sys.ioctl = get_size_not_yet_set;
        else
                iom_sys.fstat = size_not_yet_set;
        reports_left = 1;
        int r = iomem_open(&second, u, IOMEM_RDWR | IOMEM_CREATE, NULL);
        iom_sys.fstat = next_fstat;
        iom_sys.ioctl = next_ioctl;
        ck_assert_msg(r == 0, "open: %d %s", r, iomem_errormsg());
        ck_assert_int_eq(reports_left, 0); /* the race was met */
        char buf[6];
        ck_assert_int_eq(iomem_pread(second, buf, 6, 0), 6);
        ck_assert(!memcmp(buf, "theirs", 6));
        ck_assert_int_eq(iomem_close(&second), 0);
        ck_assert_int_eq(iomem_close(&first), 0);
        ck_assert_int_eq(iomem_unlink(u), 0);
}
END_TEST

/* A thread maps a new region, holding the process's table of region
 * mappings, when another thread forks: it is held inside its mmap until the
 * fork has begun (this test's prepare handler, which runs before the
 * library's). */
static void *(*next_mmap)(void *, size_t, int, int, int, off_t);
static int mapping[2], forking[2];
static bool hold_next_region_map, held;

static void *mmap_until_fork(void *at, size_t len, int prot, int flags, int fd, off_t off)
{
        char x;
        if (hold_next_region_map && fd >= 0 && (flags & MAP_SHARED)) {
                hold_next_region_map = false;
                __atomic_store_n(&held, true, __ATOMIC_RELEASE);
                if (write(mapping[1], "", 1) != 1 || read(forking[0], &x, 1) != 1)
                        abort();
        }
        return next_mmap(at, len, prot, flags, fd, off);
}

/* Only the fork the held thread waits for lets it go: the double's v3
 * forks too (a watcher), and a byte for each of those would let a later
 * round's thread through before its fork. */
static void fork_begins(void)
{
        if (__atomic_exchange_n(&held, false, __ATOMIC_ACQ_REL) && write(forking[1], "", 1) != 1)
                abort();
}

static void *create_region_b(void *u)
{
        return create(u, MIB);
}

/* The child of that fork opens a region: the table's lock is not left held
 * in it (it would wait forever; the alarm ends it instead). Without the
 * library's fork handlers, whether the thread still holds the lock when the
 * child is copied is a matter of timing: hence rounds (on the double, v1's
 * and v2's children then hung in every run, v3's did not). */
START_TEST(a_fork_while_a_region_is_mapped_leaves_the_child_able_to_open)
{
        need_msharefs();
        char ua[96];
        snprintf(ua, sizeof ua, "%s", uri("fork-a")); /* uri()'s buffers are reused */
        struct iomem *a = create(ua, MIB);
        ck_assert_int_eq(pipe(mapping), 0);
        ck_assert_int_eq(pipe(forking), 0);
        ck_assert_int_eq(pthread_atfork(fork_begins, NULL, NULL), 0);
        next_mmap = iom_sys.mmap;
        iom_sys.mmap = mmap_until_fork;
        for (int round = 0; round < 10; round++) {
                const char *ub = uri("fork-b");
                pthread_t t;
                char x;
                hold_next_region_map = true;
                ck_assert_int_eq(pthread_create(&t, NULL, create_region_b, (void *)ub), 0);
                ck_assert_int_eq(read(mapping[0], &x, 1), 1);
                pid_t pid = fork();
                if (pid == 0) {
                        /* No ck_assert here: Check records every assertion
                         * under a mutex that the other thread may have held
                         * at the fork (its create asserts too). */
                        struct iomem *g = NULL;
                        /* Check's SIGALRM handler, inherited, would kill
                         * the whole test's process group: a hung child
                         * dies of the alarm alone and the wait says so. */
                        signal(SIGALRM, SIG_DFL);
                        alarm(30);
                        if (iomem_open(&g, ua, IOMEM_RDWR, NULL)) {
                                fprintf(stderr, "child: %s\n", iomem_errormsg());
                                _exit(1);
                        }
                        _exit(0);
                }
                ck_assert_int_ge(pid, 0);
                void *made;
                ck_assert_int_eq(pthread_join(t, &made), 0);
                ck_assert_int_eq(test_wait(pid), 0);
                struct iomem *b = made;
                ck_assert_int_eq(iomem_close(&b), 0);
                ck_assert_int_eq(iomem_unlink(ub), 0);
        }
        iom_sys.mmap = next_mmap;
        ck_assert_int_eq(iomem_close(&a), 0);
        ck_assert_int_eq(iomem_unlink(ua), 0);
}
END_TEST

/* The double's alignment as the suite set it, saved and put back around
 * the tests that set their own: that is written in the double's
 * directory, which every test shares. */
static uint64_t suite_alignment;

static void save_alignment(void)
{
        suite_alignment = msharefs_double_alignment();
}

static void restore_alignment(void)
{
        if (abi())
                msharefs_double_install(abi(), suite_alignment);
}

/* A producer gifts 100 times its region's size, in buffers of mixed
 * sizes at random places, through a region whose gift pool holds less
 * than twice its live data: the pool's offsets are reused (and, when
 * what is free is in pieces too small, the gifted bytes are put in place
 * to make room), so no call fails, and every byte is the last one given,
 * read here and from another process. */
START_TEST(gifting_a_hundred_times_the_region_never_runs_dry)
{
        need_msharefs();
        if (!abi()) {
                printf("the region's alignment is the kernel's; the double's sets a small one\n");
                return;
        }
        ck_assert_int_eq(msharefs_double_install(abi(), 16 * MIB), 0); /* restore_alignment after */
        const size_t size = 4 * MIB, region = 16 * MIB;
        static const size_t lens[] = { 4096, 16384, 65536, 262144, MIB, 2 * MIB };
        const char *u = uri("dry");
        struct iomem *f = create(u, size);
        ck_assert_int_eq(iomem_truncate(f, size), 0);
        unsigned char *shadow = calloc(1, size), *got = malloc(size);
        ck_assert_ptr_nonnull(shadow);
        ck_assert_ptr_nonnull(got);
        uint64_t rng = 42, gifted = 0;
        for (unsigned i = 1; gifted < 100 * region; i++) {
                rng = rng * 6364136223846793005u + 1442695040888963407u;
                size_t len = lens[(rng >> 33) % 6];
                size_t off = (size_t)((rng >> 13) % ((size - len) / 4096 + 1)) * 4096;
                unsigned char *p;
                ck_assert_msg(iomem_alloc(f, len, (void **)&p) == 0, "alloc %zu after %llu bytes: %s",
                              len, (unsigned long long)gifted, iomem_errormsg());
                ck_assert_msg(p[0] == 0 && p[len / 2] == 0 && p[len - 1] == 0,
                              "a buffer cut from reused memory is not zeroed");
                memset(p, (int)(i & 0xff), len);
                if (i % 8 == 0) { /* given back unused */
                        ck_assert_int_eq(iomem_free(f, p, len), 0);
                        continue;
                }
                struct iovec v = { p, len };
                ck_assert_msg(iomem_gift(f, off, len, &v, 1, IOMEM_GIFT_NOCOPY) == 1,
                              "gift %zu at %zu after %llu bytes: %s", len, off,
                              (unsigned long long)gifted, iomem_errormsg());
                memset(shadow + off, (int)(i & 0xff), len);
                gifted += len;
                if (i % 512 == 0) {
                        ck_assert_int_eq(iomem_pread(f, got, size, 0), (ssize_t)size);
                        ck_assert_msg(!memcmp(got, shadow, size), "bytes differ after %u gifts", i);
                }
        }
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.pool_held, 0);
        ck_assert_uint_le(st.pool_free, size + 64 * MIB); /* the keep limit */
        printf("%llu bytes gifted through a %zu-byte region; the pool spans %llu, keeps %llu free\n",
               (unsigned long long)gifted, region, (unsigned long long)st.pool_span,
               (unsigned long long)st.pool_free);
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *g;
                if (iomem_open(&g, u, IOMEM_RDONLY, NULL) || iomem_pread(g, got, size, 0) != (ssize_t)size)
                        _exit(2);
                _exit(memcmp(got, shadow, size) ? 1 : 0);
        }
        ck_assert_int_eq(test_wait(pid), 0);
        ck_assert_int_eq(iomem_unlink(u), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
        free(shadow);
        free(got);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("mshare");
        TCase *t = tcase_create("mshare");
        tcase_add_test(t, missing_msharefs_is_enodev_naming_the_mount);
        tcase_add_test(t, names_are_one_component);
        tcase_add_test(t, capacity_is_fixed_when_created);
        tcase_add_test(t, older_abi_maps_every_process_at_one_address);
        tcase_add_test(t, hugepages_need_file_backed_regions);
        tcase_add_test(t, creator_exit_under_v3_is_eidrm);
        tcase_add_test(t, a_failed_creation_leaves_no_region_behind);
        tcase_add_test(t, creating_what_another_process_just_created_attaches);
        /* A race of threads and fork, which valgrind (serialising threads,
         * its children killed over region mappings) cannot judge. */
        if (test_under_valgrind())
                printf("SKIP: mshare: a fork while a region is mapped (not under valgrind)\n");
        else
                tcase_add_test(t, a_fork_while_a_region_is_mapped_leaves_the_child_able_to_open);
        suite_add_tcase(s, t);
        TCase *pool = tcase_create("pool");
        tcase_add_unchecked_fixture(pool, save_alignment, restore_alignment);
        tcase_add_test(pool, gifting_a_hundred_times_the_region_never_runs_dry);
        suite_add_tcase(s, pool);
        return test_run(s);
}
