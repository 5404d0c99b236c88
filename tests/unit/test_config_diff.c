/*
 * test_config_diff.c - the specification of the configuration diff (config_diff.h).
 *
 * config_diff(a, b) reports each difference from a to b as one sentence, through the callback, and
 * returns how many there were. Routes are matched by name, listeners and backends by resolved
 * address, so the same configuration written differently (5s vs 5000ms, a shorthand backend vs a
 * mapping with weight 1, "*:80" vs "0.0.0.0:80") has no differences. Settings inherited from
 * `defaults` count per route. A change of workers cannot apply live: it says "needs a restart",
 * measured against the workers that run (which may differ from what the previous file said), and
 * a max_connections of 0 reads "derived", with the number in force when the caller knows it.
 * A backend written as the same host name but resolved to another address "now resolves to" it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_diff.h"

#define MAXLINES 32

struct lines {
    char text[MAXLINES][512];
    unsigned n;
};

static void collect(void *arg, const char *line)
{
    struct lines *l = arg;
    assert_true(l->n < MAXLINES);
    assert_non_null(line);
    assert_true(strlen(line) > 0);
    snprintf(l->text[l->n++], sizeof(l->text[0]), "%s", line);
}

static struct config *load(const char *yaml)
{
    struct config *c = NULL;
    struct config_error err;
    if (config_load_string("t.yaml", yaml, strlen(yaml), &c, &err) != 0)
        fail_msg("rejected: %s\n%s", err.msg, yaml);
    return c;
}

/* Diff two texts with run in force; the return value must equal the number of lines reported. */
static unsigned diff_run(const char *ya, const char *yb, const struct config_in_force *run,
                         struct lines *out)
{
    struct config *a = load(ya), *b = load(yb);
    memset(out, 0, sizeof(*out));
    unsigned n = config_diff(a, b, run, collect, out);
    assert_int_equal(n, out->n);
    config_unref(a);
    config_unref(b);
    return n;
}

/* Diff two texts, a's values in force. */
static unsigned diff(const char *ya, const char *yb, struct lines *out)
{
    return diff_run(ya, yb, NULL, out);
}

/* Exactly one reported line contains every one of the given fragments (NULL-terminated). */
static void expect_line(const struct lines *l, ...)
{
    unsigned matches = 0;
    for (unsigned i = 0; i < l->n; i++) {
        va_list ap;
        va_start(ap, l);
        bool all = true;
        for (const char *frag = va_arg(ap, const char *); frag; frag = va_arg(ap, const char *))
            if (!strstr(l->text[i], frag))
                all = false;
        va_end(ap);
        matches += all;
    }
    if (matches != 1) {
        char dump[MAXLINES * 520] = "";
        for (unsigned i = 0; i < l->n; i++) {
            strcat(dump, "  ");
            strcat(dump, l->text[i]);
            strcat(dump, "\n");
        }
        fail_msg("%u lines match, expected 1; reported:\n%s", matches, dump);
    }
}

#define WEB                                                                                        \
    "  - name: web\n"                                                                              \
    "    listen: 127.0.0.1:8080\n"                                                                 \
    "    backends:\n"                                                                              \
    "      - 127.0.0.1:9000\n"                                                                     \
    "      - address: 127.0.0.1:9001\n"                                                            \
    "        weight: 2\n"

#define API                                                                                        \
    "  - name: api\n"                                                                              \
    "    listen: [127.0.0.1:8081, \"[::1]:8081\"]\n"                                               \
    "    backends: [127.0.0.1:9100]\n"

static const char base[] = "routes:\n" WEB API;

static void test_identical_configs_have_no_differences(void **state)
{
    (void)state;
    struct lines l;
    assert_int_equal(diff(base, base, &l), 0);
    struct config *c = load(base);
    memset(&l, 0, sizeof(l));
    assert_int_equal(config_diff(c, c, NULL, collect, &l), 0); /* the very same object */
    assert_int_equal(l.n, 0);
    config_unref(c);
}

/* Same meaning, other spelling: routes in another order, defaults spelled out, durations in
 * other units, the shorthand backend as a mapping. */
static void test_same_meaning_written_differently(void **state)
{
    (void)state;
    struct lines l;
    const char *other = "defaults:\n"
                        "  connect_timeout: 5000ms\n"
                        "  idle_timeout: 60m\n"
                        "  buffer_size: 16384\n"
                        "routes:\n" API "  - name: web\n"
                        "    listen: [127.0.0.1:8080]\n"
                        "    backends:\n"
                        "      - {address: 127.0.0.1:9001, weight: 2}\n"
                        "      - {address: 127.0.0.1:9000, weight: 1}\n";
    assert_int_equal(diff(base, other, &l), 0);
}

