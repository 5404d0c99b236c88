/*
 * test_loop.c - the specification of the event loop (loop.h), with real socketpairs.
 *
 * An fd is in the epoll set only while it has interest: loop_io_set adds, modifies or removes it,
 * and makes no syscall when the interest does not change. Readiness is level-triggered: EPOLLIN
 * while bytes wait, EPOLLOUT while the socket is writable, and nothing once the interest is
 * removed (not even the hang-up of a closed peer). An event for an io closed earlier in the same
 * batch is not delivered. Timers fire in deadline order, never before their deadline, and bound
 * how long one iteration waits. Deferred callbacks run once, after every event and timer of the
 * iteration. Every wait in these tests has a bound (and an alarm backs up the unbounded ones).
 * With the wait before blocking on (coalesce.h), only a busy loop that finds nothing ready waits
 * the window, and then still blocks (no spinning); each period's bytes reach the decision, and a
 * loop with the decision switched off reads and hands over nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop.h"

#define WAIT_MS 2000

/* An io with a record of what it was told. */
struct probe {
    struct io io;
    int peer;        /* the other end of the socketpair */
    int calls;       /* callbacks received */
    uint32_t events; /* events of the last callback */
    uint32_t set_to; /* interest to set from the callback, if change_interest */
    bool change_interest;
    struct probe *victim; /* closed from the callback, if not NULL */
};

/* The order things happened in, for the deferred-work tests. */
static char trace[256];
static void note(const char *what)
{
    strncat(trace, what, sizeof(trace) - strlen(trace) - 1);
}

static void probe_cb(struct loop *l, struct io *io, uint32_t events)
{
    struct probe *p = container_of(io, struct probe, io);
    assert_true(io->fd != -1); /* the loop never calls back a closed io */
    p->calls++;
    p->events = events;
    note("i");
    if (p->change_interest)
        assert_int_equal(loop_io_set(l, io, p->set_to), 0);
    if (p->victim && p->victim->io.fd != -1) {
        int fd = p->victim->io.fd;
        loop_io_forget(&p->victim->io);
        close(fd);
    }
}

static void probe_open(struct probe *p)
{
    int sv[2];
    memset(p, 0, sizeof(*p));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    loop_io_init(&p->io, sv[0], probe_cb);
    p->peer = sv[1];
}

static void probe_close(struct loop *l, struct probe *p)
{
    if (p->io.fd != -1) {
        assert_int_equal(loop_io_set(l, &p->io, 0), 0);
        close(p->io.fd);
        loop_io_forget(&p->io);
    }
    if (p->peer != -1)
        close(p->peer);
    p->peer = -1;
}

/* Whether the fd is in the loop's epoll set: a MOD to the same interest succeeds only if it is. */
static bool registered(struct loop *l, struct io *io)
{
    struct epoll_event ev = {.events = io->interest ? io->interest : EPOLLIN, .data.ptr = io};
    if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) == 0)
        return true;
    assert_int_equal(errno, ENOENT);
    return false;
}

static void send_byte(int fd)
{
    assert_int_equal(send(fd, "x", 1, MSG_NOSIGNAL), 1);
}

static int setup(void **state)
{
    static struct loop l;
    assert_int_equal(loop_init(&l, 16), 0);
    trace[0] = '\0';
    *state = &l;
    return 0;
}

static int teardown(void **state)
{
    struct loop *l = *state;
    loop_destroy(l);
    assert_int_equal(l->epfd, -1);
    alarm(0);
    return 0;
}

/* ---- interest ------------------------------------------------------------------------------- */

