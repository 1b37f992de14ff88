/* SPDX-License-Identifier: MIT */
/*
 * Shared state kept apart from the bytes it describes (sidecar.c). When an
 * object's bytes are a device's (devdax) or an ordinary file's (dax), the
 * engine's metadata lives alone in a sidecar in /dev/shm named after the
 * object's identity: the first opener makes it under an flock on it, every
 * later opener of the same identity finds it, whatever path or descriptor
 * it came by.
 */
#ifndef IOMEM_SIDECAR_H
#define IOMEM_SIDECAR_H

#include "fdobj.h"

#include <limits.h>
#include <sys/types.h>

struct iom_sidecar {
        char name[NAME_MAX]; /* for shm_open, "/..." */
        mode_t mode;         /* of a new sidecar */
        /* Does a sidecar's metadata, valid as the engine's, describe this
         * object? A sidecar that does not is made anew. */
        bool (*describes)(const struct iom_meta *m, const void *id);
        /* Fill a new sidecar's metadata (attached, not locked). */
        int (*build)(struct iomem *f, const void *id);
        const void *id;
        /* Removed by the last owner to leave (else it stays for the next
         * opener, as a device's does). */
        bool transient;
};

/*
 * Attach f to the shared state of its object (data_fd, page_size and the
 * physical ops set; those map the metadata from aux_fd as
 * iom_phys_sidecar does): in sfd when the caller has it (passed along with
 * the data), else found or made by the sidecar's name. aux_fd is the
 * sidecar's descriptor after the call, even on failure.
 */
int iom_sidecar_attach(struct iomem *f, const struct iom_sidecar *s, int sfd,
                       const struct iomem_opts *o);
/* Unregister f's owner; a transient sidecar goes when no owner is left. */
void iom_sidecar_leave(struct iomem *f, const struct iom_sidecar *s);
/* In a child after fork: attach the inherited handle afresh, by name (the
 * sidecar it inherited may be gone by now), as an owner of its own. */
int iom_sidecar_after_fork(struct iomem *f, const struct iom_sidecar *s);

/* Physical offsets of an object whose only memory through the engine is
 * its metadata: [IOM_META_OFF, ...) is the sidecar (aux_fd) from 0. */
extern const struct iom_phys_ops iom_phys_sidecar;

#endif /* IOMEM_SIDECAR_H */
