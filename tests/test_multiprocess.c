/* SPDX-License-Identifier: MIT */
/*
 * Sharing between processes: pins, the I/O lock and the size are seen by
 * every process; a process killed while holding them does not keep them.
 * Processes are real (fork); they take turns through pipes, never sleeps.
 */
#include "common.h"

#include <poll.h>
#include <signal.h>

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))

struct pair {
        struct iomem *f;
        char uri[128];
};

/* A new named (shm) or anonymous (memfd) object kept for the test. */
static struct pair make(size_t size)
{
        struct pair p;
        snprintf(p.uri, sizeof p.uri, "%s", test_uri("mp"));
        struct iomem_opts *o;
        iomem_opts_new(&o);
        iomem_opts_set_size(o, size);
        ck_assert_int_eq(iomem_open(&p.f, p.uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o), 0);
        iomem_opts_delete(&o);
        return p;
}

static void unmake(struct pair *p)
{
        iomem_close(&p->f);
        if (test_caps() & IOMEM_CAP_NAMED)
                iomem_unlink(p->uri);
}

/* A second attachment, as another process would make it: by name where
 * the backend has names, else by descriptor. */
static struct iomem *attach(struct pair *p)
{
        struct iomem *g = NULL;
        int r;
        if (test_caps() & IOMEM_CAP_NAMED)
                r = iomem_open(&g, p->uri, IOMEM_RDWR, NULL);
        else
                r = iomem_open_fd(&g, test_backend(), dup(iomem_fd(p->f)), IOMEM_RDWR, NULL);
        if (r) {
                fprintf(stderr, "attach: %s\n", iomem_errormsg());
                _exit(90);
        }
        return g;
}

static void say(int fd) { ck_assert_int_eq(write(fd, "x", 1), 1); }

static void hear(int fd)
{
        char c;
        ck_assert_int_eq(read(fd, &c, 1), 1);
}

/* 1 if fd becomes readable within ms milliseconds. */
static int heard_within(int fd, int ms)
{
        struct pollfd p = { .fd = fd, .events = POLLIN };
        return poll(&p, 1, ms) == 1;
}

struct channel {
        int to_child[2], to_parent[2];
};

static void channel_open(struct channel *c)
{
        ck_assert_int_eq(pipe(c->to_child), 0);
        ck_assert_int_eq(pipe(c->to_parent), 0);
}

/* In the child, exits with 0 when every check passed. */
#define CHILD_CHECK(cond)                                                        \
        do {                                                                     \
                if (!(cond)) {                                                   \
                        fprintf(stderr, "child: %s failed: %s\n", #cond,         \
                                iomem_errormsg());                               \
                        _exit(91);                                               \
                }                                                                \
        } while (0)

START_TEST(pins_are_seen_by_other_processes)
{
        if (!test_backend_has(IOMEM_CAP_SHARED, "pins seen by another process"))
                return;
        struct pair p = make(4 * PAGE);
        struct channel c;
        channel_open(&c);
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *g = attach(&p);
                CHILD_CHECK(iomem_acquire(g, 0, 2 * PAGE) == (ssize_t)(2 * PAGE));
                say(c.to_parent[1]);
                hear(c.to_child[0]);
                CHILD_CHECK(iomem_release(g, 0, 2 * PAGE) == 0);
                iomem_close(&g);
                _exit(0);
        }
        hear(c.to_parent[0]);
        ck_assert_err(iomem_truncate(p.f, PAGE), EBUSY);
        char x[8] = "gift";
        struct iovec v = { x, sizeof x };
        ck_assert_err(iomem_gift(p.f, PAGE, sizeof x, &v, 1, 0), EBUSY);
        ck_assert_int_eq(iomem_truncate(p.f, 3 * PAGE), 0); /* outside the pins */
        say(c.to_child[1]);
        ck_assert_int_eq(test_wait(pid), 0);
        ck_assert_int_eq(iomem_truncate(p.f, 0), 0);
        unmake(&p);
}
END_TEST

