/* SPDX-License-Identifier: MIT */
/*
 * The DAX window: iomem_window_new/delete/set_policy/stat, the default
 * window, and the slot bookkeeping behind dax: objects.
 *
 * The window is one reservation, mmap(PROT_NONE, MAP_PRIVATE |
 * iom_map_anonymous | iom_map_noreserve), aligned to the chunk size so that a DAX
 * mapping can use huge page table entries. A chunk is mapped over its slot
 * with MAP_FIXED, which replaces whatever was there in one step; a chunk
 * leaves by mapping PROT_NONE anonymous memory back the same way. Nothing
 * inside the window is ever munmapped: another thread's mmap(NULL) could
 * take the hole.
 *
 * A hash table finds a (file, chunk) in O(1) expected time. Busy chunks
 * (pinned or held) stay in the policy until it offers one as a victim; the
 * window then takes it out ("parks" it) and gives it back to the policy
 * when it is no longer busy, so eviction stays O(1) amortised however many
 * chunks are pinned.
 */
#include "window.h"
#include "cacheflush.h"
#include "evict.h"
#include "internal.h"
#include "syscalls.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

#define MIB (UINT64_C(1) << 20)
#define DEFAULT_SIZE (UINT64_C(1) << 30)
#define DEFAULT_CHUNK (2 * MIB)
#define MAX_SLOTS (UINT32_C(1) << 30)
#define NONE IOM_EVICT_NONE

struct slot {
        struct iom_wfile *file; /* NULL: free (or lost) */
        uint64_t index;         /* chunk number in the file */
        uint64_t hold_id;       /* the last holder that added a hold */
        uint32_t hnext;         /* hash chain */
        uint32_t req;           /* the request using it: not a victim for it */
        uint32_t holds;
        bool pinned, parked, lost;
};

/* What a thread that holds no I/O lock borrowed last, through any file. */
struct loose_borrow {
        int tid;
        struct iom_holds holds;
};

struct iomem_window {
        pthread_mutex_t lock;
        char *base;
        size_t size, chunk;
        unsigned shift;
        uint32_t nslots, nused, nbusy, npinned, nlost;
        struct slot *slot;
        struct iom_link *free_list; /* nslots + head, ascending at first */
        uint32_t *bucket, mask;
        uint32_t req_gen;
        uint64_t hits, misses, evictions;
        uint64_t hits_recalled; /* atomic: counted without the lock (iom_window_recall) */
        unsigned users;
        struct loose_borrow *loose;
        size_t nloose, loose_cap;
        int policy;
        const struct iom_evict_ops *ops;
        void *pstate;
        unsigned fork_gen;
};

static const struct iom_evict_ops *const policies[] = {
        [IOMEM_EVICT_DEFAULT] = &iom_evict_adaptive,
        [IOMEM_EVICT_CLOCK] = &iom_evict_clock,
        [IOMEM_EVICT_FIFO] = &iom_evict_fifo,
        [IOMEM_EVICT_LIFO] = &iom_evict_lifo,
        [IOMEM_EVICT_S3FIFO] = &iom_evict_s3fifo,
        [IOMEM_EVICT_SIEVE] = &iom_evict_sieve,
        [IOMEM_EVICT_LIRS] = &iom_evict_lirs,
        [IOMEM_EVICT_ARC] = &iom_evict_arc,
        [IOMEM_EVICT_LRU] = &iom_evict_lru,
};
#define NPOLICIES (int)(sizeof policies / sizeof policies[0])

static uint64_t mix(uint64_t x)
{
        x ^= x >> 33;
        x *= UINT64_C(0xff51afd7ed558ccd);
        x ^= x >> 33;
        return x;
}

static uint64_t chunk_key(const struct iom_wfile *wf, uint64_t index)
{
        return mix(wf->id * UINT64_C(0x9e3779b97f4a7c15) + index);
}

static bool busy(const struct slot *s)
{
        return s->pinned || s->holds;
}

static char *slot_addr(const struct iomem_window *w, uint32_t s)
{
        return w->base + ((size_t)s << w->shift);
}

/* ---- the hash table ------------------------------------------------------- */

