/* SPDX-License-Identifier: MIT */
/* Helpers shared by iomem-sendfile, iomem-mmap, iomem-info and iomem-remote. */
#define _GNU_SOURCE
#include "tool-common.h"

#include <iomem.h>

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void vmessage(const char *fmt, va_list ap)
{
        fprintf(stderr, "%s: ", program_invocation_short_name);
        vfprintf(stderr, fmt, ap);
}

int tool_fail(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vmessage(fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return TOOL_RUNTIME;
}

const char *tool_create_hint;

/* Cut n bytes at p out of the string. */
static void cut(char *p, size_t n)
{
        memmove(p, p + n, strlen(p + n) + 1);
}

/* The library's message, reworded for whoever typed the command: the
 * library names its own function and its flags, which a shell user never
 * wrote, and the descriptors the tool opened, which only the tool knows. */
static void for_the_user(char *msg, size_t cap)
{
        /* "iomem_open: shm:x: ..." */
        char *colon = strstr(msg, ": ");
        if (!strncmp(msg, "iomem_", 6) && colon && !memchr(msg, ' ', (size_t)(colon - msg)))
                cut(msg, (size_t)(colon + 2 - msg));
        /* " (open with IOMEM_CREATE to create it)", " (IOMEM_EXCL)" */
        for (char *open; (open = strstr(msg, " (")) != NULL;) {
                char *close = strchr(open, ')');
                if (!close || !memmem(open, (size_t)(close - open), "IOMEM_", 6))
                        break;
                bool create = memmem(open, (size_t)(close - open), "IOMEM_CREATE", 12) != NULL;
                cut(open, (size_t)(close + 1 - open));
                if (create && tool_create_hint) {
                        size_t n = strlen(msg);
                        snprintf(msg + n, cap - n, " (%s)", tool_create_hint);
                }
        }
        /* "writing to fd 5: " (the tool's own message names its DST) */
        for (char *w; (w = strstr(msg, "writing to fd ")) != NULL;) {
                char *end = strstr(w, ": ");
                if (!end)
                        break;
                cut(w, (size_t)(end + 2 - w));
        }
}

const char *tool_errormsg(void)
{
        /* Scripts read errors line by line: keep the message on one. */
        static __thread char msg[600];
        snprintf(msg, sizeof msg, "%s", iomem_errormsg());
        for (char *p = msg; *p; p++)
                if (*p == '\n')
                        *p = ' ';
        for_the_user(msg, sizeof msg);
        return msg;
}

int tool_lib_fail(const char *obj)
{
        const char *msg = tool_errormsg();
        if (obj && !strstr(msg, obj))
                return tool_fail("%s: %s", obj, msg);
        return tool_fail("%s", msg);
}

int tool_usage_error(const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vmessage(fmt, ap);
        va_end(ap);
        fprintf(stderr, " (try '%s --help')\n", program_invocation_short_name);
        return TOOL_USAGE;
}

int tool_getopt(int argc, char *argv[], const char *optstring, const struct option *longopts,
                const char *usage)
{
        /* Our own messages: getopt's take two lines and name no help. */
        opterr = 0;
        int c = getopt_long(argc, argv, optstring, longopts, NULL);
        if (c == 'h') {
                fputs(usage, stdout);
                exit(TOOL_OK);
        }
        if (c == TOOL_OPT_VERSION) {
                printf("%s (libiomem) %d.%d.%d\n", program_invocation_short_name,
                       IOMEM_VERSION_MAJOR, IOMEM_VERSION_MINOR, IOMEM_VERSION_PATCH);
                exit(TOOL_OK);
        }
        if (c == ':')
                tool_usage_error("option '%s' needs a value", argv[optind - 1]);
        else if (c == '?' && optopt)
                tool_usage_error("unknown option '-%c'", optopt);
        else if (c == '?') /* optopt is 0 for a long option */
                tool_usage_error("unknown option '%s'", argv[optind - 1]);
        return c == ':' ? '?' : c;
}

int tool_parse_size(const char *s, size_t *out)
{
        static const struct {
                const char *suffix;
                unsigned shift;
        } units[] = {
                { "", 0 },     { "K", 10 },  { "k", 10 },  { "KiB", 10 }, { "M", 20 },
                { "m", 20 },   { "MiB", 20 }, { "G", 30 },  { "g", 30 },   { "GiB", 30 },
                { "T", 40 },   { "t", 40 },  { "TiB", 40 },
        };
        /* strtoull alone would take signs, spaces and octal; strtod would
         * round. Whole digits, then a fraction of up to 12 digits. */
        if (!s || *s < '0' || *s > '9')
                return -1;
        char *end;
        errno = 0;
        unsigned long long whole = strtoull(s, &end, 10);
        unsigned long long frac = 0, scale = 1;
        if (errno)
                return -1;
        if (*end == '.') {
                for (end++; *end >= '0' && *end <= '9'; end++) {
                        if (scale == 1000000000000ULL)
                                return -1;
                        frac = frac * 10 + (unsigned long long)(*end - '0');
                        scale *= 10;
                }
                if (scale == 1)
                        return -1; /* "1." */
        }
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
                if (strcmp(end, units[i].suffix))
                        continue;
                unsigned shift = units[i].shift;
                if (whole > (SIZE_MAX >> shift))
                        return -1;
                /* The fraction must come to whole bytes: 1.5K, not 0.1K. */
                unsigned __int128 part = (unsigned __int128)frac << shift;
                if (part % scale)
                        return -1;
                unsigned __int128 v = ((unsigned __int128)whole << shift) + part / scale;
                if (v > SIZE_MAX)
                        return -1;
                *out = (size_t)v;
                return 0;
        }
        return -1;
}

