/* SPDX-License-Identifier: MIT */
/*
 * iomem-mmap: work with shared memory objects from the shell: create,
 * inspect, write, read, dump, fill, pin, resize and remove them, one
 * subcommand a run.
 */
#define _GNU_SOURCE
#include "tool-common.h"

#include <iomem.h>

#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
        "Usage: iomem-mmap COMMAND URI [ARGUMENTS] [OPTIONS]\n"
        "Work with shared memory objects from the shell.\n"
        "\n"
        "Commands:\n"
        "  create URI --size N [--huge SIZE] [--numa POLICY[:NODE]] [--seal LIST]\n"
        "         [--mode MODE]       create an object of N bytes; fails if it exists\n"
        "  info URI [--json]          size, backend, capabilities, page size, DAX,\n"
        "                             NUMA node, pins of this process, gift counters\n"
        "  write URI OFFSET STRING|-  write STRING (or standard input, for -) at OFFSET\n"
        "  read URI OFFSET LENGTH     copy the bytes to standard output, raw\n"
        "  dump URI [OFFSET [LENGTH]] hex dump of the bytes, like xxd\n"
        "  fill URI BYTE              set every byte to BYTE (0-255, 0xHH or a\n"
        "                             character that is not a digit)\n"
        "  hold URI OFFSET LENGTH     pin (acquire) the range, whole pages, until\n"
        "                             SIGINT or SIGTERM: meanwhile no process can\n"
        "                             truncate or gift over it\n"
        "  truncate URI SIZE          set the size\n"
        "  unlink URI                 remove the name; processes that have the\n"
        "                             object open keep it\n"
        "  list [--json]              the shm objects this user can see, without their\n"
        "                             metadata objects: size, mode, owner, and how\n"
        "                             many processes have each open\n"
        "\n"
        "Options:\n"
        "  --size=N              create: the size in bytes\n"
        "  --huge=SIZE           create: huge pages of SIZE, 2M or 1G (memfd)\n"
        "  --numa=POLICY[:NODE]  create: default, preferred:NODE, bind:NODE or\n"
        "                        interleave\n"
        "  --seal=LIST           create: seals, comma-separated: shrink, grow, write\n"
        "                        (memfd)\n"
        "  --mode=MODE           create: permissions in octal (default 0600)\n"
        "  --json                info: print JSON\n"
        "  -h, --help            print this help and exit\n"
        "  --version             print the version and exit\n"
        "\n"
        "URI is shm:NAME, mshare:NAME, dax:PATH, devdax:PATH or memfd:LABEL, or\n"
        "NAME for the backend in $IOMEM_BACKEND (default memfd). A memfd object\n"
        "lives only as long as a process has it open, so every run of iomem-mmap\n"
        "would meet a new, empty one: on memfd only create makes sense (it checks\n"
        "that such an object can be made with the options given); the other\n"
        "commands refuse memfd.\n"
        "Sizes, offsets and lengths take a K, M, G or T suffix (powers of 1024) and\n"
        "decimals that come to whole bytes (1.5G). Write -- before a STRING that\n"
        "starts with a dash.\n"
        "\n"
        "Exit status: 0 done, 1 failed (the cause is printed), 2 usage error.\n"
        "\n"
        "Example, in two shells:\n"
        "  iomem-mmap create shm:ring --size 1M\n"
        "  iomem-mmap write shm:ring 0 hello\n"
        "  iomem-mmap hold shm:ring 0 4K\n"
        "  iomem-mmap truncate shm:ring 0     # in the other shell: fails, pinned\n";

/* The command line after parsing: the options of every command, and which
 * were given so that those of another command can be refused. */
struct args {
        const char *uri;
        char **pos; /* the arguments after URI */
        int npos;
        size_t size;
        size_t huge;
        int numa_policy, numa_node;
        unsigned seals;
        unsigned mode;
        bool json;
        char given[8]; /* option letters, in order */
};

/* ---- opening and small helpers ----------------------------------------------- */

static int open_object(const char *uri, unsigned flags, struct iomem **f)
{
        if (iomem_open(f, uri, flags, NULL) < 0)
                return tool_lib_fail(uri);
        return TOOL_OK;
}

