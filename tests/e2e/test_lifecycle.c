/*
 * End-to-end: the process lifecycle. Listeners (one or several per route) are logged and ready;
 * two workers serve connections together; SIGTERM closes the listeners at once, lets open pairs
 * finish, then exits 0; shutdown_timeout cuts a pair that never ends (resetting each side whose
 * incoming stream had not ended) and still exits 0; SIGINT
 * stops like SIGTERM; a listen address already in use is a startup error (exit 1) naming it;
 * a SIGPIPE, to the process or to any of its threads, changes nothing.
 */
#include <dirent.h>
#include <sys/syscall.h>

#include "e2e.h"

static void test_listen_list(void **state)
{
    (void)state;
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int p1 = free_port(AF_INET), p2 = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt("routes:\n"
                                       "  - name: two\n"
                                       "    listen: [127.0.0.1:%d, 127.0.0.1:%d]\n"
                                       "    backends: [127.0.0.1:%d]\n",
                                       p1, p2, backend_port(b)));
    char want[128];
    snprintf(want, sizeof want, "listening route=two address=127.0.0.1:%d", p1);
    assert_int_equal(ferry_count_log(f, want), 1);
    snprintf(want, sizeof want, "listening route=two address=127.0.0.1:%d", p2);
    assert_int_equal(ferry_count_log(f, want), 1);
    assert_int_equal(ferry_count_log(f, " ready "), 1);
    assert_int_equal(ferry_count_log(f, "listeners=2"), 1);
    int c1 = connect_ok(p1), c2 = connect_ok(p2);
    send_str(c1, "via one");
    send_str(c2, "via two");
    recv_expect(c1, "via one");
    recv_expect(c2, "via two");
    close_fd(c1);
    close_fd(c2);
    ferry_stop(f);
}

/* Several event-loop threads share the listeners; every connection is served. */
static void test_two_workers(void **state)
{
    (void)state;
    enum { N = 200 };
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt("workers: 2\n"
                                       "routes:\n"
                                       "  - name: w\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    backends: [127.0.0.1:%d]\n",
                                       lport, backend_port(b)));
    assert_int_equal(ferry_count_log(f, "workers=2"), 1);
    static int fds[N];
    char msg[32];
    for (int i = 0; i < N; i++) {
        fds[i] = connect_ok(lport);
        snprintf(msg, sizeof msg, "w%03d", i);
        send_str(fds[i], msg);
    }
    for (int i = 0; i < N; i++) {
        snprintf(msg, sizeof msg, "w%03d", i);
        recv_expect(fds[i], msg);
    }
    assert_true(backend_wait_active(b, N, NET_TIMEOUT_MS));
    for (int i = 0; i < N; i++) {
        close_fd(fds[i]);
    }
    assert_true(ferry_wait_log_count(f, "cause=", N, 10000));
    ferry_stop(f);
}

/* True once every thread of pid is asleep (state S) at the same look, within timeout_ms. With
 * `coalesce: off` a worker sleeps only in epoll_wait, so then both wait for the next client. */
static bool all_threads_asleep(pid_t pid, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    do {
        DIR *d = opendir(dir);
        if (!d)
            return false;
        bool asleep = true;
        struct dirent *e;
        for (int n = 0; asleep && n < 64 && (e = readdir(d)) != NULL; n++) {
            if (e->d_name[0] == '.')
                continue;
            char path[384], buf[512];
            snprintf(path, sizeof path, "%s/%s/stat", dir, e->d_name);
            FILE *f = fopen(path, "r");
            size_t len = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
            if (f)
                fclose(f);
            buf[len] = '\0';
            const char *paren = strrchr(buf, ')');
            asleep = paren && paren[1] == ' ' && paren[2] == 'S';
        }
        closedir(d);
        if (asleep)
            return true;
        sleep_ms(1);
    } while (now_ms() < deadline);
    return false;
}

/* Clients that arrive one at a time, while both workers are idle, go to the workers in turn: a
 * client's pool of long-lived connections does not all land on one worker. */
