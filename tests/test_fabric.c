/* SPDX-License-Identifier: MIT */
/*
 * Fabric exports between two hosts: two processes, each in a network
 * namespace of its own, joined by a veth pair this test makes, talking
 * through libfabric's tcp provider. One exports an object, the other
 * reads, writes and fetches it; then revocations, kills on both sides,
 * and a client written against libfabric alone that tries to reach past
 * what was exported.
 *
 * The hosts' roles run in forked children, which report by exit status
 * and stderr (Check's assertions would write to its pipe from them).
 */
#include "common.h"
#include "two_hosts.h"

#include <poll.h>
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/time.h>
#include <stdarg.h>
#include <time.h>

#define MIB ((size_t)1 << 20)

/* A role's check: on failure, say where and why, and end the role. */
#define REQUIRE(cond, ...)                                                                   \
        do {                                                                                 \
                if (!(cond)) {                                                               \
                        fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, #cond);          \
                        fprintf(stderr, __VA_ARGS__);                                        \
                        fprintf(stderr, " (%s)\n", iomem_errormsg());                        \
                        return 1;                                                            \
                }                                                                            \
        } while (0)

#define RUN_HOSTS(exporter, importer, arg, want_exporter, want_importer)                           \
        do {                                                                                        \
                int st_[2];                                                                         \
                int r_ = two_hosts(exporter, importer, arg, 90, st_);                                   \
                if (r_ == TWO_HOSTS_SKIP)                                                              \
                        return;                                                                     \
                ck_assert_int_eq(r_, 0);                                                            \
                ck_assert_msg(st_[0] == (want_exporter), "exporter: status %d", st_[0]);            \
                ck_assert_msg(st_[1] == (want_importer), "importer: status %d", st_[1]);            \
        } while (0)

/* The byte at offset i of every exported object. */
static inline char pattern(size_t i)
{
        return (char)(i * 131 + (i >> 12) * 7 + 1);
}

static int fill(struct iomem *f, size_t len)
{
        char *buf = malloc(len);
        if (!buf)
                return -1;
        for (size_t i = 0; i < len; i++)
                buf[i] = pattern(i);
        ssize_t n = iomem_pwrite(f, buf, len, 0);
        free(buf);
        return n == (ssize_t)len ? 0 : -1;
}

/* The first offset in [0, len) of f whose byte is not pattern's, or len. */
static size_t first_wrong(struct iomem *f, size_t len)
{
        char *buf = malloc(len);
        if (!buf || iomem_pread(f, buf, len, 0) != (ssize_t)len) {
                free(buf);
                return 0;
        }
        size_t i = 0;
        while (i < len && buf[i] == pattern(i))
                i++;
        free(buf);
        return i;
}

static struct iomem *object(const char *tag, size_t size)
{
        char uri[96];
        snprintf(uri, sizeof uri, "%s:iomem-test-fabric-%d-%s", test_backend(), (int)getpid(), tag);
        struct iomem_opts *o = NULL;
        struct iomem *f = NULL;
        if (iomem_opts_new(&o) || iomem_opts_set_size(o, size) ||
            iomem_open(&f, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o))
                f = NULL;
        iomem_opts_delete(&o);
        if (f && (test_caps() & IOMEM_CAP_NAMED))
                iomem_unlink(uri);
        return f;
}

static uint64_t acquired(struct iomem *f)
{
        struct iomem_stat st;
        return iomem_stat(f, &st) ? UINT64_MAX : st.acquired;
}

/* ---- an object read, written and fetched from the other host ---------- */

#define SHARED_SIZE (8 * MIB)

static int export_then_revoke(struct link *l, void *arg)
{
        (void)arg;
        struct iomem *f = object("exported", SHARED_SIZE);
        REQUIRE(f, "open");
        REQUIRE(fill(f, SHARED_SIZE) == 0, "fill");
        struct iomem_export *x = NULL;
        REQUIRE(iomem_export(&x, f, 0, SHARED_SIZE, EXPORTER_IP ":0", IOMEM_EXPORT_WRITE) == 0, "export");
        REQUIRE(acquired(f) == SHARED_SIZE, "the export pins its range");
        char addr[64] = { 0 };
        snprintf(addr, sizeof addr, "%s", iomem_export_addr(x));
        REQUIRE(strncmp(addr, EXPORTER_IP ":", strlen(EXPORTER_IP) + 1) == 0, "bound at %s", addr);
        char done;
        REQUIRE(say(l, addr, sizeof addr) == 0 && hear(l, &done, 1) == 0, "the importer stopped early");
        /* The importer wrote 'w' over [3 MiB + 100, +5000): the object
         * holds it, as a plain read of its descriptor shows. */
        char got[5002];
        REQUIRE(pread(iomem_fd(f), got, sizeof got, 3 * MIB + 99) == (ssize_t)sizeof got, "pread");
        REQUIRE(got[0] == pattern(3 * MIB + 99) && got[5001] == pattern(3 * MIB + 5100), "the bytes around");
        for (size_t i = 1; i <= 5000; i++)
                REQUIRE(got[i] == 'w', "byte %zu", i);
        uint64_t served = 0;
        REQUIRE(iomem_export_peers(x, &served) == 1 && served == 1, "one peer");
        REQUIRE(iomem_close(&f) == -EBUSY, "close refused while exported");
        REQUIRE(iomem_export_close(&x) == 0 && !x, "revoke");
        REQUIRE(acquired(f) == 0, "the revoked export holds no pin");
        REQUIRE(say(l, "r", 1) == 0 && hear(l, &done, 1) == 0, "the importer stopped early");
        REQUIRE(iomem_close(&f) == 0, "close");
        return 0;
}

