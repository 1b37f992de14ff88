/* SPDX-License-Identifier: MIT */
/*
 * Channels (iomem_chan_*): messages go from one producer to every
 * consumer in place, in order, across processes; a consumer that stops
 * reading holds the producer back and never sees its messages
 * overwritten; a process killed in either role leaves the channel to the
 * others; the descriptor polls; every error code has its cause. Run on
 * every backend that shares objects between processes.
 */
#include "common.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>

#define SLOT 4096
#define PUBLISHED (UINT64_C(1) << 63) /* a table entry's length word, once published */

struct obj {
        struct iomem *f;
        char uri[128];
};

/* A new, empty object, kept by name (where it has one) until close_obj,
 * so that other processes open it as any program would. */
static struct obj open_obj(const char *tag)
{
        struct obj o;
        snprintf(o.uri, sizeof o.uri, "%s", test_uri(tag));
        int r = iomem_open(&o.f, o.uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL);
        ck_assert_msg(r == 0, "open %s: %s", o.uri, iomem_errormsg());
        return o;
}

static void close_obj(struct obj *o)
{
        if (test_caps() & IOMEM_CAP_NAMED)
                ck_assert_int_eq(iomem_unlink(o->uri), 0);
        ck_assert_int_eq(iomem_close(&o->f), 0);
}

/* Another handle on the object: by name, or by the descriptor. */
static int reopen(const struct obj *o, struct iomem **g)
{
        if (test_caps() & IOMEM_CAP_NAMED)
                return iomem_open(g, o->uri, IOMEM_RDWR, NULL);
        return iomem_open_fd(g, test_backend(), dup(iomem_fd(o->f)), IOMEM_RDWR, NULL);
}

static struct iomem_chan *chan(struct iomem *f, size_t slot_size, size_t nslots, unsigned flags)
{
        struct iomem_chan *c = NULL;
        int r = iomem_chan_open(&c, f, slot_size, nslots, flags);
        ck_assert_msg(r == 0, "iomem_chan_open: %d %s", r, iomem_errormsg());
        return c;
}

/* Message seq: its number, then its length's worth of one byte. */
static size_t message_len(uint64_t seq, size_t slot_size)
{
        return 8 + (size_t)(seq * 7919 % (slot_size - 7));
}

/* Publish message seq; 0 or the error. Without Check's assertions: a
 * child process uses it, and every assertion, passing or not, writes to
 * the pipe Check shares with the test (a child killed in the middle of
 * that would garble it). */
static int try_publish(struct iomem_chan *c, uint64_t seq, size_t slot_size)
{
        unsigned char *p;
        int r = iomem_chan_loan(c, (void **)&p);
        if (r)
                return r;
        size_t len = message_len(seq, slot_size);
        memcpy(p, &seq, 8);
        memset(p + 8, (int)(seq & 0xff), len - 8);
        return iomem_chan_publish(c, p, len);
}

static void publish(struct iomem_chan *c, uint64_t seq, size_t slot_size)
{
        int r = try_publish(c, seq, slot_size);
        ck_assert_msg(r == 0, "publish %llu: %s", (unsigned long long)seq, iomem_errormsg());
}

/* Is the n bytes at m message seq, whole? 0, or why not. */
static int check_message(const unsigned char *m, size_t n, uint64_t seq, size_t slot_size)
{
        uint64_t got;
        memcpy(&got, m, 8);
        if (got != seq || n != message_len(seq, slot_size))
                return 11;
        for (size_t i = 8; i < n; i++)
                if (m[i] != (seq & 0xff))
                        return 12;
        return 0;
}

/* Receive a message and check it is seq; 0, or why not. Kept in *held
 * when held is not NULL, else released. */
static int expect(struct iomem_chan *c, uint64_t seq, size_t slot_size, const void **held)
{
        const unsigned char *m;
        ssize_t n = iomem_chan_receive(c, (const void **)&m);
        if (n < 0)
                return 10;
        int r = check_message(m, (size_t)n, seq, slot_size);
        if (held)
                *held = m;
        else if (!r && iomem_chan_release(c, m))
                r = 13;
        return r;
}

/* A consumer process: attaches on its own handle, tells ready, then
 * receives count messages from first on, checking each. */
static pid_t consumer_process(const struct obj *o, int ready_fd, uint64_t first, uint64_t count, size_t slot_size)
{
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid)
                return pid;
        struct iomem *g;
        struct iomem_chan *c;
        bool ok = !reopen(o, &g) && !iomem_chan_open(&c, g, 0, 0, 0);
        if (write(ready_fd, ok ? "r" : "x", 1) != 1 || !ok)
                _exit(2);
        for (uint64_t s = first; s < first + count; s++) {
                int r = expect(c, s, slot_size, NULL);
                if (r)
                        _exit(r);
        }
        _exit(iomem_chan_close(&c) || iomem_close(&g) ? 4 : 0);
}

