/*
 * test_coalesce.c - the specification of the wait-before-blocking decision (coalesce.h).
 *
 * Driven period by period with a simulated load: bytes per millisecond with the window and
 * without it. A test starts only while the worker waits for a CPU and traffic flows; it
 * alternates periods with and without the window (with first) for COALESCE_TEST_PAIRS pairs and
 * keeps the window only if it delivers COALESCE_GAIN times the bytes or more. A lost test backs
 * off (1 s, 2 s, ... up to 60 s); COALESCE_NEW_PERIODS contended periods in a row that move more
 * than COALESCE_NEW_LOAD times the bytes per ms it lost at, or less than 1/COALESCE_NEW_LOAD of
 * them, are a new load, tested at once, but once per back-off; a kept window is tested again after
 * 2 s, 4 s, ... up to 30 s, at once when a period falls below COALESCE_DROP of the kept average
 * (after 3 kept periods), and dropped after COALESCE_CALM_PERIODS periods in a row without CPU
 * contention. Contention again within COALESCE_RESUME_MS of such a drop, at a rate within
 * COALESCE_NEW_LOAD of the kept average, resumes the window without a test (its next test as
 * scheduled) and doubles the calm the next drop needs (up to COALESCE_CALM_MAX_PERIODS; a window
 * kept afresh starts again at COALESCE_CALM_PERIODS). A test that traffic stopped during (a
 * period stretched by an idle gap, or nothing moved without the window) has no verdict. Only
 * keeping, dropping and resuming are reported (the log lines), not every test. Switched off, it
 * is off at once; switched on again with the same setting, nothing changes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>

#include "coalesce.h"

/* A load: bytes per ms delivered in a period with the window and without it. */
struct load {
    uint64_t with, without;
    bool contended;
};

struct sim {
    struct coalesce c;
    uint64_t now;
    unsigned reports; /* coalesce_period returned true */
};

static void sim_init(struct sim *s, bool enabled)
{
    coalesce_init(&s->c, enabled);
    s->now = 1000000; /* any clock: the decision only compares times */
    s->reports = 0;
}

/* One period under load; returns whether the window was on during it. */
static bool step(struct sim *s, const struct load *ld)
{
    bool on = s->c.on;
    s->now += COALESCE_PERIOD_MS;
    uint64_t bytes = (on ? ld->with : ld->without) * COALESCE_PERIOD_MS;
    if (coalesce_period(&s->c, s->now, COALESCE_PERIOD_MS, bytes, ld->contended))
        s->reports++;
    return on;
}

/* Runs for ms of periods; returns how many of them had the window on. */
static unsigned run(struct sim *s, const struct load *ld, uint64_t ms)
{
    unsigned on = 0;
    for (uint64_t t = 0; t < ms; t += COALESCE_PERIOD_MS)
        on += step(s, ld);
    return on;
}

static const struct load gaining = {.with = 120, .without = 100, .contended = true};
static const struct load losing = {.with = 60, .without = 100, .contended = true};

/* Steps until a test starts (the window comes on), within the longest back-off; returns the ms
 * that took. */
static uint64_t until_test(struct sim *s, const struct load *ld)
{
    uint64_t from = s->now;
    for (uint64_t t = 0; !s->c.on && t <= COALESCE_BACKOFF_MAX_MS; t += COALESCE_PERIOD_MS)
        step(s, ld);
    assert_true(s->c.on);
    return s->now - from;
}

/* Runs the periods of a test that has just started; the window's state after it is returned. */
static bool finish_test(struct sim *s, const struct load *ld)
{
    assert_true(s->c.on);
    assert_int_equal(s->c.phase, COALESCE_TEST);
    for (unsigned i = 0; i < 2 * COALESCE_TEST_PAIRS; i++)
        assert_int_equal(step(s, ld), i % 2 == 0); /* with, without, with, ... */
    return s->c.on;
}

/* From OFF, one period that starts a test, then the test. */
static bool one_test(struct sim *s, const struct load *ld)
{
    assert_false(s->c.on);
    step(s, ld);
    return finish_test(s, ld);
}

