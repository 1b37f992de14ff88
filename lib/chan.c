/* SPDX-License-Identifier: MIT */
/*
 * A channel (iomem_chan_*): a ring of fixed-size slots kept in an object,
 * one producer and consumers that each receive every message, written and
 * read in place. The library copies no byte of a message. chan.h has the
 * layout; chan_parties.c who is attached. The handle pins all of the
 * channel's bytes for its life.
 *
 * Message s lives in slot s % nslots. The producer fills the slot, then
 * commits its table entry (chan.h says in what order); it reuses a slot when nobody holds
 * its message: each consumer has a bit in the entry's pending mask, which
 * it clears on release. The producer and the consumers touch only the
 * table, head and their own records, with atomics; the parties' lock is
 * taken when a party comes or goes, and to reap one that died.
 *
 * Who a message is for: the consumers registered when it is published.
 * A consumer that joins takes, besides, the messages the ring keeps for
 * nobody (chan_parties.c says why those only). A message
 * published while no consumer is attached, or left unreceived by the last
 * consumer to go, is kept (CHAN_KEEP) for the next to come: with no
 * consumer the ring fills and the producer waits, as with a queue.
 *
 * The one race of joining: the producer reads the registered mask before
 * it commits a message, so the message committed as a consumer joins may
 * miss its bit. Every later one has it (the consumer sets its bit, then
 * finds the first message not committed; the producer commits, then
 * reads the mask for the next). So the consumer treats that one message
 * like the ones before it: its own only if its bit is on, which it sets
 * itself when it gets there.
 *
 * Waiting: spin a little, then sleep on the handle's wake-up socket
 * (wakeup.h) with the party's bit set in armed. A publish wakes armed
 * consumers; a release, or a consumer's leaving, wakes an armed producer.
 */
#include "chan.h"
#include "lockwait.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FAIL(op, obj, err, ...) iom_result(op, iom_fail(obj, err, __VA_ARGS__))

#define CHAN_MAGIC UINT64_C(0x316c656e6e616863)  /* "channel1" */
#define CHAN_MAKING UINT64_C(0x676e696b616d6e61) /* magic while a creator writes */
#define CHAN_VERSION 1u
#define SLOTS_MAX ((size_t)1 << 20)
#define SLOT_ALIGN_MAX ((size_t)2 << 20)
#define SPIN_NS 100000u /* how long a waiter spins before it sleeps */
/* A sleeper looks again this often: a waker killed between taking its
 * armed bit and sending (or a consumer that died, which wakes nobody)
 * costs it no more. */
#define RECHECK_MS 100
#define ALL_FLAGS (IOMEM_CHAN_NONBLOCK | IOMEM_CHAN_PRODUCER | IOMEM_CHAN_CONSUMER)

static inline size_t step(const struct iomem_chan *c, size_t i)
{
        return i + 1 == c->nslots ? 0 : i + 1;
}

static inline const char *name(const struct iomem_chan *c)
{
        return iom_chan_name(c);
}

static inline uint64_t load(const uint64_t *p)
{
        return iom_chan_load(p);
}

/* ---- layout --------------------------------------------------------- */

struct chan_geometry {
        size_t slot_size, nslots, stride, table_off, data_off, region;
};

/* Slots are aligned to the largest power of two that divides their stride,
 * up to 2 MiB, so that a slot never spans two chunks of a dax: window. */
static size_t slot_align(size_t stride, size_t page)
{
        size_t a = stride & -stride;
        return iom_max(page, iom_min(a, SLOT_ALIGN_MAX));
}

static int geometry(struct iomem *f, size_t slot_size, size_t nslots, struct chan_geometry *g)
{
        if (nslots > SLOTS_MAX)
                return iom_fail(f->name, -EINVAL, "%zu slots are more than a channel has (%zu)", nslots,
                                SLOTS_MAX);
        if (slot_size > IOM_FILE_MAX / nslots)
                return iom_fail(f->name, -EFBIG, "%zu slots of %zu bytes are more than an object holds", nslots,
                                slot_size);
        g->slot_size = slot_size;
        g->nslots = nslots;
        g->stride = iom_round_up(slot_size, CHAN_LINE);
        g->table_off = iom_round_up(sizeof(struct chan_header), CHAN_LINE);
        g->data_off = iom_round_up(g->table_off + nslots * sizeof(struct chan_slot),
                                   slot_align(g->stride, f->page_size));
        g->region = iom_round_up(g->data_off + nslots * g->stride, f->page_size);
        if (g->region > IOM_FILE_MAX)
                return iom_fail(f->name, -EFBIG, "%zu slots of %zu bytes are more than an object holds", nslots,
                                slot_size);
        return 0;
}