/* Close f and pass r on: the commands end with "return done(&f, r)". */
static int done(struct iomem **f, int r)
{
        iomem_close(f);
        return r;
}

static int size_arg(const char *what, const char *s, size_t *v)
{
        if (tool_parse_size(s, v))
                return tool_usage_error("%s '%s' is not a number of bytes", what, s);
        return TOOL_OK;
}

/* [OFFSET [LENGTH]] from pos[first..], clamped to the object's size. */
static int range_args(const struct args *a, int first, size_t size, size_t *off, size_t *len)
{
        *off = 0;
        *len = SIZE_MAX;
        int r;
        if (a->npos > first && (r = size_arg("offset", a->pos[first], off)))
                return r;
        if (a->npos > first + 1 && (r = size_arg("length", a->pos[first + 1], len)))
                return r;
        size_t avail = *off < size ? size - *off : 0;
        if (*len > avail)
                *len = avail;
        return TOOL_OK;
}

static int object_size(struct iomem *f, const char *uri, size_t *size)
{
        struct iomem_stat st;
        if (iomem_stat(f, &st) < 0)
                return tool_lib_fail(uri);
        *size = st.size;
        return TOOL_OK;
}

/* ---- create ---------------------------------------------------------------- */

static int apply_options(struct iomem_opts *o, const struct args *a)
{
        if (iomem_opts_set_size(o, a->size) < 0 ||
            (strchr(a->given, 'H') && iomem_opts_set_hugepage(o, a->huge) < 0) ||
            (strchr(a->given, 'N') && iomem_opts_set_numa(o, a->numa_policy, a->numa_node) < 0) ||
            (strchr(a->given, 'L') && iomem_opts_set_seals(o, a->seals) < 0) ||
            (strchr(a->given, 'M') && iomem_opts_set_mode(o, a->mode) < 0))
                return tool_lib_fail(a->uri);
        return TOOL_OK;
}

static int cmd_create(const struct args *a)
{
        if (!strchr(a->given, 'S'))
                return tool_usage_error("create needs --size");
        struct iomem_opts *o;
        if (iomem_opts_new(&o) < 0)
                return tool_lib_fail(a->uri);
        struct iomem *f = NULL;
        int r = apply_options(o, a);
        if (!r && iomem_open(&f, a->uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o) < 0)
                r = tool_lib_fail(a->uri);
        iomem_opts_delete(&o);
        char backend[64];
        if (!r && tool_backend_is_private(tool_uri_backend(a->uri, backend, sizeof backend)))
                printf("%s: created (%zu bytes); it is gone again as this process exits, "
                       "since a memfd object lives only while a process has it open\n",
                       a->uri, a->size);
        return done(&f, r);
}

/* ---- info -------------------------------------------------------------------- */

static void print_info_json(const char *uri, const struct iomem_stat *st)
{
        fputs("{\n  \"uri\": ", stdout);
        tool_print_json_string(stdout, uri);
        fputs(",\n  \"backend\": ", stdout);
        tool_print_json_string(stdout, st->backend);
        printf(",\n  \"size\": %zu,\n  \"page_size\": %zu,\n  \"caps\": ", st->size, st->page_size);
        tool_print_caps(stdout, st->caps, true);
        printf(",\n  \"dax\": %s,\n", st->dax ? "true" : "false");
        if (st->numa_node < 0)
                printf("  \"numa_node\": null,\n");
        else
                printf("  \"numa_node\": %d,\n", st->numa_node);
        printf("  \"acquired\": %zu,\n  \"pinned\": %zu,\n  \"holders\": [", st->acquired, st->pinned);
        for (unsigned i = 0; i < st->nholders && i < IOMEM_STAT_HOLDERS; i++)
                printf("%s%d", i ? ", " : "", st->holders[i]);
        printf("],\n  \"nholders\": %u,\n  \"gift_adopted\": %llu,\n  \"gift_copied\": %llu\n}\n",
               st->nholders, (unsigned long long)st->gift_adopted,
               (unsigned long long)st->gift_copied);
}

/* "4242 4243" or "none"; "and N more" past the pids stat names. */
static void print_holders(const struct iomem_stat *st)
{
        if (!st->nholders)
                fputs("none", stdout);
        for (unsigned i = 0; i < st->nholders && i < IOMEM_STAT_HOLDERS; i++)
                printf("%s%d", i ? " " : "", st->holders[i]);
        if (st->nholders > IOMEM_STAT_HOLDERS)
                printf(" and %u more", st->nholders - IOMEM_STAT_HOLDERS);
        putchar('\n');
}

