/* SPDX-License-Identifier: MIT */
/*
 * A channel's layout in its object and its handle, shared by chan.c (the
 * messages) and chan_parties.c (who is attached: joining, leaving,
 * reaping the dead).
 *
 * The object holds, from offset 0: the header (geometry, the parties'
 * lock, the count of messages published, the parties), the slot table
 * (per slot: the message's sequence number, its length, and who still
 * holds it) and, from data_off, the slots, stride bytes apart.
 *
 * Everything here is shared with other processes, which may have spoilt
 * it: a value read from it is checked before it is used as an index,
 * and a loop bounded by one is clamped.
 */
#ifndef IOMEM_CHAN_H
#define IOMEM_CHAN_H

#include "internal.h"
#include "wakeup.h"

#define CHAN_LINE 64
#define CHAN_CONSUMERS_MAX 63
#define CHAN_KEEP (UINT64_C(1) << 63)           /* pending: for a consumer to come */
#define CHAN_PRODUCER_ARMED (UINT64_C(1) << 63) /* armed: the producer sleeps */
#define CHAN_NO_MESSAGE UINT64_MAX              /* seq of a slot never used */
#define CHAN_COMMITTED (UINT64_C(1) << 63)      /* len: the message is published */

struct chan_party {
        int32_t pid; /* 0: nobody */
        uint32_t unused;
        uint64_t start_time;
        uint64_t next; /* a consumer's next message (what it has received) */
        struct iom_wakeup_name wake;
} __attribute__((aligned(CHAN_LINE)));

struct chan_header {
        uint64_t magic; /* written last: the rest is whole */
        uint32_t version, unused;
        uint64_t slot_size, nslots, data_off, region;
        /* The parties' lock: its holder's pid (high half) and start time
         * (low half), 0 when free. */
        uint64_t lock;
        /* Consumers attached, a bit each; parties asleep, to be woken
         * (consumers' bits, CHAN_PRODUCER_ARMED); bits of consumers gone
         * that a message may still carry, not given out again until no
         * table entry does. */
        uint64_t registered __attribute__((aligned(CHAN_LINE)));
        uint64_t armed, retired;
        uint64_t head __attribute__((aligned(CHAN_LINE))); /* messages published */
        struct chan_party producer;
        struct chan_party consumer[CHAN_CONSUMERS_MAX];
};

/* A slot's entry. The producer writes len and seq when the caller
 * publishes; when every message before is published too, pending, then
 * len | CHAN_COMMITTED, which publishes it, then head. A consumer reads the
 * entry of its next message, never head: that line stays the producer's. */
struct chan_slot {
        uint64_t seq, len;
        uint64_t pending; /* consumers that hold the message, CHAN_KEEP */
} __attribute__((aligned(CHAN_LINE)));

/* Where the slots are when the pinned memory is in several pieces. */
struct chan_piece {
        char *addr;
        uint64_t off, len;
};

struct iomem_chan {
        struct iomem *f;
        struct chan_header *h;
        struct chan_slot *table;
        size_t slot_size, nslots, stride, data_off;
        size_t pinned;             /* bytes acquired from offset 0 */
        unsigned stride_shift;     /* log2(stride) when a power of two, else 0 */
        char *base;                /* slot i at base + i * stride, when contiguous */
        char **slot_at;            /* else each slot's address */
        struct chan_piece *pieces; /* and the pieces by address */
        size_t npieces;
        bool producer, counted;
        unsigned flags, fork_gen;
        pid_t pid;
        uint64_t start_time;
        struct chan_party *me;
        uint64_t bit; /* a consumer's bit; the producer's in armed */
        int sock;     /* wakes this handle (iomem_chan_fd) */
        struct iom_wakeup_name wake;
        /* The producer: messages it has published (a copy of head) and the
         * sequence of its next loan; by slot, loaned slots published out
         * of order, waiting for those before them. */
        uint64_t head, loan_next;
        size_t head_slot, loan_slot; /* head and loan_next % nslots */
        bool *published;
        /* A consumer: its next message and the head it joined at; how many
         * messages it holds. */
        uint64_t next, joined;
        size_t next_slot; /* next % nslots */
        size_t held;
        uint64_t reap_at_ns;
};