static int import_and_modify(struct link *l, void *arg)
{
        (void)arg;
        char addr[64];
        REQUIRE(hear(l, addr, sizeof addr) == 0, "no address");
        struct iomem_remote *r = NULL;
        REQUIRE(iomem_remote_open(&r, addr) == 0, "open %s", addr);
        REQUIRE(iomem_remote_size(r) == (ssize_t)SHARED_SIZE, "size");
        struct iomem *f = object("fetched", 0);
        REQUIRE(f, "open");
        REQUIRE(iomem_remote_fetch(r, f) == (ssize_t)SHARED_SIZE, "fetch");
        struct iomem_stat st;
        REQUIRE(iomem_stat(f, &st) == 0 && st.size == SHARED_SIZE, "fetched size");
        size_t wrong = first_wrong(f, SHARED_SIZE);
        REQUIRE(wrong == SHARED_SIZE, "byte %zu differs", wrong);
        /* A read at byte offsets on both sides. */
        REQUIRE(iomem_remote_read(r, 12345, f, 777, 70000) == 70000, "read");
        char buf[70000];
        REQUIRE(iomem_pread(f, buf, sizeof buf, 777) == (ssize_t)sizeof buf, "pread");
        for (size_t i = 0; i < sizeof buf; i++)
                REQUIRE(buf[i] == pattern(12345 + i), "byte %zu", i);
        /* A write out of this object into the export. */
        memset(buf, 'w', 5000);
        REQUIRE(iomem_pwrite(f, buf, 5000, 2 * MIB + 1) == 5000, "pwrite");
        REQUIRE(iomem_remote_write(r, 3 * MIB + 100, f, 2 * MIB + 1, 5000) == 5000, "write");
        REQUIRE(acquired(f) == 0, "transfers leave no pin");
        char c;
        REQUIRE(say(l, "w", 1) == 0 && hear(l, &c, 1) == 0, "the exporter stopped early");
        /* Revoked: a clean error, here, and no pin left. */
        ssize_t n = iomem_remote_read(r, 0, f, 0, 4096);
        REQUIRE(n == -ECONNRESET || n == -EACCES, "a read after revocation: %zd", n);
        REQUIRE(strstr(iomem_errormsg(), "iomem_remote_read: ") && strstr(iomem_errormsg(), addr),
                "the message names the call and the export");
        REQUIRE(acquired(f) == 0, "a failed transfer leaves no pin");
        REQUIRE(iomem_remote_close(&r) == 0 && !r, "close");
        REQUIRE(iomem_close(&f) == 0, "close");
        return say(l, "d", 1);
}

START_TEST(an_object_is_fetched_modified_and_revoked_across_hosts)
{
        RUN_HOSTS(export_then_revoke, import_and_modify, NULL, 0, 0);
}
END_TEST

/* ---- a client that does not use the library ------------------------- */

/* The descriptor as it travels (lib/fabric.c): a client needs its layout. */
struct wire_piece {
        uint64_t off, len, addr, key;
};
struct wire_descriptor {
        uint64_t magic, size;
        uint32_t flags, npieces;
        struct wire_piece piece[];
};

struct raw_client {
        struct fi_info *info;
        struct fid_fabric *fabric;
        struct fid_domain *domain;
        struct fid_eq *eq;
        struct fid_cq *cq;
        struct fid_ep *ep;
        union {
                struct wire_descriptor d;
                char bytes[1 << 18];
        } desc;
};

/* The piece of the export that holds byte at, and where in it. */
static struct wire_piece *raw_piece(struct raw_client *c, uint64_t at, uint64_t *within)
{
        uint32_t i = 0;
        while (i + 1 < c->desc.d.npieces && c->desc.d.piece[i + 1].off <= at)
                i++;
        *within = at - c->desc.d.piece[i].off;
        return &c->desc.d.piece[i];
}

/* Wait up to 5 s for one completion: 0, or the error it carries. */
static int raw_wait(struct raw_client *c)
{
        for (int tries = 0; tries < 50; tries++) {
                struct fi_cq_entry e;
                ssize_t n = fi_cq_sread(c->cq, &e, 1, NULL, 100);
                if (n == 1)
                        return 0;
                if (n == -FI_EAVAIL) {
                        struct fi_cq_err_entry ee = { 0 };
                        fi_cq_readerr(c->cq, &ee, 0);
                        return -(int)ee.err;
                }
                uint32_t event;
                struct fi_eq_cm_entry cm;
                n = fi_eq_read(c->eq, &event, &cm, sizeof cm, 0);
                if (n == -FI_EAVAIL || n >= 0)
                        return -ECONNRESET; /* the exporter cut the connection */
        }
        return -ETIMEDOUT;
}

