/* SPDX-License-Identifier: MIT */
/*
 * Cache-line write-back from user space (cacheflush.h). On x86 the
 * instructions are, best first: CLWB (writes the line back and may keep
 * it), CLFLUSHOPT (writes it back and evicts it, weakly ordered) and
 * CLFLUSH (the same, ordered with every store, so slow); CPUID says which
 * the CPU has. An SFENCE after CLWB or CLFLUSHOPT orders them before later
 * stores, as libpmem2 does. Elsewhere there is none here yet, and the
 * backends use a system call instead.
 */
#include "cacheflush.h"
#include "internal.h"

#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

#define CPUID1_EDX_CLFLUSH (1u << 19)
#define CPUID7_EBX_CLFLUSHOPT (1u << 23)
#define CPUID7_EBX_CLWB (1u << 24)

struct flush_cpu {
        unsigned kind;
        size_t line; /* bytes one instruction writes back */
};

static struct flush_cpu detect(void)
{
        struct flush_cpu c = { IOMEM_PERSIST_NONE, 64 };
        unsigned a, b, cx, d;
        if (!__get_cpuid(1, &a, &b, &cx, &d) || !(d & CPUID1_EDX_CLFLUSH))
                return c;
        c.kind = IOMEM_PERSIST_CLFLUSH;
        if ((b >> 8) & 0xff) /* CLFLUSH line size, in 8-byte units */
                c.line = ((b >> 8) & 0xff) * 8;
        if (__get_cpuid_count(7, 0, &a, &b, &cx, &d)) {
                if (b & CPUID7_EBX_CLWB)
                        c.kind = IOMEM_PERSIST_CLWB;
                else if (b & CPUID7_EBX_CLFLUSHOPT)
                        c.kind = IOMEM_PERSIST_CLFLUSHOPT;
        }
        return c;
}

static struct flush_cpu cpu(void)
{
        /* Computed once; a race computes the same answer twice. */
        static unsigned kind_seen, line_seen; /* 0: not yet */
        unsigned kind = __atomic_load_n(&kind_seen, __ATOMIC_ACQUIRE);
        if (kind)
                return (struct flush_cpu){ kind - 1, __atomic_load_n(&line_seen, __ATOMIC_RELAXED) };
        struct flush_cpu c = detect();
        __atomic_store_n(&line_seen, (unsigned)c.line, __ATOMIC_RELAXED);
        __atomic_store_n(&kind_seen, c.kind + 1, __ATOMIC_RELEASE);
        return c;
}

unsigned iom_cache_flush_kind(void)
{
        return cpu().kind;
}

void iom_cache_writeback(unsigned kind, const void *addr, size_t len)
{
        if (!len)
                return;
        size_t line = cpu().line;
        uintptr_t p = (uintptr_t)addr & ~(uintptr_t)(line - 1), end = (uintptr_t)addr + len;
        switch (kind) {
        case IOMEM_PERSIST_CLWB:
                for (; p < end; p += line)
                        __asm__ volatile("clwb (%0)" ::"r"(p) : "memory");
                break;
        case IOMEM_PERSIST_CLFLUSHOPT:
                for (; p < end; p += line)
                        __asm__ volatile("clflushopt (%0)" ::"r"(p) : "memory");
                break;
        case IOMEM_PERSIST_CLFLUSH:
                for (; p < end; p += line)
                        __asm__ volatile("clflush (%0)" ::"r"(p) : "memory");
                break;
        }
}

void iom_cache_fence(void)
{
        __asm__ volatile("sfence" ::: "memory");
}

#else /* no user-space write-back known here */

unsigned iom_cache_flush_kind(void)
{
        return IOMEM_PERSIST_NONE;
}

void iom_cache_writeback(unsigned kind, const void *addr, size_t len)
{
        (void)kind, (void)addr, (void)len;
}

void iom_cache_fence(void)
{
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

#endif
