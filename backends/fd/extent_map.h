/* SPDX-License-Identifier: MIT */
/*
 * The file's extents (extent_map.c), read and changed with the metadata
 * locked. Reads check each extent as they go: a map that another process
 * spoilt (a gap, an overlap, a physical offset out of place) fails with
 * -EBADMSG rather than send a copy astray.
 */
#ifndef IOMEM_EXTENT_MAP_H
#define IOMEM_EXTENT_MAP_H

#include "smap.h"

/* [off, off+len) of the file lives at physical offset phys (or is a hole). */
struct iom_extent {
        uint64_t off, len, phys;
};

struct iom_ext_iter {
        struct iomem *f;
        struct iom_cursor c;
        uint64_t pos; /* where the next extent must start */
};

/* The extent holding byte off: 1 with *e set, 0 when off is at or past
 * the tiled end, -EBADMSG (message set) when the map is spoilt. */
int iom_ext_first(struct iom_ext_iter *it, struct iomem *f, uint64_t off, struct iom_extent *e);
/* The extent after the last one returned: the same results. */
int iom_ext_next(struct iom_ext_iter *it, struct iom_extent *e);

/* Make [off, off+len) one extent at phys (IOM_HOLE for a hole). */
int iom_map_set(struct iomem *f, uint64_t off, uint64_t len, uint64_t phys);
/* Set the size: new pages are holes, pages past the end are dropped. */
int iom_map_resize(struct iomem *f, uint64_t size);

#endif /* IOMEM_EXTENT_MAP_H */
