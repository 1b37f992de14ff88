/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "iolock.h"
#include "internal.h"

#include <limits.h>
#include <pthread.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* How long a waiter sleeps before checking that the holders live. */
#define LIVENESS_POLL_NS 20000000L

static __thread int cached_tid;
static unsigned fork_gen;

/* Held while a forked child resets an inherited object, so that two of the
 * child's threads making their first call on it at once do not both reset
 * it (one would re-initialise a mutex the other holds). A thread takes it
 * once however deep its resets nest (a dax: handle resets its file, the
 * file its other handles and their windows): reset_depth counts them. */
static pthread_mutex_t fork_reset_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread unsigned reset_depth;

/* A fork waits for resets in progress, so a child never copies an object
 * half reset (resetting it again there could free what was freed). */
static void before_fork(void)
{
        pthread_mutex_lock(&fork_reset_lock);
}

static void after_fork_in_parent(void)
{
        pthread_mutex_unlock(&fork_reset_lock);
}

/* The child's only thread is the one that took the lock before the fork
 * (a plain mutex: its owner is not checked on unlock; re-initialising it
 * instead would leave TSan believing it held). */
static void after_fork_in_child(void)
{
        cached_tid = 0;
        __atomic_add_fetch(&fork_gen, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&fork_reset_lock);
}

__attribute__((constructor)) static void register_fork_handler(void)
{
        pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

static void reset_lock_take(void)
{
        if (reset_depth++ == 0)
                pthread_mutex_lock(&fork_reset_lock);
}

static void reset_lock_give(void)
{
        if (--reset_depth == 0)
                pthread_mutex_unlock(&fork_reset_lock);
}

bool iom_fork_reset_begin(const unsigned *gen)
{
        unsigned now = iom_fork_generation();
        if (__builtin_expect(__atomic_load_n(gen, __ATOMIC_ACQUIRE) == now, 1))
                return false;
        reset_lock_take();
        if (__atomic_load_n(gen, __ATOMIC_RELAXED) == now) { /* another thread did it */
                reset_lock_give();
                return false;
        }
        return true;
}

void iom_fork_reset_end(unsigned *gen, bool done)
{
        if (done)
                __atomic_store_n(gen, iom_fork_generation(), __ATOMIC_RELEASE);
        reset_lock_give();
}

int iom_self_tid(void)
{
        if (!cached_tid)
                cached_tid = (int)syscall(SYS_gettid);
        return cached_tid;
}

unsigned iom_fork_generation(void)
{
        return __atomic_load_n(&fork_gen, __ATOMIC_RELAXED);
}

static int reader_index(const struct iom_meta *m, uint32_t owner, int tid)
{
        for (uint32_t i = 0; i < m->nreaders; i++)
                if (m->readers[i].owner == owner && m->readers[i].tid == tid)
                        return (int)i;
        return -1;
}

static int is_writer(const struct iom_meta *m, uint32_t owner, int tid)
{
        return m->writer_owner == owner && m->writer_tid == tid;
}

static void wake_all(struct iom_meta *m)
{
        __atomic_add_fetch(&m->lock_seq, 1, __ATOMIC_RELEASE);
        if (m->lock_waiters)
                syscall(SYS_futex, &m->lock_seq, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/*
 * Sleep until the lock changes hands (metadata locked on entry, unlocked
 * on return). After a quiet interval, check the holders are alive.
 */
static int wait_for_change(struct iomem *f)
{
        struct iom_meta *m = f->meta;
        uint32_t seq = m->lock_seq;
        m->lock_waiters++;
        iom_meta_unlock(f);
        struct timespec ts = { 0, LIVENESS_POLL_NS };
        long r = syscall(SYS_futex, &m->lock_seq, FUTEX_WAIT, seq, &ts, NULL, 0);
        int timed_out = r < 0 && errno == ETIMEDOUT;
        int err = iom_meta_lock(f);
        if (err)
                return err;
        m->lock_waiters--;
        if (timed_out) {
                if (m->writer_owner != IOM_NO_OWNER)
                        iom_owner_check(f, m->writer_owner);
                for (uint32_t i = 0; i < m->nreaders; i++)
                        if (!iom_owner_check(f, m->readers[i].owner))
                                i = (uint32_t)-1; /* reaped: the table moved */
        }
        iom_meta_unlock(f);
        return 0;
}

int iom_iolock_rdlock(struct iomem *f)
{
        struct iom_meta *m = f->meta;
        int tid = iom_self_tid();
        for (;;) {
                int err = iom_meta_lock(f);
                if (err)
                        return err;
                int i = reader_index(m, f->owner, tid);
                if (i >= 0) {
                        m->readers[i].count++;
                        iom_meta_unlock(f);
                        return 0;
                }
                if (m->writer_owner == IOM_NO_OWNER || is_writer(m, f->owner, tid)) {
                        if (m->nreaders == IOM_MAX_READERS) {
                                iom_meta_unlock(f);
                                return iom_fail(f->name, -EAGAIN,
                                                "%d threads already hold the read lock",
                                                IOM_MAX_READERS);
                        }
                        m->readers[m->nreaders] = (struct iom_reader){
                                .owner = f->owner, .tid = tid, .count = 1 };
                        m->nreaders++;
                        iom_meta_unlock(f);
                        return 0;
                }
                if ((err = wait_for_change(f)))
                        return err;
        }
}

int iom_iolock_wrlock(struct iomem *f)
{
        struct iom_meta *m = f->meta;
        int tid = iom_self_tid();
        for (;;) {
                int err = iom_meta_lock(f);
                if (err)
                        return err;
                if (is_writer(m, f->owner, tid)) {
                        m->writer_depth++;
                        iom_meta_unlock(f);
                        return 0;
                }
                if (reader_index(m, f->owner, tid) >= 0) {
                        iom_meta_unlock(f);
                        return iom_fail(f->name, -EDEADLK,
                                        "the calling thread holds the read lock; "
                                        "release it before writing");
                }
                if (m->writer_owner == IOM_NO_OWNER && m->nreaders == 0) {
                        m->writer_tid = tid;
                        m->writer_depth = 1;
                        __atomic_store_n(&m->writer_owner, f->owner, __ATOMIC_RELEASE);
                        iom_meta_unlock(f);
                        return 0;
                }
                if ((err = wait_for_change(f)))
                        return err;
        }
}

int iom_iolock_unlock(struct iomem *f)
{
        struct iom_meta *m = f->meta;
        int tid = iom_self_tid();
        int err = iom_meta_lock(f);
        if (err)
                return err;
        int i = reader_index(m, f->owner, tid);
        if (i >= 0) {
                if (--m->readers[i].count == 0)
                        m->readers[i] = m->readers[--m->nreaders];
        } else if (is_writer(m, f->owner, tid)) {
                if (--m->writer_depth == 0)
                        m->writer_owner = IOM_NO_OWNER;
        } else {
                iom_meta_unlock(f);
                return iom_fail(f->name, -EPERM, "the calling thread does not hold the lock");
        }
        wake_all(m);
        iom_meta_unlock(f);
        return 0;
}

void iom_iolock_reap(struct iom_meta *m, uint32_t owner)
{
        int changed = 0;
        for (uint32_t i = 0; i < m->nreaders;) {
                if (m->readers[i].owner == owner) {
                        m->readers[i] = m->readers[--m->nreaders];
                        changed = 1;
                } else {
                        i++;
                }
        }
        if (m->writer_owner == owner) {
                m->writer_owner = IOM_NO_OWNER;
                changed = 1;
        }
        if (changed)
                wake_all(m);
}
