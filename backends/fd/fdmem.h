/* SPDX-License-Identifier: MIT */
/*
 * The fd-memory engine (fdmem.c): the shared state (meta.h), the I/O lock
 * (iolock.h) and the six operations for objects whose memory is reached
 * through descriptors, by physical offset (meta.h has the layout). Its
 * backends (shm, memfd and mshare here, devdax in its own folder) only
 * find or make the descriptors and say how physical offsets reach memory;
 * an object of theirs keeps a struct iom_fdobj (fdobj.h) at the start of
 * its private state.
 */
#ifndef IOMEM_FDMEM_H
#define IOMEM_FDMEM_H

#include "fdobj.h"

extern const struct iom_phys_ops iom_phys_fd;

/* The engine's operations, for the descriptors of shm and memfd. */
extern const struct iom_object_ops iom_fdmem_ops;

/* Set an object's engine state to "nothing attached" (the first thing an
 * engine backend's open does), and release what it holds (its close). */
void iom_fdmem_init(struct iomem *f);
void iom_fdmem_close(struct iomem *f);
/* The engine's after_fork, for a backend with operations of its own. */
int iom_fdmem_after_fork(struct iomem *f);

/*
 * fn(f, va, len, arg) on each piece of this process's mappings of the
 * backed bytes of [off, off+len) (with map, mapping the pieces not mapped
 * yet first), with the metadata held throughout so that no piece is let
 * go meanwhile. Stops at fn's first error, and returns it.
 */
int iom_fdmem_each_mapped(struct iomem *f, size_t off, size_t len, bool map,
                          int (*fn)(struct iomem *f, char *va, size_t len, void *arg), void *arg);

/* Where an fd-memory object's metadata comes from when it is opened. */
enum iom_attach {
        IOM_ATTACH_NEW,     /* a new object: initialise it in aux_fd, opts->size bytes */
        IOM_ATTACH_ADOPT,   /* initialise it in aux_fd from data_fd's contents */
        IOM_ATTACH_SHARED,  /* it is in aux_fd already */
        IOM_ATTACH_PRIVATE, /* no aux_fd: this process keeps its own, from data_fd */
};

/*
 * Finish opening an fd-memory object whose data_fd, aux_fd and page_size
 * are set: map or build the metadata and register this handle as an owner.
 * Closes no descriptor on failure.
 */
int iom_fdmem_attach(struct iomem *f, enum iom_attach how, const struct iomem_opts *o);

#endif /* IOMEM_FDMEM_H */
