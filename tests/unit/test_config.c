/*
 * test_config.c - the specification of the configuration loader (config.h).
 *
 * Valid files: the full example of the documentation, shorthand backends, listen as one address or
 * a list, IPv6 in brackets, settings inherited from `defaults` (wherever `defaults` is written) and
 * overridden per route, workers: auto. Invalid files: each is rejected with the first error as
 * "FILE:LINE:COL: message", where LINE:COL points at the offending key or value and the message
 * names it, like a compiler. Positions below are counted by hand from the YAML text (1-based).
 * Also: loading from a file, config_print's report of the effective settings, and reference
 * counting (run under ASan, a missed or double free shows up).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"

#define NAME "t.yaml"

static struct config *load(const char *yaml)
{
    struct config *c = NULL;
    struct config_error err;
    memset(&err, 0, sizeof(err));
    if (config_load_string(NAME, yaml, strlen(yaml), &c, &err) != 0)
        fail_msg("rejected: %s\n--- input ---\n%s", err.msg, yaml);
    assert_non_null(c);
    return c;
}

/* The load fails with "t.yaml:LINE:COL: ..." and the message contains `what`. */
static void expect_error(const char *yaml, int line, int col, const char *what)
{
    struct config *c = NULL;
    struct config_error err;
    char prefix[64];
    memset(&err, 0, sizeof(err));
    if (config_load_string(NAME, yaml, strlen(yaml), &c, &err) == 0) {
        config_unref(c);
        fail_msg("accepted, expected %d:%d '%s'\n--- input ---\n%s", line, col, what, yaml);
    }
    snprintf(prefix, sizeof(prefix), NAME ":%d:%d: ", line, col);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0 || !strstr(err.msg, what))
        fail_msg("got     \"%s\"\nexpected \"%s...%s...\"\n--- input ---\n%s", err.msg, prefix,
                 what, yaml);
}

/* An error about the whole file, without a position: "t.yaml: ...". */
static void expect_file_error(const char *yaml, const char *what)
{
    struct config *c = NULL;
    struct config_error err;
    memset(&err, 0, sizeof(err));
    if (config_load_string(NAME, yaml, strlen(yaml), &c, &err) == 0) {
        config_unref(c);
        fail_msg("accepted, expected '%s'\n--- input ---\n%s", what, yaml);
    }
    if (strncmp(err.msg, NAME ": ", strlen(NAME ": ")) != 0 || !strstr(err.msg, what))
        fail_msg("got \"%s\", expected \"" NAME ": ...%s...\"", err.msg, what);
}

static void assert_addr(const struct sockaddr_any *a, int family, const char *host, int port)
{
    assert_int_equal(a->u.sa.sa_family, family);
    if (family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->u.ss;
        struct in_addr ia;
        assert_int_equal(inet_pton(AF_INET, host, &ia), 1);
        assert_int_equal(sin->sin_addr.s_addr, ia.s_addr);
        assert_int_equal(ntohs(sin->sin_port), port);
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->u.ss;
        struct in6_addr ia;
        assert_int_equal(inet_pton(AF_INET6, host, &ia), 1);
        assert_memory_equal(&sin6->sin6_addr, &ia, sizeof(ia));
        assert_int_equal(ntohs(sin6->sin6_port), port);
    }
}

/* One valid route; most invalid cases change one line of it. Lines and columns:
 *   1 routes:
 *   2   - name: web            key at 2:5, value at 2:11
 *   3     listen: 127.0.0.1:8080   key at 3:5, value at 3:13
 *   4     backends:            key at 4:5
 *   5       - 127.0.0.1:9000   item at 5:9 */
#define ROUTE_WEB                                                                                  \
    "  - name: web\n"                                                                              \
    "    listen: 127.0.0.1:8080\n"                                                                 \
    "    backends:\n"                                                                              \
    "      - 127.0.0.1:9000\n"

/* ---- valid files ---------------------------------------------------------------------------- */

/* The example of the documentation, comments included. */
static const char full_example[] =
    "max_connections: 10000        # client connections across all routes\n"
    "shutdown_timeout: 30s         # on SIGTERM/SIGINT: stop accepting, let pairs finish\n"
    "resolve_interval: 30s         # backend host names looked up again this often\n"
    "buffer_budget: 32MiB          # per worker, for rings grown past buffer_size\n"
    "coalesce: auto                # auto | off: a busy worker may wait before blocking\n"
    "log:\n"
    "  level: info                 # error | warn | info | debug\n"
    "  format: text                # text | json\n"
    "  access: true                # one line per finished connection\n"
    "defaults:                     # every route inherits these unless it sets its own\n"
    "  connect_timeout: 5s         # per backend attempt\n"
    "  idle_timeout: 1h            # 0 = never (warned)\n"
    "  connect_attempts: 3         # backends tried for one client connection at most\n"
    "  buffer_size: 16KiB          # ring buffer per direction per connection pair\n"
    "  buffer_max: 128KiB          # a streaming direction's ring grows up to this\n"
    "routes:\n"
    "  - name: web                 # unique, [A-Za-z0-9_.-]+\n"
    "    listen: 0.0.0.0:8080      # \"host:port\", \"[v6]:port\", or a list of them\n"
    "    balance: round_robin      # smooth weighted round robin over the backends\n"
    "    connect_timeout: 2s\n"
    "    idle_timeout: 10m\n"
    "    connect_attempts: 2\n"
    "    buffer_size: 32KiB\n"
    "    backends:                 # at least one\n"
    "      - address: 127.0.0.1:9000\n"
    "        weight: 2             # 1..256, default 1\n"
    "      - 127.0.0.1:9001        # shorthand for {address: ...}\n";

static void test_full_example(void **state)
{
    (void)state;
    struct config *c = load(full_example);
    assert_string_equal(c->path, NAME);
    assert_int_equal(c->max_connections, 10000);
    assert_int_equal(c->shutdown_timeout_ms, 30000);
    assert_int_equal(c->log_level, LOG_INFO);
    assert_int_equal(c->log_format, LOG_TEXT);
    assert_true(c->log_access);
    assert_int_equal(c->defaults.connect_timeout_ms, 5000);
    assert_int_equal(c->defaults.idle_timeout_ms, 3600 * 1000);
    assert_int_equal(c->defaults.connect_attempts, 3);
    assert_int_equal(c->defaults.buffer_size, 16 * 1024);
    assert_int_equal(c->defaults.buffer_max, 128 * 1024);
    assert_int_equal(c->buffer_budget, 32 << 20);
    assert_true(c->coalesce);
    assert_int_equal(c->refs, 1);
    assert_true(c->hash == config_hash_bytes(full_example, strlen(full_example)));

    assert_int_equal(c->nroutes, 1);
    const struct route_conf *r = &c->routes[0];
    assert_string_equal(r->name, "web");
    assert_int_equal(r->nlistens, 1);
    assert_string_equal(r->listens[0].address, "0.0.0.0:8080");
    assert_addr(&r->listens[0].addr, AF_INET, "0.0.0.0", 8080);
    assert_int_equal(r->balance, BALANCE_ROUND_ROBIN);
    assert_int_equal(r->s.connect_timeout_ms, 2000);
    assert_int_equal(r->s.idle_timeout_ms, 10 * 60 * 1000);
    assert_int_equal(r->s.connect_attempts, 2);
    assert_int_equal(r->s.buffer_size, 32 * 1024);
    assert_int_equal(r->nbackends, 2);
    assert_string_equal(r->backends[0].address, "127.0.0.1:9000");
    assert_addr(&r->backends[0].addr, AF_INET, "127.0.0.1", 9000);
    assert_int_equal(r->backends[0].weight, 2);
    assert_string_equal(r->backends[1].address, "127.0.0.1:9001");
    assert_addr(&r->backends[1].addr, AF_INET, "127.0.0.1", 9001);
    assert_int_equal(r->backends[1].weight, 1); /* shorthand: default weight */
    config_unref(c);
}

/* Only `routes` is required; everything else has the documented default. */
static void test_minimal_file_gets_documented_defaults(void **state)
{
    (void)state;
    struct config *c = load("routes:\n" ROUTE_WEB);
    assert_int_equal(c->max_connections, 0); /* derived from the fd limit at startup */
    assert_int_equal(c->shutdown_timeout_ms, 30000);
    assert_int_equal(c->log_level, LOG_INFO);
    assert_int_equal(c->log_format, LOG_TEXT);
    assert_true(c->log_access);
    const struct route_conf *r = &c->routes[0];
    assert_int_equal(r->s.connect_timeout_ms, 5000);
    assert_int_equal(r->s.idle_timeout_ms, 3600 * 1000);
    assert_int_equal(r->s.connect_attempts, 3);
    assert_int_equal(r->s.buffer_size, 16 * 1024);
    assert_int_equal(r->balance, BALANCE_ROUND_ROBIN);
    assert_int_equal(r->nbackends, 1);
    assert_int_equal(r->backends[0].weight, 1);
    config_unref(c);
}

