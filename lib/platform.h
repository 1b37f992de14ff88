/* SPDX-License-Identifier: MIT */
/*
 * The platform layer: everything the library needs that POSIX.1-2008
 * does not give, behind one small interface. lib/platform_linux.c has it
 * from Linux; lib/platform_posix.c falls back to POSIX alone, and is what
 * the BSDs build (meson -Dplatform=posix forces it on Linux,
 * where the test suite proves it). Every file outside the layer, except
 * the modules that exist only on Linux (memfd, mshare and devdax
 * backends, io_uring transfers, fabric exports), compiles with
 * -std=c11 -D_POSIX_C_SOURCE=200809L.
 *
 * What a fallback cannot promise, it reports: iom_platform_* below, and
 * through them iomem_backends(). The system calls that fail for reasons
 * outside the library's control go through the table in syscalls.h,
 * which the platform files fill in.
 */
#ifndef IOMEM_PLATFORM_H
#define IOMEM_PLATFORM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Which layer was built: "linux" or "posix". */
extern const char iom_platform_name[];

/* ---- memory maps ---------------------------------------------------------- */

/* mmap flags beyond POSIX. Anonymous memory every target has; the other
 * two are 0 where the system lacks them: without NORESERVE a reservation
 * may count against overcommit, and without FIXED_NOREPLACE a hint is
 * only a hint, so the caller compares the address it got with it. */
extern const int iom_map_anonymous;
extern const int iom_map_noreserve;
extern const int iom_map_fixed_noreplace;

/* What a madvise(2)-style value asks for. The public iomem_advise takes
 * the system's own MADV_* values; the library reasons about these. */
enum iom_advice {
        IOM_ADV_UNKNOWN,
        IOM_ADV_WILLNEED,
        IOM_ADV_DONTNEED,
        IOM_ADV_SEQUENTIAL,
        IOM_ADV_RANDOM,
        IOM_ADV_COLD,
        IOM_ADV_PAGEOUT,
        IOM_ADV_HUGEPAGE,
        IOM_ADV_NOHUGEPAGE,
        IOM_ADV_POPULATE_READ,
        IOM_ADV_POPULATE_WRITE,
};
/* This system's madvise values, kinds and names (the platform files). */
struct iom_advice_value {
        int value;
        enum iom_advice kind;
        const char *name;
};
extern const struct iom_advice_value iom_advice_values[];
extern const size_t iom_advice_count;
/* The kind of a caller's advice value, and its name for messages (NULL
 * when this system has no such value); advice.c. */
enum iom_advice iom_advice_kind(int advice);
const char *iom_advice_name(int advice);
/* Give the kernel advice a of this kind through the syscall table; -1
 * with errno ENOTSUP where the system has no such advice. */
int iom_advise(void *va, size_t len, enum iom_advice a);

/* recvmsg flag that makes received descriptors close-on-exec as they
 * arrive; 0 where there is none (the caller sets FD_CLOEXEC after). */
extern const int iom_msg_cmsg_cloexec;

/* ---- files ------------------------------------------------------------------ */

/* Modes of the syscall table's fallocate (the values are Linux's). */
#define IOM_FALLOC_KEEP_SIZE  0x1
#define IOM_FALLOC_PUNCH_HOLE 0x2
/* Flags of the syscall table's splice (Linux's values). */
#define IOM_SPLICE_MOVE 0x1

/* Does allocating backing (the table's fallocate, mode 0 or KEEP_SIZE)
 * reserve the blocks, so that a full filesystem is -ENOSPC at that call
 * and never SIGBUS at a later page fault? */
extern const bool iom_platform_allocation_reserves;

/* Has the system huge pages that files can be made of (hugetlbfs)? */
extern const bool iom_platform_huge_pages;

/* lseek(2) whence values for data and holes; -1 where the system has
 * neither (then every byte counts as data). */
extern const int iom_seek_data, iom_seek_hole;

/* What statfs says about a filesystem, as far as the library cares. */
enum iom_fs_kind { IOM_FS_OTHER, IOM_FS_TMPFS, IOM_FS_HUGETLBFS, IOM_FS_FUSE, IOM_FS_MSHARE };
struct iom_fsinfo {
        enum iom_fs_kind kind;
        uint64_t block_size;
        uint64_t blocks;      /* 0: no size limit reported */
        uint64_t bytes_avail; /* free to an unprivileged user */
};

