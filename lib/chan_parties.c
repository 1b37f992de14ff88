/* SPDX-License-Identifier: MIT */
/*
 * Who is attached to a channel (chan.h): the producer and the consumers
 * join, leave, and are reaped when they die, under the parties' lock.
 *
 * The lock is a word in the object holding the holder's pid and start
 * time: a process that dies holding it is found dead and the lock taken
 * over, and nothing but the word is trusted (a pthread mutex would keep
 * list pointers there that unlocking writes through).
 *
 * A consumer's bit stays on the messages it has not released. When it
 * goes, its bit is taken off every table entry and then retired: a
 * publish that read the registered mask just before may still put it on
 * one message, and a new consumer given the same bit would take that
 * message for its own while the producer, which saw the bit unregistered,
 * lends its slot again. A retired bit is given out again only after the
 * producer (or, with none, a party holding the lock) has cleared it from
 * the whole table.
 */
#include "chan.h"
#include "lockwait.h"

#include <sched.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REAP_EVERY_NS (UINT64_C(100) * 1000000)
#define LOCK_CHECK_EVERY 64 /* tries between looks at whether the holder lives */

static uint64_t lock_word(pid_t pid, uint64_t start_time)
{
        return (uint64_t)(uint32_t)pid << 32 | (uint32_t)start_time;
}

int iom_chan_lock(struct iomem_chan *c, bool wait)
{
        uint64_t me = lock_word(c->pid, c->start_time);
        for (unsigned tries = 1;; tries++) {
                uint64_t holder = 0;
                if (__atomic_compare_exchange_n(&c->h->lock, &holder, me, false, __ATOMIC_ACQUIRE,
                                                __ATOMIC_RELAXED))
                        return 0;
                if (!wait || tries % LOCK_CHECK_EVERY == 0) {
                        pid_t pid = (pid_t)(holder >> 32);
                        if (pid <= 0 || iom_process_gone(pid, (uint32_t)holder)) {
                                iom_debug("%s: taking the channel's lock from dead process %d", iom_chan_name(c),
                                          (int)pid);
                                __atomic_compare_exchange_n(&c->h->lock, &holder, 0, false, __ATOMIC_RELAXED,
                                                            __ATOMIC_RELAXED);
                                continue;
                        }
                        if (!wait)
                                return -EAGAIN;
                }
                /* Held for a scan of the table at most: yield; then sleep a
                 * little, should its holder be stopped. */
                if (tries < 1024)
                        sched_yield();
                else
                        nanosleep(&(struct timespec){ .tv_nsec = 50000 }, NULL);
        }
}

void iom_chan_unlock(struct iomem_chan *c)
{
        __atomic_store_n(&c->h->lock, 0, __ATOMIC_RELEASE);
        /* A producer that found the lock taken when it came to clean
         * (slot_free) sleeps; what was done under it may have freed its
         * slot too. */
        if (!c->producer)
                iom_chan_wake_producer(c);
}

static void party_set(struct iomem_chan *c, struct chan_party *p)
{
        for (int i = 0; i < IOM_WAKEUP_NAME_WORDS; i++)
                __atomic_store_n(&p->wake.word[i], c->wake.word[i], __ATOMIC_RELAXED);
        __atomic_store_n(&p->wake.len, c->wake.len, __ATOMIC_RELAXED);
        __atomic_store_n(&p->start_time, c->start_time, __ATOMIC_RELAXED);
        __atomic_store_n(&p->pid, c->pid, __ATOMIC_RELEASE);
        c->me = p;
}

static void party_clear(struct chan_party *p)
{
        __atomic_store_n(&p->wake.len, 0, __ATOMIC_RELAXED);
        __atomic_store_n(&p->pid, 0, __ATOMIC_RELEASE);
}

static bool party_gone(const struct chan_party *p)
{
        pid_t pid = __atomic_load_n(&p->pid, __ATOMIC_ACQUIRE);
        return pid && iom_process_gone(pid, __atomic_load_n(&p->start_time, __ATOMIC_RELAXED));
}

/* Consumer b goes (parties locked): what it holds is free, and what it
 * has not received yet is kept for the next consumer when it was the
 * last. An entry the producer is committing keeps the bit: the clean of
 * retired bits, which never runs during a commit, judges it once it is
 * committed. Idempotent: a reaper that dies half way is followed by
 * another. */
