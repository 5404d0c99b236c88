/*
 * session.c - the relay of one client/backend pair.
 *
 * Owns both fds, both rings and the pair's timer. It moves bytes with read(v)/write(v) straight
 * into and out of the rings (buffer_size each, buffer_max while a direction streams; see
 * ring_take), reads a side only while the ring toward the other side has room and
 * writes only while data waits (readiness is tracked here: both sockets are registered once,
 * edge-triggered), forwards a FIN only once every byte before it is delivered, and turns a reset
 * on one side into a reset on the other. It never parses configuration and never chooses a
 * backend itself (backend.c does).
 */
#include "session.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "backend.h"
#include "listener.h"
#include "log.h"
#include "worker.h"

/* Upper bound on read/write rounds per event, so one busy pair cannot starve the others. */
#define RELAY_ROUNDS 64

static const char *const cause_names[] = {
    [CAUSE_NONE] = "none",
    [CAUSE_CLIENT_FIN] = "client_fin",
    [CAUSE_BACKEND_FIN] = "backend_fin",
    [CAUSE_CLIENT_RESET] = "client_reset",
    [CAUSE_BACKEND_RESET] = "backend_reset",
    [CAUSE_IDLE_TIMEOUT] = "idle_timeout",
    [CAUSE_CONNECT_TIMEOUT] = "connect_timeout",
    [CAUSE_CONNECT_REFUSED] = "connect_refused",
    [CAUSE_CONNECT_ERROR] = "connect_error",
    [CAUSE_NO_BACKEND] = "no_backend",
    [CAUSE_LOCAL_ERROR] = "local_error",
    [CAUSE_SHUTDOWN] = "shutdown",
};

const char *session_cause_name(enum session_cause cause)
{
    return cause_names[cause];
}

static void on_client(struct loop *l, struct io *io, uint32_t ev);
static void on_backend(struct loop *l, struct io *io, uint32_t ev);
static void on_timer(struct loop *l, struct loop_timer *t);
static void connect_next(struct session *s);

static void set_state(struct session *s, enum session_state to)
{
    enum session_state from = (enum session_state)s->state;
    assert((from == SESSION_CONNECTING && to != SESSION_CONNECTING) ||
           (from == SESSION_RELAYING && to == SESSION_CLOSED));
    (void)from;
    s->state = (uint8_t)to;
}

static const struct backend_conf *cur_backend(const struct session *s)
{
    return s->backend_idx >= 0 ? s->route->bal.b[s->backend_idx].conf : NULL;
}

static bool is_client(const struct session *s, const struct io *io)
{
    return io == &s->client;
}

static enum session_cause reset_cause(const struct session *s, const struct io *io)
{
    return is_client(s, io) ? CAUSE_CLIENT_RESET : CAUSE_BACKEND_RESET;
}

static void free_deferred(struct loop_defer *d)
{
    struct session *s = container_of(d, struct session, defer);
    wgen_unref(s->gen);
    free(s);
}

static void access_log(struct session *s)
{
    char client[SOCK_ADDRSTRLEN], backend[SOCK_ADDRSTRLEN];
    sock_addr_format(&s->peer, client, sizeof(client));
    const struct backend_conf *b = s->state == SESSION_RELAYING ? cur_backend(s) : NULL;
    if (b)
        sock_addr_format(&b->addr, backend, sizeof(backend));
    else
        strcpy(backend, "-");
    struct log_field f[] = {
        {"route", s->route->conf->name, 0},
        {"client", client, 0},
        {"backend", backend, 0},
        {"bytes_from_client", NULL, (long long)s->bytes[DIR_UP]},
        {"bytes_to_client", NULL, (long long)s->bytes[DIR_DOWN]},
        {"duration_ms", NULL, (long long)(s->w->loop.now - s->start_ms)},
        {"attempts", NULL, s->attempts},
        {"cause", cause_names[s->cause], 0},
    };
    log_fields(LOG_INFO, "access", f, sizeof(f) / sizeof(f[0]));
}

/* One read of this many bytes or more says a direction streams: buffer_size, but at most 64 KiB,
 * about what one TCP segment (with GRO, or on loopback) brings, since a read seldom returns more
 * than has arrived between two wake-ups. */
#define STREAM_MARK_MAX (64u * 1024)
static size_t stream_mark(const struct session *s)
{
    size_t n = s->route->conf->s.buffer_size;
    return n < STREAM_MARK_MAX ? n : STREAM_MARK_MAX;
}

/* A ring's area comes from the route's buffer_size pool, or from its buffer_max pool once the
 * direction streams (see ring_take). */
static bool ring_is_big(const struct session *s, const struct ring *r)
{
    return r->area && s->route->big_pool && r->size == s->route->big_pool->size;
}

/* Hand a ring's area back to the pool it came from (the ring is emptied). */
static void ring_give_back(struct session *s, struct ring *r)
{
    struct bufpool *pool = s->route->pool;
    if (ring_is_big(s, r)) {
        s->w->grown_bytes -= r->size;
        pool = s->route->big_pool;
    }
    r->len = 0; /* a closing pair drops what it still held */
    ring_release(r, pool);
}

