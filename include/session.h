/*
 * session.h - one client/backend pair: two sockets, two rings, one state, one timer.
 *
 * The session is the only place a pair's fds are closed. The loop and the timer heap hold
 * borrowed pointers into it; session_close() unregisters and closes everything at once and the
 * memory is freed after the current event batch, so a stale ready event finds fd == -1.
 *
 *   state machine (set_state() in session.c asserts every transition):
 *
 *       accept
 *         |
 *         v
 *     CONNECTING --+  attempt failed or timed out, attempts left:
 *      |   |   ^   |  next backend (no state change)
 *      |   |   +---+
 *      |   +-- every attempt failed, client reset --------> CLOSED
 *      |                                                       ^
 *      +-- connected --> RELAYING -- both FINs forwarded, -----+
 *                                    reset, error, idle timeout, shutdown
 *
 *   per direction (client->backend "up", backend->client "down"), two flags:
 *     eof   the source returned 0 from read: shutdown wanted toward the destination
 *     shut  shutdown(SHUT_WR) done on the destination, only once the ring toward it is empty
 *   RELAYING ends cleanly when both directions are shut.
 */
#ifndef FERRY_SESSION_H
#define FERRY_SESSION_H

#include <stdint.h>

#include "loop.h"
#include "pipepool.h"
#include "ring.h"
#include "sock.h"

struct worker;
struct wgen;
struct route_rt;

enum session_state { SESSION_CONNECTING, SESSION_RELAYING, SESSION_CLOSED };

/* Why a session ended; printed in the access log. */
enum session_cause {
    CAUSE_NONE,
    CAUSE_CLIENT_FIN,
    CAUSE_BACKEND_FIN,
    CAUSE_CLIENT_RESET,
    CAUSE_BACKEND_RESET,
    CAUSE_IDLE_TIMEOUT,
    CAUSE_CONNECT_TIMEOUT,
    CAUSE_CONNECT_REFUSED,
    CAUSE_CONNECT_ERROR,
    CAUSE_NO_BACKEND,
    CAUSE_LOCAL_ERROR,
    CAUSE_SHUTDOWN,
};

/* up: client -> backend, down: backend -> client. Sides are numbered like the direction they
 * read for: the client is side 0 (source of DIR_UP), the backend side 1. */
enum { DIR_UP = 0, DIR_DOWN = 1 };
enum { SIDE_CLIENT = 0, SIDE_BACKEND = 1 };

struct session {
    struct io client;
    struct io backend;
    struct ring ring[2];     /* indexed by direction */
    struct spipe *pipe[2];   /* splice routes, per direction, while bytes are in flight */
    uint64_t bytes[2];       /* delivered to the destination, per direction */
    uint8_t state;           /* enum session_state */
    uint8_t cause;           /* enum session_cause, set once */
    uint8_t eof[2];          /* per direction: source returned 0 */
    uint8_t shut[2];         /* per direction: FIN sent to the destination */
    uint8_t can_read[2];     /* per side (client 0, backend 1): not known to be drained */
    uint8_t can_write[2];    /* per side: not known to be full */
    uint8_t rdhup[2];        /* per side: the peer's FIN was signalled (read until 0) */
    uint8_t urg[2];          /* per side: urgent data was signalled (EPOLLPRI) */
    uint8_t streams[2];      /* per direction: the last read filled what it was offered */
    uint8_t grew[2];         /* per direction: its ring has grown once (logged) */
    uint8_t pipe_flags[2];   /* per direction: PIPE_* in session.c */
    uint8_t attempts;        /* backend connects started */
    uint8_t fd_wait;         /* no descriptor for the backend socket: the timer retries */
    int32_t backend_idx;     /* in route->bal, -1 before the first attempt */
    uint64_t tried;          /* balancer_bit() of every backend attempted */
    struct loop_timer timer; /* connect timeout, then idle timeout (lazily re-armed) */
    uint64_t start_ms;
    uint64_t last_active_ms;
    struct worker *w;
    struct wgen *gen;       /* reference held */
    struct route_rt *route; /* in gen */
    struct session *prev, *next;
    struct loop_defer defer; /* deferred free */
    struct sockaddr_any peer;
};

/* Take over an accepted client fd and start connecting to a backend of route. On failure the fd is
 * closed and the access log says why. */
void session_start(struct worker *w, struct route_rt *route, int fd,
                   const struct sockaddr_any *peer);
/* Close now (idempotent). A side is reset instead of closed with a FIN if the stream toward it
 * was cut short; see session.c. */
void session_close(struct session *s, enum session_cause cause);
const char *session_cause_name(enum session_cause cause);

#endif
