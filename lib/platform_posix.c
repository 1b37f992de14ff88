/* SPDX-License-Identifier: MIT */
/*
 * The platform layer from POSIX alone (platform.h): what the BSDs build
 * (macOS lacks robust mutexes: README.md), and what meson
 * -Dplatform=posix builds on Linux so that the test suite proves it.
 * Under a sanitizer, mlock is its stub, which locks nothing. Where POSIX has no equivalent, the fallback
 * and the promise it cannot keep are said here and in README.md.
 */
/* The layer may see what the system declares beyond POSIX (MAP_ANON). */
#undef _POSIX_C_SOURCE
#define _DEFAULT_SOURCE
#include "platform.h"
#include "syscalls.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#ifndef MAP_ANONYMOUS
#define MAP_ANONYMOUS MAP_ANON /* the BSDs' older name */
#endif

const char iom_platform_name[] = "posix";
const int iom_map_anonymous = MAP_ANONYMOUS;
const int iom_map_noreserve = 0;
const int iom_map_fixed_noreplace = 0;
const int iom_seek_data = -1, iom_seek_hole = -1;
const bool iom_platform_lists_files = false;
const bool iom_platform_huge_pages = false;
const int iom_msg_cmsg_cloexec = 0;
#ifdef __APPLE__
const bool iom_platform_allocation_reserves = false; /* no posix_fallocate */
#else
const bool iom_platform_allocation_reserves = true;
#endif

/* ---- the syscall table ------------------------------------------------------ */

static int fcntl_int(int fd, int cmd, int arg) { return fcntl(fd, cmd, arg); }
static int open_mode(const char *path, int flags, mode_t mode) { return open(path, flags, mode); }
static int ioctl_ptr(int fd, unsigned long req, void *arg) { return ioctl(fd, req, arg); }
static int shm_open_mode(const char *name, int flags, mode_t mode) { return shm_open(name, flags, mode); }

static int fail_enosys(void)
{
        errno = ENOSYS;
        return -1;
}

/* A hole punched reads as zeros: POSIX cannot free the pages, so it
 * writes the zeros instead, where the bytes are not zeros already (a
 * hole read gives zeros without taking memory; a write would take it). */
static int write_zeros(int fd, off_t off, off_t len)
{
        static const char zeros[8192];
        char buf[sizeof zeros];
        while (len > 0) {
                size_t n = len < (off_t)sizeof zeros ? (size_t)len : sizeof zeros;
                ssize_t r = pread(fd, buf, n, off);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -1;
                if (r == 0)
                        return 0; /* the file ends here */
                if (memcmp(buf, zeros, (size_t)r)) {
                        ssize_t w = pwrite(fd, zeros, (size_t)r, off);
                        if (w < 0 && errno == EINTR)
                                continue;
                        if (w <= 0)
                                return -1;
                        r = w;
                }
                off += r;
                len -= r;
        }
        return 0;
}

/*
 * Backing is reserved with posix_fallocate, which reserves or fails: a
 * filesystem that cannot reserve (copy-on-write ones refuse with EINVAL)
 * gives EOPNOTSUPP here rather than a silent promise. Keeping the size,
 * only what lies inside the file is reserved or zeroed.
 */
static int allocate(int fd, int mode, off_t off, off_t len)
{
        if (mode & IOM_FALLOC_KEEP_SIZE) {
                struct stat st;
                if (fstat(fd, &st) < 0)
                        return -1;
                if (off >= st.st_size)
                        return 0;
                if (len > st.st_size - off)
                        len = st.st_size - off;
        }
        if (mode & IOM_FALLOC_PUNCH_HOLE)
                return write_zeros(fd, off, len);
#ifdef __APPLE__
        (void)fd, (void)off, (void)len;
        return 0; /* nothing reserves: iom_platform_allocation_reserves */
#else
        if (len <= 0 || off < 0) {
                errno = EINVAL;
                return -1;
        }
        int e = posix_fallocate(fd, off, len);
        if (e == EINVAL) /* the arguments are good: the filesystem refuses */
                e = EOPNOTSUPP;
        errno = e;
        return e ? -1 : 0;
#endif
}

static int no_memfd(const char *name, unsigned flags)
{
        (void)name, (void)flags;
        return fail_enosys();
}

