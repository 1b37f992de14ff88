/* SPDX-License-Identifier: MIT */
/*
 * Crash consistency: a process is killed with SIGKILL at a chosen point
 * (holding the I/O lock, holding pins, in the middle of gift, truncate,
 * growth and acquire) and the survivor goes on: it reclaims the dead
 * process's pins and lock, and sees either the whole change or none of
 * it, never a torn size, extent map or content.
 *
 * "The middle" is reached through the syscall table: in the child, the
 * Nth call of one kind (mmap, an allocating fallocate, a punching
 * fallocate, ftruncate) stops the process just before or just after the
 * real call, and the parent kills it there with SIGKILL. The child
 * records whether the metadata mutex and the I/O lock were held at that
 * moment, so each test also proves it killed at the point it meant to. Runs on the backend named by IOMEM_TEST_BACKEND.
 */
#include "config.h"
#include "common.h"

#include "fdmem.h"
#include "smap.h"
#include "syscalls.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/mman.h>

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))
#define NOT_REACHED 3 /* the child's exit code when the kill point never came */

static bool on_shm(void)
{
        return !strcmp(test_backend(), "shm");
}

/* Reached by name by a second process (else by a descriptor). */
static bool named(void)
{
        return on_shm() || !strcmp(test_backend(), "dax");
}

/* ---- the object under test ------------------------------------------------ */

struct obj {
        struct iomem *f;
        char uri[128];
};

/* A new object of size bytes filled with fill (0: left as holes). */
static struct obj make(size_t size, int fill)
{
        struct obj o;
        snprintf(o.uri, sizeof o.uri, "%s", test_uri("crash"));
        struct iomem_opts *opts;
        ck_assert_int_eq(iomem_opts_new(&opts), 0);
        ck_assert_int_eq(iomem_opts_set_size(opts, size), 0);
        int r = iomem_open(&o.f, o.uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, opts);
        ck_assert_msg(r == 0, "open %s: %s", o.uri, iomem_errormsg());
        iomem_opts_delete(&opts);
        if (fill && size) {
                char *b = malloc(size);
                memset(b, fill, size);
                ck_assert_int_eq(iomem_pwrite(o.f, b, size, 0), (ssize_t)size);
                free(b);
        }
        return o;
}

static void unmake(struct obj *o)
{
        iomem_close(&o->f);
        if (named())
                iomem_unlink(o->uri);
}

/* A second attachment, as another process makes it. */
static struct iomem *attach(struct obj *o)
{
        struct iomem *g = NULL;
        int r;
        if (named())
                r = iomem_open(&g, o->uri, IOMEM_RDWR, NULL);
        else
                r = iomem_open_fd(&g, "memfd", dup(iomem_fd(o->f)), IOMEM_RDWR, NULL);
        if (r) {
                fprintf(stderr, "child: attach: %s\n", iomem_errormsg());
                _exit(90);
        }
        return g;
}

/* ---- the kill points ------------------------------------------------------- */

enum call { K_NONE, K_MMAP, K_ALLOCATE, K_PUNCH, K_FTRUNCATE };
enum when { BEFORE, AFTER };

/* What the child saw when it died, in memory shared with the parent. */
struct report {
        int reached;
        int mutex_held;   /* the metadata mutex was held by the dying process */
        int writer;       /* it held the I/O lock for writing */
};

static struct report *rep;
static int report_pipe[2];
static struct iomem *victim;
static struct {
        enum call which;
        int nth;
        enum when when;
        int seen;
} kp;

static void die_here(void)
{
        struct iom_meta *m = fdo(victim)->meta;
        int r = pthread_mutex_trylock(&m->mutex);
        if (r == 0)
                pthread_mutex_unlock(&m->mutex);
        rep->mutex_held = r == EBUSY;
        rep->writer = m->writer_owner == fdo(victim)->owner;
        __atomic_store_n(&rep->reached, 1, __ATOMIC_SEQ_CST);
        /* The parent kills this process where it stands. */
        if (write(report_pipe[1], "k", 1) != 1)
                _exit(92);
        for (;;)
                pause();
}

static bool hit(enum call c)
{
        return c == kp.which && ++kp.seen == kp.nth;
}

static void *k_mmap(void *a, size_t l, int p, int fl, int fd, off_t o)
{
        bool h = hit(K_MMAP);
        if (h && kp.when == BEFORE)
                die_here();
        void *r = iom_sys_default.mmap(a, l, p, fl, fd, o);
        if (h)
                die_here();
        return r;
}

