/* SPDX-License-Identifier: MIT */
/*
 * Load: 4 processes x 2 threads on one object (the backend of
 * IOMEM_TEST_BACKEND) doing random acquire/retrieve/write/release, pwrite,
 * borrow, pread, gift (adopted and copied) and truncate for a bounded time
 * (IOMEM_STRESS_SECONDS, default 10).
 *
 * The check at the end is exact although everything runs at once: each
 * thread writes only in a region of its own, in the first part of the
 * file, and logs every write (sequence number, offset, length, seed of
 * the bytes) to a file of its own; truncate, growth and gifts that move
 * the size happen only in a shared part after all regions, where only
 * the results of the calls are checked. The parent replays the logs and
 * compares every byte of the regions with what the object holds: zero
 * mismatches. Each process counts its descriptors and the mappings of
 * the object before attaching and after closing: zero leaks.
 */
#include "common.h"

#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#define PROCS 4
#define THREADS 2
#define WRITERS (PROCS * THREADS)
#define REGION_PAGES 16
#define SHARED_PAGES 48

static size_t PAGE, REGION, PRIVATE_END, SHARED_END;

/* ---- the bytes of a write: a function of its seed ------------------------ */

static uint64_t splitmix(uint64_t *s)
{
        uint64_t z = (*s += 0x9e3779b97f4a7c15u);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
        return z ^ (z >> 31);
}

static void gen(uint64_t seed, unsigned char *p, size_t n)
{
        uint64_t s = seed;
        for (size_t i = 0; i < n; i += 8) {
                uint64_t x = splitmix(&s);
                memcpy(p + i, &x, n - i < 8 ? n - i : 8);
        }
}

/* ---- the log ------------------------------------------------------------ */

enum kind { W_PWRITE, W_RETRIEVE, W_GIFT_ADOPT, W_GIFT_COPY };

struct rec {
        uint32_t seq, kind;
        uint64_t off, len, seed;
};

static char logdir[64];

static void log_path(char *buf, size_t n, int writer)
{
        snprintf(buf, n, "%s/writer-%d.log", logdir, writer);
}

/* ---- one thread ------------------------------------------------------------ */

struct worker {
        struct iomem *f;
        int id;             /* writer number: its region */
        int log;
        uint64_t rng;
        unsigned char *shadow; /* what its region must hold */
        unsigned char *buf;
        uint32_t seq;
        int errors;
        unsigned long ops;
        double deadline;
};

