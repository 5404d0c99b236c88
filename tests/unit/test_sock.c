/*
 * test_sock.c - the specification of the socket layer (sock.h), over real loopback sockets.
 *
 * Addresses: "host:port" and "[v6]:port" parse to a resolved address (IPv6 without brackets is
 * refused, because its colons make the port ambiguous); a listen address may leave the host out
 * or write "*" for all IPv4 addresses; ports are 1..65535 in decimal; host names are resolved.
 * Formatting prints the canonical form, which parses back to an equal address. Sockets: a listener
 * on 127.0.0.1 port 0 accepts a non-blocking connect; every fd is non-blocking and close-on-exec;
 * a refused connect shows up as ECONNREFUSED through sock_error; sock_close_reset makes the peer
 * see ECONNRESET instead of an orderly end. Every wait is a poll() with a deadline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sock.h"

#define WAIT_MS 2000

static struct sockaddr_any parse_ok(const char *text, bool passive)
{
    struct sockaddr_any a;
    const char *why = NULL;
    memset(&a, 0xee, sizeof(a));
    if (sock_addr_parse(text, passive, &a, &why) != 0)
        fail_msg("'%s' rejected: %s", text, why ? why : "(no reason)");
    return a;
}

static void parse_bad(const char *text, bool passive, const char *reason)
{
    struct sockaddr_any a;
    const char *why = NULL;
    if (sock_addr_parse(text, passive, &a, &why) != -1) {
        char buf[SOCK_ADDRSTRLEN];
        fail_msg("'%s' accepted as %s", text, sock_addr_format(&a, buf, sizeof(buf)));
    }
    assert_non_null(why);
    if (!strstr(why, reason))
        fail_msg("'%s': reason '%s' does not mention '%s'", text, why, reason);
}

static void assert_v4(const struct sockaddr_any *a, const char *host, int port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->u.ss;
    struct in_addr want;
    assert_int_equal(inet_pton(AF_INET, host, &want), 1);
    assert_int_equal(sin->sin_family, AF_INET);
    assert_int_equal(sin->sin_addr.s_addr, want.s_addr);
    assert_int_equal(ntohs(sin->sin_port), port);
    assert_int_equal(a->len, sizeof(struct sockaddr_in));
}

static void assert_v6(const struct sockaddr_any *a, const char *host, int port)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->u.ss;
    struct in6_addr want;
    assert_int_equal(inet_pton(AF_INET6, host, &want), 1);
    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_memory_equal(&sin6->sin6_addr, &want, sizeof(want));
    assert_int_equal(ntohs(sin6->sin6_port), port);
    assert_int_equal(a->len, sizeof(struct sockaddr_in6));
}

/* poll() one fd for `events` within WAIT_MS; returns revents (0 on timeout). */
static short wait_for(int fd, short events)
{
    struct pollfd p = {.fd = fd, .events = events};
    int n = poll(&p, 1, WAIT_MS);
    assert_true(n >= 0);
    return n ? p.revents : 0;
}

static int local_port(int fd)
{
    struct sockaddr_any a;
    a.len = sizeof(a.u.ss);
    assert_int_equal(getsockname(fd, &a.u.sa, &a.len), 0);
    return a.u.sa.sa_family == AF_INET ? ntohs(((struct sockaddr_in *)&a.u.ss)->sin_port)
                                       : ntohs(((struct sockaddr_in6 *)&a.u.ss)->sin6_port);
}

static void set_port(struct sockaddr_any *a, int port)
{
    if (a->u.sa.sa_family == AF_INET)
        ((struct sockaddr_in *)&a->u.ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&a->u.ss)->sin6_port = htons((uint16_t)port);
}

/* host:0 for binding an ephemeral port: parsing refuses port 0 (as configuration must), so the
 * address is parsed with port 1 and the port cleared. */
static struct sockaddr_any any_port(const char *host_port1)
{
    struct sockaddr_any a = parse_ok(host_port1, true);
    set_port(&a, 0);
    return a;
}

static void assert_nonblock_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    int fdfl = fcntl(fd, F_GETFD);
    assert_true(fl != -1 && (fl & O_NONBLOCK));
    assert_true(fdfl != -1 && (fdfl & FD_CLOEXEC));
}

static int getopt_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);
    assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