/*
 * Give the ring of this direction an area to read into. Most pairs carry small messages and
 * read into buffer_size. A direction that streams (its last read filled all it was offered, or
 * reached stream_mark()) reads into buffer_max instead, while the worker's buffer_budget for such
 * areas lasts (the session's configuration says how much): larger reads and writes mean fewer
 * syscalls and, more, fewer and larger TCP segments (measured on loopback: about half the CPU per
 * GB at 256 KiB). An empty ring changes size on the spot; one holding bytes keeps its area until it
 * drains. Returns 0 or -ENOMEM.
 */
static int ring_take(struct session *s, int dir)
{
    struct ring *r = &s->ring[dir];
    if (r->len)
        return 0; /* holding bytes: keeps its area until it drains */
    struct route_rt *rt = s->route;
    bool big = ring_is_big(s, r);
    bool want = s->streams[dir] && rt->big_pool &&
                (big || s->w->grown_bytes + rt->big_pool->size <= rt->cfg->buffer_budget);
    if (r->area) {
        if (big == want)
            return 0;
        ring_give_back(s, r);
    }
    if (want && ring_acquire(r, rt->big_pool) == 0) {
        s->w->grown_bytes += r->size;
        if (!s->grew[dir]) {
            s->grew[dir] = 1;
            char b[32];
            config_format_size(r->size, b, sizeof(b));
            log_debug("route %s: %s streams: its ring grows to %s", rt->conf->name,
                      dir == DIR_UP ? "client->backend" : "backend->client", b);
        }
        return 0;
    }
    return ring_acquire(r, rt->pool);
}

static void close_side(struct io *io, bool reset)
{
    if (io->fd == -1)
        return;
    if (reset)
        sock_close_reset(io->fd);
    else
        close(io->fd);
    loop_io_forget(io);
}

/* Bytes read from the source of dir and not yet written to its destination (in the pipe or the
 * ring: a direction uses one at a time). */
static size_t pending(const struct session *s, int dir)
{
    return (s->pipe[dir] ? s->pipe[dir]->len : 0) + s->ring[dir].len;
}

/* Was the stream toward this side cut short? (bytes undelivered, or its FIN never sent) */
static bool cut_short(const struct session *s, int dir)
{
    return pending(s, dir) > 0 || (s->eof[dir] && !s->shut[dir]);
}

/* Did the stream toward this side end: its source's FIN forwarded, nothing left undelivered? */
static bool ended(const struct session *s, int dir)
{
    return s->eof[dir] && s->shut[dir] && pending(s, dir) == 0;
}

/*
 * A splice route's direction borrows a pipe when its source may have bytes and its ring is empty,
 * and gives it back once the pipe is empty and the source drained (see pipepool.h): an idle pair
 * holds no pipe. A direction that has streamed borrows a grown pipe when the worker keeps one, so a
 * stream does not pay an fcntl to grow on every burst; while borrowed, what a grown pipe holds
 * beyond a new one counts against buffer_budget. No pipe to be had means the ring carries the
 * burst.
 */
#define PIPE_STREAMS      0x1 /* the direction streamed: it wants a grown pipe */
#define PIPE_NO_GROW      0x2 /* the kernel refused to grow its pipe: not tried again */
#define PIPE_LOGGED       0x4 /* its first growth was logged */
#define PIPE_LOG_EVERY_MS 10000

/* Why no pipe, said at most once per PIPE_LOG_EVERY_MS per worker: the rings then carry bursts. */
static void pipe_refused(struct session *s, int err)
{
    struct worker *w = s->w;
    if (w->pipes_logged_at && w->loop.now < w->pipes_logged_at + PIPE_LOG_EVERY_MS)
        return;
    w->pipes_logged_at = w->loop.now;
    if (err == EAGAIN)
        log_info("route %s: all %u pipes in use: bursts relay through the rings until one is "
                 "free",
                 s->route->conf->name, atomic_load(&w->shared->max_pipes));
    else
        log_warn("route %s: no pipe (%s): bursts relay through the rings meanwhile",
                 s->route->conf->name, strerror(err));
}

static bool pipe_take(struct session *s, int dir)
{
    struct worker *w = s->w;
    struct pipepool *pp = &w->pipes;
    size_t budget = s->route->cfg->buffer_budget;
    size_t big = s->pipe_flags[dir] & PIPE_STREAMS ? s->route->pipe_grown : 0;
    struct spipe *p = pipepool_get(pp, big, w->loop.now);
    if (p && p->cap > pp->base && w->grown_bytes + (p->cap - pp->base) > budget) {
        pipepool_put(pp, p); /* no budget for a grown one: a new-sized pipe instead */
        p = pipepool_get(pp, 0, w->loop.now);
        if (!p)
            return false; /* the ring it is, this once: not worth a log line */
    }
    if (!p) {
        pipe_refused(s, errno);
        return false;
    }
    p->charged = p->cap > pp->base ? p->cap - pp->base : 0;
    w->grown_bytes += p->charged;
    s->pipe[dir] = p;
    return true;
}

