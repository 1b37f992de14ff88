/* SPDX-License-Identifier: MIT */
/*
 * The fd-memory engine: the six operations and the file operations for
 * objects whose memory is a tmpfs or hugetlbfs file (shm and memfd). The
 * backends only find or create the descriptors; everything here works on
 * data_fd, aux_fd and the metadata.
 *
 * Lock order: the I/O lock, then fdo(f)->lock (this handle's pins, mappings
 * and buffers), then the metadata mutex.
 */
#include "fdmem.h"
#include "config.h"
#include "extent_map.h"
#include "iolock.h"
#include "pairing.h"
#include "undo.h"
#include "placement.h"
#include "syscalls.h"
#include "thp.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- small helpers ------------------------------------------------------ */

static int fd_for(const struct iomem *f, uint64_t phys)
{
        return phys < IOM_META_OFF ? f->data_fd : fdo(f)->aux_fd;
}

static bool has_pool(const struct iomem *f)
{
        return f->caps & IOMEM_CAP_GIFT;
}

/* ---- physical memory of fd-backed objects ---------------------------------- */

static void fd_punch(struct iomem *f, uint64_t phys, uint64_t len)
{
        iom_sys.fallocate(fd_for(f, phys), IOM_FALLOC_PUNCH_HOLE | IOM_FALLOC_KEEP_SIZE,
                          (off_t)phys, (off_t)len);
}

static int fd_back(struct iomem *f, uint64_t phys, uint64_t len)
{
        int mode = 0;
        if (phys < IOM_META_OFF && fdo(f)->sized_data) {
                /* The data file's size is the object's (the growth paths
                 * set it first): backing a page never moves it, and a
                 * file sealed against growing refuses any range past it. */
                struct stat st;
                mode = IOM_FALLOC_KEEP_SIZE;
                if (iom_sys.fstat(f->data_fd, &st) == 0 && phys + len > (uint64_t)st.st_size)
                        len = (uint64_t)st.st_size > phys ? (uint64_t)st.st_size - phys : 0;
                if (!len) /* nothing of the file there to back */
                        return 0;
        }
        if (iom_sys.fallocate(fd_for(f, phys), mode, (off_t)phys, (off_t)len) == 0)
                return 0;
        int e = errno;
        if (f->page_size > iom_system_page_size() && (e == ENOSPC || e == ENOMEM))
                return iom_fail(f->name, -ENOMEM,
                                "no free %zu KiB huge pages for %llu bytes (reserve more with "
                                "the sysctl vm.nr_hugepages)",
                                f->page_size >> 10, (unsigned long long)len);
        if (e == ENOSPC || e == ENOMEM)
                return iom_fail(f->name, -e, "no memory left to back %llu bytes: %s",
                                (unsigned long long)len, strerror(e));
        return iom_fail(f->name, -e, "cannot allocate backing memory: %s", strerror(e));
}

int iom_fd_data_readonly(struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        if (obj->data_ro_fd < 0)
                obj->data_ro_fd = iom_file_reopen(f->data_fd, O_RDONLY | O_CLOEXEC);
        return obj->data_ro_fd;
}

static void *fd_map(struct iomem *f, void *hint, uint64_t phys, uint64_t len, int prot,
                    int flags)
{
        int fd = fd_for(f, phys);
        /* Data only read is mapped from a read-only descriptor where one can
         * be had: a write-sealed memfd refuses shared mappings of a
         * writable one before Linux 6.7, and such mappings keep a seal out. */
        if (!(prot & PROT_WRITE) && phys < IOM_META_OFF && iom_fd_data_readonly(f) >= 0)
                fd = fdo(f)->data_ro_fd;
        flags |= MAP_SHARED | (hint ? iom_map_fixed_noreplace : 0);
        void *va = iom_sys.mmap(hint, len, prot, flags, fd, (off_t)phys);
        if (va == MAP_FAILED && hint) /* the neighbouring addresses are taken */
                va = iom_sys.mmap(NULL, len, prot, flags & ~iom_map_fixed_noreplace, fd, (off_t)phys);
        return va;
}

static void fd_unmap(struct iomem *f, void *va, uint64_t len)
{
        (void)f;
        iom_sys.munmap(va, len);
}

const struct iom_phys_ops iom_phys_fd = {
        .map = fd_map,
        .unmap = fd_unmap,
        .back = fd_back,
        .punch = fd_punch,
};

static void punch(struct iomem *f, uint64_t phys, uint64_t len)
{
        fdo(f)->phys->punch(f, phys, len);
}

/* Back [phys, phys+len) with memory now, so that touching it later cannot
 * raise SIGBUS. */
static int allocate(struct iomem *f, uint64_t phys, uint64_t len)
{
        return fdo(f)->phys->back(f, phys, len);
}

/* Refuse a file end past what the object can hold. */
static int too_big(struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        return iom_fail(f->name, -EFBIG, "the largest file is %llu bytes%s",
                        (unsigned long long)obj->data_limit,
                        obj->data_limit < IOM_DATA_END ?
                                " (its region's capacity, fixed when it was created)" : "");
}

/* Is memory for this object allocated through its mapping (fill_holes)? */
static bool allocates_through_mapping(const struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        bool huge = f->page_size > iom_system_page_size();
        return obj->thp_advise || (huge && obj->numa_policy != IOMEM_NUMA_DEFAULT);
}

/*
 * Back [phys, phys+len), mapped at va, with memory as the mapping asks.
 * tmpfs keeps the policy that mbind gave a shared mapping as the file's
 * own (a shared policy), so its fallocate follows it. Two kinds of memory
 * are therefore populated through the mapping instead:
 * - hugetlbfs has no shared policy: its fallocate takes pages from the
 *   caller's local node whatever the mapping says, so BIND and PREFERRED
 *   to another node were ignored, and a bound mapping over a node whose
 *   pool is empty raised SIGBUS at the first touch of a page fallocate had
 *   not placed. Through the placed mapping the kernel allocates by its
 *   policy and reports an empty pool as an error, not a signal.
 * - a tmpfs whose huge pages wait for advice gives fallocate base pages
 *   only; the advised mapping (MADV_HUGEPAGE, segments.c) gets huge ones.
 */
static int allocate_placed(struct iomem *f, uint64_t phys, uint64_t len, char *va)
{
        if (!allocates_through_mapping(f))
                return allocate(f, phys, len);
        if (iom_advise(va, len, IOM_ADV_POPULATE_WRITE) == 0)
                return 0;
        int e = errno;
        if (e == EINVAL || e == ENOTSUP) { /* a kernel before 5.14: backed, though not as asked */
                iom_debug("%s: the kernel cannot populate a mapping (%s); memory is not placed "
                          "or in huge pages", f->name, strerror(e));
                return allocate(f, phys, len);
        }
        if (f->page_size > iom_system_page_size() && (e == EFAULT || e == ENOMEM || e == ENOSPC))
                return iom_fail(f->name, -ENOMEM,
                                "no free %zu KiB huge pages on the NUMA nodes its policy allows for "
                                "%llu bytes (reserve more with the sysctl vm.nr_hugepages)",
                                f->page_size >> 10, (unsigned long long)len);
        /* A fault that tmpfs could not back (full) comes back as EFAULT. */
        if (e == EFAULT || e == ENOSPC || e == ENOMEM)
                return iom_fail(f->name, e == ENOMEM ? -ENOMEM : -ENOSPC,
                                "no memory left to back %llu bytes: %s", (unsigned long long)len,
                                strerror(e == ENOMEM ? ENOMEM : ENOSPC));
        return iom_fail(f->name, -e, "cannot allocate backing memory: %s", strerror(e));
}

/* shm and memfd keep their data in a file of its own, sized like the
 * object, so that other programs handed it see the object (so does any
 * object without our metadata); mshare's region has a fixed size.
 * hugetlbfs sizes files in whole huge pages only. 0 or -errno. */
static int resize_data(struct iomem *f, uint64_t size)
{
        if (!fdo(f)->sized_data)
                return 0;
        if (f->page_size > iom_system_page_size())
                size = iom_round_up(size, f->page_size);
        return iom_sys.ftruncate(f->data_fd, (off_t)size) == 0 ? 0 : -errno;
}

static int set_data_size(struct iomem *f, uint64_t size)
{
        int err = resize_data(f, size);
        return err ? iom_fail(f->name, err, "cannot resize the data object to %llu bytes: %s",
                              (unsigned long long)size, strerror(-err))
                   : 0;
}

/* The data file back at size after a growth that was undone. Quietly: the
 * error being returned is the one to report, and a file sealed against
 * shrinking stays larger (iomem_fd(3) says so). */
static void restore_data_size(struct iomem *f, uint64_t size)
{
        int err = resize_data(f, size);
        if (err)
                iom_debug("%s: the data file stays larger than the object: %s", f->name, strerror(-err));
        else /* what the growth mapped past the end goes with it */
                iom_seg_trim_data(f, size);
}

/* A handle inherited across fork() is a new attachment in the child: no
 * pins, no locks, no buffers of its own, the parent's mappings. */
int iom_fdmem_after_fork(struct iomem *f)
{
        struct iom_fdobj *o = fdo(f);
        iom_lanes_after_fork(&o->lock);
        o->pins.n = 0;
        o->allocs.n = 0;
        int err = iom_meta_lock(f);
        if (!err) {
                err = iom_owner_register(f);
                iom_meta_unlock(f);
        }
        return err;
}

/* ---- iovec building ------------------------------------------------------ */

/* Collects runs into an iovec array, joining runs that continue each
 * other; with iov NULL it only counts (bufcount). */
struct iov_builder {
        struct iovec *iov;
        size_t cap, n;
        struct iovec last;
        uint64_t bytes;
        bool lookup_only; /* on a lane: map nothing, fail with NEEDS_MAP */
};

/* What a lookup-only builder meets where this process has not mapped the
 * memory yet: the whole lock maps it. */
#define NEEDS_MAP (-EAGAIN)

