/* SPDX-License-Identifier: MIT */
/*
 * iomem-remote: serve an object to other hosts, or fetch one from a
 * server, by RMA through libfabric (iomem_export(3)). The bytes go
 * between the two objects' memory; neither side copies them.
 */
#define _GNU_SOURCE
#include "tool-common.h"

#include <iomem.h>

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* A fetch reads in pieces of this size, for the progress bar. */
#define CHUNK ((size_t)16 << 20)

static const char usage[] =
        "Usage: iomem-remote serve [OPTIONS] SRC ADDR\n"
        "       iomem-remote fetch [OPTIONS] ADDR DST\n"
        "Share an object with other hosts by RMA (libfabric), or fetch one.\n"
        "\n"
        "serve: export the object SRC at ADDR (HOST:PORT; port 0 picks one), print\n"
        "the address peers use on standard output, and serve until interrupted\n"
        "(SIGINT, SIGTERM) or, with --once, until the first peer has come and gone.\n"
        "  -w, --writable       let peers write the object too\n"
        "      --once           stop after the first peer disconnects\n"
        "\n"
        "fetch: copy the export at ADDR into DST, which is created or resized to it\n"
        "(and removed again if it was created and the fetch fails).\n"
        "  -p, --progress       show a progress bar (bytes, rate, ETA) on standard\n"
        "                       error when it is a terminal (the default)\n"
        "  -q, --quiet          no progress bar\n"
        "  -s, --stats          print bytes, seconds and GiB/s on standard error\n"
        "      --json           --stats as one JSON object\n"
        "\n"
        "  -h, --help           this help\n"
        "      --version        the library's version\n"
        "\n"
        "SRC and DST are object URIs (shm:NAME, dax:PATH, ...) or file paths, which\n"
        "go through dax: (the file's own memory). FI_PROVIDER picks libfabric's\n"
        "provider (fi_info lists them).\n"
        "Exit status: 0 done, 1 failed (the cause is printed), 2 usage error.\n"
        "\n"
        "Examples:\n"
        "  iomem-remote serve shm:frames 10.0.0.1:7000\n"
        "  iomem-remote fetch --stats 10.0.0.1:7000 /tmp/frames.bin\n";

enum { OPT_ONCE = 0x101, OPT_JSON };

struct options {
        bool serve, writable, once, progress, stats, json;
        const char *addr, *object; /* the object: SRC or DST, as given */
        char uri[4096];            /* its URI: a path goes through dax: */
};

static int parse(int argc, char *argv[], struct options *o)
{
        static const struct option longopts[] = {
                { "writable", no_argument, NULL, 'w' },
                { "once", no_argument, NULL, OPT_ONCE },
                { "progress", no_argument, NULL, 'p' },
                { "quiet", no_argument, NULL, 'q' },
                { "stats", no_argument, NULL, 's' },
                { "json", no_argument, NULL, OPT_JSON },
                { "help", no_argument, NULL, 'h' },
                TOOL_VERSION_OPTION,
                { NULL, 0, NULL, 0 },
        };
        *o = (struct options){ .progress = true };
        int c;
        while ((c = tool_getopt(argc, argv, ":wpqsh", longopts, usage)) != -1) {
                switch (c) {
                case 'w':
                        o->writable = true;
                        break;
                case OPT_ONCE:
                        o->once = true;
                        break;
                case 'p':
                case 'q':
                        o->progress = c == 'p';
                        break;
                case 's':
                        o->stats = true;
                        break;
                case OPT_JSON:
                        o->json = true;
                        break;
                default:
                        return TOOL_USAGE;
                }
        }
        if (optind >= argc)
                return tool_usage_error("expected serve or fetch");
        const char *cmd = argv[optind++];
        if (strcmp(cmd, "serve") && strcmp(cmd, "fetch"))
                return tool_usage_error("unknown command '%s': serve or fetch", cmd);
        o->serve = !strcmp(cmd, "serve");
        if (argc - optind != 2)
                return tool_usage_error("%s expects %s, got %d argument%s", cmd,
                                        o->serve ? "SRC and ADDR" : "ADDR and DST", argc - optind,
                                        argc - optind == 1 ? "" : "s");
        o->object = argv[optind + (o->serve ? 0 : 1)];
        o->addr = argv[optind + (o->serve ? 1 : 0)];
        if (o->serve && (o->stats || o->json))
                return tool_usage_error("--stats applies to fetch");
        if (!o->serve && (o->writable || o->once))
                return tool_usage_error("--%s applies to serve", o->writable ? "writable" : "once");
        if (o->json && !o->stats)
                return tool_usage_error("--json applies to --stats");
        if (!strchr(o->addr, ':'))
                return tool_usage_error("%s: an address is HOST:PORT", o->addr);
        int n = snprintf(o->uri, sizeof o->uri, tool_is_uri(o->object) ? "%s" : "dax:%s", o->object);
        if (n < 0 || (size_t)n >= sizeof o->uri)
                return tool_usage_error("%s is too long", o->serve ? "SRC" : "DST");
        char backend[64];
        if (tool_backend_is_private(tool_uri_backend(o->uri, backend, sizeof backend)))
                return tool_usage_error("%s: a %s object exists only inside the process that made it; "
                                        "name a shared one (shm:NAME) or a file",
                                        o->object, backend);
        return TOOL_OK;
}