START_TEST(writes_through_retrieve_are_seen_by_borrow)
{
        struct pair p = make(4 * PAGE);
        struct channel c;
        channel_open(&c);
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *g = attach(&p);
                struct iovec v;
                CHILD_CHECK(iomem_acquire(g, 0, 4 * PAGE) == (ssize_t)(4 * PAGE));
                CHILD_CHECK(iomem_retrieve(g, 0, 4 * PAGE, &v, 1) == 1);
                for (size_t i = 0; i < 4 * PAGE; i++)
                        ((char *)v.iov_base)[i] = (char)(i * 7);
                say(c.to_parent[1]);
                hear(c.to_child[0]);
                iomem_close(&g);
                _exit(0);
        }
        hear(c.to_parent[0]);
        struct iovec v;
        ck_assert_int_eq(iomem_rdlock(p.f), 0);
        ck_assert_int_eq(iomem_borrow(p.f, 0, 4 * PAGE, &v, 1), 1);
        for (size_t i = 0; i < 4 * PAGE; i++)
                ck_assert_int_eq(((char *)v.iov_base)[i], (char)(i * 7));
        ck_assert_int_eq(iomem_unlock(p.f), 0);
        say(c.to_child[1]);
        ck_assert_int_eq(test_wait(pid), 0);
        unmake(&p);
}
END_TEST

START_TEST(size_and_gifts_are_shared)
{
        struct pair p = make(0);
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *g = attach(&p);
                void *buf;
                CHILD_CHECK(iomem_pwrite(g, "grown", 5, 3 * PAGE) == 5);
                CHILD_CHECK(iomem_alloc(g, PAGE, &buf) == 0);
                memset(buf, 'G', PAGE);
                struct iovec v = { buf, PAGE };
                CHILD_CHECK(iomem_gift(g, 0, PAGE, &v, 1, test_gift_flags()) == 1);
                iomem_close(&g);
                _exit(0);
        }
        ck_assert_int_eq(test_wait(pid), 0);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(p.f, &st), 0);
        ck_assert_uint_eq(st.size, 3 * PAGE + 5);
        if (test_caps() & IOMEM_CAP_SHARED) /* the counters too */
                test_assert_gifted(&st, PAGE);
        char out[8] = { 0 };
        ck_assert_int_eq(iomem_pread(p.f, out, 5, 3 * PAGE), 5);
        ck_assert_str_eq(out, "grown");
        struct iovec v;
        ck_assert_int_eq(iomem_borrow(p.f, 0, PAGE, &v, 1), 1);
        ck_assert_int_eq(((char *)v.iov_base)[PAGE - 1], 'G');
        unmake(&p);
}
END_TEST

START_TEST(the_lock_excludes_other_processes)
{
        if (!test_backend_has(IOMEM_CAP_SHARED, "the I/O lock across processes"))
                return;
        struct pair p = make(PAGE);
        struct channel c;
        channel_open(&c);
        ck_assert_int_eq(iomem_wrlock(p.f), 0);
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *g = attach(&p);
                say(c.to_parent[1]); /* about to ask */
                CHILD_CHECK(iomem_rdlock(g) == 0);
                say(c.to_parent[1]); /* got it */
                CHILD_CHECK(iomem_unlock(g) == 0);
                iomem_close(&g);
                _exit(0);
        }
        hear(c.to_parent[0]);
        /* The child must still be waiting while we hold the write lock. */
        ck_assert_int_eq(heard_within(c.to_parent[0], 200), 0);
        ck_assert_int_eq(iomem_unlock(p.f), 0);
        hear(c.to_parent[0]);
        ck_assert_int_eq(test_wait(pid), 0);
        unmake(&p);
}
END_TEST

