/*
 * loop.c - the epoll loop. Owns the epoll fd, the ready array, the timer heap, the cached clock
 * and the deferred list; calls owners back through function pointers only.
 */
#include "loop.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

uint64_t loop_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

int loop_init(struct loop *l, int max_events)
{
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (l->epfd == -1)
        return -errno;
    l->max_events = max_events;
    l->events = calloc((size_t)max_events, sizeof(*l->events));
    if (!l->events) {
        close(l->epfd);
        return -ENOMEM;
    }
    timer_heap_init(&l->timers);
    l->now = loop_clock_ms();
    l->defers = NULL;
    l->stop = false;
    return 0;
}

void loop_destroy(struct loop *l)
{
    if (l->epfd != -1)
        close(l->epfd);
    l->epfd = -1;
    free(l->events);
    l->events = NULL;
    timer_heap_free(&l->timers);
}

int loop_io_set(struct loop *l, struct io *io, uint32_t events)
{
    if (io->interest == events || io->fd == -1)
        return 0;
    struct epoll_event ev = {.events = events, .data.ptr = io};
    int op = io->interest == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(l->epfd, op, io->fd, &ev) == -1)
        return -errno;
    io->interest = events;
    return 0;
}

int loop_io_rearm(struct loop *l, struct io *io)
{
    if (io->fd == -1 || io->interest == 0)
        return 0;
    struct epoll_event ev = {.events = io->interest, .data.ptr = io};
    return epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) == -1 ? -errno : 0;
}

int loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t deadline)
{
    return timer_heap_arm(&l->timers, &t->t, deadline);
}

void loop_timer_cancel(struct loop *l, struct loop_timer *t)
{
    timer_heap_cancel(&l->timers, &t->t);
}

void loop_defer(struct loop *l, struct loop_defer *d, loop_defer_cb cb)
{
    d->cb = cb;
    d->next = l->defers;
    l->defers = d;
}

static void run_defers(struct loop *l)
{
    while (l->defers) {
        struct loop_defer *d = l->defers;
        l->defers = d->next;
        d->cb(d);
    }
}

static void run_timers(struct loop *l)
{
    struct timer *t;
    /* A callback may re-arm its own timer for later; now does not move, so this ends. */
    while ((t = timer_heap_pop_expired(&l->timers, l->now)) != NULL) {
        struct loop_timer *lt = container_of(t, struct loop_timer, t);
        lt->cb(l, lt);
    }
}

int loop_run_once(struct loop *l, int max_wait_ms)
{
    int timeout = max_wait_ms;
    struct timer *next = timer_heap_peek(&l->timers);
    if (next) {
        uint64_t now = loop_clock_ms();
        uint64_t wait = next->deadline > now ? next->deadline - now : 0;
        if (wait > 60000)
            wait = 60000;
        if (timeout < 0 || (uint64_t)timeout > wait)
            timeout = (int)wait;
    }
    int n = epoll_wait(l->epfd, l->events, l->max_events, timeout);
    if (n == -1) {
        if (errno != EINTR)
            return -errno;
        n = 0;
    }
    l->now = loop_clock_ms();
    for (int i = 0; i < n; i++) {
        struct io *io = l->events[i].data.ptr;
        if (io->fd != -1)
            io->cb(l, io, l->events[i].events);
    }
    run_timers(l);
    run_defers(l);
    return n;
}

int loop_run(struct loop *l)
{
    while (!l->stop) {
        int rc = loop_run_once(l, -1);
        if (rc < 0)
            return rc;
    }
    return 0;
}