/* Give a direction's pipe back (closed if it still holds bytes) with what it counted against the
 * worker's budget. */
static void pipe_give_back(struct session *s, int dir)
{
    struct spipe *p = s->pipe[dir];
    if (!p)
        return;
    s->w->grown_bytes -= p->charged;
    pipepool_put(&s->w->pipes, p);
    s->pipe[dir] = NULL;
}

/* Ends a wait for a descriptor (see connect_next); returns whether the session was waiting. */
static bool stop_fd_wait(struct session *s)
{
    if (!s->fd_wait)
        return false;
    s->fd_wait = 0;
    s->w->fd_waiters--;
    return true;
}

void session_close(struct session *s, enum session_cause cause)
{
    if (s->state == SESSION_CLOSED)
        return;
    /* The reason the pair ends now wins over the tentative "who sent the first FIN". */
    s->cause = (uint8_t)(cause == CAUSE_NONE ? CAUSE_CLIENT_FIN : cause);
    struct loop *l = &s->w->loop;
    loop_timer_cancel(l, &s->timer);
    stop_fd_wait(s);

    /* A side gets a RST instead of a FIN when its stream was truncated, so it never looks
     * complete: the other side reset, or bytes toward it were still in flight. */
    bool reset_client = false, reset_backend = false;
    switch (cause) {
    case CAUSE_CLIENT_RESET:
        reset_backend = true;
        break;
    case CAUSE_BACKEND_RESET:
        reset_client = true;
        break;
    case CAUSE_IDLE_TIMEOUT:
        /* Nothing moved for idle_timeout: a FIN is the usual way to end a quiet connection (a
         * keep-alive client takes it as "closed while idle"), unless bytes were held back. */
        reset_client = cut_short(s, DIR_DOWN);
        reset_backend = s->state == SESSION_RELAYING && cut_short(s, DIR_UP);
        if (s->state != SESSION_RELAYING)
            reset_client = reset_client || pending(s, DIR_UP) > 0;
        break;
    case CAUSE_SHUTDOWN:
    case CAUSE_LOCAL_ERROR:
        /* ferry cuts streams that had not ended: a side whose incoming stream had not ended is
         * reset, since a FIN would make it look complete. Before a backend answered, the client
         * is treated as after a failed connect. */
        if (s->state == SESSION_RELAYING) {
            reset_client = !ended(s, DIR_DOWN);
            reset_backend = !ended(s, DIR_UP);
        } else {
            reset_client = cut_short(s, DIR_DOWN) || pending(s, DIR_UP) > 0;
        }
        break;
    case CAUSE_CONNECT_TIMEOUT:
    case CAUSE_CONNECT_REFUSED:
    case CAUSE_CONNECT_ERROR:
    case CAUSE_NO_BACKEND:
        /* No backend got the bytes the client sent: a FIN would make its request look answered
         * with nothing (an empty reply), so it is reset. A client that sent nothing (or only its
         * FIN) gets a FIN. */
        reset_client = pending(s, DIR_UP) > 0;
        break;
    default:
        break;
    }
    if (s->state == SESSION_RELAYING)
        s->route->bal.b[s->backend_idx].active--;
    close_side(&s->client, reset_client);
    close_side(&s->backend, reset_backend);
    for (int d = 0; d < 2; d++)
        pipe_give_back(s, d);
    for (int d = 0; d < 2; d++)
        if (s->ring[d].area)
            ring_give_back(s, &s->ring[d]);
    if (s->route->cfg->log_access)
        access_log(s);
    set_state(s, SESSION_CLOSED);
    worker_session_removed(s->w, s);
    loop_defer(l, &s->defer, free_deferred);
}

/* Both sides are registered once, edge-triggered, for reading and writing: readiness is then
 * tracked here (can_read / can_write) instead of by changing epoll interest, so a pair costs no
 * epoll_ctl after its two registrations. Reading a side is still skipped while the ring toward
 * the other side is full, and writing while nothing waits; an edge arrives whenever a drained
 * socket gets data or a full one gets room. */
#define SIDE_EVENTS (EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLPRI | EPOLLET)

static int watch(struct session *s, struct io *io)
{
    int rc = loop_io_set(&s->w->loop, io, SIDE_EVENTS);
    if (rc != 0)
        log_error("route %s: epoll_ctl: %s", s->route->conf->name, strerror(-rc));
    return rc;
}

/* The source of this direction ended its stream: a FIN is now owed to the destination. */
static void mark_eof(struct session *s, int dir)
{
    s->eof[dir] = 1;
    if (s->cause == CAUSE_NONE && s->state == SESSION_RELAYING)
        s->cause = dir == DIR_UP ? CAUSE_CLIENT_FIN : CAUSE_BACKEND_FIN;
}