static void test_backends_shorthand_and_mapping_mix(void **state)
{
    (void)state;
    struct config *c = load("routes:\n"
                            "  - listen: 127.0.0.1:8080\n"
                            "    backends:\n"
                            "      - 127.0.0.1:9001\n"
                            "      - {address: 127.0.0.1:9002, weight: 256}\n"
                            "      - address: \"[::1]:9003\"\n"
                            "      - address: 127.0.0.1:9004\n"
                            "        weight: '7'\n");
    const struct route_conf *r = &c->routes[0];
    assert_int_equal(r->nbackends, 4);
    assert_addr(&r->backends[0].addr, AF_INET, "127.0.0.1", 9001);
    assert_int_equal(r->backends[0].weight, 1);
    assert_addr(&r->backends[1].addr, AF_INET, "127.0.0.1", 9002);
    assert_int_equal(r->backends[1].weight, 256);
    assert_addr(&r->backends[2].addr, AF_INET6, "::1", 9003);
    assert_string_equal(r->backends[2].address, "[::1]:9003");
    assert_int_equal(r->backends[2].weight, 1);
    assert_int_equal(r->backends[3].weight, 7);
    config_unref(c);
}

static void test_listen_as_a_list_with_ipv6(void **state)
{
    (void)state;
    struct config *c = load("routes:\n"
                            "  - name: dual\n"
                            "    listen:\n"
                            "      - 127.0.0.1:8080\n"
                            "      - \"[::1]:8080\"\n"
                            "      - '*:8081'\n"
                            "      - ':8082'\n"
                            "    backends: [127.0.0.1:9000]\n");
    const struct route_conf *r = &c->routes[0];
    assert_int_equal(r->nlistens, 4);
    assert_addr(&r->listens[0].addr, AF_INET, "127.0.0.1", 8080);
    assert_addr(&r->listens[1].addr, AF_INET6, "::1", 8080);
    assert_string_equal(r->listens[1].address, "[::1]:8080");
    assert_addr(&r->listens[2].addr, AF_INET, "0.0.0.0", 8081); /* "*" = all IPv4 addresses */
    assert_addr(&r->listens[3].addr, AF_INET, "0.0.0.0", 8082); /* so is no host */
    config_unref(c);

    c = load("routes:\n"
             "  - listen: [\"[::]:8443\", 127.0.0.1:8443]\n"
             "    backends: [\"[::1]:9000\"]\n");
    assert_int_equal(c->routes[0].nlistens, 2);
    assert_addr(&c->routes[0].listens[0].addr, AF_INET6, "::", 8443);
    assert_addr(&c->routes[0].backends[0].addr, AF_INET6, "::1", 9000);
    config_unref(c);
}

/* A backend host name is resolved at load time. */
static void test_backend_host_name_is_resolved(void **state)
{
    (void)state;
    struct config *c = load("routes:\n"
                            "  - listen: 127.0.0.1:8080\n"
                            "    backends: [localhost:9000]\n");
    const struct backend_conf *b = &c->routes[0].backends[0];
    assert_string_equal(b->address, "localhost:9000");
    int fam = b->addr.u.sa.sa_family;
    assert_true(fam == AF_INET || fam == AF_INET6);
    if (fam == AF_INET)
        assert_int_equal(ntohs(((const struct sockaddr_in *)&b->addr.u.ss)->sin_port), 9000);
    else
        assert_int_equal(ntohs(((const struct sockaddr_in6 *)&b->addr.u.ss)->sin6_port), 9000);
    config_unref(c);
}

static void test_defaults_inherited_and_overridden(void **state)
{
    (void)state;
    struct config *c = load("defaults:\n"
                            "  connect_timeout: 1500ms\n"
                            "  idle_timeout: 0\n"
                            "  buffer_size: 4096\n"
                            "  splice: true\n"
                            "routes:\n"
                            "  - name: inherits\n"
                            "    listen: 127.0.0.1:8080\n"
                            "    backends: [127.0.0.1:9000]\n"
                            "  - name: overrides\n"
                            "    listen: 127.0.0.1:8081\n"
                            "    connect_timeout: 3s\n"
                            "    idle_timeout: 2m\n"
                            "    connect_attempts: 1\n"
                            "    buffer_size: 1MiB\n"
                            "    splice: false\n"
                            "    backends: [127.0.0.1:9000]\n");
    assert_int_equal(c->nroutes, 2);
    const struct route_conf *a = &c->routes[0], *b = &c->routes[1];
    assert_string_equal(a->name, "inherits");
    assert_int_equal(a->s.connect_timeout_ms, 1500);
    assert_int_equal(a->s.idle_timeout_ms, 0);  /* 0 = never */
    assert_int_equal(a->s.connect_attempts, 3); /* not in defaults: the built-in value */
    assert_int_equal(a->s.buffer_size, 4096);
    assert_true(a->s.splice);
    assert_string_equal(b->name, "overrides");
    assert_int_equal(b->s.connect_timeout_ms, 3000);
    assert_int_equal(b->s.idle_timeout_ms, 120000);
    assert_int_equal(b->s.connect_attempts, 1);
    assert_int_equal(b->s.buffer_size, 1024 * 1024);
    assert_false(b->s.splice);
    /* An override in one route does not leak into the defaults. */
    assert_int_equal(c->defaults.connect_timeout_ms, 1500);
    assert_int_equal(c->defaults.buffer_size, 4096);
    config_unref(c);
}

/* `defaults` applies to every route even when it is written after `routes`. */
static void test_defaults_written_after_routes_still_apply(void **state)
{
    (void)state;
    struct config *c = load("routes:\n" ROUTE_WEB "  - name: api\n"
                            "    listen: 127.0.0.1:8081\n"
                            "    idle_timeout: 30s\n"
                            "    backends: [127.0.0.1:9001]\n"
                            "defaults:\n"
                            "  idle_timeout: 5m\n"
                            "  connect_attempts: 7\n");
    assert_int_equal(c->routes[0].s.idle_timeout_ms, 5 * 60 * 1000);
    assert_int_equal(c->routes[0].s.connect_attempts, 7);
    assert_int_equal(c->routes[1].s.idle_timeout_ms, 30 * 1000);
    assert_int_equal(c->routes[1].s.connect_attempts, 7);
    config_unref(c);
}

static unsigned cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return 1;
    int n = CPU_COUNT(&set);
    return n < 1 ? 1 : n > (int)CONFIG_WORKERS_MAX ? CONFIG_WORKERS_MAX : (unsigned)n;
}

static void test_workers_auto_and_number(void **state)
{
    (void)state;
    struct config *c = load("workers: auto\nroutes:\n" ROUTE_WEB);
    assert_true(c->workers_auto);
    assert_int_equal(c->workers, cpu_count());
    config_unref(c);

    c = load("workers: 3\nroutes:\n" ROUTE_WEB);
    assert_false(c->workers_auto);
    assert_int_equal(c->workers, 3);
    config_unref(c);

    c = load("workers: 256\nroutes:\n" ROUTE_WEB);
    assert_int_equal(c->workers, 256);
    config_unref(c);
}

static void test_log_reload_and_bool_spellings(void **state)
{
    (void)state;
    struct config *c = load("log: {level: debug, format: json, access: no}\n"
                            "reload: {watch: off}\n"
                            "routes:\n" ROUTE_WEB);
    assert_int_equal(c->log_level, LOG_DEBUG);
    assert_int_equal(c->log_format, LOG_JSON);
    assert_false(c->log_access);
    assert_false(c->reload_watch);
    config_unref(c);

    static const char *const yes[] = {"true", "yes", "on", "True", "YES"};
    static const char *const no[] = {"false", "no", "off", "False", "OFF"};
    char buf[256];
    for (size_t i = 0; i < 5; i++) {
        snprintf(buf, sizeof(buf), "log:\n  access: %s\nreload:\n  watch: %s\nroutes:\n" ROUTE_WEB,
                 no[i], yes[i]);
        c = load(buf);
        assert_false(c->log_access);
        assert_true(c->reload_watch);
        config_unref(c);
    }
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    static const enum log_level lv[] = {LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG};
    for (size_t i = 0; i < 4; i++) {
        snprintf(buf, sizeof(buf), "log:\n  level: %s\nroutes:\n" ROUTE_WEB, levels[i]);
        c = load(buf);
        assert_int_equal(c->log_level, lv[i]);
        config_unref(c);
    }
}

/* Limits that are allowed: they are the edges of the invalid ranges below. */
static void test_range_edges_accepted(void **state)
{
    (void)state;
    struct config *c = load("defaults:\n"
                            "  buffer_size: 64\n"
                            "  connect_attempts: 1\n"
                            "routes:\n"
                            "  - listen: 127.0.0.1:1\n"
                            "    buffer_size: 64MiB\n"
                            "    backends:\n"
                            "      - {address: 127.0.0.1:65535, weight: 1}\n"
                            "      - {address: 127.0.0.1:9000, weight: 256}\n");
    assert_int_equal(c->defaults.buffer_size, 64);
    assert_int_equal(c->routes[0].s.buffer_size, 64u << 20);
    assert_int_equal(c->routes[0].s.connect_attempts, 1);
    assert_addr(&c->routes[0].listens[0].addr, AF_INET, "127.0.0.1", 1);
    assert_addr(&c->routes[0].backends[0].addr, AF_INET, "127.0.0.1", 65535);
    assert_int_equal(c->routes[0].backends[1].weight, 256);
    config_unref(c);
}