static void consumer_drop(struct iomem_chan *c, int b)
{
        struct chan_header *h = c->h;
        uint64_t bit = UINT64_C(1) << b;
        /* Registered while the table is cleared, so that the producer
         * does not take the messages it still holds for free ones. */
        uint64_t rest = iom_chan_load(&h->registered) & ~bit;
        uint64_t next = iom_chan_load(&h->consumer[b].next);
        for (size_t i = 0; i < c->nslots; i++) {
                struct chan_slot *e = &c->table[i];
                uint64_t p = iom_chan_load(&e->pending);
                while (p & bit) {
                        uint64_t len, s = iom_chan_entry(e, &len), np = p & ~bit;
                        if (!(len & CHAN_COMMITTED))
                                break;
                        if (!(np & ~CHAN_KEEP) && !rest && s >= next)
                                np = CHAN_KEEP;
                        if (__atomic_compare_exchange_n(&e->pending, &p, np, false, __ATOMIC_SEQ_CST,
                                                        __ATOMIC_ACQUIRE))
                                break;
                }
        }
        /* Retired before unregistered: the producer, finding the bit on a
         * message, never sees it neither, and leaves that message to the
         * clean. */
        __atomic_fetch_or(&h->retired, bit, __ATOMIC_SEQ_CST);
        __atomic_fetch_and(&h->registered, ~bit, __ATOMIC_SEQ_CST);
        party_clear(&h->consumer[b]);
}

bool iom_chan_clean_retired_try(struct iomem_chan *c)
{
        if (iom_chan_lock(c, false))
                return false;
        iom_chan_clean_retired(c);
        iom_chan_unlock(c);
        return true;
}

void iom_chan_clean_retired(struct iomem_chan *c)
{
        struct chan_header *h = c->h;
        uint64_t gone = __atomic_load_n(&h->retired, __ATOMIC_SEQ_CST) & ~CHAN_KEEP;
        if (!gone)
                return;
        uint64_t rest = iom_chan_load(&h->registered) & ~gone;
        for (size_t i = 0; i < c->nslots; i++) {
                struct chan_slot *e = &c->table[i];
                uint64_t p = iom_chan_load(&e->pending);
                while (p & gone) {
                        /* A message published as its consumers left: nobody
                         * received it. */
                        uint64_t len, np = p & ~gone;
                        iom_chan_entry(e, &len);
                        if (!(np & ~CHAN_KEEP) && !rest && (len & CHAN_COMMITTED))
                                np = CHAN_KEEP;
                        if (__atomic_compare_exchange_n(&e->pending, &p, np, false, __ATOMIC_SEQ_CST,
                                                        __ATOMIC_ACQUIRE))
                                break;
                }
        }
        __atomic_fetch_and(&h->retired, ~gone, __ATOMIC_SEQ_CST);
}

void iom_chan_reap_dead(struct iomem_chan *c)
{
        struct chan_header *h = c->h;
        uint64_t registered = iom_chan_load(&h->registered);
        for (int b = 0; b < CHAN_CONSUMERS_MAX; b++) {
                struct chan_party *p = &h->consumer[b];
                /* A bit without a party is a spoilt one: nobody will release it. */
                bool orphan = (registered >> b & 1) && !__atomic_load_n(&p->pid, __ATOMIC_ACQUIRE);
                if (orphan || party_gone(p)) {
                        iom_debug("%s: reclaiming what dead consumer %d held", iom_chan_name(c), (int)p->pid);
                        iom_wakeup_forget(&p->wake);
                        consumer_drop(c, b);
                }
        }
        if (party_gone(&h->producer)) {
                iom_wakeup_forget(&h->producer.wake);
                party_clear(&h->producer);
        }
}

int iom_chan_reap_if_due(struct iomem_chan *c)
{
        uint64_t now = iom_monotonic_ns();
        if (now < c->reap_at_ns)
                return 0;
        c->reap_at_ns = now + REAP_EVERY_NS;
        if (iom_chan_lock(c, false))
                return 0;
        iom_chan_reap_dead(c);
        iom_chan_unlock(c);
        return 1;
}

int iom_chan_join_producer(struct iomem_chan *c)
{
        struct chan_party *p = &c->h->producer;
        pid_t pid = __atomic_load_n(&p->pid, __ATOMIC_ACQUIRE);
        if (pid)
                return iom_fail(iom_chan_name(c), -EBUSY, "process %d is the channel's producer", (int)pid);
        /* A producer that died while a consumer left may have put the
         * consumer's bit on a message. */
        iom_chan_clean_retired(c);
        /* One that died between a commit and head counted that message
         * published: so it is. */
        uint64_t head = iom_chan_count_published(c);
        __atomic_store_n(&c->h->head, head, __ATOMIC_RELEASE);
        party_set(c, p);
        c->producer = true;
        c->bit = CHAN_PRODUCER_ARMED;
        c->head = c->loan_next = head;
        c->head_slot = c->loan_slot = c->head % c->nslots;
        return 0;
}