static void print_info_text(const char *uri, const struct iomem_stat *st)
{
        printf("uri:          %s\n"
               "backend:      %s\n"
               "size:         %zu bytes\n"
               "page size:    %zu bytes\n"
               "caps:         ",
               uri, st->backend, st->size, st->page_size);
        tool_print_caps(stdout, st->caps, false);
        printf("\ndax:          %s\n", st->dax ? "yes" : "no");
        if (st->numa_node < 0)
                printf("numa node:    unknown\n");
        else
                printf("numa node:    %d\n", st->numa_node);
        /* A fresh process (this one) acquires nothing; others may. */
        printf("pinned:       %zu bytes, by every process\n"
               "holders:      ", st->pinned);
        print_holders(st);
        printf("gift adopted: %llu bytes\n"
               "gift copied:  %llu bytes\n",
               (unsigned long long)st->gift_adopted, (unsigned long long)st->gift_copied);
}

static int cmd_info(const struct args *a)
{
        struct iomem *f = NULL;
        int r = open_object(a->uri, IOMEM_RDONLY, &f);
        if (r)
                return r;
        struct iomem_stat st;
        if (iomem_stat(f, &st) < 0)
                return done(&f, tool_lib_fail(a->uri));
        if (a->json)
                print_info_json(a->uri, &st);
        else
                print_info_text(a->uri, &st);
        return done(&f, TOOL_OK);
}

/* ---- write, read, dump, fill ------------------------------------------------- */

static int write_stdin(struct iomem *f, const char *uri, size_t off)
{
        static char buf[1 << 16];
        for (;;) {
                ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return tool_fail("standard input: %s", strerror(errno));
                if (n == 0)
                        return TOOL_OK;
                if (iomem_pwrite(f, buf, (size_t)n, off) < 0)
                        return tool_lib_fail(uri);
                off += (size_t)n;
        }
}

static int cmd_write(const struct args *a)
{
        size_t off = 0;
        int r = size_arg("offset", a->pos[0], &off);
        struct iomem *f = NULL;
        if (r || (r = open_object(a->uri, IOMEM_RDWR, &f)))
                return r;
        const char *s = a->pos[1];
        if (!strcmp(s, "-"))
                r = write_stdin(f, a->uri, off);
        else if (iomem_pwrite(f, s, strlen(s), off) < 0)
                r = tool_lib_fail(a->uri);
        return done(&f, r);
}

static int cmd_read(const struct args *a)
{
        struct iomem *f = NULL;
        size_t off = 0, len = 0;
        int r = size_arg("offset", a->pos[0], &off);
        if (r || (r = size_arg("length", a->pos[1], &len)) ||
            (r = open_object(a->uri, IOMEM_RDONLY, &f)))
                return r;
        /* As in iomem-sendfile: a reader that goes away is reported. */
        signal(SIGPIPE, SIG_IGN);
        /* One copy from the object's memory to stdout. A short count means
         * the end of the object, or a failure that the next call reports. */
        while (len) {
                ssize_t n = iomem_sendfile(STDOUT_FILENO, f, off, len);
                if (n < 0)
                        return done(&f, tool_fail("writing %s to standard output: %s", a->uri,
                                                  tool_errormsg()));
                if (n == 0)
                        break;
                off += (size_t)n;
                len -= (size_t)n;
        }
        return done(&f, TOOL_OK);
}

/* One line of xxd's default format: offset, 8 groups of 2 bytes, text. */
static void dump_line(size_t at, const unsigned char *b, size_t n)
{
        char hex[48] = "", text[17];
        size_t h = 0;
        for (size_t i = 0; i < 16; i++) {
                if (i < n)
                        h += (size_t)snprintf(hex + h, sizeof hex - h, "%02x", b[i]);
                else
                        h += (size_t)snprintf(hex + h, sizeof hex - h, "  ");
                if (i % 2 && i < 15)
                        hex[h++] = ' ';
        }
        hex[h] = 0;
        for (size_t i = 0; i < n; i++)
                text[i] = b[i] >= 0x20 && b[i] < 0x7f ? (char)b[i] : '.';
        text[n] = 0;
        printf("%08zx: %s  %s\n", at, hex, text);
}

