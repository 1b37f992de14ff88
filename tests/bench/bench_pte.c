/* SPDX-License-Identifier: MIT */
/*
 * Page-table memory of many processes sharing one 1 GiB object: N
 * processes (1, 4, 16, 64) each attach it, touch every page, and the sum
 * of their VmPTE (/proc/PID/status) is taken while all of them still map
 * it. Rows: no object (what a forked process costs anyway), memfd with
 * 4 KiB pages, memfd with 2 MiB huge pages (when the pool has room: this
 * program sets no sysctl, scripts/bench grows the pool for it), and
 * mshare, whose processes share one set of page tables (where the kernel
 * has msharefs). Page-table sizes do not vary between runs, so --reps does
 * not apply.
 */
#include "bench.h"

#include <iomem.h>
#include <signal.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#define OBJ_SIZE ((size_t)1 << 30)
/* The 2 MiB row's pool: the data, and one page for the metadata, which a
 * memfd object keeps in a twin memfd of huge pages too (scripts/bench knows
 * it too). */
#define HUGE_PAGES_NEEDED ((long)(OBJ_SIZE >> 21) + 1)
#define MAX_PROCS 64
static const int nprocs[] = { 1, 4, 16, 64 };
#define NCOLS (sizeof nprocs / sizeof nprocs[0])

enum kind { NONE, MEMFD_4K, MEMFD_2M, MSHARE };
static const char *const row_name[] = {
        "no object (baseline)", "memfd, 4 KiB pages", "memfd, 2 MiB pages", "mshare",
};

/* VmPTE of pid in KiB, or -1. */
static long vm_pte_kib(pid_t pid)
{
        char path[64], line[128];
        long kib = -1;
        snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
        FILE *fp = fopen(path, "r");
        while (fp && fgets(line, sizeof line, fp))
                if (sscanf(line, "VmPTE: %ld kB", &kib) == 1)
                        break;
        if (fp)
                fclose(fp);
        return kib;
}

/* Attach the object as another process would, and read every page. */
static int attach_and_touch(enum kind k, struct iomem *f, const char *uri)
{
        struct iomem *g = NULL;
        int r;
        if (k == NONE)
                return 0;
        if (k == MSHARE)
                r = iomem_open(&g, uri, IOMEM_RDWR, NULL);
        else
                r = iomem_open_fd(&g, "memfd", dup(iomem_fd(f)), IOMEM_RDWR, NULL);
        struct iovec v;
        if (r || iomem_acquire(g, 0, OBJ_SIZE) != (ssize_t)OBJ_SIZE ||
            iomem_retrieve(g, 0, OBJ_SIZE, &v, 1) != 1 || v.iov_len != OBJ_SIZE) {
                fprintf(stderr, "bench_pte: attach: %s\n", iomem_errormsg());
                return -1;
        }
        volatile const char *p = v.iov_base;
        for (size_t off = 0; off < OBJ_SIZE; off += 4096)
                (void)p[off];
        return 0;
}

/* Sum of VmPTE (KiB) over n processes attached to f; -1 on failure. */
static long measure(enum kind k, struct iomem *f, const char *uri, int n)
{
        pid_t pid[MAX_PROCS];
        int ready[2], hold[2];
        if (pipe(ready) || pipe(hold))
                return -1;
        int started = 0;
        for (; started < n; started++) {
                if ((pid[started] = fork()) == 0) {
                        close(ready[0]);
                        close(hold[1]);
                        char c = attach_and_touch(k, f, uri) ? 'x' : 'y';
                        if (write(ready[1], &c, 1) != 1)
                                _exit(1);
                        /* Stay attached until the parent has looked. */
                        while (read(hold[0], &c, 1) > 0)
                                ;
                        _exit(0);
                }
                if (pid[started] < 0)
                        break;
        }
        close(ready[1]);
        close(hold[0]);
        long sum = started == n ? 0 : -1;
        for (int i = 0; i < started; i++) {
                char c = 0;
                if (read(ready[0], &c, 1) != 1 || c != 'y')
                        sum = -1;
        }
        for (int i = 0; i < started && sum >= 0; i++) {
                long kib = vm_pte_kib(pid[i]);
                sum = kib < 0 ? -1 : sum + kib;
        }
        close(hold[1]);
        close(ready[0]);
        for (int i = 0; i < started; i++)
                waitpid(pid[i], NULL, 0);
        return sum;
}