/* ---- where the slots are -------------------------------------------- */

static char *slot_addr(const struct iomem_chan *c, size_t i)
{
        return c->base ? c->base + i * c->stride : c->slot_at[i];
}

static int by_addr(const void *a, const void *b)
{
        const char *x = ((const struct chan_piece *)a)->addr, *y = ((const struct chan_piece *)b)->addr;
        return (x > y) - (x < y);
}

/* The slot that starts at p, or -1. */
static ssize_t slot_index(const struct iomem_chan *c, const void *p)
{
        const char *q = p;
        uint64_t off;
        if (c->base) {
                if (q < c->base)
                        return -1;
                off = (uint64_t)(q - c->base);
        } else {
                size_t lo = 0, hi = c->npieces;
                while (hi - lo > 1) {
                        size_t mid = (lo + hi) / 2;
                        if (c->pieces[mid].addr <= q)
                                lo = mid;
                        else
                                hi = mid;
                }
                const struct chan_piece *pc = &c->pieces[lo];
                if (q < pc->addr || (uint64_t)(q - pc->addr) >= pc->len)
                        return -1;
                off = pc->off + (uint64_t)(q - pc->addr);
                if (off < c->data_off)
                        return -1;
                off -= c->data_off;
        }
        /* A division costs more than the rest of a message's round
         * trip: strides are mostly powers of two. */
        uint64_t i = c->stride_shift ? off >> c->stride_shift : off / c->stride;
        if (i >= c->nslots || off != i * c->stride)
                return -1;
        return (ssize_t)i;
}

/* Pin the channel's bytes and find its header, table and slots in them. */
static int map_region(struct iomem_chan *c, const struct chan_geometry *g)
{
        struct iomem *f = c->f;
        ssize_t got = iomem_acquire(f, 0, g->region);
        if (got < 0)
                return (int)got;
        c->pinned = (size_t)got;
        if ((size_t)got < g->region)
                return iom_fail(f->name, -EBADMSG, "the object is smaller than its channel (%zu bytes)", g->region);
        ssize_t n = iomem_bufcount(f, 0, g->region);
        if (n < 0)
                return (int)n;
        struct iovec *iov = NULL;
        int err = 0;
        if ((n = iom_retrieve_all(f, 0, g->region, (size_t)n, &iov)) < 0)
                return (int)n;
        if (iov[0].iov_len < g->data_off) {
                err = iom_fail(f->name, -ENOTSUP,
                               "the channel's header and slot table (%zu bytes) are not in one piece of memory "
                               "here (a dax: window's chunk is smaller): use fewer slots",
                               g->data_off);
                goto out;
        }
        c->h = iov[0].iov_base;
        c->table = (struct chan_slot *)((char *)iov[0].iov_base + g->table_off);
        c->slot_size = g->slot_size;
        c->nslots = g->nslots;
        c->stride = g->stride;
        c->stride_shift = iom_is_pow2(g->stride) ? (unsigned)__builtin_ctzll(g->stride) : 0;
        c->data_off = g->data_off;
        if (n == 1) {
                c->base = (char *)iov[0].iov_base + g->data_off;
                goto out;
        }
        /* Several pieces (a dax: window's chunks): each slot must lie in one. */
        c->slot_at = calloc(g->nslots, sizeof *c->slot_at);
        c->pieces = calloc((size_t)n, sizeof *c->pieces);
        if (!c->slot_at || !c->pieces) {
                err = iom_fail(f->name, -ENOMEM, "out of memory");
                goto out;
        }
        uint64_t at = 0;
        for (ssize_t k = 0; k < n; k++) {
                c->pieces[k] = (struct chan_piece){ iov[k].iov_base, at, iov[k].iov_len };
                at += iov[k].iov_len;
        }
        c->npieces = (size_t)n;
        size_t k = 0;
        for (size_t i = 0; i < g->nslots; i++) {
                uint64_t off = g->data_off + i * g->stride;
                while (k + 1 < c->npieces && off >= c->pieces[k].off + c->pieces[k].len)
                        k++;
                if (off + g->slot_size > c->pieces[k].off + c->pieces[k].len) {
                        err = iom_fail(f->name, -ENOTSUP,
                                       "slot %zu lies across two pieces of memory here (a dax: window's "
                                       "chunks): use a slot size that divides the chunk",
                                       i);
                        goto out;
                }
                c->slot_at[i] = c->pieces[k].addr + (off - c->pieces[k].off);
        }
        qsort(c->pieces, c->npieces, sizeof *c->pieces, by_addr);
out:
        free(iov);
        return err;
}