static int cmd_dump(const struct args *a)
{
        struct iomem *f = NULL;
        size_t size = 0, off = 0, len = 0;
        int r = open_object(a->uri, IOMEM_RDONLY, &f);
        if (r || (r = object_size(f, a->uri, &size)) || (r = range_args(a, 0, size, &off, &len)))
                return done(&f, r);
        static unsigned char buf[1 << 16]; /* a multiple of 16: whole lines */
        while (len) {
                size_t want = len < sizeof buf ? len : sizeof buf;
                ssize_t n = iomem_pread(f, buf, want, off);
                if (n < 0)
                        return done(&f, tool_lib_fail(a->uri));
                if (n == 0)
                        break;
                for (size_t i = 0; i < (size_t)n; i += 16)
                        dump_line(off + i, buf + i, (size_t)n - i < 16 ? (size_t)n - i : 16);
                off += (size_t)n;
                len -= (size_t)n;
        }
        return done(&f, TOOL_OK);
}

/* 0-255 in decimal or 0xHH, or one character that is not a digit. */
static int byte_arg(const char *s, unsigned char *out)
{
        if (s[0] && !s[1] && (s[0] < '0' || s[0] > '9')) {
                *out = (unsigned char)s[0];
                return TOOL_OK;
        }
        bool hex = s[0] == '0' && (s[1] == 'x' || s[1] == 'X');
        const char *digits = hex ? s + 2 : s;
        char *end;
        errno = 0;
        unsigned long v = strtoul(digits, &end, hex ? 16 : 10);
        if (!*digits || *end || errno || v > 255 || *digits == '-' || *digits == '+')
                return tool_usage_error("byte '%s' is not 0-255, 0xHH or one character", s);
        *out = (unsigned char)v;
        return TOOL_OK;
}

static int cmd_fill(const struct args *a)
{
        unsigned char byte = 0;
        size_t size = 0;
        struct iomem *f = NULL;
        int r = byte_arg(a->pos[0], &byte);
        if (r || (r = open_object(a->uri, IOMEM_RDWR, &f)))
                return r;
        if ((r = object_size(f, a->uri, &size)))
                return done(&f, r);
        static char buf[1 << 20];
        memset(buf, byte, sizeof buf);
        for (size_t off = 0; off < size; off += sizeof buf) {
                size_t n = size - off < sizeof buf ? size - off : sizeof buf;
                if (iomem_pwrite(f, buf, n, off) < 0)
                        return done(&f, tool_lib_fail(a->uri));
        }
        return done(&f, TOOL_OK);
}

/* ---- hold -------------------------------------------------------------------- */

static int cmd_hold(const struct args *a)
{
        size_t off = 0, len = 0;
        struct iomem *f = NULL;
        int r = size_arg("offset", a->pos[0], &off);
        /* A pin is no write: read permission is enough to hold a range. */
        if (r || (r = size_arg("length", a->pos[1], &len)) ||
            (r = open_object(a->uri, IOMEM_RDONLY, &f)))
                return r;
        /* Blocked before the pin is taken, so that a signal sent as soon as
         * the "holding" line appears is waited for, not fatal. Ignored ones
         * would be discarded, never waited for, and a shell starts
         * background commands with SIGINT ignored: take the default back. */
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGTERM);
        sigprocmask(SIG_BLOCK, &set, NULL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        ssize_t n = iomem_acquire(f, off, len);
        if (n < 0)
                return done(&f, tool_lib_fail(a->uri));
        if (n == 0)
                return done(&f, tool_fail("%s: offset %zu is at or past the end: nothing to hold",
                                          a->uri, off));
        printf("holding [%zu, %zu) of %s; send SIGINT or SIGTERM to release\n", off,
               off + (size_t)n, a->uri);
        fflush(stdout);
        int sig;
        while (sigwait(&set, &sig))
                ;
        if (iomem_release(f, off, (size_t)n) < 0)
                return done(&f, tool_lib_fail(a->uri));
        return done(&f, TOOL_OK);
}

/* ---- truncate, unlink ---------------------------------------------------------- */