static double now(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

#define WORKER_CHECK(w, cond)                                                              \
        do {                                                                               \
                if (!(cond)) {                                                             \
                        fprintf(stderr, "writer %d: %s failed: %s\n", (w)->id, #cond,      \
                                iomem_errormsg());                                         \
                        (w)->errors++;                                                     \
                }                                                                          \
        } while (0)

static uint64_t rnd(struct worker *w, uint64_t n)
{
        return splitmix(&w->rng) % n;
}

static void note(struct worker *w, enum kind k, size_t off, size_t len, uint64_t seed)
{
        struct rec r = { .seq = w->seq++, .kind = k, .off = off, .len = len, .seed = seed };
        WORKER_CHECK(w, write(w->log, &r, sizeof r) == (ssize_t)sizeof r);
        gen(seed, w->shadow + (off - (size_t)w->id * REGION), len);
}

static void do_pwrite(struct worker *w, size_t base)
{
        size_t off = base + rnd(w, REGION), len = rnd(w, base + REGION - off) + 1;
        uint64_t seed = splitmix(&w->rng);
        gen(seed, w->buf, len);
        WORKER_CHECK(w, iomem_pwrite(w->f, w->buf, len, off) == (ssize_t)len);
        note(w, W_PWRITE, off, len, seed);
}

static void do_retrieve(struct worker *w, size_t base)
{
        size_t p0 = rnd(w, REGION_PAGES), np = rnd(w, REGION_PAGES - p0) + 1;
        size_t start = base + p0 * PAGE, span = np * PAGE;
        size_t off = start + rnd(w, span), len = rnd(w, start + span - off) + 1;
        WORKER_CHECK(w, iomem_acquire(w->f, start, span) == (ssize_t)span);
        struct iovec v[REGION_PAGES];
        ssize_t n = iomem_retrieve(w->f, off, len, v, REGION_PAGES);
        /* bufcount gives enough entries for borrow or retrieve: dax's
         * borrow splits at holes (blocks acquired, not written yet) that
         * retrieve maps through, so its count may be the larger. */
        ssize_t count = iomem_bufcount(w->f, off, len);
        WORKER_CHECK(w, n >= 1 && (n == count || (!strcmp(test_backend(), "dax") && n < count)));
        uint64_t seed = splitmix(&w->rng);
        gen(seed, w->buf, len);
        size_t at = 0;
        for (ssize_t i = 0; i < n; i++) {
                memcpy(v[i].iov_base, w->buf + at, v[i].iov_len);
                at += v[i].iov_len;
        }
        WORKER_CHECK(w, at == len);
        WORKER_CHECK(w, iomem_release(w->f, start, span) == 0);
        note(w, W_RETRIEVE, off, len, seed);
}

static void do_gift(struct worker *w, size_t base)
{
        size_t p0 = rnd(w, REGION_PAGES), np = rnd(w, REGION_PAGES - p0 < 4 ? REGION_PAGES - p0 : 4) + 1;
        size_t off = base + p0 * PAGE, len = np * PAGE;
        uint64_t seed = splitmix(&w->rng);
        bool adopt = rnd(w, 2);
        void *p;
        if (adopt)
                WORKER_CHECK(w, iomem_alloc(w->f, len, &p) == 0);
        else
                p = w->buf;
        if (w->errors)
                return;
        gen(seed, p, len);
        struct iovec v = { p, len };
        ssize_t r = iomem_gift(w->f, off, len, &v, 1, adopt ? test_gift_flags() : 0);
        WORKER_CHECK(w, r == 1);
        if (r != 1 && adopt)
                iomem_free(w->f, p, len);
        note(w, adopt ? W_GIFT_ADOPT : W_GIFT_COPY, off, len, seed);
}

/* Read the region back (pread, or borrow under the read lock). */
static void do_read(struct worker *w, size_t base)
{
        if (rnd(w, 2)) {
                WORKER_CHECK(w, iomem_pread(w->f, w->buf, REGION, base) == (ssize_t)REGION);
                WORKER_CHECK(w, memcmp(w->buf, w->shadow, REGION) == 0);
                return;
        }
        struct iovec v[REGION_PAGES + 1];
        WORKER_CHECK(w, iomem_rdlock(w->f) == 0);
        ssize_t n = iomem_borrow(w->f, base, REGION, v, REGION_PAGES + 1);
        WORKER_CHECK(w, n >= 1 && n <= REGION_PAGES);
        size_t at = 0;
        for (ssize_t i = 0; i < n && !w->errors; i++) {
                if (v[i].iov_base)
                        WORKER_CHECK(w, memcmp(v[i].iov_base, w->shadow + at, v[i].iov_len) == 0);
                else
                        for (size_t j = 0; j < v[i].iov_len; j++)
                                WORKER_CHECK(w, w->shadow[at + j] == 0);
                at += v[i].iov_len;
        }
        WORKER_CHECK(w, at == REGION);
        WORKER_CHECK(w, iomem_unlock(w->f) == 0);
}

/*
 * The shared part: sizes move, pins get in the way; only results count.
 * Threads write the same bytes here, so they write under the write lock
 * (pwrite alone takes the read lock: two at once would race on the bytes).
 */
static void do_shared(struct worker *w)
{
        size_t page = PRIVATE_END + rnd(w, SHARED_PAGES) * PAGE;
        WORKER_CHECK(w, iomem_wrlock(w->f) == 0);
        switch (rnd(w, 4)) {
        case 0: {
                int r = iomem_truncate(w->f, PRIVATE_END + rnd(w, SHARED_END - PRIVATE_END + 1));
                WORKER_CHECK(w, r == 0 || r == -EBUSY);
                break;
        }
        case 1: {
                ssize_t r = iomem_acquire(w->f, page, PAGE);
                WORKER_CHECK(w, r == 0 || r == (ssize_t)PAGE);
                if (r == (ssize_t)PAGE) {
                        struct iovec v;
                        WORKER_CHECK(w, iomem_retrieve(w->f, page, PAGE, &v, 1) == 1);
                        memset(v.iov_base, 's', PAGE);
                        WORKER_CHECK(w, iomem_release(w->f, page, PAGE) == 0);
                }
                break;
        }
        case 2: {
                size_t len = rnd(w, 2 * PAGE) + 1;
                WORKER_CHECK(w, iomem_pwrite(w->f, w->buf, len, page) == (ssize_t)len);
                break;
        }
        default: {
                struct iovec v = { w->buf, PAGE };
                ssize_t r = iomem_gift(w->f, page, PAGE, &v, 1, 0);
                WORKER_CHECK(w, r == 1 || r == -EBUSY);
                break;
        }
        }
        WORKER_CHECK(w, iomem_unlock(w->f) == 0);
}

static void *work(void *arg)
{
        struct worker *w = arg;
        size_t base = (size_t)w->id * REGION;
        while (!w->errors && now() < w->deadline) {
                switch (rnd(w, 8)) {
                case 0: case 1: do_pwrite(w, base); break;
                case 2: case 3: do_retrieve(w, base); break;
                case 4: do_gift(w, base); break;
                case 5: do_read(w, base); break;
                default: do_shared(w); break;
                }
                w->ops++;
        }
        if (!w->errors)
                do_read(w, base);
        return NULL;
}

/* ---- one process ------------------------------------------------------------ */

static int run_process(int proc, const char *uri, struct iomem *parent, const char *tag,
                       int ready, int go, double seconds)
{
        /* The parent's handle came along with fork: let go of it (sending
         * a memfd or mshare object to itself first, as a peer would get
         * it; shm and dax objects are opened by name) and start from
         * nothing. */
        bool shm = !strcmp(test_backend(), "shm") || !strcmp(test_backend(), "dax");
        int sv[2] = { -1, -1 };
        if (!shm && (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) || iomem_send(sv[0], parent)))
                return 1;
        if (sv[0] >= 0)
                close(sv[0]);
        iomem_close(&parent);
        int fds = test_count_fds(), errors = 0, maps = test_count_maps_of(tag);
        struct iomem *f = NULL;
        int r = shm ? iomem_open(&f, uri, IOMEM_RDWR, NULL) : iomem_recv(sv[1], &f, IOMEM_RDWR);
        if (sv[1] >= 0)
                close(sv[1]);
        if (r) {
                fprintf(stderr, "process %d: attach: %s\n", proc, iomem_errormsg());
                return 1;
        }
        char c;
        if (write(ready, "r", 1) != 1 || read(go, &c, 1) != 1)
                return 1;
        struct worker w[THREADS];
        pthread_t th[THREADS];
        double deadline = now() + seconds;
        for (int t = 0; t < THREADS; t++) {
                char path[128];
                w[t] = (struct worker){ .f = f, .id = proc * THREADS + t, .deadline = deadline };
                w[t].rng = 0x1234567u * (uint64_t)(w[t].id + 1) ^ (uint64_t)getpid();
                w[t].shadow = calloc(1, REGION);
                w[t].buf = malloc(2 * REGION);
                memset(w[t].buf, 'b', 2 * REGION);
                log_path(path, sizeof path, w[t].id);
                w[t].log = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
                if (w[t].log < 0 || pthread_create(&th[t], NULL, work, &w[t]))
                        return 1;
        }
        unsigned long ops = 0;
        for (int t = 0; t < THREADS; t++) {
                pthread_join(th[t], NULL);
                errors += w[t].errors;
                ops += w[t].ops;
                close(w[t].log);
                free(w[t].shadow);
                free(w[t].buf);
        }
        struct iomem_stat st;
        if (iomem_stat(f, &st) || st.acquired != 0) {
                fprintf(stderr, "process %d: still holds %zu pinned bytes\n", proc, st.acquired);
                errors++;
        }
        iomem_close(&f);
        if (test_count_fds() != fds - (sv[1] >= 0) || test_count_maps_of(tag) != maps) {
                fprintf(stderr, "process %d: leaked: %d descriptors, %d mappings\n", proc,
                        test_count_fds() - fds, test_count_maps_of(tag) - maps);
                errors++;
        }
        fprintf(stderr, "process %d: %lu operations\n", proc, ops);
        return errors ? 2 : 0;
}

