/*
 * loop.h - one epoll event loop: fd readiness, timers, a cached clock and deferred frees.
 *
 * The loop dispatches to callbacks only; it knows nothing of sessions, routes or configuration
 * (like redis's ae.c). Several loops run side by side, one per worker thread, so there are no
 * globals. The interest registered for each fd is tracked in its struct io, and epoll_ctl is
 * called only when the wanted interest differs from the registered one. An fd with no interest is
 * removed from the epoll set, because epoll reports EPOLLHUP/EPOLLERR even for an empty mask and a
 * level-triggered HUP with nobody to consume it would spin.
 */
#ifndef FERRY_LOOP_H
#define FERRY_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "coalesce.h"
#include "timer.h"

struct loop;
struct io;
struct loop_timer;
struct loop_defer;

typedef void (*io_cb)(struct loop *l, struct io *io, uint32_t events);
typedef void (*loop_timer_cb)(struct loop *l, struct loop_timer *t);
typedef void (*loop_defer_cb)(struct loop_defer *d);
typedef void (*loop_coalesce_cb)(struct loop *l); /* a test kept or dropped the window */

/* An fd watched by the loop; embedded in its owner (recover the owner with container_of). */
struct io {
    int fd;            /* -1 once closed: handlers must check it before touching the owner */
    uint32_t interest; /* events registered with epoll now; 0 = not in the epoll set */
    io_cb cb;
};

struct loop_timer {
    struct timer t;
    loop_timer_cb cb;
};

/* Work to run after the current batch of events, when no ready event can refer to it anymore. */
struct loop_defer {
    struct loop_defer *next;
    loop_defer_cb cb;
};

struct loop {
    int epfd;
    int max_events;
    struct epoll_event *events;
    struct timer_heap timers;
    uint64_t now;              /* ms, CLOCK_MONOTONIC, refreshed after every epoll_wait */
    struct loop_defer *defers; /* run and emptied at the end of each iteration */
    bool stop;                 /* loop_run returns at the end of the current iteration */
    /* Waiting before blocking (coalesce.h): off until loop_coalesce_enable. */
    uint64_t moved; /* bytes delivered: owners add to it, the loop only reads it */
    struct coalesce co;
    loop_coalesce_cb co_cb; /* told when the window is kept or dropped, or NULL */
    bool busy;              /* the last wait returned events */
    uint64_t waits;         /* windows waited so far */
    uint64_t period_start;  /* ms: when the current period began */
    uint64_t period_moved;  /* moved when it began */
    int sched_fd;    /* /proc/thread-self/schedstat of the loop's thread; -1 unopened, -2 missing */
    bool sched_base; /* a sample is held: the next read gives a difference */
    uint64_t sched_delay_ns, sched_slices; /* that sample: run delay, times scheduled */
};

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* Returns 0 or -errno. */
int loop_init(struct loop *l, int max_events);

/* Turns the wait before blocking (coalesce.h) on or off; on starts a new period and takes the
 * thread's run delay afresh. Call it from the loop's own thread (or before it runs). */
void loop_coalesce_enable(struct loop *l, bool on);
/* Frees the loop's own resources; owners must have closed their fds and timers. */
void loop_destroy(struct loop *l);

static inline void loop_io_init(struct io *io, int fd, io_cb cb)
{
    io->fd = fd;
    io->interest = 0;
    io->cb = cb;
}
/* Make the registered interest equal to events (EPOLLIN/EPOLLOUT/EPOLLRDHUP...); a syscall only
 * when it changes. Returns 0 or -errno. */
int loop_io_set(struct loop *l, struct io *io, uint32_t events);
/* Re-register an fd with its current interest: for an edge-triggered fd that is still ready,
 * epoll reports it again. Returns 0 or -errno. */
int loop_io_rearm(struct loop *l, struct io *io);
/* Forget an fd that the caller is about to close (close() itself removes it from epoll). */
static inline void loop_io_forget(struct io *io)
{
    io->interest = 0;
    io->fd = -1;
}

static inline void loop_timer_init(struct loop_timer *t, loop_timer_cb cb)
{
    timer_init(&t->t);
    t->cb = cb;
}
int loop_timer_arm(struct loop *l, struct loop_timer *t, uint64_t deadline);
void loop_timer_cancel(struct loop *l, struct loop_timer *t);

void loop_defer(struct loop *l, struct loop_defer *d, loop_defer_cb cb);

uint64_t loop_clock_ms(void);
/* One iteration: wait (at most until the next timer, or max_wait_ms if >= 0), dispatch ready
 * events, run expired timers, run deferred work. Returns the number of events or -errno. */
int loop_run_once(struct loop *l, int max_wait_ms);
/* Iterate until l->stop is set. */
int loop_run(struct loop *l);

#endif
