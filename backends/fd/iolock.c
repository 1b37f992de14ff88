/* SPDX-License-Identifier: MIT */
#include "iolock.h"
#include "fdobj.h"
#include "fork.h"
#include "holders.h"
#include "lockwait.h"
#include "smap.h"
#include "undo.h"

#include <limits.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

/* How long a waiter sleeps before checking that the holders live. */
#define LIVENESS_POLL_NS 20000000L

/* Readers are kept by owner and thread. */
static uint64_t reader_key(uint32_t owner, int tid)
{
        return (uint64_t)owner << 32 | (uint32_t)tid;
}

static const struct iom_rec *reader_of(const struct iom_meta *m, uint32_t owner, int tid)
{
        return iom_smap_get(m, &m->readers, reader_key(owner, tid));
}

/* Count the calling thread's read lock once more (or for the first time:
 * count 1), or once less (delta -1: the last drops it). */
static int count_reader(struct iomem *f, uint32_t owner, int tid, int delta)
{
        struct iom_meta *m = fdo(f)->meta;
        const struct iom_rec *r = reader_of(m, owner, tid);
        uint64_t count = (r ? r->reader.count : 0) + (uint64_t)(int64_t)delta;
        struct iom_rec n = { .key = reader_key(owner, tid), .reader = { .count = count } };
        if (!r)
                return iom_smap_insert(f, &m->readers, &n);
        if (count == 0)
                return iom_smap_erase(f, &m->readers, n.key);
        return iom_smap_update(f, &m->readers, n.key, &n);
}

static int is_writer(const struct iom_meta *m, uint32_t owner, int tid)
{
        return m->writer_owner == owner && m->writer_tid == tid;
}

static void wake_all(struct iom_meta *m)
{
        __atomic_add_fetch(&m->lock_seq, 1, __ATOMIC_RELEASE);
        if (m->lock_waiters)
                iom_word_wake_all(&m->lock_seq);
}

/* Reap the holders and waiting writers that died: none of them can wake
 * anyone, and a dead waiting writer would hold every new reader back. */
static void reap_dead_holders(struct iomem *f)
{
        struct iom_meta *m = fdo(f)->meta;
        if (m->writer_owner != IOM_NO_OWNER)
                iom_owner_check(f, m->writer_owner);
        for (const struct iom_rec *r = iom_smap_ceil(m, &m->readers, 0, NULL); r;) {
                uint32_t owner = (uint32_t)(r->key >> 32);
                iom_owner_check(f, owner);
                r = iom_smap_ceil(m, &m->readers, reader_key(owner + 1, 0), NULL);
        }
        for (const struct iom_rec *o = iom_smap_ceil(m, &m->owners, 0, NULL);
             o && m->writers_waiting;) {
                uint64_t id = o->key;
                if (o->owner.writers_waiting)
                        iom_owner_check(f, (uint32_t)id);
                o = iom_smap_ceil(m, &m->owners, id + 1, NULL);
        }
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
        int timed_out = iom_word_wait(&m->lock_seq, seq, nap) == -ETIMEDOUT;
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
                if (reader_of(m, obj->owner, tid)) {
                        err = count_reader(f, obj->owner, tid, 1);
                        break;
                }
                bool writer_free = m->writer_owner == IOM_NO_OWNER || is_writer(m, obj->owner, tid);
                bool queue = m->writers_waiting && !is_writer(m, obj->owner, tid) &&
                             !iom_may_pass_waiting_writers();
                if (writer_free && !queue) {
                        if (!(err = count_reader(f, obj->owner, tid, 1)))
                                iom_reads_held_add(1);
                        break;
                }
                if ((err = wait_for_change(f, &d)))
                        return err == -ETIMEDOUT ? give_up(f, timeout_ms, "read") : err;
        }
        iom_meta_unlock(f);
        return err;
}

/* This owner's thread waits for the write lock (delta 1) or no longer:
 * counted with the owner too, so that reaping a dead owner uncounts its
 * waiting writers. */
