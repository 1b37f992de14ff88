/* SPDX-License-Identifier: MIT */
/*
 * Fault injection, the object's side: test_faults.c shows that every
 * failed system call is reported and leaks nothing on a fresh object;
 * here each operation runs on an object that already holds data, holes,
 * an adopted gift and a pin, with the Nth call of one kind failing (for
 * every N the operation reaches), with each errno that call can give
 * (ENOMEM, ENOSPC, EINTR, EAGAIN, ...). After the failure:
 *
 *  - the result is that errno (mmap failures may read -ENOMEM);
 *  - the object is unchanged: size, every byte, where the holes are,
 *    stat (acquired, gift totals), the shared tables (pins, buffers,
 *    owners) and the memory it uses (st_blocks of its descriptors);
 *  - it is usable: the same operation succeeds once the fault is gone;
 *  - once closed, no descriptor and no mapping of it is left behind.
 *
 * Runs on the backend named by IOMEM_TEST_BACKEND.
 */
#include "config.h"
#include "common.h"

#include "fdmem.h"
#include "syscalls.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))

static bool on_shm(void)
{
        return !strcmp(test_backend(), "shm");
}

/* ---- the injector ---------------------------------------------------------- */

enum call { C_MMAP, C_ALLOCATE, C_FTRUNCATE, C_SHM_OPEN, C_FSTAT, C_FLOCK, C_PREAD };
static const char *const call_name[] = { "mmap", "fallocate", "ftruncate", "shm_open",
                                         "fstat", "flock", "pread" };

static struct {
        enum call which;
        int nth, err, seen, fired;
} inj;

static bool hit(enum call c)
{
        if (c != inj.which || !inj.nth || ++inj.seen != inj.nth)
                return false;
        inj.fired = 1;
        errno = inj.err;
        return true;
}

static void *f_mmap(void *a, size_t l, int p, int fl, int fd, off_t o)
{
        return hit(C_MMAP) ? MAP_FAILED : iom_sys_default.mmap(a, l, p, fl, fd, o);
}
static int f_fallocate(int fd, int m, off_t o, off_t l)
{
        return !(m & FALLOC_FL_PUNCH_HOLE) && hit(C_ALLOCATE) ? -1 : iom_sys_default.fallocate(fd, m, o, l);
}
static int f_ftruncate(int fd, off_t l)
{
        return hit(C_FTRUNCATE) ? -1 : iom_sys_default.ftruncate(fd, l);
}
static int f_shm_open(const char *n, int o, mode_t m)
{
        return hit(C_SHM_OPEN) ? -1 : iom_sys_default.shm_open(n, o, m);
}
static int f_fstat(int fd, struct stat *st)
{
        return hit(C_FSTAT) ? -1 : iom_sys_default.fstat(fd, st);
}
static int f_flock(int fd, int op)
{
        /* Taking the lock can be interrupted; letting go of it cannot. */
        return op != LOCK_UN && hit(C_FLOCK) ? -1 : iom_sys_default.flock(fd, op);
}
static ssize_t f_pread(int fd, void *b, size_t l, off_t o)
{
        return hit(C_PREAD) ? -1 : iom_sys_default.pread(fd, b, l, o);
}

static void inject(enum call which, int nth, int err)
{
        inj.which = which;
        inj.nth = nth;
        inj.err = err;
        inj.seen = inj.fired = 0;
        iom_sys.mmap = f_mmap;
        iom_sys.fallocate = f_fallocate;
        iom_sys.ftruncate = f_ftruncate;
        iom_sys.shm_open = f_shm_open;
        iom_sys.fstat = f_fstat;
        iom_sys.flock = f_flock;
        iom_sys.pread = f_pread;
}

static void heal(void)
{
        iom_sys = iom_sys_default;
        inj.nth = 0;
}

/* ---- the object and its state ------------------------------------------------ */

struct obj {
        char uri[128], tag[64];
        struct iomem *f;
};

/*
 * 7 pages and a bit: [0, 2) data (page 0 pinned by this handle), [2, 4)
 * a hole, [4, 5) adopted from the gift pool, [5, 6) data, [6, 7) a hole,
 * then 100 bytes of data.
 */
