/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "iolock.h"
#include "fdobj.h"
#include "fork.h"
#include "lockwait.h"

#include <limits.h>
#include <pthread.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* How long a waiter sleeps before checking that the holders live. */
#define LIVENESS_POLL_NS 20000000L

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

/* Reap the holders and waiting writers that died: none of them can wake
 * anyone, and a dead waiting writer would hold every new reader back. */
static void reap_dead_holders(struct iomem *f)
{
        struct iom_meta *m = fdo(f)->meta;
        if (m->writer_owner != IOM_NO_OWNER)
                iom_owner_check(f, m->writer_owner);
        for (uint32_t i = 0; i < m->nreaders; i++)
                if (!iom_owner_check(f, m->readers[i].owner))
                        i = (uint32_t)-1; /* reaped: the table moved */
        for (uint32_t i = 0; m->writers_waiting && i < IOM_MAX_OWNERS; i++)
                if (m->owners[i].writers_waiting)
                        iom_owner_check(f, i);
}

/*
 * Sleep until the lock changes hands or the deadline passes (metadata
 * locked on entry, and on return unless the metadata could not be locked
 * again). After a quiet interval, check that the holders are alive.
 * -ETIMEDOUT when the deadline has passed.
 */
static int wait_for_change(struct iomem *f, const struct iom_deadline *d)
{
        struct iom_meta *m = fdo(f)->meta;
        uint64_t left = iom_deadline_left_ns(d);
        if (left == 0)
                return -ETIMEDOUT;
        uint64_t nap = left < (uint64_t)LIVENESS_POLL_NS ? left : (uint64_t)LIVENESS_POLL_NS;
        uint32_t seq = m->lock_seq;
        m->lock_waiters++;
        iom_meta_unlock(f);
        struct timespec ts = { 0, (long)nap };
        long r = syscall(SYS_futex, &m->lock_seq, FUTEX_WAIT, seq, &ts, NULL, 0);
        int timed_out = r < 0 && errno == ETIMEDOUT;
        int err = iom_meta_lock(f);
        if (err)
                return err;
        m->lock_waiters--;
        if (timed_out)
                reap_dead_holders(f);
        return 0;
}

/* A lock call gave up (metadata locked on entry, unlocked on return). */
static int give_up(struct iomem *f, int timeout_ms, const char *mode)
{
        iom_meta_unlock(f);
        int err = iom_deadline_error(timeout_ms);
        return iom_fail(f->name, err, err == -EBUSY ? "the %s lock is taken" :
                        "the %s lock was not free within %d ms", mode, timeout_ms);
}

int iom_iolock_rdlock(struct iomem *f, int timeout_ms)
{
        struct iom_fdobj *obj = fdo(f);
        struct iom_meta *m = obj->meta;
        int tid = iom_self_tid();
        struct iom_deadline d = iom_deadline_after(timeout_ms);
        int err = iom_meta_lock(f);
        if (err)
                return err;
        for (;;) {
                int i = reader_index(m, obj->owner, tid);
                if (i >= 0) {
                        m->readers[i].count++;
                        break;
                }
                bool writer_free = m->writer_owner == IOM_NO_OWNER || is_writer(m, obj->owner, tid);
                bool queue = m->writers_waiting && !is_writer(m, obj->owner, tid) &&
                             !iom_may_pass_waiting_writers();
                if (writer_free && !queue) {
                        if (m->nreaders == IOM_MAX_READERS) {
                                iom_meta_unlock(f);
                                return iom_fail(f->name, -EAGAIN,
                                                "%d threads already hold the read lock",
                                                IOM_MAX_READERS);
                        }
                        m->readers[m->nreaders] = (struct iom_reader){
                                .owner = obj->owner, .tid = tid, .count = 1 };
                        m->nreaders++;
                        iom_reads_held_add(1);
                        break;
                }
                if ((err = wait_for_change(f, &d)))
                        return err == -ETIMEDOUT ? give_up(f, timeout_ms, "read") : err;
        }
        iom_meta_unlock(f);
        return 0;
}

/* This owner's thread waits for the write lock (delta 1) or no longer. */
static void count_waiting_writer(struct iom_meta *m, uint32_t owner, int delta)
{
        m->owners[owner].writers_waiting += (uint32_t)delta;
        m->writers_waiting += (uint32_t)delta;
        if (delta < 0 && m->writers_waiting == 0)
                wake_all(m); /* the readers queued behind it */
}

int iom_iolock_wrlock(struct iomem *f, int timeout_ms)
{
        struct iom_fdobj *obj = fdo(f);
        struct iom_meta *m = obj->meta;
        int tid = iom_self_tid();
        struct iom_deadline d = iom_deadline_after(timeout_ms);
        int err = iom_meta_lock(f);
        if (err)
                return err;
        if (is_writer(m, obj->owner, tid)) {
                m->writer_depth++;
                iom_meta_unlock(f);
                return 0;
        }
        if (reader_index(m, obj->owner, tid) >= 0) {
                iom_meta_unlock(f);
                return iom_fail(f->name, -EDEADLK, "the calling thread holds the read lock; "
                                                   "release it before writing");
        }
        bool waiting = false;
        while (m->writer_owner != IOM_NO_OWNER || m->nreaders != 0) {
                if (!waiting && timeout_ms != 0) {
                        count_waiting_writer(m, obj->owner, 1);
                        waiting = true;
                }
                if ((err = wait_for_change(f, &d))) {
                        /* Unless the metadata is corrupt (then nothing
                         * counts), stop holding new readers back. */
                        if (err != -ETIMEDOUT)
                                return err;
                        if (waiting)
                                count_waiting_writer(m, obj->owner, -1);
                        return give_up(f, timeout_ms, "write");
                }
        }
        if (waiting)
                count_waiting_writer(m, obj->owner, -1);
        m->writer_tid = tid;
        m->writer_depth = 1;
        __atomic_store_n(&m->writer_owner, obj->owner, __ATOMIC_RELEASE);
        iom_meta_unlock(f);
        return 0;
}

int iom_iolock_unlock(struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        struct iom_meta *m = obj->meta;
        int tid = iom_self_tid();
        int err = iom_meta_lock(f);
        if (err)
                return err;
        int i = reader_index(m, obj->owner, tid);
        if (i >= 0) {
                if (--m->readers[i].count == 0) {
                        m->readers[i] = m->readers[--m->nreaders];
                        iom_reads_held_add(-1);
                }
        } else if (is_writer(m, obj->owner, tid)) {
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
        uint32_t waiting = m->owners[owner].writers_waiting;
        if (waiting) {
                m->owners[owner].writers_waiting = 0;
                m->writers_waiting -= waiting < m->writers_waiting ? waiting : m->writers_waiting;
                changed = 1;
        }
        if (changed)
                wake_all(m);
}