static void test_contention_is_run_delay_per_scheduling(void **state)
{
    (void)state;
    assert_false(coalesce_contended(0, 0));
    assert_false(coalesce_contended(1000000, 0)); /* never scheduled: no evidence */
    assert_true(coalesce_contended(COALESCE_CONTENDED_NS * 10, 10));
    assert_false(coalesce_contended(COALESCE_CONTENDED_NS * 10 - 1, 10));
    assert_false(coalesce_contended(2000 * 1000, 1000)); /* 2 us each: a calm machine */
}

static void test_off_in_config_never_waits(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, false);
    assert_int_equal(run(&s, &gaining, 60000), 0);
    assert_int_equal(s.reports, 0);
}

static void test_no_test_without_cpu_contention_or_traffic(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    struct load calm = gaining;
    calm.contended = false;
    assert_int_equal(run(&s, &calm, 60000), 0);
    struct load idle = {.with = 0, .without = 0, .contended = true};
    assert_int_equal(run(&s, &idle, 60000), 0);
    assert_int_equal(s.reports, 0);
    assert_int_equal(s.c.phase, COALESCE_OFF);
}

static void test_a_window_that_pays_is_kept_and_reported_once(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    assert_true(one_test(&s, &gaining));
    assert_int_equal(s.c.phase, COALESCE_ON);
    assert_int_equal(s.reports, 1);
    assert_true(s.c.gain > 1.19 && s.c.gain < 1.21);
    /* Kept for COALESCE_KEEP_MIN_MS without a period off. */
    assert_int_equal(run(&s, &gaining, COALESCE_KEEP_MIN_MS),
                     COALESCE_KEEP_MIN_MS / COALESCE_PERIOD_MS);
    /* Then tested again (half the periods off), confirmed: no new report. */
    assert_int_equal(
        run(&s, &gaining, 2 * COALESCE_TEST_PAIRS * COALESCE_PERIOD_MS + COALESCE_PERIOD_MS),
        COALESCE_TEST_PAIRS + 1);
    assert_int_equal(s.c.phase, COALESCE_ON);
    assert_int_equal(s.reports, 1);
}

static void test_a_gain_below_the_bar_is_not_kept(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    struct load marginal = {.with = 102, .without = 100, .contended = true};
    assert_false(one_test(&s, &marginal));
    assert_int_equal(s.c.phase, COALESCE_OFF);
    assert_int_equal(s.reports, 0); /* a test that never kept the window is not worth a line */
}

static void test_lost_tests_back_off_exponentially_up_to_a_cap(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    uint64_t want = COALESCE_BACKOFF_MIN_MS;
    assert_false(one_test(&s, &losing));
    for (int i = 0; i < 10; i++) {
        /* No window until the back-off has passed, however contended. */
        uint64_t waited = until_test(&s, &losing);
        assert_true(waited >= want);
        assert_true(waited <= want + COALESCE_PERIOD_MS);
        assert_false(finish_test(&s, &losing));
        want = want * 2 > COALESCE_BACKOFF_MAX_MS ? COALESCE_BACKOFF_MAX_MS : want * 2;
    }
    assert_int_equal(want, COALESCE_BACKOFF_MAX_MS);
    assert_int_equal(s.reports, 0);
}

/* Loses tests until the one after next would be COALESCE_BACKOFF_MAX_MS away. */
static void lose_until_backoff_is_long(struct sim *s)
{
    assert_false(one_test(s, &losing));
    while (s->c.backoff_ms < COALESCE_BACKOFF_MAX_MS) {
        until_test(s, &losing);
        assert_false(finish_test(s, &losing));
    }
}

static const struct load busier = {.with = 360, .without = 300, .contended = true};

static void test_a_new_load_is_tested_before_the_back_off_ends(void **state)
{
    (void)state;
    struct sim s;
    /* Three times the traffic (another workload): tested after COALESCE_NEW_PERIODS periods,
     * not after the back-off of the load that lost, and kept, as it pays. */
    sim_init(&s, true);
    lose_until_backoff_is_long(&s);
    assert_int_equal(until_test(&s, &busier), COALESCE_NEW_PERIODS * COALESCE_PERIOD_MS);
    assert_true(finish_test(&s, &busier));
    assert_int_equal(s.c.phase, COALESCE_ON);
}