static void test_interest_registered_only_when_needed(void **state)
{
    struct loop *l = *state;
    struct probe p;
    probe_open(&p);

    assert_int_equal(p.io.interest, 0);
    assert_false(registered(l, &p.io));
    assert_int_equal(loop_io_set(l, &p.io, 0), 0); /* no interest: stays out of the set */
    assert_false(registered(l, &p.io));

    assert_int_equal(loop_io_set(l, &p.io, EPOLLIN), 0);
    assert_int_equal(p.io.interest, EPOLLIN);
    assert_true(registered(l, &p.io));
    assert_int_equal(loop_io_set(l, &p.io, EPOLLIN | EPOLLOUT), 0);
    assert_int_equal(p.io.interest, EPOLLIN | EPOLLOUT);
    assert_true(registered(l, &p.io));

    /* No syscall when nothing changes: with the epoll fd hidden, an unchanged interest still
     * succeeds, while a change reports the failed epoll_ctl and keeps the old interest. */
    int epfd = l->epfd;
    l->epfd = -1;
    assert_int_equal(loop_io_set(l, &p.io, EPOLLIN | EPOLLOUT), 0);
    assert_int_equal(loop_io_set(l, &p.io, EPOLLIN), -EBADF);
    assert_int_equal(p.io.interest, EPOLLIN | EPOLLOUT);
    l->epfd = epfd;

    assert_int_equal(loop_io_set(l, &p.io, 0), 0); /* no interest: out of the set */
    assert_int_equal(p.io.interest, 0);
    assert_false(registered(l, &p.io));

    /* A forgotten io (fd -1) is left alone. */
    int fd = p.io.fd;
    loop_io_forget(&p.io);
    assert_int_equal(loop_io_set(l, &p.io, EPOLLIN), 0);
    assert_int_equal(p.io.interest, 0);
    close(fd);
    probe_close(l, &p);
}

static void test_epollin_fires_while_bytes_wait(void **state)
{
    struct loop *l = *state;
    struct probe p;
    char buf[8];
    probe_open(&p);
    assert_int_equal(loop_io_set(l, &p.io, EPOLLIN), 0);

    assert_int_equal(loop_run_once(l, 20), 0); /* nothing to read yet */
    assert_int_equal(p.calls, 0);

    send_byte(p.peer);
    assert_int_equal(loop_run_once(l, WAIT_MS), 1);
    assert_int_equal(p.calls, 1);
    assert_true(p.events & EPOLLIN);
    assert_int_equal(loop_run_once(l, WAIT_MS), 1); /* level-triggered: still there */
    assert_int_equal(p.calls, 2);

    assert_int_equal(read(p.io.fd, buf, sizeof(buf)), 1);
    assert_int_equal(loop_run_once(l, 20), 0); /* consumed: quiet again */
    assert_int_equal(p.calls, 2);
    probe_close(l, &p);
}

static void test_no_interest_no_events(void **state)
{
    struct loop *l = *state;
    struct probe p;
    probe_open(&p);
    send_byte(p.peer);
    assert_int_equal(loop_run_once(l, 30), 0);
    assert_int_equal(p.calls, 0);

    assert_int_equal(loop_io_set(l, &p.io, EPOLLIN), 0);
    assert_int_equal(loop_run_once(l, WAIT_MS), 1);
    assert_int_equal(p.calls, 1);
    assert_int_equal(loop_io_set(l, &p.io, 0), 0); /* the byte is still unread */
    assert_int_equal(loop_run_once(l, 30), 0);
    assert_int_equal(p.calls, 1);
    probe_close(l, &p);
}

static void test_epollout_fires_when_writable_and_stops_when_removed(void **state)
{
    struct loop *l = *state;
    struct probe p;
    probe_open(&p);
    assert_int_equal(loop_io_set(l, &p.io, EPOLLOUT), 0);
    assert_int_equal(loop_run_once(l, WAIT_MS), 1);
    assert_int_equal(p.calls, 1);
    assert_true(p.events & EPOLLOUT);
    assert_false(p.events & EPOLLIN);

    /* Read interest only: a writable socket with nothing to read stays quiet. */
    assert_int_equal(loop_io_set(l, &p.io, EPOLLIN), 0);
    assert_int_equal(loop_run_once(l, 30), 0);
    assert_int_equal(p.calls, 1);

    /* No interest at all: even the peer's hang-up is not reported (it would repeat forever). */
    assert_int_equal(loop_io_set(l, &p.io, 0), 0);
    close(p.peer);
    p.peer = -1;
    assert_int_equal(loop_run_once(l, 30), 0);
    assert_int_equal(p.calls, 1);
    probe_close(l, &p);
}

