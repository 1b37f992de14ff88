/* SPDX-License-Identifier: MIT */
/*
 * Wired memory (iomem_opts_set_wired): what a failed mlock(2) means, in
 * the terms a user can act on, RLIMIT_MEMLOCK and `ulimit -l`.
 */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

int iom_mlock_failure(const char *obj, int e, size_t len)
{
        struct rlimit rl;
        char limit[64] = "unknown";
        if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
                if (rl.rlim_cur == RLIM_INFINITY)
                        snprintf(limit, sizeof limit, "unlimited");
                else
                        snprintf(limit, sizeof limit, "%llu bytes", (unsigned long long)rl.rlim_cur);
        }
        if (e == EPERM)
                return iom_fail(obj, -EPERM, "cannot lock %zu bytes in memory: RLIMIT_MEMLOCK is %s and "
                                "the process may not lock memory beyond it (raise it with `ulimit -l` "
                                "or setrlimit(2), or give the process CAP_IPC_LOCK)", len, limit);
        if (e == ENOMEM || e == EAGAIN)
                return iom_fail(obj, -ENOMEM, "cannot lock %zu more bytes in memory: that would pass "
                                "RLIMIT_MEMLOCK (%s, counting what the process has locked already; "
                                "raise it with `ulimit -l` or setrlimit(2), or give the process "
                                "CAP_IPC_LOCK), or memory is short", len, limit);
        return iom_fail(obj, -e, "cannot lock %zu bytes in memory: %s", len, strerror(e));
}