static void test_a_new_load_is_retried_once_per_back_off(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    lose_until_backoff_is_long(&s);
    /* A pause (no contention, no bytes) says nothing of the load: it does not count. */
    s.now += 5000;
    assert_false(coalesce_period(&s.c, s.now, 5000, 0, false));
    assert_false(s.c.on);
    struct load lighter = {.with = 20, .without = 30, .contended = true};
    assert_int_equal(until_test(&s, &lighter), COALESCE_NEW_PERIODS * COALESCE_PERIOD_MS);
    assert_false(finish_test(&s, &lighter));
    /* That retry lost too: now the back-off is waited out, whatever the load does meanwhile. */
    uint64_t due = s.c.next_ms;
    assert_true(due - s.now >= COALESCE_BACKOFF_MAX_MS / 2);
    until_test(&s, &busier);
    assert_true(s.now >= due);
    assert_true(s.now <= due + COALESCE_PERIOD_MS);
    /* That test began when its back-off ended; it loses at 100 bytes per ms, and a new load may
     * cut the next back-off short again. */
    assert_false(finish_test(&s, &losing));
    assert_int_equal(until_test(&s, &busier), COALESCE_NEW_PERIODS * COALESCE_PERIOD_MS);
}

static void test_the_same_load_keeps_its_back_off(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    lose_until_backoff_is_long(&s);
    /* The lost test moved 100 bytes per ms without the window. Swings within the factor, dips
     * without CPU contention, and far periods never COALESCE_NEW_PERIODS in a row are the same
     * load: no test before the back-off (over half a minute now) has passed. */
    uint64_t due = s.c.next_ms;
    assert_true(due - s.now >= COALESCE_BACKOFF_MAX_MS / 2);
    struct load swings[] = {
        {.with = 400, .without = 400, .contended = true}, /* far */
        {.with = 30, .without = 30, .contended = false},  /* uncontended: not counted */
        {.with = 10, .without = 10, .contended = true},   /* far */
        {.with = 50, .without = 50, .contended = true},   /* just not */
        {.with = 100, .without = 100, .contended = true},
        {.with = 200, .without = 200, .contended = true}, /* just not */
    };
    unsigned n = sizeof(swings) / sizeof(swings[0]);
    for (unsigned i = 0; !s.c.on && i < 2 * COALESCE_BACKOFF_MAX_MS / COALESCE_PERIOD_MS; i++)
        step(&s, &swings[i % n]);
    assert_true(s.c.on);
    assert_true(s.now >= due);
    assert_true(s.now <= due + COALESCE_PERIOD_MS);
}

static void test_a_kept_window_is_dropped_when_it_stops_paying(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    /* Two lost tests first: the back-off has grown to 4 s. */
    assert_false(one_test(&s, &losing));
    until_test(&s, &losing);
    assert_false(finish_test(&s, &losing));
    assert_int_equal(s.c.backoff_ms, 4 * COALESCE_BACKOFF_MIN_MS);
    until_test(&s, &gaining);
    assert_true(finish_test(&s, &gaining));
    /* The load changes into one the window slows down, at the same rate for now. */
    struct load turned = {.with = 120, .without = 200, .contended = true};
    run(&s, &turned, COALESCE_KEEP_MIN_MS + (2 * COALESCE_TEST_PAIRS + 1) * COALESCE_PERIOD_MS);
    assert_false(s.c.on);
    assert_int_equal(s.c.phase, COALESCE_OFF);
    assert_int_equal(s.reports, 2); /* kept, then dropped */
    assert_int_equal(s.c.reason, COALESCE_MEASURED);
    assert_true(s.c.gain < 0.61 && s.c.gain > 0.59);
    /* The back-off starts over after a kept window: the next test comes after the minimum. */
    assert_true(until_test(&s, &turned) <= COALESCE_BACKOFF_MIN_MS + COALESCE_PERIOD_MS);
}