static bool relay_done(struct session *s, int dir, bool src_ready, bool dst_ready, bool out);
static bool relay_splice(struct session *s, int dir);

/*
 * Move bytes in one direction: flush the ring toward dst, read from src while there is room,
 * repeat while either makes progress. src_ready / dst_ready say what epoll reported (or what is
 * known); a short read or write means "not ready" and ends that side's work for this event
 * (see the read for the two exceptions). Single iovecs use read/write, which skip the iovec
 * copy-in of readv/writev. Returns false if the session closed.
 */
static bool relay(struct session *s, int dir)
{
    if (!s->pipe[dir] && s->route->conf->s.splice && s->can_read[dir] && !s->eof[dir] &&
        s->ring[dir].len == 0)
        pipe_take(s, dir);
    if (s->pipe[dir])
        return relay_splice(s, dir);
    struct io *src = dir == DIR_UP ? &s->client : &s->backend;
    struct io *dst = dir == DIR_UP ? &s->backend : &s->client;
    struct ring *r = &s->ring[dir];
    bool dst_up = dir == DIR_DOWN || s->state == SESSION_RELAYING;
    bool src_ready = s->can_read[dir], dst_ready = dst_up && s->can_write[!dir];
    bool rdhup = s->rdhup[dir];
    struct iovec iov[2];
    int round;

    bool streaming = false; /* the last read filled all the room offered */
    for (round = 0; round < RELAY_ROUNDS; round++) {
        bool progress = false;
        if (r->len && dst_ready) {
            int cnt = ring_data_iov(r, iov);
            ssize_t n;
            if (s->eof[dir]) {
                /* The FIN follows these bytes: MSG_MORE holds back a last short segment so
                 * the shutdown() (or close()) right after the ring drains sends it with the
                 * FIN on it, one packet instead of two. */
                struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)cnt};
                n = sendmsg(dst->fd, &m, MSG_MORE);
            } else {
                n = cnt == 1 ? write(dst->fd, iov[0].iov_base, iov[0].iov_len)
                             : writev(dst->fd, iov, cnt);
            }
            if (n == -1) {
                if (errno != EAGAIN && errno != EINTR) {
                    log_debug("write to %s: %s", is_client(s, dst) ? "client" : "backend",
                              strerror(errno));
                    session_close(s, reset_cause(s, dst));
                    return false;
                }
                dst_ready = false;
            } else {
                if ((size_t)n < r->len)
                    dst_ready = false;
                ring_consume(r, (size_t)n);
                s->bytes[dir] += (uint64_t)n;
                s->w->loop.moved += (uint64_t)n;
                s->last_active_ms = s->w->loop.now;
                progress = n > 0;
            }
        }
        if (src_ready && !s->eof[dir] && !ring_full(r)) {
            if (ring_take(s, dir) != 0) {
                log_error("route %s: out of memory for a buffer", s->route->conf->name);
                session_close(s, CAUSE_LOCAL_ERROR);
                return false;
            }
            int cnt = ring_room_iov(r, iov);
            size_t room = ring_room(r);
            ssize_t n = cnt == 1 ? read(src->fd, iov[0].iov_base, iov[0].iov_len)
                                 : readv(src->fd, iov, cnt);
            if (n > 0) {
                ring_produce(r, (size_t)n);
                s->streams[dir] = (size_t)n == room || (size_t)n >= stream_mark(s);
                s->last_active_ms = s->w->loop.now;
                /* A short read means "drained". If the peer's FIN had already arrived when
                 * the read began, nothing can follow the bytes just read: that is the end of
                 * the stream, without a read() that returns 0. Otherwise, after a full read, a
                 * sender streaming on another core has often refilled the socket: read on.
                 * Not while urgent data is signalled: a read stops short at the urgent mark
                 * with more queued behind it, so only EAGAIN or 0 tells. */
                bool urgent = s->urg[dir];
                if ((size_t)n < room && rdhup && !urgent)
                    mark_eof(s, dir);
                else if ((size_t)n < room && !streaming && !urgent)
                    src_ready = false;
                streaming = (size_t)n == room;
                progress = true;
            } else if (n == 0) {
                mark_eof(s, dir);
                progress = true;
            } else if (errno == EAGAIN || errno == EINTR) {
                src_ready = false;
                s->urg[dir] = 0; /* drained past any mark; a new one brings EPOLLPRI again */
            } else {
                log_debug("read from %s: %s", is_client(s, src) ? "client" : "backend",
                          strerror(errno));
                session_close(s, reset_cause(s, src));
                return false;
            }
        }
        if (!progress)
            break;
    }
    if (r->area && ring_empty(r))
        ring_give_back(s, r);
    return relay_done(s, dir, src_ready, dst_ready, round == RELAY_ROUNDS);
}

/*
 * The end of a relay in one direction: record what is known of both sides, have epoll report the
 * source again if the rounds ran out with work left, and forward the FIN once nothing is pending.
 */