static uint32_t *bucket_for(struct iomem_window *w, const struct iom_wfile *wf, uint64_t index)
{
        return &w->bucket[chunk_key(wf, index) & w->mask];
}

static uint32_t lookup(struct iomem_window *w, const struct iom_wfile *wf, uint64_t index)
{
        for (uint32_t s = *bucket_for(w, wf, index); s != NONE; s = w->slot[s].hnext)
                if (w->slot[s].file == wf && w->slot[s].index == index)
                        return s;
        return NONE;
}

static void hash_remove(struct iomem_window *w, uint32_t s)
{
        uint32_t *p = bucket_for(w, w->slot[s].file, w->slot[s].index);
        while (*p != s)
                p = &w->slot[*p].hnext;
        *p = w->slot[s].hnext;
}

/* ---- slots ---------------------------------------------------------------------- */

/* Put the reservation back over slot s; a slot where even that fails is
 * lost: its state is unknown, so it is never used again. */
static void reserve_again(struct iomem_window *w, uint32_t s)
{
        void *p = iom_sys.mmap(slot_addr(w, s), w->chunk, PROT_NONE,
                               MAP_PRIVATE | iom_map_anonymous | iom_map_noreserve | MAP_FIXED, -1, 0);
        w->slot[s] = (struct slot){ .hnext = NONE };
        if (p == MAP_FAILED) {
                iom_debug("window %p: slot %u is lost: %s", (void *)w, s, strerror(errno));
                w->slot[s].lost = true;
                w->nlost++;
        } else {
                iom_list_push_back(w->free_list, w->nslots, s);
        }
}

static void unpark(struct iomem_window *w, uint32_t s)
{
        w->slot[s].parked = false;
        w->ops->on_insert(w->pstate, s, chunk_key(w->slot[s].file, w->slot[s].index));
}

/* Take chunk s's file away: out of the policy, the table and the counts.
 * The caller maps something else over it or calls reserve_again. */
static void vacate(struct iomem_window *w, uint32_t s, bool evicted)
{
        struct slot *sl = &w->slot[s];
        if (!sl->parked)
                w->ops->on_remove(w->pstate, s, evicted);
        hash_remove(w, s);
        if (busy(sl))
                w->nbusy--;
        if (sl->pinned)
                w->npinned--;
        w->nused--;
        *sl = (struct slot){ .hnext = NONE };
}

/* A slot for a new chunk: the one after `after` if free (so that a file's
 * consecutive chunks can share one iovec), any free one, or a victim. */
static uint32_t take_slot(struct iomem_window *w, uint32_t after, uint32_t req)
{
        uint32_t s = after + 1;
        if (after != NONE && s < w->nslots && iom_list_has(w->free_list, s)) {
                iom_list_remove(w->free_list, s);
                return s;
        }
        s = iom_list_front(w->free_list, w->nslots);
        if (s != NONE) {
                iom_list_remove(w->free_list, s);
                return s;
        }
        for (;;) {
                s = w->ops->choose_victim(w->pstate);
                if (s == NONE)
                        return NONE;
                struct slot *sl = &w->slot[s];
                if (!busy(sl) && sl->req != req) {
                        vacate(w, s, true);
                        w->evictions++;
                        return s;
                }
                w->ops->on_remove(w->pstate, s, false);
                sl->parked = true;
        }
}

static int map_chunk(struct iomem_window *w, struct iom_wfile *wf, uint32_t s, uint64_t index)
{
        char *addr = slot_addr(w, s);
        off_t off = (off_t)(index << w->shift);
        if (__atomic_load_n(&wf->try_sync, __ATOMIC_RELAXED)) {
                void *p = iom_sys.mmap(addr, w->chunk, wf->prot,
                                       MAP_SHARED_VALIDATE | MAP_SYNC | MAP_FIXED, wf->fd, off);
                if (p != MAP_FAILED)
                        return 0;
                if (errno != EOPNOTSUPP && errno != EINVAL)
                        goto fail;
                iom_debug("%s: the kernel refuses MAP_SYNC (%s); mapping without it", wf->name,
                          strerror(errno));
                __atomic_store_n(&wf->try_sync, false, __ATOMIC_RELAXED); /* iomem_stat reads it */
        }
        if (iom_sys.mmap(addr, w->chunk, wf->prot, MAP_SHARED | MAP_FIXED, wf->fd, off) != MAP_FAILED)
                return 0;
fail:;
        int e = errno;
        return iom_fail(wf->name, -e, "cannot map chunk %llu: %s", (unsigned long long)index,
                        strerror(e));
}

