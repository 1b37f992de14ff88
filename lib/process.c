/* SPDX-License-Identifier: MIT */
/*
 * Is a process that recorded itself in shared state still there? Shared
 * state names its parties by pid and start time, so that a pid the kernel
 * has given to a new process is not taken for the one that died.
 */
#include "internal.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

uint64_t iom_process_start_time(pid_t pid, char *state)
{
        char st = 0;
        long threads;
        uint64_t t;
        if (!iom_process_stat(pid, &st, &threads, &t))
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
        if (!iom_process_stat(pid, &state, &threads, &now))
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