static bool relay_done(struct session *s, int dir, bool src_ready, bool dst_ready, bool out)
{
    struct io *src = dir == DIR_UP ? &s->client : &s->backend;
    struct io *dst = dir == DIR_UP ? &s->backend : &s->client;
    bool dst_up = dir == DIR_DOWN || s->state == SESSION_RELAYING;
    s->can_read[dir] = src_ready;
    if (dst_up)
        s->can_write[!dir] = dst_ready;
    if (out && (src_ready || (dst_ready && pending(s, dir)))) {
        /* Out of rounds with work left: no new edge will come for bytes already there, so ask
         * epoll to report the side again (a MOD re-queues a ready edge-triggered fd). */
        loop_io_rearm(&s->w->loop, src);
    }
    if (s->eof[dir] && !s->shut[dir] && pending(s, dir) == 0 && dst_up) {
        /* Every byte before the FIN is delivered: forward it. If the other direction is already
         * done, the pair closes right after this and close() sends the FIN (dst has nothing
         * unread: its EOF was read), so the shutdown() call is skipped. */
        if (s->eof[!dir] && s->shut[!dir]) {
            s->shut[dir] = 1;
            return true;
        }
        if (shutdown(dst->fd, SHUT_WR) == -1 && errno != ENOTCONN) {
            session_close(s, reset_cause(s, dst));
            return false;
        }
        s->shut[dir] = 1;
    }
    return true;
}

/* A failed splice: the peer's doing (reset, gone) resets the other side; anything else (out of
 * memory for pipe buffers, say) is ferry's own failure. */
static enum session_cause splice_cause(const struct session *s, const struct io *io, int err)
{
    switch (err) {
    case ECONNRESET:
    case ECONNABORTED:
    case EPIPE:
    case ETIMEDOUT:
    case ENOTCONN:
    case EHOSTUNREACH:
    case ENETUNREACH:
        return reset_cause(s, io);
    default:
        return CAUSE_LOCAL_ERROR;
    }
}

/* Is the next byte to read from this socket the urgent one? */
static bool at_urgent_mark(int fd)
{
    int at_mark = 0;
    return ioctl(fd, SIOCATMARK, &at_mark) == 0 && at_mark;
}

/*
 * A splice out of a TCP socket stops at urgent data and reports EAGAIN although bytes are still
 * queued, and keeps doing so: only a read() moves past the mark (dropping the urgent byte, as the
 * ring path's reads do); once the FIN is in, it reports 0 there instead. Called when a splice into
 * an empty pipe would block or returns 0 on a side that signalled urgent data: if the socket is at
 * the mark, read what follows into the pipe. Returns 1 if that made progress, 0 if the socket is
 * simply drained, -1 if the session closed.
 */
static int past_urgent_mark(struct session *s, int dir)
{
    struct io *src = dir == DIR_UP ? &s->client : &s->backend;
    struct spipe *p = s->pipe[dir];
    if (!at_urgent_mark(src->fd)) {
        s->urg[dir] = 0; /* the mark is behind us (or not yet here: EPOLLPRI will say) */
        return 0;
    }
    char buf[PIPE_BUF]; /* one write of at most PIPE_BUF bytes fills an empty pipe whole */
    ssize_t n = read(src->fd, buf, sizeof(buf));
    if (n > 0) {
        if (write(p->wr, buf, (size_t)n) != n) {
            session_close(s, CAUSE_LOCAL_ERROR);
            return -1;
        }
        p->len += (size_t)n;
        s->last_active_ms = s->w->loop.now;
        return 1;
    }
    if (n == 0) {
        mark_eof(s, dir);
        return 1;
    }
    if (errno == EAGAIN || errno == EINTR)
        return 0;
    session_close(s, reset_cause(s, src));
    return -1;
}

/*
 * The splice counterpart of ring_take(): when a direction streams (one splice moved stream_mark()
 * bytes, or a whole pipe's worth), its pipe is resized to buffer_max (rounded up to a power of two
 * pages, as the kernel does) if the worker's buffer_budget allows. From then on the direction
 * borrows grown pipes, which the worker keeps apart from new-sized ones, so a stream pays the fcntl
 * once, not on every burst. (Shrinking a pipe back whenever a splice moved little was measured: a
 * stream then flaps between sizes, an fcntl each time.) A pipe's size is what it may pin in the
 * kernel while bytes are in flight, so a borrowed grown pipe counts against the same budget as
 * grown rings. A resize the kernel refuses (the per-user pipe limits, say) leaves the pipe as it
 * was, and is not tried again for the direction.
 */