static bool iovb_add(struct iov_builder *b, void *base, size_t len)
{
        if (b->n && ((!base && !b->last.iov_base) ||
                     (base && b->last.iov_base &&
                      (char *)b->last.iov_base + b->last.iov_len == base))) {
                b->last.iov_len += len;
                if (b->iov)
                        b->iov[b->n - 1].iov_len = b->last.iov_len;
        } else {
                if (b->n == b->cap)
                        return false;
                b->last = (struct iovec){ base, len };
                if (b->iov)
                        b->iov[b->n] = b->last;
                b->n++;
        }
        b->bytes += len;
        return true;
}

/* Add the mapped addresses of physical [phys, phys+len). 1 done, 0 full. */
static int add_phys(struct iomem *f, uint64_t phys, uint64_t len, struct iov_builder *b)
{
        while (len) {
                uint64_t contig;
                int err = NEEDS_MAP;
                char *va = b->lookup_only ? iom_seg_lookup(f, phys, len, &contig)
                                          : iom_seg_resolve(f, phys, len, &contig, &err);
                if (!va)
                        return err;
                uint64_t n = iom_min(len, contig);
                if (!iovb_add(b, va, n))
                        return 0;
                phys += n;
                len -= n;
        }
        return 1;
}

/* Describe file bytes [off, end) from the extent map (fdo(f)->lock and the
 * metadata held). 1 done, 0 builder full, negative on error. */
IOM_SEQ_READER static int describe(struct iomem *f, uint64_t off, uint64_t end, struct iov_builder *b)
{
        struct iom_ext_iter it;
        struct iom_extent e;
        int r = iom_ext_first(&it, f, off, &e);
        while (r > 0) {
                uint64_t n = iom_min(end, e.off + e.len) - off;
                int k = e.phys == IOM_HOLE ? iovb_add(b, NULL, n)
                                           : add_phys(f, e.phys + (off - e.off), n, b);
                if (k <= 0)
                        return k;
                if ((off += n) >= end)
                        return 1;
                r = iom_ext_next(&it, &e);
        }
        return r < 0 ? r : 1;
}

/* The same for a range this handle has pinned (fdo(f)->lock or a lane
 * held). */
static int describe_pinned(struct iomem *f, uint64_t off, uint64_t end, struct iov_builder *b)
{
        struct iom_fdobj *obj = fdo(f);
        for (size_t i = iom_ranges_first_after(&obj->pins, off); off < end; i++) {
                const struct iom_range *r = &obj->pins.v[i];
                uint64_t n = iom_min(end, r->end) - off;
                int ret = add_phys(f, r->phys + (off - r->start), n, b);
                if (ret <= 0)
                        return ret;
                off += n;
        }
        return 1;
}

/* ---- backing holes ------------------------------------------------------- */

/* 1 when file bytes [s, e) have a hole, 0 when not, negative on error. */
static int has_holes(struct iomem *f, uint64_t s, uint64_t e)
{
        struct iom_ext_iter it;
        struct iom_extent x;
        int r = iom_ext_first(&it, f, s, &x);
        for (; r > 0 && x.off < e; r = x.off + x.len < e ? iom_ext_next(&it, &x) : 0)
                if (x.phys == IOM_HOLE)
                        return 1;
        return r < 0 ? r : 0;
}

/*
 * Back the holes within the pages of [s, e) with memory at their own
 * offsets. On failure the caller undoes the change (iom_meta_undo) and
 * calls unfill.
 */
static int fill_holes(struct iomem *f, uint64_t s, uint64_t e)
{
        s = iom_round_down(s, f->page_size);
        e = iom_round_up(e, f->page_size);
        struct iom_ext_iter it;
        struct iom_extent x;
        int r = iom_ext_first(&it, f, s, &x);
        while (r > 0 && x.off < e) {
                uint64_t a = iom_max(s, x.off), b = iom_min(e, x.off + x.len);
                if (x.phys == IOM_HOLE) {
                        /* A hole's own pages may still hold what a process
                         * killed between publishing a change and freeing
                         * them left there: free them first, so that they
                         * come back as zeros. */
                        punch(f, a, b - a);
                        int err = 0;
                        if (fdo(f)->numa_policy != IOMEM_NUMA_DEFAULT || allocates_through_mapping(f)) {
                                /* Map (place, advise) it before the memory exists. */
                                uint64_t contig;
                                for (uint64_t p = a; p < b && !err; p += contig) {
                                        char *va = iom_seg_resolve(f, p, b - p, &contig, &err);
                                        if (!va)
                                                break;
                                        contig = iom_min(contig, b - p);
                                        err = allocate_placed(f, p, contig, va);
                                }
                        } else {
                                err = allocate(f, a, b - a);
                        }
                        if (err || (err = iom_map_set(f, a, b - a, a)))
                                return err;
                }
                /* The map may have changed: look again from b. */
                r = b < e ? iom_ext_first(&it, f, b, &x) : 0;
        }
        return r < 0 ? r : 0;
}

/* Give back what fill_holes took in [s, e): the holes of the current map
 * (the change undone). */
static void unfill(struct iomem *f, uint64_t s, uint64_t e)
{
        s = iom_round_down(s, f->page_size);
        e = iom_round_up(e, f->page_size);
        struct iom_ext_iter it;
        struct iom_extent x;
        for (int r = iom_ext_first(&it, f, s, &x); r > 0 && x.off < e;
             r = x.off + x.len < e ? iom_ext_next(&it, &x) : 0) {
                uint64_t a = iom_max(s, x.off), b = iom_min(e, x.off + x.len);
                if (x.phys == IOM_HOLE && a < b)
                        punch(f, a, b - a);
        }
        uint64_t tiled = iom_round_up(fdo(f)->meta->size, f->page_size);
        if (e > tiled) /* growth that was undone */
                punch(f, iom_max(s, tiled), e - iom_max(s, tiled));
}

/* Zero the bytes past the old end in the old last page when the file grows,
 * so that they read as zero like the rest of the new bytes (fdo(f)->lock and the
 * metadata held; the current map is the old one). */
static int zero_old_tail(struct iomem *f, uint64_t old_size, uint64_t new_size)
{
        uint64_t tail_end = iom_min(new_size, iom_round_up(old_size, f->page_size));
        if (tail_end <= old_size)
                return 0;
        struct iom_ext_iter it;
        struct iom_extent e;
        int r = iom_ext_first(&it, f, old_size, &e);
        if (r <= 0 || e.phys == IOM_HOLE)
                return r < 0 ? r : 0;
        uint64_t contig;
        int err;
        char *va = iom_seg_resolve(f, e.phys + (old_size - e.off), tail_end - old_size, &contig, &err);
        if (!va)
                return err;
        memset(va, 0, tail_end - old_size);
        return 0;
}

/* Copy src into file bytes [s, e) where the map, changed but not yet
 * kept, puts them; they are backed (fdo(f)->lock and the metadata held).
 * Bytes that only the change makes visible are copied before it is kept,
 * so a process killed in between leaves no grown file of zeros. */
static int copy_into_map(struct iomem *f, const char *src, uint64_t s, uint64_t e)
{
        struct iom_ext_iter it;
        struct iom_extent x;
        int r = iom_ext_first(&it, f, s, &x);
        while (r > 0) {
                uint64_t n = iom_min(e, x.off + x.len) - s;
                uint64_t phys = x.phys + (s - x.off);
                while (n) {
                        uint64_t contig;
                        int err;
                        char *va = iom_seg_resolve(f, phys, n, &contig, &err);
                        if (!va)
                                return err;
                        uint64_t k = iom_min(n, contig);
                        memcpy(va, src, k);
                        src += k;
                        s += k;
                        phys += k;
                        n -= k;
                }
                if (s >= e)
                        return 0;
                r = iom_ext_next(&it, &x);
        }
        return r;
}

/* ---- acquire / release / retrieve / borrow / bufcount --------------------- */

/* mlock (lock set) or munlock the memory of physical offsets [phys,
 * phys+len), mapped (fdo(f)->lock held). */
static int lock_phys(struct iomem *f, uint64_t phys, uint64_t len, bool lock)
{
        while (len) {
                uint64_t contig;
                char *va = iom_seg_lookup(f, phys, len, &contig);
                if (!va) /* cannot happen: pinned memory is mapped */
                        return iom_fail(f->name, -EFAULT, "offset %llu is not mapped",
                                        (unsigned long long)phys);
                contig = iom_min(contig, len);
                if (lock && iom_sys.mlock(va, contig) < 0)
                        return iom_mlock_failure(f->name, errno, contig);
                if (!lock)
                        iom_sys.munlock(va, contig);
                phys += contig;
                len -= contig;
        }
        return 0;
}

/* A piece of this handle's pins that a release lets go, unlocked
 * (iom_ranges_each_last). */
static void unwire(uint64_t start, uint64_t end, uint64_t phys, void *f)
{
        lock_phys(f, phys, end - start, false);
}


struct piece {
        uint64_t start, end, phys;
};

