/*
 * End-to-end: the access log. One line per finished connection, in the contract's format, with
 * the route, the client and backend addresses, the bytes each way, the duration and the cause
 * (client_fin vs backend_fin, connect_refused with backend=-); the JSON format carries the same
 * fields with numbers as numbers; log.access: false turns the lines off.
 */
#include "e2e.h"

#include <ctype.h>
#include <fcntl.h>
#include <signal.h>

struct pair {
    struct ferry *ferry;
    int bport;
    int client;
    int backend;
    char client_addr[64];
};

static void open_pair(struct pair *p, const char *top_extra)
{
    int lport = free_port(AF_INET);
    int lfd = listen_loopback(AF_INET, 16, 0, &p->bport);
    assert_ok(lfd, "backend listen");
    p->ferry = ferry_start(tfmt("%s"
                                "routes:\n"
                                "  - name: acc\n"
                                "    listen: 127.0.0.1:%d\n"
                                "    backends: [127.0.0.1:%d]\n",
                                top_extra, lport, p->bport));
    p->client = connect_ok(lport);
    assert_ok(local_addr_str(p->client, p->client_addr, sizeof p->client_addr), "getsockname");
    p->backend = accept_timeout(lfd, NET_TIMEOUT_MS);
    assert_ok(p->backend, "ferry did not connect to the backend");
}

/* "2026-11-26T20:09:37.123Z info access ..." */
static void assert_text_prefix(const char *line)
{
    static const char *shape = "dddd-dd-ddTdd:dd:dd.dddZ info access ";
    for (size_t i = 0; shape[i] != '\0'; i++) {
        bool ok = shape[i] == 'd' ? isdigit((unsigned char)line[i]) != 0 : line[i] == shape[i];
        if (!ok) {
            fail_msg("access line does not start like \"2026-11-26T20:09:37.123Z info access \": "
                     "%s",
                     line);
        }
    }
}

static void test_client_fin_line(void **state)
{
    (void)state;
    struct pair p;
    open_pair(&p, "");
    char buf[8], line[1024], backend[64], dur[32];
    int64_t t0 = now_ms();
    send_str(p.client, "12345");
    recv_expect(p.backend, "12345");
    send_str(p.backend, "eleven byte");
    recv_expect(p.client, "eleven byte");
    sleep_ms(150); /* a duration worth measuring */
    shut_wr(p.client);
    assert_int_equal(recv_some(p.backend, buf, sizeof buf, NET_TIMEOUT_MS), 0);
    close_fd(p.backend);
    assert_int_equal(wait_closed(p.client, NET_TIMEOUT_MS, NULL), 0);
    int64_t elapsed = now_ms() - t0;

    ferry_wait_access(p.ferry, p.client_addr, NET_TIMEOUT_MS, line, sizeof line);
    assert_text_prefix(line);
    addr_str(AF_INET, p.bport, backend, sizeof backend);
    assert_field(line, "route", "acc");
    assert_field(line, "client", p.client_addr);
    assert_field(line, "backend", backend);
    assert_field_num(line, "bytes_from_client", 5);
    assert_field_num(line, "bytes_to_client", 11);
    assert_field(line, "cause", "client_fin");
    assert_true(log_field(line, "duration_ms", dur, sizeof dur));
    long d = strtol(dur, NULL, 10);
    if (d < 150 || d > elapsed + 50) {
        fail_msg("duration_ms=%ld, want between 150 and %lld", d, (long long)elapsed + 50);
    }
    assert_int_equal(ferry_count_log(p.ferry, "cause="), 1);
    ferry_stop(p.ferry);
}

