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
 * Lines starting with two spaces are details.
 */
#ifndef IOMEM_VM_GUEST_H
#define IOMEM_VM_GUEST_H

#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

#endif /* IOMEM_VM_GUEST_H */
