/* SPDX-License-Identifier: MIT */
/*
 * Past every wall the shared tables once had (2048 extents, 2048 pins,
 * 128 handles, 128 readers, 512 buffers): 10^5 scattered regions, 10^4
 * scattered pins, 1000 handles in 10 processes, each checked byte by byte
 * and error by error; and processes killed while the tables grow, after
 * which nothing is lost. Runs on memfd and shm (the fd engine's tables).
 * Processes take turns through pipes, never sleeps.
 */
#include "common.h"

#include <signal.h>
#include <sys/mman.h>

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))

/* The byte that region i holds after write round r. */
static char mark(size_t i, unsigned r)
{
        return (char)('A' + (i * 7 + r) % 26);
}

static struct iomem *open_new(const char *tag, size_t size, char *uri)
{
        snprintf(uri, 128, "%s", test_uri(tag));
        struct iomem_opts *o;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, size), 0);
        struct iomem *f = NULL;
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o), 0);
        iomem_opts_delete(&o);
        return f;
}

static void remove_object(struct iomem **f, const char *uri)
{
        ck_assert_int_eq(iomem_close(f), 0);
        if (test_caps() & IOMEM_CAP_NAMED)
                ck_assert_int_eq(iomem_unlink(uri), 0);
}

/* Another handle of the object, as another process opens it. */
static struct iomem *attach(struct iomem *f, const char *uri)
{
        struct iomem *g = NULL;
        int r;
        if (test_caps() & IOMEM_CAP_NAMED) {
                r = iomem_open(&g, uri, IOMEM_RDWR, NULL);
        } else {
                int fd = dup(iomem_fd(f));
                r = iomem_open_fd(&g, test_backend(), fd, IOMEM_RDWR, NULL);
                if (r)
                        close(fd);
        }
        return r ? NULL : g;
}

/* Every byte of the object: region i (page 2i, byte i % PAGE) holds
 * mark(i, round) for i < done, for i == done either the old or the new
 * mark (a write cut short by a kill), and every other byte is zero. */
static void expect_regions(struct iomem *f, size_t regions, size_t done, unsigned round)
{
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.size, 2 * regions * PAGE);
        char *buf = malloc(st.size);
        ck_assert_ptr_nonnull(buf);
        ck_assert_int_eq(iomem_pread(f, buf, st.size, 0), (ssize_t)st.size);
        for (size_t i = 0; i < regions; i++) {
                size_t at = 2 * i * PAGE + i % PAGE;
                char want = i < done ? mark(i, round) : round ? mark(i, round - 1) : 0;
                if (buf[at] != want && !(i == done && buf[at] == mark(i, round)))
                        ck_abort_msg("region %zu holds %d, not %d", i, buf[at], want);
                buf[at] = 0;
        }
        for (size_t b = 0; b < st.size; b++)
                if (buf[b])
                        ck_abort_msg("byte %zu outside every region holds %d", b, buf[b]);
        free(buf);
}

/* ---- 10^5 regions ------------------------------------------------------------ */

#define REGIONS 100000

static void write_regions(struct iomem *f, size_t from, size_t to, unsigned round)
{
        for (size_t i = from; i < to; i++) {
                char c = mark(i, round);
                ssize_t r = iomem_pwrite(f, &c, 1, 2 * i * PAGE + i % PAGE);
                if (r != 1)
                        ck_abort_msg("pwrite of region %zu: %zd %s", i, r, iomem_errormsg());
        }
}