/* ---- requests ------------------------------------------------------------------- */

static int holds_reserve(struct iom_holds *h, size_t extra)
{
        static uint64_t next_id;
        if (!h->id)
                h->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
        if (h->n + extra <= h->cap)
                return 0;
        size_t cap = h->cap ? h->cap : 16;
        while (cap < h->n + extra)
                cap *= 2;
        uint32_t *v = realloc(h->v, cap * sizeof *v);
        if (!v)
                return -ENOMEM;
        h->v = v;
        h->cap = cap;
        return 0;
}

/* Pin slot s, or add a hold on it (once per holder), or neither. */
static void keep(struct iomem_window *w, uint32_t s, bool pin, struct iom_holds *holds)
{
        struct slot *sl = &w->slot[s];
        bool was_busy = busy(sl);
        if (pin && !sl->pinned) {
                sl->pinned = true;
                w->npinned++;
        }
        if (holds && sl->hold_id != holds->id) {
                sl->hold_id = holds->id;
                sl->holds++;
                holds->v[holds->n++] = s;
        }
        if (!was_busy && busy(sl))
                w->nbusy++;
        if (sl->parked && !busy(sl))
                unpark(w, s);
}

/* Make chunks idx[0..n) resident, pinned when pin is set, or held in
 * holds (the window locked): iom_window_pin and iom_window_borrow, and
 * advice, which is no access (access clear: no hit or miss counted, the
 * policy told only of the chunks it maps). */
static int get_locked(struct iom_wfile *wf, const uint64_t *idx, size_t n, bool pin,
                      struct iom_holds *holds, char **addrs, bool access)
{
        struct iomem_window *w = wf->w;
        uint32_t stack[64], *sl = n <= 64 ? stack : malloc(n * sizeof *sl);
        if (!sl)
                return iom_fail(wf->name, -ENOMEM, "out of memory");
        int err = 0;
        if (holds && holds_reserve(holds, n)) {
                err = iom_fail(wf->name, -ENOMEM, "out of memory");
                goto out;
        }
        /* Will it fit? Every chunk not busy and not in the request can go.
         * The request's own chunks are marked so that it evicts none. */
        if (++w->req_gen == 0)
                w->req_gen = 1;
        uint32_t req = w->req_gen, prev = NONE;
        size_t missing = 0, idle_in_request = 0;
        for (size_t i = 0; i < n; i++) {
                sl[i] = lookup(w, wf, idx[i]);
                if (sl[i] == NONE) {
                        missing++;
                        continue;
                }
                w->slot[sl[i]].req = req;
                if (!busy(&w->slot[sl[i]]))
                        idle_in_request++;
        }
        size_t room = (size_t)w->nslots - w->nlost - w->nbusy - idle_in_request;
        if (missing > room) {
                err = iom_fail(wf->name, -ENOBUFS,
                               "the request needs %zu more chunks of %zu KiB but the window can "
                               "free only %zu (%u chunks, %u pinned or held by borrows)",
                               missing, w->chunk >> 10, room, w->nslots - w->nlost, w->nbusy);
                goto out;
        }
        size_t done = 0;
        for (; done < n; done++) {
                uint32_t s = sl[done];
                if (s != NONE) {
                        if (access)
                                w->hits++;
                        if (access && !w->slot[s].parked)
                                w->ops->on_hit(w->pstate, s);
                        prev = s;
                        continue;
                }
                if (access && w->ops->on_miss)
                        w->ops->on_miss(w->pstate, chunk_key(wf, idx[done]));
                s = take_slot(w, prev, req);
                if (s == NONE) { /* cannot happen after the count above */
                        err = iom_fail(wf->name, -ENOBUFS, "no chunk of the window can be evicted");
                        break;
                }
                if ((err = map_chunk(w, wf, s, idx[done]))) {
                        reserve_again(w, s);
                        break;
                }
                uint32_t *b = bucket_for(w, wf, idx[done]);
                w->slot[s] = (struct slot){ .file = wf, .index = idx[done], .hnext = *b, .req = req };
                *b = s;
                w->nused++;
                w->misses += access;
                w->ops->on_insert(w->pstate, s, chunk_key(wf, idx[done]));
                sl[done] = prev = s;
        }
        for (size_t i = 0; i < done; i++) {
                keep(w, sl[i], pin && !err, err ? NULL : holds);
                addrs[i] = slot_addr(w, sl[i]);
        }
out:
        if (sl != stack)
                free(sl);
        return err;
}

