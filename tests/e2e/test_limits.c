/*
 * End-to-end: resources. A slow reader cannot make ferry buffer (its RSS stays flat while the
 * backend pushes 256 MiB, then every byte arrives intact); a stalled transfer costs no CPU; 1000
 * concurrent connections pass; max_connections holds clients in the kernel backlog until a pair
 * closes; under a tiny RLIMIT_NOFILE ferry neither spins nor dies, and recovers.
 */
#include "e2e.h"

#include <poll.h>

#include "worker.h" /* WORKER_PIPES_KEPT */

/* A client connected through ferry to a backend the test drives itself. */
struct pair {
    struct ferry *ferry;
    int client;
    int backend;
};

static void open_pair(struct pair *p)
{
    int bport, lport = free_port(AF_INET);
    int lfd = listen_loopback(AF_INET, 16, 0, &bport);
    assert_ok(lfd, "backend listen");
    p->ferry = ferry_start(tfmt("routes:\n"
                                "  - name: l\n"
                                "    listen: 127.0.0.1:%d\n"
                                "    backends: [127.0.0.1:%d]\n",
                                lport, bport));
    p->client = connect_ok(lport);
    p->backend = accept_timeout(lfd, NET_TIMEOUT_MS);
    assert_ok(p->backend, "ferry did not connect to the backend");
}

static void test_slow_reader_memory_bounded(void **state)
{
    (void)state;
    const uint64_t total = 256u * MIB;
    const long max_growth_kib = 4096;
    struct pair p;
    open_pair(&p);
    /* One small exchange first, so whatever ferry allocates per pair is in the baseline. */
    send_str(p.backend, "warm-up");
    recv_expect(p.client, "warm-up");
    long rss0 = proc_rss_kib(ferry_pid(p.ferry));
    assert_true(rss0 > 0);

    struct pump *tx = pump_send(p.backend, total, 8, true, 20000);
    /* The client reads nothing: the backend must be stopped by backpressure, not by ferry
     * absorbing the stream. */
    assert_true(pump_wait_stalled(tx, 300, 20000));
    uint64_t pushed = pump_progress(tx);
    long rss1 = proc_rss_kib(ferry_pid(p.ferry));
    print_message("stalled after %llu bytes; ferry RSS %ld -> %ld KiB\n",
                  (unsigned long long)pushed, rss0, rss1);
    if (pushed >= total) {
        fail_msg("the backend sent all %llu bytes to a client that read nothing: ferry buffers "
                 "without bound (RSS %ld -> %ld KiB)",
                 (unsigned long long)total, rss0, rss1);
    }
    if (rss1 - rss0 > max_growth_kib) {
        fail_msg("ferry RSS grew by %ld KiB (%ld -> %ld) while %llu bytes waited for a slow "
                 "reader, want < %ld KiB",
                 rss1 - rss0, rss0, rss1, (unsigned long long)pushed, max_growth_kib);
    }

    /* Now the client drains: every byte arrives, in order. */
    struct pump *rx = pump_recv(p.client, 20000);
    struct pump_result sent, got;
    pump_join(tx, 90000, &sent);
    pump_join(rx, 90000, &got);
    assert_same_stream(&sent, &got, total);
    close_fd(p.client);
    close_fd(p.backend);
    long rss2 = proc_rss_kib(ferry_pid(p.ferry));
    if (rss2 - rss0 > max_growth_kib) {
        fail_msg("ferry RSS grew by %ld KiB over a 256 MiB transfer, want < %ld KiB", rss2 - rss0,
                 max_growth_kib);
    }
    ferry_stop(p.ferry);
}