static uint64_t now_ms(void)
{
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* A child that cannot get ready says so before it exits, so that the
 * test fails at once rather than wait for it. */
static _Noreturn void child_fail(int ready_fd, int code)
{
        if (write(ready_fd, "x", 1) != 1)
                _exit(99);
        _exit(code);
}

/* Children write 'r' when ready, 'x' when they could not get there. */
static void wait_ready(int fd, int n)
{
        for (char b; n > 0; n--) {
                ck_assert_int_eq(read(fd, &b, 1), 1);
                ck_assert_msg(b == 'r', "a child could not attach");
        }
}

/* One producer, a consumer in another process: 2000 messages of every
 * length through 8 slots, so that each side waits for the other often. */
START_TEST(messages_cross_processes_in_order_and_whole)
{
        if (!test_forked_children_run("messages to another process"))
                return;
        struct obj o = open_obj("cross");
        struct iomem_chan *p = chan(o.f, SLOT, 8, 0);
        int ready[2];
        ck_assert_int_eq(pipe(ready), 0);
        pid_t pid = consumer_process(&o, ready[1], 0, 2000, SLOT);
        wait_ready(ready[0], 1);
        for (uint64_t s = 0; s < 2000; s++)
                publish(p, s, SLOT);
        ck_assert_int_eq(test_wait(pid), 0);
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        ck_assert_ptr_null(p);
        close(ready[0]);
        close(ready[1]);
        close_obj(&o);
}
END_TEST

/* The message is the object's own memory: a plain read of the object's
 * descriptor (no library) finds the bytes written in the slot. */
START_TEST(the_message_is_written_in_the_object)
{
        struct obj o = open_obj("inplace");
        struct iomem_chan *p = chan(o.f, SLOT, 4, 0), *c = chan(o.f, 0, 0, 0);
        unsigned char *slot;
        ck_assert_int_eq(iomem_chan_loan(p, (void **)&slot), 0);
        for (int i = 0; i < 64; i++)
                slot[i] = (unsigned char)(0xa0 + i);
        ck_assert_int_eq(iomem_chan_publish(p, slot, 64), 0);
        const void *m;
        ck_assert_int_eq(iomem_chan_receive(c, &m), 64);
        ck_assert_ptr_eq(m, slot); /* the same memory, not a copy */
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(o.f, &st), 0);
        unsigned char *all = malloc(st.size);
        ck_assert_ptr_nonnull(all);
        /* mshare's descriptor is the region's, not the file's bytes. */
        ssize_t n = test_caps() & IOMEM_CAP_PTSHARE ? iomem_pread(o.f, all, st.size, 0)
                                                     : pread(iomem_fd(o.f), all, st.size, 0);
        ck_assert_int_eq(n, (ssize_t)st.size);
        ck_assert_ptr_nonnull(memmem(all, st.size, slot, 64));
        free(all);
        ck_assert_int_eq(iomem_chan_release(c, m), 0);
        ck_assert_int_eq(iomem_chan_close(&c), 0);
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        close_obj(&o);
}
END_TEST

/* Three consumer processes each receive all 500 messages through 4
 * slots: a slot is reused only when every one has released it. */
START_TEST(every_consumer_receives_every_message)
{
        if (!test_forked_children_run("consumers in other processes"))
                return;
        struct obj o = open_obj("pubsub");
        struct iomem_chan *p = chan(o.f, SLOT, 4, 0);
        int ready[2];
        ck_assert_int_eq(pipe(ready), 0);
        pid_t pid[3];
        for (int i = 0; i < 3; i++)
                pid[i] = consumer_process(&o, ready[1], 0, 500, SLOT);
        wait_ready(ready[0], 3);
        for (uint64_t s = 0; s < 500; s++)
                publish(p, s, SLOT);
        for (int i = 0; i < 3; i++)
                ck_assert_int_eq(test_wait(pid[i]), 0);
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        close(ready[0]);
        close(ready[1]);
        close_obj(&o);
}
END_TEST

/* Consumers join and leave while the producer streams: each receives,
 * from the message it starts at, every one after, whole and once, whether
 * it joined between commits, as one was committed, or while the ring held
 * messages kept for nobody. Three processes, twenty visits each. */
START_TEST(consumers_join_and_leave_during_a_stream)
{
        if (!test_forked_children_run("consumers joining during a stream"))
                return;
        struct obj o = open_obj("joins");
        struct iomem_chan *p = chan(o.f, 128, 8, IOMEM_CHAN_NONBLOCK);
        pid_t pid[3];
        for (int i = 0; i < 3; i++) {
                pid[i] = fork();
                ck_assert_int_ge(pid[i], 0);
                if (pid[i])
                        continue;
                struct iomem *g;
                if (reopen(&o, &g))
                        _exit(2);
                for (int visit = 0; visit < 20; visit++) {
                        struct iomem_chan *d;
                        if (iomem_chan_open(&d, g, 0, 0, 0))
                                _exit(3);
                        for (uint64_t k = 0, last = 0; k < 50 + (uint64_t)(visit * 13 + i * 7) % 150; k++) {
                                const unsigned char *m;
                                ssize_t n = iomem_chan_receive(d, (const void **)&m);
                                uint64_t seq;
                                if (n < 8)
                                        _exit(4);
                                memcpy(&seq, m, 8);
                                if ((k && seq != last + 1) || check_message(m, (size_t)n, seq, 128))
                                        _exit(5);
                                last = seq;
                                if (iomem_chan_release(d, m))
                                        _exit(6);
                        }
                        if (iomem_chan_close(&d))
                                _exit(7);
                }
                _exit(0);
        }
        /* Publish until every consumer is done with its visits. */
        int running = 3;
        uint64_t t0 = now_ms();
        for (uint64_t s = 0; running;) {
                int r = try_publish(p, s, 128);
                if (r == 0) {
                        s++;
                        continue;
                }
                ck_assert_int_eq(r, -EAGAIN);
                ck_assert_uint_lt(now_ms() - t0, 60000);
                for (int i = 0; i < 3; i++) {
                        int st;
                        if (pid[i] && waitpid(pid[i], &st, WNOHANG) == pid[i]) {
                                ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "consumer %d: %d", i, st);
                                pid[i] = 0;
                                running--;
                        }
                }
                sched_yield();
        }
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        close_obj(&o);
}
END_TEST

/* A consumer that does not release holds the producer back (-EAGAIN,
 * or a wait), and its messages stay as they were; a slot is free again
 * once every consumer has released its message, in the ring's order. */
