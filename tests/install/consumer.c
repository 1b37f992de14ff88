/* SPDX-License-Identifier: MIT */
/*
 * A program outside the tree, built against the installed library with
 * nothing but `pkg-config --cflags --libs libiomem` (scripts/test copies it
 * to a temporary directory first). It checks the basics on every backend
 * that this machine can use, a channel included, and a fabric export read
 * back over the loopback where the library has libfabric.
 */
#include <iomem.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* A message through a channel kept in a second object, in place. */
static int channel_works(const char *backend, unsigned caps)
{
        char uri[64];
        snprintf(uri, sizeof uri, "%s:iomem-consumer-chan", backend);
        struct iomem *f = NULL;
        struct iomem_chan *p = NULL, *c = NULL;
        void *slot;
        const void *msg;
        if (caps & IOMEM_CAP_NAMED)
                iomem_unlink(uri); /* left by a run that did not finish */
        int ok = !iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, NULL) &&
                 !iomem_chan_open(&p, f, 4096, 4, 0) && !iomem_chan_open(&c, f, 0, 0, IOMEM_CHAN_NONBLOCK) &&
                 !iomem_chan_loan(p, &slot) && snprintf(slot, 4096, "hello") == 5 &&
                 !iomem_chan_publish(p, slot, 6) && iomem_chan_receive(c, &msg) == 6 && msg == slot &&
                 !strcmp(msg, "hello") && !iomem_chan_release(c, msg);
        if (!ok)
                fprintf(stderr, "consumer: %s: channel: %s\n", uri, iomem_errormsg());
        iomem_chan_close(&c);
        iomem_chan_close(&p);
        iomem_close(&f);
        if (caps & IOMEM_CAP_NAMED)
                iomem_unlink(uri);
        return ok ? 0 : 1;
}

/* A page exported over the loopback and read back into a second object;
 * 0 too when the library was built without libfabric (it says so). */
static int export_works(void)
{
        struct iomem *f = NULL, *g = NULL;
        struct iomem_export *x = NULL;
        struct iomem_remote *r = NULL;
        char out[6] = { 0 };
        int err = iomem_open(&f, "iomem-consumer-export", IOMEM_RDWR | IOMEM_CREATE, NULL);
        if (!err && iomem_pwrite(f, "fabric", 6, 0) == 6 &&
            (err = iomem_export(&x, f, 0, 4096, "127.0.0.1:0", 0)) == -ENOTSUP) {
                printf("consumer: fabric exports: %s\n", iomem_errormsg());
                iomem_close(&f);
                return 0;
        }
        int ok = !err && !iomem_remote_open(&r, iomem_export_addr(x)) &&
                 !iomem_open(&g, "iomem-consumer-import", IOMEM_RDWR | IOMEM_CREATE, NULL) &&
                 iomem_remote_fetch(r, g) == 6 && iomem_pread(g, out, 6, 0) == 6 && !memcmp(out, "fabric", 6);
        if (!ok)
                fprintf(stderr, "consumer: fabric export: %s\n", iomem_errormsg());
        else
                printf("consumer: a fabric export works\n");
        iomem_remote_close(&r);
        iomem_export_close(&x);
        iomem_close(&g);
        iomem_close(&f);
        return ok ? 0 : 1;
}

int main(void)
{
        struct iomem_backend_info info[8];
        ssize_t n = iomem_backends(info, 8);
        int usable = 0;
        for (ssize_t i = 0; i < n && i < 8; i++) {
                if (!info[i].available)
                        continue;
                char uri[64];
                snprintf(uri, sizeof uri, "%s:iomem-consumer-data", info[i].name);
                struct iomem *f;
                if (iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE, NULL)) {
                        fprintf(stderr, "consumer: %s\n", iomem_errormsg());
                        return 1;
                }
                char out[6] = { 0 };
                struct iovec v;
                if (iomem_pwrite(f, "hello", 5, 0) != 5 || iomem_pread(f, out, 5, 0) != 5 ||
                    strcmp(out, "hello") || iomem_acquire(f, 0, 4096) != 4096 ||
                    iomem_retrieve(f, 0, 5, &v, 1) != 1 || memcmp(v.iov_base, "hello", 5) ||
                    iomem_release(f, 0, 4096)) {
                        fprintf(stderr, "consumer: %s: %s\n", uri, iomem_errormsg());
                        return 1;
                }
                iomem_close(&f);
                if (info[i].caps & IOMEM_CAP_NAMED)
                        iomem_unlink(uri);
                if (channel_works(info[i].name, info[i].caps))
                        return 1;
                printf("consumer: %s works\n", info[i].name);
                usable++;
        }
        return usable && !export_works() ? 0 : 1;
}
