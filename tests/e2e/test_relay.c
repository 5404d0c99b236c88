/*
 * End-to-end: the relay itself. Bytes pass through ferry unchanged, in order and full duplex
 * (echo, a server that speaks first, 64 MiB each way and both ways at once, compared by SHA-256);
 * half-close works in each direction, also when the FIN arrives behind data that ferry still
 * buffers; a reset on one side becomes a reset on the other; an IPv6 listener works. Built a
 * second time with FERRY_E2E_SPLICE (e2e.test_relay_splice), every route relays with splice(2)
 * through a pipe per direction, and all of the above holds the same.
 */
#include "e2e.h"

#define BIG (64u * MIB)

/* What grows while a direction streams: the pipe on a splice route, else the ring. */
#ifdef FERRY_E2E_SPLICE
#define GROWN "pipe"
#else
#define GROWN "ring"
#endif

/* ferry with one route "r" from 127.0.0.1:*listen_port to 127.0.0.1:backend_port. */
static struct ferry *start_relay(int backend_port, const char *route_extra, int *listen_port)
{
    *listen_port = free_port(AF_INET);
    return ferry_start(tfmt(E2E_ROUTES "  - name: r\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "%s"
                                       "    backends: [127.0.0.1:%d]\n",
                            *listen_port, route_extra, backend_port));
}

/* A client connected through ferry to a backend the test drives itself. */
struct pair {
    struct ferry *ferry;
    int lfd;     /* the backend's listening socket */
    int client;  /* test -> ferry */
    int backend; /* ferry -> test, accepted from lfd */
};

static void open_pair(struct pair *p, int backend_rcvbuf, const char *route_extra)
{
    int bport, lport;
    p->lfd = listen_loopback(AF_INET, 16, backend_rcvbuf, &bport);
    assert_ok(p->lfd, "backend listen");
    p->ferry = start_relay(bport, route_extra, &lport);
    p->client = connect_ok(lport);
    p->backend = accept_timeout(p->lfd, NET_TIMEOUT_MS);
    assert_ok(p->backend, "ferry did not connect to the backend");
}

static void test_echo(void **state)
{
    (void)state;
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport;
    struct ferry *f = start_relay(backend_port(b), "", &lport);
    int c = connect_ok(lport);

    send_str(c, "ping\n");
    recv_expect(c, "ping\n");
    send_str(c, "a second message on the same connection\n");
    recv_expect(c, "a second message on the same connection\n");
    /* The echo server closes after our FIN: ferry must carry our FIN and its FIN back. */
    shut_wr(c);
    assert_int_equal(wait_closed(c, NET_TIMEOUT_MS, NULL), 0);
    ferry_stop(f);
}

static void test_server_speaks_first(void **state)
{
    (void)state;
    struct backend *b = backend_start(AF_INET, BACKEND_GREET);
    int lport;
    struct ferry *f = start_relay(backend_port(b), "", &lport);
    int c = connect_ok(lport);

    /* The client sends nothing: ferry must connect to the backend on accept and relay its words. */
    recv_expect(c, backend_greeting(b));
    send_str(c, "and now the client\n");
    recv_expect(c, "and now the client\n");
    close_fd(c);
    ferry_stop(f);
}

static void test_64mib_client_to_backend(void **state)
{
    (void)state;
    struct pair p;
    open_pair(&p, 0, "");
    struct pump *tx = pump_send(p.client, BIG, 1, true, 10000);
    struct pump *rx = pump_recv(p.backend, 10000);
    struct pump_result sent, got;
    pump_join(tx, 60000, &sent);
    pump_join(rx, 60000, &got);
    assert_same_stream(&sent, &got, BIG);
    close_fd(p.backend);
    assert_int_equal(wait_closed(p.client, NET_TIMEOUT_MS, NULL), 0);
    ferry_stop(p.ferry);
}

static void test_64mib_backend_to_client(void **state)
{
    (void)state;
    struct pair p;
    open_pair(&p, 0, "");
    struct pump *tx = pump_send(p.backend, BIG, 2, true, 10000);
    struct pump *rx = pump_recv(p.client, 10000);
    struct pump_result sent, got;
    pump_join(tx, 60000, &sent);
    pump_join(rx, 60000, &got);
    assert_same_stream(&sent, &got, BIG);
    close_fd(p.client);
    assert_int_equal(wait_closed(p.backend, NET_TIMEOUT_MS, NULL), 0);
    ferry_stop(p.ferry);
}

