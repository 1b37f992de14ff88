/* SPDX-License-Identifier: MIT */
/*
 * What the handles of one dax: file in this process share (daxfile.c):
 * the I/O lock, the view of everyone's pins that truncate and gift check,
 * and the gift counter. dax: files are ordinary files that other programs
 * use too, so none of this is shared with other processes.
 */
#ifndef IOMEM_DAXFILE_H
#define IOMEM_DAXFILE_H

#include "internal.h"
#include "ranges.h"
#include "window.h"

#include <sys/types.h>

struct dax_file;

/* A run of a file, [from, to): see dax.c. */
struct dax_run {
        uint64_t from, to;
};

/* An open handle's state (f->priv). */
struct dax_handle {
        struct iomem *f;
        struct dax_file *file;
        struct dax_handle *next; /* the file's other handles */
        struct iom_wfile wf;
        pthread_mutex_t lock;    /* guards bufs and the runs */
        struct iom_ranges pins;  /* this handle's pinned pages (the file's mu) */
        struct iom_ranges bufs;  /* iomem_alloc buffers, by address (lock) */
        /* The runs of the file last seen holding data and last given
         * blocks (lock; cut by truncate under the file's mu). */
        struct dax_run data, blocks;
};

struct dax_reader {
        const struct dax_handle *h;
        int tid;
        unsigned count;
        struct iom_holds *holds; /* made at its first borrow */
};

struct dax_file {
        dev_t dev;
        ino_t ino;
        unsigned refs;
        struct dax_file *next;
        /* Guards everything below and the pins of every handle. */
        pthread_mutex_t mu;
        pthread_cond_t cv;
        struct dax_reader *readers;
        size_t nreaders, cap;
        const struct dax_handle *writer;
        int writer_tid;
        unsigned writer_depth;
        unsigned writers_waiting; /* new readers queue behind them */
        struct iom_holds writer_holds;
        struct dax_handle *handles;
        uint64_t gift_copied;
        unsigned fork_gen;
};

/* Join (or start) the state of the file with this identity. */
int iom_dax_file_join(struct dax_handle *h, dev_t dev, ino_t ino);
void iom_dax_file_leave(struct dax_handle *h);
/* In a child after fork: the file's lock is free, and the file's handles
 * (reset with it) pin and hold nothing. */
void iom_dax_file_after_fork(struct dax_file *d);

/* The I/O lock, with the semantics of the shared one (iolock.h). What a
 * holder borrows through h stays mapped until it unlocks. */
int iom_dax_rdlock(struct dax_handle *h, int timeout_ms);
int iom_dax_wrlock(struct dax_handle *h, int timeout_ms);
int iom_dax_unlock(struct dax_handle *h);
/* Where the calling thread's borrows through h are held: NULL when it
 * does not hold the lock through h (or memory ran out). */
struct iom_holds *iom_dax_holds_of_caller(struct dax_handle *h);

/* Is any byte of [start, end) pinned by a handle of the file (mu held)? */
bool iom_dax_pinned(const struct dax_file *d, uint64_t start, uint64_t end);

/* The type of the mount holding device dev, from a mountinfo file. */
int iom_dax_mount_fstype(const char *mountinfo, dev_t dev, char *out, size_t n);

#endif /* IOMEM_DAXFILE_H */
