/* SPDX-License-Identifier: MIT */
/*
 * The shared metadata area: initialisation and validation, the robust
 * mutex and its undo log, owner registration and reclaiming what dead
 * processes held.
 */
#include "fdobj.h"
#include "extent_map.h"
#include "heap.h"
#include "iolock.h"
#include "smap.h"
#include "syscalls.h"
#include "undo.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t iom_meta_initial(size_t page_size)
{
        return iom_round_up(IOM_HEAP_OFF + IOM_HEAP_OFF, iom_max(IOM_HEAP_OFF, page_size));
}

int iom_meta_init(struct iom_meta *m, size_t page_size, uint64_t span, bool shared)
{
        m->version = IOM_META_VERSION;
        m->page_size = (uint32_t)page_size;
        m->span = span;
        m->heap_top = IOM_HEAP_OFF;
        m->heap_backed = iom_meta_initial(page_size);
        m->writer_owner = IOM_NO_OWNER;
        m->pool_next = IOM_POOL_OFF;
        pthread_mutexattr_t a;
        int r = pthread_mutexattr_init(&a);
        if (!r)
                r = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        if (!r && shared)
                r = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        if (!r)
                r = pthread_mutex_init(&m->mutex, &a);
        pthread_mutexattr_destroy(&a);
        if (r)
                return -r;
        __atomic_store_n(&m->magic, IOM_META_MAGIC, __ATOMIC_RELEASE);
        return 0;
}

/* Enough of the header to walk its undo log. */
IOM_SEQ_READER static bool log_holds_together(const struct iom_meta *m, size_t page_size, uint64_t span)
{
        return __atomic_load_n(&m->magic, __ATOMIC_ACQUIRE) == IOM_META_MAGIC &&
               m->version == IOM_META_VERSION && m->page_size == page_size && m->span == span &&
               m->log_backed <= span && m->log_len <= m->log_backed;
}

IOM_SEQ_READER static bool smap_holds_together(const struct iom_smap *s)
{
        return s->nleaves <= s->dir_cap && (s->count ? s->nleaves >= 1 : s->nleaves <= 1) &&
               s->count / IOM_SMAP_LEAF_RECS <= s->nleaves;
}

IOM_SEQ_READER int iom_meta_validate(const struct iom_meta *m, size_t page_size, uint64_t span)
{
        bool ok = log_holds_together(m, page_size, span) && m->heap_top >= IOM_HEAP_OFF &&
                  m->heap_top <= m->heap_backed && m->heap_backed <= span - m->log_backed &&
                  m->size <= IOM_DATA_END && m->pool_next >= IOM_POOL_OFF &&
                  m->pool_next <= IOM_PHYS_END && smap_holds_together(&m->extents) &&
                  smap_holds_together(&m->pins) && smap_holds_together(&m->pool) &&
                  smap_holds_together(&m->owners) && smap_holds_together(&m->readers) &&
                  smap_holds_together(&m->pool_free);
        return ok ? 0 : -EBADMSG;
}

int iom_meta_describe_fd(struct iomem *f, int fd)
{
        struct stat st;
        if (iom_sys.fstat(fd, &st) < 0)
                return -errno;
        uint64_t size = (uint64_t)st.st_size, page = f->page_size;
        if (size > IOM_DATA_END)
                return -EFBIG;
        int r = iom_map_resize(f, size);
        for (off_t pos = 0; !r && (uint64_t)pos < size;) {
                off_t data = lseek(fd, pos, iom_seek_data);
                if (data < 0 && errno == ENXIO)
                        break; /* only a hole remains */
                /* A system that cannot tell holes (EINVAL): all data. */
                off_t hole = data < 0 ? (off_t)size : lseek(fd, data, iom_seek_hole);
                if (data < 0)
                        data = pos;
                if (hole < 0 || (uint64_t)hole > size)
                        hole = (off_t)size;
                uint64_t s = iom_round_down((uint64_t)data, page);
                uint64_t e = iom_round_up((uint64_t)hole, page);
                r = iom_map_set(f, s, e - s, s);
                pos = hole;
        }
        return r;
}

/* ---- owners ---------------------------------------------------------- */

