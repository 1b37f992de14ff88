/* SPDX-License-Identifier: MIT */
/*
 * Security: what a process gets without asking, and what a hostile peer
 * can and cannot do. Objects are created 0600 unless the mode option says
 * otherwise (the shm object and its metadata sidecar alike); shm names are
 * one path component of bounded length; metadata that a peer corrupts makes
 * calls fail with -EBADMSG, never crash the victim; a peer cannot shrink a
 * memfd object under the others' mappings; an unprivileged user cannot
 * open a 0600 object.
 *
 * Everything goes through the public API, except the hostile peer: it maps
 * the metadata area as any process with the descriptor (memfd) or the
 * sidecar's name (shm) can, and uses the layout of backends/fd/meta.h to aim.
 * (dax: objects do not exist in this version, so their O_NOFOLLOW option
 * is not tested here.)
 */
#include "common.h"

#include "smap.h" /* the layout the hostile peer aims at; nothing is called */

#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/stat.h>

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))

/*
 * Where the metadata lives in an object's descriptors: at 16 TiB, past the
 * largest file (IOM_META_OFF in backends/fd/meta.h). memfd keeps it in the object's
 * own descriptor, shm in the sidecar object "/NAME.iomem".
 */
#define HOSTILE_META_OFF ((off_t)1 << 44)
_Static_assert(HOSTILE_META_OFF == (off_t)IOM_META_OFF, "backends/fd/meta.h moved the metadata");

static bool on_shm(void)
{
        return !strcmp(test_backend(), "shm");
}

/* ---- modes ------------------------------------------------------------------ */

static mode_t mode_of_shm(const char *name)
{
        char path[PATH_MAX];
        snprintf(path, sizeof path, "/dev/shm/%s", name);
        struct stat st;
        ck_assert_msg(stat(path, &st) == 0, "%s: %s", path, strerror(errno));
        return st.st_mode & 07777;
}

/* Create shm:NAME with the given mode option (0: none); check both objects. */
static void check_created_mode(unsigned mode, mode_t want)
{
        char name[64], uri[80], side[80];
        snprintf(name, sizeof name, "iomem-sec-mode-%d-%o", (int)getpid(), mode);
        snprintf(uri, sizeof uri, "shm:%s", name);
        snprintf(side, sizeof side, "%s.iomem", name);
        struct iomem_opts *o;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        if (mode)
                ck_assert_int_eq(iomem_opts_set_mode(o, mode), 0);
        struct iomem *f;
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o), 0);
        iomem_opts_delete(&o);
        ck_assert_msg(mode_of_shm(name) == want, "object mode %o, expected %o", mode_of_shm(name), want);
        ck_assert_msg(mode_of_shm(side) == want, "sidecar mode %o, expected %o", mode_of_shm(side), want);
        iomem_close(&f);
        ck_assert_int_eq(iomem_unlink(uri), 0);
}

START_TEST(objects_are_private_unless_asked)
{
        mode_t old = umask(022);
        check_created_mode(0, 0600);
        check_created_mode(0640, 0640);
        check_created_mode(0604, 0604);
        umask(old);
}
END_TEST

/* ---- names ------------------------------------------------------------------- */

START_TEST(shm_names_are_one_bounded_component)
{
        static const char *const bad[] = {
                "shm:", "shm:/", "shm:.", "shm:..", "shm:/..", "shm:a/b", "shm:../etc/passwd",
                "shm://x", "shm:x/", "shm:x.iomem", "shm:/x.iomem", "shm:.iomem",
        };
        struct iomem *f = NULL;
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                int r = iomem_open(&f, bad[i], IOMEM_RDWR | IOMEM_CREATE, NULL);
                ck_assert_msg(r == -EINVAL, "%s: %d (%s)", bad[i], r, iomem_errormsg());
                ck_assert_ptr_null(f);
                ck_assert_msg(iomem_unlink(bad[i]) == -EINVAL, "unlink %s", bad[i]);
        }
        /* The longest name leaves room for the sidecar's suffix. */
        size_t longest = NAME_MAX - strlen(".iomem");
        char uri[4 + NAME_MAX + 16];
        int n = snprintf(uri, sizeof uri, "shm:iomem-sec-%d-", (int)getpid());
        memset(uri + n, 'L', 4 + longest - (size_t)n);
        uri[4 + longest] = 0;
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL), 0);
        iomem_close(&f);
        ck_assert_int_eq(iomem_unlink(uri), 0);
        uri[4 + longest] = 'L';
        uri[4 + longest + 1] = 0;
        ck_assert_err(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL), ENAMETOOLONG);
        ck_assert_ptr_null(f);
        ck_assert_err(iomem_unlink(uri), ENAMETOOLONG);
        memset(uri + 4, 'L', NAME_MAX + 10);
        uri[4 + NAME_MAX + 10] = 0;
        ck_assert_err(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL), ENAMETOOLONG);
}
END_TEST

