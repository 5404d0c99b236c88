/*
 * End-to-end: live reload. ferry follows edits of its YAML file without dropping anything: a
 * changed backend takes new connections within a second of the write while a 32 MiB transfer
 * opened before it finishes on the old backend, byte for byte; invalid edits (YAML syntax, an
 * unknown key, a listen address another process holds, a backend that is the route's own listen
 * address) are rejected with FILE:LINE: and change nothing; 100 reloads in a row under continuous
 * client traffic fail no connection; a file replaced by rename, a Kubernetes ConfigMap symlink
 * swap and a file behind a symlink into another directory are all noticed without a signal;
 * added routes and listen addresses accept and removed ones refuse; SIGHUP on an unchanged file
 * is "no change" and disturbs nothing; a listener whose address stays keeps its very socket even
 * when its route is renamed; with reload.watch false only SIGHUP reloads; and a backend written
 * as a host name follows the name to its new address (every resolve_interval, without an edit),
 * keeps its address while the name does not resolve, and logs each step; a DNS server that never
 * answers does not hold up SIGTERM; a change of workers is reported against the workers that run,
 * and a derived max_connections by its number; a reload's lines are written under the log level it
 * installs; and a listen address moves between a specific address and the wildcard on its port
 * (ferry's own old listener closes first), or, when another socket holds the port, the old listener
 * serves again.
 */
#include "config.h"
#include "e2e.h"
#include "reload_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define BIG (32u * MIB)

/* Reload lines are awaited this long: the debounce is ~150 ms, the rest is slack for ASan. */
#define RELOAD_WAIT_MS 3000

/* YAML of one route `name` from 127.0.0.1:lport to the backend on 127.0.0.1:bport. */
static const char *route_yaml(const char *top, const char *name, int lport, int bport)
{
    return tfmt("%s"
                "routes:\n"
                "  - name: %s\n"
                "    listen: 127.0.0.1:%d\n"
                "    backends: [127.0.0.1:%d]\n",
                top, name, lport, bport);
}

/* Waits for the summary line of reload generation `gen`. */
static void expect_generation(struct ferry *f, int gen)
{
    const char *needle = tfmt("reload generation=%d ", gen);
    if (!ferry_wait_log(f, needle, RELOAD_WAIT_MS)) {
        ferry_dump(f, "missing reload line");
        fail_msg("no \"%s\" line within %d ms", needle, RELOAD_WAIT_MS);
    }
}

/* Asserts that a new connection on lport is answered by backend b. */
static void assert_served_by(int lport, struct backend *b)
{
    int got = served_by(lport, NET_TIMEOUT_MS);
    if (got < 0) {
        fail_msg("connection to 127.0.0.1:%d failed: %s", lport, strerror(-got));
    }
    if (got != backend_port(b)) {
        fail_msg("connection to 127.0.0.1:%d served by backend %d, want %d", lport, got,
                 backend_port(b));
    }
}

/* Asserts that a connect to 127.0.0.1:port is refused. */
static void assert_refused(int port)
{
    int fd = tcp_connect(AF_INET, port, NET_TIMEOUT_MS);
    if (fd >= 0) {
        close_fd(fd);
        fail_msg("connect to 127.0.0.1:%d succeeded, want ECONNREFUSED", port);
    }
    if (fd != -ECONNREFUSED) {
        fail_msg("connect to 127.0.0.1:%d failed with %s, want ECONNREFUSED", port, strerror(-fd));
    }
}

/* One echo round trip on an established connection. */
static void assert_echo(int fd, const char *msg)
{
    send_str(fd, msg);
    recv_expect(fd, msg);
}

/* ---- 1. a backend change: new connections move, an open transfer stays ---------------------- */

/* A deterministic byte stream sent from the test's thread, hashed as it goes. */
struct stream {
    uint64_t state;
    uint64_t sent;
    struct sha256 sha;
};

static void stream_send(int fd, struct stream *s, uint64_t n)
{
    static uint64_t chunk[8192];
    while (n > 0) {
        for (size_t i = 0; i < sizeof chunk / sizeof chunk[0]; i++) {
            s->state ^= s->state >> 12;
            s->state ^= s->state << 25;
            s->state ^= s->state >> 27;
            chunk[i] = s->state * 0x2545F4914F6CDD1DULL;
        }
        size_t len = n < sizeof chunk ? (size_t)n : sizeof chunk;
        sha256_update(&s->sha, chunk, len);
        int rc = send_all(fd, chunk, len, 10000);
        if (rc != 0) {
            fail_msg("sending the transfer failed after %llu bytes: %s",
                     (unsigned long long)s->sent, strerror(-rc));
        }
        s->sent += len;
        n -= len;
    }
}

static void test_backend_change_moves_new_connections_only(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    struct backend *b = backend_start(AF_INET, BACKEND_GREET);
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(route_yaml("", "web", lport, backend_port(a)));

    /* The long transfer: greeted by A, echoed back, half of it sent before the edit. */
    int big = connect_ok(lport);
    char client[64];
    assert_ok(local_addr_str(big, client, sizeof client), "getsockname");
    assert_int_equal(read_greeting(big, NET_TIMEOUT_MS), backend_port(a));
    struct pump *rx = pump_recv(big, 20000);
    struct stream s = {.state = 0x243F6A8885A308D3ULL};
    sha256_init(&s.sha);
    stream_send(big, &s, BIG / 2);

    write_file(ferry_config_path(f), route_yaml("", "web", lport, backend_port(b)));
    int64_t written = now_ms();
    int64_t deadline = written + 1000;
    int got;
    do {
        got = served_by(lport, 1000);
        if (got < 0) {
            fail_msg("a new connection failed during the reload: %s", strerror(-got));
        }
        if (got != backend_port(a) && got != backend_port(b)) {
            fail_msg("a new connection was served by unknown backend %d", got);
        }
    } while (got != backend_port(b) && now_ms() < deadline);
    int64_t took = now_ms() - written;
    if (got != backend_port(b)) {
        ferry_dump(f, "new backend not used in time");
        fail_msg("new connections still reached the old backend %lld ms after the write",
                 (long long)took);
    }
    assert_true(took <= 1000);
    expect_generation(f, 2);
    /* From the summary line on, every worker has swapped: no new connection may go to A. */
    int a_before = backend_accepted(a);
    for (int i = 0; i < 5; i++) {
        assert_served_by(lport, b);
    }
    assert_int_equal(backend_accepted(a), a_before);

    /* The old connection finishes on A, every byte intact. */
    stream_send(big, &s, BIG - BIG / 2);
    shut_wr(big);
    struct pump_result received, sent = {.bytes = s.sent};
    sha256_final(&s.sha, sent.sha);
    pump_join(rx, 60000, &received);
    assert_same_stream(&sent, &received, BIG);
    char line[2048];
    ferry_wait_access(f, client, 5000, line, sizeof line);
    assert_field(line, "backend", tfmt("127.0.0.1:%d", backend_port(a)));
    assert_field_num(line, "bytes_from_client", BIG);
    assert_field_num(line, "bytes_to_client", BIG + strlen(backend_greeting(a)));
    close_fd(big);
    ferry_stop(f);
}

/* ---- 2. invalid edits change nothing -------------------------------------------------------- */

struct reject {
    struct backend *a, *b;
    int lport;
    struct ferry *f;
    int conn; /* established through ferry to A before the edit */
};

static void reject_start(struct reject *r)
{
    r->a = backend_start(AF_INET, BACKEND_GREET);
    r->b = backend_start(AF_INET, BACKEND_GREET);
    r->lport = free_port(AF_INET);
    r->f = ferry_start(route_yaml("", "web", r->lport, backend_port(r->a)));
    r->conn = connect_ok(r->lport);
    assert_int_equal(read_greeting(r->conn, NET_TIMEOUT_MS), backend_port(r->a));
}

/*
 * Writes the invalid text and checks that ferry rejected it and runs exactly as before: new
 * connections still go to A, the established one still relays, no generation was made. Returns
 * the rejection line.
 */
static const char *reject_edit(struct reject *r, const char *bad)
{
    write_file(ferry_config_path(r->f), bad);
    if (!ferry_wait_log(r->f, "reload rejected", RELOAD_WAIT_MS)) {
        ferry_dump(r->f, "invalid edit not rejected");
        fail_msg("no \"reload rejected\" line within %d ms of an invalid edit", RELOAD_WAIT_MS);
    }
    for (int i = 0; i < 3; i++) {
        assert_served_by(r->lport, r->a);
    }
    assert_echo(r->conn, "still relayed after the rejected edit\n");
    assert_int_equal(ferry_count_log(r->f, "reload generation="), 0);
    return log_line(r->f, "reload rejected");
}

/* A corrected file applies normally after the rejection: generation 2, backend B. */
static void reject_recover(struct reject *r, const char *good)
{
    write_file(ferry_config_path(r->f), good);
    expect_generation(r->f, 2);
    assert_served_by(r->lport, r->b);
    assert_echo(r->conn, "the old connection outlives the reload too\n");
}

/* Asserts that the rejection line names the file and line: "PATH:LINE:COL: ". */
static void assert_points_at(struct ferry *f, const char *line, int want_line)
{
    const char *at = tfmt("%s:%d:", ferry_config_path(f), want_line);
    const char *p = strstr(line, at);
    if (p != NULL) {
        p += strlen(at);
        size_t digits = strspn(p, "0123456789");
        if (digits > 0 && p[digits] == ':') {
            return;
        }
    }
    fail_msg("rejection line does not point at %sCOL: (line %d of the file): %s", at, want_line,
             line);
}