static int k_fallocate(int fd, int mode, off_t o, off_t l)
{
        bool h = hit(mode & FALLOC_FL_PUNCH_HOLE ? K_PUNCH : K_ALLOCATE);
        if (h && kp.when == BEFORE)
                die_here();
        int r = iom_sys_default.fallocate(fd, mode, o, l);
        if (h)
                die_here();
        return r;
}

static int k_ftruncate(int fd, off_t l)
{
        bool h = hit(K_FTRUNCATE);
        if (h && kp.when == BEFORE)
                die_here();
        int r = iom_sys_default.ftruncate(fd, l);
        if (h)
                die_here();
        return r;
}

typedef void (*victim_fn)(struct iomem *g, void *arg);

/*
 * Fork a child that runs fn on its own attachment, with the kill point
 * armed after attaching; kill it with SIGKILL once it reports it stands
 * there (K_NONE: after fn). Returns its pid, not reaped.
 */
static pid_t fork_victim(struct obj *o, victim_fn fn, void *arg, enum call c, int nth, enum when w)
{
        memset(rep, 0, sizeof *rep);
        ck_assert_int_eq(pipe(report_pipe), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(report_pipe[0]);
                victim = attach(o);
                iomem_close(&o->f); /* the parent's handle: nothing of it is ours */
                kp.which = c;
                kp.nth = nth;
                kp.when = w;
                kp.seen = 0;
                iom_sys.mmap = k_mmap;
                iom_sys.fallocate = k_fallocate;
                iom_sys.ftruncate = k_ftruncate;
                fn(victim, arg);
                if (c == K_NONE)
                        die_here();
                _exit(NOT_REACHED);
        }
        close(report_pipe[1]);
        char k;
        if (read(report_pipe[0], &k, 1) == 1)
                ck_assert_int_eq(kill(pid, SIGKILL), 0);
        close(report_pipe[0]);
        return pid;
}

/* Kill a victim at its point and reap it; the report says where it died. */
static pid_t run_victim(struct obj *o, victim_fn fn, void *arg, enum call c, int nth, enum when w)
{
        pid_t pid = fork_victim(o, fn, arg, c, nth, w);
        int st = test_wait(pid);
        ck_assert_msg(st == 128 + SIGKILL, "the child was not killed at its point (status %d)", st);
        ck_assert_int_eq(rep->reached, 1);
        return pid;
}

/* In the child: an operation that must not fail before the kill point. */
#define VICTIM_CHECK(cond)                                                               \
        do {                                                                             \
                if (!(cond)) {                                                           \
                        fprintf(stderr, "child: %s failed: %s\n", #cond, iomem_errormsg()); \
                        _exit(91);                                                       \
                }                                                                        \
        } while (0)

/* ---- what the survivor checks ---------------------------------------------- */

/* Index of the first byte where got differs from want (n: none). A
 * Check assertion per byte would cost a message to the runner each. */
static size_t first_diff(const char *got, const char *want, size_t n)
{
        size_t i = 0;
        while (i < n && got[i] == want[i])
                i++;
        return i;
}

/*
 * The object holds exactly size bytes equal to want: through stat, pread,
 * and borrow (under the read lock, the entries cover the bytes in order,
 * holes read as zero, bufcount agrees), and its metadata validates.
 */
static void expect_contents(struct iomem *f, const char *want, size_t size)
{
        ck_assert_int_eq(iom_meta_validate(fdo(f)->meta, f->page_size, fdo(f)->meta_map_len), 0);
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        ck_assert_msg(st.size == size, "size %zu, expected %zu (a torn change?)", st.size, size);
        char *got = malloc(size + 1);
        ck_assert_int_eq(iomem_pread(f, got, size + 1, 0), (ssize_t)size);
        size_t d = first_diff(got, want, size);
        ck_assert_msg(d == size, "pread byte %zu is %#x, expected %#x", d,
                      (unsigned char)got[d], (unsigned char)want[d]);
        ck_assert_int_eq(iomem_rdlock(f), 0);
        ssize_t n = iomem_bufcount(f, 0, size + PAGE);
        ck_assert_int_ge(n, size ? 1 : 0);
        struct iovec *v = calloc((size_t)n + 1, sizeof *v);
        ck_assert_int_eq(iomem_borrow(f, 0, size + PAGE, v, (size_t)n + 1), n);
        size_t pos = 0;
        for (ssize_t i = 0; i < n; i++) {
                ck_assert_uint_gt(v[i].iov_len, 0);
                ck_assert_uint_le(pos + v[i].iov_len, size);
                const char *b = v[i].iov_base;
                if (!b) { /* a hole reads as zeros */
                        memset(got, 0, v[i].iov_len);
                        b = got;
                }
                d = first_diff(b, want + pos, v[i].iov_len);
                ck_assert_msg(d == v[i].iov_len, "borrowed byte %zu is %#x, expected %#x",
                              pos + d, (unsigned char)b[d], (unsigned char)want[pos + d]);
                pos += v[i].iov_len;
        }
        ck_assert_uint_eq(pos, size);
        ck_assert_int_eq(iomem_unlock(f), 0);
        free(v);
        free(got);
}

/*
 * The survivor sees exactly the state before the change or exactly the
 * state after it (checked byte for byte by expect_contents); returns the
 * size it sees.
 */
static size_t expect_old_or_new(struct iomem *f, const char *old, size_t old_size,
                                const char *new, size_t new_size)
{
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(f, &st), 0);
        bool is_new;
        if (old_size != new_size) {
                ck_assert_msg(st.size == old_size || st.size == new_size,
                              "size %zu is neither the old %zu nor the new %zu", st.size,
                              old_size, new_size);
                is_new = st.size == new_size;
        } else {
                char *got = malloc(old_size);
                ck_assert_int_eq(iomem_pread(f, got, old_size, 0), (ssize_t)old_size);
                is_new = memcmp(got, old, old_size) != 0;
                free(got);
        }
        if (is_new)
                expect_contents(f, new, new_size);
        else
                expect_contents(f, old, old_size);
        return is_new ? new_size : old_size;
}