/* ---- a hostile peer corrupts the metadata ---------------------------------------- */

struct victim {
        char uri[128];
        struct iomem *f;   /* the test's own handle */
        int keep_fd;       /* in the victim: the object's descriptor */
        struct iom_meta *m; /* the hostile peer's mapping */
        size_t span;
};

static void victim_open(struct victim *v)
{
        *v = (struct victim){ .keep_fd = -1 };
        snprintf(v->uri, sizeof v->uri, "%s", test_uri("sec"));
        struct iomem_opts *o;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_size(o, 4 * PAGE), 0);
        ck_assert_int_eq(iomem_open(&v->f, v->uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o), 0);
        iomem_opts_delete(&o);
        char data[4 * 4096];
        memset(data, 'v', sizeof data);
        ck_assert_int_eq(iomem_pwrite(v->f, data, 4 * PAGE, 0), (ssize_t)(4 * PAGE));
}

/* Map the metadata as a peer with the descriptor or the name can. */
static void peer_map(struct victim *v)
{
        int fd;
        if (on_shm()) {
                char side[160];
                snprintf(side, sizeof side, "/%s.iomem", v->uri + strlen("shm:"));
                fd = shm_open(side, O_RDWR, 0);
        } else {
                /* The metadata's descriptor comes along with the data's. */
                int fds[2];
                ck_assert_int_eq(test_sent_fds(v->f, fds, 2), 2);
                close(fds[0]);
                fd = fds[1];
        }
        ck_assert_int_ge(fd, 0);
        v->span = IOM_META_SPAN;
        v->m = mmap(NULL, v->span, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd,
                    HOSTILE_META_OFF);
        ck_assert_ptr_ne(v->m, MAP_FAILED);
        close(fd);
        ck_assert_uint_eq(v->m->magic, IOM_META_MAGIC); /* aimed right */
}

static void victim_close(struct victim *v)
{
        if (v->m)
                munmap(v->m, v->span);
        iomem_close(&v->f); /* must not crash either */
        if (on_shm())
                iomem_unlink(v->uri);
}

/* The calls a victim makes; which of them must see the corruption. */
enum { C_STAT, C_PREAD, C_PWRITE, C_ACQUIRE, C_BORROW, C_BUFCOUNT, C_TRUNCATE, C_GIFT,
       C_WRLOCK, C_RDLOCK, C_ALLOC, C_COUNT };
static const char *const call_name[C_COUNT] = {
        "stat", "pread", "pwrite", "acquire", "borrow", "bufcount", "truncate", "gift",
        "wrlock", "rdlock", "alloc",
};
#define ALL_CALLS ((1u << C_COUNT) - 1)
#define NEW_ATTACHMENT (1u << C_COUNT)

static long victim_call(struct iomem *g, int c)
{
        static char buf[8 * 4096];
        struct iovec v[8];
        struct iomem_stat st;
        void *p = NULL;
        switch (c) {
        case C_STAT: return iomem_stat(g, &st);
        case C_PREAD: return iomem_pread(g, buf, 4 * PAGE, 0);
        case C_PWRITE: return iomem_pwrite(g, buf, 2 * PAGE, PAGE);
        case C_ACQUIRE: return iomem_acquire(g, 0, 4 * PAGE);
        case C_BORROW: return iomem_borrow(g, 0, 4 * PAGE, v, 8);
        case C_BUFCOUNT: return iomem_bufcount(g, 0, 4 * PAGE);
        case C_TRUNCATE: return iomem_truncate(g, 0);
        case C_GIFT: {
                struct iovec gv = { buf, 2 * PAGE };
                return iomem_gift(g, 0, 2 * PAGE, &gv, 1, 0);
        }
        case C_WRLOCK: return iomem_wrlock(g);
        case C_RDLOCK: return iomem_rdlock(g);
        case C_ALLOC: {
                long r = iomem_alloc(g, PAGE, &p);
                if (r == 0)
                        iomem_free(g, p, PAGE);
                return r;
        }
        }
        return 0;
}

