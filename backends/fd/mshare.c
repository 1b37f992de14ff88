/* SPDX-License-Identifier: MIT */
/*
 * mshare: a region file in msharefs, whose page tables every process that
 * maps it shares (one set of page tables for a region, however many
 * processes map it). msharefs is not in mainline Linux; its ABI changed
 * between postings, and mshare_abi.c hides which one the kernel speaks.
 *
 * The kernel maps a region only whole and sizes it once, in multiples of
 * the alignment it publishes in mshare_info. So a region is sized when
 * it is created, big enough for the metadata and the asked-for size, and
 * each handle maps it once:
 *
 *   [0, meta_room)        the metadata (meta.h): first, so that an
 *                         attacher reads the page size and the used size
 *                         before anything else; a sixteenth of the used
 *                         size (at least its first blocks), which bounds
 *                         its tables as the region bounds the file
 *   [meta_room, +data)    the file's bytes; data is the capacity
 *   [.., used)            the gift pool (iomem_alloc buffers), as large
 *   [used, region)        nothing: used is the whole region, whose memory
 *                         comes as it is touched, except where backing
 *                         costs up front (hugetlb reserves every page of
 *                         a mapping; anonymous memory may be refused
 *                         beyond what the system could commit): then
 *                         only what was asked for
 *
 * The split follows from the used size and page size alone, so every
 * attacher computes the same one.
 *
 * Everything else is the fd-memory engine's (fdmem.c), through physical
 * offsets translated into the one mapping (region_phys below).
 *
 * Under the 2025 v3 posting the process that created a region owns its
 * contents: when it exits they are unmapped for everyone. The next call
 * on a handle notices (the metadata no longer reads) and fails with
 * -EIDRM instead of letting the caller fault.
 */
#define _GNU_SOURCE
#include "config.h"
#include "fdmem.h"
#include "mshare_abi.h"
#include "syscalls.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#ifndef MFD_HUGE_2MB /* in linux/memfd.h, which clashes with sys/mman.h */
#define MFD_HUGE_2MB (21u << 26)
#define MFD_HUGE_1GB (30u << 26)
#endif

#define MSHAREFS_MAGIC 0x4d534852 /* "MSHR" */
#define MSHARE_INFO "mshare_info"  /* the alignment, as decimal text */
#define MIB (UINT64_C(1) << 20)

struct mshare_priv {
        const struct mshare_abi *abi;
        char *base;          /* the whole region, mapped once */
        bool listed;         /* base is in region_maps */
        bool sized;          /* this handle sized the region (created it) */
        uint64_t region;     /* its size */
        uint64_t used;       /* how much of it is backed and laid out */
        uint64_t meta_room;  /* where the file's bytes start in it */
        uint64_t data;       /* their capacity; the gift pool follows */
};

/* An mshare object's state: the engine's, then the region's. */
struct mshare_obj {
        struct iom_fdobj engine;
        struct mshare_priv region;
};

static struct mshare_priv *priv(const struct iomem *f)
{
        return &((struct mshare_obj *)f->priv)->region;
}

/* IOMEM_MSHARE_DIR, or where the mshare patches say to mount it. */
static const char *mshare_dir(void)
{
        const char *d = getenv("IOMEM_MSHARE_DIR");
        return d && *d ? d : "/sys/fs/mshare";
}

static int mshare_probe(const char **why)
{
        static __thread char reason[320];
        struct iom_fsinfo sf;
        const char *dir = mshare_dir();
        if (iom_sys.statfs(dir, &sf) == 0 && sf.kind == IOM_FS_MSHARE)
                return 1;
        snprintf(reason, sizeof reason,
                 "no msharefs mounted at %s: it needs a kernel with the mshare patches, then "
                 "`mount -t msharefs msharefs %s`", dir, dir);
        *why = reason;
        return 0;
}

/*
 * Read 8 bytes of the region without touching it: when the region's
 * creator has exited (v3) its memory is gone, and the answer must be an
 * error, not SIGSEGV. -EFAULT when it does not read. Where the kernel
 * will not say (no process_vm_readv, or a seccomp policy), read it.
 */
static int peek(const void *p, uint64_t *out)
{
        struct iovec local = { out, sizeof *out }, remote = { (void *)p, sizeof *out };
        ssize_t n = iom_sys.process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
        if (n == (ssize_t)sizeof *out)
                return 0;
        if (n < 0 && errno == EFAULT)
                return -EFAULT;
        memcpy(out, p, sizeof *out);
        return 0;
}

