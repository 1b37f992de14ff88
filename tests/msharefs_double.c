/* SPDX-License-Identifier: MIT */
/* The msharefs test double: see msharefs_double.h for the rules it keeps. */
#define _GNU_SOURCE
#include "msharefs_double.h"
#include "platform.h"
#include "syscalls.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/ioctl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#define MSHAREFS_MAGIC 0x4d534852

/* The kernel's structures, as the postings define them. */
struct d_create {
        uint64_t where, size, offset;
        uint32_t prot, flags, fd;
};
struct d_info {
        uint64_t start, size;
};
struct d_unmap {
        uint64_t region_offset, size;
};

#define OLD_GET_SIZE       _IOR('x', 0, struct d_info)
#define OLD_SET_SIZE       _IOW('x', 1, struct d_info)
#define OLD_CREATE_MAPPING _IOW('x', 2, struct d_create)
#define OLD_UNMAP          _IOW('x', 3, struct d_unmap)
#define NEW_CREATE_MAPPING _IOW('x', 0, struct d_create)
#define NEW_UNMAP          _IOW('x', 1, struct d_unmap)

/* What the kernel keeps per region, kept in the region file. */
struct d_region {
        uint64_t size;   /* 0: not sized */
        uint64_t start;  /* the older ABI's address */
        int32_t owner;   /* v3: the process that sized it */
        uint32_t mappings; /* CREATE_MAPPINGs done */
};
#define STATE_XATTR "user.msharefs_double"

/* Set once before any fork, so every process of a test sees the same. */
static int d_abi;
static uint64_t d_align;
static char d_dir[PATH_MAX];
static pid_t d_installer;
static pthread_mutex_t d_lock = PTHREAD_MUTEX_INITIALIZER;

const char *msharefs_double_dir(void)
{
        return d_abi ? d_dir : NULL;
}

int msharefs_real_kernel(void)
{
        struct statfs sf;
        return statfs("/sys/fs/mshare", &sf) == 0 && (unsigned long)sf.f_type == MSHAREFS_MAGIC;
}

/* Is fd a region file of the double (not mshare_info)? */
static int is_region(int fd)
{
        char link[64], target[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0 || !d_abi)
                return 0;
        target[n] = 0;
        size_t dl = strlen(d_dir);
        return !strncmp(target, d_dir, dl) && target[dl] == '/' &&
               strncmp(target + dl + 1, "mshare_info", 11) != 0;
}

/* Region state under a lock every process takes (flock on the file) and
 * every thread of this one (d_lock: flock does not tell threads apart). */
static void state_lock(int fd)
{
        pthread_mutex_lock(&d_lock);
        while (flock(fd, LOCK_EX) && errno == EINTR)
                ;
}

static void state_unlock(int fd)
{
        flock(fd, LOCK_UN);
        pthread_mutex_unlock(&d_lock);
}

/* A fork's child has one thread, and d_lock may have been copied held by
 * another (a thread inside an ioctl as the fork happened): it starts with
 * the lock free. The region state needs no repair: it is in the file's
 * extended attributes, which every call writes whole under flock. No
 * prepare handler takes the lock instead: it would run before the
 * library's, which waits for a thread that may be waiting for d_lock. */
static void d_lock_reset_in_child(void)
{
        pthread_mutex_init(&d_lock, NULL);
}

__attribute__((constructor)) static void d_lock_at_fork(void)
{
        pthread_atfork(NULL, NULL, d_lock_reset_in_child);
}

static void state_get(int fd, struct d_region *r)
{
        if (fgetxattr(fd, STATE_XATTR, r, sizeof *r) != (ssize_t)sizeof *r)
                memset(r, 0, sizeof *r);
}

static int state_put(int fd, const struct d_region *r)
{
        return fsetxattr(fd, STATE_XATTR, r, sizeof *r, 0) ? -1 : 0;
}

static int fail(int e)
{
        errno = e;
        return -1;
}

/* Close every descriptor but the n in keep (sorted). */
static void close_all_but(const int *keep, int n)
{
        unsigned lo = 0;
        for (int i = 0; i < n; i++) {
                if ((unsigned)keep[i] > lo)
                        syscall(SYS_close_range, lo, (unsigned)keep[i] - 1, 0);
                lo = (unsigned)keep[i] + 1;
        }
        syscall(SYS_close_range, lo, ~0u, 0);
}