static void test_a_falling_rate_tests_a_kept_window_at_once(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    assert_true(one_test(&s, &gaining));
    run(&s, &gaining, 5 * COALESCE_PERIOD_MS);
    /* A few sequential clients replace the crowd: the window now costs most of the rate. */
    struct load few = {.with = 20, .without = 60, .contended = true};
    step(&s, &few); /* the fall, well before COALESCE_KEEP_MIN_MS has passed */
    assert_int_equal(s.c.phase, COALESCE_TEST);
    run(&s, &few, 2 * COALESCE_TEST_PAIRS * COALESCE_PERIOD_MS);
    assert_false(s.c.on);
    assert_int_equal(s.reports, 2);
}

static void test_confirmed_windows_are_tested_less_often(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    assert_true(one_test(&s, &gaining));
    uint64_t keep = COALESCE_KEEP_MIN_MS;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(s.c.keep_ms, keep);
        /* The whole interval with the window, then a test starts. */
        assert_int_equal(run(&s, &gaining, keep), keep / COALESCE_PERIOD_MS);
        assert_int_equal(s.c.phase, COALESCE_TEST);
        run(&s, &gaining, 2 * COALESCE_TEST_PAIRS * COALESCE_PERIOD_MS);
        assert_int_equal(s.c.phase, COALESCE_ON);
        keep = keep * 2 > COALESCE_KEEP_MAX_MS ? COALESCE_KEEP_MAX_MS : keep * 2;
    }
    assert_int_equal(keep, COALESCE_KEEP_MAX_MS);
    assert_int_equal(s.reports, 1);
}

static void test_an_idle_gap_during_a_test_is_no_verdict(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    /* A load the window slows down; the test's one period without the window swallows a
     * minute the worker spent blocked, with a few bytes: its rate would look tiny. */
    step(&s, &losing); /* starts the test */
    step(&s, &losing); /* with */
    s.now += 60000;
    assert_false(coalesce_period(&s.c, s.now, 60000, 10000, true));
    assert_false(s.c.on);
    assert_int_equal(s.c.phase, COALESCE_OFF);
    assert_int_equal(s.c.reason, COALESCE_IDLE);
    /* No back-off for having nothing to measure: the next busy period tests again, and the
     * window is judged on what it really does. */
    assert_false(one_test(&s, &losing));
    assert_int_equal(s.c.reason, COALESCE_MEASURED);
    assert_int_equal(s.reports, 0);
}

static void test_traffic_stopping_mid_test_drops_a_kept_window(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    assert_true(one_test(&s, &gaining));
    run(&s, &gaining, COALESCE_KEEP_MIN_MS); /* up to the re-test */
    assert_int_equal(s.c.phase, COALESCE_TEST);
    /* The loop still wakes (timers) but nothing moves. */
    struct load idle = {.with = 0, .without = 0, .contended = true};
    run(&s, &idle, 2 * COALESCE_TEST_PAIRS * COALESCE_PERIOD_MS);
    assert_false(s.c.on);
    assert_int_equal(s.c.reason, COALESCE_IDLE);
    assert_int_equal(s.reports, 2);
    /* Traffic back: tested at once. */
    assert_true(one_test(&s, &gaining));
    assert_int_equal(s.reports, 3);
}

static void test_a_kept_window_is_dropped_once_the_cpu_is_free(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    assert_true(one_test(&s, &gaining));
    struct load calm = gaining;
    calm.contended = false;
    /* Uncontended periods count only in a row. */
    run(&s, &calm, (COALESCE_CALM_PERIODS - 1) * COALESCE_PERIOD_MS);
    run(&s, &gaining, COALESCE_PERIOD_MS);
    run(&s, &calm, (COALESCE_CALM_PERIODS - 1) * COALESCE_PERIOD_MS);
    assert_true(s.c.on);
    assert_int_equal(s.reports, 1);
    run(&s, &calm, COALESCE_PERIOD_MS);
    assert_false(s.c.on);
    assert_int_equal(s.c.phase, COALESCE_OFF);
    assert_int_equal(s.c.reason, COALESCE_CALM);
    assert_int_equal(s.reports, 2);
    /* Still calm after COALESCE_RESUME_MS: contended again later is tested at once, no
     * back-off. */
    run(&s, &calm, COALESCE_RESUME_MS);
    assert_false(s.c.on);
    assert_true(one_test(&s, &gaining));
}