static void test_route_added_and_removed(void **state)
{
    (void)state;
    struct lines l;
    const char *only_web = "routes:\n" WEB;
    assert_int_equal(diff(only_web, base, &l), 1);
    expect_line(&l, "route api added", "2 listeners", "1 backend", NULL);
    assert_null(strstr(l.text[0], "1 backends"));
    assert_int_equal(diff(base, only_web, &l), 1);
    expect_line(&l, "route api removed", NULL);
    /* A rename is one route removed and one added. */
    const char *renamed = "routes:\n" WEB "  - name: api2\n"
                          "    listen: [127.0.0.1:8081, \"[::1]:8081\"]\n"
                          "    backends: [127.0.0.1:9100]\n";
    assert_int_equal(diff(base, renamed, &l), 2);
    expect_line(&l, "route api2 added", NULL);
    expect_line(&l, "route api removed", NULL);
}

static void test_listener_added_and_removed(void **state)
{
    (void)state;
    struct lines l;
    const char *b = "routes:\n" WEB "  - name: api\n"
                    "    listen: [127.0.0.1:8081, 127.0.0.1:8082]\n"
                    "    backends: [127.0.0.1:9100]\n";
    assert_int_equal(diff(base, b, &l), 2);
    expect_line(&l, "route api", "listener 127.0.0.1:8082 added", NULL);
    expect_line(&l, "route api", "listener [::1]:8081 removed", NULL);
}

static void test_backend_added_removed_and_reweighted(void **state)
{
    (void)state;
    struct lines l;
    const char *b = "routes:\n"
                    "  - name: web\n"
                    "    listen: 127.0.0.1:8080\n"
                    "    backends:\n"
                    "      - address: 127.0.0.1:9001\n"
                    "        weight: 5\n"
                    "      - {address: 127.0.0.1:9002, weight: 3}\n" API;
    assert_int_equal(diff(base, b, &l), 3);
    expect_line(&l, "route web", "backend 127.0.0.1:9002 added", "weight 3", NULL);
    expect_line(&l, "route web", "backend 127.0.0.1:9000 removed", NULL);
    expect_line(&l, "route web", "backend 127.0.0.1:9001 weight 2 -> 5", NULL);
}

static void test_route_settings_changed(void **state)
{
    (void)state;
    struct lines l;
    const char *b = "routes:\n"
                    "  - name: web\n"
                    "    listen: 127.0.0.1:8080\n"
                    "    connect_timeout: 2s\n"
                    "    idle_timeout: 0\n"
                    "    connect_attempts: 1\n"
                    "    buffer_size: 64KiB\n"
                    "    buffer_max: 1MiB\n"
                    "    splice: on\n"
                    "    backends:\n"
                    "      - 127.0.0.1:9000\n"
                    "      - address: 127.0.0.1:9001\n"
                    "        weight: 2\n" API;
    assert_int_equal(diff(base, b, &l), 6);
    expect_line(&l, "route web: splice off -> on", NULL);
    expect_line(&l, "route web", "connect_timeout 5s -> 2s", NULL);
    expect_line(&l, "route web", "idle_timeout 1h -> 0", NULL);
    expect_line(&l, "route web", "connect_attempts 3 -> 1", NULL);
    expect_line(&l, "route web", "buffer_size 16KiB -> 64KiB", NULL);
    expect_line(&l, "route web", "buffer_max 256KiB -> 1MiB", NULL);
}

/* A change to `defaults` is reported for each route that inherits it, and only those. */
static void test_defaults_change_reported_per_route(void **state)
{
    (void)state;
    struct lines l;
    const char *a = "defaults: {idle_timeout: 10m}\n"
                    "routes:\n" WEB "  - name: api\n"
                    "    listen: 127.0.0.1:8081\n"
                    "    idle_timeout: 10m\n"
                    "    backends: [127.0.0.1:9100]\n";
    const char *b = "defaults: {idle_timeout: 20m}\n"
                    "routes:\n" WEB "  - name: api\n"
                    "    listen: 127.0.0.1:8081\n"
                    "    idle_timeout: 10m\n"
                    "    backends: [127.0.0.1:9100]\n";
    assert_int_equal(diff(a, b, &l), 1);
    expect_line(&l, "route web", "idle_timeout 10m -> 20m", NULL);
}

