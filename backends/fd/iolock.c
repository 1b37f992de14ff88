/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "iolock.h"
#include "fdobj.h"
#include "fork.h"

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

/*
 * Sleep until the lock changes hands (metadata locked on entry, unlocked
 * on return). After a quiet interval, check the holders are alive.
 */
static int wait_for_change(struct iomem *f)
{
        struct iom_meta *m = fdo(f)->meta;
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
        struct iom_fdobj *obj = fdo(f);
        struct iom_meta *m = obj->meta;
        int tid = iom_self_tid();
        for (;;) {
                int err = iom_meta_lock(f);
                if (err)
                        return err;
                int i = reader_index(m, obj->owner, tid);
                if (i >= 0) {
                        m->readers[i].count++;
                        iom_meta_unlock(f);
                        return 0;
                }
                if (m->writer_owner == IOM_NO_OWNER || is_writer(m, obj->owner, tid)) {
                        if (m->nreaders == IOM_MAX_READERS) {
                                iom_meta_unlock(f);
                                return iom_fail(f->name, -EAGAIN,
                                                "%d threads already hold the read lock",
                                                IOM_MAX_READERS);
                        }
                        m->readers[m->nreaders] = (struct iom_reader){
                                .owner = obj->owner, .tid = tid, .count = 1 };
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
        struct iom_fdobj *obj = fdo(f);
        struct iom_meta *m = obj->meta;
        int tid = iom_self_tid();
        for (;;) {
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
                        return iom_fail(f->name, -EDEADLK,
                                        "the calling thread holds the read lock; "
                                        "release it before writing");
                }
                if (m->writer_owner == IOM_NO_OWNER && m->nreaders == 0) {
                        m->writer_tid = tid;
                        m->writer_depth = 1;
                        __atomic_store_n(&m->writer_owner, obj->owner, __ATOMIC_RELEASE);
                        iom_meta_unlock(f);
                        return 0;
                }
                if ((err = wait_for_change(f)))
                        return err;
        }
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
                if (--m->readers[i].count == 0)
                        m->readers[i] = m->readers[--m->nreaders];
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
        if (changed)
                wake_all(m);
}