int iom_window_pin(struct iom_wfile *wf, const uint64_t *idx, size_t n, char **addrs)
{
        pthread_mutex_lock(&wf->w->lock);
        int err = get_locked(wf, idx, n, true, NULL, addrs, true);
        pthread_mutex_unlock(&wf->w->lock);
        return err;
}

void iom_window_peek(struct iom_wfile *wf, const uint64_t *idx, size_t n, char **addrs)
{
        struct iomem_window *w = wf->w;
        pthread_mutex_lock(&w->lock);
        for (size_t i = 0; i < n; i++) {
                uint32_t s = lookup(w, wf, idx[i]);
                addrs[i] = s == NONE ? NULL : slot_addr(w, s);
        }
        pthread_mutex_unlock(&w->lock);
}

/* How many of chunks first.. (at most n) one request can make resident
 * together without evicting a busy chunk or one of them: those resident
 * cost no room, the others one slot each, and idle ones among them are no
 * victims for it (get_locked's count), so the room shrinks by those too. */
static uint64_t chunks_that_fit(struct iomem_window *w, struct iom_wfile *wf, uint64_t first, uint64_t n)
{
        uint64_t k = 0, missing = 0, idle = 0, room = (uint64_t)w->nslots - w->nlost - w->nbusy;
        for (; k < n; k++) {
                uint32_t s = lookup(w, wf, first + k);
                uint64_t m = missing + (s == NONE), i = idle + (s != NONE && !busy(&w->slot[s]));
                if (m + i > room)
                        break;
                missing = m;
                idle = i;
        }
        return k;
}

int iom_window_advise(struct iom_wfile *wf, uint64_t first, uint64_t n, uint64_t from, uint64_t to,
                      int advice, uint64_t *resident)
{
        struct iomem_window *w = wf->w;
        int err = 0;
        *resident = 0;
        pthread_mutex_lock(&w->lock);
        bool willneed = iom_advice_kind(advice) == IOM_ADV_WILLNEED;
        if (willneed)
                n = chunks_that_fit(w, wf, first, n);
        uint64_t *idx = n ? malloc(n * sizeof *idx) : NULL;
        char **addrs = n ? malloc(n * sizeof *addrs) : NULL;
        if (n && (!idx || !addrs))
                err = iom_fail(wf->name, -ENOMEM, "out of memory");
        for (uint64_t i = 0; i < n && !err; i++)
                idx[i] = first + i;
        if (!err && willneed) {
                err = get_locked(wf, idx, n, false, NULL, addrs, false);
        } else {
                for (uint64_t i = 0; i < n && !err; i++) {
                        uint32_t s = lookup(w, wf, idx[i]);
                        addrs[i] = s == NONE ? NULL : slot_addr(w, s);
                }
        }
        /* Each chunk's part of [from, to): the range asked, in pages. */
        for (uint64_t i = 0; i < n && !err; i++) {
                if (!addrs[i])
                        continue;
                ++*resident;
                uint64_t cs = idx[i] << w->shift, a = iom_max(from, cs), b = iom_min(to, cs + w->chunk);
                if (a < b && iom_sys.madvise(addrs[i] + (a - cs), b - a, advice) < 0)
                        err = iom_fail(wf->name, -errno, "madvise of chunk %llu: %s",
                                       (unsigned long long)idx[i], strerror(errno));
        }
        pthread_mutex_unlock(&w->lock);
        free(idx);
        free(addrs);
        return err;
}