/* "Write interest only while data waits": a callback that drops its EPOLLOUT is not called
 * again. */
static void test_callback_can_drop_its_interest(void **state)
{
    struct loop *l = *state;
    struct probe p;
    probe_open(&p);
    p.change_interest = true;
    p.set_to = 0;
    assert_int_equal(loop_io_set(l, &p.io, EPOLLOUT), 0);
    assert_int_equal(loop_run_once(l, WAIT_MS), 1);
    for (int i = 0; i < 3; i++)
        assert_int_equal(loop_run_once(l, 10), 0);
    assert_int_equal(p.calls, 1);
    assert_false(registered(l, &p.io));
    probe_close(l, &p);
}

static void test_peer_close_reports_rdhup(void **state)
{
    struct loop *l = *state;
    struct probe p;
    probe_open(&p);
    assert_int_equal(loop_io_set(l, &p.io, EPOLLIN | EPOLLRDHUP), 0);
    close(p.peer);
    p.peer = -1;
    assert_int_equal(loop_run_once(l, WAIT_MS), 1);
    assert_true(p.events & EPOLLRDHUP);
    probe_close(l, &p);
}

/* Two ios ready in one batch; whichever is called first closes the other, which then must not be
 * called with its stale event. */
static void test_event_of_an_io_closed_in_the_same_batch_is_dropped(void **state)
{
    struct loop *l = *state;
    struct probe a, b;
    probe_open(&a);
    probe_open(&b);
    a.victim = &b;
    b.victim = &a;
    assert_int_equal(loop_io_set(l, &a.io, EPOLLOUT), 0);
    assert_int_equal(loop_io_set(l, &b.io, EPOLLOUT), 0);
    assert_int_equal(loop_run_once(l, WAIT_MS), 2); /* both were ready */
    assert_int_equal(a.calls + b.calls, 1);
    assert_true((a.io.fd == -1) != (b.io.fd == -1));
    probe_close(l, &a);
    probe_close(l, &b);
}

/* ---- timers --------------------------------------------------------------------------------- */

struct tprobe {
    struct loop_timer lt;
    int id;
    int fired;
    uint64_t deadline;
    uint64_t fired_at;        /* l->now when it fired */
    int rearm;                /* times left to re-arm itself 10 ms later */
    bool stop;                /* set l->stop */
    struct loop_defer *defer; /* queue this from the callback */
};

static int order[16];
static int norder;

static void defer_cb(struct loop_defer *d);

static void tprobe_cb(struct loop *l, struct loop_timer *t)
{
    struct tprobe *p = container_of(t, struct tprobe, lt);
    assert_false(timer_armed(&t->t)); /* disarmed before its callback */
    p->fired++;
    p->fired_at = l->now;
    if (norder < 16)
        order[norder++] = p->id;
    note("t");
    if (p->rearm > 0) {
        p->rearm--;
        p->deadline = l->now + 10;
        assert_int_equal(loop_timer_arm(l, t, p->deadline), 0);
    }
    if (p->stop)
        l->stop = true;
    if (p->defer)
        loop_defer(l, p->defer, defer_cb);
}

static void tprobe_arm(struct loop *l, struct tprobe *p, int id, uint64_t deadline)
{
    memset(p, 0, sizeof(*p));
    p->id = id;
    p->deadline = deadline;
    loop_timer_init(&p->lt, tprobe_cb);
    assert_int_equal(loop_timer_arm(l, &p->lt, deadline), 0);
}

