/* SPDX-License-Identifier: MIT */
/*
 * shm: POSIX shared memory objects, attached by name. The named object
 * holds exactly the file's bytes, so other programs can open it too; the
 * metadata and gift pool live in a sidecar object "NAME.iomem" that
 * every libiomem process maps. The first process to open the object
 * builds the sidecar under an flock, so openers never see it half made.
 *
 * Objects in huge pages live in a hugetlbfs mount instead of /dev/shm (the
 * pair of files alike, so the pool's pages are as large as the file's);
 * an opener that does not ask for huge pages finds them there by name.
 */
#include "config.h"
#include "fdmem.h"
#include "pairing.h"
#include "syscalls.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIDECAR_SUFFIX IOM_PAIR_SUFFIX
#define SHM_CAPS (IOMEM_CAP_NAMED | IOMEM_CAP_FDPASS | IOMEM_CAP_GIFT | IOMEM_CAP_RESIZE | \
                  IOMEM_CAP_HUGEPAGE | IOMEM_CAP_SHARED | IOMEM_CAP_RESERVED | (IOMEM_HAVE_NUMA ? IOMEM_CAP_NUMA : 0))
#define MAX_HUGETLBFS 8 /* mounts looked at */

static int shm_probe(const char **why)
{
        /* POSIX keeps shm objects out of the file tree: nothing to look at. */
        const char *dir = iom_shm_dir();
        struct iom_fsinfo sf;
        if (!dir || iom_sys.statfs(dir, &sf) == 0)
                return 1;
        *why = "/dev/shm is not mounted (POSIX shared memory needs a tmpfs there)";
        return 0;
}

/* "shm:REST", naming an object in messages before one is opened. */
static const char *uri_of(const char *rest)
{
        static _Thread_local char uri[NAME_MAX + 16];
        snprintf(uri, sizeof uri, "shm:%s", rest);
        return uri;
}