/* ---- creating and finding ------------------------------------------------ */

/* The header the object holds says what we would make of it. */
static int check_header(struct iomem *f, const struct chan_header *hd, struct chan_geometry *g)
{
        if (hd->version != CHAN_VERSION)
                return iom_fail(f->name, -EBADMSG, "holds a channel of version %u; this library knows %u",
                                hd->version, CHAN_VERSION);
        struct iom_error_saved saved;
        iom_error_save(&saved);
        bool ok = hd->slot_size && hd->nslots && hd->slot_size <= SIZE_MAX && hd->nslots <= SIZE_MAX &&
                  !geometry(f, (size_t)hd->slot_size, (size_t)hd->nslots, g) && g->data_off == hd->data_off &&
                  g->region == hd->region;
        iom_error_restore(&saved);
        return ok ? 0 : iom_fail(f->name, -EBADMSG, "the channel's header is spoilt");
}

/* A channel is made only where nothing is written: [0, min(size, len)). */
static int nothing_written(struct iomem *f, size_t size, size_t len)
{
        size_t end = iom_min(size, len), chunk = 64 << 10;
        unsigned char *buf = malloc(chunk);
        if (!buf)
                return iom_fail(f->name, -ENOMEM, "out of memory");
        int err = 0;
        for (size_t off = 0; off < end && !err;) {
                ssize_t n = iomem_pread(f, buf, iom_min(chunk, end - off), off);
                if (n <= 0) {
                        err = n < 0 ? (int)iom_inner_result(n) : 0;
                        break;
                }
                for (ssize_t i = 0; i < n && !err; i++)
                        if (buf[i])
                                err = iom_fail(f->name, -EEXIST, "holds data that is not a channel (byte %zu)",
                                               off + (size_t)i);
                off += (size_t)n;
        }
        free(buf);
        return err;
}

static void init_header(struct iomem_chan *c, const struct chan_geometry *g)
{
        struct chan_header *h = c->h;
        __atomic_store_n(&h->magic, CHAN_MAKING, __ATOMIC_RELEASE);
        memset((char *)h + sizeof h->magic, 0, g->data_off - sizeof h->magic);
        h->version = CHAN_VERSION;
        h->slot_size = g->slot_size;
        h->nslots = g->nslots;
        h->data_off = g->data_off;
        h->region = g->region;
        for (size_t i = 0; i < g->nslots; i++)
                c->table[i].seq = CHAN_NO_MESSAGE;
        __atomic_store_n(&h->magic, CHAN_MAGIC, __ATOMIC_RELEASE);
}

/* Under the object's I/O lock (write, to create): find the channel, or
 * make it when want says how. */
