/*
 * test_resolver.c - the specification of the host name resolver (resolver.h).
 *
 * resolver_lookup() re-resolves exactly the backends written as host names, in place: an address
 * still among a name's answers is kept, another is replaced by the first answer, IP literals are
 * never touched, and the count of names is returned; a round told to stop skips the names it has
 * not started and says it is incomplete. The resolver thread takes one job at a time
 * (a second submit of either kind is refused while one is out), signals completion on its eventfd,
 * and hands the very job back through resolver_take(); a load job returns the file's new
 * configuration or the error that rejects it; stopping it frees a job that was never taken. Waits
 * are poll() calls with a deadline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "resolver.h"

#define WAIT_MS 5000

static const char yaml[] = "routes:\n"
                           "  - name: db\n"
                           "    listen: 127.0.0.1:7000\n"
                           "    backends: [localhost:5432, 127.0.0.1:5433]\n";

static struct config *load(void)
{
    struct config *c = NULL;
    struct config_error err;
    if (config_load_string("t.yaml", yaml, strlen(yaml), &c, &err) != 0)
        fail_msg("rejected: %s", err.msg);
    return c;
}

/* A route with NAMES backends written as host names (localhost:6000, localhost:6001, ...). */
#define NAMES 32
static struct config *load_names(void)
{
    char text[2048];
    int n = snprintf(text, sizeof text,
                     "routes:\n  - name: many\n    listen: 127.0.0.1:7001\n"
                     "    backends:\n");
    for (int i = 0; i < NAMES; i++)
        n += snprintf(text + n, sizeof text - (size_t)n, "      - localhost:%d\n", 6000 + i);
    assert_true(n > 0 && (size_t)n < sizeof text);
    struct config *c = NULL;
    struct config_error err;
    if (config_load_string("t.yaml", text, (size_t)n, &c, &err) != 0)
        fail_msg("rejected: %s", err.msg);
    return c;
}

static struct sockaddr_any addr(const char *text)
{
    struct sockaddr_any a;
    const char *why;
    assert_int_equal(sock_addr_parse(text, false, &a, &why), 0);
    return a;
}

static void test_lookup_moves_only_names_that_moved(void **state)
{
    (void)state;
    struct config *c = load();
    struct sockaddr_any localhost = c->routes[0].backends[0].addr;
    char failing[256] = "x";
    /* Unchanged: everything stays, nothing fails. */
    assert_int_equal(resolver_lookup(c, failing, sizeof(failing), NULL, NULL), 1);
    assert_string_equal(failing, "");
    assert_true(sock_addr_equal(&c->routes[0].backends[0].addr, &localhost));
    /* An address the name no longer has is replaced; the literal is left alone even if odd. */
    c->routes[0].backends[0].addr = addr("127.0.0.9:5432");
    c->routes[0].backends[1].addr = addr("127.0.0.8:5433");
    assert_int_equal(resolver_lookup(c, failing, sizeof(failing), NULL, NULL), 1);
    assert_true(sock_addr_equal(&c->routes[0].backends[0].addr, &localhost));
    struct sockaddr_any lit = addr("127.0.0.8:5433");
    assert_true(sock_addr_equal(&c->routes[0].backends[1].addr, &lit));
    config_unref(c);
}

/* A round told to stop skips the names it has not started: they keep their address, and the
 * caller learns the round is incomplete. Not told, it looks every name up. */
static void test_lookup_stops_before_its_next_name(void **state)
{
    (void)state;
    struct config *c = load();
    struct sockaddr_any stale = addr("127.0.0.9:5432");
    c->routes[0].backends[0].addr = stale;
    char failing[256];
    atomic_bool stop;
    atomic_init(&stop, true);
    bool stopped = false;
    assert_int_equal(resolver_lookup(c, failing, sizeof(failing), &stop, &stopped), 0);
    assert_true(stopped);
    assert_true(sock_addr_equal(&c->routes[0].backends[0].addr, &stale));
    atomic_store(&stop, false);
    assert_int_equal(resolver_lookup(c, failing, sizeof(failing), &stop, &stopped), 1);
    assert_false(stopped);
    assert_false(sock_addr_equal(&c->routes[0].backends[0].addr, &stale));
    config_unref(c);
}

static bool readable(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    return poll(&p, 1, WAIT_MS) == 1;
}

static void test_thread_runs_one_job_at_a_time(void **state)
{
    (void)state;
    struct resolver *r = resolver_start();
    assert_non_null(r);
    struct config *c = load(), *other = load();
    struct sockaddr_any localhost = c->routes[0].backends[0].addr;
    c->routes[0].backends[0].addr = addr("127.0.0.9:5432");
    struct resolver_result res;
    assert_false(resolver_take(r, &res)); /* nothing submitted */
    assert_false(resolver_busy(r));
    assert_true(resolver_submit(r, c));
    assert_true(resolver_busy(r));
    assert_false(resolver_submit(r, other)); /* busy until taken */
    assert_true(readable(resolver_fd(r)));
    /* Done but not taken: still busy, whatever the kind (a load submitted while the round runs
     * would cut it short: the e2e tests show that against a DNS server that never answers). */
    assert_int_equal(resolver_submit_load(r, "x.yaml", c), -EBUSY);
    assert_true(resolver_take(r, &res));
    assert_false(res.cut);
    assert_false(res.load);
    assert_ptr_equal(res.cfg, c);
    assert_int_equal(res.names, 1);
    assert_string_equal(res.failing, "");
    assert_true(sock_addr_equal(&res.cfg->routes[0].backends[0].addr, &localhost));
    config_unref(res.cfg);
    assert_false(resolver_busy(r));
    /* Free again: the next job is taken, and left untaken for resolver_stop() to free. */
    assert_true(resolver_submit(r, other));
    assert_true(readable(resolver_fd(r)));
    resolver_stop(r);
}