/* Routes without a name still get distinct names (they appear in logs and diffs). */
static void test_unnamed_routes_get_distinct_names(void **state)
{
    (void)state;
    struct config *c = load("routes:\n"
                            "  - listen: 127.0.0.1:8080\n"
                            "    backends: [127.0.0.1:9000]\n"
                            "  - listen: 127.0.0.1:8081\n"
                            "    backends: [127.0.0.1:9000]\n");
    assert_non_null(c->routes[0].name);
    assert_non_null(c->routes[1].name);
    assert_true(strlen(c->routes[0].name) > 0);
    assert_string_not_equal(c->routes[0].name, c->routes[1].name);
    config_unref(c);
}

/* The same backend in two routes, and the same port on two hosts, are fine. */
static void test_shared_backends_and_ports_on_other_hosts(void **state)
{
    (void)state;
    struct config *c = load("routes:\n"
                            "  - listen: [127.0.0.1:8080, \"[::1]:8080\"]\n"
                            "    backends: [127.0.0.1:9000]\n"
                            "  - listen: 127.0.0.2:8080\n"
                            "    backends: [127.0.0.1:9000]\n");
    assert_int_equal(c->nroutes, 2);
    config_unref(c);
}

static void test_hash_follows_the_text(void **state)
{
    (void)state;
    const char *a = "routes:\n" ROUTE_WEB;
    const char *b = "routes:\n" ROUTE_WEB "# a comment\n";
    struct config *x = load(a), *y = load(a), *z = load(b);
    assert_true(x->hash == y->hash);
    assert_true(x->hash != z->hash);
    assert_true(z->hash == config_hash_bytes(b, strlen(b)));
    config_unref(x);
    config_unref(y);
    config_unref(z);
}

/* ---- invalid files: syntax and structure ---------------------------------------------------- */

/* A value quoted into a message keeps the message on one line: control characters are escaped. */
static void test_error_escapes_control_characters(void **state)
{
    (void)state;
    const char *yaml = "routes:\n"
                       "  - name: \"web\\n2026-01-01T00:00:00.000Z info fake\\x01\"\n"
                       "    listen: 127.0.0.1:8080\n"
                       "    backends: [127.0.0.1:9000]\n";
    expect_error(yaml, 2, 11, "web\\n2026-01-01T00:00:00.000Z info fake\\x01");
    struct config *c = NULL;
    struct config_error err;
    assert_int_equal(config_load_string(NAME, yaml, strlen(yaml), &c, &err), -1);
    for (const char *m = err.msg; *m; m++)
        if ((unsigned char)*m < 0x20)
            fail_msg("control character 0x%02x in \"%s\"", (unsigned char)*m, err.msg);
}

static void test_yaml_syntax_error(void **state)
{
    (void)state;
    /* The second ':' on line 3 (column 14) starts a mapping where none may start. */
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: a: b\n",
                 3, 14, "YAML syntax error");
    /* A tab cannot indent. */
    expect_error("routes:\n"
                 "\t- name: web\n",
                 2, 1, "YAML syntax error");
    /* An unclosed flow list swallows the next line; the ':' after "backends" (4:13) cannot
     * follow a key that spans two lines, and that is where the parser stops. */
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: [127.0.0.1:8080\n"
                 "    backends: [127.0.0.1:9000]\n",
                 4, 13, "YAML syntax error");
    /* Unclosed at the very end: reported where the input ends. */
    expect_error("routes: [\n", 2, 1, "YAML syntax error");
}

/* libyaml finds a character it cannot read (a control character, bytes that are not UTF-8) while
 * decoding ahead of the parser, and gives only its byte offset: the position is counted from it,
 * in characters, as the parser's own positions are. */
static void test_unreadable_characters_are_located(void **state)
{
    (void)state;
    /* A control character in a comment on line 5. */
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends:\n"
                 "      - 127.0.0.1:9000  # note\x01\n",
                 5, 31, "YAML syntax error: control characters are not allowed (U+0001)");
    /* A byte that is not UTF-8, after a two-byte character of the same line (one column). */
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends:  # na\xc3\xafve \xff\n"
                 "      - 127.0.0.1:9000\n",
                 4, 24, "YAML syntax error: invalid leading UTF-8 octet (byte 0xFF)");
    /* Latin-1 where UTF-8 is expected: the byte after \xe9 cannot continue its character. */
    expect_error("routes:\n"
                 "  - name: caf\xe9 2\n",
                 2, 15, "invalid trailing UTF-8 octet (byte 0x20)");
    /* CRLF line ends count once; a UTF-8 byte order mark is not a column. */
    expect_error("\xef\xbb\xbfroutes:\r\n"
                 "  - name: web\r\n"
                 "  \x7f\r\n",
                 3, 3, "control characters are not allowed (U+007F)");
    /* Far beyond libyaml's first read of the input (16 KiB). */
    char *big = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&big, &size);
    assert_non_null(f);
    fputs("routes:\n" ROUTE_WEB, f);
    for (int i = 0; i < 1000; i++)
        fprintf(f, "# padding line %04d of a long comment, to be read in several pieces\n", i);
    fputs("# \x02\n", f);
    assert_int_equal(fclose(f), 0);
    assert_true(size > 3 * 16384);
    expect_error(big, 1006, 3, "control characters are not allowed (U+0002)");
    free(big);

    /* libyaml also reads UTF-16 after a byte order mark: two bytes a character. */
    const char *ascii = "routes:\n  - name: web\n  \x01\n";
    for (int be = 0; be <= 1; be++) {
        char text[128];
        size_t n = 0;
        text[n++] = be ? '\xfe' : '\xff';
        text[n++] = be ? '\xff' : '\xfe';
        for (const char *c = ascii; *c; c++) {
            text[n++] = be ? 0 : *c;
            text[n++] = be ? *c : 0;
        }
        struct config *c = NULL;
        struct config_error err;
        assert_int_equal(config_load_string(NAME, text, n, &c, &err), -1);
        if (strncmp(err.msg, NAME ":3:3: ", strlen(NAME ":3:3: ")) != 0 ||
            !strstr(err.msg, "control characters are not allowed (U+0001)"))
            fail_msg("UTF-16%s: got \"%s\"", be ? "BE" : "LE", err.msg);
    }
}

static void test_empty_file(void **state)
{
    (void)state;
    expect_file_error("", "empty");
    expect_file_error("# only a comment\n\n", "empty");
}

static void test_top_level_must_be_a_mapping(void **state)
{
    (void)state;
    expect_error("- routes\n", 1, 1, "must be a mapping");
    expect_error("routes\n", 1, 1, "must be a mapping");
}

static void test_missing_routes(void **state)
{
    (void)state;
    expect_error("log:\n  level: info\n", 1, 1, "missing required key 'routes'");
}

static void test_routes_empty_or_not_a_list(void **state)
{
    (void)state;
    expect_error("routes: []\n", 1, 9, "'routes' is empty");
    expect_error("routes:\n  name: web\n", 2, 3, "'routes' must be a list");
    expect_error("routes: web\n", 1, 9, "'routes' must be a list");
    expect_error("routes:\n", 1, 8, "'routes' must be a list of routes, not a scalar");
    expect_error("routes:\n  - web\n", 2, 5, "a route must be a mapping");
}

static void test_two_yaml_documents(void **state)
{
    (void)state;
    expect_error("routes:\n" ROUTE_WEB "---\n"
                 "routes:\n" ROUTE_WEB,
                 7, 1, "only one YAML document");
}

/* A broken second document is as much a mistake as a valid one: the file has a syntax error,
 * reported where the unclosed list on line 7 meets the end of the input. */
static void test_syntax_error_in_a_second_document(void **state)
{
    (void)state;
    expect_error("routes:\n" ROUTE_WEB "---\n"
                 "routes: [\n",
                 8, 1, "YAML syntax error");
}

static void test_unknown_keys(void **state)
{
    (void)state;
    expect_error("routes:\n" ROUTE_WEB "bogus: 1\n", 6, 1, "unknown key 'bogus' in the top level");
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    port: 8080\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends: [127.0.0.1:9000]\n",
                 3, 5, "unknown key 'port' in a route");
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends:\n"
                 "      - address: 127.0.0.1:9000\n"
                 "        wieght: 2\n",
                 6, 9, "unknown key 'wieght' in a backend");
    expect_error("log:\n  levle: info\nroutes:\n" ROUTE_WEB, 2, 3,
                 "unknown key 'levle' in 'log' (known keys: level, format, access)");
    expect_error("defaults:\n  idle: 5s\nroutes:\n" ROUTE_WEB, 2, 3,
                 "unknown key 'idle' in 'defaults'");
    expect_error("reload:\n  wach: true\nroutes:\n" ROUTE_WEB, 2, 3,
                 "unknown key 'wach' in 'reload'");
    /* `listen` is a route key, not a defaults key. */
    expect_error("defaults:\n  listen: 127.0.0.1:1\nroutes:\n" ROUTE_WEB, 2, 3,
                 "unknown key 'listen' in 'defaults'");
}

