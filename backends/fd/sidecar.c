/* SPDX-License-Identifier: MIT */
/*
 * Sidecars: the engine's metadata alone in a /dev/shm object, for objects
 * whose bytes live elsewhere (sidecar.h).
 *
 * Opening and leaving both hold an flock on the sidecar, so that one
 * opener builds it while the others wait, and a transient sidecar is
 * removed only while no opener stands between finding it and registering:
 * an opener that finds the sidecar it locked removed (no links left) opens
 * the name again.
 */
#include "sidecar.h"
#include "fdmem.h"
#include "syscalls.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- physical offsets: the metadata only -------------------------------- */

static void *sidecar_map(struct iomem *f, void *hint, uint64_t phys, uint64_t len, int prot,
                         int flags)
{
        (void)hint;
        if (phys < IOM_META_OFF) { /* the bytes are not the engine's to map */
                errno = EINVAL;
                return MAP_FAILED;
        }
        return iom_sys.mmap(NULL, len, prot, MAP_SHARED | flags, fdo(f)->aux_fd,
                            (off_t)(phys - IOM_META_OFF));
}

static void sidecar_unmap(struct iomem *f, void *va, uint64_t len)
{
        (void)f;
        iom_sys.munmap(va, len);
}

static int sidecar_back(struct iomem *f, uint64_t phys, uint64_t len)
{
        if (phys >= IOM_META_OFF &&
            iom_sys.fallocate(fdo(f)->aux_fd, 0, (off_t)(phys - IOM_META_OFF), (off_t)len) == 0)
                return 0;
        int e = phys >= IOM_META_OFF ? errno : EINVAL;
        return iom_fail(f->name, -e, "cannot back its metadata in /dev/shm: %s", strerror(e));
}

/* Nothing of the sidecar is ever freed but with the sidecar. */
static void sidecar_punch(struct iomem *f, uint64_t phys, uint64_t len)
{
        (void)f, (void)phys, (void)len;
}

const struct iom_phys_ops iom_phys_sidecar = {
        .map = sidecar_map,
        .unmap = sidecar_unmap,
        .back = sidecar_back,
        .punch = sidecar_punch,
};

/* ---- attaching ----------------------------------------------------------- */

static int sidecar_fail(struct iomem *f, const struct iom_sidecar *s, const char *what)
{
        int e = errno;
        return iom_fail(f->name, -e, "%s its shared state /dev/shm%s: %s", what, s->name,
                        strerror(e));
}

/* Does the sidecar at sfd describe the object? 1 yes; 0 it was never
 * finished (its magic, written last, is not there: to be made anew);
 * -EPROTO it is one of ours for something else (another version of the
 * library, another page size or object), which may be in use and is left
 * alone; -errno when it cannot be read. Only what never changes once a
 * sidecar is made is read, so that a live one, changing as this reads it,
 * is never taken for a stranger; the rest is checked under its lock. */
static int describes(struct iomem *f, const struct iom_sidecar *s, int sfd)
{
        struct iom_meta *m = malloc(sizeof *m);
        if (!m)
                return -ENOMEM;
        ssize_t n = iom_sys.pread(sfd, m, sizeof *m, 0);
        int r = n < 0 ? -errno : n == (ssize_t)sizeof *m && m->magic == IOM_META_MAGIC;
        if (r == 1 && (m->version != IOM_META_VERSION || m->page_size != f->page_size ||
                       m->span != IOM_META_SPAN || !s->describes(m, s->id)))
                r = -EPROTO;
        free(m);
        return r;
}

/* The sidecar by name, locked: one that a leaving owner removed after we
 * opened it is opened again. A new one gets the mode asked for, whatever
 * the umask. */
static int open_locked(struct iomem *f, const struct iom_sidecar *s, int *out)
{
        for (;;) {
                int sfd = iom_sys.shm_open(s->name, O_RDWR | O_CREAT | O_EXCL, s->mode);
                bool made = sfd >= 0;
                if (!made && errno == EEXIST)
                        sfd = iom_sys.shm_open(s->name, O_RDWR, 0);
                if (sfd < 0 && errno == ENOENT)
                        continue; /* removed between the two opens */
                if (sfd < 0)
                        return sidecar_fail(f, s, "cannot open");
                struct stat st;
                int err = 0;
                if (made && fchmod(sfd, s->mode) < 0)
                        err = sidecar_fail(f, s, "cannot set the mode of");
                else if (iom_sys.flock(sfd, LOCK_EX) < 0)
                        err = sidecar_fail(f, s, "cannot lock");
                else if (iom_sys.fstat(sfd, &st) < 0)
                        err = sidecar_fail(f, s, "cannot stat");
                if (err || st.st_nlink == 0) {
                        close(sfd);
                        if (err)
                                return err;
                        continue;
                }
                *out = sfd;
                return 0;
        }
}

/* Unregister f's owner (the sidecar locked by name, or not transient);
 * remove a transient sidecar no live owner is left in. */
