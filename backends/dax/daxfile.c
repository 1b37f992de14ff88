/* SPDX-License-Identifier: MIT */
/*
 * The shared state of dax: files (daxfile.h): the sidecar, the I/O lock
 * and the chunks each thread borrowed.
 *
 * Lock order: the I/O lock, then the handle's (fd.lock, then
 * borrowers_lock or bufs_lock), then the sidecar's flock (open, close,
 * after fork), then the metadata's, then the window's.
 */
#include "daxfile.h"
#include "fdmem.h"
#include "iolock.h"
#include "syscalls.h"
#include "undo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Holds of dax objects' I/O locks by the calling thread, any handle, in
 * the process of fork generation gen (a child holds none of its parent's). */
static _Thread_local struct {
        unsigned n, gen;
} locks_held;

static unsigned *locks_held_now(void)
{
        unsigned gen = iom_fork_generation();
        if (locks_held.gen != gen)
                locks_held.n = 0, locks_held.gen = gen;
        return &locks_held.n;
}

/* ---- the sidecar ----------------------------------------------------------- */

static void free_borrowers(struct dax_handle *h)
{
        for (size_t i = 0; i < h->nborrowers; i++)
                free(h->borrowers[i].holds.v);
        h->nborrowers = 0;
}

/* The file's identity: its device is in the sidecar's name, its inode in
 * the metadata. An inode number is reused only once no process has the
 * file open, and then nothing in the sidecar is held by a live owner. */
static bool sidecar_describes(const struct iom_meta *m, const void *id)
{
        return m->data_ino == (uint64_t)((const struct stat *)id)->st_ino;
}

static int sidecar_build(struct iomem *f, const void *id)
{
        int err = iom_meta_lock(f);
        if (err)
                return err;
        if ((err = iom_undo_set(f, &fdo(f)->meta->data_ino,
                                (uint64_t)((const struct stat *)id)->st_ino)))
                iom_meta_undo(f);
        iom_meta_unlock(f);
        return err;
}

/* What the handle's sidecar is called and how it is made. Whoever may
 * read the file may pin it and take its lock, so each class of user that
 * may read it may read and write the sidecar. */
static void sidecar_of(struct dax_handle *h, const struct stat *st)
{
        h->share = (struct iom_sidecar){
                .mode = (st->st_mode & 0444) | (st->st_mode & 0444) >> 1,
                .describes = sidecar_describes,
                .build = sidecar_build,
                .id = st,
                .transient = true,
        };
        unsigned maj, min;
        iom_dev_split(st->st_dev, &maj, &min);
        snprintf(h->share.name, sizeof h->share.name, "/iomem-dax.%u.%u.%llu.iomem", maj, min,
                 (unsigned long long)st->st_ino);
}

int iom_dax_share_join(struct dax_handle *h, const struct stat *st, bool wired)
{
        struct iomem *f = h->f;
        iom_fdmem_init(f);
        h->fd.phys = &iom_phys_sidecar;
        sidecar_of(h, st);
        struct iomem_opts o = { .numa_policy = IOMEM_NUMA_DEFAULT, .wired = wired };
        int err = iom_sidecar_attach(f, &h->share, -1, &o);
        h->share.id = NULL; /* st is the caller's */
        if (!err)
                h->cuts_seen = __atomic_load_n(&h->fd.meta->cuts, __ATOMIC_ACQUIRE);
        else
                iom_dax_share_leave(h);
        return err;
}

void iom_dax_share_leave(struct dax_handle *h)
{
        struct iomem *f = h->f;
        iom_sidecar_leave(f, &h->share);
        free_borrowers(h);
        free(h->borrowers);
        h->borrowers = NULL;
        h->cap = 0;
        /* The file's descriptor is the caller's to close. */
        int data_fd = f->data_fd;
        f->data_fd = -1;
        iom_fdmem_close(f);
        f->data_fd = data_fd;
}

int iom_dax_share_after_fork(struct dax_handle *h)
{
        iom_lanes_after_fork(&h->fd.lock);
        iom_mutex_init(&h->borrowers_lock);
        iom_mutex_init(&h->bufs_lock);
        free_borrowers(h);
        h->fd.pins.n = 0; /* the parent's */
        h->mapped.n = 0;
        h->bufs.n = 0;
        iom_window_after_fork(h->wf.w);
        /* The parent may have removed the sidecar since: attach afresh. */
        struct stat st;
        if (iom_sys.fstat(h->f->data_fd, &st) < 0)
                return iom_fail(h->f->name, -errno, "fstat: %s", strerror(errno));
        h->share.id = &st;
        int err = iom_sidecar_after_fork(h->f, &h->share);
        h->share.id = NULL;
        if (!err)
                h->cuts_seen = __atomic_load_n(&h->fd.meta->cuts, __ATOMIC_ACQUIRE);
        return err;
}

/* ---- borrowers --------------------------------------------------------------- */

/* The calling thread's entry (h->borrowers_lock held), made when make is set; NULL
 * when there is none or memory ran out. */
static struct dax_borrower *borrower(struct dax_handle *h, bool make)
{
        int tid = iom_self_tid();
        for (size_t i = 0; i < h->nborrowers; i++)
                if (h->borrowers[i].tid == tid)
                        return &h->borrowers[i];
        if (!make)
                return NULL;
        if (h->nborrowers == h->cap) {
                size_t cap = h->cap ? 2 * h->cap : 4;
                struct dax_borrower *v = realloc(h->borrowers, cap * sizeof *v);
                if (!v)
                        return NULL;
                h->borrowers = v;
                h->cap = cap;
        }
        struct dax_borrower *b = &h->borrowers[h->nborrowers++];
        *b = (struct dax_borrower){ .tid = tid };
        return b;
}

static void drop_borrower(struct dax_handle *h, struct dax_borrower *b)
{
        free(b->holds.v);
        *b = h->borrowers[--h->nborrowers];
}

struct iom_holds *iom_dax_lock_holds(struct dax_handle *h)
{
        struct dax_borrower *b = borrower(h, false);
        return b && b->depth ? &b->holds : NULL;
}

/* ---- the I/O lock ----------------------------------------------------------- */

bool iom_dax_caller_holds_locks(void)
{
        return *locks_held_now() != 0;
}

/* Count a hold of the lock the engine granted, or give it back when the
 * count cannot be kept. */
static int count_hold(struct dax_handle *h, int err)
{
        if (err)
                return err;
        pthread_mutex_lock(&h->borrowers_lock);
        struct dax_borrower *b = borrower(h, true);
        if (b) {
                b->depth++;
                ++*locks_held_now();
        }
        pthread_mutex_unlock(&h->borrowers_lock);
        if (b)
                return 0;
        iom_iolock_unlock(h->f);
        return iom_fail(h->f->name, -ENOMEM, "out of memory");
}

int iom_dax_rdlock(struct dax_handle *h, int timeout_ms)
{
        return count_hold(h, iom_iolock_rdlock(h->f, timeout_ms));
}

int iom_dax_wrlock(struct dax_handle *h, int timeout_ms)
{
        return count_hold(h, iom_iolock_wrlock(h->f, timeout_ms));
}

int iom_dax_unlock(struct dax_handle *h)
{
        int err = iom_iolock_unlock(h->f);
        if (err)
                return err;
        pthread_mutex_lock(&h->borrowers_lock);
        struct dax_borrower *b = borrower(h, false);
        unsigned *held = locks_held_now();
        if (b && *held) /* else taken before a fork, in the parent */
                --*held;
        if (b && --b->depth == 0) {
                iom_window_unhold(&h->wf, &b->holds);
                drop_borrower(h, b);
        }
        pthread_mutex_unlock(&h->borrowers_lock);
        return 0;
}

/* ---- mounts ------------------------------------------------------------------------ */

int iom_dax_mount_fstype(const char *mountinfo, dev_t dev, char *out, size_t n)
{
        FILE *fp = fopen(mountinfo, "re");
        if (!fp)
                return -errno;
        char line[4096];
        int err = -ENOENT;
        while (err && fgets(line, sizeof line, fp)) {
                unsigned maj, min;
                char type[64];
                const char *sep = strstr(line, " - ");
                if (sscanf(line, "%*u %*u %u:%u", &maj, &min) == 2 && sep &&
                    iom_dev_join(maj, min) == dev && sscanf(sep + 3, "%63s", type) == 1) {
                        snprintf(out, n, "%s", type);
                        err = 0;
                }
        }
        fclose(fp);
        return err;
}