static void pipe_grow(struct session *s, int dir)
{
    struct spipe *p = s->pipe[dir];
    struct route_rt *rt = s->route;
    size_t want = rt->pipe_max;
    if ((s->pipe_flags[dir] & PIPE_NO_GROW) || want <= p->cap || want > INT_MAX ||
        s->w->grown_bytes + (want - p->cap) > rt->cfg->buffer_budget)
        return;
    int got = fcntl(p->wr, F_SETPIPE_SZ, (int)want);
    if (got < 0 || (size_t)got <= p->cap) {
        s->pipe_flags[dir] |= PIPE_NO_GROW;
        log_debug("route %s: cannot grow a pipe to %zu bytes (%s)", rt->conf->name, want,
                  got < 0 ? strerror(errno) : "refused");
        return;
    }
    s->w->grown_bytes += (size_t)got - p->cap;
    p->charged += (size_t)got - p->cap;
    p->cap = (size_t)got;
    rt->pipe_grown = (size_t)got; /* the route's streams borrow kept pipes of this size */
    if (s->pipe_flags[dir] & PIPE_LOGGED)
        return;
    s->pipe_flags[dir] |= PIPE_LOGGED;
    char b[32];
    config_format_size((size_t)got, b, sizeof(b));
    log_debug("route %s: %s streams: its pipe grows to %s", rt->conf->name,
              dir == DIR_UP ? "client->backend" : "backend->client", b);
}

/*
 * The same as relay() for a splice route: the bytes go from the source socket into this
 * direction's pipe and from the pipe to the destination socket without entering user space. A
 * pipe holds a limited number of buffers whatever their size, so a short or refused splice into
 * it does not prove the source drained: the source counts as drained only when a splice into an
 * empty pipe would block, and the end of the stream only when a splice returns 0.
 */
