/* SPDX-License-Identifier: MIT */
/*
 * The shared metadata area: initialisation and validation, the robust
 * mutex, owner registration and reclaiming what dead processes held.
 */
#define _GNU_SOURCE
#include "fdobj.h"
#include "iolock.h"
#include "syscalls.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

size_t iom_meta_span(size_t page_size)
{
        return iom_round_up(sizeof(struct iom_meta), page_size);
}

int iom_meta_init(struct iom_meta *m, size_t page_size, bool shared)
{
        m->version = IOM_META_VERSION;
        m->page_size = (uint32_t)page_size;
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

static int map_holds_together(const struct iom_extent_map *x, uint64_t page)
{
        if (x->count > IOM_MAX_EXTENTS || x->size > IOM_DATA_END)
                return 0;
        uint64_t pos = 0;
        for (uint32_t i = 0; i < x->count; i++) {
                const struct iom_extent *e = &x->ext[i];
                if (e->off != pos || e->len == 0 || (e->len & (page - 1)))
                        return 0;
                if (e->phys != IOM_HOLE &&
                    ((e->phys & (page - 1)) || e->phys >= IOM_PHYS_END ||
                     (e->phys >= IOM_DATA_END && e->phys < IOM_POOL_OFF)))
                        return 0;
                pos += e->len;
        }
        return pos == iom_round_up(x->size, page);
}

/* The checks that keep every table index in bounds: cheap enough for
 * every lock. */
static int header_holds_together(const struct iom_meta *m, size_t page_size)
{
        const struct iom_extent_map *x = iom_map(m);
        return __atomic_load_n(&m->magic, __ATOMIC_ACQUIRE) == IOM_META_MAGIC &&
               m->version == IOM_META_VERSION && m->page_size == page_size &&
               m->active_map <= 1 && m->npins <= IOM_MAX_PINS && m->npool <= IOM_MAX_ALLOCS &&
               m->nreaders <= IOM_MAX_READERS &&
               (m->writer_owner == IOM_NO_OWNER || m->writer_owner < IOM_MAX_OWNERS) &&
               x->count <= IOM_MAX_EXTENTS && x->size <= IOM_DATA_END;
}

int iom_meta_validate(const struct iom_meta *m, size_t page_size)
{
        if (!header_holds_together(m, page_size) || !map_holds_together(iom_map(m), page_size))
                return -EBADMSG;
        for (uint32_t i = 0; i < m->npins; i++)
                if (m->pins[i].owner >= IOM_MAX_OWNERS || m->pins[i].start >= m->pins[i].end)
                        return -EBADMSG;
        for (uint32_t i = 0; i < m->npool; i++)
                if (m->pool[i].owner >= IOM_MAX_OWNERS || m->pool[i].phys < IOM_POOL_OFF ||
                    m->pool[i].phys + m->pool[i].len > IOM_PHYS_END)
                        return -EBADMSG;
        for (uint32_t i = 0; i < m->nreaders; i++)
                if (m->readers[i].owner >= IOM_MAX_OWNERS)
                        return -EBADMSG;
        return 0;
}

int iom_meta_describe_fd(struct iom_meta *m, int fd, size_t page_size)
{
        struct stat st;
        if (iom_sys.fstat(fd, &st) < 0)
                return -errno;
        struct iom_extent_map *x = &m->maps[m->active_map & 1];
        uint64_t size = (uint64_t)st.st_size;
        if (size > IOM_DATA_END)
                return -EFBIG;
        int r = iom_map_resize(x, size, page_size);
        for (off_t pos = 0; !r && (uint64_t)pos < size;) {
                off_t data = lseek(fd, pos, SEEK_DATA);
                if (data < 0)
                        break; /* ENXIO: only a hole remains */
                off_t hole = lseek(fd, data, SEEK_HOLE);
                if (hole < 0 || (uint64_t)hole > size)
                        hole = (off_t)size;
                uint64_t s = iom_round_down((uint64_t)data, page_size);
                uint64_t e = iom_round_up((uint64_t)hole, page_size);
                r = iom_map_set(x, s, e - s, s);
                pos = hole;
        }
        if (r == -ENOSPC) /* too fragmented to describe: treat it all as data */
                r = iom_map_set(x, 0, iom_round_up(size, page_size), 0);
        return size ? r : 0;
}

/* ---- owners ---------------------------------------------------------- */

/* Start time of a process in clock ticks since boot, 0 when unknown;
 * its state letter in *state when state is not NULL ('Z' for a zombie). */
static uint64_t process_start_time(pid_t pid, char *state)
{
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        const char *p = strrchr(buf, ')'); /* the command may contain spaces */
        if (!p)
                return 0;
        if (state && p[1] == ' ')
                *state = p[2];
        /* Fields after the command start at 3 (state); start time is 22. */
        unsigned long long t = 0;
        int field = 2;
        for (p++; *p && field < 22; p++)
                if (*p == ' ')
                        field++;
        if (sscanf(p, "%llu", &t) != 1)
                return 0;
        return t;
}

int iom_owner_register(struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        struct iom_meta *m = obj->meta;
        pid_t pid = getpid();
        uint64_t start = process_start_time(pid, NULL);
        for (int pass = 0; pass < 2; pass++) {
                for (uint32_t i = 0; i < IOM_MAX_OWNERS; i++) {
                        if (m->owners[i].pid == 0) {
                                m->owners[i].start_time = start;
                                m->owners[i].pid = pid;
                                obj->owner = i;
                                return 0;
                        }
                }
                for (uint32_t i = 0; i < IOM_MAX_OWNERS; i++)
                        iom_owner_check(f, i);
        }
        return iom_fail(f->name, -EMFILE, "%d handles already have this object open", IOM_MAX_OWNERS);
}

/* Drop everything an owner holds in the shared state. */
static void owner_reap(struct iomem *f, uint32_t owner)
{
        struct iom_fdobj *obj = fdo(f);
        struct iom_meta *m = obj->meta;
        for (uint32_t i = 0; i < m->npins;) {
                if (m->pins[i].owner == owner)
                        m->pins[i] = m->pins[--m->npins];
                else
                        i++;
        }
        for (uint32_t i = 0; i < m->npool;) {
                if (m->pool[i].owner == owner) {
                        /* Its un-gifted buffers belong to no one now. */
                        obj->phys->punch(f, m->pool[i].phys, m->pool[i].len);
                        m->pool[i] = m->pool[--m->npool];
                } else {
                        i++;
                }
        }
        iom_iolock_reap(m, owner);
        m->owners[owner].pid = 0;
}

void iom_owner_unregister(struct iomem *f)
{
        owner_reap(f, fdo(f)->owner);
}

int iom_owner_check(struct iomem *f, uint32_t owner)
{
        struct iom_owner *o = &fdo(f)->meta->owners[owner];
        pid_t pid = o->pid;
        if (pid == 0)
                return 0;
        bool dead = kill(pid, 0) < 0 && errno == ESRCH;
        if (!dead) {
                /* A zombie is dead although its pid lives on until its
                 * parent reaps it, and that parent may be waiting for
                 * what the zombie held. */
                char state = 0;
                uint64_t now = process_start_time(pid, &state);
                dead = state == 'Z' || state == 'X' ||
                       (o->start_time && now && now != o->start_time); /* the pid was reused */
        }
        if (!dead)
                return 1;
        iom_debug("%s: reclaiming what dead process %d held", f->name, (int)pid);
        owner_reap(f, owner);
        return 0;
}

/* ---- the robust mutex ------------------------------------------------- */

int iom_meta_lock(struct iomem *f)
{
        struct iom_meta *m = fdo(f)->meta;
        int r = pthread_mutex_lock(&m->mutex);
        if (r == EOWNERDEAD) {
                /* Its holder died mid-change. The extent map is published by
                 * one store, so only the tables need repairing: reap every
                 * dead owner, then check what is left. */
                pthread_mutex_consistent(&m->mutex);
                for (uint32_t i = 0; i < IOM_MAX_OWNERS; i++)
                        iom_owner_check(f, i);
                if (iom_meta_validate(m, f->page_size) < 0) {
                        pthread_mutex_unlock(&m->mutex);
                        return iom_fail(f->name, -EBADMSG, "the shared metadata is corrupt");
                }
                return 0;
        }
        if (r)
                return iom_fail(f->name, r == ENOTRECOVERABLE ? -EBADMSG : -r,
                                "cannot lock the metadata: %s", strerror(r));
        /* Another process may have scribbled on it: never index past a
         * table, walk a map that does not tile the file, or look up an
         * owner on its word. */
        if (iom_meta_validate(m, f->page_size)) {
                pthread_mutex_unlock(&m->mutex);
                return iom_fail(f->name, -EBADMSG, "the shared metadata is corrupt");
        }
        return 0;
}

void iom_meta_unlock(struct iomem *f)
{
        pthread_mutex_unlock(&fdo(f)->meta->mutex);
}

/* ---- the shared pin table --------------------------------------------- */

int iom_pin_add(struct iom_meta *m, uint32_t owner, uint64_t start, uint64_t end)
{
        for (uint32_t i = 0; i < m->npins; i++) {
                struct iom_pin *p = &m->pins[i];
                if (p->owner == owner && p->end == start) {
                        p->end = end;
                        return 0;
                }
        }
        if (m->npins >= IOM_MAX_PINS - 1) /* keep a slot for a split */
                return -ENOMEM;
        m->pins[m->npins] = (struct iom_pin){ .owner = owner, .start = start, .end = end };
        __atomic_store_n(&m->npins, m->npins + 1, __ATOMIC_RELEASE);
        return 0;
}

void iom_pin_remove(struct iom_meta *m, uint32_t owner, uint64_t start, uint64_t end)
{
        for (uint32_t i = 0; i < m->npins;) {
                struct iom_pin *p = &m->pins[i];
                if (p->owner != owner || p->end <= start || p->start >= end) {
                        i++;
                } else if (p->start >= start && p->end <= end) {
                        *p = m->pins[--m->npins];
                } else if (p->start < start && p->end > end) {
                        /* A hole in the middle. Without room for the right
                         * part, keep the entry whole: that only makes
                         * truncate or gift of these pages report busy until
                         * the rest is released. */
                        if (m->npins < IOM_MAX_PINS) {
                                m->pins[m->npins] = (struct iom_pin){
                                        .owner = owner, .start = end, .end = p->end };
                                m->npins++;
                                p->end = start;
                        }
                        i++;
                } else if (p->start < start) {
                        p->end = start;
                        i++;
                } else {
                        p->start = end;
                        i++;
                }
        }
}

int iom_pin_busy(struct iomem *f, uint64_t start, uint64_t end)
{
        struct iom_meta *m = fdo(f)->meta;
        for (uint32_t i = 0; i < m->npins;) {
                struct iom_pin *p = &m->pins[i];
                if (p->end <= start || p->start >= end) {
                        i++;
                        continue;
                }
                if (iom_owner_check(f, p->owner))
                        return 1;
                i = 0; /* the dead owner's pins are gone; look again */
        }
        return 0;
}