static bool region_alive(const struct mshare_priv *p)
{
        uint64_t magic;
        return peek(p->base, &magic) == 0 && magic == IOM_META_MAGIC;
}

static int check_region(struct iomem *f)
{
        if (region_alive(priv(f)))
                return 0;
        return iom_fail(f->name, -EIDRM,
                        "its contents are gone: the process that created the region has exited "
                        "(msharefs unmaps a region's memory when its creator exits)");
}

static int map_region(struct iomem *f, int fd, char *at, int flags);

/* ---- one mapping of a region per process ---------------------------------- */

/*
 * A process maps a region once, however many handles it opens: handles of
 * one region share that mapping, counted. Under the older ABI a region
 * lives at one address in every process, so it could not be mapped twice
 * anyway; under any ABI a region is as large as the alignment (512 GiB on
 * x86-64), and a few hundred handles would use up the address space. A
 * child inherits the table with the mappings it describes.
 */
static struct {
        pthread_mutex_t lock;
        struct region_map { dev_t dev; ino_t ino; char *base; uint64_t len; unsigned refs; } *v;
        size_t n, cap;
} region_maps = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* A fork while another thread holds the table's lock (mapping a region)
 * must not leave it held in the child: the forking thread takes it, and
 * lets go in the parent and in the child (as files_lock in daxfile.c). */
static void region_maps_take(void) { pthread_mutex_lock(&region_maps.lock); }
static void region_maps_give(void) { pthread_mutex_unlock(&region_maps.lock); }

__attribute__((constructor)) static void region_maps_at_fork(void)
{
        pthread_atfork(region_maps_take, region_maps_give, region_maps_give);
}

/* This process's mapping of region fd: found (counted) or made, at start
 * when that is not NULL (flags say how firmly). */
static int region_get(struct iomem *f, int fd, char *start, int flags)
{
        struct mshare_priv *p = priv(f);
        struct stat st;
        if (iom_sys.fstat(fd, &st)) {
                int e = errno;
                return iom_fail(f->name, -e, "cannot examine its region: %s", strerror(e));
        }
        int err = 0;
        pthread_mutex_lock(&region_maps.lock);
        for (size_t i = 0; i < region_maps.n; i++) {
                struct region_map *m = &region_maps.v[i];
                if (m->dev == st.st_dev && m->ino == st.st_ino) {
                        m->refs++;
                        p->base = m->base;
                        p->listed = true;
                        goto out;
                }
        }
        if (region_maps.n == region_maps.cap) {
                size_t cap = region_maps.cap ? 2 * region_maps.cap : 4;
                void *v = realloc(region_maps.v, cap * sizeof *region_maps.v);
                if (!v) {
                        err = iom_fail(f->name, -ENOMEM, "out of memory");
                        goto out;
                }
                region_maps.v = v;
                region_maps.cap = cap;
        }
        if ((err = map_region(f, fd, start, flags)))
                goto out;
        region_maps.v[region_maps.n++] = (struct region_map){
                .dev = st.st_dev, .ino = st.st_ino, .base = p->base, .len = p->region, .refs = 1,
        };
        p->listed = true;
out:
        pthread_mutex_unlock(&region_maps.lock);
        return err;
}

static void region_put(char *base)
{
        pthread_mutex_lock(&region_maps.lock);
        for (size_t i = 0; i < region_maps.n; i++) {
                struct region_map *m = &region_maps.v[i];
                if (m->base == base && !--m->refs) {
                        iom_sys.munmap(m->base, m->len);
                        *m = region_maps.v[--region_maps.n];
                        break;
                }
        }
        pthread_mutex_unlock(&region_maps.lock);
}

/* ---- physical offsets inside the one mapping ------------------------------ */

static void *region_map(struct iomem *f, void *hint, uint64_t phys, uint64_t len, int prot,
                        int flags)
{
        (void)hint, (void)prot, (void)flags; /* one mapping, made at open */
        const struct mshare_priv *p = priv(f);
        uint64_t at, rel, room;
        if (phys < IOM_META_OFF)
                at = p->meta_room, rel = phys, room = p->data;
        else if (phys < IOM_POOL_OFF)
                at = 0, rel = phys - IOM_META_OFF, room = p->meta_room;
        else
                at = p->meta_room + p->data, rel = phys - IOM_POOL_OFF,
                room = p->used - at;
        if (rel > room || len > room - rel) {
                errno = EINVAL;
                return MAP_FAILED;
        }
        return p->base + at + rel;
}

