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
#include <sys/types.h>
#include <sys/uio.h>

#include "fork.h"
#include "iomem.h"
#include "platform.h"

#define IOM_PUBLIC __attribute__((visibility("default")))
#define IOM_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* ---- errors (error.c) ---------------------------------------------- */

/* Record "<object>: <cause>" as this thread's message; returns err
 * (a negative errno). obj may be NULL when no object is involved. */
int iom_fail(const char *obj, int err, const char *fmt, ...) IOM_PRINTF(3, 4);
/* This thread's message, kept across housekeeping whose own failures are
 * not the caller's to hear of. */
#define IOM_MESSAGE_MAX 512
struct iom_error_saved {
        char message[IOM_MESSAGE_MAX];
        bool pending;
};
void iom_error_save(struct iom_error_saved *s);
void iom_error_restore(const struct iom_error_saved *s);
/* The error of an mlock of len bytes that failed with errno e, naming
 * RLIMIT_MEMLOCK (wired.c): -ENOMEM or -EPERM, or -e. */
int iom_mlock_failure(const char *obj, int e, size_t len);
/* Prefix the thread's message with the public operation's name when r
 * is an error; returns r unchanged. */
ssize_t iom_result(const char *op, ssize_t r);
/* The result r of a public function called inside another: its message
 * (which names it) becomes the cause the outer iom_result reports. */
ssize_t iom_inner_result(ssize_t r);
/* Debug log to stderr when IOMEM_LOG=debug. */
void iom_debug(const char *fmt, ...) IOM_PRINTF(1, 2);

/* ---- arithmetic ------------------------------------------------------ */

