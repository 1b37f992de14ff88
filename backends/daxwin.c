/* SPDX-License-Identifier: MIT */
/* dax: a chunked mapping window over ordinary files. Registered, not
 * implemented yet. */
#include "internal.h"

static int dax_probe(const char **why)
{
        *why = "the dax backend is not implemented in this version";
        return -ENOTSUP;
}

const struct iom_backend iom_backend_dax = {
        .name = "dax",
        .caps = IOMEM_CAP_NAMED | IOMEM_CAP_DAX | IOMEM_CAP_RESIZE,
        .probe = dax_probe,
        .open = iom_no_open,
        .open_fds = iom_no_open_fds,
        .unlink = iom_no_unlink,
};