static int find_or_make(struct iomem_chan *c, const struct chan_geometry *want)
{
        struct iomem *f = c->f;
        struct iomem_stat st;
        int err = (int)iom_inner_result(iomem_stat(f, &st));
        if (err)
                return err;
        struct chan_header hd = { 0 };
        if (st.size >= sizeof hd) {
                ssize_t n = iomem_pread(f, &hd, sizeof hd, 0);
                if (n < 0)
                        return (int)iom_inner_result(n);
        }
        if (hd.magic == CHAN_MAGIC) {
                struct chan_geometry g;
                if ((err = check_header(f, &hd, &g)))
                        return err;
                if (want && (want->slot_size != g.slot_size || want->nslots != g.nslots))
                        return iom_fail(f->name, -EEXIST, "holds a channel of %zu slots of %zu bytes", g.nslots,
                                        g.slot_size);
                return (int)iom_inner_result(map_region(c, &g));
        }
        if (!want)
                return iom_fail(f->name, -ENOENT, "holds no channel (one is made with a slot size and count)");
        /* A creator that died half way (it held the write lock we hold
         * now) left its work to be done again. */
        if (hd.magic != CHAN_MAKING && (err = nothing_written(f, st.size, want->region)))
                return err;
        if (st.size < want->region && (err = (int)iom_inner_result(iomem_truncate(f, want->region))))
                return err;
        if (!(err = (int)iom_inner_result(map_region(c, want)))) {
                init_header(c, want);
                return 0;
        }
        /* Leave the object as it was: unpinned, its old size. */
        struct iom_error_saved saved;
        iom_error_save(&saved);
        if (c->pinned && !iomem_release(f, 0, c->pinned))
                c->pinned = 0;
        if (st.size < want->region)
                iomem_truncate(f, st.size);
        iom_error_restore(&saved);
        return err;
}

static void chan_free(struct iomem_chan *c)
{
        if (c->counted)
                __atomic_sub_fetch(&c->f->channels, 1, __ATOMIC_RELEASE);
        if (c->pinned && c->fork_gen == iom_fork_generation())
                iomem_release(c->f, 0, c->pinned);
        if (c->sock >= 0 && c->fork_gen == iom_fork_generation())
                iom_wakeup_close(c->sock, &c->wake);
        else if (c->sock >= 0)
                close(c->sock); /* a fork's child: the name is its parent's */
        free(c->published);
        free(c->slot_at);
        free(c->pieces);
        free(c);
}

IOM_PUBLIC int iomem_chan_open(struct iomem_chan **out, struct iomem *f, size_t slot_size, size_t nslots,
                               unsigned flags)
{
        static const char op[] = "iomem_chan_open";
        if (!out || !f)
                return FAIL(op, NULL, -EINVAL, "NULL %s", out ? "object" : "out");
        if (flags & ~ALL_FLAGS)
                return FAIL(op, f->name, -EINVAL, "unknown flags 0x%x", flags & ~ALL_FLAGS);
        if ((flags & IOMEM_CHAN_PRODUCER) && (flags & IOMEM_CHAN_CONSUMER))
                return FAIL(op, f->name, -EINVAL, "a handle is the producer or a consumer, not both");
        if (!slot_size != !nslots)
                return FAIL(op, f->name, -EINVAL,
                            "a slot size and a slot count make a channel, neither attaches to one; not one alone");
        if (!(f->flags & IOMEM_RDWR))
                return FAIL(op, f->name, -EROFS, "a channel needs its object open read-write");
        bool create = slot_size != 0;
        struct chan_geometry want;
        int err;
        if (create && (err = geometry(f, slot_size, nslots, &want)))
                return (int)iom_result(op, err);
        struct iomem_chan *c = calloc(1, sizeof *c);
        if (!c)
                return FAIL(op, f->name, -ENOMEM, "out of memory");
        c->f = f;
        c->flags = flags;
        c->sock = -1;
        c->fork_gen = iom_fork_generation();
        c->pid = getpid();
        c->start_time = iom_process_start_time(c->pid, NULL);
        bool producer = (flags & IOMEM_CHAN_PRODUCER) || (create && !(flags & IOMEM_CHAN_CONSUMER));
        err = (int)iom_inner_result(create ? iomem_wrlock(f) : iomem_rdlock(f));
        if (!err) {
                err = find_or_make(c, create ? &want : NULL);
                struct iom_error_saved saved; /* the unlock's success is not news */
                iom_error_save(&saved);
                iomem_unlock(f);
                iom_error_restore(&saved);
        }
        if (!err && producer && !(c->published = calloc(c->nslots, sizeof *c->published)))
                err = iom_fail(f->name, -ENOMEM, "out of memory");
        /* The socket first: reaping wakes the producer through it. */
        if (!err && (err = iom_wakeup_open(&c->sock, &c->wake)))
                err = iom_fail(f->name, err, "a wake-up socket: %s", strerror(-err));
        if (!err && !(err = iom_chan_lock(c, true))) {
                iom_chan_reap_dead(c);
                err = producer ? iom_chan_join_producer(c) : iom_chan_join_consumer(c);
                iom_chan_unlock(c);
        }
        if (err) {
                chan_free(c);
                return (int)iom_result(op, err);
        }
        __atomic_add_fetch(&f->channels, 1, __ATOMIC_RELEASE); /* chan_free takes it back */
        c->counted = true;
        *out = c;
        return 0;
}