int iom_owner_register(struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        struct iom_meta *m = obj->meta;
        uint32_t id = m->next_owner == IOM_NO_OWNER ? 0 : m->next_owner;
        while (iom_smap_get(m, &m->owners, id))
                id = id + 1 == IOM_NO_OWNER ? 0 : id + 1;
        pid_t pid = getpid();
        struct iom_rec r = { .key = id,
                             .owner = { .pid = pid, .start_time = iom_process_start_time(pid, NULL),
                                        .flags = f->flags & IOMEM_RDWR ? IOM_OWNER_WRITES : 0 } };
        int err = iom_smap_insert(f, &m->owners, &r);
        if (!err)
                err = iom_undo_set32(f, &m->next_owner, id + 1);
        if (err)
                return err;
        obj->owner = id;
        /* Owners that died without closing are reaped as they are met (a
         * pin in the way, a lock wait); look at one more at every open, so
         * that they do not gather where nothing meets them. */
        const struct iom_rec *other = iom_smap_ceil(m, &m->owners, (uint64_t)id + 1, NULL);
        if (!other)
                other = iom_smap_ceil(m, &m->owners, 0, NULL);
        if (other && other->key != id)
                iom_owner_check(f, (uint32_t)other->key);
        return 0;
}

/* Drop everything an owner holds in the shared state, then the owner.
 * Each step is whole: a failure leaves the owner to reap again later. */
static int owner_reap(struct iomem *f, uint32_t owner)
{
        struct iom_meta *m = fdo(f)->meta;
        int err = iom_pin_drop_owner(f, owner);
        if (!err)
                err = iom_pool_drop_owner(f, owner);
        if (!err)
                err = iom_iolock_reap(f, owner);
        if (!err && iom_smap_get(m, &m->owners, owner))
                err = iom_smap_erase(f, &m->owners, owner);
        return err;
}

void iom_owner_unregister(struct iomem *f)
{
        owner_reap(f, fdo(f)->owner); /* what it cannot drop, survivors reap */
}

/* Has the process of owner record o died? */
static bool owner_gone(const struct iom_rec *o)
{
        return iom_process_gone((pid_t)o->owner.pid, o->owner.start_time);
}

int iom_owner_check(struct iomem *f, uint32_t owner)
{
        struct iom_meta *m = fdo(f)->meta;
        const struct iom_rec *o = iom_smap_get(m, &m->owners, owner);
        if (!o) {
                /* Entries of an owner that is not there (a spoilt table)
                 * hold nothing. */
                int err = owner_reap(f, owner);
                return err ? err : 0;
        }
        if (!owner_gone(o))
                return 1;
        pid_t pid = (pid_t)o->owner.pid;
        iom_debug("%s: reclaiming what dead process %d held", f->name, (int)pid);
        int err = owner_reap(f, owner);
        return err ? err : 0;
}

int iom_owner_pid(struct iomem *f, uint32_t owner)
{
        const struct iom_meta *m = fdo(f)->meta;
        const struct iom_rec *o = iom_smap_get(m, &m->owners, owner);
        return o ? (int)o->owner.pid : 0;
}

IOM_SEQ_READER bool iom_owner_any_seen_alive(struct iomem *f)
{
        const struct iom_meta *m = fdo(f)->meta;
        for (const struct iom_rec *o = iom_smap_ceil(m, &m->owners, 0, NULL); o;
             o = iom_smap_ceil(m, &m->owners, o->key + 1, NULL))
                if (!owner_gone(o))
                        return true;
        return false;
}

bool iom_owner_any_alive(struct iomem *f)
{
        struct iom_meta *m = fdo(f)->meta;
        for (const struct iom_rec *o = iom_smap_ceil(m, &m->owners, 0, NULL); o;) {
                uint64_t id = o->key;
                if (iom_owner_check(f, (uint32_t)id) != 0)
                        return true; /* alive, or not known to be dead */
                o = iom_smap_ceil(m, &m->owners, id + 1, NULL);
        }
        return false;
}

/* Reap every owner that died. */
static void reap_the_dead(struct iomem *f)
{
        struct iom_meta *m = fdo(f)->meta;
        for (const struct iom_rec *o = iom_smap_ceil(m, &m->owners, 0, NULL); o;) {
                uint64_t id = o->key;
                iom_owner_check(f, (uint32_t)id);
                o = iom_smap_ceil(m, &m->owners, id + 1, NULL);
        }
}

/* ---- the robust mutex ------------------------------------------------- */

IOM_SEQ_READER bool iom_meta_sound(struct iomem *f)
{
        /* Another process may have scribbled on it: never walk a log or a
         * table that does not hold together, nor wait for a writer that
         * is nobody. */
        const struct iom_fdobj *obj = fdo(f);
        const struct iom_meta *m = obj->meta;
        return !iom_meta_validate(m, f->page_size, obj->meta_map_len) && !m->log_len &&
               (m->writer_owner == IOM_NO_OWNER || iom_smap_get(m, &m->owners, m->writer_owner));
}

