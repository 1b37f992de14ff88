/* SPDX-License-Identifier: MIT */
/*
 * iomem-info: what libiomem can do on this machine: the backends built in,
 * which are usable and why not, and the kernel state they depend on (huge
 * pages, NUMA nodes, msharefs, transparent huge pages for shmem).
 */
#define _GNU_SOURCE
#include "tool-common.h"

#include <iomem.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>

#define MSHARE_MAGIC 0x4d534852 /* "MSHR", the msharefs superblock magic */
#define MSHARE_DEFAULT_DIR "/sys/fs/mshare"

static const char usage[] =
        "Usage: iomem-info [--json]\n"
        "Show what libiomem can use on this machine: the backends built in, which\n"
        "are usable here and why not, their capabilities, huge pages\n"
        "(/proc/meminfo, vm.nr_hugepages), NUMA nodes, whether msharefs is mounted\n"
        "($IOMEM_MSHARE_DIR, default " MSHARE_DEFAULT_DIR ") and transparent huge pages\n"
        "for shmem.\n"
        "\n"
        "Options:\n"
        "  -j, --json  print JSON\n"
        "  -h, --help  print this help and exit\n"
        "  --version   print the version and exit\n"
        "\n"
        "Exit status: 0 shown, 1 failed (the cause is printed), 2 usage error.\n"
        "\n"
        "Example:\n"
        "  iomem-info --json | python3 -m json.tool\n";

/* -1 where a number could not be read. */
struct machine {
        long long huge_total, huge_free, huge_size_kib, nr_hugepages;
        int numa_nodes;
        char numa_online[256];
        const char *mshare_dir;
        int mshare_mounted; /* 1, 0, or -1 when the directory is missing */
        char thp_shmem[64]; /* the selected mode, "" if unknown */
        char thp_shmem_all[256];
};

/* ---- reading the kernel's state ------------------------------------------------ */

static bool read_line(const char *path, char *buf, size_t n)
{
        FILE *f = fopen(path, "re");
        if (!f)
                return false;
        bool ok = fgets(buf, (int)n, f) != NULL;
        fclose(f);
        if (ok)
                buf[strcspn(buf, "\n")] = 0;
        return ok;
}

static void read_hugepages(struct machine *m)
{
        m->huge_total = m->huge_free = m->huge_size_kib = m->nr_hugepages = -1;
        FILE *f = fopen("/proc/meminfo", "re");
        char line[256], key[64];
        long long v;
        while (f && fgets(line, sizeof line, f)) {
                if (sscanf(line, "%63[^:]: %lld", key, &v) != 2)
                        continue;
                if (!strcmp(key, "HugePages_Total"))
                        m->huge_total = v;
                else if (!strcmp(key, "HugePages_Free"))
                        m->huge_free = v;
                else if (!strcmp(key, "Hugepagesize"))
                        m->huge_size_kib = v;
        }
        if (f)
                fclose(f);
        if (read_line("/proc/sys/vm/nr_hugepages", line, sizeof line))
                m->nr_hugepages = strtoll(line, NULL, 10);
}

/* Nodes in a kernel list such as "0-3,8". */
static int count_list(const char *s)
{
        int n = 0;
        while (*s) {
                char *end;
                long a = strtol(s, &end, 10), b = a;
                if (end == s)
                        return -1;
                if (*end == '-')
                        b = strtol(end + 1, &end, 10);
                n += (int)(b - a + 1);
                s = end + (*end == ',');
        }
        return n;
}

static void read_numa(struct machine *m)
{
        m->numa_nodes = -1;
        if (read_line("/sys/devices/system/node/online", m->numa_online, sizeof m->numa_online))
                m->numa_nodes = count_list(m->numa_online);
        else
                m->numa_online[0] = 0;
}

static void read_mshare(struct machine *m)
{
        const char *dir = getenv("IOMEM_MSHARE_DIR");
        m->mshare_dir = dir && *dir ? dir : MSHARE_DEFAULT_DIR;
        struct statfs sf;
        if (statfs(m->mshare_dir, &sf) < 0)
                m->mshare_mounted = -1;
        else
                m->mshare_mounted = sf.f_type == MSHARE_MAGIC;
}

/* "always within_size advise [never] deny force": the bracketed one. */
static void read_thp(struct machine *m)
{
        m->thp_shmem[0] = 0;
        if (!read_line("/sys/kernel/mm/transparent_hugepage/shmem_enabled", m->thp_shmem_all,
                       sizeof m->thp_shmem_all)) {
                m->thp_shmem_all[0] = 0;
                return;
        }
        const char *open = strchr(m->thp_shmem_all, '['), *close = open ? strchr(open, ']') : NULL;
        if (close)
                snprintf(m->thp_shmem, sizeof m->thp_shmem, "%.*s", (int)(close - open - 1), open + 1);
}

/* ---- printing ------------------------------------------------------------------- */

static void print_number(const char *fmt_known, long long v, bool json)
{
        if (v >= 0)
                printf(fmt_known, v);
        else
                fputs(json ? "null" : "unknown", stdout);
}

