/*
 * test_resolver.c - the specification of the host name resolver (resolver.h).
 *
 * resolver_lookup() re-resolves exactly the backends written as host names, in place: an address
 * still among a name's answers is kept, another is replaced by the first answer, IP literals are
 * never touched, and the count of names is returned. The resolver thread takes one job at a time
 * (a second submit is refused while one is out), signals completion on its eventfd, and hands the
 * very job back through resolver_take(); stopping it frees a job that was never taken. Waits are
 * poll() calls with a deadline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <string.h>

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
    assert_int_equal(resolver_lookup(c, failing, sizeof(failing)), 1);
    assert_string_equal(failing, "");
    assert_true(sock_addr_equal(&c->routes[0].backends[0].addr, &localhost));
    /* An address the name no longer has is replaced; the literal is left alone even if odd. */
    c->routes[0].backends[0].addr = addr("127.0.0.9:5432");
    c->routes[0].backends[1].addr = addr("127.0.0.8:5433");
    assert_int_equal(resolver_lookup(c, failing, sizeof(failing)), 1);
    assert_true(sock_addr_equal(&c->routes[0].backends[0].addr, &localhost));
    struct sockaddr_any lit = addr("127.0.0.8:5433");
    assert_true(sock_addr_equal(&c->routes[0].backends[1].addr, &lit));
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
    char failing[256];
    unsigned names = 0;
    assert_null(resolver_take(r, failing, sizeof(failing), &names)); /* nothing submitted */
    assert_true(resolver_submit(r, c));
    assert_false(resolver_submit(r, other)); /* busy until taken */
    assert_true(readable(resolver_fd(r)));
    struct config *done = resolver_take(r, failing, sizeof(failing), &names);
    assert_ptr_equal(done, c);
    assert_int_equal(names, 1);
    assert_string_equal(failing, "");
    assert_true(sock_addr_equal(&done->routes[0].backends[0].addr, &localhost));
    config_unref(done);
    /* Free again: the next job is taken, and left untaken for resolver_stop() to free. */
    assert_true(resolver_submit(r, other));
    assert_true(readable(resolver_fd(r)));
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
        cmocka_unit_test(test_thread_runs_one_job_at_a_time),
        cmocka_unit_test(test_stop_idle_and_stop_with_job_queued),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