static int corrupt(struct iomem *f)
{
        pthread_mutex_unlock(&fdo(f)->meta->mutex);
        return iom_fail(f->name, -EBADMSG, "the shared metadata is corrupt");
}

/*
 * Lock the shared mutex, waking to try again every so often. The kernel
 * cannot keep every wake-up of a robust mutex whose waiters are killed:
 * an unlock wakes one waiter; if that one is killed before it takes the
 * lock and another process takes it first, uncontended, the kernel's exit
 * path sees an owner and wakes nobody, that owner's unlock sees no waiter
 * flag and wakes nobody, and the other waiters would sleep until the next
 * contended unlock, which may never come (fuzz_procs found it). A waiter
 * that wakes on its own bounds that to one period. (A priority-inheriting
 * mutex would hand the lock over in the kernel instead, but it names its
 * owner by thread id, which breaks between PID namespaces.)
 */
static int lock_waking(pthread_mutex_t *mutex)
{
        int r = pthread_mutex_trylock(mutex);
        if (r != EBUSY) /* taken, or its holder died: no clock to read */
                return r;
        for (;;) {
                struct timespec until;
                /* The wall clock, as pthread_mutex_timedlock takes (a step
                 * back lengthens one period; pthread_mutex_clocklock would
                 * take CLOCK_MONOTONIC, but ThreadSanitizer does not know
                 * it, and would see the mutex unlocked while held). */
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_nsec += 50 * 1000000L;
                if (until.tv_nsec >= 1000000000L) {
                        until.tv_sec++;
                        until.tv_nsec -= 1000000000L;
                }
                r = pthread_mutex_timedlock(mutex, &until);
                if (r != ETIMEDOUT)
                        return r;
        }
}

int iom_meta_lock(struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        struct iom_meta *m = obj->meta;
        int r = lock_waking(&m->mutex);
        if (r == EOWNERDEAD) {
                /* Its holder died mid-change: undo what it had done, then
                 * reclaim what the dead held. */
                pthread_mutex_consistent(&m->mutex);
                if (!log_holds_together(m, f->page_size, obj->meta_map_len))
                        return corrupt(f);
                iom_undo_rollback(m);
                if (iom_meta_validate(m, f->page_size, obj->meta_map_len))
                        return corrupt(f);
                reap_the_dead(f);
                iom_undo_commit(f);
                return 0;
        }
        if (r)
                return iom_fail(f->name, r == ENOTRECOVERABLE ? -EBADMSG : -r,
                                "cannot lock the metadata: %s", strerror(r));
        if (!iom_meta_sound(f))
                return corrupt(f);
        return 0;
}

void iom_meta_unlock(struct iomem *f)
{
        iom_undo_commit(f);
        /* Whatever the change let go of the gift pool, no more than the
         * limit of unused memory stays with it. */
        iom_pool_trim(f, iom_pool_keep_limit(f));
        pthread_mutex_unlock(&fdo(f)->meta->mutex);
}

void iom_meta_undo(struct iomem *f)
{
        iom_undo_rollback(fdo(f)->meta);
}

void iom_meta_keep(struct iomem *f)
{
        iom_undo_commit(f);
}

void iom_owner_name_others(struct iomem *f, char *out, size_t cap)
{
        struct iom_meta *m = fdo(f)->meta;
        size_t n = 0, shown = 0;
        out[0] = 0;
        for (const struct iom_rec *r = iom_smap_ceil(m, &m->owners, 0, NULL); r;
             r = iom_smap_ceil(m, &m->owners, r->key + 1, NULL)) {
                if (r->key == fdo(f)->owner)
                        continue;
                if (shown < 4 && n < cap)
                        n += (size_t)snprintf(out + n, cap - n, "%s%lld%s%s", shown ? ", " : "",
                                              (long long)r->owner.pid,
                                              r->owner.pid == getpid() ? " (this one)" : "",
                                              r->owner.flags & IOM_OWNER_WRITES ? " (for writing)" : "");
                shown++;
        }
        if (shown > 4 && n < cap)
                snprintf(out + n, cap - n, " and %zu more", shown - 4);
        if (!shown)
                snprintf(out, cap, "none: a program that does not use the library maps it");
}