static void make(struct obj *o)
{
        static unsigned seq;
        snprintf(o->tag, sizeof o->tag, "iomem-fstate-%d-%u", (int)getpid(), seq++);
        snprintf(o->uri, sizeof o->uri, "%s:%s", test_backend(), o->tag);
        struct iomem_opts *opts;
        ck_assert_int_eq(iomem_opts_new(&opts), 0);
        ck_assert_int_eq(iomem_opts_set_size(opts, 7 * PAGE + 100), 0);
        ck_assert_int_eq(iomem_open(&o->f, o->uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, opts), 0);
        iomem_opts_delete(&opts);
        char *b = malloc(2 * PAGE);
        memset(b, 'd', 2 * PAGE);
        ck_assert_int_eq(iomem_pwrite(o->f, b, 2 * PAGE, 0), (ssize_t)(2 * PAGE));
        ck_assert_int_eq(iomem_pwrite(o->f, b, PAGE, 5 * PAGE), (ssize_t)PAGE);
        ck_assert_int_eq(iomem_pwrite(o->f, b, 100, 7 * PAGE), 100);
        void *g;
        ck_assert_int_eq(iomem_alloc(o->f, PAGE, &g), 0);
        memset(g, 'g', PAGE);
        struct iovec v = { g, PAGE };
        ck_assert_int_eq(iomem_gift(o->f, 4 * PAGE, PAGE, &v, 1, IOMEM_GIFT_NOCOPY), 1);
        ck_assert_int_eq(iomem_acquire(o->f, 0, PAGE), (ssize_t)PAGE);
        free(b);
}

static void unmake(struct obj *o)
{
        iomem_close(&o->f);
        if (on_shm())
                iomem_unlink(o->uri);
}

struct state {
        size_t size, acquired, blocks;
        uint64_t adopted, copied;
        uint32_t npins, npool, nowners;
        char holes[16];
        char *bytes;
};

static size_t blocks_of(struct obj *o)
{
        struct stat st;
        ck_assert_int_eq(fstat(o->f->data_fd, &st), 0);
        size_t b = (size_t)st.st_blocks;
        if (fdo(o->f)->aux_fd != o->f->data_fd) {
                ck_assert_int_eq(fstat(fdo(o->f)->aux_fd, &st), 0);
                b += (size_t)st.st_blocks;
        }
        return b;
}

static struct state snapshot(struct obj *o)
{
        struct state s = { 0 };
        struct iomem_stat st;
        ck_assert_int_eq(iomem_stat(o->f, &st), 0);
        s.size = st.size;
        s.acquired = st.acquired;
        s.adopted = st.gift_adopted;
        s.copied = st.gift_copied;
        s.bytes = malloc(s.size + 1);
        ck_assert_int_eq(iomem_pread(o->f, s.bytes, s.size + 1, 0), (ssize_t)s.size);
        struct iovec v[16];
        ssize_t n = iomem_borrow(o->f, 0, s.size, v, 16);
        ck_assert_int_gt(n, 0);
        ck_assert_int_lt(n, 16);
        for (ssize_t i = 0; i < n; i++)
                s.holes[i] = v[i].iov_base ? 'd' : 'h';
        s.holes[n] = 0;
        struct iom_meta *m = fdo(o->f)->meta;
        ck_assert_int_eq(iom_meta_lock(o->f), 0);
        s.npins = (uint32_t)m->pins.count;
        s.npool = (uint32_t)m->pool.count;
        s.nowners = (uint32_t)m->owners.count;
        iom_meta_unlock(o->f);
        s.blocks = blocks_of(o);
        return s;
}

static void expect_same(const struct state *a, const struct state *b, const char *what)
{
        ck_assert_msg(a->size == b->size, "%s: size %zu became %zu", what, a->size, b->size);
        ck_assert_msg(!memcmp(a->bytes, b->bytes, a->size), "%s: the bytes changed", what);
        ck_assert_msg(!strcmp(a->holes, b->holes), "%s: extents %s became %s", what, a->holes,
                      b->holes);
        ck_assert_msg(a->acquired == b->acquired, "%s: acquired %zu became %zu", what,
                      a->acquired, b->acquired);
        ck_assert_msg(a->adopted == b->adopted && a->copied == b->copied, "%s: gift totals changed",
                      what);
        ck_assert_msg(a->npins == b->npins, "%s: %u shared pins became %u", what, a->npins, b->npins);
        ck_assert_msg(a->npool == b->npool, "%s: %u buffers became %u", what, a->npool, b->npool);
        ck_assert_msg(a->nowners == b->nowners, "%s: %u owners became %u", what, a->nowners,
                      b->nowners);
        /* The POSIX platform layer cannot punch holes: memory a failed
         * call had backed stays with the object (as zeros), never more
         * than the call asked for. */
        if (IOMEM_PLATFORM_LINUX)
                ck_assert_msg(a->blocks == b->blocks, "%s: %zu blocks of memory became %zu", what,
                              a->blocks, b->blocks);
        else
                ck_assert_msg(a->blocks <= b->blocks, "%s: %zu blocks of memory became %zu", what,
                              a->blocks, b->blocks);
}

