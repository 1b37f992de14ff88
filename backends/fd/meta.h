/* SPDX-License-Identifier: MIT */
/*
 * The metadata area that travels with a shared object: logical size,
 * extent map, pins, outstanding gift buffers, the I/O lock and the owner
 * table. Every process that has the object open maps it; one robust,
 * process-shared mutex guards it, so a process that dies while holding
 * it leaves state that the next locker repairs (EOWNERDEAD).
 *
 * Physical layout of an object (offsets in its descriptors):
 *
 *   [0, IOM_DATA_END)             the file's bytes at their own offsets
 *   [IOM_META_OFF, +meta span)    this structure
 *   [IOM_POOL_OFF, IOM_PHYS_END)  iomem_alloc buffers (gift pool)
 *
 * memfd keeps all three in one descriptor; shm keeps the data in the
 * named object and the rest in a sidecar object "NAME.iomem". Offsets
 * are never reused in the pool: a freed range is punched out, and the
 * pool spans far more than any process can allocate.
 */
#ifndef IOMEM_META_H
#define IOMEM_META_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

#define IOM_DATA_END  IOM_FILE_MAX /* 16 TiB: largest file size */
#define IOM_META_OFF  IOM_DATA_END
#define IOM_POOL_OFF  (UINT64_C(1) << 45)
#define IOM_PHYS_END  (UINT64_C(1) << 60)

#define IOM_META_MAGIC   UINT64_C(0x4154454d4d454f49) /* "IOEMMETA" */
#define IOM_META_VERSION 1u

#define IOM_MAX_OWNERS  128
#define IOM_MAX_PINS    2048
#define IOM_MAX_EXTENTS 2048
#define IOM_MAX_ALLOCS  512
#define IOM_MAX_READERS 128

#define IOM_HOLE UINT64_MAX /* phys of an extent with no backing */
#define IOM_NO_OWNER UINT32_MAX

/* [off, off+len) of the file lives at physical offset phys (or is a hole). */
struct iom_extent {
        uint64_t off, len, phys;
};

/* The extents tile [0, round_up(size, page)) in order. */
struct iom_extent_map {
        uint64_t size;
        uint32_t count;
        uint32_t reserved;
        struct iom_extent ext[IOM_MAX_EXTENTS];
};

struct iom_owner {
        int32_t pid;        /* 0: free slot */
        uint32_t writers_waiting; /* its threads waiting for the write lock */
        uint64_t start_time; /* /proc/PID/stat field 22, tells reused pids apart */
};

/* Pages [start, end) are pinned by owner (counts are kept per process). */
struct iom_pin {
        uint32_t owner;
        uint32_t reserved;
        uint64_t start, end;
};

/* A gift-pool range handed out by iomem_alloc and not yet gifted. */
struct iom_pool_rec {
        uint32_t owner;
        uint32_t reserved;
        uint64_t phys, len;
};

/* A thread holding the I/O lock for reading. */
struct iom_reader {
        uint32_t owner;
        int32_t tid;
        uint32_t count;
        uint32_t reserved;
};

struct iom_meta {
        uint64_t magic;   /* written last when initialised */
        uint32_t version;
        uint32_t page_size;
        uint64_t data_ino; /* shm: inode of the data object this describes */
        uint32_t seals;    /* IOMEM_SEAL_* */
        uint32_t active_map; /* which of maps[] is current; flipped to commit */
        pthread_mutex_t mutex;

        uint64_t gift_adopted, gift_copied;
        uint64_t pool_next;

        /* The I/O lock (iolock.c). */
        uint32_t lock_seq;      /* futex word: bumped on every unlock */
        uint32_t writer_owner;  /* IOM_NO_OWNER when not write-locked */
        int32_t writer_tid;
        uint32_t writer_depth;
        uint32_t lock_waiters;  /* threads asleep on lock_seq */
        uint32_t nreaders;
        struct iom_reader readers[IOM_MAX_READERS];

        uint32_t npins;
        struct iom_pin pins[IOM_MAX_PINS];
        uint32_t npool;
        struct iom_pool_rec pool[IOM_MAX_ALLOCS];
        struct iom_owner owners[IOM_MAX_OWNERS];

        struct iom_extent_map maps[2];

        /* mshare: the bytes of the region its creator backed (metadata,
         * file, gift pool), from which every attacher lays it out; 0
         * until the creator has finished. Last, so that the layout of
         * everything above is that of version 1. */
        uint64_t region_used;

        /* Threads waiting for the write lock, of every owner: while it is
         * not 0, new readers queue (lockwait.h). */
        uint32_t writers_waiting;
        uint32_t reserved;
};

struct iomem;

/* Size of the metadata mapping for a page size. */
size_t iom_meta_span(size_t page_size);
/* Initialise a fresh metadata area (shared: process-shared mutex). */
int iom_meta_init(struct iom_meta *m, size_t page_size, bool shared);
/* Check a mapped area before trusting it: -EBADMSG when it is not ours
 * or does not hold together. */
int iom_meta_validate(const struct iom_meta *m, size_t page_size);
/* Describe an existing descriptor: size from fstat, holes and data from
 * SEEK_HOLE/SEEK_DATA (for objects that other programs created). */
int iom_meta_describe_fd(struct iom_meta *m, int fd, size_t page_size);

/* Lock the metadata; repairs it when the previous holder died. */
int iom_meta_lock(struct iomem *f);
void iom_meta_unlock(struct iomem *f);

/* Owners. */
int iom_owner_register(struct iomem *f);
void iom_owner_unregister(struct iomem *f);
/* 1 when slot's process is alive; reaps it (pins, locks, pool) when dead. */
int iom_owner_check(struct iomem *f, uint32_t owner);

/* Shared pin table (with the metadata locked). */
int iom_pin_add(struct iom_meta *m, uint32_t owner, uint64_t start, uint64_t end);
void iom_pin_remove(struct iom_meta *m, uint32_t owner, uint64_t start, uint64_t end);
/* Any live owner's pin over [start, end)? 1 yes (reaps dead ones), 0 no. */
int iom_pin_busy(struct iomem *f, uint64_t start, uint64_t end);

/* Extent maps (extent_map.c). */
static inline const struct iom_extent_map *iom_map(const struct iom_meta *m)
{
        return &m->maps[m->active_map & 1];
}
/* Index of the extent containing off (off < tiled end). */
uint32_t iom_map_find(const struct iom_extent_map *m, uint64_t off);
/* Start a change: copy the current map into the spare one and return it. */
struct iom_extent_map *iom_map_begin(struct iom_meta *m);
/* Make [off, off+len) one extent at phys (IOM_HOLE for a hole). */
int iom_map_set(struct iom_extent_map *m, uint64_t off, uint64_t len, uint64_t phys);
/* Change the size: new pages are holes, pages past the end are dropped. */
int iom_map_resize(struct iom_extent_map *m, uint64_t size, uint64_t page);
/* Publish the spare map as current. */
void iom_map_commit(struct iom_meta *m);

#endif /* IOMEM_META_H */
