/* SPDX-License-Identifier: MIT */
/*
 * iomem_send / iomem_recv: an object's descriptors over an AF_UNIX socket
 * (SCM_RIGHTS), with a small header that names the backend.
 */
#include "internal.h"
#include "syscalls.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PASS_MAGIC   0x494f4d53u /* "IOMS" */
#define PASS_VERSION 1u
#define PASS_MAX_FDS 4

struct pass_header {
        uint32_t magic, version;
        char backend[16];
        uint32_t nfds;
        uint32_t reserved;
};

IOM_PUBLIC int iomem_send(int sock, const struct iomem *f)
{
        if (!f)
                return (int)iom_result(__func__, iom_fail(NULL, -EINVAL, "the object is NULL"));
        if (sock < 0)
                return (int)iom_result(__func__, iom_fail(f->name, -EBADF, "socket %d is not open", sock));
        int fds[PASS_MAX_FDS];
        int nfds = f->ops.send_fds(f, fds, PASS_MAX_FDS);
        if (nfds < 0)
                return (int)iom_result(__func__, nfds);
        struct pass_header h = { .magic = PASS_MAGIC, .version = PASS_VERSION, .nfds = (uint32_t)nfds };
        snprintf(h.backend, sizeof h.backend, "%s", f->backend->name);
        union {
                char buf[CMSG_SPACE(sizeof(int) * PASS_MAX_FDS)];
                struct cmsghdr align;
        } ctl;
        memset(&ctl, 0, sizeof ctl);
        struct iovec iov = { &h, sizeof h };
        struct msghdr msg = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = ctl.buf, .msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds),
        };
        struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
        ssize_t n;
        do
                n = iom_sys.sendmsg(sock, &msg, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                int e = errno;
                return (int)iom_result(__func__, iom_fail(f->name, -e, "sending over socket %d: %s",
                                                          sock, strerror(e)));
        }
        if ((size_t)n != sizeof h)
                return (int)iom_result(__func__, iom_fail(f->name, -EIO, "short send over socket %d", sock));
        return 0;
}

static void close_all(const int *fds, int n)
{
        for (int i = 0; i < n; i++)
                close(fds[i]);
}

IOM_PUBLIC int iomem_recv(int sock, struct iomem **out, unsigned flags)
{
        if (!out)
                return (int)iom_result(__func__, iom_fail(NULL, -EINVAL, "out is NULL"));
        if (flags & ~IOMEM_RDWR)
                return (int)iom_result(__func__, iom_fail(NULL, -EINVAL, "flags %#x: only IOMEM_RDWR applies", flags));
        if (sock < 0)
                return (int)iom_result(__func__, iom_fail(NULL, -EBADF, "socket %d is not open", sock));
        struct pass_header h;
        union {
                char buf[CMSG_SPACE(sizeof(int) * PASS_MAX_FDS)];
                struct cmsghdr align;
        } ctl;
        struct iovec iov = { &h, sizeof h };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                              .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf };
        ssize_t n;
        do
                n = iom_sys.recvmsg(sock, &msg, iom_msg_cmsg_cloexec);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
                int e = errno;
                return (int)iom_result(__func__, iom_fail(NULL, -e, "receiving from socket %d: %s", sock, strerror(e)));
        }
        int fds[PASS_MAX_FDS], nfds = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
                for (int i = 0; i < k; i++) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                        if (!iom_msg_cmsg_cloexec) /* not at once: a fork may see it first */
                                fcntl(fd, F_SETFD, FD_CLOEXEC);
                        if (nfds < PASS_MAX_FDS)
                                fds[nfds++] = fd;
                        else
                                close(fd);
                }
        }
        int err = 0;
        if (n == 0)
                err = iom_fail(NULL, -ECONNRESET, "socket %d: the peer closed the connection", sock);
        else if (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC))
                err = iom_fail(NULL, -EMSGSIZE, "socket %d: the message was truncated", sock);
        else if ((size_t)n != sizeof h || h.magic != PASS_MAGIC || h.version != PASS_VERSION ||
                 h.nfds == 0 || h.nfds != (uint32_t)nfds)
                err = iom_fail(NULL, -EBADMSG, "socket %d: not an object sent by iomem_send", sock);
        const struct iom_backend *b = NULL;
        if (!err) {
                h.backend[sizeof h.backend - 1] = 0;
                b = iom_backend_find(h.backend, strlen(h.backend));
                if (!b)
                        err = iom_fail(NULL, -EPROTONOSUPPORT, "socket %d: backend \"%s\" is not in this build",
                                       sock, h.backend);
        }
        struct iomem *f = NULL;
        if (!err) {
                char name[48];
                snprintf(name, sizeof name, "received fd %d", fds[0]);
                err = iom_object_new(&f, b, name, flags, NULL);
        }
        if (!err && (err = b->open_fds(f, fds, nfds, flags, iom_opts_or_default(NULL)))) {
                iom_object_free(f);
        }
        if (err) {
                close_all(fds, nfds);
                return (int)iom_result(__func__, err);
        }
        *out = f;
        return 0;
}
