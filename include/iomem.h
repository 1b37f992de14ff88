/* SPDX-License-Identifier: MIT */
/*
 * libiomem: direct, shared access to the memory behind files.
 *
 * The whole public interface. Every function that can fail returns a
 * negative errno value and leaves a message for the calling thread in
 * iomem_errormsg(); see libiomem(7) and the man3 page of each function.
 */
#ifndef IOMEM_H
#define IOMEM_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define IOMEM_VERSION_MAJOR 0
#define IOMEM_VERSION_MINOR 1
#define IOMEM_VERSION_PATCH 0

struct iomem;        /* an open file-backed memory object ("file")         */
struct iomem_opts;   /* options for iomem_open / iomem_open_fd             */
struct iomem_window; /* a fixed virtual-address window of chunks, for dax: */

/* Opening */
#define IOMEM_RDONLY 0x0u
#define IOMEM_RDWR   0x1u
#define IOMEM_CREATE 0x2u /* create if missing                           */
#define IOMEM_EXCL   0x4u /* with CREATE: fail with -EEXIST if it exists  */
#define IOMEM_NOFOLLOW 0x8u /* dax: a symbolic link is -ELOOP, not followed */

int iomem_open(struct iomem **out, const char *uri, unsigned flags,
               const struct iomem_opts *opts);
int iomem_open_fd(struct iomem **out, const char *backend, int fd,
                  unsigned flags, const struct iomem_opts *opts);
int iomem_close(struct iomem **f);
int iomem_unlink(const char *uri);

/* The six memory operations */
ssize_t iomem_acquire(struct iomem *f, size_t off, size_t len);
int iomem_release(struct iomem *f, size_t off, size_t len);
ssize_t iomem_retrieve(struct iomem *f, size_t off, size_t len,
                       struct iovec *iov, size_t iovcnt);
ssize_t iomem_borrow(struct iomem *f, size_t off, size_t len,
                     struct iovec *iov, size_t iovcnt);
ssize_t iomem_bufcount(struct iomem *f, size_t off, size_t len);
ssize_t iomem_gift(struct iomem *f, size_t off, size_t len,
                   const struct iovec *iov, size_t iovcnt, unsigned flags);
#define IOMEM_GIFT_NOCOPY 0x1u /* refuse (-EXDEV) rather than copy */

int iomem_alloc(struct iomem *f, size_t len, void **out);
int iomem_free(struct iomem *f, void *buf, size_t len);

/* Locking */
int iomem_rdlock(struct iomem *f);
int iomem_wrlock(struct iomem *f);
int iomem_unlock(struct iomem *f);
/* Wait at most timeout_ms milliseconds: 0 does not wait (-EBUSY), a
 * negative value waits for ever; -ETIMEDOUT when the time ran out. */
int iomem_rdlock_timed(struct iomem *f, int timeout_ms);
int iomem_wrlock_timed(struct iomem *f, int timeout_ms);
/* How long iomem_rdlock, iomem_wrlock and the library's own lock calls
 * (pread, pwrite, truncate, gift, transfers) wait through f. */
int iomem_set_lock_timeout(struct iomem *f, int timeout_ms);

