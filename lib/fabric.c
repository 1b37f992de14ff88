/* SPDX-License-Identifier: MIT */
/*
 * Fabric exports: a range of an object made reachable from other hosts by
 * RMA through libfabric, and the remote side that reads and writes it.
 *
 * The exporter pins the range and registers its memory (the buffers
 * retrieve gives, no bounce buffer) with a libfabric domain, one region
 * per buffer, each under a key of its own. A passive endpoint listens for
 * connected (FI_EP_MSG) endpoints; a thread of the export's own accepts
 * them and sends each peer one message, the descriptor: the export's
 * length and, per buffer, where it lies in the export, its RMA address
 * and its key. From then on the peer's fi_read and fi_write reach the
 * memory with no work by the exporter (the provider's auto progress). Key
 * exchange is the one thing libfabric leaves to its users; this message
 * is all of the protocol.
 *
 * Closing the export revokes it: the regions are closed (deregistered)
 * first, so that an access still in flight or sent later fails at the
 * remote side with an error, then the peers are disconnected, and only
 * then is the range released.
 */
#define _GNU_SOURCE
#include "internal.h"
#include "lockwait.h"

#include <arpa/inet.h>
#include <endian.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <unistd.h>

#define FAB_API FI_VERSION(1, 5)
/* "iomemfx1": the descriptor's first word, and its layout's version. */
#define FAB_MAGIC UINT64_C(0x31786d656d6f69)
/* An export of more buffers than this is -E2BIG (a dax: window's chunks,
 * a file of many gifts): the descriptor travels in one receive of
 * FAB_DESC_MAX bytes, which each peer posts before it connects. */
#define FAB_PIECES_MAX 8192
/* Transfers go in RMA operations of at most FAB_CHUNK bytes, at most
 * FAB_DEPTH of them in flight; a fetch pins FAB_WINDOW bytes at a time. */
#define FAB_CHUNK (1u << 20)
#define FAB_DEPTH 16u
#define FAB_WINDOW ((size_t)64 << 20)
/* How long opening a remote waits for the exporter to answer. */
#define FAB_CONNECT_MS 10000
/* How often a waiter looks for a shutdown while operations are in flight,
 * and the exporter's thread for peers gone while any is connected. */
#define FAB_POLL_MS 200
/* A transfer with no completion for this long gives up (-ETIMEDOUT). */
#define FAB_STALL_MS 30000

/* One buffer of an export, as it travels (little-endian). */
struct fab_piece {
        uint64_t off;  /* in the export */
        uint64_t len;
        uint64_t addr; /* the RMA address of its first byte */
        uint64_t key;
};

struct fab_descriptor {
        uint64_t magic;
        uint64_t size;    /* the object's bytes in the export */
        uint32_t flags;   /* IOMEM_EXPORT_* */
        uint32_t npieces;
        struct fab_piece piece[];
};
#define FAB_DESC_MAX (sizeof(struct fab_descriptor) + FAB_PIECES_MAX * sizeof(struct fab_piece))

/* What both sides open: a fabric, a domain, an event queue (connections)
 * and a completion queue (data). */
struct fab_net {
        struct fi_info *info;
        struct fid_fabric *fabric;
        struct fid_domain *domain;
        struct fid_eq *eq;
        struct fid_cq *cq;
};

struct fab_peer {
        struct fid_ep *ep;
        struct fab_peer *next;
        bool connected; /* counted in npeers */
};

struct iomem_export {
        struct iomem *f;
        char *name;           /* for messages: the object and the range */
        char addr[64];        /* HOST:PORT, as bound */
        size_t off, pinned;
        bool counted;         /* in f->exports */
        pid_t pid;            /* the process the fabric belongs to */
        struct fab_net net;
        struct fid_pep *pep;
        struct fid_mr **mr;
        size_t nmr;
        struct fab_descriptor *desc;
        size_t desc_len;
        pthread_t thread;
        bool thread_started, stopping;
        pthread_mutex_t mu;   /* peers */
        struct fab_peer *peers;
        size_t npeers;        /* connected */
        uint64_t served;      /* ever connected */
        int eq_fd, cq_fd;     /* the queues' wait descriptors */
        int wake_fd;          /* an eventfd: close wakes the thread with it */
};

struct iomem_remote {
        char *name;           /* the address, for messages */
        pid_t pid;            /* the process the connection belongs to */
        pthread_mutex_t mu;   /* one transfer at a time: they share the queue */
        struct fab_net net;
        struct fid_ep *ep;    /* NULL once the connection is down */
        struct fab_descriptor *desc;
        uint64_t size;
        unsigned flags;
        size_t depth;
        bool wedged;          /* an endpoint the provider could not close */
};

#define FAIL(op, obj, err, ...) iom_result(op, iom_fail(obj, err, __VA_ARGS__))

/* A libfabric error (negative FI_E*, which are errno values) as ours. */
static int fab_fail(const char *obj, const char *call, ssize_t rc)
{
        int e = rc < 0 ? (int)-rc : EIO;
        return iom_fail(obj, -e, "%s: %s", call, fi_strerror(e));
}

/* "HOST:PORT", "[V6]:PORT" or ":PORT" into its parts (host may be empty). */
static int split_addr(const char *addr, char *host, size_t hostsz, char *port, size_t portsz)
{
        const char *colon = strrchr(addr, ':');
        if (!colon || !colon[1] || strlen(colon + 1) >= portsz)
                return iom_fail(addr, -EINVAL, "an address is HOST:PORT");
        const char *h = addr;
        size_t hlen = (size_t)(colon - addr);
        if (hlen >= 2 && h[0] == '[' && h[hlen - 1] == ']')
                h++, hlen -= 2;
        if (hlen >= hostsz)
                return iom_fail(addr, -EINVAL, "the host name is too long");
        for (const char *p = colon + 1; *p; p++)
                if (*p < '0' || *p > '9')
                        return iom_fail(addr, -EINVAL, "the port is not a number");
        memcpy(host, h, hlen);
        host[hlen] = 0;
        strcpy(port, colon + 1);
        return 0;
}