static void raw_close(struct raw_client *c)
{
        struct fid *fids[] = { c->ep ? &c->ep->fid : NULL, c->cq ? &c->cq->fid : NULL,
                               c->eq ? &c->eq->fid : NULL, c->domain ? &c->domain->fid : NULL,
                               c->fabric ? &c->fabric->fid : NULL };
        for (size_t i = 0; i < sizeof fids / sizeof fids[0]; i++)
                if (fids[i])
                        fi_close(fids[i]);
        if (c->info)
                fi_freeinfo(c->info);
        memset(c, 0, sizeof *c);
}

/* Connect to the export at host:port and receive its descriptor. */
static int raw_connect(struct raw_client *c, const char *addr)
{
        char host[64];
        snprintf(host, sizeof host, "%s", addr);
        char *port = strrchr(host, ':');
        if (!port)
                return -EINVAL;
        *port++ = 0;
        struct fi_info *hints = fi_allocinfo();
        hints->ep_attr->type = FI_EP_MSG;
        hints->caps = FI_MSG | FI_RMA;
        hints->domain_attr->mr_mode = FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
        int rc = fi_getinfo(FI_VERSION(1, 5), host, port, 0, hints, &c->info);
        fi_freeinfo(hints);
        struct fi_eq_attr eq_attr = { .wait_obj = FI_WAIT_UNSPEC };
        struct fi_cq_attr cq_attr = { .format = FI_CQ_FORMAT_CONTEXT, .wait_obj = FI_WAIT_UNSPEC };
        if (rc || fi_fabric(c->info->fabric_attr, &c->fabric, NULL) ||
            fi_domain(c->fabric, c->info, &c->domain, NULL) || fi_eq_open(c->fabric, &eq_attr, &c->eq, NULL) ||
            fi_cq_open(c->domain, &cq_attr, &c->cq, NULL) || fi_endpoint(c->domain, c->info, &c->ep, NULL) ||
            fi_ep_bind(c->ep, &c->eq->fid, 0) || fi_ep_bind(c->ep, &c->cq->fid, FI_TRANSMIT | FI_RECV) ||
            fi_enable(c->ep) || fi_recv(c->ep, &c->desc, sizeof c->desc, NULL, 0, NULL) ||
            fi_connect(c->ep, c->info->dest_addr, NULL, 0))
                return -EIO;
        uint32_t event;
        struct fi_eq_cm_entry cm;
        if (fi_eq_sread(c->eq, &event, &cm, sizeof cm, 5000, 0) < 0 || event != FI_CONNECTED)
                return -ECONNREFUSED;
        return raw_wait(c);
}

/* A connection that could not be made: no answer, neither yes nor no. */
#define RAW_NO_ANSWER 1

/* One RMA of len bytes at offset `at` of the export (within the piece
 * that holds byte `at`, or past its end), with its key moved by
 * key_delta, on a connection of its own (a refused access may cut it):
 * 0, the error it met, or RAW_NO_ANSWER. */
static int raw_rma(const char *addr, bool write, uint64_t at, size_t len, uint64_t key_delta, char *buf)
{
        struct raw_client *c = calloc(1, sizeof *c);
        int err = raw_connect(c, addr) ? RAW_NO_ANSWER : 0;
        if (!err) {
                uint64_t within;
                struct wire_piece *p = raw_piece(c, at, &within);
                struct iovec local = { buf, len };
                struct fi_rma_iov remote = { p->addr + within, len, p->key + key_delta };
                struct fi_msg_rma msg = { .msg_iov = &local, .iov_count = 1, .rma_iov = &remote,
                                          .rma_iov_count = 1 };
                /* A write completes when the exporter has taken (or refused) it. */
                err = write ? (int)fi_writemsg(c->ep, &msg, FI_COMPLETION | FI_DELIVERY_COMPLETE)
                            : (int)fi_readmsg(c->ep, &msg, FI_COMPLETION);
                if (!err)
                        err = raw_wait(c);
        }
        raw_close(c);
        free(c);
        return err;
}

/* A plain fi_write of 'x' (complete once sent, so told nothing) to offset
 * 0 of a read-only export, then a read of the same bytes on the same
 * connection, ordered after it: 0 if they are still the object's, or if
 * the exporter's provider cut the connection for the write (the read is
 * then cancelled, or refused as not connected); -EIO if the write landed;
 * RAW_NO_ANSWER if no connection could be made. */
static int raw_write_is_dropped(const char *addr)
{
        struct raw_client *c = calloc(1, sizeof *c);
        static char out[4096], in[4096];
        memset(out, 'x', sizeof out);
        int err = raw_connect(c, addr);
        if (err) {
                raw_close(c);
                free(c);
                return RAW_NO_ANSWER;
        }
        struct wire_piece *p = &c->desc.d.piece[0];
        if (!fi_write(c->ep, out, sizeof out, NULL, 0, p->addr, p->key, NULL))
                raw_wait(c);
        if (!(err = (int)fi_read(c->ep, in, sizeof in, NULL, 0, p->addr, p->key, NULL)))
                err = raw_wait(c);
        for (size_t i = 0; !err && i < sizeof in; i++)
                if (in[i] != pattern(MIB + i))
                        err = -EIO;
        if (err == -ECANCELED || err == -ECONNRESET || err == -ENOTCONN)
                err = 0;
        raw_close(c);
        free(c);
        return err;
}

