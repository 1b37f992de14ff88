/* SPDX-License-Identifier: MIT */
/*
 * iomem_sendfile and iomem_copy: single-copy transfers from an object's
 * memory, borrowed under the read lock a batch at a time.
 */
#include "enter.h"
#include "internal.h"
#include "syscalls.h"

#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Bytes described and written per turn of the read lock: large enough that
 * the locking is noise, small enough that writers are not kept out long. */
#define BATCH_BYTES (UINT64_C(16) << 20)
#define BATCH_IOVS  64

/*
 * Take f's read lock and borrow up to *batch of the left bytes at off into
 * got[BATCH_IOVS]. Returns the lock's error (not held), or 0 with the lock
 * held and the borrow's result in *n. A dax: object's window may hold less
 * than a batch (-ENOBUFS): then smaller batches, from here on.
 */
static int lock_and_borrow(struct iomem *f, uint64_t off, uint64_t left, uint64_t *batch,
                           struct iovec *got, ssize_t *n)
{
        for (;;) {
                int err = f->ops.rdlock(f, f->lock_timeout_ms);
                if (err)
                        return err;
                uint64_t want = iom_min(left, *batch);
                *n = f->ops.borrow(f, off, want, got, BATCH_IOVS);
                if (*n != -ENOBUFS || want <= 1)
                        return 0;
                f->ops.unlock(f);
                *batch = want / 2;
        }
}

/*
 * Writing to a pipe whose reader is gone raises SIGPIPE, which the library
 * never does: between begin and end the signal is blocked for this thread,
 * and one that the writes raised is swallowed.
 */
struct sigpipe_guard {
        sigset_t set, old;
        int was_pending;
};

static void sigpipe_block(struct sigpipe_guard *g)
{
        sigemptyset(&g->set);
        sigaddset(&g->set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &g->set, &g->old);
        sigset_t pending;
        sigpending(&pending);
        g->was_pending = sigismember(&pending, SIGPIPE);
}

static void sigpipe_unblock(struct sigpipe_guard *g)
{
        int e = errno;
        /* The reader may leave part-way through a write that then returns
         * a short count, SIGPIPE raised all the same. */
        sigset_t pending;
        sigpending(&pending);
        if (!g->was_pending && sigismember(&pending, SIGPIPE)) {
                struct timespec zero = { 0, 0 };
                sigtimedwait(&g->set, NULL, &zero);
        }
        pthread_sigmask(SIG_SETMASK, &g->old, NULL);
        errno = e;
}

/* A destination descriptor, written without ever raising SIGPIPE. */
struct sink {
        int fd;
        int not_socket; /* learned on the first ENOTSOCK */
};

static ssize_t sink_write_once(struct sink *s, struct iovec *iov, int cnt)
{
        if (!s->not_socket) {
                struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
                ssize_t n = iom_sys.sendmsg(s->fd, &msg, MSG_NOSIGNAL);
                if (n >= 0 || errno != ENOTSOCK)
                        return n;
                s->not_socket = 1;
        }
        struct sigpipe_guard g;
        sigpipe_block(&g);
        ssize_t n = iom_sys.writev(s->fd, iov, cnt);
        sigpipe_unblock(&g);
        return n;
}

/* The most buffers one writev takes (at least POSIX's 16). */
static int iov_max(void)
{
        static int max;
        if (!max) {
                long n = sysconf(_SC_IOV_MAX);
                __atomic_store_n(&max, n >= 16 && n <= INT_MAX ? (int)n : 16, __ATOMIC_RELAXED);
        }
        return max;
}

/* Write all of iov[0..cnt); returns bytes written, or negative errno with
 * *partial the bytes written before it. */
static ssize_t sink_write_all(struct sink *s, struct iovec *iov, int cnt, uint64_t *partial)
{
        uint64_t total = 0;
        while (cnt > 0) {
                ssize_t n = sink_write_once(s, iov, cnt < iov_max() ? cnt : iov_max());
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        *partial = total;
                        return -errno;
                }
                if (n == 0) {
                        *partial = total;
                        return -EIO;
                }
                total += (uint64_t)n;
                while (cnt > 0 && (size_t)n >= iov->iov_len) {
                        n -= (ssize_t)iov->iov_len;
                        iov++;
                        cnt--;
                }
                if (cnt > 0) {
                        iov->iov_base = (char *)iov->iov_base + n;
                        iov->iov_len -= (size_t)n;
                }
        }
        *partial = total;
        return (ssize_t)total;
}

