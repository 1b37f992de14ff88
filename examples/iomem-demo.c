/* SPDX-License-Identifier: MIT */
/*
 * iomem-demo: the four uses of libiomem, on memfd and on shm.
 *   1. single-copy transfer: the object's memory written straight to a file;
 *   2. a stable shared mapping: a second process writes through acquired
 *      memory, the first reads the same bytes with no copy, and nobody can
 *      truncate under the pin;
 *   3. gift: a buffer from iomem_alloc becomes the file's memory, no copy;
 *   4. a channel: a producer sends messages to a consumer process, each
 *      written and read in place in a second object.
 */
#define _GNU_SOURCE
#include <iomem.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define MIB (1024 * 1024)

static int failed(const char *what, long r)
{
        fprintf(stderr, "iomem-demo: %s: %s\n", what, r < 0 ? iomem_errormsg() : "unexpected result");
        return 1;
}

#define TRY(what, expr)                                  \
        do {                                             \
                long r_ = (long)(expr);                  \
                if (r_ < 0)                              \
                        return failed(what, r_);         \
        } while (0)

static int single_copy_transfer(struct iomem *f)
{
        const char text[] = "libiomem: bytes go from the object's memory to the file once\n";
        for (size_t off = 0; off < MIB; off += sizeof text - 1)
                TRY("pwrite", iomem_pwrite(f, text, sizeof text - 1, off));
        char path[] = "/tmp/iomem-demo-XXXXXX";
        int out = mkstemp(path);
        if (out < 0)
                return failed("mkstemp", -errno);
        unlink(path);
        ssize_t n = iomem_sendfile(out, f, 0, MIB);
        if (n != MIB)
                return failed("sendfile", n);
        char check[64];
        if (pread(out, check, 16, 0) != 16 || memcmp(check, text, 16))
                return failed("reading the copy", -EIO);
        close(out);
        printf("  1. sendfile: %zd bytes from the object to a file, one copy (borrow + writev)\n", n);
        return 0;
}

/* The second process attaches the way its backend allows: by name for
 * shm, by receiving the descriptor for memfd. */