bool tool_backend(const char *name, size_t len, struct iomem_backend_info *out)
{
        ssize_t n = iomem_backends(NULL, 0);
        struct iomem_backend_info *all = n > 0 ? calloc((size_t)n, sizeof *all) : NULL;
        bool found = false;
        if (all && iomem_backends(all, (size_t)n) == n) {
                for (ssize_t i = 0; i < n && !found; i++) {
                        found = strlen(all[i].name) == len && !strncmp(all[i].name, name, len);
                        if (found && out)
                                *out = all[i];
                }
        }
        free(all);
        return found;
}

bool tool_is_uri(const char *word)
{
        size_t n = strspn(word, "abcdefghijklmnopqrstuvwxyz0123456789_");
        return n > 0 && word[n] == ':';
}

const char *tool_uri_backend(const char *uri, char *buf, size_t n)
{
        /* The same rule as the library's: everything before the first
         * colon is the scheme. */
        const char *colon = strchr(uri, ':');
        if (colon) {
                snprintf(buf, n, "%.*s", (int)(colon - uri), uri);
                return buf;
        }
        const char *def = getenv("IOMEM_BACKEND");
        if (!def || !*def)
                def = tool_backend("memfd", 5, NULL) ? "memfd" : "shm";
        snprintf(buf, n, "%s", def);
        return buf;
}

bool tool_backend_is_private(const char *backend)
{
        struct iomem_backend_info b;
        return tool_backend(backend, strlen(backend), &b) && !(b.caps & IOMEM_CAP_NAMED);
}

