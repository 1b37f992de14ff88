/* SPDX-License-Identifier: MIT */
/*
 * What the command-line tools share: exit codes, messages, numbers with
 * size suffixes, URIs, capability names and JSON strings. Kept out of the
 * library because it is policy for a command line, not for programs.
 */
#ifndef IOMEM_TOOL_COMMON_H
#define IOMEM_TOOL_COMMON_H

#include <getopt.h>
#include <iomem.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Exit codes of every tool. */
enum {
        TOOL_OK = 0,
        TOOL_RUNTIME = 1, /* the operation failed; the cause was printed */
        TOOL_USAGE = 2,   /* the command line was wrong */
};

/* "PROG: message" on stderr; returns TOOL_RUNTIME. */
int tool_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The library's message for the last failure, as one line and in the
 * tool's words (no C function or IOMEM_ flag, no descriptor number; a
 * missing object gets tool_create_hint, when set), prefixed with obj
 * unless the message names it already; returns TOOL_RUNTIME. */
int tool_lib_fail(const char *obj);
/* The same message, for a tool's own sentence. */
const char *tool_errormsg(void);
/* How this tool's user makes an object that is missing, or NULL. */
extern const char *tool_create_hint;

/* "PROG: message (try 'PROG --help')" on stderr; returns TOOL_USAGE. */
int tool_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The value of every tool's --version in its long options. */
#define TOOL_OPT_VERSION 0x100
#define TOOL_VERSION_OPTION { "version", no_argument, NULL, TOOL_OPT_VERSION }

/* getopt_long, the same way for every tool: 'h' (--help) prints usage and
 * exits 0, --version (TOOL_VERSION_OPTION) prints the version and exits 0;
 * an unknown option or a missing value prints a one-line usage error and
 * returns '?'. optstring starts with ':'. */
int tool_getopt(int argc, char *argv[], const char *optstring, const struct option *longopts,
                const char *usage);

/* A number of bytes with an optional K, M, G or T suffix (powers of 1024,
 * either case, "KiB" too), decimals allowed where they come to whole bytes
 * (1.5G). Returns 0, or -1 if s is not one. */
int tool_parse_size(const char *s, size_t *out);

/* The one rule every tool follows: a word whose part before its first
 * colon is a plain name (letters, digits, _) is an object's URI, whether
 * or not the library has a backend of that name (then it says so); any
 * other word is a path (./shm:x is a file). */
bool tool_is_uri(const char *word);

/* The backend the library will pick for uri: its scheme, or for a URI
 * without one $IOMEM_BACKEND, else memfd (when built in), else shm.
 * Written to buf, which is returned. */
const char *tool_uri_backend(const char *uri, char *buf, size_t n);

/* The backend of the library called name[0..len), into out (may be
 * NULL): false when this build has none of that name. */
bool tool_backend(const char *name, size_t len, struct iomem_backend_info *out);

/* Is the backend an in-process one (no IOMEM_CAP_NAMED), whose objects
 * vanish with the process that made them, so that a command run on its
 * own cannot reach one? */
bool tool_backend_is_private(const char *backend);

/* The capability bits by name, "NAMED FDPASS ..." ("none" for 0), or as a
 * JSON array when json is set. */
void tool_print_caps(FILE *out, unsigned caps, bool json);

/* A progress bar on stderr (bytes, rate, ETA), drawn only when wanted and
 * stderr is a terminal, at most ten times a second. */
struct tool_progress {
        bool on;
        double start, drawn;
        size_t total; /* SIZE_MAX: not known (standard input), as pv shows it */
};
/* Seconds on the monotonic clock. */
double tool_now(void);
void tool_progress_start(struct tool_progress *p, bool wanted, size_t total);
/* done bytes of total so far; last ends the line. */
void tool_progress_draw(struct tool_progress *p, size_t done, bool last);

/* s as a JSON string, quoted and escaped; null for NULL. */
void tool_print_json_string(FILE *out, const char *s);

#endif