/* A load submitted while a round runs cuts the round short (it stops before its next name);
 * never two rounds in a row, and the flag is not left set for the round after. The cut races the
 * lookups (NAMES of them, from /etc/hosts): the test repeats until it has seen a round cut. */
static void test_a_reload_cuts_a_round_but_not_two_in_a_row(void **state)
{
    (void)state;
    struct resolver *r = resolver_start();
    assert_non_null(r);
    struct resolver_result res;
    struct config *cur = load();
    bool cut = false;
    for (int i = 0; i < 200 && !cut; i++) {
        assert_true(resolver_submit(r, load_names()));
        assert_int_equal(resolver_submit_load(r, "x.yaml", cur), -EBUSY);
        assert_true(readable(resolver_fd(r)));
        assert_true(resolver_take(r, &res));
        cut = res.cut;
        if (cut)
            assert_true(res.names < NAMES);
        else
            assert_int_equal(res.names, NAMES);
        config_unref(res.cfg);
    }
    assert_true(cut);
    /* The round right after a cut one runs to its end, reload waiting or not. */
    assert_true(resolver_submit(r, load_names()));
    assert_int_equal(resolver_submit_load(r, "x.yaml", cur), -EBUSY);
    assert_true(readable(resolver_fd(r)));
    assert_true(resolver_take(r, &res));
    assert_false(res.cut);
    assert_int_equal(res.names, NAMES);
    config_unref(res.cfg);
    /* And a round with no reload waiting is never cut. */
    assert_true(resolver_submit(r, load_names()));
    assert_true(readable(resolver_fd(r)));
    assert_true(resolver_take(r, &res));
    assert_false(res.cut);
    assert_int_equal(res.names, NAMES);
    config_unref(res.cfg);
    config_unref(cur);
    resolver_stop(r);
}

static char *write_temp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/ferry-resolver-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* A reload's file is loaded on the thread: the new configuration, or the error that rejects it. */
static void test_load_job_returns_config_or_error(void **state)
{
    (void)state;
    struct resolver *r = resolver_start();
    assert_non_null(r);
    struct config *cur = load();
    struct resolver_result res;

    char *path = write_temp("routes:\n"
                            "  - name: db\n"
                            "    listen: 127.0.0.1:7001\n"
                            "    backends: [localhost:5432]\n");
    assert_int_equal(resolver_submit_load(r, path, cur), 0);
    assert_true(readable(resolver_fd(r)));
    assert_true(resolver_take(r, &res));
    unlink(path);
    assert_true(res.load);
    assert_non_null(res.cfg);
    assert_int_equal(res.cfg->nroutes, 1);
    assert_int_equal(res.cfg->routes[0].nbackends, 1);
    assert_true(res.cfg->routes[0].backends[0].named);
    assert_true(
        sock_addr_equal(&res.cfg->routes[0].backends[0].addr, &cur->routes[0].backends[0].addr));
    config_unref(res.cfg);

    path = write_temp("routes:\n"
                      "  - name: db\n"
                      "    lisen: 127.0.0.1:7001\n");
    assert_int_equal(resolver_submit_load(r, path, cur), 0);
    assert_true(readable(resolver_fd(r)));
    assert_true(resolver_take(r, &res));
    assert_true(res.load);
    assert_null(res.cfg);
    assert_non_null(strstr(res.err.msg, ":3:5: unknown key 'lisen'"));
    unlink(path);

    assert_int_equal(resolver_submit_load(r, "/nonexistent/ferry.yaml", cur), 0);
    assert_true(readable(resolver_fd(r)));
    assert_true(resolver_take(r, &res));
    assert_null(res.cfg);
    assert_non_null(strstr(res.err.msg, "/nonexistent/ferry.yaml"));

    config_unref(cur); /* the jobs held references of their own */
    resolver_stop(r);
}

static void test_stop_idle_and_stop_with_job_queued(void **state)
{
    (void)state;
    resolver_stop(NULL);
    struct resolver *r = resolver_start();
    assert_non_null(r);
    resolver_stop(r);
    r = resolver_start();
    assert_non_null(r);
    assert_true(resolver_submit(r, load()));
    resolver_stop(r); /* picked up or not, finished or not: nothing leaks (ASan) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_moves_only_names_that_moved),
        cmocka_unit_test(test_lookup_stops_before_its_next_name),
        cmocka_unit_test(test_a_reload_cuts_a_round_but_not_two_in_a_row),
        cmocka_unit_test(test_thread_runs_one_job_at_a_time),
        cmocka_unit_test(test_load_job_returns_config_or_error),
        cmocka_unit_test(test_stop_idle_and_stop_with_job_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
