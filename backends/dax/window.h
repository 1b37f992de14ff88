/* SPDX-License-Identifier: MIT */
/*
 * The DAX window (window.c): a reserved range of addresses split into
 * chunk-sized slots, into which chunks of files are mapped on demand and
 * from which the eviction policy (evict.h) removes them. Chunks of any
 * number of files share a window; a file reaches it through its
 * struct iom_wfile.
 *
 * A chunk is busy while it is pinned (acquired) or held (borrowed by a
 * thread holding the file's I/O lock, until that thread unlocks; borrowed
 * by a thread without it, until its next such borrow): busy chunks are
 * never evicted. A
 * request that cannot fit after evicting every other chunk fails with
 * -ENOBUFS and changes nothing, statistics included.
 */
#ifndef IOMEM_WINDOW_H
#define IOMEM_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct iomem_window;

/* One file's use of a window. The owner fills fd, prot, try_sync and
 * name; the window fills the rest. */
struct iom_wfile {
        struct iomem_window *w;
        int fd;
        int prot;          /* PROT_READ, or PROT_READ | PROT_WRITE */
        bool try_sync;     /* a DAX file: map with MAP_SYNC while the kernel takes it */
        const char *name;  /* for messages */
        uint64_t id;       /* unique in the process */
};

/* The chunks one holder of a file's I/O lock (a thread, through a handle)
 * borrowed, kept from eviction until it unlocks. */
struct iom_holds {
        uint32_t *v; /* slots, one entry per hold */
        size_t n, cap;
        uint64_t id; /* given by the window; 0 until the first hold */
};

/* The process-wide window, made on first use (IOMEM_DAX_WINDOW bytes,
 * default 1 GiB, chunks of 2 MiB). */
int iom_window_default(struct iomem_window **out);

/* Start and stop using w (NULL: the default window). Detaching evicts all
 * of the file's chunks, pinned or not. */
int iom_window_attach(struct iom_wfile *wf, struct iomem_window *w);
void iom_window_detach(struct iom_wfile *wf);

size_t iom_window_chunk(const struct iomem_window *w);

/*
 * Make chunks idx[0..n) of the file resident (idx ascending, distinct),
 * pin them, and store each chunk's address in addrs[i]. All or nothing
 * for -ENOBUFS and -ENOMEM; a mapping that fails part way leaves the
 * chunks mapped before it resident (neither pinned nor held) and the
 * window whole.
 */
int iom_window_pin(struct iom_wfile *wf, const uint64_t *idx, size_t n, char **addrs);
/* iom_window_pin for a borrow: the chunks are held in holds (the caller's
 * while it holds the I/O lock, until it unlocks), or with holds NULL,
 * until the calling thread's next borrow in this window through any of its
 * files, or their file leaves. Either way the thread's previous borrow
 * without a lock is let go now. */
int iom_window_borrow(struct iom_wfile *wf, const uint64_t *idx, size_t n,
                      struct iom_holds *holds, char **addrs);
/* Without the window's lock: where chunks idx[0..n) are when the calling
 * thread's last borrow without a lock in this window, still held for it,
 * has them all (then true). For a borrow (hit set: a hit is counted for
 * each) it must have exactly them, so that answering from it holds what
 * iom_window_borrow would; a count may ask for fewer. */
#define IOM_WINDOW_RECALL_MAX 8 /* chunks a thread's last borrow is remembered by */
bool iom_window_recall(struct iom_wfile *wf, const uint64_t *idx, size_t n, bool hit, char **addrs);
/* Where chunks idx[0..n) are mapped now, NULL for those that are not:
 * looks only (no mapping, no hit counted, nothing pinned or held). */
void iom_window_peek(struct iom_wfile *wf, const uint64_t *idx, size_t n, char **addrs);
/*
 * madvise(advice) on file bytes [from, to) (whole pages) in chunks
 * first..first+n of the file. MADV_WILLNEED maps those not resident first,
 * as many as one request can without evicting a busy chunk or one of these
 * (neither pinned nor held after, and no access counted); other advice
 * applies to the resident chunks only. *resident: how many were. 0, or
 * -errno from madvise with the message set.
 */
int iom_window_advise(struct iom_wfile *wf, uint64_t first, uint64_t n, uint64_t from, uint64_t to,
                      int advice, uint64_t *resident);
/* Write back the CPU cache lines of file bytes [from, to) in the chunks
 * of the file that are resident, with instruction kind (cacheflush.h);
 * chunks not resident are skipped. The caller fences. */
void iom_window_persist(struct iom_wfile *wf, uint64_t from, uint64_t to, unsigned kind);
/* Chunk idx is no longer pinned. */
void iom_window_unpin(struct iom_wfile *wf, uint64_t idx);
/* Release the holder's chunks; holds is empty and ready for reuse after. */
void iom_window_unhold(struct iom_wfile *wf, struct iom_holds *holds);
/* In a child after fork: nothing is pinned or held any more. */
void iom_window_after_fork(struct iomem_window *w);

#endif /* IOMEM_WINDOW_H */