static inline bool iom_is_pow2(size_t x) { return x && !(x & (x - 1)); }
static inline uint64_t iom_round_down(uint64_t x, uint64_t a) { return x & ~(a - 1); }
static inline uint64_t iom_round_up(uint64_t x, uint64_t a) { return (x + a - 1) & ~(a - 1); }
static inline uint64_t iom_min(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* A function that reads shared memory under a sequence count, which
 * notices a read torn by a concurrent change and has it done again: its
 * reads are not races for ThreadSanitizer to report. */
#if defined(__SANITIZE_THREAD__)
#define IOM_SEQ_READER __attribute__((no_sanitize("thread")))
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define IOM_SEQ_READER __attribute__((no_sanitize("thread")))
#endif
#endif
#ifndef IOM_SEQ_READER
#define IOM_SEQ_READER
#define IOM_FENCE(order) __atomic_thread_fence(order)
#else
/* GCC's ThreadSanitizer refuses fences (it does not model them); those
 * of a sequence count only order plain accesses it does not check. */
#define IOM_FENCE(order) __asm__ __volatile__("" ::: "memory")
#endif
static inline uint64_t iom_max(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* The largest file any backend holds (16 TiB): the fd engine lays out
 * its objects' physical offsets around it (meta.h). */
#define IOM_FILE_MAX (UINT64_C(1) << 44)

/* ---- options (opts.c) ------------------------------------------------ */

struct iomem_opts {
        size_t size;
        unsigned mode;
        size_t hugepage;
        int numa_policy, numa_node;
        unsigned seals;
        struct iomem_window *window;
        int lock_timeout_ms;
        bool wired;
};
/* The options in force: o itself, or the defaults when o is NULL. */
const struct iomem_opts *iom_opts_or_default(const struct iomem_opts *o);

/* ---- objects and backends ------------------------------------------ */

struct iomem;

/*
 * Per-object operations (like sqlite3_io_methods). The core has checked
 * the object, overflow, alignment and zero lengths, and run iom_enter,
 * before calling. A backend leaves out what it cannot do: the core fills
 * an empty slot with a shared iom_no_* stub (-ENOTSUP, like libfabric's
 * fi_no_*), so no slot is ever called NULL.
 */
struct iom_object_ops {
        /* sizeof(struct iom_object_ops) as the backend was built: slots
         * past it are taken as empty, so a table built against an older
         * header still works. */
        size_t size;
        /* Where this table's empty slots come from before the stubs: an
         * engine's table, for a backend that changes only a few of its
         * operations (mshare: the fd engine's). */
        const struct iom_object_ops *base;
        /* Run before every operation (after the argument checks), for what
         * a backend must verify each time (mshare: its region is still
         * there). Empty: nothing. */
        int (*before_call)(struct iomem *f);
        /* In a forked child, the first call on an inherited handle: forget
         * what the parent held (pins, locks, buffers), under the process's
         * reset lock (fork.h). Empty: nothing to forget. */
        int (*after_fork)(struct iomem *f);
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
        /* Wait at most timeout_ms milliseconds, negative for ever
         * (lockwait.h has the errors and the fairness rule). */
        int (*rdlock)(struct iomem *f, int timeout_ms);
        int (*wrlock)(struct iomem *f, int timeout_ms);
        int (*unlock)(struct iomem *f);
        int (*stat)(struct iomem *f, struct iomem_stat *st);
        int (*truncate)(struct iomem *f, size_t size);
        ssize_t (*pread)(struct iomem *f, void *buf, size_t len, size_t off);
        ssize_t (*pwrite)(struct iomem *f, const void *buf, size_t len, size_t off);
        int (*sync)(struct iomem *f, size_t off, size_t len);
        /* The descriptors iomem_send passes; returns how many (<= max). */
        int (*send_fds)(const struct iomem *f, int *fds, int max);
        /* Release what open took; the core frees the object after. Also
         * called on a handle inherited across fork and never used. */
        void (*close)(struct iomem *f);
        /* Put every byte at its own offset in data_fd (iomem_plain_fd).
         * Empty: the backend cannot (-ENOTSUP). */
        int (*settle)(struct iomem *f);
        /* Add IOMEM_SEAL_* seals (iomem_seal). Empty: -ENOTSUP. */
        int (*seal)(struct iomem *f, unsigned seals);
        /* true when the bytes can never change again and every one is at
         * its own offset in data_fd (write-sealed, by the kernel too), with
         * the object's size in *size. Empty: never. */
        bool (*frozen)(const struct iomem *f, uint64_t *size);
        /* madvise advice (checked: one iomem_advise takes) for the bytes of
         * [off, off+len) this process maps or would map. */
        int (*advise)(struct iomem *f, size_t off, size_t len, int advice);
};

/*
 * A backend (like sqlite3_vfs): how objects are found, created and
 * removed. rest is the URI after "scheme:". The core allocates each
 * object with priv_size bytes of zeroed backend state after it (f->priv,
 * the way curl's struct Curl_ssl sizes a backend's connection data), and
 * sets its operations from ops before open or open_fds runs.
 */
struct iom_backend {
        const char *name;
        unsigned caps;
        size_t priv_size;
        const struct iom_object_ops *ops;
        /* 1 when usable here; 0 when this system cannot run it, or
         * -ENOTSUP when this version cannot; *why says why. */
        int (*probe)(const char **why);
        /* On failure the backend has released everything it took. */
        int (*open)(struct iomem *f, const char *rest, unsigned flags,
                    const struct iomem_opts *o);
        /* Adopt fds[0..nfds) (aux descriptors after the first, as
         * send_fds produced them); on failure the caller keeps them. */
        int (*open_fds)(struct iomem *f, const int *fds, int nfds,
                        unsigned flags, const struct iomem_opts *o);
        int (*unlink)(const char *rest);
};

/* Shared stubs for backend slots left empty (stubs.c). */
int iom_no_open(struct iomem *f, const char *rest, unsigned flags,
                const struct iomem_opts *o);
int iom_no_open_fds(struct iomem *f, const int *fds, int nfds, unsigned flags,
                    const struct iomem_opts *o);
int iom_no_unlink(const char *rest);
/* send_fds for an object that is its one backing descriptor. */
int iom_send_data_fd(const struct iomem *f, int *fds, int max);
/* settle for a backend whose data file holds every byte at its own offset. */
int iom_in_place(struct iomem *f);

/* An open object: what every backend has. */
struct iomem {
        struct iom_object_ops ops; /* the backend's, empty slots filled */
        const struct iom_backend *backend;
        char *name;          /* the URI, for messages */
        unsigned flags;      /* IOMEM_RDWR etc. */
        unsigned caps;       /* IOMEM_CAP_* of this object */
        size_t page_size;    /* the granularity of acquire and release */
        int data_fd;         /* the file's bytes (iomem_fd) */
        bool bytes_in_page_cache; /* data_fd's page cache holds the bytes at
                                   * their own offsets (read and splice
                                   * reach them: dax: without DAX) */
        unsigned fork_gen;   /* iom_fork_generation() it is up to date with */
        int lock_timeout_ms; /* how long the library's own lock calls and
                              * iomem_rdlock/wrlock wait (negative: for ever) */
        /* Asynchronous transfers (aio.c) on this handle not yet collected
         * by iomem_aio_wait: their memory is pinned and may be written by
         * the kernel at any moment, so close refuses while it is not 0. */
        unsigned aio_inflight;
        /* Receivers (rx.c) on this handle: the kernel may write into their
         * buffers of its pool at any moment, so close refuses too. */
        unsigned receivers;
        /* Channels (chan.c) on this handle: they pin its memory and use
         * the handle until they close, so close refuses too. */
        unsigned channels;
        /* Fabric exports (fabric.c) of this handle: peers on other hosts
         * may reach its pinned memory until they close. */
        unsigned exports;
        void *priv;          /* the backend's state, priv_size bytes */
};

/* The memory of [off, off+len), all acquired through a writable handle,
 * as retrieve gives it (buffers.c): a new array in *out, first sized cap
 * (bufcount's count, say) and grown until it holds the range. Returns the
 * entries, or a negative error with *out unchanged. */
ssize_t iom_retrieve_all(struct iomem *f, size_t off, size_t len, size_t cap, struct iovec **out);
/* The same by borrow (holes are { NULL, len }), for a read-only handle. */
ssize_t iom_borrow_all(struct iomem *f, size_t off, size_t len, size_t cap, struct iovec **out);

/* Allocate an object of backend b (priv zeroed, operations set). */
int iom_object_new(struct iomem **out, const struct iom_backend *b,
                   const char *name, unsigned flags, const struct iomem_opts *o);
void iom_object_free(struct iomem *f);

/* A handle inherited across fork, brought up to date once: its backend's
 * after_fork (enter.h runs it before an operation; a close runs it alone). */
int iom_object_catch_up(struct iomem *f);

/* Initialise a mutex of this process (a handle's, a dax file's, a
 * window's): a contender spins a little before it sleeps. Most of what
 * these guard takes tens of nanoseconds, where sleeping would cost both
 * threads a system call per turn (docs/PERFORMANCE.md has the figures);
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
/* A backend's capabilities as this platform keeps them: no RESERVED
 * where allocating does not reserve, no HUGEPAGE without huge pages. */
unsigned iom_platform_caps(unsigned caps);

/* ---- an object's own files (backing.c) ------------------------------ */

/* -EINVAL, with the message set, when fd is one of f's own backing files
 * (its data file or its metadata file); else 0. */
int iom_refuse_own_backing(struct iomem *f, int fd);
/* -EINVAL when two objects share a backing file without being one object
 * (a dax: object over the data file of a shm object); else 0. */
int iom_refuse_shared_backing(struct iomem *a, struct iomem *b);

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
/* Start time of a process in clock ticks since boot, 0 when unknown;
 * its state letter in *state when state is not NULL ('Z' for a zombie)
 * (process.c). */
uint64_t iom_process_start_time(pid_t pid, char *state);
/* Has the process recorded as pid, started at start_time (0: unknown;
 * its low 32 bits are compared), died? A zombie has, unless other
 * threads run on; so has a pid now another process's. */
bool iom_process_gone(pid_t pid, uint64_t start_time);
/* A read-only zero-filled region of at least len bytes (for holes). */
const void *iom_zero_pages(size_t *len);

#endif /* IOMEM_INTERNAL_H */
