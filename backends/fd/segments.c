/* SPDX-License-Identifier: MIT */
/*
 * Mappings of an object's physical offsets in this process. The data
 * area is mapped in large pieces placed end to end where the address
 * space allows, so an ordinary file is one contiguous run of memory and
 * borrow/retrieve need one iovec; gift-pool memory is mapped piece by
 * piece. Mappings beyond the end of a descriptor are legal: the library
 * hands out only addresses inside the file, whose memory is backed.
 */
#include "fdobj.h"
#include "placement.h"
#include "syscalls.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* The least the data area is mapped in one go: address space is cheap,
 * page tables are only built for what is touched. */
#define DATA_MAP_MIN (UINT64_C(1) << 30)
/* What a data file's addresses are aligned to at least, so that tmpfs can
 * give it transparent huge pages (PMD size on x86-64 and arm64 4K). */
#define HUGE_ALIGN (UINT64_C(2) << 20)
/* Gift-pool memory is mapped in aligned pieces of this size. */
#define POOL_MAP_CHUNK (UINT64_C(64) << 20)

/* Index of the first segment that ends after phys. */
static size_t seg_first_after(const struct iom_segments *s, uint64_t phys)
{
        size_t lo = 0, hi = s->n;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (s->v[mid].phys + s->v[mid].len > phys)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return lo;
}

static int seg_insert(struct iomem *f, uint64_t phys, uint64_t len, char *va, bool readonly)
{
        struct iom_segments *s = &fdo(f)->segs;
        if (s->n == s->cap) {
                size_t cap = s->cap ? 2 * s->cap : 8;
                struct iom_segment *v = realloc(s->v, cap * sizeof *v);
                if (!v)
                        return -ENOMEM;
                s->v = v;
                s->cap = cap;
        }
        size_t i = seg_first_after(s, phys);
        memmove(&s->v[i + 1], &s->v[i], (s->n - i) * sizeof s->v[0]);
        s->v[i] = (struct iom_segment){ .phys = phys, .len = len, .mapped = len, .va = va,
                                         .readonly = readonly };
        s->n++;
        return 0;
}

int iom_seg_add(struct iomem *f, uint64_t phys, uint64_t len, char *va)
{
        int err = seg_insert(f, phys, len, va, false);
        return err ? iom_fail(f->name, err, "out of memory") : 0;
}

/* Before anything touches a new mapping of [phys, phys+len) at va: place
 * it, and ask for huge pages where tmpfs waits to be asked (without the
 * advice the memory is in base pages, which is no error). */
static int place(struct iomem *f, char *va, uint64_t phys, uint64_t len)
{
        int err = iom_numa_apply(f, va, len);
        if (!err && fdo(f)->thp_advise && phys < IOM_META_OFF &&
            iom_advise(va, len, IOM_ADV_HUGEPAGE) < 0)
                iom_debug("%s: no transparent huge pages (madvise: %s)", f->name, strerror(errno));
        return err;
}

/* Where a data file's mapping from a segment stops: the file's end (the
 * object's size, which the growth paths give the file first), and at least
 * past need; at most end. */
static uint64_t data_end(struct iomem *f, uint64_t need, uint64_t end)
{
        uint64_t ps = f->page_size;
        return iom_min(end, iom_max(iom_round_up(need, ps), iom_round_up(fdo(f)->meta->size, ps)));
}

/* len bytes of address space held without access, for a data file's
 * mapping of offsets from start and what it grows into: at hint when it is
 * free there, else where the addresses are congruent to start modulo
 * align (hugetlbfs maps only at its page size's alignment, and tmpfs
 * gives huge pages only to addresses aligned like the file's offsets);
 * NULL when there is no room. Straight to libc, not through the table
 * whose failures tests inject: only the file's own mapping over it can
 * fail in their sense. */