/* ---- the operations ---------------------------------------------------------- */

typedef long (*op_fn)(struct obj *o);

static long op_pwrite_growing(struct obj *o)
{
        static char b[3 * 4096];
        memset(b, 'w', sizeof b);
        ssize_t r = iomem_pwrite(o->f, b, 3 * PAGE, 7 * PAGE + 50);
        return r < 0 ? r : 0;
}

static long op_pwrite_into_a_hole(struct obj *o)
{
        char b[100];
        memset(b, 'h', sizeof b);
        ssize_t r = iomem_pwrite(o->f, b, sizeof b, 2 * PAGE + 10);
        return r < 0 ? r : 0;
}

static long op_truncate_growing(struct obj *o)
{
        return iomem_truncate(o->f, 12 * PAGE + 7);
}

/* Into the middle of a page of data, past the pin. */
static long op_truncate_shrinking(struct obj *o)
{
        return iomem_truncate(o->f, PAGE + 33);
}

static long op_acquire_over_holes(struct obj *o)
{
        ssize_t r = iomem_acquire(o->f, 0, 8 * PAGE);
        if (r < 0)
                return r;
        return iomem_release(o->f, 0, 8 * PAGE);
}

static long op_gift_adopting(struct obj *o)
{
        void *g;
        int r = iomem_alloc(o->f, 2 * PAGE, &g);
        if (r)
                return r;
        memset(g, 'A', 2 * PAGE);
        struct iovec v = { g, 2 * PAGE };
        ssize_t n = iomem_gift(o->f, 2 * PAGE, 2 * PAGE, &v, 1, IOMEM_GIFT_NOCOPY);
        if (n < 0)
                ck_assert_int_eq(iomem_free(o->f, g, 2 * PAGE), 0);
        return n < 0 ? n : 0;
}

static long op_gift_copying(struct obj *o)
{
        static char b[2 * 4096 + 5];
        memset(b, 'C', sizeof b);
        struct iovec v = { b, 2 * PAGE + 5 };
        ssize_t n = iomem_gift(o->f, 7 * PAGE + 100, 2 * PAGE + 5, &v, 1, 0);
        return n < 0 ? n : 0;
}

static long op_alloc(struct obj *o)
{
        void *g;
        int r = iomem_alloc(o->f, 3 * PAGE, &g);
        if (!r)
                r = iomem_free(o->f, g, 3 * PAGE);
        return r;
}

/* Another handle attaches, reads everything, and closes. */
static long op_attach_and_read(struct obj *o)
{
        struct iomem *g = NULL;
        int r;
        if (on_shm()) {
                r = iomem_open(&g, o->uri, IOMEM_RDWR, NULL);
        } else {
                int fd = dup(iomem_fd(o->f));
                r = iomem_open_fd(&g, "memfd", fd, IOMEM_RDWR, NULL);
                if (r)
                        close(fd);
        }
        if (r)
                return r;
        static char b[8 * 4096 + 100];
        ssize_t n = iomem_pread(g, b, sizeof b, 0);
        struct iovec v[8];
        if (n >= 0)
                n = iomem_borrow(g, 0, sizeof b, v, 8);
        iomem_close(&g);
        return n < 0 ? n : 0;
}

struct op {
        const char *name;
        op_fn fn;
};

/*
 * Fail each call of kind c (1st, 2nd, ...) that op makes, with err: the
 * result, the state, the retry, the leaks. Returns how many calls failed.
 */