START_TEST(scattered_writes_past_the_old_wall)
{
        char uri[128];
        struct iomem *f = open_new("scale-regions", 2 * REGIONS * PAGE, uri);
        /* In a scattered order: the map grows in the middle, not only at
         * its end. */
        for (size_t k = 0; k < 8; k++)
                for (size_t i = k; i < REGIONS; i += 8)
                        write_regions(f, i, i + 1, 0);
        expect_regions(f, REGIONS, REGIONS, 0);
        /* Data, hole, data, ...: one entry each. */
        ck_assert_int_eq(iomem_bufcount(f, 0, 2 * REGIONS * PAGE), 2 * REGIONS);
        /* Rewriting the regions does not grow the map. */
        write_regions(f, 0, REGIONS, 1);
        expect_regions(f, REGIONS, REGIONS, 1);
        ck_assert_int_eq(iomem_bufcount(f, 0, 2 * REGIONS * PAGE), 2 * REGIONS);
        /* Another process sees every byte. */
        struct iomem *g = attach(f, uri);
        ck_assert_ptr_nonnull(g);
        expect_regions(g, REGIONS, REGIONS, 1);
        ck_assert_int_eq(iomem_close(&g), 0);
        /* Shrinking drops the extents past the end; growing back reads
         * zeros there. */
        ck_assert_int_eq(iomem_truncate(f, REGIONS * PAGE), 0);
        ck_assert_int_eq(iomem_truncate(f, 2 * REGIONS * PAGE), 0);
        char *buf = malloc(REGIONS * PAGE);
        ck_assert_int_eq(iomem_pread(f, buf, REGIONS * PAGE, REGIONS * PAGE), (ssize_t)(REGIONS * PAGE));
        for (size_t b = 0; b < REGIONS * PAGE; b++)
                if (buf[b])
                        ck_abort_msg("byte %zu past the old end holds %d", REGIONS * PAGE + b, buf[b]);
        free(buf);
        remove_object(&f, uri);
}
END_TEST

/* ---- 10^4 pins ------------------------------------------------------------------ */

#define PINS 10000

START_TEST(ten_thousand_scattered_pins)
{
        char uri[128];
        struct iomem *f = open_new("scale-pins", 2 * PINS * PAGE, uri);
        for (size_t i = 0; i < PINS; i++) {
                ssize_t r = iomem_acquire(f, (2 * (PINS - 1 - i)) * PAGE, PAGE);
                if (r != (ssize_t)PAGE)
                        ck_abort_msg("acquire %zu: %zd %s", i, r, iomem_errormsg());
        }
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.acquired, PINS * PAGE);
        /* Another process's truncate and gift meet the pins; the error
         * names the first pinned range in the way and who holds it. */
        struct iomem *g = attach(f, uri);
        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(iomem_truncate(g, 2 * (PINS - 1) * PAGE - 1), -EBUSY);
        char want[128];
        snprintf(want, sizeof want, "bytes [%zu, %zu) are pinned (acquired) by process %d",
                 2 * (PINS - 1) * PAGE, 2 * (PINS - 1) * PAGE + PAGE, (int)getpid());
        ck_assert_msg(strstr(iomem_errormsg(), want), "%s", iomem_errormsg());
        char c = 'g';
        struct iovec v = { &c, 1 };
        ck_assert_int_eq(iomem_gift(g, 2 * 5000 * PAGE, 1, &v, 1, 0), -EBUSY);
        ck_assert_int_eq(iomem_gift(g, (2 * 5000 + 1) * PAGE, 1, &v, 1, 0), 1); /* between pins */
        /* Writes through the pins land; release them in another order. */
        for (size_t i = 0; i < PINS; i += 2) {
                struct iovec m;
                ck_assert_int_eq(iomem_retrieve(f, 2 * i * PAGE, PAGE, &m, 1), 1);
                *(char *)m.iov_base = mark(i, 0);
        }
        for (size_t i = 0; i < PINS; i++)
                ck_assert_int_eq(iomem_release(f, 2 * i * PAGE, PAGE), 0);
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.acquired, 0);
        for (size_t i = 0; i < PINS; i += 2) {
                ck_assert_int_eq(iomem_pread(g, &c, 1, 2 * i * PAGE), 1);
                ck_assert_int_eq(c, mark(i, 0));
        }
        ck_assert_int_eq(iomem_truncate(g, PAGE), 0);
        ck_assert_int_eq(iomem_close(&g), 0);
        remove_object(&f, uri);
}
END_TEST

/* ---- 1000 handles in 10 processes -------------------------------------------------- */

#define PROCESSES 10
#define HANDLES_EACH 100
/* Each handle maps 1 GiB of address space for the metadata and as much
 * for the data; valgrind gives a process 128 GiB. */
#define HANDLES_EACH_UNDER_VALGRIND 20

