/*
 * End-to-end: backend choice. A refused backend makes ferry try the next one, keeping the bytes
 * the client sent meanwhile; when every backend is down the client is closed at once (within
 * 0.5 s; reset if it had sent bytes) with the cause logged; the attempts go to different backends;
 * once a backend has accepted there is no failover; smooth weighted round robin splits connections
 * by weight.
 */
#include "e2e.h"
#include "reload_support.h"

static void test_refused_backend_next_backend(void **state)
{
    (void)state;
    int down;
    assert_ok(refusing_port(AF_INET, &down), "refusing port");
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt("routes:\n"
                                       "  - name: r\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    connect_attempts: 2\n"
                                       "    backends:\n"
                                       "      - 127.0.0.1:%d\n"
                                       "      - 127.0.0.1:%d\n",
                                       lport, down, backend_port(b)));
    char want_backend[64];
    addr_str(AF_INET, backend_port(b), want_backend, sizeof want_backend);
    /* Several connections, so the refused backend comes first in the balance order at least once.
     */
    for (int i = 0; i < 4; i++) {
        int c = connect_ok(lport);
        char client[64], line[1024], msg[64];
        assert_ok(local_addr_str(c, client, sizeof client), "getsockname");
        snprintf(msg, sizeof msg, "connection %d, sent at once", i);
        send_str(c, msg);
        recv_expect(c, msg);
        close_fd(c);
        ferry_wait_access(f, client, NET_TIMEOUT_MS, line, sizeof line);
        assert_field(line, "backend", want_backend);
        assert_field(line, "cause", "client_fin");
    }
    assert_int_equal(backend_accepted(b), 4);
    ferry_stop(f);
}

static void test_all_backends_down_client_closed_fast(void **state)
{
    (void)state;
    int down1, down2;
    assert_ok(refusing_port(AF_INET, &down1), "refusing port");
    assert_ok(refusing_port(AF_INET, &down2), "refusing port");
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt("routes:\n"
                                       "  - name: down\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    connect_attempts: 3\n"
                                       "    backends: [127.0.0.1:%d, 127.0.0.1:%d]\n",
                                       lport, down1, down2));
    for (int i = 0; i < 3; i++) {
        int64_t t0 = now_ms();
        int c = connect_ok(lport);
        char client[64], line[1024], cause[64];
        assert_ok(local_addr_str(c, client, sizeof client), "getsockname");
        int rc = wait_closed(c, 2000, NULL);
        int64_t elapsed = now_ms() - t0;
        /* It sent nothing, so nothing of its was lost: a FIN. */
        if (rc != 0) {
            fail_msg("connection %d: wait_closed %d (%s), want a FIN", i, rc,
                     rc == -ETIMEDOUT ? "still open after 2 s" : strerror(-rc));
        }
        if (elapsed > 500) {
            fail_msg("connection %d: closed after %lld ms, want within 500 ms", i,
                     (long long)elapsed);
        }
        close_fd(c);
        ferry_wait_access(f, client, NET_TIMEOUT_MS, line, sizeof line);
        assert_field(line, "route", "down");
        assert_true(log_field(line, "cause", cause, sizeof cause));
        /* Refused attempts, or (once ferry marked both down) no backend left to try. */
        if (strcmp(cause, "connect_refused") != 0 && strcmp(cause, "no_backend") != 0) {
            fail_msg("cause=%s, want connect_refused or no_backend: %s", cause, line);
        }
    }
    ferry_stop(f);
}

/* A backend written as a host name is reported down with the address that was tried. */
static void test_down_named_backend_shows_the_address_tried(void **state)
{
    (void)state;
    int down;
    assert_ok(refusing_port(AF_INET, &down), "refusing port");
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt("routes:\n"
                                       "  - name: named\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    connect_attempts: 1\n"
                                       "    backends: [localhost:%d]\n",
                                       lport, down));
    int c = connect_ok(lport);
    assert_true(wait_closed(c, NET_TIMEOUT_MS, NULL) != -ETIMEDOUT);
    close_fd(c);
    const char *needle = tfmt("backend localhost:%d (", down);
    assert_true(ferry_wait_log(f, needle, NET_TIMEOUT_MS));
    const char *line = log_line(f, needle);
    /* localhost is 127.0.0.1 or ::1, whichever the resolver returned first. */
    if (!strstr(line, tfmt("(127.0.0.1:%d) of route named is down", down)) &&
        !strstr(line, tfmt("([::1]:%d) of route named is down", down)))
        fail_msg("no address tried in: %s", line);
    ferry_stop(f);
}

/* A client whose bytes reached no backend is reset: a FIN would make its request look answered
 * with nothing (an "empty reply"). The backend does not answer SYNs, so the bytes are surely in
 * before the 300 ms connect timeout gives up. */
static void test_request_that_reached_no_backend_is_reset(void **state)
{
    (void)state;
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt("routes:\n"
                                       "  - name: hole\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    connect_timeout: 300ms\n"
                                       "    connect_attempts: 1\n"
                                       "    backends: [127.0.0.1:%d]\n",
                                       lport, black_hole_port()));
    int c = connect_ok(lport);
    char client[64], line[1024];
    assert_ok(local_addr_str(c, client, sizeof client), "getsockname");
    send_str(c, "GET / HTTP/1.0\r\n\r\n");
    int rc = wait_closed(c, NET_TIMEOUT_MS, NULL);
    if (rc != -ECONNRESET)
        fail_msg("wait_closed %d (%s), want a reset", rc,
                 rc == -ETIMEDOUT ? "still open"
                 : rc             ? strerror(-rc)
                                  : "FIN");
    close_fd(c);
    ferry_wait_access(f, client, NET_TIMEOUT_MS, line, sizeof line);
    assert_field(line, "cause", "connect_timeout");
    assert_field_num(line, "bytes_from_client", 0); /* counted when delivered */

    /* A client that sent only its FIN lost nothing: it gets a FIN. */
    c = connect_ok(lport);
    shut_wr(c);
    rc = wait_closed(c, NET_TIMEOUT_MS, NULL);
    if (rc != 0)
        fail_msg("FIN-only client: wait_closed %d (%s), want a FIN", rc,
                 rc == -ETIMEDOUT ? "still open" : strerror(-rc));
    close_fd(c);
    ferry_stop(f);
}

