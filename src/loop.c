/*
 * loop.c - the epoll loop. Owns the epoll fd, the ready array, the timer heap, the cached clock
 * and the deferred list; calls owners back through function pointers only.
 */
#include "loop.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
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
    l->moved = 0;
    coalesce_init(&l->co, false);
    l->co_cb = NULL;
    l->busy = false;
    l->waits = 0;
    l->period_start = l->now;
    l->period_moved = 0;
    l->sched_fd = -1;
    l->sched_base = false;
    l->sched_delay_ns = l->sched_slices = 0;
    return 0;
}

void loop_destroy(struct loop *l)
{
    if (l->epfd != -1)
        close(l->epfd);
    l->epfd = -1;
    free(l->events);
    l->events = NULL;
    if (l->sched_fd >= 0)
        close(l->sched_fd);
    l->sched_fd = -1;
    timer_heap_free(&l->timers);
}

void loop_coalesce_enable(struct loop *l, bool on)
{
    if (on && !l->co.enabled) {
        l->period_start = l->now;
        l->period_moved = l->moved;
        l->sched_base = false;
    }
    coalesce_enable(&l->co, on);
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

/*
 * Whether this thread waited for a CPU since the last call: its run delay per scheduling, from
 * schedstat ("cpu_ns delay_ns slices"). Opened on first use, from the loop's own thread, as the
 * file is per thread. The first read only takes a sample. Without the file (no procfs, kernel
 * without schedstats) nothing counts as contended, so the window never comes on.
 */
static bool contended(struct loop *l)
{
    if (l->sched_fd == -1) {
        l->sched_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
        if (l->sched_fd == -1)
            l->sched_fd = -2;
    }
    char buf[96];
    ssize_t n = l->sched_fd >= 0 ? pread(l->sched_fd, buf, sizeof(buf) - 1, 0) : -1;
    uint64_t cpu, delay, slices;
    if (n <= 0)
        return false;
    buf[n] = '\0';
    if (sscanf(buf, "%" SCNu64 " %" SCNu64 " %" SCNu64, &cpu, &delay, &slices) != 3)
        return false;
    bool waited = l->sched_base && delay >= l->sched_delay_ns && slices >= l->sched_slices &&
                  coalesce_contended(delay - l->sched_delay_ns, slices - l->sched_slices);
    l->sched_base = true;
    l->sched_delay_ns = delay;
    l->sched_slices = slices;
    return waited;
}

static void end_period(struct loop *l)
{
    uint64_t ms = l->now - l->period_start;
    uint64_t bytes = l->moved - l->period_moved;
    l->period_start = l->now;
    l->period_moved = l->moved;
    if (coalesce_period(&l->co, l->now, ms, bytes, contended(l)) && l->co_cb)
        l->co_cb(l);
}

/* Blocks for events; a busy loop may first wait COALESCE_WINDOW_US for more to gather. */
static int wait_events(struct loop *l, int timeout)
{
    if (l->co.on && l->busy && timeout != 0) {
        int n = epoll_wait(l->epfd, l->events, l->max_events, 0);
        if (n != 0)
            return n;
        struct timespec ts = {0, COALESCE_WINDOW_US * 1000};
        nanosleep(&ts, NULL);
        l->waits++;
    }
    return epoll_wait(l->epfd, l->events, l->max_events, timeout);
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
    int n = wait_events(l, timeout);
    l->busy = n > 0;
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
    if (l->co.enabled && l->now - l->period_start >= COALESCE_PERIOD_MS)
        end_period(l);
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