START_TEST(a_thousand_handles_in_ten_processes)
{
        if (!test_forked_children_run("a thousand handles in ten processes"))
                return;
        const int each = test_under_valgrind() ? HANDLES_EACH_UNDER_VALGRIND : HANDLES_EACH;
        if (each < HANDLES_EACH)
                printf("NOTE: %d handles in each process under valgrind, not %d\n", each, HANDLES_EACH);
        fflush(stdout); /* before the children copy the buffer */
        char uri[128];
        size_t pages = PROCESSES * (size_t)each;
        struct iomem *f = open_new("scale-handles", pages * PAGE, uri);
        int ready[2], go[2];
        ck_assert_int_eq(pipe(ready), 0);
        ck_assert_int_eq(pipe(go), 0);
        pid_t pid[PROCESSES];
        for (int k = 0; k < PROCESSES; k++) {
                if ((pid[k] = fork()) == 0) {
                        static struct iomem *h[HANDLES_EACH];
                        int opened = 0;
                        bool ok = true;
                        for (; opened < each && ok; opened++) {
                                size_t page = (size_t)(k * each + opened);
                                char c = mark(page, 0);
                                ok = (h[opened] = attach(f, uri)) &&
                                     iomem_acquire(h[opened], page * PAGE, PAGE) == (ssize_t)PAGE &&
                                     iomem_pwrite(h[opened], &c, 1, page * PAGE) == 1;
                                if (!ok) /* the parent is told, not left waiting */
                                        fprintf(stderr, "child %d, handle %d: %s\n", k, opened, iomem_errormsg());
                        }
                        char x = ok ? 'r' : 'f';
                        if (write(ready[1], &x, 1) != 1 || read(go[0], &x, 1) != 1)
                                _exit(91);
                        for (int j = 0; j < opened; j++)
                                if (h[j] && iomem_close(&h[j]))
                                        _exit(92);
                        _exit(ok ? 0 : 90);
                }
        }
        int failed = 0;
        for (int k = 0; k < PROCESSES; k++) {
                char x;
                ck_assert_int_eq(read(ready[0], &x, 1), 1);
                failed += x != 'r';
        }
        if (failed) {
                for (int k = 0; k < PROCESSES; k++)
                        ck_assert_int_eq(write(go[1], "g", 1), 1);
                ck_abort_msg("%d processes could not open and pin through %d handles", failed, each);
        }
        /* Every page is pinned by some handle of some other process. */
        for (size_t p = 0; p < pages; p += 97) {
                ck_assert_int_eq(iomem_truncate(f, p * PAGE), -EBUSY);
                char c;
                ck_assert_int_eq(iomem_pread(f, &c, 1, p * PAGE), 1);
                ck_assert_int_eq(c, mark(p, 0));
        }
        /* A thousand and first handle, here, and its lock calls. */
        struct iomem *g = attach(f, uri);
        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(iomem_wrlock(g), 0);
        ck_assert_int_eq(iomem_unlock(g), 0);
        ck_assert_int_eq(iomem_close(&g), 0);
        for (int k = 0; k < PROCESSES; k++)
                ck_assert_int_eq(write(go[1], "g", 1), 1);
        for (int k = 0; k < PROCESSES; k++)
                ck_assert_int_eq(test_wait(pid[k]), 0);
        ck_assert_int_eq(iomem_truncate(f, 0), 0);
        for (int i = 0; i < 2; i++) {
                close(ready[i]);
                close(go[i]);
        }
        remove_object(&f, uri);
}
END_TEST

/* ---- killed while the tables grow ---------------------------------------------------- */

#define KILL_REGIONS 20000
#define KILL_ROUNDS 6

/*
 * A child writes the regions of a round in scattered order, splitting
 * leaves and moving the directory as the map grows, and counts each write
 * that returned in a shared page; it is killed at a different point each
 * round. The survivor finds every write that returned, and at most one
 * more: none torn, none lost, nothing else changed.
 */