/* ---- the test ---------------------------------------------------------------------- */

START_TEST(processes_and_threads_leave_exactly_what_they_logged)
{
        const char *env = getenv("IOMEM_STRESS_SECONDS");
        double seconds = env && atof(env) > 0 ? atof(env) : 10;
        snprintf(logdir, sizeof logdir, "/tmp/iomem-stress-%d-XXXXXX", (int)getpid());
        ck_assert_ptr_nonnull(mkdtemp(logdir));

        char tag[64], uri[128];
        snprintf(tag, sizeof tag, "iomem-stress-%d", (int)getpid());
        snprintf(uri, sizeof uri, "%s:%s", test_backend(), tag);
        bool shm = !strcmp(test_backend(), "shm") || !strcmp(test_backend(), "dax");
        int fds = test_count_fds();
        struct iomem_opts *o;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, PRIVATE_END), 0);
        struct iomem *f;
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o), 0);
        iomem_opts_delete(&o);

        int ready[2], go[2];
        ck_assert_int_eq(pipe(ready), 0);
        ck_assert_int_eq(pipe(go), 0);
        pid_t pids[PROCS];
        for (int p = 0; p < PROCS; p++) {
                pids[p] = fork();
                ck_assert_int_ge(pids[p], 0);
                if (pids[p] == 0)
                        _exit(run_process(p, uri, f, tag, ready[1], go[0], seconds));
        }
        char c;
        for (int p = 0; p < PROCS; p++)
                ck_assert_int_eq(read(ready[0], &c, 1), 1);
        for (int p = 0; p < PROCS; p++)
                ck_assert_int_eq(write(go[1], "g", 1), 1);
        for (int p = 0; p < PROCS; p++)
                ck_assert_msg(test_wait(pids[p]) == 0, "process %d failed", p);
        close(ready[0]);
        close(ready[1]);
        close(go[0]);
        close(go[1]);

        /* Replay the logs: every byte of every region, exactly. */
        unsigned char *want = calloc(1, PRIVATE_END), *got = malloc(PRIVATE_END);
        unsigned char *bytes = malloc(2 * REGION);
        unsigned long writes = 0;
        for (int wr = 0; wr < WRITERS; wr++) {
                char path[128];
                log_path(path, sizeof path, wr);
                FILE *fp = fopen(path, "rb");
                ck_assert_ptr_nonnull(fp);
                struct rec r;
                for (uint32_t seq = 0; fread(&r, sizeof r, 1, fp) == 1; seq++) {
                        ck_assert_uint_eq(r.seq, seq); /* none lost */
                        ck_assert_uint_ge(r.off, (size_t)wr * REGION);
                        ck_assert_uint_le(r.off + r.len, (size_t)(wr + 1) * REGION);
                        gen(r.seed, bytes, r.len);
                        memcpy(want + r.off, bytes, r.len);
                        writes++;
                }
                fclose(fp);
                unlink(path);
        }
        rmdir(logdir);
        ck_assert_int_eq(iomem_pread(f, got, PRIVATE_END, 0), (ssize_t)PRIVATE_END);
        size_t mismatches = 0;
        for (size_t i = 0; i < PRIVATE_END; i++)
                mismatches += got[i] != want[i];
        fprintf(stderr, "stress %s: %lu logged writes, %zu mismatches\n", test_backend(), writes,
                mismatches);
        ck_assert_uint_gt(writes, WRITERS);
        ck_assert_uint_eq(mismatches, 0);

        /* Nobody holds pins or the lock any more, and the size is sane. */
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_ge(st.size, PRIVATE_END);
        ck_assert_uint_le(st.size, SHARED_END + 2 * PAGE);
        ck_assert_int_eq(iomem_wrlock(f), 0);
        ck_assert_int_eq(iomem_truncate(f, 0), 0);
        ck_assert_int_eq(iomem_unlock(f), 0);
        iomem_close(&f);
        if (shm)
                ck_assert_int_eq(iomem_unlink(uri), 0);
        ck_assert_int_eq(test_count_fds(), fds);
        ck_assert_int_eq(test_count_maps_of(tag), 0);
        free(want);
        free(got);
        free(bytes);
}
END_TEST

int main(void)
{
        /* Processes that share pins, the lock and gifts' bookkeeping. */
        if (!test_backend_has(IOMEM_CAP_SHARED, "the stress suite"))
                return TEST_SKIP;
        PAGE = (size_t)sysconf(_SC_PAGESIZE);
        REGION = REGION_PAGES * PAGE;
        PRIVATE_END = WRITERS * REGION;
        SHARED_END = PRIVATE_END + SHARED_PAGES * PAGE;
        const char *env = getenv("IOMEM_STRESS_SECONDS");
        double seconds = env && atof(env) > 0 ? atof(env) : 10;
        Suite *s = suite_create("stress");
        TCase *tc = tcase_create(test_backend());
        tcase_set_timeout(tc, seconds * 3 + 60);
        tcase_add_test(tc, processes_and_threads_leave_exactly_what_they_logged);
        suite_add_tcase(s, tc);
        return test_run(s);
}