static void owner_lock_path(int region_fd, char *path, size_t cap)
{
        struct stat st;
        fstat(region_fd, &st);
        snprintf(path, cap, "%s/.owner-%llu", d_dir, (unsigned long long)st.st_ino);
}

/*
 * v3: the region's memory goes when its owner exits, however it exits. A
 * watcher process (detached: nobody waits for it) sleeps on the owner's
 * pidfd and then empties the region file, so that every mapping of it
 * faults from then on, as the kernel's unmapped region does. It holds a
 * lock on .owner-INODE until it is done, which msharefs_double_settle
 * waits for: tests learn that the memory is gone without sleeping.
 */
static void watch_owner(int region_fd)
{
        char lock[PATH_MAX + 32];
        int sync[2];
        int pidfd = msharefs_double_watches_owners() ?
                    (int)syscall(SYS_pidfd_open, getpid(), 0) : -1;
        if (pidfd < 0)
                return;
        if (pipe2(sync, O_CLOEXEC)) {
                close(pidfd);
                return;
        }
        owner_lock_path(region_fd, lock, sizeof lock);
        pid_t mid = fork();
        if (mid == 0) {
                if (fork() == 0) {
                        int lfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
                        if (lfd >= 0)
                                flock(lfd, LOCK_EX);
                        if (write(sync[1], "", 1) < 0)
                                _exit(1);
                        /* Hold nothing else open: a test waiting for EOF on
                         * a pipe must not wait for the watcher. */
                        int keep[3] = { pidfd, region_fd, lfd };
                        for (int i = 0; i < 3; i++)
                                for (int j = i + 1; j < 3; j++)
                                        if (keep[j] < keep[i]) {
                                                int t = keep[i];
                                                keep[i] = keep[j];
                                                keep[j] = t;
                                        }
                        close_all_but(keep[0] < 0 ? keep + 1 : keep, keep[0] < 0 ? 2 : 3);
                        struct pollfd p = { .fd = pidfd, .events = POLLIN };
                        while (poll(&p, 1, -1) < 0 && errno == EINTR)
                                ;
                        if (iom_sys_default.ftruncate(region_fd, 0))
                                _exit(1);
                        _exit(0);
                }
                _exit(0);
        }
        close(pidfd);
        close(sync[1]);
        if (mid > 0) {
                while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
                        ;
                char c;
                while (read(sync[0], &c, 1) < 0 && errno == EINTR)
                        ;
        }
        close(sync[0]);
}

int msharefs_double_watches_owners(void)
{
        static int can = -1;
        if (can < 0) {
                int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
                can = fd >= 0;
                if (fd >= 0)
                        close(fd);
        }
        return can;
}

void msharefs_double_settle(int region_fd)
{
        char lock[PATH_MAX + 32];
        owner_lock_path(region_fd, lock, sizeof lock);
        int lfd = open(lock, O_RDONLY | O_CLOEXEC);
        if (lfd < 0)
                return;
        while (flock(lfd, LOCK_SH) && errno == EINTR)
                ;
        close(lfd);
}

/* Size a region once, to a non-zero multiple of the alignment. */
static int set_size(int fd, uint64_t size, uint64_t start)
{
        struct d_region r;
        state_lock(fd);
        state_get(fd, &r);
        int ret = 0;
        if (r.size || !size || size % d_align || (d_abi == 1 && (!start || start % d_align)))
                ret = fail(EINVAL);
        else if (iom_sys_default.ftruncate(fd, (off_t)size))
                ret = -1;
        if (!ret) {
                r.size = size;
                r.start = start;
                r.owner = d_abi == 3 ? getpid() : 0;
                if (state_put(fd, &r))
                        ret = -1;
        }
        state_unlock(fd);
        if (!ret && d_abi == 3)
                watch_owner(fd);
        return ret;
}

static int d_ftruncate(int fd, off_t len)
{
        if (!is_region(fd))
                return iom_sys_default.ftruncate(fd, len);
        if (d_abi == 1) /* sized with SET_SIZE only */
                return fail(EINVAL);
        return set_size(fd, (uint64_t)len, 0);
}