static void test_idle_workers_take_turns(void **state)
{
    (void)state;
    enum { N = 10 };
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt("workers: 2\n"
                                       "coalesce: off\n"
                                       "log: {level: debug}\n"
                                       "routes:\n"
                                       "  - name: w\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    backends: [127.0.0.1:%d]\n",
                                       lport, backend_port(b)));
    static int fds[N];
    for (int i = 0; i < N; i++) {
        /* Each client connects once both workers wait in epoll_wait again (a worker still busy
         * with the last one, or not yet started, is passed over by the kernel). */
        assert_true(all_threads_asleep(ferry_pid(f), NET_TIMEOUT_MS));
        fds[i] = connect_ok(lport);
        send_str(fds[i], "turn");
        recv_expect(fds[i], "turn");
    }
    assert_true(ferry_wait_log_count(f, ": accepted ", N, NET_TIMEOUT_MS));
    int w0 = ferry_count_log(f, "worker 0: accepted"),
        w1 = ferry_count_log(f, "worker 1: accepted");
    if (w0 + w1 != N || w0 < 3 || w1 < 3) {
        ferry_dump(f, "accepts per worker");
        fail_msg("%d clients one after another: worker 0 took %d, worker 1 took %d", N, w0, w1);
    }
    for (int i = 0; i < N; i++)
        close_fd(fds[i]);
    ferry_stop(f);
}

/*
 * Polls connects to port until one is refused; true if that happens within timeout_ms. A connect
 * that still succeeds (ferry logs the shutdown just before it closes the listener) is reset, so
 * the pair it may have become ends at once instead of holding up the drain.
 */
static bool connects_refused(int port, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (now_ms() < deadline) {
        int fd = tcp_connect(AF_INET, port, 200);
        if (fd == -ECONNREFUSED) {
            return true;
        }
        if (fd >= 0) {
            reset_fd(fd);
        }
        sleep_ms(5);
    }
    return false;
}

static void test_sigterm_drains_open_connection(void **state)
{
    (void)state;
    /* More than loopback buffers hold (tcp_rmem may autotune to 32 MiB per socket). */
    const uint64_t n = 256u * MIB;
    int bport, lport = free_port(AF_INET);
    int lfd = listen_loopback(AF_INET, 16, 0, &bport);
    assert_ok(lfd, "backend listen");
    /* A generous drain limit: the 256 MiB stream is hashed on both ends, which is slow in a
     * sanitizer build on a busy machine, and this test is about draining, not the limit. */
    struct ferry *f = ferry_start(tfmt("shutdown_timeout: 5m\n"
                                       "routes:\n"
                                       "  - name: drain\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    backends: [127.0.0.1:%d]\n",
                                       lport, bport));
    int c = connect_ok(lport);
    char client[64], line[1024];
    assert_ok(local_addr_str(c, client, sizeof client), "getsockname");
    int b = accept_timeout(lfd, NET_TIMEOUT_MS);
    assert_ok(b, "ferry did not connect to the backend");

    /* Mid-transfer: the backend has pushed what the path holds; the client has read nothing. */
    struct pump *tx = pump_send(b, n, 10, true, 20000);
    assert_true(pump_wait_stalled(tx, 200, 10000));
    assert_true(pump_progress(tx) < n);

    ferry_signal(f, SIGTERM);
    if (!ferry_wait_log(f, "shutdown signal=SIGTERM", 2000)) {
        ferry_dump(f, "no shutdown line");
        fail_msg("no 'shutdown signal=SIGTERM' log line within 2 s");
    }
    assert_int_equal(ferry_count_log(f, "connections=1"), 1);
    /* The listener is closed at once... */
    if (!connects_refused(lport, 1000)) {
        fail_msg("127.0.0.1:%d still accepts connections after SIGTERM", lport);
    }
    /* ...but the open pair finishes its transfer, and still relays the other way. */
    struct pump *rx = pump_recv(c, 20000);
    struct pump_result sent, got;
    pump_join(tx, 60000, &sent);
    pump_join(rx, 60000, &got);
    assert_same_stream(&sent, &got, n);
    assert_true(ferry_alive(f));
    send_str(c, "goodbye");
    recv_expect(b, "goodbye");
    assert_true(ferry_alive(f));
    close_fd(c);
    assert_int_equal(wait_closed(b, NET_TIMEOUT_MS, NULL), 0);
    close_fd(b);

    /* The last pair ended: ferry exits 0. */
    int code = ferry_wait_exit(f, 5000);
    if (code != 0) {
        ferry_dump(f, "drain exit");
        fail_msg("ferry exited with %d after draining, want 0", code);
    }
    ferry_wait_access(f, client, 0, line, sizeof line);
    assert_field(line, "cause", "backend_fin");
    assert_field_num(line, "bytes_to_client", (long long)n);
    assert_field_num(line, "bytes_from_client", 7);
    assert_int_equal(ferry_count_log(f, " stopped"), 1);
}