START_TEST(a_killed_holder_leaves_lock_and_pins_behind)
{
        if (!test_backend_has(IOMEM_CAP_SHARED, "a dead process's lock and pins reclaimed"))
                return;
        struct pair p = make(4 * PAGE);
        char mine[2 * 4096];
        memset(mine, 'B', sizeof mine);
        ck_assert_int_eq(iomem_pwrite(p.f, mine, 2 * PAGE, 0), (ssize_t)(2 * PAGE));
        struct channel c;
        channel_open(&c);
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *g = attach(&p);
                CHILD_CHECK(iomem_acquire(g, 0, 4 * PAGE) == (ssize_t)(4 * PAGE));
                CHILD_CHECK(iomem_wrlock(g) == 0);
                say(c.to_parent[1]);
                for (;;)
                        pause();
        }
        hear(c.to_parent[0]);
        kill(pid, SIGKILL);
        ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
        /* The dead writer's lock and pins are reclaimed. */
        ck_assert_int_eq(iomem_wrlock(p.f), 0);
        ck_assert_int_eq(iomem_truncate(p.f, 2 * PAGE), 0);
        ck_assert_int_eq(iomem_unlock(p.f), 0);
        char out[2 * 4096];
        ck_assert_int_eq(iomem_pread(p.f, out, 2 * PAGE, 0), (ssize_t)(2 * PAGE));
        ck_assert_int_eq(memcmp(out, mine, 2 * PAGE), 0);
        unmake(&p);
}
END_TEST

START_TEST(a_killed_reader_does_not_block_writers)
{
        if (!test_backend_has(IOMEM_CAP_SHARED, "a dead reader's lock reclaimed"))
                return;
        struct pair p = make(PAGE);
        struct channel c;
        channel_open(&c);
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *g = attach(&p);
                CHILD_CHECK(iomem_rdlock(g) == 0);
                say(c.to_parent[1]);
                for (;;)
                        pause();
        }
        hear(c.to_parent[0]);
        kill(pid, SIGKILL);
        ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
        ck_assert_int_eq(iomem_wrlock(p.f), 0);
        ck_assert_int_eq(iomem_unlock(p.f), 0);
        unmake(&p);
}
END_TEST

/* A writer waiting in a process that dies holds no reader back. */
START_TEST(a_killed_waiting_writer_does_not_queue_readers)
{
        if (!test_backend_has(IOMEM_CAP_SHARED, "a dead waiting writer reclaimed"))
                return;
        struct pair p = make(PAGE);
        struct channel reader, writer;
        channel_open(&reader);
        channel_open(&writer);
        pid_t rpid = fork();
        if (rpid == 0) {
                struct iomem *g = attach(&p);
                CHILD_CHECK(iomem_rdlock(g) == 0);
                say(reader.to_parent[1]);
                hear(reader.to_child[0]);
                CHILD_CHECK(iomem_unlock(g) == 0);
                CHILD_CHECK(iomem_close(&g) == 0);
                _exit(0);
        }
        hear(reader.to_parent[0]);
        pid_t wpid = fork();
        if (wpid == 0) {
                struct iomem *g = attach(&p);
                say(writer.to_parent[1]);
                iomem_wrlock(g); /* waits behind the reader until killed */
                _exit(92);
        }
        hear(writer.to_parent[0]);
        /* Once the writer waits, this process's new read lock is refused. */
        int r = 0;
        for (int i = 0; i < 1000 && (r = iomem_rdlock_timed(p.f, 0)) == 0; i++) {
                ck_assert_int_eq(iomem_unlock(p.f), 0);
                heard_within(writer.to_parent[0], 5); /* nothing comes: a 5 ms pause */
        }
        ck_assert_err(r, EBUSY);
        kill(wpid, SIGKILL);
        ck_assert_int_eq(test_wait(wpid), 128 + SIGKILL);
        /* Waiting readers check who they wait for, and go on. */
        ck_assert_int_eq(iomem_rdlock_timed(p.f, 10000), 0);
        ck_assert_int_eq(iomem_unlock(p.f), 0);
        say(reader.to_child[1]);
        ck_assert_int_eq(test_wait(rpid), 0);
        unmake(&p);
}
END_TEST

