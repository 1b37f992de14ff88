/* SPDX-License-Identifier: MIT */
/*
 * Several threads on one object: pins, the I/O lock, pread/pwrite, gift,
 * and the per-thread error message. Run once per backend
 * (IOMEM_TEST_BACKEND). Threads never call ck_assert (Check's failure
 * path is not thread-safe): they record the first failure and return,
 * and the main thread asserts. No sleep is used to order threads.
 */
#include "common.h"

#include <dirent.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#define N 4

/* ---- failure recording from threads ---------------------------------------- */

static pthread_mutex_t fail_mu = PTHREAD_MUTEX_INITIALIZER;
static char fail_msg[512];
static atomic_int failed;

static void fail_note(int line, const char *what)
{
        pthread_mutex_lock(&fail_mu);
        if (!failed)
                snprintf(fail_msg, sizeof fail_msg, "thread: line %d: %s (errormsg: %s)", line,
                         what, iomem_errormsg());
        atomic_store(&failed, 1);
        pthread_mutex_unlock(&fail_mu);
}

#define T_REQUIRE(c)                                  \
        do {                                          \
                if (!(c)) {                           \
                        fail_note(__LINE__, #c);      \
                        return NULL;                  \
                }                                     \
        } while (0)

static void fail_reset(void)
{
        atomic_store(&failed, 0);
        fail_msg[0] = 0;
}

static void fail_check(void)
{
        ck_assert_msg(!atomic_load(&failed), "%s", fail_msg);
}

/* ---- helpers --------------------------------------------------------------- */

static size_t page_of(struct iomem *f)
{
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        return st.page_size;
}

static struct iomem_stat stat_of(struct iomem *f)
{
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        return st;
}

static void fill(unsigned char *b, size_t n, unsigned seed)
{
        uint32_t x = seed * 2654435761u + 1;
        for (size_t i = 0; i < n; i++) {
                x = x * 1103515245u + 12345u;
                b[i] = (unsigned char)(x >> 16);
        }
}

/* Does b hold fill(seed)? */
static int matches(const unsigned char *b, size_t n, unsigned seed)
{
        uint32_t x = seed * 2654435761u + 1;
        for (size_t i = 0; i < n; i++) {
                x = x * 1103515245u + 12345u;
                if (b[i] != (unsigned char)(x >> 16))
                        return 0;
        }
        return 1;
}

static void expect_fill(struct iomem *f, size_t off, size_t n, unsigned seed)
{
        unsigned char *b = malloc(n);
        ck_assert_ptr_nonnull(b);
        ck_assert_int_eq(iomem_pread(f, b, n, off), (ssize_t)n);
        ck_assert_msg(matches(b, n, seed), "bytes [%zu, %zu) are not pattern %u", off, off + n, seed);
        free(b);
}

static int count_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        ck_assert_ptr_nonnull(d);
        int n = 0;
        for (struct dirent *e; (e = readdir(d));)
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

static void start(pthread_t *t, void *(*fn)(void *), void *arg)
{
        ck_assert_int_eq(pthread_create(t, NULL, fn, arg), 0);
}

static void join(pthread_t t)
{
        ck_assert_int_eq(pthread_join(t, NULL), 0);
}

static struct timespec deadline_ms(long ms)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += ms / 1000;
        ts.tv_nsec += (ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000L;
        }
        return ts;
}

/* A flag that a thread raises and others wait for, with or without a limit. */
struct flag {
        pthread_mutex_t mu;
        pthread_cond_t cv;
        int up;
};

static void flag_init(struct flag *fl)
{
        pthread_mutex_init(&fl->mu, NULL);
        pthread_cond_init(&fl->cv, NULL);
        fl->up = 0;
}

static void flag_destroy(struct flag *fl)
{
        pthread_mutex_destroy(&fl->mu);
        pthread_cond_destroy(&fl->cv);
}

static void flag_raise(struct flag *fl)
{
        pthread_mutex_lock(&fl->mu);
        fl->up = 1;
        pthread_cond_broadcast(&fl->cv);
        pthread_mutex_unlock(&fl->mu);
}

/* 1 when the flag went up within ms milliseconds. */
static int flag_wait(struct flag *fl, long ms)
{
        struct timespec ts = deadline_ms(ms);
        pthread_mutex_lock(&fl->mu);
        int r = 0;
        while (!fl->up && r != ETIMEDOUT)
                r = pthread_cond_timedwait(&fl->cv, &fl->mu, &ts);
        int up = fl->up;
        pthread_mutex_unlock(&fl->mu);
        return up;
}

/* Long enough that a thread that can go on does; only a broken lock
 * makes a test wait this long. */
#define PATIENCE_MS 30000
/* How long a blocked thread is given to show that it is not blocked. */
#define BLOCKED_MS 200

/* ---- acquire / retrieve / release on disjoint ranges ------------------------ */

#define DJ_PAGES 8
#define DJ_ROUNDS 200

struct dj_arg {
        struct iomem *f;
        size_t ps;
        unsigned t;
};