/* A connected endpoint that can read and write remote memory, and whose
 * memory can be read and written (exporter, so FI_REMOTE_*; its thread
 * waits in poll on the queues' descriptors). The provider is libfabric's
 * choice, or FI_PROVIDER's. */
static int net_open(struct fab_net *n, const char *obj, const char *addr, bool exporter)
{
        char host[256], port[16];
        int err = split_addr(addr, host, sizeof host, port, sizeof port);
        if (err)
                return err;
        struct fi_info *hints = fi_allocinfo();
        if (!hints)
                return iom_fail(obj, -ENOMEM, "out of memory");
        hints->ep_attr->type = FI_EP_MSG;
        hints->caps = FI_MSG | FI_RMA | (exporter ? FI_REMOTE_READ | FI_REMOTE_WRITE : FI_READ | FI_WRITE);
        hints->mode = 0;
        /* Virtual addresses are handled. Keys are ours (random), not the
         * provider's, and local registration (FI_MR_LOCAL): providers
         * that need either (verbs) are not used yet. */
        hints->domain_attr->mr_mode = FI_MR_VIRT_ADDR | FI_MR_ALLOCATED;
        hints->domain_attr->threading = FI_THREAD_SAFE;
        int rc = fi_getinfo(FAB_API, *host ? host : NULL, port, exporter ? FI_SOURCE : 0, hints, &n->info);
        fi_freeinfo(hints);
        if (rc) {
                n->info = NULL;
                if (rc == -FI_ENODATA)
                        return iom_fail(obj, -ENODEV,
                                        "no libfabric provider reaches %s with connected endpoints and "
                                        "RMA on the application's keys without local registration (fi_info "
                                        "lists them; FI_PROVIDER picks one; verbs and efa need what is not "
                                        "supported yet)",
                                        addr);
                return fab_fail(obj, "fi_getinfo", rc);
        }
        struct fi_eq_attr eq_attr = { .wait_obj = FI_WAIT_UNSPEC };
        struct fi_cq_attr cq_attr = { .format = FI_CQ_FORMAT_MSG, .wait_obj = FI_WAIT_UNSPEC };
        const char *call = "fi_fabric";
        if (exporter) /* waited on with poll, not the queues' own waits */
                eq_attr.wait_obj = cq_attr.wait_obj = FI_WAIT_FD;
        if (!(rc = fi_fabric(n->info->fabric_attr, &n->fabric, NULL)) &&
            !(rc = (call = "fi_domain", fi_domain(n->fabric, n->info, &n->domain, NULL))) &&
            !(rc = (call = "fi_eq_open", fi_eq_open(n->fabric, &eq_attr, &n->eq, NULL))))
                rc = (call = "fi_cq_open", fi_cq_open(n->domain, &cq_attr, &n->cq, NULL));
        return rc ? fab_fail(obj, call, rc) : 0;
}

static void close_fid(void *fidp)
{
        struct fid **p = fidp;
        if (*p)
                fi_close(*p);
        *p = NULL;
}

static void net_close(struct fab_net *n)
{
        close_fid(&n->cq);
        close_fid(&n->eq);
        close_fid(&n->domain);
        close_fid(&n->fabric);
        if (n->info)
                fi_freeinfo(n->info);
        n->info = NULL;
}

/* An endpoint for info on n's queues, enabled. */
static int endpoint(struct fab_net *n, const char *obj, struct fi_info *info, struct fid_ep **ep)
{
        const char *call = "fi_endpoint";
        int rc = fi_endpoint(n->domain, info, ep, NULL);
        if (!rc && !(rc = (call = "fi_ep_bind", fi_ep_bind(*ep, &n->eq->fid, 0))) &&
            !(rc = fi_ep_bind(*ep, &n->cq->fid, FI_TRANSMIT | FI_RECV)))
                rc = (call = "fi_enable", fi_enable(*ep));
        if (rc) {
                if (!strcmp(call, "fi_endpoint"))
                        *ep = NULL;
                close_fid(ep);
                return fab_fail(obj, call, rc);
        }
        return 0;
}

/* ---- the exporter ------------------------------------------------------ */

static void peer_drop(struct iomem_export *x, struct fid *fid)
{
        pthread_mutex_lock(&x->mu);
        for (struct fab_peer **p = &x->peers; *p; p = &(*p)->next) {
                if (&(*p)->ep->fid == fid) {
                        struct fab_peer *gone = *p;
                        *p = gone->next;
                        x->npeers -= gone->connected;
                        fi_shutdown(gone->ep, 0);
                        close_fid(&gone->ep);
                        free(gone);
                        break;
                }
        }
        pthread_mutex_unlock(&x->mu);
}

static struct fab_peer *peer_find(struct iomem_export *x, struct fid *fid)
{
        struct fab_peer *p;
        for (p = x->peers; p && &p->ep->fid != fid; p = p->next)
                ;
        return p;
}