static void test_reject_yaml_syntax_error(void **state)
{
    (void)state;
    struct reject r;
    reject_start(&r);
    const char *bad = tfmt("routes:\n"
                           "  - name: web\n"
                           "    listen: 127.0.0.1:%d\n"
                           "    backends: [127.0.0.1:%d]]  # bad\n",
                           r.lport, backend_port(r.b));
    const char *line = reject_edit(&r, bad);
    reject_recover(&r, route_yaml("", "web", r.lport, backend_port(r.b)));
    assert_points_at(r.f, line, line_of(bad, "# bad", 1));
    close_fd(r.conn);
    ferry_stop(r.f);
}

static void test_reject_unknown_key(void **state)
{
    (void)state;
    struct reject r;
    reject_start(&r);
    const char *bad = tfmt("routes:\n"
                           "  - name: web\n"
                           "    listen: 127.0.0.1:%d\n"
                           "    backend_timeout: 3s  # bad\n"
                           "    backends: [127.0.0.1:%d]\n",
                           r.lport, backend_port(r.b));
    const char *line = reject_edit(&r, bad);
    assert_non_null(strstr(line, "backend_timeout"));
    reject_recover(&r, route_yaml("", "web", r.lport, backend_port(r.b)));
    assert_points_at(r.f, line, line_of(bad, "# bad", 1));
    close_fd(r.conn);
    ferry_stop(r.f);
}

static void test_reject_listen_address_taken(void **state)
{
    (void)state;
    struct reject r;
    reject_start(&r);
    /* Another process (this one) listens on `taken`; `extra` is free and listed before it, so
     * ferry binds it first and must close it again when the next address fails. */
    int taken;
    int holder = listen_loopback(AF_INET, 16, 0, &taken);
    assert_ok(holder, "listen on the address to take");
    int extra = free_port(AF_INET);
    const char *bad = tfmt("routes:\n"
                           "  - name: web\n"
                           "    listen:\n"
                           "      - 127.0.0.1:%d\n"
                           "      - 127.0.0.1:%d\n"
                           "      - 127.0.0.1:%d  # bad\n"
                           "    backends: [127.0.0.1:%d]\n",
                           r.lport, extra, taken, backend_port(r.b));
    const char *line = reject_edit(&r, bad);
    if (strstr(line, tfmt("127.0.0.1:%d", taken)) == NULL) {
        fail_msg("rejection line does not name the taken address 127.0.0.1:%d: %s", taken, line);
    }
    assert_refused(extra);
    /* The address is still ours: nothing reached ferry through it. */
    int c = tcp_connect(AF_INET, taken, NET_TIMEOUT_MS);
    assert_ok(c, "connect to the taken address");
    int in = accept_timeout(holder, NET_TIMEOUT_MS);
    assert_ok(in, "the holder accepts its own connection");
    close_fd(in);
    close_fd(c);
    reject_recover(&r, tfmt("routes:\n"
                            "  - name: web\n"
                            "    listen: [127.0.0.1:%d, 127.0.0.1:%d]\n"
                            "    backends: [127.0.0.1:%d]\n",
                            r.lport, extra, backend_port(r.b)));
    assert_served_by(extra, r.b);
    assert_points_at(r.f, line, line_of(bad, "# bad", 1));
    close_fd(holder);
    close_fd(r.conn);
    ferry_stop(r.f);
}

/* A backend that is the route's own listen address would loop every connection back into ferry:
 * the reload is refused like a start, and the route keeps its backend. */
static void test_reject_backend_that_loops_into_the_route(void **state)
{
    (void)state;
    struct reject r;
    reject_start(&r);
    const char *bad = tfmt("routes:\n"
                           "  - name: web\n"
                           "    listen: 127.0.0.1:%d\n"
                           "    backends: [127.0.0.1:%d, 127.0.0.1:%d]  # bad\n",
                           r.lport, backend_port(r.b), r.lport);
    const char *line = reject_edit(&r, bad);
    if (strstr(line, "route 'web'") == NULL ||
        strstr(line, "connections would loop back into ferry") == NULL) {
        fail_msg("rejection line does not say the route would loop into ferry: %s", line);
    }
    reject_recover(&r, route_yaml("", "web", r.lport, backend_port(r.b)));
    assert_points_at(r.f, line, line_of(bad, "# bad", 1));
    close_fd(r.conn);
    ferry_stop(r.f);
}

/* ---- 3. 100 reloads under continuous traffic ------------------------------------------------ */

/* A client thread that opens connections one after another, two echo round trips each, then a
 * clean close, and counts every way one can fail. It never asserts (cmocka is not thread-safe). */
struct churn {
    int port;
    pthread_t thread;
    bool joined;
    atomic_bool stop;
    atomic_int ok;
    atomic_int refused, reset, failed;
    char first_error[160]; /* written once by the thread, read after the join */
};

#define CHURN_MAX_CONNECTIONS 100000
#define CHURN_MAX_MS          60000

static void churn_fail(struct churn *c, atomic_int *counter, int n, const char *what, int err)
{
    if (atomic_load(&c->refused) + atomic_load(&c->reset) + atomic_load(&c->failed) == 0) {
        snprintf(c->first_error, sizeof c->first_error, "connection %d: %s: %s", n, what,
                 err ? strerror(err) : "unexpected data");
    }
    atomic_fetch_add(counter, 1);
}

static void *churn_main(void *arg)
{
    struct churn *c = arg;
    int64_t end = now_ms() + CHURN_MAX_MS;
    for (int n = 0; n < CHURN_MAX_CONNECTIONS && !atomic_load(&c->stop) && now_ms() < end; n++) {
        int fd = connect_untracked(c->port, 2000);
        if (fd < 0) {
            churn_fail(c, fd == -ECONNREFUSED ? &c->refused : &c->failed, n, "connect", -fd);
            continue;
        }
        bool good = true;
        for (int round = 0; round < 2 && good; round++) {
            char msg[32], back[32];
            snprintf(msg, sizeof msg, "connection %09d round %d  \n", n, round);
            int rc = send_all(fd, msg, sizeof msg, 2000);
            ssize_t r = rc == 0 ? recv_exact(fd, back, sizeof back, 2000) : rc;
            if (rc != 0 || r < 0) {
                int err = rc != 0 ? -rc : (int)-r;
                bool rst = err == ECONNRESET || err == EPIPE;
                churn_fail(c, rst ? &c->reset : &c->failed, n, rc ? "send" : "recv", err);
                good = false;
            } else if ((size_t)r != sizeof back || memcmp(msg, back, sizeof msg) != 0) {
                churn_fail(c, &c->failed, n, "echo", 0);
                good = false;
            }
        }
        if (good) {
            size_t extra = 0;
            shutdown(fd, SHUT_WR);
            int rc = wait_closed(fd, 2000, &extra);
            if (rc != 0) {
                churn_fail(c, rc == -ECONNRESET ? &c->reset : &c->failed, n, "close", -rc);
            } else if (extra != 0) {
                churn_fail(c, &c->failed, n, "close", 0);
            } else {
                atomic_fetch_add(&c->ok, 1);
            }
        }
        close(fd);
        /* Each connection leaves ports in TIME_WAIT (here and in ferry): a millisecond apart
         * keeps a 10 s run far from exhausting the loopback's ephemeral ports. */
        sleep_ms(1);
    }
    return NULL;
}

static void churn_join(struct churn *c)
{
    if (!c->joined) {
        atomic_store(&c->stop, true);
        pthread_join(c->thread, NULL); /* bounded: every step of the thread has a timeout */
        c->joined = true;
    }
}

/* Teardown: the test's frame may be gone (a failed assertion), so the state is on the heap. */
static void churn_cleanup(void *arg)
{
    churn_join(arg);
    free(arg);
}

static struct churn *churn_start(int port)
{
    struct churn *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->port = port;
    atomic_init(&c->stop, false);
    atomic_init(&c->ok, 0);
    atomic_init(&c->refused, 0);
    atomic_init(&c->reset, 0);
    atomic_init(&c->failed, 0);
    assert_int_equal(pthread_create(&c->thread, NULL, churn_main, c), 0);
    registry_defer(churn_cleanup, c);
    return c;
}

/* Waits until the client completed `more` connections beyond `since`; asserts within 5 s. */
static int churn_wait_ok(struct churn *c, int since, int more)
{
    int64_t deadline = now_ms() + 5000;
    while (atomic_load(&c->ok) < since + more) {
        if (now_ms() > deadline || atomic_load(&c->stop)) {
            fail_msg("the client completed %d of %d connections in 5 s (refused %d, reset %d, "
                     "failed %d; first: %s)",
                     atomic_load(&c->ok) - since, more, atomic_load(&c->refused),
                     atomic_load(&c->reset), atomic_load(&c->failed), c->first_error);
        }
        sleep_ms(1);
    }
    return atomic_load(&c->ok);
}

static void test_100_reloads_under_traffic(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_ECHO);
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport = free_port(AF_INET);
    const char *top = "workers: 2\n";
    const char *to_a = route_yaml(top, "web", lport, backend_port(a));
    const char *to_b = tfmt("%s"
                            "routes:\n"
                            "  - name: web\n"
                            "    listen: 127.0.0.1:%d\n"
                            "    connect_timeout: 2s\n"
                            "    backends: [127.0.0.1:%d]\n",
                            top, lport, backend_port(b));
    struct ferry *f = ferry_start(to_a);
    const char *path = ferry_config_path(f);

    struct churn *c = churn_start(lport);
    int ok = churn_wait_ok(c, 0, 20);
    for (int i = 0; i < 100; i++) {
        /* Replaced by rename, so a reload never reads a half-written file; every other one is
         * also signalled, which reloads at once (the watch then finds nothing new). */
        replace_file(path, i % 2 == 0 ? to_b : to_a);
        if (i % 2 == 1) {
            ferry_signal(f, SIGHUP);
        }
        expect_generation(f, i + 2);
        /* Connections keep completing between any two reloads. */
        ok = churn_wait_ok(c, ok, 1);
    }
    churn_wait_ok(c, ok, 20);
    churn_join(c);

    if (atomic_load(&c->refused) + atomic_load(&c->reset) + atomic_load(&c->failed) != 0) {
        ferry_dump(f, "connections failed during reloads");
        fail_msg("%d connections ok, %d refused, %d reset, %d failed; first: %s",
                 atomic_load(&c->ok), atomic_load(&c->refused), atomic_load(&c->reset),
                 atomic_load(&c->failed), c->first_error);
    }
    assert_true(atomic_load(&c->ok) >= 120);
    assert_non_null(log_line(f, "reload generation=101 "));
    assert_int_equal(ferry_count_log(f, "reload generation="), 100);
    assert_int_equal(ferry_count_log(f, "reload rejected"), 0);
    /* Both configurations really carried traffic. */
    assert_true(backend_accepted(a) > 0);
    assert_true(backend_accepted(b) > 0);
    ferry_stop(f);
}