static void test_wrong_types(void **state)
{
    (void)state;
    expect_error("workers: [1]\nroutes:\n" ROUTE_WEB, 1, 10,
                 "'workers' must be a single value, not a list");
    expect_error("routes:\n"
                 "  - name: [a, b]\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends: [127.0.0.1:9000]\n",
                 2, 11, "'name' must be a single value, not a list");
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: {host: 127.0.0.1}\n"
                 "    backends: [127.0.0.1:9000]\n",
                 3, 13, "'listen' must be a single value, not a mapping");
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: [127.0.0.1:8080, [127.0.0.1:8081]]\n"
                 "    backends: [127.0.0.1:9000]\n",
                 3, 30, "'listen' must be a single value, not a list");
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends: 127.0.0.1:9000\n",
                 4, 15, "'backends' must be a list");
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends:\n"
                 "      - {address: 127.0.0.1:9000, weight: [2]}\n",
                 5, 43, "'weight' must be a single value, not a list");
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends:\n"
                 "      - [127.0.0.1:9000]\n",
                 5, 9, "a backend must be a mapping");
    expect_error("log: debug\nroutes:\n" ROUTE_WEB, 1, 6, "'log' must be a mapping");
    expect_error("defaults: [1s]\nroutes:\n" ROUTE_WEB, 1, 11, "'defaults' must be a mapping");
    expect_error("log:\n  level: [info]\nroutes:\n" ROUTE_WEB, 2, 10,
                 "'level' must be a single value, not a list");
    expect_error("defaults:\n  connect_timeout: {s: 1}\nroutes:\n" ROUTE_WEB, 2, 20,
                 "'connect_timeout' must be a single value, not a mapping");
}

static void test_values_that_are_missing(void **state)
{
    (void)state;
    expect_error("routes:\n"
                 "  - name: ''\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends: [127.0.0.1:9000]\n",
                 2, 11, "'name' has no value");
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: ~\n"
                 "    backends: [127.0.0.1:9000]\n",
                 3, 13, "'listen' has no value");
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends: [127.0.0.1:9000]\n"
                 "    connect_timeout: null\n",
                 5, 22, "'connect_timeout' has no value");
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    name: api\n"
                 "    backends: [127.0.0.1:9000]\n",
                 4, 5, "duplicate key 'name' in a route (first at line 2)");
    expect_error("routes:\n" ROUTE_WEB "routes:\n" ROUTE_WEB, 6, 1,
                 "duplicate key 'routes' in the top level (first at line 1)");
    expect_error("log:\n  level: info\n  level: debug\nroutes:\n" ROUTE_WEB, 3, 3,
                 "duplicate key 'level'");
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends:\n"
                 "      - {address: 127.0.0.1:9000, address: 127.0.0.1:9001}\n",
                 5, 35, "duplicate key 'address' in a backend");
}

static void test_duplicate_route_name(void **state)
{
    (void)state;
    expect_error("routes:\n" ROUTE_WEB "  - name: web\n"
                 "    listen: 127.0.0.1:8081\n"
                 "    backends: [127.0.0.1:9001]\n",
                 6, 5, "duplicate route name 'web'");
}

static void test_duplicate_listen_address(void **state)
{
    (void)state;
    /* Reported at the second occurrence of the address. Across routes, written the same way. */
    expect_error("routes:\n" ROUTE_WEB "  - name: api\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends: [127.0.0.1:9001]\n",
                 7, 13, "listen address '127.0.0.1:8080' is already used by route 'web'");
    /* Across routes, written two ways that mean the same address. */
    expect_error("routes:\n"
                 "  - name: a\n"
                 "    listen: 0.0.0.0:80\n"
                 "    backends: [127.0.0.1:9000]\n"
                 "  - name: b\n"
                 "    listen: '*:80'\n"
                 "    backends: [127.0.0.1:9000]\n",
                 6, 13, "already used by route 'a'");
    /* Twice in one route's list. */
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: [127.0.0.1:8080, 127.0.0.1:8081, 127.0.0.1:8080]\n"
                 "    backends: [127.0.0.1:9000]\n",
                 3, 46, "listen address '127.0.0.1:8080' is already used");
}

/* workers: auto also counts a cgroup CPU limit (a container's --cpus, a Kubernetes CPU limit). */
static void test_cpu_quota(void **state)
{
    (void)state;
    assert_int_equal(config_cpu_max_cpus("max 100000\n"), 0);
    assert_int_equal(config_cpu_max_cpus("50000 100000\n"), 1); /* 0.5 CPU: one worker */
    assert_int_equal(config_cpu_max_cpus("100000 100000\n"), 1);
    assert_int_equal(config_cpu_max_cpus("150000 100000\n"), 2); /* 1.5: rounded up */
    assert_int_equal(config_cpu_max_cpus("400000 100000"), 4);
    assert_int_equal(config_cpu_max_cpus(""), 0);
    assert_int_equal(config_cpu_max_cpus("12x 100000"), 0);
    assert_int_equal(config_cpu_max_cpus("100000 0"), 0);
    assert_int_equal(config_quota_cpus(-1, 100000), 0); /* cgroup v1: no quota */
    assert_int_equal(config_quota_cpus(1, 100000), 1);
    assert_int_equal(config_quota_cpus(100000000000LL, 1000), CONFIG_WORKERS_MAX);

    /* Which cgroup holds the quota, from /proc/self/cgroup. */
    char path[64];
    assert_int_equal(config_cgroup_cpu_path("0::/user.slice/x.scope\n", path, sizeof path), 2);
    assert_string_equal(path, "/user.slice/x.scope");
    assert_int_equal(config_cgroup_cpu_path("0::/\n", path, sizeof path), 2); /* a namespace */
    assert_string_equal(path, "/");
    assert_int_equal(config_cgroup_cpu_path("0::/a:b", path, sizeof path), 2);
    assert_string_equal(path, "/a:b");
    const char *v1 = "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n1:name=systemd:/x\n";
    assert_int_equal(config_cgroup_cpu_path(v1, path, sizeof path), 1);
    assert_string_equal(path, "/docker/abc");
    /* A hybrid host: the v1 cpu controller, wherever its line is. */
    assert_int_equal(config_cgroup_cpu_path("1:cpu:/k\n0::/init.scope\n", path, sizeof path), 1);
    assert_string_equal(path, "/k");
    assert_int_equal(config_cgroup_cpu_path("0::/init.scope\n1:cpu:/k\n", path, sizeof path), 1);
    assert_string_equal(path, "/k");
    assert_int_equal(config_cgroup_cpu_path("4:memory:/x\n3:cpuset:/x\n", path, sizeof path), 0);
    assert_int_equal(config_cgroup_cpu_path("", path, sizeof path), 0);
}

static void test_backend_listed_twice(void **state)
{
    (void)state;
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends:\n"
                 "      - 127.0.0.1:9000\n"
                 "      - 127.0.0.1:9001\n"
                 "      - {address: 127.0.0.1:9000, weight: 2}\n",
                 7, 9, "backend '127.0.0.1:9000' is listed twice in this route");
}

/* A wildcard address takes its port on every address of its family: a specific address of the
 * same family and port could not be listened on beside it, in either order. */
static void test_wildcard_listen_overlaps(void **state)
{
    (void)state;
    expect_error("routes:\n"
                 "  - name: a\n"
                 "    listen: 0.0.0.0:8080\n"
                 "    backends: [127.0.0.1:9000]\n"
                 "  - name: b\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends: [127.0.0.1:9000]\n",
                 6, 13, "listen address '127.0.0.1:8080' overlaps '0.0.0.0:8080' of route 'a'");
    expect_error("routes:\n"
                 "  - name: a\n"
                 "    listen: ['[::1]:8080', '[::]:8080']\n"
                 "    backends: [127.0.0.1:9000]\n",
                 3, 28, "listen address '[::]:8080' overlaps '[::1]:8080' of route 'a'");
    /* Other port, other family (IPv6 sockets are v6-only): no overlap. */
    const char *ok = "routes:\n"
                     "  - name: a\n"
                     "    listen: [0.0.0.0:8080, 127.0.0.1:8081, '[::]:8080', '[::1]:8081']\n"
                     "    backends: [127.0.0.1:9000]\n";
    struct config *c = NULL;
    struct config_error err;
    if (config_load_string(NAME, ok, strlen(ok), &c, &err) != 0)
        fail_msg("%s", err.msg);
    assert_int_equal(c->routes[0].nlistens, 4);
    config_unref(c);
}

