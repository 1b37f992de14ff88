/* SPDX-License-Identifier: MIT */
/*
 * The shared state of dax: files (daxfile.h): the sidecar, the I/O lock
 * and the chunks each thread borrowed.
 *
 * Lock order: the I/O lock, then the handle's lock, then the metadata's,
 * then the window's.
 */
#define _GNU_SOURCE
#include "daxfile.h"
#include "fdmem.h"
#include "iolock.h"
#include "syscalls.h"
#include "undo.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>

/* ---- the sidecar ----------------------------------------------------------- */

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

int iom_dax_share_join(struct dax_handle *h, const struct stat *st)
{
        struct iomem *f = h->f;
        iom_fdmem_init(f);
        h->fd.phys = &iom_phys_sidecar;
        h->share = (struct iom_sidecar){
                .mode = st->st_mode & 0666,
                .describes = sidecar_describes,
                .build = sidecar_build,
                .id = st,
                .transient = true,
        };
        snprintf(h->share.name, sizeof h->share.name, "/iomem-dax.%u.%u.%llu.iomem",
                 major(st->st_dev), minor(st->st_dev), (unsigned long long)st->st_ino);
        struct iomem_opts o = { .numa_policy = IOMEM_NUMA_DEFAULT };
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
        for (size_t i = 0; i < h->nborrowers; i++)
                free(h->borrowers[i].holds.v);
        free(h->borrowers);
        h->borrowers = NULL;
        h->nborrowers = h->cap = 0;
        /* The file's descriptor is the caller's to close. */
        int data_fd = f->data_fd;
        f->data_fd = -1;
        iom_fdmem_close(f);
        f->data_fd = data_fd;
}

int iom_dax_share_after_fork(struct dax_handle *h)
{
        iom_mutex_init(&h->lock);
        iom_mutex_init(&h->bufs_lock);
        for (size_t i = 0; i < h->nborrowers; i++)
                free(h->borrowers[i].holds.v);
        h->nborrowers = 0;
        h->bufs.n = 0; /* the parent's */
        iom_window_after_fork(h->wf.w);
        return iom_fdmem_after_fork(h->f);
}

/* ---- borrowers --------------------------------------------------------------- */

/* The calling thread's entry (h->lock held), made when make is set; NULL
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

/* Count a hold of the lock the engine granted, or give it back when the
 * count cannot be kept. */
static int count_hold(struct dax_handle *h, int err)
{
        if (err)
                return err;
        pthread_mutex_lock(&h->lock);
        struct dax_borrower *b = borrower(h, true);
        if (b)
                b->depth++;
        pthread_mutex_unlock(&h->lock);
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
        pthread_mutex_lock(&h->lock);
        struct dax_borrower *b = borrower(h, false);
        if (b && --b->depth == 0) {
                iom_window_unhold(&h->wf, &b->holds);
                drop_borrower(h, b);
        }
        pthread_mutex_unlock(&h->lock);
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
                    makedev(maj, min) == dev && sscanf(sep + 3, "%63s", type) == 1) {
                        snprintf(out, n, "%s", type);
                        err = 0;
                }
        }
        fclose(fp);
        return err;
}