/* Replace holes (NULL entries) by the zero region, splitting as needed.
 * out has room for cap entries; returns how many of in were used. */
static size_t fill_holes_with_zeros(const struct iovec *in, size_t nin, struct iovec *out,
                                    size_t cap, size_t *nout, const char *zeros, size_t zlen)
{
        size_t i = 0, o = 0;
        for (; i < nin; i++) {
                if (in[i].iov_base) {
                        if (o == cap)
                                break;
                        out[o++] = in[i];
                        continue;
                }
                size_t pieces = (in[i].iov_len + zlen - 1) / zlen;
                if (o + pieces > cap)
                        break;
                for (size_t left = in[i].iov_len; left;) {
                        size_t n = left < zlen ? left : zlen;
                        out[o++] = (struct iovec){ (void *)zeros, n };
                        left -= n;
                }
        }
        *nout = o;
        return i;
}

/*
 * Into a regular file, bytes that sit in the page cache of a file on a
 * disk filesystem (dax: without DAX) go faster spliced through a pipe than
 * written from the window: the kernel copies once either way, but from its
 * own mapping of the pages rather than through 4 KiB user mappings (ext4
 * source to a tmpfs file, 1 GiB: 9.5 GiB/s against 7 GiB/s). From tmpfs
 * the window is the faster (7.6 against 5-7 GiB/s), so that stays. Only
 * into files: spliced into a pipe or a socket, the pages would be shared
 * with the reader after the call returns, not copied.
 */
static bool splice_pays(const struct iomem *in, int out_fd)
{
        struct stat st;
        struct iom_fsinfo sf;
        return in->bytes_in_page_cache && iom_sys.fstat(out_fd, &st) == 0 && S_ISREG(st.st_mode) &&
               iom_sys.fstatfs(in->data_fd, &sf) == 0 && sf.kind != IOM_FS_TMPFS;
}

#define SPLICE_PIPE (1 << 20) /* bytes moved per pair of splices */

/* Splice [off, off+len) of in to out_fd a batch per turn of the read lock.
 * Returns bytes sent (fewer at the end of the file), or negative errno
 * with *sent the bytes that went out before it. */
static ssize_t splice_to_file(struct iomem *in, int out_fd, uint64_t off, uint64_t len,
                              uint64_t *sent)
{
        int p[2];
        *sent = 0;
        if (iom_splice_pipe(p, SPLICE_PIPE) < 0)
                return iom_fail(in->name, -errno, "a pipe to splice through: %s", strerror(errno));
        uint64_t done = 0;
        ssize_t err = 0;
        bool eof = false;
        while (!err && !eof && done < len) {
                if ((err = in->ops.rdlock(in, in->lock_timeout_ms)))
                        break;
                uint64_t stop = iom_min(len, done + BATCH_BYTES);
                while (!err && !eof && done < stop) {
                        int64_t pos = (int64_t)(off + done);
                        ssize_t n = iom_sys.splice(in->data_fd, &pos, p[1], NULL,
                                                   iom_min(stop - done, SPLICE_PIPE), IOM_SPLICE_MOVE);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0) {
                                err = iom_fail(in->name, -errno, "reading its file: %s", strerror(errno));
                                break;
                        }
                        eof = n == 0;
                        /* What is in the pipe goes out before anything else. */
                        while (n > 0) {
                                ssize_t w = iom_sys.splice(p[0], NULL, out_fd, NULL, (size_t)n,
                                                           IOM_SPLICE_MOVE);
                                if (w < 0 && errno == EINTR)
                                        continue;
                                if (w <= 0) {
                                        err = iom_fail(in->name, w ? -errno : -EIO, "writing to fd %d: %s",
                                                       out_fd, w ? strerror(errno) : "no progress");
                                        break;
                                }
                                n -= w;
                                done += (uint64_t)w;
                        }
                }
                in->ops.unlock(in);
        }
        close(p[0]);
        close(p[1]);
        *sent = done;
        return err ? err : (ssize_t)done;
}