#define RAW_SIZE (4 * MIB)

static int export_read_only(struct link *l, void *arg)
{
        (void)arg;
        struct iomem *f = object("readonly", RAW_SIZE + MIB);
        REQUIRE(f, "open");
        REQUIRE(fill(f, RAW_SIZE + MIB) == 0, "fill");
        /* The export is [1 MiB, 5 MiB): the first and the last MiB are not. */
        struct iomem_export *x = NULL;
        REQUIRE(iomem_export(&x, f, MIB, RAW_SIZE, EXPORTER_IP ":0", 0) == 0, "export");
        char addr[64] = { 0 }, done;
        snprintf(addr, sizeof addr, "%s", iomem_export_addr(x));
        REQUIRE(say(l, addr, sizeof addr) == 0 && hear(l, &done, 1) == 0, "the client stopped early");
        size_t wrong = first_wrong(f, RAW_SIZE + MIB);
        REQUIRE(wrong == RAW_SIZE + MIB, "byte %zu was written", wrong);
        REQUIRE(iomem_export_close(&x) == 0, "revoke");
        REQUIRE(acquired(f) == 0, "no pin left");
        REQUIRE(iomem_close(&f) == 0, "close");
        return 0;
}

static int raw_client(struct link *l, void *arg)
{
        (void)arg;
        char addr[64];
        REQUIRE(hear(l, addr, sizeof addr) == 0, "no address");
        static char buf[2 * MIB];
        /* What was exported can be read, and is the object's. */
        REQUIRE(raw_rma(addr, false, 0, 64 << 10, 0, buf) == 0, "a read inside the export");
        for (size_t i = 0; i < (64 << 10); i++)
                REQUIRE(buf[i] == pattern(MIB + i), "byte %zu", i);
        REQUIRE(raw_rma(addr, false, RAW_SIZE - 4096, 4096, 0, buf) == 0, "the export's last page");
        /* Nothing else. */
        int err;
        memset(buf, 'x', sizeof buf);
        REQUIRE((err = raw_rma(addr, true, 0, 4096, 0, buf)) < 0, "a write to a read-only export");
        REQUIRE((err = raw_write_is_dropped(addr)) == 0, "a write to a read-only export: %d", err);
        REQUIRE((err = raw_rma(addr, false, RAW_SIZE - 4096, 8192, 0, buf)) < 0, "a read past the end");
        REQUIRE((err = raw_rma(addr, true, RAW_SIZE, 4096, 0, buf)) < 0, "a write past the end");
        REQUIRE((err = raw_rma(addr, false, 0, 4096, 1, buf)) < 0, "a read with another key");
        REQUIRE((err = raw_rma(addr, false, (uint64_t)0 - MIB, 4096, 0, buf)) < 0, "a read before the start");
        return say(l, "d", 1);
}

START_TEST(a_client_reaches_only_what_was_exported)
{
        RUN_HOSTS(export_read_only, raw_client, NULL, 0, 0);
}
END_TEST

/* ---- kills -------------------------------------------------------------- */

#define KILL_SIZE (32 * MIB)

/* Export an object of KILL_SIZE bytes of pattern, tell the importer
 * where, and return once it has connected and done `reads` reads. */
static int export_until_reads(struct link *l, const char *tag, unsigned flags, int reads, struct iomem **f,
                              struct iomem_export **x)
{
        REQUIRE((*f = object(tag, KILL_SIZE)), "open");
        REQUIRE(fill(*f, KILL_SIZE) == 0, "fill");
        REQUIRE(iomem_export(x, *f, 0, KILL_SIZE, EXPORTER_IP ":0", flags) == 0, "export");
        char addr[64] = { 0 }, c;
        snprintf(addr, sizeof addr, "%s", iomem_export_addr(*x));
        REQUIRE(say(l, addr, sizeof addr) == 0, "say");
        for (int i = 0; i <= reads; i++) /* one for the connection, one per read */
                REQUIRE(hear(l, &c, 1) == 0, "the importer stopped early");
        return 0;
}

/* The exporter kills the importer after it has done *arg reads, then
 * waits for the dead peer's endpoint to go, and closes with no pin left. */
static int export_and_kill_the_peer(struct link *l, void *arg)
{
        struct iomem *f;
        struct iomem_export *x;
        if (export_until_reads(l, "killed-peer", IOMEM_EXPORT_WRITE, *(int *)arg, &f, &x))
                return 1;
        REQUIRE(kill(l->peer, SIGKILL) == 0, "kill");
        /* The dead peer's connection goes (its endpoint is all it held). */
        struct timespec t0, now;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        ssize_t peers;
        while ((peers = iomem_export_peers(x, NULL)) > 0) {
                clock_gettime(CLOCK_MONOTONIC, &now);
                REQUIRE(now.tv_sec - t0.tv_sec < 20, "the dead peer is still connected");
                poll(NULL, 0, 10);
        }
        REQUIRE(peers == 0, "peers");
        REQUIRE(acquired(f) == KILL_SIZE, "the export's own pin only");
        REQUIRE(iomem_export_close(&x) == 0, "close");
        REQUIRE(acquired(f) == 0, "no pin left");
        REQUIRE(iomem_close(&f) == 0, "close");
        return 0;
}