static void test_timers_fire_in_order(void **state)
{
    struct loop *l = *state;
    struct tprobe t[4];
    norder = 0;
    uint64_t start = loop_clock_ms();
    tprobe_arm(l, &t[0], 30, start + 30);
    tprobe_arm(l, &t[1], 10, start + 10);
    tprobe_arm(l, &t[2], 20, start + 20);
    tprobe_arm(l, &t[3], 15, start + 15);
    loop_timer_cancel(l, &t[3].lt); /* cancelled: never fires */
    loop_timer_cancel(l, &t[3].lt); /* twice is harmless */

    for (int i = 0; i < 100 && norder < 3; i++)
        assert_true(loop_run_once(l, 200) >= 0);
    assert_int_equal(norder, 3);
    assert_int_equal(order[0], 10);
    assert_int_equal(order[1], 20);
    assert_int_equal(order[2], 30);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(t[i].fired, 1);
        assert_true(t[i].fired_at >= t[i].deadline); /* never early */
    }
    assert_int_equal(t[3].fired, 0);
    assert_true(loop_clock_ms() - start >= 30);
    assert_null(timer_heap_peek(&l->timers));
}

/* With no events, an unbounded wait still ends at the next timer. */
static void test_next_timer_bounds_the_wait(void **state)
{
    struct loop *l = *state;
    struct tprobe t;
    alarm(10); /* a backstop: a wait that ignored the timer would block forever */
    uint64_t start = loop_clock_ms();
    tprobe_arm(l, &t, 1, start + 50);
    for (int i = 0; i < 10 && !t.fired; i++)
        assert_int_equal(loop_run_once(l, -1), 0);
    uint64_t took = loop_clock_ms() - start;
    assert_int_equal(t.fired, 1);
    assert_true(took >= 50);
    assert_true(took < 5000);
}

/* max_wait_ms shorter than the next timer wins, and the timer is not fired early. */
static void test_max_wait_shorter_than_the_timer(void **state)
{
    struct loop *l = *state;
    struct tprobe t;
    uint64_t start = loop_clock_ms();
    tprobe_arm(l, &t, 1, start + 1000);
    assert_int_equal(loop_run_once(l, 10), 0);
    assert_true(loop_clock_ms() - start < 900);
    assert_int_equal(t.fired, 0);
    assert_true(timer_armed(&t.lt.t));
    loop_timer_cancel(l, &t.lt);
}

static void test_expired_timer_fires_without_waiting(void **state)
{
    struct loop *l = *state;
    struct tprobe t;
    uint64_t start = loop_clock_ms();
    tprobe_arm(l, &t, 1, start > 5 ? start - 5 : 0);
    assert_int_equal(loop_run_once(l, 1000), 0);
    assert_int_equal(t.fired, 1);
    assert_true(loop_clock_ms() - start < 500);
}

/* A timer that re-arms itself for later fires once per iteration at most. */
static void test_timer_rearming_itself(void **state)
{
    struct loop *l = *state;
    struct tprobe t;
    uint64_t start = loop_clock_ms();
    tprobe_arm(l, &t, 1, start);
    t.rearm = 2;
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(t.fired, 1);
    assert_true(timer_armed(&t.lt.t));
    for (int i = 0; i < 50 && t.fired < 3; i++)
        loop_run_once(l, 100);
    assert_int_equal(t.fired, 3);
    assert_false(timer_armed(&t.lt.t));
    assert_true(loop_clock_ms() - start >= 20);
}

static void test_loop_run_until_stop(void **state)
{
    struct loop *l = *state;
    struct tprobe t;
    alarm(10);
    tprobe_arm(l, &t, 1, loop_clock_ms() + 20);
    t.stop = true;
    assert_int_equal(loop_run(l), 0);
    assert_int_equal(t.fired, 1);
    assert_true(l->stop);
}

/* ---- deferred work ----------------------------------------------------------------------------
 */

struct dprobe {
    struct loop_defer d;
    int runs;
};

static void defer_cb(struct loop_defer *d)
{
    struct dprobe *p = container_of(d, struct dprobe, d);
    p->runs++;
    note("d");
}

/* An io callback that queues deferred work. */
struct deferring {
    struct probe p;
    struct dprobe dp;
};

static void deferring_cb(struct loop *l, struct io *io, uint32_t events)
{
    struct deferring *x = container_of(container_of(io, struct probe, io), struct deferring, p);
    probe_cb(l, io, events);
    loop_defer(l, &x->dp.d, defer_cb);
    assert_int_equal(x->dp.runs, 0); /* not run from inside the batch */
}

