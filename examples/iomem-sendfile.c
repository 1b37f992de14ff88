/* SPDX-License-Identifier: MIT */
/*
 * iomem-sendfile: copy bytes of a shared memory object or a file to a
 * file, a pipe or a socket with one copy, through iomem_sendfile.
 *
 * The copy goes in chunks rather than one call so that a progress bar can
 * move and so that --stats can count the iovecs each chunk needed. With
 * --aio the chunks are asynchronous transfers (iomem_aio_write or
 * iomem_aio_send), DEPTH of them in flight.
 */
#define _GNU_SOURCE
#include "tool-common.h"

#include <iomem.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Large enough that per-call costs vanish, small enough that the bar
 * moves several times a second even on a slow destination. */
#define CHUNK ((size_t)16 << 20)

/* One asynchronous request: big enough to amortise its cost, small enough
 * that DEPTH of them overlap on a 64 MiB source. */
#define AIO_CHUNK ((size_t)1 << 20)
#define AIO_DEPTH 16
#define AIO_MAX_DEPTH 4096

static const char usage[] =
        "Usage: iomem-sendfile [OPTIONS] SRC DST\n"
        "Copy bytes of SRC to DST with one copy (iomem_sendfile, iomem_copy).\n"
        "\n"
        "SRC  shm:NAME, mshare:NAME, dax:PATH or devdax:PATH, or a plain PATH\n"
        "     (opened as dax:PATH), or - for standard input. memfd: is refused:\n"
        "     a memfd object exists only inside the process that made it.\n"
        "DST  a PATH (created with mode 0644, truncated unless --append),\n"
        "     - for standard output, unix:PATH or tcp:HOST:PORT (connect and send;\n"
        "     tcp:[ADDR]:PORT for an IPv6 address), or an object's URI: loaded\n"
        "     from its start (made if missing, cut to what was loaded) or, with\n"
        "     --append, after its end.\n"
        "SRC and DST must not be the same file or object. A word that starts\n"
        "with a plain name and a colon (shm:x, foo:x) is an object's URI in\n"
        "every tool; write ./foo:x for a file of that name.\n"
        "\n"
        "Options:\n"
        "  -o, --offset=OFFSET  start at byte OFFSET of SRC (default 0)\n"
        "  -n, --length=LENGTH  copy at most LENGTH bytes (default: to the end)\n"
        "  -a, --append         append to the DST file or object instead of\n"
        "                       truncating it\n"
        "  -p, --progress       show a progress bar (bytes, rate, ETA) on standard\n"
        "                       error when it is a terminal; the default\n"
        "  -q, --quiet          no progress bar\n"
        "  -s, --stats          print bytes, seconds, GiB/s, copies made and iovecs\n"
        "                       used to standard error at the end\n"
        "      --json           --stats as one JSON object\n"
        "      --sparse         leave SRC's holes holes in the DST file (seek over\n"
        "                       them) instead of writing zeros\n"
        "      --aio[=DEPTH]    copy with asynchronous transfers (io_uring), DEPTH\n"
        "                       requests of 1 MiB in flight (default 16, at most 4096)\n"
        "  -h, --help           print this help and exit\n"
        "      --version        print the version and exit\n"
        "Sizes take a K, M, G or T suffix (powers of 1024) and decimals that come\n"
        "to whole bytes (1.5G). Of --progress and --quiet the last one given counts.\n"
        "\n"
        "Exit status: 0 copied, 1 failed (the cause is printed), 2 usage error.\n"
        "\n"
        "Examples:\n"
        "  iomem-sendfile --stats shm:frames /tmp/frames.bin\n"
        "  iomem-sendfile --stats frames.bin shm:frames     (load a file into an object)\n"
        "  tar c /usr/share/doc | iomem-sendfile - shm:docs.tar\n"
        "  iomem-sendfile -o 1M -n 4K shm:ring tcp:localhost:9000\n"
        "  iomem-sendfile --aio=64 shm:frames tcp:localhost:9000\n";

struct options {
        size_t off, len;  /* len is SIZE_MAX for "to the end" */
        bool append;
        bool progress;    /* wanted; drawn only on a terminal */
        bool stats;
        bool json;        /* the stats as JSON */
        bool sparse;      /* holes of SRC stay holes in a DST file */
        unsigned aio;     /* queue depth; 0 without --aio */
        const char *src, *dst;
        bool src_is_path; /* a plain PATH, opened as dax:PATH (or -) */
        bool dst_is_object; /* a URI of the library's */
        char src_uri[4096];
};

