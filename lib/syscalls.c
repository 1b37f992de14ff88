/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "syscalls.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

/* fcntl is variadic; the table wants a fixed signature. */
static int fcntl_int(int fd, int cmd, int arg) { return fcntl(fd, cmd, arg); }
/* open is variadic too. */
static int open_mode(const char *path, int flags, mode_t mode) { return open(path, flags, mode); }
/* ...and so is ioctl. */
static int ioctl_ptr(int fd, unsigned long req, void *arg) { return ioctl(fd, req, arg); }

/* mlock and munlock as the kernel has them: sanitizers replace libc's
 * with calls that lock nothing, and locking is what is asked. */
static int mlock_raw(const void *addr, size_t len)
{
        return (int)syscall(SYS_mlock, addr, len);
}

static int munlock_raw(const void *addr, size_t len)
{
        return (int)syscall(SYS_munlock, addr, len);
}

/* The table libc provides; iom_sys starts as a copy of it (C wants a
 * constant initializer for each, not one object copied into the other). */
#define LIBC_SYSCALLS                     \
        {                                 \
                .mmap = mmap,             \
                .munmap = munmap,         \
                .ftruncate = ftruncate,   \
                .fallocate = fallocate,   \
                .memfd_create = memfd_create, \
                .shm_open = shm_open,     \
                .shm_unlink = shm_unlink, \
                .pread = pread,           \
                .pwrite = pwrite,         \
                .writev = writev,         \
                .splice = splice,         \
                .sendmsg = sendmsg,       \
                .recvmsg = recvmsg,       \
                .fstat = fstat,           \
                .fstatfs = fstatfs,       \
                .fcntl = fcntl_int,       \
                .flock = flock,           \
                .madvise = madvise,       \
                .open = open_mode,        \
                .unlink = unlink,         \
                .lseek = lseek,           \
                .fdatasync = fdatasync,   \
                .statx = statx,           \
                .statfs = statfs,         \
                .ioctl = ioctl_ptr,       \
                .process_vm_readv = process_vm_readv, \
                .mlock = mlock_raw,               \
                .munlock = munlock_raw,           \
                .msync = msync,                   \
        }

const struct iom_syscalls iom_sys_default = LIBC_SYSCALLS;

struct iom_syscalls iom_sys = LIBC_SYSCALLS;
