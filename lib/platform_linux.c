/* SPDX-License-Identifier: MIT */
/* The platform layer from Linux (platform.h). */
#define _GNU_SOURCE
#include "platform.h"
#include "syscalls.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/futex.h>
#include <linux/magic.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif
#ifndef MSHAREFS_MAGIC
#define MSHAREFS_MAGIC 0x4d534852 /* "MSHR" */
#endif
#ifndef FUSE_SUPER_MAGIC
#define FUSE_SUPER_MAGIC 0x65735546
#endif

_Static_assert(IOM_FALLOC_KEEP_SIZE == FALLOC_FL_KEEP_SIZE &&
               IOM_FALLOC_PUNCH_HOLE == FALLOC_FL_PUNCH_HOLE, "fallocate modes pass through");
_Static_assert(IOM_SPLICE_MOVE == SPLICE_F_MOVE, "splice flags pass through");
_Static_assert(sizeof(loff_t) == sizeof(int64_t), "splice offsets pass through");

const char iom_platform_name[] = "linux";
const int iom_map_anonymous = MAP_ANONYMOUS;
const int iom_map_noreserve = MAP_NORESERVE;
const int iom_map_fixed_noreplace = MAP_FIXED_NOREPLACE;
const int iom_seek_data = SEEK_DATA, iom_seek_hole = SEEK_HOLE;
const bool iom_platform_allocation_reserves = true;
const bool iom_platform_lists_files = true;
const bool iom_platform_huge_pages = true;
const int iom_msg_cmsg_cloexec = MSG_CMSG_CLOEXEC;

/* ---- the syscall table ------------------------------------------------------ */

/* fcntl, open and ioctl are variadic; the table wants fixed signatures. */
static int fcntl_int(int fd, int cmd, int arg) { return fcntl(fd, cmd, arg); }
static int open_mode(const char *path, int flags, mode_t mode) { return open(path, flags, mode); }
static int ioctl_ptr(int fd, unsigned long req, void *arg) { return ioctl(fd, req, arg); }

static ssize_t splice_off64(int in, int64_t *in_off, int out, int64_t *out_off, size_t len,
                            unsigned flags)
{
        return splice(in, (loff_t *)in_off, out, (loff_t *)out_off, len, flags);
}

static enum iom_fs_kind fs_kind(const struct statfs *sf)
{
        switch ((unsigned long)sf->f_type) {
        case TMPFS_MAGIC: return IOM_FS_TMPFS;
        case HUGETLBFS_MAGIC: return IOM_FS_HUGETLBFS;
        case FUSE_SUPER_MAGIC: return IOM_FS_FUSE;
        case MSHAREFS_MAGIC: return IOM_FS_MSHARE;
        default: return IOM_FS_OTHER;
        }
}

static void fsinfo_from(const struct statfs *sf, struct iom_fsinfo *out)
{
        out->kind = fs_kind(sf);
        out->block_size = (uint64_t)sf->f_bsize;
        out->blocks = (uint64_t)sf->f_blocks;
        out->bytes_avail = (uint64_t)sf->f_bavail * (uint64_t)sf->f_bsize;
}

static int fstatfs_info(int fd, struct iom_fsinfo *out)
{
        struct statfs sf;
        if (fstatfs(fd, &sf) < 0)
                return -1;
        fsinfo_from(&sf, out);
        return 0;
}

static int statfs_info(const char *path, struct iom_fsinfo *out)
{
        struct statfs sf;
        if (statfs(path, &sf) < 0)
                return -1;
        fsinfo_from(&sf, out);
        return 0;
}

/* mlock and munlock as the kernel has them: sanitizers replace libc's
 * with calls that lock nothing, and locking is what is asked. */
static int mlock_raw(const void *addr, size_t len) { return (int)syscall(SYS_mlock, addr, len); }
static int munlock_raw(const void *addr, size_t len) { return (int)syscall(SYS_munlock, addr, len); }

/* The table libc provides; iom_sys starts as a copy of it (C wants a
 * constant initializer for each, not one object copied into the other). */