/*
 * The survivor takes over: the write lock is free, the dead process's pins
 * and buffers are gone (truncate succeeds, the tables are empty), and pages
 * the dead process left behind never reappear: shrinking to nothing and
 * growing back gives zeros, also once acquired (backed again).
 */
static void expect_reclaimed(struct obj *o, pid_t dead, size_t size)
{
        struct iomem *f = o->f;
        ck_assert_int_eq(iomem_wrlock(f), 0);
        ck_assert_int_eq(iomem_truncate(f, 0), 0);
        ck_assert_int_eq(iomem_unlock(f), 0);
        struct iom_meta *m = fdo(f)->meta;
        ck_assert_int_eq(iom_meta_lock(f), 0);
        uint64_t npins = m->pins.count, npool = m->pool.count, nreaders = m->readers.count;
        uint32_t writer = m->writer_owner;
        int owned = 0;
        struct iom_cursor c;
        for (const struct iom_rec *r = iom_smap_ceil(m, &m->owners, 0, &c); r;
             r = iom_smap_next(m, &m->owners, &c))
                owned += r->owner.pid == dead;
        iom_meta_unlock(f);
        ck_assert_uint_eq(npins, 0);
        ck_assert_uint_eq(npool, 0);
        ck_assert_uint_eq(nreaders, 0);
        ck_assert_uint_eq(writer, IOM_NO_OWNER);
        ck_assert_int_eq(owned, 0);

        size_t grow = iom_round_up(size, PAGE) + 2 * PAGE;
        ck_assert_int_eq(iomem_truncate(f, grow), 0);
        char *zero = calloc(1, grow);
        expect_contents(f, zero, grow);
        ck_assert_int_eq(iomem_acquire(f, 0, grow), (ssize_t)grow);
        struct iovec v[64];
        ssize_t n = iomem_retrieve(f, 0, grow, v, 64);
        ck_assert_int_gt(n, 0);
        size_t pos = 0;
        for (ssize_t i = 0; i < n; i++) {
                size_t d = first_diff(v[i].iov_base, zero, v[i].iov_len);
                ck_assert_msg(d == v[i].iov_len,
                              "byte %zu of a regrown file is %#x: stale memory reused", pos + d,
                              ((unsigned char *)v[i].iov_base)[d]);
                pos += v[i].iov_len;
        }
        ck_assert_uint_eq(pos, grow);
        ck_assert_int_eq(iomem_release(f, 0, grow), 0);
        /* And it is usable as ever. */
        ck_assert_int_eq(iomem_pwrite(f, "after", 5, PAGE - 2), 5);
        char out[5];
        ck_assert_int_eq(iomem_pread(f, out, 5, PAGE - 2), 5);
        ck_assert_int_eq(memcmp(out, "after", 5), 0);
        free(zero);
}

