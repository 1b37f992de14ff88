/* SPDX-License-Identifier: MIT */
/*
 * What the platform layer's wait costs the I/O lock: two processes take
 * and drop the write lock of one shm: object as fast as they can, each
 * counting its turns in the object, beside the same loop on a process-
 * shared robust pthread mutex in shared memory (the system's own lock)
 * and one process alone on each. Run from a build of each platform layer
 * (scripts/bench runs the POSIX build's too): Linux's sleeps on a futex,
 * POSIX's naps and looks again. Prints lock-unlock pairs per second, the
 * longest a single lock call waited, and the ratios to the pthread mutex
 * measured in the same run.
 */
#include "bench.h"
#include "platform.h"

#include <errno.h>
#include <iomem.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define OPS 200000 /* lock-unlock pairs per process per run */

static void die(const char *what)
{
        fprintf(stderr, "bench_lockwait: %s: %s\n", what, iomem_errormsg());
        exit(1);
}

/* The longest single lock call of each contender, in seconds (shared
 * memory: contenders are processes). */
static double *longest;

/* One contender's loop on the library's lock; the count lives in the
 * object, written under the lock. */
static void iomem_loop(struct iomem *f, volatile uint64_t *count, int who)
{
        double worst = 0;
        for (int i = 0; i < OPS; i++) {
                double t = bench_now();
                if (iomem_wrlock(f))
                        die("iomem_wrlock");
                t = bench_now() - t;
                worst = t > worst ? t : worst;
                (*count)++;
                if (iomem_unlock(f))
                        die("iomem_unlock");
        }
        longest[who] = worst;
}

static void mutex_loop(pthread_mutex_t *m, volatile uint64_t *count, int who)
{
        double worst = 0;
        for (int i = 0; i < OPS; i++) {
                double t = bench_now();
                int r = pthread_mutex_lock(m);
                if (r == EOWNERDEAD)
                        pthread_mutex_consistent(m);
                else if (r)
                        die("pthread_mutex_lock");
                t = bench_now() - t;
                worst = t > worst ? t : worst;
                (*count)++;
                pthread_mutex_unlock(m);
        }
        longest[who] = worst;
}

/* The longest wait of nproc contenders, in microseconds. */
static double longest_us(int nproc)
{
        double w = 0;
        for (int p = 0; p < nproc; p++)
                w = longest[p] > w ? longest[p] : w;
        return w * 1e6;
}

struct shared_mutex {
        pthread_mutex_t m;
        uint64_t count;
};

/* Run loop(arg, who) in nproc processes at once, this one being who 0;
 * the seconds they took together. */
static double contend(int nproc, void (*loop)(void *arg, int who), void *arg)
{
        double t0 = bench_now();
        for (int p = 1; p < nproc; p++) {
                pid_t pid = fork();
                if (pid < 0)
                        die("fork");
                if (pid == 0) {
                        loop(arg, p);
                        _exit(0);
                }
        }
        loop(arg, 0);
        for (int p = 1; p < nproc; p++) {
                int st;
                if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
                        die("a contender failed");
        }
        return bench_now() - t0;
}

struct iomem_run {
        const char *uri;
        struct iomem *f; /* this process's handle; the others open their own */
        volatile uint64_t *count;
};

static void iomem_turns(void *arg, int who)
{
        struct iomem_run *r = arg;
        if (who == 0) {
                iomem_loop(r->f, r->count, 0);
                return;
        }
        struct iomem *g;
        struct iovec w;
        if (iomem_open(&g, r->uri, IOMEM_RDWR, NULL) || iomem_acquire(g, 0, 4096) != 4096 ||
            iomem_retrieve(g, 0, 8, &w, 1) != 1)
                die("a contender's handle");
        iomem_loop(g, w.iov_base, who);
        iomem_release(g, 0, 4096);
        iomem_close(&g);
}

