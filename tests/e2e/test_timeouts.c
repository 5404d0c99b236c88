/*
 * End-to-end: timeouts. The idle timeout closes both sides of a pair in which no byte moved for
 * idle_timeout (also when the transfer is stalled or the pair half-closed), any byte re-arms it;
 * the connect timeout gives up on a black-holed backend, closes the client (or tries the next
 * backend when attempts remain) and logs the right cause.
 */
#include "e2e.h"

/* A client connected through ferry to a backend the test drives itself. */
struct pair {
    struct ferry *ferry;
    int client;
    int backend;
    char client_addr[64];
};

static void open_pair(struct pair *p, const char *route_extra)
{
    int bport, lport = free_port(AF_INET);
    int lfd = listen_loopback(AF_INET, 16, 0, &bport);
    assert_ok(lfd, "backend listen");
    p->ferry = ferry_start(tfmt(E2E_ROUTES "  - name: t\n"
                                           "    listen: 127.0.0.1:%d\n"
                                           "%s"
                                           "    backends: [127.0.0.1:%d]\n",
                                lport, route_extra, bport));
    p->client = connect_ok(lport);
    assert_ok(local_addr_str(p->client, p->client_addr, sizeof p->client_addr), "getsockname");
    p->backend = accept_timeout(lfd, NET_TIMEOUT_MS);
    assert_ok(p->backend, "ferry did not connect to the backend");
}

/* Asserts fd gets closed between min_ms and max_ms after t0, by a FIN (want 0) or a RST (want
 * -ECONNRESET); returns elapsed ms. */
static int64_t assert_closed_between(int fd, int64_t t0, int min_ms, int max_ms, const char *who,
                                     int want)
{
    int rc = wait_closed(fd, max_ms + 1000, NULL);
    int64_t elapsed = now_ms() - t0;
    if (rc != 0 && rc != -ECONNRESET) {
        fail_msg("%s: not closed within %d ms (%s)", who, max_ms + 1000, strerror(-rc));
    }
    if (rc != want) {
        fail_msg("%s: closed by a %s, want a %s", who, rc == 0 ? "FIN" : "reset",
                 want == 0 ? "FIN" : "reset");
    }
    if (elapsed < min_ms || elapsed > max_ms) {
        fail_msg("%s: closed after %lld ms, want between %d and %d ms", who, (long long)elapsed,
                 min_ms, max_ms);
    }
    return elapsed;
}

static void test_idle_timeout_closes_both_sides(void **state)
{
    (void)state;
    struct pair p;
    open_pair(&p, "    idle_timeout: 300ms\n");
    char line[1024];

    send_str(p.client, "x");
    recv_expect(p.backend, "x");
    send_str(p.backend, "y");
    recv_expect(p.client, "y");
    int64_t t0 = now_ms();
    assert_closed_between(p.client, t0, 250, 2000, "client", 0);
    assert_closed_between(p.backend, t0, 250, 2000, "backend", 0);
    ferry_wait_access(p.ferry, p.client_addr, NET_TIMEOUT_MS, line, sizeof line);
    assert_field(line, "cause", "idle_timeout");
    assert_field_num(line, "bytes_from_client", 1);
    assert_field_num(line, "bytes_to_client", 1);
    ferry_stop(p.ferry);
}

static void test_idle_timeout_rearmed_by_traffic(void **state)
{
    (void)state;
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt(E2E_ROUTES "  - name: t\n"
                                                  "    listen: 127.0.0.1:%d\n"
                                                  "    idle_timeout: 300ms\n"
                                                  "    backends: [127.0.0.1:%d]\n",
                                       lport, backend_port(b)));
    int c = connect_ok(lport);
    /* 12 exchanges 100 ms apart: the pair lives 4 idle timeouts but is never idle for one. */
    int64_t t0 = now_ms();
    for (int i = 0; i < 12; i++) {
        send_str(c, "tick");
        recv_expect(c, "tick");
        sleep_ms(100);
    }
    assert_true(now_ms() - t0 >= 1200);
    send_str(c, "still open");
    recv_expect(c, "still open");
    /* Then, silent, it is closed. */
    assert_closed_between(c, now_ms(), 250, 2000, "client", 0);
    ferry_stop(f);
}