/* A second attachment (as another process makes it). */
static int attach(struct victim *v, struct iomem **g)
{
        if (on_shm())
                return iomem_open(g, v->uri, IOMEM_RDWR, NULL);
        int fd = dup(v->f ? iomem_fd(v->f) : v->keep_fd);
        int r = iomem_open_fd(g, "memfd", fd, IOMEM_RDWR, NULL);
        if (r)
                close(fd);
        return r;
}

/*
 * A victim process attaches (and maps the data), the peer corrupts the
 * metadata with scribble, then the victim makes one call, or attaches
 * anew (call == C_COUNT). Returns the victim's exit status: the call's
 * result as the low byte of -r, or 128 + signal when it crashed.
 */
static void bad_magic(struct iom_meta *m, size_t page);
static void reader_of_no_owner(struct iom_meta *m, size_t page);
static void free_range_into_metadata(struct iom_meta *m, size_t page);

static int one_call(void (*scribble)(struct iom_meta *m, size_t page), int call)
{
        struct victim v;
        victim_open(&v);
        peer_map(&v);
        int ready[2], go[2];
        ck_assert_int_eq(pipe(ready), 0);
        ck_assert_int_eq(pipe(go), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct iomem *g = NULL, *h = NULL;
                char buf[4096], c;
                if (attach(&v, &g) || iomem_pread(g, buf, sizeof buf, 0) != (ssize_t)sizeof buf)
                        _exit(100);
                /* The parent's handle and the peer's mapping came along with
                 * fork; the victim has only its own. (A new attachment dups
                 * the parent's descriptor, kept open for that.) */
                int keep = dup(iomem_fd(v.f));
                iomem_close(&v.f);
                munmap(v.m, v.span);
                v.f = NULL;
                v.keep_fd = keep;
                if (write(ready[1], "r", 1) != 1 || read(go[0], &c, 1) != 1)
                        _exit(101);
                long r = call < C_COUNT ? victim_call(g, call) : attach(&v, &h);
                if (r < 0 && r != -EBADMSG) /* perhaps allowed; the parent decides */
                        fprintf(stderr, "victim: %s: %ld %s\n",
                                call < C_COUNT ? call_name[call] : "attach", r, iomem_errormsg());
                iomem_close(&h);
                iomem_close(&g);
                _exit(r < 0 && r > -100 ? (int)-r : 0);
        }
        char c;
        ck_assert_int_eq(read(ready[0], &c, 1), 1);
        /* Records in the pin and reader tables for the scribbler to spoil:
         * this process's, which the victim does not hold. */
        ck_assert_int_eq(iomem_acquire(v.f, 0, PAGE), (ssize_t)PAGE);
        if (scribble == reader_of_no_owner)
                ck_assert_int_eq(iomem_rdlock(v.f), 0);
        if (scribble == free_range_into_metadata) { /* a free range in the gift pool */
                void *p;
                ck_assert_int_eq(iomem_alloc(v.f, PAGE, &p), 0);
                ck_assert_int_eq(iomem_free(v.f, p, PAGE), 0);
        }
        scribble(v.m, PAGE);
        ck_assert_int_eq(write(go[1], "g", 1), 1);
        int st = test_wait(pid);
        close(ready[0]);
        close(ready[1]);
        close(go[0]);
        close(go[1]);
        victim_close(&v);
        return st;
}

/*
 * For each call, in a fresh victim after a fresh corruption: the calls in
 * `must` fail with -EBADMSG (NEW_ATTACHMENT: a new attachment too); the
 * others may fail any way; none crashes.
 */
static void corrupt_and_call(void (*scribble)(struct iom_meta *m, size_t page), unsigned must)
{
        for (int i = 0; i <= C_COUNT; i++) {
                int st = one_call(scribble, i);
                const char *what = i < C_COUNT ? call_name[i] : "a new attachment";
                ck_assert_msg(st < 128, "%s: the victim was killed by signal %d", what, st - 128);
                /* shm: a sidecar without our magic is one whose making was
                 * cut short (the magic is written last): it is rebuilt. */
                if (i == C_COUNT && on_shm() && scribble == bad_magic && st == 0)
                        continue;
                if (must & (1u << i))
                        ck_assert_msg(st == EBADMSG, "%s: %s, not EBADMSG", what,
                                      st ? strerror(st) : "no error");
        }
}

