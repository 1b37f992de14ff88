/* SPDX-License-Identifier: MIT */
/*
 * Every system call the library makes that can fail for reasons outside
 * its control goes through this table (like SQLite's xSetSystemCall), so
 * tests can make any of them fail on demand: ENOSPC, ENOMEM, EINTR, short
 * transfers. Entries follow the libc conventions (-1 and errno). The
 * platform layer (platform.h) fills the table in; entries the system
 * lacks fail with ENOSYS, and their arguments are in portable types.
 */
#ifndef IOMEM_SYSCALLS_H
#define IOMEM_SYSCALLS_H

#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

struct iom_fsinfo; /* platform.h */

struct iom_syscalls {
        void *(*mmap)(void *addr, size_t len, int prot, int flags, int fd, off_t off);
        int (*munmap)(void *addr, size_t len);
        int (*ftruncate)(int fd, off_t len);
        int (*fallocate)(int fd, int mode, off_t off, off_t len); /* IOM_FALLOC_* */
        int (*memfd_create)(const char *name, unsigned flags);
        int (*shm_open)(const char *name, int oflag, mode_t mode);
        int (*shm_unlink)(const char *name);
        ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
        ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
        ssize_t (*writev)(int fd, const struct iovec *iov, int cnt);
        ssize_t (*splice)(int in, int64_t *in_off, int out, int64_t *out_off, size_t len,
                          unsigned flags); /* IOM_SPLICE_* */
        ssize_t (*sendmsg)(int fd, const struct msghdr *msg, int flags);
        ssize_t (*recvmsg)(int fd, struct msghdr *msg, int flags);
        int (*fstat)(int fd, struct stat *st);
        int (*fstatfs)(int fd, struct iom_fsinfo *st);
        int (*fcntl)(int fd, int cmd, int arg);
        int (*flock)(int fd, int op);
        int (*madvise)(void *addr, size_t len, int advice); /* the system's MADV_* */
        int (*open)(const char *path, int flags, mode_t mode);
        int (*unlink)(const char *path);
        off_t (*lseek)(int fd, off_t off, int whence);
        int (*fdatasync)(int fd);
        int (*statfs)(const char *path, struct iom_fsinfo *st);
        int (*ioctl)(int fd, unsigned long req, void *arg);
        ssize_t (*process_vm_readv)(pid_t pid, const struct iovec *local, unsigned long nlocal,
                                    const struct iovec *remote, unsigned long nremote,
                                    unsigned long flags);
        int (*mlock)(const void *addr, size_t len);
        int (*munlock)(const void *addr, size_t len);
        int (*msync)(void *addr, size_t len, int flags);
};

extern struct iom_syscalls iom_sys;
/* The table as libc provides it (tests restore from this). */
extern const struct iom_syscalls iom_sys_default;

#endif /* IOMEM_SYSCALLS_H */
