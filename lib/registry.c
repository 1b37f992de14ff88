/* SPDX-License-Identifier: MIT */
/*
 * The backends compiled into this build (like sqlite3_os_init's table),
 * URI parsing and iomem_backends().
 */
#include "internal.h"
#include "config.h"

#include <stdlib.h>
#include <string.h>

/* The build lists the backends (backends/meson.build) in config.h:
 * IOMEM_BACKENDS_BUILT as X(name) for each one compiled in, whose
 * descriptor is iom_backend_<name>, and IOMEM_BACKENDS_KNOWN as the names
 * of all of them, built or not. */
#define X(name) extern const struct iom_backend iom_backend_##name;
IOMEM_BACKENDS_BUILT
#undef X

static const struct iom_backend *const backends[] = {
#define X(name) &iom_backend_##name,
        IOMEM_BACKENDS_BUILT
#undef X
        NULL, /* a build may have none */
};
#define NBACKENDS (sizeof backends / sizeof backends[0] - 1)

static const char *const known[] = { IOMEM_BACKENDS_KNOWN };

unsigned iom_platform_caps(unsigned caps)
{
        if (!iom_platform_allocation_reserves)
                caps &= ~IOMEM_CAP_RESERVED;
        if (!iom_platform_huge_pages)
                caps &= ~IOMEM_CAP_HUGEPAGE;
        return caps;
}

const struct iom_backend *iom_backend_find(const char *name, size_t len)
{
        for (size_t i = 0; i < NBACKENDS; i++)
                if (strlen(backends[i]->name) == len && !memcmp(backends[i]->name, name, len))
                        return backends[i];
        return NULL;
}

int iom_backend_lookup(const char *name, size_t len, const char *obj, const struct iom_backend **out)
{
        const struct iom_backend *b = iom_backend_find(name, len);
        if (b) {
                const char *why = NULL;
                int usable = b->probe(&why);
                if (usable != 1)
                        return iom_fail(obj, usable < 0 ? usable : -ENODEV,
                                        "backend %s is not usable: %s", b->name, why);
                *out = b;
                return 0;
        }
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
                if (strlen(known[i]) == len && !memcmp(known[i], name, len))
                        return iom_fail(obj, -ENOTSUP, "backend %s was left out of this build",
                                        known[i]);
        return iom_fail(obj, -EPROTONOSUPPORT, "unknown backend \"%.*s\"", (int)len, name);
}

int iom_backend_for_uri(const char *uri, const struct iom_backend **b, const char **rest)
{
        const char *colon = strchr(uri, ':');
        if (colon) {
                *rest = colon + 1;
                return iom_backend_lookup(uri, (size_t)(colon - uri), uri, b);
        }
        const char *def = getenv("IOMEM_BACKEND");
        if (!def || !*def) /* memfd where it is built, shm elsewhere (API.md) */
                def = iom_backend_find("memfd", 5) ? "memfd" : "shm";
        *rest = uri;
        return iom_backend_lookup(def, strlen(def), uri, b);
}

IOM_PUBLIC ssize_t iomem_backends(struct iomem_backend_info *out, size_t n)
{
        if (!out && n)
                return iom_result(__func__, iom_fail(NULL, -EINVAL, "out is NULL but n is %zu", n));
        for (size_t i = 0; i < NBACKENDS && i < n; i++) {
                const char *why = NULL;
                int ok = backends[i]->probe(&why) == 1;
                out[i] = (struct iomem_backend_info){
                        .name = backends[i]->name,
                        .caps = iom_platform_caps(backends[i]->caps),
                        .available = ok,
                        .why = ok ? NULL : why,
                };
        }
        return (ssize_t)NBACKENDS;
}