static void test_64mib_both_directions_at_once(void **state)
{
    (void)state;
    struct pair p;
    open_pair(&p, 0, "");
    struct pump *up_tx = pump_send(p.client, BIG, 3, true, 10000);
    struct pump *down_tx = pump_send(p.backend, BIG, 4, true, 10000);
    struct pump *up_rx = pump_recv(p.backend, 10000);
    struct pump *down_rx = pump_recv(p.client, 10000);
    struct pump_result up_sent, up_got, down_sent, down_got;
    pump_join(up_tx, 90000, &up_sent);
    pump_join(down_tx, 90000, &down_sent);
    pump_join(up_rx, 90000, &up_got);
    pump_join(down_rx, 90000, &down_got);
    assert_same_stream(&up_sent, &up_got, BIG);
    assert_same_stream(&down_sent, &down_got, BIG);
    ferry_stop(p.ferry);
}

static void test_half_close_client_first(void **state)
{
    (void)state;
    struct pair p;
    open_pair(&p, 0, "");
    char buf[64];

    send_str(p.client, "request");
    shut_wr(p.client);
    recv_expect(p.backend, "request");
    assert_int_equal(recv_some(p.backend, buf, sizeof buf, NET_TIMEOUT_MS), 0);
    /* The client only closed its sending side: the answer must still reach it. */
    send_str(p.backend, "response after the client's FIN");
    recv_expect(p.client, "response after the client's FIN");
    send_str(p.backend, ", and more");
    recv_expect(p.client, ", and more");
    close_fd(p.backend);
    assert_int_equal(wait_closed(p.client, NET_TIMEOUT_MS, NULL), 0);

    char client[64], line[1024];
    assert_ok(local_addr_str(p.client, client, sizeof client), "getsockname");
    ferry_wait_access(p.ferry, client, NET_TIMEOUT_MS, line, sizeof line);
    assert_field(line, "cause", "client_fin");
    ferry_stop(p.ferry);
}

static void test_half_close_backend_first(void **state)
{
    (void)state;
    struct pair p;
    open_pair(&p, 0, "");
    char buf[64], client[64], line[1024];
    assert_ok(local_addr_str(p.client, client, sizeof client), "getsockname");

    send_str(p.backend, "banner");
    shut_wr(p.backend);
    recv_expect(p.client, "banner");
    assert_int_equal(recv_some(p.client, buf, sizeof buf, NET_TIMEOUT_MS), 0);
    /* The backend only closed its sending side: the client may still talk to it. */
    send_str(p.client, "data after the backend's FIN");
    recv_expect(p.backend, "data after the backend's FIN");
    close_fd(p.client);
    assert_int_equal(wait_closed(p.backend, NET_TIMEOUT_MS, NULL), 0);

    ferry_wait_access(p.ferry, client, NET_TIMEOUT_MS, line, sizeof line);
    assert_field(line, "cause", "backend_fin");
    ferry_stop(p.ferry);
}

/* The segments without data fd has received (ACKs, FINs), or skips the test on a kernel too old
 * to count them. */
static uint32_t dataless_segs_in(int fd, uint32_t *unacked)
{
    struct tcp_counts t;
    int rc = tcp_stats(fd, &t);
    if (rc == -ENOTSUP)
        skip();
    assert_ok(rc, "TCP_INFO");
    if (unacked)
        *unacked = t.unacked;
    return t.segs_in - t.data_segs_in;
}

/* Polls until everything fd sent is acknowledged (nothing signals that); returns
 * dataless_segs_in(). */
static uint32_t dataless_segs_in_when_acked(int fd)
{
    for (int64_t end = now_ms() + NET_TIMEOUT_MS; now_ms() < end; sleep_ms(1)) {
        uint32_t unacked = 1, segs = dataless_segs_in(fd, &unacked);
        if (unacked == 0)
            return segs;
    }
    fail_msg("what the client sent was not acknowledged within %d ms", NET_TIMEOUT_MS);
    return 0;
}