static int stable_shared_mapping(struct iomem *f, const char *uri, const char *backend)
{
        int sv[2], go[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || pipe(go))
                return failed("socketpair", -errno);
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *g = NULL;
                int r = strcmp(backend, "shm") ? iomem_recv(sv[1], &g, IOMEM_RDWR)
                                               : iomem_open(&g, uri, IOMEM_RDWR, NULL);
                struct iovec v;
                if (r || iomem_acquire(g, 0, 4096) != 4096 || iomem_retrieve(g, 0, 4096, &v, 1) != 1)
                        _exit(failed("child attach", -1));
                snprintf(v.iov_base, 64, "written by process %d through acquired memory", (int)getpid());
                char c = 1;
                if (write(sv[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
                        _exit(1);
                iomem_release(g, 0, 4096);
                iomem_close(&g);
                _exit(0);
        }
        if (strcmp(backend, "shm"))
                TRY("send", iomem_send(sv[0], f));
        char c;
        if (read(sv[0], &c, 1) != 1)
                return failed("waiting for the child", -EIO);
        struct iovec v;
        TRY("rdlock", iomem_rdlock(f));
        TRY("borrow", iomem_borrow(f, 0, 64, &v, 1));
        printf("  2. shared mapping: parent reads \"%s\" with no copy\n", (char *)v.iov_base);
        TRY("unlock", iomem_unlock(f));
        int r = iomem_truncate(f, 0);
        printf("     truncate while the child holds its pin: %s\n", r == -EBUSY ? "-EBUSY, as it must" : "unexpected");
        c = 1;
        if (write(go[1], &c, 1) != 1)
                return failed("releasing the child", -EIO);
        int status;
        waitpid(pid, &status, 0);
        close(sv[0]), close(sv[1]), close(go[0]), close(go[1]);
        if (r != -EBUSY || !WIFEXITED(status) || WEXITSTATUS(status))
                return failed("shared mapping", -1);
        return 0;
}

static int gift(struct iomem *f)
{
        void *buf;
        TRY("alloc", iomem_alloc(f, 2 * MIB, &buf));
        memset(buf, 'G', 2 * MIB);
        struct iovec v = { buf, 2 * MIB };
        TRY("gift", iomem_gift(f, MIB, 2 * MIB, &v, 1, IOMEM_GIFT_NOCOPY));
        struct iomem_stat st;
        TRY("stat", iomem_stat(f, &st));
        TRY("acquire", iomem_acquire(f, 2 * MIB, MIB));
        struct iovec r;
        TRY("retrieve", iomem_retrieve(f, 2 * MIB, 4096, &r, 1));
        printf("  3. gift: %llu bytes adopted, %llu copied; the file's memory at 2 MiB is the "
               "buffer itself: %s\n",
               (unsigned long long)st.gift_adopted, (unsigned long long)st.gift_copied,
               r.iov_base == (char *)buf + MIB ? "yes" : "no");
        TRY("release", iomem_release(f, 2 * MIB, MIB));
        return r.iov_base == (char *)buf + MIB ? 0 : failed("gift", -1);
}

/* The consumer: every message in order, counted as it is read in place. */
static int consume(struct iomem *g, int count)
{
        struct iomem_chan *c;
        if (iomem_chan_open(&c, g, 0, 0, 0))
                return failed("child channel", -1);
        long sum = 0;
        for (int i = 0; i < count; i++) {
                const void *msg;
                int n;
                if (iomem_chan_receive(c, &msg) < 0 || sscanf(msg, "message %d", &n) != 1 || n != i)
                        return failed("receive", -1);
                sum += n;
                iomem_chan_release(c, msg);
        }
        printf("     the consumer (process %d) read %d messages in place, in order (sum %ld)\n", (int)getpid(),
               count, sum);
        fflush(stdout);
        return iomem_chan_close(&c) || iomem_close(&g);
}

static int channel(const char *uri, const char *backend)
{
        enum { COUNT = 10000, SLOTS = 64 };
        char curi[80];
        snprintf(curi, sizeof curi, "%s-chan", uri);
        struct iomem *f;
        struct iomem_chan *c;
        TRY("open", iomem_open(&f, curi, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL));
        TRY("channel", iomem_chan_open(&c, f, 256, SLOTS, 0));
        int sv[2];
        if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
                return failed("socketpair", -errno);
        printf("  4. channel: the producer writes %d messages in place, through %d slots of 256 bytes\n", COUNT,
               SLOTS);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
                struct iomem *g = NULL;
                int r = strcmp(backend, "shm") ? iomem_recv(sv[1], &g, IOMEM_RDWR)
                                               : iomem_open(&g, curi, IOMEM_RDWR, NULL);
                _exit(r ? failed("child attach", r) : consume(g, COUNT));
        }
        if (strcmp(backend, "shm"))
                TRY("send", iomem_send(sv[0], f));
        for (int i = 0; i < COUNT; i++) {
                void *slot;
                TRY("loan", iomem_chan_loan(c, &slot));
                int n = snprintf(slot, 256, "message %d", i);
                TRY("publish", iomem_chan_publish(c, slot, (size_t)n + 1));
        }
        int status;
        waitpid(pid, &status, 0);
        close(sv[0]), close(sv[1]);
        iomem_chan_close(&c);
        iomem_close(&f);
        if (!strcmp(backend, "shm"))
                iomem_unlink(curi);
        return WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : failed("channel", -1);
}

static int demo(const char *backend)
{
        char uri[64];
        snprintf(uri, sizeof uri, "%s:iomem-demo-%d", backend, (int)getpid());
        struct iomem *f;
        TRY("open", iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL));
        printf("%s\n", uri);
        int err = single_copy_transfer(f) || stable_shared_mapping(f, uri, backend) || gift(f) ||
                  channel(uri, backend);
        iomem_close(&f);
        if (!strcmp(backend, "shm"))
                iomem_unlink(uri);
        return err;
}

int main(void)
{
        int err = demo("memfd") || demo("shm");
        printf(err ? "demo failed\n" : "demo done: the four uses work on memfd and shm\n");
        return err;
}
