/*
 * worker.c - a worker thread: its loop, its mailbox, its generations of route runtime, and the
 * bookkeeping of its sessions. The accept path is in listener.c.
 */
#include "worker.h"

#include <errno.h>
#include <inttypes.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "listener.h"
#include "log.h"
#include "session.h"

#define WORKER_MAX_EVENTS 512

/* Free buffers a pool keeps for reuse: enough for bursts, bounded in bytes. */
static size_t pool_keep(size_t size)
{
    size_t n = (8u << 20) / size;
    return n < 8 ? 8 : n;
}

/* The pool for buffers of this size, shared by every route (and generation) that uses the size.
 * Returns NULL if WORKER_MAX_POOLS distinct sizes are in use. */
static struct bufpool *pool_take(struct worker *w, size_t size)
{
    size_t free_slot = WORKER_MAX_POOLS;
    for (size_t i = 0; i < w->npools; i++) {
        if (w->pools[i].size == size) {
            w->pool_users[i]++;
            return &w->pools[i];
        }
        if (w->pool_users[i] == 0 && free_slot == WORKER_MAX_POOLS)
            free_slot = i;
    }
    if (free_slot == WORKER_MAX_POOLS) {
        if (w->npools == WORKER_MAX_POOLS)
            return NULL;
        free_slot = w->npools++;
    } else {
        bufpool_destroy(&w->pools[free_slot]);
    }
    bufpool_init(&w->pools[free_slot], size, pool_keep(size));
    w->pool_users[free_slot] = 1;
    return &w->pools[free_slot];
}

static void pool_drop(struct worker *w, struct bufpool *p)
{
    w->pool_users[p - w->pools]--;
}

void wgen_unref(struct wgen *g)
{
    if (!g || --g->refs > 0)
        return;
    for (size_t i = 0; i < g->nroutes; i++) {
        balancer_free(&g->routes[i].bal);
        if (g->routes[i].pool)
            pool_drop(g->w, g->routes[i].pool);
        if (g->routes[i].big_pool)
            pool_drop(g->w, g->routes[i].big_pool);
    }
    free(g->routes);
    config_unref(g->cfg);
    free(g);
}

/* Build this worker's runtime for cfg: balancers and buffer pools per route. */
static struct wgen *wgen_new(struct worker *w, struct config *cfg)
{
    struct wgen *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    g->routes = calloc(cfg->nroutes, sizeof(*g->routes));
    if (!g->routes) {
        free(g);
        return NULL;
    }
    g->w = w;
    g->cfg = config_ref(cfg);
    g->refs = 1;
    g->nroutes = cfg->nroutes;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        struct route_rt *rt = &g->routes[i];
        rt->conf = &cfg->routes[i];
        rt->cfg = cfg;
        rt->pool = pool_take(w, rt->conf->s.buffer_size);
        size_t max = settings_buffer_max(&rt->conf->s);
        rt->pipe_max = pipepool_round(max);
        if (rt->pool && max > rt->conf->s.buffer_size)
            rt->big_pool = pool_take(w, max);
        if (!rt->pool || (max > rt->conf->s.buffer_size && !rt->big_pool)) {
            log_error("too many distinct buffer sizes in use (at most %d)", WORKER_MAX_POOLS);
            wgen_unref(g);
            return NULL;
        }
        if (balancer_init(&rt->bal, rt->conf) != 0) {
            wgen_unref(g);
            return NULL;
        }
    }
    return g;
}

static int do_swap(struct worker *w)
{
    struct wgen *g = wgen_new(w, w->req_cfg);
    if (!g)
        return -ENOMEM;
    int rc = listener_apply(w, g, w->req_binds, w->req_nbinds);
    if (rc != 0) {
        wgen_unref(g);
        return rc;
    }
    loop_coalesce_enable(&w->loop, g->cfg->coalesce);
    if (!config_any_splice(g->cfg))
        pipepool_close_kept(&w->pipes); /* pipes still borrowed are closed as they come back */
    struct wgen *old = w->gen;
    w->gen = g;
    wgen_unref(old);
    return 0;
}

static void maybe_finish(struct worker *w)
{
    if ((w->accept_block & ACCEPT_BLOCK_DRAINING) && w->nsessions == 0)
        w->loop.stop = true;
}

static void close_all(struct worker *w)
{
    while (w->sessions)
        session_close(w->sessions, CAUSE_SHUTDOWN);
}

