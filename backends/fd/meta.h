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
 * shm and memfd keep the data in a file of its own, sized like the
 * object (shm's named object, a memfd), and the rest at the same offsets
 * in a twin (shm's sidecar "NAME.iomem", a memfd "LABEL.iomem";
 * pairing.h); mshare keeps all three in its region. The pool's offsets
 * are reused (pool.c): what a gift, truncate or iomem_free lets go is
 * free for the next buffer, still backed up to a bound.
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
#define IOM_META_VERSION 3u

/* Address space the metadata of an object may use (memory is backed as
 * its tables grow): 1 GiB, room for some 10^7 extents or pins. Each
 * handle maps it whole, so that the tables never move under a process
 * that reads them. mshare objects have the room their region gives them. */
#define IOM_META_SPAN (UINT64_C(1) << 30)

#define IOM_HOLE UINT64_MAX /* phys of an extent with no backing */
#define IOM_OWNER_WRITES 0x1u /* owner flag: the handle is open for writing */
#define IOM_NO_OWNER UINT32_MAX

/*
 * A record of one of the shared tables, by key. Every table is a sorted
 * map (smap.h) of these.
 */
struct iom_rec {
        uint64_t key;
        union {
                /* extents: key = file offset; [key, key+len) is at phys
                 * (IOM_HOLE: no backing). They tile [0, round_up(size)). */
                struct { uint64_t len, phys, unused; } ext;
                /* pins: key = iom_pin_key(owner, start); pages [start, end)
                 * are pinned by owner (counts are kept per process). */
                struct { uint64_t start, end, owner; } pin;
                /* pool: key = phys; a gift-pool range handed out by
                 * iomem_alloc and not yet gifted. */
                struct { uint64_t len, owner, unused; } pool;
                /* pool_free: key = phys; pool offsets no buffer or extent
                 * holds. backed: certainly memory, which needs zeroing
                 * only; else it may have some, of old bytes, or none. */
                struct { uint64_t len, backed, unused; } free;
                /* owners: key = owner id; a handle that has the object
                 * open. start_time (/proc/PID/stat field 22) tells reused
                 * pids apart. */
                struct { int64_t pid; uint64_t start_time; uint32_t writers_waiting, flags; } owner;
                /* readers: key = owner << 32 | tid; a thread holding the
                 * I/O lock for reading, count times. */
                struct { uint64_t count, unused[2]; } reader;
        };
};

/* The place of a sorted map in the metadata (smap.h). */
struct iom_smap {
        uint64_t dir;      /* heap offset of its directory, 0 when empty */
        uint64_t dir_cap;  /* entries the directory has room for */
        uint64_t nleaves;
        uint64_t count;    /* records */
};

/* Size classes of heap blocks: 4 KiB << class (heap.h). */
#define IOM_HEAP_CLASSES 40

struct iom_meta {
        uint64_t magic;   /* written last when initialised */
        uint32_t version;
        uint32_t page_size;
        uint64_t data_ino; /* shm, memfd: inode of the data file this describes */
        uint32_t seals;    /* IOMEM_SEAL_* */
        uint32_t next_owner; /* where the search for a free owner id starts */
        pthread_mutex_t mutex;

        /* The space: the header, then the heap growing up, and the undo
         * log of the change in progress growing down from the end. */
        uint64_t span;        /* bytes of address space it may use */
        uint64_t heap_top;    /* [IOM_HEAP_OFF, heap_top) handed out at some time */
        uint64_t heap_backed; /* [IOM_HEAP_OFF, heap_backed) has memory */
        uint64_t free_blocks[IOM_HEAP_CLASSES]; /* free lists, by class */
        uint64_t log_len;     /* bytes of undo records; 0: no change in progress */
        uint64_t log_backed;  /* [span - log_backed, span) has memory */
        uint64_t change_seq;  /* odd while a change is in progress: readers
                               * without the mutex retry when it moved */

        uint64_t size;        /* the file size */
        uint64_t gift_adopted, gift_copied;
        /* The gift pool: offsets from IOM_POOL_OFF to pool_next have been
         * handed out at some time (it never goes down, so that a process
         * can check an extent against it); of them, pool_held bytes are
         * buffers not yet gifted, pool_kept bytes are free and backed,
         * pool_unbacked free and not, and the rest the file's. */
        uint64_t pool_next, pool_held, pool_kept, pool_unbacked;

        /* The I/O lock (iolock.c). */
        uint32_t lock_seq;      /* iom_word_wait's word: bumped on every unlock */
        uint32_t writer_owner;  /* IOM_NO_OWNER when not write-locked */
        int32_t writer_tid;
        uint32_t writer_depth;
        uint32_t lock_waiters;  /* threads asleep on lock_seq */
        uint32_t writers_waiting; /* of every owner: while not 0, new readers queue */

        struct iom_smap extents, pins, pool, owners, readers, pool_free;

        /* mshare: the bytes of the region its creator backed (metadata,
         * file, gift pool), from which every attacher lays it out; 0
         * until the creator has finished. */
        uint64_t region_used;

        /* dax (backends/dax/dax.c), whose file keeps its own bytes and
         * size (the extent map stays empty and size 0): the file's size as
         * the library knows it, and the times a handle cut the file short,
         * so that every handle, in any process, forgets what it remembered
         * of the file's data and blocks past the cut. */
        uint64_t dax_size, cuts;

        /* The times iomem_seal found the data mapped for writing by other
         * handles: a handle that sees it move lets its mappings of the
         * data go (in place, read-only) once it holds no pins. */
        uint64_t seal_asks;
};

/* Where the heap starts, after the header. */
#define IOM_HEAP_OFF UINT64_C(65536)

/*
 * Reading the tables without the metadata's mutex (borrow, bufcount):
 * between iom_seq_read_begin and iom_seq_read_ok no change was in
 * progress or kept when ok says so; else what was read may be torn (the
 * readers check every offset, so it is wrong, never out of bounds), and
 * the caller takes the mutex. Changes make the count odd at their first
 * saved byte (undo.c) and even when kept or undone.
 */
static inline uint64_t iom_seq_read_begin(const struct iom_meta *m)
{
        return __atomic_load_n(&m->change_seq, __ATOMIC_ACQUIRE);
}

static inline bool iom_seq_read_ok(const struct iom_meta *m, uint64_t seq)
{
        IOM_FENCE(__ATOMIC_ACQUIRE);
        return !(seq & 1) && __atomic_load_n(&m->change_seq, __ATOMIC_RELAXED) == seq;
}

/* The key of owner's pin starting at byte start: an owner's pins are
 * together, in order. */
static inline uint64_t iom_pin_key(uint32_t owner, uint64_t start, size_t page_size)
{
        uint64_t page = start / page_size; /* < 2^32 within the largest file */
        return (uint64_t)owner << 32 | (page > UINT32_MAX ? UINT32_MAX : page);
}

struct iomem;

/* Memory the metadata has backed from its start when it is made: the
 * header and the first blocks of the heap. */
uint64_t iom_meta_initial(size_t page_size);
/* Initialise a fresh metadata area of span bytes (shared: a process-shared
 * mutex) whose first iom_meta_initial bytes are backed. */
int iom_meta_init(struct iom_meta *m, size_t page_size, uint64_t span, bool shared);
/* Check a mapped area's header before trusting it: -EBADMSG when it is
 * not ours, not of this span, or does not hold together. O(1): the tables
 * are checked as they are read. */
int iom_meta_validate(const struct iom_meta *m, size_t page_size, uint64_t span);
/* Describe an existing descriptor: size from fstat, holes and data from
 * SEEK_HOLE/SEEK_DATA (for objects that other programs created). */
int iom_meta_describe_fd(struct iomem *f, int fd);

/* Does the metadata hold together, with no change in progress (checked at
 * every lock, and by readers that take none)? */
bool iom_meta_sound(struct iomem *f);
/* Walk every table (the metadata locked): the extents tile the file,
 * merged, no memory is two extents' or buffers' at once, pins, buffers,
 * readers and the writer belong to registered owners, the counts add up.
 * -EBADMSG naming the first broken promise. O(n): for tests. */
int iom_meta_check(struct iomem *f);
/* Lock the metadata; undoes a change its previous holder did not finish
 * and reclaims what dead processes held. */
int iom_meta_lock(struct iomem *f);
/* Unlock, keeping the changes made since locking. */
void iom_meta_unlock(struct iomem *f);
/* Undo the changes made since locking (or the last iom_meta_keep), and
 * stay locked. */
void iom_meta_undo(struct iomem *f);
/* Keep the changes made so far (they survive this process's death), and
 * stay locked. */
void iom_meta_keep(struct iomem *f);

/* Owners. */
/* The processes of the object's handles other than f's, for a message:
 * "12 (for writing), 34 (this one)" (the metadata held). */
void iom_owner_name_others(struct iomem *f, char *out, size_t cap);
int iom_owner_register(struct iomem *f);
void iom_owner_unregister(struct iomem *f);
/* 1 when the owner's process is alive; reaps it (pins, locks, pool) when
 * dead and answers 0; 0 also when there is no such owner; negative when
 * it could not be reaped (the caller counts it as alive). */
int iom_owner_check(struct iomem *f, uint32_t owner);
/* Is any owner alive? The dead met on the way are reaped: O(1) when the
 * first is alive. */
bool iom_owner_any_alive(struct iomem *f);
/* The same without the lock and changing nothing, for metadata that does
 * not hold together: a best effort (a broken table may hide an owner). */
bool iom_owner_any_seen_alive(struct iomem *f);
/* The pid of a live owner, 0 when none. */
int iom_owner_pid(struct iomem *f, uint32_t owner);

/* The shared pins (tables.c; the metadata locked). */
int iom_pin_add(struct iomem *f, uint32_t owner, uint64_t start, uint64_t end);
int iom_pin_remove(struct iomem *f, uint32_t owner, uint64_t start, uint64_t end);
/* Is a live owner's pin over [start, end)? 1 yes, with the first such
 * range clipped to [start, end) and its holder's pid in *who when who is
 * not NULL; 0 no (dead owners are reaped on the way); negative on error. */
struct iom_pin_holder {
        uint64_t start, end;
        int pid;
};
int iom_pin_busy(struct iomem *f, uint64_t start, uint64_t end, struct iom_pin_holder *who);
/* A pin of this handle it no longer needs, for iom_ranges_dec (f is the
 * object). When it cannot be dropped now (the metadata has no room for the
 * change), it stays until the handle closes: truncate and gift see it as
 * busy until then. */
void iom_pin_let_go(uint64_t start, uint64_t end, void *f);
/* What holds [start, end) up: -EBUSY naming the first pinned range and a
 * process that pins it, 0 when nothing does (negative on other errors). */
int iom_pin_refuse(struct iomem *f, uint64_t start, uint64_t end);
/* Remove every pin of owner. */
int iom_pin_drop_owner(struct iomem *f, uint32_t owner);

/* The bytes any owner pins, those this process's owners pin, and the
 * processes that pin (into who); dead owners are reaped first. */
struct iom_holders;
int iom_pin_census(struct iomem *f, uint64_t *pinned, uint64_t *mine, struct iom_holders *who);

/* What iomem_stat says of the shared state: pins (of every process, and of
 * this one), holders of pins and of the I/O lock, gift totals. */
struct iomem_stat;
int iom_stat_shared(struct iomem *f, struct iomem_stat *st);

/* The gift pool (pool.c; the metadata locked). */
/* The buffer [phys, phys+len) is owner's. */
int iom_pool_add(struct iomem *f, uint32_t owner, uint64_t phys, uint64_t len);
/* The buffer at phys is no one's (gifted, or about to be freed). */
int iom_pool_forget(struct iomem *f, uint64_t phys);
/* [phys, phys+len) is free for the next buffer; backed: it certainly has
 * memory (else it may have some, of old bytes, or none). */
int iom_pool_recycle(struct iomem *f, uint64_t phys, uint64_t len, bool backed);
/* Take [phys, phys+len), which is free, out of the free ranges. */
int iom_pool_claim(struct iomem *f, uint64_t phys, uint64_t len);
/* Is all of [phys, phys+len) free? */
bool iom_pool_is_free(struct iomem *f, uint64_t phys, uint64_t len);
/* A free range for a buffer of len bytes, best fit, backed ones first,
 * where usable() says this process can map it; else new offsets past
 * pool_next, below end, and with compact only while the pool spans no
 * more than twice what it holds plus the keep limit (fragmentation's
 * bound: beyond it the caller compacts the pool instead). Claimed on
 * return: its *phys, whether it was free before (*recycled: it may hold
 * old bytes) and whether it is certainly *backed. 1 with the message set
 * when there is none; -errno on failure. */
struct iom_pool_take {
        uint64_t phys;
        bool recycled, backed;
};
typedef bool iom_pool_usable_fn(struct iomem *f, uint64_t phys, uint64_t len);
int iom_pool_take(struct iomem *f, uint64_t len, uint64_t end, bool compact,
                  iom_pool_usable_fn *usable, struct iom_pool_take *out);
/* Free every buffer of owner, emptied: a dead owner may have died backing
 * one, and a closing handle's may still be a receive's (rx.c). */
int iom_pool_drop_owner(struct iomem *f, uint32_t owner);
/* The most free memory the pool keeps backed: as much as the file has in
 * the pool, and 64 MiB. */
uint64_t iom_pool_keep_limit(const struct iomem *f);
/* Give back the memory of free ranges beyond keep bytes, highest offsets
 * first: marked unbacked and kept, then punched (no change in progress;
 * kept on return). A read-only handle leaves it to the next writer. */
void iom_pool_trim(struct iomem *f, uint64_t keep);
/* All the free memory back, of unbacked ranges too (whatever a process
 * killed between marking and punching left): when no handle is open. */
void iom_pool_empty(struct iomem *f);

#endif /* IOMEM_META_H */