static void test_stalled_transfer_costs_no_cpu(void **state)
{
    (void)state;
    struct pair p;
    open_pair(&p);
    const uint64_t total = 256u * MIB;
    struct pump *tx = pump_send(p.backend, total, 9, false, 20000);
    assert_true(pump_wait_stalled(tx, 300, 20000));
    assert_true(pump_progress(tx) < total);
    double cpu0 = proc_cpu_seconds(ferry_pid(p.ferry));
    sleep_ms(1000);
    double cpu1 = proc_cpu_seconds(ferry_pid(p.ferry));
    assert_true(cpu0 >= 0 && cpu1 >= 0);
    print_message("ferry CPU during 1 s of stall: %.2f s\n", cpu1 - cpu0);
    if (cpu1 - cpu0 > 0.1) {
        fail_msg("ferry used %.2f s of CPU in 1 s of a stalled transfer, want < 0.1 s",
                 cpu1 - cpu0);
    }
    reset_fd(p.client);
    struct pump_result sent;
    pump_join(tx, 10000, &sent);
    assert_true(sent.err != 0);
    ferry_stop(p.ferry);
}

static void test_thousand_concurrent_connections(void **state)
{
    (void)state;
    enum { N = 1000 };
    if (raise_nofile_limit() < 2 * N + 200) {
        skip(); /* the hard limit leaves no room for both ends of 1000 pairs in this process */
    }
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport = free_port(AF_INET);
    /* ferry inherits the raised limit; max_connections is explicit so the test does not depend on
     * the default derived from it. */
    struct ferry *f = ferry_start(tfmt("max_connections: 4000\n"
                                       "routes:\n"
                                       "  - name: many\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    backends: [127.0.0.1:%d]\n",
                                       lport, backend_port(b)));
    static int fds[N];
    char msg[32];
    for (int i = 0; i < N; i++) {
        fds[i] = tcp_connect(AF_INET, lport, NET_TIMEOUT_MS);
        if (fds[i] < 0) {
            fail_msg("connection %d: %s", i, strerror(-fds[i]));
        }
    }
    for (int i = 0; i < N; i++) {
        snprintf(msg, sizeof msg, "connection %04d\n", i);
        send_str(fds[i], msg);
    }
    for (int i = 0; i < N; i++) {
        snprintf(msg, sizeof msg, "connection %04d\n", i);
        recv_expect(fds[i], msg);
    }
    /* All 1000 pairs are open at the same time. */
    if (!backend_wait_active(b, N, NET_TIMEOUT_MS)) {
        fail_msg("the backend holds %d connections, want %d at once", backend_active(b), N);
    }
    for (int i = 0; i < N; i++) {
        close_fd(fds[i]);
    }
    if (!ferry_wait_log_count(f, "cause=", N, 20000)) {
        fail_msg("%d access lines after closing %d connections", ferry_count_log(f, "cause="), N);
    }
    assert_true(backend_wait_active(b, 0, NET_TIMEOUT_MS));
    ferry_stop(f);
}

static void test_max_connections_queues_clients(void **state)
{
    (void)state;
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport = free_port(AF_INET);
    struct ferry *f = ferry_start(tfmt("max_connections: 2\n"
                                       "routes:\n"
                                       "  - name: few\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    backends: [127.0.0.1:%d]\n",
                                       lport, backend_port(b)));
    int c1 = connect_ok(lport);
    send_str(c1, "one");
    recv_expect(c1, "one");
    int c2 = connect_ok(lport);
    send_str(c2, "two");
    recv_expect(c2, "two");
    /* The third connection completes in the kernel backlog but is not served... */
    int c3 = connect_ok(lport);
    send_str(c3, "three");
    if (!stays_quiet(c3, 300)) {
        fail_msg("a third client got an answer or was closed while max_connections is 2");
    }
    assert_int_equal(backend_accepted(b), 2);
    /* ...until a pair closes. */
    close_fd(c1);
    recv_expect(c3, "three");
    assert_int_equal(backend_accepted(b), 3);
    send_str(c2, "two still works");
    recv_expect(c2, "two still works");

    /* Held at the limit, each client that leaves lets the next one in and the limit is hit
     * again: one pause line for the episode, not one per client. */
    int held[2] = {c2, c3};
    for (int i = 0; i < 5; i++) {
        int next = connect_ok(lport);
        send_str(next, "next");
        close_fd(held[i % 2]);
        recv_expect(next, "next");
        held[i % 2] = next;
    }
    assert_int_equal(backend_accepted(b), 8);
    assert_int_equal(ferry_count_log(f, "accepting paused"), 1);
    close_fd(held[0]);
    close_fd(held[1]);
    ferry_stop(f);
}