static ssize_t fdmem_acquire(struct iomem *f, size_t off, size_t len)
{
        struct iom_fdobj *obj = fdo(f);
        int err = 0;
        uint64_t end = (uint64_t)off + len;
        struct iom_lane *ln = iom_lane_enter(&obj->lock);
        if (ln) {
                /* Nested: these pages are ours already and cannot move. */
                bool nested = iom_ranges_covered(&obj->pins, off, end) && iom_lane_nest(ln, off, end);
                iom_lane_leave(ln);
                if (nested)
                        return (ssize_t)len;
        }
        iom_lanes_lock(&obj->lock);
        if (iom_ranges_covered(&obj->pins, off, end)) {
                /* Nested, with no lane at hand or room in it. */
                if ((err = iom_ranges_reserve(&obj->pins, 2)) == 0)
                        iom_ranges_inc(&obj->pins, off, end, 1);
                iom_lanes_unlock(&obj->lock);
                return err ? iom_fail(f->name, err, "out of memory") : (ssize_t)len;
        }
        if ((err = iom_meta_lock(f))) {
                iom_lanes_unlock(&obj->lock);
                return err;
        }
        struct iom_meta *meta = obj->meta;
        uint64_t limit = iom_round_up(meta->size, f->page_size);
        if (off >= limit) {
                iom_meta_unlock(f);
                iom_lanes_unlock(&obj->lock);
                return 0;
        }
        end = iom_min(end, limit);
        bool filled = false;
        if (iom_fd_writable(f) && (err = has_holes(f, off, end)) > 0) {
                filled = true;
                err = fill_holes(f, off, end);
        }
        if (err)
                goto out;

        /* The pages not pinned yet by this handle, split where their
         * physical placement changes. */
        struct piece stack[16], *pieces = stack;
        size_t npieces = 0, cap = 16;
        size_t ri = iom_ranges_first_after(&obj->pins, off);
        for (uint64_t pos = off; pos < end;) {
                if (ri < obj->pins.n && obj->pins.v[ri].start <= pos) {
                        pos = obj->pins.v[ri++].end;
                        continue;
                }
                uint64_t gap_end = ri < obj->pins.n ? iom_min(obj->pins.v[ri].start, end) : end;
                while (pos < gap_end) {
                        struct iom_ext_iter it;
                        struct iom_extent e;
                        if ((err = iom_ext_first(&it, f, pos, &e)) <= 0) {
                                err = err ? err : iom_fail(f->name, -EBADMSG, "the shared metadata is corrupt");
                                goto free_pieces;
                        }
                        uint64_t n = iom_min(gap_end, e.off + e.len) - pos;
                        if (npieces == cap) {
                                struct piece *p = malloc(2 * cap * sizeof *p);
                                if (!p) {
                                        err = iom_fail(f->name, -ENOMEM, "out of memory");
                                        goto free_pieces;
                                }
                                memcpy(p, pieces, npieces * sizeof *p);
                                if (pieces != stack)
                                        free(pieces);
                                pieces = p;
                                cap *= 2;
                        }
                        /* A hole here means a read-only handle: pin it anyway
                         * (it keeps truncate away) at its own offset. */
                        uint64_t phys = e.phys == IOM_HOLE ? pos : e.phys + (pos - e.off);
                        pieces[npieces++] = (struct piece){ pos, pos + n, phys };
                        pos += n;
                }
        }
        if ((err = iom_ranges_reserve(&obj->pins, npieces + 2))) {
                err = iom_fail(f->name, err, "out of memory");
                goto free_pieces;
        }
        /* Map before publishing the pins, so a failure changes nothing. */
        for (size_t i = 0; i < npieces; i++) {
                uint64_t contig, need = pieces[i].end - pieces[i].start;
                for (uint64_t p = pieces[i].phys; need;) {
                        if (!iom_seg_resolve(f, p, need, &contig, &err))
                                goto free_pieces;
                        uint64_t n = iom_min(need, contig);
                        p += n;
                        need -= n;
                }
        }
        /* Wired: locked before the pins are published, so that a limit
         * reached leaves nothing pinned or locked. */
        size_t locked = 0;
        for (; obj->wired && locked < npieces && !err; locked++)
                err = lock_phys(f, pieces[locked].phys, pieces[locked].end - pieces[locked].start, true);
        for (size_t i = 0; i < npieces && !err; i++)
                err = iom_pin_add(f, obj->owner, pieces[i].start, pieces[i].end);
        if (err) {
                for (size_t i = 0; obj->wired && i < locked; i++)
                        lock_phys(f, pieces[i].phys, pieces[i].end - pieces[i].start, false);
                goto free_pieces;
        }
        iom_ranges_inc(&obj->pins, off, end, 1);
        for (size_t i = 0; i < npieces; i++)
                iom_ranges_insert(&obj->pins, pieces[i].start, pieces[i].end, pieces[i].phys);
free_pieces:
        if (pieces != stack)
                free(pieces);
out:
        if (err) {
                /* None of it: no pin, no hole filled. */
                iom_meta_undo(f);
                if (filled)
                        unfill(f, off, end);
        }
        iom_meta_unlock(f);
        iom_lanes_unlock(&obj->lock);
        return err ? err : (ssize_t)(end - off);
}

/* err unless this handle has pinned all of [off, end) (fdo(f)->lock held). */
static int require_pinned(struct iomem *f, uint64_t off, uint64_t end, int err)
{
        if (iom_ranges_covered(&fdo(f)->pins, off, end))
                return 0;
        return iom_fail(f->name, err, "bytes [%llu, %llu) are not all acquired by this handle",
                        (unsigned long long)off, (unsigned long long)end);
}

/* A write seal put every byte in place first (fdmem_seal), and is for
 * ever. The kernel's seal is the proof: the library's record is set just
 * before it, and a seal it then refused is undone. */
static bool fdmem_frozen(const struct iomem *f, uint64_t *size)
{
        const struct iom_fdobj *obj = fdo(f);
        if (!obj->seal_data || obj->meta_private || !obj->meta ||
            !(__atomic_load_n(&obj->meta->seals, __ATOMIC_ACQUIRE) & IOMEM_SEAL_WRITE))
                return false;
        if (!iom_file_write_sealed(f->data_fd))
                return false;
        *size = __atomic_load_n(&obj->meta->size, __ATOMIC_ACQUIRE); /* fixed once sealed */
        return true;
}

/* At a handle's last release: a seal asked for the data's writable
 * mappings since it last looked (lanes and metadata held). Not while a
 * pwrite of this handle copies into them without a pin: it looks again at
 * its next last release. */
static void answer_seal_asks(struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        if (obj->pins.n || obj->seal_asks_seen == obj->meta->seal_asks ||
            __atomic_load_n(&obj->copying_in, __ATOMIC_ACQUIRE))
                return;
        if (iom_seg_protect_data(f))
                obj->seal_asks_seen = obj->meta->seal_asks;
}

static int fdmem_release(struct iomem *f, size_t off, size_t len)
{
        struct iom_fdobj *obj = fdo(f);
        int err = 0;
        uint64_t end = (uint64_t)off + len;
        struct iom_lane *ln = iom_lane_enter(&obj->lock);
        if (ln) {
                /* A pin this lane nested: the runs under it stay pinned. */
                bool unnested = iom_lane_unnest(ln, off, end);
                iom_lane_leave(ln);
                if (unnested)
                        return 0;
        }
        iom_lanes_lock(&obj->lock);
        if ((err = require_pinned(f, off, end, -EINVAL)) ||
            (err = iom_lanes_fold(&obj->lock, iom_ranges_fold_nest, &obj->pins))) {
                iom_lanes_unlock(&obj->lock);
                return err == -ENOMEM ? iom_fail(f->name, err, "out of memory") : err;
        }
        if ((err = iom_ranges_reserve(&obj->pins, 2)) == 0 && iom_ranges_all_nested(&obj->pins, off, end)) {
                /* No page is let go: the shared pins stay as they are. */
                iom_ranges_dec(&obj->pins, off, end, NULL, NULL);
        } else if (!err && (err = iom_meta_lock(f)) == 0) {
                if (obj->wired) /* before the pins that say where they are go */
                        iom_ranges_each_last(&obj->pins, off, end, unwire, f);
                iom_ranges_dec(&obj->pins, off, end, iom_pin_let_go, f);
                answer_seal_asks(f);
                iom_meta_unlock(f);
        } else if (err == -ENOMEM) {
                err = iom_fail(f->name, err, "out of memory");
        }
        iom_lanes_unlock(&obj->lock);
        return err;
}

static ssize_t fdmem_retrieve(struct iomem *f, size_t off, size_t len, struct iovec *iov,
                              size_t iovcnt)
{
        struct iom_fdobj *obj = fdo(f);
        int err = 0;
        if (!iom_fd_writable(f))
                return iom_fail(f->name, -EPERM, "the object is sealed against writing; use iomem_borrow");
        uint64_t end = (uint64_t)off + len;
        struct iov_builder b = { .iov = iov, .cap = iovcnt, .lookup_only = true };
        struct iom_lane *ln = iom_lane_enter(&obj->lock);
        if (ln) {
                int r = iom_ranges_covered(&obj->pins, off, end) ? describe_pinned(f, off, end, &b)
                                                                 : -ENOENT;
                iom_lane_leave(ln);
                if (r >= 0)
                        return (ssize_t)b.n;
        }
        iom_lanes_lock(&obj->lock);
        if ((err = require_pinned(f, off, end, -ENOENT))) {
                iom_lanes_unlock(&obj->lock);
                return err;
        }
        b = (struct iov_builder){ .iov = iov, .cap = iovcnt };
        int r = describe_pinned(f, off, end, &b);
        iom_lanes_unlock(&obj->lock);
        return r < 0 ? r : (ssize_t)b.n;
}

/* borrow and bufcount: describe [off, off+len) clamped to the size, into
 * b, the metadata held or read between changes. */
IOM_SEQ_READER static int describe_upto_size(struct iomem *f, size_t off, size_t len,
                                             struct iov_builder *b)
{
        uint64_t size = fdo(f)->meta->size;
        int r = off < size ? describe(f, off, iom_min(size, (uint64_t)off + len), b) : 0;
        return r < 0 ? r : 0;
}

/* describe_upto_size between two changes of the metadata, without its
 * mutex and mapping nothing: true when done, false when a change got in
 * the way twice or the range has memory this process has not mapped.
 * Mappings are made with the mutex held only, so that what they cover
 * (the gift pool handed out) is never read from a change in progress. */
static bool describe_between_changes(struct iomem *f, size_t off, size_t len, struct iov_builder *b)
{
        struct iom_meta *m = fdo(f)->meta;
        struct iov_builder start = *b;
        b->lookup_only = true;
        for (int tries = 0; tries < 2; tries++) {
                uint64_t seq = iom_seq_read_begin(m);
                if (seq & 1 || !iom_meta_sound(f))
                        break; /* the mutex, and the lock's checks, decide */
                int err = describe_upto_size(f, off, len, b);
                bool ok = iom_seq_read_ok(m, seq);
                if (ok && !err)
                        return true;
                *b = start;
                if (ok && err == NEEDS_MAP)
                        break;
        }
        *b = start;
        return false;
}

