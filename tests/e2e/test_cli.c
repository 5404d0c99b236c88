/*
 * End-to-end: the command line and configuration errors. --version, --help and --check behave as
 * the contract says; a bad flag is a usage error (exit 2) that names it as written; every invalid
 * configuration (unknown key, wrong type, duplicate route name or listen address, bad port, empty
 * backends, out-of-range values, bad duration, missing file) exits 1 with `FILE:LINE:COL:` pointing
 * at the offending line.
 */
#include "e2e.h"

#include <ctype.h>

static const char *const run_args[] = {"-c", FERRY_CONFIG_ARG, NULL};
static const char *const check_args[] = {"--check", "-c", FERRY_CONFIG_ARG, NULL};

/* The stderr line that starts the error at FILE:LINE:, or NULL. Copies it into out. */
static bool find_error_line(const char *err, const char *path, int line, char *out, size_t size)
{
    char prefix[4200];
    snprintf(prefix, sizeof prefix, "%s:%d:", path, line);
    const char *p = strstr(err, prefix);
    if (p == NULL) {
        return false;
    }
    size_t n = strcspn(p, "\n");
    snprintf(out, size, "%.*s", (int)n, p);
    /* FILE:LINE: must be followed by COL: */
    const char *col = p + strlen(prefix);
    if (!isdigit((unsigned char)*col)) {
        return false;
    }
    col += strspn(col, "0123456789");
    return *col == ':';
}

/*
 * Runs ferry (args: run_args or check_args) on an invalid yaml and asserts exit 1 with an error at
 * the line holding the nth occurrence of marker; word (optional) must appear in that error line.
 */
static void expect_config_error(const char *const *args, const char *yaml, const char *marker,
                                int nth, const char *word)
{
    struct ferry *f = ferry_spawn(yaml, args, NULL);
    if (ferry_wait_log(f, "ready generation=", 5000)) {
        ferry_dump(f, "started");
        fail_msg("ferry started on an invalid configuration (error expected at \"%s\")", marker);
    }
    int code = ferry_wait_exit(f, 5000);
    char *err = owned(ferry_stderr(f));
    int line = line_of(yaml, marker, nth);
    char found[1024];
    bool ok = find_error_line(err, ferry_config_path(f), line, found, sizeof found);
    if (code != 1 || !ok || (word != NULL && strstr(found, word) == NULL)) {
        fprintf(stderr, "config:\n%s---- ferry stderr:\n%s----\n", yaml, err);
        fail_msg("want exit 1 and \"%s:%d:COL: ...%s...\"; got exit %d, %s", ferry_config_path(f),
                 line, word ? word : "", code, ok ? found : "no such line");
    }
}

static void test_version(void **state)
{
    (void)state;
    static const char *const args[] = {"--version", NULL};
    struct ferry *f;
    assert_int_equal(ferry_run(NULL, args, 5000, &f), 0);
    char *out = owned(ferry_stdout(f));
    unsigned x, y, z;
    if (sscanf(out, "ferry %u.%u.%u", &x, &y, &z) != 3) {
        fail_msg("--version printed \"%s\", want \"ferry X.Y.Z\"", out);
    }
}

static void test_help(void **state)
{
    (void)state;
    static const char *const args[] = {"--help", NULL};
    struct ferry *f;
    assert_int_equal(ferry_run(NULL, args, 5000, &f), 0);
    char *out = owned(ferry_stdout(f));
    char *err = owned(ferry_stderr(f));
    /* The help names the options it documents. */
    if (strstr(out, "--config") == NULL && strstr(err, "--config") == NULL) {
        fail_msg("--help does not mention --config: stdout \"%s\" stderr \"%s\"", out, err);
    }
    if (strstr(out, "--check") == NULL && strstr(err, "--check") == NULL) {
        fail_msg("--help does not mention --check");
    }
}

static void test_bad_flag_exit_2(void **state)
{
    (void)state;
    static const char *const args[] = {"--no-such-flag", NULL};
    struct ferry *f;
    assert_int_equal(ferry_run(NULL, args, 5000, &f), 2);
}