START_TEST(a_consumer_that_stops_releasing_holds_the_producer_back)
{
        struct obj o = open_obj("full");
        struct iomem_chan *p = chan(o.f, SLOT, 4, IOMEM_CHAN_NONBLOCK);
        struct iomem_chan *fast = chan(o.f, 0, 0, IOMEM_CHAN_NONBLOCK), *slow = chan(o.f, 0, 0, 0);
        for (uint64_t s = 0; s < 4; s++)
                publish(p, s, SLOT);
        for (uint64_t s = 0; s < 4; s++)
                ck_assert_int_eq(expect(fast, s, SLOT, NULL), 0);
        const void *m, *held[4];
        ck_assert_err(iomem_chan_receive(fast, &m), EAGAIN);
        void *slot;
        ck_assert_err(iomem_chan_loan(p, &slot), EAGAIN);
        for (uint64_t s = 0; s < 4; s++)
                ck_assert_int_eq(expect(slow, s, SLOT, &held[s]), 0);
        ck_assert_err(iomem_chan_loan(p, &slot), EAGAIN);
        ck_assert_int_eq(iomem_chan_release(slow, held[1]), 0); /* not the next slot: no room yet */
        ck_assert_err(iomem_chan_loan(p, &slot), EAGAIN);
        ck_assert_int_eq(iomem_chan_release(slow, held[0]), 0);
        ck_assert_int_eq(iomem_chan_loan(p, &slot), 0);
        ck_assert_ptr_eq(slot, held[0]);
        memset(slot, 0xee, SLOT);
        for (uint64_t s = 2; s < 4; s++) /* untouched */
                ck_assert_int_eq(check_message(held[s], message_len(s, SLOT), s, SLOT), 0);
        ck_assert_int_eq(iomem_chan_close(&slow), 0);
        ck_assert_int_eq(iomem_chan_close(&fast), 0);
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        close_obj(&o);
}
END_TEST

/* With no consumer the ring fills and waits, as a queue does: the first
 * consumer receives it all; what a consumer leaves unreceived when it
 * goes waits for the next. */
START_TEST(with_no_consumer_messages_wait_for_the_first)
{
        struct obj o = open_obj("queue");
        struct iomem_chan *p = chan(o.f, SLOT, 4, IOMEM_CHAN_NONBLOCK);
        for (uint64_t s = 0; s < 4; s++)
                publish(p, s, SLOT);
        void *slot;
        ck_assert_err(iomem_chan_loan(p, &slot), EAGAIN);
        struct iomem_chan *c = chan(o.f, 0, 0, IOMEM_CHAN_NONBLOCK);
        for (uint64_t s = 0; s < 2; s++)
                ck_assert_int_eq(expect(c, s, SLOT, NULL), 0);
        ck_assert_int_eq(iomem_chan_close(&c), 0);
        publish(p, 4, SLOT);
        publish(p, 5, SLOT);
        ck_assert_err(iomem_chan_loan(p, &slot), EAGAIN);
        c = chan(o.f, 0, 0, IOMEM_CHAN_NONBLOCK);
        for (uint64_t s = 2; s < 6; s++)
                ck_assert_int_eq(expect(c, s, SLOT, NULL), 0);
        const void *m;
        ck_assert_err(iomem_chan_receive(c, &m), EAGAIN);
        ck_assert_int_eq(iomem_chan_close(&c), 0);
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        close_obj(&o);
}
END_TEST

/* Loaned slots may be published in any order; consumers receive them
 * in the order they were loaned. */
START_TEST(loans_published_out_of_order_arrive_in_order)
{
        struct obj o = open_obj("order");
        struct iomem_chan *p = chan(o.f, SLOT, 4, 0), *c = chan(o.f, 0, 0, IOMEM_CHAN_NONBLOCK);
        unsigned char *slot[3];
        for (uint64_t s = 0; s < 3; s++) {
                ck_assert_int_eq(iomem_chan_loan(p, (void **)&slot[s]), 0);
                size_t len = message_len(s, SLOT);
                memcpy(slot[s], &s, 8);
                memset(slot[s] + 8, (int)s, len - 8);
        }
        const void *m;
        ck_assert_int_eq(iomem_chan_publish(p, slot[2], message_len(2, SLOT)), 0);
        ck_assert_err(iomem_chan_receive(c, &m), EAGAIN);
        ck_assert_int_eq(iomem_chan_publish(p, slot[0], message_len(0, SLOT)), 0);
        ck_assert_int_eq(expect(c, 0, SLOT, NULL), 0);
        ck_assert_err(iomem_chan_receive(c, &m), EAGAIN);
        ck_assert_int_eq(iomem_chan_publish(p, slot[1], message_len(1, SLOT)), 0);
        ck_assert_int_eq(expect(c, 1, SLOT, NULL), 0);
        ck_assert_int_eq(expect(c, 2, SLOT, NULL), 0);
        ck_assert_int_eq(iomem_chan_close(&c), 0);
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        close_obj(&o);
}
END_TEST

static bool readable(int fd)
{
        struct pollfd pf = { .fd = fd, .events = POLLIN };
        int n = poll(&pf, 1, 0);
        ck_assert_int_ge(n, 0);
        return n == 1 && (pf.revents & POLLIN);
}

/* The descriptors: a consumer's is readable when a message waits (after
 * receive said -EAGAIN, not before one is published); the producer's when
 * a slot is free. A consumer process sleeping in poll wakes for a publish. */