void iom_window_persist(struct iom_wfile *wf, uint64_t from, uint64_t to, unsigned kind)
{
        struct iomem_window *w = wf->w;
        uint64_t first = from >> w->shift, last = (to - 1) >> w->shift;
        /* The window's lock keeps each chunk mapped while it is written
         * back. A range of more chunks than the window has slots is
         * faster found by the slots. */
        pthread_mutex_lock(&w->lock);
        bool by_slot = last - first >= w->nslots;
        for (uint64_t i = by_slot ? 0 : first, n = by_slot ? w->nslots : last - first + 1; n--; i++) {
                uint32_t s = by_slot ? (uint32_t)i : lookup(w, wf, i);
                if (s == NONE || w->slot[s].file != wf)
                        continue;
                uint64_t cs = w->slot[s].index << w->shift;
                uint64_t a = iom_max(from, cs), b = iom_min(to, cs + w->chunk);
                if (a < b)
                        iom_cache_writeback(kind, slot_addr(w, s) + (a - cs), b - a);
        }
        pthread_mutex_unlock(&w->lock);
}

static void release(struct iomem_window *w, uint32_t s, bool pin)
{
        struct slot *sl = &w->slot[s];
        if (!(pin ? sl->pinned : sl->holds))
                return;
        if (pin) {
                sl->pinned = false;
                w->npinned--;
        } else {
                sl->holds--;
        }
        if (!busy(sl)) {
                w->nbusy--;
                if (sl->parked)
                        unpark(w, s);
        }
}

void iom_window_unpin(struct iom_wfile *wf, uint64_t idx)
{
        struct iomem_window *w = wf->w;
        pthread_mutex_lock(&w->lock);
        uint32_t s = lookup(w, wf, idx);
        if (s != NONE)
                release(w, s, true);
        pthread_mutex_unlock(&w->lock);
}

/*
 * What the calling thread borrowed last without a lock, so that a borrow
 * of chunks among them finds them without the window's lock: they stay
 * held for this thread until its next borrow in the window, which forgets
 * this first. It names the file by id, which no other file of the process
 * ever has (one that left took its chunks with it), and a fork makes it
 * stale (the child's window forgot every loose borrow).
 */
static _Thread_local struct {
        uint64_t file_id;
        unsigned fork_gen;
        size_t n;
        uint64_t idx[IOM_WINDOW_RECALL_MAX];
        char *addr[IOM_WINDOW_RECALL_MAX];
} memo;

bool iom_window_recall(struct iom_wfile *wf, const uint64_t *idx, size_t n, bool hit, char **addrs)
{
        if (!n || memo.file_id != wf->id || memo.fork_gen != iom_fork_generation())
                return false;
        if (hit && n != memo.n)
                return false; /* a borrow of fewer would keep the rest held */
        for (size_t i = 0, k = 0; i < n; i++) {
                while (k < memo.n && memo.idx[k] < idx[i])
                        k++;
                if (k == memo.n || memo.idx[k] != idx[i])
                        return false;
                addrs[i] = memo.addr[k];
        }
        if (hit)
                __atomic_add_fetch(&wf->w->hits_recalled, n, __ATOMIC_RELAXED);
        return true;
}

/* Let go of what loose borrow l holds (the window locked). */
static void loose_release(struct iomem_window *w, struct loose_borrow *l)
{
        for (size_t i = 0; i < l->holds.n; i++)
                release(w, l->holds.v[i], false);
        l->holds.n = 0;
        l->holds.id = 0;
}

/* Threads that exited borrow no more: their last borrows go, so that a
 * thread per request cannot fill the window (the window locked). */
static void loose_reap_exited(struct iomem_window *w)
{
        for (size_t i = 0; i < w->nloose;) {
                struct loose_borrow *l = &w->loose[i];
                if (!iom_thread_gone(l->tid)) {
                        i++;
                        continue;
                }
                loose_release(w, l);
                free(l->holds.v);
                *l = w->loose[--w->nloose];
        }
}

/* The calling thread's loose borrow, made when there is none; NULL when
 * memory ran out (the window locked). */
