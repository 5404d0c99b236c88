/*
 * resolver.c - a thread for the work that may wait on DNS (lookup rounds of backend host names,
 * and loading the file for a reload), so the control thread never does. One job at a time,
 * handed over under a mutex; completion is signalled on an eventfd that the control loop watches.
 */
#include "resolver.h"

#include "sock.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct resolver {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int efd;
    bool has_done;      /* finished, not yet taken */
    struct config *job; /* submitted, not yet picked up (never NULL then): lookup: the copy;
                         * load: the running configuration (ref) */
    char *path;         /* load: the file */
    struct resolver_result done;
    bool busy; /* a job is submitted, running or done and not taken */
    bool quit;
    bool lookup;     /* the job submitted or running is a lookup round */
    bool was_cut;    /* the last lookup round was cut short: the next one is not */
    atomic_bool cut; /* a reload waits (or a stop): the lookup round stops before its next name */
};

/* Stays reachable while a thread stuck in a lookup outlives resolver_stop(). */
static struct resolver *abandoned;

unsigned resolver_lookup(struct config *c, char *failing, size_t len, const atomic_bool *stop,
                         bool *stopped)
{
    size_t used = 0;
    unsigned names = 0;
    if (len)
        failing[0] = '\0';
    if (stopped)
        *stopped = false;
    for (size_t i = 0; i < c->nroutes; i++) {
        const struct route_conf *r = &c->routes[i];
        for (size_t j = 0; j < r->nbackends; j++) {
            struct backend_conf *b = &r->backends[j];
            const char *why;
            if (!b->named)
                continue;
            if (stop && atomic_load(stop)) {
                if (stopped)
                    *stopped = true;
                return names;
            }
            names++;
            if (sock_resolve_keep(b->address, &b->addr, &why) == 0 || used >= len)
                continue;
            int n = snprintf(failing + used, len - used, "%sroute %s backend %s (%s)",
                             used ? ", " : "", r->name, b->address, why);
            if (n > 0)
                used = (size_t)n < len - used ? used + (size_t)n : len;
        }
    }
    return names;
}

void resolver_keep_current(const struct config *cur, struct config *next)
{
    for (size_t i = 0; i < next->nroutes; i++) {
        const struct route_conf *nr = &next->routes[i];
        const struct route_conf *cr = NULL;
        for (size_t k = 0; k < cur->nroutes && !cr; k++)
            if (strcmp(cur->routes[k].name, nr->name) == 0)
                cr = &cur->routes[k];
        for (size_t j = 0; cr && j < nr->nbackends; j++) {
            struct backend_conf *nb = &nr->backends[j];
            for (size_t k = 0; nb->named && k < cr->nbackends; k++) {
                const struct backend_conf *cb = &cr->backends[k];
                if (!cb->named || strcmp(cb->address, nb->address) != 0 ||
                    sock_addr_equal(&cb->addr, &nb->addr))
                    continue;
                struct sockaddr_any a = cb->addr;
                const char *why;
                if (sock_resolve_keep(nb->address, &a, &why) == 0 && sock_addr_equal(&a, &cb->addr))
                    nb->addr = a;
                break;
            }
        }
    }
}

static void run_job(struct resolver *r, struct config *job, const char *path,
                    struct resolver_result *res)
{
    memset(res, 0, sizeof(*res));
    if (!path) {
        res->names = resolver_lookup(job, res->failing, sizeof(res->failing), &r->cut, &res->cut);
        res->cfg = job;
        return;
    }
    res->load = true;
    if (config_load_file(path, &res->cfg, &res->err) == 0)
        resolver_keep_current(job, res->cfg);
    else
        res->cfg = NULL;
    config_unref(job);
}

static void *resolver_main(void *arg)
{
    struct resolver *r = arg;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->job && !r->quit)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->quit)
            break;
        struct config *job = r->job;
        char *path = r->path;
        r->job = NULL;
        r->path = NULL;
        pthread_mutex_unlock(&r->mu);

        struct resolver_result res;
        run_job(r, job, path, &res);
        free(path);

        pthread_mutex_lock(&r->mu);
        if (r->lookup)
            r->was_cut = res.cut;
        r->lookup = false;
        atomic_store(&r->cut, false);
        r->done = res;
        r->has_done = true;
        uint64_t one = 1;
        ssize_t n = write(r->efd, &one, sizeof(one));
        (void)n; /* an eventfd write of 1 fails only on counter overflow */
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

struct resolver *resolver_start(void)
{
    struct resolver *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    atomic_init(&r->cut, false);
    r->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->efd == -1) {
        int e = errno;
        free(r);
        errno = e;
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    int rc = pthread_create(&r->thread, NULL, resolver_main, r);
    if (rc != 0) {
        close(r->efd);
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        free(r);
        errno = rc;
        return NULL;
    }
    return r;
}

int resolver_fd(const struct resolver *r)
{
    return r->efd;
}

static bool submit(struct resolver *r, struct config *job, char *path)
{
    pthread_mutex_lock(&r->mu);
    bool ok = !r->busy;
    if (ok) {
        r->busy = true;
        r->job = job;
        r->path = path;
        r->lookup = !path;
        pthread_cond_signal(&r->cv);
    } else if (path && r->lookup && !r->was_cut) {
        /* A reload waits: the round ends at its next name. Never two rounds in a row, so that
         * reloads coming faster than rounds (rejected ones keep nothing of the round they cut)
         * cannot keep names from being followed. */
        atomic_store(&r->cut, true);
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

bool resolver_submit(struct resolver *r, struct config *copy)
{
    return submit(r, copy, NULL);
}

int resolver_submit_load(struct resolver *r, const char *path, struct config *cur)
{
    char *p = strdup(path);
    if (!p)
        return -ENOMEM;
    if (submit(r, config_ref(cur), p))
        return 0;
    config_unref(cur);
    free(p);
    return -EBUSY;
}

bool resolver_busy(struct resolver *r)
{
    pthread_mutex_lock(&r->mu);
    bool busy = r->busy;
    pthread_mutex_unlock(&r->mu);
    return busy;
}

bool resolver_take(struct resolver *r, struct resolver_result *out)
{
    uint64_t v;
    ssize_t n = read(r->efd, &v, sizeof(v));
    (void)n; /* EAGAIN: nothing signalled yet, which the false below says too */
    pthread_mutex_lock(&r->mu);
    bool done = r->has_done;
    if (done) {
        *out = r->done;
        r->has_done = false;
        r->busy = false;
    }
    pthread_mutex_unlock(&r->mu);
    return done;
}

void resolver_stop(struct resolver *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->mu);
    r->quit = true;
    atomic_store(&r->cut, true); /* a round in progress skips the names it has not started */
    bool running = r->busy && !r->has_done && !r->job;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (running) {
        /* Inside getaddrinfo(), which cannot be interrupted: let the process end it. */
        pthread_detach(r->thread);
        abandoned = r;
        return;
    }
    pthread_join(r->thread, NULL);
    config_unref(r->job);
    free(r->path);
    if (r->has_done)
        config_unref(r->done.cfg);
    close(r->efd);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