static void accept_peer(struct iomem_export *x, struct fi_info *info)
{
        struct fab_peer *p = calloc(1, sizeof *p);
        struct iom_error_saved saved;
        iom_error_save(&saved); /* a peer refused is not the caller's error */
        int rc, err = p ? endpoint(&x->net, x->name, info, &p->ep) : iom_fail(x->name, -ENOMEM, "out of memory");
        if (!err && (rc = fi_accept(p->ep, NULL, 0)))
                err = fab_fail(x->name, "fi_accept", rc);
        if (err) {
                iom_debug("refused a peer: %s", iomem_errormsg());
                if (p)
                        close_fid(&p->ep);
                free(p);
                fi_reject(x->pep, info->handle, NULL, 0);
        } else {
                pthread_mutex_lock(&x->mu);
                p->next = x->peers;
                x->peers = p;
                pthread_mutex_unlock(&x->mu);
        }
        iom_error_restore(&saved);
}

/* A peer is connected: it is sent the descriptor, and counts. */
static void peer_connected(struct iomem_export *x, struct fid *fid)
{
        pthread_mutex_lock(&x->mu);
        struct fab_peer *p = peer_find(x, fid);
        if (p && !fi_send(p->ep, x->desc, x->desc_len, NULL, 0, NULL)) {
                p->connected = true;
                x->npeers++;
                x->served++;
        }
        pthread_mutex_unlock(&x->mu);
        if (!p || !p->connected)
                peer_drop(x, fid);
}

/* Wait until a queue may have something, or the export closes. Reading
 * the completion queue is what drives the provider's progress, which
 * serves the peers' RMA (the tcp provider has no thread of its own). A
 * peer's socket closing wakes neither queue: while peers are connected,
 * the thread looks again every FAB_POLL_MS. */
static void wait_for_work(struct iomem_export *x)
{
        struct fid *fids[2] = { &x->net.eq->fid, &x->net.cq->fid };
        struct pollfd pfd[3] = { { .fd = x->wake_fd, .events = POLLIN },
                                 { .fd = x->eq_fd, .events = POLLIN },
                                 { .fd = x->cq_fd, .events = POLLIN } };
        int rc = fi_trywait(x->net.fabric, fids, 2);
        if (rc == -FI_EAGAIN)
                return; /* something is there already */
        pthread_mutex_lock(&x->mu);
        bool peers = x->peers != NULL;
        pthread_mutex_unlock(&x->mu);
        /* Without the queues' descriptors to trust, look again often. */
        poll(pfd, rc == FI_SUCCESS ? 3 : 1, rc == FI_SUCCESS && !peers ? -1 : FAB_POLL_MS);
}

/* The export's thread: accepts peers and sends each the descriptor; drops
 * the ones that disconnect or die (their endpoint is all they hold). */
static void *serve(void *arg)
{
        struct iomem_export *x = arg;
        while (!__atomic_load_n(&x->stopping, __ATOMIC_ACQUIRE)) {
                wait_for_work(x);
                uint32_t event;
                union {
                        struct fi_eq_cm_entry cm;
                        struct fi_eq_err_entry err;
                } e;
                ssize_t rd;
                while (!__atomic_load_n(&x->stopping, __ATOMIC_ACQUIRE) &&
                       ((rd = fi_eq_read(x->net.eq, &event, &e, sizeof e, 0)) >= 0 || rd == -FI_EAVAIL)) {
                        if (rd == -FI_EAVAIL) {
                                e.err = (struct fi_eq_err_entry){ 0 };
                                if (fi_eq_readerr(x->net.eq, &e.err, 0) > 0 && e.err.fid != &x->pep->fid)
                                        peer_drop(x, e.err.fid); /* a connection that failed */
                        } else if (event == FI_CONNREQ) {
                                accept_peer(x, e.cm.info);
                                fi_freeinfo(e.cm.info);
                        } else if (event == FI_CONNECTED) {
                                peer_connected(x, e.cm.fid);
                        } else if (event == FI_SHUTDOWN) {
                                peer_drop(x, e.cm.fid);
                        }
                }
                /* The descriptors' sends completing (one to a peer gone fails). */
                struct fi_cq_msg_entry done;
                ssize_t c;
                while ((c = fi_cq_read(x->net.cq, &done, 1)) == 1 || c == -FI_EAVAIL) {
                        struct fi_cq_err_entry cq_err = { 0 };
                        if (c == -FI_EAVAIL)
                                fi_cq_readerr(x->net.cq, &cq_err, 0);
                }
        }
        return NULL;
}

/* The memory of the pinned range: retrieve's through a writable handle;
 * borrow's through a read-only one, where a hole has no memory to export. */
static ssize_t range_buffers(struct iomem *f, size_t off, size_t len, struct iovec **iov)
{
        ssize_t n = iomem_bufcount(f, off, len);
        if (n < 0)
                return iom_inner_result(n);
        if (f->flags & IOMEM_RDWR)
                return iom_retrieve_all(f, off, len, (size_t)n + 1, iov);
        struct iovec *v = NULL;
        if ((n = iom_borrow_all(f, off, len, (size_t)n + 1, &v)) < 0)
                return n;
        for (ssize_t i = 0; i < n; i++) {
                if (!v[i].iov_base) {
                        free(v);
                        return iom_fail(f->name, -ENODATA,
                                        "the range has a hole, which a read-only handle cannot fill; "
                                        "export it from a read-write one");
                }
        }
        *iov = v;
        return n;
}

/* Register the pinned buffers, each under a key of its own, and write
 * the descriptor that tells peers where they are. */
