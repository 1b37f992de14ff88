/* SPDX-License-Identifier: MIT */
/*
 * Internal interfaces shared by the core (lib/) and the backends.
 * Nothing here is exported from libiomem.so: the build uses
 * -fvisibility=hidden and a version script that lists the public names.
 * Internal names that cross files start with iom_ so that static linking
 * cannot clash with the caller's symbols.
 */
#ifndef IOMEM_INTERNAL_H
#define IOMEM_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "iomem.h"
#include "meta.h"
#include "ranges.h"
#include "segments.h"

#define IOM_PUBLIC __attribute__((visibility("default")))
#define IOM_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---- errors (error.c) ---------------------------------------------- */

/* Record "<object>: <cause>" as this thread's message; returns err
 * (a negative errno). obj may be NULL when no object is involved. */
int iom_fail(const char *obj, int err, const char *fmt, ...) IOM_PRINTF(3, 4);
/* Prefix the thread's message with the public operation's name when r
 * is an error; returns r unchanged. */
ssize_t iom_result(const char *op, ssize_t r);
/* Debug log to stderr when IOMEM_LOG=debug. */
void iom_debug(const char *fmt, ...) IOM_PRINTF(1, 2);

/* ---- arithmetic ------------------------------------------------------ */

static inline bool iom_is_pow2(size_t x) { return x && !(x & (x - 1)); }
static inline uint64_t iom_round_down(uint64_t x, uint64_t a) { return x & ~(a - 1); }
static inline uint64_t iom_round_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }
static inline uint64_t iom_min(uint64_t a, uint64_t b) { return a < b ? a : b; }
static inline uint64_t iom_max(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* ---- options (opts.c) ------------------------------------------------ */

struct iomem_opts {
        size_t size;
        unsigned mode;
        size_t hugepage;
        int numa_policy, numa_node;
        unsigned seals;
        struct iomem_window *window;
};
/* The options in force: o itself, or the defaults when o is NULL. */
const struct iomem_opts *iom_opts_or_default(const struct iomem_opts *o);

/* ---- objects and backends ------------------------------------------ */

struct iomem;

/*
 * Per-object operations (like sqlite3_io_methods). The core has checked
 * the object, overflow, alignment and zero lengths before calling; a slot
 * a backend cannot support points at iom_no_* rather than NULL.
 */
struct iom_object_ops {
        ssize_t (*acquire)(struct iomem *f, size_t off, size_t len);
        int (*release)(struct iomem *f, size_t off, size_t len);
        ssize_t (*retrieve)(struct iomem *f, size_t off, size_t len,
                            struct iovec *iov, size_t iovcnt);
        ssize_t (*borrow)(struct iomem *f, size_t off, size_t len,
                          struct iovec *iov, size_t iovcnt);
        ssize_t (*bufcount)(struct iomem *f, size_t off, size_t len);
        ssize_t (*gift)(struct iomem *f, size_t off, size_t len,
                        const struct iovec *iov, size_t iovcnt, unsigned flags);
        int (*alloc)(struct iomem *f, size_t len, void **out);
        int (*free)(struct iomem *f, void *buf, size_t len);
        int (*rdlock)(struct iomem *f);
        int (*wrlock)(struct iomem *f);
        int (*unlock)(struct iomem *f);
        int (*stat)(struct iomem *f, struct iomem_stat *st);
        int (*truncate)(struct iomem *f, size_t size);
        ssize_t (*pread)(struct iomem *f, void *buf, size_t len, size_t off);
        ssize_t (*pwrite)(struct iomem *f, const void *buf, size_t len, size_t off);
        int (*sync)(struct iomem *f, size_t off, size_t len);
        /* The descriptors iomem_send passes; returns how many (<= max). */
        int (*send_fds)(const struct iomem *f, int *fds, int max);
        void (*close)(struct iomem *f);
};

/*
 * A backend (like sqlite3_vfs): how objects are found, created and
 * removed. rest is the URI after "scheme:".
 */
struct iom_backend {
        const char *name;
        unsigned caps;
        /* 1 when usable here; 0 when this system cannot run it, or
         * -ENOTSUP when this version cannot; *why says why. */
        int (*probe)(const char **why);
        int (*open)(struct iomem *f, const char *rest, unsigned flags,
                    const struct iomem_opts *o);
        /* Adopt fds[0..nfds) (aux descriptors after the first, as
         * send_fds produced them); on failure the caller keeps them. */
        int (*open_fds)(struct iomem *f, const int *fds, int nfds,
                        unsigned flags, const struct iomem_opts *o);
        int (*unlink)(const char *rest);
};

/* Shared stubs for slots a backend does not have (like libfabric fi_no_*). */
int iom_no_open(struct iomem *f, const char *rest, unsigned flags,
                const struct iomem_opts *o);
int iom_no_open_fds(struct iomem *f, const int *fds, int nfds, unsigned flags,
                    const struct iomem_opts *o);
int iom_no_unlink(const char *rest);

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

/*
 * An open object. The fd-memory engine (fdmem.c) drives shm and memfd
 * objects through the fields below; other backends keep their state in
 * priv.
 */
struct iomem {
        const struct iom_backend *backend;
        const struct iom_object_ops *ops;
        char *name;          /* the URI, for messages */
        unsigned flags;      /* IOMEM_RDWR etc. */
        unsigned caps;       /* IOMEM_CAP_* of this object */
        size_t page_size;

        int data_fd;         /* the file's bytes (iomem_fd) */
        bool bytes_in_page_cache; /* data_fd's page cache holds the bytes at
                                   * their own offsets (dax: without DAX) */
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
        unsigned fork_gen;   /* iom_fork_generation() when owner was taken */

        pthread_mutex_t lock; /* guards the process-local state below */
        struct iom_ranges pins;     /* this handle's pinned pages, counted */
        struct iom_segments segs;   /* physical offset -> address */
        struct iom_allocs {
                struct iom_alloc { void *va; uint64_t phys; size_t len; } *v;
                size_t n, cap;
        } allocs;                   /* iomem_alloc buffers not yet gifted */

        /* Asynchronous transfers (aio.c) on this handle not yet collected
         * by iomem_aio_wait: their memory is pinned and may be written by
         * the kernel at any moment, so close refuses while it is not 0. */
        unsigned aio_inflight;

        void *priv;          /* backend state, allocated after the object */
};

/* Can this handle change the bytes (open read-write, not sealed)? */
static inline bool iom_writable(const struct iomem *f)
{
        return (f->flags & IOMEM_RDWR) && !(f->meta && (f->meta->seals & IOMEM_SEAL_WRITE));
}

/* Allocate an object with priv_size bytes of backend state after it. */
int iom_object_new(struct iomem **out, const struct iom_backend *b,
                   const char *name, unsigned flags, size_t priv_size);
void iom_object_free(struct iomem *f);

/* Initialise a mutex of this process (a handle's, a dax file's, a
 * window's): a contender spins a little before it sleeps. Most of what
 * these guard takes tens of nanoseconds, where sleeping would cost both
 * threads a system call per turn (README, Performance, has the figures);
 * the spin is bounded, so a holder that makes a system call of its own
 * (a dax file's fallocate, a window's mmap) costs a waiter little more. */
void iom_mutex_init(pthread_mutex_t *mu);

/* The registry (registry.c). */
const struct iom_backend *iom_backend_find(const char *name, size_t len);
/* The usable backend called name[0..len): -EPROTONOSUPPORT when unknown,
 * -ENOTSUP when left out of the build or not implemented, -ENODEV when
 * this system cannot run it. obj names the object in messages. */
int iom_backend_lookup(const char *name, size_t len, const char *obj,
                       const struct iom_backend **out);
/* Split a URI into backend and rest, then look the backend up. */
int iom_backend_for_uri(const char *uri, const struct iom_backend **b,
                        const char **rest);

/* ---- the fd-memory engine (fdmem.c), used by shm and memfd ---------- */

extern const struct iom_object_ops iom_fdmem_ops;

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

/* ---- asynchronous transfers (aio.c) ---------------------------------- */

/* Switches for tests (linked statically): behave as a kernel without
 * IORING_OP_SEND_ZC, or as one whose buffer table cannot take the
 * object's memory, so that the fallbacks run everywhere. */
struct iom_aio_knobs {
        bool no_send_zc;
        bool no_fixed;
};
extern struct iom_aio_knobs iom_aio_knobs;

/* ---- process-wide helpers ------------------------------------------ */

size_t iom_system_page_size(void);
/* A read-only zero-filled region of at least len bytes (for holes). */
const void *iom_zero_pages(size_t *len);

#endif /* IOMEM_INTERNAL_H */