#define LOW_NOFILE  40
#define LOW_CLIENTS 60
#define LOW_MSG_LEN 11 /* "client %03d\n" */

/*
 * Reads echoes of LOW_MSG_LEN bytes from clients until none arrives for quiet_ms. got[i] counts
 * bytes received by client i; closed[i] is set when ferry closed it. Returns the number served.
 */
static int collect_echoes(const int *fds, int n, int *got, bool *closed, int quiet_ms)
{
    struct pollfd p[LOW_CLIENTS];
    int64_t last = now_ms();
    int64_t give_up = now_ms() + 10000;
    while (now_ms() - last < quiet_ms && now_ms() < give_up) {
        int np = 0;
        int idx[LOW_CLIENTS];
        for (int i = 0; i < n; i++) {
            if (!closed[i] && got[i] < LOW_MSG_LEN) {
                p[np].fd = fds[i];
                p[np].events = POLLIN;
                idx[np++] = i;
            }
        }
        if (np == 0) {
            break;
        }
        if (poll(p, (nfds_t)np, 50) <= 0) {
            continue;
        }
        for (int k = 0; k < np; k++) {
            if (p[k].revents == 0) {
                continue;
            }
            char buf[64];
            int i = idx[k];
            ssize_t r = recv_some(fds[i], buf, (size_t)(LOW_MSG_LEN - got[i]), 0);
            if (r > 0) {
                got[i] += (int)r;
            } else if (r == 0 || (r < 0 && r != -ETIMEDOUT)) {
                closed[i] = true;
            }
            last = now_ms();
        }
    }
    int served = 0;
    for (int i = 0; i < n; i++) {
        served += got[i] == LOW_MSG_LEN;
    }
    return served;
}

static void low_nofile_case(int nofile)
{
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport = free_port(AF_INET);
    struct ferry_opts opts = {.rlimit_nofile = nofile};
    struct ferry *f = ferry_start_opts(tfmt("max_connections: 1000\n"
                                            "routes:\n"
                                            "  - name: tight\n"
                                            "    listen: 127.0.0.1:%d\n"
                                            "    backends: [127.0.0.1:%d]\n",
                                            lport, backend_port(b)),
                                       &opts);
    pid_t pid = ferry_pid(f);
    int fds[LOW_CLIENTS], got[LOW_CLIENTS] = {0};
    bool closed[LOW_CLIENTS] = {false};
    char msg[32];
    /* More clients than ferry has descriptors for: the rest wait in its listen backlog. */
    for (int i = 0; i < LOW_CLIENTS; i++) {
        fds[i] = tcp_connect(AF_INET, lport, NET_TIMEOUT_MS);
        if (fds[i] < 0) {
            fail_msg("client %d: %s", i, strerror(-fds[i]));
        }
        snprintf(msg, sizeof msg, "client %03d\n", i);
        send_str(fds[i], msg);
    }
    int served = collect_echoes(fds, LOW_CLIENTS, got, closed, 500);
    int nclosed = 0;
    for (int i = 0; i < LOW_CLIENTS; i++) {
        nclosed += closed[i];
    }
    print_message(
        "RLIMIT_NOFILE=%d: %d clients served, %d closed, %d waiting; ferry holds %d fds\n", nofile,
        served, nclosed, LOW_CLIENTS - served - nclosed, proc_fd_count(pid));
    if (served == 0) {
        fail_msg("no client was served under RLIMIT_NOFILE=%d", nofile);
    }
    if (served == LOW_CLIENTS) {
        fail_msg("all %d clients were served: the RLIMIT_NOFILE of %d did not apply", served,
                 nofile);
    }
    assert_true(ferry_alive(f));
    /* Out of descriptors, whether for accept or for a backend socket, ferry pauses accepting and
     * says so once; a client it accepted but has no backend socket for waits for one (up to
     * connect_timeout) rather than being dropped. */
    if (nclosed != 0) {
        ferry_dump(f, "clients closed");
        fail_msg("%d clients were closed while ferry was out of descriptors", nclosed);
    }
    assert_int_equal(ferry_count_log(f, "pausing accept"), 1);

    /* Saturated: ferry must wait, not spin on the pending connections. */
    double cpu0 = proc_cpu_seconds(pid);
    int64_t t0 = now_ms();
    sleep_ms(1000);
    double cpu1 = proc_cpu_seconds(pid);
    double wall = (double)(now_ms() - t0) / 1000.0;
    assert_true(cpu0 >= 0 && cpu1 >= 0);
    print_message("ferry CPU while saturated: %.2f s in %.2f s\n", cpu1 - cpu0, wall);
    if (cpu1 - cpu0 > 0.25) {
        fail_msg("ferry used %.2f s of CPU in %.2f s while out of descriptors (spinning), want < "
                 "0.25 s",
                 cpu1 - cpu0, wall);
    }

    /* Established pairs keep working meanwhile. */
    for (int i = 0; i < LOW_CLIENTS; i++) {
        if (got[i] == LOW_MSG_LEN && !closed[i]) {
            send_str(fds[i], "still served");
            recv_expect(fds[i], "still served");
            break;
        }
    }

    /* Recovery: once the clients are gone, new connections are served again. */
    for (int i = 0; i < LOW_CLIENTS; i++) {
        close_fd(fds[i]);
    }
    for (int i = 0; i < 5; i++) {
        int c = tcp_connect(AF_INET, lport, NET_TIMEOUT_MS);
        assert_ok(c, "connect after the clients left");
        snprintf(msg, sizeof msg, "after %d", i);
        send_str(c, msg);
        recv_expect(c, msg);
        fds[i] = c;
    }
    for (int i = 0; i < 5; i++) {
        close_fd(fds[i]);
    }
    ferry_stop(f);
}

