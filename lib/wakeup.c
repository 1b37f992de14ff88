/* SPDX-License-Identifier: MIT */
/* Waking sleepers through named datagram sockets (wakeup.h). */
#define _GNU_SOURCE
#include "wakeup.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int iom_wakeup_open(int *sock, struct iom_wakeup_name *name)
{
        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (s < 0)
                return -errno;
        /* An address of the family alone: the kernel picks a name that no
         * other socket has (autobind, unix(7)). */
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        socklen_t alen = sizeof a;
        if (bind(s, (struct sockaddr *)&a, sizeof(sa_family_t)) < 0 ||
            getsockname(s, (struct sockaddr *)&a, &alen) < 0) {
                int e = errno;
                close(s);
                return -e;
        }
        size_t n = alen - offsetof(struct sockaddr_un, sun_path);
        uint64_t word[IOM_WAKEUP_NAME_WORDS] = { 0 };
        if (alen <= offsetof(struct sockaddr_un, sun_path) || n > sizeof word) {
                close(s);
                return -ENAMETOOLONG;
        }
        memcpy(word, a.sun_path, n);
        for (int i = 0; i < IOM_WAKEUP_NAME_WORDS; i++)
                __atomic_store_n(&name->word[i], word[i], __ATOMIC_RELAXED);
        __atomic_store_n(&name->len, n, __ATOMIC_RELEASE);
        *sock = s;
        return 0;
}

void iom_wakeup_send(int sock, const struct iom_wakeup_name *name)
{
        size_t n = __atomic_load_n(&name->len, __ATOMIC_ACQUIRE);
        uint64_t word[IOM_WAKEUP_NAME_WORDS];
        if (n == 0 || n > sizeof word)
                return;
        for (int i = 0; i < IOM_WAKEUP_NAME_WORDS; i++)
                word[i] = __atomic_load_n(&name->word[i], __ATOMIC_RELAXED);
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        memcpy(a.sun_path, word, n);
        if (a.sun_path[0] != 0)
                return; /* only abstract names: never a file's */
        sendto(sock, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&a,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
}

void iom_wakeup_drain(int sock)
{
        /* Bounded: anyone may send to the name. What is left wakes the
         * sleeper once more for nothing. */
        char b[16];
        for (int i = 0; i < 64 && recv(sock, b, sizeof b, MSG_DONTWAIT) >= 0; i++)
                ;
}

int iom_wakeup_wait(int sock, int timeout_ms)
{
        struct pollfd p = { .fd = sock, .events = POLLIN };
        if (poll(&p, 1, timeout_ms) < 0 && errno != EINTR)
                return -errno;
        return 0;
}
