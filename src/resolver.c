/*
 * resolver.c - a thread that re-resolves backend host names, so the control thread never waits
 * on DNS. One job at a time, handed over under a mutex; completion is signalled on an eventfd
 * that the control loop watches.
 */
#include "resolver.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define FAILING_MAX 1024

struct resolver {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int efd;
    struct config *job;  /* submitted, not yet picked up */
    struct config *done; /* finished, not yet taken */
    char failing[FAILING_MAX];
    unsigned names;
    bool busy; /* a job is submitted, running or done and not taken */
    bool quit;
};

/* Stays reachable while a thread stuck in a lookup outlives resolver_stop(). */
static struct resolver *abandoned;

unsigned resolver_lookup(struct config *c, char *failing, size_t len)
{
    size_t used = 0;
    unsigned names = 0;
    if (len)
        failing[0] = '\0';
    for (size_t i = 0; i < c->nroutes; i++) {
        const struct route_conf *r = &c->routes[i];
        for (size_t j = 0; j < r->nbackends; j++) {
            struct backend_conf *b = &r->backends[j];
            const char *why;
            if (!b->named)
                continue;
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
        r->job = NULL;
        pthread_mutex_unlock(&r->mu);

        char failing[FAILING_MAX];
        unsigned names = resolver_lookup(job, failing, sizeof(failing));

        pthread_mutex_lock(&r->mu);
        r->done = job;
        r->names = names;
        memcpy(r->failing, failing, sizeof(failing));
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

bool resolver_submit(struct resolver *r, struct config *job)
{
    pthread_mutex_lock(&r->mu);
    bool ok = !r->busy;
    if (ok) {
        r->busy = true;
        r->job = job;
        pthread_cond_signal(&r->cv);
    }
    pthread_mutex_unlock(&r->mu);
    return ok;
}

struct config *resolver_take(struct resolver *r, char *failing, size_t len, unsigned *names)
{
    uint64_t v;
    ssize_t n = read(r->efd, &v, sizeof(v));
    (void)n; /* EAGAIN: nothing signalled yet, which the NULL below says too */
    pthread_mutex_lock(&r->mu);
    struct config *done = r->done;
    if (done) {
        r->done = NULL;
        r->busy = false;
        snprintf(failing, len, "%s", r->failing);
        *names = r->names;
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
    bool running = r->busy && !r->done && !r->job;
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
    config_unref(r->done);
    close(r->efd);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}