/* What a handle is not to do: be used in a child it was inherited by, or
 * in the other party's role. */
static int refuse_handle(const char *op, struct iomem_chan *c)
{
        if (!c)
                return FAIL(op, NULL, -EINVAL, "NULL channel");
        if (c->fork_gen != iom_fork_generation())
                return FAIL(op, name(c), -EINVAL, "the channel was opened by the parent process; open it again");
        return FAIL(op, name(c), -EPERM, "this handle is %s", c->producer ? "the producer" : "a consumer");
}

/* Inline: it runs twice per message, whose whole round trip is a hundred
 * nanoseconds. */
static inline int check_handle(const char *op, struct iomem_chan *c, bool producer)
{
        if (__builtin_expect(c && c->fork_gen == iom_fork_generation() && c->producer == producer, 1))
                return 0;
        return refuse_handle(op, c);
}

IOM_PUBLIC int iomem_chan_close(struct iomem_chan **cp)
{
        if (!cp)
                return FAIL("iomem_chan_close", NULL, -EINVAL, "NULL pointer");
        struct iomem_chan *c = *cp;
        if (!c)
                return 0;
        *cp = NULL;
        if (c->fork_gen == iom_fork_generation() && c->me && !iom_chan_lock(c, true)) {
                iom_chan_leave(c);
                iom_chan_unlock(c);
        }
        chan_free(c);
        return 0;
}

/* ---- waiting ------------------------------------------------------------- */

/* Until ready: spin a little, then sleep armed on the wake-up socket. The
 * producer looks for dead consumers now and then: they cannot wake it. */
static int await(const char *op, struct iomem_chan *c, bool (*ready)(struct iomem_chan *))
{
        if (ready(c))
                return 0;
        bool nonblock = c->flags & IOMEM_CHAN_NONBLOCK;
        if (!nonblock)
                for (uint64_t t0 = iom_monotonic_ns(); iom_monotonic_ns() - t0 < SPIN_NS;) {
                        sched_yield();
                        if (ready(c))
                                return 0;
                }
        for (;;) {
                iom_wakeup_drain(c->sock);
                /* Sequentially consistent, as ready's reads after it: the
                 * waker's change, or its seeing this bit. */
                __atomic_fetch_or(&c->h->armed, c->bit, __ATOMIC_SEQ_CST);
                if (ready(c))
                        return 0;
                if (c->producer && iom_chan_reap_if_due(c) && ready(c))
                        return 0;
                if (nonblock)
                        return FAIL(op, name(c), -EAGAIN,
                                    c->producer ? "every slot holds a message not yet released"
                                                : "no message waits");
                int err = iom_wakeup_wait(c->sock, RECHECK_MS);
                if (err)
                        return FAIL(op, name(c), err, "waiting: %s", strerror(-err));
        }
}

/* ---- the producer ---------------------------------------------------------- */

/* Can the slot of the next loan take a message? Nobody holds it; or only
 * bits of nobody (spoilt), or a producer that died committing there.
 * Bits of consumers that left are the clean's to judge: it keeps for the
 * next consumer what nobody received. */