static int register_range(struct iomem_export *x, uint64_t size, unsigned flags)
{
        /* A read-only handle's borrow stops at the object's last byte. */
        size_t len = x->f->flags & IOMEM_RDWR ? x->pinned : size;
        struct iovec *iov = NULL;
        ssize_t n = range_buffers(x->f, x->off, len, &iov);
        if (n < 0)
                return (int)n;
        int err = 0;
        if ((size_t)n > FAB_PIECES_MAX) {
                err = iom_fail(x->name, -E2BIG,
                               "its memory is in %zd buffers, more than the %d an export describes; "
                               "export smaller ranges",
                               n, FAB_PIECES_MAX);
                goto out;
        }
        x->desc_len = sizeof *x->desc + (size_t)n * sizeof x->desc->piece[0];
        x->desc = calloc(1, x->desc_len);
        x->mr = calloc((size_t)n, sizeof *x->mr);
        if (!x->desc || !x->mr) {
                err = iom_fail(x->name, -ENOMEM, "out of memory");
                goto out;
        }
        /* Keys picked by us start at a random base: each export's differ
         * from another's, and a peer cannot guess them. */
        uint64_t key_base;
        if (getrandom(&key_base, sizeof key_base, 0) != sizeof key_base)
                key_base = (uint64_t)getpid() << 32 ^ (uint64_t)(uintptr_t)x;
        uint64_t access = FI_REMOTE_READ | (flags & IOMEM_EXPORT_WRITE ? FI_REMOTE_WRITE : 0);
        bool virt = x->net.info->domain_attr->mr_mode & FI_MR_VIRT_ADDR;
        uint64_t at = 0;
        for (ssize_t i = 0; i < n; i++) {
                size_t piece = iom_min(iov[i].iov_len, len - at);
                uint64_t addr = virt ? (uint64_t)(uintptr_t)iov[i].iov_base : 0;
                int rc = fi_mr_reg(x->net.domain, iov[i].iov_base, piece, access, addr,
                                   key_base + (uint64_t)i, 0, &x->mr[i], NULL);
                if (rc) {
                        err = fab_fail(x->name, "fi_mr_reg", rc);
                        goto out;
                }
                x->nmr++;
                x->desc->piece[i] = (struct fab_piece){ htole64(at), htole64(piece), htole64(addr),
                                                        htole64(fi_mr_key(x->mr[i])) };
                at += piece;
        }
        x->desc->magic = htole64(FAB_MAGIC);
        x->desc->size = htole64(size);
        x->desc->flags = htole32(flags);
        x->desc->npieces = htole32((uint32_t)n);
out:
        free(iov);
        return err;
}

/* Listen, and write down where: the port bound when 0 was asked. */
static int listen_at(struct iomem_export *x)
{
        const char *call = "fi_passive_ep";
        int rc = fi_passive_ep(x->net.fabric, x->net.info, &x->pep, NULL);
        if (!rc && !(rc = (call = "fi_pep_bind", fi_pep_bind(x->pep, &x->net.eq->fid, 0))))
                rc = (call = "fi_listen", fi_listen(x->pep));
        if (rc) {
                if (!strcmp(call, "fi_passive_ep"))
                        x->pep = NULL;
                return rc == -FI_EADDRINUSE ? iom_fail(x->name, -EADDRINUSE, "the address is in use")
                                            : fab_fail(x->name, call, rc);
        }
        struct sockaddr_storage ss;
        size_t sslen = sizeof ss;
        char host[INET6_ADDRSTRLEN];
        if ((rc = fi_getname(&x->pep->fid, &ss, &sslen)))
                return fab_fail(x->name, "fi_getname", rc);
        if (ss.ss_family == AF_INET) {
                struct sockaddr_in *in = (struct sockaddr_in *)&ss;
                inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
                snprintf(x->addr, sizeof x->addr, "%s:%u", host, ntohs(in->sin_port));
        } else if (ss.ss_family == AF_INET6) {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
                inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
                snprintf(x->addr, sizeof x->addr, "[%s]:%u", host, ntohs(in6->sin6_port));
        } else {
                return iom_fail(x->name, -ENOTSUP,
                                "the provider's addresses are not IP addresses (format %u), which "
                                "peers could not be told",
                                x->net.info->addr_format);
        }
        return 0;
}