static char *hold(char *hint, uint64_t start, uint64_t len, uint64_t align)
{
        int flags = MAP_PRIVATE | iom_map_anonymous | iom_map_noreserve;
        void *r = hint ? mmap(hint, len, PROT_NONE, flags | iom_map_fixed_noreplace, -1, 0) : MAP_FAILED;
        if (r != MAP_FAILED && r == hint)
                return r;
        if (r != MAP_FAILED) /* a kernel before 4.17 placed it elsewhere */
                munmap(r, len);
        char *base = mmap(NULL, len + align, PROT_NONE, flags, -1, 0);
        if (base == MAP_FAILED)
                return NULL;
        uint64_t skip = (start % align + align - (uintptr_t)base % align) % align;
        if (skip)
                munmap(base, skip);
        if (align - skip)
                munmap(base + skip + len, align - skip);
        return base + skip;
}

/* Map data file bytes [phys, phys+len) over held addresses at va. */
static int map_file_at(struct iomem *f, char *va, uint64_t phys, uint64_t len, bool readonly)
{
        int prot = PROT_READ | (readonly ? 0 : PROT_WRITE);
        int fd = readonly && iom_fd_data_readonly(f) >= 0 ? fdo(f)->data_ro_fd : f->data_fd;
        if (!len || iom_sys.mmap(va, len, prot, MAP_SHARED | MAP_FIXED | iom_map_noreserve, fd, (off_t)phys) != MAP_FAILED)
                return 0;
        int e = errno;
        return iom_fail(f->name, e == ENOMEM ? -ENOMEM : -e, "cannot map %llu bytes at offset %llu: %s",
                        (unsigned long long)len, (unsigned long long)phys, strerror(e));
}

/* Map the file over more of the addresses segment g holds past it, to
 * cover need (and the file's end). */
static int grow_into(struct iomem *f, struct iom_segment *g, uint64_t need)
{
        uint64_t at = g->phys + g->mapped, to = data_end(f, need, g->phys + g->len);
        if (to <= at)
                return iom_fail(f->name, -EBADMSG, "offset %llu is past the file's end",
                                (unsigned long long)need);
        int err = map_file_at(f, g->va + g->mapped, at, to - at, g->readonly);
        if (!err)
                err = place(f, g->va + g->mapped, at, to - at);
        if (!err)
                g->mapped = to - g->phys;
        return err;
}

/* Map a new segment for [phys, phys+want) where none is (the metadata
 * locked: what the pool has handed out is read from it). */