static ssize_t no_splice(int in, int64_t *in_off, int out, int64_t *out_off, size_t len, unsigned flags)
{
        (void)in, (void)in_off, (void)out, (void)out_off, (void)len, (void)flags;
        return fail_enosys();
}

static ssize_t no_process_vm_readv(pid_t pid, const struct iovec *local, unsigned long nlocal,
                                   const struct iovec *remote, unsigned long nremote, unsigned long flags)
{
        (void)pid, (void)local, (void)nlocal, (void)remote, (void)nremote, (void)flags;
        return fail_enosys();
}

static void fsinfo_from(const struct statvfs *sv, struct iom_fsinfo *out)
{
        out->kind = IOM_FS_OTHER; /* POSIX does not name filesystems */
        out->block_size = (uint64_t)sv->f_frsize;
        out->blocks = (uint64_t)sv->f_blocks;
        out->bytes_avail = (uint64_t)sv->f_bavail * (uint64_t)sv->f_frsize;
}

static int fstatfs_info(int fd, struct iom_fsinfo *out)
{
        struct statvfs sv;
        if (fstatvfs(fd, &sv) < 0)
                return -1;
        fsinfo_from(&sv, out);
        return 0;
}

static int statfs_info(const char *path, struct iom_fsinfo *out)
{
        struct statvfs sv;
        if (statvfs(path, &sv) < 0)
                return -1;
        fsinfo_from(&sv, out);
        return 0;
}

/* posix_madvise returns its error rather than setting errno. */
static int advise(void *addr, size_t len, int advice)
{
        int e = posix_madvise(addr, len, advice);
        errno = e;
        return e ? -1 : 0;
}

static int sync_data(int fd)
{
#ifdef __APPLE__
        return fsync(fd); /* macOS has no fdatasync */
#else
        return fdatasync(fd);
#endif
}

#define LIBC_SYSCALLS                                    \
        {                                                \
                .mmap = mmap,                            \
                .munmap = munmap,                        \
                .ftruncate = ftruncate,                  \
                .fallocate = allocate,                   \
                .memfd_create = no_memfd,                \
                .shm_open = shm_open_mode,               \
                .shm_unlink = shm_unlink,                \
                .pread = pread,                          \
                .pwrite = pwrite,                        \
                .writev = writev,                        \
                .splice = no_splice,                     \
                .sendmsg = sendmsg,                      \
                .recvmsg = recvmsg,                      \
                .fstat = fstat,                          \
                .fstatfs = fstatfs_info,                 \
                .fcntl = fcntl_int,                      \
                .flock = flock,                          \
                .madvise = advise,                       \
                .open = open_mode,                       \
                .unlink = unlink,                        \
                .lseek = lseek,                          \
                .fdatasync = sync_data,                  \
                .statfs = statfs_info,                   \
                .ioctl = ioctl_ptr,                      \
                .process_vm_readv = no_process_vm_readv, \
                .mlock = mlock,                          \
                .munlock = munlock,                      \
                .msync = msync,                          \
        }

const struct iom_syscalls iom_sys_default = LIBC_SYSCALLS;
struct iom_syscalls iom_sys = LIBC_SYSCALLS;

/* ---- advice: POSIX has four ------------------------------------------------- */

const struct iom_advice_value iom_advice_values[] = {
        { POSIX_MADV_WILLNEED, IOM_ADV_WILLNEED, "POSIX_MADV_WILLNEED" },
        { POSIX_MADV_DONTNEED, IOM_ADV_DONTNEED, "POSIX_MADV_DONTNEED" },
        { POSIX_MADV_SEQUENTIAL, IOM_ADV_SEQUENTIAL, "POSIX_MADV_SEQUENTIAL" },
        { POSIX_MADV_RANDOM, IOM_ADV_RANDOM, "POSIX_MADV_RANDOM" },
};
const size_t iom_advice_count = sizeof iom_advice_values / sizeof iom_advice_values[0];

/* ---- files ------------------------------------------------------------------ */

bool iom_file_is_dax(int fd)
{
        (void)fd;
        return false;
}

bool iom_file_write_sealed(int fd)
{
        (void)fd;
        return false; /* no seals */
}

int iom_file_reopen(int fd, int flags)
{
        (void)fd, (void)flags;
        errno = ENOTSUP;
        return -1;
}

int iom_file_path(int fd, char *buf, size_t cap)
{
        (void)fd, (void)buf, (void)cap;
        return -ENOTSUP;
}