/* Both parities of the limit: with one, accept() runs out first; with the other, accept takes the
 * last descriptor and the backend socket() is the one refused. */
static void test_low_nofile_no_spin_and_recovery(void **state)
{
    (void)state;
    low_nofile_case(LOW_NOFILE);
    low_nofile_case(LOW_NOFILE + 1);
}

/* n clients through ferry's listener lport, and their backend ends, accepted from lfd. */
static void connect_pairs(int n, int lport, int lfd, int *client, int *backend)
{
    for (int i = 0; i < n; i++) {
        client[i] = connect_ok(lport);
        backend[i] = accept_timeout(lfd, NET_TIMEOUT_MS);
        assert_ok(backend[i], "ferry did not connect to the backend");
    }
}

/* Each client streams total bytes toward a backend that reads nothing yet; returns once every
 * stream has stalled (ferry and the kernel hold what they can). */
static void stall_streams(int n, const int *client, uint64_t total, uint32_t seed, struct pump **tx)
{
    for (int i = 0; i < n; i++)
        tx[i] = pump_send(client[i], total, seed + (uint32_t)i, true, 20000);
    for (int i = 0; i < n; i++)
        assert_true(pump_wait_stalled(tx[i], 300, 20000));
}

/* The backends read: every stream arrives whole, then both ends of each pair close. */
static void deliver_streams(int n, const int *client, const int *backend, struct pump **tx,
                            uint64_t total)
{
    struct pump *rx[64];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++)
        rx[i] = pump_recv(backend[i], 20000);
    for (int i = 0; i < n; i++) {
        struct pump_result sent, got;
        pump_join(tx[i], 30000, &sent);
        pump_join(rx[i], 30000, &got);
        assert_same_stream(&sent, &got, total);
        close_fd(client[i]);
        close_fd(backend[i]);
    }
}

/* The descriptors a ferry running yaml holds of its own, counted on a run without a limit. */
static int own_fds(const char *yaml)
{
    struct ferry *f = ferry_start(yaml);
    int n = proc_fd_count(ferry_pid(f));
    ferry_stop(f);
    assert_true(n > 3);
    return n;
}