/* ---- 4. replaced files are noticed without a signal ----------------------------------------- */

static void test_file_replaced_by_rename(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    struct backend *b = backend_start(AF_INET, BACKEND_GREET);
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(route_yaml("", "web", lport, backend_port(a)));
    assert_served_by(lport, a);

    replace_file(ferry_config_path(f), route_yaml("", "web", lport, backend_port(b)));
    expect_generation(f, 2);
    assert_served_by(lport, b);

    /* The watch survives the file it watched being replaced. */
    replace_file(ferry_config_path(f), route_yaml("", "web", lport, backend_port(a)));
    expect_generation(f, 3);
    assert_served_by(lport, a);
    ferry_stop(f);
}

static void test_configmap_symlink_swap(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    struct backend *b = backend_start(AF_INET, BACKEND_GREET);
    int lport = free_port(AF_INET);
    const char *dir = temp_dir(); /* registered before ferry, so removed after it stops */
    const char *path =
        configmap_init(dir, "ferry.yaml", route_yaml("", "web", lport, backend_port(a)),
                       "2026_11_26_20_00_00.000000001");
    struct ferry *f = ferry_start_path(path);
    assert_served_by(lport, a);

    configmap_swap(dir, "ferry.yaml", route_yaml("", "web", lport, backend_port(b)),
                   "2026_11_26_20_01_00.000000002", "2026_11_26_20_00_00.000000001");
    expect_generation(f, 2);
    assert_served_by(lport, b);

    /* The kubelet removed the first version directory; the next update is seen all the same. */
    configmap_swap(dir, "ferry.yaml", route_yaml("", "web", lport, backend_port(a)),
                   "2026_11_26_20_02_00.000000003", "2026_11_26_20_01_00.000000002");
    expect_generation(f, 3);
    assert_served_by(lport, a);
    ferry_stop(f);
}

/*
 * A configuration path that is a symlink into another directory, through a second symlink, as in
 * a release layout: link_dir/ferry.yaml -> app/current/ferry.yaml, current -> releases/1. The file
 * behind the links is edited where the path's own directory sees no event, and the release link
 * is swapped to releases/2 (rename over it); both reload.
 */
static void test_symlink_into_another_directory(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    struct backend *b = backend_start(AF_INET, BACKEND_GREET);
    int lport = free_port(AF_INET);
    const char *app = temp_dir();
    const char *link_dir = temp_dir();
    const char *rel1 = tfmt("%s/releases/1", app), *rel2 = tfmt("%s/releases/2", app);
    assert_int_equal(mkdir(tfmt("%s/releases", app), 0755), 0);
    assert_int_equal(mkdir(rel1, 0755), 0);
    assert_int_equal(mkdir(rel2, 0755), 0);
    write_file(tfmt("%s/ferry.yaml", rel1), route_yaml("", "web", lport, backend_port(a)));
    write_file(tfmt("%s/ferry.yaml", rel2), route_yaml("", "web", lport, backend_port(a)));
    assert_int_equal(symlink("releases/1", tfmt("%s/current", app)), 0);
    const char *link = tfmt("%s/ferry.yaml", link_dir);
    assert_int_equal(symlink(tfmt("%s/current/ferry.yaml", app), link), 0);
    struct ferry *f = ferry_start_path(link);
    assert_true(ferry_wait_log(f, tfmt("watching %s too: %s leads through it", rel1, link),
                               NET_TIMEOUT_MS));
    assert_served_by(lport, a);

    write_file(tfmt("%s/ferry.yaml", rel1), route_yaml("", "web", lport, backend_port(b)));
    expect_generation(f, 2);
    assert_served_by(lport, b);

    /* releases/2 still names backend a: the swap of "current" alone must be seen. */
    assert_int_equal(symlink("releases/2", tfmt("%s/current.new", app)), 0);
    assert_int_equal(rename(tfmt("%s/current.new", app), tfmt("%s/current", app)), 0);
    expect_generation(f, 3);
    assert_served_by(lport, a);
    assert_true(ferry_wait_log(f, tfmt("watching %s too: %s leads through it", rel2, link),
                               NET_TIMEOUT_MS));
    /* And the new release's file is the one watched now. */
    replace_file(tfmt("%s/ferry.yaml", rel2), route_yaml("", "web", lport, backend_port(b)));
    expect_generation(f, 4);
    assert_served_by(lport, b);
    ferry_stop(f);
}

static void unlink_path(void *path)
{
    unlink(path);
}

/* Opens path for writing and closes it, writing nothing: an event that names it, no change. */
static void open_for_writing(const char *path)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd == -1)
        fail_msg("open %s: %s", path, strerror(errno));
    assert_int_equal(close(fd), 0);
}

/* Waits until ferry has logged needle n times. */
static void expect_count(struct ferry *f, const char *needle, int n, const char *what)
{
    if (!ferry_wait_log_count(f, needle, n, RELOAD_WAIT_MS)) {
        ferry_dump(f, what);
        fail_msg("%s: \"%s\" logged %d times, not %d", what, needle, ferry_count_log(f, needle), n);
    }
}

/* A ferry logging at debug level with route web to backend a (b is the one to switch to), and the
 * path of another file in its directory, removed at teardown. */
struct neighbour {
    struct backend *a, *b;
    int lport;
    struct ferry *f;
    const char *path, *other;
};

#define NEIGHBOUR_TOP "log: {level: debug}\n"

static void neighbour_start(struct neighbour *n, const char *other_name)
{
    n->a = backend_start(AF_INET, BACKEND_GREET);
    n->b = backend_start(AF_INET, BACKEND_GREET);
    n->lport = free_port(AF_INET);
    n->f = ferry_start(route_yaml(NEIGHBOUR_TOP, "web", n->lport, backend_port(n->a)));
    n->path = ferry_config_path(n->f);
    n->other = tfmt("%.*s/%s", (int)(strrchr(n->path, '/') - n->path), n->path, other_name);
    registry_defer(unlink_path, (void *)n->other);
}

/* The file itself rewritten in place (same inode) is a change: generation 2 serves b. */
static void neighbour_finish_on_b(struct neighbour *n)
{
    write_file(n->path, route_yaml(NEIGHBOUR_TOP, "web", n->lport, backend_port(n->b)));
    expect_generation(n->f, 2);
    assert_served_by(n->lport, n->b);
    unlink(n->other);
    ferry_stop(n->f);
}

/*
 * The watch is on the directory, so other files there (an editor's swap file, a neighbour's update)
 * wake it too. Once the file is old enough that a change of it would show in its stat, events that
 * name only other files reload nothing, also after a SIGHUP (its load read the file as it is); an
 * event that names the file reloads even when its stat is as it was (a write through a shared
 * mapping can leave a file's times alone).
 */
static void test_other_files_in_the_directory_reload_nothing(void **state)
{
    (void)state;
    struct neighbour n;
    neighbour_start(&n, ".ferry.yaml.swo");
    struct ferry *f = n.f;
    const char *path = n.path, *other = n.other;
    assert_served_by(n.lport, n.a);

    /* A file changed within the last CONFIG_FILE_SETTLED_S seconds is read again on any event
     * (a second change could have left its stat as it was): touch the neighbour until ferry finds
     * the file settled and unchanged, at most 20 times 0.5 s. */
    const char *unchanged = "unchanged: the events in";
    bool seen = false;
    for (int i = 0; i < 20 && !seen; i++) {
        write_file(other, tfmt("edit %d\n", i));
        seen = ferry_wait_log(f, unchanged, 500);
    }
    if (!seen) {
        ferry_dump(f, "no \"unchanged\" line");
        fail_msg("events on another file of the directory never left the file unchanged");
    }

    /* Loads run one at a time: once the SIGHUP's is done, so are those of the loop above. It read
     * the file as it is, so events about other files still read nothing. */
    const char *by_event = "reload: no change (file changed)";
    ferry_signal(f, SIGHUP);
    expect_count(f, "reload: no change (SIGHUP)", 1, "SIGHUP");
    int loads = ferry_count_log(f, by_event);
    int quiet = ferry_count_log(f, unchanged);
    for (int i = 1; i <= 3; i++) {
        write_file(other, tfmt("later edit %d\n", i));
        expect_count(f, unchanged, quiet + i, "event on another file");
    }
    assert_int_equal(ferry_count_log(f, by_event), loads);

    /* Opened for writing and closed, unchanged: the event names the file, so it is read. */
    open_for_writing(path);
    expect_count(f, by_event, loads + 1, "event naming the file");
    assert_int_equal(ferry_count_log(f, "reload generation="), 0);

    neighbour_finish_on_b(&n);
}

/* A rejected reload is tried again on the next event of any kind, even once the file has settled:
 * the cause may have been outside it (a busy port, a failed lookup). */