static int cmd_truncate(const struct args *a)
{
        size_t size = 0;
        struct iomem *f = NULL;
        int r = size_arg("size", a->pos[0], &size);
        if (r || (r = open_object(a->uri, IOMEM_RDWR, &f)))
                return r;
        if (iomem_truncate(f, size) < 0)
                r = tool_lib_fail(a->uri);
        return done(&f, r);
}

static int cmd_unlink(const struct args *a)
{
        if (iomem_unlink(a->uri) < 0)
                return tool_lib_fail(a->uri);
        return TOOL_OK;
}

/* ---- list ------------------------------------------------------------------------ */

#define SHM_DIR "/dev/shm"

/* How many processes have each file of SHM_DIR open, from /proc/PID/fd
 * (what fuser(1) reads): names[i] is held by counts[i] processes. */
struct holders {
        char **names;
        unsigned *counts;
        size_t n;
};

static void holders_add(struct holders *h, const char *name, pid_t pid, pid_t *last)
{
        for (size_t i = 0; i < h->n; i++) {
                if (strcmp(h->names[i], name))
                        continue;
                if (last[i] != pid) { /* one process with it open twice counts once */
                        h->counts[i]++;
                        last[i] = pid;
                }
                return;
        }
        char *copy = strdup(name);
        char **names = realloc(h->names, (h->n + 1) * sizeof *names);
        unsigned *counts = names ? realloc(h->counts, (h->n + 1) * sizeof *counts) : NULL;
        if (names)
                h->names = names;
        if (counts)
                h->counts = counts;
        if (!copy || !names || !counts) {
                free(copy);
                return; /* out of memory: a count too low, nothing worse */
        }
        h->names[h->n] = copy;
        h->counts[h->n] = 1;
        last[h->n++] = pid;
}

static void holders_scan(struct holders *h)
{
        enum { MAX_FILES = 65536 };
        static pid_t last[MAX_FILES];
        DIR *proc = opendir("/proc");
        struct dirent *p;
        while (proc && (p = readdir(proc))) {
                char *end;
                long pid = strtol(p->d_name, &end, 10);
                if (*end || pid <= 0)
                        continue;
                char dir[64];
                snprintf(dir, sizeof dir, "/proc/%ld/fd", pid);
                DIR *fds = opendir(dir); /* another user's: not ours to see */
                struct dirent *e;
                while (fds && (e = readdir(fds))) {
                        char link[PATH_MAX], target[PATH_MAX];
                        snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
                        ssize_t n = readlink(link, target, sizeof target - 1);
                        if (n <= 0)
                                continue;
                        target[n] = 0;
                        if (!strncmp(target, SHM_DIR "/", sizeof SHM_DIR) && h->n < MAX_FILES)
                                holders_add(h, target + sizeof SHM_DIR, (pid_t)pid, last);
                }
                if (fds)
                        closedir(fds);
        }
        if (proc)
                closedir(proc);
}

static unsigned holders_of(const struct holders *h, const char *name)
{
        for (size_t i = 0; i < h->n; i++)
                if (!strcmp(h->names[i], name))
                        return h->counts[i];
        return 0;
}

static void holders_free(struct holders *h)
{
        for (size_t i = 0; i < h->n; i++)
                free(h->names[i]);
        free(h->names);
        free(h->counts);
}

/* An object's metadata (NAME.iomem), or what is not an object at all (a
 * POSIX semaphore, sem.NAME). */
static bool is_object(const char *name)
{
        size_t n = strlen(name), s = strlen(".iomem");
        return name[0] != '.' && strncmp(name, "sem.", 4) && !(n >= s && !strcmp(name + n - s, ".iomem"));
}