/* The mapping goes with the handle, in mshare_close. */
static void region_unmap(struct iomem *f, void *va, uint64_t len)
{
        (void)f, (void)va, (void)len;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* The creator backed the whole region with shared memory when it created
 * it, so no page faults into a SIGBUS later: base pages come as they are
 * touched, and hugetlb pages are reserved by that mapping. A punch
 * (MADV_REMOVE) gives a huge page's reservation back with it, so huge
 * pages that the gift pool hands out again are taken now, where a lack of
 * them is an error and not a signal. */
static int region_back(struct iomem *f, uint64_t phys, uint64_t len)
{
        if (f->page_size <= iom_system_page_size())
                return 0;
        char *va = region_map(f, NULL, phys, len, 0, 0);
        if (va != MAP_FAILED && iom_sys.madvise(va, len, MADV_POPULATE_WRITE) == 0)
                return 0;
        return iom_fail(f->name, -ENOMEM, "no free %zu KiB huge pages for %llu bytes of its region "
                        "(reserve more with the sysctl vm.nr_hugepages)", f->page_size >> 10,
                        (unsigned long long)len);
}

/* Shared memory (anonymous or a memfd) gives pages back on MADV_REMOVE;
 * where a kernel refuses it through the region, zeros keep the promise
 * that punched pages read as zeros. */
static void region_punch(struct iomem *f, uint64_t phys, uint64_t len)
{
        char *va = region_map(f, NULL, phys, len, 0, 0);
        if (va != MAP_FAILED && iom_sys.madvise(va, len, MADV_REMOVE))
                memset(va, 0, len);
}

static const struct iom_phys_ops region_phys = {
        .map = region_map,
        .unmap = region_unmap,
        .back = region_back,
        .punch = region_punch,
};

/* ---- operations: the engine's, once the region is known to be there ------ */

static int mshare_before_call(struct iomem *f)
{
        return check_region(f);
}

static void mshare_close(struct iomem *f)
{
        struct mshare_priv *p = priv(f);
        /* A region whose memory is gone has no owner table to leave. */
        if (p->base && fdo(f)->meta && !region_alive(p))
                fdo(f)->owner = IOM_NO_OWNER;
        iom_fdmem_close(f);
        if (p->listed)
                region_put(p->base);
        else if (p->base)
                iom_sys.munmap(p->base, p->region);
        p->base = NULL;
        p->listed = false;
}

static int mshare_settle(struct iomem *f)
{
        return iom_fail(f->name, -ENOTSUP, "its bytes are laid out in an msharefs region with its "
                        "metadata, not in a file of their own; copy them out (iomem_sendfile)");
}

static const struct iom_object_ops mshare_ops = {
        .size = sizeof(struct iom_object_ops),
        .base = &iom_fdmem_ops,
        .before_call = mshare_before_call,
        /* The region file is all a peer needs (aux_fd is at most its twin). */
        .send_fds = iom_send_data_fd,
        .close = mshare_close,
        .settle = mshare_settle,
};

/* ---- finding, creating and attaching regions ----------------------------- */

/* "mshare:NAME" for messages about a name (no object yet). */
static const char *uri_of(const char *name)
{
        static __thread char uri[NAME_MAX + 16];
        snprintf(uri, sizeof uri, "mshare:%s", name);
        return uri;
}

/* The region file's path; names are one component, and mshare_info is
 * the filesystem's own. */
static int region_path(const char *name, char *path, size_t cap)
{
        if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") ||
            !strcmp(name, MSHARE_INFO))
                return iom_fail(uri_of(name), -EINVAL,
                                "a region name is one path component other than " MSHARE_INFO);
        if (strlen(name) > NAME_MAX)
                return iom_fail(uri_of(name), -ENAMETOOLONG, "the name is longer than %d bytes",
                                NAME_MAX);
        if (snprintf(path, cap, "%s/%s", mshare_dir(), name) >= (int)cap)
                return iom_fail(uri_of(name), -ENAMETOOLONG, "its path is longer than %zu bytes",
                                cap - 1);
        return 0;
}

/* The alignment every region's size (and, in the older ABI, address)
 * must have: PGDIR or P4D size, as the kernel publishes it. */
