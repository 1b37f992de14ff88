/* SPDX-License-Identifier: MIT */
/*
 * The fd-memory engine (fdmem.c): the shared state (meta.h), the I/O lock
 * (iolock.h) and the six operations for objects whose memory is reached
 * through descriptors, by physical offset (meta.h has the layout). Its
 * backends, shm, memfd and mshare, only find or make the descriptors and
 * say how physical offsets reach memory; an object of theirs keeps a
 * struct iom_fdobj at the start of its private state (f->priv).
 */
#ifndef IOMEM_FDMEM_H
#define IOMEM_FDMEM_H

#include "internal.h"
#include "meta.h"
#include "ranges.h"
#include "segments.h"

/*
 * How an fd-memory object's physical offsets (meta.h) reach memory. The
 * default, iom_phys_fd, maps and backs pieces of data_fd and aux_fd as
 * they are needed; an object whose memory the kernel maps only whole
 * (mshare) maps it once at open and answers with addresses inside it.
 */
struct iom_phys_ops {
        /* Map [phys, phys+len), at hint when it is free (hint may be
         * NULL), adding flags (MAP_NORESERVE) where they apply;
         * MAP_FAILED with errno set on failure. */
        void *(*map)(struct iomem *f, void *hint, uint64_t phys, uint64_t len, int prot,
                     int flags);
        void (*unmap)(struct iomem *f, void *va, uint64_t len);
        /* Give [phys, phys+len) memory now, so that touching it cannot
         * raise SIGBUS later; 0 or a negative errno with the message set. */
        int (*back)(struct iomem *f, uint64_t phys, uint64_t len);
        /* Free the memory of [phys, phys+len); it reads as zeros after. */
        void (*punch)(struct iomem *f, uint64_t phys, uint64_t len);
};

extern const struct iom_phys_ops iom_phys_fd;

/* An iomem_alloc buffer not yet gifted. */
struct iom_alloc {
        void *va;
        uint64_t phys; /* IOM_HOLE: plain memory, which gift copies */
        size_t len;
};

/* The engine's state of an open object (first in f->priv). */
struct iom_fdobj {
        int aux_fd;          /* metadata and gift pool; == data_fd for memfd */
        bool sized_data;     /* data_fd's own size follows the file size */
        const struct iom_phys_ops *phys; /* how physical offsets are mapped */
        uint64_t data_limit; /* the largest file size (mshare: its region's) */
        uint64_t pool_end;   /* the end of the gift pool's physical offsets */
        int numa_policy, numa_node; /* placement of memory mapped through this handle */
        bool thp_advise;     /* the kernel gives huge pages where the data
                              * mappings ask (segments.c, fdmem.c) */
        struct iom_meta *meta;
        size_t meta_map_len; /* 0: meta is private heap memory */
        uint32_t owner;      /* our slot in meta->owners */

        pthread_mutex_t lock; /* guards the process-local state below */
        struct iom_ranges pins;     /* this handle's pinned pages, counted */
        struct iom_segments segs;   /* physical offset -> address */
        struct iom_allocs {
                struct iom_alloc *v;
                size_t n, cap;
        } allocs;                   /* iomem_alloc buffers not yet gifted */
};

static inline struct iom_fdobj *fdo(const struct iomem *f)
{
        return f->priv;
}

/* Can this handle change the bytes (open read-write, not sealed)? */
static inline bool iom_fd_writable(const struct iomem *f)
{
        const struct iom_meta *m = fdo(f)->meta;
        return (f->flags & IOMEM_RDWR) && !(m && (m->seals & IOMEM_SEAL_WRITE));
}

/* The engine's operations, for the descriptors of shm and memfd. */
extern const struct iom_object_ops iom_fdmem_ops;

/* Set an object's engine state to "nothing attached" (the first thing an
 * engine backend's open does), and release what it holds (its close). */
void iom_fdmem_init(struct iomem *f);
void iom_fdmem_close(struct iomem *f);
/* The engine's after_fork, for a backend with operations of its own. */
int iom_fdmem_after_fork(struct iomem *f);

/* Where an fd-memory object's metadata comes from when it is opened. */
enum iom_attach {
        IOM_ATTACH_NEW,     /* a new object: initialise it in aux_fd, opts->size bytes */
        IOM_ATTACH_ADOPT,   /* initialise it in aux_fd from data_fd's contents */
        IOM_ATTACH_SHARED,  /* it is in aux_fd already */
        IOM_ATTACH_PRIVATE, /* no aux_fd: this process keeps its own, from data_fd */
        IOM_ATTACH_SNAPSHOT, /* in aux_fd but sealed read-only: keep a private copy */
};

/*
 * Finish opening an fd-memory object whose data_fd, aux_fd and page_size
 * are set: map or build the metadata and register this handle as an owner.
 * Closes no descriptor on failure.
 */
int iom_fdmem_attach(struct iomem *f, enum iom_attach how, const struct iomem_opts *o);

#endif /* IOMEM_FDMEM_H */
