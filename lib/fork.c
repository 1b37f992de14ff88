/* SPDX-License-Identifier: MIT */
/* The fork generation, the reset lock and the cached thread id (fork.h). */
#include "fork.h"

#include <pthread.h>
#include "platform.h"
#include <unistd.h>

unsigned iom_fork_gen;

static _Thread_local int cached_tid;

/* Held while a forked child resets an inherited object, so that two of the
 * child's threads making their first call on it at once do not both reset
 * it (one would re-initialise a mutex the other holds). A thread takes it
 * once however deep its resets nest (a dax: handle resets its file, the
 * file its other handles and their windows): reset_depth counts them. */
static pthread_mutex_t fork_reset_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local unsigned reset_depth;

/* A fork waits for resets in progress, so a child never copies an object
 * half reset (resetting it again there could free what was freed). */
static void before_fork(void)
{
        pthread_mutex_lock(&fork_reset_lock);
}

static void after_fork_in_parent(void)
{
        pthread_mutex_unlock(&fork_reset_lock);
}

/* The child's only thread is the one that took the lock before the fork
 * (a plain mutex: its owner is not checked on unlock; re-initialising it
 * instead would leave TSan believing it held). */
static void after_fork_in_child(void)
{
        cached_tid = 0;
        __atomic_add_fetch(&iom_fork_gen, 1, __ATOMIC_RELAXED);
        pthread_mutex_unlock(&fork_reset_lock);
}

__attribute__((constructor)) static void register_fork_handler(void)
{
        pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}

static void reset_lock_take(void)
{
        if (reset_depth++ == 0)
                pthread_mutex_lock(&fork_reset_lock);
}

static void reset_lock_give(void)
{
        if (--reset_depth == 0)
                pthread_mutex_unlock(&fork_reset_lock);
}

bool iom_fork_reset_begin(const unsigned *gen)
{
        unsigned now = iom_fork_generation();
        if (__builtin_expect(__atomic_load_n(gen, __ATOMIC_ACQUIRE) == now, 1))
                return false;
        reset_lock_take();
        if (__atomic_load_n(gen, __ATOMIC_RELAXED) == now) { /* another thread did it */
                reset_lock_give();
                return false;
        }
        return true;
}

void iom_fork_reset_end(unsigned *gen, bool done)
{
        if (done)
                __atomic_store_n(gen, iom_fork_generation(), __ATOMIC_RELEASE);
        reset_lock_give();
}

int iom_self_tid(void)
{
        if (!cached_tid)
                cached_tid = iom_thread_id();
        return cached_tid;
}