static void test_missing_listen_or_backends(void **state)
{
    (void)state;
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    backends: [127.0.0.1:9000]\n",
                 2, 5, "missing required key 'listen'");
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n",
                 2, 5, "missing required key 'backends'");
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends: []\n",
                 4, 15, "'backends' is empty");
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: []\n"
                 "    backends: [127.0.0.1:9000]\n",
                 3, 13, "'listen' is an empty list");
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends:\n"
                 "      - weight: 2\n",
                 5, 9, "missing required key 'address'");
}

/* ---- invalid files: values ------------------------------------------------------------------ */

static void listen_error(const char *addr, int col, const char *what)
{
    char buf[512];
    snprintf(buf, sizeof(buf),
             "routes:\n"
             "  - name: web\n"
             "    listen: %s\n"
             "    backends: [127.0.0.1:9000]\n",
             addr);
    expect_error(buf, 3, col, what);
}

static void backend_error(const char *addr, const char *what)
{
    char buf[512];
    snprintf(buf, sizeof(buf),
             "routes:\n"
             "  - name: web\n"
             "    listen: 127.0.0.1:8080\n"
             "    backends:\n"
             "      - %s\n",
             addr);
    expect_error(buf, 5, 9, what);
}

static void test_bad_ports_and_addresses(void **state)
{
    (void)state;
    listen_error("127.0.0.1:0", 13, "'listen': bad address '127.0.0.1:0': port must be");
    listen_error("127.0.0.1:65536", 13, "port must be a number from 1 to 65535");
    listen_error("127.0.0.1:abc", 13, "port must be a number from 1 to 65535");
    listen_error("127.0.0.1:-1", 13, "port must be a number from 1 to 65535");
    listen_error("'127.0.0.1:'", 13, "port must be a number from 1 to 65535");
    listen_error("127.0.0.1", 13, "expected \"host:port\"");
    listen_error("'::1:80'", 13, "IPv6 addresses must be written \"[addr]:port\"");
    listen_error("'[::1]80'", 13, "'listen': bad address");
    listen_error("'[::zz]:80'", 13, "bad IPv6 address");
    backend_error("127.0.0.1:0", "bad backend address '127.0.0.1:0': port must be");
    backend_error("127.0.0.1:65536", "port must be a number from 1 to 65535");
    backend_error("127.0.0.1", "expected \"host:port\"");
    backend_error("':9000'", "missing host"); /* a backend needs a host: it is not passive */
}

/* getaddrinfo() would read these as IPv4 addresses in the old inet_aton() forms (a leading 0 is
 * octal, 0x hex, fewer than four parts allowed): 010.000.000.001 would be 8.0.0.1. Each is an error
 * instead, for a listen address and a backend alike. */
static void test_ipv4_only_in_dotted_decimal(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "010.000.000.001:21001", /* 8.0.0.1 */
        "127.000.000.010:21001", /* 127.0.0.8 */
        "127.0.0.01:21001",      "0x7f.1:21001",     "0x7f000001:21001", "2130706433:21001",
        "127.1:21001",           "127.0.0.1.:21001", "0X7F.0.0.1:21001", "256.0.0.1:21001",
        "localhost.0x1:21001",   "a.0x:21001",
    };
    const char *why = "not a valid IPv4 address (write four decimal numbers without leading "
                      "zeros, e.g. 10.0.0.1)";
    char what[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(what, sizeof(what), "'listen': bad address '%s': %s", bad[i], why);
        listen_error(bad[i], 13, what);
        snprintf(what, sizeof(what), "'address': bad backend address '%s': %s", bad[i], why);
        backend_error(bad[i], what);
    }
    /* Four decimal numbers without leading zeros are fine, and a lone 0 is not a leading zero. */
    struct config *c = load("routes:\n"
                            "  - listen: 10.0.0.0:21001\n"
                            "    backends: [127.0.0.10:21002, 0.0.0.1:21003]\n");
    assert_addr(&c->routes[0].listens[0].addr, AF_INET, "10.0.0.0", 21001);
    assert_addr(&c->routes[0].backends[0].addr, AF_INET, "127.0.0.10", 21002);
    assert_addr(&c->routes[0].backends[1].addr, AF_INET, "0.0.0.1", 21003);
    config_unref(c);
}

/* ferry's IPv6 listening sockets are IPv6-only, and such a socket cannot bind an IPv4-mapped
 * address: it would pass --check and fail at startup. As a backend it is another way to write
 * the IPv4 address, which an IPv6 socket connects to. */
static void test_ipv4_mapped_listen_address(void **state)
{
    (void)state;
    listen_error("'[::ffff:127.0.0.1]:21001'", 13,
                 "'listen': '[::ffff:127.0.0.1]:21001' is an IPv4-mapped IPv6 address, which ferry "
                 "cannot listen on (its IPv6 listening sockets take IPv6 only): write the IPv4 "
                 "form, 127.0.0.1:21001");
    listen_error("'[::ffff:0.0.0.0]:21001'", 13, "write the IPv4 form, 0.0.0.0:21001");
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: ['[::1]:21001', '[0:0:0:0:0:ffff:7f00:2]:21001']\n"
                 "    backends: [127.0.0.1:9000]\n",
                 3, 29, "write the IPv4 form, 127.0.0.2:21001");
    struct config *c = load("routes:\n"
                            "  - listen: '[::1]:21001'\n"
                            "    backends: ['[::ffff:127.0.0.1]:9000']\n");
    assert_addr(&c->routes[0].backends[0].addr, AF_INET6, "::ffff:127.0.0.1", 9000);
    config_unref(c);
}

/* 0.0.0.0 and [::] are for listening: a connect to one reaches this host by accident, if at all. */
static void test_backend_unspecified_address(void **state)
{
    (void)state;
    backend_error("0.0.0.0:9000", "'address': backend '0.0.0.0:9000' is not an address to "
                                  "connect to");
    backend_error("'[::]:9000'", "'address': backend '[::]:9000' is not an address to connect to");
    backend_error("'[0::0]:9000'", "'address': backend '[0::0]:9000' is not an address");
    backend_error("'[::ffff:0.0.0.0]:9000'", "is not an address to connect to");
    /* In the long form, the error points at the address. */
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends:\n"
                 "      - {weight: 2, address: 0.0.0.0:9000}\n",
                 5, 30, "'address': backend '0.0.0.0:9000' is not an address to connect to");
}

/* A backend that is the route's own listen address: each client connection would open another
 * through ferry, until max_connections. */
static void route_loop_error(const char *listen, const char *backend, const char *what)
{
    char buf[512];
    snprintf(buf, sizeof(buf),
             "routes:\n"
             "  - name: web\n"
             "    listen: %s\n"
             "    backends: [127.0.0.1:9000, %s]\n",
             listen, backend);
    expect_error(buf, 4, 32, what); /* the second backend */
    struct config *c = NULL;
    struct config_error err;
    assert_int_equal(config_load_string(NAME, buf, strlen(buf), &c, &err), -1);
    if (!strstr(err.msg, "route 'web': ") ||
        !strstr(err.msg, "connections would loop back into ferry"))
        fail_msg("\"%s\" does not name the route or say the connections would loop", err.msg);
}

static void test_backend_that_is_the_route_itself(void **state)
{
    (void)state;
    route_loop_error("127.0.0.1:21021", "127.0.0.1:21021",
                     "route 'web': backend '127.0.0.1:21021' connects to the route's own listen "
                     "address '127.0.0.1:21021': connections would loop back into ferry");
    /* Any of the route's listen addresses; IPv6; an IPv4-mapped backend reaches the IPv4 one. */
    route_loop_error("[127.0.0.1:21020, '[::1]:21021']", "'[::1]:21021'",
                     "listen address '[::1]:21021'");
    route_loop_error("127.0.0.1:21021", "'[::ffff:127.0.0.1]:21021'",
                     "listen address '127.0.0.1:21021'");
    /* A wildcard listener takes a connection to any loopback address of its family and port. */
    route_loop_error("0.0.0.0:21021", "127.0.0.1:21021", "listen address '0.0.0.0:21021'");
    route_loop_error("'*:21021'", "127.0.0.2:21021", "listen address '*:21021'");
    route_loop_error("':21021'", "127.255.255.254:21021", "listen address ':21021'");
    route_loop_error("'[::]:21021'", "'[::1]:21021'", "listen address '[::]:21021'");
    /* A host name, as it resolves at load time (localhost: 127.0.0.1 or ::1, either is heard). */
    route_loop_error("[127.0.0.1:21021, '[::1]:21021']", "localhost:21021",
                     "backend 'localhost:21021' (resolved to ");
    /* A route without a name is named as in every other message; the long form points at the
     * address. */
    expect_error("routes:\n"
                 "  - listen: 127.0.0.1:21021\n"
                 "    backends: [127.0.0.1:9000]\n"
                 "  - listen: 127.0.0.1:21022\n"
                 "    backends:\n"
                 "      - address: 127.0.0.1:21022\n",
                 6, 18,
                 "route 'route2': backend '127.0.0.1:21022' connects to the route's own listen "
                 "address '127.0.0.1:21022'");

    /* Not loops: another port, another loopback address than the one listened on, the other
     * family (IPv6 listeners are IPv6-only), an address that may not be this host's, and another
     * route's listen address (a chain of two routes). */
    struct config *c = load("routes:\n"
                            "  - name: a\n"
                            "    listen: [127.0.0.1:21021, 0.0.0.0:21023, '[::]:21024']\n"
                            "    backends: [127.0.0.1:21022, 127.0.0.2:21021, '[::1]:21023',\n"
                            "               127.0.0.1:21024, 192.0.2.1:21023, 127.0.0.1:21025]\n"
                            "  - name: b\n"
                            "    listen: 127.0.0.1:21025\n"
                            "    backends: [127.0.0.1:9000]\n");
    assert_int_equal(c->routes[0].nbackends, 6);
    config_unref(c);
}