static void test_rejected_reload_is_retried_on_any_event(void **state)
{
    (void)state;
    struct neighbour n;
    neighbour_start(&n, "notes.txt");
    struct ferry *f = n.f;
    const char *path = n.path, *other = n.other;

    write_file(path, "routes: [\n");
    expect_count(f, "reload rejected", 1, "bad file");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    /* Events about another file until the bad file is settled (over CONFIG_FILE_SETTLED_S seconds
     * old, at most 16 events 0.5 s apart), then one more: each reads the file again. */
    int rejected = 1;
    for (int i = 0; i < 16 && time(NULL) - st.st_ctim.tv_sec <= CONFIG_FILE_SETTLED_S + 1; i++) {
        write_file(other, tfmt("note %d\n", i));
        expect_count(f, "reload rejected", ++rejected, "event after a rejected reload");
        struct timespec half = {0, 500 * 1000 * 1000};
        nanosleep(&half, NULL); /* the file's age is the condition: nothing else to wait on */
    }
    assert_true(time(NULL) - st.st_ctim.tv_sec > CONFIG_FILE_SETTLED_S + 1);
    write_file(other, "settled\n");
    expect_count(f, "reload rejected", ++rejected, "event once the bad file settled");
    assert_int_equal(ferry_count_log(f, "unchanged: the events in"), 0);
    neighbour_finish_on_b(&n);
}

/* ---- 5. routes and listen addresses added and removed --------------------------------------- */

static void test_routes_and_listeners_added_and_removed(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    struct backend *b = backend_start(AF_INET, BACKEND_GREET);
    struct backend *c = backend_start(AF_INET, BACKEND_GREET);
    int kept = free_port(AF_INET);    /* route keep, stays */
    int dropped = free_port(AF_INET); /* route keep, removed */
    int added = free_port(AF_INET);   /* route keep, added */
    int gone = free_port(AF_INET);    /* route gone, removed with its route */
    int fresh = free_port(AF_INET);   /* route fresh, added with its route */
    struct ferry *f = ferry_start(tfmt("routes:\n"
                                       "  - name: keep\n"
                                       "    listen: [127.0.0.1:%d, 127.0.0.1:%d]\n"
                                       "    backends: [127.0.0.1:%d]\n"
                                       "  - name: gone\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    backends: [127.0.0.1:%d]\n",
                                       kept, dropped, backend_port(a), gone, backend_port(b)));
    assert_served_by(kept, a);
    assert_served_by(dropped, a);
    assert_served_by(gone, b);
    assert_refused(added);
    assert_refused(fresh);

    replace_file(ferry_config_path(f), tfmt("routes:\n"
                                            "  - name: keep\n"
                                            "    listen: [127.0.0.1:%d, 127.0.0.1:%d]\n"
                                            "    backends: [127.0.0.1:%d]\n"
                                            "  - name: fresh\n"
                                            "    listen: 127.0.0.1:%d\n"
                                            "    backends: [127.0.0.1:%d]\n",
                                            kept, added, backend_port(a), fresh, backend_port(c)));
    expect_generation(f, 2);

    assert_served_by(kept, a);
    assert_served_by(added, a);
    assert_served_by(fresh, c);
    assert_refused(dropped);
    assert_refused(gone);
    /* One line per difference. */
    assert_non_null(log_line(f, tfmt("reload: route keep: listener 127.0.0.1:%d added", added)));
    assert_non_null(
        log_line(f, tfmt("reload: route keep: listener 127.0.0.1:%d removed", dropped)));
    assert_non_null(log_line(f, "reload: route fresh added"));
    assert_non_null(log_line(f, "reload: route gone removed"));
    ferry_stop(f);
}

/* Turning splice off closes the pipes ferry kept for reuse; a pair of the old generation, still a
 * splice pair, then finds no pipe and relays through its rings. */
static void test_splice_turned_off_closes_kept_pipes(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    int lport = free_port(AF_INET);
    const char *splice = "defaults: {splice: true}\n";
    struct ferry *f = ferry_start(route_yaml(splice, "web", lport, backend_port(a)));
    pid_t pid = ferry_pid(f);
    int base = proc_pipe_count(pid);
    int conn = connect_ok(lport);
    assert_int_equal(read_greeting(conn, NET_TIMEOUT_MS), backend_port(a));
    assert_echo(conn, "through a pipe\n");
    assert_int_equal(proc_pipe_count(pid), base + 2);

    write_file(ferry_config_path(f), route_yaml("", "web", lport, backend_port(a)));
    expect_generation(f, 2);
    assert_int_equal(proc_pipe_count(pid), base);
    assert_echo(conn, "through the rings\n");
    assert_served_by(lport, a);
    assert_int_equal(proc_pipe_count(pid), base);
    close_fd(conn);
    ferry_stop(f);
}

/* ---- 6. SIGHUP on an unchanged file --------------------------------------------------------- */

static void test_sighup_unchanged_is_no_change(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    struct backend *b = backend_start(AF_INET, BACKEND_GREET);
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(route_yaml("", "web", lport, backend_port(a)));
    int conn = connect_ok(lport);
    assert_int_equal(read_greeting(conn, NET_TIMEOUT_MS), backend_port(a));
    assert_echo(conn, "before the signal\n");
    unsigned long inode = listen_inode(lport);
    assert_true(inode != 0);

    ferry_signal(f, SIGHUP);
    if (!ferry_wait_log(f, "reload: no change", RELOAD_WAIT_MS)) {
        ferry_dump(f, "no \"no change\" line");
        fail_msg("SIGHUP on an unchanged file did not log \"reload: no change\"");
    }
    assert_echo(conn, "after the signal\n");
    assert_int_equal(ferry_count_log(f, "reload generation="), 0);
    assert_int_equal(listen_inode(lport), inode);
    assert_served_by(lport, a);

    /* The generation did not move: the next real change is generation 2. */
    write_file(ferry_config_path(f), route_yaml("", "web", lport, backend_port(b)));
    expect_generation(f, 2);
    assert_echo(conn, "and after a real reload\n");
    close_fd(conn);
    ferry_stop(f);
}

/* ---- 7. an unchanged listen address keeps its socket ---------------------------------------- */

/* Connects in a tight loop, reads the backend's greeting, resets (no TIME_WAIT left behind). */
struct hammer {
    int port;
    pthread_t thread;
    bool joined;
    atomic_bool stop;
    atomic_int ok, refused, failed;
    char first_error[160];
};

static void hammer_fail(struct hammer *h, atomic_int *counter, int n, const char *what, int err)
{
    if (atomic_load(&h->refused) + atomic_load(&h->failed) == 0) {
        snprintf(h->first_error, sizeof h->first_error, "connection %d: %s: %s", n, what,
                 strerror(err));
    }
    atomic_fetch_add(counter, 1);
}

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    int64_t end = now_ms() + CHURN_MAX_MS;
    for (int n = 0; n < CHURN_MAX_CONNECTIONS && !atomic_load(&h->stop) && now_ms() < end; n++) {
        int fd = connect_untracked(h->port, 2000);
        if (fd < 0) {
            hammer_fail(h, fd == -ECONNREFUSED ? &h->refused : &h->failed, n, "connect", -fd);
            continue;
        }
        int got = read_greeting(fd, 2000);
        if (got < 0) {
            hammer_fail(h, &h->failed, n, "greeting", -got);
        } else {
            atomic_fetch_add(&h->ok, 1);
        }
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        close(fd);
    }
    return NULL;
}

static void hammer_join(struct hammer *h)
{
    if (!h->joined) {
        atomic_store(&h->stop, true);
        pthread_join(h->thread, NULL); /* bounded: every step of the thread has a timeout */
        h->joined = true;
    }
}

static void hammer_cleanup(void *arg)
{
    hammer_join(arg);
    free(arg);
}

static struct hammer *hammer_start(int port)
{
    struct hammer *h = calloc(1, sizeof *h);
    assert_non_null(h);
    h->port = port;
    atomic_init(&h->stop, false);
    atomic_init(&h->ok, 0);
    atomic_init(&h->refused, 0);
    atomic_init(&h->failed, 0);
    assert_int_equal(pthread_create(&h->thread, NULL, hammer_main, h), 0);
    registry_defer(hammer_cleanup, h);
    return h;
}

static void test_unchanged_address_keeps_socket_when_route_renamed(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    int lport = free_port(AF_INET);
    const char *top = "workers: 2\n";
    const char *blue = route_yaml(top, "blue", lport, backend_port(a));
    const char *green = route_yaml(top, "green", lport, backend_port(a));
    struct ferry *f = ferry_start(blue);
    unsigned long inode = listen_inode(lport);
    assert_true(inode != 0);

    struct hammer *h = hammer_start(lport);

    const int reloads = 20;
    for (int i = 0; i < reloads; i++) {
        int before = atomic_load(&h->ok);
        replace_file(ferry_config_path(f), i % 2 == 0 ? green : blue);
        ferry_signal(f, SIGHUP);
        expect_generation(f, i + 2);
        if (listen_inode(lport) != inode) {
            fail_msg("reload %d (route renamed to %s) replaced the listening socket of "
                     "127.0.0.1:%d (inode %lu -> %lu)",
                     i + 1, i % 2 == 0 ? "green" : "blue", lport, inode, listen_inode(lport));
        }
        /* The client is connecting across every reload. */
        int64_t deadline = now_ms() + 5000;
        while (atomic_load(&h->ok) <= before) {
            if (now_ms() > deadline) {
                fail_msg("the client completed no connection in 5 s after reload %d (refused "
                         "%d, failed %d; first: %s)",
                         i + 1, atomic_load(&h->refused), atomic_load(&h->failed), h->first_error);
            }
            sleep_ms(1);
        }
    }
    hammer_join(h);

    if (atomic_load(&h->refused) + atomic_load(&h->failed) != 0) {
        ferry_dump(f, "connections failed during renames");
        fail_msg("%d connections ok, %d refused, %d failed; first: %s", atomic_load(&h->ok),
                 atomic_load(&h->refused), atomic_load(&h->failed), h->first_error);
    }
    assert_true(atomic_load(&h->ok) >= reloads);
    assert_non_null(log_line(f, "reload: route green added"));
    assert_non_null(log_line(f, "reload: route blue removed"));
    assert_int_equal(ferry_count_log(f, tfmt("listener 127.0.0.1:%d closed", lport)), 0);
    ferry_stop(f);
}