static int read_alignment(struct iomem *f, uint64_t *align)
{
        char path[PATH_MAX], text[32];
        snprintf(path, sizeof path, "%s/" MSHARE_INFO, mshare_dir());
        int fd = iom_sys.open(path, O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0) {
                int e = errno;
                return iom_fail(f->name, -e, "cannot read the region alignment from %s: %s", path,
                                strerror(e));
        }
        ssize_t n = iom_sys.pread(fd, text, sizeof text - 1, 0);
        close(fd);
        unsigned long long a = 0;
        if (n > 0) {
                text[n] = 0;
                a = strtoull(text, NULL, 10);
        }
        if (a < iom_system_page_size() || !iom_is_pow2((size_t)a))
                return iom_fail(f->name, -EIO,
                                "%s holds no alignment (a power of two, at least a page)", path);
        *align = a;
        return 0;
}

/* Map the region file whole: at `at` (flags say how firmly) or anywhere. */
static int map_region(struct iomem *f, int fd, char *at, int flags)
{
        struct mshare_priv *p = priv(f);
        char *va = iom_sys.mmap(at, p->region, PROT_READ | PROT_WRITE, MAP_SHARED | flags, fd, 0);
        if (va == MAP_FAILED) {
                int e = errno;
                if (at && e == EEXIST)
                        return iom_fail(f->name, -EBUSY,
                                        "its region must be mapped at %p, where this process has "
                                        "other mappings", (void *)at);
                return iom_fail(f->name, e == ENOMEM ? -ENOMEM : -e,
                                "cannot map its %llu-byte region: %s",
                                (unsigned long long)p->region, strerror(e));
        }
        p->base = va;
        if (at && va != at) /* a kernel that takes MAP_FIXED_NOREPLACE as a hint */
                return iom_fail(f->name, -EBUSY, "its region must be mapped at %p, not %p",
                                (void *)at, (void *)va);
        return 0;
}

/* Address space for a region that every process maps at one address:
 * len bytes at a multiple of align, held PROT_NONE until the region is
 * mapped over it with MAP_FIXED (never a hole another thread could take). */