/* Does the file's mapping reach the device's memory directly (statx's
 * DAX attribute)? false where it cannot be told. */
bool iom_file_is_dax(int fd);
/* Is the descriptor's file sealed against writes (memfd seals)? */
bool iom_file_write_sealed(int fd);
/* A new descriptor of fd's open file, opened with flags (for example a
 * read-only one of a read-write descriptor); -1 with errno, ENOTSUP
 * where the system cannot reopen a descriptor. */
int iom_file_reopen(int fd, int flags);
/* The path fd's file was opened by, in buf: 0, or -errno (-ENOTSUP
 * where the system cannot tell, -ENOENT when the file was unlinked). */
int iom_file_path(int fd, char *buf, size_t cap);
/* A file's extended attribute name (user.*): set it to value[0..len),
 * or read it into buf; 0 or the length, or -1 with errno: ENOSYS where
 * the system has none at all, ENOTSUP where the file's filesystem has not. */
int iom_xattr_set(int fd, const char *name, const void *value, size_t len);
ssize_t iom_xattr_get(int fd, const char *name, void *buf, size_t cap);
/* For each descriptor this process has open on a file whose name ends
 * in suffix: fn(path to open it by, arg) until fn returns non-zero,
 * which is returned; 0 when fn never did, -ENOTSUP where the system
 * cannot list them. */
int iom_each_open_file(const char *suffix, int (*fn)(const char *path, void *arg), void *arg);
/* Can iom_each_open_file list them here? */
extern const bool iom_platform_lists_files;
/* A device number's two parts, and the number of two parts (as the
 * mount table writes them). */
void iom_dev_split(dev_t dev, unsigned *major_out, unsigned *minor_out);
dev_t iom_dev_join(unsigned major_part, unsigned minor_part);
/* The mount table in Linux's mountinfo format, or NULL where there is none. */
const char *iom_mountinfo_path(void);
/* Where shm_open's objects are files: a directory path, or NULL where
 * they are not in the file tree. */
const char *iom_shm_dir(void);
/* A pipe (close-on-exec) for splice, grown to size bytes where the
 * system allows; -1 with errno. */
int iom_splice_pipe(int p[2], size_t size);

/* ---- processes and threads ------------------------------------------------- */

/* This thread's id, unique among the process's live threads. */
int iom_thread_id(void);
/* Has thread tid of this process ended? false when it cannot be told. */
bool iom_thread_gone(int tid);
/* The CPU the caller runs on, or -1 where it cannot be told. */
int iom_current_cpu(void);
/* A process's state letter ('Z' zombie, 'X' dead), thread count and
 * start time in clock ticks; false when they cannot be read (the process
 * is gone, or the system does not tell: kill(pid, 0) is all there is). */
bool iom_process_stat(pid_t pid, char *state, long *threads, uint64_t *start_time);

/* Make mutexes of attribute a spin a while before they sleep, where the
 * system can (glibc's adaptive mutexes). */
void iom_mutexattr_adaptive(pthread_mutexattr_t *a);

/* ---- waiting on shared memory ---------------------------------------------- */

/* Sleep while *word (in memory shared between processes) equals seen,
 * for at most timeout_ns: 0 when woken or it changed, -ETIMEDOUT, -EINTR. */
int iom_word_wait(uint32_t *word, uint32_t seen, uint64_t timeout_ns);
/* Wake every sleeper of word (after changing it). */
void iom_word_wake_all(uint32_t *word);

/* A datagram socket's name for others to send to, in at most max bytes:
 * bind s to a name nobody has and store it in name, its length in *len;
 * 0 or -errno. */
int iom_dgram_bind_unique(int s, void *name, size_t max, size_t *len);
/* May a name read from shared memory be sent to (one that
 * iom_dgram_bind_unique could have made)? */
bool iom_dgram_name_valid(const void *name, size_t len);
/* The owner of s is done with its name: remove it where it is a file. */
void iom_dgram_unbind(const void *name, size_t len);

#endif /* IOMEM_PLATFORM_H */