/* Keeps the window with a test, then drops it for calm; returns the time it was kept at. */
static uint64_t keep_then_calm(struct sim *s, unsigned calm_periods)
{
    assert_true(one_test(s, &gaining));
    uint64_t kept_at = s->now;
    struct load calm = gaining;
    calm.contended = false;
    run(s, &calm, calm_periods * COALESCE_PERIOD_MS);
    assert_false(s->c.on);
    assert_int_equal(s->c.reason, COALESCE_CALM);
    return kept_at;
}

static void test_contention_soon_after_a_drop_for_calm_resumes_without_a_test(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    uint64_t kept_at = keep_then_calm(&s, COALESCE_CALM_PERIODS);
    assert_int_equal(s.reports, 2);
    /* The window had kept the worker off the CPU queue: contended again within
     * COALESCE_RESUME_MS, it comes back at once, reported, and stays on with no test (a test
     * would have periods without it) until its own next test, as scheduled when it was kept. */
    struct load calm = gaining;
    calm.contended = false;
    run(&s, &calm, 2 * COALESCE_PERIOD_MS);
    step(&s, &gaining);
    assert_true(s.c.on);
    assert_int_equal(s.c.phase, COALESCE_ON);
    assert_int_equal(s.c.reason, COALESCE_RESUMED);
    assert_int_equal(s.reports, 3);
    uint64_t left = kept_at + COALESCE_KEEP_MIN_MS - s.now;
    assert_int_equal(run(&s, &gaining, left), left / COALESCE_PERIOD_MS);
    assert_int_equal(s.c.phase, COALESCE_TEST);
    /* Confirmed by that test: as for any kept window, the next interval doubles. */
    run(&s, &gaining, 2 * COALESCE_TEST_PAIRS * COALESCE_PERIOD_MS);
    assert_int_equal(s.c.phase, COALESCE_ON);
    assert_int_equal(s.c.keep_ms, 2 * COALESCE_KEEP_MIN_MS);
    assert_int_equal(s.reports, 3);
}

static void test_a_new_load_after_a_drop_for_calm_is_tested(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    keep_then_calm(&s, COALESCE_CALM_PERIODS);
    /* Contended again at once, but at more than COALESCE_NEW_LOAD times the kept rate, or less
     * than 1/COALESCE_NEW_LOAD of it: not the load the window was kept for. */
    struct load faster = {.with = 300, .without = 250, .contended = true};
    assert_true(one_test(&s, &faster));
    assert_int_equal(s.c.reason, COALESCE_MEASURED);
    struct load calm = faster;
    calm.contended = false;
    run(&s, &calm, COALESCE_CALM_PERIODS * COALESCE_PERIOD_MS);
    assert_false(s.c.on);
    struct load slower = {.with = 60, .without = 100, .contended = true};
    assert_false(one_test(&s, &slower));
}

static void test_a_resume_past_the_kept_windows_test_time_tests_it(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    assert_true(one_test(&s, &gaining));
    uint64_t kept_at = s.now;
    /* Contended until the calm periods end just before the window's test time... */
    run(&s, &gaining, COALESCE_KEEP_MIN_MS - (COALESCE_CALM_PERIODS + 1) * COALESCE_PERIOD_MS);
    struct load calm = gaining;
    calm.contended = false;
    run(&s, &calm, COALESCE_CALM_PERIODS * COALESCE_PERIOD_MS);
    assert_false(s.c.on);
    assert_true(s.now < kept_at + COALESCE_KEEP_MIN_MS);
    /* ... and contended again after it: the resumed window is tested at once, as a kept one. */
    run(&s, &calm, 2 * COALESCE_PERIOD_MS);
    assert_true(s.now >= kept_at + COALESCE_KEEP_MIN_MS);
    step(&s, &gaining);
    assert_int_equal(s.c.reason, COALESCE_RESUMED);
    assert_int_equal(s.reports, 3);
    assert_true(finish_test(&s, &gaining));
    assert_int_equal(s.c.keep_ms, 2 * COALESCE_KEEP_MIN_MS);
    assert_int_equal(s.reports, 3); /* a confirmation is not reported */
}