void tool_print_caps(FILE *out, unsigned caps, bool json)
{
        static const struct {
                unsigned bit;
                const char *name;
        } names[] = {
                { IOMEM_CAP_NAMED, "NAMED" },       { IOMEM_CAP_FDPASS, "FDPASS" },
                { IOMEM_CAP_SEAL, "SEAL" },         { IOMEM_CAP_HUGEPAGE, "HUGEPAGE" },
                { IOMEM_CAP_NUMA, "NUMA" },         { IOMEM_CAP_GIFT, "GIFT" },
                { IOMEM_CAP_PTSHARE, "PTSHARE" },   { IOMEM_CAP_DAX, "DAX" },
                { IOMEM_CAP_RESIZE, "RESIZE" },     { IOMEM_CAP_THP, "THP" },
                { IOMEM_CAP_SHARED, "SHARED" },     { IOMEM_CAP_RESERVED, "RESERVED" },
        };
        const char *sep = "";
        fputs(json ? "[" : "", out);
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                if (!(caps & names[i].bit))
                        continue;
                fprintf(out, json ? "%s\"%s\"" : "%s%s", sep, names[i].name);
                sep = json ? ", " : " ";
                caps &= ~names[i].bit;
        }
        /* Bits added to iomem.h after this tool was built still show. */
        if (caps)
                fprintf(out, json ? "%s\"%#x\"" : "%s%#x", sep, caps);
        else if (!*sep && !json)
                fputs("none", out);
        fputs(json ? "]" : "", out);
}

void tool_print_json_string(FILE *out, const char *s)
{
        if (!s) {
                fputs("null", out);
                return;
        }
        fputc('"', out);
        static const char from[] = "\"\\\n\r\t", to[] = "\"\\nrt";
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                const char *k = strchr(from, *p);
                if (k)
                        fprintf(out, "\\%c", to[k - from]);
                else if (*p < 0x20)
                        fprintf(out, "\\u%04x", *p);
                else
                        fputc(*p, out);
        }
        fputc('"', out);
}

/* ---- progress ------------------------------------------------------------ */

/* Redraw the bar at most this often (seconds). */
#define REDRAW 0.1

double tool_now(void)
{
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void tool_progress_start(struct tool_progress *p, bool wanted, size_t total)
{
        *p = (struct tool_progress){ .on = wanted && isatty(STDERR_FILENO), .total = total };
        p->start = tool_now();
}

static void human(char *buf, size_t n, double bytes)
{
        static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
        size_t u = 0;
        while (bytes >= 1024 && u + 1 < sizeof units / sizeof units[0]) {
                bytes /= 1024;
                u++;
        }
        snprintf(buf, n, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
}

void tool_progress_draw(struct tool_progress *p, size_t done, bool last)
{
        double t = tool_now();
        if (!p->on || (!last && t - p->drawn < REDRAW))
                return;
        p->drawn = t;
        enum { WIDTH = 24 };
        double frac = p->total ? (double)done / (double)p->total : 1.0;
        char bar[WIDTH + 1];
        for (int i = 0; i < WIDTH; i++)
                bar[i] = i < (int)(frac * WIDTH) ? '#' : '.';
        bar[WIDTH] = 0;
        double secs = t - p->start, rate = secs > 0 ? (double)done / secs : 0;
        char d[32], tot[32], r[32], eta[32] = "--:--";
        if (p->total == SIZE_MAX) {
                human(d, sizeof d, (double)done);
                human(r, sizeof r, rate);
                fprintf(stderr, "\r%s  %s/s\033[K%s", d, r, last ? "\n" : "");
                return;
        }
        human(d, sizeof d, (double)done);
        human(tot, sizeof tot, (double)p->total);
        human(r, sizeof r, rate);
        if (rate > 0) {
                unsigned long left = (unsigned long)((double)(p->total - done) / rate + 0.5);
                if (left >= 3600)
                        snprintf(eta, sizeof eta, "%lu:%02lu:%02lu", left / 3600, left / 60 % 60, left % 60);
                else
                        snprintf(eta, sizeof eta, "%lu:%02lu", left / 60, left % 60);
        }
        /* \r and "erase to end of line": this is only ever a terminal. */
        fprintf(stderr, "\r[%s] %s / %s  %s/s  ETA %s\033[K%s", bar, d, tot, r, eta, last ? "\n" : "");
}