/* The first record of a table, found as the peer can: through the
 * directory and the leaf it names. */
static struct iom_rec *first_rec(struct iom_meta *m, struct iom_smap *t)
{
        ck_assert_uint_ge(t->nleaves, 1);
        struct iom_smap_dirent *d = (struct iom_smap_dirent *)((char *)m + t->dir);
        struct iom_smap_leaf *l = (struct iom_smap_leaf *)((char *)m + d[0].leaf);
        ck_assert_uint_ge(l->n, 1);
        return &l->r[0];
}

static void bad_magic(struct iom_meta *m, size_t page)
{
        (void)page;
        m->magic ^= 0x5a5a;
}

static void bad_version(struct iom_meta *m, size_t page)
{
        (void)page;
        m->version = 0xdead;
}

static void huge_pin_count(struct iom_meta *m, size_t page)
{
        (void)page;
        m->pins.count = UINT64_MAX;
}

static void huge_reader_count(struct iom_meta *m, size_t page)
{
        (void)page;
        m->readers.nleaves = UINT64_C(1) << 30;
}

static void pool_directory_too_small(struct iom_meta *m, size_t page)
{
        (void)page;
        m->pool.nleaves = 2;
        m->pool.dir_cap = 1;
        m->pool.count = 3;
}

static void huge_extent_count(struct iom_meta *m, size_t page)
{
        (void)page;
        m->extents.count = 0x7fffffff;
}

static void huge_size(struct iom_meta *m, size_t page)
{
        (void)page;
        m->size = UINT64_MAX - 5;
}

/* A change in progress whose log is longer than the memory behind it. */
static void bad_undo_log(struct iom_meta *m, size_t page)
{
        (void)page;
        m->log_len = m->log_backed + 64;
}

static void heap_past_its_memory(struct iom_meta *m, size_t page)
{
        (void)page;
        m->heap_top = m->heap_backed + 4096;
}

static void bad_writer(struct iom_meta *m, size_t page)
{
        (void)page;
        m->writer_owner = 0x7ffffff0; /* no such owner */
}

START_TEST(a_corrupt_header_fails_every_call)
{
        corrupt_and_call(bad_magic, ALL_CALLS | NEW_ATTACHMENT);
        corrupt_and_call(bad_version, ALL_CALLS | NEW_ATTACHMENT);
        corrupt_and_call(huge_pin_count, ALL_CALLS | NEW_ATTACHMENT);
        corrupt_and_call(huge_reader_count, ALL_CALLS | NEW_ATTACHMENT);
        corrupt_and_call(pool_directory_too_small, ALL_CALLS | NEW_ATTACHMENT);
        corrupt_and_call(huge_extent_count, ALL_CALLS | NEW_ATTACHMENT);
        corrupt_and_call(huge_size, ALL_CALLS | NEW_ATTACHMENT);
        corrupt_and_call(bad_undo_log, ALL_CALLS | NEW_ATTACHMENT);
        corrupt_and_call(heap_past_its_memory, ALL_CALLS | NEW_ATTACHMENT);
        corrupt_and_call(bad_writer, ALL_CALLS | NEW_ATTACHMENT);
}
END_TEST

/* The file's first extent made to point at the metadata itself (a peer
 * that gets the victim to write there owns every process). */
static void extent_into_metadata(struct iom_meta *m, size_t page)
{
        first_rec(m, &m->extents)->ext.phys = IOM_META_OFF + page;
}

/* An extent past the end of all physical memory. */
static void extent_past_the_end(struct iom_meta *m, size_t page)
{
        (void)page;
        first_rec(m, &m->extents)->ext.phys = IOM_PHYS_END;
}

START_TEST(an_extent_out_of_place_is_refused)
{
        unsigned reads = 1u << C_PREAD | 1u << C_BORROW | 1u << C_BUFCOUNT | 1u << C_ACQUIRE;
        corrupt_and_call(extent_into_metadata, reads | NEW_ATTACHMENT);
        corrupt_and_call(extent_past_the_end, reads | NEW_ATTACHMENT);
}
END_TEST

/* Extents that do not tile the file: running past its end, or leaving a
 * gap at its start. */
