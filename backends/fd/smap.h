/* SPDX-License-Identifier: MIT */
/*
 * A sorted map of records (struct iom_rec, by key) in the shared heap:
 * every shared table is one. Records live in leaves of 127; a directory,
 * sorted by each leaf's lowest key, finds the leaf by binary search, so a
 * lookup is O(log n) however large the map grows. A full leaf splits in
 * two; an empty one is freed; a full directory moves to a block twice its
 * size. Changes go through the undo log (undo.h), with the metadata
 * locked; so do lookups, whose results stay valid until the next change.
 *
 * Offsets read from the map are checked before use: a map another process
 * spoilt reads as ending early (lookups) or fails with -EBADMSG (changes),
 * and never sends us outside the heap. So lookups may also run without the
 * mutex, under the change count (iom_seq_read_begin in meta.h).
 */
#ifndef IOMEM_SMAP_H
#define IOMEM_SMAP_H

#include "meta.h"

/* The layout: a directory of {first_key, leaf}, and leaves of records. */
#define IOM_SMAP_LEAF_RECS 127u

struct iom_smap_leaf {
        uint32_t n;
        uint32_t unused[3];
        struct iom_rec r[IOM_SMAP_LEAF_RECS];
};

struct iom_smap_dirent {
        uint64_t first_key; /* no key of the leaf is lower (nor of the next leaf higher) */
        uint64_t leaf;      /* its offset in the metadata */
};

struct iom_cursor {
        uint64_t leaf; /* index in the directory */
        uint32_t i;    /* index in the leaf */
};

/* The first record with a key >= k, the last with a key <= k, the first
 * and the last; NULL when there is none. c, when not NULL, is set for
 * iom_smap_next and iom_smap_prev. */
const struct iom_rec *iom_smap_ceil(const struct iom_meta *m, const struct iom_smap *s,
                                    uint64_t k, struct iom_cursor *c);
const struct iom_rec *iom_smap_floor(const struct iom_meta *m, const struct iom_smap *s,
                                     uint64_t k, struct iom_cursor *c);
const struct iom_rec *iom_smap_next(const struct iom_meta *m, const struct iom_smap *s,
                                    struct iom_cursor *c);
const struct iom_rec *iom_smap_prev(const struct iom_meta *m, const struct iom_smap *s,
                                    struct iom_cursor *c);
/* The record with key k, or NULL. */
const struct iom_rec *iom_smap_get(const struct iom_meta *m, const struct iom_smap *s, uint64_t k);

/* Add r, whose key is not in the map. */
int iom_smap_insert(struct iomem *f, struct iom_smap *s, const struct iom_rec *r);
/* Remove the record with key k (-ENOENT when there is none). */
int iom_smap_erase(struct iomem *f, struct iom_smap *s, uint64_t k);
/* Replace the record with key k by r, whose key may differ from k but must
 * sort between k's neighbours (-EINVAL when it does not). */
int iom_smap_update(struct iomem *f, struct iom_smap *s, uint64_t k, const struct iom_rec *r);

#endif /* IOMEM_SMAP_H */