/* Readers in other processes, overlapping without a gap, hold the lock
 * 2 ms at a time: a writer still gets through, within the bound. */
#define STREAM_PROCESSES 3
#define STREAM_WRITER_BOUND_MS 5000

START_TEST(a_writer_gets_through_readers_of_other_processes)
{
        if (!test_backend_has(IOMEM_CAP_SHARED, "readers in other processes"))
                return;
        struct pair p = make(PAGE);
        struct channel c[STREAM_PROCESSES];
        pid_t pid[STREAM_PROCESSES];
        for (int k = 0; k < STREAM_PROCESSES; k++) {
                channel_open(&c[k]);
                if ((pid[k] = fork()) == 0) {
                        struct iomem *g = attach(&p);
                        for (int n = 0; !heard_within(c[k].to_child[0], 0); n++) {
                                CHILD_CHECK(iomem_rdlock(g) == 0);
                                struct timespec hold = { 0, 2000000 };
                                nanosleep(&hold, NULL);
                                CHILD_CHECK(iomem_unlock(g) == 0);
                                if (n == 0)
                                        say(c[k].to_parent[1]);
                        }
                        CHILD_CHECK(iomem_close(&g) == 0);
                        _exit(0);
                }
        }
        for (int k = 0; k < STREAM_PROCESSES; k++)
                hear(c[k].to_parent[0]);
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int r = iomem_wrlock_timed(p.f, STREAM_WRITER_BOUND_MS);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        long ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
        ck_assert_msg(r == 0, "the writer waited %ld ms: %s", ms, iomem_errormsg());
        printf("writer got the lock after %ld ms behind %d reading processes\n", ms, STREAM_PROCESSES);
        ck_assert_int_eq(iomem_unlock(p.f), 0);
        for (int k = 0; k < STREAM_PROCESSES; k++)
                say(c[k].to_child[1]);
        for (int k = 0; k < STREAM_PROCESSES; k++)
                ck_assert_int_eq(test_wait(pid[k]), 0);
        unmake(&p);
}
END_TEST

/* iomem_stat names who holds the object: the bytes pinned by every
 * process, this process's own (over its handles), and the holders' pids. */
START_TEST(stat_names_the_holders)
{
        if (!test_backend_has(IOMEM_CAP_SHARED, "the holders of other processes") ||
            !test_forked_children_run("the holders of other processes"))
                return;
        struct pair p = make(4 * PAGE);
        struct iomem *g = attach(&p);
        ck_assert_int_eq(iomem_acquire(p.f, 0, PAGE), (ssize_t)PAGE);
        ck_assert_int_eq(iomem_acquire(g, 0, 2 * PAGE), (ssize_t)(2 * PAGE));
        struct channel c;
        channel_open(&c);
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *h = attach(&p);
                CHILD_CHECK(iomem_acquire(h, 3 * PAGE, PAGE) == (ssize_t)PAGE);
                CHILD_CHECK(iomem_rdlock(h) == 0);
                say(c.to_parent[1]);
                hear(c.to_child[0]);
                CHILD_CHECK(iomem_unlock(h) == 0);
                CHILD_CHECK(iomem_close(&h) == 0);
                _exit(0);
        }
        hear(c.to_parent[0]);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(p.f, &st), 0);
        ck_assert_uint_eq(st.pinned, 3 * PAGE);
        ck_assert_uint_eq(st.acquired, 2 * PAGE); /* both handles of this process, once */
        ck_assert_uint_eq(st.nholders, 2);
        int lo = getpid() < pid ? getpid() : pid, hi = getpid() < pid ? pid : getpid();
        ck_assert_int_eq(st.holders[0], lo);
        ck_assert_int_eq(st.holders[1], hi);
        say(c.to_child[1]);
        ck_assert_int_eq(test_wait(pid), 0);
        ck_assert_int_eq(iomem_stat(g, &st), 0);
        ck_assert_uint_eq(st.pinned, 2 * PAGE);
        ck_assert_uint_eq(st.nholders, 1);
        ck_assert_int_eq(st.holders[0], getpid());
        ck_assert_int_eq(iomem_close(&g), 0);
        ck_assert_int_eq(iomem_release(p.f, 0, PAGE), 0);
        ck_assert_int_eq(iomem_stat(p.f, &st), 0);
        ck_assert_uint_eq(st.pinned, 0);
        ck_assert_uint_eq(st.nholders, 0);
        unmake(&p);
}
END_TEST