static void test_backend_fin_line(void **state)
{
    (void)state;
    struct pair p;
    open_pair(&p, "");
    char line[1024];
    send_str(p.client, "abc");
    recv_expect(p.backend, "abc");
    send_str(p.backend, "goodbye");
    close_fd(p.backend);
    recv_expect(p.client, "goodbye");
    assert_int_equal(wait_closed(p.client, NET_TIMEOUT_MS, NULL), 0);
    close_fd(p.client);

    ferry_wait_access(p.ferry, p.client_addr, NET_TIMEOUT_MS, line, sizeof line);
    assert_field(line, "cause", "backend_fin");
    assert_field_num(line, "bytes_from_client", 3);
    assert_field_num(line, "bytes_to_client", 7);
    ferry_stop(p.ferry);
}

static void test_connect_refused_line(void **state)
{
    (void)state;
    int down, down2, lport = free_port(AF_INET);
    assert_ok(refusing_port(AF_INET, &down), "refusing port");
    assert_ok(refusing_port(AF_INET, &down2), "refusing port");
    /* Two backends down, one attempt allowed: one is tried, and only it is marked down. */
    struct ferry *f = ferry_start(tfmt("routes:\n"
                                       "  - name: nobody\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    connect_attempts: 1\n"
                                       "    backends: [127.0.0.1:%d, 127.0.0.1:%d]\n",
                                       lport, down, down2));
    int c = connect_ok(lport);
    char client[64], line[1024];
    assert_ok(local_addr_str(c, client, sizeof client), "getsockname");
    /* It sent nothing, so nothing of its went unanswered: a FIN, not a reset. */
    assert_int_equal(wait_closed(c, NET_TIMEOUT_MS, NULL), 0);
    ferry_wait_access(f, client, NET_TIMEOUT_MS, line, sizeof line);
    assert_field(line, "route", "nobody");
    assert_field(line, "backend", "-");
    assert_field(line, "cause", "connect_refused");
    assert_field_num(line, "bytes_to_client", 0);
    assert_field_num(line, "attempts", 1);
    assert_int_equal(ferry_count_log(f, " is down"), 1);
    ferry_stop(f);
}

/* In JSON, "key" is followed by a bare number. */
static void assert_json_number(const char *line, const char *key, long long want)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\"", key);
    const char *p = strstr(line, pat);
    if (p == NULL) {
        fail_msg("no \"%s\" in JSON line: %s", key, line);
        return;
    }
    p += strlen(pat);
    p += strspn(p, " \t");
    assert_int_equal(*p, ':');
    p++;
    p += strspn(p, " \t");
    if (!isdigit((unsigned char)*p)) {
        fail_msg("\"%s\" is not a JSON number: %s", key, line);
    }
    assert_int_equal(strtoll(p, NULL, 10), want);
}

static void test_json_format(void **state)
{
    (void)state;
    struct pair p;
    open_pair(&p, "log: {format: json}\n");
    char line[1024];
    send_str(p.client, "json!");
    recv_expect(p.backend, "json!");
    send_str(p.backend, "ok");
    recv_expect(p.client, "ok");
    close_fd(p.client);
    assert_int_equal(wait_closed(p.backend, NET_TIMEOUT_MS, NULL), 0);
    close_fd(p.backend);

    ferry_wait_access(p.ferry, p.client_addr, NET_TIMEOUT_MS, line, sizeof line);
    assert_field(line, "route", "acc");
    assert_field(line, "cause", "client_fin");
    assert_json_number(line, "bytes_from_client", 5);
    assert_json_number(line, "bytes_to_client", 2);
    assert_true(log_field(line, "time", (char[64]){0}, 64));
    assert_true(log_field(line, "level", (char[64]){0}, 64));
    assert_true(log_field(line, "msg", (char[64]){0}, 64));
    ferry_stop(p.ferry);
    /* Every line is one JSON object. */
    char *err = owned(ferry_stderr(p.ferry));
    for (char *l = strtok(err, "\n"); l != NULL; l = strtok(NULL, "\n")) {
        size_t n = strlen(l);
        if (l[0] != '{' || l[n - 1] != '}') {
            fail_msg("not a JSON object line: %s", l);
        }
    }
}

