/* SPDX-License-Identifier: MIT */
/*
 * What the handles of one dax: file share (daxfile.c). Pins, the I/O lock,
 * owners and the gift totals are the fd-memory engine's shared state
 * (backends/fd), kept in a sidecar in /dev/shm named after the file's
 * device and inode: every handle of every process that opens the file, by
 * any path or descriptor, meets the same state, and what a dead process
 * held is reclaimed as on the other backends. The sidecar goes with the
 * last handle. The window's chunks, and which of them each thread
 * borrowed, are this process's.
 */
#ifndef IOMEM_DAXFILE_H
#define IOMEM_DAXFILE_H

#include "fdobj.h"
#include "sidecar.h"
#include "window.h"

#include <sys/stat.h>

/* A run of a file, [from, to): see dax.c. */
struct dax_run {
        uint64_t from, to;
};

/* A thread that holds the I/O lock through a handle, and the chunks it
 * borrowed through it meanwhile, kept until it unlocks. */
struct dax_borrower {
        int tid;
        unsigned depth; /* its holds of the I/O lock through the handle */
        struct iom_holds holds;
};

/* An open handle's state (f->priv). */
struct dax_handle {
        struct iom_fdobj fd;   /* first: the engine's state; fd.pins are this
                                * handle's pinned pages, counted (lock) */
        struct iomem *f;
        struct iom_sidecar share;
        struct iom_wfile wf;
        /* fd.lock (the engine's lanes, lanes.h) guards fd.pins and mapped. */
        struct iom_ranges mapped; /* the bytes of the chunks this handle pins:
                                   * file offset -> address (phys) */
        pthread_mutex_t borrowers_lock;
        struct dax_borrower *borrowers;
        size_t nborrowers, cap;
        /* Guards bufs and the runs (taken under fd.lock, or alone). */
        pthread_mutex_t bufs_lock;
        struct iom_ranges bufs; /* iomem_alloc buffers, by address */
        /* The runs of the file last seen holding data and last given
         * blocks, valid while the shared cut count is cuts_seen. */
        struct dax_run data, blocks;
        uint64_t cuts_seen;
        /* Changes this handle made to the file by a system call (write(2),
         * ftruncate), and how many of them a flush covered (atomic): on
         * MAP_SYNC chunks their metadata is the one thing the cache
         * write-back does not make durable (dax.c, sync_changes). */
        uint64_t changes, changes_flushed;
};

/* Attach the handle, whose file is open at f->data_fd (st its fstat), to
 * the file's shared state; release it again (close). */
int iom_dax_share_join(struct dax_handle *h, const struct stat *st, bool wired);
void iom_dax_share_leave(struct dax_handle *h);
/* In a child after fork: the handle pins and holds nothing, and is an
 * owner of the shared state of its own. */
int iom_dax_share_after_fork(struct dax_handle *h);

/* The I/O lock (the engine's), with the chunks borrowed under it kept
 * until the holding thread unlocks. */
int iom_dax_rdlock(struct dax_handle *h, int timeout_ms);
int iom_dax_wrlock(struct dax_handle *h, int timeout_ms);
int iom_dax_unlock(struct dax_handle *h);
/* Where the calling thread's borrows through h are held until it unlocks
 * (h->borrowers_lock held): NULL when it does not hold the I/O lock through h (its
 * borrows are then the window's loose ones, iom_window_borrow). */
struct iom_holds *iom_dax_lock_holds(struct dax_handle *h);
/* Does the calling thread hold the I/O lock of some dax object? */
bool iom_dax_caller_holds_locks(void);

/* The type of the mount holding device dev, from a mountinfo file. */
int iom_dax_mount_fstype(const char *mountinfo, dev_t dev, char *out, size_t n);

#endif /* IOMEM_DAXFILE_H */