START_TEST(killed_while_the_map_grows)
{
        if (!test_forked_children_run("killed while the map grows"))
                return;
        char uri[128];
        struct iomem *f = open_new("scale-kill", 2 * KILL_REGIONS * PAGE, uri);
        size_t *done = mmap(NULL, sizeof *done, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        ck_assert_ptr_ne(done, MAP_FAILED);
        unsigned seed = 4242;
        for (unsigned round = 0; round < KILL_ROUNDS; round++) {
                *done = 0;
                int progress[2];
                ck_assert_int_eq(pipe(progress), 0);
                size_t kill_after = 1 + (size_t)rand_r(&seed) % (KILL_REGIONS / 1000 - 1);
                pid_t pid = fork();
                if (pid == 0) {
                        struct iomem *g = attach(f, uri);
                        if (!g)
                                _exit(90);
                        /* Region order: a fixed permutation, so that what is
                         * done is a prefix of it. */
                        for (size_t n = 0; n < KILL_REGIONS; n++) {
                                size_t i = (n * 7919) % KILL_REGIONS;
                                char c = mark(i, round);
                                if (iomem_pwrite(g, &c, 1, 2 * i * PAGE + i % PAGE) != 1)
                                        _exit(91);
                                __atomic_store_n(done, n + 1, __ATOMIC_RELEASE);
                                if ((n + 1) % 1000 == 0 && write(progress[1], "p", 1) != 1)
                                        _exit(92);
                        }
                        for (;;)
                                pause();
                }
                /* Kill it after a chosen number of thousands, in the middle
                 * of whatever write it is doing then. */
                for (size_t k = 0; k < kill_after; k++) {
                        char x;
                        ck_assert_int_eq(read(progress[0], &x, 1), 1);
                }
                kill(pid, SIGKILL);
                ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
                size_t n_done = __atomic_load_n(done, __ATOMIC_ACQUIRE);
                close(progress[0]);
                close(progress[1]);
                /* Check: regions in permutation order up to n_done hold this
                 * round's mark, the next may, the rest the last round's. */
                struct iomem_stat st;
                ck_assert_int_eq(iomem_stat(f, &st), 0);
                char *buf = malloc(st.size);
                ck_assert_int_eq(iomem_pread(f, buf, st.size, 0), (ssize_t)st.size);
                for (size_t n = 0; n < KILL_REGIONS; n++) {
                        size_t i = (n * 7919) % KILL_REGIONS;
                        char got = buf[2 * i * PAGE + i % PAGE];
                        char now = mark(i, round), before = round ? mark(i, round - 1) : 0;
                        bool ok = n < n_done ? got == now : n == n_done ? (got == now || got == before) : got == before;
                        if (!ok)
                                ck_abort_msg("round %u, write %zu of %zu (region %zu): %d", round, n, n_done, i, got);
                        buf[2 * i * PAGE + i % PAGE] = 0;
                }
                for (size_t b = 0; b < st.size; b++)
                        if (buf[b])
                                ck_abort_msg("round %u: byte %zu holds %d", round, b, buf[b]);
                free(buf);
                /* The rest of the round, by this process: the tables go on
                 * growing from where the dead one left them. */
                for (size_t n = n_done; n < KILL_REGIONS; n++) {
                        size_t i = (n * 7919) % KILL_REGIONS;
                        char c = mark(i, round);
                        ck_assert_int_eq(iomem_pwrite(f, &c, 1, 2 * i * PAGE + i % PAGE), 1);
                }
                expect_regions(f, KILL_REGIONS, KILL_REGIONS, round);
                /* Every other round starts from holes again: the map
                 * shrinks and grows back, and the kills land in both. */
                if (round % 2 == 1) {
                        ck_assert_int_eq(iomem_truncate(f, 0), 0);
                        ck_assert_int_eq(iomem_truncate(f, 2 * KILL_REGIONS * PAGE), 0);
                        write_regions(f, 0, KILL_REGIONS, round);
                }
        }
        munmap(done, sizeof *done);
        remove_object(&f, uri);
}
END_TEST

static Suite *scale_suite(void)
{
        Suite *s = suite_create("scale");
        TCase *tc = tcase_create(test_backend());
        tcase_add_test(tc, scattered_writes_past_the_old_wall);
        tcase_add_test(tc, ten_thousand_scattered_pins);
        tcase_add_test(tc, a_thousand_handles_in_ten_processes);
        tcase_add_test(tc, killed_while_the_map_grows);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return test_run(scale_suite());
}
