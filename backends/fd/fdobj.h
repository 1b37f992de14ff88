/* SPDX-License-Identifier: MIT */
/*
 * The state of an fd-memory object in this process (first in f->priv of
 * shm, memfd, mshare and devdax objects; dax objects use its metadata,
 * owner and counted pins only, under a lock of their own): its descriptors, how physical
 * offsets reach memory, its metadata, and this handle's pins, mappings and
 * buffers. fdmem.h has the engine's operations.
 */
#ifndef IOMEM_FDOBJ_H
#define IOMEM_FDOBJ_H

#include "internal.h"
#include "lanes.h"
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

/* An iomem_alloc buffer not yet gifted. */
struct iom_alloc {
        void *va;
        uint64_t phys; /* IOM_HOLE: plain memory, which gift copies */
        size_t len;
};

/* The engine's state of an open object (first in f->priv). */
struct iom_fdobj {
        int aux_fd;          /* metadata and gift pool; == data_fd for mshare */
        bool sized_data;     /* data_fd's own size follows the file size */
        const struct iom_phys_ops *phys; /* how physical offsets are mapped */
        uint64_t data_limit; /* the largest file size (mshare: its region's) */
        uint64_t pool_end;   /* the end of the gift pool's physical offsets */
        int numa_policy, numa_node; /* placement of memory mapped through this handle */
        bool thp_advise;     /* the kernel gives huge pages where the data
                              * mappings ask (segments.c, fdmem.c) */
        bool wired;          /* acquired memory is locked (mlock) while pinned */
        struct iom_meta *meta;
        size_t meta_map_len; /* the mapping of meta: its span */
        bool meta_private;   /* meta is anonymous memory of this handle */
        uint32_t owner;      /* our id in meta->owners */
        /* Seal the data file with the kernel's seals for IOMEM_SEAL_*
         * (memfd); NULL where the backend cannot seal. 0 or -errno. */
        int (*seal_data)(struct iomem *f, unsigned seals);
        uint64_t seal_asks_seen; /* meta->seal_asks when last looked at */
        int data_ro_fd;          /* a read-only descriptor of the data file, for
                                  * read-only mappings; -1 until needed */
        int copying_in;          /* copies into data memory under way without a
                                  * pin (pwrite): no mapping may turn read-only */

        /* Guards the process-local state below: the whole lock to change
         * it, a lane to read it and nest pins (lanes.h). */
        struct iom_lanes lock;
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

/* A read-only descriptor of the data file (opened once, kept by the
 * handle), whose shared mappings the kernel never counts as writable
 * (F_SEAL_WRITE refuses none, and allows new ones); -1 when it cannot be
 * opened. */
int iom_fd_data_readonly(struct iomem *f);

/* Can this handle change the bytes (open read-write, not sealed)? */
static inline bool iom_fd_writable(const struct iomem *f)
{
        const struct iom_meta *m = fdo(f)->meta;
        return (f->flags & IOMEM_RDWR) && !(m && (m->seals & IOMEM_SEAL_WRITE));
}

#endif /* IOMEM_FDOBJ_H */
