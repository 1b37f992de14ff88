/* SPDX-License-Identifier: MIT */
/*
 * Where a process has mapped an object's physical offsets. Segments are
 * disjoint, sorted by physical offset, and stay mapped until the object is
 * closed (or, for gift-pool memory, until a buffer is cut from free
 * offsets they reach but do not map in one piece, when all they map is
 * free: fdmem.c's pool_alloc), so an
 * address handed out for a pinned range never moves. A data file sized
 * like its object (shm, memfd) is mapped no further than its end: the
 * addresses past it are held without access, so that nothing (a debugger,
 * valgrind's leak scan in a forked child) reads past the file and takes a
 * SIGBUS, and the file grows into them in place.
 */
#ifndef IOMEM_SEGMENTS_H
#define IOMEM_SEGMENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct iom_segment {
        uint64_t phys, len; /* the addresses it holds: [va, va+len) for [phys, phys+len) */
        uint64_t mapped;    /* of which the first bytes map the file; a data file's
                             * segment holds the rest (PROT_NONE) to grow into */
        char *va;
        bool readonly; /* mapped PROT_READ (from a read-only descriptor, for data) */
};

struct iom_segments {
        struct iom_segment *v;
        size_t n, cap;
};

struct iomem;

/*
 * The address of physical offset phys, mapping it if needed so that at
 * least want bytes from phys are mapped in one piece; *contig receives how
 * many bytes from phys are contiguous in this process. Data a seal's ask
 * left read-only is made writable again in place for a writable handle.
 * NULL with *err set on failure. It may map only with the metadata locked;
 * readers without the lock use iom_seg_lookup.
 */
char *iom_seg_resolve(struct iomem *f, uint64_t phys, uint64_t want,
                      uint64_t *contig, int *err);
/* The same without mapping: NULL when phys is not mapped. */
char *iom_seg_lookup(struct iomem *f, uint64_t phys, uint64_t want, uint64_t *contig);
/* The first offset at or after phys that this process has mapped
 * (UINT64_MAX: none). */
uint64_t iom_seg_next_mapped(struct iomem *f, uint64_t phys);
/* Record an existing mapping (an iomem_alloc buffer) as a segment. */
int iom_seg_add(struct iomem *f, uint64_t phys, uint64_t len, char *va);
/* Does ok() hold of every segment that meets [phys, phys+len)? */
bool iom_seg_all(struct iomem *f, uint64_t phys, uint64_t len,
                 bool (*ok)(struct iomem *f, const struct iom_segment *g));
/* Unmap and forget the segments that meet [phys, phys+len). */
void iom_seg_drop_meeting(struct iomem *f, uint64_t phys, uint64_t len);
void iom_seg_unmap_all(struct iomem *f);
/* After the data file shrank to size: its mappings past the new end are
 * held without access again (the metadata locked). */
void iom_seg_trim_data(struct iomem *f, uint64_t size);
/* Make the mappings of the data area (phys below IOM_META_OFF), none
 * pinned, read-only in place, from a read-only descriptor, so that none
 * counts as writable to the kernel (a seal) and no address a borrower may
 * still read moves. false when one could not be (it stays as it was). */
bool iom_seg_protect_data(struct iomem *f);

#endif /* IOMEM_SEGMENTS_H */
