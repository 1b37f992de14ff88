/* SPDX-License-Identifier: MIT */
/*
 * mshare: page tables shared between processes through msharefs. The
 * filesystem is not in mainline Linux; this version finds out whether the
 * kernel has it and says how to get it, and does not open objects yet.
 */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/statfs.h>

#define MSHAREFS_MAGIC 0x4d534852 /* "MSHR" */

/* IOMEM_MSHARE_DIR, or where the mshare patches say to mount it. */
static const char *mshare_dir(void)
{
        const char *d = getenv("IOMEM_MSHARE_DIR");
        return d && *d ? d : "/sys/fs/mshare";
}

static int mshare_probe(const char **why)
{
        static __thread char reason[320];
        struct statfs sf;
        const char *dir = mshare_dir();
        if (statfs(dir, &sf) == 0 && (unsigned long)sf.f_type == MSHAREFS_MAGIC) {
                *why = "the mshare backend is not implemented in this version";
                return -ENOTSUP;
        }
        snprintf(reason, sizeof reason,
                 "no msharefs mounted at %s: it needs a kernel with the mshare patches, then "
                 "`mount -t msharefs msharefs %s`", dir, dir);
        *why = reason;
        return 0;
}

const struct iom_backend iom_backend_mshare = {
        .name = "mshare",
        .caps = IOMEM_CAP_NAMED | IOMEM_CAP_PTSHARE | IOMEM_CAP_RESIZE,
        .probe = mshare_probe,
        .open = iom_no_open,
        .open_fds = iom_no_open_fds,
        .unlink = iom_no_unlink,
};