static struct loose_borrow *loose_of_caller(struct iomem_window *w)
{
        int tid = iom_self_tid();
        for (size_t i = 0; i < w->nloose; i++)
                if (w->loose[i].tid == tid)
                        return &w->loose[i];
        loose_reap_exited(w);
        if (w->nloose == w->loose_cap) {
                size_t cap = w->loose_cap ? 2 * w->loose_cap : 4;
                struct loose_borrow *v = realloc(w->loose, cap * sizeof *v);
                if (!v)
                        return NULL;
                w->loose = v;
                w->loose_cap = cap;
        }
        struct loose_borrow *l = &w->loose[w->nloose++];
        *l = (struct loose_borrow){ .tid = tid };
        return l;
}

int iom_window_borrow(struct iom_wfile *wf, const uint64_t *idx, size_t n,
                      struct iom_holds *holds, char **addrs)
{
        struct iomem_window *w = wf->w;
        memo.n = 0; /* this thread's last loose borrow ends here */
        pthread_mutex_lock(&w->lock);
        struct loose_borrow *l = loose_of_caller(w);
        int err = 0;
        if (!l) {
                err = iom_fail(wf->name, -ENOMEM, "out of memory");
        } else {
                /* Its last borrow without a lock ends here (every slot in
                 * it is still the same chunk's: a file that leaves takes
                 * its slots out of every loose borrow first). */
                loose_release(w, l);
                err = get_locked(wf, idx, n, false, holds ? holds : &l->holds, addrs, true);
        }
        if (!err && !holds && n <= IOM_WINDOW_RECALL_MAX) {
                memo.file_id = wf->id;
                memo.fork_gen = iom_fork_generation();
                memo.n = n;
                memcpy(memo.idx, idx, n * sizeof *idx);
                memcpy(memo.addr, addrs, n * sizeof *addrs);
        }
        pthread_mutex_unlock(&w->lock);
        return err;
}

void iom_window_unhold(struct iom_wfile *wf, struct iom_holds *holds)
{
        struct iomem_window *w = wf->w;
        pthread_mutex_lock(&w->lock);
        for (size_t i = 0; i < holds->n; i++)
                if (w->slot[holds->v[i]].file == wf) /* else its file has closed */
                        release(w, holds->v[i], false);
        holds->n = 0;
        holds->id = 0;
        pthread_mutex_unlock(&w->lock);
}

void iom_window_after_fork(struct iomem_window *w)
{
        if (!iom_fork_reset_begin(&w->fork_gen))
                return;
        iom_mutex_init(&w->lock);
        for (uint32_t s = 0; s < w->nslots; s++) {
                w->slot[s].pinned = false;
                w->slot[s].holds = 0;
                if (w->slot[s].parked)
                        unpark(w, s);
        }
        w->nbusy = w->npinned = 0;
        for (size_t i = 0; i < w->nloose; i++)
                free(w->loose[i].holds.v);
        w->nloose = 0;
        iom_fork_reset_end(&w->fork_gen, true);
}

size_t iom_window_chunk(const struct iomem_window *w)
{
        return w->chunk;
}

/* ---- windows -------------------------------------------------------------------- */

static void window_free(struct iomem_window *w)
{
        if (w->base)
                iom_sys.munmap(w->base, w->size);
        if (w->pstate)
                w->ops->destroy(w->pstate);
        free(w->slot);
        free(w->free_list);
        free(w->bucket);
        for (size_t i = 0; i < w->nloose; i++)
                free(w->loose[i].holds.v);
        free(w->loose);
        pthread_mutex_destroy(&w->lock);
        free(w);
}