/* A pair that never ends by itself: ferry (with top-level yaml top) on a route to a backend the
 * test accepts itself, and "open" relayed once. */
struct open_pair {
    struct ferry *f;
    int lport, lfd; /* ferry's listen port; the test backend's listening socket */
    int c, b;       /* the client, and the backend's end */
    char client[64];
};

static void open_pair_start(struct open_pair *p, const char *top)
{
    int bport;
    p->lport = free_port(AF_INET);
    p->lfd = listen_loopback(AF_INET, 16, 0, &bport);
    assert_ok(p->lfd, "backend listen");
    p->f = ferry_start(tfmt("%s"
                            "routes:\n"
                            "  - name: open\n"
                            "    listen: 127.0.0.1:%d\n"
                            "    backends: [127.0.0.1:%d]\n",
                            top, p->lport, bport));
    p->c = connect_ok(p->lport);
    assert_ok(local_addr_str(p->c, p->client, sizeof p->client), "getsockname");
    p->b = accept_timeout(p->lfd, NET_TIMEOUT_MS);
    assert_ok(p->b, "ferry did not connect to the backend");
    send_str(p->c, "open");
    recv_expect(p->b, "open");
}

static void test_shutdown_timeout_cuts_connection(void **state)
{
    (void)state;
    struct open_pair p;
    open_pair_start(&p, "shutdown_timeout: 300ms\n");
    struct ferry *f = p.f;
    int lport = p.lport, lfd = p.lfd, c = p.c, b = p.b;
    const char *client = p.client;
    char line[1024];
    /* A second pair whose backend has finished its reply: only the client's upload is cut. */
    int c2 = connect_ok(lport);
    char client2[64];
    assert_ok(local_addr_str(c2, client2, sizeof client2), "getsockname");
    int b2 = accept_timeout(lfd, NET_TIMEOUT_MS);
    assert_ok(b2, "ferry did not connect to the backend");
    send_str(c2, "upload");
    recv_expect(b2, "upload");
    send_str(b2, "done");
    shut_wr(b2);
    recv_expect(c2, "done");
    char byte;
    assert_int_equal(recv_some(c2, &byte, 1, NET_TIMEOUT_MS), 0); /* the FIN came through */

    /* Neither pair ends by itself. */
    int64_t t0 = now_ms();
    ferry_signal(f, SIGTERM);
    int code = ferry_wait_exit(f, 5000);
    int64_t elapsed = now_ms() - t0;
    if (code != 0) {
        ferry_dump(f, "shutdown_timeout exit");
        fail_msg("ferry exited with %d after shutdown_timeout, want 0", code);
    }
    if (elapsed < 250 || elapsed > 2000) {
        fail_msg("ferry exited %lld ms after SIGTERM with shutdown_timeout 300ms",
                 (long long)elapsed);
    }
    /* Streams that had not ended are reset on both sides, so neither takes a cut stream for a
     * complete one; the reply that had ended is left as it was. */
    assert_int_equal(wait_closed(c, 1000, NULL), -ECONNRESET);
    assert_int_equal(wait_closed(b, 1000, NULL), -ECONNRESET);
    assert_int_equal(wait_closed(b2, 1000, NULL), -ECONNRESET);
    ferry_wait_access(f, client, 0, line, sizeof line);
    assert_field(line, "cause", "shutdown");
    ferry_wait_access(f, client2, 0, line, sizeof line);
    assert_field(line, "cause", "shutdown");
    assert_int_equal(ferry_count_log(f, " stopped"), 1);
}

/* A second signal during the graceful shutdown closes what is open at once. */
static void test_second_signal_closes_at_once(void **state)
{
    (void)state;
    struct open_pair p;
    open_pair_start(&p, "shutdown_timeout: 10m\n");
    struct ferry *f = p.f;
    int c = p.c, b = p.b;
    char line[1024];

    ferry_signal(f, SIGTERM);
    assert_true(ferry_wait_log(f, "shutdown signal=SIGTERM connections=1", NET_TIMEOUT_MS));
    assert_true(ferry_alive(f)); /* draining: the pair may take its 10 minutes */
    int64_t t0 = now_ms();
    ferry_signal(f, SIGINT);
    assert_int_equal(ferry_wait_exit(f, 5000), 0);
    int64_t elapsed = now_ms() - t0;
    if (elapsed > 2000) {
        fail_msg("ferry exited %lld ms after the second signal, want at once", (long long)elapsed);
    }
    assert_true(ferry_count_log(f, "SIGINT during the graceful shutdown: closing 1 connection") ==
                1);
    assert_int_equal(wait_closed(c, 1000, NULL), -ECONNRESET);
    assert_int_equal(wait_closed(b, 1000, NULL), -ECONNRESET);
    ferry_wait_access(f, p.client, 0, line, sizeof line);
    assert_field(line, "cause", "shutdown");
}