static void route_setting_error(const char *line, int col, const char *what)
{
    char buf[512];
    snprintf(buf, sizeof(buf),
             "routes:\n"
             "  - name: web\n"
             "    listen: 127.0.0.1:8080\n"
             "    %s\n"
             "    backends: [127.0.0.1:9000]\n",
             line);
    expect_error(buf, 4, col, what);
}

static void test_buffer_size_range(void **state)
{
    (void)state;
    route_setting_error("buffer_size: 63", 18, "'buffer_size' must be from 64 bytes to 64MiB");
    route_setting_error("buffer_size: 67108865", 18, "'buffer_size' must be from 64 bytes");
    route_setting_error("buffer_size: 65MiB", 18, "'buffer_size' must be from 64 bytes");
    route_setting_error("buffer_size: 0", 18, "'buffer_size' must be from 64 bytes");
    route_setting_error("buffer_size: 16kb", 18, "'buffer_size': bad size '16kb'");
    expect_error("defaults:\n  buffer_size: 63\nroutes:\n" ROUTE_WEB, 2, 16,
                 "'buffer_size' must be from 64 bytes");
}

/* buffer_max: how far a streaming direction's ring may grow; never below buffer_size. */
static void test_buffer_max(void **state)
{
    (void)state;
    struct config *c = load("routes:\n" ROUTE_WEB);
    assert_int_equal(c->defaults.buffer_max, 256 * 1024); /* built in */
    assert_int_equal(settings_buffer_max(&c->routes[0].s), 256 * 1024);
    config_unref(c);

    c = load("defaults:\n"
             "  buffer_max: 1MiB\n"
             "routes:\n"
             "  - name: inherits\n"
             "    listen: 127.0.0.1:8080\n"
             "    backends: [127.0.0.1:9000]\n"
             "  - name: fixed\n"
             "    listen: 127.0.0.1:8081\n"
             "    buffer_size: 64KiB\n"
             "    buffer_max: 64KiB\n"
             "    backends: [127.0.0.1:9000]\n"
             "  - name: larger\n"
             "    listen: 127.0.0.1:8082\n"
             "    buffer_size: 4MiB\n"
             "    backends: [127.0.0.1:9000]\n");
    assert_int_equal(settings_buffer_max(&c->routes[0].s), 1024 * 1024);
    assert_int_equal(settings_buffer_max(&c->routes[1].s), 64 * 1024); /* never grows */
    /* An inherited buffer_max below the route's own buffer_size: the rings do not grow. */
    assert_int_equal(settings_buffer_max(&c->routes[2].s), 4 * 1024 * 1024);
    config_unref(c);

    /* Set in the same mapping below buffer_size: an error naming both, wherever the keys are. */
    route_setting_error("buffer_max: 8KiB", 17,
                        "'buffer_max' (8KiB) is smaller than buffer_size (16KiB)");
    expect_error("defaults:\n  buffer_max: 32KiB\n  buffer_size: 64KiB\nroutes:\n" ROUTE_WEB, 2, 15,
                 "'buffer_max' (32KiB) is smaller than buffer_size (64KiB)");
    route_setting_error("buffer_max: 65MiB", 17, "'buffer_max' must be from 64 bytes to 64MiB");
    route_setting_error("buffer_max: lots", 17, "'buffer_max': bad size 'lots'");

    /* buffer_budget: per worker, 64MiB unless set; 0 means no ring ever grows. */
    c = load("routes:\n" ROUTE_WEB);
    assert_int_equal(c->buffer_budget, 64 << 20);
    config_unref(c);
    c = load("buffer_budget: 0\nroutes:\n" ROUTE_WEB);
    assert_int_equal(c->buffer_budget, 0);
    config_unref(c);
    expect_error("buffer_budget: 1GB\nroutes:\n" ROUTE_WEB, 1, 16,
                 "'buffer_budget': bad size '1GB': unknown size unit");
    expect_error("buffer_budget: [1]\nroutes:\n" ROUTE_WEB, 1, 16, "'buffer_budget'");

    /* coalesce: auto unless set; off, or an error naming the two choices. */
    c = load("routes:\n" ROUTE_WEB);
    assert_true(c->coalesce);
    config_unref(c);
    c = load("coalesce: off\nroutes:\n" ROUTE_WEB);
    assert_false(c->coalesce);
    config_unref(c);
    expect_error("coalesce: sometimes\nroutes:\n" ROUTE_WEB, 1, 11,
                 "'coalesce' must be auto or off, got 'sometimes'");
    expect_error("coalesce: [auto]\nroutes:\n" ROUTE_WEB, 1, 11, "'coalesce'");
}

static void test_weight_range(void **state)
{
    (void)state;
    static const char *const bad[] = {"0", "257", "-1", "1.5", "two"};
    char buf[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf),
                 "routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends:\n"
                 "      - address: 127.0.0.1:9000\n"
                 "        weight: %s\n",
                 bad[i]);
        expect_error(buf, 6, 17, "'weight'");
    }
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends:\n"
                 "      - address: 127.0.0.1:9000\n"
                 "        weight: 257\n",
                 6, 17, "'weight' must be from 1 to 256, got 257");
}

static void test_connect_attempts_range(void **state)
{
    (void)state;
    route_setting_error("connect_attempts: 0", 23, "'connect_attempts' must be from 1");
    route_setting_error("connect_attempts: many", 23, "'connect_attempts' must be a whole number");
    expect_error("defaults:\n  connect_attempts: 0\nroutes:\n" ROUTE_WEB, 2, 21,
                 "'connect_attempts' must be from 1");
}

static void test_bad_durations(void **state)
{
    (void)state;
    route_setting_error("connect_timeout: 5", 22, "'connect_timeout': bad duration '5'");
    route_setting_error("connect_timeout: 5x", 22, "bad duration '5x'");
    route_setting_error("connect_timeout: -1s", 22, "bad duration '-1s'");
    route_setting_error("connect_timeout: 1.5s", 22, "bad duration '1.5s'");
    route_setting_error("idle_timeout: 5", 19, "'idle_timeout': bad duration '5'");
    route_setting_error("idle_timeout: 2401h", 19, "too large");
    expect_error("shutdown_timeout: 30\nroutes:\n" ROUTE_WEB, 1, 19,
                 "'shutdown_timeout': bad duration '30'");
    expect_error("defaults:\n  idle_timeout: 1.5s\nroutes:\n" ROUTE_WEB, 2, 17,
                 "bad duration '1.5s'");
}

/* A copy is equal to its original and shares no memory with it (ASan checks the frees). */
static void test_dup_is_deep(void **state)
{
    (void)state;
    struct config *c = load(full_example);
    struct config *d = config_dup(c);
    assert_int_equal(d->refs, 1);
    assert_int_equal(d->nroutes, c->nroutes);
    assert_ptr_not_equal(d->routes, c->routes);
    assert_string_equal(d->routes[0].name, c->routes[0].name);
    assert_ptr_not_equal(d->routes[0].name, c->routes[0].name);
    assert_string_equal(d->routes[0].backends[1].address, c->routes[0].backends[1].address);
    assert_ptr_not_equal(d->routes[0].backends, c->routes[0].backends);
    assert_ptr_not_equal(d->routes[0].listens, c->routes[0].listens);
    assert_int_equal(d->routes[0].backends[0].weight, 2);
    assert_int_equal(d->routes[0].s.buffer_size, 32 * 1024);
    d->routes[0].backends[0].weight = 7;
    assert_int_equal(c->routes[0].backends[0].weight, 2);
    config_unref(c);
    assert_string_equal(d->routes[0].listens[0].address, "0.0.0.0:8080");
    config_unref(d);
}

/* resolve_interval: 30 s by default, 0 turns it off, anything shorter than 100ms is a mistake; a
 * backend is "named" exactly when its host part is not an IP literal. */