/* With as many attempts as backends, each attempt goes to a different backend: all are tried. */
static void test_attempts_try_different_backends(void **state)
{
    (void)state;
    int down1, down2;
    assert_ok(refusing_port(AF_INET, &down1), "refusing port");
    assert_ok(refusing_port(AF_INET, &down2), "refusing port");
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt("routes:\n"
                                       "  - name: r\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    connect_attempts: 3\n"
                                       "    backends: [127.0.0.1:%d, 127.0.0.1:%d, 127.0.0.1:%d]\n",
                                       lport, down1, down2, backend_port(b)));
    for (int i = 0; i < 6; i++) {
        int c = connect_ok(lport);
        char msg[32];
        snprintf(msg, sizeof msg, "attempt %d", i);
        send_str(c, msg);
        recv_expect(c, msg);
        close_fd(c);
    }
    assert_int_equal(backend_accepted(b), 6);
    ferry_stop(f);
}

/*
 * Once a backend accepted and bytes flowed, its failure is the client's failure: ferry must not
 * replay the connection to another backend.
 */
static void test_no_failover_after_connect(void **state)
{
    (void)state;
    int aport, lport = free_port(AF_INET);
    int alfd = listen_loopback(AF_INET, 16, 0, &aport);
    assert_ok(alfd, "listen");
    struct backend *other = backend_start(AF_INET, BACKEND_ECHO);
    /* The heavier backend is the first choice of smooth weighted round robin. */
    struct ferry *f = ferry_start(tfmt("routes:\n"
                                       "  - name: r\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    connect_attempts: 2\n"
                                       "    backends:\n"
                                       "      - address: 127.0.0.1:%d\n"
                                       "        weight: 10\n"
                                       "      - address: 127.0.0.1:%d\n"
                                       "        weight: 1\n",
                                       lport, aport, backend_port(other)));
    int c = connect_ok(lport);
    char client[64], line[1024], buf[64];
    assert_ok(local_addr_str(c, client, sizeof client), "getsockname");
    send_str(c, "request");
    int a = accept_timeout(alfd, NET_TIMEOUT_MS);
    assert_ok(a, "ferry did not connect to the first backend");
    recv_expect(a, "request");
    reset_fd(a);
    ssize_t r = recv_some(c, buf, sizeof buf, NET_TIMEOUT_MS);
    if (r != -ECONNRESET) {
        fail_msg("client: want ECONNRESET after its backend reset, got %s",
                 r == 0  ? "EOF"
                 : r > 0 ? "data (replayed to another backend?)"
                         : strerror((int)-r));
    }
    ferry_wait_access(f, client, NET_TIMEOUT_MS, line, sizeof line);
    assert_field(line, "cause", "backend_reset");
    if (backend_accepted(other) != 0) {
        fail_msg("the connection was replayed to the other backend after the first one accepted");
    }
    ferry_stop(f);
}

/* Which of the backends greeted us. */
static int greeted_by(int fd, struct backend *const *bs, int n)
{
    char buf[64];
    size_t len = strlen(backend_greeting(bs[0]));
    ssize_t r = recv_exact(fd, buf, len, NET_TIMEOUT_MS);
    if (r != (ssize_t)len) {
        fail_msg("no greeting through ferry (%zd)", r);
    }
    for (int i = 0; i < n; i++) {
        if (memcmp(buf, backend_greeting(bs[i]), len) == 0) {
            return i;
        }
    }
    fail_msg("unknown greeting \"%.*s\"", (int)len, buf);
    return -1;
}

static void test_round_robin_weights(void **state)
{
    (void)state;
    struct backend *bs[2] = {backend_start(AF_INET, BACKEND_GREET),
                             backend_start(AF_INET, BACKEND_GREET)};
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt("routes:\n"
                                       "  - name: rr\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    balance: round_robin\n"
                                       "    backends:\n"
                                       "      - address: 127.0.0.1:%d\n"
                                       "        weight: 2\n"
                                       "      - address: 127.0.0.1:%d\n"
                                       "        weight: 1\n",
                                       lport, backend_port(bs[0]), backend_port(bs[1])));
    int count[2] = {0, 0};
    for (int i = 0; i < 30; i++) {
        int c = connect_ok(lport);
        count[greeted_by(c, bs, 2)]++;
        close_fd(c);
    }
    if (count[0] != 20 || count[1] != 10) {
        fail_msg("weights 2:1 over 30 connections gave %d:%d, want 20:10", count[0], count[1]);
    }
    assert_int_equal(backend_accepted(bs[0]), 20);
    assert_int_equal(backend_accepted(bs[1]), 10);
    ferry_stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        E2E_TEST(test_refused_backend_next_backend),
        E2E_TEST(test_all_backends_down_client_closed_fast),
        E2E_TEST(test_request_that_reached_no_backend_is_reset),
        E2E_TEST(test_down_named_backend_shows_the_address_tried),
        E2E_TEST(test_attempts_try_different_backends),
        E2E_TEST(test_no_failover_after_connect),
        E2E_TEST(test_round_robin_weights),
    };
    return E2E_MAIN(tests);
}