static char *filled(size_t size, int c)
{
        char *b = malloc(size);
        memset(b, c, size);
        return b;
}

/* ---- holding the lock and pins ----------------------------------------------- */

static void take_wrlock(struct iomem *g, void *arg)
{
        (void)arg;
        VICTIM_CHECK(iomem_wrlock(g) == 0);
        VICTIM_CHECK(iomem_wrlock(g) == 0); /* nested */
}

START_TEST(killed_holding_the_write_lock)
{
        struct obj o = make(3 * PAGE, 'a');
        pid_t dead = run_victim(&o, take_wrlock, NULL, K_NONE, 0, BEFORE);
        ck_assert_int_eq(rep->writer, 1);
        ck_assert_int_eq(rep->mutex_held, 0);
        char *want = filled(3 * PAGE, 'a');
        expect_contents(o.f, want, 3 * PAGE); /* pread takes the read lock */
        expect_reclaimed(&o, dead, 3 * PAGE);
        free(want);
        unmake(&o);
}
END_TEST

static void take_rdlock(struct iomem *g, void *arg)
{
        (void)arg;
        VICTIM_CHECK(iomem_rdlock(g) == 0);
}

START_TEST(killed_holding_the_read_lock)
{
        struct obj o = make(PAGE, 'b');
        pid_t dead = run_victim(&o, take_rdlock, NULL, K_NONE, 0, BEFORE);
        ck_assert_int_eq(rep->writer, 0);
        expect_reclaimed(&o, dead, PAGE);
        unmake(&o);
}
END_TEST

static void take_pins(struct iomem *g, void *arg)
{
        (void)arg;
        struct iovec v;
        VICTIM_CHECK(iomem_acquire(g, 0, 4 * PAGE) == (ssize_t)(4 * PAGE));
        VICTIM_CHECK(iomem_acquire(g, PAGE, PAGE) == (ssize_t)PAGE);
        VICTIM_CHECK(iomem_retrieve(g, 0, 4 * PAGE, &v, 1) == 1);
        memset(v.iov_base, 'p', 4 * PAGE);
        void *buf;
        VICTIM_CHECK(iomem_alloc(g, 2 * PAGE, &buf) == 0);
        memset(buf, 'q', 2 * PAGE);
}

START_TEST(killed_holding_pins_and_buffers)
{
        struct obj o = make(4 * PAGE, 'c');
        pid_t dead = run_victim(&o, take_pins, NULL, K_NONE, 0, BEFORE);
        /* Its writes through the pinned memory are the file's. */
        char *want = filled(4 * PAGE, 'p');
        expect_contents(o.f, want, 4 * PAGE);
        expect_reclaimed(&o, dead, 4 * PAGE);
        free(want);
        unmake(&o);
}
END_TEST

/* ---- acquire: backing holes ------------------------------------------------------ */

static void acquire_all(struct iomem *g, void *arg)
{
        (void)arg;
        iomem_acquire(g, 0, 8 * PAGE);
}

/* Killed after backing the first hole, before the map says so: the map
 * keeps its holes (an acquire changes no byte, so old and new agree). */
START_TEST(killed_in_acquire_while_backing_holes)
{
        struct obj o = make(8 * PAGE, 0);
        ck_assert_int_eq(iomem_pwrite(o.f, "x", 1, 3 * PAGE), 1); /* holes on both sides */
        pid_t dead = run_victim(&o, acquire_all, NULL, K_ALLOCATE, 2, AFTER);
        ck_assert_int_eq(rep->mutex_held, 1);
        char *want = calloc(1, 8 * PAGE);
        want[3 * PAGE] = 'x';
        expect_contents(o.f, want, 8 * PAGE);
        struct iovec v[8];
        ck_assert_int_eq(iomem_borrow(o.f, 0, 8 * PAGE, v, 8), 3);
        ck_assert_ptr_null(v[0].iov_base);
        ck_assert_ptr_nonnull(v[1].iov_base);
        ck_assert_ptr_null(v[2].iov_base);
        expect_reclaimed(&o, dead, 8 * PAGE);
        free(want);
        unmake(&o);
}
END_TEST

/* ---- gift ----------------------------------------------------------------- */

