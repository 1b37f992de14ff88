/* SPDX-License-Identifier: MIT */
#define _GNU_SOURCE
#include "syscalls.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

/* fcntl is variadic; the table wants a fixed signature. */
static int fcntl_int(int fd, int cmd, int arg) { return fcntl(fd, cmd, arg); }

const struct iom_syscalls iom_sys_default = {
        .mmap = mmap,
        .munmap = munmap,
        .ftruncate = ftruncate,
        .fallocate = fallocate,
        .memfd_create = memfd_create,
        .shm_open = shm_open,
        .shm_unlink = shm_unlink,
        .pread = pread,
        .pwrite = pwrite,
        .writev = writev,
        .sendmsg = sendmsg,
        .recvmsg = recvmsg,
        .fstat = fstat,
        .fstatfs = fstatfs,
        .fcntl = fcntl_int,
        .flock = flock,
        .madvise = madvise,
};

struct iom_syscalls iom_sys = iom_sys_default;
