/*
 * test_units.c - the specification of durations, sizes and the config hash (config.h).
 *
 * A duration is a whole number followed by ms, s, m or h; a bare number is an error unless it is 0
 * and zero is allowed; at most 100 days. A size is a whole number of bytes, optionally with KiB
 * or MiB; at most 1 TiB. Signs, fractions, spaces, other units and numbers too large for 64 bits
 * are rejected with a reason. Formatting picks the largest unit that divides the value exactly, so
 * what is printed parses back to the same value. The hash is 64-bit FNV-1a.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "config.h"

#define DAY_MS (24ull * 3600 * 1000)

static uint64_t dur_ok(const char *s, bool allow_zero)
{
    uint64_t ms = 12345;
    const char *why = NULL;
    if (config_parse_duration(s, allow_zero, &ms, &why) != 0)
        fail_msg("'%s' rejected: %s", s, why ? why : "(no reason)");
    return ms;
}

/* Rejected, with a reason containing `reason`. */
static void dur_bad(const char *s, bool allow_zero, const char *reason)
{
    uint64_t ms = 12345;
    const char *why = NULL;
    if (config_parse_duration(s, allow_zero, &ms, &why) != -1)
        fail_msg("'%s' accepted as %llu ms", s, (unsigned long long)ms);
    assert_non_null(why);
    if (!strstr(why, reason))
        fail_msg("'%s': reason '%s' does not mention '%s'", s, why, reason);
}

static uint64_t size_ok(const char *s)
{
    uint64_t b = 12345;
    const char *why = NULL;
    if (config_parse_size(s, &b, &why) != 0)
        fail_msg("'%s' rejected: %s", s, why ? why : "(no reason)");
    return b;
}

static void size_bad(const char *s, const char *reason)
{
    uint64_t b = 12345;
    const char *why = NULL;
    if (config_parse_size(s, &b, &why) != -1)
        fail_msg("'%s' accepted as %llu bytes", s, (unsigned long long)b);
    assert_non_null(why);
    if (!strstr(why, reason))
        fail_msg("'%s': reason '%s' does not mention '%s'", s, why, reason);
}

static void test_duration_units(void **state)
{
    (void)state;
    assert_int_equal(dur_ok("250ms", false), 250);
    assert_int_equal(dur_ok("1ms", false), 1);
    assert_int_equal(dur_ok("5s", false), 5 * 1000);
    assert_int_equal(dur_ok("10m", false), 10 * 60 * 1000);
    assert_int_equal(dur_ok("1h", false), 3600 * 1000);
    assert_int_equal(dur_ok("90s", false), 90 * 1000);
    assert_int_equal(dur_ok("007s", false), 7 * 1000); /* leading zeros are still decimal */
}

static void test_duration_zero(void **state)
{
    (void)state;
    assert_int_equal(dur_ok("0", true), 0);
    assert_int_equal(dur_ok("0s", true), 0);
    assert_int_equal(dur_ok("0ms", true), 0);
    assert_int_equal(dur_ok("0h", true), 0);
    dur_bad("0", false, "greater than 0");
    dur_bad("0s", false, "greater than 0");
    dur_bad("0ms", false, "greater than 0");
}

static void test_duration_needs_a_unit(void **state)
{
    (void)state;
    dur_bad("5", false, "needs a unit");
    dur_bad("5", true, "needs a unit");
    dur_bad("1000", true, "needs a unit");
}

static void test_duration_rejects_malformed(void **state)
{
    (void)state;
    dur_bad("5x", false, "unknown duration unit");
    dur_bad("5sec", false, "unknown duration unit");
    dur_bad("5S", false, "unknown duration unit"); /* units are lower case */
    dur_bad("5 s", false, "unknown duration unit");
    dur_bad("5s ", false, "unknown duration unit");
    dur_bad("1.5s", false, "must be a whole number (for 1.5s write 1500ms)");
    dur_bad("2,5m", false, "must be a whole number");
    dur_bad("1d", false, "unknown duration unit");
    dur_bad("5ms5", false, "unknown duration unit");
    dur_bad("-1s", true, "expected a duration");
    dur_bad("+1s", true, "expected a duration");
    dur_bad(" 1s", true, "expected a duration");
    dur_bad("s", true, "expected a duration");
    dur_bad("", true, "expected a duration");
    dur_bad("ms", true, "expected a duration");
}