static void test_workers_change_needs_a_restart(void **state)
{
    (void)state;
    struct lines l;
    char a[1024], b[1024];
    snprintf(a, sizeof(a), "workers: 2\n%s", base);
    snprintf(b, sizeof(b), "workers: 4\n%s", base);
    assert_int_equal(diff(a, b, &l), 1);
    expect_line(&l, "workers 2 -> 4 needs a restart: keeping 2", NULL);
}

/*
 * The previous file is not what runs once it asked for other workers: with 1 worker running, a
 * file going from 2 back to 1 asks for what runs, and one going from 2 to 3 is reported against
 * the 1 that runs. A file that keeps asking for 2 is not reported at every reload.
 */
static void test_workers_compared_with_what_runs(void **state)
{
    (void)state;
    struct lines l;
    char w1[1024], w2[1024], w3[1024];
    snprintf(w1, sizeof(w1), "workers: 1\n%s", base);
    snprintf(w2, sizeof(w2), "workers: 2\n%s", base);
    snprintf(w3, sizeof(w3), "workers: 3\nmax_connections: 7\n%s", base);
    struct config_in_force one = {.workers = 1};
    assert_int_equal(diff_run(w1, w2, &one, &l), 1);
    expect_line(&l, "workers 1 -> 2 needs a restart: keeping 1", NULL);
    assert_int_equal(diff_run(w2, w1, &one, &l), 1);
    expect_line(&l, "workers 1: as running, no restart needed", NULL);
    assert_int_equal(diff_run(w2, w3, &one, &l), 2);
    expect_line(&l, "workers 1 -> 3 needs a restart: keeping 1", NULL);
    assert_int_equal(diff_run(w3, w3, &one, &l), 0);
    char w2b[1024];
    snprintf(w2b, sizeof(w2b), "workers: 2\nshutdown_timeout: 5s\n%s", base);
    assert_int_equal(diff_run(w2, w2b, &one, &l), 1);
    expect_line(&l, "shutdown_timeout 30s -> 5s", NULL);
}

/* max_connections 0 is derived from the open-file limit: the line shows the number in force (or
 * says "derived" when it is not known), never 0. */
static void test_derived_max_connections(void **state)
{
    (void)state;
    struct lines l;
    char five[1024];
    snprintf(five, sizeof(five), "max_connections: 5\n%s", base);
    struct config_in_force derived = {
        .workers = 1, .max_connections = 9980, .next_max_connections = 5};
    assert_int_equal(diff_run(base, five, &derived, &l), 1);
    expect_line(&l, "max_connections derived (9980) -> 5", NULL);
    struct config_in_force back = {
        .workers = 1, .max_connections = 5, .next_max_connections = 9979};
    assert_int_equal(diff_run(five, base, &back, &l), 1);
    expect_line(&l, "max_connections 5 -> derived (9979)", NULL);
    assert_int_equal(diff(five, base, &l), 1);
    expect_line(&l, "max_connections 5 -> derived", NULL);
    assert_null(strstr(l.text[0], " 0"));
}

static void test_process_settings_changed(void **state)
{
    (void)state;
    struct lines l;
    char b[1024];
    snprintf(b, sizeof(b),
             "max_connections: 100\n"
             "shutdown_timeout: 5s\n"
             "log: {level: debug, format: json, access: false}\n"
             "reload: {watch: false}\n%s",
             base);
    assert_int_equal(diff(base, b, &l), 6);
    expect_line(&l, "max_connections", "100", NULL);
    expect_line(&l, "shutdown_timeout 30s -> 5s", NULL);
    expect_line(&l, "level info -> debug", NULL);
    expect_line(&l, "format text -> json", NULL);
    expect_line(&l, "access log off", NULL);
    expect_line(&l, "reload watch off", NULL);
    /* And back: each reported once more, in the other direction. */
    assert_int_equal(diff(b, base, &l), 6);
    expect_line(&l, "level debug -> info", NULL);
    expect_line(&l, "access log on", NULL);
    expect_line(&l, "reload watch on", NULL);
}

/* The same host name, resolved elsewhere (as a later lookup would): one "now resolves to" line,
 * not a removal and an addition; an IP literal that changes is still removed and added. */