static bool is_socket_dst(const char *dst)
{
        return !strncmp(dst, "unix:", 5) || !strncmp(dst, "tcp:", 4);
}

/* The PORT of tcp:HOST:PORT is a number from 1 to 65535 or a service's
 * name: getaddrinfo would take 99999 as 34463 (modulo 65536). */
static bool tcp_port_ok(const char *dst)
{
        const char *port = strrchr(dst + 4, ':');
        if (!port || !*++port)
                return false;
        if (strspn(port, "0123456789") != strlen(port))
                return strspn(port, "0123456789") == 0; /* a name, not "12ab" */
        unsigned long v = strtoul(port, NULL, 10);
        return strlen(port) <= 5 && v >= 1 && v <= 65535;
}

static int parse_args(int argc, char *argv[], struct options *o)
{
        static const struct option longopts[] = {
                { "offset", required_argument, NULL, 'o' },
                { "length", required_argument, NULL, 'n' },
                { "append", no_argument, NULL, 'a' },
                { "progress", no_argument, NULL, 'p' },
                { "quiet", no_argument, NULL, 'q' },
                { "stats", no_argument, NULL, 's' },
                { "sparse", no_argument, NULL, 'S' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                TOOL_VERSION_OPTION,
                { "aio", optional_argument, NULL, 'A' },
                { 0 },
        };
        *o = (struct options){ .len = SIZE_MAX, .progress = true };
        int c;
        while ((c = tool_getopt(argc, argv, ":o:n:apqsh", longopts, usage)) != -1) {
                switch (c) {
                case 'o':
                        if (tool_parse_size(optarg, &o->off))
                                return tool_usage_error("offset '%s' is not a size", optarg);
                        break;
                case 'n':
                        if (tool_parse_size(optarg, &o->len))
                                return tool_usage_error("length '%s' is not a size", optarg);
                        break;
                case 'a':
                        o->append = true;
                        break;
                case 'p':
                case 'q':
                        o->progress = c == 'p';
                        break;
                case 's':
                        o->stats = true;
                        break;
                case 'S':
                        o->sparse = true;
                        break;
                case 'j':
                        o->json = true;
                        break;
                case 'A': {
                        size_t d = AIO_DEPTH;
                        if (optarg && (tool_parse_size(optarg, &d) || d < 1 || d > AIO_MAX_DEPTH))
                                return tool_usage_error("--aio depth '%s' is not a number from 1 to %d",
                                                        optarg, AIO_MAX_DEPTH);
                        o->aio = (unsigned)d;
                        break;
                }
                default:
                        return TOOL_USAGE;
                }
        }
        if (o->json && !o->stats)
                return tool_usage_error("--json applies to --stats");
        if (argc - optind != 2)
                return tool_usage_error("expected SRC and DST, got %d argument%s", argc - optind,
                                        argc - optind == 1 ? "" : "s");
        o->src = argv[optind];
        o->dst = argv[optind + 1];
        char backend[32];
        if (tool_is_uri(o->src) &&
            tool_backend_is_private(tool_uri_backend(o->src, backend, sizeof backend)))
                return tool_usage_error("%s: a %s object exists only inside the process that "
                                        "made it, so there is nothing here to copy",
                                        o->src, backend);
        if (!strncmp(o->dst, "tcp:", 4) && !tcp_port_ok(o->dst))
                return tool_usage_error("%s: the port is not a number from 1 to 65535 or a "
                                        "service's name", o->dst);
        o->dst_is_object = !is_socket_dst(o->dst) && tool_is_uri(o->dst);
        if (o->dst_is_object &&
            tool_backend_is_private(tool_uri_backend(o->dst, backend, sizeof backend)))
                return tool_usage_error("%s: a %s object would vanish with this process; load "
                                        "a named one (shm:, dax:, ...)", o->dst, backend);
        if (o->append && (!strcmp(o->dst, "-") || is_socket_dst(o->dst)))
                return tool_usage_error("--append applies to a file or object destination, not %s",
                                        o->dst);
        if (o->sparse && (o->aio || o->dst_is_object || !strcmp(o->dst, "-") ||
                          is_socket_dst(o->dst)))
                return tool_usage_error("--sparse applies to a file destination, without --aio");
        if (o->aio && (o->dst_is_object || !strcmp(o->src, "-")))
                return tool_usage_error("--aio copies from an object to a descriptor; not from %s "
                                        "to %s", o->src, o->dst);
        o->src_is_path = !tool_is_uri(o->src);
        int n = snprintf(o->src_uri, sizeof o->src_uri, "%s%s", o->src_is_path ? "dax:" : "",
                         o->src);
        if (n < 0 || (size_t)n >= sizeof o->src_uri)
                return tool_usage_error("SRC is too long");
        return TOOL_OK;
}

/* ---- destinations ------------------------------------------------------ */

static int connect_unix(const char *dst, int *fd)
{
        const char *path = dst + 5;
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (!*path || strlen(path) >= sizeof sa.sun_path)
                return tool_fail("%s: a socket path has 1 to %zu bytes", dst, sizeof sa.sun_path - 1);
        memcpy(sa.sun_path, path, strlen(path));
        int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s < 0)
                return tool_fail("%s: socket: %s", dst, strerror(errno));
        if (connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
                int e = errno;
                close(s);
                return tool_fail("%s: connect: %s", dst, strerror(e));
        }
        *fd = s;
        return TOOL_OK;
}