/* Runs calm periods until the kept window is dropped; returns how many ran in a row as kept
 * before the drop (a test of the kept window, which the growing intervals bring at any time,
 * starts the count again: its verdict resets the calm). */
static unsigned calm_until_drop(struct sim *s, const struct load *calm)
{
    unsigned in_row = 0;
    for (int i = 0; i < 1000 && s->c.phase != COALESCE_OFF; i++) {
        bool kept = s->c.phase == COALESCE_ON;
        step(s, calm);
        in_row = kept ? in_row + 1 : 0;
    }
    assert_int_equal(s->c.phase, COALESCE_OFF);
    assert_int_equal(s->c.reason, COALESCE_CALM);
    return in_row;
}

static void test_each_resume_needs_a_longer_calm_for_the_next_drop(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    keep_then_calm(&s, COALESCE_CALM_PERIODS);
    struct load calm = gaining;
    calm.contended = false;
    unsigned needed = COALESCE_CALM_PERIODS;
    for (int i = 0; i < 6; i++) {
        step(&s, &gaining); /* resumes */
        assert_true(s.c.on);
        assert_int_equal(s.c.reason, COALESCE_RESUMED);
        needed = needed * 2 > COALESCE_CALM_MAX_PERIODS ? COALESCE_CALM_MAX_PERIODS : needed * 2;
        assert_int_equal(calm_until_drop(&s, &calm), needed);
    }
    assert_int_equal(needed, COALESCE_CALM_MAX_PERIODS);
    /* A window kept afresh (by a test that began without it) needs the shortest calm again. */
    run(&s, &calm, COALESCE_RESUME_MS);
    keep_then_calm(&s, COALESCE_CALM_PERIODS);
}

static void test_a_kept_window_starts_with_fresh_figures(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    /* Kept, confirmed twice (the interval grows), then dropped by a changed load. */
    assert_true(one_test(&s, &gaining));
    run(&s, &gaining, COALESCE_KEEP_MIN_MS);
    run(&s, &gaining, 2 * COALESCE_TEST_PAIRS * COALESCE_PERIOD_MS);
    run(&s, &gaining, 2 * COALESCE_KEEP_MIN_MS);
    run(&s, &gaining, 2 * COALESCE_TEST_PAIRS * COALESCE_PERIOD_MS);
    assert_int_equal(s.c.keep_ms, 4 * COALESCE_KEEP_MIN_MS);
    struct load turned = {.with = 120, .without = 200, .contended = true};
    run(&s, &turned, 4 * COALESCE_KEEP_MIN_MS + (2 * COALESCE_TEST_PAIRS + 1) * COALESCE_PERIOD_MS);
    assert_false(s.c.on);
    /* A slower load the window helps: kept again, with the shortest interval, and its own
     * average (at the old one, 120 bytes per ms, every period of this one would be a fall). */
    struct load slow = {.with = 60, .without = 50, .contended = true};
    until_test(&s, &slow);
    assert_true(finish_test(&s, &slow));
    assert_int_equal(s.c.keep_ms, COALESCE_KEEP_MIN_MS);
    /* Its second period dips: too early to call that a fall, as for any new window. */
    step(&s, &slow);
    struct load dip = {.with = 10, .without = 50, .contended = true};
    step(&s, &dip);
    assert_int_equal(s.c.phase, COALESCE_ON);
    assert_int_equal(run(&s, &slow, COALESCE_KEEP_MIN_MS - 2 * COALESCE_PERIOD_MS),
                     COALESCE_KEEP_MIN_MS / COALESCE_PERIOD_MS - 2);
}