/* ---- 8. reload.watch false ------------------------------------------------------------------ */

static void test_watch_false_only_sighup_reloads(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    struct backend *b = backend_start(AF_INET, BACKEND_GREET);
    int lport = free_port(AF_INET);
    const char *top = "reload: {watch: false}\n";
    struct ferry *f = ferry_start(route_yaml(top, "web", lport, backend_port(a)));

    write_file(ferry_config_path(f), route_yaml(top, "web", lport, backend_port(b)));
    /* A watched file reloads ~150 ms after the write; a second of silence shows it is not. */
    if (ferry_wait_log(f, "reload", 1000)) {
        ferry_dump(f, "reload without a signal");
        fail_msg("a file write caused a reload although reload.watch is false: %s",
                 log_line(f, "reload"));
    }
    assert_served_by(lport, a);

    ferry_signal(f, SIGHUP);
    expect_generation(f, 2);
    assert_served_by(lport, b);
    ferry_stop(f);
}

/* Turning the watch off by a reload removes it quietly: the end of ferry's own watch is not the
 * directory going away, and reloads nothing. */
static void test_watch_turned_off_by_a_reload(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    struct backend *b = backend_start(AF_INET, BACKEND_GREET);
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(route_yaml("", "web", lport, backend_port(a)));
    assert_true(ferry_wait_log(f, "watching ", RELOAD_WAIT_MS));

    const char *off = "reload: {watch: false}\n";
    replace_file(ferry_config_path(f), route_yaml(off, "web", lport, backend_port(b)));
    expect_generation(f, 2);
    assert_served_by(lport, b);
    assert_true(ferry_wait_log(f, "no longer watching", RELOAD_WAIT_MS));
    /* Two SIGHUPs one after the other: the events queued when the watch went are handled by the
     * time the second one's load is logged. */
    ferry_signal(f, SIGHUP);
    expect_count(f, "reload: no change (SIGHUP)", 1, "first SIGHUP");
    ferry_signal(f, SIGHUP);
    expect_count(f, "reload: no change (SIGHUP)", 2, "second SIGHUP");
    assert_int_equal(ferry_count_log(f, "is gone"), 0);
    assert_int_equal(ferry_count_log(f, "reload: no change (file changed)"), 0);

    /* And the file is no longer followed. */
    int by_event = ferry_count_log(f, "(file changed)");
    write_file(ferry_config_path(f), route_yaml(off, "web", lport, backend_port(a)));
    ferry_signal(f, SIGHUP);
    expect_generation(f, 3);
    assert_int_equal(ferry_count_log(f, "(file changed)"), by_event);
    assert_served_by(lport, a);
    ferry_stop(f);
}

/* ---- 9. process-wide settings, against what the process runs ------------------------------- */

#define SIGHUP_ONLY "reload: {watch: false}\n"

/* Rewrites f's file as text and reloads it by SIGHUP; waits for generation gen. */
static void reload_to(struct ferry *f, const char *text, int gen)
{
    write_file(ferry_config_path(f), text);
    ferry_signal(f, SIGHUP);
    expect_generation(f, gen);
}

/* Asserts that ferry logged a line containing needle. */
static void expect_line(struct ferry *f, const char *needle)
{
    if (log_line(f, needle) == NULL) {
        ferry_dump(f, "missing line");
        fail_msg("no line \"%s\"", needle);
    }
}

/*
 * workers needs a restart, so what runs is what the process started with: each reload that
 * changes it is reported against that, not against the previous file. Started with 1 worker, the
 * file asks for 2 (a restart is needed, 1 kept), then for 1 again (what runs: no restart needed),
 * then for 3 (1 -> 3, not 2 -> 3), then keeps asking for 3 (said once, not at every reload).
 */
static void test_workers_reported_against_what_runs(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    struct backend *b = backend_start(AF_INET, BACKEND_GREET);
    int lport = free_port(AF_INET);
    struct ferry *f =
        ferry_start(route_yaml(SIGHUP_ONLY "workers: 1\n", "web", lport, backend_port(a)));
    expect_line(f, "ready generation=1 routes=1 listeners=1 workers=1 ");

    reload_to(f, route_yaml(SIGHUP_ONLY "workers: 2\n", "web", lport, backend_port(a)), 2);
    expect_line(f, "reload: workers 1 -> 2 needs a restart: keeping 1");
    reload_to(f, route_yaml(SIGHUP_ONLY "workers: 1\n", "web", lport, backend_port(a)), 3);
    expect_line(f, "reload: workers 1: as running, no restart needed");
    reload_to(f, route_yaml(SIGHUP_ONLY "workers: 3\n", "web", lport, backend_port(a)), 4);
    expect_line(f, "reload: workers 1 -> 3 needs a restart: keeping 1");
    reload_to(f, route_yaml(SIGHUP_ONLY "workers: 3\n", "web", lport, backend_port(b)), 5);
    expect_line(f, "reload generation=5 routes=1 listeners=1 changes=2 ");
    assert_int_equal(ferry_count_log(f, "needs a restart"), 2);
    assert_int_equal(ferry_count_log(f, "keeping 2"), 0);
    assert_int_equal(ferry_count_log(f, "workers 2 ->"), 0);
    assert_served_by(lport, b);
    ferry_stop(f);
}

/* max_connections 0 means "derived from the open-file limit": a reload that sets or clears it
 * shows the number derived (the one the ready line shows), not 0. */
static void test_derived_max_connections_shows_its_number(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(route_yaml(SIGHUP_ONLY, "web", lport, backend_port(a)));
    char derived[32];
    assert_true(
        log_field(log_line(f, "ready generation=1"), "max_connections", derived, sizeof derived));
    assert_true(atoi(derived) > 5);

    reload_to(f, route_yaml(SIGHUP_ONLY "max_connections: 5\n", "web", lport, backend_port(a)), 2);
    expect_line(f, tfmt("reload: max_connections derived (%s) -> 5", derived));
    reload_to(f, route_yaml(SIGHUP_ONLY, "web", lport, backend_port(a)), 3);
    expect_line(f, tfmt("reload: max_connections 5 -> derived (%s)", derived));
    assert_int_equal(ferry_count_log(f, "max_connections 0"), 0);
    assert_int_equal(ferry_count_log(f, "-> 0"), 0);
    assert_served_by(lport, a);
    ferry_stop(f);
}

/* Waits until new connections on lport are served by backend b (a reload that logs nothing). */
static void wait_served_by(struct ferry *f, int lport, struct backend *b)
{
    int64_t deadline = now_ms() + RELOAD_WAIT_MS;
    int got;
    while ((got = served_by(lport, NET_TIMEOUT_MS)) != backend_port(b) && now_ms() < deadline) {
        sleep_ms(5);
    }
    if (got != backend_port(b)) {
        ferry_dump(f, "backend not switched");
        fail_msg("127.0.0.1:%d still served by %d %d ms after the reload, want %d", lport, got,
                 RELOAD_WAIT_MS, backend_port(b));
    }
}

/*
 * A reload's lines are written under the log settings it installs. One that lowers the level to
 * error (and moves the backend) logs nothing; the next one raises it back to info while adding a
 * listen address and moving the backend again: every line of it shows, the new "listening" line
 * too, not only the summary.
 */
static void test_log_level_raised_by_a_reload_shows_its_lines(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    struct backend *b = backend_start(AF_INET, BACKEND_GREET);
    int lport = free_port(AF_INET), lport2 = free_port(AF_INET);
    struct ferry *f = ferry_start(route_yaml(SIGHUP_ONLY, "web", lport, backend_port(a)));

    write_file(ferry_config_path(f),
               route_yaml(SIGHUP_ONLY "log: {level: error}\n", "web", lport, backend_port(b)));
    ferry_signal(f, SIGHUP);
    wait_served_by(f, lport, b);

    reload_to(f,
              tfmt(SIGHUP_ONLY "log: {level: info}\n"
                               "routes:\n"
                               "  - name: web\n"
                               "    listen: [127.0.0.1:%d, 127.0.0.1:%d]\n"
                               "    backends: [127.0.0.1:%d]\n",
                   lport, lport2, backend_port(a)),
              3);
    expect_line(f, "reload: log level error -> info");
    expect_line(f, tfmt("reload: route web: listener 127.0.0.1:%d added", lport2));
    expect_line(f, tfmt("reload: route web: backend 127.0.0.1:%d added", backend_port(a)));
    expect_line(f, tfmt("reload: route web: backend 127.0.0.1:%d removed", backend_port(b)));
    expect_line(f, tfmt("listening route=web address=127.0.0.1:%d", lport2));
    assert_served_by(lport2, a);
    /* Generation 2 lowered the level: its lines were not written. */
    assert_int_equal(ferry_count_log(f, "log level info -> error"), 0);
    assert_int_equal(ferry_count_log(f, "reload generation=2 "), 0);
    ferry_stop(f);
}

/* A tracked listening socket on ip:port (port 0: any); stores the port. Returns fd or -errno. */
static int listen_on(const char *ip, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    registry_track_fd(fd);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)*port)};
    inet_pton(AF_INET, ip, &a.sin_addr);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == -1 || listen(fd, 16) == -1)
        return -errno;
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