START_TEST(the_descriptors_poll)
{
        struct obj o = open_obj("poll");
        struct iomem_chan *p = chan(o.f, SLOT, 2, IOMEM_CHAN_NONBLOCK), *c = chan(o.f, 0, 0, IOMEM_CHAN_NONBLOCK);
        int cfd = iomem_chan_fd(c), pfd = iomem_chan_fd(p);
        ck_assert_int_ge(cfd, 0);
        ck_assert_int_ge(pfd, 0);
        ck_assert(!readable(cfd));
        ck_assert(readable(pfd));
        publish(p, 0, SLOT);
        ck_assert(readable(cfd));
        const void *m0, *m1;
        ck_assert_int_ge(iomem_chan_receive(c, &m0), 0);
        ck_assert_err(iomem_chan_receive(c, &m1), EAGAIN);
        ck_assert(!readable(cfd));
        publish(p, 1, SLOT);
        void *slot;
        ck_assert_err(iomem_chan_loan(p, &slot), EAGAIN);
        ck_assert(!readable(pfd));
        ck_assert_int_ge(iomem_chan_receive(c, &m1), 0);
        ck_assert_int_eq(iomem_chan_release(c, m0), 0);
        ck_assert(readable(pfd));
        ck_assert_int_eq(iomem_chan_release(c, m1), 0);
        ck_assert_err(iomem_chan_receive(c, &m1), EAGAIN);
        if (test_forked_children_run("a consumer process polls")) {
                pid_t pid = fork();
                if (pid == 0) {
                        struct iomem *g;
                        struct iomem_chan *d;
                        if (reopen(&o, &g) || iomem_chan_open(&d, g, 0, 0, IOMEM_CHAN_NONBLOCK))
                                _exit(2);
                        const void *m;
                        /* Joined after message 1 went: nothing waits. */
                        if (iomem_chan_receive(d, &m) != -EAGAIN)
                                _exit(3);
                        struct pollfd pf = { .fd = iomem_chan_fd(d), .events = POLLIN };
                        raise(SIGSTOP); /* the parent publishes once this one sleeps */
                        if (poll(&pf, 1, 10000) != 1)
                                _exit(5);
                        _exit(expect(d, 2, SLOT, NULL));
                }
                int st;
                ck_assert_int_eq(waitpid(pid, &st, WUNTRACED), pid);
                ck_assert(WIFSTOPPED(st));
                kill(pid, SIGCONT);
                publish(p, 2, SLOT);
                ck_assert_int_eq(test_wait(pid), 0);
        }
        ck_assert_int_eq(iomem_chan_close(&c), 0);
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        close_obj(&o);
}
END_TEST

/* A consumer killed holding messages: the producer, waiting, reclaims its
 * slots; what it had not received waits for the next consumer. */
START_TEST(a_killed_consumer_gives_its_slots_back)
{
        if (!test_forked_children_run("a consumer process killed"))
                return;
        struct obj o = open_obj("killc");
        struct iomem_chan *p = chan(o.f, SLOT, 4, 0);
        int ready[2];
        ck_assert_int_eq(pipe(ready), 0);
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *g;
                struct iomem_chan *c;
                const void *held[2];
                bool ok = !reopen(&o, &g) && !iomem_chan_open(&c, g, 0, 0, 0);
                if (write(ready[1], ok ? "r" : "x", 1) != 1 || !ok)
                        _exit(2);
                /* The name its wake-up socket has: a file in /tmp where
                 * the platform has no abstract names. */
                struct sockaddr_un a = { 0 };
                socklen_t alen = sizeof a;
                if (getsockname(iomem_chan_fd(c), (struct sockaddr *)&a, &alen) ||
                    write(ready[1], a.sun_path, sizeof a.sun_path) != (ssize_t)sizeof a.sun_path)
                        _exit(6);
                for (uint64_t s = 0; s < 2; s++)
                        if (expect(c, s, SLOT, &held[s]))
                                child_fail(ready[1], 3);
                if (write(ready[1], "r", 1) != 1)
                        _exit(4);
                pause();
                _exit(5);
        }
        wait_ready(ready[0], 1);
        char name[sizeof ((struct sockaddr_un *)0)->sun_path];
        for (size_t got = 0; got < sizeof name;) {
                ssize_t n = read(ready[0], name + got, sizeof name - got);
                ck_assert_int_gt(n, 0);
                got += (size_t)n;
        }
        for (uint64_t s = 0; s < 4; s++)
                publish(p, s, SLOT);
        wait_ready(ready[0], 1);
        kill(pid, SIGKILL);
        ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
        /* Messages 0 and 1 were received: their slots come back. */
        publish(p, 4, SLOT);
        publish(p, 5, SLOT);
        /* The reaper that gave them back let the dead consumer's socket
         * name go too, where names are files (an abstract one goes with
         * its socket). */
        struct stat st;
        if (name[0]) {
                ck_assert_int_eq(stat(name, &st), -1);
                ck_assert_int_eq(errno, ENOENT);
        }
        struct iomem_chan *c = chan(o.f, 0, 0, IOMEM_CHAN_NONBLOCK);
        for (uint64_t s = 2; s < 6; s++)
                ck_assert_int_eq(expect(c, s, SLOT, NULL), 0);
        ck_assert_int_eq(iomem_chan_close(&c), 0);
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        close(ready[0]);
        close(ready[1]);
        close_obj(&o);
}
END_TEST

/* A producer killed with a slot loaned and half written: while it lives
 * nobody else produces (-EBUSY); once dead, a new producer (created with
 * the same shape, or attached as producer) carries on where it stopped. */