static int create_mapping(int fd, const struct d_create *c)
{
        struct d_region r;
        state_lock(fd);
        state_get(fd, &r);
        long page = sysconf(_SC_PAGESIZE);
        uint64_t off = d_abi == 1 ? c->where - r.start : c->where;
        int ret = 0;
        if (!r.size || (c->flags & (MAP_SHARED | MAP_FIXED)) != (MAP_SHARED | MAP_FIXED) ||
            (d_abi == 1 && c->where < r.start) || off % (uint64_t)page || !c->size ||
            c->size % (uint64_t)page || off > r.size || c->size > r.size - off ||
            (c->prot & ~(uint32_t)(PROT_READ | PROT_WRITE | PROT_EXEC)))
                ret = fail(EINVAL);
        else if (c->fd != UINT32_MAX && d_abi != 3) /* anonymous memory only */
                ret = fail(EINVAL);
        else if (c->fd != UINT32_MAX && fcntl((int)c->fd, F_GETFD) < 0)
                ret = fail(EBADF);
        if (!ret) {
                r.mappings++;
                ret = state_put(fd, &r);
        }
        state_unlock(fd);
        return ret;
}

static int unmap_range(int fd, const struct d_unmap *u)
{
        struct d_region r;
        state_lock(fd);
        state_get(fd, &r);
        long page = sysconf(_SC_PAGESIZE);
        int ret = 0;
        uint64_t off = d_abi == 1 ? u->region_offset - r.start : u->region_offset;
        if (!r.size || off % (uint64_t)page || u->size % (uint64_t)page || off > r.size ||
            u->size > r.size - off)
                ret = fail(EINVAL);
        else if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
                           (off_t)u->size))
                ret = -1;
        state_unlock(fd);
        return ret;
}

static int d_ioctl(int fd, unsigned long req, void *arg)
{
        if (!is_region(fd))
                return iom_sys_default.ioctl(fd, req, arg);
        if (d_abi == 1) {
                switch (req) {
                case OLD_GET_SIZE: {
                        struct d_region r;
                        state_lock(fd);
                        state_get(fd, &r);
                        state_unlock(fd);
                        *(struct d_info *)arg = (struct d_info){ .start = r.start, .size = r.size };
                        return 0;
                }
                case OLD_SET_SIZE: {
                        const struct d_info *i = arg;
                        return set_size(fd, i->size, i->start);
                }
                case OLD_CREATE_MAPPING:
                        return create_mapping(fd, arg);
                case OLD_UNMAP:
                        return unmap_range(fd, arg);
                }
                return fail(ENOTTY);
        }
        switch (req) {
        case NEW_CREATE_MAPPING:
                return create_mapping(fd, arg);
        case NEW_UNMAP:
                return unmap_range(fd, arg);
        }
        return fail(ENOTTY);
}

/* A region is mapped whole, shared, and in the older ABI at its address. */
static void *d_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
        if (fd < 0 || (flags & MAP_ANONYMOUS) || !is_region(fd))
                return iom_sys_default.mmap(addr, len, prot, flags, fd, off);
        struct d_region r;
        state_lock(fd);
        state_get(fd, &r);
        state_unlock(fd);
        if (!r.size || off || len != r.size || !(flags & MAP_SHARED) ||
            (d_abi == 1 && ((uint64_t)(uintptr_t)addr != r.start ||
                            !(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))))) {
                errno = EINVAL;
                return MAP_FAILED;
        }
        return iom_sys_default.mmap(addr, len, prot, flags, fd, off);
}

/* A region's size is the kernel's record, whatever became of its memory. */
static int d_fstat(int fd, struct stat *st)
{
        if (iom_sys_default.fstat(fd, st))
                return -1;
        if (is_region(fd)) {
                struct d_region r;
                state_lock(fd);
                state_get(fd, &r);
                state_unlock(fd);
                st->st_size = (off_t)r.size;
        }
        return 0;
}

static int is_dir(const char *path)
{
        char a[PATH_MAX], b[PATH_MAX];
        return realpath(path, a) && realpath(d_dir, b) && !strcmp(a, b);
}