/* ---- 10. a port moved between an address and the wildcard --------------------------------- */

/* YAML of route web listening on `listen` (quoted: "[::1]:P" is no YAML list) to backend bport. */
static const char *listen_yaml(const char *top, const char *listen, int bport)
{
    return tfmt("%s"
                "routes:\n"
                "  - name: web\n"
                "    listen: \"%s\"\n"
                "    backends: [127.0.0.1:%d]\n",
                top, listen, bport);
}

/* Connects to ip:port (a loopback address, IPv4 or IPv6). Returns the fd (tracked) or -errno. */
static int connect_ip(const char *ip, int port)
{
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};
    struct sockaddr_in a4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    bool v6 = inet_pton(AF_INET6, ip, &a6.sin6_addr) == 1;
    if (!v6)
        inet_pton(AF_INET, ip, &a4.sin_addr);
    int fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -errno;
    registry_track_fd(fd);
    struct timeval tv = {.tv_sec = NET_TIMEOUT_MS / 1000};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv); /* bounds connect() too */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int rc = v6 ? connect(fd, (struct sockaddr *)&a6, sizeof a6)
                : connect(fd, (struct sockaddr *)&a4, sizeof a4);
    if (rc == -1) {
        int err = errno;
        close_fd(fd);
        return -err;
    }
    return fd;
}

/* Asserts that a new connection to ip:port is answered by backend b. */
static void assert_ip_served_by(const char *ip, int port, struct backend *b)
{
    int fd = connect_ip(ip, port);
    if (fd < 0)
        fail_msg("connect to %s:%d failed: %s", ip, port, strerror(-fd));
    int got = read_greeting(fd, NET_TIMEOUT_MS);
    close_fd(fd);
    if (got != backend_port(b))
        fail_msg("connection to %s:%d answered by %d, want backend %d", ip, port, got,
                 backend_port(b));
}

static void assert_ip_refused(const char *ip, int port)
{
    int fd = connect_ip(ip, port);
    if (fd >= 0) {
        close_fd(fd);
        fail_msg("connect to %s:%d succeeded, want ECONNREFUSED", ip, port);
    }
    if (fd != -ECONNREFUSED)
        fail_msg("connect to %s:%d failed with %s, want ECONNREFUSED", ip, port, strerror(-fd));
}

/* Reloads f to listen on `to` (generation gen) instead of `from`, on the same port, and checks
 * that it said it closes `from` first so that `to` can take the port. */
static void move_listen(struct ferry *f, const char *top, const char *from, const char *to,
                        int bport, int gen)
{
    reload_to(f, listen_yaml(top, to, bport), gen);
    expect_line(f, tfmt("reload: listener %s closes before %s (route web) can listen on its port: "
                        "clients arriving in between may be refused",
                        from, to));
}

/*
 * A listen address moved from 127.0.0.1:P to the wildcard 0.0.0.0:P and back, with two workers
 * sharing the socket: the old listener holds the port, so each reload closes it first (and says
 * so), then binds the new one. The wildcard answers on 127.0.0.2 too; once it is gone again,
 * 127.0.0.2 is refused. A connection accepted on the first listener relays throughout.
 */
static void test_listen_address_moves_to_the_wildcard_and_back(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    int port = free_port(AF_INET);
    const char *top = SIGHUP_ONLY "workers: 2\n";
    const char *specific = tfmt("127.0.0.1:%d", port), *wildcard = tfmt("0.0.0.0:%d", port);
    struct ferry *f = ferry_start(listen_yaml(top, specific, backend_port(a)));
    int conn = connect_ok(port);
    assert_int_equal(read_greeting(conn, NET_TIMEOUT_MS), backend_port(a));
    assert_ip_refused("127.0.0.2", port);

    move_listen(f, top, specific, wildcard, backend_port(a), 2);
    expect_line(f, tfmt("listener %s closed", specific));
    expect_line(f, tfmt("listening route=web address=%s", wildcard));
    expect_line(f, tfmt("reload: route web: listener %s added", wildcard));
    expect_line(f, tfmt("reload: route web: listener %s removed", specific));
    assert_ip_served_by("127.0.0.1", port, a);
    assert_ip_served_by("127.0.0.2", port, a);
    assert_echo(conn, "accepted by the listener that closed\n");

    move_listen(f, top, wildcard, specific, backend_port(a), 3);
    expect_line(f, tfmt("listening route=web address=%s", specific));
    assert_ip_served_by("127.0.0.1", port, a);
    assert_ip_refused("127.0.0.2", port);
    assert_echo(conn, "and after the way back\n");
    assert_int_equal(ferry_count_log(f, "reload rejected"), 0);
    close_fd(conn);
    ferry_stop(f);
}

/* The same with IPv6: [::1]:P to [::]:P and back. */
static void test_listen_v6_address_moves_to_the_wildcard_and_back(void **state)
{
    (void)state;
    if (!ipv6_loopback_available())
        skip(); /* no ::1 here */
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    int port = free_port(AF_INET6);
    const char *specific = tfmt("[::1]:%d", port), *wildcard = tfmt("[::]:%d", port);
    struct ferry *f = ferry_start(listen_yaml(SIGHUP_ONLY, specific, backend_port(a)));

    move_listen(f, SIGHUP_ONLY, specific, wildcard, backend_port(a), 2);
    assert_ip_served_by("::1", port, a); /* through [::] */
    move_listen(f, SIGHUP_ONLY, wildcard, specific, backend_port(a), 3);
    assert_ip_served_by("::1", port, a);
    ferry_stop(f);
}

/*
 * The wildcard cannot take the port when another socket (here the test's, on 127.0.0.2:P) holds
 * it too: ferry's own listener on 127.0.0.1:P has been closed by then, so it is opened again and
 * serves as before, and the reload is rejected naming the address. Once the port is free, the
 * same file loads.
 */
static void test_listen_move_that_cannot_bind_keeps_the_old_listener(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    int port = free_port(AF_INET);
    const char *specific = tfmt("127.0.0.1:%d", port), *wildcard = tfmt("0.0.0.0:%d", port);
    struct ferry *f = ferry_start(listen_yaml(SIGHUP_ONLY, specific, backend_port(a)));
    int held = port;
    int other = listen_on("127.0.0.2", &held);
    assert_ok(other, "listen on 127.0.0.2 with ferry's port");
    int conn = connect_ok(port);
    assert_int_equal(read_greeting(conn, NET_TIMEOUT_MS), backend_port(a));

    write_file(ferry_config_path(f), listen_yaml(SIGHUP_ONLY, wildcard, backend_port(a)));
    ferry_signal(f, SIGHUP);
    if (!ferry_wait_log(f, "reload rejected", RELOAD_WAIT_MS)) {
        ferry_dump(f, "move not rejected");
        fail_msg("no \"reload rejected\" line while another socket holds the port");
    }
    const char *line = log_line(f, "reload rejected");
    if (strstr(line, tfmt("cannot listen on %s (route web)", wildcard)) == NULL ||
        strstr(line, "still running generation 1") == NULL)
        fail_msg("rejection line does not name %s and generation 1: %s", wildcard, line);
    expect_line(f, tfmt("listening again route=web address=%s", specific));
    assert_ip_served_by("127.0.0.1", port, a);
    assert_echo(conn, "still relayed after the rejected move\n");
    /* 127.0.0.2 is still the test's. */
    int c = connect_ip("127.0.0.2", port);
    assert_ok(c, "connect to the test's own listener");
    int in = accept_timeout(other, NET_TIMEOUT_MS);
    assert_ok(in, "the test's listener accepts its connection");
    close_fd(in);
    close_fd(c);
    assert_int_equal(ferry_count_log(f, "reload generation="), 0);

    close_fd(other);
    ferry_signal(f, SIGHUP);
    expect_generation(f, 2);
    assert_ip_served_by("127.0.0.2", port, a);
    assert_echo(conn, "and after the move\n");
    close_fd(conn);
    ferry_stop(f);
}

/*
 * Clients keep connecting while the port moves back and forth ten times, two workers sharing the
 * socket: those that arrive while no listener holds the port may be refused or reset (the line
 * says so), but after each move new connections complete again.
 */
static void test_listen_moves_under_traffic(void **state)
{
    (void)state;
    struct backend *a = backend_start(AF_INET, BACKEND_GREET);
    int port = free_port(AF_INET);
    const char *top = SIGHUP_ONLY "workers: 2\n";
    const char *specific = listen_yaml(top, tfmt("127.0.0.1:%d", port), backend_port(a));
    const char *wildcard = listen_yaml(top, tfmt("0.0.0.0:%d", port), backend_port(a));
    struct ferry *f = ferry_start(specific);
    struct hammer *h = hammer_start(port);
    for (int i = 0; i < 10; i++) {
        int before = atomic_load(&h->ok);
        reload_to(f, i % 2 == 0 ? wildcard : specific, i + 2);
        int64_t deadline = now_ms() + 5000;
        while (atomic_load(&h->ok) <= before + 2) {
            if (now_ms() > deadline) {
                ferry_dump(f, "no connection after a move");
                fail_msg("no connection completed in 5 s after move %d (refused %d, failed %d; "
                         "first: %s)",
                         i + 1, atomic_load(&h->refused), atomic_load(&h->failed), h->first_error);
            }
            sleep_ms(1);
        }
    }
    hammer_join(h);
    assert_int_equal(ferry_count_log(f, "reload rejected"), 0);
    assert_int_equal(ferry_count_log(f, "closes before"), 10);
    assert_served_by(port, a);
    ferry_stop(f);
}

