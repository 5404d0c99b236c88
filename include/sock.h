/*
 * sock.h - thin wrappers over socket syscalls: listen, accept, non-blocking connect, options,
 * address parsing and formatting (the role of redis's anet.c). No policy, no logging: every
 * function returns a value or -errno and leaves the decision to the caller.
 */
#ifndef FERRY_SOCK_H
#define FERRY_SOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* A resolved socket address with its length. */
struct sockaddr_any {
    union {
        struct sockaddr sa;
        struct sockaddr_storage ss;
    } u;
    socklen_t len;
};

/* Longest formatted address: "[" v6 "]:" port. */
#define SOCK_ADDRSTRLEN 64

/* Parse "host:port" or "[v6]:port"; host may be a name (resolved now, first result). passive
 * selects listen semantics ("*" or empty host = all IPv4 addresses). IPv4 is four decimal numbers
 * without leading zeros: a host that ends in a number never goes to the resolver, which reads
 * "010.0.0.1" as octal. Returns 0, or -1 with *why set to a static message. */
int sock_addr_parse(const char *text, bool passive, struct sockaddr_any *out, const char **why);
/* Whether the host part of "host:port" is a name to resolve (not an IP literal or "*"). */
bool sock_addr_is_name(const char *text);
/* Look the host name of "host:port" up again: *inout is kept if it is among the answers, else
 * replaced by the first. Returns 0, or -1 with *why set (then *inout is untouched). */
int sock_resolve_keep(const char *text, struct sockaddr_any *inout, const char **why);
/* "1.2.3.4:80" or "[::1]:80" into buf (at least SOCK_ADDRSTRLEN bytes); returns buf. */
char *sock_addr_format(const struct sockaddr_any *a, char *buf, size_t len);
bool sock_addr_equal(const struct sockaddr_any *a, const struct sockaddr_any *b);
/* Whether listening on a keeps bind() on b from succeeding (a and b not equal): the same family
 * and port, one of them the wildcard address, which takes the port on every address of its family
 * (for sockets without SO_REUSEPORT; IPv6 listeners are v6-only, so 0.0.0.0 and [::] do not). */
/* a, with an IPv4-mapped IPv6 address ([::ffff:a.b.c.d]) turned into the IPv4 address it stands
 * for: an IPv6 socket that connects to one reaches that IPv4 address. */
struct sockaddr_any sock_addr_unmapped(const struct sockaddr_any *a);
/* The port of an IPv4 or IPv6 address, in network byte order. */
uint16_t sock_addr_port(const struct sockaddr_any *a);
/* 0.0.0.0 or [::]: every address of the host, which a listening socket takes and a connect
 * cannot name. */
bool sock_addr_is_any(const struct sockaddr_any *a);
/* 127.0.0.0/8 or [::1]. */
bool sock_addr_is_loopback(const struct sockaddr_any *a);
bool sock_addr_overlaps(const struct sockaddr_any *a, const struct sockaddr_any *b);

/* Non-blocking, close-on-exec listening socket with SO_REUSEADDR (and SO_REUSEPORT if asked) and
 * TCP_NODELAY, which accepted sockets inherit. Returns the fd or -errno. */
int sock_listen(const struct sockaddr_any *a, int backlog, bool reuseport);
/* accept4 non-blocking + close-on-exec; peer address into *peer if not NULL. Returns fd or -errno.
 */
int sock_accept(int lfd, struct sockaddr_any *peer);
/*
 * Start a non-blocking connect; returns the fd (connect in progress or done) or -errno. The
 * handshake's last ACK is held back (TCP_QUICKACK off before connect) so that it can ride on the
 * first bytes written: once the connection completes, write or call sock_push_ack() at once, as
 * otherwise the kernel sends it only after 200 ms and the server sees no connection until then.
 */
int sock_connect(const struct sockaddr_any *a);
/* Send an ACK the kernel holds back (sock_connect) now. */
void sock_push_ack(int fd);
/* Pending error of a socket (SO_ERROR): 0 or a positive errno. */
int sock_error(int fd);
int sock_set_nodelay(int fd);
/* Close so that the peer gets a RST instead of a FIN (SO_LINGER with a zero timeout). */
void sock_close_reset(int fd);

#endif
