/*
 * test_log.c - the line format: one event per line whatever the values hold, text and JSON.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Runs fn with stderr sent to a pipe; returns what it wrote (NUL-terminated, static). */
static const char *capture(void (*fn)(void))
{
    static char out[4096];
    int p[2];
    assert_int_equal(pipe(p), 0);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_int_equal(dup2(p[1], STDERR_FILENO), STDERR_FILENO);
    fn();
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    close(p[1]);
    size_t len = 0;
    ssize_t n;
    while (len < sizeof(out) - 1 && (n = read(p[0], out + len, sizeof(out) - 1 - len)) > 0)
        len += (size_t)n;
    close(p[0]);
    out[len] = '\0';
    return out;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void emit_hostile(void)
{
    log_msg(LOG_WARN, "route %s: bad", "web\n2026-01-01T00:00:00.000Z info fake\t\r\x01\x7f");
    struct log_field f[] = {{.key = "route", .str = "a\nb"}, {.key = "bytes", .num = 12}};
    log_fields(LOG_INFO, "access\nline", f, 2);
}

static void test_text_escapes_control_characters(void **state)
{
    (void)state;
    log_setup(LOG_DEBUG, LOG_TEXT);
    const char *out = capture(emit_hostile);
    assert_int_equal(count_lines(out), 2);
    if (!strstr(out, " warn route web\\n2026-01-01T00:00:00.000Z info fake\\t\\r\\x01\\x7f: bad\n"))
        fail_msg("got: %s", out);
    if (!strstr(out, " info access\\nline route=a\\nb bytes=12\n"))
        fail_msg("got: %s", out);
}

static void test_json_escapes_control_characters(void **state)
{
    (void)state;
    log_setup(LOG_DEBUG, LOG_JSON);
    const char *out = capture(emit_hostile);
    assert_int_equal(count_lines(out), 2);
    if (!strstr(
            out,
            "\"msg\":\"route web\\u000a2026-01-01T00:00:00.000Z info fake\\u0009\\u000d\\u0001"))
        fail_msg("got: %s", out);
    if (!strstr(out, "\"route\":\"a\\u000ab\",\"bytes\":12}"))
        fail_msg("got: %s", out);
    log_setup(LOG_INFO, LOG_TEXT);
}

static void *level_info_enabled(void *arg)
{
    *(bool *)arg = log_enabled(LOG_INFO);
    return NULL;
}

/* A reload's own lines follow the settings it installs while the workers keep the running ones. */
static void test_thread_settings_are_the_callers_own(void **state)
{
    (void)state;
    log_setup(LOG_ERROR, LOG_TEXT);
    assert_false(log_enabled(LOG_INFO));
    log_thread_settings(LOG_DEBUG, LOG_JSON);
    assert_true(log_enabled(LOG_DEBUG));
    bool other = true;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, level_info_enabled, &other), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_false(other); /* another thread: still the process-wide level */
    log_thread_settings(-1, -1);
    assert_false(log_enabled(LOG_INFO));
    log_setup(LOG_INFO, LOG_TEXT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_escapes_control_characters),
        cmocka_unit_test(test_json_escapes_control_characters),
        cmocka_unit_test(test_thread_settings_are_the_callers_own),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