/*
 * The private hosts file always holds HOSTS_LEN bytes (the line, then a comment as padding) and is
 * rewritten with one pwrite() over the same bytes, never truncated: a lookup that runs during the
 * write never sees an empty file.
 */
#define HOSTS_LEN 64
static void set_hosts(const char *path, const char *line)
{
    char buf[HOSTS_LEN];
    int n = snprintf(buf, sizeof buf, "%s\n#", line);
    assert_true(n > 0 && n < HOSTS_LEN - 1);
    memset(buf + n, '#', HOSTS_LEN - 1 - (size_t)n);
    buf[HOSTS_LEN - 1] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, buf, sizeof buf, 0), (ssize_t)sizeof buf);
    assert_int_equal(close(fd), 0);
}

/* A private /etc for ferry (harness option etc_dir): hosts holding hosts_line (its path in *hosts)
 * and an nsswitch.conf whose hosts line is nsswitch_hosts. */
static const char *private_etc(const char *hosts_line, const char *nsswitch_hosts,
                               const char **hosts)
{
    const char *etc = temp_dir();
    *hosts = tfmt("%s/hosts", etc);
    set_hosts(*hosts, hosts_line);
    write_file(tfmt("%s/nsswitch.conf", etc), tfmt("hosts: %s\n", nsswitch_hosts));
    return etc;
}

/* One byte from the client arrives on the connection accepted from lfd. Returns that fd. */
static int accepted_with(int lfd, int client, const char *what)
{
    int s = accept_timeout(lfd, 3000);
    if (s < 0)
        fail_msg("%s: no connection arrived: %s", what, strerror(-s));
    send_str(client, "x");
    recv_expect(s, "x");
    return s;
}

/*
 * Backends written as a host name: ferry runs with a private /etc/hosts the test rewrites. The
 * name moves from 127.0.0.2 to 127.0.0.3 (same port): within a few resolve_intervals ferry logs
 * the move and a new generation, new connections reach the new address and a pair opened before
 * keeps relaying to the old one. While the name resolves to nothing, the last address stays in
 * use (one warning); when it resolves to the same address again nothing is reloaded.
 */
static void test_backend_host_name_followed(void **state)
{
    (void)state;
    if (!private_etc_supported())
        skip(); /* needs a mount namespace of its own (root) to control /etc/hosts */
    int port = 0, la = -1, lb = -1;
    for (int i = 0; i < 20 && lb < 0; i++) {
        port = 0;
        la = listen_on("127.0.0.2", &port);
        assert_ok(la, "listen on 127.0.0.2");
        lb = listen_on("127.0.0.3", &port);
        if (lb < 0)
            close_fd(la);
    }
    assert_ok(lb, "listen on 127.0.0.3 with the same port");
    const char *hosts;
    const char *etc = private_etc("127.0.0.2 db.ferry.test", "files", &hosts);
    int lport = free_port(AF_INET);
    struct ferry_opts opts = {.etc_dir = etc};
    struct ferry *f = ferry_start_opts(tfmt("resolve_interval: 100ms\n"
                                            "log: {level: debug}\n"
                                            "routes:\n"
                                            "  - name: db\n"
                                            "    listen: 127.0.0.1:%d\n"
                                            "    backends: [db.ferry.test:%d]\n",
                                            lport, port),
                                       &opts);
    int c1 = connect_ok(lport);
    int s1 = accepted_with(la, c1, "before the move");

    set_hosts(hosts, "127.0.0.3 db.ferry.test");
    const char *moved = tfmt("route db: backend db.ferry.test:%d now resolves to 127.0.0.3:%d "
                             "(was 127.0.0.2:%d)",
                             port, port, port);
    if (!ferry_wait_log(f, moved, RELOAD_WAIT_MS) ||
        !ferry_wait_log(f,
                        "reload generation=2 routes=1 listeners=1 changes=1 "
                        "(backend address changed)",
                        RELOAD_WAIT_MS)) {
        ferry_dump(f, "host name move");
        fail_msg("no reload after the backend's host name moved");
    }
    int c2 = connect_ok(lport);
    int s2 = accepted_with(lb, c2, "after the move");
    send_str(c1, "old pair");
    recv_expect(s1, "old pair");
    send_str(s2, "new pair");
    recv_expect(c2, "new pair");

    set_hosts(hosts, "# nothing");
    const char *gone = tfmt("looking up backend host names: route db backend db.ferry.test:%d "
                            "(host name not found); keeping the current addresses",
                            port);
    if (!ferry_wait_log(f, gone, RELOAD_WAIT_MS)) {
        ferry_dump(f, "host name gone");
        fail_msg("no warning while the backend's host name does not resolve");
    }
    int c3 = connect_ok(lport);
    close_fd(accepted_with(lb, c3, "while the name does not resolve"));
    /* Two more lookups fail: the one warning stands for them. */
    const char *tick = "looked up 1 backend host name: no address moved";
    int ticks = ferry_count_log(f, tick);
    assert_true(ferry_wait_log_count(f, tick, ticks + 2, RELOAD_WAIT_MS));
    assert_int_equal(ferry_count_log(f, "keeping the current addresses"), 1);

    set_hosts(hosts, "127.0.0.3 db.ferry.test");
    assert_true(ferry_wait_log(f, "backend host names resolve again", RELOAD_WAIT_MS));
    ferry_signal(f, SIGHUP);
    assert_true(ferry_wait_log(f, "reload: no change (SIGHUP)", RELOAD_WAIT_MS));
    assert_int_equal(ferry_count_log(f, "reload generation="), 1);
    int c4 = connect_ok(lport);
    close_fd(accepted_with(lb, c4, "after the name came back"));
    close_fd(c1);
    close_fd(s1);
    close_fd(c2);
    close_fd(s2);
    close_fd(c3);
    close_fd(c4);
    ferry_stop(f);
}

/*
 * A UDP socket on 127.0.0.77:53 that reads DNS queries and never answers. Skips the test where
 * ferry cannot be given a private /etc to point at it, or the address is not ours to bind.
 */
static int silent_dns(void)
{
    if (!private_etc_supported())
        skip(); /* needs a mount namespace of its own (root) to control /etc */
    int dns = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(dns >= 0);
    registry_track_fd(dns);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(53)};
    inet_pton(AF_INET, "127.0.0.77", &a.sin_addr);
    if (bind(dns, (struct sockaddr *)&a, sizeof a) == -1)
        skip(); /* port 53 on 127.0.0.77 taken or not ours to bind */
    return dns;
}

/* A private /etc where host names not in hosts go to the silent DNS server. */
static const char *etc_with_silent_dns(const char *resolv_options)
{
    const char *hosts;
    const char *etc = private_etc("127.0.0.1 localhost", "files dns", &hosts);
    write_file(tfmt("%s/resolv.conf", etc),
               tfmt("nameserver 127.0.0.77\noptions %s\n", resolv_options));
    return etc;
}

static void expect_dns_query(struct ferry *f, int dns)
{
    char query[512];
    ssize_t n = recv_some(dns, query, sizeof query, 5000);
    if (n <= 0) {
        ferry_dump(f, "no DNS query");
        fail_msg("no DNS query arrived (%zd)", n);
    }
}

/* Reads queries until one asks for qname (in DNS wire form, e.g. "\1a\2fy\4test"), 15 s at most. */
static void expect_dns_query_for(struct ferry *f, int dns, const char *qname)
{
    int64_t deadline = now_ms() + 15000;
    char query[512];
    for (int64_t left; (left = deadline - now_ms()) > 0;) {
        ssize_t n = recv_some(dns, query, sizeof query, (int)left);
        if (n > 0 && memmem(query, (size_t)n, qname, strlen(qname)))
            return;
    }
    ferry_dump(f, "no DNS query for the name");
    fail_msg("no DNS query for the expected name arrived");
}

/* SIGTERM now: ferry drains and exits 0 within 3 s, whatever it was waiting on (during). */
static void sigterm_exits_at_once(struct ferry *f, const char *during)
{
    int64_t t0 = now_ms();
    ferry_signal(f, SIGTERM);
    int code = ferry_wait_exit(f, 3000);
    if (code != 0) {
        ferry_dump(f, tfmt("SIGTERM during %s", during));
        fail_msg("exit %d after SIGTERM during %s, want 0", code, during);
    }
    assert_true(now_ms() - t0 < 3000);
    assert_int_equal(ferry_count_log(f, " stopped"), 1);
}

/*
 * A reload resolves the file's names afresh, but a backend name whose address is still among its
 * answers keeps that address even when another answer now comes first: SIGHUP on an unchanged file
 * is then "no change". When the address is gone from the answers, the reload moves the backend.
 */
static void test_reload_keeps_an_address_its_name_still_has(void **state)
{
    (void)state;
    if (!private_etc_supported())
        skip(); /* needs a mount namespace of its own (root) to control /etc/hosts */
    const char *hosts;
    const char *etc = private_etc("127.0.0.2 multi.ferry.test", "files", &hosts);
    int lport = free_port(AF_INET);
    struct ferry_opts opts = {.etc_dir = etc};
    struct ferry *f = ferry_start_opts(tfmt("resolve_interval: 0\n"
                                            "reload: {watch: false}\n"
                                            "routes:\n"
                                            "  - name: db\n"
                                            "    listen: 127.0.0.1:%d\n"
                                            "    backends: [multi.ferry.test:5432]\n",
                                            lport),
                                       &opts);
    set_hosts(hosts, "127.0.0.3 multi.ferry.test\n127.0.0.2 multi.ferry.test");
    ferry_signal(f, SIGHUP);
    if (!ferry_wait_log(f, "reload: no change (SIGHUP)", RELOAD_WAIT_MS)) {
        ferry_dump(f, "second answer kept");
        fail_msg("a reload moved a backend whose address its name still has");
    }
    set_hosts(hosts, "127.0.0.3 multi.ferry.test");
    ferry_signal(f, SIGHUP);
    assert_true(ferry_wait_log(f,
                               "route db: backend multi.ferry.test:5432 now resolves to "
                               "127.0.0.3:5432 (was 127.0.0.2:5432)",
                               RELOAD_WAIT_MS));
    assert_true(ferry_wait_log(f, "reload generation=2", RELOAD_WAIT_MS));
    ferry_stop(f);
}