struct gift_arg {
        size_t off, len;
        int c;
        bool adopt; /* from iomem_alloc (adopted) or the heap (copied) */
};

static void do_gift(struct iomem *g, void *arg)
{
        struct gift_arg *a = arg;
        void *buf;
        if (a->adopt) {
                VICTIM_CHECK(iomem_alloc(g, a->len, &buf) == 0);
        } else {
                buf = malloc(a->len);
                VICTIM_CHECK(buf != NULL);
        }
        memset(buf, a->c, a->len);
        struct iovec v = { buf, a->len };
        iomem_gift(g, a->off, a->len, &v, 1, a->adopt ? IOMEM_GIFT_NOCOPY : 0);
}

/* Old and new contents of a gift (or write) of a->len bytes of a->c at
 * a->off into size bytes of fill. */
struct states {
        char *old, *new;
        size_t old_size, new_size;
};

static struct states states_of(size_t size, int fill, size_t off, size_t len, int c)
{
        struct states s = { .old_size = size, .new_size = off + len > size ? off + len : size };
        s.old = filled(size, fill);
        s.new = calloc(1, s.new_size);
        memset(s.new, fill, size);
        memset(s.new + off, c, len);
        return s;
}

static void states_free(struct states *s)
{
        free(s->old);
        free(s->new);
}

/* Kill a gift at (c, nth, w) and check the survivor; mutex_held: what the
 * kill point must have held (-1: either). */
static void gift_case(size_t size, int fill, struct gift_arg a, enum call c, int nth, enum when w,
                      int mutex_held)
{
        struct obj o = make(size, fill);
        pid_t dead = run_victim(&o, do_gift, &a, c, nth, w);
        if (mutex_held >= 0)
                ck_assert_int_eq(rep->mutex_held, mutex_held);
        ck_assert_int_eq(rep->writer, 1); /* in the middle of the gift */
        struct states s = states_of(size, fill, a.off, a.len, a.c);
        size_t seen = expect_old_or_new(o.f, s.old, s.old_size, s.new, s.new_size);
        expect_reclaimed(&o, dead, seen);
        states_free(&s);
        unmake(&o);
}

/* A copying gift that grows the file, killed while backing the pages the
 * bytes are copied to (metadata locked, map not published). */
START_TEST(killed_in_gift_while_backing)
{
        struct gift_arg a = { .off = 2 * PAGE + 100, .len = 3 * PAGE, .c = 'G' };
        gift_case(2 * PAGE + 100, 'd', a, K_ALLOCATE, 1, AFTER, 1);
}
END_TEST

/* An adopting gift that grows the file, killed when it maps the old last
 * page to zero its tail (metadata locked, buffer not yet carved from the
 * pool). mmap 1 is iomem_alloc's, mmap 2 the data area's. */
START_TEST(killed_in_adopting_gift_while_zeroing_the_tail)
{
        struct gift_arg a = { .off = 2 * PAGE, .len = 2 * PAGE, .c = 'H', .adopt = true };
        gift_case(PAGE + 10, 'e', a, K_MMAP, 2, BEFORE, 1);
}
END_TEST

/* An adopting gift over backed pages, killed after publishing, while
 * freeing the pages it replaced (only the I/O lock held). */
START_TEST(killed_in_gift_while_freeing_replaced_pages)
{
        struct gift_arg a = { .off = PAGE, .len = 2 * PAGE, .c = 'I', .adopt = true };
        gift_case(4 * PAGE, 'f', a, K_PUNCH, 1, BEFORE, 0);
}
END_TEST

/* A copying gift that grows the file, killed when it maps the data area
 * to copy the bytes in. */
START_TEST(killed_in_gift_while_copying)
{
        struct gift_arg a = { .off = 2 * PAGE, .len = 2 * PAGE, .c = 'K' };
        gift_case(2 * PAGE, 'g', a, K_MMAP, 1, BEFORE, -1);
}
END_TEST

/* shm: a growing gift killed right after growing the data object. */
START_TEST(killed_in_gift_after_growing_the_data_object)
{
        struct gift_arg a = { .off = PAGE, .len = PAGE, .c = 'J', .adopt = true };
        gift_case(PAGE, 'g', a, K_FTRUNCATE, 1, AFTER, 1);
}
END_TEST

/* ---- truncate -------------------------------------------------------------- */

static void do_truncate(struct iomem *g, void *arg)
{
        iomem_truncate(g, *(size_t *)arg);
}

