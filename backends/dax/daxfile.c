/* SPDX-License-Identifier: MIT */
/*
 * The per-file state of dax: objects in this process: handles of the same
 * file (same device and inode) share one I/O lock and see each other's
 * pins. The chunks a holder of the lock borrows stay mapped until that
 * holder (a thread, through a handle) unlocks.
 *
 * Lock order: the I/O lock, then d->mu, then the window's lock.
 */
#define _GNU_SOURCE
#include "daxfile.h"
#include "lockwait.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <time.h>

static pthread_mutex_t files_lock = PTHREAD_MUTEX_INITIALIZER;
static struct dax_file *files;

/* A fork while another thread holds files_lock must not leave it held: the
 * forking thread takes it, and lets go in the parent and in the child (a
 * plain mutex: its owner is not checked on unlock). */
static void files_lock_take(void) { pthread_mutex_lock(&files_lock); }
static void files_lock_give(void) { pthread_mutex_unlock(&files_lock); }

__attribute__((constructor)) static void files_lock_at_fork(void)
{
        pthread_atfork(files_lock_take, files_lock_give, files_lock_give);
}

static void drop_reader(struct dax_file *d, struct dax_reader *r)
{
        if (r->holds) {
                free(r->holds->v);
                free(r->holds);
        }
        *r = d->readers[--d->nreaders];
}

/* Lock deadlines are CLOCK_MONOTONIC instants (lockwait.h). */
static void init_cond(pthread_cond_t *cv)
{
        pthread_condattr_t a;
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(cv, &a);
        pthread_condattr_destroy(&a);
}

/* Forget the lock's holders. What they held stays held until the handle
 * closes (which evicts its chunks) or, after fork, the window forgets. */
static void reset_lock_state(struct dax_file *d)
{
        iom_mutex_init(&d->mu);
        init_cond(&d->cv);
        while (d->nreaders)
                drop_reader(d, &d->readers[0]);
        d->writer = NULL;
        d->writer_depth = 0;
        d->writers_waiting = 0;
        d->writer_holds.n = 0;
        d->writer_holds.id = 0;
}

int iom_dax_file_join(struct dax_handle *h, dev_t dev, ino_t ino)
{
        pthread_mutex_lock(&files_lock);
        struct dax_file *d = files;
        while (d && (d->dev != dev || d->ino != ino))
                d = d->next;
        if (!d) {
                if (!(d = calloc(1, sizeof *d))) {
                        pthread_mutex_unlock(&files_lock);
                        return iom_fail(h->f->name, -ENOMEM, "out of memory");
                }
                d->dev = dev;
                d->ino = ino;
                reset_lock_state(d);
                d->fork_gen = iom_fork_generation();
                d->next = files;
                files = d;
        }
        d->refs++;
        pthread_mutex_unlock(&files_lock);
        iom_dax_file_after_fork(d);
        pthread_mutex_lock(&d->mu);
        h->file = d;
        h->next = d->handles;
        d->handles = h;
        pthread_mutex_unlock(&d->mu);
        return 0;
}

void iom_dax_file_leave(struct dax_handle *h)
{
        struct dax_file *d = h->file;
        if (!d)
                return;
        pthread_mutex_lock(&d->mu);
        struct dax_handle **p = &d->handles;
        while (*p != h)
                p = &(*p)->next;
        *p = h->next;
        /* What this handle held of the lock goes with it (its chunks go
         * when it leaves the window). */
        for (size_t i = 0; i < d->nreaders;)
                if (d->readers[i].h == h)
                        drop_reader(d, &d->readers[i]);
                else
                        i++;
        if (d->writer == h) {
                d->writer = NULL;
                d->writer_holds.n = 0;
                d->writer_holds.id = 0;
        }
        pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
        h->file = NULL;

        pthread_mutex_lock(&files_lock);
        bool last = --d->refs == 0;
        if (last) {
                struct dax_file **q = &files;
                while (*q != d)
                        q = &(*q)->next;
                *q = d->next;
        }
        pthread_mutex_unlock(&files_lock);
        if (last) {
                pthread_mutex_destroy(&d->mu);
                pthread_cond_destroy(&d->cv);
                free(d->readers);
                free(d->writer_holds.v);
                free(d);
        }
}

void iom_dax_file_after_fork(struct dax_file *d)
{
        if (!iom_fork_reset_begin(&d->fork_gen))
                return;
        reset_lock_state(d);
        /* Every handle of the file at once, before any thread can reach
         * them through the file: a call through one handle (truncate)
         * locks the others' mutexes, which must not be the parent's. */
        for (struct dax_handle *h = d->handles; h; h = h->next) {
                if (!iom_fork_reset_begin(&h->f->fork_gen))
                        continue;
                iom_mutex_init(&h->lock);
                h->pins.n = 0; /* the parent's */
                h->bufs.n = 0;
                iom_window_after_fork(h->wf.w);
                iom_fork_reset_end(&h->f->fork_gen, true);
        }
        iom_fork_reset_end(&d->fork_gen, true);
}

/* ---- the I/O lock ----------------------------------------------------------- */

static struct dax_reader *find_reader(struct dax_file *d, const struct dax_handle *h, int tid)
{
        for (size_t i = 0; i < d->nreaders; i++)
                if (d->readers[i].h == h && d->readers[i].tid == tid)
                        return &d->readers[i];
        return NULL;
}

static bool is_writer(const struct dax_file *d, const struct dax_handle *h, int tid)
{
        return d->writer == h && d->writer_tid == tid;
}