/* POSIX has no extended attributes (the BSDs' extattr and macOS's
 * differ): ENOSYS, which pairing.c takes as "cannot tell". */
int iom_xattr_set(int fd, const char *name, const void *value, size_t len)
{
        (void)fd, (void)name, (void)value, (void)len;
        errno = ENOSYS;
        return -1;
}

ssize_t iom_xattr_get(int fd, const char *name, void *buf, size_t cap)
{
        (void)fd, (void)name, (void)buf, (void)cap;
        errno = ENOSYS;
        return -1;
}

int iom_each_open_file(const char *suffix, int (*fn)(const char *path, void *arg), void *arg)
{
        (void)suffix, (void)fn, (void)arg;
        return -ENOTSUP;
}

/* POSIX does not split device numbers: the high and low 32 bits. */
void iom_dev_split(dev_t dev, unsigned *major_out, unsigned *minor_out)
{
        *major_out = (unsigned)((uint64_t)dev >> 32);
        *minor_out = (unsigned)((uint64_t)dev & 0xffffffffu);
}

dev_t iom_dev_join(unsigned major_part, unsigned minor_part)
{
        return (dev_t)((uint64_t)major_part << 32 | minor_part);
}

const char *iom_mountinfo_path(void)
{
        return NULL;
}

const char *iom_shm_dir(void)
{
        return NULL;
}

int iom_splice_pipe(int p[2], size_t size)
{
        (void)p, (void)size;
        return fail_enosys();
}

/* ---- processes and threads ------------------------------------------------- */

/*
 * POSIX cannot ask after another thread by id, so the layer keeps its own
 * ids: handed out in order, never again, and each thread's id is in the
 * list of live ones from its first call until a key's destructor takes
 * it out as the thread exits.
 */
static pthread_once_t threads_once = PTHREAD_ONCE_INIT;
static pthread_key_t thread_exit_key;
static pthread_mutex_t threads_lock = PTHREAD_MUTEX_INITIALIZER;
static int *live_threads;
static size_t nlive_threads, live_threads_cap;
static bool some_unlisted; /* then no thread is ever taken for gone */
static _Thread_local int thread_id;

static void thread_exits(void *id)
{
        pthread_mutex_lock(&threads_lock);
        for (size_t i = 0; i < nlive_threads; i++) {
                if (live_threads[i] == (int)(intptr_t)id) {
                        live_threads[i] = live_threads[--nlive_threads];
                        break;
                }
        }
        pthread_mutex_unlock(&threads_lock);
}

/* Held across fork, so that the child's copy is whole; the child has
 * one thread, the caller's. */
static void threads_before_fork(void)
{
        pthread_mutex_lock(&threads_lock);
}

static void threads_parent_after_fork(void)
{
        pthread_mutex_unlock(&threads_lock);
}

static void threads_child_after_fork(void)
{
        nlive_threads = 0;
        if (thread_id && live_threads_cap)
                live_threads[nlive_threads++] = thread_id;
        pthread_mutex_unlock(&threads_lock);
}

static void threads_init(void)
{
        pthread_key_create(&thread_exit_key, thread_exits);
        pthread_atfork(threads_before_fork, threads_parent_after_fork, threads_child_after_fork);
}

int iom_thread_id(void)
{
        static int next;
        if (thread_id)
                return thread_id;
        int id = __atomic_add_fetch(&next, 1, __ATOMIC_RELAXED);
        pthread_once(&threads_once, threads_init);
        pthread_mutex_lock(&threads_lock);
        if (nlive_threads == live_threads_cap) {
                size_t cap = live_threads_cap ? 2 * live_threads_cap : 64;
                int *v = realloc(live_threads, cap * sizeof *v);
                if (v) {
                        live_threads = v;
                        live_threads_cap = cap;
                }
        }
        /* Without room the thread is not listed; from then on no thread
         * is taken for gone, and what they hold stays until their handle
         * closes. */
        if (nlive_threads < live_threads_cap)
                live_threads[nlive_threads++] = id;
        else
                some_unlisted = true;
        pthread_mutex_unlock(&threads_lock);
        pthread_setspecific(thread_exit_key, (void *)(intptr_t)id);
        thread_id = id;
        return id;
}

