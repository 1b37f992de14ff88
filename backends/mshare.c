/* SPDX-License-Identifier: MIT */
/* mshare: msharefs page-table sharing. Registered, not implemented yet. */
#include "internal.h"

static int mshare_probe(const char **why)
{
        *why = "the mshare backend is not implemented in this version";
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