static int seg_map(struct iomem *f, uint64_t phys, uint64_t want)
{
        struct iom_fdobj *obj = fdo(f);
        /* Extents come from shared memory that a hostile peer could have
         * written: file bytes never live in the metadata area or past it. */
        if ((phys >= IOM_META_OFF && phys < IOM_POOL_OFF) || phys >= IOM_PHYS_END ||
            want > IOM_PHYS_END - phys)
                return iom_fail(f->name, -EBADMSG,
                                "the shared metadata is corrupt (an extent points at %#llx)",
                                (unsigned long long)phys);
        struct iom_segments *s = &obj->segs;
        uint64_t ps = f->page_size;
        size_t i = seg_first_after(s, phys);
        if (i < s->n && s->v[i].phys <= phys) /* in the addresses held past the file */
                return grow_into(f, &s->v[i], phys + want);
        const struct iom_segment *prev = i ? &s->v[i - 1] : NULL;
        uint64_t limit = i < s->n ? s->v[i].phys : IOM_PHYS_END;
        uint64_t start, end;
        char *hint = NULL;
        if (phys < IOM_DATA_END) {
                /* Continue the data area from where the last piece ended. */
                start = prev ? prev->phys + prev->len : 0;
                uint64_t size = obj->meta->size;
                end = iom_max(phys + want, iom_max(2 * size, DATA_MAP_MIN));
                limit = iom_min(limit, obj->data_limit);
                if (prev)
                        hint = prev->va + prev->len;
        } else {
                /* Pool memory in large aligned pieces: reading a gifted file
                 * page by page must not cost a mapping per page. Only over
                 * offsets handed out already (the metadata is locked, so
                 * that is the committed count): iomem_alloc maps new ones
                 * as buffers of their own, and segments must not overlap
                 * (a pinned page would have two addresses). */
                uint64_t gran = iom_max(POOL_MAP_CHUNK, ps);
                uint64_t handed_out = obj->meta->pool_next;
                if (want > handed_out || phys > handed_out - want)
                        return iom_fail(f->name, -EBADMSG,
                                        "the shared metadata is corrupt (an extent points at %#llx, past "
                                        "the gift pool handed out)",
                                        (unsigned long long)phys);
                start = iom_max(iom_round_down(phys, gran), prev ? prev->phys + prev->len : 0);
                end = iom_round_up(phys + want, gran);
                limit = iom_min(limit, iom_min(obj->pool_end, handed_out));
                if (prev && prev->phys + prev->len == start)
                        hint = prev->va + prev->len;
        }
        end = iom_min(iom_round_up(end, ps), limit);
        int prot = PROT_READ | (iom_fd_writable(f) ? PROT_WRITE : 0);
        char *va;
        uint64_t file_end = end;
        if (phys < IOM_DATA_END && obj->sized_data) {
                /* A data file sized like its object: the whole span held,
                 * the file mapped over it to its end only. */
                file_end = data_end(f, phys + want, end);
                uint64_t align = iom_max(ps, HUGE_ALIGN);
                if (!(va = hold(hint, start, end - start, align)))
                        return iom_fail(f->name, -ENOMEM, "no room for %llu bytes of addresses",
                                        (unsigned long long)(end - start));
                int err = map_file_at(f, va, start, file_end - start, !(prot & PROT_WRITE));
                if (err) {
                        munmap(va, end - start);
                        return err;
                }
        } else {
                /* Mappings beyond the end of a descriptor are legal: reserve
                 * no swap for them. */
                va = obj->phys->map(f, hint, start, end - start, prot, iom_map_noreserve);
                if (va == MAP_FAILED) {
                        int e = errno;
                        return iom_fail(f->name, e == ENOMEM ? -ENOMEM : -e,
                                        "cannot map %llu bytes at offset %llu: %s",
                                        (unsigned long long)(end - start), (unsigned long long)start,
                                        strerror(e));
                }
        }
        int err = place(f, va, start, file_end - start);
        if (!err && (err = seg_insert(f, start, end - start, va, !(prot & PROT_WRITE))))
                err = iom_fail(f->name, err, "out of memory");
        if (err) {
                obj->phys->unmap(f, va, end - start);
                return err;
        }
        s->v[seg_first_after(s, start)].mapped = file_end - start;
        return 0;
}

uint64_t iom_seg_next_mapped(struct iomem *f, uint64_t phys)
{
        const struct iom_segments *s = &fdo(f)->segs;
        for (size_t i = seg_first_after(s, phys); i < s->n; i++) {
                const struct iom_segment *g = &s->v[i];
                if (g->phys + g->mapped > phys && g->mapped)
                        return iom_max(phys, g->phys);
        }
        return UINT64_MAX;
}

char *iom_seg_lookup(struct iomem *f, uint64_t phys, uint64_t want, uint64_t *contig)
{
        const struct iom_segments *s = &fdo(f)->segs;
        size_t i = seg_first_after(s, phys);
        if (i >= s->n || s->v[i].phys > phys || phys - s->v[i].phys >= s->v[i].mapped)
                return NULL;
        const struct iom_segment *g = &s->v[i];
        char *va = g->va + (phys - g->phys);
        uint64_t run = g->phys + g->mapped - phys;
        /* Segments placed end to end continue each other. */
        for (; run < want && i + 1 < s->n; i++) {
                const struct iom_segment *a = &s->v[i], *b = &s->v[i + 1];
                if (a->mapped != a->len || a->phys + a->len != b->phys || a->va + a->len != b->va)
                        break;
                run += b->mapped;
        }
        *contig = run;
        return va;
}

/* Map segment g again in place, with prot, from fd. */
static int remap(struct iomem *f, struct iom_segment *g, int prot, int fd)
{
        if (g->mapped && iom_sys.mmap(g->va, g->mapped, prot, MAP_SHARED | MAP_FIXED | iom_map_noreserve, fd,
                                      (off_t)g->phys) == MAP_FAILED) {
                int e = errno;
                return iom_fail(f->name, -e, "cannot map %llu bytes at offset %llu again: %s",
                                (unsigned long long)g->mapped, (unsigned long long)g->phys, strerror(e));
        }
        g->readonly = !(prot & PROT_WRITE);
        return g->mapped ? place(f, g->va, g->phys, g->mapped) : 0;
}