/* The backend sends far more than the client reads: no byte moves, so the pair is idle. */
static void test_idle_timeout_stalled_transfer(void **state)
{
    (void)state;
    struct pair p;
    open_pair(&p, "    idle_timeout: 300ms\n");
    char line[1024];

    struct pump *tx = pump_send(p.backend, 256u * MIB, 7, false, 10000);
    /* The backend's sends fail once ferry closes the stalled pair. The client's socket, which
     * reads nothing, may still take bytes now and then for a while (a loaded machine stretched
     * that to 5 s once while another test streamed): each of them re-arms the idle timeout. */
    struct pump_result sent;
    int64_t t0 = now_ms();
    pump_join(tx, 20000, &sent);
    int64_t elapsed = now_ms() - t0;
    if (sent.err == 0) {
        fail_msg("the backend sent all 256 MiB to a client that reads nothing");
    }
    if (sent.err != -ECONNRESET && sent.err != -EPIPE) {
        fail_msg("backend send failed with %s, want a reset from ferry", strerror(-sent.err));
    }
    assert_true(elapsed >= 250);
    /* Bytes for the client were still held: it gets a reset, not a FIN after a cut stream. */
    assert_int_equal(wait_closed(p.client, NET_TIMEOUT_MS, NULL), -ECONNRESET);
    ferry_wait_access(p.ferry, p.client_addr, NET_TIMEOUT_MS, line, sizeof line);
    assert_field(line, "cause", "idle_timeout");
    ferry_stop(p.ferry);
}

static void test_idle_timeout_half_closed_pair(void **state)
{
    (void)state;
    struct pair p;
    open_pair(&p, "    idle_timeout: 300ms\n");
    char buf[16], line[1024];

    shut_wr(p.client);
    assert_int_equal(recv_some(p.backend, buf, sizeof buf, NET_TIMEOUT_MS), 0);
    /* The backend never answers nor closes: the half-closed pair is still subject to the timeout.
     */
    int64_t t0 = now_ms();
    assert_closed_between(p.client, t0, 200, 2000, "client", 0);
    ferry_wait_access(p.ferry, p.client_addr, NET_TIMEOUT_MS, line, sizeof line);
    assert_field(line, "cause", "idle_timeout");
    ferry_stop(p.ferry);
}

static void test_connect_timeout_closes_client(void **state)
{
    (void)state;
    int hole = black_hole_port();
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt(E2E_ROUTES "  - name: hole\n"
                                                  "    listen: 127.0.0.1:%d\n"
                                                  "    connect_timeout: 200ms\n"
                                                  "    connect_attempts: 1\n"
                                                  "    backends: [127.0.0.1:%d]\n",
                                       lport, hole));
    int c = connect_ok(lport);
    int64_t t0 = now_ms();
    char client[64], line[1024];
    assert_ok(local_addr_str(c, client, sizeof client), "getsockname");
    send_str(c, "anyone there?");
    assert_closed_between(c, t0, 150, 1500, "client", -ECONNRESET);
    ferry_wait_access(f, client, NET_TIMEOUT_MS, line, sizeof line);
    assert_field(line, "route", "hole");
    assert_field(line, "cause", "connect_timeout");
    ferry_stop(f);
}

/* The first attempt hangs; after its timeout the next backend gets the bytes sent meanwhile. */
static void test_connect_timeout_then_next_backend(void **state)
{
    (void)state;
    int hole = black_hole_port();
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt(E2E_ROUTES "  - name: hole\n"
                                                  "    listen: 127.0.0.1:%d\n"
                                                  "    connect_timeout: 200ms\n"
                                                  "    connect_attempts: 2\n"
                                                  "    backends: [127.0.0.1:%d, 127.0.0.1:%d]\n",
                                       lport, hole, backend_port(b)));
    /* Two connections: whichever backend the balancer tries first, both must be served. */
    for (int i = 0; i < 2; i++) {
        int c = connect_ok(lport);
        send_str(c, "sent before any backend answered");
        recv_expect(c, "sent before any backend answered");
        close_fd(c);
    }
    assert_int_equal(backend_accepted(b), 2);
    ferry_stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        E2E_TEST(test_idle_timeout_closes_both_sides),
        E2E_TEST(test_idle_timeout_rearmed_by_traffic),
        E2E_TEST(test_idle_timeout_stalled_transfer),
        E2E_TEST(test_idle_timeout_half_closed_pair),
        E2E_TEST(test_connect_timeout_closes_client),
        E2E_TEST(test_connect_timeout_then_next_backend),
    };
    return E2E_MAIN(tests);
}
