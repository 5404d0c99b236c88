/*
 * sock.c - socket syscalls. Knows addresses and fds, nothing about routes or the loop.
 */
#include "sock.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* getaddrinfo() for TCP with the same hints everywhere; *why says what failed. */
static int lookup(const char *host, const char *service, struct addrinfo **res, const char **why)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_ADDRCONFIG};
    *res = NULL;
    int rc = getaddrinfo(host, service, &hints, res);
    if (rc != 0 || !*res) {
        *why = rc == EAI_NONAME || rc == EAI_NODATA ? "host name not found"
                                                    : "host name could not be resolved";
        return -1;
    }
    return 0;
}

/* The host part of an unbracketed "host:port" into host (size bytes); returns the port text, or
 * NULL if there is no colon or the host does not fit. */
static const char *split_host(const char *text, char *host, size_t size)
{
    const char *colon = strrchr(text, ':');
    if (!colon || text[0] == '[' || (size_t)(colon - text) >= size)
        return NULL;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    return colon + 1;
}

/* Whether host reads as a number to the resolver: its last dot-separated label (a trailing dot
 * aside) is all digits, or 0x and hex digits. getaddrinfo() takes such a host as a numeric IPv4
 * address in the old inet_aton() forms, where a leading 0 means octal and 0x hex and fewer than
 * four parts are allowed: "010.0.0.1" is 8.0.0.1, "0x7f.1" and "2130706433" are 127.0.0.1. No
 * top-level domain is numeric, so such a host is never a name either. */
static bool host_is_numeric(const char *host)
{
    size_t n = strlen(host);
    if (n > 1 && host[n - 1] == '.')
        n--;
    size_t start = n;
    while (start > 0 && host[start - 1] != '.')
        start--;
    const char *label = host + start;
    size_t len = n - start, i = 0;
    bool hex = len >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X');
    if (hex)
        i = 2;
    else if (len == 0)
        return false;
    for (; i < len; i++)
        if (!(hex ? isxdigit((unsigned char)label[i]) : isdigit((unsigned char)label[i])))
            return false;
    return true;
}

int sock_addr_parse(const char *text, bool passive, struct sockaddr_any *out, const char **why)
{
    char host[256];
    const char *port;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':') {
            *why = "expected \"[IPv6]:port\"";
            return -1;
        }
        size_t n = (size_t)(end - text - 1);
        if (n == 0 || n >= sizeof(host)) {
            *why = "bad IPv6 address";
            return -1;
        }
        memcpy(host, text + 1, n);
        host[n] = '\0';
        port = end + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon) {
            *why = "expected \"host:port\"";
            return -1;
        }
        if (memchr(text, ':', (size_t)(colon - text))) {
            *why = "IPv6 addresses must be written \"[addr]:port\"";
            return -1;
        }
        size_t n = (size_t)(colon - text);
        if (n >= sizeof(host)) {
            *why = "host name too long";
            return -1;
        }
        memcpy(host, text, n);
        host[n] = '\0';
        port = colon + 1;
    }
    long p = 0;
    for (const char *c = port; *c && p <= 65535; c++) {
        if (*c < '0' || *c > '9') {
            p = -1;
            break;
        }
        p = p * 10 + (*c - '0');
    }
    if (!*port || p < 1 || p > 65535) {
        *why = "port must be a number from 1 to 65535";
        return -1;
    }
    if (passive && (host[0] == '\0' || strcmp(host, "*") == 0))
        strcpy(host, "0.0.0.0");
    if (host[0] == '\0') {
        *why = "missing host";
        return -1;
    }

    memset(out, 0, sizeof(*out));
    struct in_addr a4;
    struct in6_addr a6;
    bool bracketed = text[0] == '[';
    if (!bracketed && inet_pton(AF_INET, host, &a4) == 1) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&out->u.ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)p);
        sin->sin_addr = a4;
        out->len = sizeof(*sin);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6) == 1) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->u.ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)p);
        sin6->sin6_addr = a6;
        out->len = sizeof(*sin6);
        return 0;
    }
    if (text[0] == '[') {
        *why = "bad IPv6 address";
        return -1;
    }
    if (host_is_numeric(host)) {
        *why = "not a valid IPv4 address (write four decimal numbers without leading zeros, e.g. "
               "10.0.0.1)";
        return -1;
    }
    struct addrinfo *res;
    if (lookup(host, NULL, &res, why) != 0)
        return -1;
    memcpy(&out->u.ss, res->ai_addr, res->ai_addrlen);
    out->len = res->ai_addrlen;
    if (out->u.sa.sa_family == AF_INET)
        ((struct sockaddr_in *)&out->u.ss)->sin_port = htons((uint16_t)p);
    else
        ((struct sockaddr_in6 *)&out->u.ss)->sin6_port = htons((uint16_t)p);
    freeaddrinfo(res);
    return 0;
}

bool sock_addr_is_name(const char *text)
{
    char host[256];
    if (!split_host(text, host, sizeof(host)) || host[0] == '\0')
        return false;
    struct in_addr a4;
    struct in6_addr a6;
    return inet_pton(AF_INET, host, &a4) != 1 && inet_pton(AF_INET6, host, &a6) != 1 &&
           strcmp(host, "*") != 0;
}