static inline bool slot_free(struct iomem_chan *c)
{
        if (c->loan_next - c->head >= c->nslots)
                return false;
        struct chan_slot *e = &c->table[c->loan_slot];
        uint64_t p = __atomic_load_n(&e->pending, __ATOMIC_SEQ_CST);
        while (p) {
                uint64_t s = load(&e->seq);
                bool leftover = s != CHAN_NO_MESSAGE && s >= c->head; /* never committed */
                if (!leftover) {
                        if (p & (load(&c->h->registered) | CHAN_KEEP))
                                return false;
                        if (p & __atomic_load_n(&c->h->retired, __ATOMIC_SEQ_CST)) {
                                if (!iom_chan_clean_retired_try(c))
                                        return false;
                                p = __atomic_load_n(&e->pending, __ATOMIC_SEQ_CST);
                                continue;
                        }
                }
                if (__atomic_compare_exchange_n(&e->pending, &p, 0, false, __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE))
                        break;
        }
        return true;
}

IOM_PUBLIC int iomem_chan_loan(struct iomem_chan *c, void **slot)
{
        static const char op[] = "iomem_chan_loan";
        int err = check_handle(op, c, true);
        if (err)
                return err;
        if (!slot)
                return FAIL(op, name(c), -EINVAL, "NULL slot");
        if (c->loan_next - c->head >= c->nslots)
                return FAIL(op, name(c), -ENOBUFS, "all %zu slots are loaned; publish one first", c->nslots);
        if (__builtin_expect(iom_chan_load(&c->h->retired) != 0, 0))
                iom_chan_clean_retired_try(c); /* a consumer left: between messages, only here */
        if (!slot_free(c) && (err = await(op, c, slot_free)))
                return err;
        size_t i = c->loan_slot;
        c->loan_next++;
        c->loan_slot = step(c, i);
        c->published[i] = false;
        *slot = slot_addr(c, i);
        return 0;
}

IOM_PUBLIC int iomem_chan_publish(struct iomem_chan *c, void *slot, size_t len)
{
        static const char op[] = "iomem_chan_publish";
        int err = check_handle(op, c, true);
        if (err)
                return err;
        ssize_t i = slot_index(c, slot);
        /* The loaned slots hold messages head .. loan_next - 1. */
        size_t k = (size_t)i;
        uint64_t s = c->head + (k >= c->head_slot ? k - c->head_slot : k + c->nslots - c->head_slot);
        if (i < 0 || s >= c->loan_next || c->published[i])
                return FAIL(op, name(c), -EINVAL, "%p is not a slot loaned and not yet published", slot);
        if (len > c->slot_size)
                return FAIL(op, name(c), -EMSGSIZE, "a message of %zu bytes in a slot of %zu", len, c->slot_size);
        struct chan_slot *e = &c->table[i];
        /* len before seq: a reader that sees the new seq sees len without
         * CHAN_COMMITTED, never the last message's. */
        __atomic_store_n(&e->len, len, __ATOMIC_RELAXED);
        __atomic_store_n(&e->seq, s, __ATOMIC_RELEASE);
        c->published[i] = true;
        bool advanced = false;
        while (c->head < c->loan_next && c->published[c->head_slot]) {
                k = c->head_slot;
                c->head_slot = step(c, k);
                struct chan_slot *ek = &c->table[k];
                uint64_t who = __atomic_load_n(&c->h->registered, __ATOMIC_SEQ_CST);
                __atomic_store_n(&ek->pending, who ? who : CHAN_KEEP, __ATOMIC_RELEASE);
                /* The commit: whoever sees it sees the bits and the bytes. */
                __atomic_store_n(&ek->len, __atomic_load_n(&ek->len, __ATOMIC_RELAXED) | CHAN_COMMITTED,
                                 __ATOMIC_SEQ_CST);
                c->published[k] = false;
                __atomic_store_n(&c->h->head, ++c->head, __ATOMIC_RELEASE);
                advanced = true;
        }
        if (advanced)
                iom_chan_wake_consumers(c);
        return 0;
}

/* ---- a consumer ---------------------------------------------------------------- */

/* Is message s, in entry e, this consumer's? Its bit says. Those
 * committed as it joined may lack it (the producer read the registered
 * mask before): it takes them now, unless everyone let them go. */
