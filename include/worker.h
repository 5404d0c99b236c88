/*
 * worker.h - one event-loop thread: its loop, its sessions, its view of the configuration and its
 * registrations of the listening sockets.
 *
 * Workers share nothing but the process-wide `struct shared` (atomic counters) and the listening
 * sockets themselves. The control thread talks to a worker only through its mailbox: it posts a
 * request under the mailbox mutex, wakes the worker's eventfd, and waits for the worker to mark
 * the request done. Everything else in a worker is touched by its own thread only.
 *
 * A "generation" (struct wgen) is a worker's runtime for one loaded config: per-route balancers and
 * buffer pools. The worker holds one reference to its current generation and every session holds
 * one to the generation it started with, so after a reload old sessions keep their route, backends
 * and timeouts, and the old generation is freed with its last session.
 */
#ifndef FERRY_WORKER_H
#define FERRY_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "backend.h"
#include "config.h"
#include "loop.h"
#include "pipepool.h"
#include "ring.h"

struct session;
struct worker;

#define WORKER_MAX_POOLS  64
#define WORKER_PIPES_KEPT 16   /* empty pipes a worker keeps for the next bursts */
#define WORKER_TRIM_MS    5000 /* kept buffers and pipes unused this long are released */

/* Process-wide state shared by all workers. */
struct shared {
    atomic_uint active;          /* client connections open, all workers */
    atomic_uint max_connections; /* limit on active */
    atomic_uint full_paused;     /* workers that stopped accepting because active hit the limit */
    atomic_uint full_pauses;     /* pauses for the limit since the last one logged */
    _Atomic uint64_t full_logged_at; /* when a pause for the limit was last logged (loop ms) */
    atomic_uint pipes_open;          /* splice pipes open, all workers (see pipepool.h) */
    atomic_uint max_pipes;           /* limit on pipes_open */
    struct worker **workers;
    unsigned nworkers;
    bool exclusive; /* several workers share each listening fd: register with EPOLLEXCLUSIVE */
};

/* A listening address, process-wide: one socket shared by every worker, or one SO_REUSEPORT
 * socket per worker (nfds == number of workers). Worker i uses fds[i % nfds]. */
struct lsock {
    struct sockaddr_any addr;
    char name[SOCK_ADDRSTRLEN];
    unsigned nfds;
    int fds[];
};

struct route_rt {
    const struct route_conf *conf;
    struct balancer bal;
    struct bufpool *pool;     /* the worker's pool for conf->s.buffer_size */
    struct bufpool *big_pool; /* for settings_buffer_max(), NULL when rings never grow */
    size_t pipe_max;          /* splice: the size a growing pipe asks for (buffer_max, rounded) */
    size_t pipe_grown;        /* splice: the size the kernel last granted a growing pipe, or 0 */
    const struct config *cfg;
};

struct wgen {
    struct worker *w;
    struct config *cfg; /* one reference held */
    struct route_rt *routes;
    size_t nroutes;
    unsigned refs; /* the worker (while current) + its sessions; worker thread only */
};

/* A worker's registration of one listening socket. */
struct wlistener {
    struct io io; /* borrowed fd: the lsock owns it */
    struct worker *w;
    struct lsock *ls;
    struct route_rt *route;  /* in the worker's current generation */
    struct loop_defer defer; /* freed after the event batch that dropped it */
};

enum worker_req {
    WREQ_NONE,
    WREQ_SWAP,        /* install a new generation and listener set */
    WREQ_RELEASE,     /* drop the registrations of the listed sockets, which are about to close */
    WREQ_STOP_ACCEPT, /* unregister listeners; exit once no session is left */
    WREQ_CLOSE_ALL,   /* close every session now (shutdown timeout) */
};

/* Accept is blocked while any of these is set. */
#define ACCEPT_BLOCK_FULL     0x1 /* max_connections reached */
#define ACCEPT_BLOCK_FDS      0x2 /* EMFILE/ENFILE: short back-off */
#define ACCEPT_BLOCK_DRAINING 0x4 /* shutting down */

/* One listening socket and the route it serves, as the control thread hands them to workers. */
struct listen_bind {
    struct lsock *ls;
    size_t route; /* index into the config's routes */
};

struct worker {
    unsigned id;
    struct loop loop;
    struct shared *shared;
    pthread_t thread;

    struct wgen *gen;             /* current generation */
    struct wlistener **listeners; /* each allocated alone: epoll holds pointers to them */
    size_t nlisteners;
    unsigned accept_block;          /* ACCEPT_BLOCK_* */
    struct loop_timer accept_timer; /* ends an ACCEPT_BLOCK_FDS back-off */
    struct loop_timer trim_timer;   /* every WORKER_TRIM_MS: release what bursts left unused */
    uint64_t fds_logged_at;         /* when EMFILE/ENFILE was last logged */

    /* One pool per distinct buffer size in use; a slot is reused once no route refers to it. */
    struct bufpool pools[WORKER_MAX_POOLS];
    unsigned pool_users[WORKER_MAX_POOLS]; /* routes (of any live generation) using each pool */
    size_t npools;
    size_t grown_bytes;       /* held by grown rings (from big_pools) and pipes, at most
                                 cfg->buffer_budget */
    struct pipepool pipes;    /* splice routes' pipes, borrowed per burst */
    uint64_t pipes_logged_at; /* when a pipe was last refused in the log */

    struct session *sessions; /* doubly linked, for shutdown */
    size_t nsessions;
    unsigned fd_waiters;        /* sessions waiting for a descriptor for their backend socket */
    atomic_uint nsessions_seen; /* nsessions, published for the other workers' accept turns */

    /* Mailbox: control thread -> worker. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct io wake; /* eventfd */
    enum worker_req req;
    bool req_done;
    struct config *req_cfg;              /* WREQ_SWAP */
    const struct listen_bind *req_binds; /* WREQ_SWAP, WREQ_RELEASE (only ls is read) */
    size_t req_nbinds;
    int req_result; /* 0 or -errno */
    int exit_efd;   /* written once when the thread's loop ends */
    bool exited;
};

/* Create a worker (its loop and eventfd); returns 0 or -errno. */
int worker_init(struct worker *w, unsigned id, struct shared *shared, int exit_efd);
int worker_start(struct worker *w);
void worker_join(struct worker *w);
void worker_destroy(struct worker *w);

/* Control thread: post a request and wait until the worker has carried it out. Returns the
 * worker's result (0 or -errno). */
int worker_request(struct worker *w, enum worker_req req, struct config *cfg,
                   const struct listen_bind *binds, size_t nbinds);
/* Ask a worker to re-check accept blocking (another worker freed a slot). Any thread. */
void worker_poke(struct worker *w);

/* For sessions. */
void worker_session_added(struct worker *w, struct session *s);
void worker_session_removed(struct worker *w, struct session *s);
void wgen_unref(struct wgen *g);

#endif