START_TEST(a_killed_producer_is_followed_by_another)
{
        if (!test_forked_children_run("a producer process killed"))
                return;
        struct obj o = open_obj("killp");
        /* The consumer makes the channel this time. */
        struct iomem_chan *c = chan(o.f, SLOT, 4, IOMEM_CHAN_CONSUMER | IOMEM_CHAN_NONBLOCK);
        int ready[2];
        ck_assert_int_eq(pipe(ready), 0);
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *g;
                struct iomem_chan *p;
                if (reopen(&o, &g) || iomem_chan_open(&p, g, 0, 0, IOMEM_CHAN_PRODUCER))
                        child_fail(ready[1], 2);
                for (uint64_t s = 0; s < 3; s++)
                        if (try_publish(p, s, SLOT))
                                child_fail(ready[1], 6);
                unsigned char *slot;
                if (iomem_chan_loan(p, (void **)&slot))
                        child_fail(ready[1], 3);
                memset(slot, 0x55, SLOT / 2);
                if (write(ready[1], "r", 1) != 1)
                        _exit(4);
                pause();
                _exit(5);
        }
        wait_ready(ready[0], 1);
        struct iomem_chan *q = NULL;
        ck_assert_err(iomem_chan_open(&q, o.f, SLOT, 4, 0), EBUSY);
        ck_assert_err(iomem_chan_open(&q, o.f, 0, 0, IOMEM_CHAN_PRODUCER), EBUSY);
        ck_assert_err(iomem_chan_open(&q, o.f, SLOT, 8, 0), EEXIST);
        kill(pid, SIGKILL);
        ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
        q = chan(o.f, SLOT, 4, 0);
        for (uint64_t s = 0; s < 3; s++)
                ck_assert_int_eq(expect(c, s, SLOT, NULL), 0);
        const void *m;
        ck_assert_err(iomem_chan_receive(c, &m), EAGAIN); /* the half-written loan never arrives */
        for (uint64_t s = 3; s < 10; s++) {
                publish(q, s, SLOT);
                ck_assert_int_eq(expect(c, s, SLOT, NULL), 0);
        }
        ck_assert_int_eq(iomem_chan_close(&q), 0);
        ck_assert_int_eq(iomem_chan_close(&c), 0);
        close(ready[0]);
        close(ready[1]);
        close_obj(&o);
}
END_TEST

/* Kill a consumer process, then a producer process, at whatever point
 * they have reached, twenty times each: the survivors go on, every
 * message arrives once and in order, and no slot stays held. */
START_TEST(kills_at_any_point_leave_the_channel_usable)
{
        if (!test_forked_children_run("processes killed at any point"))
                return;
        struct obj o = open_obj("kills");
        struct iomem_chan *p = chan(o.f, 256, 8, 0);
        int ready[2];
        ck_assert_int_eq(pipe(ready), 0);
        struct iomem_chan *c = chan(o.f, 0, 0, IOMEM_CHAN_NONBLOCK);
        uint64_t next_pub = 0, next_rcv = 0;
        for (int round = 0; round < 20; round++) {
                /* A consumer process that receives and releases for ever. */
                pid_t pid = fork();
                if (pid == 0) {
                        struct iomem *g;
                        struct iomem_chan *d;
                        bool ok = !reopen(&o, &g) && !iomem_chan_open(&d, g, 0, 0, 0);
                        if (write(ready[1], ok ? "r" : "x", 1) != 1 || !ok)
                                _exit(2);
                        /* Each message whole, each the one after the one before. */
                        for (uint64_t last = 0, first = 1;; first = 0) {
                                const unsigned char *m;
                                ssize_t n = iomem_chan_receive(d, (const void **)&m);
                                uint64_t seq;
                                if (n < 8)
                                        _exit(3);
                                memcpy(&seq, m, 8);
                                if ((!first && seq != last + 1) || check_message(m, (size_t)n, seq, 256) ||
                                    iomem_chan_release(d, m))
                                        _exit(4);
                                last = seq;
                        }
                }
                wait_ready(ready[0], 1);
                /* Publish until the killing point, which varies by round;
                 * our own consumer keeps up. */
                for (int k = 0; k < 50 + round * 37; k++) {
                        publish(p, next_pub++, 256);
                        ck_assert_int_eq(expect(c, next_rcv++, 256, NULL), 0);
                }
                kill(pid, SIGKILL);
                ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
        }
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        for (int round = 0; round < 20; round++) {
                pid_t pid = fork();
                if (pid == 0) {
                        struct iomem *g;
                        struct iomem_chan *q;
                        if (reopen(&o, &g))
                                _exit(2);
                        /* The last producer may not be gone yet. */
                        int r;
                        for (uint64_t t0 = now_ms();
                             (r = iomem_chan_open(&q, g, 0, 0, IOMEM_CHAN_PRODUCER)) == -EBUSY &&
                             now_ms() - t0 < 10000;)
                                sched_yield();
                        if (r)
                                _exit(9);
                        for (uint64_t s = next_pub;; s++)
                                if (try_publish(q, s, 256))
                                        _exit(3);
                }
                /* Receive what it publishes, then kill it mid-stream. */
                uint64_t t0 = now_ms();
                for (int k = 0; k < 20 + round * 11;) {
                        const unsigned char *m;
                        ssize_t n = iomem_chan_receive(c, (const void **)&m);
                        if (n == -EAGAIN) {
                                /* The producer process must still be at it. */
                                ck_assert_int_eq(waitpid(pid, NULL, WNOHANG), 0);
                                ck_assert_uint_lt(now_ms() - t0, 30000);
                                sched_yield();
                                continue;
                        }
                        ck_assert_int_ge(n, 0);
                        ck_assert_int_eq(check_message(m, (size_t)n, next_rcv, 256), 0);
                        ck_assert_int_eq(iomem_chan_release(c, m), 0);
                        next_rcv++;
                        k++;
                }
                kill(pid, SIGKILL);
                ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
                /* What it published before it died is still to come. */
                const unsigned char *m;
                ssize_t n;
                while ((n = iomem_chan_receive(c, (const void **)&m)) >= 0) {
                        ck_assert_int_eq(check_message(m, (size_t)n, next_rcv, 256), 0);
                        ck_assert_int_eq(iomem_chan_release(c, m), 0);
                        next_rcv++;
                }
                ck_assert_int_eq(n, -EAGAIN);
                next_pub = next_rcv;
        }
        /* Nothing is held: a producer fills all eight slots at once. */
        p = chan(o.f, 256, 8, IOMEM_CHAN_NONBLOCK);
        for (int i = 0; i < 8; i++)
                publish(p, next_pub++, 256);
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        ck_assert_int_eq(iomem_chan_close(&c), 0);
        close(ready[0]);
        close(ready[1]);
        close_obj(&o);
}
END_TEST

