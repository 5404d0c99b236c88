/*
 * coalesce.c - the measured decision described in coalesce.h. A test alternates periods with
 * and without the window (with first), so a load that drifts during it weighs on both sides, and
 * compares bytes per millisecond over all of them.
 */
#include "coalesce.h"

void coalesce_init(struct coalesce *c, bool enabled)
{
    *c = (struct coalesce){.enabled = enabled,
                           .keep_ms = COALESCE_KEEP_MIN_MS,
                           .backoff_ms = COALESCE_BACKOFF_MIN_MS,
                           .calm_needed = COALESCE_CALM_PERIODS};
}

void coalesce_enable(struct coalesce *c, bool enabled)
{
    if (c->enabled != enabled)
        coalesce_init(c, enabled);
}

bool coalesce_contended(uint64_t delay_ns, uint64_t slices)
{
    return slices > 0 && delay_ns / slices >= COALESCE_CONTENDED_NS;
}

static void start_test(struct coalesce *c)
{
    c->was_kept = c->phase == COALESCE_ON;
    c->phase = COALESCE_TEST;
    c->periods = 0;
    c->with_bytes = c->with_ms = c->without_bytes = c->without_ms = 0;
    c->on = true;
}

/* The window goes (or stays) off with no test before now + wait_ms. Returns whether that drops
 * a kept window. */
static bool stop(struct coalesce *c, bool was_kept, uint64_t now_ms, uint64_t wait_ms,
                 enum coalesce_reason why)
{
    c->phase = COALESCE_OFF;
    c->on = false;
    c->next_ms = now_ms + wait_ms;
    c->reason = why;
    c->resume_until = 0;
    return was_kept;
}

/* The test's verdict; true if it keeps the window. */
static bool verdict(struct coalesce *c)
{
    c->gain = ((double)c->with_bytes / (double)c->with_ms) /
              ((double)c->without_bytes / (double)c->without_ms);
    c->reason = COALESCE_MEASURED;
    return c->gain >= COALESCE_GAIN;
}

/* Adds a kept period; true if it delivered far less than the kept ones before it. */
static bool fell(struct coalesce *c, uint64_t ms, uint64_t bytes)
{
    bool low =
        c->kept_periods >= 3 && c->kept_bytes && ms &&
        (double)bytes / (double)ms < COALESCE_DROP * (double)c->kept_bytes / (double)c->kept_ms;
    c->kept_bytes += bytes;
    c->kept_ms += ms;
    c->kept_periods++;
    return low;
}

static bool kept_period(struct coalesce *c, uint64_t now_ms, uint64_t ms, uint64_t bytes,
                        bool contended)
{
    c->calm_periods = contended ? 0 : c->calm_periods + 1;
    if (c->calm_periods >= c->calm_needed) {
        uint64_t next = c->next_ms;
        stop(c, true, now_ms, 0, COALESCE_CALM);
        c->resume_until = now_ms + COALESCE_RESUME_MS;
        c->resume_next = next;
        return true;
    }
    if (fell(c, ms, bytes) || now_ms >= c->next_ms)
        start_test(c);
    return false;
}

static bool test_period(struct coalesce *c, uint64_t now_ms, uint64_t ms, uint64_t bytes)
{
    bool was_kept = c->was_kept;
    /* A period stretched by an idle gap would weigh on one side only: no verdict. */
    if (ms > COALESCE_LONG_PERIOD_MS)
        return stop(c, was_kept, now_ms, 0, COALESCE_IDLE);
    if (c->on) {
        c->with_bytes += bytes;
        c->with_ms += ms;
    } else {
        c->without_bytes += bytes;
        c->without_ms += ms;
    }
    if (++c->periods < 2 * COALESCE_TEST_PAIRS) {
        c->on = !c->on;
        return false;
    }
    /* Nothing moved without the window (or no time passed): nothing to compare with. */
    if (!c->with_ms || !c->without_ms || !c->without_bytes)
        return stop(c, was_kept, now_ms, 0, COALESCE_IDLE);
    if (!verdict(c)) {
        uint64_t wait = c->backoff_ms;
        c->backoff_ms = wait * 2 > COALESCE_BACKOFF_MAX_MS ? COALESCE_BACKOFF_MAX_MS : wait * 2;
        c->lost_rate = (double)c->without_bytes / (double)c->without_ms;
        c->new_load_periods = 0;
        return stop(c, was_kept, now_ms, wait, COALESCE_MEASURED);
    }
    c->phase = COALESCE_ON;
    c->on = true;
    c->keep_ms = !was_kept                               ? COALESCE_KEEP_MIN_MS
                 : c->keep_ms * 2 > COALESCE_KEEP_MAX_MS ? COALESCE_KEEP_MAX_MS
                                                         : c->keep_ms * 2;
    c->next_ms = now_ms + c->keep_ms;
    c->kept_bytes = c->kept_ms = 0;
    c->kept_periods = c->calm_periods = 0;
    if (!was_kept)
        c->calm_needed = COALESCE_CALM_PERIODS;
    c->backoff_ms = COALESCE_BACKOFF_MIN_MS;
    return !was_kept;
}

