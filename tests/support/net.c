/*
 * Loopback socket helpers with deadlines (see net.h). Blocking sockets are driven with poll() and
 * MSG_DONTWAIT so every call is bounded by its own timeout, independent of SO_RCVTIMEO.
 */
#include "net.h"
#include "registry.h"

#include <stdarg.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

const char *loopback_host(int family)
{
    return family == AF_INET6 ? "::1" : "127.0.0.1";
}

static socklen_t loopback_sockaddr(int family, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_addr = in6addr_loopback;
        return sizeof *a;
    }
    struct sockaddr_in *a = (struct sockaddr_in *)ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)port);
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sizeof *a;
}

static int sockaddr_port(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
    }
    return ntohs(((const struct sockaddr_in *)ss)->sin_port);
}

static void set_timeouts(int fd, int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* Binds a new socket to loopback:0; returns the fd or -errno. */
static int bound_socket(int family, int rcvbuf, int want, int *port)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        return -errno;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    }
    if (rcvbuf > 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    }
    struct sockaddr_storage ss;
    socklen_t len = loopback_sockaddr(family, want, &ss);
    if (bind(fd, (struct sockaddr *)&ss, len) == -1 ||
        getsockname(fd, (struct sockaddr *)&ss, &len) == -1) {
        int err = errno;
        close(fd);
        return -err;
    }
    *port = sockaddr_port(&ss);
    return fd;
}

bool ipv6_loopback_available(void)
{
    int port;
    int fd = bound_socket(AF_INET6, 0, 0, &port);
    if (fd < 0) {
        return false;
    }
    close(fd);
    return true;
}

/* The first port of the range the kernel picks local ports of outgoing connections from. */
static int ephemeral_low(void)
{
    int lo = 32768, hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
    if (f) {
        if (fscanf(f, "%d %d", &lo, &hi) != 2)
            lo = 32768;
        fclose(f);
    }
    return lo;
}

/*
 * A port below the ephemeral range, free when probed: a port the kernel hands out for port 0
 * can be taken as the local port of any outgoing connection (another test's clients, ferry's
 * connects to backends) before ferry binds it, which fails its listen with EADDRINUSE.
 * Random, so concurrent test processes rarely probe the same one.
 */
int free_port(int family)
{
    static unsigned seed;
    if (seed == 0)
        seed = (unsigned)getpid() * 2654435761u ^ (unsigned)now_ms();
    int lo = ephemeral_low();
    for (int i = 0; lo > 11000 && i < 200; i++) {
        int port = 0;
        int want = 10000 + (int)(rand_r(&seed) % (unsigned)(lo - 10000));
        int fd = bound_socket(family, 0, want, &port);
        if (fd >= 0) {
            close(fd);
            return port;
        }
    }
    int port = 0;
    int fd = bound_socket(family, 0, 0, &port);
    if (fd < 0) {
        fail_msg("free_port: cannot bind %s:0: %s", loopback_host(family), strerror(-fd));
    }
    close(fd);
    return port;
}

int listen_loopback(int family, int backlog, int rcvbuf, int *port)
{
    int fd = bound_socket(family, rcvbuf, 0, port);
    if (fd < 0) {
        return fd;
    }
    /* Non-blocking, so accept_timeout() and the backends never block in accept(). */
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1 || listen(fd, backlog) == -1) {
        int err = errno;
        close(fd);
        return -err;
    }
    return registry_track_fd(fd);
}

int refusing_port(int family, int *port)
{
    int fd = bound_socket(family, 0, 0, port);
    return fd < 0 ? fd : registry_track_fd(fd);
}

/* Waits for events on fd until deadline (ms, monotonic). Returns revents, 0 on timeout. */
static int poll_until(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - now_ms();
        if (left < 0) {
            left = 0;
        }
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)left);
        if (n > 0) {
            return p.revents;
        }
        if (n == 0) {
            return 0;
        }
        if (errno != EINTR) {
            return POLLERR;
        }
    }
}

int tcp_connect(int family, int port, int timeout_ms)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd == -1) {
        return -errno;
    }
    struct sockaddr_storage ss;
    socklen_t len = loopback_sockaddr(family, port, &ss);
    int err = 0;
    if (connect(fd, (struct sockaddr *)&ss, len) == -1) {
        if (errno != EINPROGRESS) {
            err = errno;
        } else if (poll_until(fd, POLLOUT, now_ms() + timeout_ms) == 0) {
            err = ETIMEDOUT;
        } else {
            socklen_t elen = sizeof err;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == -1) {
                err = errno;
            }
        }
    }
    if (err != 0) {
        close(fd);
        return -err;
    }
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    set_timeouts(fd, NET_TIMEOUT_MS);
    return registry_track_fd(fd);
}