/* File operations */
#define IOMEM_STAT_HOLDERS 8
struct iomem_stat {
        size_t size;           /* file size in bytes                        */
        size_t page_size;      /* granularity of acquire/release            */
        const char *backend;   /* "shm", "memfd", "mshare", "dax", "devdax" */
        unsigned caps;         /* IOMEM_CAP_* of this object                */
        int numa_node;         /* node of most resident pages, -1 if unknown */
        int dax;               /* 1 if mappings reach memory directly (DAX)  */
        size_t acquired;       /* bytes pinned by this process              */
        uint64_t gift_adopted; /* bytes gifted without copying              */
        uint64_t gift_copied;  /* bytes gifted by copying                   */
        /* Who holds the object: pins of every handle in every process that
         * shares them (IOMEM_CAP_SHARED; else this process's), and the
         * processes that hold pins or the I/O lock, the first
         * IOMEM_STAT_HOLDERS of them by pid. */
        size_t pinned;         /* bytes pinned by some handle               */
        unsigned nholders;     /* processes holding pins or the lock        */
        int holders[IOMEM_STAT_HOLDERS];
        unsigned seals;        /* IOMEM_SEAL_* the object has               */
        size_t wired;          /* bytes this handle holds locked in memory  */
        unsigned persist;      /* IOMEM_PERSIST_*: how iomem_persist works  */
        /* The gift pool (IOMEM_CAP_GIFT) of every handle in every process:
         * iomem_alloc buffers not yet gifted or freed, free memory kept
         * backed for the next ones, and the offsets it spans. */
        uint64_t pool_held;    /* bytes of buffers handed out               */
        uint64_t pool_free;    /* bytes free and backed, for reuse          */
        uint64_t pool_span;    /* bytes of offsets handed out at some time  */
};
/* How iomem_persist (and iomem_sync) make bytes durable. */
#define IOMEM_PERSIST_NONE       0 /* memory only: nothing to make durable   */
#define IOMEM_PERSIST_MSYNC      1 /* msync(2) of the range: the page cache  */
#define IOMEM_PERSIST_CLWB       2 /* from user space, then SFENCE: MAP_SYNC */
#define IOMEM_PERSIST_CLFLUSHOPT 3 /* (or device DAX), by the best          */
#define IOMEM_PERSIST_CLFLUSH    4 /* instruction the CPU has                */
int iomem_stat(struct iomem *f, struct iomem_stat *st);
int iomem_truncate(struct iomem *f, size_t size);
ssize_t iomem_pread(struct iomem *f, void *buf, size_t len, size_t off);
ssize_t iomem_pwrite(struct iomem *f, const void *buf, size_t len, size_t off);
int iomem_sync(struct iomem *f, size_t off, size_t len);
/* Make [off, off+len) durable: a user-space cache flush and fence where
 * the mapping reaches persistent memory directly, else the narrowest
 * system call; 0 at once on memory-only objects. iomem_stat().persist
 * says which. */
int iomem_persist(struct iomem *f, size_t off, size_t len);
int iomem_fd(const struct iomem *f);
/* The data descriptor, with every byte of the object at its own offset
 * and its st_size the object's size: for programs that do not use the
 * library. Gifted ranges are copied into place once; -EBUSY while one of
 * them is acquired. Returns the descriptor (the handle keeps it). */
int iomem_plain_fd(struct iomem *f);
/* madvise-style hints for [off, off+len): MADV_WILLNEED, MADV_DONTNEED,
 * MADV_SEQUENTIAL, MADV_RANDOM, MADV_COLD, MADV_PAGEOUT, MADV_HUGEPAGE,
 * MADV_NOHUGEPAGE from <sys/mman.h>; any other value is -EINVAL. On dax:
 * WILLNEED maps the chunks ahead within the window. */
int iomem_advise(struct iomem *f, size_t off, size_t len, int advice);
/* Seal the object after filling it (memfd: the kernel's F_SEAL_WRITE,
 * F_SEAL_SHRINK, F_SEAL_GROW on its data). -EBUSY while any process has a
 * range of it acquired; -ENOTSUP where the backend cannot seal. */
int iomem_seal(struct iomem *f, unsigned seals);

/* Transfers */
ssize_t iomem_sendfile(int out_fd, struct iomem *in, size_t off, size_t len);
ssize_t iomem_copy(struct iomem *dst, size_t doff, struct iomem *src,
                   size_t soff, size_t len);

/* Sharing between processes */
int iomem_send(int sock, const struct iomem *f);
int iomem_recv(int sock, struct iomem **out, unsigned flags);

/* Options */
int iomem_opts_new(struct iomem_opts **o);
void iomem_opts_delete(struct iomem_opts **o);
int iomem_opts_set_size(struct iomem_opts *o, size_t size);
int iomem_opts_set_mode(struct iomem_opts *o, unsigned mode);
int iomem_opts_set_hugepage(struct iomem_opts *o, size_t page);
int iomem_opts_set_numa(struct iomem_opts *o, int policy, int node);
#define IOMEM_NUMA_DEFAULT    0
#define IOMEM_NUMA_PREFERRED  1
#define IOMEM_NUMA_BIND       2
#define IOMEM_NUMA_INTERLEAVE 3 /* node ignored: all allowed nodes */
int iomem_opts_set_seals(struct iomem_opts *o, unsigned seals);
#define IOMEM_SEAL_SHRINK 0x1u
#define IOMEM_SEAL_GROW   0x2u
#define IOMEM_SEAL_WRITE  0x4u
int iomem_opts_set_window(struct iomem_opts *o, struct iomem_window *w);
/* The lock timeout of the handles it opens (default -1: for ever). */
int iomem_opts_set_lock_timeout(struct iomem_opts *o, int timeout_ms);
/* 1: the handle locks the memory of the ranges it acquires (mlock), until
 * they are released; iomem_stat().wired counts it. */