#ifndef FERRY_E2E_SPLICE
/*
 * The backend's last bytes and its FIN reach ferry in one segment. ferry then knows the stream
 * ends behind those bytes before it writes them, so toward the client they leave in one segment
 * too (the FIN on the data) rather than a data segment and then a FIN segment: per closing
 * connection a packet fewer for both kernels to handle. Counted on the client's socket as segments
 * without data: a FIN of its own is one, a FIN on data is not (nor its retransmission). (A splice
 * route learns of the end only from a splice that returns 0, after the bytes went out: there the
 * FIN rides on data only when it arrives while the pipe still holds some.)
 */
static void test_last_bytes_and_fin_leave_in_one_segment(void **state)
{
    (void)state;
    struct pair p;
    open_pair(&p, 0, "");
    char buf[16];

    send_str(p.client, "ping");
    recv_expect(p.backend, "ping");
    /* Every segment toward the client until now (handshake, the ACK of "ping") is counted. */
    uint32_t before = dataless_segs_in_when_acked(p.client);

    /* MSG_MORE holds the bytes back, the shutdown sends them with the FIN: one segment. */
    assert_int_equal(send(p.backend, "pong", 4, MSG_MORE | MSG_DONTWAIT), 4);
    shut_wr(p.backend);
    recv_expect(p.client, "pong");
    assert_int_equal(recv_some(p.client, buf, sizeof buf, NET_TIMEOUT_MS), 0);
    assert_int_equal(dataless_segs_in(p.client, NULL) - before, 0);

    close_fd(p.client);
    assert_int_equal(wait_closed(p.backend, NET_TIMEOUT_MS, NULL), 0);
    ferry_stop(p.ferry);
}
#endif

/*
 * ferry connects to the backend as it accepts the client, and the handshake's last ACK toward the
 * backend waits for the client's first bytes when they are already there as the connection
 * completes: one segment (the bytes with the ACK on them) instead of two. Made certain here by
 * pausing ferry while the client connects and sends, so that ferry finds it all at once. Counted
 * on the backend's socket as segments without data, against a direct connection whose bytes
 * follow its handshake.
 */