/* A usage error names the option as it was written: a letter of a cluster such as -zq (not the
 * argument before it, or the program's name), a long option without its "=VALUE". */
static void test_bad_flag_is_named(void **state)
{
    (void)state;
    static const struct {
        const char *args[4];
        const char *want;
    } cases[] = {
        {{"-zq", NULL}, "ferry: unknown option -z\n"},
        {{"--check", "-qz", NULL}, "ferry: unknown option -q\n"},
        {{"--no-such-flag=1", NULL}, "ferry: unknown option --no-such-flag\n"},
        {{"--check=yes", NULL}, "ferry: option --check takes no value\n"},
        {{"--c", NULL}, "ferry: ambiguous option --c\n"},
        {{"-c", NULL}, "ferry: option -c needs a value\n"},
        {{"--config", NULL}, "ferry: option --config needs a value\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ferry *f;
        int code = ferry_run(NULL, cases[i].args, 5000, &f);
        char *err = owned(ferry_stderr(f));
        if (code != 2 || strncmp(err, cases[i].want, strlen(cases[i].want)) != 0) {
            fail_msg("ferry %s %s: want exit 2 and \"%s\" first; got exit %d and:\n%s",
                     cases[i].args[0], cases[i].args[1] ? cases[i].args[1] : "", cases[i].want,
                     code, err);
        }
    }
}

static void test_check_prints_routes(void **state)
{
    (void)state;
    int p1 = free_port(AF_INET), p2 = free_port(AF_INET);
    const char *yaml = tfmt("defaults:\n"
                            "  connect_timeout: 3s\n"
                            "routes:\n"
                            "  - name: web\n"
                            "    listen: 127.0.0.1:%d\n"
                            "    backends:\n"
                            "      - address: 127.0.0.1:9001\n"
                            "        weight: 3\n"
                            "      - 127.0.0.1:9002\n"
                            "  - name: db.primary\n"
                            "    listen: 127.0.0.1:%d\n"
                            "    idle_timeout: 10m\n"
                            "    buffer_size: 32KiB\n"
                            "    backends: [127.0.0.1:5432]\n",
                            p1, p2);
    struct ferry *f;
    int code = ferry_run(yaml, check_args, 5000, &f);
    char *out = owned(ferry_stdout(f));
    if (code != 0) {
        ferry_dump(f, "--check");
        fail_msg("--check on a valid file exited %d", code);
    }
    char l1[64], l2[64];
    snprintf(l1, sizeof l1, "127.0.0.1:%d", p1);
    snprintf(l2, sizeof l2, "127.0.0.1:%d", p2);
    const char *want[] = {"web",           "db.primary", l1, l2, "127.0.0.1:9001", "127.0.0.1:9002",
                          "127.0.0.1:5432"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (strstr(out, want[i]) == NULL) {
            fail_msg("--check output lacks \"%s\":\n%s", want[i], out);
        }
    }
}

/* --check only validates: it must not bind the listen address (held here by the test). */
static void test_check_does_not_listen(void **state)
{
    (void)state;
    int port;
    assert_ok(listen_loopback(AF_INET, 16, 0, &port), "listen");
    struct ferry *f;
    int code = ferry_run(tfmt("routes:\n"
                              "  - name: web\n"
                              "    listen: 127.0.0.1:%d\n"
                              "    backends: [127.0.0.1:9001]\n",
                              port),
                         check_args, 5000, &f);
    if (code != 0) {
        ferry_dump(f, "--check");
        fail_msg("--check exited %d on a valid file whose listen address is in use", code);
    }
}

/* idle_timeout: 0 is valid, and warned about at --check as when ferry runs. */
static void test_check_warns_about_idle_timeout_zero(void **state)
{
    (void)state;
    struct ferry *f;
    int code = ferry_run(tfmt("routes:\n"
                              "  - name: web\n"
                              "    listen: 127.0.0.1:%d\n"
                              "    backends: [127.0.0.1:9001]\n"
                              "  - name: db\n"
                              "    listen: 127.0.0.1:%d\n"
                              "    idle_timeout: 0\n"
                              "    backends: [127.0.0.1:9002]\n",
                              free_port(AF_INET), free_port(AF_INET)),
                         check_args, 5000, &f);
    char *err = owned(ferry_stderr(f));
    if (code != 0) {
        ferry_dump(f, "--check");
        fail_msg("--check exited %d on a valid file", code);
    }
    if (!strstr(err, "warning: route db: idle_timeout is 0") || strstr(err, "route web"))
        fail_msg("--check stderr: \"%s\" (want one warning, for route db)", err);
}

static void test_check_rejects_bad_file(void **state)
{
    (void)state;
    expect_config_error(check_args,
                        tfmt("routes:\n"
                             "  - name: web\n"
                             "    listen: 127.0.0.1:%d\n"
                             "    lisen: 127.0.0.1:1\n"
                             "    backends: [127.0.0.1:9001]\n",
                             free_port(AF_INET)),
                        "lisen:", 1, "lisen");
}

static void test_missing_config_file(void **state)
{
    (void)state;
    static const char *const args[] = {"-c", "/nonexistent-ferry-dir/ferry.yaml", NULL};
    struct ferry *f;
    int code = ferry_run(NULL, args, 5000, &f);
    char *err = owned(ferry_stderr(f));
    if (code != 1 || strstr(err, "/nonexistent-ferry-dir/ferry.yaml") == NULL) {
        fail_msg("missing config: exit %d (want 1), stderr \"%s\" (want the path)", code, err);
    }
}

static void test_unknown_key(void **state)
{
    (void)state;
    expect_config_error(run_args,
                        tfmt("routes:\n"
                             "  - name: web\n"
                             "    listen: 127.0.0.1:%d\n"
                             "    idle_timout: 5s\n"
                             "    backends: [127.0.0.1:9001]\n",
                             free_port(AF_INET)),
                        "idle_timout", 1, "idle_timout");
}

static void test_unknown_top_level_key(void **state)
{
    (void)state;
    expect_config_error(run_args,
                        tfmt("max_connections: 100\n"
                             "shutdown_timout: 5s\n"
                             "routes:\n"
                             "  - name: web\n"
                             "    listen: 127.0.0.1:%d\n"
                             "    backends: [127.0.0.1:9001]\n",
                             free_port(AF_INET)),
                        "shutdown_timout", 1, "shutdown_timout");
}

static void test_wrong_type(void **state)
{
    (void)state;
    expect_config_error(run_args,
                        tfmt("routes:\n"
                             "  - name: web\n"
                             "    listen: 127.0.0.1:%d\n"
                             "    connect_attempts: [1, 2]\n"
                             "    backends: [127.0.0.1:9001]\n",
                             free_port(AF_INET)),
                        "connect_attempts", 1, NULL);
}

static void test_wrong_type_top_level(void **state)
{
    (void)state;
    expect_config_error(run_args,
                        tfmt("max_connections: lots\n"
                             "routes:\n"
                             "  - name: web\n"
                             "    listen: 127.0.0.1:%d\n"
                             "    backends: [127.0.0.1:9001]\n",
                             free_port(AF_INET)),
                        "max_connections", 1, NULL);
}

static void test_duplicate_route_name(void **state)
{
    (void)state;
    expect_config_error(run_args,
                        tfmt("routes:\n"
                             "  - name: web\n"
                             "    listen: 127.0.0.1:%d\n"
                             "    backends: [127.0.0.1:9001]\n"
                             "  - name: web\n"
                             "    listen: 127.0.0.1:%d\n"
                             "    backends: [127.0.0.1:9002]\n",
                             free_port(AF_INET), free_port(AF_INET)),
                        "name: web", 2, NULL);
}

static void test_duplicate_listen_address(void **state)
{
    (void)state;
    int port = free_port(AF_INET);
    expect_config_error(run_args,
                        tfmt("routes:\n"
                             "  - name: one\n"
                             "    listen: 127.0.0.1:%d\n"
                             "    backends: [127.0.0.1:9001]\n"
                             "  - name: two\n"
                             "    listen: 127.0.0.1:%d\n"
                             "    backends: [127.0.0.1:9002]\n",
                             port, port),
                        "listen:", 2, NULL);
}

static void test_bad_listen_port(void **state)
{
    (void)state;
    expect_config_error(run_args,
                        "routes:\n"
                        "  - name: web\n"
                        "    listen: 127.0.0.1:70000\n"
                        "    backends: [127.0.0.1:9001]\n",
                        "70000", 1, NULL);
}

static void test_bad_backend_port(void **state)
{
    (void)state;
    expect_config_error(run_args,
                        tfmt("routes:\n"
                             "  - name: web\n"
                             "    listen: 127.0.0.1:%d\n"
                             "    backends:\n"
                             "      - 127.0.0.1:9001\n"
                             "      - 127.0.0.1:0\n",
                             free_port(AF_INET)),
                        "127.0.0.1:0", 1, NULL);
}

static void test_empty_backends(void **state)
{
    (void)state;
    expect_config_error(run_args,
                        tfmt("routes:\n"
                             "  - name: web\n"
                             "    listen: 127.0.0.1:%d\n"
                             "    backends: []\n",
                             free_port(AF_INET)),
                        "backends", 1, NULL);
}

static void test_buffer_size_too_small(void **state)
{
    (void)state;
    expect_config_error(run_args,
                        tfmt("routes:\n"
                             "  - name: web\n"
                             "    listen: 127.0.0.1:%d\n"
                             "    buffer_size: 32\n"
                             "    backends: [127.0.0.1:9001]\n",
                             free_port(AF_INET)),
                        "buffer_size", 1, NULL);
}

static void test_buffer_size_too_large(void **state)
{
    (void)state;
    expect_config_error(run_args,
                        tfmt("defaults:\n"
                             "  buffer_size: 128MiB\n"
                             "routes:\n"
                             "  - name: web\n"
                             "    listen: 127.0.0.1:%d\n"
                             "    backends: [127.0.0.1:9001]\n",
                             free_port(AF_INET)),
                        "buffer_size", 1, NULL);
}

static void test_bad_duration(void **state)
{
    (void)state;
    expect_config_error(run_args,
                        tfmt("routes:\n"
                             "  - name: web\n"
                             "    listen: 127.0.0.1:%d\n"
                             "    idle_timeout: 5x\n"
                             "    backends: [127.0.0.1:9001]\n",
                             free_port(AF_INET)),
                        "idle_timeout", 1, NULL);
}

static void test_weight_out_of_range(void **state)
{
    (void)state;
    expect_config_error(run_args,
                        tfmt("routes:\n"
                             "  - name: web\n"
                             "    listen: 127.0.0.1:%d\n"
                             "    backends:\n"
                             "      - address: 127.0.0.1:9001\n"
                             "        weight: 300\n",
                             free_port(AF_INET)),
                        "weight", 1, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        E2E_TEST(test_version),
        E2E_TEST(test_help),
        E2E_TEST(test_bad_flag_exit_2),
        E2E_TEST(test_bad_flag_is_named),
        E2E_TEST(test_check_prints_routes),
        E2E_TEST(test_check_does_not_listen),
        E2E_TEST(test_check_warns_about_idle_timeout_zero),
        E2E_TEST(test_check_rejects_bad_file),
        E2E_TEST(test_missing_config_file),
        E2E_TEST(test_unknown_key),
        E2E_TEST(test_unknown_top_level_key),
        E2E_TEST(test_wrong_type),
        E2E_TEST(test_wrong_type_top_level),
        E2E_TEST(test_duplicate_route_name),
        E2E_TEST(test_duplicate_listen_address),
        E2E_TEST(test_bad_listen_port),
        E2E_TEST(test_bad_backend_port),
        E2E_TEST(test_empty_backends),
        E2E_TEST(test_buffer_size_too_small),
        E2E_TEST(test_buffer_size_too_large),
        E2E_TEST(test_bad_duration),
        E2E_TEST(test_weight_out_of_range),
    };
    return E2E_MAIN(tests);
}
