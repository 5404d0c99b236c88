/*
 * coalesce.c - the measured decision described in coalesce.h. A test alternates periods with
 * and without the window (with first), so a load that drifts during it weighs on both sides, and
 * compares bytes per millisecond over all of them.
 */
#include "coalesce.h"

void coalesce_init(struct coalesce *c, bool enabled)
{
    *c = (struct coalesce){
        .enabled = enabled, .keep_ms = COALESCE_KEEP_MIN_MS, .backoff_ms = COALESCE_BACKOFF_MIN_MS};
}

void coalesce_enable(struct coalesce *c, bool enabled)
{
    if (c->enabled != enabled)
        coalesce_init(c, enabled);
}

static void start_test(struct coalesce *c)
{
    c->was_kept = c->phase == COALESCE_ON;
    c->phase = COALESCE_TEST;
    c->periods = 0;
    c->with_bytes = c->with_ms = c->without_bytes = c->without_ms = 0;
    c->on = true;
}

/* The test's verdict; true if it keeps the window. c->gain < 0: nothing moved without the window,
 * so there is nothing to compare with. */
static bool verdict(struct coalesce *c)
{
    if (!c->with_ms || !c->without_ms || !c->without_bytes) {
        c->gain = -1;
        return false;
    }
    c->gain = ((double)c->with_bytes / (double)c->with_ms) /
              ((double)c->without_bytes / (double)c->without_ms);
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

bool coalesce_period(struct coalesce *c, uint64_t now_ms, uint64_t ms, uint64_t bytes,
                     bool contended)
{
    if (!c->enabled) {
        c->on = false;
        return false;
    }
    switch (c->phase) {
    case COALESCE_OFF:
        if (contended && bytes > 0 && now_ms >= c->next_ms)
            start_test(c);
        return false;
    case COALESCE_ON:
        if (now_ms >= c->next_ms || fell(c, ms, bytes))
            start_test(c);
        return false;
    case COALESCE_TEST:
        break;
    }
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
    bool was_kept = c->was_kept;
    if (verdict(c)) {
        c->phase = COALESCE_ON;
        c->on = true;
        c->keep_ms = !was_kept                               ? COALESCE_KEEP_MIN_MS
                     : c->keep_ms * 2 > COALESCE_KEEP_MAX_MS ? COALESCE_KEEP_MAX_MS
                                                             : c->keep_ms * 2;
        c->next_ms = now_ms + c->keep_ms;
        c->kept_bytes = c->kept_ms = 0;
        c->kept_periods = 0;
        c->backoff_ms = COALESCE_BACKOFF_MIN_MS;
        return !was_kept;
    }
    c->phase = COALESCE_OFF;
    c->on = false;
    if (c->gain < 0) { /* no traffic to judge by: free to test again once there is */
        c->next_ms = now_ms;
        return was_kept;
    }
    c->next_ms = now_ms + c->backoff_ms;
    c->backoff_ms =
        c->backoff_ms * 2 > COALESCE_BACKOFF_MAX_MS ? COALESCE_BACKOFF_MAX_MS : c->backoff_ms * 2;
    return was_kept;
}