/* Connect to the export export_until_reads made, with an object of its
 * size to read into, and say so. */
static int import_start(struct link *l, const char *tag, struct iomem_remote **r, struct iomem **f)
{
        char addr[64];
        REQUIRE(hear(l, addr, sizeof addr) == 0, "no address");
        REQUIRE(iomem_remote_open(r, addr) == 0, "open");
        REQUIRE((*f = object(tag, KILL_SIZE)), "open");
        REQUIRE(say(l, "c", 1) == 0, "say");
        return 0;
}

/* Reads the whole export over and over, a byte to the other side per read. */
static int import_until_killed(struct link *l, void *arg)
{
        (void)arg;
        struct iomem_remote *r = NULL;
        struct iomem *f;
        if (import_start(l, "killed-reader", &r, &f))
                return 1;
        for (;;) {
                REQUIRE(iomem_remote_read(r, 0, f, 0, KILL_SIZE) == (ssize_t)KILL_SIZE, "read");
                REQUIRE(say(l, "r", 1) == 0, "say");
        }
}

START_TEST(a_peer_killed_mid_transfer_leaves_nothing_on_the_exporter)
{
        static int reads[] = { 0, 1, 3 };
        RUN_HOSTS(export_and_kill_the_peer, import_until_killed, &reads[_i], 0, 128 + SIGKILL);
}
END_TEST

/* The exporter dies while the importer reads: the importer's read fails
 * cleanly, and leaves no pin. */
static int export_and_die(struct link *l, void *arg)
{
        struct iomem *f;
        struct iomem_export *x;
        if (export_until_reads(l, "dying-exporter", 0, *(int *)arg, &f, &x))
                return 1;
        raise(SIGKILL);
        return 1;
}

static int import_until_the_exporter_dies(struct link *l, void *arg)
{
        (void)arg;
        struct iomem_remote *r = NULL;
        struct iomem *f;
        if (import_start(l, "orphaned-reader", &r, &f))
                return 1;
        ssize_t n;
        while ((n = iomem_remote_read(r, 0, f, 0, KILL_SIZE)) == (ssize_t)KILL_SIZE)
                if (say(l, "r", 1))
                        break; /* the exporter is gone: the next read fails */
        n = n == (ssize_t)KILL_SIZE ? iomem_remote_read(r, 0, f, 0, KILL_SIZE) : n;
        REQUIRE(n == -ECONNRESET || n == -EACCES, "a read from a dead exporter: %zd", n);
        REQUIRE(acquired(f) == 0, "no pin left");
        REQUIRE(iomem_remote_read(r, 0, f, 0, 4096) == -ECONNRESET, "the connection stays down");
        REQUIRE(iomem_remote_close(&r) == 0, "close");
        REQUIRE(iomem_close(&f) == 0, "close");
        return 0;
}

START_TEST(an_exporter_killed_mid_transfer_fails_the_reader_cleanly)
{
        static int reads[] = { 0, 2 };
        signal(SIGPIPE, SIG_IGN); /* the importer says a read is done to a dead exporter */
        RUN_HOSTS(export_and_die, import_until_the_exporter_dies, &reads[_i], 128 + SIGKILL, 0);
}
END_TEST

/* ---- one host: errors, and a dax: window's many buffers ----------------- */