/* 63 consumers, as many as a channel has: the 64th is -EUSERS until one
 * goes and the producer lends again; each receives what is published
 * while it is attached. */
START_TEST(sixty_three_consumers_and_no_more)
{
        struct obj o = open_obj("users");
        struct iomem_chan *p = chan(o.f, 64, 2, 0), *c[64];
        for (int i = 0; i < 63; i++)
                c[i] = chan(o.f, 0, 0, IOMEM_CHAN_NONBLOCK);
        ck_assert_err(iomem_chan_open(&c[63], o.f, 0, 0, 0), EUSERS);
        ck_assert_int_eq(iomem_chan_close(&c[5]), 0);
        /* Its bit is given out again once the producer has cleared it from
         * the table, at its next loan. */
        ck_assert_err(iomem_chan_open(&c[5], o.f, 0, 0, 0), EUSERS);
        publish(p, 0, 64);
        c[5] = chan(o.f, 0, 0, IOMEM_CHAN_NONBLOCK);
        /* Message 0 was for the 62 attached when it was published. */
        const void *m;
        ck_assert_err(iomem_chan_receive(c[5], &m), EAGAIN);
        for (int i = 0; i < 63; i++)
                if (i != 5)
                        ck_assert_int_eq(expect(c[i], 0, 64, NULL), 0);
        publish(p, 1, 64);
        for (int i = 0; i < 63; i++) {
                ck_assert_int_eq(expect(c[i], 1, 64, NULL), 0);
                ck_assert_int_eq(iomem_chan_close(&c[i]), 0);
        }
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        close_obj(&o);
}
END_TEST

/* 10^5 messages through 16 slots to two consumer processes, and a ring of
 * 2^16 slots: sizes past any a test would otherwise reach. */
START_TEST(a_hundred_thousand_messages_and_a_large_ring)
{
        if (!test_forked_children_run("consumer processes"))
                return;
        uint64_t count = test_under_valgrind() ? 10000 : 100000;
        struct obj o = open_obj("many");
        struct iomem_chan *p = chan(o.f, 512, 16, 0);
        int ready[2];
        ck_assert_int_eq(pipe(ready), 0);
        pid_t pid[2];
        for (int i = 0; i < 2; i++)
                pid[i] = consumer_process(&o, ready[1], 0, count, 512);
        wait_ready(ready[0], 2);
        for (uint64_t s = 0; s < count; s++)
                publish(p, s, 512);
        for (int i = 0; i < 2; i++)
                ck_assert_int_eq(test_wait(pid[i]), 0);
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        close(ready[0]);
        close(ready[1]);
        close_obj(&o);

        o = open_obj("large");
        p = chan(o.f, 64, 1 << 16, IOMEM_CHAN_NONBLOCK);
        struct iomem_chan *c = chan(o.f, 0, 0, IOMEM_CHAN_NONBLOCK);
        for (uint64_t s = 0; s < (1 << 16); s++)
                publish(p, s, 64);
        void *slot;
        ck_assert_err(iomem_chan_loan(p, &slot), EAGAIN);
        for (uint64_t s = 0; s < (1 << 16); s++)
                ck_assert_int_eq(expect(c, s, 64, NULL), 0);
        ck_assert_int_eq(iomem_chan_close(&c), 0);
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        close_obj(&o);
}
END_TEST

/* Every error code, with a message that names its cause; none changes
 * the channel. */