static void test_sigint_stops_cleanly(void **state)
{
    (void)state;
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt("routes:\n"
                                       "  - name: i\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    backends: [127.0.0.1:%d]\n",
                                       lport, backend_port(b)));
    ferry_signal(f, SIGINT);
    int code = ferry_wait_exit(f, 5000);
    if (code != 0) {
        ferry_dump(f, "SIGINT exit");
        fail_msg("ferry exited with %d after SIGINT, want 0", code);
    }
    assert_int_equal(ferry_count_log(f, "shutdown signal=SIGINT"), 1);
    assert_int_equal(ferry_count_log(f, " stopped"), 1);
}

static void test_listen_address_in_use(void **state)
{
    (void)state;
    int port;
    int holder = listen_loopback(AF_INET, 16, 0, &port);
    assert_ok(holder, "listen");
    static const char *const args[] = {"-c", FERRY_CONFIG_ARG, NULL};
    struct ferry *f = ferry_spawn(tfmt("routes:\n"
                                       "  - name: taken\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    backends: [127.0.0.1:9]\n",
                                       port),
                                  args, NULL);
    int code = ferry_wait_exit(f, 5000);
    char *err = owned(ferry_stderr(f));
    char want[64];
    snprintf(want, sizeof want, "127.0.0.1:%d", port);
    if (code != 1 || strstr(err, want) == NULL) {
        fprintf(stderr, "ferry stderr:\n%s", err);
        fail_msg("listen address in use: exit %d (want 1), stderr %s %s", code,
                 strstr(err, want) ? "names" : "does not name", want);
    }
    assert_null(strstr(err, "ready generation="));
}

/*
 * A write to a peer that has gone away can raise SIGPIPE in the thread that wrote (its default
 * action ends the process). The kernel reports ECONNRESET before EPIPE after a reset, so no relay
 * scenario reliably gets there: send the signal directly, to the process and to every thread (as
 * a failed write would), and check that ferry still relays on an old and a new connection. A
 * fatal signal takes the whole process down before kill() returns, so the round trips that
 * follow cannot succeed if it was not ignored.
 */
static void test_sigpipe_is_harmless(void **state)
{
    (void)state;
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt("workers: 2\n"
                                       "routes:\n"
                                       "  - name: p\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    backends: [127.0.0.1:%d]\n",
                                       lport, backend_port(b)));
    int c = connect_ok(lport);
    send_str(c, "before");
    recv_expect(c, "before");

    pid_t pid = ferry_pid(f);
    ferry_signal(f, SIGPIPE);
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int threads = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && threads < 64) {
        if (e->d_name[0] == '.')
            continue;
        pid_t tid = (pid_t)atoi(e->d_name);
        assert_int_equal(syscall(SYS_tgkill, pid, tid, SIGPIPE), 0);
        threads++;
    }
    closedir(d);
    assert_true(threads >= 3); /* the control thread and two workers */

    send_str(c, "after");
    recv_expect(c, "after");
    int c2 = connect_ok(lport);
    send_str(c2, "new");
    recv_expect(c2, "new");
    assert_true(ferry_alive(f));
    close_fd(c);
    close_fd(c2);
    ferry_stop(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        E2E_TEST(test_listen_list),
        E2E_TEST(test_two_workers),
        E2E_TEST(test_idle_workers_take_turns),
        E2E_TEST(test_sigterm_drains_open_connection),
        E2E_TEST(test_shutdown_timeout_cuts_connection),
        E2E_TEST(test_second_signal_closes_at_once),
        E2E_TEST(test_sigint_stops_cleanly),
        E2E_TEST(test_listen_address_in_use),
        E2E_TEST(test_sigpipe_is_harmless),
    };
    return E2E_MAIN(tests);
}