static void unregister_locked(struct iomem *f, const struct iom_sidecar *s, bool locked)
{
        struct iom_fdobj *obj = fdo(f);
        if (obj->owner == IOM_NO_OWNER || iom_meta_lock(f))
                return;
        iom_owner_unregister(f);
        obj->owner = IOM_NO_OWNER;
        /* Processes that died with it open (a forked child that exited
         * without closing) own nothing any more. */
        if (locked && !iom_owner_any_alive(f))
                iom_sys.shm_unlink(s->name);
        iom_meta_unlock(f);
}

/* Forget a sidecar this handle found broken: its mapping and descriptor
 * (which holds the flock), before the name is made anew. */
static void drop_broken(struct iomem *f)
{
        struct iom_fdobj *obj = fdo(f);
        if (obj->meta)
                obj->phys->unmap(f, obj->meta, obj->meta_map_len);
        close(obj->aux_fd);
        obj->meta = NULL;
        obj->aux_fd = -1;
}

int iom_sidecar_attach(struct iomem *f, const struct iom_sidecar *s, int sfd,
                       const struct iomem_opts *o)
{
        struct iom_fdobj *obj = fdo(f);
        bool named = sfd < 0, replaced = false;
        int err;
again:
        if (named && (err = open_locked(f, s, &sfd)))
                return err;
        obj->aux_fd = sfd;
        int ours = describes(f, s, sfd);
        struct iomem_opts sized_elsewhere = *o;
        sized_elsewhere.size = 0; /* the bytes' own size is the object's */
        bool made = false;
        if (ours == -EPROTO) {
                err = iom_fail(f->name, -EBADMSG, "its shared state /dev/shm%s was made by another "
                               "version of the library or for another object (remove it if no "
                               "process uses it)", s->name);
        } else if (ours < 0) {
                errno = -ours;
                err = sidecar_fail(f, s, "cannot read");
        } else if (ours) {
                err = iom_fdmem_attach(f, IOM_ATTACH_SHARED, o);
                /* A transient sidecar that does not hold together and
                 * that no live process is seen to use (one a process that
                 * died mid-change left for a file whose inode was reused
                 * since, say) is removed and made anew, once. One in use
                 * stays, and opening fails: a new one beside it would let
                 * this process cut pages its users pin. */
                if (err == -EBADMSG && named && s->transient && !replaced && obj->meta &&
                    !iom_owner_any_seen_alive(f)) {
                        iom_debug("%s: /dev/shm%s is broken: making it anew", f->name, s->name);
                        iom_sys.shm_unlink(s->name);
                        drop_broken(f);
                        replaced = true;
                        goto again;
                }
        } else if (!named) {
                err = iom_fail(f->name, -EBADMSG, "the descriptor passed with it is not its "
                               "shared state");
        } else if (iom_sys.ftruncate(sfd, (off_t)IOM_META_SPAN) < 0) {
                err = sidecar_fail(f, s, "cannot size");
        } else {
                made = true;
                if (!(err = iom_fdmem_attach(f, IOM_ATTACH_NEW, &sized_elsewhere)))
                        err = s->build(f, s->id);
        }
        /* A failure leaves no owner and, where it made the sidecar, no
         * sidecar: both before another opener can look. */
        if (err && named) {
                unregister_locked(f, s, s->transient);
                if (made && obj->owner == IOM_NO_OWNER)
                        iom_sys.shm_unlink(s->name);
        }
        if (named)
                iom_sys.flock(sfd, LOCK_UN);
        return err;
}

/* Lock the sidecar through a descriptor of our own (an flock is the open
 * file's, which a handle inherited across fork shares with its parent's),
 * if the name still is the sidecar at aux_fd: -1 when it is not. */
static int lock_by_name(struct iomem *f, const struct iom_sidecar *s)
{
        struct stat mine, named;
        int fd = iom_sys.shm_open(s->name, O_RDWR, 0);
        if (fd < 0)
                return -1;
        if (iom_sys.flock(fd, LOCK_EX) < 0 || iom_sys.fstat(fd, &named) < 0 ||
            iom_sys.fstat(fdo(f)->aux_fd, &mine) < 0 || named.st_ino != mine.st_ino ||
            named.st_dev != mine.st_dev) {
                close(fd);
                return -1;
        }
        return fd;
}

void iom_sidecar_leave(struct iomem *f, const struct iom_sidecar *s)
{
        struct iom_fdobj *obj = fdo(f);
        /* A handle inherited across fork holds nothing in the child. */
        if (!obj->meta || obj->owner == IOM_NO_OWNER || f->fork_gen != iom_fork_generation())
                return;
        int lock = s->transient ? lock_by_name(f, s) : -1;
        unregister_locked(f, s, lock >= 0);
        if (lock >= 0)
                close(lock);
}

int iom_sidecar_after_fork(struct iomem *f, const struct iom_sidecar *s)
{
        struct iom_fdobj *obj = fdo(f);
        /* The parent's mapping and descriptor, and its owner: not ours. */
        if (obj->meta)
                obj->phys->unmap(f, obj->meta, obj->meta_map_len);
        if (obj->aux_fd >= 0)
                close(obj->aux_fd);
        obj->meta = NULL;
        obj->aux_fd = -1;
        obj->owner = IOM_NO_OWNER;
        struct iomem_opts o = { .numa_policy = IOMEM_NUMA_DEFAULT, .wired = obj->wired };
        return iom_sidecar_attach(f, s, -1, &o);
}