static char *reserve_aligned(uint64_t len, uint64_t align)
{
        char *r = iom_sys.mmap(NULL, len + align, PROT_NONE,
                               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (r == MAP_FAILED)
                return NULL;
        char *a = (char *)(uintptr_t)iom_round_up((uintptr_t)r, align);
        if (a > r)
                iom_sys.munmap(r, (size_t)(a - r));
        if (r + align > a)
                iom_sys.munmap(a + len, (size_t)(r + align - a));
        return a;
}

static int no_huge_pages(struct iomem *f)
{
        return iom_fail(f->name, -ENOTSUP,
                        "huge pages need an msharefs that maps files into regions (the 2025 v3 "
                        "posting); this kernel's msharefs (%s) maps anonymous memory only",
                        priv(f)->abi->name);
}

/* Put memory behind p->used bytes of the region (least of them if the
 * kernel will not commit more): a memfd (hugetlb when asked) where the
 * kernel maps files into regions (v3), anonymous shared memory where it
 * maps only that (v2 and the older ABI). */
static int back_region(struct iomem *f, int fd, uint64_t least, const struct iomem_opts *o)
{
        struct mshare_priv *p = priv(f);
        const int prot = PROT_READ | PROT_WRITE;
        int err;
        if (p->abi->file_backing) {
                unsigned mflags = MFD_CLOEXEC;
                if (o->hugepage)
                        mflags |= MFD_HUGETLB | (o->hugepage == 2 * MIB ? MFD_HUGE_2MB : MFD_HUGE_1GB);
                int mfd = iom_sys.memfd_create("iomem-mshare", mflags);
                if (mfd < 0) {
                        int e = errno;
                        if (o->hugepage && e == EINVAL)
                                return iom_fail(f->name, -ENODEV, "the kernel has no %zu KiB huge pages",
                                                o->hugepage >> 10);
                        return iom_fail(f->name, -e, "memfd_create: %s", strerror(e));
                }
                err = iom_sys.ftruncate(mfd, (off_t)p->used) ? -errno : 0;
                if (!err)
                        err = p->abi->create_mapping(fd, p->base, 0, p->used, prot, mfd, 0);
                close(mfd);
                if (!err)
                        return 0;
                if (o->hugepage && (err == -ENOMEM || err == -ENOSPC))
                        return iom_fail(f->name, -ENOMEM,
                                        "no %llu bytes of free %zu KiB huge pages for its region "
                                        "(reserve more with the sysctl vm.nr_hugepages)",
                                        (unsigned long long)p->used, o->hugepage >> 10);
                if (err == -EINVAL && o->hugepage)
                        return no_huge_pages(f);
                if (err != -EINVAL)
                        return iom_fail(f->name, err, "cannot map %s memory into its region: %s",
                                        o->hugepage ? "huge-page" : "memfd", strerror(-err));
                /* v2: anonymous memory only. */
        } else if (o->hugepage) {
                return no_huge_pages(f);
        }
        err = p->abi->create_mapping(fd, p->base, 0, p->used, prot, -1, 0);
        if (err == -ENOMEM && p->used > least) {
                /* More than the system would commit: what was asked for. */
                p->used = least;
                err = p->abi->create_mapping(fd, p->base, 0, p->used, prot, -1, 0);
        }
        if (err)
                return iom_fail(f->name, err, "cannot map shared memory into its region: %s",
                                strerror(-err));
        return 0;
}

/* Room for the metadata in a region of used bytes. */
static uint64_t meta_room_of(uint64_t used, uint64_t ps)
{
        return iom_max(iom_round_up(iom_meta_initial(ps), ps), iom_round_down(used / 16, ps));
}

/* Split the used p->used bytes of the region with f->page_size pages
 * (see the top of the file); -EBADMSG when they do not fit. */
static int lay_out(struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        struct mshare_priv *p = priv(f);
        uint64_t ps = f->page_size;
        p->meta_room = meta_room_of(p->used, ps);
        obj->meta_map_len = p->meta_room;
        if (p->used > p->region || p->used % ps || p->used < p->meta_room + 2 * ps)
                return iom_fail(f->name, -EBADMSG, "its region is not laid out as ours are");
        p->data = iom_round_down((p->used - p->meta_room) / 2, ps);
        obj->data_limit = iom_min(p->data, IOM_DATA_END);
        obj->pool_end = IOM_POOL_OFF + (p->used - p->meta_room - p->data);
        return 0;
}

static int attach_region(struct iomem *f, int fd, uint64_t size, uint64_t start, uint64_t align,
                         const struct iomem_opts *o);

static int create_region(struct iomem *f, int fd, uint64_t align, const struct iomem_opts *o)
{
        struct mshare_priv *p = priv(f);
        if (o->hugepage) {
                if (align % o->hugepage)
                        return iom_fail(f->name, -EINVAL,
                                        "the region alignment (%llu bytes) is not a whole number of "
                                        "%zu KiB huge pages", (unsigned long long)align,
                                        o->hugepage >> 10);
                f->page_size = o->hugepage;
        }
        if (o->size > IOM_DATA_END)
                return iom_fail(f->name, -EFBIG, "the largest file is %llu bytes",
                                (unsigned long long)IOM_DATA_END);
        /* Room for the metadata, the size asked for, and as much again
         * for the gift pool. */
        uint64_t want = iom_round_up(iom_max(o->size, 1), f->page_size);
        uint64_t ps = f->page_size, least = iom_round_up(iom_meta_initial(ps), ps) + 2 * want;
        if (meta_room_of(least, ps) > least - 2 * want) /* a sixteenth for the metadata */
                least = iom_round_up((2 * want) / 15 * 16 + 16 * ps, ps);
        p->region = iom_round_up(least, align);
        p->used = o->hugepage ? least : p->region;
        int err;
        char *at = NULL;
        if (p->abi->fixed_address && !(at = reserve_aligned(p->region, align)))
                return iom_fail(f->name, -ENOMEM, "no %llu bytes of address space for its region",
                                (unsigned long long)p->region);
        if ((err = p->abi->set_size(fd, p->region, (uint64_t)(uintptr_t)at))) {
                uint64_t size = 0, start = 0;
                if (at)
                        iom_sys.munmap(at, p->region);
                /* Another process sized it first (a size is set once):
                 * theirs to create, ours to attach. */
                if (err == -EINVAL && p->abi->get_size(fd, &size, &start) == 0 && size)
                        return attach_region(f, fd, size, start, align, o);
                return iom_fail(f->name, err, "cannot size its region to %llu bytes: %s",
                                (unsigned long long)p->region, strerror(-err));
        }
        p->sized = true;
        err = region_get(f, fd, at, at ? MAP_FIXED : 0);
        if (err && at && !p->listed)
                iom_sys.munmap(at, p->region); /* the reservation */
        if (err || (err = back_region(f, fd, least, o)) || (err = lay_out(f)) ||
            (err = iom_fdmem_attach(f, IOM_ATTACH_NEW, o)))
                return err;
        /* Attachers wait for this before they lay the region out. */
        __atomic_store_n(&fdo(f)->meta->region_used, p->used, __ATOMIC_RELEASE);
        return 0;
}

static int attach_region(struct iomem *f, int fd, uint64_t size, uint64_t start, uint64_t align,
                         const struct iomem_opts *o)
{
        struct mshare_priv *p = priv(f);
        char *at = (char *)(uintptr_t)start;
        if (size % align || (uint64_t)(uintptr_t)at % align)
                return iom_fail(f->name, -EBADMSG,
                                "its region (%llu bytes at %p) is not aligned to %llu bytes",
                                (unsigned long long)size, (void *)at, (unsigned long long)align);
        p->region = size;
        int err = region_get(f, fd, at, at ? MAP_FIXED_NOREPLACE : 0);
        if (err)
                return err;
        uint64_t magic;
        if (peek(p->base, &magic))
                return iom_fail(f->name, -EIDRM,
                                "its region has no memory: the process that created it has exited "
                                "(or not yet backed it)");
        if (magic != IOM_META_MAGIC)
                return iom_fail(f->name, -EAGAIN, "the process creating it has not finished");
        const struct iom_meta *m = (const void *)p->base;
        size_t ps = m->page_size;
        if (ps < iom_system_page_size() || !iom_is_pow2(ps) || align % ps)
                return iom_fail(f->name, -EBADMSG, "its metadata is not valid");
        if (!(p->used = __atomic_load_n(&m->region_used, __ATOMIC_ACQUIRE)))
                return iom_fail(f->name, -EAGAIN, "the process creating it has not finished");
        f->page_size = ps;
        return (err = lay_out(f)) ? err : iom_fdmem_attach(f, IOM_ATTACH_SHARED, o);
}

static int attach_fd(struct iomem *f, int fd, uint64_t align, bool create,
                     const struct iomem_opts *o);

static int open_region(struct iomem *f, const char *name, unsigned flags,
                       const struct iomem_opts *o)
{
        char path[PATH_MAX];
        uint64_t align = 0;
        int err;
        if ((err = region_path(name, path, sizeof path)) || (err = read_alignment(f, &align)))
                return err;
        /* Even a reader writes pins and locks into the region's metadata. */
        int oflags = O_RDWR | O_CLOEXEC | (flags & IOMEM_CREATE ? O_CREAT : 0) |
                     (flags & IOMEM_EXCL ? O_EXCL : 0) | (flags & IOMEM_NOFOLLOW ? O_NOFOLLOW : 0);
        int fd = iom_sys.open(path, oflags, (mode_t)o->mode);
        if (fd < 0) {
                int e = errno;
                if (e == ENOENT)
                        return iom_fail(f->name, -e, "no region of that name in %s", mshare_dir());
                if (e == EEXIST)
                        return iom_fail(f->name, -e, "it exists already");
                return iom_fail(f->name, -e, "cannot open %s%s: %s", path,
                                e == EACCES ? " read-write (pins are kept in the region)" : "",
                                strerror(e));
        }
        f->data_fd = fdo(f)->aux_fd = fd;
        err = attach_fd(f, fd, align, flags & IOMEM_CREATE, o);
        /* A region is sized once: one that failed after that could never
         * be finished, and would hold the name for good. */
        if (err && priv(f)->sized)
                iom_sys.unlink(path);
        return err;
}

/* Attach region file fd (f's data_fd already), creating the region when
 * it has not been sized and create says so. */
static int attach_fd(struct iomem *f, int fd, uint64_t align, bool create,
                     const struct iomem_opts *o)
{
        struct mshare_priv *p = priv(f);
        uint64_t size = 0, start = 0;
        int err;
        if (o->numa_policy != IOMEM_NUMA_DEFAULT)
                return iom_fail(f->name, -ENOTSUP,
                                "its memory is the region's, placed by the process that backs it: "
                                "no NUMA policy applies");
        if (!(p->abi = iom_mshare_abi_probe(fd, &err)))
                return iom_fail(f->name, err, "its msharefs speaks no ABI this library knows: %s",
                                strerror(-err));
        if ((err = p->abi->get_size(fd, &size, &start)))
                return iom_fail(f->name, err, "cannot read its region's size: %s", strerror(-err));
        if (size)
                return attach_region(f, fd, size, start, align, o);
        if (!create)
                return iom_fail(f->name, -ENOENT, "its region has not been sized by its creator");
        return create_region(f, fd, align, o);
}

/* The handles of one process share its one mapping of a region, so one
 * handle's lock of a page would be another's to undo. */
static int refuse_wired(struct iomem *f, const struct iomem_opts *o)
{
        return o->wired ? iom_fail(f->name, -ENOTSUP, "wired memory is not supported on mshare: the "
                                   "handles of a process share one mapping of its region") : 0;
}

static int mshare_open(struct iomem *f, const char *name, unsigned flags,
                       const struct iomem_opts *o)
{
        iom_fdmem_init(f);
        if (refuse_wired(f, o))
                return -ENOTSUP;
        fdo(f)->phys = &region_phys;
        int err = open_region(f, name, flags, o);
        if (err)
                mshare_close(f);
        return err;
}

/* Adopt a region file's descriptor (passed by iomem_send, or opened by
 * the caller in msharefs). */
static int mshare_open_fds(struct iomem *f, const int *fds, int nfds, unsigned flags,
                           const struct iomem_opts *o)
{
        struct iom_fdobj *obj = fdo(f);
        int fd = fds[0];
        struct iom_fsinfo sf;
        uint64_t align;
        iom_fdmem_init(f);
        obj->phys = &region_phys;
        if (refuse_wired(f, o))
                return -ENOTSUP;
        if (nfds != 1)
                return iom_fail(f->name, -EINVAL, "an mshare object is one descriptor, not %d", nfds);
        if (iom_sys.fstatfs(fd, &sf) || sf.kind != IOM_FS_MSHARE)
                return iom_fail(f->name, -EINVAL, "fd %d is not a file in msharefs", fd);
        int mode = iom_sys.fcntl(fd, F_GETFL, 0) & O_ACCMODE;
        if (mode == O_WRONLY)
                return iom_fail(f->name, -EACCES, "fd %d is open write-only; mapping needs read access", fd);
        if ((flags & IOMEM_RDWR) && mode == O_RDONLY)
                return iom_fail(f->name, -EACCES, "fd %d is open read-only", fd);
        /* Pins and locks are written to the region even by a reader: a
         * read-only descriptor gets a read-write twin for the mapping. */
        int rw = fd;
        if (mode == O_RDONLY) {
                char path[64];
                snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
                if ((rw = iom_sys.open(path, O_RDWR | O_CLOEXEC, 0)) < 0) {
                        int e = errno;
                        mshare_close(f);
                        return iom_fail(f->name, -EACCES,
                                        "fd %d is read-only and the region cannot be reopened "
                                        "read-write for its pins: %s", fd, strerror(e));
                }
        }
        f->data_fd = fd;
        obj->aux_fd = rw;
        int err = read_alignment(f, &align);
        if (!err)
                err = attach_fd(f, rw, align, false, o);
        if (err) {
                /* The caller keeps the descriptor it passed. */
                f->data_fd = -1;
                if (rw == fd)
                        obj->aux_fd = -1;
                mshare_close(f);
        }
        return err;
}

static int mshare_unlink(const char *name)
{
        char path[PATH_MAX];
        int err = region_path(name, path, sizeof path);
        if (err)
                return err;
        if (iom_sys.unlink(path) == 0)
                return 0;
        int e = errno;
        if (e == ENOENT)
                return iom_fail(uri_of(name), -e, "no region of that name in %s", mshare_dir());
        return iom_fail(uri_of(name), -e, "cannot remove %s: %s", path, strerror(e));
}

const struct iom_backend iom_backend_mshare = {
        .name = "mshare",
        .caps = IOMEM_CAP_NAMED | IOMEM_CAP_FDPASS | IOMEM_CAP_PTSHARE | IOMEM_CAP_RESIZE |
                IOMEM_CAP_HUGEPAGE | IOMEM_CAP_GIFT | IOMEM_CAP_SHARED,
        .priv_size = sizeof(struct mshare_obj),
        .ops = &mshare_ops,
        .probe = mshare_probe,
        .open = mshare_open,
        .open_fds = mshare_open_fds,
        .unlink = mshare_unlink,
};
