/* SPDX-License-Identifier: MIT */
/*
 * NUMA placement on a two-node guest (tests/vm, scenario "numa"), written
 * against the public API alone plus libnuma to measure: for memfd and shm
 * objects, BIND to node 1 puts every page on node 1, INTERLEAVE over both
 * nodes splits the pages evenly (within one page), PREFERRED 0 puts them
 * on node 0, and iomem_stat().numa_node agrees; memory allocated later
 * (pwrite past the end, growth, iomem_alloc) follows the policy too. The
 * same for 2 MiB hugetlb memory within each node's pool, and a BIND asking
 * a node for more huge pages than its pool holds is -ENOMEM naming
 * vm.nr_hugepages, never SIGBUS.
 *
 * Where pages are is measured with move_pages(2) on every page, never read
 * from the policy. The process is pinned to a CPU of the node the policy
 * does NOT name, so that default (local) placement would fail the check.
 */
#include "guest.h"

#include <iomem.h>
#include <numa.h>
#include <numaif.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/uio.h>

#define MIB ((size_t)1 << 20)
#define HUGE (2 * MIB)
#define SMALL_PAGES 4096 /* 16 MiB of 4 KiB pages */
#define HUGE_PER_NODE 8

static const char *const policy_names[] = { "DEFAULT", "PREFERRED", "BIND", "INTERLEAVE" };

struct placement {
        const char *backend; /* "memfd" or "shm" */
        int policy, node;    /* node: of BIND and PREFERRED */
        int run_on;          /* the node whose CPU the check runs on */
        size_t huge;         /* 0: system pages; else the huge page size */
};

/* ---- measuring ---------------------------------------------------------------- */

struct count {
        long node[2], elsewhere, total;
};

static void pin_to_node(int node)
{
        int cpu = -1;
        for (int c = 0; c < numa_num_configured_cpus() && cpu < 0; c++)
                if (numa_node_of_cpu(c) == node)
                        cpu = c;
        REQUIRE(cpu >= 0, "no CPU on node %d", node);
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        REQUIRE(sched_setaffinity(0, sizeof set, &set) == 0, "%s", strerror(errno));
}

/* The node of each page of [base, base+len), by move_pages. */
static void count_pages(struct count *c, char *base, size_t len, size_t page)
{
        size_t n = len / page;
        void **pages = calloc(n, sizeof *pages);
        int *status = calloc(n, sizeof *status);
        REQUIRE(pages && status, "out of memory");
        for (size_t i = 0; i < n; i++) {
                pages[i] = base + i * page;
                /* move_pages sees only pages mapped in this process; they
                 * exist already, so a read maps them without allocating. */
                (void)*(volatile char *)pages[i];
        }
        REQUIRE(move_pages(0, (unsigned long)n, pages, NULL, status, 0) == 0, "move_pages: %s",
                strerror(errno));
        for (size_t i = 0; i < n; i++) {
                if (status[i] == 0 || status[i] == 1)
                        c->node[status[i]]++;
                else
                        c->elsewhere++;
                c->total++;
        }
        free(pages);
        free(status);
}

/* Count the pages behind [off, off+len) of f, acquired or borrowed. */
static void count_object(struct count *c, struct iomem *f, size_t off, size_t len, size_t page,
                         bool acquired)
{
        ssize_t n = iomem_bufcount(f, off, len);
        REQUIRE(n > 0, "bufcount: %zd %s", n, iomem_errormsg());
        struct iovec *iov = calloc((size_t)n, sizeof *iov);
        REQUIRE(iov, "out of memory");
        if (!acquired)
                REQUIRE(iomem_rdlock(f) == 0, "rdlock: %s", iomem_errormsg());
        ssize_t got = acquired ? iomem_retrieve(f, off, len, iov, (size_t)n)
                               : iomem_borrow(f, off, len, iov, (size_t)n);
        REQUIRE(got == n, "%s: %zd %s", acquired ? "retrieve" : "borrow", got, iomem_errormsg());
        for (ssize_t i = 0; i < n; i++) {
                REQUIRE(iov[i].iov_base, "bytes of [%zu, %zu) are a hole", off, off + len);
                count_pages(c, iov[i].iov_base, iov[i].iov_len, page);
        }
        if (!acquired)
                iomem_unlock(f);
        free(iov);
}