static inline const char *iom_chan_name(const struct iomem_chan *c)
{
        return c->f->name;
}

static inline uint64_t iom_chan_load(const uint64_t *p)
{
        return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

/* Entry e as one reading: the sequence number of its message, and in
 * *len its len word. seq is read on both sides of len so that the two
 * belong to one message (a spoilt entry that keeps changing reads as
 * unpublished). The len load is sequentially consistent: after arming, a
 * waiter sees the publisher's commit or the publisher sees it armed. */
static inline uint64_t iom_chan_entry(const struct chan_slot *e, uint64_t *len)
{
        for (int tries = 0; tries < 64; tries++) {
                uint64_t s = __atomic_load_n(&e->seq, __ATOMIC_ACQUIRE);
                *len = __atomic_load_n(&e->len, __ATOMIC_SEQ_CST);
                if (__atomic_load_n(&e->seq, __ATOMIC_ACQUIRE) == s)
                        return s;
        }
        *len = 0;
        return CHAN_NO_MESSAGE;
}

/* Is message s published in entry e? */
static inline bool iom_chan_published(const struct chan_slot *e, uint64_t s)
{
        uint64_t len;
        return iom_chan_entry(e, &len) == s && (len & CHAN_COMMITTED);
}

/* Wake the armed consumers: after a commit. */
static inline void iom_chan_wake_consumers(struct iomem_chan *c)
{
        /* Sequentially consistent, as the commit before it and the
         * consumer's arming and reading of the entry: one of the two sees
         * the other. */
        uint64_t armed = __atomic_load_n(&c->h->armed, __ATOMIC_SEQ_CST) & ~CHAN_PRODUCER_ARMED;
        for (int b = 0; armed; b++, armed >>= 1) {
                uint64_t bit = UINT64_C(1) << b;
                if ((armed & 1) && (__atomic_fetch_and(&c->h->armed, ~bit, __ATOMIC_SEQ_CST) & bit))
                        iom_wakeup_send(c->sock, &c->h->consumer[b].wake);
        }
}

/* Wake the producer if armed: after a slot may have become free. */
static inline void iom_chan_wake_producer(struct iomem_chan *c)
{
        if ((__atomic_load_n(&c->h->armed, __ATOMIC_SEQ_CST) & CHAN_PRODUCER_ARMED) &&
            (__atomic_fetch_and(&c->h->armed, ~CHAN_PRODUCER_ARMED, __ATOMIC_SEQ_CST) & CHAN_PRODUCER_ARMED))
                iom_wakeup_send(c->sock, &c->h->producer.wake);
}

/* ---- the parties (chan_parties.c) -------------------------------------- */

/* Take the parties' lock, from a holder that died if need be (whatever it
 * left half done, the next iom_chan_reap_dead finishes). Without wait,
 * -EAGAIN when a live process holds it. */
int iom_chan_lock(struct iomem_chan *c, bool wait);
void iom_chan_unlock(struct iomem_chan *c);
/* Parties locked: reap the parties that died. */
void iom_chan_reap_dead(struct iomem_chan *c);
/* The producer, waiting: reap dead consumers every 100 ms, since they
 * cannot wake it (if the lock is free: a waiting producer must not wait
 * on a stopped process instead). 1 when it did, else 0. */
int iom_chan_reap_if_due(struct iomem_chan *c);
/* Parties locked: join as the producer or as a consumer; leave. */
int iom_chan_join_producer(struct iomem_chan *c);
int iom_chan_join_consumer(struct iomem_chan *c);
void iom_chan_leave(struct iomem_chan *c);
/* Parties locked, and no commit under way (the producer between messages,
 * or no producer): take retired bits out of the table, keeping for the
 * next consumer what nobody received, and give the bits out again. */
void iom_chan_clean_retired(struct iomem_chan *c);
/* The producer between messages: the same if the lock is free; false if
 * not. */
bool iom_chan_clean_retired_try(struct iomem_chan *c);
/* The messages published: head, and those committed past it (a producer
 * dies between the two) up to the first that is not. */
uint64_t iom_chan_count_published(const struct iomem_chan *c);

#endif /* IOMEM_CHAN_H */