static bool relay_splice(struct session *s, int dir)
{
    struct io *src = dir == DIR_UP ? &s->client : &s->backend;
    struct io *dst = dir == DIR_UP ? &s->backend : &s->client;
    struct spipe *p = s->pipe[dir];
    bool dst_up = dir == DIR_DOWN || s->state == SESSION_RELAYING;
    bool src_ready = s->can_read[dir], dst_ready = dst_up && s->can_write[!dir];
    int round;
    for (round = 0; round < RELAY_ROUNDS; round++) {
        bool progress = false;
        if (p->len && dst_ready) {
            unsigned more = s->eof[dir] ? SPLICE_F_MORE : 0; /* as in relay() */
            ssize_t n = splice(p->rd, NULL, dst->fd, NULL, p->len,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK | more);
            if (n == -1) {
                if (errno != EAGAIN && errno != EINTR) {
                    log_debug("splice to %s: %s", is_client(s, dst) ? "client" : "backend",
                              strerror(errno));
                    session_close(s, splice_cause(s, dst, errno));
                    return false;
                }
                dst_ready = false;
            } else {
                if ((size_t)n < p->len)
                    dst_ready = false;
                p->len -= (size_t)n;
                s->bytes[dir] += (uint64_t)n;
                s->w->loop.moved += (uint64_t)n;
                s->last_active_ms = s->w->loop.now;
                progress = n > 0;
            }
        }
        if (src_ready && !s->eof[dir] && p->len < p->cap) {
            ssize_t n = splice(src->fd, NULL, p->wr, NULL, p->cap - p->len,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (n > 0) {
                p->len += (size_t)n;
                /* One splice moves at most a pipe's worth. */
                size_t base = s->w->pipes.base;
                if ((size_t)n >= (stream_mark(s) < base ? stream_mark(s) : base)) {
                    s->pipe_flags[dir] |= PIPE_STREAMS;
                    pipe_grow(s, dir);
                }
                s->last_active_ms = s->w->loop.now;
                progress = true;
            } else if (n == 0) {
                /* A splice stops at an urgent mark and, once the FIN is in, reports 0 there
                 * although bytes may follow the mark (its EPOLLPRI may not even have been seen
                 * yet): the end of the stream only if the socket is not at a mark. At one, the
                 * pipe is emptied first, then past_urgent_mark() reads on. */
                if (!at_urgent_mark(src->fd)) {
                    mark_eof(s, dir);
                    progress = true;
                } else if (p->len == 0) {
                    s->urg[dir] = 1;
                    int r = past_urgent_mark(s, dir);
                    if (r < 0)
                        return false;
                    progress = r > 0;
                }
            } else if (errno == EAGAIN || errno == EINTR) {
                /* Either the socket is drained or the pipe is out of buffers: only an empty
                 * pipe tells them apart. A full pipe is retried after the next flush. */
                if (p->len == 0) {
                    int r = s->urg[dir] ? past_urgent_mark(s, dir) : 0;
                    if (r < 0)
                        return false;
                    if (r > 0)
                        progress = true;
                    else
                        src_ready = false;
                }
            } else {
                log_debug("splice from %s: %s", is_client(s, src) ? "client" : "backend",
                          strerror(errno));
                session_close(s, splice_cause(s, src, errno));
                return false;
            }
        }
        if (!progress)
            break;
    }
    if (p->len == 0 && (!src_ready || s->eof[dir]))
        pipe_give_back(s, dir);
    return relay_done(s, dir, src_ready, dst_ready, round == RELAY_ROUNDS);
}

/* After any event: close once both directions are done. */
static void settle(struct session *s)
{
    if (s->state == SESSION_RELAYING && s->shut[DIR_UP] && s->shut[DIR_DOWN])
        session_close(s, (enum session_cause)s->cause);
}

/* A pending socket error means the peer reset (or the path failed): the stream is cut, so the
 * other side is reset too. Returns true if the session was closed. */
static bool check_error(struct session *s, struct io *io, uint32_t ev)
{
    if (!(ev & EPOLLERR))
        return false;
    int err = sock_error(io->fd);
    if (!err)
        return false;
    log_debug("%s socket error: %s", is_client(s, io) ? "client" : "backend", strerror(err));
    session_close(s, reset_cause(s, io));
    return true;
}

/* Record what an event says about one side. */
static void note_events(struct session *s, int side, uint32_t ev)
{
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        s->can_read[side] = 1;
    if (ev & (EPOLLRDHUP | EPOLLHUP))
        s->rdhup[side] = 1;
    if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
        s->can_write[side] = 1;
    if (ev & EPOLLPRI)
        s->urg[side] = 1;
}

/* Events on one side: move what can move in both directions (a relay with nothing to do makes
 * no syscall), then see whether the pair is done. */
static void on_side(struct session *s, struct io *io, uint32_t ev)
{
    if (check_error(s, io, ev))
        return;
    note_events(s, is_client(s, io) ? SIDE_CLIENT : SIDE_BACKEND, ev);
    if (!relay(s, DIR_UP) || !relay(s, DIR_DOWN))
        return;
    settle(s);
}

static void on_client(struct loop *l, struct io *io, uint32_t ev)
{
    (void)l;
    on_side(container_of(io, struct session, client), io, ev);
}

static enum session_cause connect_cause(int err)
{
    switch (err) {
    case ETIMEDOUT:
        return CAUSE_CONNECT_TIMEOUT;
    case ECONNREFUSED:
        return CAUSE_CONNECT_REFUSED;
    default:
        return CAUSE_CONNECT_ERROR;
    }
}

static void report_failure(struct session *s, size_t idx, int err)
{
    struct route_rt *rt = s->route;
    const struct backend_conf *bc = rt->bal.b[idx].conf;
    const char *addr = bc->address;
    if (balancer_report(&rt->bal, idx, false, s->w->loop.now)) {
        /* A name says which address was tried (localhost may be ::1 while the backend listens
         * on 127.0.0.1 only). */
        char tried[SOCK_ADDRSTRLEN + 4] = "";
        if (bc->named) {
            char a[SOCK_ADDRSTRLEN];
            sock_addr_format(&bc->addr, a, sizeof(a));
            snprintf(tried, sizeof(tried), " (%s)", a);
        }
        log_warn("backend %s%s of route %s is down: %s", addr, tried, rt->conf->name,
                 err == ETIMEDOUT ? "connect timed out" : strerror(err));
    } else
        log_debug("connect to %s (route %s): %s", addr, rt->conf->name, strerror(err));
    s->cause = (uint8_t)connect_cause(err);
}

/* A connect attempt ended without a connection: note it and move on to the next backend. */
static void attempt_failed(struct session *s, int err)
{
    if (s->backend.fd != -1) {
        close(s->backend.fd);
        loop_io_forget(&s->backend);
    }
    loop_timer_cancel(&s->w->loop, &s->timer);
    report_failure(s, (size_t)s->backend_idx, err);
    connect_next(s);
}

static void connected(struct session *s)
{
    struct worker *w = s->w;
    struct backend_rt *b = &s->route->bal.b[s->backend_idx];
    if (balancer_report(&s->route->bal, (size_t)s->backend_idx, true, w->loop.now))
        log_info("backend %s of route %s is up", b->conf->address, s->route->conf->name);
    b->active++;
    /* The handshake's last ACK waits to ride on the client's first bytes (sock_connect), one
     * packet fewer per connection. With none here yet to write, it goes now: the backend sees the
     * connection only when it arrives, and one that speaks first must not wait. (A client that
     * already ended its stream without a byte gets its FIN forwarded in this same event, with
     * the ACK on it.) */
    if (pending(s, DIR_UP) == 0 && !s->eof[DIR_UP])
        sock_push_ack(s->backend.fd);
    /* A client that ended its stream while we connected ended first. */
    s->cause = s->eof[DIR_UP] ? CAUSE_CLIENT_FIN : CAUSE_NONE;
    set_state(s, SESSION_RELAYING);
    s->last_active_ms = w->loop.now;
    uint64_t idle = s->route->conf->s.idle_timeout_ms;
    if (idle)
        loop_timer_arm(&w->loop, &s->timer, w->loop.now + idle);
    else
        loop_timer_cancel(&w->loop, &s->timer);
}

static void on_backend(struct loop *l, struct io *io, uint32_t ev)
{
    (void)l;
    struct session *s = container_of(io, struct session, backend);
    if (s->state != SESSION_CONNECTING) {
        on_side(s, io, ev);
        return;
    }
    /* Writable without an error is a completed connect; only an error needs SO_ERROR. */
    if (ev & (EPOLLERR | EPOLLHUP)) {
        int err = sock_error(io->fd);
        attempt_failed(s, err ? err : ECONNREFUSED);
        return;
    }
    if (!(ev & EPOLLOUT))
        return; /* not connected yet */
    connected(s);
    /* The client may have sent bytes (and even its FIN) while we were connecting. */
    on_side(s, io, ev);
}

static void on_timer(struct loop *l, struct loop_timer *t)
{
    struct session *s = container_of(t, struct session, timer);
    if (s->state == SESSION_CONNECTING) {
        if (stop_fd_wait(s)) {
            connect_next(s);
        } else {
            attempt_failed(s, ETIMEDOUT);
        }
        return;
    }
    uint64_t due = s->last_active_ms + s->route->conf->s.idle_timeout_ms;
    if (due > l->now) { /* bytes moved since the timer was armed: lazy re-arm */
        loop_timer_arm(l, &s->timer, due);
        return;
    }
    session_close(s, CAUSE_IDLE_TIMEOUT);
}

#define FD_WAIT_RETRY_MS 100

/* Start the next connect attempt, or close the client when none is left. */
static void connect_next(struct session *s)
{
    struct worker *w = s->w;
    struct route_rt *rt = s->route;
    while (s->attempts < rt->conf->s.connect_attempts) {
        size_t idx = balancer_pick(&rt->bal, s->tried, w->loop.now);
        uint64_t tried = s->tried;
        s->attempts++;
        s->tried |= balancer_bit(idx);
        s->backend_idx = (int32_t)idx;
        const struct backend_conf *b = rt->bal.b[idx].conf;
        int fd = sock_connect(&b->addr);
        if ((fd == -EMFILE || fd == -ENFILE) && pipepool_close_kept(&w->pipes) > 0) {
            /* The backend socket matters more than pipes kept for reuse. */
            log_debug("route %s: out of file descriptors: closed the pipes kept for reuse",
                      rt->conf->name);
            fd = sock_connect(&b->addr);
        }
        if (fd < 0) {
            int err = -fd;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
                char what[320];
                snprintf(what, sizeof(what), "route %s: cannot open a socket to %s", rt->conf->name,
                         b->address);
                listener_out_of_fds(w, what, err);
                /* Not an attempt: the backend was never tried. The client waits for a
                 * descriptor for at most connect_timeout from its arrival, retried every
                 * FD_WAIT_RETRY_MS; this worker accepts no one while any client waits (see
                 * listener_on_backoff), so new clients do not take the descriptors first. */
                s->attempts--;
                s->tried = tried;
                uint64_t deadline = s->start_ms + rt->conf->s.connect_timeout_ms;
                if (w->loop.now >= deadline) {
                    session_close(s, CAUSE_LOCAL_ERROR);
                    return;
                }
                uint64_t at = w->loop.now + FD_WAIT_RETRY_MS;
                s->fd_wait = 1;
                w->fd_waiters++;
                loop_timer_arm(&w->loop, &s->timer, at < deadline ? at : deadline);
                return;
            }
            report_failure(s, idx, err);
            continue;
        }
        loop_io_init(&s->backend, fd, on_backend);
        s->can_read[SIDE_BACKEND] = s->can_write[SIDE_BACKEND] = s->rdhup[SIDE_BACKEND] = 0;
        loop_timer_arm(&w->loop, &s->timer, w->loop.now + rt->conf->s.connect_timeout_ms);
        if (watch(s, &s->backend) != 0)
            session_close(s, CAUSE_LOCAL_ERROR);
        return;
    }
    if (s->cause == CAUSE_NONE)
        s->cause = CAUSE_NO_BACKEND;
    log_debug("route %s: no backend reachable after %u attempts", rt->conf->name, s->attempts);
    session_close(s, (enum session_cause)s->cause);
}

void session_start(struct worker *w, struct route_rt *route, int fd,
                   const struct sockaddr_any *peer)
{
    struct session *s = calloc(1, sizeof(*s));
    if (!s) {
        log_error("route %s: out of memory accepting a client", route->conf->name);
        close(fd);
        worker_session_removed(w, NULL);
        return;
    }
    /* TCP_NODELAY is inherited from the listening socket (see sock_listen). */
    loop_io_init(&s->client, fd, on_client);
    loop_io_init(&s->backend, -1, on_backend);
    size_t bsize = route->conf->s.buffer_size;
    ring_init(&s->ring[DIR_UP], bsize);
    ring_init(&s->ring[DIR_DOWN], bsize);
    s->state = SESSION_CONNECTING;
    s->backend_idx = -1;
    loop_timer_init(&s->timer, on_timer);
    s->start_ms = w->loop.now;
    s->last_active_ms = w->loop.now;
    s->w = w;
    s->gen = w->gen;
    s->gen->refs++;
    s->route = route;
    s->peer = *peer;
    worker_session_added(w, s);
    if (watch(s, &s->client) != 0) {
        session_close(s, CAUSE_LOCAL_ERROR);
        return;
    }
    connect_next(s);
}