#define LIBC_SYSCALLS                                 \
        {                                             \
                .mmap = mmap,                         \
                .munmap = munmap,                     \
                .ftruncate = ftruncate,               \
                .fallocate = fallocate,               \
                .memfd_create = memfd_create,         \
                .shm_open = shm_open,                 \
                .shm_unlink = shm_unlink,             \
                .pread = pread,                       \
                .pwrite = pwrite,                     \
                .writev = writev,                     \
                .splice = splice_off64,               \
                .sendmsg = sendmsg,                   \
                .recvmsg = recvmsg,                   \
                .fstat = fstat,                       \
                .fstatfs = fstatfs_info,              \
                .fcntl = fcntl_int,                   \
                .flock = flock,                       \
                .madvise = madvise,                   \
                .open = open_mode,                    \
                .unlink = unlink,                     \
                .lseek = lseek,                       \
                .fdatasync = fdatasync,               \
                .statfs = statfs_info,                \
                .ioctl = ioctl_ptr,                   \
                .process_vm_readv = process_vm_readv, \
                .mlock = mlock_raw,                   \
                .munlock = munlock_raw,               \
                .msync = msync,                       \
        }

const struct iom_syscalls iom_sys_default = LIBC_SYSCALLS;
struct iom_syscalls iom_sys = LIBC_SYSCALLS;

/* ---- advice ----------------------------------------------------------------- */

const struct iom_advice_value iom_advice_values[] = {
        { MADV_WILLNEED, IOM_ADV_WILLNEED, "MADV_WILLNEED" },
        { MADV_DONTNEED, IOM_ADV_DONTNEED, "MADV_DONTNEED" },
        { MADV_SEQUENTIAL, IOM_ADV_SEQUENTIAL, "MADV_SEQUENTIAL" },
        { MADV_RANDOM, IOM_ADV_RANDOM, "MADV_RANDOM" },
        { MADV_COLD, IOM_ADV_COLD, "MADV_COLD" },
        { MADV_PAGEOUT, IOM_ADV_PAGEOUT, "MADV_PAGEOUT" },
        { MADV_HUGEPAGE, IOM_ADV_HUGEPAGE, "MADV_HUGEPAGE" },
        { MADV_NOHUGEPAGE, IOM_ADV_NOHUGEPAGE, "MADV_NOHUGEPAGE" },
        { MADV_POPULATE_READ, IOM_ADV_POPULATE_READ, "MADV_POPULATE_READ" },
        { MADV_POPULATE_WRITE, IOM_ADV_POPULATE_WRITE, "MADV_POPULATE_WRITE" },
};
const size_t iom_advice_count = sizeof iom_advice_values / sizeof iom_advice_values[0];

/* ---- files ------------------------------------------------------------------ */

bool iom_file_is_dax(int fd)
{
        struct statx stx;
        return statx(fd, "", AT_EMPTY_PATH, 0, &stx) == 0 && (stx.stx_attributes & STATX_ATTR_DAX);
}

bool iom_file_write_sealed(int fd)
{
        int seals = iom_sys.fcntl(fd, F_GET_SEALS, 0);
        return seals >= 0 && (seals & F_SEAL_WRITE);
}

int iom_file_reopen(int fd, int flags)
{
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        return iom_sys.open(path, flags, 0);
}

int iom_file_path(int fd, char *buf, size_t cap)
{
        char link[64];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, buf, cap - 1);
        if (n < 0)
                return -errno;
        if ((size_t)n >= cap - 1)
                return -ENAMETOOLONG;
        buf[n] = 0;
        return strstr(buf, " (deleted)") ? -ENOENT : 0;
}

int iom_xattr_set(int fd, const char *name, const void *value, size_t len)
{
        return fsetxattr(fd, name, value, len, 0);
}

ssize_t iom_xattr_get(int fd, const char *name, void *buf, size_t cap)
{
        return fgetxattr(fd, name, buf, cap);
}

static bool ends_with(const char *s, const char *tail)
{
        size_t n = strlen(s), t = strlen(tail);
        return n >= t && !strcmp(s + n - t, tail);
}