static int each_failure(const struct op *op, enum call c, int err)
{
        for (int nth = 1; nth < 100; nth++) {
                int fds = test_count_fds();
                struct obj o;
                make(&o);
                struct state before = snapshot(&o);
                inject(c, nth, err);
                long r = op->fn(&o);
                int fired = inj.fired;
                heal();
                char what[160];
                snprintf(what, sizeof what, "%s with %s call %d failing (%s)", op->name,
                         call_name[c], nth, strerror(err));
                if (!fired) {
                        ck_assert_msg(r == 0, "%s: %ld (%s)", what, r, iomem_errormsg());
                        free(before.bytes);
                        unmake(&o);
                        return nth - 1;
                }
                ck_assert_msg(r == -err || (c == C_MMAP && r == -ENOMEM), "%s gave %ld (%s)",
                              what, r, iomem_errormsg());
                struct state after = snapshot(&o);
                expect_same(&before, &after, what);
                free(before.bytes);
                free(after.bytes);
                /* Usable: the same operation goes through now. */
                ck_assert_msg(op->fn(&o) == 0, "%s, then again: %s", what, iomem_errormsg());
                unmake(&o);
                ck_assert_msg(test_count_fds() == fds, "%s: %d descriptors leaked", what,
                              test_count_fds() - fds);
                /* (All mappings counted would count the allocator's too.) */
                ck_assert_msg(test_count_maps_of(o.tag) == 0, "%s: %d mappings of it leaked", what,
                              test_count_maps_of(o.tag));
        }
        ck_abort_msg("%s: never finished", op->name);
        return 0;
}

static const struct op ops[] = {
        { "pwrite past the end", op_pwrite_growing },
        { "pwrite into a hole", op_pwrite_into_a_hole },
        { "truncate growing", op_truncate_growing },
        { "truncate shrinking", op_truncate_shrinking },
        { "acquire over holes", op_acquire_over_holes },
        { "gift adopting", op_gift_adopting },
        { "gift copying", op_gift_copying },
        { "alloc", op_alloc },
        { "attach and read", op_attach_and_read },
};
#define NOPS (sizeof ops / sizeof ops[0])

/* Warm up what the process opens or maps lazily, so that counting
 * descriptors later is exact. */
static void warm_up(void)
{
        for (size_t i = 0; i < NOPS; i++) {
                struct obj o;
                make(&o);
                ck_assert_msg(ops[i].fn(&o) == 0, "%s: %s", ops[i].name, iomem_errormsg());
                unmake(&o);
        }
}

static void each_op_each_failure(enum call c, const int *errs, size_t nerrs)
{
        warm_up();
        int reached = 0;
        for (size_t i = 0; i < NOPS; i++)
                for (size_t e = 0; e < nerrs; e++)
                        reached += each_failure(&ops[i], c, errs[e]);
        ck_assert_int_gt(reached, 0); /* the kind of call was met at all */
}

START_TEST(failed_mmap_changes_nothing)
{
        static const int errs[] = { ENOMEM, EAGAIN };
        each_op_each_failure(C_MMAP, errs, 2);
}
END_TEST

START_TEST(failed_fallocate_changes_nothing)
{
        static const int errs[] = { ENOSPC, ENOMEM, EINTR };
        each_op_each_failure(C_ALLOCATE, errs, 3);
}
END_TEST

/* (memfd objects never resize their descriptor: shm only.) */
START_TEST(failed_ftruncate_changes_nothing)
{
        static const int errs[] = { EFBIG, ENOMEM, EINTR, ENOSPC };
        each_op_each_failure(C_FTRUNCATE, errs, 4);
}
END_TEST

/* Attaching: the metadata object cannot be opened, examined, locked or read. */
START_TEST(failed_attach_changes_nothing)
{
        static const int open_errs[] = { ENFILE, ENOSPC, EINTR };
        static const int io_errs[] = { EINTR, EIO, ENOMEM };
        static const int lock_errs[] = { EINTR, ENOLCK };
        const struct op *attach = &ops[NOPS - 1];
        warm_up();
        int reached = 0;
        for (size_t e = 0; e < 3; e++) {
                if (on_shm())
                        reached += each_failure(attach, C_SHM_OPEN, open_errs[e]);
                reached += each_failure(attach, C_FSTAT, io_errs[e]);
                reached += each_failure(attach, C_PREAD, io_errs[e]);
        }
        for (size_t e = 0; on_shm() && e < 2; e++)
                reached += each_failure(attach, C_FLOCK, lock_errs[e]);
        ck_assert_int_gt(reached, 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("faults-state");
        TCase *tc = tcase_create(test_backend());
        tcase_set_timeout(tc, 300);
        tcase_add_test(tc, failed_mmap_changes_nothing);
        tcase_add_test(tc, failed_fallocate_changes_nothing);
        if (on_shm())
                tcase_add_test(tc, failed_ftruncate_changes_nothing);
        tcase_add_test(tc, failed_attach_changes_nothing);
        suite_add_tcase(s, tc);
        return test_run(s);
}