static ssize_t describe_clamped(struct iomem *f, size_t off, size_t len, struct iov_builder *b)
{
        struct iom_fdobj *obj = fdo(f);
        /* First on this CPU's lane, then under the whole lock (a lane
         * that is not in use yet), mapping nothing; last with the
         * metadata's mutex, which may map. */
        struct iom_lane *ln = iom_lane_enter(&obj->lock);
        if (ln) {
                bool done = describe_between_changes(f, off, len, b);
                iom_lane_leave(ln);
                if (done)
                        return (ssize_t)b->n;
        }
        iom_lanes_lock(&obj->lock);
        int err = 0;
        if (!describe_between_changes(f, off, len, b) && (err = iom_meta_lock(f)) == 0) {
                err = describe_upto_size(f, off, len, b);
                iom_meta_unlock(f);
        }
        iom_lanes_unlock(&obj->lock);
        return err ? err : (ssize_t)b->n;
}

static ssize_t fdmem_borrow(struct iomem *f, size_t off, size_t len, struct iovec *iov,
                            size_t iovcnt)
{
        struct iov_builder b = { .iov = iov, .cap = iovcnt };
        return describe_clamped(f, off, len, &b);
}

static ssize_t fdmem_bufcount(struct iomem *f, size_t off, size_t len)
{
        struct iov_builder b = { .cap = SIZE_MAX };
        return describe_clamped(f, off, len, &b);
}

/* ---- pread / pwrite --------------------------------------------------------- */

enum copy_dir { COPY_OUT, COPY_IN };

/* Copy between buf and file bytes [off, end) in batches, each described
 * under the locks and copied without them (the I/O lock, held by the
 * caller, keeps the memory in place). */
static ssize_t copy_bytes(struct iomem *f, char *buf, uint64_t off, uint64_t end, enum copy_dir dir)
{
        struct iom_fdobj *obj = fdo(f);
        uint64_t start = off;
        while (off < end) {
                struct iovec iov[64];
                struct iov_builder b = { .iov = iov, .cap = 64 };
                iom_lanes_lock(&obj->lock);
                int err = iom_meta_lock(f);
                if (!err) {
                        uint64_t size = obj->meta->size;
                        end = iom_min(end, size);
                        err = off < end ? describe(f, off, end, &b) : 0;
                        iom_meta_unlock(f);
                }
                /* Written without a pin: no release may make the memory
                 * read-only meanwhile (answer_seal_asks). */
                bool in = dir == COPY_IN && err >= 0;
                if (in)
                        __atomic_add_fetch(&obj->copying_in, 1, __ATOMIC_ACQ_REL);
                iom_lanes_unlock(&obj->lock);
                if (err < 0)
                        return off > start ? (ssize_t)(off - start) : err;
                for (size_t i = 0; i < b.n; i++) {
                        char *p = buf + (off - start);
                        if (dir == COPY_IN)
                                memmove(iov[i].iov_base, p, iov[i].iov_len); /* backed: no holes */
                        else if (iov[i].iov_base)
                                memmove(p, iov[i].iov_base, iov[i].iov_len);
                        else
                                memset(p, 0, iov[i].iov_len);
                        off += iov[i].iov_len;
                }
                if (in)
                        __atomic_sub_fetch(&obj->copying_in, 1, __ATOMIC_ACQ_REL);
                if (b.n == 0)
                        break;
        }
        return (ssize_t)(off - start);
}

static ssize_t fdmem_pread(struct iomem *f, void *buf, size_t len, size_t off)
{
        int err = iom_iolock_rdlock(f, f->lock_timeout_ms);
        if (err)
                return err;
        ssize_t r = copy_bytes(f, buf, off, (uint64_t)off + len, COPY_OUT);
        iom_iolock_unlock(f);
        return r;
}

/* Would growing by `more` bytes exceed the free space of the filesystem?
 * Memory is allocated when first used, but a growth that cannot fit even
 * now is refused at once (not checked where the space is unknown or
 * unlimited, as for memfd). */
static int check_space(struct iomem *f, uint64_t more)
{
        struct iom_fsinfo sf;
        if (iom_sys.fstatfs(f->data_fd, &sf) < 0 || sf.blocks == 0)
                return 0; /* unknown or unlimited */
        uint64_t avail = sf.bytes_avail;
        if (more <= avail)
                return 0;
        return iom_fail(f->name, -ENOSPC,
                        "growing by %llu bytes exceeds the %llu bytes free on its filesystem",
                        (unsigned long long)more, (unsigned long long)avail);
}

/* A write or gift at off that grows the file from size to new_size: past
 * a gap (far past the end), it follows truncate's rule; one that only
 * appends what it brings needs no statfs, since backing those pages fails
 * cleanly when space runs out (appends must not pay a system call each). */
static int check_growth(struct iomem *f, uint64_t size, uint64_t off, uint64_t new_size)
{
        return off > size ? check_space(f, new_size - size) : 0;
}

static int check_seals(struct iomem *f, uint64_t old_size, uint64_t new_size)
{
        unsigned seals = fdo(f)->meta->seals;
        if (seals & IOMEM_SEAL_WRITE)
                return iom_fail(f->name, -EPERM, "the object is sealed against writing");
        if (new_size > old_size && (seals & IOMEM_SEAL_GROW))
                return iom_fail(f->name, -EPERM, "the object is sealed against growing");
        if (new_size < old_size && (seals & IOMEM_SEAL_SHRINK))
                return iom_fail(f->name, -EPERM, "the object is sealed against shrinking");
        return 0;
}

/* Grow the file to at least end and back [off, end), as one change
 * (fdo(f)->lock and the metadata held). On failure nothing has changed. */
static int prepare_write(struct iomem *f, const char *buf, uint64_t off, uint64_t end,
                         uint64_t *old_size)
{
        struct iom_meta *meta = fdo(f)->meta;
        uint64_t size = meta->size, new_size = iom_max(size, end);
        *old_size = size;
        int err = check_seals(f, size, new_size);
        if (err || (err = check_growth(f, size, off, new_size)) ||
            (new_size == size && (err = has_holes(f, off, end)) <= 0))
                return err;
        uint64_t from = iom_max(off, size);
        /* The data file grows first: memory is backed (and, for placed
         * memory, faulted in) only inside it. */
        bool grew = false;
        if ((new_size > size && ((err = set_data_size(f, new_size)) ||
                                 (grew = true, err = iom_map_resize(f, new_size)))) ||
            (err = fill_holes(f, off, end)) ||
            (new_size > size && ((err = zero_old_tail(f, size, new_size)) ||
                                 (err = copy_into_map(f, buf + (from - off), from, end))))) {
                iom_meta_undo(f);
                unfill(f, off, end);
                if (grew)
                        restore_data_size(f, size);
                return err;
        }
        return 0;
}

static ssize_t fdmem_pwrite(struct iomem *f, const void *buf, size_t len, size_t off)
{
        struct iom_fdobj *obj = fdo(f);
        uint64_t end = (uint64_t)off + len;
        if (end > obj->data_limit)
                return too_big(f);
        int err = iom_iolock_rdlock(f, f->lock_timeout_ms);
        if (err)
                return err;
        uint64_t old_size = 0;
        iom_lanes_lock(&obj->lock);
        if ((err = iom_meta_lock(f)) == 0) {
                err = prepare_write(f, buf, off, end, &old_size);
                iom_meta_unlock(f);
        }
        iom_lanes_unlock(&obj->lock);
        /* The bytes past the old end went in with the growth. */
        ssize_t r = err;
        if (!err) {
                uint64_t mid = iom_min(end, old_size);
                r = (ssize_t)len;
                if (off < mid) {
                        ssize_t c = copy_bytes(f, (char *)buf, off, mid, COPY_IN);
                        if (c < (ssize_t)(mid - off))
                                r = c;
                }
        }
        iom_iolock_unlock(f);
        return r;
}

/* ---- truncate ---------------------------------------------------------------- */

/* Physical ranges a change made unreachable, to punch once it is published. */
struct punch_list {
        struct { uint64_t phys, len, file; } *v;
        size_t n, cap;
};

/* Note the backed pieces of the map within file range [s, e). */
static int collect_backed(struct iomem *f, uint64_t s, uint64_t e, struct punch_list *out)
{
        struct iom_ext_iter it;
        struct iom_extent x;
        int r = iom_ext_first(&it, f, s, &x);
        for (; r > 0 && x.off < e; r = x.off + x.len < e ? iom_ext_next(&it, &x) : 0) {
                uint64_t a = iom_max(s, x.off), b = iom_min(e, x.off + x.len);
                if (x.phys == IOM_HOLE || a >= b)
                        continue;
                if (out->n == out->cap) {
                        size_t cap = out->cap ? 2 * out->cap : 8;
                        void *v = realloc(out->v, cap * sizeof out->v[0]);
                        if (!v)
                                return iom_fail(f->name, -ENOMEM, "out of memory");
                        out->v = v;
                        out->cap = cap;
                }
                out->v[out->n].phys = x.phys + (a - x.off);
                out->v[out->n].file = a;
                out->v[out->n++].len = b - a;
        }
        return r < 0 ? r : 0;
}

/* The gift pool's pieces of the noted ranges, which the change in progress
 * let go, are free for the next buffers, still backed (the metadata
 * held). */
static int recycle_pool_pieces(struct iomem *f, const struct punch_list *l)
{
        int err = 0;
        for (size_t i = 0; i < l->n && !err; i++)
                if (l->v[i].phys >= IOM_POOL_OFF)
                        err = iom_pool_recycle(f, l->v[i].phys, l->v[i].len, true);
        return err;
}

/* Free the memory of the noted ranges of the data file, once the change
 * that let them go is kept (fdo(f)->lock held); the pool's went back to
 * it in the change. */
static void punch_all(struct iomem *f, struct punch_list *l)
{
        for (size_t i = 0; i < l->n; i++)
                if (l->v[i].phys < IOM_POOL_OFF)
                        punch(f, l->v[i].phys, l->v[i].len);
        free(l->v);
        *l = (struct punch_list){ 0 };
}

/* The file's extents in gone again, after a shrink that was kept but whose
 * data object could not follow: the bytes are still where they were. */
static int unshrink(struct iomem *f, uint64_t old, const struct punch_list *gone)
{
        int err = iom_map_resize(f, old);
        for (size_t i = 0; i < gone->n && !err; i++) {
                if (gone->v[i].phys >= IOM_POOL_OFF)
                        err = iom_pool_claim(f, gone->v[i].phys, gone->v[i].len);
                if (!err)
                        err = iom_map_set(f, gone->v[i].file, gone->v[i].len, gone->v[i].phys);
        }
        if (err)
                iom_meta_undo(f);
        return err;
}