/* "/NAME" and "/NAME.iomem" for a name given as NAME or /NAME. */
static int shm_names(const char *rest, char data[NAME_MAX + 2], char side[NAME_MAX + 2])
{
        const char *name = rest[0] == '/' ? rest + 1 : rest;
        size_t len = strlen(name), sl = strlen(SIDECAR_SUFFIX);
        if (!len || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
                return iom_fail(uri_of(rest), -EINVAL,
                                "a shm name is one path component (not empty, \".\" or \"..\")");
        if (len > NAME_MAX - sl)
                return iom_fail(uri_of(rest), -ENAMETOOLONG, "a shm name has at most %zu bytes",
                                (size_t)NAME_MAX - sl);
        if (len >= sl && !strcmp(name + len - sl, SIDECAR_SUFFIX))
                return iom_fail(uri_of(rest), -EINVAL,
                                "names ending in \"%s\" are reserved for metadata", SIDECAR_SUFFIX);
        snprintf(data, NAME_MAX + 2, "/%s", name);
        snprintf(side, NAME_MAX + 2, "/%s%s", name, SIDECAR_SUFFIX);
        return 0;
}

/* ---- where the files live ----------------------------------------------------- */

/* shm_open's own place (dir: where its objects are files, or "" where
 * they are not), or a hugetlbfs mount (huge, reached with open). */
struct place {
        char dir[PATH_MAX];
        bool huge;
};

static int place_path(const struct place *p, const char *name, char *path, size_t cap)
{
        if ((size_t)snprintf(path, cap, "%s%s", p->dir, name) < cap)
                return 0;
        errno = ENAMETOOLONG;
        return -1;
}

static int place_open(const struct place *p, const char *name, int oflag, mode_t mode)
{
        char path[PATH_MAX + NAME_MAX + 2];
        if (!p->huge)
                return iom_sys.shm_open(name, oflag, mode);
        if (place_path(p, name, path, sizeof path))
                return -1;
        /* As shm_open does: never through a link, never inherited. */
        return iom_sys.open(path, oflag | O_NOFOLLOW | O_CLOEXEC, mode);
}

static int place_unlink(const struct place *p, const char *name)
{
        char path[PATH_MAX + NAME_MAX + 2];
        if (!p->huge)
                return iom_sys.shm_unlink(name);
        return place_path(p, name, path, sizeof path) ? -1 : iom_sys.unlink(path);
}

static bool place_has(const struct place *p, const char *name)
{
        char path[PATH_MAX + NAME_MAX + 2];
        struct stat st;
        return place_path(p, name, path, sizeof path) == 0 && lstat(path, &st) == 0;
}

/* shm_open's place. */
static struct place shm_place(void)
{
        struct place at = { .huge = false };
        const char *dir = iom_shm_dir();
        snprintf(at.dir, sizeof at.dir, "%s", dir ? dir : "");
        return at;
}

/* Undo the octal escapes (\040 for a space) of a mountinfo field. */
static void unescape(char *s)
{
        char *out = s;
        for (; *s; s++) {
                unsigned v;
                if (s[0] == '\\' && sscanf(s + 1, "%3o", &v) == 1 && s[1] && s[2] && s[3]) {
                        *out++ = (char)v;
                        s += 3;
                } else {
                        *out++ = *s;
                }
        }
        *out = 0;
}

/* The hugetlbfs mounts of this process (at most max), with their page
 * sizes in page[]; returns how many. */
static size_t hugetlbfs_mounts(struct place *v, size_t *page, size_t max)
{
        const char *table = iom_mountinfo_path();
        FILE *fp = table ? fopen(table, "re") : NULL;
        char line[PATH_MAX + 512];
        size_t n = 0;
        while (fp && n < max && fgets(line, sizeof line, fp)) {
                /* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [TAGS...] - TYPE ... */
                char mnt[PATH_MAX];
                const char *sep = strstr(line, " - ");
                struct iom_fsinfo sf;
                if (!sep || strncmp(sep + 3, "hugetlbfs ", 10) ||
                    sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
                        continue;
                unescape(mnt);
                if (iom_sys.statfs(mnt, &sf) || sf.kind != IOM_FS_HUGETLBFS)
                        continue;
                snprintf(v[n].dir, sizeof v[n].dir, "%s", mnt);
                v[n].huge = true;
                page[n++] = (size_t)sf.block_size;
        }
        if (fp)
                fclose(fp);
        return n;
}

/* Where an object in pages of this size is made: the first hugetlbfs
 * mount of that size this process may write. */
static int place_for_pages(struct iomem *f, size_t page_size, struct place *out)
{
        if (!iom_platform_huge_pages)
                return iom_fail(f->name, -ENOTSUP, "huge pages for shm objects need hugetlbfs, "
                                "which this platform (%s) has not", iom_platform_name);
        struct place v[MAX_HUGETLBFS];
        size_t page[MAX_HUGETLBFS], n = hugetlbfs_mounts(v, page, MAX_HUGETLBFS);
        for (size_t i = 0; i < n; i++) {
                if (page[i] == page_size && access(v[i].dir, W_OK | X_OK) == 0) {
                        *out = v[i];
                        return 0;
                }
        }
        return iom_fail(f->name, -ENODEV,
                        "huge pages of %zu KiB for shm objects need a hugetlbfs mount of that page "
                        "size this process can write, and the mount table lists none "
                        "(mount -t hugetlbfs -o pagesize=%zuK none /dev/hugepages)",
                        page_size >> 10, page_size >> 10);
}

/* Where an object that exists is: shm_open's place, else the hugetlbfs
 * mount that has it; shm_open's when none has it. */
static struct place place_of(const char *name)
{
        struct place at = shm_place();
        if (at.dir[0] && place_has(&at, name))
                return at;
        struct place v[MAX_HUGETLBFS];
        size_t page[MAX_HUGETLBFS], n = hugetlbfs_mounts(v, page, MAX_HUGETLBFS);
        for (size_t i = 0; i < n; i++)
                if (place_has(&v[i], name))
                        return v[i];
        return at;
}

static int open_data(const struct place *at, const char *name, unsigned flags, mode_t mode,
                     bool *created)
{
        int oflag = flags & IOMEM_RDWR ? O_RDWR : O_RDONLY;
        *created = false;
        for (int tries = 0; tries < 8; tries++) {
                int fd;
                if (flags & IOMEM_CREATE) {
                        fd = place_open(at, name, oflag | O_CREAT | O_EXCL, mode);
                        if (fd >= 0) {
                                *created = true;
                                return fd;
                        }
                        if (errno != EEXIST || (flags & IOMEM_EXCL))
                                break;
                }
                fd = place_open(at, name, oflag, 0);
                if (fd >= 0 || errno != ENOENT || !(flags & IOMEM_CREATE))
                        return fd >= 0 ? fd : -1;
                /* Removed between the two calls: try again. */
        }
        return -1;
}

static int fail_errno(struct iomem *f, const char *what)
{
        int e = errno;
        if (e == ENOENT)
                return iom_fail(f->name, -e, "no such object (open with IOMEM_CREATE to create it)");
        if (e == EEXIST)
                return iom_fail(f->name, -e, "it exists already (IOMEM_EXCL)");
        return iom_fail(f->name, -e, "%s: %s", what, strerror(e));
}

/* Open or build the sidecar and attach (data_fd set). */
static int attach_sidecar(struct iomem *f, const struct place *at, const char *side, bool created,
                          const struct iomem_opts *o)
{
        struct iom_fdobj *obj = fdo(f);
        struct stat st;
        if (iom_sys.fstat(f->data_fd, &st) < 0)
                return fail_errno(f, "fstat");
        int sfd = place_open(at, side, O_RDWR | O_CREAT, st.st_mode & 0777);
        if (sfd < 0) {
                if (errno == EACCES || errno == EROFS) {
                        iom_debug("%s: no access to %s; pins stay in this process", f->name, side);
                        return iom_fdmem_attach(f, IOM_ATTACH_PRIVATE, o);
                }
                return fail_errno(f, "opening its metadata object");
        }
        obj->aux_fd = sfd;
        if (iom_sys.flock(sfd, LOCK_EX) < 0)
                return fail_errno(f, "locking its metadata object");
        int err, ours = created ? 0 : iom_pair_describes(sfd, (uint64_t)st.st_ino);
        if (ours < 0) {
                errno = -ours;
                err = fail_errno(f, "reading its metadata object");
        } else if (ours) {
                err = iom_fdmem_attach(f, IOM_ATTACH_SHARED, o);
        } else if (iom_sys.ftruncate(sfd, (off_t)IOM_PHYS_END) < 0) {
                err = fail_errno(f, "sizing its metadata object");
        } else {
                /* New, or made by another program, or left by an earlier
                 * object of the same name: describe what is there now. */
                err = iom_fdmem_attach(f, created ? IOM_ATTACH_NEW : IOM_ATTACH_ADOPT, o);
                if (!err) {
                        obj->meta->data_ino = (uint64_t)st.st_ino;
                        iom_pair_mark(f, side);
                }
        }
        iom_sys.flock(sfd, LOCK_UN);
        return err;
}

/* The page size of a file on hugetlbfs (0 when it is not on one). */
static size_t hugetlbfs_page_size(int fd)
{
        struct iom_fsinfo sf;
        return iom_sys.fstatfs(fd, &sf) == 0 && sf.kind == IOM_FS_HUGETLBFS ? (size_t)sf.block_size : 0;
}

static int shm_open_uri(struct iomem *f, const char *rest, unsigned flags, const struct iomem_opts *o)
{
        char data[NAME_MAX + 2], side[NAME_MAX + 2];
        iom_fdmem_init(f);
        int err = shm_names(rest, data, side);
        if (err)
                return err;
        struct place at = shm_place();
        if (o->hugepage)
                err = place_for_pages(f, o->hugepage, &at);
        else
                at = place_of(data);
        if (err)
                return err;
        if (o->seals)
                return iom_fail(f->name, -ENOTSUP, "seals apply to memfd objects only");
        if (o->size && !(flags & IOMEM_RDWR))
                return iom_fail(f->name, -EINVAL, "a read-only handle cannot give the object a size");
        bool created;
        fdo(f)->sized_data = true;
        f->data_fd = open_data(&at, data, flags, (mode_t)o->mode, &created);
        if (f->data_fd < 0)
                return fail_errno(f, at.huge ? "open" : "shm_open");
        if (at.huge)
                f->page_size = hugetlbfs_page_size(f->data_fd);
        err = attach_sidecar(f, &at, side, created, o);
        if (err) {
                iom_fdmem_close(f);
                if (created) {
                        place_unlink(&at, data);
                        place_unlink(&at, side);
                }
        }
        return err;
}

/* Where an open descriptor's object is and its sidecar's name, from
 * the path it was opened by (where the platform can tell): shm_open's
 * place, or a hugetlbfs mount. */
static bool name_of_fd(int fd, struct place *at, char side[NAME_MAX + 2])
{
        char target[PATH_MAX];
        if (iom_file_path(fd, target, sizeof target))
                return false;
        char *slash = strrchr(target, '/');
        if (!slash)
                return false;
        *slash = 0;
        *at = shm_place();
        if (!at->dir[0] || strcmp(target, at->dir)) {
                struct iom_fsinfo sf;
                if (iom_sys.statfs(target[0] ? target : "/", &sf) || sf.kind != IOM_FS_HUGETLBFS)
                        return false;
                *at = (struct place){ .huge = true };
                snprintf(at->dir, sizeof at->dir, "%s", target);
        }
        char data[NAME_MAX + 2];
        return shm_names(slash + 1, data, side) == 0;
}

static int shm_open_fds(struct iomem *f, const int *fds, int nfds, unsigned flags,
                        const struct iomem_opts *o)
{
        iom_fdmem_init(f);
        if (nfds < 1 || nfds > 2)
                return iom_fail(f->name, -EINVAL, "a shm object is one or two descriptors, not %d", nfds);
        struct stat st;
        if (iom_sys.fstat(fds[0], &st) < 0 || !S_ISREG(st.st_mode))
                return iom_fail(f->name, -EINVAL, "fd %d is not a shared memory object", fds[0]);
        int err = iom_pair_check_access(f, fds[0], flags);
        if (err)
                return err;
        f->data_fd = fds[0];
        fdo(f)->sized_data = true;
        size_t huge = hugetlbfs_page_size(fds[0]);
        if (huge)
                f->page_size = huge;
        /* Alone, the descriptor may lead to its sidecar by its name. */
        int sfd = -1, why = 0;
        char side[NAME_MAX + 2];
        struct place at;
        if (nfds == 1 && name_of_fd(fds[0], &at, side)) {
                sfd = place_open(&at, side, O_RDWR, 0);
                why = sfd < 0 && errno != ENOENT ? -errno : 0;
        }
        return iom_pair_open_fds(f, fds, nfds, sfd, why, o);
}

static int shm_unlink_uri(const char *rest)
{
        char data[NAME_MAX + 2], side[NAME_MAX + 2];
        int err = shm_names(rest, data, side);
        if (err)
                return err;
        struct place at = place_of(data);
        if (place_unlink(&at, data) < 0) {
                int e = errno;
                if (e == ENOENT)
                        return iom_fail(uri_of(data + 1), -e, "no such object");
                return iom_fail(uri_of(data + 1), -e, "%s: %s", at.huge ? "unlink" : "shm_unlink",
                                strerror(e));
        }
        place_unlink(&at, side);
        return 0;
}

const struct iom_backend iom_backend_shm = {
        .name = "shm",
        .caps = SHM_CAPS,
        .priv_size = sizeof(struct iom_fdobj),
        .ops = &iom_fdmem_ops,
        .probe = shm_probe,
        .open = shm_open_uri,
        .open_fds = shm_open_fds,
        .unlink = shm_unlink_uri,
};