/* ---- parsing ----------------------------------------------------------------------------------
 */

static void test_parse_ipv4(void **state)
{
    (void)state;
    struct sockaddr_any a = parse_ok("127.0.0.1:8080", false);
    assert_v4(&a, "127.0.0.1", 8080);
    a = parse_ok("10.1.2.3:1", true);
    assert_v4(&a, "10.1.2.3", 1);
    a = parse_ok("0.0.0.0:65535", true);
    assert_v4(&a, "0.0.0.0", 65535);
    /* Only four decimal numbers: the resolver would read the old forms, "010.0.0.1" as 8.0.0.1. */
    static const char *const old_forms[] = {"010.0.0.1:80",  "127.0.0.010:80", "0x7f.1:80",
                                            "2130706433:80", "127.1:80",       "127.0.0.1.:80"};
    for (size_t i = 0; i < sizeof(old_forms) / sizeof(old_forms[0]); i++) {
        parse_bad(old_forms[i], false, "not a valid IPv4 address");
        parse_bad(old_forms[i], true, "not a valid IPv4 address");
    }
}

static void test_parse_ipv6_in_brackets(void **state)
{
    (void)state;
    struct sockaddr_any a = parse_ok("[::1]:443", false);
    assert_v6(&a, "::1", 443);
    a = parse_ok("[2001:db8::1]:8080", false);
    assert_v6(&a, "2001:db8::1", 8080);
    a = parse_ok("[::]:80", true);
    assert_v6(&a, "::", 80);
    a = parse_ok("[::ffff:192.0.2.1]:80", false);
    assert_v6(&a, "::ffff:192.0.2.1", 80);
}

static void test_bare_ipv6_rejected(void **state)
{
    (void)state;
    parse_bad("::1:80", false, "[addr]:port");
    parse_bad("2001:db8::1:80", true, "[addr]:port");
    parse_bad("[::1]", false, "[IPv6]:port");
    parse_bad("[::1]80", false, "[IPv6]:port");
    parse_bad("[::1:80", false, "[IPv6]:port");
    parse_bad("[]:80", false, "bad IPv6 address");
    parse_bad("[::g]:80", false, "bad IPv6 address"); /* rejected, never looked up as a name */
    parse_bad("[localhost]:80", false, "bad IPv6 address");
}

/* A listen address may omit the host or write "*": all IPv4 addresses. A backend may not. */
static void test_passive_wildcards(void **state)
{
    (void)state;
    struct sockaddr_any a = parse_ok("*:80", true);
    assert_v4(&a, "0.0.0.0", 80);
    a = parse_ok(":8080", true);
    assert_v4(&a, "0.0.0.0", 8080);
    parse_bad(":80", false, "missing host");
}

static void test_port_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:99999",
        "127.0.0.1:",
        "127.0.0.1:abc",
        "127.0.0.1:-1",
        "127.0.0.1:+80",
        "127.0.0.1:80x",
        "127.0.0.1:8 0",
        "[::1]:0",
        "[::1]:",
        "*:0",
        "127.0.0.1:99999999999999999999",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        parse_bad(bad[i], true, "port must be a number from 1 to 65535");
    parse_bad("127.0.0.1", false, "expected \"host:port\"");
    parse_bad("", true, "expected \"host:port\"");
}

/* Names are resolved when parsed ("localhost" comes from the hosts file, no DNS needed). */
static void test_localhost_is_resolved(void **state)
{
    (void)state;
    struct sockaddr_any a = parse_ok("localhost:9000", false);
    char buf[SOCK_ADDRSTRLEN];
    sock_addr_format(&a, buf, sizeof(buf));
    if (strcmp(buf, "127.0.0.1:9000") != 0 && strcmp(buf, "[::1]:9000") != 0)
        fail_msg("localhost resolved to %s", buf);
}

/* Which host parts are names; a looked-up-again name keeps an address that is still among its
 * answers and takes the first answer otherwise; IP literals are not names to look up. */