bool iom_thread_gone(int tid)
{
        pthread_mutex_lock(&threads_lock);
        bool live = some_unlisted;
        for (size_t i = 0; i < nlive_threads && !live; i++)
                live = live_threads[i] == tid;
        pthread_mutex_unlock(&threads_lock);
        return !live;
}

int iom_current_cpu(void)
{
        return -1;
}

bool iom_process_stat(pid_t pid, char *state, long *threads, uint64_t *start_time)
{
        (void)pid, (void)state, (void)threads, (void)start_time;
        return false;
}

void iom_mutexattr_adaptive(pthread_mutexattr_t *a)
{
        (void)a; /* POSIX mutexes are what they are */
}

/* ---- waiting on shared memory ---------------------------------------------- */

/*
 * Without futexes, a sleeper naps and looks again, from 50 us up to 2 ms.
 * A process-shared condition variable would wake at once, but it keeps
 * its own count of waiters in the shared memory, and a waiter killed
 * there leaves it wrong for everyone after (POSIX makes mutexes robust,
 * never condition variables); naps survive any process's death.
 */
int iom_word_wait(uint32_t *word, uint32_t seen, uint64_t timeout_ns)
{
        uint64_t nap = 50000, slept = 0;
        while (__atomic_load_n(word, __ATOMIC_ACQUIRE) == seen) {
                if (slept >= timeout_ns)
                        return -ETIMEDOUT;
                if (nap > timeout_ns - slept)
                        nap = timeout_ns - slept;
                struct timespec ts = { 0, (long)nap };
                if (nanosleep(&ts, NULL) < 0 && errno == EINTR)
                        return -EINTR;
                slept += nap;
                nap = nap < 1000000 ? 2 * nap : 2000000;
        }
        return 0;
}

void iom_word_wake_all(uint32_t *word)
{
        (void)word; /* sleepers look again by themselves */
}

/* ---- naming datagram sockets ----------------------------------------------- */

/* Sockets are files here: in /tmp, a prefix that marks them ours and ten
 * digits of base 32, nothing else, so that a name spoilt in shared
 * memory cannot lead anywhere else (no "/", no ".."). */
static const char dgram_prefix[] = "/tmp/.iomem-";
static const char dgram_digits[] = "0123456789abcdefghijklmnopqrstuv";
#define DGRAM_DIGITS 10
#define DGRAM_NAME_LEN (sizeof dgram_prefix - 1 + DGRAM_DIGITS + 1) /* with the NUL */

int iom_dgram_bind_unique(int s, void *name, size_t max, size_t *len)
{
        static unsigned counter;
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        size_t n = DGRAM_NAME_LEN;
        if (n > max || n > sizeof a.sun_path)
                return -ENAMETOOLONG;
        for (int tries = 0; tries < 100; tries++) {
                struct timespec now;
                clock_gettime(CLOCK_REALTIME, &now);
                uint64_t v = (uint64_t)getpid() * 0x9e3779b97f4a7c15u ^ (uint64_t)now.tv_nsec ^
                             (uint64_t)__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) << 40;
                memcpy(a.sun_path, dgram_prefix, sizeof dgram_prefix - 1);
                for (int i = 0; i < DGRAM_DIGITS; i++, v >>= 5)
                        a.sun_path[sizeof dgram_prefix - 1 + (size_t)i] = dgram_digits[v & 31];
                if (bind(s, (struct sockaddr *)&a, sizeof a) == 0) {
                        /* Wakers of any user may send to it, as to an
                         * abstract name: a wake-up carries nothing. */
                        chmod(a.sun_path, 0666);
                        memcpy(name, a.sun_path, n);
                        *len = n;
                        return 0;
                }
                if (errno != EADDRINUSE)
                        return -errno;
        }
        return -EADDRINUSE;
}

bool iom_dgram_name_valid(const void *name, size_t len)
{
        const char *s = name;
        if (len != DGRAM_NAME_LEN || memcmp(s, dgram_prefix, sizeof dgram_prefix - 1) || s[len - 1])
                return false;
        for (size_t i = sizeof dgram_prefix - 1; i < len - 1; i++)
                if (!s[i] || !strchr(dgram_digits, s[i]))
                        return false;
        return true;
}

void iom_dgram_unbind(const void *name, size_t len)
{
        struct stat st;
        if (iom_dgram_name_valid(name, len) && lstat(name, &st) == 0 && S_ISSOCK(st.st_mode))
                unlink(name);
}