static void on_wake(struct loop *l, struct io *io, uint32_t ev)
{
    (void)l;
    (void)ev;
    struct worker *w = container_of(io, struct worker, wake);
    uint64_t v;
    if (read(io->fd, &v, sizeof(v)) == -1 && errno != EAGAIN)
        log_warn("worker %u: eventfd read: %s", w->id, strerror(errno));
    pthread_mutex_lock(&w->mu);
    enum worker_req req = w->req;
    bool pending = req != WREQ_NONE && !w->req_done;
    pthread_mutex_unlock(&w->mu);
    int rc = 0;
    if (pending) {
        switch (req) {
        case WREQ_SWAP:
            rc = do_swap(w);
            break;
        case WREQ_RELEASE:
            listener_release(w, w->req_binds, w->req_nbinds);
            break;
        case WREQ_STOP_ACCEPT:
            w->accept_block |= ACCEPT_BLOCK_DRAINING;
            listener_update(w);
            listener_drop_all(w);
            break;
        case WREQ_CLOSE_ALL:
            close_all(w);
            break;
        case WREQ_NONE:
            break;
        }
        pthread_mutex_lock(&w->mu);
        w->req_result = rc;
        w->req_done = true;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
    }
    /* A poke: another worker freed a connection slot. */
    listener_update(w);
    maybe_finish(w);
}

static void on_coalesce(struct loop *l)
{
    struct worker *w = container_of(l, struct worker, loop);
    char measured[64];
    const char *why = measured;
    switch (l->co.reason) {
    case COALESCE_MEASURED:
        snprintf(measured, sizeof(measured), "%.2fx the bytes per ms with the wait as without it",
                 l->co.gain);
        break;
    case COALESCE_IDLE:
        why = "traffic stopped while the wait was tested";
        break;
    case COALESCE_CALM:
        why = "no longer waits for a CPU";
        break;
    case COALESCE_RESUMED:
        why = "waits for a CPU again";
        break;
    }
    if (l->co.on)
        log_debug("worker %u: waits up to %dus before blocking: %s", w->id, COALESCE_WINDOW_US,
                  why);
    else
        log_debug("worker %u: blocks as soon as idle again: %s", w->id, why);
}

/*
 * After a burst, the pools keep up to 8 MiB of buffers per size (and up to 16 pipes of each kind)
 * for the next one. What none of the bursts of a whole WORKER_TRIM_MS period used goes back: the
 * buffers to malloc, and the heap's free pages to the system, so a worker that served thousands of
 * connections once does not hold their memory for good.
 */
static void on_trim(struct loop *l, struct loop_timer *t)
{
    struct worker *w = container_of(t, struct worker, trim_timer);
    size_t freed = 0;
    for (size_t i = 0; i < w->npools; i++)
        freed += bufpool_trim(&w->pools[i]) * w->pools[i].size;
    unsigned closed = pipepool_trim(&w->pipes);
    uint64_t trim_us = 0;
#ifdef __GLIBC__
    if (freed) {
        /* Hands the freed pages back to the kernel; it walks the heap, so it is timed. */
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        malloc_trim(0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        trim_us = (uint64_t)(t1.tv_sec - t0.tv_sec) * 1000000u + (uint64_t)(t1.tv_nsec / 1000) -
                  (uint64_t)(t0.tv_nsec / 1000);
    }
#endif
    if (freed || closed) {
        char b[32];
        config_format_size(freed, b, sizeof(b));
        log_debug("worker %u: released %s of buffers and %u pipes unused for %dms (malloc_trim "
                  "%" PRIu64 "us)",
                  w->id, b, closed, WORKER_TRIM_MS, trim_us);
    }
    loop_timer_arm(l, t, l->now + WORKER_TRIM_MS);
}

int worker_init(struct worker *w, unsigned id, struct shared *shared, int exit_efd)
{
    memset(w, 0, sizeof(*w));
    w->id = id;
    w->shared = shared;
    w->exit_efd = exit_efd;
    pipepool_init(&w->pipes, WORKER_PIPES_KEPT, &shared->pipes_open, &shared->max_pipes);
    int rc = loop_init(&w->loop, WORKER_MAX_EVENTS);
    if (rc != 0)
        return rc;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd == -1) {
        rc = -errno;
        loop_destroy(&w->loop);
        return rc;
    }
    w->loop.co_cb = on_coalesce;
    loop_io_init(&w->wake, efd, on_wake);
    rc = loop_io_set(&w->loop, &w->wake, EPOLLIN);
    if (rc != 0) {
        close(efd);
        loop_destroy(&w->loop);
        return rc;
    }
    loop_timer_init(&w->accept_timer, listener_on_backoff);
    loop_timer_init(&w->trim_timer, on_trim);
    rc = loop_timer_arm(&w->loop, &w->trim_timer, w->loop.now + WORKER_TRIM_MS);
    if (rc != 0) {
        close(efd);
        loop_destroy(&w->loop);
        return rc;
    }
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    return 0;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    int rc = loop_run(&w->loop);
    if (rc != 0)
        log_error("worker %u: event loop failed: %s", w->id, strerror(-rc));
    /* The passes left (here and in worker_destroy, on another thread) need no waiting. */
    loop_coalesce_enable(&w->loop, false);
    /* Whatever is still open (only after a loop failure) is closed now. */
    close_all(w);
    loop_run_once(&w->loop, 0); /* run the deferred frees */
    pthread_mutex_lock(&w->mu);
    w->exited = true;
    w->req_done = true; /* a request posted after the end must not wait forever */
    w->req_result = -ESHUTDOWN;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    uint64_t one = 1;
    if (write(w->exit_efd, &one, sizeof(one)) == -1)
        log_error("worker %u: cannot signal its exit: %s", w->id, strerror(errno));
    return NULL;
}