static void test_handshake_ack_rides_on_the_first_bytes(void **state)
{
    (void)state;
    int bport, lport;
    int lfd = listen_loopback(AF_INET, 16, 0, &bport);
    assert_ok(lfd, "backend listen");
    int d = connect_ok(bport);
    int da = accept_timeout(lfd, NET_TIMEOUT_MS);
    assert_ok(da, "direct accept");
    send_str(d, "ping");
    recv_expect(da, "ping");
    uint32_t direct = dataless_segs_in(da, NULL);

    struct ferry *f = start_relay(bport, "", &lport);
    ferry_pause(f);
    int c = connect_ok(lport); /* the kernel completes the handshake while ferry is stopped */
    send_str(c, "ping");
    /* "ping" is in ferry's socket once it is acknowledged (at once, even with ferry stopped). */
    dataless_segs_in_when_acked(c);
    ferry_resume(f);
    int b = accept_timeout(lfd, NET_TIMEOUT_MS);
    assert_ok(b, "ferry did not connect to the backend");
    recv_expect(b, "ping");
    assert_int_equal(dataless_segs_in(b, NULL), direct - 1);

    /* And the pair relays as any other. */
    send_str(b, "pong");
    recv_expect(c, "pong");
    int fds[] = {c, b, d, da, lfd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        close_fd(fds[i]);
    ferry_stop(f);
}

/*
 * When the client has sent nothing by the time the backend connection completes, the held-back
 * ACK goes at once: the backend's accept() returns only once it arrives, and a server that speaks
 * first (a greeting, as in MySQL or SMTP) must not wait the 200 ms after which the kernel would
 * send it. Best of three connections, for a noisy machine; held back, each takes 200 ms or more.
 */
static void test_a_backend_sees_a_silent_client_at_once(void **state)
{
    (void)state;
    int bport, lport;
    int lfd = listen_loopback(AF_INET, 16, 0, &bport);
    assert_ok(lfd, "backend listen");
    struct ferry *f = start_relay(bport, "", &lport);
    int64_t best = INT64_MAX;
    for (int i = 0; i < 3; i++) {
        int c = connect_ok(lport);
        int64_t t0 = now_ms();
        int b = accept_timeout(lfd, NET_TIMEOUT_MS);
        assert_ok(b, "ferry did not connect to the backend");
        int64_t took = now_ms() - t0;
        best = took < best ? took : best;
        close_fd(b);
        close_fd(c);
    }
    if (best >= 100)
        fail_msg("the backend saw the connection only after %lld ms (best of 3)", (long long)best);
    close_fd(lfd);
    ferry_stop(f);
}

/*
 * The client sends 8 MiB and its FIN while the backend reads nothing. The backend's small receive
 * buffer and ferry's socket buffer toward it hold only part of that; with a 16 MiB ring ferry
 * takes in the rest, so it reads the client's FIN while its ring still holds megabytes for the
 * backend. The FIN must wait behind that data: the backend gets every byte, then EOF; and its
 * answer after the EOF still reaches the client.
 */
static void test_fin_behind_buffered_data(void **state)
{
    (void)state;
    const uint64_t n = 8 * MIB;
    int bport, lport;
    int lfd = listen_loopback(AF_INET, 16, 4096, &bport);
    assert_ok(lfd, "backend listen");
    struct ferry *f = start_relay(bport, "    buffer_size: 16MiB\n", &lport);
    int c = connect_ok(lport);
    char client[64], line[1024];
    assert_ok(local_addr_str(c, client, sizeof client), "getsockname");

    struct pump *tx = pump_send(c, n, 5, true, 10000);
    /* The backend does not read until the client has sent all it can and stopped making
     * progress (the FIN included, when ferry took in everything). */
    assert_true(pump_wait_stalled(tx, 200, 10000));
    print_message("client sent %llu bytes%s before the backend read anything\n",
                  (unsigned long long)pump_progress(tx), pump_done(tx) ? " and its FIN" : "");
    int b = accept_timeout(lfd, NET_TIMEOUT_MS);
    assert_ok(b, "ferry did not connect to the backend");
    struct pump *rx = pump_recv(b, 10000);
    struct pump_result sent, got;
    pump_join(tx, 30000, &sent);
    pump_join(rx, 30000, &got);
    assert_same_stream(&sent, &got, n);

    send_str(b, "after-fin");
    close_fd(b);
    recv_expect(c, "after-fin");
    assert_int_equal(wait_closed(c, NET_TIMEOUT_MS, NULL), 0);
    ferry_wait_access(f, client, NET_TIMEOUT_MS, line, sizeof line);
    assert_field(line, "cause", "client_fin");
    assert_field_num(line, "bytes_from_client", (long long)n);
    assert_field_num(line, "bytes_to_client", 9);
    ferry_stop(f);
}

static void test_backend_reset_resets_client(void **state)
{
    (void)state;
    struct pair p;
    open_pair(&p, 0, "");
    char buf[64], client[64], line[1024];
    assert_ok(local_addr_str(p.client, client, sizeof client), "getsockname");

    send_str(p.client, "hi");
    recv_expect(p.backend, "hi");
    reset_fd(p.backend);
    /* A truncated stream must not look complete: the client gets a reset, not an EOF. */
    ssize_t r = recv_some(p.client, buf, sizeof buf, NET_TIMEOUT_MS);
    if (r != -ECONNRESET) {
        fail_msg("client: want ECONNRESET after the backend reset, got %s",
                 r == 0  ? "EOF"
                 : r > 0 ? "data"
                         : strerror((int)-r));
    }
    ferry_wait_access(p.ferry, client, NET_TIMEOUT_MS, line, sizeof line);
    assert_field(line, "cause", "backend_reset");
    ferry_stop(p.ferry);
}

static void test_client_reset_resets_backend(void **state)
{
    (void)state;
    struct pair p;
    open_pair(&p, 0, "");
    char buf[64], client[64], line[1024];
    assert_ok(local_addr_str(p.client, client, sizeof client), "getsockname");

    send_str(p.client, "hi");
    recv_expect(p.backend, "hi");
    reset_fd(p.client);
    ssize_t r = recv_some(p.backend, buf, sizeof buf, NET_TIMEOUT_MS);
    if (r != -ECONNRESET) {
        fail_msg("backend: want ECONNRESET after the client reset, got %s",
                 r == 0  ? "EOF"
                 : r > 0 ? "data"
                         : strerror((int)-r));
    }
    ferry_wait_access(p.ferry, client, NET_TIMEOUT_MS, line, sizeof line);
    assert_field(line, "cause", "client_reset");
    ferry_stop(p.ferry);
}

/*
 * The client resets while the backend streams to it, so ferry may write into a reset socket
 * (EPIPE; SIGPIPE is at its default action in ferry). ferry must survive, stop the backend's
 * stream, and serve the next connection.
 */
static void test_reset_while_streaming_keeps_ferry_alive(void **state)
{
    (void)state;
    int bport, lport;
    int lfd = listen_loopback(AF_INET, 16, 0, &bport);
    assert_ok(lfd, "backend listen");
    struct ferry *f = start_relay(bport, "", &lport);
    int c = connect_ok(lport);
    char client[64], line[1024], buf[65536];
    assert_ok(local_addr_str(c, client, sizeof client), "getsockname");
    int b = accept_timeout(lfd, NET_TIMEOUT_MS);
    assert_ok(b, "ferry did not connect to the backend");

    struct pump *tx = pump_send(b, BIG, 6, false, 10000);
    assert_int_equal(recv_exact(c, buf, sizeof buf, NET_TIMEOUT_MS), sizeof buf);
    reset_fd(c);
    struct pump_result sent;
    pump_join(tx, 10000, &sent);
    if (sent.err != -ECONNRESET && sent.err != -EPIPE) {
        fail_msg("backend: want its sends to fail after the client reset, got %s",
                 sent.err == 0 ? "all 64 MiB sent" : strerror(-sent.err));
    }
    ferry_wait_access(f, client, NET_TIMEOUT_MS, line, sizeof line);
    assert_field(line, "cause", "client_reset");

    if (!ferry_alive(f)) {
        ferry_dump(f, "died");
        fail_msg("ferry died after a client reset during a transfer (exit %d)",
                 ferry_wait_exit(f, 0));
    }
    int c2 = connect_ok(lport);
    int b2 = accept_timeout(lfd, NET_TIMEOUT_MS);
    assert_ok(b2, "ferry did not connect to the backend after the reset");
    send_str(c2, "still alive");
    recv_expect(b2, "still alive");
    close_fd(c2);
    close_fd(b2);
    ferry_stop(f);
}

static void test_ipv6_listener(void **state)
{
    (void)state;
    if (!ipv6_loopback_available()) {
        skip();
    }
    struct backend *b = backend_start(AF_INET6, BACKEND_ECHO);
    int lport = free_port(AF_INET6);
    struct ferry *f = ferry_start(tfmt(E2E_ROUTES "  - name: v6\n"
                                                  "    listen: \"[::1]:%d\"\n"
                                                  "    backends: [\"[::1]:%d\"]\n",
                                       lport, backend_port(b)));
    int c = tcp_connect(AF_INET6, lport, NET_TIMEOUT_MS);
    assert_ok(c, "connect to [::1]");
    send_str(c, "over ipv6");
    recv_expect(c, "over ipv6");
    assert_int_equal(backend_accepted(b), 1);
    close_fd(c);
    ferry_stop(f);
}

/*
 * Urgent (out-of-band) data is not relayed: ferry reads the stream without SO_OOBINLINE, so the
 * urgent byte is dropped and what follows it goes on. Neither path may stall at the urgent mark
 * (a splice stops there and would wait forever); both directions are checked.
 */
static void test_urgent_byte_dropped_stream_goes_on(void **state)
{
    (void)state;
    struct pair p;
    open_pair(&p, 0, "");
    int ends[2][2] = {{p.client, p.backend}, {p.backend, p.client}};
    for (int d = 0; d < 2; d++) {
        int from = ends[d][0], to = ends[d][1];
        send_str(from, "a");
        assert_int_equal(send(from, "b", 1, MSG_OOB), 1);
        send_str(from, "cdef");
        recv_expect(to, "acdef");
        send_str(from, "and on");
        recv_expect(to, "and on");
    }
    close_fd(p.client);
    close_fd(p.backend);
    ferry_stop(p.ferry);
}

/* Urgent data right before the FIN, in each direction: the bytes around the urgent one arrive,
 * then the end of the stream, and the pair ends cleanly (no reset from bytes left unread). */
static void test_urgent_byte_then_fin(void **state)
{
    (void)state;
    for (int d = 0; d < 2; d++) {
        struct pair p;
        open_pair(&p, 0, "");
        int from = d == 0 ? p.client : p.backend, to = d == 0 ? p.backend : p.client;
        send_str(from, "abc");
        assert_int_equal(send(from, "X", 1, MSG_OOB), 1);
        send_str(from, "def");
        shut_wr(from);
        recv_expect(to, "abcdef");
        assert_int_equal(wait_closed(to, NET_TIMEOUT_MS, NULL), 0);
        send_str(to, "bye");
        shut_wr(to);
        recv_expect(from, "bye");
        assert_int_equal(wait_closed(from, NET_TIMEOUT_MS, NULL), 0);
        assert_true(ferry_wait_log(p.ferry, "cause=", NET_TIMEOUT_MS));
        assert_int_equal(ferry_count_log(p.ferry, "reset"), 0);
        close_fd(p.client);
        close_fd(p.backend);
        close_fd(p.lfd);
        ferry_stop(p.ferry);
    }
}

/*
 * The variant really is the one it claims: on a splice route a direction borrows a pipe (two fds)
 * for each burst and hands it back when it drains, so exchanges one after another, on several
 * pairs, all go through the same pipe, which ferry keeps for the next burst; idle pairs hold none.
 * A ringed pair never opens a pipe.
 */
static void test_pipes_only_while_bytes_are_in_flight(void **state)
{
    (void)state;
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport;
    struct ferry *f = start_relay(backend_port(b), "", &lport);
    pid_t pid = ferry_pid(f);
    int before = proc_pipe_count(pid);
    enum { PAIRS = 4 };
    int c[PAIRS];
    for (int i = 0; i < PAIRS; i++) {
        c[i] = connect_ok(lport);
        send_str(c[i], "ping");
        recv_expect(c[i], "ping");
    }
    for (int i = 0; i < PAIRS; i++) {
        send_str(c[i], "again");
        recv_expect(c[i], "again");
    }
#ifdef FERRY_E2E_SPLICE
    assert_int_equal(proc_pipe_count(pid), before + 2);
#else
    assert_int_equal(proc_pipe_count(pid), before);
#endif
    for (int i = 0; i < PAIRS; i++)
        close_fd(c[i]);
    assert_true(backend_wait_active(b, 0, NET_TIMEOUT_MS));
    assert_true(ferry_wait_log_count(f, "cause=client_fin", PAIRS, NET_TIMEOUT_MS));
#ifdef FERRY_E2E_SPLICE
    assert_int_equal(proc_pipe_count(pid), before + 2);
#else
    assert_int_equal(proc_pipe_count(pid), before);
#endif
    ferry_stop(f);
}

/* A client connected through ferry's listener lport, and the backend's side of it, accepted from
 * lfd (the backend's listening socket). */
static void connect_through(int lport, int lfd, int *client, int *backend)
{
    *client = connect_ok(lport);
    *backend = accept_timeout(lfd, NET_TIMEOUT_MS);
    assert_ok(*backend, "ferry did not connect to the backend");
}

/* One stream of n bytes from one socket to the other, compared by SHA-256. */
static void stream_one_way(int from, int to, uint64_t n, uint32_t seed)
{
    struct pump *tx = pump_send(from, n, seed, false, 10000);
    struct pump *rx = pump_recv(to, 10000);
    struct pump_result sent, got;
    pump_join(tx, 30000, &sent);
    /* The receiver reads until EOF: end this stream without closing the other direction. */
    shut_wr(from);
    pump_join(rx, 30000, &got);
    assert_same_stream(&sent, &got, n);
}

/*
 * A direction that streams reads into a larger ring (buffer_max, 256KiB unless set), or on a
 * splice route gets a larger pipe, which the debug log reports once per direction; small
 * request/response exchanges keep buffer_size, and a route whose buffer_max is its buffer_size
 * never grows. Bytes arrive intact either way.
 */
static void test_streaming_direction_grows_its_buffer(void **state)
{
    (void)state;
    int bport, lgrow, lfixed, llarge;
    int lfd = listen_loopback(AF_INET, 16, 0, &bport);
    assert_ok(lfd, "backend listen");
    lgrow = free_port(AF_INET);
    lfixed = free_port(AF_INET);
    llarge = free_port(AF_INET);
    struct ferry *f =
        ferry_start(tfmt("log: {level: debug, access: true}\n" E2E_ROUTES "  - name: grow\n"
                         "    listen: 127.0.0.1:%d\n"
                         "    backends: [127.0.0.1:%d]\n"
                         "  - name: fixed\n"
                         "    listen: 127.0.0.1:%d\n"
                         "    buffer_max: 16KiB\n"
                         "    backends: [127.0.0.1:%d]\n"
                         "  - name: large\n"
                         "    listen: 127.0.0.1:%d\n"
                         "    buffer_size: 128KiB\n"
                         "    buffer_max: 1MiB\n"
                         "    backends: [127.0.0.1:%d]\n",
                         lgrow, bport, lfixed, bport, llarge, bport));
    const char *up = "route grow: client->backend streams: its " GROWN " grows to 256KiB";
    const char *down = "route grow: backend->client streams: its " GROWN " grows to 256KiB";

    int c, b;
    connect_through(lgrow, lfd, &c, &b);
    /* Request/response, 1 KiB each way, each waited for: no read comes near 16 KiB. */
    char msg[1024], got[1024];
    for (int i = 0; i < 50; i++) {
        memset(msg, 'a' + i % 26, sizeof(msg));
        assert_int_equal(send_all(c, msg, sizeof(msg), NET_TIMEOUT_MS), 0);
        assert_int_equal(recv_exact(b, got, sizeof(got), NET_TIMEOUT_MS), sizeof(got));
        assert_memory_equal(got, msg, sizeof(msg));
        assert_int_equal(send_all(b, msg, sizeof(msg), NET_TIMEOUT_MS), 0);
        assert_int_equal(recv_exact(c, got, sizeof(got), NET_TIMEOUT_MS), sizeof(got));
        assert_memory_equal(got, msg, sizeof(msg));
    }
    assert_int_equal(ferry_count_log(f, "streams: its " GROWN " grows"), 0);
    stream_one_way(c, b, 8 * MIB, 11);
    assert_true(ferry_wait_log(f, up, NET_TIMEOUT_MS));
    stream_one_way(b, c, 8 * MIB, 12);
    assert_true(ferry_wait_log(f, down, NET_TIMEOUT_MS));
    assert_true(ferry_wait_log(f, "cause=client_fin", NET_TIMEOUT_MS));
    close_fd(c);
    close_fd(b);

    connect_through(lfixed, lfd, &c, &b);
    stream_one_way(c, b, 8 * MIB, 13);
    stream_one_way(b, c, 8 * MIB, 14);
    assert_true(ferry_wait_log_count(f, "cause=client_fin", 2, NET_TIMEOUT_MS));
    assert_int_equal(ferry_count_log(f, "streams: its " GROWN " grows"), 2); /* route grow's */
    assert_int_equal(ferry_count_log(f, up), 1);
    assert_int_equal(ferry_count_log(f, down), 1);
    close_fd(c);
    close_fd(b);

    /* A buffer_size larger than a pipe: a splice moves at most a pipe's worth, and still grows. */
    connect_through(llarge, lfd, &c, &b);
    stream_one_way(c, b, 16 * MIB, 15);
    assert_true(ferry_wait_log(
        f, "route large: client->backend streams: its " GROWN " grows to 1MiB", NET_TIMEOUT_MS));
    close_fd(c);
    close_fd(b);
    close_fd(lfd);
    ferry_stop(f);
}

/*
 * Growth stays within buffer_budget as the kernel sizes things: a pipe asked for 300KiB is made
 * 512KiB (a power of two pages), which a 400KiB budget cannot hold, so a splice route's pipe does
 * not grow; a ring grows to exactly 300KiB.
 */
static void test_growth_counts_what_the_kernel_grants(void **state)
{
    (void)state;
    int bport, lport = free_port(AF_INET);
    int lfd = listen_loopback(AF_INET, 16, 0, &bport);
    assert_ok(lfd, "backend listen");
    struct ferry *f = ferry_start(tfmt("log: {level: debug}\n"
                                       "buffer_budget: 400KiB\n" E2E_ROUTES "  - name: odd\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    buffer_max: 300KiB\n"
                                       "    backends: [127.0.0.1:%d]\n",
                                       lport, bport));
    int c, b;
    connect_through(lport, lfd, &c, &b);
    char client[64], line[1024];
    assert_ok(local_addr_str(c, client, sizeof client), "getsockname");
    stream_one_way(c, b, 8 * MIB, 16);
    stream_one_way(b, c, 1 * MIB, 17);
    ferry_wait_access(f, client, NET_TIMEOUT_MS, line, sizeof line);
#ifdef FERRY_E2E_SPLICE
    assert_int_equal(ferry_count_log(f, "streams: its pipe grows"), 0);
#else
    assert_int_equal(
        ferry_count_log(f, "route odd: client->backend streams: its ring grows to 300KiB"), 1);
#endif
    close_fd(c);
    close_fd(b);
    close_fd(lfd);
    ferry_stop(f);
}

/*
 * buffer_budget bounds what grown rings (or pipes) take per worker: with room for one, a pair
 * whose ring grew and is held full by a backend that does not read leaves a second streaming pair
 * at buffer_size; once the first pair has drained and closed, the next stream grows again. Every
 * byte of the three streams arrives intact.
 */
static void test_buffer_budget_bounds_grown_buffers(void **state)
{
    (void)state;
    int bport, lport = free_port(AF_INET);
    int lfd = listen_loopback(AF_INET, 16, 0, &bport);
    assert_ok(lfd, "backend listen");
    struct ferry *f = ferry_start(tfmt("log: {level: debug}\n"
                                       "buffer_budget: 256KiB\n" E2E_ROUTES "  - name: grow\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    backends: [127.0.0.1:%d]\n",
                                       lport, bport));
    const char *grew = "route grow: client->backend streams: its " GROWN " grows to 256KiB";

    /* Pair 1: the backend reads nothing until told, so the grown ring stays full. */
    int c1, b1;
    connect_through(lport, lfd, &c1, &b1);
    struct pump *tx1 = pump_send(c1, 8 * MIB, 21, true, 30000);
    assert_true(ferry_wait_log(f, grew, NET_TIMEOUT_MS));
    assert_true(pump_wait_stalled(tx1, 200, 10000));

    /* Pair 2 streams as much while pair 1 holds the budget: it never grows. */
    int c2, b2;
    connect_through(lport, lfd, &c2, &b2);
    stream_one_way(c2, b2, 8 * MIB, 22);
    assert_int_equal(ferry_count_log(f, grew), 1);

    /* Pair 1 drains: everything it held arrives, and its ring goes back. */
    struct pump *rx1 = pump_recv(b1, 10000);
    struct pump_result sent, got;
    pump_join(tx1, 30000, &sent);
    pump_join(rx1, 30000, &got);
    assert_same_stream(&sent, &got, 8 * MIB);
    /* A grown pipe keeps its size while its pair lives, a drained ring goes back at once: close
     * pair 1 so that both are given back. */
    char client1[64];
    assert_ok(local_addr_str(c1, client1, sizeof client1), "getsockname");
    close_fd(b1);
    assert_int_equal(wait_closed(c1, NET_TIMEOUT_MS, NULL), 0);
    char line[1024];
    ferry_wait_access(f, client1, NET_TIMEOUT_MS, line, sizeof line);

    /* The budget is free again: pair 3 grows. */
    int c3, b3;
    connect_through(lport, lfd, &c3, &b3);
    stream_one_way(c3, b3, 8 * MIB, 23);
    assert_true(ferry_wait_log_count(f, grew, 2, NET_TIMEOUT_MS));
    int fds[] = {c1, c2, b2, c3, b3, lfd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        close_fd(fds[i]);
    ferry_stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        E2E_TEST(test_echo),
        E2E_TEST(test_server_speaks_first),
        E2E_TEST(test_64mib_client_to_backend),
        E2E_TEST(test_64mib_backend_to_client),
        E2E_TEST(test_64mib_both_directions_at_once),
        E2E_TEST(test_half_close_client_first),
        E2E_TEST(test_half_close_backend_first),
#ifndef FERRY_E2E_SPLICE
        E2E_TEST(test_last_bytes_and_fin_leave_in_one_segment),
#endif
        E2E_TEST(test_handshake_ack_rides_on_the_first_bytes),
        E2E_TEST(test_a_backend_sees_a_silent_client_at_once),
        E2E_TEST(test_fin_behind_buffered_data),
        E2E_TEST(test_backend_reset_resets_client),
        E2E_TEST(test_client_reset_resets_backend),
        E2E_TEST(test_reset_while_streaming_keeps_ferry_alive),
        E2E_TEST(test_ipv6_listener),
        E2E_TEST(test_pipes_only_while_bytes_are_in_flight),
        E2E_TEST(test_urgent_byte_dropped_stream_goes_on),
        E2E_TEST(test_urgent_byte_then_fin),
        E2E_TEST(test_streaming_direction_grows_its_buffer),
        E2E_TEST(test_buffer_budget_bounds_grown_buffers),
        E2E_TEST(test_growth_counts_what_the_kernel_grants),
    };
    return E2E_MAIN(tests);
}
