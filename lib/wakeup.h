/* SPDX-License-Identifier: MIT */
/*
 * Waking a process that sleeps, or sits in poll or epoll, until another
 * process changes shared memory: each sleeper owns a datagram socket
 * with a name the kernel picks in the abstract namespace, publishes that
 * name in the shared memory, and becomes readable when a datagram
 * arrives. Unlike a futex, the descriptor fits in a caller's event loop;
 * unlike an eventfd, nothing has to be passed between the processes.
 * The platform layer names the sockets (iom_dgram_bind_unique): in
 * Linux's abstract namespace, elsewhere as files under /tmp.
 *
 * A waker sends to the names it finds, which shared memory may have
 * spoilt: at worst a datagram lands on another abstract datagram socket
 * of the same network namespace, which is where the names work.
 */
#ifndef IOMEM_WAKEUP_H
#define IOMEM_WAKEUP_H

#include <stdint.h>

/* A socket's name as it is kept in shared memory (read and written with
 * atomic word accesses, so that a torn name is only a wrong one). */
#define IOM_WAKEUP_NAME_WORDS 3
struct iom_wakeup_name {
        uint64_t len; /* bytes of word; 0: nobody to wake */
        uint64_t word[IOM_WAKEUP_NAME_WORDS];
};

/* A new socket of this process (non-blocking, close-on-exec) and its
 * name, to store where wakers find it; -errno on failure. */
int iom_wakeup_open(int *sock, struct iom_wakeup_name *name);
/* Close sock, the owner's, and let its name go. */
void iom_wakeup_close(int sock, const struct iom_wakeup_name *name);
/* The owner of name (in shared memory) died: let its name go, where
 * names are files that would outlive it. */
void iom_wakeup_forget(const struct iom_wakeup_name *name);
/* Wake the owner of name (in shared memory), through sock. Best effort:
 * a full queue already wakes it, and a closed one has nobody to wake. */
void iom_wakeup_send(int sock, const struct iom_wakeup_name *name);
/* Take away the datagrams that woke sock, before looking again. */
void iom_wakeup_drain(int sock);
/* Sleep until sock is readable, or timeout_ms pass (negative: for
 * ever); 0, or -errno (a signal is not an error: 0). */
int iom_wakeup_wait(int sock, int timeout_ms);

#endif /* IOMEM_WAKEUP_H */