static void *disjoint_worker(void *p)
{
        struct dj_arg *a = p;
        size_t len = DJ_PAGES * a->ps, off = a->t * len;
        struct iovec iov[DJ_PAGES + 1], again[DJ_PAGES + 1];
        for (unsigned round = 0; round < DJ_ROUNDS; round++) {
                T_REQUIRE(iomem_acquire(a->f, off, len) == (ssize_t)len);
                /* bufcount sizes an array for borrow and retrieve alike: a
                 * dax: borrow also names the file's holes, which an
                 * acquired range's retrieve never has. */
                ssize_t most = iomem_bufcount(a->f, off, len);
                T_REQUIRE(most >= 1 && most <= DJ_PAGES);
                ssize_t n = iomem_retrieve(a->f, off, len, iov, DJ_PAGES + 1);
                T_REQUIRE(n >= 1 && n <= most);
                /* The same addresses for as long as it is acquired. */
                T_REQUIRE(iomem_retrieve(a->f, off, len, again, DJ_PAGES + 1) == n);
                size_t total = 0;
                for (ssize_t i = 0; i < n; i++) {
                        T_REQUIRE(iov[i].iov_base == again[i].iov_base);
                        T_REQUIRE(iov[i].iov_len == again[i].iov_len);
                        total += iov[i].iov_len;
                }
                T_REQUIRE(total == len);
                /* The previous round's bytes are still there. */
                unsigned seed = a->t * 1000 + round;
                if (round) {
                        size_t at = 0;
                        for (ssize_t i = 0; i < n; i++) {
                                unsigned char *tmp = malloc(len);
                                T_REQUIRE(tmp != NULL);
                                fill(tmp, len, seed - 1);
                                int same = memcmp(iov[i].iov_base, tmp + at, iov[i].iov_len) == 0;
                                free(tmp);
                                T_REQUIRE(same);
                                at += iov[i].iov_len;
                        }
                }
                unsigned char *src = malloc(len);
                T_REQUIRE(src != NULL);
                fill(src, len, seed);
                size_t at = 0;
                for (ssize_t i = 0; i < n; i++) {
                        memcpy(iov[i].iov_base, src + at, iov[i].iov_len);
                        at += iov[i].iov_len;
                }
                free(src);
                /* Released in two parts, the second half first. */
                T_REQUIRE(iomem_release(a->f, off + len / 2, len / 2) == 0);
                T_REQUIRE(iomem_release(a->f, off, len / 2) == 0);
        }
        return NULL;
}

