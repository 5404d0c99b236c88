/*
 * Loopback socket helpers for the end-to-end tests. Every operation takes a timeout (poll with a
 * deadline; sockets also carry SO_RCVTIMEO/SO_SNDTIMEO as a backstop) so no test can hang on the
 * network. Only 127.0.0.1 and ::1 are used. Sockets returned here are registered with the test
 * registry (registry.h) and closed by the teardown if the test does not close them itself.
 * Functions return -errno on failure and never assert, so tests can assert on the exact error.
 */
#ifndef FERRY_TEST_NET_H
#define FERRY_TEST_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Default per-operation timeout of the helpers that do not take one. */
#define NET_TIMEOUT_MS 5000

/* Milliseconds on the monotonic clock. */
int64_t now_ms(void);
/* Sleeps for ms milliseconds (only where the test is about time passing). */
void sleep_ms(int ms);

/* Loopback address of a family: "127.0.0.1" or "::1". */
const char *loopback_host(int family);
/* True when a socket can be bound to ::1 (IPv6 loopback available). */
bool ipv6_loopback_available(void);

/*
 * A free TCP port on the loopback of family (AF_INET or AF_INET6), below the kernel's ephemeral
 * range (so no outgoing connection takes it before ferry binds it): a random one that binds,
 * closed again. For addresses that ferry itself must bind. Asserts on failure.
 */
int free_port(int family);

/*
 * A listening socket on loopback:0 with the given backlog. rcvbuf > 0 sets SO_RCVBUF before listen
 * (inherited by accepted sockets). Stores the port in *port. Returns the fd (tracked) or -errno.
 */
int listen_loopback(int family, int backlog, int rcvbuf, int *port);

/*
 * A socket bound to loopback:0 but not listening: connections to its port are refused, and no other
 * socket can take the port while it lives. Returns the fd (tracked), stores the port.
 */
int refusing_port(int family, int *port);

/*
 * Connects to loopback:port within timeout_ms. Returns a blocking fd (tracked) with TCP_NODELAY and
 * SO_RCVTIMEO/SO_SNDTIMEO set, or -errno (-ETIMEDOUT, -ECONNREFUSED, ...).
 */
int tcp_connect(int family, int port, int timeout_ms);
/* tcp_connect(AF_INET, port, NET_TIMEOUT_MS), asserting success. */
int connect_ok(int port);

/* Accepts one connection within timeout_ms. Returns the fd (tracked) or -errno. */
int accept_timeout(int lfd, int timeout_ms);

/* Sends all n bytes within timeout_ms (no progress for timeout_ms). Returns 0 or -errno. */
int send_all(int fd, const void *buf, size_t n, int timeout_ms);
/* send_all of a NUL-terminated string, asserting success. */
void send_str(int fd, const char *s);

/*
 * Receives exactly n bytes, each step within timeout_ms. Returns n, or the count received before
 * EOF when the peer closed early, or -errno (-ETIMEDOUT when nothing arrived in time).
 */
ssize_t recv_exact(int fd, void *buf, size_t n, int timeout_ms);
/* Receives strlen(expect) bytes and asserts they equal expect. */
void recv_expect(int fd, const char *expect);

/* One recv within timeout_ms: >0 bytes, 0 on EOF, -errno (-ETIMEDOUT, -ECONNRESET, ...). */
ssize_t recv_some(int fd, void *buf, size_t n, int timeout_ms);

/*
 * Waits until the peer closed: reads and discards data until EOF or an error, within timeout_ms in
 * total. Returns 0 on EOF, -ECONNRESET (or another -errno) on error, -ETIMEDOUT when still open.
 * *discarded (optional) receives the number of data bytes read meanwhile.
 */
int wait_closed(int fd, int timeout_ms, size_t *discarded);

/*
 * True when nothing at all (no byte, no EOF, no error) arrives on fd for quiet_ms: used to check
 * that something does NOT happen, so it always takes quiet_ms.
 */
bool stays_quiet(int fd, int quiet_ms);

/* Closes a tracked fd and forgets it. Accepts -1. */
void close_fd(int fd);
/* Closes with SO_LINGER {1, 0}: the peer gets a RST instead of a FIN. */
void reset_fd(int fd);
/* shutdown(fd, SHUT_WR), asserting success. */
void shut_wr(int fd);

/* Local / peer address as ferry prints it: "127.0.0.1:5555" or "[::1]:5555". Returns 0 or -errno.
 */
int local_addr_str(int fd, char *buf, size_t size);
/* Local port of a socket. */
int local_port(int fd);
/* "127.0.0.1:PORT" or "[::1]:PORT" into buf. */
void addr_str(int family, int port, char *buf, size_t size);

/* From TCP_INFO: segments fd has received so far (any kind: data, ACK, FIN), those of them that
 * carried data, and how many it sent that are not yet acknowledged. */
struct tcp_counts {
    uint32_t segs_in, data_segs_in, unacked;
};
/* Returns 0, -ENOTSUP on a kernel without these counters (before 4.6), or -errno. */
int tcp_stats(int fd, struct tcp_counts *out);

/* Raises this process's RLIMIT_NOFILE soft limit to the hard limit; returns the new soft limit. */
long raise_nofile_limit(void);

#endif