/*
 * A write-sealed object's pages can never change, so they may go into a
 * pipe by reference, as splice(2) passes page cache pages, instead of
 * being copied: the reader finds the bytes of the call whenever it reads
 * them. No lock is taken (nothing can change). Into sockets the copy
 * through borrowed memory stays: on loopback TCP it measured faster than
 * sendfile(2) of the same pages (tests/bench/bench_transfer.c). Returns
 * bytes sent, or negative errno with *sent the bytes that went out before it.
 */
static ssize_t splice_frozen(struct iomem *in, int out_fd, uint64_t off, uint64_t len, uint64_t *sent)
{
        uint64_t done = 0;
        ssize_t err = 0;
        struct sigpipe_guard g;
        sigpipe_block(&g);
        while (done < len) {
                size_t want = (size_t)iom_min(len - done, UINT64_C(1) << 30);
                int64_t pos = (int64_t)(off + done);
                ssize_t n = iom_sys.splice(in->data_fd, &pos, out_fd, NULL, want, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        err = iom_fail(in->name, -errno, "writing to fd %d: %s", out_fd, strerror(errno));
                        break;
                }
                if (n == 0) /* the end of the file */
                        break;
                done += (uint64_t)n;
        }
        sigpipe_unblock(&g);
        *sent = done;
        return err ? err : (ssize_t)done;
}

static bool is_pipe(int fd)
{
        struct stat st;
        return iom_sys.fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode);
}

/* Did splice refuse the transfer (rather than fail it)? */
static bool splice_refused(ssize_t r)
{
        return r == -EINVAL || r == -ENOSYS;
}

IOM_PUBLIC ssize_t iomem_sendfile(int out_fd, struct iomem *in, size_t off, size_t len)
{
        if (!in)
                return iom_result(__func__, iom_fail(NULL, -EINVAL, "the object is NULL"));
        if (out_fd < 0)
                return iom_result(__func__, iom_fail(in->name, -EBADF, "out_fd %d is not open", out_fd));
        if (off + len < off)
                return iom_result(__func__, iom_fail(in->name, -EOVERFLOW,
                                                     "offset %zu + length %zu overflows", off, len));
        ssize_t err = iom_enter(in);
        if (err || (err = iom_refuse_own_backing(in, out_fd)))
                return iom_result(__func__, err);
        uint64_t done = 0;
        uint64_t size;
        if (len && is_pipe(out_fd) && in->ops.frozen(in, &size)) {
                if (off >= size)
                        return 0;
                ssize_t r = splice_frozen(in, out_fd, off, iom_min(len, size - off), &done);
                /* A file that takes no splice (hugetlbfs), or a system
                 * without splice, goes the other way; once some bytes
                 * went out, they are the result. */
                if (!splice_refused(r) || done)
                        return r < 0 && !done ? iom_result(__func__, r) : (ssize_t)done;
        }
        if (len && splice_pays(in, out_fd)) {
                ssize_t r = splice_to_file(in, out_fd, off, len, &done);
                /* A file that takes no splice (opened to append), or a
                 * system without splice, goes the other way; any other
                 * failure is the answer. */
                if (!splice_refused(r) || done)
                        return r < 0 && !done ? iom_result(__func__, r) : (ssize_t)done;
        }
        size_t zlen;
        const char *zeros = iom_zero_pages(&zlen);
        if (!zeros)
                return iom_result(__func__, iom_fail(in->name, -ENOMEM, "out of memory"));
        struct sink sink = { .fd = out_fd };
        uint64_t batch = BATCH_BYTES;
        while (done < len) {
                struct iovec got[BATCH_IOVS], out[BATCH_IOVS * 2];
                ssize_t n;
                if ((err = lock_and_borrow(in, off + done, len - done, &batch, got, &n)))
                        break;
                uint64_t got_bytes = 0;
                for (ssize_t i = 0; i < n; i++)
                        got_bytes += got[i].iov_len;
                size_t used = 0;
                while (n > 0 && used < (size_t)n) {
                        size_t nout;
                        size_t k = fill_holes_with_zeros(got + used, (size_t)n - used, out,
                                                         BATCH_IOVS * 2, &nout, zeros, zlen);
                        uint64_t wrote;
                        err = sink_write_all(&sink, out, (int)nout, &wrote);
                        done += wrote;
                        if (err < 0) {
                                iom_fail(in->name, (int)err, "writing to fd %d: %s", out_fd,
                                         strerror((int)-err));
                                break;
                        }
                        used += k;
                }
                in->ops.unlock(in);
                if (n < 0)
                        err = n;
                if (err < 0 || got_bytes == 0)
                        break;
        }
        /* Once some bytes went out, they are the result (like write(2)):
         * a non-blocking fd took what it could, or the next call fails. */
        if (err < 0 && !done)
                return iom_result(__func__, err);
        if (err < 0)
                iom_debug("%s: sendfile stopped after %llu bytes: %s", in->name,
                          (unsigned long long)done, strerror((int)-err));
        return (ssize_t)done;
}

