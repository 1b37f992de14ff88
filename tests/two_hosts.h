/* SPDX-License-Identifier: MIT */
/*
 * Two hosts on one machine, for the fabric tests and benchmark: two
 * processes, each in a network namespace of its own, joined by a veth
 * pair (EXPORTER_IP and IMPORTER_IP) that two_hosts makes and that goes
 * with them. Needs root (CLONE_NEWNET) and iproute2's ip.
 */
#ifndef IOMEM_TWO_HOSTS_H
#define IOMEM_TWO_HOSTS_H

#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define EXPORTER_IP "10.77.0.1"
#define IMPORTER_IP "10.77.0.2"
/* Meson's exit status of a skipped test. */
#define TWO_HOSTS_SKIP 77

/* A child's exit status, or 128+signal. */
static inline int two_hosts_wait(pid_t pid)
{
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR)
                        return -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The two hosts talk over two pipes (which no namespace separates): each
 * role reads from in and writes to out. */
struct link {
        int in, out;
        pid_t peer; /* the other role's process */
};

static inline int say(struct link *l, const void *buf, size_t len)
{
        return write(l->out, buf, len) == (ssize_t)len ? 0 : -1;
}

static inline int hear(struct link *l, void *buf, size_t len)
{
        size_t got = 0;
        while (got < len) {
                ssize_t n = read(l->in, (char *)buf + got, len - got);
                if (n <= 0)
                        return -1;
                got += (size_t)n;
        }
        return 0;
}

typedef int (*role_fn)(struct link *l, void *arg);

static inline bool run_quiet(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline bool run_quiet(const char *fmt, ...)
{
        char cmd[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cmd, sizeof cmd, fmt, ap);
        va_end(ap);
        char full[600];
        snprintf(full, sizeof full, "%s >/dev/null 2>&1", cmd);
        return system(full) == 0;
}

/* This side of the veth pair up in the role's own namespace. */
static inline int bring_up(const char *dev, const char *ip)
{
        return run_quiet("ip link set lo up && ip addr add %s/24 dev %s && ip link set %s up", ip, dev, dev)
                       ? 0
                       : -1;
}

/* Run exporter and importer in two namespaces joined by a veth pair;
 * their exit statuses (or 128+signal) go to status[0] and status[1]. A
 * role still running after deadline_s seconds (0: no deadline) dies of
 * SIGALRM. Returns 0, or TWO_HOSTS_SKIP saying why the hosts cannot be
 * made here. */
static inline int two_hosts(role_fn exporter, role_fn importer, void *arg, unsigned deadline_s, int status[2])
{
        int ready[2] = { -1, -1 }, go[2][2] = { { -1, -1 }, { -1, -1 } }, a2b[2] = { -1, -1 }, b2a[2] = { -1, -1 };
        int *fds[] = { &ready[0], &ready[1], &go[0][0], &go[0][1], &go[1][0], &go[1][1],
                       &a2b[0], &a2b[1], &b2a[0], &b2a[1] };
        enum { NFDS = sizeof fds / sizeof fds[0] };
        if (pipe(ready) || pipe(go[0]) || pipe(go[1]) || pipe(a2b) || pipe(b2a)) {
                for (int k = 0; k < NFDS; k++)
                        if (*fds[k] >= 0)
                                close(*fds[k]);
                return -1;
        }
        const char *ip[2] = { EXPORTER_IP, IMPORTER_IP };
        char dev[2][16];
        snprintf(dev[0], sizeof dev[0], "iomA%d", (int)getpid());
        snprintf(dev[1], sizeof dev[1], "iomB%d", (int)getpid());
        pid_t pid[2];
        for (int i = 0; i < 2; i++) {
                fflush(NULL); /* a child would write what is buffered again */
                if ((pid[i] = fork()) < 0) {
                        /* The first child reads the end of its go pipe. */
                        for (int k = 0; k < NFDS; k++)
                                close(*fds[k]);
                        if (i)
                                two_hosts_wait(pid[0]);
                        return -1;
                }
                if (pid[i] == 0) {
                        /* A role dies with its parent, or of its own alarm
                         * when stuck (the handler a test inherits from
                         * Check would kill the whole test). */
                        prctl(PR_SET_PDEATHSIG, SIGKILL);
                        signal(SIGALRM, SIG_DFL);
                        alarm(deadline_s);
                        char c = unshare(CLONE_NEWNET) ? 'S' : 'R';
                        if (write(ready[1], &c, 1) != 1 || c == 'S' || read(go[i][0], &c, 1) != 1 || c != 'g')
                                _exit(c == 'S' ? TWO_HOSTS_SKIP : 0);
                        if (bring_up(dev[i], ip[i])) {
                                fprintf(stderr, "cannot bring %s up as %s\n", dev[i], ip[i]);
                                _exit(3);
                        }
                        struct link l = { i ? a2b[0] : b2a[0], i ? b2a[1] : a2b[1], 0 };
                        /* Only its own ends: a role that ends is an end of
                         * file to the other, not a hang. */
                        close(i ? a2b[1] : b2a[1]);
                        close(i ? b2a[0] : a2b[0]);
                        if (read(go[i][0], &l.peer, sizeof l.peer) != sizeof l.peer)
                                _exit(3);
                        int status = (i ? importer : exporter)(&l, arg);
                        fflush(NULL);
                        _exit(status);
                }
        }
        char c[2] = { 0, 0 };
        bool made = read(ready[0], &c[0], 1) == 1 && read(ready[0], &c[1], 1) == 1 && c[0] == 'R' && c[1] == 'R';
        int skip = 0;
        if (!made) {
                printf("SKIP: fabric: cannot make a network namespace here (unshare: CLONE_NEWNET)\n");
                skip = TWO_HOSTS_SKIP;
        } else if (!run_quiet("ip link add %s type veth peer name %s", dev[0], dev[1]) ||
                   !run_quiet("ip link set %s netns %d", dev[0], (int)pid[0]) ||
                   !run_quiet("ip link set %s netns %d", dev[1], (int)pid[1])) {
                printf("SKIP: fabric: cannot join two namespaces with a veth pair (ip link add ... "
                       "type veth: iproute2 missing, or no veth here)\n");
                run_quiet("ip link del %s", dev[0]);
                skip = TWO_HOSTS_SKIP;
        }
        for (int i = 0; i < 2; i++) {
                if (write(go[i][1], skip ? "x" : "g", 1) != 1 ||
                    (!skip && write(go[i][1], &pid[1 - i], sizeof pid[1 - i]) != sizeof pid[1 - i]))
                        skip = -1;
        }
        /* The roles' pipes first: what one leaves is an end of file to
         * the other only when nobody else holds them. */
        for (int k = 6; k < NFDS; k++)
                close(*fds[k]);
        for (int i = 0; i < 2; i++)
                status[i] = two_hosts_wait(pid[i]);
        for (int k = 0; k < 6; k++)
                close(*fds[k]);
        return skip;
}

#endif