/* Free huge pages of a node (2 MiB), -1 when unknown. */
static long huge_free(int node)
{
        char path[128];
        snprintf(path, sizeof path, "/sys/devices/system/node/node%d/hugepages/hugepages-2048kB/free_hugepages",
                 node);
        FILE *fp = fopen(path, "r");
        long n = -1;
        if (fp) {
                if (fscanf(fp, "%ld", &n) != 1)
                        n = -1;
                fclose(fp);
        }
        return n;
}

static void expect_placed(const struct placement *p, const struct count *c, int numa_node)
{
        REQUIRE(c->elsewhere == 0, "%ld of %ld pages are on no node or another node", c->elsewhere,
                c->total);
        if (p->policy == IOMEM_NUMA_INTERLEAVE) {
                long d = c->node[0] - c->node[1];
                REQUIRE(d >= -1 && d <= 1, "%ld pages on node 0, %ld on node 1", c->node[0], c->node[1]);
                REQUIRE(numa_node == 0 || numa_node == 1, "iomem_stat().numa_node is %d", numa_node);
        } else {
                REQUIRE(c->node[p->node] == c->total, "%ld of %ld pages on node %d (%ld on node %d)",
                        c->node[p->node], c->total, p->node, c->node[!p->node], !p->node);
                REQUIRE(numa_node == p->node, "iomem_stat().numa_node is %d, not %d", numa_node,
                        p->node);
        }
}

/* ---- objects ------------------------------------------------------------------ */

static struct iomem *open_placed(const struct placement *p)
{
        struct iomem_opts *o = NULL;
        REQUIRE(iomem_opts_new(&o) == 0, "%s", iomem_errormsg());
        int r = iomem_opts_set_numa(o, p->policy, p->policy == IOMEM_NUMA_INTERLEAVE ? 0 : p->node);
        REQUIRE(r == 0, "set_numa: %d %s", r, iomem_errormsg());
        if (p->huge)
                REQUIRE((r = iomem_opts_set_hugepage(o, p->huge)) == 0, "set_hugepage: %d %s", r,
                        iomem_errormsg());
        char uri[96];
        snprintf(uri, sizeof uri, "%s:iomem-vm-numa-%d", p->backend, (int)getpid());
        struct iomem *f = NULL;
        r = iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o);
        iomem_opts_delete(&o);
        REQUIRE(r == 0, "open %s: %d %s", uri, r, iomem_errormsg());
        if (!strcmp(p->backend, "shm"))
                iomem_unlink(uri); /* gone with the last handle */
        return f;
}

/* ---- the checks ----------------------------------------------------------------- */

/* Pages of an acquired object are where the policy puts them. */
static void placed(const void *arg)
{
        const struct placement *p = arg;
        size_t page = p->huge ? p->huge : (size_t)sysconf(_SC_PAGESIZE);
        pin_to_node(p->run_on);
        long before0 = huge_free(0), before1 = huge_free(1);
        struct iomem *f = open_placed(p);
        size_t pages = SMALL_PAGES;
        long free0 = huge_free(0), free1 = huge_free(1);
        if (p->huge) {
                /* Within the pools as they are now (the object's metadata
                 * took a huge page of its own). */
                long pool = p->node ? free1 : free0, fit = pool; /* BIND: the whole pool */
                if (p->policy == IOMEM_NUMA_INTERLEAVE)
                        fit = 2 * (free0 < free1 ? free0 : free1);
                else if (p->policy == IOMEM_NUMA_PREFERRED && fit > 4)
                        fit = 4;
                if (fit < 2)
                        guest_end(GUEST_SKIP, "too few free huge pages (%ld on node 0, %ld on node 1)",
                                  free0, free1);
                pages = (size_t)fit;
        }
        size_t size = pages * page;
        int r = iomem_truncate(f, size);
        REQUIRE(r == 0, "truncate: %d %s", r, iomem_errormsg());
        ssize_t a = iomem_acquire(f, 0, size);
        REQUIRE(a == (ssize_t)size, "acquire: %zd %s", a, iomem_errormsg());
        if (p->huge) /* acquire allocated them, in the nodes' pools */
                REQUIRE(huge_free(0) + huge_free(1) == free0 + free1 - (long)pages,
                        "free huge pages went from %ld+%ld to %ld+%ld for %zu pages", free0, free1,
                        huge_free(0), huge_free(1), pages);
        struct count c = { 0 };
        count_object(&c, f, 0, size, page, true);
        struct iomem_stat st;
        REQUIRE(iomem_stat(f, &st) == 0, "stat: %s", iomem_errormsg());
        REQUIRE(st.page_size == page, "page_size %zu", st.page_size);
        expect_placed(p, &c, st.numa_node);
        REQUIRE(iomem_release(f, 0, size) == 0, "release: %s", iomem_errormsg());
        REQUIRE(iomem_close(&f) == 0, "close: %s", iomem_errormsg());
        if (p->huge)
                REQUIRE(huge_free(0) == before0 && huge_free(1) == before1,
                        "free huge pages are %ld+%ld after close, %ld+%ld before open", huge_free(0),
                        huge_free(1), before0, before1);
        guest_end(GUEST_PASS, "%ld pages of %zu KiB on CPU of node %d: %ld on node 0, %ld on node 1; numa_node %d",
                  c.total, page >> 10, p->run_on, c.node[0], c.node[1], st.numa_node);
}