/* 100 days is the limit in every unit; values past 2^64 never wrap into something small. */
static void test_duration_limits_and_overflow(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(dur_ok("2400h", false), 100 * DAY_MS);
    dur_bad("2401h", false, "too large");
    assert_int_equal(dur_ok("144000m", false), 100 * DAY_MS);
    dur_bad("144001m", false, "too large");
    assert_int_equal(dur_ok("8640000s", false), 100 * DAY_MS);
    dur_bad("8640001s", false, "too large");
    snprintf(buf, sizeof(buf), "%llums", (unsigned long long)(100 * DAY_MS));
    assert_int_equal(dur_ok(buf, false), 100 * DAY_MS);
    snprintf(buf, sizeof(buf), "%llums", (unsigned long long)(100 * DAY_MS + 1));
    dur_bad(buf, false, "too large");

    /* 2^64 / 3600000 * 3600000 + some: a naive multiply would wrap to a small number. */
    snprintf(buf, sizeof(buf), "%lluh", (unsigned long long)(UINT64_MAX / 3600000 + 1));
    dur_bad(buf, false, "");
    dur_bad("18446744073709551616ms", false, ""); /* 2^64 */
    dur_bad("99999999999999999999999s", false, "");
}

static void test_size_units(void **state)
{
    (void)state;
    assert_int_equal(size_ok("0"), 0);
    assert_int_equal(size_ok("64"), 64);
    assert_int_equal(size_ok("4096"), 4096);
    assert_int_equal(size_ok("16KiB"), 16 * 1024);
    assert_int_equal(size_ok("1MiB"), 1024 * 1024);
    assert_int_equal(size_ok("64MiB"), 64ull << 20);
}

static void test_size_rejects_malformed(void **state)
{
    (void)state;
    size_bad("16K", "unknown size unit");
    size_bad("16KB", "unknown size unit");
    size_bad("16kib", "unknown size unit");
    size_bad("1GiB", "unknown size unit");
    size_bad("16 KiB", "unknown size unit");
    size_bad("1.5MiB", "must be a whole number (for 1.5KiB write 1536)");
    size_bad("0.5", "must be a whole number");
    size_bad("-1", "expected a size");
    size_bad("KiB", "expected a size");
    size_bad("", "expected a size");
}

static void test_size_limits_and_overflow(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(size_ok("1099511627776"), 1ull << 40);
    size_bad("1099511627777", "too large");
    assert_int_equal(size_ok("1073741824KiB"), 1ull << 40);
    size_bad("1073741825KiB", "too large");
    assert_int_equal(size_ok("1048576MiB"), 1ull << 40);
    size_bad("1048577MiB", "too large");
    /* Multiplying these by 2^20 would wrap around 2^64. */
    snprintf(buf, sizeof(buf), "%lluMiB", (unsigned long long)((UINT64_MAX >> 20) + 2));
    size_bad(buf, "");
    size_bad("18446744073709551616", ""); /* 2^64 */
}

static const char *fmt_dur(uint64_t ms, char *buf, size_t len)
{
    config_format_duration(ms, buf, len);
    return buf;
}

static const char *fmt_size(uint64_t b, char *buf, size_t len)
{
    config_format_size(b, buf, len);
    return buf;
}

static void test_format_duration_uses_the_largest_exact_unit(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(fmt_dur(0, b, sizeof(b)), "0");
    assert_string_equal(fmt_dur(1, b, sizeof(b)), "1ms");
    assert_string_equal(fmt_dur(1500, b, sizeof(b)), "1500ms");
    assert_string_equal(fmt_dur(5000, b, sizeof(b)), "5s");
    assert_string_equal(fmt_dur(90 * 1000, b, sizeof(b)), "90s");
    assert_string_equal(fmt_dur(60 * 1000, b, sizeof(b)), "1m");
    assert_string_equal(fmt_dur(90 * 60 * 1000, b, sizeof(b)), "90m");
    assert_string_equal(fmt_dur(3600 * 1000, b, sizeof(b)), "1h");
    assert_string_equal(fmt_dur(100 * DAY_MS, b, sizeof(b)), "2400h");
}