START_TEST(every_error_has_its_code)
{
        struct iomem *f = object("errors", 4 * MIB), *ro = NULL;
        ck_assert_ptr_nonnull(f);
        struct iomem_export *x = NULL;
        ck_assert_err(iomem_export(NULL, f, 0, MIB, "127.0.0.1:0", 0), EINVAL);
        ck_assert_err(iomem_export(&x, NULL, 0, MIB, "127.0.0.1:0", 0), EINVAL);
        ck_assert_err(iomem_export(&x, f, 0, MIB, NULL, 0), EINVAL);
        ck_assert_err(iomem_export(&x, f, 0, 0, "127.0.0.1:0", 0), EINVAL);
        ck_assert_err(iomem_export(&x, f, 1, MIB, "127.0.0.1:0", 0), EINVAL);
        ck_assert_err(iomem_export(&x, f, 0, MIB + 1, "127.0.0.1:0", 0), EINVAL);
        ck_assert_err(iomem_export(&x, f, SIZE_MAX - 4095, 8192, "127.0.0.1:0", 0), EOVERFLOW);
        ck_assert_err(iomem_export(&x, f, 0, MIB, "127.0.0.1:0", 0x80), EINVAL);
        ck_assert_err(iomem_export(&x, f, 0, MIB, "127.0.0.1", 0), EINVAL);
        ck_assert_err(iomem_export(&x, f, 0, MIB, "127.0.0.1:http", 0), EINVAL);
        ck_assert_err(iomem_export(&x, f, 0, 8 * MIB, "127.0.0.1:0", 0), EINVAL); /* past the end */
        ck_assert_ptr_null(x);
        ck_assert_uint_eq(acquired(f), 0); /* failed exports leave no pin */
        ck_assert_int_eq(iomem_export(&x, f, 0, MIB, "127.0.0.1:0", 0), 0);
        ck_assert_uint_eq(acquired(f), MIB);
        struct iomem_export *y = NULL;
        ck_assert_err(iomem_export(&y, f, MIB, MIB, iomem_export_addr(x), 0), EADDRINUSE);
        ck_assert_uint_eq(acquired(f), MIB);
        ck_assert_err(iomem_close(&f), EBUSY);
        /* The remote side. */
        struct iomem_remote *r = NULL;
        ck_assert_err(iomem_remote_open(NULL, "127.0.0.1:1"), EINVAL);
        ck_assert_err(iomem_remote_open(&r, NULL), EINVAL);
        ck_assert_err(iomem_remote_open(&r, "nowhere"), EINVAL);
        ck_assert_int_eq(iomem_remote_open(&r, iomem_export_addr(x)), 0);
        ck_assert_int_eq(iomem_remote_size(r), MIB);
        struct iomem *g = object("errors-local", MIB);
        ck_assert_ptr_nonnull(g);
        ck_assert_err(iomem_remote_read(NULL, 0, g, 0, 1), EINVAL);
        ck_assert_err(iomem_remote_read(r, 0, NULL, 0, 1), EINVAL);
        ck_assert_err(iomem_remote_read(r, MIB - 1, g, 0, 2), ERANGE);
        ck_assert_err(iomem_remote_read(r, SIZE_MAX, g, 0, 2), EOVERFLOW);
        ck_assert_err(iomem_remote_read(r, 0, g, MIB - 1, 2), EINVAL); /* past g's end */
        /* Past the end, inside the last page: as far as the bytes go. */
        struct iomem *h = object("errors-short", MIB - 10);
        ck_assert_ptr_nonnull(h);
        ck_assert_err(iomem_remote_read(r, 0, h, MIB - 20, 20), EINVAL);
        ck_assert_int_eq(iomem_remote_read(r, 0, h, MIB - 20, 10), 10);
        ck_assert_uint_eq(acquired(h), 0);
        ck_assert_int_eq(iomem_close(&h), 0);
        ck_assert_err(iomem_remote_write(r, 0, g, 0, 1), EACCES);       /* a read-only export */
        ck_assert_int_eq(iomem_remote_read(r, 0, g, 0, 0), 0);
        ck_assert_uint_eq(acquired(g), 0);
        ck_assert_err(iomem_remote_fetch(NULL, g), EINVAL);
        ck_assert_err(iomem_remote_size(NULL), EINVAL);
        ck_assert_err(iomem_export_peers(NULL, NULL), EINVAL);
        ck_assert_ptr_null(iomem_export_addr(NULL));
        /* Read-only handles: no export for writing, nothing read into. */
        int fd = dup(iomem_fd(f));
        ck_assert_int_ge(fd, 0);
        if (!strcmp(test_backend(), "memfd") || !strcmp(test_backend(), "shm")) {
                ck_assert_int_eq(iomem_open_fd(&ro, test_backend(), fd, IOMEM_RDONLY, NULL), 0);
                ck_assert_err(iomem_export(&y, ro, 0, MIB, "127.0.0.1:0", IOMEM_EXPORT_WRITE), EROFS);
                ck_assert_err(iomem_remote_read(r, 0, ro, 0, 4096), EROFS);
                ck_assert_uint_eq(acquired(ro), MIB); /* the process's pins: the export's */
                ck_assert_int_eq(iomem_close(&ro), 0);
        } else {
                close(fd);
        }
        ck_assert_int_eq(iomem_remote_close(&r), 0);
        ck_assert_int_eq(iomem_remote_close(&r), 0); /* NULL: a no-op */
        ck_assert_err(iomem_remote_close(NULL), EINVAL);
        ck_assert_int_eq(iomem_export_close(&x), 0);
        ck_assert_int_eq(iomem_export_close(&x), 0);
        ck_assert_err(iomem_export_close(NULL), EINVAL);
        /* Nobody listens there now. */
        ck_assert_int_eq(iomem_export(&x, f, 0, MIB, "127.0.0.1:0", 0), 0);
        char gone[64];
        snprintf(gone, sizeof gone, "%s", iomem_export_addr(x));
        ck_assert_int_eq(iomem_export_close(&x), 0);
        ck_assert_err(iomem_remote_open(&r, gone), ECONNREFUSED);
        ck_assert_ptr_null(r);
        ck_assert_int_eq(iomem_close(&g), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

/* A dax: window of small chunks gives an export many buffers, each
 * registered under a key of its own: fetched whole, byte for byte. */
START_TEST(an_export_of_many_buffers_is_fetched_whole)
{
        if (strcmp(test_backend(), "memfd")) {
                printf("SKIP: many buffers (runs once, with the memfd suite)\n");
                return;
        }
        enum { CHUNK = 64 << 10, CHUNKS = 64 };
        char uri[96], other_uri[96];
        snprintf(uri, sizeof uri, "dax:/tmp/iomem-test-fabric-%d", (int)getpid());
        snprintf(other_uri, sizeof other_uri, "dax:/tmp/iomem-test-fabric-%d-other", (int)getpid());
        struct iomem_window *w;
        struct iomem_opts *o;
        struct iomem *d, *g, *other;
        test_fragmented_window(CHUNK, CHUNKS, other_uri, &w, &o, &other);
        ck_assert_int_eq(iomem_open(&d, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o), 0);
        ck_assert_int_eq(iomem_unlink(uri), 0);
        size_t size = (CHUNKS / 2) * CHUNK;
        ck_assert_int_eq(fill(d, size), 0);
        struct iomem_export *x;
        ck_assert_int_eq(iomem_export(&x, d, 0, size, "127.0.0.1:0", 0), 0);
        ck_assert_int_eq(iomem_bufcount(d, 0, size), CHUNKS / 2);
        struct iomem_remote *r;
        ck_assert_int_eq(iomem_remote_open(&r, iomem_export_addr(x)), 0);
        ck_assert_ptr_nonnull(g = object("many", 0));
        ck_assert_int_eq(iomem_remote_fetch(r, g), size);
        ck_assert_uint_eq(first_wrong(g, size), size);
        /* A read across every boundary between buffers. */
        ck_assert_int_eq(iomem_remote_read(r, CHUNK / 2, g, 0, size - CHUNK), size - CHUNK);
        char *buf = malloc(size);
        ck_assert_int_eq(iomem_pread(g, buf, size - CHUNK, 0), size - CHUNK);
        size_t i = 0;
        while (i < size - CHUNK && buf[i] == pattern(CHUNK / 2 + i))
                i++;
        ck_assert_uint_eq(i, size - CHUNK);
        free(buf);
        ck_assert_int_eq(iomem_remote_close(&r), 0);
        ck_assert_int_eq(iomem_export_close(&x), 0);
        ck_assert_uint_eq(acquired(d), 0);
        ck_assert_int_eq(iomem_close(&g), 0);
        ck_assert_int_eq(iomem_close(&d), 0);
        ck_assert_int_eq(iomem_close(&other), 0);
        iomem_opts_delete(&o);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

/* From a read-only handle, of an object whose size is not whole pages:
 * the export holds the object's bytes, and fetches give them all. */
START_TEST(a_read_only_handle_exports_its_bytes)
{
        if (strcmp(test_backend(), "memfd") && strcmp(test_backend(), "shm")) {
                printf("SKIP: read-only handle (memfd and shm open one from a descriptor)\n");
                return;
        }
        enum { SIZE = 10000, PAGES = 12288 };
        struct iomem *f = object("readonly-bytes", SIZE), *ro, *g;
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fill(f, SIZE), 0);
        ck_assert_int_eq(iomem_open_fd(&ro, test_backend(), dup(iomem_fd(f)), IOMEM_RDONLY, NULL), 0);
        struct iomem_export *x;
        ck_assert_int_eq(iomem_export(&x, ro, 0, PAGES, "127.0.0.1:0", 0), 0);
        struct iomem_remote *r;
        ck_assert_int_eq(iomem_remote_open(&r, iomem_export_addr(x)), 0);
        ck_assert_int_eq(iomem_remote_size(r), SIZE);
        ck_assert_ptr_nonnull(g = object("readonly-bytes-copy", 0));
        ck_assert_int_eq(iomem_remote_fetch(r, g), SIZE);
        ck_assert_uint_eq(first_wrong(g, SIZE), SIZE);
        ck_assert_int_eq(iomem_remote_close(&r), 0);
        ck_assert_int_eq(iomem_export_close(&x), 0);
        ck_assert_uint_eq(acquired(ro), 0);
        ck_assert_int_eq(iomem_close(&g), 0);
        /* A hole has no memory to register, and a read-only handle cannot
         * give it some: -ENODATA, and no pin left. */
        ck_assert_int_eq(iomem_close(&ro), 0);
        ck_assert_int_eq(iomem_truncate(f, 5 * 4096), 0); /* pages 3 and 4: a hole */
        ck_assert_int_eq(iomem_open_fd(&ro, test_backend(), dup(iomem_fd(f)), IOMEM_RDONLY, NULL), 0);
        x = NULL;
        ck_assert_int_eq(iomem_export(&x, ro, 0, 5 * 4096, "127.0.0.1:0", 0), -ENODATA);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "hole"));
        ck_assert_ptr_null(x);
        ck_assert_uint_eq(acquired(ro), 0);
        ck_assert_int_eq(iomem_close(&ro), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

static volatile sig_atomic_t alarms;

static void count_alarm(int sig)
{
        (void)sig;
        alarms++;
}

/* A signal caught while a transfer waits (no SA_RESTART) is no reason to
 * stop waiting: every transfer ends whole, with no pin left. */
START_TEST(signals_caught_during_transfers_do_not_cut_them_short)
{
        enum { ROUNDS = 5 };
        /* valgrind runs the signal handler slowly: fewer, further apart. */
        const size_t SIZE = test_under_valgrind() ? 4 << 20 : 32 << 20;
        const long every_us = test_under_valgrind() ? 5000 : 200;
        struct iomem *f = object("signalled", SIZE), *g = object("signalled-copy", SIZE);
        ck_assert_ptr_nonnull(f);
        ck_assert_ptr_nonnull(g);
        ck_assert_int_eq(fill(f, SIZE), 0);
        struct iomem_export *x;
        ck_assert_int_eq(iomem_export(&x, f, 0, SIZE, "127.0.0.1:0", 0), 0);
        struct iomem_remote *r;
        ck_assert_int_eq(iomem_remote_open(&r, iomem_export_addr(x)), 0);
        struct sigaction sa = { .sa_handler = count_alarm }, old;
        ck_assert_int_eq(sigaction(SIGALRM, &sa, &old), 0);
        struct itimerval every = { { 0, every_us }, { 0, every_us } }, off = { { 0, 0 }, { 0, 0 } };
        ck_assert_int_eq(setitimer(ITIMER_REAL, &every, NULL), 0);
        ssize_t n[ROUNDS];
        for (int i = 0; i < ROUNDS; i++)
                n[i] = iomem_remote_read(r, 0, g, 0, SIZE);
        ck_assert_int_eq(setitimer(ITIMER_REAL, &off, NULL), 0);
        ck_assert_int_eq(sigaction(SIGALRM, &old, NULL), 0);
        for (int i = 0; i < ROUNDS; i++)
                ck_assert_msg(n[i] == (ssize_t)SIZE, "round %d: %zd (%s)", i, n[i], iomem_errormsg());
        ck_assert_int_gt(alarms, 0);
        ck_assert_uint_eq(first_wrong(g, SIZE), SIZE);
        ck_assert_uint_eq(acquired(g), 0);
        ck_assert_int_eq(iomem_remote_close(&r), 0);
        ck_assert_int_eq(iomem_export_close(&x), 0);
        ck_assert_int_eq(iomem_close(&g), 0);
        ck_assert_int_eq(iomem_close(&f), 0);
}
END_TEST

/* Past the limit: 8193 buffers, one more than a descriptor describes. */
START_TEST(an_export_of_more_buffers_than_described_is_refused)
{
        if (strcmp(test_backend(), "memfd")) {
                printf("SKIP: too many buffers (runs once, with the memfd suite)\n");
                return;
        }
        enum { CHUNK = 4096, BUFFERS = 8193, CHUNKS = 2 * BUFFERS };
        char uri[96], other_uri[96];
        snprintf(uri, sizeof uri, "dax:/tmp/iomem-test-fabric-%d-e2big", (int)getpid());
        snprintf(other_uri, sizeof other_uri, "dax:/tmp/iomem-test-fabric-%d-e2big-other", (int)getpid());
        struct iomem_window *w;
        struct iomem_opts *o;
        struct iomem *d, *other;
        test_fragmented_window(CHUNK, CHUNKS, other_uri, &w, &o, &other);
        ck_assert_int_eq(iomem_open(&d, uri, IOMEM_RDWR | IOMEM_CREATE | IOMEM_EXCL, o), 0);
        ck_assert_int_eq(iomem_unlink(uri), 0);
        ck_assert_int_eq(iomem_truncate(d, BUFFERS * CHUNK), 0);
        struct iomem_export *x = NULL;
        ck_assert_err(iomem_export(&x, d, 0, BUFFERS * CHUNK, "127.0.0.1:0", 0), E2BIG);
        ck_assert_ptr_nonnull(strstr(iomem_errormsg(), "8193 buffers"));
        ck_assert_uint_eq(acquired(d), 0);
        /* One fewer is the limit, and goes. */
        ck_assert_int_eq(iomem_export(&x, d, 0, (BUFFERS - 1) * CHUNK, "127.0.0.1:0", 0), 0);
        ck_assert_int_eq(iomem_export_close(&x), 0);
        ck_assert_int_eq(iomem_close(&d), 0);
        ck_assert_int_eq(iomem_close(&other), 0);
        iomem_opts_delete(&o);
        ck_assert_int_eq(iomem_window_delete(&w), 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("fabric");
        TCase *t = tcase_create("fabric");
        tcase_add_test(t, an_object_is_fetched_modified_and_revoked_across_hosts);
        tcase_add_test(t, a_client_reaches_only_what_was_exported);
        tcase_add_loop_test(t, a_peer_killed_mid_transfer_leaves_nothing_on_the_exporter, 0, 3);
        tcase_add_loop_test(t, an_exporter_killed_mid_transfer_fails_the_reader_cleanly, 0, 2);
        tcase_add_test(t, every_error_has_its_code);
        tcase_add_test(t, signals_caught_during_transfers_do_not_cut_them_short);
        tcase_add_test(t, a_read_only_handle_exports_its_bytes);
        tcase_add_test(t, an_export_of_many_buffers_is_fetched_whole);
        tcase_add_test(t, an_export_of_more_buffers_than_described_is_refused);
        suite_add_tcase(s, t);
        return test_run(s);
}