int connect_ok(int port)
{
    int fd = tcp_connect(AF_INET, port, NET_TIMEOUT_MS);
    if (fd < 0) {
        fail_msg("connect to 127.0.0.1:%d failed: %s", port, strerror(-fd));
    }
    return fd;
}

int accept_timeout(int lfd, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            int flags = fcntl(fd, F_GETFL);
            fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            set_timeouts(fd, NET_TIMEOUT_MS);
            return registry_track_fd(fd);
        }
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
            return -errno;
        }
        if (poll_until(lfd, POLLIN, deadline) == 0) {
            return -ETIMEDOUT;
        }
    }
}

int send_all(int fd, const void *buf, size_t n, int timeout_ms)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w == -1 && errno != EAGAIN && errno != EINTR) {
            return -errno;
        }
        if (poll_until(fd, POLLOUT, now_ms() + timeout_ms) == 0) {
            return -ETIMEDOUT;
        }
    }
    return 0;
}

void send_str(int fd, const char *s)
{
    int rc = send_all(fd, s, strlen(s), NET_TIMEOUT_MS);
    if (rc != 0) {
        fail_msg("send of \"%s\" failed: %s", s, strerror(-rc));
    }
}

ssize_t recv_some(int fd, void *buf, size_t n, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        ssize_t r = recv(fd, buf, n, MSG_DONTWAIT);
        if (r >= 0) {
            return r;
        }
        if (errno != EAGAIN && errno != EINTR) {
            return -errno;
        }
        if (poll_until(fd, POLLIN, deadline) == 0) {
            return -ETIMEDOUT;
        }
    }
}

ssize_t recv_exact(int fd, void *buf, size_t n, int timeout_ms)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv_some(fd, (char *)buf + got, n - got, timeout_ms);
        if (r < 0) {
            return r;
        }
        if (r == 0) {
            break;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

void recv_expect(int fd, const char *expect)
{
    size_t n = strlen(expect);
    char buf[4096];
    assert_true(n < sizeof buf);
    ssize_t r = recv_exact(fd, buf, n, NET_TIMEOUT_MS);
    if (r < 0) {
        fail_msg("expected \"%s\", recv failed: %s", expect, strerror((int)-r));
        return;
    }
    buf[r] = '\0';
    if ((size_t)r != n || memcmp(buf, expect, n) != 0) {
        fail_msg("expected \"%s\" (%zu bytes), got \"%s\" (%zd bytes)", expect, n, buf, r);
    }
}

int wait_closed(int fd, int timeout_ms, size_t *discarded)
{
    int64_t deadline = now_ms() + timeout_ms;
    size_t total = 0;
    char buf[65536];
    int rc;
    for (;;) {
        int64_t left = deadline - now_ms();
        ssize_t r = recv_some(fd, buf, sizeof buf, left > 0 ? (int)left : 0);
        if (r > 0) {
            total += (size_t)r;
            if (now_ms() < deadline) {
                continue;
            }
            rc = -ETIMEDOUT; /* a peer that keeps sending never closes in time */
            break;
        }
        rc = r == 0 ? 0 : (int)r;
        break;
    }
    if (discarded != NULL) {
        *discarded = total;
    }
    return rc;
}

bool stays_quiet(int fd, int quiet_ms)
{
    return poll_until(fd, POLLIN, now_ms() + quiet_ms) == 0;
}

void close_fd(int fd)
{
    if (fd >= 0) {
        registry_untrack_fd(fd);
        close(fd);
    }
}

void reset_fd(int fd)
{
    struct linger l = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l), 0);
    close_fd(fd);
}

void shut_wr(int fd)
{
    assert_int_equal(shutdown(fd, SHUT_WR), 0);
}

int local_addr_str(int fd, char *buf, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1) {
        return -errno;
    }
    addr_str(ss.ss_family, sockaddr_port(&ss), buf, size);
    return 0;
}

int local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    return sockaddr_port(&ss);
}

void addr_str(int family, int port, char *buf, size_t size)
{
    if (family == AF_INET6) {
        snprintf(buf, size, "[::1]:%d", port);
    } else {
        snprintf(buf, size, "127.0.0.1:%d", port);
    }
}

long raise_nofile_limit(void)
{
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        assert_int_equal(setrlimit(RLIMIT_NOFILE, &rl), 0);
    }
    return rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur;
}