/* statfs of the double's directory and regions: msharefs (its magic, as
 * the platform layer reads it), with no size limit. */
static int d_statfs(const char *path, struct iom_fsinfo *sf)
{
        if (iom_sys_default.statfs(path, sf))
                return -1;
        if (is_dir(path)) {
                sf->kind = IOM_FS_MSHARE;
                sf->blocks = sf->bytes_avail = 0;
        }
        return 0;
}

static int d_fstatfs(int fd, struct iom_fsinfo *sf)
{
        if (iom_sys_default.fstatfs(fd, sf))
                return -1;
        if (is_region(fd)) {
                sf->kind = IOM_FS_MSHARE;
                sf->blocks = sf->bytes_avail = 0;
        }
        return 0;
}

/* msharefs has no holes to punch or blocks to allocate through the file. */
static int d_fallocate(int fd, int mode, off_t off, off_t len)
{
        if (is_region(fd))
                return fail(EOPNOTSUPP);
        return iom_sys_default.fallocate(fd, mode, off, len);
}

static void remove_dir(void)
{
        if (getpid() != d_installer || !d_dir[0])
                return;
        DIR *d = opendir(d_dir);
        struct dirent *e;
        while (d && (e = readdir(d))) {
                if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2])))
                        continue;
                char p[PATH_MAX + 256];
                snprintf(p, sizeof p, "%s/%s", d_dir, e->d_name);
                unlink(p);
        }
        if (d)
                closedir(d);
        rmdir(d_dir);
}

int msharefs_double_install(int abi, uint64_t align)
{
        if (abi < 1 || abi > 3 || !align || (align & (align - 1)))
                return -EINVAL;
        if (!d_dir[0]) {
                snprintf(d_dir, sizeof d_dir, "/dev/shm/msharefs-double-XXXXXX");
                if (!mkdtemp(d_dir)) {
                        d_dir[0] = 0;
                        return -errno;
                }
                d_installer = getpid();
                atexit(remove_dir);
        }
        char info[PATH_MAX + 16];
        snprintf(info, sizeof info, "%s/mshare_info", d_dir);
        FILE *fp = fopen(info, "w");
        if (!fp)
                return -errno;
        fprintf(fp, "%llu\n", (unsigned long long)align);
        fclose(fp);
        d_abi = abi;
        d_align = align;
        setenv("IOMEM_MSHARE_DIR", d_dir, 1);
        iom_sys.statfs = d_statfs;
        iom_sys.fstatfs = d_fstatfs;
        iom_sys.ftruncate = d_ftruncate;
        iom_sys.fallocate = d_fallocate;
        iom_sys.ioctl = d_ioctl;
        iom_sys.mmap = d_mmap;
        iom_sys.fstat = d_fstat;
        return 0;
}

uint64_t msharefs_double_alignment(void)
{
        return d_abi ? d_align : 0;
}

void msharefs_double_uninstall(void)
{
        iom_sys.statfs = iom_sys_default.statfs;
        iom_sys.fstatfs = iom_sys_default.fstatfs;
        iom_sys.ftruncate = iom_sys_default.ftruncate;
        iom_sys.fallocate = iom_sys_default.fallocate;
        iom_sys.ioctl = iom_sys_default.ioctl;
        iom_sys.mmap = iom_sys_default.mmap;
        iom_sys.fstat = iom_sys_default.fstat;
        d_abi = 0;
}

__attribute__((constructor)) static void install_from_env(void)
{
        const char *abi = getenv("IOMEM_MSHARE_DOUBLE_ABI");
        if (!abi || !*abi)
                return;
        if (msharefs_real_kernel()) {
                fprintf(stderr, "msharefs double: /sys/fs/mshare is a real msharefs; "
                                "testing the kernel, not the double\n");
                return;
        }
        const char *a = getenv("IOMEM_MSHARE_DOUBLE_ALIGN");
        uint64_t align = a && *a ? strtoull(a, NULL, 0) : UINT64_C(1) << 30;
        int n = (abi[0] == 'v' ? abi[1] : abi[0]) - '0';
        int err = msharefs_double_install(n, align);
        if (err) {
                fprintf(stderr, "msharefs double: cannot install ABI %s: %s\n", abi, strerror(-err));
                exit(1);
        }
}