static void extents_overlap(struct iom_meta *m, size_t page)
{
        first_rec(m, &m->extents)->ext.len = 64 * page;
}

static void extents_leave_a_gap(struct iom_meta *m, size_t page)
{
        struct iom_rec *r = first_rec(m, &m->extents);
        r->key = page;
        r->ext.len -= page;
}

START_TEST(an_extent_map_that_does_not_tile_is_refused)
{
        unsigned reads = 1u << C_PREAD | 1u << C_BORROW | 1u << C_BUFCOUNT;
        corrupt_and_call(extents_overlap, reads | NEW_ATTACHMENT);
        corrupt_and_call(extents_leave_a_gap, reads | NEW_ATTACHMENT);
}
END_TEST

/* A pin (or a reader) whose owner is not in the owner table: the first
 * pin or reader record is given to an owner that does not exist. */
static void pin_of_no_owner(struct iom_meta *m, size_t page)
{
        (void)page;
        struct iom_rec *r = first_rec(m, &m->pins);
        r->pin.owner = 0x7ffffff0;
        r->key = (uint64_t)0x7ffffff0 << 32;
}

static void reader_of_no_owner(struct iom_meta *m, size_t page)
{
        (void)page;
        first_rec(m, &m->readers)->key = (uint64_t)0x7ffffff0 << 32 | 1;
}

START_TEST(an_entry_of_no_owner_is_reaped)
{
        /* Entries of an owner that is not there hold nothing: calls may
         * succeed (a writer waits for no such reader), none crashes. */
        corrupt_and_call(pin_of_no_owner, 0);
        corrupt_and_call(reader_of_no_owner, 0);
}
END_TEST

/* A free range of the gift pool made to lie over the metadata: a buffer
 * cut from it would be the metadata, zeroed by the victim. */
static void free_range_into_metadata(struct iom_meta *m, size_t page)
{
        first_rec(m, &m->pool_free)->key = IOM_META_OFF + page;
}

START_TEST(a_free_range_out_of_the_pool_is_refused)
{
        corrupt_and_call(free_range_into_metadata, 1u << C_ALLOC);
}
END_TEST

/* ---- memfd: no peer can resize the metadata; the data is the object's size -- */

START_TEST(a_peer_cannot_resize_a_memfd_objects_metadata)
{
        struct victim v;
        victim_open(&v);
        int fds[2];
        ck_assert_int_eq(test_sent_fds(v.f, fds, 2), 2);
        /* The data descriptor is as large as the object, no larger. */
        struct stat st;
        ck_assert_int_eq(fstat(fds[0], &st), 0);
        ck_assert_int_eq(st.st_size, 4 * PAGE);
        /* The metadata's is sealed at its fixed span. */
        int twin = fds[1];
        ck_assert_int_eq(fstat(twin, &st), 0);
        errno = 0;
        ck_assert_int_eq(ftruncate(twin, 0), -1);
        ck_assert_int_eq(errno, EPERM);
        ck_assert_int_eq(ftruncate(twin, st.st_size - 4096), -1);
        ck_assert_int_eq(errno, EPERM);
        ck_assert_int_eq(ftruncate(twin, st.st_size + 4096), -1);
        ck_assert_int_eq(errno, EPERM);
        /* Nor punch its way around: the seals hold for fallocate too. */
        ck_assert_int_eq(fallocate(twin, 0, st.st_size, 4096), -1);
        ck_assert_int_eq(errno, EPERM);
        int seals = fcntl(twin, F_GET_SEALS);
        ck_assert_int_eq(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL),
                         F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
        close(twin);
        /* A peer's handle of the data descriptor sees the same bytes. */
        struct iomem *g = NULL;
        ck_assert_int_eq(iomem_open_fd(&g, "memfd", fds[0], IOMEM_RDWR, NULL), 0);
        char out[4];
        ck_assert_int_eq(iomem_pread(g, out, 4, 4 * PAGE - 4), 4);
        ck_assert_int_eq(memcmp(out, "vvvv", 4), 0);
        iomem_close(&g);
        victim_close(&v);
}
END_TEST

/* ---- an unprivileged user ------------------------------------------------------ */


/* In a process running as nobody: iomem_open(uri, flags) and, when asked,
 * iomem_unlink(uri); their results. */
struct as_nobody {
        int open, unlink;
};