static int window_create(struct iomem_window **out, size_t size, size_t chunk)
{
        if (!iom_is_pow2(chunk) || chunk < iom_system_page_size())
                return iom_fail(NULL, -EINVAL, "chunk %zu is not a power of two of at least the "
                                "page size (%zu)", chunk, iom_system_page_size());
        if (!size || size % chunk)
                return iom_fail(NULL, -EINVAL, "size %zu is not a positive multiple of the chunk "
                                "size %zu", size, chunk);
        if (size / chunk > MAX_SLOTS || size + chunk < size)
                return iom_fail(NULL, -EINVAL, "%zu chunks are more than a window can have (%u)",
                                size / chunk, MAX_SLOTS);
        struct iomem_window *w = calloc(1, sizeof *w);
        if (!w)
                return iom_fail(NULL, -ENOMEM, "out of memory");
        iom_mutex_init(&w->lock);
        w->size = size;
        w->chunk = chunk;
        w->shift = (unsigned)__builtin_ctzll(chunk);
        w->nslots = (uint32_t)(size / chunk);
        w->fork_gen = iom_fork_generation();
        uint32_t buckets = 1;
        while (buckets < w->nslots)
                buckets *= 2;
        w->mask = buckets - 1;
        w->slot = calloc(w->nslots, sizeof *w->slot);
        w->free_list = malloc(((size_t)w->nslots + 1) * sizeof *w->free_list);
        w->bucket = malloc((size_t)buckets * sizeof *w->bucket);
        w->ops = policies[IOMEM_EVICT_DEFAULT];
        w->pstate = w->slot && w->free_list && w->bucket ? w->ops->create(w->nslots) : NULL;
        if (!w->pstate) {
                window_free(w);
                return iom_fail(NULL, -ENOMEM, "out of memory");
        }
        memset(w->bucket, 0xff, (size_t)buckets * sizeof *w->bucket);
        iom_list_init(w->free_list, w->nslots, w->nslots + 1);
        for (uint32_t s = 0; s < w->nslots; s++) {
                w->slot[s].hnext = NONE;
                iom_list_push_back(w->free_list, w->nslots, s);
        }
        /* Reserve a chunk more, keep the aligned part, give the rest back
         * (outside the window, so munmap is safe). */
        char *p = iom_sys.mmap(NULL, size + chunk, PROT_NONE,
                               MAP_PRIVATE | iom_map_anonymous | iom_map_noreserve, -1, 0);
        if (p == MAP_FAILED) {
                int e = errno;
                window_free(w);
                return iom_fail(NULL, -ENOMEM, "cannot reserve %zu bytes of address space: %s",
                                size, strerror(e));
        }
        w->base = (char *)iom_round_up((uintptr_t)p, chunk);
        if (w->base > p)
                iom_sys.munmap(p, (size_t)(w->base - p));
        if (w->base + size < p + size + chunk)
                iom_sys.munmap(w->base + size, (size_t)(p + size + chunk - (w->base + size)));
        *out = w;
        return 0;
}

int iom_window_attach(struct iom_wfile *wf, struct iomem_window *w)
{
        static uint64_t next_id;
        if (!w) {
                int err = iom_window_default(&w);
                if (err)
                        return err;
        }
        iom_window_after_fork(w);
        pthread_mutex_lock(&w->lock);
        w->users++;
        pthread_mutex_unlock(&w->lock);
        wf->w = w;
        wf->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
        return 0;
}

void iom_window_detach(struct iom_wfile *wf)
{
        struct iomem_window *w = wf->w;
        if (!w)
                return;
        pthread_mutex_lock(&w->lock);
        for (size_t i = 0; i < w->nloose; i++) {
                struct iom_holds *h = &w->loose[i].holds;
                size_t kept = 0;
                for (size_t k = 0; k < h->n; k++)
                        if (w->slot[h->v[k]].file != wf)
                                h->v[kept++] = h->v[k];
                h->n = kept;
        }
        for (uint32_t s = 0; s < w->nslots; s++) {
                if (w->slot[s].file != wf)
                        continue;
                vacate(w, s, false);
                reserve_again(w, s);
        }
        w->users--;
        pthread_mutex_unlock(&w->lock);
        wf->w = NULL;
}

/* ---- the default window ------------------------------------------------------- */

static struct iomem_window *default_window;

/* IOMEM_DAX_WINDOW: bytes, with an optional K, M or G (binary) suffix. */
static int default_size(size_t *size)
{
        const char *v = getenv("IOMEM_DAX_WINDOW");
        *size = DEFAULT_SIZE;
        if (!v || !*v)
                return 0;
        char *end;
        errno = 0;
        unsigned long long n = strtoull(v, &end, 10);
        unsigned shift = 0;
        switch (toupper((unsigned char)*end)) {
        case 'K': shift = 10, end++; break;
        case 'M': shift = 20, end++; break;
        case 'G': shift = 30, end++; break;
        }
        if (errno || end == v || *end || !isdigit((unsigned char)*v) || n > (SIZE_MAX >> shift) ||
            !n || (n << shift) % DEFAULT_CHUNK)
                return iom_fail(NULL, -EINVAL, "IOMEM_DAX_WINDOW=%s is not a positive multiple of "
                                "2 MiB (bytes, or with a K, M or G suffix)", v);
        *size = (size_t)(n << shift);
        return 0;
}