static int fdmem_truncate(struct iomem *f, size_t size)
{
        struct iom_fdobj *obj = fdo(f);
        if (size > obj->data_limit)
                return too_big(f);
        int err = iom_iolock_wrlock(f, f->lock_timeout_ms);
        if (err)
                return err;
        iom_lanes_lock(&obj->lock);
        if ((err = iom_meta_lock(f))) {
                iom_lanes_unlock(&obj->lock);
                iom_iolock_unlock(f);
                return err;
        }
        struct iom_meta *meta = obj->meta;
        uint64_t ps = f->page_size, old = meta->size;
        struct punch_list gone = { 0 };
        if (size == old || (err = check_seals(f, old, size)))
                goto out;
        if (size < old && (err = iom_pin_refuse(f, iom_round_down(size, ps), iom_round_up(old, ps))))
                goto out;
        if (size > old)
                err = check_space(f, size - old);
        else if (!(err = collect_backed(f, iom_round_up(size, ps), iom_round_up(old, ps), &gone)))
                err = recycle_pool_pieces(f, &gone);
        /* Bytes past the end in the last page read as zero once it grows. */
        if (!err && size > old)
                err = zero_old_tail(f, old, size);
        bool grew = false;
        if (!err && size > old && !(err = set_data_size(f, size)))
                grew = true;
        if (err || (err = iom_map_resize(f, size))) {
                iom_meta_undo(f);
                if (grew)
                        restore_data_size(f, old);
                goto out;
        }
        /* A shrink changes bytes only once it is kept, so a process killed
         * before that leaves the old file whole (and one killed after it,
         * the new one). When the data object cannot shrink, the bytes are
         * still there: the extents go back. */
        if (size < old) {
                iom_meta_keep(f);
                if ((err = set_data_size(f, size))) {
                        unshrink(f, old, &gone);
                        goto out;
                }
                zero_old_tail(f, size, iom_round_up(size, ps));
                iom_seg_trim_data(f, size);
        }
out:
        iom_meta_unlock(f);
        if (!err)
                punch_all(f, &gone);
        free(gone.v);
        iom_lanes_unlock(&obj->lock);
        iom_iolock_unlock(f);
        return err;
}

/* ---- iomem_alloc / iomem_free ---------------------------------------------- */

/* Room for `extra` more buffers in this handle's list. */
static int allocs_reserve(struct iomem *f, size_t extra)
{
        struct iom_allocs *a = &fdo(f)->allocs;
        if (a->n + extra <= a->cap)
                return 0;
        size_t cap = a->cap ? 2 * a->cap : 8;
        while (cap < a->n + extra)
                cap *= 2;
        struct iom_alloc *v = realloc(a->v, cap * sizeof *v);
        if (!v)
                return -ENOMEM;
        a->v = v;
        a->cap = cap;
        return 0;
}

static bool writable(struct iomem *f, const struct iom_segment *g)
{
        (void)f;
        return !g->readonly;
}

static bool maps_only_free(struct iomem *f, const struct iom_segment *g)
{
        return iom_pool_is_free(f, g->phys, g->len);
}

/* This process's address of [phys, phys+len) where it maps it in one
 * piece for writing, else NULL. */
static char *mapped_writable(struct iomem *f, uint64_t phys, uint64_t len)
{
        uint64_t contig;
        char *va = iom_seg_lookup(f, phys, len, &contig);
        return va && contig >= len && iom_seg_all(f, phys, len, writable) ? va : NULL;
}

/* Can this process hand out [phys, phys+len), which is free, as one run
 * of addresses: mapped in one piece already, for writing, or by a mapping
 * of its own once the mappings that reach it go, which map nothing but
 * free pool memory (the metadata held)? */
static bool pool_mappable(struct iomem *f, uint64_t phys, uint64_t len)
{
        return mapped_writable(f, phys, len) || iom_seg_all(f, phys, len, maps_only_free);
}

/* Zero-filled memory for a buffer at [phys, phys+n), mapped at va: a
 * backed free range needs zeroing only; any other may hold old bytes (a
 * process killed while backing it, memory a trim was about to give back)
 * or none, and is emptied and backed. */
static int pool_fill(struct iomem *f, const struct iom_pool_take *t, uint64_t n, char *va)
{
        if (t->backed) {
                memset(va, 0, n);
                return 0;
        }
        if (t->recycled)
                punch(f, t->phys, n);
        return allocate_placed(f, t->phys, n, va);
}

/* A gift-pool buffer of n bytes (fdo(f)->lock held): cut from what the
 * pool has free first, in memory that gifts, truncates and frees gave
 * back still backed, so a producer that hands the same range over again
 * and again faults and frees no page; new offsets when nothing fits. */
static int pool_alloc(struct iomem *f, uint64_t n, bool compact, bool *no_room, char **va_out,
                      uint64_t *phys_out)
{
        struct iom_fdobj *obj = fdo(f);
        struct iom_pool_take t;
        int err = iom_meta_lock(f);
        if (err)
                return err;
        err = iom_pool_take(f, n, obj->pool_end, compact, pool_mappable, &t);
        if ((*no_room = err > 0))
                err = -ENOSPC;
        else if (err || (err = iom_pool_add(f, obj->owner, t.phys, n)))
                iom_meta_undo(f);
        iom_meta_unlock(f);
        if (err)
                return err;

        /* Where this process maps it in one piece already, there; else
         * mapped and placed first, then backed. No other segment of this
         * process reaches these offsets then: pool pieces stop at the
         * offsets handed out when they were mapped (segments.c), and the
         * ones that reached a free range go, as they held nothing of
         * anyone's (pool_mappable). */
        char *va = mapped_writable(f, t.phys, n);
        bool own = !va;
        if (own) {
                iom_seg_drop_meeting(f, t.phys, n);
                va = obj->phys->map(f, NULL, t.phys, n, PROT_READ | PROT_WRITE, 0);
                if (va == MAP_FAILED)
                        err = iom_fail(f->name, -ENOMEM, "cannot map %llu bytes: %s",
                                       (unsigned long long)n, strerror(errno));
                else
                        err = iom_numa_apply(f, va, n);
        }
        if (!err && !(err = pool_fill(f, &t, n, va)) && own)
                err = iom_seg_add(f, t.phys, n, va);
        if (err) {
                if (own && va != MAP_FAILED)
                        obj->phys->unmap(f, va, n);
                /* Free again, emptied (the next buffer cut from it backs it
                 * again); should that fail, it stays this handle's, and
                 * its close empties it (it is not in the handle's list). */
                punch(f, t.phys, n);
                if (iom_meta_lock(f) == 0) {
                        if (iom_pool_forget(f, t.phys) || iom_pool_recycle(f, t.phys, n, false))
                                iom_meta_undo(f);
                        iom_meta_unlock(f);
                }
                return err;
        }
        *va_out = va;
        *phys_out = t.phys;
        return 0;
}

/* A buffer of n bytes in this handle's list; *no_room when the pool has
 * no free range that large and may not grow (compact: to bound its
 * fragmentation). */
static int alloc_buffer(struct iomem *f, uint64_t n, bool compact, bool *no_room, void **out)
{
        struct iom_fdobj *obj = fdo(f);
        int err = 0;
        *no_room = false;
        iom_lanes_lock(&obj->lock);
        if (allocs_reserve(f, 1)) {
                iom_lanes_unlock(&obj->lock);
                return iom_fail(f->name, -ENOMEM, "out of memory");
        }
        char *va;
        uint64_t phys = IOM_HOLE;
        if (has_pool(f)) {
                err = pool_alloc(f, n, compact, no_room, &va, &phys);
        } else {
                /* Nothing to adopt from: ordinary memory, which gift copies. */
                va = iom_sys.mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | iom_map_anonymous, -1, 0);
                if (va == MAP_FAILED)
                        err = iom_fail(f->name, -ENOMEM, "cannot map %llu bytes: %s",
                                       (unsigned long long)n, strerror(errno));
        }
        if (!err) {
                obj->allocs.v[obj->allocs.n++] = (struct iom_alloc){ .va = va, .phys = phys, .len = n };
                *out = va;
        }
        iom_lanes_unlock(&obj->lock);
        return err;
}

static int settle(struct iomem *f, int timeout_ms);

/* The cause in the message of f's last failure, without f's name. */
static const char *cause(const struct iomem *f)
{
        const char *m = iomem_errormsg();
        size_t n = strlen(f->name);
        return !strncmp(m, f->name, n) && !strncmp(m + n, ": ", 2) ? m + n + 2 : m;
}

static int fdmem_alloc(struct iomem *f, size_t len, void **out)
{
        uint64_t n = iom_round_up(len, f->page_size);
        if (n < len || n > IOM_DATA_END)
                return iom_fail(f->name, -ENOMEM, "%zu bytes is more than an object can hold", len);
        bool no_room = false;
        int err = alloc_buffer(f, n, true, &no_room, out);
        if (!no_room)
                return err;
        /* What the pool has free is in pieces too small, and it may not
         * grow: its bounds are fixed (mshare's region), or it would span
         * more than twice what it holds. The gifted bytes go in place in
         * the data area, which frees the pool's pages they were in, and
         * one more try, which may grow the pool to its bounds. */
        char why[256], how[256];
        snprintf(why, sizeof why, "%s", cause(f));
        /* Without waiting for the I/O lock: a thread of this process may
         * hold it while it waits for this call. */
        int settled = settle(f, 0);
        snprintf(how, sizeof how, "%s", settled ? cause(f) : "");
        if (!(err = alloc_buffer(f, n, false, &no_room, out)) || !no_room)
                return err;
        if (settled)
                return iom_fail(f->name, -ENOMEM, "%s; putting its gifted bytes in place to make "
                                "room failed: %s", why, how);
        snprintf(why, sizeof why, "%s", cause(f));
        return iom_fail(f->name, -ENOMEM, "%s, even after its gifted bytes were put in place", why);
}