static void test_names_looked_up_again(void **state)
{
    (void)state;
    assert_true(sock_addr_is_name("localhost:80"));
    assert_true(sock_addr_is_name("db.example:5432"));
    assert_false(sock_addr_is_name("127.0.0.1:80"));
    assert_false(sock_addr_is_name("[::1]:80"));
    assert_false(sock_addr_is_name("*:80"));
    struct sockaddr_any first = parse_ok("localhost:9000", false);
    struct sockaddr_any a = first;
    const char *why = NULL;
    assert_int_equal(sock_resolve_keep("localhost:9000", &a, &why), 0);
    assert_true(sock_addr_equal(&a, &first));
    struct sockaddr_any elsewhere = parse_ok("127.0.0.9:9000", false);
    a = elsewhere;
    assert_int_equal(sock_resolve_keep("localhost:9000", &a, &why), 0);
    assert_true(sock_addr_equal(&a, &first));
    a = elsewhere;
    assert_int_equal(sock_resolve_keep("127.0.0.1", &a, &why), -1);
    assert_non_null(why);
    assert_true(sock_addr_equal(&a, &elsewhere));
}

static void test_host_name_too_long(void **state)
{
    (void)state;
    char text[400];
    memset(text, 'a', 300);
    strcpy(text + 300, ":80");
    parse_bad(text, false, "too long");
}

/* ---- formatting and equality -------------------------------------------------------------- */

