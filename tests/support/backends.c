/*
 * The epoll backend server (see backends.h). One thread per server; per connection one 64 KiB
 * buffer. Reading stops while the buffer has unsent bytes, so a client that does not read gets
 * backpressure instead of unbounded buffering, like a well-behaved service.
 */
#include "backends.h"
#include "net.h"
#include "registry.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONN_BUF 65536

struct conn {
    struct conn *prev, *next; /* the backend's list of open connections */
    int fd;
    size_t len; /* bytes in buf waiting to be sent */
    size_t off; /* bytes of buf already sent */
    bool eof;   /* peer sent FIN */
    char buf[CONN_BUF];
};

struct backend {
    enum backend_mode mode;
    int family;
    int port;
    int lfd;
    int epfd;
    int wake[2]; /* pipe: a byte in wake[0] stops the thread */
    pthread_t thread;
    int cleanup;
    struct conn *conns; /* open connections, owned by the thread (then by the cleanup) */
    atomic_int accepted;
    atomic_int active;
    char greeting[64];
};

static void conn_close(struct backend *b, struct conn *c)
{
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        b->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    epoll_ctl(b->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
    atomic_fetch_sub(&b->active, 1);
}

static void conn_arm(struct backend *b, struct conn *c)
{
    struct epoll_event ev = {.events = c->len > c->off ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    epoll_ctl(b->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Flushes pending bytes; returns -1 when the connection must close. */
static int conn_flush(struct conn *c)
{
    while (c->off < c->len) {
        ssize_t w = send(c->fd, c->buf + c->off, c->len - c->off, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            c->off += (size_t)w;
        } else if (w == -1 && errno == EAGAIN) {
            return 0;
        } else if (w == -1 && errno != EINTR) {
            return -1;
        }
    }
    c->len = c->off = 0;
    return 0;
}

static void conn_event(struct backend *b, struct conn *c)
{
    if (conn_flush(c) == -1) {
        conn_close(b, c);
        return;
    }
    while (c->len == 0 && !c->eof) {
        ssize_t r = recv(c->fd, c->buf, sizeof c->buf, MSG_DONTWAIT);
        if (r > 0) {
            c->len = (size_t)r;
            c->off = 0;
            if (conn_flush(c) == -1) {
                conn_close(b, c);
                return;
            }
        } else if (r == 0) {
            c->eof = true;
        } else if (errno == EAGAIN) {
            break;
        } else if (errno != EINTR) {
            conn_close(b, c);
            return;
        }
    }
    if (c->eof && c->len == 0) {
        conn_close(b, c);
        return;
    }
    conn_arm(b, c);
}

static void accept_all(struct backend *b)
{
    for (;;) {
        int fd = accept4(b->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd == -1) {
            return;
        }
        struct conn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            return;
        }
        c->fd = fd;
        c->next = b->conns;
        if (b->conns != NULL) {
            b->conns->prev = c;
        }
        b->conns = c;
        atomic_fetch_add(&b->accepted, 1);
        atomic_fetch_add(&b->active, 1);
        if (b->mode == BACKEND_GREET) {
            c->len = strlen(b->greeting);
            memcpy(c->buf, b->greeting, c->len);
        }
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(b->epfd, EPOLL_CTL_ADD, fd, &ev);
        conn_event(b, c);
    }
}

static void *backend_main(void *arg)
{
    struct backend *b = arg;
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(b->epfd, evs, 64, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == &b->lfd) {
                accept_all(b);
            } else if (evs[i].data.ptr == &b->wake) {
                return NULL;
            } else {
                conn_event(b, evs[i].data.ptr);
            }
        }
    }
}

static void backend_cleanup(void *arg)
{
    struct backend *b = arg;
    char x = 1;
    if (write(b->wake[1], &x, 1) != 1) {
        abort();
    }
    pthread_join(b->thread, NULL);
    while (b->conns != NULL) {
        conn_close(b, b->conns);
    }
    close(b->epfd);
    close(b->lfd);
    close(b->wake[0]);
    close(b->wake[1]);
    free(b);
}

struct backend *backend_start(int family, enum backend_mode mode)
{
    struct backend *b = calloc(1, sizeof *b);
    assert_non_null(b);
    b->mode = mode;
    b->family = family;
    int lfd = listen_loopback(family, 1024, 0, &b->port);
    if (lfd < 0) {
        fail_msg("backend listen failed: %s", strerror(-lfd));
    }
    /* The backend owns its listener from now on, not the test registry. */
    registry_untrack_fd(lfd);
    b->lfd = lfd;
    snprintf(b->greeting, sizeof b->greeting, "hello from backend %d\n", b->port);
    assert_int_equal(pipe2(b->wake, O_CLOEXEC), 0);
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    assert_true(b->epfd >= 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &b->lfd};
    assert_int_equal(epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->lfd, &ev), 0);
    ev.data.ptr = &b->wake;
    assert_int_equal(epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->wake[0], &ev), 0);
    assert_int_equal(pthread_create(&b->thread, NULL, backend_main, b), 0);
    b->cleanup = registry_defer(backend_cleanup, b);
    return b;
}

int backend_port(const struct backend *b)
{
    return b->port;
}

int backend_accepted(struct backend *b)
{
    return atomic_load(&b->accepted);
}

int backend_active(struct backend *b)
{
    return atomic_load(&b->active);
}

bool backend_wait_active(struct backend *b, int n, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (backend_active(b) != n) {
        if (now_ms() > deadline) {
            return false;
        }
        sleep_ms(2);
    }
    return true;
}

bool backend_wait_accepted(struct backend *b, int n, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (backend_accepted(b) < n) {
        if (now_ms() > deadline) {
            return false;
        }
        sleep_ms(2);
    }
    return true;
}

const char *backend_greeting(const struct backend *b)
{
    return b->greeting;
}

void backend_stop(struct backend *b)
{
    registry_cancel(b->cleanup);
    backend_cleanup(b);
}

int black_hole_port(void)
{
    int port;
    int lfd = listen_loopback(AF_INET, 0, 0, &port);
    if (lfd < 0) {
        fail_msg("black hole listen failed: %s", strerror(-lfd));
    }
    /* With backlog 0 the accept queue holds one connection: this one. */
    int filler = tcp_connect(AF_INET, port, 1000);
    if (filler < 0) {
        fail_msg("black hole: the filler connection failed: %s", strerror(-filler));
    }
    int probe = tcp_connect(AF_INET, port, 100);
    if (probe >= 0) {
        fail_msg("black hole: a probe connect to 127.0.0.1:%d completed; the kernel does not drop "
                 "SYNs on a full accept queue here",
                 port);
    }
    if (probe != -ETIMEDOUT) {
        fail_msg("black hole: probe connect failed with %s instead of hanging", strerror(-probe));
    }
    return port;
}
