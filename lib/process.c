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
#include <string.h>
#include <unistd.h>

uint64_t iom_process_start_time(pid_t pid, char *state)
{
        char path[64], buf[1024];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return 0;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        const char *p = strrchr(buf, ')'); /* the command may contain spaces */
        if (!p)
                return 0;
        if (state && p[1] == ' ')
                *state = p[2];
        /* Fields after the command start at 3 (state); start time is 22. */
        unsigned long long t = 0;
        int field = 2;
        for (p++; *p && field < 22; p++)
                if (*p == ' ')
                        field++;
        if (sscanf(p, "%llu", &t) != 1)
                return 0;
        return t;
}

bool iom_process_gone(pid_t pid, uint64_t start_time)
{
        if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH))
                return true;
        /* A zombie is dead although its pid lives on until its parent
         * reaps it, and that parent may be waiting for what the zombie
         * held. */
        char state = 0;
        uint64_t now = iom_process_start_time(pid, &state);
        return state == 'Z' || state == 'X' || (start_time && now && now != start_time); /* pid reused */
}