static void test_deferred_callbacks_run_after_the_batch(void **state)
{
    struct loop *l = *state;
    struct deferring a, b;
    struct tprobe t;
    struct dprobe from_timer = {0};
    probe_open(&a.p);
    probe_open(&b.p);
    a.dp.runs = b.dp.runs = 0;
    a.p.io.cb = deferring_cb;
    b.p.io.cb = deferring_cb;
    assert_int_equal(loop_io_set(l, &a.p.io, EPOLLOUT), 0);
    assert_int_equal(loop_io_set(l, &b.p.io, EPOLLOUT), 0);
    tprobe_arm(l, &t, 1, loop_clock_ms() > 1 ? loop_clock_ms() - 1 : 0);
    t.defer = &from_timer.d;

    assert_int_equal(loop_run_once(l, WAIT_MS), 2);
    /* Both events and the timer first, then the three deferred callbacks. */
    assert_string_equal(trace, "iitddd");
    assert_int_equal(a.dp.runs, 1);
    assert_int_equal(b.dp.runs, 1);
    assert_int_equal(from_timer.runs, 1);
    assert_null(l->defers);

    /* Each runs once: the next iteration runs none of them again. */
    assert_int_equal(loop_io_set(l, &a.p.io, 0), 0);
    assert_int_equal(loop_io_set(l, &b.p.io, 0), 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(a.dp.runs + b.dp.runs + from_timer.runs, 3);
    probe_close(l, &a.p);
    probe_close(l, &b.p);
}

/* Work deferred outside any callback runs at the end of the next iteration, events or not. */
static void test_defer_from_outside_runs_next_iteration(void **state)
{
    struct loop *l = *state;
    struct dprobe d = {0};
    loop_defer(l, &d.d, defer_cb);
    assert_int_equal(d.runs, 0);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(d.runs, 1);
    assert_null(l->defers);
}

/* ---- waiting before blocking ---------------------------------------------------------------- */

/* Puts the decision into a kept window, as a test that paid would. */
static void window_kept(struct loop *l)
{
    loop_coalesce_enable(l, true);
    l->co.phase = COALESCE_ON;
    l->co.on = true;
    l->co.next_ms = UINT64_MAX; /* no re-test during this test */
}

/* Reads whatever waits on the probe's fd, so that nothing is ready any more. */
static void drain(struct probe *p)
{
    char buf[64];
    while (read(p->io.fd, buf, sizeof(buf)) > 0)
        ;
}

/* One byte in, one pass that delivers it (the callback drops its interest), then drained. */
static void one_event(struct loop *l, struct probe *p)
{
    assert_int_equal(loop_io_set(l, &p->io, EPOLLIN), 0);
    send_byte(p->peer);
    assert_int_equal(loop_run_once(l, WAIT_MS), 1);
    assert_true(l->busy);
    drain(p);
}

static void test_the_window_is_waited_only_by_a_busy_loop_that_ran_dry(void **state)
{
    struct loop *l = *state;
    struct probe p;
    probe_open(&p);
    p.change_interest = true;
    p.set_to = 0;
    /* The window forced on, with no decision running that could take it away mid-test. */
    coalesce_init(&l->co, false);
    l->co.on = true;

    /* Busy, nothing ready, a wait allowed: the window, then the caller's bound (no spinning). */
    one_event(l, &p);
    uint64_t start = loop_clock_ms();
    assert_int_equal(loop_run_once(l, 100), 0);
    assert_true(loop_clock_ms() - start >= 100);
    assert_int_equal(l->waits, 1);
    assert_false(l->busy);

    /* Not busy (the last pass had nothing): blocks at once. */
    assert_int_equal(loop_run_once(l, 10), 0);
    assert_int_equal(l->waits, 1);

    /* Busy, but something is ready: handled without waiting. */
    one_event(l, &p);
    assert_int_equal(loop_io_set(l, &p.io, EPOLLIN), 0);
    send_byte(p.peer);
    assert_int_equal(loop_run_once(l, WAIT_MS), 1);
    assert_int_equal(l->waits, 1);
    drain(&p);

    /* Busy, but the caller wants no wait at all. */
    one_event(l, &p);
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(l->waits, 1);

    /* The decision says no window: no wait, however busy. */
    l->co.on = false;
    one_event(l, &p);
    assert_int_equal(loop_run_once(l, 10), 0);
    assert_int_equal(l->waits, 1);

    /* And what arrives after a window is delivered. */
    l->co.on = true;
    one_event(l, &p);
    assert_int_equal(loop_io_set(l, &p.io, EPOLLIN), 0);
    assert_int_equal(loop_run_once(l, 10), 0);
    assert_int_equal(l->waits, 2);
    send_byte(p.peer);
    assert_int_equal(loop_run_once(l, WAIT_MS), 1);
    assert_int_equal(p.calls, 7);
    probe_close(l, &p);
}

static void test_each_period_hands_its_bytes_to_the_decision(void **state)
{
    struct loop *l = *state;
    l->now = loop_clock_ms();
    l->moved = 5000; /* before the decision was switched on: not counted */
    window_kept(l);  /* a kept window adds up its periods (however long they take) */
    l->moved += 12345;
    /* Shorter than a period: nothing handed over yet. */
    assert_int_equal(loop_run_once(l, 0), 0);
    assert_int_equal(l->co.kept_periods, 0);
    /* Past a period: its bytes and length reach the decision. */
    for (int i = 0; i < 50 && l->co.kept_periods == 0; i++)
        assert_int_equal(loop_run_once(l, COALESCE_PERIOD_MS / 4), 0);
    assert_int_equal(l->co.kept_periods, 1);
    assert_int_equal(l->co.kept_bytes, 12345);
    assert_true(l->co.kept_ms >= COALESCE_PERIOD_MS);
    /* The next period counts from there: only what moved since. */
    l->moved += 500;
    for (int i = 0; i < 50 && l->co.kept_periods == 1; i++)
        assert_int_equal(loop_run_once(l, COALESCE_PERIOD_MS / 4), 0);
    assert_int_equal(l->co.kept_periods, 2);
    assert_int_equal(l->co.kept_bytes, 12845);
    assert_true(l->co.kept_ms >= 2 * COALESCE_PERIOD_MS);
    /* Its run delay was read from this thread's schedstat (where the kernel keeps one). */
    assert_true(l->sched_fd >= 0 || l->sched_fd == -2);
    assert_true(l->sched_fd == -2 || l->sched_base);

    /* Switched off, the loop hands nothing over and reads nothing. */
    loop_coalesce_enable(l, false);
    uint64_t moved_then = l->period_moved, start_then = l->period_start;
    bool base_then = l->sched_base;
    uint64_t delay_then = l->sched_delay_ns;
    l->moved += 1000;
    uint64_t start = loop_clock_ms();
    while (loop_clock_ms() - start < 2 * COALESCE_PERIOD_MS)
        assert_int_equal(loop_run_once(l, COALESCE_PERIOD_MS / 2), 0);
    assert_int_equal(l->period_moved, moved_then);
    assert_int_equal(l->period_start, start_then);
    assert_int_equal(l->sched_base, base_then);
    assert_int_equal(l->sched_delay_ns, delay_then);

    /* Switched on again: a new period from now, counting from the bytes moved by now, and a new
     * run-delay sample first. */
    loop_coalesce_enable(l, true);
    assert_int_equal(l->period_moved, l->moved);
    assert_int_equal(l->period_start, l->now);
    assert_false(l->sched_base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_interest_registered_only_when_needed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epollin_fires_while_bytes_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_interest_no_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_epollout_fires_when_writable_and_stops_when_removed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_callback_can_drop_its_interest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_close_reports_rdhup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_of_an_io_closed_in_the_same_batch_is_dropped,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_timers_fire_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_next_timer_bounds_the_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_wait_shorter_than_the_timer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired_timer_fires_without_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timer_rearming_itself, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loop_run_until_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_callbacks_run_after_the_batch, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_defer_from_outside_runs_next_iteration, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_the_window_is_waited_only_by_a_busy_loop_that_ran_dry,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_period_hands_its_bytes_to_the_decision, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
