/* SPDX-License-Identifier: MIT */
/* Waking sleepers through named datagram sockets (wakeup.h). */
#include "wakeup.h"
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int iom_wakeup_open(int *sock, struct iom_wakeup_name *name)
{
#ifdef SOCK_CLOEXEC /* at once, where the system can (POSIX 2024) */
        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int set = 0;
#else
        int s = socket(AF_UNIX, SOCK_DGRAM, 0);
        int set = s < 0 ? 0 : fcntl(s, F_GETFL);
        set = set < 0 || fcntl(s, F_SETFL, set | O_NONBLOCK) < 0 || fcntl(s, F_SETFD, FD_CLOEXEC) < 0;
#endif
        if (s < 0)
                return -errno;
        uint64_t word[IOM_WAKEUP_NAME_WORDS] = { 0 };
        size_t n;
        int err = set ? -errno : iom_dgram_bind_unique(s, word, sizeof word, &n);
        if (err) {
                close(s);
                return err;
        }
        for (int i = 0; i < IOM_WAKEUP_NAME_WORDS; i++)
                __atomic_store_n(&name->word[i], word[i], __ATOMIC_RELAXED);
        __atomic_store_n(&name->len, n, __ATOMIC_RELEASE);
        *sock = s;
        return 0;
}

void iom_wakeup_close(int sock, const struct iom_wakeup_name *name)
{
        close(sock);
        iom_dgram_unbind(name->word, name->len);
}

/* A name as shared memory holds it, into word; its length, or 0 when it
 * is none the library makes (shared memory may be spoilt). */
static size_t load_name(const struct iom_wakeup_name *name, uint64_t word[IOM_WAKEUP_NAME_WORDS])
{
        size_t n = __atomic_load_n(&name->len, __ATOMIC_ACQUIRE);
        if (n == 0 || n > IOM_WAKEUP_NAME_WORDS * sizeof word[0])
                return 0;
        for (int i = 0; i < IOM_WAKEUP_NAME_WORDS; i++)
                word[i] = __atomic_load_n(&name->word[i], __ATOMIC_RELAXED);
        return iom_dgram_name_valid(word, n) ? n : 0;
}

void iom_wakeup_forget(const struct iom_wakeup_name *name)
{
        uint64_t word[IOM_WAKEUP_NAME_WORDS];
        size_t n = load_name(name, word);
        if (n)
                iom_dgram_unbind(word, n);
}

void iom_wakeup_send(int sock, const struct iom_wakeup_name *name)
{
        uint64_t word[IOM_WAKEUP_NAME_WORDS];
        size_t n = load_name(name, word);
        if (!n)
                return;
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        memcpy(a.sun_path, word, n);
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