/* Memory allocated after open follows the policy: pwrite past the end,
 * growth by truncate then acquire, iomem_alloc. */
static void placed_later(const void *arg)
{
        const struct placement *p = arg;
        size_t page = (size_t)sysconf(_SC_PAGESIZE);
        pin_to_node(p->run_on);
        struct iomem *f = open_placed(p);
        static char buf[4 * MIB];
        memset(buf, 'w', sizeof buf);
        ssize_t w = iomem_pwrite(f, buf, sizeof buf, 0);
        REQUIRE(w == (ssize_t)sizeof buf, "pwrite: %zd %s", w, iomem_errormsg());
        struct count c = { 0 };
        count_object(&c, f, 0, sizeof buf, page, false);
        REQUIRE(c.node[p->node] == c.total, "pwrite: %ld of %ld pages on node %d", c.node[p->node],
                c.total, p->node);
        int r = iomem_truncate(f, 8 * MIB);
        REQUIRE(r == 0, "truncate: %d %s", r, iomem_errormsg());
        ssize_t a = iomem_acquire(f, 4 * MIB, 4 * MIB);
        REQUIRE(a == (ssize_t)(4 * MIB), "acquire: %zd %s", a, iomem_errormsg());
        struct count g = { 0 };
        count_object(&g, f, 4 * MIB, 4 * MIB, page, true);
        REQUIRE(g.node[p->node] == g.total, "growth: %ld of %ld pages on node %d", g.node[p->node],
                g.total, p->node);
        void *mem = NULL;
        r = iomem_alloc(f, MIB, &mem);
        REQUIRE(r == 0, "alloc: %d %s", r, iomem_errormsg());
        memset(mem, 'a', MIB);
        struct count b = { 0 };
        count_pages(&b, mem, MIB, page);
        REQUIRE(b.node[p->node] == b.total, "iomem_alloc: %ld of %ld pages on node %d",
                b.node[p->node], b.total, p->node);
        struct iovec v = { mem, MIB };
        ssize_t gifted = iomem_gift(f, 8 * MIB, MIB, &v, 1, 0);
        REQUIRE(gifted == 1, "gift: %zd %s", gifted, iomem_errormsg());
        struct iomem_stat st;
        REQUIRE(iomem_stat(f, &st) == 0, "stat: %s", iomem_errormsg());
        REQUIRE(st.numa_node == p->node, "iomem_stat().numa_node is %d", st.numa_node);
        iomem_release(f, 4 * MIB, 4 * MIB);
        REQUIRE(iomem_close(&f) == 0, "close: %s", iomem_errormsg());
        guest_end(GUEST_PASS, "on node %d: %ld pages written, %ld grown, %ld allocated; numa_node %d",
                  p->node, c.total, g.total, b.total, st.numa_node);
}

/* BIND asking node 1 for one huge page more than its pool has: an error
 * naming the sysctl, nothing taken, no signal. */