static int cmd_list(const struct args *a)
{
        DIR *d = opendir(SHM_DIR);
        if (!d)
                return tool_fail("%s: %s", SHM_DIR, strerror(errno));
        struct holders h = { 0 };
        holders_scan(&h);
        if (!a->json)
                printf("%-32s %14s %5s %-12s %7s\n", "URI", "SIZE", "MODE", "OWNER", "HOLDERS");
        else
                printf("[");
        const char *sep = "";
        struct dirent *e;
        while ((e = readdir(d))) {
                struct stat st;
                if (!is_object(e->d_name) || fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
                    !S_ISREG(st.st_mode))
                        continue;
                char uri[NAME_MAX + 8], owner[32];
                snprintf(uri, sizeof uri, "shm:%s", e->d_name);
                struct passwd *pw = getpwuid(st.st_uid);
                if (pw)
                        snprintf(owner, sizeof owner, "%s", pw->pw_name);
                else
                        snprintf(owner, sizeof owner, "%u", (unsigned)st.st_uid);
                unsigned held = holders_of(&h, e->d_name);
                if (!a->json) {
                        printf("%-32s %14lld %04o %-12s %7u\n", uri, (long long)st.st_size,
                               (unsigned)(st.st_mode & 07777), owner, held);
                        continue;
                }
                printf("%s\n  {\"uri\": ", sep);
                tool_print_json_string(stdout, uri);
                printf(", \"size\": %lld, \"mode\": \"%04o\", \"owner\": ", (long long)st.st_size,
                       (unsigned)(st.st_mode & 07777));
                tool_print_json_string(stdout, owner);
                printf(", \"holders\": %u}", held);
                sep = ",";
        }
        if (a->json)
                printf("%s]\n", *sep ? "\n" : "");
        closedir(d);
        holders_free(&h);
        return TOOL_OK;
}

/* ---- the command line ------------------------------------------------------------ */

static const struct command {
        const char *name, *synopsis;
        int min, max;       /* arguments after URI; -1: no URI either */
        const char *opts;   /* letters of the options it takes */
        bool memfd_ok;      /* meaningful on an object that dies with us */
        int (*run)(const struct args *a);
} commands[] = {
        { "create", "URI --size N [OPTIONS]", 0, 0, "SHNLM", true, cmd_create },
        { "info", "URI [--json]", 0, 0, "j", false, cmd_info },
        { "write", "URI OFFSET STRING|-", 2, 2, "", false, cmd_write },
        { "read", "URI OFFSET LENGTH", 2, 2, "", false, cmd_read },
        { "dump", "URI [OFFSET [LENGTH]]", 0, 2, "", false, cmd_dump },
        { "fill", "URI BYTE", 1, 1, "", false, cmd_fill },
        { "hold", "URI OFFSET LENGTH", 2, 2, "", false, cmd_hold },
        { "truncate", "URI SIZE", 1, 1, "", false, cmd_truncate },
        { "unlink", "URI", 0, 0, "", false, cmd_unlink },
        { "list", "[--json]", -1, -1, "j", true, cmd_list },
};

static int numa_arg(const char *s, struct args *a)
{
        static const struct {
                const char *name;
                int policy;
                bool node; /* needs one */
        } policies[] = {
                { "default", IOMEM_NUMA_DEFAULT, false },
                { "preferred", IOMEM_NUMA_PREFERRED, true },
                { "bind", IOMEM_NUMA_BIND, true },
                { "interleave", IOMEM_NUMA_INTERLEAVE, false },
        };
        const char *colon = strchr(s, ':');
        size_t len = colon ? (size_t)(colon - s) : strlen(s);
        for (size_t i = 0; i < sizeof policies / sizeof policies[0]; i++) {
                if (strlen(policies[i].name) != len || strncmp(s, policies[i].name, len))
                        continue;
                a->numa_policy = policies[i].policy;
                a->numa_node = -1;
                if (!colon && !policies[i].node)
                        return TOOL_OK;
                char *end;
                errno = 0;
                long node = colon ? strtol(colon + 1, &end, 10) : -1;
                if (!colon || colon[1] < '0' || colon[1] > '9' || *end || errno || node > INT_MAX)
                        return tool_usage_error("--numa %s: expected %s:NODE, NODE a number", s,
                                                policies[i].name);
                a->numa_node = (int)node;
                return TOOL_OK;
        }
        return tool_usage_error("--numa %s: the policy is default, preferred, bind or interleave", s);
}