int iom_window_default(struct iomem_window **out)
{
        struct iomem_window *w = __atomic_load_n(&default_window, __ATOMIC_ACQUIRE), *none = NULL;
        if (w) {
                *out = w;
                return 0;
        }
        /* No lock (which a fork could catch held): threads that race both
         * make one, the first published wins, the others give theirs back. */
        size_t size;
        int err = default_size(&size);
        if (err || (err = window_create(&w, size, DEFAULT_CHUNK)))
                return err;
        if (__atomic_compare_exchange_n(&default_window, &none, w, false, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE)) {
                iom_debug("default DAX window: %zu MiB in chunks of 2 MiB", size >> 20);
        } else {
                window_free(w);
                w = none;
        }
        *out = w;
        return 0;
}

/* At exit, give the default window back if nothing uses it (so that leak
 * checkers see a clean exit). */
__attribute__((destructor)) static void default_window_free(void)
{
        if (default_window && !default_window->users) {
                window_free(default_window);
                default_window = NULL;
        }
}

/* ---- the public functions ------------------------------------------------------- */

#define FAIL(err, ...) (int)iom_result(__func__, iom_fail(NULL, err, __VA_ARGS__))

IOM_PUBLIC int iomem_window_new(struct iomem_window **w, size_t size, size_t chunk)
{
        if (!w)
                return FAIL(-EINVAL, "w is NULL");
        return (int)iom_result(__func__, window_create(w, size, chunk));
}

IOM_PUBLIC int iomem_window_delete(struct iomem_window **wp)
{
        if (!wp)
                return FAIL(-EINVAL, "w is NULL");
        struct iomem_window *w = *wp;
        if (!w)
                return 0;
        if (w == default_window)
                return FAIL(-EINVAL, "the default window is the library's");
        iom_window_after_fork(w);
        pthread_mutex_lock(&w->lock);
        unsigned users = w->users;
        pthread_mutex_unlock(&w->lock);
        if (users)
                return FAIL(-EBUSY, "%u open objects use the window", users);
        window_free(w);
        *wp = NULL;
        return 0;
}

IOM_PUBLIC int iomem_window_set_policy(struct iomem_window *w, int policy)
{
        if (!w)
                return FAIL(-EINVAL, "w is NULL");
        if (policy < 0 || policy >= NPOLICIES)
                return FAIL(-EINVAL, "unknown eviction policy %d", policy);
        iom_window_after_fork(w);
        pthread_mutex_lock(&w->lock);
        int err = 0;
        if (policy != w->policy) {
                const struct iom_evict_ops *ops = policies[policy];
                void *st = ops->create(w->nslots);
                if (!st) {
                        err = FAIL(-ENOMEM, "out of memory");
                } else {
                        w->ops->destroy(w->pstate);
                        w->ops = ops;
                        w->pstate = st;
                        w->policy = policy;
                        for (uint32_t s = 0; s < w->nslots; s++)
                                if (w->slot[s].file && !w->slot[s].parked)
                                        ops->on_insert(st, s, chunk_key(w->slot[s].file, w->slot[s].index));
                }
        }
        pthread_mutex_unlock(&w->lock);
        return err;
}

IOM_PUBLIC int iomem_window_stat(struct iomem_window *w, struct iomem_window_stat *st)
{
        if (!w || !st)
                return FAIL(-EINVAL, "%s is NULL", w ? "st" : "w");
        iom_window_after_fork(w);
        pthread_mutex_lock(&w->lock);
        *st = (struct iomem_window_stat){
                .size = w->size,
                .chunk = w->chunk,
                .chunks_used = w->nused,
                .chunks_pinned = w->npinned,
                .hits = w->hits + __atomic_load_n(&w->hits_recalled, __ATOMIC_RELAXED),
                .misses = w->misses,
                .evictions = w->evictions,
        };
        pthread_mutex_unlock(&w->lock);
        return 0;
}