/* Are two handles views of one object (so their ranges may overlap)? */
static bool same_object(const struct iomem *a, const struct iomem *b)
{
        struct stat x, y;
        return a == b || (a->backend == b->backend && iom_sys.fstat(a->data_fd, &x) == 0 &&
                          iom_sys.fstat(b->data_fd, &y) == 0 && x.st_dev == y.st_dev &&
                          x.st_ino == y.st_ino);
}

/* Copying within one object: through a bounce buffer, in the order that
 * keeps overlapping ranges right (like memmove). */
static ssize_t copy_within(struct iomem *dst, size_t doff, struct iomem *src, size_t soff, size_t len)
{
        enum { BOUNCE = 1 << 20 };
        char *bounce = malloc(BOUNCE);
        if (!bounce)
                return iom_fail(dst->name, -ENOMEM, "out of memory");
        struct iomem_stat st = { 0 };
        ssize_t err = src->ops.stat(src, &st);
        size_t avail = err || soff >= st.size ? 0 : (size_t)iom_min(len, st.size - soff);
        size_t done = 0;
        bool backward = doff > soff;
        while (!err && done < avail) {
                size_t n = (size_t)iom_min(avail - done, BOUNCE);
                size_t at = backward ? avail - done - n : done;
                ssize_t r = src->ops.pread(src, bounce, n, soff + at);
                if (r >= 0 && (size_t)r == n)
                        r = dst->ops.pwrite(dst, bounce, n, doff + at);
                if (r < 0)
                        err = r;
                else
                        done += n;
        }
        free(bounce);
        return err ? err : (ssize_t)done;
}

IOM_PUBLIC ssize_t iomem_copy(struct iomem *dst, size_t doff, struct iomem *src, size_t soff,
                              size_t len)
{
        if (!dst || !src)
                return iom_result(__func__, iom_fail(NULL, -EINVAL, "%s is NULL", dst ? "src" : "dst"));
        if (doff + len < doff || soff + len < soff)
                return iom_result(__func__, iom_fail(dst->name, -EOVERFLOW, "offset + length overflows"));
        if (!len)
                return 0;
        if (!(dst->flags & IOMEM_RDWR))
                return iom_result(__func__, iom_fail(dst->name, -EROFS, "the object is open read-only"));
        ssize_t err = iom_enter(dst);
        if (err || (err = iom_enter(src)))
                return iom_result(__func__, err);
        if (same_object(dst, src))
                return iom_result(__func__, copy_within(dst, doff, src, soff, len));
        if ((err = iom_refuse_shared_backing(dst, src)))
                return iom_result(__func__, err);
        size_t zlen;
        const char *zeros = iom_zero_pages(&zlen);
        if (!zeros)
                return iom_result(__func__, iom_fail(src->name, -ENOMEM, "out of memory"));
        uint64_t done = 0, batch = BATCH_BYTES;
        while (!err && done < len) {
                struct iovec got[BATCH_IOVS];
                ssize_t n;
                if ((err = lock_and_borrow(src, soff + done, len - done, &batch, got, &n)))
                        break;
                if (n < 0)
                        err = n;
                for (ssize_t i = 0; i < n && !err; i++) {
                        for (size_t k = 0; k < got[i].iov_len && !err;) {
                                const char *from = got[i].iov_base ? (char *)got[i].iov_base + k : zeros;
                                size_t chunk = got[i].iov_base ? got[i].iov_len - k
                                                               : iom_min(got[i].iov_len - k, zlen);
                                ssize_t w = dst->ops.pwrite(dst, from, chunk, doff + done);
                                if (w < 0)
                                        err = w;
                                else {
                                        done += (uint64_t)w;
                                        k += (size_t)w;
                                }
                        }
                }
                src->ops.unlock(src);
                if (n == 0)
                        break;
        }
        if (err && !done)
                return iom_result(__func__, err);
        return (ssize_t)done;
}