static int count_waiting_writer(struct iomem *f, uint32_t owner, int delta)
{
        struct iom_meta *m = fdo(f)->meta;
        const struct iom_rec *o = iom_smap_get(m, &m->owners, owner);
        if (!o)
                return iom_fail(f->name, -EBADMSG, "the shared metadata lost this handle");
        struct iom_rec n = *o;
        n.owner.writers_waiting += (uint32_t)delta;
        int err = iom_smap_update(f, &m->owners, owner, &n);
        if (!err)
                err = iom_undo_set32(f, &m->writers_waiting, m->writers_waiting + (uint32_t)delta);
        if (!err && delta < 0 && m->writers_waiting == 0)
                wake_all(m); /* the readers queued behind it */
        return err;
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
                err = iom_undo_set32(f, &m->writer_depth, m->writer_depth + 1);
                iom_meta_unlock(f);
                return err;
        }
        if (reader_of(m, obj->owner, tid)) {
                iom_meta_unlock(f);
                return iom_fail(f->name, -EDEADLK, "the calling thread holds the read lock; "
                                                   "release it before writing");
        }
        bool waiting = false;
        while (m->writer_owner != IOM_NO_OWNER || m->readers.count != 0) {
                if (!waiting && timeout_ms != 0) {
                        if ((err = count_waiting_writer(f, obj->owner, 1))) {
                                iom_meta_unlock(f);
                                return err;
                        }
                        waiting = true;
                }
                if ((err = wait_for_change(f, &d))) {
                        /* Unless the metadata is corrupt (then nothing
                         * counts), stop holding new readers back. */
                        if (err != -ETIMEDOUT)
                                return err;
                        if (waiting)
                                count_waiting_writer(f, obj->owner, -1);
                        return give_up(f, timeout_ms, "write");
                }
        }
        if (waiting && (err = count_waiting_writer(f, obj->owner, -1))) {
                iom_meta_unlock(f);
                return err;
        }
        if ((err = iom_undo_set32(f, (uint32_t *)&m->writer_tid, (uint32_t)tid)) ||
            (err = iom_undo_set32(f, &m->writer_depth, 1)) ||
            (err = iom_undo_set32(f, &m->writer_owner, obj->owner)))
                iom_meta_undo(f);
        iom_meta_unlock(f);
        return err;
}

int iom_iolock_unlock(struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        struct iom_meta *m = obj->meta;
        int tid = iom_self_tid();
        int err = iom_meta_lock(f);
        if (err)
                return err;
        const struct iom_rec *r = reader_of(m, obj->owner, tid);
        if (r) {
                bool last = r->reader.count == 1;
                if (!(err = count_reader(f, obj->owner, tid, -1)) && last)
                        iom_reads_held_add(-1);
        } else if (is_writer(m, obj->owner, tid)) {
                err = iom_undo_set32(f, &m->writer_depth, m->writer_depth - 1);
                if (!err && m->writer_depth == 0)
                        err = iom_undo_set32(f, &m->writer_owner, IOM_NO_OWNER);
                if (err)
                        iom_meta_undo(f);
        } else {
                iom_meta_unlock(f);
                return iom_fail(f->name, -EPERM, "the calling thread does not hold the lock");
        }
        if (!err)
                wake_all(m);
        iom_meta_unlock(f);
        return err;
}

int iom_iolock_reap(struct iomem *f, uint32_t owner)
{
        struct iom_meta *m = fdo(f)->meta;
        int err = 0;
        bool changed = false;
        for (const struct iom_rec *r; !err && (r = iom_smap_ceil(m, &m->readers, reader_key(owner, 0), NULL)) &&
                                      r->key >> 32 == owner;) {
                err = iom_smap_erase(f, &m->readers, r->key);
                changed = true;
        }
        if (!err && m->writer_owner == owner) {
                err = iom_undo_set32(f, &m->writer_owner, IOM_NO_OWNER);
                changed = true;
        }
        const struct iom_rec *o = iom_smap_get(m, &m->owners, owner);
        uint32_t waiting = o ? o->owner.writers_waiting : 0;
        if (!err && waiting) {
                struct iom_rec n = *o;
                n.owner.writers_waiting = 0;
                err = iom_smap_update(f, &m->owners, owner, &n);
                if (!err)
                        err = iom_undo_set32(f, &m->writers_waiting,
                                             m->writers_waiting - iom_min(waiting, m->writers_waiting));
                changed = true;
        }
        if (changed)
                wake_all(m);
        return err;
}

int iom_iolock_holders(struct iomem *f, struct iom_holders *who)
{
        struct iom_meta *m = fdo(f)->meta;
        int err = 0, pid;
        if (m->writer_owner != IOM_NO_OWNER && (pid = iom_owner_pid(f, m->writer_owner)))
                err = iom_holders_add(who, pid);
        struct iom_cursor c;
        for (const struct iom_rec *r = iom_smap_ceil(m, &m->readers, 0, &c); r && !err;
             r = iom_smap_next(m, &m->readers, &c))
                if ((pid = iom_owner_pid(f, (uint32_t)(r->key >> 32))))
                        err = iom_holders_add(who, pid);
        return err ? iom_fail(f->name, err, "out of memory") : 0;
}
