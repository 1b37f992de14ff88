/* SPDX-License-Identifier: MIT */
/*
 * A socket destination for test_tools.sh, so that the socket cases need
 * neither python3 nor socat:
 *   sink unix PATH OUT READY   listen on the AF_UNIX socket PATH
 *   sink tcp OUT READY         listen on 127.0.0.1, on a port of the kernel's choice
 * Writes READY once listening (for tcp, holding the port), then accepts one
 * connection and writes all it receives to OUT. Gives up after 30 s, so a
 * test that never connects cannot hang.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fail(const char *what)
{
        fprintf(stderr, "sink: %s: %s\n", what, strerror(errno));
        return 1;
}

static int listen_unix(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof sa.sun_path) {
                errno = ENAMETOOLONG;
                return -1;
        }
        strcpy(sa.sun_path, path);
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 1) < 0)
                return -1;
        return s;
}

static int listen_tcp(unsigned *port)
{
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t len = sizeof sa;
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0 || bind(s, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(s, 1) < 0 ||
            getsockname(s, (struct sockaddr *)&sa, &len) < 0)
                return -1;
        *port = ntohs(sa.sin_port);
        return s;
}

/* READY appears whole or not at all: the test polls for it. */
static int announce(const char *ready, unsigned port)
{
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", ready);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%u\n", port) < 0 || fclose(f) || rename(tmp, ready))
                return -1;
        return 0;
}

int main(int argc, char *argv[])
{
        int tcp = argc == 4 && !strcmp(argv[1], "tcp");
        if (!tcp && !(argc == 5 && !strcmp(argv[1], "unix"))) {
                fprintf(stderr, "usage: sink unix PATH OUT READY | sink tcp OUT READY\n");
                return 2;
        }
        const char *out = argv[argc - 2], *ready = argv[argc - 1];
        alarm(30);
        unsigned port = 0;
        int ls = tcp ? listen_tcp(&port) : listen_unix(argv[2]);
        if (ls < 0)
                return fail("listen");
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0 || announce(ready, port))
                return fail(out);
        int c = accept(ls, NULL, NULL);
        if (c < 0)
                return fail("accept");
        static char buf[1 << 16];
        ssize_t n;
        while ((n = read(c, buf, sizeof buf)) > 0)
                for (ssize_t done = 0, w; done < n; done += w)
                        if ((w = write(fd, buf + done, (size_t)(n - done))) < 0)
                                return fail(out);
        if (n < 0)
                return fail("read");
        return close(fd) ? fail(out) : 0;
}