static void over_pool(const void *arg)
{
        const struct placement *p = arg;
        pin_to_node(p->run_on);
        struct iomem *f = open_placed(p);
        long free0 = huge_free(0), free1 = huge_free(1), mine = p->node ? free1 : free0;
        size_t size = (size_t)(mine + 1) * p->huge;
        int r = iomem_truncate(f, size);
        REQUIRE(r == 0, "truncate: %d %s", r, iomem_errormsg());
        ssize_t a = iomem_acquire(f, 0, size);
        REQUIRE(a == -ENOMEM, "acquire of %ld huge pages: %zd %s", mine + 1, a, iomem_errormsg());
        REQUIRE(strstr(iomem_errormsg(), "vm.nr_hugepages"), "message: %s", iomem_errormsg());
        guest_note("acquire: %s", iomem_errormsg());
        REQUIRE(huge_free(0) == free0 && huge_free(1) == free1,
                "free huge pages went from %ld+%ld to %ld+%ld", free0, free1, huge_free(0),
                huge_free(1));
        char *buf = malloc(size);
        REQUIRE(buf, "out of memory");
        memset(buf, 'o', size);
        ssize_t w = iomem_pwrite(f, buf, size, 0);
        REQUIRE(w == -ENOMEM, "pwrite of %zu bytes: %zd %s", size, w, iomem_errormsg());
        REQUIRE(strstr(iomem_errormsg(), "vm.nr_hugepages"), "message: %s", iomem_errormsg());
        REQUIRE(huge_free(0) == free0 && huge_free(1) == free1,
                "free huge pages went from %ld+%ld to %ld+%ld", free0, free1, huge_free(0),
                huge_free(1));
        /* What does fit still works. */
        a = iomem_acquire(f, 0, (size_t)mine * p->huge);
        REQUIRE(a == (ssize_t)((size_t)mine * p->huge), "acquire of %ld huge pages: %zd %s", mine, a,
                iomem_errormsg());
        struct count c = { 0 };
        count_object(&c, f, 0, (size_t)mine * p->huge, p->huge, true);
        REQUIRE(c.node[p->node] == c.total, "%ld of %ld pages on node %d", c.node[p->node], c.total,
                p->node);
        free(buf);
        iomem_close(&f);
        guest_end(GUEST_PASS, "%ld huge pages on node %d: -ENOMEM, pools unchanged; %ld fit, all on node %d",
                  mine + 1, p->node, mine, p->node);
}

/* ---- the program ------------------------------------------------------------------ */

/* Reserve HUGE_PER_NODE huge pages on each node; how many there are. */
static long reserve_huge_pages(void)
{
        long total = 0;
        for (int node = 0; node < 2; node++) {
                char path[128];
                snprintf(path, sizeof path,
                         "/sys/devices/system/node/node%d/hugepages/hugepages-2048kB/nr_hugepages", node);
                FILE *fp = fopen(path, "w");
                if (fp) {
                        fprintf(fp, "%d\n", HUGE_PER_NODE);
                        fclose(fp);
                }
                long n = huge_free(node);
                printf("  node %d: %ld free huge pages of 2 MiB\n", node, n);
                total += n > 0 ? n : 0;
        }
        return total;
}

int main(void)
{
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (numa_available() < 0 || numa_max_node() < 1) {
                printf("SKIP: numa: %d NUMA node(s) here; the checks need two\n",
                       numa_available() < 0 ? 1 : numa_max_node() + 1);
                return GUEST_SKIP;
        }
        static const char *const backends[] = { "memfd", "shm" };
        char name[96];
        for (int huge = 0; huge < 2; huge++) {
                if (huge && reserve_huge_pages() < 4) {
                        printf("SKIP: numa hugetlb: fewer than 4 huge pages could be reserved\n");
                        break;
                }
                for (int b = 0; b < 2; b++) {
                        const struct placement cases[] = {
                                { backends[b], IOMEM_NUMA_BIND, 1, 0, huge ? HUGE : 0 },
                                { backends[b], IOMEM_NUMA_INTERLEAVE, 0, 0, huge ? HUGE : 0 },
                                { backends[b], IOMEM_NUMA_PREFERRED, 0, 1, huge ? HUGE : 0 },
                        };
                        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                                const struct placement *p = &cases[i];
                                if (p->policy == IOMEM_NUMA_INTERLEAVE)
                                        snprintf(name, sizeof name, "numa %s%s INTERLEAVE 0,1",
                                                 p->backend, huge ? " hugetlb" : "");
                                else
                                        snprintf(name, sizeof name, "numa %s%s %s %d", p->backend,
                                                 huge ? " hugetlb" : "", policy_names[p->policy],
                                                 p->node);
                                guest_run(name, placed, p);
                        }
                        const struct placement later = { backends[b], IOMEM_NUMA_BIND, 1, 0, 0 };
                        const struct placement over = { backends[b], IOMEM_NUMA_BIND, 1, 0, HUGE };
                        snprintf(name, sizeof name, "numa %s %s", backends[b],
                                 huge ? "hugetlb BIND 1 beyond the node's pool"
                                      : "BIND 1 for memory allocated later");
                        guest_run(name, huge ? over_pool : placed_later, huge ? &over : &later);
                }
        }
        return guest_status();
}
