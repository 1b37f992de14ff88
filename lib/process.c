/* SPDX-License-Identifier: MIT */
/*
 * Is a process that recorded itself in shared state still there? Shared
 * state names its parties by pid and start time, so that a pid the kernel
 * has given to a new process is not taken for the one that died.
 */
#define _GNU_SOURCE
#include "internal.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Fields of /proc/PID/stat: the state letter, the thread count and the
 * start time; false when the process is not there. */
static bool read_stat(pid_t pid, char *state, long *threads, uint64_t *start_time)
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

uint64_t iom_process_start_time(pid_t pid, char *state)
{
        char st = 0;
        long threads;
        uint64_t t;
        if (!read_stat(pid, &st, &threads, &t))
                return 0;
        if (state)
                *state = st;
        return t;
}

bool iom_process_gone(pid_t pid, uint64_t start_time)
{
        if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH))
                return true;
        char state = 0;
        long threads = 0;
        uint64_t now = 0;
        if (!read_stat(pid, &state, &threads, &now))
                return false; /* cannot tell: counted alive */
        /* A zombie is dead although its pid lives on until its parent
         * reaps it, and that parent may be waiting for what the zombie
         * held; but a main thread that ended leaves its process a zombie
         * leader while other threads run on. */
        if ((state == 'Z' && threads <= 1) || state == 'X')
                return true;
        /* The pid now another process's: compared in the low 32 bits, as
         * far as a lock word keeps. */
        return start_time && now && (uint32_t)now != (uint32_t)start_time;
}