/* Whether rate is within COALESCE_NEW_LOAD of ref, either way: the same load as far as the
 * decision goes. */
static bool near_rate(double rate, double ref)
{
    return rate * COALESCE_NEW_LOAD >= ref && rate <= ref * COALESCE_NEW_LOAD;
}

/* While a lost test backs off, for a period that was contended and moved bytes (the others say
 * nothing about the load a test would measure, and leave the count as it is): whether such
 * periods have shown a load unlike the one the test lost under, COALESCE_NEW_PERIODS in a row far
 * from its rate either way. */
static bool new_load(struct coalesce *c, uint64_t ms, uint64_t bytes)
{
    if (c->lost_rate <= 0 || ms == 0)
        return false;
    bool far = !near_rate((double)bytes / (double)ms, c->lost_rate);
    c->new_load_periods = far ? c->new_load_periods + 1 : 0;
    return c->new_load_periods >= COALESCE_NEW_PERIODS;
}

/* Whether a period moved bytes at a rate near the kept window's average (within
 * COALESCE_NEW_LOAD either way): the load it was kept for, not a new one. */
static bool like_kept(const struct coalesce *c, uint64_t ms, uint64_t bytes)
{
    if (!c->kept_ms || !c->kept_bytes || !ms)
        return false;
    return near_rate((double)bytes / (double)ms, (double)c->kept_bytes / (double)c->kept_ms);
}

/* Contention soon after a drop for calm, under the load the window was kept for: the window was
 * what kept the worker off the queue for a CPU. It comes back as it was (verdict, kept average,
 * time of its next test), and the next drop for calm needs twice the calm. Returns true (a change
 * worth a log line). */
static bool resume(struct coalesce *c, uint64_t now_ms)
{
    c->phase = COALESCE_ON;
    c->resume_until = 0;
    c->calm_periods = 0;
    c->calm_needed = c->calm_needed * 2 > COALESCE_CALM_MAX_PERIODS ? COALESCE_CALM_MAX_PERIODS
                                                                    : c->calm_needed * 2;
    c->next_ms = c->resume_next;
    c->reason = COALESCE_RESUMED;
    if (now_ms >= c->next_ms)
        start_test(c); /* its test was due: run it now, as from a kept window */
    else
        c->on = true;
    return true;
}

bool coalesce_period(struct coalesce *c, uint64_t now_ms, uint64_t ms, uint64_t bytes,
                     bool contended)
{
    if (!c->enabled) {
        c->on = false;
        return false;
    }
    switch (c->phase) {
    case COALESCE_OFF: {
        if (!contended || bytes == 0)
            return false;
        if (now_ms < c->resume_until && like_kept(c, ms, bytes))
            return resume(c, now_ms);
        /* A new load is tested before the back-off ends, once: if that test loses too, the
         * back-off (doubled) is waited out, so loads that alternate cannot test all the time. */
        bool early = now_ms < c->next_ms && !c->retried && new_load(c, ms, bytes);
        if (early || now_ms >= c->next_ms) {
            c->retried = early;
            start_test(c);
        }
        return false;
    }
    case COALESCE_ON:
        return kept_period(c, now_ms, ms, bytes, contended);
    case COALESCE_TEST:
        break;
    }
    return test_period(c, now_ms, ms, bytes);
}