static void test_format_size_uses_the_largest_exact_unit(void **state)
{
    (void)state;
    char b[32];
    assert_string_equal(fmt_size(0, b, sizeof(b)), "0");
    assert_string_equal(fmt_size(64, b, sizeof(b)), "64");
    assert_string_equal(fmt_size(1000, b, sizeof(b)), "1000");
    assert_string_equal(fmt_size(1024, b, sizeof(b)), "1KiB");
    assert_string_equal(fmt_size(1536, b, sizeof(b)), "1536");
    assert_string_equal(fmt_size(16 * 1024, b, sizeof(b)), "16KiB");
    assert_string_equal(fmt_size(1024 * 1024, b, sizeof(b)), "1MiB");
    assert_string_equal(fmt_size(1536 * 1024, b, sizeof(b)), "1536KiB");
    assert_string_equal(fmt_size(64ull << 20, b, sizeof(b)), "64MiB");
    assert_string_equal(fmt_size(1ull << 40, b, sizeof(b)), "1048576MiB");
}

/* A short buffer gets a truncated but terminated string, never an overrun. */
static void test_format_truncates_safely(void **state)
{
    (void)state;
    char b[4];
    memset(b, 'x', sizeof(b));
    config_format_duration(1500, b, 3);
    assert_string_equal(b, "15");
    assert_int_equal(b[3], 'x');
    config_format_size(16 * 1024, b, 3);
    assert_string_equal(b, "16");
}

/* What is printed parses back to the value printed, over a spread of values. */
static void test_format_then_parse_round_trips(void **state)
{
    (void)state;
    static const uint64_t mult[] = {1, 7, 1000, 60000, 3600000, 1024, 1048576};
    char buf[32];
    for (size_t m = 0; m < sizeof(mult) / sizeof(mult[0]); m++) {
        for (uint64_t v = 1; v < 3000; v += 37) {
            uint64_t ms = v * mult[m];
            if (ms <= 100 * DAY_MS) {
                config_format_duration(ms, buf, sizeof(buf));
                assert_int_equal(dur_ok(buf, false), ms);
            }
            uint64_t bytes = v * mult[m];
            config_format_size(bytes, buf, sizeof(buf));
            assert_int_equal(size_ok(buf), bytes);
        }
    }
    config_format_duration(0, buf, sizeof(buf));
    assert_int_equal(dur_ok(buf, true), 0);
    config_format_size(0, buf, sizeof(buf));
    assert_int_equal(size_ok(buf), 0);
}

/* config.h promises FNV-1a: the published 64-bit test vectors (offset basis 14695981039346656037,
 * prime 1099511628211). */
static void test_hash_is_fnv1a_64(void **state)
{
    (void)state;
    assert_true(config_hash_bytes("", 0) == 0xcbf29ce484222325ull);
    assert_true(config_hash_bytes("a", 1) == 0xaf63dc4c8601ec8cull);
    assert_true(config_hash_bytes("foobar", 6) == 0x85944171f73967e8ull);
}

/* The hash sees every byte and its position, NULs included. */
static void test_hash_covers_every_byte(void **state)
{
    (void)state;
    assert_true(config_hash_bytes("a", 1) != config_hash_bytes("b", 1));
    assert_true(config_hash_bytes("a", 1) != config_hash_bytes("a\0", 2));
    assert_true(config_hash_bytes("a\0b", 3) != config_hash_bytes("a\0c", 3));
    assert_true(config_hash_bytes("ab", 2) != config_hash_bytes("ba", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_units),
        cmocka_unit_test(test_duration_zero),
        cmocka_unit_test(test_duration_needs_a_unit),
        cmocka_unit_test(test_duration_rejects_malformed),
        cmocka_unit_test(test_duration_limits_and_overflow),
        cmocka_unit_test(test_size_units),
        cmocka_unit_test(test_size_rejects_malformed),
        cmocka_unit_test(test_size_limits_and_overflow),
        cmocka_unit_test(test_format_duration_uses_the_largest_exact_unit),
        cmocka_unit_test(test_format_size_uses_the_largest_exact_unit),
        cmocka_unit_test(test_format_truncates_safely),
        cmocka_unit_test(test_format_then_parse_round_trips),
        cmocka_unit_test(test_hash_is_fnv1a_64),
        cmocka_unit_test(test_hash_covers_every_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