/* 2 MiB huge pages to be had, from /proc/meminfo: free ones less those
 * reserved for mappings that have not touched them yet. */
static long free_huge_pages(long *total)
{
        char line[128];
        long n = 0, reserved = 0, size = 0;
        *total = 0;
        FILE *fp = fopen("/proc/meminfo", "r");
        while (fp && fgets(line, sizeof line, fp)) {
                sscanf(line, "HugePages_Free: %ld", &n);
                sscanf(line, "HugePages_Rsvd: %ld", &reserved);
                sscanf(line, "HugePages_Total: %ld", total);
                sscanf(line, "Hugepagesize: %ld kB", &size);
        }
        if (fp)
                fclose(fp);
        return size == 2048 ? n - reserved : 0;
}

/* Why a row cannot run here, or NULL; opens its object otherwise. */
static const char *open_row(enum kind k, struct iomem **f, char *uri, size_t cap)
{
        static char whys[4][400];
        char *why = whys[k];
        struct iomem_opts *o = NULL;
        *f = NULL;
        snprintf(uri, cap, "%s:bench-pte-%d", k == MSHARE ? "mshare" : "memfd", (int)getpid());
        if (k == NONE)
                return NULL;
        if (k == MSHARE) {
                struct iomem_backend_info info[8];
                ssize_t nb = iomem_backends(info, 8);
                for (ssize_t i = 0; i < nb && i < 8; i++)
                        if (!strcmp(info[i].name, "mshare") && !info[i].available) {
                                snprintf(why, sizeof whys[0], "not available on this kernel (%s)",
                                         info[i].why);
                                return why;
                        }
        }
        if (k == MEMFD_2M) {
                long total, nfree = free_huge_pages(&total);
                if (nfree < HUGE_PAGES_NEEDED) {
                        snprintf(why, sizeof whys[0],
                                 "skipped: needs %ld free 2 MiB huge pages, %ld are free "
                                 "(vm.nr_hugepages is %ld)", HUGE_PAGES_NEEDED, nfree, total);
                        return why;
                }
        }
        iomem_opts_new(&o);
        iomem_opts_set_size(o, OBJ_SIZE);
        if (k == MEMFD_2M)
                iomem_opts_set_hugepage(o, 2u << 20);
        int r = iomem_open(f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o);
        iomem_opts_delete(&o);
        if (r) {
                snprintf(why, sizeof whys[0], "cannot open: %s", iomem_errormsg());
                return why;
        }
        return NULL;
}

int main(int argc, char **argv)
{
        struct bench_opts opt = bench_parse(argc, argv);
        long kib[4][NCOLS];
        const char *why[4] = { 0 };
        for (enum kind k = NONE; k <= MSHARE; k++) {
                struct iomem *f;
                char uri[96];
                if ((why[k] = open_row(k, &f, uri, sizeof uri)))
                        continue;
                for (size_t c = 0; c < NCOLS; c++)
                        kib[k][c] = measure(k, f, uri, nprocs[c]);
                iomem_close(&f);
                if (k == MSHARE)
                        iomem_unlink(uri);
        }
        if (opt.json) {
                for (enum kind k = NONE; k <= MSHARE; k++)
                        if (!why[k])
                                bench_json("pte", row_name[k], "n1_kib", (double)kib[k][0],
                                           "n4_kib", (double)kib[k][1], "n16_kib",
                                           (double)kib[k][2], "n64_kib", (double)kib[k][3], NULL);
                return 0;
        }
        printf("### Page-table memory: N processes each touching one 1 GiB object\n\n");
        printf("Summed VmPTE of the N processes, MiB, while all of them map the object.\n\n");
        printf("| backend |");
        for (size_t c = 0; c < NCOLS; c++)
                printf(" N=%d |", nprocs[c]);
        printf("\n|---|");
        for (size_t c = 0; c < NCOLS; c++)
                printf("---:|");
        printf("\n");
        for (enum kind k = NONE; k <= MSHARE; k++) {
                printf("| %s |", row_name[k]);
                if (why[k]) {
                        printf(" %s |", why[k]);
                        for (size_t c = 1; c < NCOLS; c++)
                                printf(" |");
                } else {
                        for (size_t c = 0; c < NCOLS; c++)
                                if (kib[k][c] < 0)
                                        printf(" failed |");
                                else
                                        printf(" %.2f |", (double)kib[k][c] / 1024);
                }
                printf("\n");
        }
        printf("\n");
        return 0;
}