static struct as_nobody as_nobody(struct iomem *owner, const char *uri, unsigned flags, bool unlink)
{
        int p[2];
        ck_assert_int_eq(pipe(p), 0);
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct as_nobody r = { 0, 0 };
                iomem_close(&owner); /* inherited: not nobody's */
                if (test_become_nobody()) {
                        fprintf(stderr, "cannot become nobody: %s\n", strerror(errno));
                        _exit(2);
                }
                struct iomem *f = NULL;
                r.open = iomem_open(&f, uri, flags, NULL);
                if (!r.open) {
                        char c = 0;
                        if (iomem_pread(f, &c, 1, 0) != 1 || c != 'v')
                                r.open = 1; /* opened, but not the object */
                }
                iomem_close(&f);
                if (unlink)
                        r.unlink = iomem_unlink(uri);
                _exit(write(p[1], &r, sizeof r) == sizeof r ? 0 : 3);
        }
        struct as_nobody r;
        ck_assert_int_eq(test_wait(pid), 0);
        ck_assert_int_eq(read(p[0], &r, sizeof r), (ssize_t)sizeof r);
        close(p[0]);
        close(p[1]);
        return r;
}

START_TEST(nobody_cannot_open_a_private_object)
{
        char uri[96];
        snprintf(uri, sizeof uri, "shm:iomem-sec-nobody-%d", (int)getpid());
        struct iomem *f;
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL), 0);
        ck_assert_int_eq(iomem_pwrite(f, "v", 1, 0), 1);
        /* 0600: not for reading, not for writing, nor to remove it. */
        ck_assert_int_eq(as_nobody(f, uri, IOMEM_RDONLY, false).open, -EACCES);
        struct as_nobody r = as_nobody(f, uri, IOMEM_RDWR, true);
        ck_assert_int_eq(r.open, -EACCES);
        ck_assert_msg(r.unlink == -EPERM || r.unlink == -EACCES, "unlink gave %d", r.unlink);
        char out = 0;
        ck_assert_int_eq(iomem_pread(f, &out, 1, 0), 1); /* still there */
        ck_assert_int_eq(out, 'v');
        iomem_close(&f);
        ck_assert_int_eq(iomem_unlink(uri), 0);

        /* The control: what the owner shares (0644), nobody can read. */
        struct iomem_opts *o;
        ck_assert_int_eq(iomem_opts_new(&o), 0);
        ck_assert_int_eq(iomem_opts_set_mode(o, 0644), 0);
        mode_t old = umask(022);
        ck_assert_int_eq(iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o), 0);
        umask(old);
        iomem_opts_delete(&o);
        ck_assert_int_eq(iomem_pwrite(f, "v", 1, 0), 1);
        ck_assert_int_eq(as_nobody(f, uri, IOMEM_RDONLY, false).open, 0);
        ck_assert_int_eq(as_nobody(f, uri, IOMEM_RDWR, false).open, -EACCES);
        iomem_close(&f);
        ck_assert_int_eq(iomem_unlink(uri), 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("security");
        TCase *tc = tcase_create(test_backend());
        tcase_set_timeout(tc, 120);
        /* IOMEM_SECURITY_PART=nobody: only the test that needs root. */
        const char *part = getenv("IOMEM_SECURITY_PART");
        if (part && !strcmp(part, "nobody")) {
                if (geteuid() != 0) {
                        printf("SKIP: becoming the user nobody needs root\n");
                        return TEST_SKIP;
                }
                if (!getpwnam("nobody")) {
                        printf("SKIP: there is no user nobody\n");
                        return TEST_SKIP;
                }
                tcase_add_test(tc, nobody_cannot_open_a_private_object);
        } else if (on_shm()) {
                tcase_add_test(tc, objects_are_private_unless_asked);
                tcase_add_test(tc, shm_names_are_one_bounded_component);
        } else {
                tcase_add_test(tc, a_peer_cannot_resize_a_memfd_objects_metadata);
        }
        if (!part) {
                tcase_add_test(tc, a_corrupt_header_fails_every_call);
                tcase_add_test(tc, an_extent_out_of_place_is_refused);
                tcase_add_test(tc, an_extent_map_that_does_not_tile_is_refused);
                tcase_add_test(tc, an_entry_of_no_owner_is_reaped);
                tcase_add_test(tc, a_free_range_out_of_the_pool_is_refused);
        }
        suite_add_tcase(s, tc);
        return test_run(s);
}