int iomem_opts_set_wired(struct iomem_opts *o, int wired);

/* The DAX window */
int iomem_window_new(struct iomem_window **w, size_t size, size_t chunk);
int iomem_window_delete(struct iomem_window **w);
int iomem_window_set_policy(struct iomem_window *w, int policy);
#define IOMEM_EVICT_DEFAULT 0 /* adaptive: follows the best of LRU..SIEVE lately */
#define IOMEM_EVICT_CLOCK   1 /* second chance                                   */
#define IOMEM_EVICT_FIFO    2 /* what Linux fs/fuse/dax.c does                   */
#define IOMEM_EVICT_LIFO    3 /* what OSv's dax_manager does                     */
#define IOMEM_EVICT_S3FIFO  4 /* small, main and ghost FIFOs (SOSP 2023)         */
#define IOMEM_EVICT_SIEVE   5 /* a FIFO with a visited bit and a hand (NSDI 2024) */
#define IOMEM_EVICT_LIRS    6 /* low inter-reference recency set (2002)          */
#define IOMEM_EVICT_ARC     7 /* adaptive replacement cache (FAST 2003)          */
#define IOMEM_EVICT_LRU     8 /* least recently used                             */
struct iomem_window_stat {
        size_t size, chunk;
        size_t chunks_used, chunks_pinned;
        uint64_t hits, misses, evictions;
};
int iomem_window_stat(struct iomem_window *w, struct iomem_window_stat *st);

/* Backends */
#define IOMEM_CAP_NAMED    0x001u /* attach by name                       */
#define IOMEM_CAP_FDPASS   0x002u /* attach by fd passing                 */
#define IOMEM_CAP_SEAL     0x004u
#define IOMEM_CAP_HUGEPAGE 0x008u
#define IOMEM_CAP_NUMA     0x010u
#define IOMEM_CAP_GIFT     0x020u /* zero-copy gift of iomem_alloc memory */
#define IOMEM_CAP_PTSHARE  0x040u /* page tables shared between processes */
#define IOMEM_CAP_DAX      0x080u
#define IOMEM_CAP_RESIZE   0x100u
#define IOMEM_CAP_THP      0x200u /* transparent huge pages (objects only) */
#define IOMEM_CAP_SHARED   0x400u /* pins, the I/O lock and the size are shared
                                   * by every process that has it open */
#define IOMEM_CAP_RESERVED 0x800u /* memory is reserved when acquired: a full
                                   * filesystem is -ENOSPC, never SIGBUS */
struct iomem_backend_info {
        const char *name;
        unsigned caps;
        int available; /* 1, or 0 with the reason in `why` */
        const char *why;
};
ssize_t iomem_backends(struct iomem_backend_info *out, size_t n);

/* Errors */
const char *iomem_errormsg(void);

/* Asynchronous transfers with completion (built when liburing is found) */
struct iomem_aio;
struct iomem_aio_cqe {
        uint64_t tag;   /* the caller's tag from submission              */
        ssize_t res;    /* bytes transferred, or negative errno          */
        unsigned flags; /* IOMEM_AIO_COPIED: the kernel copied after all */
};
#define IOMEM_AIO_COPIED 0x1u
int iomem_aio_new(struct iomem_aio **q, unsigned depth);
int iomem_aio_delete(struct iomem_aio **q);
int iomem_aio_read(struct iomem_aio *q, int fd, uint64_t fd_off,
                   struct iomem *f, size_t off, size_t len, uint64_t tag);
int iomem_aio_write(struct iomem_aio *q, int fd, uint64_t fd_off,
                    struct iomem *f, size_t off, size_t len, uint64_t tag);
int iomem_aio_send(struct iomem_aio *q, int sock, struct iomem *f,
                   size_t off, size_t len, uint64_t tag);
int iomem_aio_submit(struct iomem_aio *q);
int iomem_aio_wait(struct iomem_aio *q, struct iomem_aio_cqe *cqe, unsigned n,
                   unsigned min, int timeout_ms);
int iomem_aio_fd(struct iomem_aio *q);

/* Receiving into the object (built when liburing is found): a socket's
 * messages land in buffers of f's gift pool, buf_size bytes each (a
 * multiple of the page size), nbufs (a power of two) posted at a time. A
 * buffer iomem_rx_next returns is the caller's: iomem_rx_gift it (adopted,
 * no copy) or iomem_free it. With IOMEM_RX_DROP, messages that find no
 * free buffer are read away and counted, else they wait in the socket. */