START_TEST(every_error_has_its_code)
{
        struct obj o = open_obj("errors");
        struct iomem_chan *c = NULL, *p;
        ck_assert_err(iomem_chan_open(NULL, o.f, SLOT, 4, 0), EINVAL);
        ck_assert_err(iomem_chan_open(&c, NULL, SLOT, 4, 0), EINVAL);
        ck_assert_err(iomem_chan_open(&c, o.f, SLOT, 4, 0x80), EINVAL);
        ck_assert_err(iomem_chan_open(&c, o.f, SLOT, 4, IOMEM_CHAN_PRODUCER | IOMEM_CHAN_CONSUMER), EINVAL);
        ck_assert_err(iomem_chan_open(&c, o.f, SLOT, 0, 0), EINVAL);
        ck_assert_err(iomem_chan_open(&c, o.f, 0, 4, 0), EINVAL);
        ck_assert_err(iomem_chan_open(&c, o.f, 0, 0, 0), ENOENT);
        ck_assert_err(iomem_chan_open(&c, o.f, SLOT, ((size_t)1 << 20) + 1, 0), EINVAL);
        ck_assert_err(iomem_chan_open(&c, o.f, (size_t)1 << 40, 1 << 10, 0), EFBIG);
        ck_assert_ptr_null(c);
        struct iomem *ro;
        ck_assert_int_eq(test_caps() & IOMEM_CAP_NAMED
                                 ? iomem_open(&ro, o.uri, IOMEM_RDONLY, NULL)
                                 : iomem_open_fd(&ro, test_backend(), dup(iomem_fd(o.f)), IOMEM_RDONLY, NULL),
                         0);
        ck_assert_err(iomem_chan_open(&c, ro, SLOT, 4, 0), EROFS);
        ck_assert_int_eq(iomem_close(&ro), 0);
        /* An object holding data is not made a channel. */
        ck_assert_int_eq(iomem_pwrite(o.f, "data", 4, 100), 4);
        ck_assert_err(iomem_chan_open(&c, o.f, SLOT, 4, 0), EEXIST);
        ck_assert_int_eq(iomem_truncate(o.f, 0), 0);

        p = chan(o.f, SLOT, 2, 0);
        c = chan(o.f, 0, 0, IOMEM_CHAN_NONBLOCK);
        void *slot, *slot2;
        const void *m;
        char local[8];
        ck_assert_err(iomem_chan_loan(NULL, &slot), EINVAL);
        ck_assert_err(iomem_chan_loan(p, NULL), EINVAL);
        ck_assert_err(iomem_chan_loan(c, &slot), EPERM);
        ck_assert_err(iomem_chan_receive(p, &m), EPERM);
        ck_assert_err(iomem_chan_receive(c, NULL), EINVAL);
        ck_assert_err(iomem_chan_receive(NULL, &m), EINVAL);
        ck_assert_err(iomem_chan_receive(c, &m), EAGAIN);
        ck_assert_int_eq(iomem_chan_loan(p, &slot), 0);
        ck_assert_err(iomem_chan_publish(p, local, 8), EINVAL);
        ck_assert_err(iomem_chan_publish(p, (char *)slot + 64, 8), EINVAL);
        ck_assert_err(iomem_chan_publish(p, slot, SLOT + 1), EMSGSIZE);
        ck_assert_err(iomem_chan_publish(c, slot, 8), EPERM);
        ck_assert_int_eq(iomem_chan_loan(p, &slot2), 0);
        ck_assert_err(iomem_chan_loan(p, &slot), ENOBUFS); /* both loaned */
        ck_assert_int_eq(iomem_chan_publish(p, slot, 8), 0);
        ck_assert_err(iomem_chan_publish(p, slot, 8), EINVAL); /* twice */
        ck_assert_int_eq(iomem_chan_publish(p, slot2, 0), 0); /* empty messages are messages */
        ck_assert_err(iomem_chan_release(c, slot), EINVAL); /* not received yet */
        ck_assert_int_eq(iomem_chan_receive(c, &m), 8);
        ck_assert_int_eq(iomem_chan_receive(c, &m), 0);
        ck_assert_err(iomem_chan_receive(c, &m), ENOBUFS); /* holds both slots */
        ck_assert_err(iomem_chan_release(c, local), EINVAL);
        ck_assert_err(iomem_chan_release(c, NULL), EINVAL);
        ck_assert_err(iomem_chan_release(p, m), EPERM);
        ck_assert_int_eq(iomem_chan_release(c, m), 0);
        ck_assert_err(iomem_chan_release(c, m), EINVAL); /* twice */
        ck_assert_int_eq(iomem_chan_release(c, slot), 0);
        ck_assert_err(iomem_chan_fd(NULL), EINVAL);
        /* A handle inherited by a child is not the child's. */
        if (test_forked_children_run("a child's inherited channel")) {
                pid_t pid = fork();
                if (pid == 0)
                        _exit(iomem_chan_receive(c, &m) == -EINVAL && strstr(iomem_errormsg(), "parent") ? 0 : 1);
                ck_assert_int_eq(test_wait(pid), 0);
        }
        ck_assert_err(iomem_chan_close(NULL), EINVAL);
        ck_assert_err(iomem_close(&o.f), EBUSY); /* its channels first */
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "2 channels"));
        ck_assert_int_eq(iomem_chan_close(&c), 0);
        ck_assert_int_eq(iomem_chan_close(&c), 0); /* NULL: nothing to do */
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        /* A spoilt header: the version word, past the magic. */
        uint32_t bad = 99;
        ck_assert_int_eq(iomem_pwrite(o.f, &bad, sizeof bad, 8), (ssize_t)sizeof bad);
        ck_assert_err(iomem_chan_open(&c, o.f, 0, 0, 0), EBADMSG);
        ck_assert_err(iomem_chan_open(&c, o.f, SLOT, 2, 0), EBADMSG);
        close_obj(&o);
}
END_TEST

/* Another program writes over a message's length: the consumer is told
 * (-EBADMSG), the message is passed over, and the next one arrives. The
 * table entry is found as any program would: by its bytes (sequence 0,
 * then a length no other word has, its top bit saying it is published). */
START_TEST(a_spoilt_length_is_refused_and_passed_over)
{
        struct obj o = open_obj("spoilt");
        struct iomem_chan *p = chan(o.f, SLOT, 4, 0), *c = chan(o.f, 0, 0, IOMEM_CHAN_NONBLOCK);
        void *slot;
        ck_assert_int_eq(iomem_chan_loan(p, &slot), 0);
        ck_assert_int_eq(iomem_chan_publish(p, slot, 3333), 0);
        publish(p, 1, SLOT);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(o.f, &st), 0);
        uint64_t *words = malloc(st.size);
        ck_assert_ptr_nonnull(words);
        ck_assert_int_eq(iomem_pread(o.f, words, st.size, 0), (ssize_t)st.size);
        size_t at = 0;
        for (size_t i = 0; i + 1 < st.size / 8 && !at; i += 8) /* entries are 64 bytes */
                if (words[i] == 0 && (words[i + 1] & ~PUBLISHED) == 3333)
                        at = (i + 1) * 8;
        free(words);
        ck_assert_uint_ne(at, 0);
        uint64_t huge = (SLOT + 1) | PUBLISHED;
        ck_assert_int_eq(iomem_pwrite(o.f, &huge, 8, at), 8);
        const void *m;
        ck_assert_err(iomem_chan_receive(c, &m), EBADMSG);
        ck_assert_int_eq(expect(c, 1, SLOT, NULL), 0);
        ck_assert_int_eq(iomem_chan_close(&c), 0);
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        close_obj(&o);
}
END_TEST