/* A splice route under the given top-level keys. coalesce: off, as these tests count descriptors
 * to the last one: with the wait before blocking measured, a worker opens its schedstat file the
 * first time a busy period ends, at a moment the test does not control. */
static const char *splice_yaml(const char *top, int lport, int bport)
{
    return tfmt("%s"
                "coalesce: off\n"
                "routes:\n"
                "  - name: bulk\n"
                "    listen: 127.0.0.1:%d\n"
                "    splice: true\n"
                "    backends: [127.0.0.1:%d]\n",
                top, lport, bport);
}

/*
 * Four clients stream to backends that read nothing yet, through a ferry that can have only two
 * pipes, so every direction ends up holding what it moved: two of them in pipes, the other two in
 * their rings. When the backends read, all four streams arrive whole, nothing was reset, the log
 * says why (needle), and once the clients leave ferry holds no socket of theirs and no more pipes
 * than kept_max (what it may keep for reuse).
 */
static void stall_four_streams_on_two_pipes(const char *top, int extra_fds, const char *needle,
                                            int kept_max)
{
    int bport, lport = free_port(AF_INET);
    int lfd = listen_loopback(AF_INET, 16, 0, &bport);
    assert_ok(lfd, "backend listen");
    const char *yaml = splice_yaml(top, lport, bport);
    int base = own_fds(yaml);
    enum { N = 4, PIPES = 2 };
    const uint64_t total = 8u * MIB;
    struct ferry_opts opts = {.rlimit_nofile = extra_fds ? base + 2 * N + extra_fds : 0};
    if (!extra_fds)
        opts.rlimit_nofile = 69; /* derived limits: 14 connections, 2 pipes (see below) */
    struct ferry *f = ferry_start_opts(yaml, &opts);
    pid_t pid = ferry_pid(f);
    assert_int_equal(proc_fd_count(pid), base);
    int base_pipes = proc_pipe_count(pid), base_sockets = proc_socket_count(pid);
    int client[N], backend[N];
    struct pump *tx[N];
    connect_pairs(N, lport, lfd, client, backend);
    stall_streams(N, client, total, 40, tx);
    int pipes = proc_pipe_count(pid) - base_pipes;
    print_message("RLIMIT_NOFILE=%ld, %d fds at start: %d streams stalled, %d pipe fds\n",
                  opts.rlimit_nofile, base, N, pipes);
    assert_int_equal(pipes, 2 * PIPES);
    assert_true(ferry_wait_log(f, needle, NET_TIMEOUT_MS));
    deliver_streams(N, client, backend, tx, total);
    assert_true(ferry_wait_log_count(f, "cause=", N, NET_TIMEOUT_MS));
    assert_int_equal(ferry_count_log(f, "cause=client_reset"), 0);
    assert_int_equal(ferry_count_log(f, "cause=backend_reset"), 0);
    assert_int_equal(ferry_count_log(f, "cause=local_error"), 0);
    /* Every pair's sockets are closed; only pipes kept for reuse are left. */
    assert_int_equal(proc_socket_count(pid), base_sockets);
    int kept = proc_pipe_count(pid) - base_pipes;
    print_message("%d pipe fds kept after the pairs closed\n", kept);
    assert_true(kept >= 0 && kept <= 2 * kept_max);
    close_fd(lfd);
    ferry_stop(f);
}

/* The kernel refuses the pipes: the limit leaves room for the sockets and two pipes only. (As the
 * pairs close, descriptors come free and the last pairs may get pipes, which ferry then keeps: up
 * to its two lists' worth.) */
static void test_splice_out_of_fds_falls_back_to_rings(void **state)
{
    (void)state;
    stall_four_streams_on_two_pipes("max_connections: 100\n", 4, "no pipe (Too many open files)",
                                    2 * WORKER_PIPES_KEPT);
}