START_TEST(an_inherited_handle_is_a_new_attachment)
{
        struct pair p = make(4 * PAGE);
        ck_assert_int_eq(iomem_acquire(p.f, 0, PAGE), (ssize_t)PAGE);
        ck_assert_int_eq(iomem_wrlock(p.f), 0);
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem_stat st;
                CHILD_CHECK(iomem_stat(p.f, &st) == 0 && st.acquired == 0);
                CHILD_CHECK(iomem_acquire(p.f, PAGE, PAGE) == (ssize_t)PAGE);
                CHILD_CHECK(iomem_release(p.f, PAGE, PAGE) == 0);
                CHILD_CHECK(iomem_release(p.f, 0, PAGE) == -EINVAL);
                iomem_close(&p.f);
                _exit(0);
        }
        ck_assert_int_eq(test_wait(pid), 0);
        /* The child's close did not take the parent's pin or lock. */
        ck_assert_err(iomem_truncate(p.f, 0), EBUSY);
        ck_assert_int_eq(iomem_unlock(p.f), 0);
        ck_assert_int_eq(iomem_release(p.f, 0, PAGE), 0);
        ck_assert_int_eq(iomem_truncate(p.f, 0), 0);
        unmake(&p);
}
END_TEST

/* Threads of the child all making their first call on the inherited handle
 * at once: one resets it for the child, and the others wait for that rather
 * than resetting it again under a pin already taken. Many forks, because the
 * race is a matter of timing (TSan sees it at once). */
START_TEST(threads_of_a_child_share_the_inherited_handle)
{
        struct pair p = make((TEST_FIRST_CALLERS + 1) * PAGE);
        ck_assert_int_eq(iomem_acquire(p.f, 0, PAGE), (ssize_t)PAGE);
        for (int round = 0; round < 10; round++) {
                pid_t pid = fork();
                ck_assert_int_ge(pid, 0);
                if (pid == 0)
                        _exit(test_first_calls_from_threads(p.f, PAGE));
                ck_assert_int_eq(test_wait(pid), 0);
        }
        ck_assert_err(iomem_truncate(p.f, 0), EBUSY); /* the parent's pin stays */
        ck_assert_int_eq(iomem_release(p.f, 0, PAGE), 0);
        unmake(&p);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("multiprocess");
        TCase *tc = tcase_create(test_backend());
        tcase_add_test(tc, pins_are_seen_by_other_processes);
        tcase_add_test(tc, writes_through_retrieve_are_seen_by_borrow);
        tcase_add_test(tc, size_and_gifts_are_shared);
        tcase_add_test(tc, the_lock_excludes_other_processes);
        tcase_add_test(tc, a_killed_holder_leaves_lock_and_pins_behind);
        tcase_add_test(tc, a_killed_reader_does_not_block_writers);
        tcase_add_test(tc, a_killed_waiting_writer_does_not_queue_readers);
        tcase_add_test(tc, stat_names_the_holders);
        tcase_add_test(tc, a_writer_gets_through_readers_of_other_processes);
        tcase_add_test(tc, an_inherited_handle_is_a_new_attachment);
        if (test_forked_children_run("multiprocess: threads of a child share the inherited handle"))
                tcase_add_test(tc, threads_of_a_child_share_the_inherited_handle);
        suite_add_tcase(s, tc);
        return test_run(s);
}