static bool is_mine(struct iomem_chan *c, struct chan_slot *e, uint64_t s)
{
        uint64_t p = load(&e->pending);
        if (p & c->bit)
                return load(&e->seq) == s; /* not the next message of a slot lent again */
        if (s < c->joined)
                return false;
        while (p && !__atomic_compare_exchange_n(&e->pending, &p, (p | c->bit) & ~CHAN_KEEP, false, __ATOMIC_SEQ_CST,
                                                 __ATOMIC_ACQUIRE))
                ;
        return p && load(&e->seq) == s;
}

/* Is a message there for this consumer? Passes over those that are not
 * (freed before it joined, or spoilt: at most a ring's worth per call). */
static inline bool message_waits(struct iomem_chan *c)
{
        for (size_t n = 0; n < c->nslots; n++) {
                struct chan_slot *e = &c->table[c->next_slot];
                uint64_t len, s = iom_chan_entry(e, &len);
                if (s == c->next && (len & CHAN_COMMITTED)) {
                        if (is_mine(c, e, s))
                                return true;
                } else if (c->next < c->joined && !(load(&e->pending) & c->bit)) {
                        /* From before it joined and not its own: whatever
                         * the slot holds now, nothing to wait for. */
                } else if (s == CHAN_NO_MESSAGE || s <= c->next) {
                        return false; /* not published yet */
                } else if (s - c->next > c->nslots) {
                        /* Further ahead than the ring holds: only a spoilt
                         * count says so. Go where the ring is. */
                        c->next = s - c->nslots;
                        c->next_slot = c->next % c->nslots;
                }
                c->next++;
                c->next_slot = step(c, c->next_slot);
        }
        return false;
}

IOM_PUBLIC ssize_t iomem_chan_receive(struct iomem_chan *c, const void **msg)
{
        static const char op[] = "iomem_chan_receive";
        int err = check_handle(op, c, false);
        if (err)
                return err;
        if (!msg)
                return FAIL(op, name(c), -EINVAL, "NULL msg");
        if (c->held >= c->nslots)
                return FAIL(op, name(c), -ENOBUFS, "this consumer holds all %zu slots; release one first",
                            c->nslots);
        if (!message_waits(c) && (err = await(op, c, message_waits)))
                return err;
        size_t i = c->next_slot;
        struct chan_slot *e = &c->table[i];
        uint64_t len = load(&e->len) & ~CHAN_COMMITTED;
        __atomic_store_n(&c->me->next, ++c->next, __ATOMIC_RELEASE);
        c->next_slot = step(c, i);
        if (len > c->slot_size) {
                __atomic_fetch_and(&e->pending, ~c->bit, __ATOMIC_SEQ_CST);
                iom_chan_wake_producer(c);
                return FAIL(op, name(c), -EBADMSG, "message %llu says it has %llu bytes, in a slot of %zu",
                            (unsigned long long)(c->next - 1), (unsigned long long)len, c->slot_size);
        }
        c->held++;
        *msg = slot_addr(c, i);
        return (ssize_t)len;
}

IOM_PUBLIC int iomem_chan_release(struct iomem_chan *c, const void *msg)
{
        static const char op[] = "iomem_chan_release";
        int err = check_handle(op, c, false);
        if (err)
                return err;
        ssize_t i = slot_index(c, msg);
        struct chan_slot *e = i < 0 ? NULL : &c->table[i];
        if (!e || !(load(&e->pending) & c->bit) || load(&e->seq) >= c->next)
                return FAIL(op, name(c), -EINVAL, "%p is not a message this consumer holds", msg);
        __atomic_fetch_and(&e->pending, ~c->bit, __ATOMIC_SEQ_CST);
        c->held -= c->held > 0;
        iom_chan_wake_producer(c);
        return 0;
}

IOM_PUBLIC int iomem_chan_fd(struct iomem_chan *c)
{
        if (!c)
                return FAIL("iomem_chan_fd", NULL, -EINVAL, "NULL channel");
        int err = check_handle("iomem_chan_fd", c, c->producer);
        if (err)
                return err;
        /* Armed from now on; readable at once when there is something. */
        __atomic_fetch_or(&c->h->armed, c->bit, __ATOMIC_SEQ_CST);
        if (c->producer ? slot_free(c) : message_waits(c))
                iom_wakeup_send(c->sock, &c->me->wake);
        return c->sock;
}