/* A producer that died after publishing a message but before counting it
 * (the count of messages published, head, one behind): the next producer
 * counts it, and neither reuses its slot nor sends it twice. The count is
 * found where the header keeps it, checked by its value first. */
START_TEST(a_message_published_but_not_counted_is_kept)
{
        enum { HEAD_AT = 128 };
        struct obj o = open_obj("uncounted");
        struct iomem_chan *p = chan(o.f, SLOT, 4, 0), *c = chan(o.f, 0, 0, IOMEM_CHAN_NONBLOCK);
        for (uint64_t s = 0; s < 3; s++)
                publish(p, s, SLOT);
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        uint64_t head;
        ck_assert_int_eq(iomem_pread(o.f, &head, 8, HEAD_AT), 8);
        ck_assert_uint_eq(head, 3);
        head = 2;
        ck_assert_int_eq(iomem_pwrite(o.f, &head, 8, HEAD_AT), 8);
        p = chan(o.f, SLOT, 4, 0);
        publish(p, 3, SLOT);
        for (uint64_t s = 0; s < 4; s++)
                ck_assert_int_eq(expect(c, s, SLOT, NULL), 0);
        const void *m;
        ck_assert_err(iomem_chan_receive(c, &m), EAGAIN);
        ck_assert_int_eq(iomem_chan_close(&c), 0);
        ck_assert_int_eq(iomem_chan_close(&p), 0);
        close_obj(&o);
}
END_TEST

/* dax: maps the channel through window chunks, which need not lie side by
 * side: a slot, or the header and table, that would span two is refused
 * (-ENOTSUP, naming the chunk) and the object is left as it was; slots in
 * chunks apart from each other work. The window's odd slots are pinned by
 * another object, so that no two chunks of the channel are neighbours. */
START_TEST(slots_that_span_window_chunks_are_refused)
{
        if (strcmp(test_backend(), "dax")) {
                printf("SKIP: window chunks (%s maps a channel in one piece)\n", test_backend());
                return;
        }
        enum { CHUNK = 64 << 10, CHUNKS = 16 };
        struct iomem_window *w;
        struct iomem_opts *opts;
        struct iomem *x, *f;
        test_fragmented_window(CHUNK, CHUNKS, test_uri("fill"), &w, &opts, &x);
        const char *uri = test_uri("chunks");
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, opts), 0);
        /* The file goes now, so that a failing assertion leaves none behind. */
        ck_assert_int_eq(iomem_unlink(uri), 0);
        struct iomem_chan *c = NULL;
        /* Strides of 48 KiB: the third slot lies across two chunks. */
        ck_assert_err(iomem_chan_open(&c, f, 48 << 10, 8, 0), ENOTSUP);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "chunk"));
        /* A header and table of more than a chunk. */
        ck_assert_err(iomem_chan_open(&c, f, 64, 1024, 0), ENOTSUP);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_uint_eq(st.size, 0); /* a failed open leaves the object as it was */
        ck_assert_uint_eq(st.acquired, 0);
        /* Strides of 16 KiB fit the chunks: the slots are found in pieces. */
        c = chan(f, 16 << 10, 8, 0);
        struct iomem_chan *r = chan(f, 0, 0, IOMEM_CHAN_NONBLOCK);
        for (uint64_t s = 0; s < 20; s++) {
                publish(c, s, 16 << 10);
                ck_assert_int_eq(expect(r, s, 16 << 10, NULL), 0);
        }
        ck_assert_int_eq(iomem_chan_close(&r), 0);
        ck_assert_int_eq(iomem_chan_close(&c), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
        ck_assert_int_eq(iomem_close(&x), 0);
        iomem_opts_delete(&opts);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("chan");
        TCase *t = tcase_create("chan");
        tcase_add_test(t, messages_cross_processes_in_order_and_whole);
        tcase_add_test(t, the_message_is_written_in_the_object);
        tcase_add_test(t, every_consumer_receives_every_message);
        tcase_add_test(t, consumers_join_and_leave_during_a_stream);
        tcase_add_test(t, a_consumer_that_stops_releasing_holds_the_producer_back);
        tcase_add_test(t, with_no_consumer_messages_wait_for_the_first);
        tcase_add_test(t, loans_published_out_of_order_arrive_in_order);
        tcase_add_test(t, the_descriptors_poll);
        tcase_add_test(t, a_killed_consumer_gives_its_slots_back);
        tcase_add_test(t, a_killed_producer_is_followed_by_another);
        tcase_add_test(t, kills_at_any_point_leave_the_channel_usable);
        tcase_add_test(t, sixty_three_consumers_and_no_more);
        tcase_add_test(t, a_hundred_thousand_messages_and_a_large_ring);
        tcase_add_test(t, every_error_has_its_code);
        tcase_add_test(t, a_spoilt_length_is_refused_and_passed_over);
        tcase_add_test(t, a_message_published_but_not_counted_is_kept);
        tcase_add_test(t, slots_that_span_window_chunks_are_refused);
        suite_add_tcase(s, t);
        return test_run(s);
}