static void test_format_round_trips(void **state)
{
    (void)state;
    static const char *const canon[] = {
        "127.0.0.1:80",       "0.0.0.0:65535", "10.0.0.1:1",       "[::1]:443",
        "[2001:db8::1]:8080", "[::]:1",        "[fe80::1:2]:9000", "[::ffff:192.0.2.1]:80",
    };
    char buf[SOCK_ADDRSTRLEN];
    for (size_t i = 0; i < sizeof(canon) / sizeof(canon[0]); i++) {
        struct sockaddr_any a = parse_ok(canon[i], false);
        assert_ptr_equal(sock_addr_format(&a, buf, sizeof(buf)), buf);
        assert_string_equal(buf, canon[i]);
        struct sockaddr_any b = parse_ok(buf, false);
        assert_true(sock_addr_equal(&a, &b));
    }
    /* Other spellings print in canonical form. */
    struct sockaddr_any a = parse_ok("[2001:DB8:0:0::1]:80", false);
    assert_string_equal(sock_addr_format(&a, buf, sizeof(buf)), "[2001:db8::1]:80");
    a = parse_ok("*:80", true);
    assert_string_equal(sock_addr_format(&a, buf, sizeof(buf)), "0.0.0.0:80");
    /* The longest form fits in SOCK_ADDRSTRLEN. */
    a = parse_ok("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535", false);
    sock_addr_format(&a, buf, sizeof(buf));
    assert_string_equal(buf, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
    /* No family: a placeholder, not garbage. */
    struct sockaddr_any none;
    memset(&none, 0, sizeof(none));
    assert_string_equal(sock_addr_format(&none, buf, sizeof(buf)), "-");
}

static void test_addr_equal(void **state)
{
    (void)state;
    struct sockaddr_any a = parse_ok("127.0.0.1:80", false);
    struct sockaddr_any same = parse_ok("127.0.0.1:80", false);
    struct sockaddr_any port = parse_ok("127.0.0.1:81", false);
    struct sockaddr_any host = parse_ok("127.0.0.2:80", false);
    struct sockaddr_any mapped = parse_ok("[::ffff:127.0.0.1]:80", false);
    struct sockaddr_any v6 = parse_ok("[::1]:80", false);
    struct sockaddr_any v6b = parse_ok("[0:0::1]:80", false);
    struct sockaddr_any v6port = parse_ok("[::1]:81", false);
    assert_true(sock_addr_equal(&a, &same));
    assert_false(sock_addr_equal(&a, &port));
    assert_false(sock_addr_equal(&a, &host));
    assert_false(sock_addr_equal(&a, &mapped)); /* different families */
    assert_false(sock_addr_equal(&mapped, &a));
    assert_true(sock_addr_equal(&v6, &v6b));
    assert_false(sock_addr_equal(&v6, &v6port));
    struct sockaddr_any star = parse_ok("*:80", true), any = parse_ok("0.0.0.0:80", true);
    assert_true(sock_addr_equal(&star, &any));
}

/* Overlapping listen addresses are those the kernel refuses to listen on together: a specific
 * address and the wildcard of its family on one port, in either order. Checked against bind(). */
static void test_addr_overlaps(void **state)
{
    (void)state;
    struct sockaddr_any lo = parse_ok("127.0.0.1:1", true);
    ((struct sockaddr_in *)&lo.u.ss)->sin_port = 0; /* any free port */
    int fd = sock_listen(&lo, 8, false);
    assert_true(fd >= 0);
    socklen_t len = sizeof(lo.u.ss);
    assert_int_equal(getsockname(fd, &lo.u.sa, &len), 0);
    unsigned port = ntohs(((struct sockaddr_in *)&lo.u.ss)->sin_port);
    char text[64];
    snprintf(text, sizeof(text), "0.0.0.0:%u", port);
    struct sockaddr_any any = parse_ok(text, true);
    snprintf(text, sizeof(text), "127.0.0.2:%u", port);
    struct sockaddr_any other = parse_ok(text, true);
    snprintf(text, sizeof(text), "[::]:%u", port);
    struct sockaddr_any any6 = parse_ok(text, true);
    snprintf(text, sizeof(text), "0.0.0.0:%u", port == 65535 ? 1 : port + 1);
    struct sockaddr_any next_port = parse_ok(text, true);

    assert_true(sock_addr_overlaps(&lo, &any));
    assert_true(sock_addr_overlaps(&any, &lo));
    assert_int_equal(sock_listen(&any, 8, false), -EADDRINUSE);
    assert_false(sock_addr_overlaps(&lo, &other)); /* two specific addresses */
    int ofd = sock_listen(&other, 8, false);
    assert_true(ofd >= 0);
    close(ofd);
    assert_false(sock_addr_overlaps(&lo, &any6));      /* another family */
    assert_false(sock_addr_overlaps(&lo, &next_port)); /* another port */
    struct sockaddr_any v6 = parse_ok("[::1]:8080", true), w6 = parse_ok("[::]:8080", true);
    assert_true(sock_addr_overlaps(&v6, &w6));
    assert_true(sock_addr_overlaps(&w6, &v6));
    close(fd);
}

/* ---- sockets over loopback ----------------------------------------------------------------- */

struct conn {
    int lfd, client, server;
};

/* A listener on host:0, a non-blocking connect to it, and the accepted end. */
static void open_conn(const char *listen_text, struct conn *c)
{
    struct sockaddr_any la = any_port(listen_text), peer;
    c->lfd = sock_listen(&la, 16, false);
    assert_true(c->lfd >= 0);
    set_port(&la, local_port(c->lfd));

    c->client = sock_connect(&la);
    assert_true(c->client >= 0);
    assert_true(wait_for(c->client, POLLOUT) & POLLOUT);
    assert_int_equal(sock_error(c->client), 0);
    sock_push_ack(c->client); /* nothing to write: the listener sees the connection now */
    assert_true(wait_for(c->lfd, POLLIN) & POLLIN);
    c->server = sock_accept(c->lfd, &peer);
    assert_true(c->server >= 0);

    /* The peer address is the client's own address. */
    struct sockaddr_any mine;
    mine.len = sizeof(mine.u.ss);
    assert_int_equal(getsockname(c->client, &mine.u.sa, &mine.len), 0);
    assert_true(sock_addr_equal(&peer, &mine));
    assert_int_equal(peer.len, mine.len);
}

static void close_conn(struct conn *c)
{
    close(c->client);
    close(c->server);
    close(c->lfd);
}

static void exchange(int from, int to, const char *msg)
{
    char buf[64];
    size_t n = strlen(msg);
    assert_true(wait_for(from, POLLOUT) & POLLOUT);
    assert_int_equal(send(from, msg, n, MSG_NOSIGNAL), (ssize_t)n);
    size_t got = 0;
    for (int i = 0; i < 100 && got < n; i++) {
        assert_true(wait_for(to, POLLIN) & POLLIN);
        ssize_t r = recv(to, buf + got, sizeof(buf) - got, 0);
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_int_equal(got, n);
    assert_memory_equal(buf, msg, n);
}

static void test_listen_connect_accept_ipv4(void **state)
{
    (void)state;
    struct conn c;
    open_conn("127.0.0.1:1", &c);
    assert_true(local_port(c.lfd) > 0);
    assert_nonblock_cloexec(c.lfd);
    assert_nonblock_cloexec(c.client);
    assert_nonblock_cloexec(c.server);
    assert_int_equal(getopt_int(c.lfd, SOL_SOCKET, SO_REUSEADDR), 1);
    assert_int_equal(getopt_int(c.lfd, SOL_SOCKET, SO_ACCEPTCONN), 1);
    assert_int_equal(getopt_int(c.client, IPPROTO_TCP, TCP_NODELAY), 1);

    exchange(c.client, c.server, "hello");
    exchange(c.server, c.client, "and back");

    /* Nothing else is waiting: accept says so instead of blocking. */
    assert_int_equal(sock_accept(c.lfd, NULL), -EAGAIN);
    close_conn(&c);
}

static void test_listen_connect_accept_ipv6(void **state)
{
    (void)state;
    struct sockaddr_any la = any_port("[::1]:1");
    int probe = sock_listen(&la, 1, false);
    if (probe == -EADDRNOTAVAIL || probe == -EAFNOSUPPORT) {
        /* This machine has no IPv6 loopback: there is nothing to specify here. */
        print_message("no ::1 on this host (%s)\n", strerror(-probe));
        return;
    }
    assert_true(probe >= 0);
    assert_int_equal(getopt_int(probe, IPPROTO_IPV6, IPV6_V6ONLY), 1);
    close(probe);
    /* IPv6 only, so "[::]:p" and "0.0.0.0:p" can coexist: an IPv4-mapped address cannot be bound
     * by an IPv6 listener. */
    la = any_port("[::ffff:127.0.0.1]:1");
    assert_int_equal(sock_listen(&la, 1, false), -EINVAL);

    struct conn c;
    open_conn("[::1]:1", &c);
    exchange(c.client, c.server, "v6");
    close_conn(&c);
}

static void test_accept_without_peer_argument(void **state)
{
    (void)state;
    struct sockaddr_any la = any_port("127.0.0.1:1");
    int lfd = sock_listen(&la, 4, false);
    assert_true(lfd >= 0);
    set_port(&la, local_port(lfd));
    int cfd = sock_connect(&la);
    assert_true(cfd >= 0);
    assert_true(wait_for(cfd, POLLOUT) & POLLOUT);
    sock_push_ack(cfd);
    assert_true(wait_for(lfd, POLLIN) & POLLIN);
    int sfd = sock_accept(lfd, NULL);
    assert_true(sfd >= 0);
    close(sfd);
    close(cfd);
    close(lfd);
}

/* Whether fd reports POLLIN within ms. */
static bool readable_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    int n = poll(&p, 1, ms);
    assert_true(n >= 0);
    return n == 1 && (p.revents & POLLIN);
}

/*
 * sock_connect() holds the handshake's last ACK back so that it can ride on the first bytes: the
 * server's kernel completes the connection (and its accept() returns) only once it arrives. The
 * kernel alone would send it after 200 ms; sock_push_ack() sends it at once, and so does a write.
 */
static void test_connect_holds_the_last_ack_until_a_write_or_a_push(void **state)
{
    (void)state;
    struct sockaddr_any la = any_port("127.0.0.1:1");
    int lfd = sock_listen(&la, 4, false);
    assert_true(lfd >= 0);
    set_port(&la, local_port(lfd));
    for (int write_first = 0; write_first < 2; write_first++) {
        int cfd = sock_connect(&la);
        assert_true(cfd >= 0);
        assert_true(wait_for(cfd, POLLOUT) & POLLOUT); /* connected on the client's side */
        assert_false(readable_within(lfd, 50));        /* not yet on the listener's */
        if (write_first)
            assert_int_equal(send(cfd, "x", 1, MSG_NOSIGNAL), 1);
        else
            sock_push_ack(cfd);
        assert_true(readable_within(lfd, 100));
        int sfd = sock_accept(lfd, NULL);
        assert_true(sfd >= 0);
        if (write_first) {
            char c = 0;
            assert_true(wait_for(sfd, POLLIN) & POLLIN);
            assert_int_equal(recv(sfd, &c, 1, 0), 1);
            assert_int_equal(c, 'x');
        }
        close(sfd);
        close(cfd);
    }
    close(lfd);
}

static void test_listen_errors(void **state)
{
    (void)state;
    struct sockaddr_any la = any_port("127.0.0.1:1");
    int lfd = sock_listen(&la, 4, false);
    assert_true(lfd >= 0);
    set_port(&la, local_port(lfd));
    /* SO_REUSEADDR does not let two listeners share a port. */
    assert_int_equal(sock_listen(&la, 4, false), -EADDRINUSE);
    close(lfd);

    /* With SO_REUSEPORT on both, they can (one listener per worker). */
    la = any_port("127.0.0.1:1");
    int a = sock_listen(&la, 4, true);
    assert_true(a >= 0);
    assert_int_equal(getopt_int(a, SOL_SOCKET, SO_REUSEPORT), 1);
    set_port(&la, local_port(a));
    int b = sock_listen(&la, 4, true);
    assert_true(b >= 0);
    close(b);
    close(a);
}

/* A port that is bound but not listening refuses connections; nobody else can take it meanwhile. */
static void test_refused_connect_reported_by_sock_error(void **state)
{
    (void)state;
    int hold = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(hold >= 0);
    struct sockaddr_any a = any_port("127.0.0.1:1");
    assert_int_equal(bind(hold, &a.u.sa, a.len), 0);
    set_port(&a, local_port(hold));

    int fd = sock_connect(&a);
    if (fd < 0) {
        assert_int_equal(fd, -ECONNREFUSED); /* refused at once: also a valid outcome */
    } else {
        short ev = wait_for(fd, POLLOUT);
        assert_true(ev & (POLLOUT | POLLERR | POLLHUP));
        assert_int_equal(sock_error(fd), ECONNREFUSED);
        close(fd);
    }
    close(hold);
}

static void test_sock_error_on_bad_fd(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    close(fds[0]);
    close(fds[1]);
    assert_int_equal(sock_error(fds[0]), EBADF); /* positive, like SO_ERROR values */
}

static void test_set_nodelay(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(getopt_int(fd, IPPROTO_TCP, TCP_NODELAY), 0);
    assert_int_equal(sock_set_nodelay(fd), 0);
    assert_int_equal(getopt_int(fd, IPPROTO_TCP, TCP_NODELAY), 1);
    close(fd);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(sock_set_nodelay(fds[0]), -ENOTSOCK);
    close(fds[0]);
    close(fds[1]);
}

/* The next recv on the peer: bytes, 0 (orderly end) or -errno; waits at most WAIT_MS. */
static ssize_t peer_recv(int fd)
{
    char buf[16];
    short ev = wait_for(fd, POLLIN);
    assert_true(ev != 0);
    ssize_t r = recv(fd, buf, sizeof(buf), 0);
    return r == -1 ? -errno : r;
}

static void test_close_reset_gives_the_peer_econnreset(void **state)
{
    (void)state;
    struct conn c;
    open_conn("127.0.0.1:1", &c);
    sock_close_reset(c.server);
    assert_int_equal(peer_recv(c.client), -ECONNRESET);
    close(c.client);
    close(c.lfd);

    /* For contrast, a plain close is an orderly end of stream. */
    open_conn("127.0.0.1:1", &c);
    close(c.server);
    assert_int_equal(peer_recv(c.client), 0);
    close(c.client);
    close(c.lfd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ipv4),
        cmocka_unit_test(test_names_looked_up_again),
        cmocka_unit_test(test_parse_ipv6_in_brackets),
        cmocka_unit_test(test_bare_ipv6_rejected),
        cmocka_unit_test(test_passive_wildcards),
        cmocka_unit_test(test_port_errors),
        cmocka_unit_test(test_localhost_is_resolved),
        cmocka_unit_test(test_host_name_too_long),
        cmocka_unit_test(test_format_round_trips),
        cmocka_unit_test(test_addr_equal),
        cmocka_unit_test(test_addr_overlaps),
        cmocka_unit_test(test_listen_connect_accept_ipv4),
        cmocka_unit_test(test_listen_connect_accept_ipv6),
        cmocka_unit_test(test_accept_without_peer_argument),
        cmocka_unit_test(test_listen_errors),
        cmocka_unit_test(test_refused_connect_reported_by_sock_error),
        cmocka_unit_test(test_sock_error_on_bad_fd),
        cmocka_unit_test(test_set_nodelay),
        cmocka_unit_test(test_connect_holds_the_last_ack_until_a_write_or_a_push),
        cmocka_unit_test(test_close_reset_gives_the_peer_econnreset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