struct iomem_rx;
#define IOMEM_RX_DROP 0x1u
/* Stream sockets: fill each buffer before handing it out (MSG_WAITALL),
 * so that each is whole pages, adopted by a gift at a page boundary. */
#define IOMEM_RX_FILL 0x2u
int iomem_rx_new(struct iomem_rx **rx, struct iomem *f, int sock, size_t buf_size,
                 unsigned nbufs, unsigned flags);
/* The next message's length (0: the peer closed), its buffer in *buf;
 * waits at most timeout_ms (0: -EAGAIN at once, negative: for ever). */
ssize_t iomem_rx_next(struct iomem_rx *rx, void **buf, int timeout_ms);
/* Make the message's len bytes the object's [off, off+len), adopted where
 * iomem_gift can (else copied, unless flags has IOMEM_GIFT_NOCOPY), and
 * free what of the buffer the object did not adopt. */
int iomem_rx_gift(struct iomem_rx *rx, void *buf, size_t len, size_t off, unsigned flags);
ssize_t iomem_rx_dropped(const struct iomem_rx *rx);
/* Readable (poll, epoll) while iomem_rx_next has something to return at
 * once; the receiver keeps it. */
int iomem_rx_fd(const struct iomem_rx *rx);
int iomem_rx_delete(struct iomem_rx **rx);

/* A channel (iomem_chan_open(3)): a ring of nslots slots of slot_size
 * bytes kept in object f from offset 0, one producer, consumers that each
 * receive every message, in place (no byte is copied). Create it (slot_size
 * and nslots non-zero: the handle is its producer) or attach to it (both 0:
 * a consumer). One thread at a time uses a handle. */
struct iomem_chan;
#define IOMEM_CHAN_NONBLOCK 0x1u /* -EAGAIN instead of waiting            */
#define IOMEM_CHAN_PRODUCER 0x2u /* attach as the producer                 */
#define IOMEM_CHAN_CONSUMER 0x4u /* create, or attach, as a consumer       */
int iomem_chan_open(struct iomem_chan **out, struct iomem *f, size_t slot_size, size_t nslots,
                    unsigned flags);
int iomem_chan_close(struct iomem_chan **c);
/* Producer: a free slot of slot_size bytes, written in place. */
int iomem_chan_loan(struct iomem_chan *c, void **slot);
/* Producer: make the loaned slot's first len bytes the next message. */
int iomem_chan_publish(struct iomem_chan *c, void *slot, size_t len);
/* Consumer: the next message in place; returns its length. */
ssize_t iomem_chan_receive(struct iomem_chan *c, const void **msg);
int iomem_chan_release(struct iomem_chan *c, const void *msg);
/* Readable when a message waits (consumer) or a slot is free (producer). */
int iomem_chan_fd(struct iomem_chan *c);

/* Fabric exports (iomem_export(3)): [off, off+len) of f made reachable by
 * RMA from other hosts through libfabric, at addr ("HOST:PORT"; port 0
 * picks one). Peers open it with iomem_remote_open and read (and, with
 * IOMEM_EXPORT_WRITE, write) it straight into and out of their objects.
 * Without libfabric in the build every call is -ENOTSUP. */
struct iomem_export;
struct iomem_remote;
#define IOMEM_EXPORT_WRITE 0x1u /* peers may write, not only read          */
int iomem_export(struct iomem_export **out, struct iomem *f, size_t off, size_t len,
                 const char *addr, unsigned flags);
/* Deregister, then disconnect, then release: the revocation. */
int iomem_export_close(struct iomem_export **x);
/* "HOST:PORT" where peers connect (the port bound when 0 was asked). */
const char *iomem_export_addr(const struct iomem_export *x);
/* Peers connected now; *served (may be NULL): those ever connected. */
ssize_t iomem_export_peers(struct iomem_export *x, uint64_t *served);
int iomem_remote_open(struct iomem_remote **out, const char *addr);
int iomem_remote_close(struct iomem_remote **r);
/* The export's length in bytes. */
ssize_t iomem_remote_size(const struct iomem_remote *r);
/* Bytes [roff, roff+len) of the export into [off, off+len) of f, or out. */
ssize_t iomem_remote_read(struct iomem_remote *r, size_t roff, struct iomem *f, size_t off,
                          size_t len);
ssize_t iomem_remote_write(struct iomem_remote *r, size_t roff, struct iomem *f, size_t off,
                           size_t len);
/* The whole export into f, sized to it. */
ssize_t iomem_remote_fetch(struct iomem_remote *r, struct iomem *f);

#ifdef __cplusplus
}
#endif

#endif /* IOMEM_H */