/* Wait for the lock to change hands until the deadline: 0, or -ETIMEDOUT
 * with d->mu held either way. */
static int wait_for_change(struct dax_file *d, const struct iom_deadline *dl)
{
        if (dl->forever)
                return -pthread_cond_wait(&d->cv, &d->mu);
        if (iom_deadline_left_ns(dl) == 0)
                return -ETIMEDOUT;
        struct timespec at = { (time_t)(dl->at_ns / 1000000000u), (long)(dl->at_ns % 1000000000u) };
        int r = pthread_cond_timedwait(&d->cv, &d->mu, &at);
        return r == ETIMEDOUT ? 0 : -r; /* the next turn sees the time is up */
}

static int give_up(struct dax_handle *h, int timeout_ms, const char *mode)
{
        int err = iom_deadline_error(timeout_ms);
        return iom_fail(h->f->name, err, err == -EBUSY ? "the %s lock is taken" :
                        "the %s lock was not free within %d ms", mode, timeout_ms);
}

int iom_dax_rdlock(struct dax_handle *h, int timeout_ms)
{
        struct dax_file *d = h->file;
        int tid = iom_self_tid(), err = 0;
        struct iom_deadline dl = iom_deadline_after(timeout_ms);
        pthread_mutex_lock(&d->mu);
        for (;;) {
                struct dax_reader *r = find_reader(d, h, tid);
                if (r) {
                        r->count++;
                        break;
                }
                bool queue = d->writers_waiting && !is_writer(d, h, tid) &&
                             !iom_may_pass_waiting_writers();
                if ((!d->writer || is_writer(d, h, tid)) && !queue) {
                        if (d->nreaders == d->cap) {
                                size_t cap = d->cap ? 2 * d->cap : 4;
                                void *v = realloc(d->readers, cap * sizeof *d->readers);
                                if (!v) {
                                        err = iom_fail(h->f->name, -ENOMEM, "out of memory");
                                        break;
                                }
                                d->readers = v;
                                d->cap = cap;
                        }
                        d->readers[d->nreaders++] = (struct dax_reader){ h, tid, 1, NULL };
                        iom_reads_held_add(1);
                        break;
                }
                if ((err = wait_for_change(d, &dl))) {
                        if (err == -ETIMEDOUT)
                                err = give_up(h, timeout_ms, "read");
                        break;
                }
        }
        pthread_mutex_unlock(&d->mu);
        return err;
}

int iom_dax_wrlock(struct dax_handle *h, int timeout_ms)
{
        struct dax_file *d = h->file;
        int tid = iom_self_tid(), err = 0;
        struct iom_deadline dl = iom_deadline_after(timeout_ms);
        bool waiting = false;
        pthread_mutex_lock(&d->mu);
        for (;;) {
                if (is_writer(d, h, tid)) {
                        d->writer_depth++;
                        break;
                }
                if (find_reader(d, h, tid)) {
                        err = iom_fail(h->f->name, -EDEADLK,
                                       "the calling thread holds the read lock; release it before writing");
                        break;
                }
                if (!d->writer && !d->nreaders) {
                        d->writer = h;
                        d->writer_tid = tid;
                        d->writer_depth = 1;
                        break;
                }
                if (!waiting && timeout_ms != 0) {
                        d->writers_waiting++;
                        waiting = true;
                }
                if ((err = wait_for_change(d, &dl))) {
                        if (err == -ETIMEDOUT)
                                err = give_up(h, timeout_ms, "write");
                        break;
                }
        }
        if (waiting && --d->writers_waiting == 0)
                pthread_cond_broadcast(&d->cv); /* the readers queued behind it */
        pthread_mutex_unlock(&d->mu);
        return err;
}

int iom_dax_unlock(struct dax_handle *h)
{
        struct dax_file *d = h->file;
        int tid = iom_self_tid(), err = 0;
        pthread_mutex_lock(&d->mu);
        struct dax_reader *r = find_reader(d, h, tid);
        if (r) {
                if (--r->count == 0) {
                        iom_reads_held_add(-1);
                        if (r->holds)
                                iom_window_unhold(&h->wf, r->holds);
                        drop_reader(d, r);
                }
        } else if (is_writer(d, h, tid)) {
                if (--d->writer_depth == 0) {
                        d->writer = NULL;
                        iom_window_unhold(&h->wf, &d->writer_holds);
                }
        } else {
                err = iom_fail(h->f->name, -EPERM, "the calling thread does not hold the lock");
        }
        if (!err)
                pthread_cond_broadcast(&d->cv);
        pthread_mutex_unlock(&d->mu);
        return err;
}

struct iom_holds *iom_dax_holds_of_caller(struct dax_handle *h)
{
        struct dax_file *d = h->file;
        int tid = iom_self_tid();
        struct iom_holds *holds = NULL;
        pthread_mutex_lock(&d->mu);
        struct dax_reader *r;
        if (is_writer(d, h, tid)) /* outlives the reads nested in it */
                holds = &d->writer_holds;
        else if ((r = find_reader(d, h, tid)) && !(holds = r->holds))
                holds = r->holds = calloc(1, sizeof *holds);
        pthread_mutex_unlock(&d->mu);
        return holds;
}

/* ---- pins ----------------------------------------------------------------------- */

bool iom_dax_pinned(const struct dax_file *d, uint64_t start, uint64_t end)
{
        for (const struct dax_handle *h = d->handles; h; h = h->next) {
                const struct iom_ranges *r = &h->pins;
                size_t i = iom_ranges_first_after(r, start);
                if (i < r->n && r->v[i].start < end)
                        return true;
        }
        return false;
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