/* The buffer of this handle that holds [p, p+len), or NULL. */
static struct iom_alloc *find_alloc(struct iomem *f, const char *p, size_t len)
{
        struct iom_fdobj *obj = fdo(f);
        for (size_t i = 0; i < obj->allocs.n; i++) {
                struct iom_alloc *a = &obj->allocs.v[i];
                if (p >= (char *)a->va && p + len <= (char *)a->va + a->len)
                        return a;
        }
        return NULL;
}

/*
 * [va, va+len) of buffer a stops being the caller's: drop it from the
 * shared pool records, keeping what is left on either side, then from
 * this handle's list (fdo(f)->lock and the metadata held; allocs_reserve
 * done). On failure nothing has changed.
 */
static int carve_alloc(struct iomem *f, struct iom_alloc *a, char *va, uint64_t len)
{
        struct iom_fdobj *obj = fdo(f);
        struct iom_alloc whole = *a;
        uint64_t head = (uint64_t)(va - (char *)whole.va);
        uint64_t tail = whole.len - head - len;
        if (whole.phys != IOM_HOLE) {
                uint64_t mark = iom_undo_mark(f);
                int err = iom_pool_forget(f, whole.phys);
                if (!err && head)
                        err = iom_pool_add(f, obj->owner, whole.phys, head);
                if (!err && tail)
                        err = iom_pool_add(f, obj->owner, whole.phys + head + len, tail);
                if (err) {
                        iom_undo_back_to(f, mark);
                        return err;
                }
        }
        *a = obj->allocs.v[--obj->allocs.n];
        if (head)
                obj->allocs.v[obj->allocs.n++] = (struct iom_alloc){ whole.va, whole.phys, head };
        if (tail)
                obj->allocs.v[obj->allocs.n++] = (struct iom_alloc){
                        va + len, whole.phys == IOM_HOLE ? IOM_HOLE : whole.phys + head + len, tail };
        return 0;
}

static int fdmem_free(struct iomem *f, void *buf, size_t len)
{
        struct iom_fdobj *obj = fdo(f);
        int err = 0;
        uint64_t n = iom_round_up(len, f->page_size);
        iom_lanes_lock(&obj->lock);
        struct iom_alloc *a = find_alloc(f, buf, n);
        if (!a || a->va != buf || a->len != n) {
                iom_lanes_unlock(&obj->lock);
                if (a)
                        return iom_fail(f->name, -EINVAL, "buffer %p holds %zu bytes, not %zu",
                                        buf, a->len, len);
                return iom_fail(f->name, -EINVAL,
                                "%p is not a buffer from iomem_alloc on this object that is still "
                                "the caller's", buf);
        }
        struct iom_alloc whole = *a;
        if (whole.phys == IOM_HOLE) {
                *a = obj->allocs.v[--obj->allocs.n];
                iom_sys.munmap(whole.va, whole.len);
        } else if ((err = iom_meta_lock(f)) == 0) {
                /* Back to the pool, backed and still mapped here, for the
                 * next buffer. */
                if ((err = iom_pool_recycle(f, whole.phys, whole.len, true)) ||
                    (err = carve_alloc(f, a, buf, n)))
                        iom_meta_undo(f);
                iom_meta_unlock(f);
        }
        iom_lanes_unlock(&obj->lock);
        return err;
}

/* ---- gift ---------------------------------------------------------------------- */

/*
 * Which entries can be adopted without copying: page-aligned memory from
 * iomem_alloc of this handle, landing on a page boundary, a whole number
 * of pages long unless it ends the file, and not given twice.
 */
static void classify(struct iomem *f, size_t off, uint64_t end, uint64_t size,
                     const struct iovec *iov, size_t iovcnt, bool *adopt)
{
        uint64_t ps = f->page_size, dst = off;
        for (size_t i = 0; i < iovcnt; dst += iov[i].iov_len, i++) {
                const struct iovec *v = &iov[i];
                uint64_t n = v->iov_len;
                adopt[i] = false;
                if (!has_pool(f) || !n || ((uintptr_t)v->iov_base & (ps - 1)) || (dst & (ps - 1)))
                        continue;
                if ((n & (ps - 1)) && !(dst + n == end && end >= size))
                        continue;
                struct iom_alloc *a = find_alloc(f, v->iov_base, iom_round_up(n, ps));
                if (!a || a->phys == IOM_HOLE)
                        continue;
                adopt[i] = true;
                for (size_t j = 0; j < i; j++) {
                        char *p = v->iov_base, *q = iov[j].iov_base;
                        if (adopt[j] && p < q + iom_round_up(iov[j].iov_len, ps) &&
                            q < p + iom_round_up(n, ps))
                                adopt[i] = false;
                }
        }
}

static ssize_t fdmem_gift(struct iomem *f, size_t off, size_t len, const struct iovec *iov,
                          size_t iovcnt, unsigned flags)
{
        struct iom_fdobj *obj = fdo(f);
        uint64_t end = (uint64_t)off + len, ps = f->page_size;
        if (end > obj->data_limit)
                return too_big(f);
        bool *adopt = calloc(iovcnt, sizeof *adopt);
        if (!adopt)
                return iom_fail(f->name, -ENOMEM, "out of memory");
        int err = iom_iolock_wrlock(f, f->lock_timeout_ms);
        if (err) {
                free(adopt);
                return err;
        }
        struct punch_list gone = { 0 };
        uint64_t adopted = 0, copied = 0, size = 0;
        bool grew = false;
        iom_lanes_lock(&obj->lock);
        if ((err = iom_meta_lock(f)))
                goto unlock_local;
        struct iom_meta *meta = obj->meta;
        size = meta->size;
        uint64_t new_size = iom_max(size, end);
        if ((err = check_seals(f, size, new_size)) ||
            (err = check_growth(f, size, off, new_size)) ||
            (err = iom_pin_refuse(f, iom_round_down(off, ps), iom_round_up(end, ps))))
                goto unlock_meta;
        classify(f, off, end, size, iov, iovcnt, adopt);
        for (size_t i = 0; i < iovcnt; i++) {
                if (!adopt[i] && iov[i].iov_len && (flags & IOMEM_GIFT_NOCOPY)) {
                        err = iom_fail(f->name, -EXDEV,
                                       "entry %zu (%p, %zu bytes) is not page-aligned memory from "
                                       "iomem_alloc on this object; it would have to be copied",
                                       i, iov[i].iov_base, iov[i].iov_len);
                        goto unlock_meta;
                }
        }
        if ((err = allocs_reserve(f, iovcnt + 1))) {
                err = iom_fail(f->name, -ENOMEM, "out of memory");
                goto unlock_meta;
        }

        /* Bytes past the end in the old last page read as zero once it
         * grows: zeroed while that page is still the old one, as an
         * adopted buffer may replace it below. */
        if (new_size > size && (err = zero_old_tail(f, size, new_size)))
                goto unlock_meta;
        /* One change of the map: growth, adopted extents, and backing for
         * the bytes that will be copied (so the copy cannot fail later). */
        if (new_size > size && ((err = set_data_size(f, new_size)) ||
                                (grew = true, err = iom_map_resize(f, new_size))))
                goto unlock_meta;
        uint64_t dst = off;
        for (size_t i = 0; i < iovcnt && !err; dst += iov[i].iov_len, i++) {
                if (!iov[i].iov_len)
                        continue;
                if (!adopt[i]) {
                        err = fill_holes(f, dst, dst + iov[i].iov_len);
                        continue;
                }
                uint64_t n = iom_round_up(iov[i].iov_len, ps);
                struct iom_alloc *a = find_alloc(f, iov[i].iov_base, n);
                uint64_t phys = a->phys + (uint64_t)((char *)iov[i].iov_base - (char *)a->va);
                err = collect_backed(f, dst, dst + n, &gone);
                if (!err)
                        err = iom_map_set(f, dst, n, phys);
        }
        if (!err)
                err = recycle_pool_pieces(f, &gone);
        /* The copies, into memory backed above, before the change is
         * published: a process killed before that leaves the old file. */
        dst = off;
        for (size_t i = 0; i < iovcnt && !err; dst += iov[i].iov_len, i++) {
                if (adopt[i] || !iov[i].iov_len)
                        continue;
                err = copy_into_map(f, iov[i].iov_base, dst, dst + iov[i].iov_len);
                copied += iov[i].iov_len;
        }
        /* The adopted buffers stop being the caller's. This handle's list
         * changes with the shared records: keep it to put back should
         * the metadata run out of room half way. */
        size_t nallocs = obj->allocs.n;
        struct iom_alloc *kept = err ? NULL : malloc(nallocs * sizeof *kept + 1);
        if (!err && !kept)
                err = iom_fail(f->name, -ENOMEM, "out of memory");
        if (!err)
                memcpy(kept, obj->allocs.v, nallocs * sizeof *kept);
        for (size_t i = 0; i < iovcnt && !err; i++) {
                if (!adopt[i])
                        continue;
                uint64_t n = iom_round_up(iov[i].iov_len, ps);
                err = carve_alloc(f, find_alloc(f, iov[i].iov_base, n), iov[i].iov_base, n);
                adopted += iov[i].iov_len;
        }
        if (!err && !(err = iom_undo_set(f, &meta->gift_adopted, meta->gift_adopted + adopted)))
                err = iom_undo_set(f, &meta->gift_copied, meta->gift_copied + copied);
        if (err) {
                if (kept) {
                        memcpy(obj->allocs.v, kept, nallocs * sizeof *kept);
                        obj->allocs.n = nallocs;
                }
                free(kept);
                iom_meta_undo(f);
                unfill(f, off, end);
                goto unlock_meta;
        }
        free(kept);
        for (size_t i = 0; i < iovcnt; i++) {
                uint64_t n = iom_round_up(iov[i].iov_len, ps);
                if (adopt[i]) /* the tail of its last page reads as zeros */
                        memset((char *)iov[i].iov_base + iov[i].iov_len, 0, n - iov[i].iov_len);
        }
        iom_meta_unlock(f);
        punch_all(f, &gone);
        iom_lanes_unlock(&obj->lock);
        goto unlock_io;

unlock_meta:
        if (grew) /* the change was undone: so is the data file's growth */
                restore_data_size(f, size);
        iom_meta_unlock(f);
unlock_local:
        iom_lanes_unlock(&obj->lock);
unlock_io:
        free(gone.v);
        free(adopt);
        iom_iolock_unlock(f);
        return err ? err : (ssize_t)iovcnt;
}