static int seal_arg(const char *s, unsigned *seals)
{
        static const struct {
                const char *name;
                unsigned bit;
        } names[] = {
                { "shrink", IOMEM_SEAL_SHRINK },
                { "grow", IOMEM_SEAL_GROW },
                { "write", IOMEM_SEAL_WRITE },
        };
        *seals = 0;
        for (const char *p = s; *p;) {
                size_t len = strcspn(p, ",");
                size_t i = 0;
                while (i < sizeof names / sizeof names[0] &&
                       (strlen(names[i].name) != len || strncmp(p, names[i].name, len)))
                        i++;
                if (i == sizeof names / sizeof names[0])
                        return tool_usage_error("--seal %s: seals are shrink, grow and write", s);
                *seals |= names[i].bit;
                p += len + (p[len] == ',');
        }
        return TOOL_OK;
}

static int mode_arg(const char *s, unsigned *mode)
{
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 8);
        if (*s < '0' || *s > '7' || *end || errno || v > 0777)
                return tool_usage_error("--mode %s: expected octal permissions, 0 to 0777", s);
        *mode = (unsigned)v;
        return TOOL_OK;
}

/* The options, into a; argv[0] is the command's name. */
static int parse_options(int argc, char *argv[], struct args *a)
{
        static const struct option longopts[] = {
                { "size", required_argument, NULL, 'S' },
                { "huge", required_argument, NULL, 'H' },
                { "numa", required_argument, NULL, 'N' },
                { "seal", required_argument, NULL, 'L' },
                { "mode", required_argument, NULL, 'M' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                TOOL_VERSION_OPTION,
                { 0 },
        };
        int c, r = TOOL_OK;
        while (!r && (c = tool_getopt(argc, argv, ":h", longopts, usage)) != -1) {
                switch (c) {
                case 'S':
                        r = size_arg("--size", optarg, &a->size);
                        break;
                case 'H':
                        r = size_arg("--huge", optarg, &a->huge);
                        break;
                case 'N':
                        r = numa_arg(optarg, a);
                        break;
                case 'L':
                        r = seal_arg(optarg, &a->seals);
                        break;
                case 'M':
                        r = mode_arg(optarg, &a->mode);
                        break;
                case 'j':
                        a->json = true;
                        break;
                default:
                        return TOOL_USAGE;
                }
                size_t n = strlen(a->given);
                if (!strchr(a->given, c) && n + 1 < sizeof a->given)
                        a->given[n] = (char)c;
        }
        return r;
}

static const char *option_name(char letter)
{
        switch (letter) {
        case 'S': return "--size";
        case 'H': return "--huge";
        case 'N': return "--numa";
        case 'L': return "--seal";
        case 'M': return "--mode";
        default: return "--json";
        }
}

int main(int argc, char *argv[])
{
        tool_create_hint = "iomem-mmap create makes one";
        if (argc < 2)
                return tool_usage_error("missing COMMAND");
        if (argv[1][0] == '-') {
                /* --help and --version come before a command (and exit). */
                struct args none = { 0 };
                int r = parse_options(argc, argv, &none);
                return r ? r : tool_usage_error("expected a COMMAND before the options");
        }
        const struct command *cmd = NULL;
        for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
                if (!strcmp(argv[1], commands[i].name))
                        cmd = &commands[i];
        if (!cmd)
                return tool_usage_error("unknown command '%s'", argv[1]);
        struct args a = { 0 };
        int r = parse_options(argc - 1, argv + 1, &a);
        if (r)
                return r;
        for (const char *g = a.given; *g; g++)
                if (!strchr(cmd->opts, *g))
                        return tool_usage_error("%s does not apply to %s", option_name(*g), cmd->name);
        int nargs = argc - 1 - optind;
        if (cmd->min < 0) {
                if (nargs != 0)
                        return tool_usage_error("expected %s %s", cmd->name, cmd->synopsis);
                return cmd->run(&a);
        }
        if (nargs < 1 || nargs - 1 < cmd->min || nargs - 1 > cmd->max)
                return tool_usage_error("expected %s %s", cmd->name, cmd->synopsis);
        a.uri = argv[1 + optind];
        a.pos = argv + 2 + optind;
        a.npos = nargs - 1;
        char backend[64];
        if (!cmd->memfd_ok && tool_backend_is_private(tool_uri_backend(a.uri, backend, sizeof backend)))
                return tool_usage_error("%s: a memfd object lives only while a process has it open, "
                                        "so %s would meet a new, empty one; only create applies to memfd",
                                        a.uri, cmd->name);
        return cmd->run(&a);
}