uint64_t iom_chan_count_published(const struct iomem_chan *c)
{
        uint64_t head = iom_chan_load(&c->h->head);
        for (size_t n = 0; n < c->nslots; n++, head++) {
                uint64_t len, s = iom_chan_entry(&c->table[head % c->nslots], &len);
                /* Published, or its slot already lent again for a later
                 * message, which needs it published (and released) first. */
                bool published = (s == head && (len & CHAN_COMMITTED)) || (s != CHAN_NO_MESSAGE && s > head);
                if (!published)
                        break;
        }
        return head;
}

/* A free bit: nobody's, and on no message. */
static int free_bit(struct chan_header *h)
{
        uint64_t taken = iom_chan_load(&h->registered) | iom_chan_load(&h->retired);
        for (int b = 0; b < CHAN_CONSUMERS_MAX; b++)
                if (!(taken >> b & 1) && !__atomic_load_n(&h->consumer[b].pid, __ATOMIC_ACQUIRE))
                        return b;
        return -1;
}

/* A consumer takes, besides what comes next, the messages the ring keeps
 * for nobody (CHAN_KEEP), and only those: nobody else releases them, so
 * what it takes stays whole however the others go on. (Taking the
 * messages others hold, it could be handed the one committed as it
 * joined, without its bit, after the others had freed it: a hole.) */
int iom_chan_join_consumer(struct iomem_chan *c)
{
        struct chan_header *h = c->h;
        int b = free_bit(h);
        if (b < 0 && !__atomic_load_n(&h->producer.pid, __ATOMIC_ACQUIRE)) {
                iom_chan_clean_retired(c); /* no producer to do it */
                b = free_bit(h);
        }
        if (b < 0)
                return iom_fail(iom_chan_name(c), -EUSERS,
                                "the channel has %d consumers, as many as it can (those that left are "
                                "counted until the producer's next loan)",
                                CHAN_CONSUMERS_MAX);
        struct chan_party *p = &h->consumer[b];
        /* Until it knows, everything it gets is unreceived: kept if it dies. */
        __atomic_store_n(&p->next, 0, __ATOMIC_RELAXED);
        /* Known by pid before it has a bit, so that a reaper finds the bit. */
        party_set(c, p);
        c->bit = UINT64_C(1) << b;
        __atomic_fetch_or(&h->registered, c->bit, __ATOMIC_SEQ_CST);
        /* Counted after its bit was set: a commit between the two read
         * the bit, so messages below head may carry it, and they are this
         * consumer's to receive (else nobody releases them and the ring
         * stops). It starts at the first kept message or the first with
         * its bit, whichever comes first, or at head. head may lag the
         * commits by one (or more, after a producer died). */
        uint64_t head = iom_chan_count_published(c), first = head;
        for (uint64_t s = head > c->nslots ? head - c->nslots : 0; s < head; s++) {
                struct chan_slot *e = &c->table[s % c->nslots];
                if (!iom_chan_published(e, s))
                        continue;
                uint64_t v = iom_chan_load(&e->pending);
                while ((v & CHAN_KEEP) && !__atomic_compare_exchange_n(&e->pending, &v, (v | c->bit) & ~CHAN_KEEP,
                                                                       false, __ATOMIC_SEQ_CST, __ATOMIC_ACQUIRE))
                        ;
                if ((v & (CHAN_KEEP | c->bit)) && iom_chan_load(&e->seq) == s && first == head)
                        first = s;
        }
        c->next = first;
        c->next_slot = first % c->nslots;
        c->joined = head;
        __atomic_store_n(&p->next, first, __ATOMIC_RELEASE);
        return 0;
}

void iom_chan_leave(struct iomem_chan *c)
{
        /* Reaped by mistake (a process in another PID or time namespace
         * took it for dead) and the record given to another: not ours to
         * clear. */
        if (__atomic_load_n(&c->me->pid, __ATOMIC_ACQUIRE) != c->pid ||
            __atomic_load_n(&c->me->start_time, __ATOMIC_RELAXED) != c->start_time)
                return;
        if (c->producer)
                party_clear(c->me);
        else
                consumer_drop(c, __builtin_ctzll(c->bit));
}