/*
 * The lookups run on a thread of their own: with the name gone from /etc/hosts and the only DNS
 * server a socket here that reads queries and never answers (glibc waits 5 s per try), ferry still
 * drains and exits on SIGTERM at once. The query arriving proves a lookup is in flight.
 */
static void test_dns_that_never_answers_does_not_hold_sigterm(void **state)
{
    (void)state;
    int dns = silent_dns();
    const char *etc = etc_with_silent_dns("timeout:5 attempts:2");
    const char *hosts = tfmt("%s/hosts", etc);
    set_hosts(hosts, "127.0.0.2 slow.ferry.test");
    int lport = free_port(AF_INET);
    struct ferry_opts opts = {.etc_dir = etc};
    struct ferry *f = ferry_start_opts(tfmt("resolve_interval: 100ms\n"
                                            "shutdown_timeout: 10s\n"
                                            "routes:\n"
                                            "  - name: slow\n"
                                            "    listen: 127.0.0.1:%d\n"
                                            "    backends: [slow.ferry.test:9]\n",
                                            lport),
                                       &opts);
    set_hosts(hosts, "# gone");
    expect_dns_query(f, dns);
    sigterm_exits_at_once(f, "a DNS lookup");
}

/*
 * A reload resolves the file's new host names on the resolver thread: while it waits on a DNS
 * server that never answers, the control thread still takes signals (more SIGHUPs coalesce into
 * one reload that follows the one in progress), the running routes keep relaying, and when the
 * lookup times out the reload is rejected with the name in the message. A fixed file then loads.
 */
static void test_reload_waiting_on_dns_keeps_taking_signals(void **state)
{
    (void)state;
    int dns = silent_dns();
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport = free_port(AF_INET), lport2 = free_port(AF_INET);
    struct ferry_opts opts = {.etc_dir = etc_with_silent_dns("timeout:3 attempts:1")};
    const char *base = tfmt("log: {level: debug}\n"
                            "reload: {watch: false}\n"
                            "routes:\n"
                            "  - name: web\n"
                            "    listen: 127.0.0.1:%d\n"
                            "    backends: [127.0.0.1:%d]\n",
                            lport, backend_port(b));
    struct ferry *f = ferry_start_opts(base, &opts);
    write_file(ferry_config_path(f), tfmt("%s"
                                          "  - name: far\n"
                                          "    listen: 127.0.0.1:%d\n"
                                          "    backends: [nowhere.ferry.test:9]\n",
                                          base, lport2));
    ferry_signal(f, SIGHUP);
    expect_dns_query(f, dns);
    ferry_signal(f, SIGHUP);
    ferry_signal(f, SIGHUP);
    assert_true(
        ferry_wait_log(f, "reload (SIGHUP) waits for the host name lookups in progress", 2000));
    assert_int_equal(ferry_count_log(f, "reload rejected"), 0); /* the first is still waiting */
    int c = connect_ok(lport);
    send_str(c, "still relaying\n");
    recv_expect(c, "still relaying\n");
    close_fd(c);

    /* The first reload, then the one the two later SIGHUPs coalesced into. */
    assert_true(ferry_wait_log_count(f, "reload rejected (SIGHUP)", 2, 20000));
    const char *line = log_line(f, "reload rejected (SIGHUP)");
    assert_non_null(strstr(line, "nowhere.ferry.test"));
    assert_non_null(strstr(line, "still running generation 1"));

    write_file(ferry_config_path(f), tfmt("%s"
                                          "  - name: far\n"
                                          "    listen: 127.0.0.1:%d\n"
                                          "    backends: [localhost:9]\n",
                                          base, lport2));
    ferry_signal(f, SIGHUP);
    assert_true(ferry_wait_log(f, "reload generation=2", 10000));
    assert_int_equal(ferry_count_log(f, "reload rejected"), 2);
    ferry_stop(f);
}

/*
 * An operator recovering from a DNS outage: five backend names no longer resolve and the only DNS
 * server never answers (2 s per name), so a lookup round takes 10 s or more. A reload of a file
 * that uses an address instead does not wait for the whole round: the round stops after the name
 * in flight, the new generation follows within one lookup's time, and it relays.
 */
static void test_reload_cuts_a_lookup_round_short(void **state)
{
    (void)state;
    int dns = silent_dns();
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    const char *etc = etc_with_silent_dns("timeout:2 attempts:1");
    const char *hosts = tfmt("%s/hosts", etc);
    set_hosts(hosts, "127.0.0.1 a.fy.test b.fy.test c.fy.test d.fy.test e.fy.test");
    int lport = free_port(AF_INET);
    struct ferry_opts opts = {.etc_dir = etc};
    int p = backend_port(b);
    const char *head = tfmt("resolve_interval: 100ms\n"
                            "log: {level: debug}\n"
                            "reload: {watch: false}\n"
                            "routes:\n"
                            "  - name: db\n"
                            "    listen: 127.0.0.1:%d\n",
                            lport);
    struct ferry *f =
        ferry_start_opts(tfmt("%s    backends: [a.fy.test:%d, b.fy.test:%d, c.fy.test:%d, "
                              "d.fy.test:%d, e.fy.test:%d]\n",
                              head, p, p, p, p, p),
                         &opts);
    set_hosts(hosts, "# gone");
    /* A round waits on its first name, four more to go (a round begun before the change may
     * query a later name first: its successor then starts with a.fy.test). */
    expect_dns_query_for(f, dns, "\1a\2fy\4test");
    write_file(ferry_config_path(f), tfmt("%s    backends: [127.0.0.1:%d]\n", head, p));
    int64_t t0 = now_ms();
    ferry_signal(f, SIGHUP);
    if (!ferry_wait_log(f, "reload generation=2", 6000)) {
        ferry_dump(f, "reload behind a lookup round");
        fail_msg("the reload waited for the whole lookup round");
    }
    assert_true(now_ms() - t0 < 6000);
    assert_true(ferry_wait_log(f, "host name lookups cut short after", 1000));
    int c = connect_ok(lport);
    send_str(c, "after the outage\n");
    recv_expect(c, "after the outage\n");
    close_fd(c);
    ferry_stop(f);
}

/* SIGTERM while a reload waits on DNS: ferry drains and exits at once. */
static void test_sigterm_during_reload_waiting_on_dns(void **state)
{
    (void)state;
    int dns = silent_dns();
    int lport = free_port(AF_INET), lport2 = free_port(AF_INET);
    struct ferry_opts opts = {.etc_dir = etc_with_silent_dns("timeout:5 attempts:2")};
    const char *base = tfmt("reload: {watch: false}\n"
                            "routes:\n"
                            "  - name: web\n"
                            "    listen: 127.0.0.1:%d\n"
                            "    backends: [127.0.0.1:9]\n",
                            lport);
    struct ferry *f = ferry_start_opts(base, &opts);
    write_file(ferry_config_path(f), tfmt("%s"
                                          "  - name: far\n"
                                          "    listen: 127.0.0.1:%d\n"
                                          "    backends: [nowhere.ferry.test:9]\n",
                                          base, lport2));
    ferry_signal(f, SIGHUP);
    expect_dns_query(f, dns);
    sigterm_exits_at_once(f, "a reload's DNS lookup");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        E2E_TEST(test_backend_change_moves_new_connections_only),
        E2E_TEST(test_reject_yaml_syntax_error),
        E2E_TEST(test_reject_unknown_key),
        E2E_TEST(test_reject_listen_address_taken),
        E2E_TEST(test_reject_backend_that_loops_into_the_route),
        E2E_TEST(test_100_reloads_under_traffic),
        E2E_TEST(test_file_replaced_by_rename),
        E2E_TEST(test_configmap_symlink_swap),
        E2E_TEST(test_symlink_into_another_directory),
        E2E_TEST(test_other_files_in_the_directory_reload_nothing),
        E2E_TEST(test_rejected_reload_is_retried_on_any_event),
        E2E_TEST(test_routes_and_listeners_added_and_removed),
        E2E_TEST(test_splice_turned_off_closes_kept_pipes),
        E2E_TEST(test_sighup_unchanged_is_no_change),
        E2E_TEST(test_unchanged_address_keeps_socket_when_route_renamed),
        E2E_TEST(test_watch_false_only_sighup_reloads),
        E2E_TEST(test_watch_turned_off_by_a_reload),
        E2E_TEST(test_workers_reported_against_what_runs),
        E2E_TEST(test_derived_max_connections_shows_its_number),
        E2E_TEST(test_log_level_raised_by_a_reload_shows_its_lines),
        E2E_TEST(test_listen_address_moves_to_the_wildcard_and_back),
        E2E_TEST(test_listen_v6_address_moves_to_the_wildcard_and_back),
        E2E_TEST(test_listen_move_that_cannot_bind_keeps_the_old_listener),
        E2E_TEST(test_listen_moves_under_traffic),
        E2E_TEST(test_backend_host_name_followed),
        E2E_TEST(test_reload_keeps_an_address_its_name_still_has),
        E2E_TEST(test_dns_that_never_answers_does_not_hold_sigterm),
        E2E_TEST(test_reload_waiting_on_dns_keeps_taking_signals),
        E2E_TEST(test_sigterm_during_reload_waiting_on_dns),
        E2E_TEST(test_reload_cuts_a_lookup_round_short),
    };
    return E2E_MAIN(tests);
}
