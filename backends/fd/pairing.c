/* SPDX-License-Identifier: MIT */
/*
 * A data descriptor and its metadata twin (pairing.h): the test that a
 * twin describes a data file, the data file's mark, and the attach of
 * descriptors a caller passed, for shm and memfd alike.
 */
#include "pairing.h"
#include "fdmem.h"
#include "meta.h"
#include "syscalls.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The mark: a user extended attribute naming the twin. Filesystems
 * without user attributes (hugetlbfs; tmpfs before Linux 6.6) take none,
 * and such descriptors attach with private metadata as libiomem(7) says;
 * on a platform with no extended attributes at all, a descriptor alone
 * is refused unless a handle of this process holds its twin. */
#define PAIR_XATTR "user.iomem.sidecar"

/* As iom_pair_describes, and -EBADMSG for metadata that names the data
 * file but is not valid (spoilt by a peer). */
static int twin_state(int meta_fd, uint64_t ino)
{
        struct iom_meta head;
        size_t n = offsetof(struct iom_meta, seals);
        ssize_t r = iom_sys.pread(meta_fd, &head, n, (off_t)IOM_META_OFF);
        if (r < 0)
                return -errno;
        if (r != (ssize_t)n || head.data_ino != ino)
                return 0;
        return head.magic == IOM_META_MAGIC ? 1 : -EBADMSG;
}

int iom_pair_describes(int meta_fd, uint64_t ino)
{
        int r = twin_state(meta_fd, ino);
        return r == -EBADMSG ? 0 : r;
}

int iom_pair_check_access(struct iomem *f, int fd, unsigned flags)
{
        int mode = iom_sys.fcntl(fd, F_GETFL, 0) & O_ACCMODE;
        if (mode == O_WRONLY)
                return iom_fail(f->name, -EACCES, "fd %d is open write-only; mapping needs read access", fd);
        if ((flags & IOMEM_RDWR) && mode == O_RDONLY)
                return iom_fail(f->name, -EACCES, "fd %d is open read-only", fd);
        return 0;
}

void iom_pair_mark(struct iomem *f, const char *twin)
{
        if (iom_xattr_set(f->data_fd, PAIR_XATTR, twin, strlen(twin)) < 0)
                iom_debug("%s: cannot mark its data file (%s); a descriptor of it alone, out of "
                          "reach of its metadata, attaches with private metadata",
                          f->name, strerror(errno));
}

/* ---- the twins this process holds ------------------------------------------ */

/* Where the platform cannot list this process's descriptors, the handles
 * attached to a twin keep a descriptor of it here, by their data file's
 * device and inode, so that a descriptor of the data file alone finds
 * the twin another handle of this process holds. */
struct held_twin {
        const struct iomem *f;
        dev_t dev;
        ino_t ino;
        int fd;
};
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t held_once = PTHREAD_ONCE_INIT;
static struct held_twin *held;
static size_t nheld, held_cap;

/* Held across fork, so that the child's copy of the list is whole. */
static void held_lock_take(void)
{
        pthread_mutex_lock(&held_lock);
}

static void held_lock_give(void)
{
        pthread_mutex_unlock(&held_lock);
}

static void held_init(void)
{
        pthread_atfork(held_lock_take, held_lock_give, held_lock_give);
}

int iom_pair_hold(struct iomem *f)
{
        struct stat st;
        if (iom_platform_lists_files)
                return 0;
        if (iom_sys.fstat(f->data_fd, &st) < 0)
                return iom_fail(f->name, -errno, "fstat: %s", strerror(errno));
        int fd = fcntl(fdo(f)->aux_fd, F_DUPFD_CLOEXEC, 0);
        if (fd < 0)
                return iom_fail(f->name, -errno, "a descriptor of its metadata: %s", strerror(errno));
        pthread_once(&held_once, held_init);
        pthread_mutex_lock(&held_lock);
        if (nheld == held_cap) {
                size_t cap = held_cap ? 2 * held_cap : 16;
                struct held_twin *v = realloc(held, cap * sizeof *v);
                if (!v) {
                        pthread_mutex_unlock(&held_lock);
                        close(fd);
                        return iom_fail(f->name, -ENOMEM, "out of memory");
                }
                held = v;
                held_cap = cap;
        }
        held[nheld++] = (struct held_twin){ .f = f, .dev = st.st_dev, .ino = st.st_ino, .fd = fd };
        pthread_mutex_unlock(&held_lock);
        return 0;
}

void iom_pair_drop(const struct iomem *f)
{
        pthread_mutex_lock(&held_lock);
        for (size_t i = 0; i < nheld; i++) {
                if (held[i].f != f)
                        continue;
                close(held[i].fd);
                held[i] = held[--nheld];
                break;
        }
        if (!nheld) {
                free(held);
                held = NULL;
                held_cap = 0;
        }
        pthread_mutex_unlock(&held_lock);
}

