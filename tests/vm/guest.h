/* SPDX-License-Identifier: MIT */
/*
 * Reporting for the programs that run inside a VM-tier guest. Each check
 * runs in a child process, so that a signal (SIGBUS above all) fails that
 * check instead of ending the program. Results are single lines on the
 * serial console, which tests/vm/run.sh parses:
 *
 *   PASS: NAME: what was measured
 *   FAIL: NAME: why
 *   SKIP: NAME: what is missing
 *
 * Lines starting with two spaces are details. It also has the checks'
 * shared probe of iomem_persist under a seccomp filter.
 */
#ifndef IOMEM_VM_GUEST_H
#define IOMEM_VM_GUEST_H

#define _GNU_SOURCE
#include <errno.h>
#include <iomem.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdbool.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum { GUEST_PASS = 0, GUEST_FAIL = 1, GUEST_SKIP = 77 };

static const char *guest_check_name = "";
static int guest_failed, guest_passed, guest_skipped;

/* Print a result line for the running check and leave its process. */
__attribute__((format(printf, 2, 3), noreturn)) static void guest_end(int status, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        printf("%s: %s: ", status == GUEST_PASS ? "PASS" : status == GUEST_SKIP ? "SKIP" : "FAIL",
               guest_check_name);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
        _exit(status);
}

__attribute__((format(printf, 1, 2), unused)) static void guest_note(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        printf("  ");
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
}

/* Fail the running check unless cond holds; fmt says what was seen. */
#define REQUIRE(cond, fmt, ...)                                                          \
        do {                                                                             \
                if (!(cond))                                                             \
                        guest_end(GUEST_FAIL, "line %d: %s: " fmt, __LINE__, #cond,       \
                                  ##__VA_ARGS__);                                        \
        } while (0)

/* Run fn(arg) as the check called name in a child; count its result. */
static void guest_run(const char *name, void (*fn)(const void *), const void *arg)
{
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
                printf("FAIL: %s: fork: %s\n", name, strerror(errno));
                guest_failed++;
                return;
        }
        if (pid == 0) {
                guest_check_name = name;
                fn(arg);
                guest_end(GUEST_FAIL, "the check ended without a result");
        }
        int st;
        while (waitpid(pid, &st, 0) < 0)
                if (errno != EINTR) {
                        printf("FAIL: %s: waitpid: %s\n", name, strerror(errno));
                        guest_failed++;
                        return;
                }
        if (WIFSIGNALED(st)) {
                printf("FAIL: %s: killed by signal %d (%s)\n", name, WTERMSIG(st),
                       strsignal(WTERMSIG(st)));
                guest_failed++;
        } else if (WEXITSTATUS(st) == GUEST_PASS) {
                guest_passed++;
        } else if (WEXITSTATUS(st) == GUEST_SKIP) {
                guest_skipped++;
        } else {
                guest_failed++;
        }
        fflush(stdout);
}

/* The program's exit status: failure if any check failed, skip if none ran. */
static int guest_status(void)
{
        printf("  %d passed, %d failed, %d skipped\n", guest_passed, guest_failed, guest_skipped);
        fflush(stdout);
        if (guest_failed)
                return GUEST_FAIL;
        return guest_passed ? GUEST_PASS : GUEST_SKIP;
}

/* Allow the calling process no system call but exit and exit_group from
 * now on: any other kills it with SIGSYS. (A seccomp filter, not strict
 * mode, which also turns off the TSC that clock_gettime reads.) */
static int guest_forbid_syscalls(void)
{
        struct sock_filter only_exit[] = {
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit, 2, 0),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit_group, 1, 0),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = { sizeof only_exit / sizeof only_exit[0], only_exit };
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -1;
        return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog);
}

/* Run iomem_persist(f, off, len) in a child that may make no system call
 * (guest_forbid_syscalls): 0 when it ran without one, -1 when the kernel
 * killed the child for making one, else what went wrong. The child's
 * first persist, before the filter, does what any first call after fork
 * does; then it stores into mem, and with pwrite_first writes 64 bytes
 * with iomem_pwrite too (at off + 8 KiB). */
__attribute__((unused)) static int guest_persist_without_syscalls(struct iomem *f, size_t off, void *mem,
                                                                     size_t len, bool pwrite_first)
{
        pid_t pid = fork();
        if (pid == 0) {
                char b[64] = { 'w' };
                if (iomem_persist(f, off, len))
                        _exit(2);
                memset(mem, 'p', len);
                if (pwrite_first && iomem_pwrite(f, b, sizeof b, off + 8192) != sizeof b)
                        _exit(6);
                if (guest_forbid_syscalls() < 0)
                        _exit(3);
                _exit(iomem_persist(f, off, len) ? 4 : 0);
        }
        int st;
        if (pid < 0 || waitpid(pid, &st, 0) != pid)
                return 5;
        if (WIFSIGNALED(st))
                return WTERMSIG(st) == SIGSYS ? -1 : 100 + WTERMSIG(st);
        return WEXITSTATUS(st);
}

#endif /* IOMEM_VM_GUEST_H */