static void test_resolve_interval_and_named_backends(void **state)
{
    (void)state;
    struct config *c = load("routes:\n" ROUTE_WEB);
    assert_int_equal(c->resolve_interval_ms, 30000);
    assert_false(c->has_names);
    assert_false(c->routes[0].backends[0].named);
    config_unref(c);
    c = load("resolve_interval: 0\nroutes:\n"
             "  - listen: 127.0.0.1:8080\n"
             "    backends: [localhost:9000, '[::1]:9001', 127.0.0.1:9002]\n");
    assert_int_equal(c->resolve_interval_ms, 0);
    assert_true(c->has_names);
    assert_true(c->routes[0].backends[0].named);
    assert_false(c->routes[0].backends[1].named);
    assert_false(c->routes[0].backends[2].named);
    config_unref(c);
    c = load("resolve_interval: 100ms\nroutes:\n" ROUTE_WEB);
    assert_int_equal(c->resolve_interval_ms, 100);
    config_unref(c);
    expect_error("resolve_interval: 50ms\nroutes:\n" ROUTE_WEB, 1, 19,
                 "'resolve_interval' must be 0 (never) or at least 100ms");
    expect_error("resolve_interval: 5\nroutes:\n" ROUTE_WEB, 1, 19,
                 "'resolve_interval': bad duration '5'");
}

/* "Never" is a valid idle timeout; a connect timeout of zero is not. */
static void test_zero_idle_timeout_allowed_zero_connect_timeout_rejected(void **state)
{
    (void)state;
    struct config *c = load("routes:\n"
                            "  - listen: 127.0.0.1:8080\n"
                            "    idle_timeout: 0\n"
                            "    backends: [127.0.0.1:9000]\n"
                            "  - listen: 127.0.0.1:8081\n"
                            "    idle_timeout: 0s\n"
                            "    backends: [127.0.0.1:9000]\n");
    assert_int_equal(c->routes[0].s.idle_timeout_ms, 0);
    assert_int_equal(c->routes[1].s.idle_timeout_ms, 0);
    config_unref(c);
    route_setting_error("connect_timeout: 0", 22, "must be greater than 0");
    route_setting_error("connect_timeout: 0ms", 22, "must be greater than 0");
    expect_error("defaults:\n  connect_timeout: 0s\nroutes:\n" ROUTE_WEB, 2, 20,
                 "'connect_timeout': bad duration '0s': must be greater than 0");
}

static void test_bad_log_settings(void **state)
{
    (void)state;
    expect_error("log:\n  level: verbose\nroutes:\n" ROUTE_WEB, 2, 10,
                 "'level' must be error, warn, info or debug, got 'verbose'");
    expect_error("log:\n  level: INFO\nroutes:\n" ROUTE_WEB, 2, 10, "'level' must be");
    expect_error("log:\n  format: xml\nroutes:\n" ROUTE_WEB, 2, 11,
                 "'format' must be text or json, got 'xml'");
    expect_error("log:\n  access: maybe\nroutes:\n" ROUTE_WEB, 2, 11,
                 "'access' must be true or false, got 'maybe'");
    expect_error("log:\n  access: 1\nroutes:\n" ROUTE_WEB, 2, 11, "'access' must be true or false");
    expect_error("reload:\n  watch: 2\nroutes:\n" ROUTE_WEB, 2, 10,
                 "'watch' must be true or false");
    expect_error("defaults:\n  splice: zero-copy\nroutes:\n" ROUTE_WEB, 2, 11,
                 "'splice' must be true or false, got 'zero-copy'");
}

static void test_bad_route_names(void **state)
{
    (void)state;
    static const char *const bad[] = {"'web server'", "web/1", "'caf\xc3\xa9'", "'a:b'",
                                      "\"a\\tb\""};
    char buf[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(buf, sizeof(buf),
                 "routes:\n"
                 "  - name: %s\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    backends: [127.0.0.1:9000]\n",
                 bad[i]);
        expect_error(buf, 2, 11, "'name' may use only letters, digits, '_', '.' and '-'");
    }
    /* Every allowed character class in one name. */
    struct config *c = load("routes:\n"
                            "  - name: Web_1.prod-eu\n"
                            "    listen: 127.0.0.1:8080\n"
                            "    backends: [127.0.0.1:9000]\n");
    assert_string_equal(c->routes[0].name, "Web_1.prod-eu");
    config_unref(c);
    /* 65 characters is one too many. */
    snprintf(buf, sizeof(buf),
             "routes:\n"
             "  - name: %065d\n"
             "    listen: 127.0.0.1:8080\n"
             "    backends: [127.0.0.1:9000]\n",
             0);
    expect_error(buf, 2, 11, "'name' is longer than 64 characters");
}

static void test_bad_workers_and_limits(void **state)
{
    (void)state;
    expect_error("workers: 0\nroutes:\n" ROUTE_WEB, 1, 10, "'workers' must be from 1 to 256");
    expect_error("workers: 257\nroutes:\n" ROUTE_WEB, 1, 10, "'workers' must be from 1 to 256");
    expect_error("workers: many\nroutes:\n" ROUTE_WEB, 1, 10, "'workers' must be a number or auto");
    expect_error("max_connections: lots\nroutes:\n" ROUTE_WEB, 1, 18,
                 "'max_connections' must be a whole number");
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:8080\n"
                 "    balance: random\n"
                 "    backends: [127.0.0.1:9000]\n",
                 4, 14, "'balance' must be round_robin");
}

/* The first error in the file is the one reported. */
static void test_first_error_wins(void **state)
{
    (void)state;
    expect_error("routes:\n"
                 "  - name: web\n"
                 "    listen: 127.0.0.1:0\n"
                 "    backends: [127.0.0.1:0]\n",
                 3, 13, "'listen'");
}

/* ---- files, printing, references ------------------------------------------------------------ */

static void test_load_file_missing(void **state)
{
    (void)state;
    struct config *c = NULL;
    struct config_error err;
    const char *path = "/nonexistent-ferry-dir/ferry.yaml";
    assert_int_equal(config_load_file(path, &c, &err), -1);
    assert_null(c);
    assert_non_null(strstr(err.msg, path));
    assert_true(strncmp(err.msg, path, strlen(path)) == 0);
    assert_non_null(strstr(err.msg, strerror(ENOENT)));
}

/* Writes text to path, whole. */
static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static void test_load_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/ferry-test-config-XXXXXX";
    char path[128], bad[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/ok.yaml", dir);
    snprintf(bad, sizeof(bad), "%s/bad.yaml", dir);
    write_file(path, full_example);
    write_file(bad, "routes:\n  - name: web\n    listen: 127.0.0.1:8080\n");

    struct config *c = NULL;
    struct config_error err;
    if (config_load_file(path, &c, &err) != 0)
        fail_msg("%s", err.msg);
    assert_string_equal(c->path, path);
    assert_int_equal(c->routes[0].backends[0].weight, 2);
    /* Loading the same bytes from a file or from memory gives the same hash. */
    assert_true(c->hash == config_hash_bytes(full_example, strlen(full_example)));
    config_unref(c);

    c = NULL;
    assert_int_equal(config_load_file(bad, &c, &err), -1);
    assert_null(c);
    char prefix[160];
    snprintf(prefix, sizeof(prefix), "%s:2:5: ", bad);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0)
        fail_msg("got \"%s\", expected it to start with \"%s\"", err.msg, prefix);
    assert_non_null(strstr(err.msg, "'backends'"));

    /* A directory is not a configuration file. */
    assert_int_equal(config_load_file(dir, &c, &err), -1);
    assert_non_null(strstr(err.msg, dir));
    assert_non_null(strstr(err.msg, "is a directory"));

    unlink(path);
    unlink(bad);
    rmdir(dir);
}

/* What tells a change of the configuration file from an event on another file of its directory. */
static void test_file_identity(void **state)
{
    (void)state;
    char dir[] = "/tmp/ferry-test-config-XXXXXX";
    char path[128], next[128], other[128];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/ferry.yaml", dir);
    snprintf(next, sizeof(next), "%s/ferry.yaml.new", dir);
    snprintf(other, sizeof(other), "%s/.ferry.yaml.swp", dir);
    write_file(path, full_example);

    struct config *c = NULL;
    struct config_error err;
    if (config_load_file(path, &c, &err) != 0)
        fail_msg("%s", err.msg);
    struct config_file_id a, b;
    config_file_id_stat(path, &a);
    assert_true(a.present);
    /* Written just now: a change within the timestamp granularity could keep the same stat. */
    assert_false(a.settled);
    assert_true(config_file_id_equal(&c->file_id, &a));
    assert_true(c->file_id.present);

    /* Another file of the directory leaves it as it was. */
    write_file(other, "swap");
    config_file_id_stat(path, &b);
    assert_true(config_file_id_equal(&a, &b));

    /* Rewritten in place (same inode). */
    struct stat st0, st1;
    assert_int_equal(stat(path, &st0), 0);
    write_file(path, "routes: []\n");
    config_file_id_stat(path, &b);
    assert_false(config_file_id_equal(&a, &b));

    /* Replaced by a rename: a new inode, whatever the size and times. */
    config_file_id_stat(path, &a);
    write_file(next, "routes: []\n");
    assert_int_equal(rename(next, path), 0);
    assert_int_equal(stat(path, &st1), 0);
    assert_true(st1.st_ino != st0.st_ino);
    config_file_id_stat(path, &b);
    assert_false(config_file_id_equal(&a, &b));

    /* Gone: the same as gone, different from present, and gone stays gone (settled). */
    unlink(path);
    struct config_file_id gone, again;
    config_file_id_stat(path, &gone);
    config_file_id_stat(path, &again);
    assert_false(gone.present);
    assert_true(gone.settled);
    assert_true(config_file_id_equal(&gone, &again));
    assert_false(config_file_id_equal(&gone, &b));
    assert_false(config_file_id_equal(&b, &gone));
    config_unref(c);

    /* A file last changed long ago (the root directory, on any machine that has been up for more
     * than a few seconds) is settled. */
    assert_int_equal(stat("/", &st0), 0);
    config_file_id_stat("/", &a);
    if (time(NULL) - st0.st_ctim.tv_sec > 10)
        assert_true(a.settled);

    unlink(other);
    rmdir(dir);
}