/* A new descriptor of the twin a handle of this process holds for the
 * data file (dev, ino); -ENOENT when none does. */
static int twin_held(dev_t dev, uint64_t ino)
{
        int found = -ENOENT;
        pthread_mutex_lock(&held_lock);
        for (size_t i = 0; i < nheld && found == -ENOENT; i++)
                if (held[i].dev == dev && (uint64_t)held[i].ino == ino &&
                    twin_state(held[i].fd, ino) == 1) {
                        int fd = fcntl(held[i].fd, F_DUPFD_CLOEXEC, 0);
                        found = fd < 0 ? -errno : fd;
                }
        pthread_mutex_unlock(&held_lock);
        return found;
}

/* What twin_in_process looks for, and what it found. */
struct twin_search {
        dev_t dev;
        uint64_t ino;
        int found; /* a descriptor, -ENOENT, or -errno */
};

static int twin_candidate(const char *path, void *arg)
{
        struct twin_search *t = arg;
        /* A twin lives beside its data file, on its device. */
        struct stat st;
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return 0; /* not ours to write: not a twin of ours */
        int r = iom_sys.fstat(fd, &st) < 0 ? -errno
                : S_ISREG(st.st_mode) && st.st_dev == t->dev ? twin_state(fd, t->ino) : 0;
        if (r == 1) {
                t->found = fd;
                return 1;
        }
        close(fd);
        if (r < 0)
                t->found = r;
        return r < 0;
}

/* The twin of the data file with inode ino on device dev, among the
 * descriptors this process has open (another handle of the object, whose
 * name may be gone or which never had one): a new descriptor of it,
 * -ENOENT when there is none, -errno when a candidate cannot be read. */
static int twin_in_process(dev_t dev, uint64_t ino)
{
        if (!iom_platform_lists_files)
                return twin_held(dev, ino);
        struct twin_search t = { .dev = dev, .ino = ino, .found = -ENOENT };
        int r = iom_each_open_file(IOM_PAIR_SUFFIX, twin_candidate, &t);
        return r < 0 ? r : t.found;
}

int iom_pair_open_fds(struct iomem *f, const int *fds, int nfds, int found, int why,
                      const struct iomem_opts *o)
{
        struct iom_fdobj *obj = fdo(f);
        struct stat st;
        if (iom_sys.fstat(fds[0], &st) < 0) {
                if (found >= 0)
                        close(found);
                f->data_fd = -1;
                return iom_fail(f->name, -errno, "fstat: %s", strerror(errno));
        }
        int sfd = nfds == 2 ? fds[1] : found;
        bool own_sfd = nfds != 2 && found >= 0;
        int ours = sfd >= 0 ? iom_pair_describes(sfd, (uint64_t)st.st_ino) : 0;
        if (ours < 0)
                why = ours;
        if (nfds == 1 && ours != 1) {
                int held = twin_in_process(st.st_dev, (uint64_t)st.st_ino);
                if (held < 0 && held != -ENOENT)
                        why = held;
                if (held >= 0) {
                        if (own_sfd)
                                close(sfd);
                        sfd = held;
                        own_sfd = true;
                        ours = 1;
                }
        }
        int err;
        if (ours == 1) {
                obj->aux_fd = sfd;
                err = iom_fdmem_attach(f, IOM_ATTACH_SHARED, o);
        } else {
                if (own_sfd)
                        close(sfd);
                own_sfd = false;
                char marked[NAME_MAX + 2];
                ssize_t k = nfds == 2 ? -1 : iom_xattr_get(fds[0], PAIR_XATTR, marked, sizeof marked - 1);
                if (k > 0)
                        marked[k] = 0;
                /* A platform without extended attributes cannot mark the
                 * data file: any descriptor alone may be one of ours,
                 * whose pins a private attach would miss. */
                bool unknowable = k < 0 && errno == ENOSYS;
                if (unknowable)
                        snprintf(marked, sizeof marked, "%s", "(unmarked: this platform has no extended attributes)");
                err = nfds == 2 ? iom_fail(f->name, -EBADMSG, "its metadata descriptor does not describe it")
                      : k > 0 && why ? iom_fail(f->name, why, "cannot open or read its metadata %s: %s",
                                                marked, strerror(-why))
                      : k > 0 || unknowable ? iom_fail(f->name, -ENOENT,
                                         "its metadata %s cannot be found from this descriptor alone, "
                                         "and without it the pins, lock and gifted bytes of the other "
                                         "processes are out of reach; pass both descriptors "
                                         "(iomem_send), or open the object by its name if it has one",
                                         marked)
                              : iom_fdmem_attach(f, IOM_ATTACH_PRIVATE, o);
        }
        if (err) {
                if (!own_sfd)
                        obj->aux_fd = -1;
                f->data_fd = -1; /* the caller keeps what it passed */
                iom_fdmem_close(f);
        }
        return err;
}