/* Data segments over [phys, phys+len) that a seal's ask made read-only,
 * writable again for a handle that may write. */
static int unprotect(struct iomem *f, uint64_t phys, uint64_t len)
{
        struct iom_segments *s = &fdo(f)->segs;
        if (!iom_fd_writable(f))
                return 0;
        for (size_t i = seg_first_after(s, phys); i < s->n && s->v[i].phys < phys + len; i++) {
                int err = s->v[i].readonly && s->v[i].phys < IOM_META_OFF
                                  ? remap(f, &s->v[i], PROT_READ | PROT_WRITE, f->data_fd) : 0;
                if (err)
                        return err;
        }
        return 0;
}

char *iom_seg_resolve(struct iomem *f, uint64_t phys, uint64_t want, uint64_t *contig, int *err)
{
        char *va = iom_seg_lookup(f, phys, want, contig);
        if (!va && (*err = seg_map(f, phys, want)))
                return NULL;
        if (!va)
                va = iom_seg_lookup(f, phys, want, contig);
        if (va && (*err = unprotect(f, phys, iom_min(want, *contig))))
                return NULL;
        return va;
}

bool iom_seg_all(struct iomem *f, uint64_t phys, uint64_t len,
                 bool (*ok)(struct iomem *f, const struct iom_segment *g))
{
        const struct iom_segments *s = &fdo(f)->segs;
        for (size_t i = seg_first_after(s, phys); i < s->n && s->v[i].phys < phys + len; i++)
                if (!ok(f, &s->v[i]))
                        return false;
        return true;
}

void iom_seg_drop_meeting(struct iomem *f, uint64_t phys, uint64_t len)
{
        struct iom_fdobj *obj = fdo(f);
        struct iom_segments *s = &obj->segs;
        size_t i = seg_first_after(s, phys), j = i;
        for (; j < s->n && s->v[j].phys < phys + len; j++)
                obj->phys->unmap(f, s->v[j].va, s->v[j].len);
        if (j > i) {
                memmove(&s->v[i], &s->v[j], (s->n - j) * sizeof s->v[0]);
                s->n -= j - i;
        }
}

void iom_seg_unmap_all(struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        for (size_t i = 0; i < obj->segs.n; i++)
                obj->phys->unmap(f, obj->segs.v[i].va, obj->segs.v[i].len);
        free(obj->segs.v);
        obj->segs = (struct iom_segments){ 0 };
}

void iom_seg_trim_data(struct iomem *f, uint64_t size)
{
        struct iom_segments *s = &fdo(f)->segs;
        if (!fdo(f)->sized_data) /* only a file sized like its object ends there */
                return;
        uint64_t keep = iom_round_up(size, f->page_size);
        for (size_t i = seg_first_after(s, keep); i < s->n && s->v[i].phys < IOM_META_OFF; i++) {
                struct iom_segment *g = &s->v[i];
                uint64_t from = iom_max(keep, g->phys) - g->phys;
                if (from >= g->mapped)
                        continue;
                /* Held again, as hold() holds (no failure to inject). */
                if (mmap(g->va + from, g->mapped - from, PROT_NONE,
                         MAP_PRIVATE | iom_map_anonymous | iom_map_noreserve | MAP_FIXED, -1, 0) != MAP_FAILED)
                        g->mapped = from;
        }
}

bool iom_seg_protect_data(struct iomem *f)
{
        struct iom_segments *s = &fdo(f)->segs;
        size_t n = seg_first_after(s, IOM_META_OFF); /* data segments end by then */
        int ro = n ? iom_fd_data_readonly(f) : -1;
        bool all = true;
        for (size_t i = 0; i < n; i++)
                if (!s->v[i].readonly && (ro < 0 || remap(f, &s->v[i], PROT_READ, ro)))
                        all = false; /* left as it was, writable */
        return all;
}