static void test_the_bars(void **state)
{
    (void)state;
    struct sim s;
    /* Exactly COALESCE_GAIN keeps the window; just under does not. */
    sim_init(&s, true);
    struct load at_bar = {.with = 104, .without = 100, .contended = true};
    assert_true(one_test(&s, &at_bar));
    sim_init(&s, true);
    struct load under = {.with = 103, .without = 100, .contended = true};
    assert_false(one_test(&s, &under));

    /* A kept average of 100: a period at 65 is no fall; after it (average 91.25), one at 50 is. */
    struct load hundred = {.with = 100, .without = 80, .contended = true};
    sim_init(&s, true);
    assert_true(one_test(&s, &hundred));
    run(&s, &hundred, 3 * COALESCE_PERIOD_MS);
    struct load dip = {.with = 65, .without = 80, .contended = true};
    step(&s, &dip);
    assert_int_equal(s.c.phase, COALESCE_ON);
    dip.with = 50;
    step(&s, &dip);
    assert_int_equal(s.c.phase, COALESCE_TEST);

    /* Before three kept periods, a dip is not taken for a fall. */
    sim_init(&s, true);
    assert_true(one_test(&s, &hundred));
    run(&s, &hundred, COALESCE_PERIOD_MS);
    dip.with = 10;
    step(&s, &dip);
    assert_int_equal(s.c.phase, COALESCE_ON);
}

static void test_switching_off_takes_effect_at_once(void **state)
{
    (void)state;
    struct sim s;
    sim_init(&s, true);
    assert_true(one_test(&s, &gaining));
    coalesce_enable(&s.c, true); /* a reload with the same setting */
    assert_true(s.c.on);
    assert_int_equal(s.c.phase, COALESCE_ON);
    coalesce_enable(&s.c, false);
    assert_false(s.c.on);
    assert_int_equal(run(&s, &gaining, 10000), 0);
    coalesce_enable(&s.c, true); /* back on: starts from scratch */
    assert_int_equal(s.c.phase, COALESCE_OFF);
    assert_true(one_test(&s, &gaining));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contention_is_run_delay_per_scheduling),
        cmocka_unit_test(test_off_in_config_never_waits),
        cmocka_unit_test(test_no_test_without_cpu_contention_or_traffic),
        cmocka_unit_test(test_a_window_that_pays_is_kept_and_reported_once),
        cmocka_unit_test(test_a_gain_below_the_bar_is_not_kept),
        cmocka_unit_test(test_lost_tests_back_off_exponentially_up_to_a_cap),
        cmocka_unit_test(test_a_new_load_is_tested_before_the_back_off_ends),
        cmocka_unit_test(test_a_new_load_is_retried_once_per_back_off),
        cmocka_unit_test(test_the_same_load_keeps_its_back_off),
        cmocka_unit_test(test_a_kept_window_is_dropped_when_it_stops_paying),
        cmocka_unit_test(test_a_falling_rate_tests_a_kept_window_at_once),
        cmocka_unit_test(test_confirmed_windows_are_tested_less_often),
        cmocka_unit_test(test_an_idle_gap_during_a_test_is_no_verdict),
        cmocka_unit_test(test_traffic_stopping_mid_test_drops_a_kept_window),
        cmocka_unit_test(test_a_kept_window_is_dropped_once_the_cpu_is_free),
        cmocka_unit_test(test_contention_soon_after_a_drop_for_calm_resumes_without_a_test),
        cmocka_unit_test(test_a_new_load_after_a_drop_for_calm_is_tested),
        cmocka_unit_test(test_a_resume_past_the_kept_windows_test_time_tests_it),
        cmocka_unit_test(test_each_resume_needs_a_longer_calm_for_the_next_drop),
        cmocka_unit_test(test_a_kept_window_starts_with_fresh_figures),
        cmocka_unit_test(test_the_bars),
        cmocka_unit_test(test_switching_off_takes_effect_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