/* ---- putting bytes in place ------------------------------------------------- */

/* Copy n bytes from physical offset from to physical offset to, both
 * backed (fdo(f)->lock and the metadata held). */
static int copy_phys(struct iomem *f, uint64_t to, uint64_t from, uint64_t n)
{
        while (n) {
                uint64_t cs, cd;
                int err;
                char *src = iom_seg_resolve(f, from, n, &cs, &err);
                char *dst = src ? iom_seg_resolve(f, to, n, &cd, &err) : NULL;
                if (!dst)
                        return err;
                uint64_t k = iom_min(n, iom_min(cs, cd));
                memcpy(dst, src, k);
                from += k;
                to += k;
                n -= k;
        }
        return 0;
}

/*
 * Put every byte of the object at its own offset in data_fd: each range a
 * zero-copy gift left in the gift pool is copied once into place, so that
 * the data file is the object to programs that read it without the
 * library. A range pinned by any process stays where its pinner's
 * addresses are: -EBUSY. One change of the map (the metadata held), whose
 * copies land before it is kept, so a process killed half way leaves the
 * bytes where they were; the pool's pages of each range go back to it
 * with the change that moves it.
 */
static int settle_locked(struct iomem *f)
{
        uint64_t end = iom_round_up(fdo(f)->meta->size, f->page_size);
        struct punch_list out_of_place = { 0 }, *moved = &out_of_place;
        int err = collect_backed(f, 0, end, moved);
        size_t n = 0;
        for (size_t i = 0; i < moved->n && !err; i++) {
                if (moved->v[i].phys == moved->v[i].file)
                        continue;
                if (!iom_fd_writable(f))
                        err = iom_fail(f->name, -EROFS, "the object is open read-only, and bytes "
                                       "[%llu, %llu) of it are out of place (gifted); a read-write "
                                       "handle must put them in place",
                                       (unsigned long long)moved->v[i].file,
                                       (unsigned long long)(moved->v[i].file + moved->v[i].len));
                else
                        err = iom_pin_refuse(f, moved->v[i].file, moved->v[i].file + moved->v[i].len);
                moved->v[n++] = moved->v[i];
        }
        moved->n = err ? 0 : n;
        /* A change per range, kept before the next, so that the undo log
         * needs room for one only. */
        for (size_t i = 0; i < moved->n && !err; i++) {
                uint64_t at = moved->v[i].file, len = moved->v[i].len;
                punch(f, at, len); /* whatever a killed process left at its own offset */
                if (!(err = allocate(f, at, len)) && !(err = copy_phys(f, at, moved->v[i].phys, len)) &&
                    !(err = iom_map_set(f, at, len, at)) &&
                    !(err = iom_pool_recycle(f, moved->v[i].phys, len, true))) {
                        iom_meta_keep(f);
                        continue;
                }
                iom_meta_undo(f);
                punch(f, at, len);
        }
        free(out_of_place.v);
        /* A process killed between growing the data file and keeping the
         * change left it too large: it is the object's size again. */
        if (iom_fd_writable(f))
                restore_data_size(f, fdo(f)->meta->size);
        return err;
}

/* settle_locked, with the locks it needs: the I/O lock within timeout_ms
 * (iom_iolock_wrlock). */
static int settle(struct iomem *f, int timeout_ms)
{
        struct iom_fdobj *obj = fdo(f);
        if (obj->meta_private)
                return 0; /* its map was read from the data file: nothing is elsewhere */
        int err = iom_iolock_wrlock(f, timeout_ms);
        if (err)
                return err;
        iom_lanes_lock(&obj->lock);
        if ((err = iom_meta_lock(f)) == 0) {
                err = settle_locked(f);
                iom_meta_unlock(f);
        }
        iom_lanes_unlock(&obj->lock);
        iom_iolock_unlock(f);
        return err;
}

static int fdmem_settle(struct iomem *f)
{
        return settle(f, f->lock_timeout_ms);
}

/* ---- seals ------------------------------------------------------------------- */


/*
 * Add seals. A write seal needs what the kernel's needs (no writable
 * mapping of the data anywhere) and what the library promises (every
 * byte in place in the data file, for whoever is handed it): so no pin
 * by any process, the gifted ranges put in place, and this handle's
 * mappings of the data let go. Other handles let theirs go when they hold
 * no pins and see that a seal asked (meta->seal_asks), or when they close.
 */
static int fdmem_seal(struct iomem *f, unsigned seals)
{
        struct iom_fdobj *obj = fdo(f);
        if (!obj->seal_data)
                return iom_fail(f->name, -ENOTSUP, "%s objects cannot be sealed (memfd objects can)",
                                f->backend->name);
        int err = iom_iolock_wrlock(f, f->lock_timeout_ms);
        if (err)
                return err;
        iom_lanes_lock(&obj->lock);
        if ((err = iom_meta_lock(f)))
                goto unlock_local;
        struct iom_meta *m = obj->meta;
        unsigned add = seals & ~m->seals;
        if (add & IOMEM_SEAL_WRITE) {
                uint64_t end = iom_round_up(m->size, f->page_size);
                if (!(err = iom_pin_refuse(f, 0, end)))
                        err = settle_locked(f); /* what moved stays in place, whatever comes next */
                if (err)
                        goto refused;
                if (!iom_seg_protect_data(f)) {
                        err = iom_fail(f->name, -EBUSY, "this handle cannot map its bytes read-only "
                                       "(no read-only descriptor of its data file)");
                        goto refused;
                }
                obj->seal_asks_seen = m->seal_asks;
        }
        /* The kernel's first: the library's record never claims a seal the
         * kernel refused (iomem_sendfile trusts both). */
        if (add && !(err = obj->seal_data(f, add)))
                err = iom_undo_set32(f, &m->seals, m->seals | add);
        if (err) {
                if (err == -EBUSY) {
                        char who[200];
                        iom_owner_name_others(f, who, sizeof who);
                        err = iom_fail(f->name, -EBUSY, "its bytes are still mapped by other handles, "
                                       "which let their mappings go at their next release of their "
                                       "last pin, or when they close; its other handles are in "
                                       "processes %s", who);
                }
        }
refused:
        if (err == -EBUSY) /* the others let their mappings go when they can */
                m->seal_asks++;
        iom_meta_unlock(f);
unlock_local:
        iom_lanes_unlock(&obj->lock);
        iom_iolock_unlock(f);
        return err;
}


/* ---- advice, and the walk over what is mapped ------------------------------------ */

int iom_fdmem_each_mapped(struct iomem *f, size_t off, size_t len, bool map,
                          int (*fn)(struct iomem *f, char *va, size_t len, void *arg), void *arg)
{
        struct iom_fdobj *obj = fdo(f);
        iom_lanes_lock(&obj->lock);
        int err = iom_meta_lock(f);
        if (err) {
                iom_lanes_unlock(&obj->lock);
                return err;
        }
        uint64_t ps = f->page_size, size = iom_round_up(obj->meta->size, ps);
        uint64_t s = iom_round_down(off, ps), e = iom_round_up(iom_min((uint64_t)off + len, size), ps);
        struct iom_ext_iter it;
        struct iom_extent x;
        int r = s < e ? iom_ext_first(&it, f, s, &x) : 0;
        for (; r > 0 && x.off < e && !err; r = x.off + x.len < e ? iom_ext_next(&it, &x) : 0) {
                uint64_t a = iom_max(s, x.off), b = iom_min(e, x.off + x.len);
                for (uint64_t p = x.phys + (a - x.off), n = b - a; x.phys != IOM_HOLE && n && !err;) {
                        uint64_t contig;
                        char *va = iom_seg_lookup(f, p, n, &contig);
                        if (!va && map)
                                va = iom_seg_resolve(f, p, n, &contig, &err);
                        if (!va && !err) { /* not mapped here: on to the next mapped piece */
                                uint64_t next = iom_seg_next_mapped(f, p);
                                uint64_t skip = next - p < n ? next - p : n;
                                p += skip;
                                n -= skip;
                                continue;
                        }
                        if (!va)
                                break;
                        contig = iom_min(contig, n);
                        err = fn(f, va, (size_t)contig, arg);
                        p += contig;
                        n -= contig;
                }
        }
        if (r < 0 && !err)
                err = r;
        iom_meta_unlock(f);
        iom_lanes_unlock(&obj->lock);
        return err;
}

static int advise_piece(struct iomem *f, char *va, size_t len, void *advice)
{
        if (iom_sys.madvise(va, len, *(const int *)advice) < 0)
                return iom_fail(f->name, -errno, "madvise: %s", strerror(errno));
        return 0;
}

/*
 * madvise(advice) on this process's mappings of the backed bytes of
 * [off, off+len), WILLNEED mapping them first (holes have no memory to
 * advise, and advice never allocates). Other advice is about this
 * process's view of the memory, and leaves the mappings as they are
 * (read-only for a seal): the bytes and other processes' mappings are
 * untouched (DONTNEED on shared memory drops page table entries, not data).
 */
static int fdmem_advise(struct iomem *f, size_t off, size_t len, int advice)
{
        struct iom_fdobj *obj = fdo(f);
        enum iom_advice kind = iom_advice_kind(advice);
        /* hugetlbfs pages are never paged out, and huge already; a wired
         * handle's memory stays (the kernel refuses to drop locked pages). */
        if (f->page_size > iom_system_page_size() &&
            (kind == IOM_ADV_COLD || kind == IOM_ADV_PAGEOUT || kind == IOM_ADV_HUGEPAGE ||
             kind == IOM_ADV_NOHUGEPAGE))
                return 0;
        if (obj->wired && (kind == IOM_ADV_DONTNEED || kind == IOM_ADV_COLD || kind == IOM_ADV_PAGEOUT))
                return 0;
        return iom_fdmem_each_mapped(f, off, len, kind == IOM_ADV_WILLNEED, advise_piece, &advice);
}

/* ---- locks, stat, sync, close ---------------------------------------------- */

/* The node that holds most of the object's memory, from up to 1024 of its
 * backed pages spread over the file (f->lock and the metadata held). */