static void test_host_name_resolved_elsewhere(void **state)
{
    (void)state;
    const char *y = "routes:\n"
                    "  - name: db\n"
                    "    listen: 127.0.0.1:7000\n"
                    "    backends: [localhost:5432, 127.0.0.1:5433]\n";
    struct config *a = load(y), *b = load(y);
    struct lines l;
    memset(&l, 0, sizeof(l));
    assert_int_equal(config_diff(a, b, NULL, collect, &l), 0);
    assert_int_equal(config_diff(a, b, NULL, NULL, NULL), 0);
    struct backend_conf *nb = &b->routes[0].backends[0];
    assert_true(nb->named);
    struct sockaddr_any moved;
    const char *why;
    assert_int_equal(sock_addr_parse("127.0.0.9:5432", false, &moved, &why), 0);
    char was[SOCK_ADDRSTRLEN];
    sock_addr_format(&nb->addr, was, sizeof(was));
    nb->addr = moved;
    assert_int_equal(config_diff(a, b, NULL, collect, &l), 1);
    expect_line(&l, "route db: backend localhost:5432 now resolves to 127.0.0.9:5432 (was ", was,
                NULL);
    assert_int_equal(config_diff(a, b, NULL, NULL, NULL), 1);
    config_unref(a);
    config_unref(b);
}

/* Two names that move at once are two moves; a name that moves onto the address of another
 * backend is a move too, not an addition, a removal or a weight change of that backend. */
static void test_host_names_move_and_collide(void **state)
{
    (void)state;
    const char *y = "routes:\n"
                    "  - name: db\n"
                    "    listen: 127.0.0.1:7000\n"
                    "    backends:\n"
                    "      - localhost:5432\n"
                    "      - localhost:5433\n"
                    "      - {address: 127.0.0.7:5433, weight: 3}\n";
    struct config *a = load(y), *b = load(y);
    struct sockaddr_any x, z, lit;
    const char *why;
    assert_int_equal(sock_addr_parse("127.0.0.5:5432", false, &x, &why), 0);
    assert_int_equal(sock_addr_parse("127.0.0.6:5432", false, &z, &why), 0);
    assert_int_equal(sock_addr_parse("127.0.0.7:5433", false, &lit, &why), 0);
    /* localhost:5432 moves from .5 to .6... */
    a->routes[0].backends[0].addr = x;
    b->routes[0].backends[0].addr = z;
    /* ...and localhost:5433 moves onto the literal backend's address. */
    b->routes[0].backends[1].addr = lit;
    struct lines l;
    memset(&l, 0, sizeof(l));
    assert_int_equal(config_diff(a, b, NULL, collect, &l), 2);
    expect_line(&l, "backend localhost:5432 now resolves to 127.0.0.6:5432 (was 127.0.0.5:5432)",
                NULL);
    expect_line(&l, "backend localhost:5433 now resolves to 127.0.0.7:5433 (was ", NULL);
    config_unref(a);
    config_unref(b);
}

/* Several kinds of change at once: one line each, nothing else. */
static void test_many_changes_at_once(void **state)
{
    (void)state;
    struct lines l;
    const char *b = "workers: 3\n"
                    "buffer_budget: 8MiB\n"
                    "coalesce: off\n"
                    "routes:\n"
                    "  - name: web\n"
                    "    listen: 127.0.0.1:8090\n"
                    "    buffer_size: 4KiB\n"
                    "    backends: [127.0.0.1:9000]\n"
                    "  - name: db\n"
                    "    listen: 127.0.0.1:5432\n"
                    "    backends: [127.0.0.1:15432, 127.0.0.1:15433]\n";
    assert_int_equal(diff(base, b, &l), 9);
    expect_line(&l, "workers", "needs a restart", NULL);
    expect_line(&l, "buffer_budget 64MiB -> 8MiB", NULL);
    expect_line(&l, "coalesce off", NULL);
    expect_line(&l, "route web", "listener 127.0.0.1:8090 added", NULL);
    expect_line(&l, "route web", "listener 127.0.0.1:8080 removed", NULL);
    expect_line(&l, "route web", "backend 127.0.0.1:9001 removed", NULL);
    expect_line(&l, "route web", "buffer_size 16KiB -> 4KiB", NULL);
    expect_line(&l, "route db added", "1 listener", "2 backends", NULL);
    expect_line(&l, "route api removed", NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical_configs_have_no_differences),
        cmocka_unit_test(test_same_meaning_written_differently),
        cmocka_unit_test(test_route_added_and_removed),
        cmocka_unit_test(test_listener_added_and_removed),
        cmocka_unit_test(test_backend_added_removed_and_reweighted),
        cmocka_unit_test(test_route_settings_changed),
        cmocka_unit_test(test_defaults_change_reported_per_route),
        cmocka_unit_test(test_workers_change_needs_a_restart),
        cmocka_unit_test(test_workers_compared_with_what_runs),
        cmocka_unit_test(test_derived_max_connections),
        cmocka_unit_test(test_process_settings_changed),
        cmocka_unit_test(test_host_name_resolved_elsewhere),
        cmocka_unit_test(test_host_names_move_and_collide),
        cmocka_unit_test(test_many_changes_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