/* config_print's text for one route: from "route NAME\n" to the next "route " line. */
static char *route_section(const char *out, const char *name)
{
    char head[96];
    snprintf(head, sizeof(head), "route %s\n", name);
    const char *s = strstr(out, head);
    if (!s) {
        fail_msg("no \"%s\" in:\n%s", name, out);
        return NULL;
    }
    const char *e = strstr(s + 1, "\nroute ");
    size_t n = e ? (size_t)(e - s) + 1 : strlen(s);
    char *sec = strndup(s, n);
    assert_non_null(sec);
    return sec;
}

static void assert_contains(const char *text, const char *what)
{
    if (!strstr(text, what))
        fail_msg("\"%s\" not found in:\n%s", what, text);
}

static void test_print_shows_effective_settings(void **state)
{
    (void)state;
    struct config *c = load("workers: 2\n"
                            "max_connections: 500\n"
                            "shutdown_timeout: 90s\n"
                            "log: {level: warn, format: json, access: false}\n"
                            "defaults:\n"
                            "  connect_timeout: 1500ms\n"
                            "  idle_timeout: 0\n"
                            "routes:\n"
                            "  - name: web\n"
                            "    listen: [0.0.0.0:8080, \"[::1]:8080\"]\n"
                            "    connect_timeout: 2s\n"
                            "    idle_timeout: 10m\n"
                            "    connect_attempts: 2\n"
                            "    buffer_size: 32KiB\n"
                            "    backends:\n"
                            "      - address: 127.0.0.1:9000\n"
                            "        weight: 2\n"
                            "      - 127.0.0.1:9001\n"
                            "  - name: plain\n"
                            "    listen: '*:9090'\n"
                            "    backends: [127.0.0.1:9002]\n");
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    assert_non_null(f);
    config_print(c, f);
    assert_int_equal(fclose(f), 0);

    assert_contains(out, "2 routes");
    assert_contains(out, "workers: 2\n");
    assert_contains(out, "max_connections: 500\n");
    assert_contains(out, "shutdown_timeout: 90s\n");
    assert_contains(out, "level: warn");
    assert_contains(out, "format: json");
    assert_contains(out, "access: false");

    char *web = route_section(out, "web");
    assert_contains(web, "listen: 0.0.0.0:8080\n");
    assert_contains(web, "listen: [::1]:8080\n");
    assert_contains(web, "connect_timeout: 2s\n");
    assert_contains(web, "idle_timeout: 10m\n");
    assert_contains(web, "connect_attempts: 2\n");
    assert_contains(web, "buffer_size: 32KiB\n");
    assert_contains(web, "buffer_max: 256KiB (while a direction streams)\n");
    assert_contains(web, "backend: 127.0.0.1:9000 weight 2\n");
    assert_contains(web, "backend: 127.0.0.1:9001 weight 1\n");
    free(web);

    /* The second route shows what it inherits, not blanks. */
    char *plain = route_section(out, "plain");
    assert_contains(plain, "listen: 0.0.0.0:9090\n");
    assert_contains(plain, "connect_timeout: 1500ms\n");
    assert_contains(plain, "idle_timeout: 0 (never)\n");
    assert_contains(plain, "connect_attempts: 3\n");
    assert_contains(plain, "buffer_size: 16KiB\n");
    assert_contains(plain, "backend: 127.0.0.1:9002 weight 1\n");
    free(plain);
    free(out);
    config_unref(c);

    /* Defaults for everything process-wide. */
    c = load("routes:\n" ROUTE_WEB);
    f = open_memstream(&out, &len);
    config_print(c, f);
    fclose(f);
    assert_contains(out, "1 route\n");
    assert_contains(out, "max_connections: derived from the open-file limit");
    assert_contains(out, "shutdown_timeout: 30s\n");
    assert_contains(out, "buffer_budget: 64MiB per worker\n");
    assert_contains(
        out, "coalesce: auto (a busy worker waits a moment before blocking while that pays)\n");
    assert_contains(out, "idle_timeout: 1h\n");
    assert_contains(out, "buffer_max: 256KiB (while a direction streams)\n");
    free(out);
    config_unref(c);

    /* Growth turned off, per route or everywhere, is said so. */
    c = load("buffer_budget: 0\n"
             "coalesce: off\n"
             "routes:\n"
             "  - name: web\n"
             "    listen: 127.0.0.1:8080\n"
             "    buffer_max: 16KiB\n"
             "    backends: [127.0.0.1:9000]\n");
    f = open_memstream(&out, &len);
    config_print(c, f);
    fclose(f);
    assert_contains(out, "buffer_budget: 0 per worker (rings never grow past buffer_size)\n");
    assert_contains(out, "buffer_max: 16KiB (rings never grow)\n");
    assert_contains(out, "coalesce: off\n");
    free(out);
    config_unref(c);
}

static void test_reference_counting(void **state)
{
    (void)state;
    struct config *c = load("routes:\n" ROUTE_WEB);
    assert_int_equal(c->refs, 1);
    assert_ptr_equal(config_ref(c), c);
    assert_ptr_equal(config_ref(c), c);
    assert_int_equal(c->refs, 3);
    config_unref(c);
    config_unref(c);
    assert_int_equal(c->refs, 1);
    /* Still whole while one reference remains (ASan would flag a use after free). */
    assert_string_equal(c->routes[0].name, "web");
    assert_string_equal(c->routes[0].backends[0].address, "127.0.0.1:9000");
    config_unref(c); /* the last one frees; ASan's leak check sees if it did not */
    config_unref(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_example),
        cmocka_unit_test(test_minimal_file_gets_documented_defaults),
        cmocka_unit_test(test_backends_shorthand_and_mapping_mix),
        cmocka_unit_test(test_listen_as_a_list_with_ipv6),
        cmocka_unit_test(test_backend_host_name_is_resolved),
        cmocka_unit_test(test_defaults_inherited_and_overridden),
        cmocka_unit_test(test_defaults_written_after_routes_still_apply),
        cmocka_unit_test(test_workers_auto_and_number),
        cmocka_unit_test(test_log_reload_and_bool_spellings),
        cmocka_unit_test(test_range_edges_accepted),
        cmocka_unit_test(test_unnamed_routes_get_distinct_names),
        cmocka_unit_test(test_shared_backends_and_ports_on_other_hosts),
        cmocka_unit_test(test_hash_follows_the_text),
        cmocka_unit_test(test_file_identity),
        cmocka_unit_test(test_yaml_syntax_error),
        cmocka_unit_test(test_error_escapes_control_characters),
        cmocka_unit_test(test_unreadable_characters_are_located),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_top_level_must_be_a_mapping),
        cmocka_unit_test(test_missing_routes),
        cmocka_unit_test(test_routes_empty_or_not_a_list),
        cmocka_unit_test(test_two_yaml_documents),
        cmocka_unit_test(test_syntax_error_in_a_second_document),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_values_that_are_missing),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_duplicate_route_name),
        cmocka_unit_test(test_duplicate_listen_address),
        cmocka_unit_test(test_wildcard_listen_overlaps),
        cmocka_unit_test(test_backend_listed_twice),
        cmocka_unit_test(test_cpu_quota),
        cmocka_unit_test(test_missing_listen_or_backends),
        cmocka_unit_test(test_bad_ports_and_addresses),
        cmocka_unit_test(test_ipv4_only_in_dotted_decimal),
        cmocka_unit_test(test_ipv4_mapped_listen_address),
        cmocka_unit_test(test_backend_unspecified_address),
        cmocka_unit_test(test_backend_that_is_the_route_itself),
        cmocka_unit_test(test_buffer_size_range),
        cmocka_unit_test(test_buffer_max),
        cmocka_unit_test(test_weight_range),
        cmocka_unit_test(test_connect_attempts_range),
        cmocka_unit_test(test_bad_durations),
        cmocka_unit_test(test_zero_idle_timeout_allowed_zero_connect_timeout_rejected),
        cmocka_unit_test(test_bad_log_settings),
        cmocka_unit_test(test_bad_route_names),
        cmocka_unit_test(test_bad_workers_and_limits),
        cmocka_unit_test(test_first_error_wins),
        cmocka_unit_test(test_load_file_missing),
        cmocka_unit_test(test_resolve_interval_and_named_backends),
        cmocka_unit_test(test_dup_is_deep),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_print_shows_effective_settings),
        cmocka_unit_test(test_reference_counting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