int sock_resolve_keep(const char *text, struct sockaddr_any *inout, const char **why)
{
    char host[256];
    const char *port = split_host(text, host, sizeof(host));
    if (!port) {
        *why = "not a host name";
        return -1;
    }
    struct addrinfo *res;
    if (lookup(host, port, &res, why) != 0)
        return -1;
    struct sockaddr_any first = {.len = res->ai_addrlen};
    memcpy(&first.u.ss, res->ai_addr, res->ai_addrlen);
    bool kept = false;
    for (struct addrinfo *ai = res; ai && !kept; ai = ai->ai_next) {
        struct sockaddr_any x = {.len = ai->ai_addrlen};
        memcpy(&x.u.ss, ai->ai_addr, ai->ai_addrlen);
        kept = sock_addr_equal(&x, inout);
    }
    freeaddrinfo(res);
    if (!kept)
        *inout = first;
    return 0;
}

char *sock_addr_format(const struct sockaddr_any *a, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN];
    if (a->u.sa.sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->u.ss;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        snprintf(buf, len, "%s:%u", host, ntohs(sin->sin_port));
    } else if (a->u.sa.sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->u.ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
        snprintf(buf, len, "[%s]:%u", host, ntohs(sin6->sin6_port));
    } else {
        snprintf(buf, len, "-");
    }
    return buf;
}

bool sock_addr_equal(const struct sockaddr_any *a, const struct sockaddr_any *b)
{
    if (a->u.sa.sa_family != b->u.sa.sa_family)
        return false;
    if (a->u.sa.sa_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&a->u.ss;
        const struct sockaddr_in *y = (const struct sockaddr_in *)&b->u.ss;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->u.sa.sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->u.ss;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b->u.ss;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0 &&
               x->sin6_scope_id == y->sin6_scope_id;
    }
    return false;
}

struct sockaddr_any sock_addr_unmapped(const struct sockaddr_any *a)
{
    const struct sockaddr_in6 *s6 = (const void *)&a->u.ss;
    if (a->u.sa.sa_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr))
        return *a;
    struct sockaddr_any v4 = {.len = sizeof(struct sockaddr_in)};
    struct sockaddr_in *s4 = (struct sockaddr_in *)&v4.u.ss;
    s4->sin_family = AF_INET;
    s4->sin_port = s6->sin6_port;
    memcpy(&s4->sin_addr, &s6->sin6_addr.s6_addr[12], sizeof(s4->sin_addr));
    return v4;
}

uint16_t sock_addr_port(const struct sockaddr_any *a)
{
    if (a->u.sa.sa_family == AF_INET)
        return ((const struct sockaddr_in *)&a->u.ss)->sin_port;
    return ((const struct sockaddr_in6 *)&a->u.ss)->sin6_port;
}

bool sock_addr_is_any(const struct sockaddr_any *a)
{
    if (a->u.sa.sa_family == AF_INET)
        return ((const struct sockaddr_in *)&a->u.ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return a->u.sa.sa_family == AF_INET6 &&
           IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&a->u.ss)->sin6_addr);
}

bool sock_addr_is_loopback(const struct sockaddr_any *a)
{
    if (a->u.sa.sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)&a->u.ss)->sin_addr.s_addr) >> 24) == 127;
    return a->u.sa.sa_family == AF_INET6 &&
           IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)&a->u.ss)->sin6_addr);
}

bool sock_addr_overlaps(const struct sockaddr_any *a, const struct sockaddr_any *b)
{
    return a->u.sa.sa_family == b->u.sa.sa_family &&
           (a->u.sa.sa_family == AF_INET || a->u.sa.sa_family == AF_INET6) &&
           sock_addr_port(a) == sock_addr_port(b) && (sock_addr_is_any(a) || sock_addr_is_any(b));
}

int sock_listen(const struct sockaddr_any *a, int backlog, bool reuseport)
{
    int fd = socket(a->u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd == -1)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1)
        goto fail;
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1)
        goto fail;
    /* A [::] listener serves IPv6 only, so "0.0.0.0:p" and "[::]:p" can both be configured. */
    if (a->u.sa.sa_family == AF_INET6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) == -1)
        goto fail;
    /* Accepted sockets inherit TCP_NODELAY from the listener: one setsockopt here instead of
     * one per client. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
        goto fail;
    if (bind(fd, &a->u.sa, a->len) == -1)
        goto fail;
    if (listen(fd, backlog) == -1)
        goto fail;
    return fd;
fail:;
    int err = errno;
    close(fd);
    return -err;
}

int sock_accept(int lfd, struct sockaddr_any *peer)
{
    struct sockaddr_any tmp;
    struct sockaddr_any *p = peer ? peer : &tmp;
    p->len = sizeof(p->u.ss);
    int fd = accept4(lfd, &p->u.sa, &p->len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return fd == -1 ? -errno : fd;
}

int sock_connect(const struct sockaddr_any *a)
{
    int fd = socket(a->u.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd == -1)
        return -errno;
    sock_set_nodelay(fd);
    /* In this mode the kernel answers the SYN-ACK with a delayed ACK instead of one at once. */
    int zero = 0;
    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &zero, sizeof(zero));
    if (connect(fd, &a->u.sa, a->len) == -1 && errno != EINPROGRESS) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

void sock_push_ack(int fd)
{
    /* Quick-ack mode on again: an ACK that is due goes out from within this call. */
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

int sock_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        return errno;
    return err;
}

int sock_set_nodelay(int fd)
{
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1 ? -errno : 0;
}

void sock_close_reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}
