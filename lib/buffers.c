/* SPDX-License-Identifier: MIT */
/*
 * The memory of an acquired range as one array of buffers, for the parts
 * of the library that hand it to someone else: a channel's slots, an
 * asynchronous transfer's kernel buffers, a fabric registration.
 */
#include "internal.h"

#include <stdlib.h>

/* retrieve's or borrow's entries for the range, in an array grown until
 * they cover it. */
static ssize_t all_of(struct iomem *f, size_t off, size_t len, size_t cap, bool borrow, struct iovec **out)
{
        /* bufcount is only a first guess: on a dax: file whose blocks are
         * holes it counts the entries borrow needs (one per hole), fewer
         * than retrieve gives. */
        for (cap = cap ? cap : 1;; cap *= 2) {
                struct iovec *v = calloc(cap, sizeof *v);
                if (!v)
                        return iom_fail(f->name, -ENOMEM, "out of memory");
                ssize_t n = borrow ? f->ops.borrow(f, off, len, v, cap) : f->ops.retrieve(f, off, len, v, cap);
                size_t bytes = 0;
                for (ssize_t i = 0; i < n; i++)
                        bytes += v[i].iov_len;
                if (n >= 0 && bytes >= len) {
                        *out = v;
                        return n;
                }
                free(v);
                if (n < 0)
                        return n;
                if ((size_t)n < cap) /* it fills what it can: not all of it is there */
                        return iom_fail(f->name, -EIO, "no memory describes [%zu, +%zu)", off, len);
        }
}

ssize_t iom_retrieve_all(struct iomem *f, size_t off, size_t len, size_t cap, struct iovec **out)
{
        return all_of(f, off, len, cap, false, out);
}

ssize_t iom_borrow_all(struct iomem *f, size_t off, size_t len, size_t cap, struct iovec **out)
{
        return all_of(f, off, len, cap, true, out);
}