/* ferry's own pipe limit: 69 descriptors, less 37 kept for ferry itself, leave 32; an eighth of
 * them (4) goes to pipes: 2 pipes, 14 connections. */
static void test_splice_pipe_limit_falls_back_to_rings(void **state)
{
    (void)state;
    stall_four_streams_on_two_pipes("", 0, "all 2 pipes in use", 2);
}

/*
 * Out of descriptors for a new client or for its backend socket, ferry first closes the pipes it
 * keeps for reuse. One pair has exchanged bytes (one pipe kept, four descriptors in all); the
 * limit then leaves nothing for a second client's socket (extra 0), or for its backend socket
 * (extra 1): the second pair is served all the same, and nobody is reset.
 */
static void test_kept_pipes_give_way_to_sockets(void **state)
{
    (void)state;
    struct backend *b = backend_start(AF_INET, BACKEND_ECHO);
    int lport = free_port(AF_INET);
    const char *yaml = splice_yaml("max_connections: 100\n", lport, backend_port(b));
    int base = own_fds(yaml);
    for (int extra = 0; extra < 2; extra++) {
        struct ferry_opts opts = {.rlimit_nofile = base + 4 + extra};
        struct ferry *f = ferry_start_opts(yaml, &opts);
        pid_t pid = ferry_pid(f);
        int first = connect_ok(lport);
        send_str(first, "first");
        recv_expect(first, "first");
        assert_int_equal(proc_fd_count(pid), base + 4);
        int second = connect_ok(lport);
        send_str(second, "second");
        recv_expect(second, "second");
        send_str(first, "first again");
        recv_expect(first, "first again");
        close_fd(first);
        close_fd(second);
        assert_true(ferry_wait_log_count(f, "cause=client_fin", 2, NET_TIMEOUT_MS));
        assert_int_equal(ferry_count_log(f, "cause=local_error"), 0);
        ferry_stop(f);
    }
}

/* The bytes of buffers ferry's "released ... of buffers" lines add up to so far. */
static uint64_t released_bytes(struct ferry *f)
{
    char *err = ferry_stderr(f);
    uint64_t sum = 0;
    for (const char *p = err; (p = strstr(p, "released ")) != NULL;) {
        p += strlen("released ");
        char *end;
        unsigned long long n = strtoull(p, &end, 10);
        if (strncmp(end, "MiB", 3) == 0)
            n <<= 20;
        else if (strncmp(end, "KiB", 3) == 0)
            n <<= 10;
        sum += n;
    }
    free(err);
    return sum;
}

/*
 * Buffers a burst needed are kept for the next one, but not for good: N clients stream toward
 * backends that read nothing yet, so ferry holds N grown rings at once; once everything is
 * delivered and the pairs are gone, the pools give back what no burst has used for a whole trim
 * period, and ferry's RSS comes back to about where it was before the burst.
 */