static void truncate_case(size_t size, int fill, size_t to, enum call c, int nth, enum when w,
                          int mutex_held)
{
        struct obj o = make(size, fill);
        pid_t dead = run_victim(&o, do_truncate, &to, c, nth, w);
        if (mutex_held >= 0)
                ck_assert_int_eq(rep->mutex_held, mutex_held);
        ck_assert_int_eq(rep->writer, 1); /* in the middle of the truncate */
        char *old = filled(size, fill);
        char *new = calloc(1, to);
        memset(new, fill, to < size ? to : size);
        size_t seen = expect_old_or_new(o.f, old, size, new, to);
        expect_reclaimed(&o, dead, seen);
        free(old);
        free(new);
        unmake(&o);
}

/* Shrinking to the middle of a page, killed with the metadata locked:
 * memfd when it maps the last page to zero its tail, shm just before it
 * shrinks the data object. */
START_TEST(killed_in_truncate_while_shrinking)
{
        if (named()) /* dax: the file's ftruncate, with the metadata locked */
                truncate_case(3 * PAGE, 'h', PAGE + 100, K_FTRUNCATE, 1, BEFORE, 1);
        else
                truncate_case(3 * PAGE, 'h', PAGE + 100, K_MMAP, 1, BEFORE, 1);
}
END_TEST

/* shm and dax: killed right after the data object or the file shrank
 * (metadata locked). */
START_TEST(killed_in_truncate_after_shrinking_the_data_object)
{
        truncate_case(3 * PAGE, 'i', PAGE, K_FTRUNCATE, 1, AFTER, 1);
}
END_TEST

/* Killed while freeing the pages past the new end (only the I/O lock). */
START_TEST(killed_in_truncate_while_freeing_pages)
{
        truncate_case(4 * PAGE, 'j', PAGE, K_PUNCH, 1, BEFORE, 0);
}
END_TEST

/* Growing from the middle of a page, killed with the metadata locked:
 * memfd when it maps the old last page, shm after growing the data object. */
START_TEST(killed_in_truncate_while_growing)
{
        if (on_shm())
                truncate_case(PAGE + 7, 'k', 5 * PAGE, K_FTRUNCATE, 1, AFTER, 1);
        else
                truncate_case(PAGE + 7, 'k', 5 * PAGE, K_MMAP, 1, BEFORE, 1);
}
END_TEST

/* ---- growth: pwrite past the end ------------------------------------------------ */

struct write_arg {
        size_t off, len;
        int c;
};

static void do_pwrite(struct iomem *g, void *arg)
{
        struct write_arg *a = arg;
        char *b = filled(a->len, a->c);
        iomem_pwrite(g, b, a->len, a->off);
}

static void growth_case(size_t size, int fill, struct write_arg a, enum call c, int nth,
                        enum when w, int mutex_held)
{
        struct obj o = make(size, fill);
        pid_t dead = run_victim(&o, do_pwrite, &a, c, nth, w);
        if (mutex_held >= 0)
                ck_assert_int_eq(rep->mutex_held, mutex_held);
        struct states s = states_of(size, fill, a.off, a.len, a.c);
        size_t seen = expect_old_or_new(o.f, s.old, s.old_size, s.new, s.new_size);
        expect_reclaimed(&o, dead, seen);
        states_free(&s);
        unmake(&o);
}

/* Killed after backing the new pages, before the map says so. */
START_TEST(killed_in_growth_while_backing)
{
        struct write_arg a = { .off = 2 * PAGE, .len = 4 * PAGE, .c = 'W' };
        growth_case(2 * PAGE + 5, 'l', a, K_ALLOCATE, 1, AFTER, 1);
}
END_TEST

/* Killed with the metadata locked: memfd when it maps the old last page
 * to zero the old tail, shm right after growing the data object. */
START_TEST(killed_in_growth_while_resizing)
{
        struct write_arg a = { .off = 3 * PAGE, .len = PAGE, .c = 'X' };
        if (on_shm())
                growth_case(2 * PAGE + 5, 'm', a, K_FTRUNCATE, 1, AFTER, 1);
        else
                growth_case(2 * PAGE + 5, 'm', a, K_MMAP, 1, BEFORE, 1);
}
END_TEST

