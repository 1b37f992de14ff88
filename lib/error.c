/* SPDX-License-Identifier: MIT */
/* Per-thread error messages and the optional debug log. */
#include "internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char message[IOM_MESSAGE_MAX];
/* Set by iom_fail, cleared at the public boundary: tells a fresh cause
 * from a stale one. */
static _Thread_local bool pending;

IOM_PUBLIC const char *iomem_errormsg(void)
{
        return message[0] ? message : "no error";
}

static bool debug_enabled(void)
{
        static int enabled = -1;
        int e = __atomic_load_n(&enabled, __ATOMIC_RELAXED);
        if (e < 0) {
                const char *v = getenv("IOMEM_LOG");
                e = v && strcmp(v, "debug") == 0;
                __atomic_store_n(&enabled, e, __ATOMIC_RELAXED);
        }
        return e;
}

void iom_debug(const char *fmt, ...)
{
        if (!debug_enabled())
                return;
        char line[600];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        fprintf(stderr, "libiomem: %s\n", line);
}

int iom_fail(const char *obj, int err, const char *fmt, ...)
{
        int n = 0;
        if (obj)
                n = snprintf(message, sizeof message, "%s: ", obj);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(message + n, sizeof message - (size_t)n, fmt, ap);
        va_end(ap);
        pending = true;
        iom_debug("%s", message);
        return err;
}

void iom_error_save(struct iom_error_saved *s)
{
        memcpy(s->message, message, sizeof s->message);
        s->pending = pending;
}

void iom_error_restore(const struct iom_error_saved *s)
{
        memcpy(message, s->message, sizeof message);
        pending = s->pending;
}

ssize_t iom_inner_result(ssize_t r)
{
        if (r < 0)
                pending = true;
        return r;
}

ssize_t iom_result(const char *op, ssize_t r)
{
        if (r < 0) {
                char cause[sizeof message];
                if (pending)
                        memcpy(cause, message, sizeof cause);
                else
                        snprintf(cause, sizeof cause, "%s", strerror((int)-r));
                snprintf(message, sizeof message, "%s: %s", op, cause);
        }
        pending = false;
        return r;
}