static int start_thread(struct iomem_export *x)
{
        int rc = fi_control(&x->net.eq->fid, FI_GETWAIT, &x->eq_fd);
        if (rc || (rc = fi_control(&x->net.cq->fid, FI_GETWAIT, &x->cq_fd)))
                return fab_fail(x->name, "fi_control(FI_GETWAIT)", rc);
        if ((x->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
                return iom_fail(x->name, -errno, "eventfd: %s", strerror(errno));
        /* The thread takes no signal: they are the application's. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        rc = pthread_create(&x->thread, NULL, serve, x);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (rc)
                return iom_fail(x->name, -rc, "cannot start the export's thread: %s", strerror(rc));
        x->thread_started = true;
        return 0;
}

/* Turn away the connection requests queued on the export's queue (while
 * it listens: with a refusal), and drop its other events. */
static void drain_requests(struct iomem_export *x)
{
        uint32_t event;
        struct fi_eq_cm_entry cm;
        ssize_t rd;
        while (x->net.eq && ((rd = fi_eq_read(x->net.eq, &event, &cm, sizeof cm, 0)) >= 0 || rd == -FI_EAVAIL)) {
                if (rd == -FI_EAVAIL) {
                        struct fi_eq_err_entry ee = { 0 };
                        fi_eq_readerr(x->net.eq, &ee, 0);
                } else if (event == FI_CONNREQ) {
                        if (x->pep)
                                fi_reject(x->pep, cm.info->handle, NULL, 0);
                        fi_freeinfo(cm.info);
                }
        }
}

/* Revoke and free: stop accepting, deregister, disconnect, release. */
static int export_free(struct iomem_export *x)
{
        int err = 0;
        if (x->thread_started) {
                __atomic_store_n(&x->stopping, true, __ATOMIC_RELEASE);
                uint64_t one = 1;
                while (write(x->wake_fd, &one, sizeof one) < 0 && errno == EINTR)
                        ;
                pthread_join(x->thread, NULL);
        }
        if (x->wake_fd >= 0)
                close(x->wake_fd);
        /* Peers asking to connect as the thread stopped are turned away;
         * once the listener is closed, the requests still queued only
         * have their connections closed (fi_freeinfo). */
        drain_requests(x);
        close_fid(&x->pep);
        drain_requests(x);
        for (size_t i = 0; i < x->nmr; i++)
                close_fid(&x->mr[i]);
        while (x->peers)
                peer_drop(x, &x->peers->ep->fid);
        net_close(&x->net);
        if (x->pinned)
                err = (int)iom_inner_result(iomem_release(x->f, x->off, x->pinned));
        if (x->counted)
                __atomic_sub_fetch(&x->f->exports, 1, __ATOMIC_RELEASE);
        pthread_mutex_destroy(&x->mu);
        free(x->mr);
        free(x->desc);
        free(x->name);
        free(x);
        return err;
}

static int export_open(struct iomem_export *x, size_t len, const char *addr, unsigned flags)
{
        struct iomem *f = x->f;
        struct iomem_stat st;
        int err = (int)iom_inner_result(iomem_stat(f, &st));
        if (err)
                return err;
        ssize_t got = iomem_acquire(f, x->off, len);
        if (got < 0)
                return (int)iom_inner_result(got);
        x->pinned = (size_t)got;
        __atomic_add_fetch(&f->exports, 1, __ATOMIC_RELEASE); /* export_free takes it back */
        x->counted = true;
        if ((size_t)got < len)
                return iom_fail(x->name, -EINVAL, "the range goes past the object's end (%" PRIu64 " bytes)",
                                (uint64_t)st.size);
        uint64_t size = st.size > x->off ? iom_min(len, st.size - x->off) : 0;
        if ((err = net_open(&x->net, x->name, addr, true)) || (err = register_range(x, size, flags)) ||
            (err = listen_at(x)))
                return err;
        return start_thread(x);
}

IOM_PUBLIC int iomem_export(struct iomem_export **out, struct iomem *f, size_t off, size_t len,
                            const char *addr, unsigned flags)
{
        if (!out || !f || !addr)
                return (int)FAIL(__func__, f ? f->name : NULL, -EINVAL, "%s is NULL",
                                 !out ? "out" : !f ? "the object" : "addr");
        if (off + len < off)
                return (int)FAIL(__func__, f->name, -EOVERFLOW, "off + len overflows");
        if (!len || off % f->page_size || len % f->page_size)
                return (int)FAIL(__func__, f->name, -EINVAL,
                                 "an export is a non-empty range of whole pages (%zu bytes)", f->page_size);
        if (flags & ~IOMEM_EXPORT_WRITE)
                return (int)FAIL(__func__, f->name, -EINVAL, "unknown flags %#x", flags & ~IOMEM_EXPORT_WRITE);
        if ((flags & IOMEM_EXPORT_WRITE) && !(f->flags & IOMEM_RDWR))
                return (int)FAIL(__func__, f->name, -EROFS,
                                 "the object is open read-only: it cannot be exported for writing");
        struct iomem_export *x = calloc(1, sizeof *x);
        if (!x || asprintf(&x->name, "%s [%zu, +%zu) at %s", f->name, off, len, addr) < 0) {
                free(x);
                return (int)FAIL(__func__, f->name, -ENOMEM, "out of memory");
        }
        x->f = f;
        x->off = off;
        x->pid = getpid();
        x->wake_fd = -1;
        pthread_mutex_init(&x->mu, NULL);
        int err = export_open(x, len, addr, flags);
        if (err) {
                struct iom_error_saved saved;
                iom_error_save(&saved);
                export_free(x);
                iom_error_restore(&saved);
                return (int)iom_result(__func__, err);
        }
        *out = x;
        return 0;
}

IOM_PUBLIC int iomem_export_close(struct iomem_export **xp)
{
        if (!xp)
                return (int)FAIL(__func__, NULL, -EINVAL, "the export is NULL");
        struct iomem_export *x = *xp;
        if (!x)
                return 0;
        *xp = NULL;
        if (x->pid != getpid()) {
                /* A fork's child: the thread, the fabric and the pins are
                 * the parent's. Only the memory, and the handle's count of
                 * exports, are this process's. */
                __atomic_sub_fetch(&x->f->exports, 1, __ATOMIC_RELEASE);
                free(x->mr);
                free(x->desc);
                free(x->name);
                free(x);
                return 0;
        }
        return (int)iom_result(__func__, export_free(x));
}

IOM_PUBLIC const char *iomem_export_addr(const struct iomem_export *x)
{
        return x ? x->addr : NULL;
}

IOM_PUBLIC ssize_t iomem_export_peers(struct iomem_export *x, uint64_t *served)
{
        if (!x)
                return FAIL(__func__, NULL, -EINVAL, "the export is NULL");
        if (x->pid != getpid())
                return FAIL(__func__, x->name, -EINVAL, "the export is the parent process's (made before fork)");
        pthread_mutex_lock(&x->mu);
        size_t n = x->npeers;
        if (served)
                *served = x->served;
        pthread_mutex_unlock(&x->mu);
        return (ssize_t)n;
}

/* ---- the remote side --------------------------------------------------- */

/* Close the endpoint mid-transfer: whatever it still had in flight goes
 * with it, so that nothing lands in memory released after. A provider
 * that cannot close it (operations it cannot cancel) leaves the memory
 * they target to stay pinned: r->wedged says so to the transfer. */
static void drop_endpoint(struct iomem_remote *r)
{
        if (r->ep && fi_close(&r->ep->fid))
                r->wedged = true;
        r->ep = NULL;
}

/* The connection is down (the exporter closed, died, or went away). */
static int connection_down(struct iomem_remote *r)
{
        drop_endpoint(r);
        return iom_fail(r->name, -ECONNRESET, "the connection to the export is down (revoked, or the "
                                              "exporter went away)");
}

/* Has an event said the connection is down? */
static bool shut_down(struct iomem_remote *r)
{
        uint32_t event;
        struct fi_eq_cm_entry e;
        ssize_t rd = fi_eq_read(r->net.eq, &event, &e, sizeof e, 0);
        if (rd == -FI_EAVAIL) {
                struct fi_eq_err_entry ee = { 0 };
                fi_eq_readerr(r->net.eq, &ee, 0);
                return true;
        }
        return rd >= 0 && event == FI_SHUTDOWN;
}

/* The connection has made no progress for FAB_STALL_MS: nothing will
 * come (a host gone without a reset, an exporter stopped). */
static int stalled(struct iomem_remote *r)
{
        drop_endpoint(r);
        return iom_fail(r->name, -ETIMEDOUT, "no progress for %d s: the exporter is gone or stopped; the "
                                             "connection is closed",
                        FAB_STALL_MS / 1000);
}

/*
 * Wait for one completion of an operation of ours. Returns 0, or the
 * error that completion carries, having consumed it. When none can be had
 * (the connection is down, stalled, or the queue failed), the endpoint is
 * closed first, which ends whatever it still had in flight, so that no
 * transfer lands in memory released after; r->ep is then NULL.
 */
static int reap(struct iomem_remote *r)
{
        uint64_t deadline = iom_monotonic_ns() + (uint64_t)FAB_STALL_MS * 1000000;
        for (;;) {
                struct fi_cq_msg_entry done;
                ssize_t n = fi_cq_sread(r->net.cq, &done, 1, NULL, FAB_POLL_MS);
                if (n == 1)
                        return 0;
                if (n == -FI_EAVAIL) {
                        struct fi_cq_err_entry ee = { 0 };
                        fi_cq_readerr(r->net.cq, &ee, 0);
                        if (shut_down(r))
                                return connection_down(r);
                        return iom_fail(r->name, ee.err == FI_ECANCELED ? -ECONNRESET : -EACCES,
                                        "the exporter refused the access (%s): revoked, or not allowed",
                                        fi_strerror(ee.err));
                }
                /* A signal caught while waiting is no reason to stop. */
                if (n != -FI_EAGAIN && n != -FI_ETIMEDOUT && n != -FI_EINTR) {
                        int err = fab_fail(r->name, "fi_cq_sread", n);
                        drop_endpoint(r);
                        return err;
                }
                if (shut_down(r))
                        return connection_down(r);
                if (iom_monotonic_ns() > deadline)
                        return stalled(r);
        }
}

/* The descriptor arrived: is it one, and does it hold together? */
static int check_descriptor(struct iomem_remote *r, size_t got)
{
        struct fab_descriptor *d = r->desc;
        if (got < sizeof *d || le64toh(d->magic) != FAB_MAGIC)
                return iom_fail(r->name, -EPROTO, "the peer is not a libiomem export");
        uint32_t n = le32toh(d->npieces);
        if (n > FAB_PIECES_MAX || got != sizeof *d + n * sizeof d->piece[0])
                return iom_fail(r->name, -EPROTO, "the export's descriptor is malformed");
        uint64_t at = 0;
        for (uint32_t i = 0; i < n; i++) {
                struct fab_piece *p = &d->piece[i];
                *p = (struct fab_piece){ le64toh(p->off), le64toh(p->len), le64toh(p->addr), le64toh(p->key) };
                if (p->off != at || !p->len || at + p->len < at)
                        return iom_fail(r->name, -EPROTO, "the export's descriptor is malformed");
                at += p->len;
        }
        r->size = le64toh(d->size);
        r->flags = le32toh(d->flags);
        d->npieces = n;
        if (r->size > at || r->size > IOM_FILE_MAX)
                return iom_fail(r->name, -EPROTO, "the export's descriptor is malformed");
        return 0;
}

static int connect_to(struct iomem_remote *r)
{
        int err = net_open(&r->net, r->name, r->name, false);
        if (err || (err = endpoint(&r->net, r->name, r->net.info, &r->ep)))
                return err;
        if (!(r->desc = malloc(FAB_DESC_MAX)))
                return iom_fail(r->name, -ENOMEM, "out of memory");
        int rc = fi_recv(r->ep, r->desc, FAB_DESC_MAX, NULL, 0, NULL);
        if (rc)
                return fab_fail(r->name, "fi_recv", rc);
        if ((rc = fi_connect(r->ep, r->net.info->dest_addr, NULL, 0)))
                return fab_fail(r->name, "fi_connect", rc);
        uint32_t event;
        struct fi_eq_cm_entry e;
        /* A signal caught while waiting is no reason to stop. */
        uint64_t deadline = iom_monotonic_ns() + (uint64_t)FAB_CONNECT_MS * 1000000;
        ssize_t rd;
        while ((rd = fi_eq_sread(r->net.eq, &event, &e, sizeof e, FAB_POLL_MS, 0)) == -FI_EINTR ||
               rd == -FI_EAGAIN || rd == -FI_ETIMEDOUT)
                if (iom_monotonic_ns() > deadline)
                        break;
        if (rd == -FI_EAVAIL) {
                struct fi_eq_err_entry ee = { 0 };
                fi_eq_readerr(r->net.eq, &ee, 0);
                return iom_fail(r->name, ee.err > 0 ? -ee.err : -ECONNREFUSED, "cannot connect: %s",
                                fi_strerror(ee.err > 0 ? ee.err : ECONNREFUSED));
        }
        if (rd == -FI_EAGAIN || rd == -FI_ETIMEDOUT)
                return iom_fail(r->name, -ETIMEDOUT, "no answer in %d ms", FAB_CONNECT_MS);
        if (rd < 0)
                return fab_fail(r->name, "fi_eq_sread", rd);
        if (event != FI_CONNECTED)
                return iom_fail(r->name, -ECONNREFUSED, "cannot connect (event %u)", event);
        struct fi_cq_msg_entry done;
        ssize_t n;
        deadline = iom_monotonic_ns() + (uint64_t)FAB_CONNECT_MS * 1000000;
        while ((n = fi_cq_sread(r->net.cq, &done, 1, NULL, FAB_POLL_MS)) == -FI_EAGAIN || n == -FI_ETIMEDOUT ||
               n == -FI_EINTR)
                if (iom_monotonic_ns() > deadline || shut_down(r))
                        return iom_fail(r->name, -ETIMEDOUT, "no export's descriptor came in %d ms",
                                        FAB_CONNECT_MS);
        if (n == -FI_EAVAIL) {
                struct fi_cq_err_entry ee = { 0 };
                fi_cq_readerr(r->net.cq, &ee, 0);
                return iom_fail(r->name, -EPROTO, "no export's descriptor: %s", fi_strerror(ee.err));
        }
        if (n != 1)
                return fab_fail(r->name, "fi_cq_sread", n);
        if ((err = check_descriptor(r, done.len)))
                return err;
        r->depth = iom_min(FAB_DEPTH, r->net.info->tx_attr->size ? r->net.info->tx_attr->size : 1);
        return 0;
}

static void remote_free(struct iomem_remote *r)
{
        /* In a fork's child the connection is the parent's: shutting down
         * its socket here would cut the parent's. */
        if (r->pid == getpid()) {
                if (r->ep)
                        fi_shutdown(r->ep, 0);
                close_fid(&r->ep);
                net_close(&r->net);
        }
        pthread_mutex_destroy(&r->mu);
        free(r->desc);
        free(r->name);
        free(r);
}

IOM_PUBLIC int iomem_remote_open(struct iomem_remote **out, const char *addr)
{
        if (!out || !addr)
                return (int)FAIL(__func__, NULL, -EINVAL, "%s is NULL", !out ? "out" : "addr");
        struct iomem_remote *r = calloc(1, sizeof *r);
        if (!r || !(r->name = strdup(addr))) {
                free(r);
                return (int)FAIL(__func__, addr, -ENOMEM, "out of memory");
        }
        r->pid = getpid();
        pthread_mutex_init(&r->mu, NULL);
        int err = connect_to(r);
        if (err) {
                remote_free(r);
                return (int)iom_result(__func__, err);
        }
        *out = r;
        return 0;
}

IOM_PUBLIC int iomem_remote_close(struct iomem_remote **rp)
{
        if (!rp)
                return (int)FAIL(__func__, NULL, -EINVAL, "the remote is NULL");
        if (*rp)
                remote_free(*rp);
        *rp = NULL;
        return 0;
}

IOM_PUBLIC ssize_t iomem_remote_size(const struct iomem_remote *r)
{
        if (!r)
                return FAIL(__func__, NULL, -EINVAL, "the remote is NULL");
        return (ssize_t)r->size;
}

/* The piece of the export that holds byte at. */
static size_t piece_of(const struct fab_descriptor *d, uint64_t at)
{
        size_t lo = 0, hi = d->npieces;
        while (hi - lo > 1) {
                size_t mid = lo + (hi - lo) / 2;
                if (d->piece[mid].off <= at)
                        lo = mid;
                else
                        hi = mid;
        }
        return lo;
}

/* The memory of [off, off+len) of f, pinned by the caller: writable for a
 * read into it; for a write out of it, a read-only handle's borrowed. */
static ssize_t local_buffers(struct iomem *f, size_t off, size_t len, bool into, struct iovec **iov)
{
        if (into && !(f->flags & IOMEM_RDWR))
                return iom_fail(f->name, -EROFS, "the object is open read-only: nothing can be read into it");
        return range_buffers(f, off, len, iov);
}

/* RMA between [roff, roff+len) of the export and the buffers iov, FAB_DEPTH
 * operations in flight; returns when none is. */
static int rma(struct iomem_remote *r, bool write, uint64_t roff, const struct iovec *iov, size_t len)
{
        const struct fab_descriptor *d = r->desc;
        size_t li = 0, lpos = 0, ri = piece_of(d, roff), inflight = 0;
        uint64_t rpos = roff - d->piece[ri].off;
        int err = 0;
        for (size_t done = 0; done < len && !err;) {
                const struct fab_piece *p = &d->piece[ri];
                size_t n = iom_min(iom_min(len - done, iov[li].iov_len - lpos), iom_min(p->len - rpos, FAB_CHUNK));
                struct iovec local = { (char *)iov[li].iov_base + lpos, n };
                struct fi_rma_iov remote = { p->addr + rpos, n, p->key };
                struct fi_msg_rma msg = { .msg_iov = &local, .iov_count = 1, .rma_iov = &remote, .rma_iov_count = 1 };
                ssize_t rc;
                /* A write is done when its bytes are in the exporter's
                 * memory, not when they have left. */
                uint64_t deadline = iom_monotonic_ns() + (uint64_t)FAB_STALL_MS * 1000000;
                while ((rc = write ? fi_writemsg(r->ep, &msg, FI_COMPLETION | FI_DELIVERY_COMPLETE)
                                   : fi_readmsg(r->ep, &msg, FI_COMPLETION)) == -FI_EAGAIN) {
                        if (inflight) {
                                err = reap(r);
                                inflight = r->ep ? inflight - 1 : 0;
                        } else if (shut_down(r)) {
                                err = connection_down(r);
                        } else if (iom_monotonic_ns() > deadline) {
                                err = stalled(r);
                        } else {
                                /* The provider's queue is full with nothing
                                 * of ours in it: progress, wait a little. */
                                fi_cq_read(r->net.cq, NULL, 0);
                                poll(NULL, 0, 1);
                        }
                        if (err)
                                break;
                }
                if (err)
                        break;
                if (rc) {
                        err = fab_fail(r->name, write ? "fi_write" : "fi_read", rc);
                        break;
                }
                inflight++;
                done += n;
                if ((lpos += n) == iov[li].iov_len)
                        li++, lpos = 0;
                if ((rpos += n) == p->len)
                        ri++, rpos = 0;
                if (inflight == r->depth) {
                        err = reap(r);
                        inflight = r->ep ? inflight - 1 : 0;
                }
        }
        /* Every operation must be over before the caller releases their
         * memory: each completes, fails, or went with the endpoint. */
        while (inflight) {
                int e = reap(r);
                inflight = r->ep ? inflight - 1 : 0;
                if (!err)
                        err = e;
        }
        return err;
}

static ssize_t transfer(const char *op, struct iomem_remote *r, bool write, size_t roff, struct iomem *f,
                        size_t off, size_t len)
{
        if (!r || !f)
                return FAIL(op, NULL, -EINVAL, "the %s is NULL", !r ? "remote" : "object");
        if (roff + len < roff || off + len < off)
                return FAIL(op, r->name, -EOVERFLOW, "offset + len overflows");
        if (!len)
                return 0;
        if (roff + len > r->size)
                return FAIL(op, r->name, -ERANGE, "bytes [%zu, %zu) go past the export's end (%" PRIu64 ")",
                            roff, roff + len, r->size);
        if (write && !(r->flags & IOMEM_EXPORT_WRITE))
                return FAIL(op, r->name, -EACCES, "the export is read-only");
        if (r->pid != getpid())
                return FAIL(op, r->name, -EINVAL, "the connection is the parent process's (opened before "
                                                  "fork); open the remote again in this one");
        struct iomem_stat st;
        ssize_t err = iomem_stat(f, &st);
        if (err < 0)
                return iom_result(op, iom_inner_result(err));
        if (off + len > st.size)
                return FAIL(op, f->name, -EINVAL, "bytes [%zu, %zu) go past its end (%" PRIu64 ")", off, off + len,
                            (uint64_t)st.size);
        size_t first = iom_round_down(off, f->page_size), end = iom_round_up(off + len, f->page_size);
        ssize_t got = iomem_acquire(f, first, end - first);
        if (got < 0)
                return iom_result(op, iom_inner_result(got));
        struct iovec *iov = NULL;
        pthread_mutex_lock(&r->mu);
        bool wedged_before = r->wedged;
        if (!r->ep)
                err = iom_fail(r->name, -ECONNRESET, "the connection to the export is down");
        else if ((size_t)got < end - first)
                err = iom_fail(f->name, -EINVAL, "bytes [%zu, %zu) go past its end", off, off + len);
        else if ((err = local_buffers(f, off, len, !write, &iov)) >= 0)
                err = rma(r, write, roff, iov, len);
        /* Operations the provider could not end still target this memory. */
        bool keep_pinned = r->wedged && !wedged_before;
        pthread_mutex_unlock(&r->mu);
        free(iov);
        if (keep_pinned) {
                char cause[IOM_MESSAGE_MAX];
                snprintf(cause, sizeof cause, "%s", iomem_errormsg());
                err = iom_fail(NULL, err < 0 ? (int)err : -EIO, "%s (its memory stays pinned: the provider "
                                                                "could not close the connection)",
                               cause);
        } else if (got > 0) {
                struct iom_error_saved saved;
                iom_error_save(&saved);
                iomem_release(f, first, (size_t)got);
                iom_error_restore(&saved);
        }
        return err < 0 ? iom_result(op, err) : (ssize_t)len;
}

IOM_PUBLIC ssize_t iomem_remote_read(struct iomem_remote *r, size_t roff, struct iomem *f, size_t off,
                                     size_t len)
{
        return transfer(__func__, r, false, roff, f, off, len);
}

IOM_PUBLIC ssize_t iomem_remote_write(struct iomem_remote *r, size_t roff, struct iomem *f, size_t off,
                                      size_t len)
{
        return transfer(__func__, r, true, roff, f, off, len);
}

IOM_PUBLIC ssize_t iomem_remote_fetch(struct iomem_remote *r, struct iomem *f)
{
        if (!r || !f)
                return FAIL(__func__, NULL, -EINVAL, "the %s is NULL", !r ? "remote" : "object");
        int err = iomem_truncate(f, r->size);
        if (err)
                return iom_result(__func__, iom_inner_result(err));
        for (uint64_t at = 0; at < r->size; at += FAB_WINDOW) {
                ssize_t n = transfer(__func__, r, false, at, f, at, iom_min(FAB_WINDOW, r->size - at));
                if (n < 0)
                        return n;
        }
        return (ssize_t)r->size;
}