static int numa_node(struct iomem *f)
{
        enum { SAMPLES = 1024 };
        if (!IOMEM_HAVE_NUMA)
                return -1;
        void *pages[SAMPLES];
        unsigned n = 0;
        struct iom_ext_iter it;
        struct iom_extent e;
        uint64_t data = 0;
        for (int r = iom_ext_first(&it, f, 0, &e); r > 0; r = iom_ext_next(&it, &e))
                if (e.phys != IOM_HOLE)
                        data += e.len;
        uint64_t step = iom_max(f->page_size, iom_round_up(data / SAMPLES + 1, f->page_size));
        for (int r = iom_ext_first(&it, f, 0, &e); r > 0 && n < SAMPLES; r = iom_ext_next(&it, &e)) {
                for (uint64_t off = 0; e.phys != IOM_HOLE && off < e.len && n < SAMPLES; off += step) {
                        uint64_t contig;
                        int err;
                        char *va = iom_seg_resolve(f, e.phys + off, f->page_size, &contig, &err);
                        if (!va)
                                continue;
                        /* move_pages sees only pages this process has mapped. */
                        iom_advise(va, f->page_size, IOM_ADV_POPULATE_READ);
                        pages[n++] = va;
                }
        }
        return iom_numa_node_of(pages, n);
}

static int fdmem_stat(struct iomem *f, struct iomem_stat *st)
{
        struct iom_fdobj *obj = fdo(f);
        int err = 0;
        iom_lanes_lock(&obj->lock);
        if ((err = iom_meta_lock(f)) == 0) {
                st->size = obj->meta->size;
                st->seals = obj->meta->seals;
                st->wired = obj->wired ? iom_ranges_bytes(&obj->pins) : 0;
                st->numa_node = numa_node(f);
                err = iom_stat_shared(f, st);
                iom_meta_unlock(f);
        }
        iom_lanes_unlock(&obj->lock);
        return err;
}

/* Memory objects have nothing behind them to flush. */
static int fdmem_sync(struct iomem *f, size_t off, size_t len)
{
        (void)f, (void)off, (void)len;
        return 0;
}

static int fdmem_send_fds(const struct iomem *f, int *fds, int max)
{
        struct iom_fdobj *obj = fdo(f);
        int n = 0;
        fds[n++] = f->data_fd;
        /* The metadata's own descriptor, unless this handle keeps its own. */
        if (obj->aux_fd >= 0 && obj->aux_fd != f->data_fd && !obj->meta_private && n < max)
                fds[n++] = obj->aux_fd;
        return n;
}

void iom_fdmem_init(struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        obj->aux_fd = -1;
        obj->data_ro_fd = -1;
        obj->phys = &iom_phys_fd;
        obj->data_limit = IOM_DATA_END;
        obj->pool_end = IOM_PHYS_END;
        obj->owner = IOM_NO_OWNER;
        obj->meta_map_len = IOM_META_SPAN;
        iom_lanes_init(&obj->lock);
}

void iom_fdmem_close(struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        iom_pair_drop(f);
        /* Nothing of this handle reaches its buffers once the pool hands
         * them out again. */
        iom_seg_unmap_all(f);
        for (size_t i = 0; i < obj->allocs.n; i++)
                if (obj->allocs.v[i].phys == IOM_HOLE)
                        iom_sys.munmap(obj->allocs.v[i].va, obj->allocs.v[i].len);
        /* A handle inherited across fork holds nothing in the child. */
        if (obj->meta && obj->owner != IOM_NO_OWNER && f->fork_gen == iom_fork_generation() &&
            iom_meta_lock(f) == 0) {
                iom_owner_unregister(f);
                /* Nobody uses the pool's free memory until the object is
                 * opened again (a named one outlives its handles). */
                if (!iom_owner_any_alive(f)) {
                        iom_meta_keep(f);
                        iom_pool_empty(f);
                }
                iom_meta_unlock(f);
        }
        free(obj->allocs.v);
        iom_ranges_clear(&obj->pins);
        if (obj->meta_private)
                iom_sys.munmap(obj->meta, obj->meta_map_len);
        else if (obj->meta)
                obj->phys->unmap(f, obj->meta, obj->meta_map_len);
        obj->meta = NULL;
        if (obj->aux_fd >= 0 && obj->aux_fd != f->data_fd)
                close(obj->aux_fd);
        if (f->data_fd >= 0)
                close(f->data_fd);
        if (obj->data_ro_fd >= 0)
                close(obj->data_ro_fd);
        obj->aux_fd = f->data_fd = obj->data_ro_fd = -1;
        iom_lanes_destroy(&obj->lock);
}

const struct iom_object_ops iom_fdmem_ops = {
        .size = sizeof(struct iom_object_ops),
        .after_fork = iom_fdmem_after_fork,
        .acquire = fdmem_acquire,
        .release = fdmem_release,
        .retrieve = fdmem_retrieve,
        .borrow = fdmem_borrow,
        .bufcount = fdmem_bufcount,
        .gift = fdmem_gift,
        .alloc = fdmem_alloc,
        .free = fdmem_free,
        .rdlock = iom_iolock_rdlock,
        .wrlock = iom_iolock_wrlock,
        .unlock = iom_iolock_unlock,
        .stat = fdmem_stat,
        .truncate = fdmem_truncate,
        .pread = fdmem_pread,
        .pwrite = fdmem_pwrite,
        .sync = fdmem_sync,
        .send_fds = fdmem_send_fds,
        .close = iom_fdmem_close,
        .settle = fdmem_settle,
        .seal = fdmem_seal,
        .frozen = fdmem_frozen,
        .advise = fdmem_advise,
};

/* ---- attaching ------------------------------------------------------------------ */

static int map_meta(struct iomem *f, int prot)
{
        struct iom_fdobj *obj = fdo(f);
        void *p = obj->phys->map(f, NULL, IOM_META_OFF, obj->meta_map_len, prot, iom_map_noreserve);
        if (p == MAP_FAILED) {
                int e = errno;
                return iom_fail(f->name, -e, "cannot map its metadata: %s", strerror(e));
        }
        obj->meta = p;
        return 0;
}

/* Metadata of this handle alone, in anonymous memory. */
static int private_meta(struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        void *p = iom_sys.mmap(NULL, obj->meta_map_len, PROT_READ | PROT_WRITE,
                               MAP_PRIVATE | iom_map_anonymous | iom_map_noreserve, -1, 0);
        if (p == MAP_FAILED)
                return iom_fail(f->name, -ENOMEM, "cannot map its metadata: %s", strerror(errno));
        obj->meta = p;
        obj->meta_private = true;
        f->caps &= ~(IOMEM_CAP_GIFT | IOMEM_CAP_SHARED);
        return iom_meta_init(obj->meta, f->page_size, obj->meta_map_len, false);
}

/* Before using metadata that others made: its header, and every extent
 * (a map that does not tile the file is refused now, not half way
 * through some later call). */
static int check_shared_meta(struct iomem *f)
{
        int err = iom_meta_lock(f);
        if (err)
                return err;
        struct iom_ext_iter it;
        struct iom_extent e;
        int r = iom_ext_first(&it, f, 0, &e);
        while (r > 0)
                r = iom_ext_next(&it, &e);
        iom_meta_unlock(f);
        return r < 0 ? iom_fail(f->name, -EBADMSG, "its metadata is not valid") : 0;
}

int iom_fdmem_attach(struct iomem *f, enum iom_attach how, const struct iomem_opts *o)
{
        struct iom_fdobj *obj = fdo(f);
        uint64_t initial = iom_meta_initial(f->page_size);
        int err = 0;
        obj->numa_policy = o->numa_policy;
        obj->numa_node = o->numa_node;
        obj->wired = o->wired;
        /* Transparent huge pages, where the kernel gives them to tmpfs
         * files of base pages (hugetlbfs pages are huge already). */
        enum iom_thp thp = f->page_size == iom_system_page_size() ? iom_thp_of(f->data_fd)
                                                                  : IOM_THP_NEVER;
        obj->thp_advise = thp == IOM_THP_ADVISE;
        if (thp != IOM_THP_NEVER)
                f->caps |= IOMEM_CAP_THP;
        if (initial > obj->meta_map_len)
                return iom_fail(f->name, -ENOSPC, "no room for its metadata");
        if (how == IOM_ATTACH_PRIVATE) {
                if (!(err = private_meta(f)) && (err = iom_meta_describe_fd(f, f->data_fd)))
                        err = iom_fail(f->name, err, "cannot read its layout: %s", strerror(-err));
                iom_meta_keep(f);
        } else if (how == IOM_ATTACH_SHARED) {
                if ((err = map_meta(f, PROT_READ | PROT_WRITE)) || (err = check_shared_meta(f)))
                        return err;
        } else {
                /* Back the header and the first of the heap now: touching
                 * them must never SIGBUS. The rest is backed as it grows. */
                if ((err = allocate(f, IOM_META_OFF, initial)) ||
                    (err = map_meta(f, PROT_READ | PROT_WRITE)))
                        return err;
                memset(obj->meta, 0, sizeof *obj->meta);
                if ((err = iom_meta_init(obj->meta, f->page_size, obj->meta_map_len, true)))
                        return iom_fail(f->name, err, "cannot initialise its metadata");
                if (how == IOM_ATTACH_ADOPT) {
                        if ((err = iom_meta_describe_fd(f, f->data_fd)))
                                err = iom_fail(f->name, err, "cannot read its layout: %s",
                                               strerror(-err));
                } else if (o->size) {
                        if (o->size > obj->data_limit)
                                err = too_big(f);
                        else if (!(err = check_space(f, o->size)) &&
                                 !(err = set_data_size(f, o->size)))
                                err = iom_map_resize(f, o->size);
                }
                obj->meta->seals = o->seals;
                iom_meta_keep(f);
        }
        if (err)
                return err;
        if ((err = iom_meta_lock(f)))
                return err;
        err = iom_owner_register(f);
        obj->seal_asks_seen = obj->meta->seal_asks; /* asks before it are not for it */
        iom_meta_unlock(f);
        if (!err && how != IOM_ATTACH_PRIVATE && obj->aux_fd >= 0 && obj->aux_fd != f->data_fd)
                err = iom_pair_hold(f);
        return err;
}
