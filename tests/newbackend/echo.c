/* SPDX-License-Identifier: MIT */
/*
 * A sixth backend, for tests/check-new-backend.sh only: "echo:" objects are
 * empty and can do nothing but say so. It fills the slots of a backend
 * descriptor and two of its operations; every other operation is left
 * out, for the core's stubs to answer -ENOTSUP.
 */
#include "internal.h"

#include <fcntl.h>
#include <unistd.h>

struct echo_state {
        int opened; /* where the core put the private state */
};

static int echo_probe(const char **why)
{
        (void)why;
        return 1;
}

static int echo_open(struct iomem *f, const char *rest, unsigned flags,
                     const struct iomem_opts *o)
{
        (void)rest, (void)flags, (void)o;
        struct echo_state *st = f->priv;
        f->data_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (f->data_fd < 0)
                return iom_fail(f->name, -errno, "cannot open /dev/null");
        st->opened = 1;
        return 0;
}

static int echo_stat(struct iomem *f, struct iomem_stat *st)
{
        const struct echo_state *s = f->priv;
        st->size = (size_t)s->opened; /* 1: its state came with the object */
        return 0;
}

static void echo_close(struct iomem *f)
{
        close(f->data_fd);
}

static const struct iom_object_ops echo_ops = {
        .size = sizeof(struct iom_object_ops),
        .stat = echo_stat,
        .close = echo_close,
};

const struct iom_backend iom_backend_echo = {
        .name = "echo",
        .caps = IOMEM_CAP_NAMED,
        .priv_size = sizeof(struct echo_state),
        .ops = &echo_ops,
        .probe = echo_probe,
        .open = echo_open,
        .open_fds = iom_no_open_fds,
        .unlink = iom_no_unlink,
};