static void test_buffers_left_unused_after_a_burst_are_released(void **state)
{
    (void)state;
    enum { N = 20 };
    const uint64_t total = 16u * MIB;
    int bport, lport = free_port(AF_INET);
    int lfd = listen_loopback(AF_INET, N, 0, &bport);
    assert_ok(lfd, "backend listen");
    struct ferry *f = ferry_start(tfmt("log: {level: debug}\n"
                                       "routes:\n"
                                       "  - name: burst\n"
                                       "    listen: 127.0.0.1:%d\n"
                                       "    backends: [127.0.0.1:%d]\n",
                                       lport, bport));
    pid_t pid = ferry_pid(f);
    int client[N], backend[N];
    struct pump *tx[N];
    connect_pairs(N, lport, lfd, client, backend);
    long rss0 = proc_rss_kib(pid);
    stall_streams(N, client, total, 70, tx);
    /* Each stalled direction holds a full ring (grown to 256KiB: it streams). */
    long rss1 = proc_rss_kib(pid);
    assert_true(rss1 >= rss0 + N * 256 / 2);
    deliver_streams(N, client, backend, tx, total);
    assert_true(ferry_wait_log_count(f, "cause=", N, NET_TIMEOUT_MS));
    long rss2 = proc_rss_kib(pid);
    /* Within two trim periods (one starts counting, the next releases) the N grown rings go back;
     * a burst that ended across a period boundary is released in two steps. */
    uint64_t released = 0;
    for (int64_t end = now_ms() + 3 * 5000;
         now_ms() < end && released < (uint64_t)N * 256 * 1024 * 9 / 10;) {
        released = released_bytes(f);
        poll(NULL, 0, 50);
    }
    long rss3 = proc_rss_kib(pid);
    print_message("ferry RSS: %ld KiB with %d idle pairs, %ld with their rings full, %ld after "
                  "they left, %ld after %llu KiB were released\n",
                  rss0, N, rss1, rss2, rss3, (unsigned long long)(released >> 10));
    /* (90%: a stream that stalled before its ring grew holds a smaller one.) */
    assert_true(released >= (uint64_t)N * 256 * 1024 * 9 / 10);
#if !defined(__SANITIZE_ADDRESS__)
    /* The memory is the system's again (not under ASan, whose allocator keeps what is freed). */
    for (int64_t end = now_ms() + 5000; now_ms() < end && rss3 > rss0 + 1024;) {
        poll(NULL, 0, 50);
        rss3 = proc_rss_kib(pid);
    }
    assert_true(rss3 <= rss0 + 1024);
#endif
    close_fd(lfd);
    ferry_stop(f);
}

/* A splice route leaves most descriptors to sockets: the derived max_connections is not cut to a
 * third (six descriptors per pair) but stays within an eighth of a route without splice, and the
 * ready line says how many pipes the rest allows. */
static void test_splice_route_keeps_most_of_the_derived_limit(void **state)
{
    (void)state;
    int lport = free_port(AF_INET);
    unsigned derived[2];
    for (int splice = 0; splice < 2; splice++) {
        struct ferry_opts opts = {.rlimit_nofile = 4000};
        struct ferry *f = ferry_start_opts(tfmt("workers: 1\n"
                                                "routes:\n"
                                                "  - name: r\n"
                                                "    listen: 127.0.0.1:%d\n"
                                                "    splice: %s\n"
                                                "    backends: [127.0.0.1:9]\n",
                                                lport, splice ? "true" : "false"),
                                           &opts);
        char *err = ferry_stderr(f);
        const char *at = strstr(err, "max_connections=");
        assert_non_null(at);
        derived[splice] = (unsigned)strtoul(at + strlen("max_connections="), NULL, 10);
        const char *pipes = strstr(err, "max_pipes=");
        if (splice) {
            /* What is left for pipes is said, and sockets and pipes together fit the limit. */
            assert_non_null(pipes);
            unsigned n = (unsigned)strtoul(pipes + strlen("max_pipes="), NULL, 10);
            assert_true(n >= 200);
            assert_true(2 * derived[splice] + 2 * n <= 4000);
        } else {
            assert_null(pipes);
        }
        free(err);
        ferry_stop(f);
    }
    print_message("derived max_connections under 4000 fds: %u, with splice %u\n", derived[0],
                  derived[1]);
    assert_true(derived[0] > 1900 && derived[0] <= 2000);
    assert_true(derived[1] < derived[0]);
    assert_true(derived[1] >= derived[0] * 7 / 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        E2E_TEST(test_slow_reader_memory_bounded),
        E2E_TEST(test_stalled_transfer_costs_no_cpu),
        E2E_TEST(test_thousand_concurrent_connections),
        E2E_TEST(test_max_connections_queues_clients),
        E2E_TEST(test_low_nofile_no_spin_and_recovery),
        E2E_TEST(test_splice_out_of_fds_falls_back_to_rings),
        E2E_TEST(test_splice_pipe_limit_falls_back_to_rings),
        E2E_TEST(test_kept_pipes_give_way_to_sockets),
        E2E_TEST(test_splice_route_keeps_most_of_the_derived_limit),
        E2E_TEST(test_buffers_left_unused_after_a_burst_are_released),
    };
    return E2E_MAIN(tests);
}