int worker_start(struct worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    return -rc;
}

void worker_join(struct worker *w)
{
    pthread_join(w->thread, NULL);
}

void worker_destroy(struct worker *w)
{
    listener_drop_all(w);
    loop_run_once(&w->loop, 0);
    wgen_unref(w->gen);
    w->gen = NULL;
    loop_timer_cancel(&w->loop, &w->accept_timer);
    loop_timer_cancel(&w->loop, &w->trim_timer);
    for (size_t i = 0; i < w->npools; i++)
        bufpool_destroy(&w->pools[i]);
    pipepool_destroy(&w->pipes);
    if (w->wake.fd != -1)
        close(w->wake.fd);
    loop_destroy(&w->loop);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

int worker_request(struct worker *w, enum worker_req req, struct config *cfg,
                   const struct listen_bind *binds, size_t nbinds)
{
    pthread_mutex_lock(&w->mu);
    if (w->exited) {
        pthread_mutex_unlock(&w->mu);
        return -ESHUTDOWN;
    }
    w->req = req;
    w->req_cfg = cfg;
    w->req_binds = binds;
    w->req_nbinds = nbinds;
    w->req_done = false;
    pthread_mutex_unlock(&w->mu);
    worker_poke(w);
    pthread_mutex_lock(&w->mu);
    while (!w->req_done)
        pthread_cond_wait(&w->cv, &w->mu);
    int rc = w->req_result;
    w->req = WREQ_NONE;
    w->req_cfg = NULL;
    w->req_binds = NULL;
    pthread_mutex_unlock(&w->mu);
    return rc;
}

void worker_poke(struct worker *w)
{
    uint64_t one = 1;
    if (write(w->wake.fd, &one, sizeof(one)) == -1 && errno != EAGAIN)
        log_warn("worker %u: eventfd write: %s", w->id, strerror(errno));
}

void worker_session_added(struct worker *w, struct session *s)
{
    s->prev = NULL;
    s->next = w->sessions;
    if (w->sessions)
        w->sessions->prev = s;
    w->sessions = s;
    w->nsessions++;
    atomic_store_explicit(&w->nsessions_seen, (unsigned)w->nsessions, memory_order_relaxed);
}

void worker_session_removed(struct worker *w, struct session *s)
{
    if (s) {
        if (s->prev)
            s->prev->next = s->next;
        else
            w->sessions = s->next;
        if (s->next)
            s->next->prev = s->prev;
        s->prev = s->next = NULL;
        w->nsessions--;
        atomic_store_explicit(&w->nsessions_seen, (unsigned)w->nsessions, memory_order_relaxed);
    }
    atomic_fetch_sub_explicit(&w->shared->active, 1, memory_order_relaxed);
    listener_slot_freed(w);
    maybe_finish(w);
}