/* Lock-unlock pairs per second of nproc processes on the library's lock. */
static double run_iomem(int nproc)
{
        char uri[64];
        snprintf(uri, sizeof uri, "shm:iomem-bench-lockwait-%d", (int)getpid());
        struct iomem_opts *o;
        struct iomem_run r = { .uri = uri };
        iomem_opts_new(&o);
        iomem_opts_set_size(o, 4096);
        if (iomem_open(&r.f, uri, IOMEM_RDWR | IOMEM_CREATE, o))
                die("iomem_open");
        iomem_opts_delete(&o);
        struct iovec v;
        if (iomem_acquire(r.f, 0, 4096) != 4096 || iomem_retrieve(r.f, 0, 8, &v, 1) != 1)
                die("iomem_acquire");
        r.count = v.iov_base;
        *r.count = 0;
        double dt = contend(nproc, iomem_turns, &r);
        if (*r.count != (uint64_t)nproc * OPS)
                die("the count under the lock is wrong");
        iomem_release(r.f, 0, 4096);
        iomem_close(&r.f);
        iomem_unlink(uri);
        return (double)nproc * OPS / dt;
}

static void mutex_turns(void *arg, int who)
{
        struct shared_mutex *s = arg;
        mutex_loop(&s->m, &s->count, who);
}

static double run_mutex(int nproc)
{
        struct shared_mutex *s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE,
                                      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (s == MAP_FAILED)
                die("mmap");
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(&s->m, &a);
        pthread_mutexattr_destroy(&a);
        s->count = 0;
        double dt = contend(nproc, mutex_turns, s);
        if (s->count != (uint64_t)nproc * OPS)
                die("the count under the mutex is wrong");
        pthread_mutex_destroy(&s->m);
        munmap(s, sizeof *s);
        return (double)nproc * OPS / dt;
}

int main(int argc, char **argv)
{
        struct bench_opts opt = bench_parse(argc, argv);
        longest = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (longest == MAP_FAILED)
                die("mmap");
        /* Per row (1 process, 2 processes): rates in M/s, longest waits in
         * us, and ours over the mutex's. */
        struct bench_series ours[2] = { 0 }, sys[2] = { 0 }, ratio[2] = { 0 };
        struct bench_series ours_wait[2] = { 0 }, sys_wait[2] = { 0 };
        for (int r = 0; r < opt.reps; r++) {
                for (int k = 0; k < 2; k++) { /* interleaved: 1 process, then 2 */
                        double a = run_iomem(k + 1), aw = longest_us(k + 1);
                        double b = run_mutex(k + 1), bw = longest_us(k + 1);
                        bench_add(&ours[k], a / 1e6);
                        bench_add(&sys[k], b / 1e6);
                        bench_add(&ratio[k], a / b);
                        bench_add(&ours_wait[k], aw);
                        bench_add(&sys_wait[k], bw);
                }
        }
        for (int k = 0; k < 2; k++) {
                struct bench_summary a = bench_summarise(&ours[k]), b = bench_summarise(&sys[k]),
                                     q = bench_summarise(&ratio[k]), aw = bench_summarise(&ours_wait[k]),
                                     bw = bench_summarise(&sys_wait[k]);
                if (opt.json) {
                        char row[64];
                        snprintf(row, sizeof row, "%s, %d process%s", iom_platform_name, k + 1,
                                 k ? "es" : "");
                        bench_json("lockwait", row, "iomem_mops", a.median, "pthread_mops", b.median,
                                   "ratio", q.median, "iomem_longest_us", aw.median,
                                   "pthread_longest_us", bw.median, NULL);
                        continue;
                }
                if (k == 0) {
                        printf("### I/O lock: the %s platform layer\n\n", iom_platform_name);
                        printf("| contenders | iomem_wrlock+unlock, M/s | longest wait, us | "
                               "pthread robust mutex, M/s | longest wait, us | rate ratio |\n");
                        printf("|---|---|---|---|---|---|\n");
                }
                printf("| %d process%s | %s | %s | %s | %s | %s |\n", k + 1, k ? "es" : "",
                       bench_fmt(a, 2), bench_fmt(aw, 0), bench_fmt(b, 2), bench_fmt(bw, 0),
                       bench_fmt(q, 3));
        }
        if (!opt.json)
                printf("\n");
        munmap(longest, 4096);
        return 0;
}