/* The huge page numbers: labels as the kernel names them, JSON keys. */
static void print_hugepages(const struct machine *m, bool json)
{
        const struct {
                const char *label, *key, *fmt;
                long long v;
        } f[] = {
                { "HugePages_Total", "total", "%lld", m->huge_total },
                { "HugePages_Free", "free", "%lld", m->huge_free },
                { "Hugepagesize", "size_kib", "%lld kB", m->huge_size_kib },
                { "vm.nr_hugepages", "nr_hugepages", "%lld", m->nr_hugepages },
        };
        for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
                if (json)
                        printf("%s\"%s\": ", i ? ", " : "", f[i].key);
                else
                        printf("  %s:%*s", f[i].label, (int)(17 - strlen(f[i].label)), "");
                print_number(json ? "%lld" : f[i].fmt, f[i].v, json);
                fputs(json ? "" : "\n", stdout);
        }
}

static void print_text(const struct iomem_backend_info *b, size_t n, const struct machine *m)
{
        printf("libiomem %d.%d.%d\nbackends:\n", IOMEM_VERSION_MAJOR, IOMEM_VERSION_MINOR,
               IOMEM_VERSION_PATCH);
        for (size_t i = 0; i < n; i++) {
                printf("  %-8s %-11s ", b[i].name, b[i].available ? "usable" : "not usable");
                tool_print_caps(stdout, b[i].caps, false);
                putchar('\n');
                if (!b[i].available)
                        printf("           why: %s\n", b[i].why ? b[i].why : "not given");
        }
        printf("huge pages:\n");
        print_hugepages(m, false);
        printf("NUMA:\n  nodes online:     ");
        print_number("%lld", m->numa_nodes, false);
        if (m->numa_online[0])
                printf(" (%s)", m->numa_online);
        printf("\nmsharefs:\n  %s: %s\n", m->mshare_dir,
               m->mshare_mounted > 0 ? "mounted"
               : m->mshare_mounted   ? "not mounted (no such directory)"
                                     : "not mounted (another file system is there)");
        printf("transparent huge pages for shmem:\n  shmem_enabled:    %s",
               m->thp_shmem[0] ? m->thp_shmem : "unknown");
        if (m->thp_shmem_all[0])
                printf(" (%s)", m->thp_shmem_all);
        putchar('\n');
}

static void print_json(const struct iomem_backend_info *b, size_t n, const struct machine *m)
{
        printf("{\n  \"version\": \"%d.%d.%d\",\n  \"backends\": [", IOMEM_VERSION_MAJOR,
               IOMEM_VERSION_MINOR, IOMEM_VERSION_PATCH);
        for (size_t i = 0; i < n; i++) {
                printf("%s\n    {\"name\": ", i ? "," : "");
                tool_print_json_string(stdout, b[i].name);
                printf(", \"built\": true, \"usable\": %s, \"why\": ", b[i].available ? "true" : "false");
                tool_print_json_string(stdout, b[i].available ? NULL : b[i].why);
                printf(", \"caps\": ");
                tool_print_caps(stdout, b[i].caps, true);
                putchar('}');
        }
        printf("\n  ],\n  \"hugepages\": {");
        print_hugepages(m, true);
        printf("},\n  \"numa\": {\"nodes\": ");
        print_number("%lld", m->numa_nodes, true);
        printf(", \"online\": ");
        tool_print_json_string(stdout, m->numa_online[0] ? m->numa_online : NULL);
        printf("},\n  \"mshare\": {\"dir\": ");
        tool_print_json_string(stdout, m->mshare_dir);
        printf(", \"mounted\": %s},\n  \"thp_shmem\": ", m->mshare_mounted > 0 ? "true" : "false");
        tool_print_json_string(stdout, m->thp_shmem[0] ? m->thp_shmem : NULL);
        printf("\n}\n");
}

int main(int argc, char *argv[])
{
        static const struct option longopts[] = {
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                TOOL_VERSION_OPTION,
                { 0 },
        };
        bool json = false;
        int c;
        while ((c = tool_getopt(argc, argv, ":jh", longopts, usage)) != -1) {
                if (c != 'j')
                        return TOOL_USAGE;
                json = true;
        }
        if (optind < argc)
                return tool_usage_error("unexpected argument '%s'", argv[optind]);

        ssize_t n = iomem_backends(NULL, 0);
        if (n < 0)
                return tool_lib_fail(NULL);
        struct iomem_backend_info *b = calloc((size_t)n + 1, sizeof *b);
        if (!b)
                return tool_fail("out of memory");
        if (iomem_backends(b, (size_t)n) < 0) {
                free(b);
                return tool_lib_fail(NULL);
        }
        struct machine m;
        read_hugepages(&m);
        read_numa(&m);
        read_mshare(&m);
        read_thp(&m);
        if (json)
                print_json(b, (size_t)n, &m);
        else
                print_text(b, (size_t)n, &m);
        free(b);
        return TOOL_OK;
}