static int connect_tcp(const char *dst, int *fd)
{
        /* HOST:PORT, or [ADDR]:PORT since IPv6 addresses hold colons. */
        char host[256];
        const char *rest = dst + 4, *port;
        if (*rest == '[') {
                const char *close_br = strchr(rest, ']');
                if (!close_br || close_br[1] != ':')
                        return tool_fail("%s: expected tcp:[ADDRESS]:PORT", dst);
                snprintf(host, sizeof host, "%.*s", (int)(close_br - rest - 1), rest + 1);
                port = close_br + 2;
        } else {
                const char *colon = strrchr(rest, ':');
                if (!colon)
                        return tool_fail("%s: expected tcp:HOST:PORT", dst);
                snprintf(host, sizeof host, "%.*s", (int)(colon - rest), rest);
                port = colon + 1;
        }
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
        int r = getaddrinfo(host, port, &hints, &res);
        if (r)
                return tool_fail("%s: %s", dst, r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
        int e = 0, s = -1;
        for (struct addrinfo *a = res; a; a = a->ai_next) {
                s = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
                if (s >= 0 && connect(s, a->ai_addr, a->ai_addrlen) == 0)
                        break;
                e = errno;
                if (s >= 0)
                        close(s);
                s = -1;
        }
        freeaddrinfo(res);
        if (s < 0)
                return tool_fail("%s: connect: %s", dst, strerror(e));
        *fd = s;
        return TOOL_OK;
}

static int open_destination(const struct options *o, int *fd)
{
        if (!strcmp(o->dst, "-")) {
                *fd = STDOUT_FILENO;
                return TOOL_OK;
        }
        if (!strncmp(o->dst, "unix:", 5))
                return connect_unix(o->dst, fd);
        if (!strncmp(o->dst, "tcp:", 4))
                return connect_tcp(o->dst, fd);
        int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (o->append ? O_APPEND : O_TRUNC);
        *fd = open(o->dst, flags, 0644);
        if (*fd < 0)
                return tool_fail("%s: %s", o->dst, strerror(errno));
        return TOOL_OK;
}

/* ---- the copy ------------------------------------------------------------ */

struct result {
        size_t bytes, iovecs;
        double seconds;
        size_t requests, copied; /* --aio: requests, and those the kernel copied */
        unsigned copies;         /* of each byte: 1, or 2 through a buffer */
};

/* One chunk of a copy: [off, off+len) of the source out; the bytes that
 * went (0: the source ends here) and the iovecs used, or a negative errno
 * with the library's message set. */
typedef ssize_t chunk_fn(void *ctx, size_t off, size_t len, size_t *iovecs);

/* The chunks of o->off + [0, total), in 16 MiB pieces for the progress bar. */
static int copy_chunks(chunk_fn *chunk, void *ctx, const struct options *o, size_t total,
                       struct result *res)
{
        struct tool_progress p;
        tool_progress_start(&p, o->progress, total);
        size_t done = 0;
        while (done < total) {
                size_t want = total - done < CHUNK ? total - done : CHUNK;
                ssize_t n = chunk(ctx, o->off + done, want, &res->iovecs);
                if (n < 0) {
                        if (p.on)
                                fputc('\n', stderr);
                        return tool_fail("copying %s to %s: %s", o->src, o->dst, tool_errormsg());
                }
                /* Short: the object shrank, or the destination failed and
                 * the next call will say why. 0: the object ends here. */
                if (n == 0)
                        break;
                done += (size_t)n;
                tool_progress_draw(&p, done, false);
        }
        res->bytes = done;
        res->seconds = tool_now() - p.start;
        tool_progress_draw(&p, done, true);
        return TOOL_OK;
}

struct to_fd {
        struct iomem *f;
        int fd;
};

static ssize_t chunk_to_fd(void *ctx, size_t off, size_t len, size_t *iovecs)
{
        const struct to_fd *t = ctx;
        ssize_t k = iomem_bufcount(t->f, off, len);
        ssize_t n = k < 0 ? k : iomem_sendfile(t->fd, t->f, off, len);
        if (n > 0)
                *iovecs += (size_t)k;
        return n;
}

static int copy(struct iomem *f, int fd, const struct options *o, size_t total, struct result *res)
{
        struct to_fd t = { f, fd };
        return copy_chunks(chunk_to_fd, &t, o, total, res);
}

/* --sparse: the bytes under the read lock, borrowed; a hole is a seek in
 * the file, not zeros, and the file's size is set at the end (a trailing
 * hole writes nothing). */
static int copy_sparse(struct iomem *f, int fd, const struct options *o, size_t total,
                       struct result *res)
{
        enum { BATCH = 64 };
        struct tool_progress p;
        tool_progress_start(&p, o->progress, total);
        off_t base = lseek(fd, 0, SEEK_CUR);
        size_t done = 0;
        int r = TOOL_OK;
        if (base < 0)
                return tool_fail("%s: %s", o->dst, strerror(errno));
        while (!r && done < total) {
                struct iovec v[BATCH];
                size_t want = total - done < CHUNK ? total - done : CHUNK;
                if (iomem_rdlock(f) < 0)
                        return tool_lib_fail(o->src);
                ssize_t n = iomem_borrow(f, o->off + done, want, v, BATCH);
                if (n < 0)
                        r = tool_lib_fail(o->src);
                for (ssize_t i = 0; i < n && !r; i++) {
                        off_t at = base + (off_t)done;
                        for (size_t k = 0; v[i].iov_base && k < v[i].iov_len && !r;) {
                                ssize_t w = pwrite(fd, (char *)v[i].iov_base + k, v[i].iov_len - k,
                                                   at + (off_t)k);
                                if (w < 0 && errno != EINTR)
                                        r = tool_fail("copying %s to %s: %s", o->src, o->dst,
                                                      strerror(errno));
                                k += w > 0 ? (size_t)w : 0;
                        }
                        done += v[i].iov_len;
                        res->iovecs++;
                }
                iomem_unlock(f);
                if (n == 0)
                        break;
                tool_progress_draw(&p, done, false);
        }
        if (!r && ftruncate(fd, base + (off_t)done) < 0)
                r = tool_fail("%s: %s", o->dst, strerror(errno));
        res->bytes = done;
        res->seconds = tool_now() - p.start;
        tool_progress_draw(&p, done, true);
        return r;
}

/* ---- the copy with --aio ------------------------------------------------------ */

/*
 * A file that can seek takes every request at its own offset, so DEPTH of
 * them run at once, refilled as each completes. A socket, a pipe or an
 * appended file takes bytes in the order they come, which the library
 * keeps only within one submission (it links the requests): there the
 * requests go in rounds of DEPTH. A pipe may take part of a request; the
 * rest of the round is then cancelled and the next round resumes there.
 * A request's tag is its position in the copy.
 */
struct aio_copy {
        struct iomem_aio *q;
        struct iomem *f;
        int fd;
        bool sock, ordered;
        off_t dst_off;
        size_t total, queued, done, inflight;
        struct iomem_aio_cqe *cqe; /* o->aio of them */
        struct result *res;
        const struct options *o;
};

static int aio_fail(const struct aio_copy *c, const char *what)
{
        return tool_fail("copying %s to %s: %s", c->o->src, c->o->dst, what);
}

static size_t aio_len(const struct aio_copy *c, size_t pos)
{
        return c->total - pos < AIO_CHUNK ? c->total - pos : AIO_CHUNK;
}

static int aio_queue_one(struct aio_copy *c)
{
        size_t want = aio_len(c, c->queued), off = c->o->off + c->queued;
        ssize_t k = iomem_bufcount(c->f, off, want);
        int r = k < 0 ? (int)k
                : c->sock ? iomem_aio_send(c->q, c->fd, c->f, off, want, c->queued)
                          : iomem_aio_write(c->q, c->fd, (uint64_t)(c->dst_off + (off_t)c->queued),
                                            c->f, off, want, c->queued);
        if (r < 0)
                return aio_fail(c, tool_errormsg());
        c->res->iovecs += (size_t)k;
        c->res->requests++;
        c->queued += want;
        c->inflight++;
        return TOOL_OK;
}

/* Collect n completions into c->cqe. */
static int aio_collect(struct aio_copy *c, unsigned n)
{
        for (unsigned got = 0; got < n;) {
                int k = iomem_aio_wait(c->q, c->cqe + got, n - got, n - got, -1);
                if (k < 0)
                        return aio_fail(c, tool_errormsg());
                for (int i = 0; i < k; i++)
                        c->res->copied += (c->cqe[got + (unsigned)i].flags & IOMEM_AIO_COPIED) != 0;
                got += (unsigned)k;
        }
        c->inflight -= n;
        return TOOL_OK;
}

static int by_tag(const void *a, const void *b)
{
        uint64_t x = ((const struct iomem_aio_cqe *)a)->tag, y = ((const struct iomem_aio_cqe *)b)->tag;
        return (x > y) - (x < y);
}

/* One round on a stream: everything after a short transfer was cancelled
 * and is queued again from where it stopped. */
static int aio_round(struct aio_copy *c)
{
        while (c->queued < c->total && c->inflight < c->o->aio) {
                int r = aio_queue_one(c);
                if (r)
                        return r;
        }
        unsigned n = (unsigned)c->inflight;
        int r = aio_collect(c, n);
        if (r)
                return r;
        qsort(c->cqe, n, sizeof c->cqe[0], by_tag);
        for (unsigned i = 0; i < n && c->cqe[i].tag == c->done; i++) {
                ssize_t res = c->cqe[i].res;
                if (res < 0)
                        return aio_fail(c, strerror((int)-res));
                c->done += (size_t)res;
                if ((size_t)res < aio_len(c, (size_t)c->cqe[i].tag)) {
                        if (res == 0)
                                return aio_fail(c, "the destination takes no more bytes");
                        break;
                }
        }
        c->queued = c->done;
        return TOOL_OK;
}

/* Requests at their own offsets, refilled as they complete. */
static int aio_refill(struct aio_copy *c)
{
        while (c->queued < c->total && c->inflight < c->o->aio) {
                int r = aio_queue_one(c);
                if (r)
                        return r;
        }
        int r = iomem_aio_submit(c->q) < 0 ? aio_fail(c, tool_errormsg()) : aio_collect(c, 1);
        if (r)
                return r;
        if (c->cqe[0].res < 0)
                return aio_fail(c, strerror((int)-c->cqe[0].res));
        if ((size_t)c->cqe[0].res != aio_len(c, (size_t)c->cqe[0].tag))
                return aio_fail(c, "a write came back short (is the destination's filesystem full?)");
        c->done += (size_t)c->cqe[0].res;
        return TOOL_OK;
}

static int copy_aio(struct iomem *f, int fd, const struct options *o, size_t total, struct result *res)
{
        struct stat st;
        struct aio_copy c = { .f = f, .fd = fd, .total = total, .res = res, .o = o };
        c.sock = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
        c.dst_off = c.sock ? -1 : lseek(fd, 0, SEEK_CUR);
        c.ordered = c.sock || c.dst_off < 0 || o->append;
        c.cqe = calloc(o->aio, sizeof *c.cqe);
        if (!c.cqe)
                return tool_fail("out of memory");
        if (iomem_aio_new(&c.q, o->aio) < 0) {
                free(c.cqe);
                return tool_lib_fail("--aio");
        }
        struct tool_progress p;
        tool_progress_start(&p, o->progress, total);
        int r = TOOL_OK;
        while (!r && c.done < total) {
                r = c.ordered ? aio_round(&c) : aio_refill(&c);
                tool_progress_draw(&p, c.done, false);
        }
        /* Deleting waits for whatever is still in flight after a failure,
         * which must end before the object can be closed. */
        iomem_aio_delete(&c.q);
        free(c.cqe);
        if (r) {
                if (p.on)
                        fputc('\n', stderr);
                return r;
        }
        res->bytes = c.done;
        res->seconds = tool_now() - p.start;
        tool_progress_draw(&p, c.done, true);
        return TOOL_OK;
}

/* ---- sources that no mapping reaches --------------------------------------- */

/* A regular file whose size says 0 may still have contents (procfs and
 * sysfs files), and standard input may be a pipe: no mapping reaches
 * them, so they are read to their end, as cp does, through a buffer (one
 * copy in, one out). */
static bool read_through_buffer(const struct options *o)
{
        struct stat st;
        return !strcmp(o->src, "-") ||
               (o->src_is_path && stat(o->src, &st) == 0 && S_ISREG(st.st_mode) && st.st_size == 0);
}

static int open_read_source(const struct options *o, int *in)
{
        *in = strcmp(o->src, "-") ? open(o->src, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
        if (*in < 0)
                return tool_fail("%s: %s", o->src, strerror(errno));
        return TOOL_OK;
}

/* Where the bytes read go: a descriptor, or an object by iomem_pwrite. */
struct sink {
        int fd;
        struct iomem *obj;
        size_t at; /* the object's offset of the next byte */
};

static int sink_put(const struct options *o, struct sink *k, const char *buf, size_t n)
{
        if (k->obj) {
                ssize_t w = iomem_pwrite(k->obj, buf, n, k->at);
                if (w < 0)
                        return tool_lib_fail(o->dst);
                k->at += n;
                return TOOL_OK;
        }
        for (size_t done = 0; done < n;) {
                ssize_t w = write(k->fd, buf + done, n - done);
                if (w < 0 && errno != EINTR)
                        return tool_fail("copying %s to %s: %s", o->src, o->dst, strerror(errno));
                done += w > 0 ? (size_t)w : 0;
        }
        return TOOL_OK;
}

/* Read from in, from o->off on, at most o->len bytes, into k. */
/* Up to len bytes of in into buf, short only at the end of the input:
 * the bytes read, or -1 with the message printed. */
static ssize_t read_full(int in, char *buf, size_t len, const struct options *o)
{
        size_t got = 0;
        while (got < len) {
                ssize_t n = read(in, buf + got, len - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        tool_fail("%s: %s", o->src, strerror(errno));
                        return -1;
                }
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        return (ssize_t)got;
}

/* Start reading at o->off: a seek, or for a pipe reading past it. */
static int skip_to_offset(int in, const struct options *o)
{
        static char buf[1 << 16];
        if (!o->off || lseek(in, (off_t)o->off, SEEK_SET) >= 0)
                return TOOL_OK;
        for (size_t left = o->off; left;) {
                ssize_t n = read_full(in, buf, left < sizeof buf ? left : sizeof buf, o);
                if (n <= 0)
                        return n < 0 ? TOOL_RUNTIME : TOOL_OK;
                left -= (size_t)n;
        }
        return TOOL_OK;
}

static int copy_by_reading(int in, struct sink *k, const struct options *o, struct result *res)
{
        static char buf[1 << 16];
        struct tool_progress p;
        tool_progress_start(&p, o->progress, SIZE_MAX);
        double start = p.start;
        int r = skip_to_offset(in, o);
        while (!r && res->bytes < o->len) {
                size_t want = o->len - res->bytes < sizeof buf ? o->len - res->bytes : sizeof buf;
                ssize_t n = read_full(in, buf, want, o);
                if (n <= 0) {
                        r = n < 0 ? TOOL_RUNTIME : TOOL_OK;
                        break;
                }
                r = sink_put(o, k, buf, (size_t)n);
                res->bytes += (size_t)n;
                res->iovecs++;
                tool_progress_draw(&p, res->bytes, false);
        }
        tool_progress_draw(&p, res->bytes, true);
        res->seconds = tool_now() - start;
        res->copies = 2;
        return r;
}

/* cp's refusal: DST is the very file that SRC reads (opening it with
 * O_TRUNC, or truncating the object, would empty it first). */
static int refuse_same(const struct options *o, const struct stat *src, const struct stat *dst)
{
        if (src->st_dev == dst->st_dev && src->st_ino == dst->st_ino)
                return tool_fail("'%s' and '%s' are the same file", o->src, o->dst);
        return TOOL_OK;
}

static int check_dst_path(const struct options *o, const struct stat *src)
{
        struct stat st;
        if (!strcmp(o->dst, "-") || is_socket_dst(o->dst) || stat(o->dst, &st) < 0)
                return TOOL_OK;
        return refuse_same(o, src, &st);
}

static void print_stats(const struct result *r, bool json)
{
        double secs = r->seconds > 0 ? r->seconds : 1e-9, gibs = (double)r->bytes / secs / (1 << 30);
        if (json) {
                fprintf(stderr, "{\"bytes\": %zu, \"seconds\": %.6f, \"gib_per_s\": %.3f, "
                        "\"copies\": %u, \"iovecs\": %zu", r->bytes, r->seconds, gibs, r->copies,
                        r->iovecs);
                if (r->requests)
                        fprintf(stderr, ", \"requests\": %zu, \"copied\": %zu", r->requests,
                                r->copied);
                fputs("}\n", stderr);
                return;
        }
        fprintf(stderr,
                "bytes:   %zu\n"
                "seconds: %.6f\n"
                "GiB/s:   %.3f\n"
                "copies:  %u\n"
                "iovecs:  %zu\n",
                r->bytes, r->seconds, gibs, r->copies, r->iovecs);
        if (r->requests)
                fprintf(stderr,
                        "requests: %zu\n"
                        "copied:  %zu\n",
                        r->requests, r->copied);
}

/* The source object; a plain path that is not there is said as cp says it. */
static int open_source(const struct options *o, struct iomem **f)
{
        struct stat st;
        if (o->src_is_path && stat(o->src, &st) < 0)
                return tool_fail("%s: %s", o->src, strerror(errno));
        if (iomem_open(f, o->src_uri, IOMEM_RDONLY, NULL) < 0)
                return tool_lib_fail(o->src);
        return TOOL_OK;
}

/* Copy the object at o->src_uri to the descriptor DST, opening the source
 * first, so that a missing one leaves DST untouched. */
static int copy_object(const struct options *o, int *fd, struct result *res)
{
        struct iomem *f;
        int r = open_source(o, &f);
        if (r)
                return r;
        struct iomem_stat st;
        struct stat data;
        r = iomem_stat(f, &st) < 0 ? tool_lib_fail(o->src) : TOOL_OK;
        if (!r && fstat(iomem_fd(f), &data) == 0)
                r = check_dst_path(o, &data);
        if (!r && !(r = open_destination(o, fd))) {
                size_t avail = o->off < st.size ? st.size - o->off : 0;
                size_t total = o->len < avail ? o->len : avail;
                r = o->aio      ? copy_aio(f, *fd, o, total, res)
                    : o->sparse ? copy_sparse(f, *fd, o, total, res)
                                : copy(f, *fd, o, total, res);
        }
        iomem_close(&f);
        return r;
}

/* Copy SRC read through a buffer to the descriptor DST. */
static int copy_read_to_fd(const struct options *o, int *fd, struct result *res)
{
        int in, r = open_read_source(o, &in);
        struct stat st;
        if (!r && fstat(in, &st) == 0 && S_ISREG(st.st_mode))
                r = check_dst_path(o, &st);
        if (!r && !(r = open_destination(o, fd))) {
                struct sink k = { .fd = *fd };
                r = copy_by_reading(in, &k, o, res);
        }
        if (in > STDIN_FILENO)
                close(in);
        return r;
}

/* ---- an object as the destination ----------------------------------------- */

/* Object to object: iomem_copy, one copy. */
struct between {
        struct iomem *src, *dst;
        size_t delta; /* the destination's offset less the source's */
};

static ssize_t chunk_between(void *ctx, size_t off, size_t len, size_t *iovecs)
{
        const struct between *b = ctx;
        ++*iovecs;
        return iomem_copy(b->dst, off + b->delta, b->src, off, len);
}

static int copy_between(struct iomem *src, struct iomem *dst, size_t at, const struct options *o,
                        struct result *res)
{
        struct iomem_stat st;
        if (iomem_stat(src, &st) < 0)
                return tool_lib_fail(o->src);
        size_t avail = o->off < st.size ? st.size - o->off : 0;
        struct between b = { src, dst, at - o->off };
        return copy_chunks(chunk_between, &b, o, o->len < avail ? o->len : avail, res);
}

/*
 * Read straight into the object's memory: it grows a chunk ahead, the
 * chunk is acquired and read(2) fills it, one copy where a buffer would
 * make two; at the end the object is cut to what came. 1 when the object
 * cannot grow (a device: devdax), for the caller to go through a buffer.
 */
static int read_into_object(int in, struct iomem *dst, size_t at, const struct options *o,
                            struct result *res)
{
        struct iomem_stat st;
        if (iomem_stat(dst, &st) < 0)
                return tool_lib_fail(o->dst);
        size_t ps = st.page_size;
        struct tool_progress p;
        tool_progress_start(&p, o->progress, SIZE_MAX);
        double start = p.start;
        int r = skip_to_offset(in, o);
        bool more = true;
        while (!r && more && res->bytes < o->len) {
                size_t want = o->len - res->bytes < CHUNK ? o->len - res->bytes : CHUNK;
                if (iomem_truncate(dst, at + want) < 0)
                        return res->bytes ? tool_lib_fail(o->dst) : 1;
                size_t lo = at / ps * ps, hi = (at + want + ps - 1) / ps * ps;
                if (iomem_acquire(dst, lo, hi - lo) < 0) {
                        r = tool_lib_fail(o->dst);
                        break;
                }
                ssize_t count = iomem_bufcount(dst, at, want);
                struct iovec *v = count > 0 ? calloc((size_t)count, sizeof *v) : NULL;
                if (!v || iomem_retrieve(dst, at, want, v, (size_t)count) != count)
                        r = v ? tool_lib_fail(o->dst) : tool_fail("out of memory");
                size_t got = 0;
                for (ssize_t i = 0; !r && more && i < count; i++) {
                        ssize_t k = read_full(in, v[i].iov_base, v[i].iov_len, o);
                        if (k < 0)
                                r = TOOL_RUNTIME;
                        got += k > 0 ? (size_t)k : 0;
                        more = k == (ssize_t)v[i].iov_len;
                }
                free(v);
                if (iomem_release(dst, lo, hi - lo) < 0 && !r)
                        r = tool_lib_fail(o->dst);
                at += got;
                res->bytes += got;
                res->iovecs += (size_t)(count > 0 ? count : 0);
                tool_progress_draw(&p, res->bytes, false);
        }
        /* What was grown ahead and not filled goes, failure or not. */
        if (iomem_truncate(dst, at) < 0 && !r)
                r = tool_lib_fail(o->dst);
        tool_progress_draw(&p, res->bytes, true);
        res->seconds = tool_now() - start;
        return r;
}

/* Load SRC into the object DST (made when missing): from its start, the
 * object cut to what was loaded, or with --append after its end. */
static int copy_to_object(const struct options *o, struct result *res)
{
        struct iomem *dst = NULL, *src = NULL;
        int in = -1, r;
        struct stat from, to;
        if (read_through_buffer(o)) {
                if ((r = open_read_source(o, &in)))
                        return r;
        } else if ((r = open_source(o, &src))) {
                return r;
        }
        if (iomem_open(&dst, o->dst, IOMEM_RDWR | IOMEM_CREATE, NULL) < 0) {
                r = tool_lib_fail(o->dst);
                goto out;
        }
        if (fstat(src ? iomem_fd(src) : in, &from) == 0 && fstat(iomem_fd(dst), &to) == 0 &&
            (r = refuse_same(o, &from, &to)))
                goto out;
        struct iomem_stat st;
        size_t at = 0;
        if (iomem_stat(dst, &st) < 0) {
                r = tool_lib_fail(o->dst);
                goto out;
        }
        if (o->append)
                at = st.size;
        else if (iomem_truncate(dst, 0) < 0) {
                r = tool_lib_fail(o->dst);
                goto out;
        }
        if (src) {
                r = copy_between(src, dst, at, o, res);
        } else if ((r = read_into_object(in, dst, at, o, res)) == 1) {
                struct sink k = { .obj = dst, .at = at };
                r = copy_by_reading(in, &k, o, res);
        }
out:
        if (in > STDIN_FILENO)
                close(in);
        iomem_close(&src);
        iomem_close(&dst);
        return r;
}

int main(int argc, char *argv[])
{
        static struct options o;
        int r = parse_args(argc, argv, &o);
        if (r)
                return r;
        /* A reader that goes away is a failure to report, not a silent
         * death: the kernel raises SIGPIPE even for a write that was
         * partly done, which iomem_sendfile does not swallow. */
        signal(SIGPIPE, SIG_IGN);
        int fd = -1;
        struct result res = { .copies = 1 };
        if (o.dst_is_object)
                r = copy_to_object(&o, &res);
        else if (read_through_buffer(&o))
                r = copy_read_to_fd(&o, &fd, &res);
        else
                r = copy_object(&o, &fd, &res);
        if (fd >= 0 && fd != STDOUT_FILENO && close(fd) < 0 && !r)
                r = tool_fail("%s: %s", o.dst, strerror(errno));
        if (!r && o.stats)
                print_stats(&res, o.json);
        return r;
}
