/* SPDX-License-Identifier: MIT */
/*
 * Crash-safe changes to the shared metadata: an undo log.
 *
 * Every change is made in place, under the metadata's robust mutex, after
 * the bytes it overwrites have been saved at the end of the metadata's
 * span. Unlocking forgets the log (one store: the change is done); a
 * process that dies holding the mutex leaves the log behind, and the next
 * locker puts every saved byte back (EOWNERDEAD), so survivors see all of
 * a change or none of it, however many tables it touched and however far
 * they grew. A change that fails half way is undone the same way.
 *
 * The log grows down from the end of the span, the heap up from the
 * header (heap.h); memory is backed before either is touched.
 */
#ifndef IOMEM_UNDO_H
#define IOMEM_UNDO_H

#include <stddef.h>
#include <stdint.h>

struct iomem;
struct iom_meta;

/* Save [p, p+len) of the metadata before changing it (metadata locked).
 * -ENOSPC (message set) when the log has no more room; the caller undoes
 * what it changed so far. */
int iom_undo_save(struct iomem *f, const void *p, size_t len);
/* Save *p and store v in it. */
int iom_undo_set(struct iomem *f, uint64_t *p, uint64_t v);
int iom_undo_set32(struct iomem *f, uint32_t *p, uint32_t v);
/* A point in the change in progress, and undoing what was done since:
 * a step that fails half way leaves no trace. */
uint64_t iom_undo_mark(const struct iomem *f);
void iom_undo_back_to(struct iomem *f, uint64_t mark);
/* Run call, an int expression that changes the metadata, as one step:
 * when it fails (negative), undo what it did. */
#define IOM_UNDO_STEP(f, call)                                  \
        ({                                                      \
                uint64_t mark_ = iom_undo_mark(f);              \
                int err_ = (call);                              \
                if (err_ < 0)                                   \
                        iom_undo_back_to((f), mark_);           \
                err_;                                           \
        })
/* The change is complete: forget the log. */
void iom_undo_commit(struct iomem *f);
/* Undo the change in progress (also one a dead process left). */
void iom_undo_rollback(struct iom_meta *m);

#endif /* IOMEM_UNDO_H */