static void test_access_disabled(void **state)
{
    (void)state;
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt("log: {access: false}\n"
                                       "routes:\n"
                                       "  - name: quiet\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    backends: [127.0.0.1:%d]\n",
                                       lport, backend_port(b)));
    int c = connect_ok(lport);
    send_str(c, "hush");
    recv_expect(c, "hush");
    shut_wr(c);
    assert_int_equal(wait_closed(c, NET_TIMEOUT_MS, NULL), 0);
    close_fd(c);
    assert_true(backend_wait_active(b, 0, NET_TIMEOUT_MS));
    /* Whatever ferry would log about the pair is written before it exits. */
    ferry_stop(f);
    assert_int_equal(ferry_count_log(f, "cause="), 0);
    assert_int_equal(ferry_count_log(f, " access "), 0);
}

/* One connection through route port lport to an echo backend, closed by the client. */
static void echo_once(int lport)
{
    int c = connect_ok(lport);
    send_str(c, "ping");
    recv_expect(c, "ping");
    shut_wr(c);
    assert_int_equal(wait_closed(c, NET_TIMEOUT_MS, NULL), 0);
    close_fd(c);
}

/*
 * A log collector that stops reading must not stop the relay. With stderr's pipe full, ferry
 * keeps serving connections and still stops on SIGTERM. Each line that found no room is counted,
 * and the count is logged once the reader catches up, so every connection is accounted for.
 */
static void test_stalled_log_reader(void **state)
{
    (void)state;
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt("routes:\n"
                                       "  - name: busy\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    backends: [127.0.0.1:%d]\n",
                                       lport, backend_port(b)));
    int err_pipe = ferry_stderr_pipe(f);
    /* ferry gives a reader that falls behind for a moment 1 MiB of room... */
    assert_true(fcntl(err_pipe, F_GETPIPE_SZ) >= 1 << 20);
    /* ...and this test takes most of it away again, so that a few lines fill the pipe. */
    ferry_hold_stderr(f, true);
    assert_int_equal(fcntl(err_pipe, F_SETPIPE_SZ, 4096), 4096);

    enum { STALLED = 100 };
    for (int i = 0; i < STALLED; i++) {
        echo_once(lport);
    }
    ferry_hold_stderr(f, false);
    echo_once(lport);
    assert_true(
        ferry_wait_log(f, "lines dropped: the reader of stderr did not keep up", NET_TIMEOUT_MS));
    char *log = ferry_stderr(f);
    const char *warn = strstr(log, " warn log: ");
    assert_non_null(warn);
    long lost = strtol(warn + strlen(" warn log: "), NULL, 10);
    free(log);
    /* 100 lines of about 150 bytes cannot all fit in 4 KiB, and the first ones did. */
    if (lost < STALLED / 2 || lost >= STALLED) {
        fail_msg("%ld of %d access lines dropped", lost, STALLED);
    }
    assert_true(
        ferry_wait_log_count(f, "cause=client_fin", STALLED + 1 - (int)lost, NET_TIMEOUT_MS));
    assert_int_equal(ferry_count_log(f, "cause=client_fin"), STALLED + 1 - (int)lost);

    /* The reader stalls again: SIGTERM still stops ferry. */
    ferry_hold_stderr(f, true);
    for (int i = 0; i < STALLED; i++) {
        echo_once(lport);
    }
    ferry_signal(f, SIGTERM);
    int64_t deadline = now_ms() + 5000;
    while (ferry_alive(f) && now_ms() < deadline) {
        sleep_ms(5);
    }
    assert_false(ferry_alive(f));
    ferry_hold_stderr(f, false);
    assert_int_equal(ferry_wait_exit(f, NET_TIMEOUT_MS), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        E2E_TEST(test_client_fin_line),      E2E_TEST(test_backend_fin_line),
        E2E_TEST(test_connect_refused_line), E2E_TEST(test_json_format),
        E2E_TEST(test_access_disabled),      E2E_TEST(test_stalled_log_reader),
    };
    return E2E_MAIN(tests);
}