/* ---- serve ----------------------------------------------------------------- */

static int serve(const struct options *o)
{
        /* Read-write where it may be, even to serve it read-only: the
         * export then pins memory for the object's holes too. */
        struct iomem *f = NULL;
        int err = iomem_open(&f, o->uri, IOMEM_RDWR, NULL);
        if (!o->writable && (err == -EACCES || err == -EPERM || err == -EROFS))
                err = iomem_open(&f, o->uri, IOMEM_RDONLY, NULL);
        if (err < 0)
                return tool_lib_fail(o->object);
        struct iomem_stat st;
        if (iomem_stat(f, &st) < 0) {
                iomem_close(&f);
                return tool_lib_fail(o->object);
        }
        if (!st.size) {
                iomem_close(&f);
                return tool_fail("%s: empty: there is nothing to serve", o->object);
        }
        /* The signals that end the service are waited for, not handled:
         * blocked before the export's thread starts. */
        sigset_t stop;
        sigemptyset(&stop);
        sigaddset(&stop, SIGINT);
        sigaddset(&stop, SIGTERM);
        sigaddset(&stop, SIGHUP);
        sigprocmask(SIG_BLOCK, &stop, NULL);
        size_t len = (st.size + st.page_size - 1) / st.page_size * st.page_size;
        struct iomem_export *x = NULL;
        if (iomem_export(&x, f, 0, len, o->addr, o->writable ? IOMEM_EXPORT_WRITE : 0) < 0) {
                int r = tool_fail("serving %s at %s: %s", o->object, o->addr, tool_errormsg());
                iomem_close(&f);
                return r;
        }
        printf("%s\n", iomem_export_addr(x));
        fflush(stdout);
        /* Wake ten times a second to see whether --once's peer has gone. */
        for (;;) {
                struct timespec tick = { 0, 100 * 1000 * 1000 };
                if (sigtimedwait(&stop, NULL, &tick) >= 0)
                        break;
                uint64_t served = 0;
                if (o->once && iomem_export_peers(x, &served) == 0 && served > 0)
                        break;
        }
        int r = TOOL_OK;
        if (iomem_export_close(&x) < 0)
                r = tool_lib_fail(o->object);
        if (iomem_close(&f) < 0 && r == TOOL_OK)
                r = tool_lib_fail(o->object);
        return r;
}

/* ---- fetch ----------------------------------------------------------------- */

static void print_stats(size_t bytes, double seconds, bool json)
{
        double gibs = (double)bytes / (seconds > 0 ? seconds : 1e-9) / (1 << 30);
        if (json)
                fprintf(stderr, "{\"bytes\": %zu, \"seconds\": %.6f, \"gib_per_s\": %.3f}\n", bytes, seconds,
                        gibs);
        else
                fprintf(stderr, "bytes:   %zu\nseconds: %.6f\nGiB/s:   %.3f\n", bytes, seconds, gibs);
}

static int fetch(const struct options *o)
{
        struct iomem_remote *rm = NULL;
        if (iomem_remote_open(&rm, o->addr) < 0)
                return tool_lib_fail(o->addr);
        ssize_t size = iomem_remote_size(rm);
        struct iomem *f = NULL;
        int r = TOOL_OK, err = 0;
        /* Made here, it goes again if the fetch fails. */
        bool made = size >= 0 && (err = iomem_open(&f, o->uri, IOMEM_RDWR, NULL)) == -ENOENT &&
                    (err = iomem_open(&f, o->uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL)) == 0;
        if (size < 0 || err < 0) {
                r = tool_lib_fail(size < 0 ? o->addr : o->object);
                iomem_remote_close(&rm);
                return r;
        }
        struct tool_progress p;
        tool_progress_start(&p, o->progress, (size_t)size);
        size_t done = 0;
        if (iomem_truncate(f, (size_t)size) < 0)
                r = tool_lib_fail(o->object);
        while (r == TOOL_OK && done < (size_t)size) {
                size_t want = (size_t)size - done < CHUNK ? (size_t)size - done : CHUNK;
                if (iomem_remote_read(rm, done, f, done, want) < 0) {
                        if (p.on)
                                fputc('\n', stderr);
                        r = tool_fail("fetching %s into %s: %s", o->addr, o->object, tool_errormsg());
                        break;
                }
                done += want;
                tool_progress_draw(&p, done, false);
        }
        double seconds = tool_now() - p.start;
        if (r == TOOL_OK)
                tool_progress_draw(&p, done, true);
        iomem_remote_close(&rm);
        if (iomem_close(&f) < 0 && r == TOOL_OK)
                r = tool_lib_fail(o->object);
        if (r != TOOL_OK && made)
                iomem_unlink(o->uri);
        if (r == TOOL_OK && o->stats)
                print_stats(done, seconds, o->json);
        return r;
}

int main(int argc, char *argv[])
{
        struct options o;
        int r = parse(argc, argv, &o);
        if (r != TOOL_OK)
                return r;
        return o.serve ? serve(&o) : fetch(&o);
}