int iom_each_open_file(const char *suffix, int (*fn)(const char *path, void *arg), void *arg)
{
        DIR *d = opendir("/proc/self/fd");
        if (!d)
                return -errno;
        int r = 0;
        for (struct dirent *e; !r && (e = readdir(d));) {
                char link[sizeof "/proc/self/fd/" + sizeof e->d_name], target[PATH_MAX];
                if (e->d_name[0] == '.' || atoi(e->d_name) == dirfd(d))
                        continue;
                snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
                ssize_t len = readlink(link, target, sizeof target - 1);
                if (len <= 0)
                        continue;
                target[len] = 0;
                /* An unlinked file's link says so after its name. */
                static const char deleted[] = " (deleted)";
                if (ends_with(target, deleted))
                        target[len - (ssize_t)(sizeof deleted - 1)] = 0;
                if (ends_with(target, suffix))
                        r = fn(link, arg);
        }
        closedir(d);
        return r;
}

void iom_dev_split(dev_t dev, unsigned *major_out, unsigned *minor_out)
{
        *major_out = major(dev);
        *minor_out = minor(dev);
}

dev_t iom_dev_join(unsigned major_part, unsigned minor_part)
{
        return makedev(major_part, minor_part);
}

const char *iom_mountinfo_path(void)
{
        return "/proc/self/mountinfo";
}

const char *iom_shm_dir(void)
{
        return "/dev/shm";
}

int iom_splice_pipe(int p[2], size_t size)
{
        if (pipe2(p, O_CLOEXEC) < 0)
                return -1;
        iom_sys.fcntl(p[1], F_SETPIPE_SZ, (int)size); /* a smaller pipe only costs turns */
        return 0;
}

/* ---- processes and threads ------------------------------------------------- */

int iom_thread_id(void)
{
        return (int)syscall(SYS_gettid);
}

bool iom_thread_gone(int tid)
{
        return syscall(SYS_tgkill, getpid(), tid, 0) < 0 && errno == ESRCH;
}

int iom_current_cpu(void)
{
        return sched_getcpu();
}

bool iom_process_stat(pid_t pid, char *state, long *threads, uint64_t *start_time)
{
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
                return false;
        buf[n] = 0;
        const char *p = strrchr(buf, ')'); /* the command may contain spaces */
        if (!p || p[1] != ' ')
                return false;
        *state = p[2];
        /* Fields after the command start at 3 (state); the thread count
         * is 20, the start time 22. */
        unsigned long long t = 0;
        long nthreads = 0;
        int field = 2;
        for (p++; *p && field < 22; p++) {
                if (*p != ' ')
                        continue;
                if (++field == 20)
                        nthreads = strtol(p + 1, NULL, 10);
        }
        if (sscanf(p, "%llu", &t) != 1)
                return false;
        *threads = nthreads;
        *start_time = t;
        return true;
}

void iom_mutexattr_adaptive(pthread_mutexattr_t *a)
{
#ifdef __GLIBC__
        pthread_mutexattr_settype(a, PTHREAD_MUTEX_ADAPTIVE_NP);
#else
        (void)a;
#endif
}

/* ---- waiting on shared memory ---------------------------------------------- */

int iom_word_wait(uint32_t *word, uint32_t seen, uint64_t timeout_ns)
{
        struct timespec ts = { (time_t)(timeout_ns / 1000000000u), (long)(timeout_ns % 1000000000u) };
        if (syscall(SYS_futex, word, FUTEX_WAIT, seen, &ts, NULL, 0) == 0 || errno == EAGAIN)
                return 0;
        return -errno;
}

void iom_word_wake_all(uint32_t *word)
{
        syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* ---- naming datagram sockets ----------------------------------------------- */

int iom_dgram_bind_unique(int s, void *name, size_t max, size_t *len)
{
        /* An address of the family alone: the kernel picks an abstract
         * name that no other socket has (autobind, unix(7)). */
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        socklen_t alen = sizeof a;
        if (bind(s, (struct sockaddr *)&a, sizeof(sa_family_t)) < 0 ||
            getsockname(s, (struct sockaddr *)&a, &alen) < 0)
                return -errno;
        size_t n = alen - offsetof(struct sockaddr_un, sun_path);
        if (alen <= offsetof(struct sockaddr_un, sun_path) || n > max)
                return -ENAMETOOLONG;
        memcpy(name, a.sun_path, n);
        *len = n;
        return 0;
}

bool iom_dgram_name_valid(const void *name, size_t len)
{
        /* Only abstract names: never a file's. */
        return len > 0 && ((const char *)name)[0] == 0;
}

void iom_dgram_unbind(const void *name, size_t len)
{
        (void)name, (void)len; /* abstract names go with their socket */
}