/* Killed when it maps the data area to copy the bytes in. */
START_TEST(killed_in_growth_while_copying)
{
        struct write_arg a = { .off = 2 * PAGE, .len = 2 * PAGE, .c = 'Y' };
        growth_case(2 * PAGE, 'n', a, K_MMAP, 1, BEFORE, -1);
}
END_TEST

/* ---- a dead process nobody has reaped yet --------------------------------- */

/* Wait until pid has died, leaving it a zombie (not reaped). */
static void wait_dead_unreaped(pid_t pid)
{
        siginfo_t si;
        ck_assert_int_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
        ck_assert_int_eq(si.si_code, CLD_KILLED);
}

static pid_t spawn_holder(struct obj *o, victim_fn fn)
{
        pid_t pid = fork_victim(o, fn, NULL, K_NONE, 0, BEFORE);
        wait_dead_unreaped(pid);
        ck_assert_int_eq(rep->reached, 1);
        return pid;
}

/* Its parent may be the survivor, busy taking the lock rather than
 * reaping: a zombie holds nothing. (The test's timeout catches a hang.) */
START_TEST(a_zombie_does_not_keep_the_lock)
{
        struct obj o = make(PAGE, 'z');
        pid_t pid = spawn_holder(&o, take_wrlock);
        ck_assert_int_eq(iomem_wrlock(o.f), 0);
        ck_assert_int_eq(iomem_unlock(o.f), 0);
        ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
        unmake(&o);
}
END_TEST

START_TEST(a_zombie_does_not_keep_its_pins)
{
        struct obj o = make(4 * PAGE, 'c');
        pid_t pid = spawn_holder(&o, take_pins);
        ck_assert_int_eq(iomem_truncate(o.f, 0), 0);
        ck_assert_int_eq(test_wait(pid), 128 + SIGKILL);
        unmake(&o);
}
END_TEST

/* Kill points inside the changes of the fd-memory engine's extent map and
 * gift pool, and of shm's data object: dax's file has neither. */
static void fd_engine_points(TCase *tc)
{
        tcase_add_test(tc, killed_in_acquire_while_backing_holes);
        tcase_add_test(tc, killed_in_gift_while_backing);
        tcase_add_test(tc, killed_in_adopting_gift_while_zeroing_the_tail);
        tcase_add_test(tc, killed_in_gift_while_freeing_replaced_pages);
        tcase_add_test(tc, killed_in_gift_while_copying);
        tcase_add_test(tc, killed_in_truncate_while_freeing_pages);
        tcase_add_test(tc, killed_in_truncate_while_growing);
        tcase_add_test(tc, killed_in_growth_while_backing);
        tcase_add_test(tc, killed_in_growth_while_resizing);
        tcase_add_test(tc, killed_in_growth_while_copying);
        /* shm only: memfd objects never resize their descriptor. */
        if (on_shm())
                tcase_add_test(tc, killed_in_gift_after_growing_the_data_object);
}

int main(void)
{
        /* What a killed process leaves in the state every process shares;
         * a backend whose pins and lock live in each process has none. */
        if (!test_backend_has(IOMEM_CAP_SHARED, "the crash suite"))
                return TEST_SKIP;
        rep = mmap(NULL, sizeof *rep, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (rep == MAP_FAILED) {
                perror("mmap");
                return EXIT_FAILURE;
        }
        Suite *s = suite_create("crash");
        TCase *tc = tcase_create(test_backend());
        tcase_add_test(tc, killed_holding_the_write_lock);
        tcase_add_test(tc, killed_holding_the_read_lock);
        tcase_add_test(tc, killed_holding_pins_and_buffers);
        tcase_add_test(tc, killed_in_truncate_while_shrinking);
        if (strcmp(test_backend(), "dax"))
                fd_engine_points(tc);
        /* shm and dax: the data object or the file shrinks by ftruncate. */
        if (named())
                tcase_add_test(tc, killed_in_truncate_after_shrinking_the_data_object);
        suite_add_tcase(s, tc);
        if (IOMEM_PLATFORM_LINUX) {
                TCase *zombies = tcase_create("zombies");
                tcase_set_timeout(zombies, 15);
                tcase_add_test(zombies, a_zombie_does_not_keep_the_lock);
                tcase_add_test(zombies, a_zombie_does_not_keep_its_pins);
                suite_add_tcase(s, zombies);
        } else {
                printf("SKIP: zombies (the POSIX platform layer cannot tell a zombie from a live "
                       "process: its pins go when it is reaped)\n");
        }
        return test_run(s);
}