START_TEST(disjoint_acquire_write)
{
        fail_reset();
        int fds0 = count_fds();
        struct iomem *f = test_open_new("thr-dj", 0);
        size_t ps = page_of(f);
        ck_assert_int_eq(iomem_truncate(f, N * DJ_PAGES * ps), 0);
        pthread_t t[N];
        struct dj_arg args[N];
        for (unsigned i = 0; i < N; i++) {
                args[i] = (struct dj_arg){ f, ps, i };
                start(&t[i], disjoint_worker, &args[i]);
        }
        for (unsigned i = 0; i < N; i++)
                join(t[i]);
        fail_check();
        struct iomem_stat st = stat_of(f);
        ck_assert_uint_eq(st.acquired, 0);
        ck_assert_uint_eq(st.size, N * DJ_PAGES * ps);
        for (unsigned i = 0; i < N; i++)
                expect_fill(f, i * DJ_PAGES * ps, DJ_PAGES * ps, i * 1000 + DJ_ROUNDS - 1);
        /* Nothing is left pinned. */
        ck_assert_int_eq(iomem_truncate(f, 0), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
        ck_assert_int_eq(count_fds(), fds0);
}
END_TEST

/* ---- the same range from several threads: nesting is counted --------------- */

struct nest_arg {
        struct iomem *f;
        size_t ps;
        pthread_barrier_t *held;
        sem_t *go, *done;
        void *base; /* what retrieve gave this thread */
};

static void *nest_worker(void *p)
{
        struct nest_arg *a = p;
        /* Checked at the end, so that the main thread's steps go on. */
        ssize_t got = iomem_acquire(a->f, 0, 4 * a->ps);
        struct iovec iov[4];
        ssize_t n = iomem_retrieve(a->f, 0, 4 * a->ps, iov, 4);
        a->base = n >= 1 ? iov[0].iov_base : NULL;
        pthread_barrier_wait(a->held);
        while (sem_wait(a->go) < 0)
                ;
        int r = iomem_release(a->f, 0, 4 * a->ps);
        sem_post(a->done);
        T_REQUIRE(got == (ssize_t)(4 * a->ps));
        T_REQUIRE(n >= 1);
        T_REQUIRE(r == 0);
        return NULL;
}

START_TEST(same_range_nesting)
{
        fail_reset();
        struct iomem *f = test_open_new("thr-nest", 0);
        size_t ps = page_of(f);
        ck_assert_int_eq(iomem_truncate(f, 8 * ps), 0);
        pthread_barrier_t held;
        ck_assert_int_eq(pthread_barrier_init(&held, NULL, N + 1), 0);
        sem_t go[N], done;
        ck_assert_int_eq(sem_init(&done, 0, 0), 0);
        pthread_t t[N];
        struct nest_arg args[N];
        for (unsigned i = 0; i < N; i++) {
                ck_assert_int_eq(sem_init(&go[i], 0, 0), 0);
                args[i] = (struct nest_arg){ f, ps, &held, &go[i], &done, NULL };
                start(&t[i], nest_worker, &args[i]);
        }
        pthread_barrier_wait(&held); /* every thread has acquired [0, 4 pages) */
        fail_check();
        /* One pinned range, the same memory for every thread. */
        for (unsigned i = 0; i < N; i++) {
                ck_assert_ptr_nonnull(args[i].base);
                ck_assert_ptr_eq(args[i].base, args[0].base);
        }
        ck_assert_uint_eq(stat_of(f).acquired, 4 * ps); /* bytes, not pins */
        ck_assert_err(iomem_truncate(f, 0), EBUSY);
        ck_assert_err(iomem_truncate(f, 3 * ps), EBUSY);
        ck_assert_int_eq(iomem_truncate(f, 4 * ps), 0); /* past the pins */
        for (unsigned i = 0; i < N; i++) {
                sem_post(&go[i]);
                while (sem_wait(&done) < 0)
                        ;
                if (i + 1 < N) {
                        /* Someone still holds it. */
                        ck_assert_uint_eq(stat_of(f).acquired, 4 * ps);
                        ck_assert_err(iomem_truncate(f, 2 * ps), EBUSY);
                }
        }
        for (unsigned i = 0; i < N; i++)
                join(t[i]);
        fail_check();
        ck_assert_uint_eq(stat_of(f).acquired, 0);
        ck_assert_int_eq(iomem_truncate(f, 0), 0);
        /* Released once more than acquired: refused. */
        ck_assert_int_eq(iomem_truncate(f, 4 * ps), 0);
        ck_assert_err(iomem_release(f, 0, ps), EINVAL);
        pthread_barrier_destroy(&held);
        for (unsigned i = 0; i < N; i++)
                sem_destroy(&go[i]);
        sem_destroy(&done);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

/* Pins nested on one thread's CPU are the handle's: another thread, on
 * another CPU where there is one, releases them, and the pages stay pinned
 * until the last is released (lanes.h). More ranges than a lane counts, so
 * some nest in the lane and the rest in the handle's runs. */
static const size_t nest_ranges[][2] = { { 0, 1 }, { 1, 2 }, { 2, 3 }, { 3, 4 },
                                         { 0, 2 }, { 2, 4 }, { 1, 3 }, { 0, 4 } };
#define NEST_RANGES (sizeof nest_ranges / sizeof nest_ranges[0])
#define NEST_TIMES 2

static size_t nest_off(size_t i, size_t ps) { return nest_ranges[i][0] * ps; }
static size_t nest_len(size_t i, size_t ps) { return (nest_ranges[i][1] - nest_ranges[i][0]) * ps; }

struct on_cpu {
        struct iomem *f;
        size_t ps;
        int cpu; /* -1: anywhere */
};

static void run_on(int cpu)
{
        cpu_set_t one;
        CPU_ZERO(&one);
        if (cpu >= 0) {
                CPU_SET(cpu, &one);
                pthread_setaffinity_np(pthread_self(), sizeof one, &one);
        }
}

static void *nest_many(void *p)
{
        struct on_cpu *a = p;
        run_on(a->cpu);
        for (int k = 0; k < NEST_TIMES; k++)
                for (size_t i = 0; i < NEST_RANGES; i++) {
                        size_t off = nest_off(i, a->ps), len = nest_len(i, a->ps);
                        T_REQUIRE(iomem_acquire(a->f, off, len) == (ssize_t)len);
                        struct iovec v[4];
                        T_REQUIRE(iomem_retrieve(a->f, off, len, v, 4) == 1);
                }
        return NULL;
}

START_TEST(nested_pins_are_the_handles_on_every_cpu)
{
        fail_reset();
        struct iomem *f = test_open_new("thr-lanes", 0);
        size_t ps = page_of(f);
        ck_assert_int_eq(iomem_truncate(f, 4 * ps), 0);
        cpu_set_t mine;
        ck_assert_int_eq(pthread_getaffinity_np(pthread_self(), sizeof mine, &mine), 0);
        int first = -1, last = -1;
        for (int c = 0; c < CPU_SETSIZE; c++)
                if (CPU_ISSET(c, &mine))
                        last = first < 0 ? (first = c) : c;
        /* The base pin, then the nests, each from its CPU. */
        run_on(last);
        ck_assert_int_eq(iomem_acquire(f, 0, 4 * ps), (ssize_t)(4 * ps));
        struct on_cpu a = { f, ps, first };
        pthread_t t;
        start(&t, nest_many, &a);
        join(t);
        fail_check();
        ck_assert_int_eq(iomem_release(f, 0, 4 * ps), 0); /* the base */
        /* A child of the fork pins nothing, whatever the parent nested. */
        if (test_forked_children_run("a fork after nested pins")) {
                pid_t pid = fork();
                if (pid == 0) {
                        struct iomem_stat st;
                        bool none = iomem_stat(f, &st) == 0 && st.acquired == 0 &&
                                    iomem_release(f, 0, ps) == -EINVAL;
                        iomem_close(&f);
                        _exit(none ? 0 : 1);
                }
                ck_assert_int_eq(test_wait(pid), 0);
        }
        /* Each page counts the nests over it; it stays pinned (truncate
         * refuses to cut it) until the last of them is released. */
        unsigned pins[4] = { 0 };
        for (size_t i = 0; i < NEST_RANGES; i++)
                for (size_t p = nest_ranges[i][0]; p < nest_ranges[i][1]; p++)
                        pins[p] += NEST_TIMES;
        for (int k = 0; k < NEST_TIMES; k++)
                for (size_t i = NEST_RANGES; i-- > 0;) {
                        ck_assert_int_eq(iomem_release(f, nest_off(i, ps), nest_len(i, ps)), 0);
                        size_t held = 0, last = 0;
                        for (size_t p = nest_ranges[i][0]; p < nest_ranges[i][1]; p++)
                                pins[p]--;
                        for (size_t p = 0; p < 4; p++)
                                if (pins[p]) {
                                        held += ps;
                                        last = (p + 1) * ps;
                                }
                        ck_assert_uint_eq(stat_of(f).acquired, held);
                        if (last) {
                                ck_assert_err(iomem_truncate(f, last - ps), EBUSY);
                                ck_assert_int_eq(iomem_truncate(f, last), 0);
                        }
                }
        ck_assert_uint_eq(stat_of(f).acquired, 0);
        ck_assert_err(iomem_release(f, 0, ps), EINVAL);
        ck_assert_int_eq(iomem_truncate(f, 0), 0);
        ck_assert_int_eq(pthread_setaffinity_np(pthread_self(), sizeof mine, &mine), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

/* Overlapping ranges acquired and released in pieces by all threads at
 * once; afterwards nothing is left pinned. */
#define STRESS_ROUNDS 500

static void *overlap_worker(void *p)
{
        struct dj_arg *a = p;
        size_t ps = a->ps, off = a->t * ps, len = 4 * ps;
        for (unsigned r = 0; r < STRESS_ROUNDS; r++) {
                T_REQUIRE(iomem_acquire(a->f, off, len) == (ssize_t)len);
                T_REQUIRE(iomem_acquire(a->f, off + ps, ps) == (ssize_t)ps);
                struct iovec iov[8];
                T_REQUIRE(iomem_retrieve(a->f, off, len, iov, 8) >= 1);
                T_REQUIRE(iomem_release(a->f, off + ps, ps) == 0);
                T_REQUIRE(iomem_release(a->f, off, 2 * ps) == 0);
                T_REQUIRE(iomem_release(a->f, off + 2 * ps, 2 * ps) == 0);
        }
        return NULL;
}

START_TEST(overlapping_ranges_stress)
{
        fail_reset();
        struct iomem *f = test_open_new("thr-ovl", 0);
        size_t ps = page_of(f);
        ck_assert_int_eq(iomem_truncate(f, (N + 4) * ps), 0);
        /* The main thread holds page 0 throughout. */
        ck_assert_int_eq(iomem_acquire(f, 0, ps), (ssize_t)ps);
        pthread_t t[N];
        struct dj_arg args[N];
        for (unsigned i = 0; i < N; i++) {
                args[i] = (struct dj_arg){ f, ps, i };
                start(&t[i], overlap_worker, &args[i]);
        }
        for (unsigned i = 0; i < N; i++)
                join(t[i]);
        fail_check();
        ck_assert_uint_eq(stat_of(f).acquired, ps);
        ck_assert_err(iomem_truncate(f, 0), EBUSY);
        ck_assert_int_eq(iomem_truncate(f, ps), 0);
        ck_assert_int_eq(iomem_release(f, 0, ps), 0);
        ck_assert_uint_eq(stat_of(f).acquired, 0);
        ck_assert_int_eq(iomem_truncate(f, 0), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

/* ---- the I/O lock ------------------------------------------------------------------ */

#define READERS 3

struct rw {
        struct iomem *f;
        pthread_barrier_t held;   /* the readers and the main thread */
        sem_t release[READERS];   /* main -> reader i: unlock now */
        sem_t unlocked;           /* reader -> main: I have unlocked */
        atomic_int nunlocked;     /* readers that are about to unlock or have */
        struct flag writer_in;    /* the writer holds the lock */
        int writer_saw;           /* nunlocked when the writer got in */
        sem_t writer_go;          /* main -> writer: unlock now */
        struct flag late_in;      /* a reader that came while the writer held it */
};

struct reader_arg {
        struct rw *rw;
        unsigned i;
};

static void *rw_reader(void *p)
{
        struct reader_arg *a = p;
        struct rw *rw = a->rw;
        int locked = iomem_rdlock(rw->f);
        if (locked)
                fail_note(__LINE__, "iomem_rdlock");
        pthread_barrier_wait(&rw->held);
        while (sem_wait(&rw->release[a->i]) < 0)
                ;
        atomic_fetch_add(&rw->nunlocked, 1); /* before: the writer must see it */
        int r = locked ? 0 : iomem_unlock(rw->f);
        sem_post(&rw->unlocked);
        T_REQUIRE(r == 0);
        return NULL;
}

static void *rw_writer(void *p)
{
        struct rw *rw = p;
        int r = iomem_wrlock(rw->f);
        T_REQUIRE(r == 0);
        rw->writer_saw = atomic_load(&rw->nunlocked);
        flag_raise(&rw->writer_in);
        while (sem_wait(&rw->writer_go) < 0)
                ;
        T_REQUIRE(iomem_unlock(rw->f) == 0);
        return NULL;
}

static void *rw_late_reader(void *p)
{
        struct rw *rw = p;
        int r = iomem_rdlock(rw->f);
        T_REQUIRE(r == 0);
        flag_raise(&rw->late_in);
        T_REQUIRE(iomem_unlock(rw->f) == 0);
        return NULL;
}

START_TEST(rdlock_shared_writer_waits)
{
        fail_reset();
        struct iomem *f = test_open_new("thr-rw", 4096);
        struct rw rw = { .f = f };
        ck_assert_int_eq(pthread_barrier_init(&rw.held, NULL, READERS + 1), 0);
        for (unsigned i = 0; i < READERS; i++)
                ck_assert_int_eq(sem_init(&rw.release[i], 0, 0), 0);
        ck_assert_int_eq(sem_init(&rw.unlocked, 0, 0), 0);
        ck_assert_int_eq(sem_init(&rw.writer_go, 0, 0), 0);
        atomic_init(&rw.nunlocked, 0);
        flag_init(&rw.writer_in);
        flag_init(&rw.late_in);

        pthread_t readers[READERS], writer, late;
        struct reader_arg ra[READERS];
        for (unsigned i = 0; i < READERS; i++) {
                ra[i] = (struct reader_arg){ &rw, i };
                start(&readers[i], rw_reader, &ra[i]);
        }
        /* All readers hold the read lock at the same time. */
        pthread_barrier_wait(&rw.held);
        fail_check();
        /* Another reader (this thread) is let in too, and reads work. */
        ck_assert_int_eq(iomem_rdlock(f), 0);
        char c;
        ck_assert_int_eq(iomem_pread(f, &c, 1, 0), 1);
        ck_assert_int_eq(iomem_unlock(f), 0);

        start(&writer, rw_writer, &rw);
        ck_assert_msg(!flag_wait(&rw.writer_in, BLOCKED_MS),
                      "the writer got in while %d readers held the lock", READERS);
        for (unsigned i = 0; i < READERS; i++) {
                sem_post(&rw.release[i]);
                while (sem_wait(&rw.unlocked) < 0)
                        ;
                if (i + 1 < READERS)
                        ck_assert_msg(!flag_wait(&rw.writer_in, BLOCKED_MS),
                                      "the writer got in while %u readers held the lock",
                                      READERS - i - 1);
        }
        ck_assert_msg(flag_wait(&rw.writer_in, PATIENCE_MS),
                      "the writer did not get in after every reader unlocked");
        ck_assert_int_eq(rw.writer_saw, READERS);

        /* While the writer holds it, a reader waits. */
        start(&late, rw_late_reader, &rw);
        ck_assert_msg(!flag_wait(&rw.late_in, BLOCKED_MS), "a reader got in while a writer held the lock");
        sem_post(&rw.writer_go);
        ck_assert_msg(flag_wait(&rw.late_in, PATIENCE_MS), "the reader did not get in after the writer left");

        for (unsigned i = 0; i < READERS; i++)
                join(readers[i]);
        join(writer);
        join(late);
        fail_check();

        /* Everything was released: this thread can write-lock at once. */
        ck_assert_int_eq(iomem_wrlock(f), 0);
        ck_assert_int_eq(iomem_unlock(f), 0);

        pthread_barrier_destroy(&rw.held);
        for (unsigned i = 0; i < READERS; i++)
                sem_destroy(&rw.release[i]);
        sem_destroy(&rw.unlocked);
        sem_destroy(&rw.writer_go);
        flag_destroy(&rw.writer_in);
        flag_destroy(&rw.late_in);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

/* A lock taken by one thread is that thread's: others cannot unlock it,
 * and a writer waits for a writer. */
struct own_arg {
        struct iomem *f;
        int unlock_result;
        struct flag in;
};

static void *foreign_unlock(void *p)
{
        struct own_arg *a = p;
        a->unlock_result = iomem_unlock(a->f);
        return NULL;
}

static void *second_writer(void *p)
{
        struct own_arg *a = p;
        T_REQUIRE(iomem_wrlock(a->f) == 0);
        flag_raise(&a->in);
        T_REQUIRE(iomem_unlock(a->f) == 0);
        return NULL;
}

START_TEST(lock_ownership)
{
        fail_reset();
        struct iomem *f = test_open_new("thr-own", 4096);
        /* Read, then write while reading: refused. */
        ck_assert_int_eq(iomem_rdlock(f), 0);
        ck_assert_err(iomem_wrlock(f), EDEADLK);
        ck_assert_int_eq(iomem_rdlock(f), 0); /* nested */
        ck_assert_int_eq(iomem_unlock(f), 0);
        ck_assert_int_eq(iomem_unlock(f), 0);
        ck_assert_err(iomem_unlock(f), EPERM);
        /* The writer may take it again in either mode. */
        ck_assert_int_eq(iomem_wrlock(f), 0);
        ck_assert_int_eq(iomem_wrlock(f), 0);
        ck_assert_int_eq(iomem_rdlock(f), 0);

        struct own_arg a = { .f = f, .unlock_result = 1 };
        flag_init(&a.in);
        pthread_t t;
        start(&t, foreign_unlock, &a);
        join(t);
        ck_assert_int_eq(a.unlock_result, -EPERM);

        start(&t, second_writer, &a);
        ck_assert_msg(!flag_wait(&a.in, BLOCKED_MS), "a second writer got in");
        ck_assert_int_eq(iomem_unlock(f), 0);
        ck_assert_int_eq(iomem_unlock(f), 0);
        ck_assert_msg(!flag_wait(&a.in, BLOCKED_MS), "a second writer got in while nested");
        ck_assert_int_eq(iomem_unlock(f), 0);
        ck_assert_msg(flag_wait(&a.in, PATIENCE_MS), "the second writer did not get in");
        join(t);
        fail_check();
        flag_destroy(&a.in);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

/* ---- fairness and deadlines ------------------------------------------------------ */

/* A stream of overlapping readers: each holds the read lock 2 ms and takes
 * it again at once, so some reader always holds it. */
#define STREAM_READERS 6
#define STREAM_HOLD_NS 2000000L
/* A waiting writer waits only for the read holds that began before it
 * (2 ms each) and for wake-ups; an unfair lock made it wait for ever. */
#define WRITER_BOUND_MS 5000

struct stream {
        struct iomem *f;
        atomic_int stop;
        sem_t started; /* posted by each reader after its first hold */
};

static void *stream_reader(void *p)
{
        struct stream *s = p;
        bool first = true;
        while (!atomic_load(&s->stop)) {
                T_REQUIRE(iomem_rdlock(s->f) == 0);
                struct timespec hold = { 0, STREAM_HOLD_NS };
                nanosleep(&hold, NULL);
                T_REQUIRE(iomem_unlock(s->f) == 0);
                if (first)
                        sem_post(&s->started);
                first = false;
        }
        return NULL;
}

static long elapsed_ms(const struct timespec *t0)
{
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (t.tv_sec - t0->tv_sec) * 1000 + (t.tv_nsec - t0->tv_nsec) / 1000000;
}

START_TEST(writer_gets_through_reader_stream)
{
        fail_reset();
        struct iomem *f = test_open_new("thr-fair", 4096);
        struct stream s = { .f = f };
        atomic_init(&s.stop, 0);
        ck_assert_int_eq(sem_init(&s.started, 0, 0), 0);
        pthread_t readers[STREAM_READERS];
        for (unsigned i = 0; i < STREAM_READERS; i++)
                start(&readers[i], stream_reader, &s);
        for (unsigned i = 0; i < STREAM_READERS; i++)
                while (sem_wait(&s.started) < 0)
                        ;
        struct timespec t0;
        for (int round = 0; round < 3; round++) {
                clock_gettime(CLOCK_MONOTONIC, &t0);
                int r = iomem_wrlock_timed(f, WRITER_BOUND_MS);
                long waited = elapsed_ms(&t0);
                ck_assert_msg(r == 0, "round %d: the writer waited %ld ms behind %d readers: %s",
                              round, waited, STREAM_READERS, iomem_errormsg());
                printf("writer got the lock after %ld ms (bound %d ms)\n", waited, WRITER_BOUND_MS);
                /* Truncate and gift take the write lock through the
                 * library: they get through too. */
                ck_assert_int_eq(iomem_truncate(f, 8192), 0);
                ck_assert_int_eq(iomem_unlock(f), 0);
        }
        atomic_store(&s.stop, 1);
        for (unsigned i = 0; i < STREAM_READERS; i++)
                join(readers[i]);
        fail_check();
        sem_destroy(&s.started);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

/* Hold a lock of f until told, from another thread. */
struct holder {
        struct iomem *f;
        bool write;
        int timeout_ms;  /* of the lock call */
        int result;      /* of the lock call */
        struct flag done; /* the lock call returned */
        sem_t go;        /* main -> holder: unlock now */
};

static void *hold_lock(void *p)
{
        struct holder *h = p;
        h->result = h->write ? iomem_wrlock_timed(h->f, h->timeout_ms)
                             : iomem_rdlock_timed(h->f, h->timeout_ms);
        flag_raise(&h->done);
        while (sem_wait(&h->go) < 0)
                ;
        if (h->result == 0)
                T_REQUIRE(iomem_unlock(h->f) == 0);
        return NULL;
}

static void holder_start(struct holder *h, pthread_t *t, struct iomem *f, bool write, int timeout_ms)
{
        *h = (struct holder){ .f = f, .write = write, .timeout_ms = timeout_ms, .result = 1 };
        flag_init(&h->done);
        ck_assert_int_eq(sem_init(&h->go, 0, 0), 0);
        start(t, hold_lock, h);
}

static void holder_finish(struct holder *h, pthread_t t)
{
        sem_post(&h->go);
        join(t);
        flag_destroy(&h->done);
        sem_destroy(&h->go);
}

/* Once a writer waits, a new reader queues; a thread that holds a read
 * lock already (of this object or another) passes, so nesting read locks
 * in any order still cannot deadlock. */
START_TEST(readers_queue_behind_waiting_writer)
{
        fail_reset();
        struct iomem *x = test_open_new("thr-queue-x", 4096);
        struct iomem *y = test_open_new("thr-queue-y", 4096);
        ck_assert_int_eq(iomem_rdlock(x), 0);
        struct holder w, late, other, wy;
        pthread_t tw, tlate, tother, twy;
        holder_start(&w, &tw, x, true, -1);
        ck_assert_msg(!flag_wait(&w.done, BLOCKED_MS), "the writer got in past a reader");

        /* A new reader neither gets in nor waits (timeout 0)... */
        holder_start(&late, &tlate, x, false, 0);
        ck_assert(flag_wait(&late.done, PATIENCE_MS));
        ck_assert_int_eq(late.result, -EBUSY);
        holder_finish(&late, tlate);
        /* ...but this thread, holding the read lock, nests. */
        ck_assert_int_eq(iomem_rdlock(x), 0);
        ck_assert_int_eq(iomem_unlock(x), 0);

        /* Y: another thread holds its read lock and a writer waits for it;
         * this thread, holding X's read lock, still gets Y's. */
        holder_start(&other, &tother, y, false, -1);
        ck_assert(flag_wait(&other.done, PATIENCE_MS));
        ck_assert_int_eq(other.result, 0);
        holder_start(&wy, &twy, y, true, -1);
        ck_assert_msg(!flag_wait(&wy.done, BLOCKED_MS), "the writer of y got in past a reader");
        ck_assert_int_eq(iomem_rdlock_timed(y, 0), 0);
        ck_assert_int_eq(iomem_unlock(y), 0);
        holder_finish(&other, tother);
        ck_assert(flag_wait(&wy.done, PATIENCE_MS));
        ck_assert_int_eq(wy.result, 0);
        holder_finish(&wy, twy);

        /* The writer of x gets in once this thread lets go. */
        ck_assert_int_eq(iomem_unlock(x), 0);
        ck_assert(flag_wait(&w.done, PATIENCE_MS));
        ck_assert_int_eq(w.result, 0);
        holder_finish(&w, tw);
        fail_check();
        ck_assert_int_eq(iomem_close(&x), 0);
        ck_assert_int_eq(iomem_close(&y), 0);
}
END_TEST

/* Deadlines: 0 does not wait (-EBUSY), a positive one waits that long
 * (-ETIMEDOUT), and a writer that gave up holds no reader back. */
START_TEST(lock_deadlines)
{
        fail_reset();
        struct iomem *f = test_open_new("thr-deadline", 4096);
        struct holder h, r, w;
        pthread_t th, tr, tw;
        holder_start(&h, &th, f, true, -1);
        ck_assert(flag_wait(&h.done, PATIENCE_MS));
        ck_assert_int_eq(h.result, 0);
        ck_assert_err(iomem_rdlock_timed(f, 0), EBUSY);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "read lock is taken"));
        ck_assert_err(iomem_wrlock_timed(f, 0), EBUSY);
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ck_assert_err(iomem_wrlock_timed(f, 50), ETIMEDOUT);
        ck_assert_int_ge(elapsed_ms(&t0), 50);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "within 50 ms"));
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ck_assert_err(iomem_rdlock_timed(f, 30), ETIMEDOUT);
        ck_assert_int_ge(elapsed_ms(&t0), 30);

        /* The handle's default applies to the library's own lock calls. */
        ck_assert_int_eq(iomem_set_lock_timeout(f, 0), 0);
        char c;
        ck_assert_err(iomem_pread(f, &c, 1, 0), EBUSY);
        ck_assert_err(iomem_truncate(f, 0), EBUSY);
        ck_assert_err(iomem_rdlock(f), EBUSY);
        ck_assert_int_eq(iomem_set_lock_timeout(f, -1), 0);
        holder_finish(&h, th);
        ck_assert_int_eq(iomem_pread(f, &c, 1, 0), 1);

        /* A reader holds it; a writer gives up; new readers are not
         * queued behind a writer that left. */
        holder_start(&r, &tr, f, false, -1);
        ck_assert(flag_wait(&r.done, PATIENCE_MS));
        holder_start(&w, &tw, f, true, 50);
        ck_assert(flag_wait(&w.done, PATIENCE_MS));
        ck_assert_int_eq(w.result, -ETIMEDOUT);
        ck_assert_int_eq(iomem_rdlock_timed(f, 0), 0);
        ck_assert_int_eq(iomem_unlock(f), 0);
        holder_finish(&w, tw);
        holder_finish(&r, tr);

        /* Through options, for the handles they open. */
        struct iomem_opts *o;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_lock_timeout(o, 0), 0);
        ck_assert_err(iomem_opts_set_lock_timeout(NULL, 0), EINVAL);
        struct iomem *g;
        const char *uri = test_uri("thr-deadline-opts");
        ck_assert_int_eq(iomem_open(&g, uri, IOMEM_RDWR | IOMEM_CREATE, o), 0);
        if (test_caps() & IOMEM_CAP_NAMED)
                iomem_unlink(uri);
        iomem_opts_delete(&o);
        holder_start(&h, &th, g, true, -1);
        ck_assert(flag_wait(&h.done, PATIENCE_MS));
        ck_assert_int_eq(h.result, 0);
        ck_assert_err(iomem_rdlock(g), EBUSY);
        holder_finish(&h, th);
        ck_assert_int_eq(iomem_rdlock(g), 0);
        ck_assert_int_eq(iomem_unlock(g), 0);
        ck_assert_int_eq(iomem_close(&g), 0);
        ck_assert_err(iomem_rdlock_timed(NULL, 0), EINVAL);
        ck_assert_err(iomem_set_lock_timeout(NULL, 0), EINVAL);
        fail_check();
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

/* ---- borrow while the map changes ------------------------------------------------- */

#define STEADY_PAGES 32
#define CHANGING_PAGES 4000

struct churn {
        struct iomem *f;
        size_t ps;
        atomic_int stop;
};

/* Fill the pages after the steady ones one by one, each a new extent
 * beside holes: the map splits leaves and grows under the borrower. */
static void *churn_writer(void *p)
{
        struct churn *c = p;
        for (int round = 0; !atomic_load(&c->stop) && round < 50; round++) {
                for (size_t i = 0; i < CHANGING_PAGES && !atomic_load(&c->stop); i += 2) {
                        char b = (char)round;
                        T_REQUIRE(iomem_pwrite(c->f, &b, 1, (STEADY_PAGES + i) * c->ps) == 1);
                }
                T_REQUIRE(iomem_truncate(c->f, STEADY_PAGES * c->ps) == 0);
                T_REQUIRE(iomem_truncate(c->f, (STEADY_PAGES + CHANGING_PAGES) * c->ps) == 0);
        }
        return NULL;
}

/* borrow and bufcount read the extent map without the metadata's mutex
 * when no change is in progress: whatever the other thread changes, what
 * they describe of the steady pages is always whole and right. */
START_TEST(borrow_while_the_map_changes)
{
        fail_reset();
        size_t ps = (size_t)sysconf(_SC_PAGESIZE);
        struct iomem *f = test_open_new("thr-churn", (STEADY_PAGES + CHANGING_PAGES) * ps);
        unsigned char *want = malloc(STEADY_PAGES * ps);
        fill(want, STEADY_PAGES * ps, 99);
        ck_assert_int_eq(iomem_pwrite(f, want, STEADY_PAGES * ps, 0), (ssize_t)(STEADY_PAGES * ps));
        struct churn c = { .f = f, .ps = ps };
        atomic_init(&c.stop, 0);
        pthread_t t;
        start(&t, churn_writer, &c);
        struct iovec v[STEADY_PAGES + 1];
        for (int i = 0; i < 20000; i++) {
                ck_assert_int_eq(iomem_rdlock(f), 0);
                ssize_t n = iomem_borrow(f, 0, STEADY_PAGES * ps, v, STEADY_PAGES + 1);
                ssize_t count = iomem_bufcount(f, 0, STEADY_PAGES * ps);
                size_t at = 0;
                bool same = n >= 1 && count == n;
                for (ssize_t k = 0; same && k < n; k++) {
                        same = v[k].iov_base && !memcmp(v[k].iov_base, want + at, v[k].iov_len);
                        at += v[k].iov_len;
                }
                ck_assert_int_eq(iomem_unlock(f), 0);
                ck_assert_msg(same && at == STEADY_PAGES * ps, "borrow %d: %zd entries (bufcount %zd), "
                              "%zu bytes", i, n, count, at);
        }
        atomic_store(&c.stop, 1);
        join(t);
        fail_check();
        free(want);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

/* ---- pwrite / pread --------------------------------------------------------------- */

#define CHUNK 1000u /* not a page multiple: threads share pages */
#define CHUNKS (N * 64)

struct rwio_arg {
        struct iomem *f;
        unsigned t;
};

static void *pwrite_worker(void *p)
{
        struct rwio_arg *a = p;
        unsigned char buf[CHUNK], back[CHUNK];
        for (unsigned pass = 0; pass < 3; pass++) {
                for (unsigned i = a->t; i < CHUNKS; i += N) {
                        unsigned seed = pass * CHUNKS + i;
                        fill(buf, CHUNK, seed);
                        T_REQUIRE(iomem_pwrite(a->f, buf, CHUNK, (size_t)i * CHUNK) == CHUNK);
                        T_REQUIRE(iomem_pread(a->f, back, CHUNK, (size_t)i * CHUNK) == CHUNK);
                        T_REQUIRE(matches(back, CHUNK, seed));
                }
        }
        return NULL;
}

START_TEST(concurrent_pwrite_pread)
{
        fail_reset();
        /* The object grows from nothing while the threads write. */
        struct iomem *f = test_open_new("thr-io", 0);
        pthread_t t[N];
        struct rwio_arg args[N];
        for (unsigned i = 0; i < N; i++) {
                args[i] = (struct rwio_arg){ f, i };
                start(&t[i], pwrite_worker, &args[i]);
        }
        for (unsigned i = 0; i < N; i++)
                join(t[i]);
        fail_check();
        ck_assert_uint_eq(stat_of(f).size, (size_t)CHUNKS * CHUNK);
        for (unsigned i = 0; i < CHUNKS; i++)
                expect_fill(f, (size_t)i * CHUNK, CHUNK, 2 * CHUNKS + i);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

/* ---- gift ------------------------------------------------------------------------------ */

#define GIFT_PAGES 3
#define GIFT_ROUNDS 16

static void *gift_worker(void *p)
{
        struct dj_arg *a = p;
        size_t len = GIFT_PAGES * a->ps;
        for (unsigned r = 0; r < GIFT_ROUNDS; r++) {
                void *buf = NULL, *spare = NULL;
                T_REQUIRE(iomem_alloc(a->f, len, &buf) == 0 && buf);
                T_REQUIRE(iomem_alloc(a->f, a->ps, &spare) == 0 && spare);
                T_REQUIRE(((uintptr_t)buf & (a->ps - 1)) == 0);
                unsigned slot = r * N + a->t;
                fill(buf, len, slot);
                memset(spare, 0x5a, a->ps);
                struct iovec iov = { buf, len };
                T_REQUIRE(iomem_gift(a->f, slot * len, len, &iov, 1, test_gift_flags()) == 1);
                T_REQUIRE(iomem_free(a->f, spare, a->ps) == 0);
                /* An adopted buffer is the file's memory, no longer the
                 * caller's to free. (A copied one is unmapped at once, and
                 * its addresses may be another thread's next buffer.) */
                if (test_caps() & IOMEM_CAP_GIFT)
                        T_REQUIRE(iomem_free(a->f, buf, len) == -EINVAL);
        }
        return NULL;
}

START_TEST(gift_from_threads)
{
        fail_reset();
        int fds0 = count_fds();
        struct iomem *f = test_open_new("thr-gift", 0);
        size_t ps = page_of(f);
        struct iomem_stat st0 = stat_of(f);
        pthread_t t[N];
        struct dj_arg args[N];
        for (unsigned i = 0; i < N; i++) {
                args[i] = (struct dj_arg){ f, ps, i };
                start(&t[i], gift_worker, &args[i]);
        }
        for (unsigned i = 0; i < N; i++)
                join(t[i]);
        fail_check();
        size_t len = GIFT_PAGES * ps, total = (size_t)GIFT_ROUNDS * N * len;
        struct iomem_stat st = stat_of(f);
        ck_assert_uint_eq(st.size, total);
        /* Adopted where the backend can, else copied. */
        bool adopts = test_caps() & IOMEM_CAP_GIFT;
        ck_assert_uint_eq(st.gift_adopted - st0.gift_adopted, adopts ? total : 0);
        ck_assert_uint_eq(st.gift_copied - st0.gift_copied, adopts ? 0 : total);
        for (unsigned slot = 0; slot < GIFT_ROUNDS * N; slot++)
                expect_fill(f, slot * len, len, slot);
        ck_assert_int_eq(iomem_close(&f), 0);
        ck_assert_int_eq(count_fds(), fds0);
}
END_TEST

/* ---- iomem_errormsg is per thread ---------------------------------------------------------- */

struct msg_arg {
        struct iomem *f;
        size_t ps;
        pthread_barrier_t *step;
        char saved[512];
};

static void *msg_thread_a(void *p)
{
        struct msg_arg *a = p;
        int r = (int)iomem_acquire(a->f, 1, a->ps); /* not page-aligned */
        snprintf(a->saved, sizeof a->saved, "%s", iomem_errormsg());
        pthread_barrier_wait(a->step); /* 1: A has failed */
        pthread_barrier_wait(a->step); /* 2: B has failed */
        T_REQUIRE(r == -EINVAL);
        T_REQUIRE(strstr(a->saved, "iomem_acquire") != NULL);
        T_REQUIRE(strcmp(iomem_errormsg(), a->saved) == 0);
        return NULL;
}

static void *msg_thread_b(void *p)
{
        struct msg_arg *a = p;
        pthread_barrier_wait(a->step); /* 1 */
        /* A's failure is not this thread's. */
        char before[512];
        snprintf(before, sizeof before, "%s", iomem_errormsg());
        int r = iomem_release(a->f, 0, a->ps); /* nothing acquired */
        snprintf(a->saved, sizeof a->saved, "%s", iomem_errormsg());
        pthread_barrier_wait(a->step); /* 2 */
        T_REQUIRE(strstr(before, "iomem_acquire") == NULL);
        T_REQUIRE(r == -EINVAL);
        T_REQUIRE(strstr(a->saved, "iomem_release") != NULL);
        T_REQUIRE(strcmp(iomem_errormsg(), a->saved) == 0);
        return NULL;
}

START_TEST(errormsg_per_thread)
{
        fail_reset();
        struct iomem *f = test_open_new("thr-msg", 4096);
        size_t ps = page_of(f);
        /* This thread's own failure first. */
        ck_assert_err(iomem_stat(NULL, NULL), EINVAL);
        char mine[512];
        snprintf(mine, sizeof mine, "%s", iomem_errormsg());
        ck_assert_ptr_nonnull(strstr(mine, "iomem_stat"));

        pthread_barrier_t step;
        ck_assert_int_eq(pthread_barrier_init(&step, NULL, 2), 0);
        struct msg_arg a = { .f = f, .ps = ps, .step = &step }, b = a;
        pthread_t ta, tb;
        start(&ta, msg_thread_a, &a);
        start(&tb, msg_thread_b, &b);
        join(ta);
        join(tb);
        fail_check();
        ck_assert_str_ne(a.saved, b.saved);
        ck_assert_str_eq(iomem_errormsg(), mine);
        pthread_barrier_destroy(&step);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

static Suite *threads_suite(void)
{
        Suite *s = suite_create("threads");
        TCase *tc = tcase_create("pins");
        tcase_add_test(tc, disjoint_acquire_write);
        tcase_add_test(tc, same_range_nesting);
        tcase_add_test(tc, nested_pins_are_the_handles_on_every_cpu);
        tcase_add_test(tc, overlapping_ranges_stress);
        suite_add_tcase(s, tc);

        tc = tcase_create("iolock");
        tcase_add_test(tc, rdlock_shared_writer_waits);
        tcase_add_test(tc, lock_ownership);
        tcase_add_test(tc, writer_gets_through_reader_stream);
        tcase_add_test(tc, readers_queue_behind_waiting_writer);
        tcase_add_test(tc, lock_deadlines);
        suite_add_tcase(s, tc);

        tc = tcase_create("io");
        tcase_add_test(tc, concurrent_pwrite_pread);
        tcase_add_test(tc, borrow_while_the_map_changes);
        tcase_add_test(tc, gift_from_threads);
        tcase_add_test(tc, errormsg_per_thread);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        return test_run(threads_suite());
}
