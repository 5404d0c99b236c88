/*
 * coalesce.h - whether a busy worker waits a moment before it blocks, decided by measurement.
 *
 * When every CPU is busy, each wake-up of a worker costs context switches and pushes the client
 * or the backend off a CPU, and a worker that blocks as soon as it runs out of events wakes up
 * for nearly every event. Waiting COALESCE_WINDOW_US before blocking (only after a wake-up that
 * had events, and only when nothing is ready) lets readiness pile up and be handled in one pass.
 * That adds up to the window to a hop's latency, which a closed loop with few connections pays in
 * throughput, and gains nothing on an idle machine. So, like a NIC's adaptive interrupt
 * moderation, it is tried and kept only while it measurably pays: a trial starts only while the
 * worker waits for a CPU (its run delay per scheduling), and the window stays only while periods
 * with it deliver more bytes per ms than periods without it. A lost test backs off exponentially
 * (a very different rate meanwhile is a new load, tested at once, but once per back-off);
 * a kept window is tested again at growing intervals, at once when its rate falls (the load
 * changed), and dropped when the worker no longer waits for a CPU. The window itself lowers that
 * wait (the worker asks for a CPU less often), and under a steady load it dips below the bar
 * for a second or two at a time: contention that returns that soon, at the rate the window was
 * kept at, brings it back with its verdict and schedule, without a test (whose periods without the
 * window would cost what it gains), and makes the next drop need a longer calm.
 *
 * This is the decision alone, with no clock or I/O of its own, so tests can drive it.
 */
#ifndef FERRY_COALESCE_H
#define FERRY_COALESCE_H

#include <stdbool.h>
#include <stdint.h>

/* clang-format off */
#define COALESCE_WINDOW_US      100   /* how long a busy worker waits before blocking (plus the
                                         kernel's timer slack, 50 us by default) */
#define COALESCE_PERIOD_MS      100   /* one measurement: the window is on or off for all of it */
#define COALESCE_LONG_PERIOD_MS 200   /* a test period longer than this held an idle gap */
#define COALESCE_TEST_PAIRS     4     /* a test alternates this many periods with and without */
#define COALESCE_CONTENDED_NS   8000  /* run delay per scheduling that means "waits for a CPU" */
#define COALESCE_GAIN           1.04  /* bytes per ms a test must gain with the window */
#define COALESCE_KEEP_MIN_MS    2000  /* a kept window is tested again after this, */
#define COALESCE_KEEP_MAX_MS    30000 /* doubling up to this while tests confirm it */
#define COALESCE_DROP           0.6   /* a kept period below this part of the kept average
                                         (after 3 kept periods): test at once */
#define COALESCE_CALM_PERIODS   5     /* kept periods in a row without contention: drop, */
#define COALESCE_CALM_MAX_PERIODS 40  /* twice as many after each resume, up to this */
#define COALESCE_RESUME_MS      3000  /* contention this soon after a drop for calm, at a rate
                                         within COALESCE_NEW_LOAD of the kept one, resumes */
#define COALESCE_BACKOFF_MIN_MS 1000  /* after a lost test, no test for this long, */
#define COALESCE_BACKOFF_MAX_MS 60000 /* doubling up to this while tests keep losing, */
#define COALESCE_NEW_LOAD       2.0   /* unless contended periods move this many times more (or
                                         less) bytes per ms than the lost test did without it: */
#define COALESCE_NEW_PERIODS    3     /* that many in a row are a new load, tested at once
                                         (once per back-off: a lost retry waits it out) */
/* clang-format on */

enum coalesce_phase {
    COALESCE_OFF,  /* no window; a test may start */
    COALESCE_TEST, /* periods alternate with and without the window */
    COALESCE_ON,   /* window kept until the next test */
};

/* Why the window was last kept or dropped (for the log line). */
enum coalesce_reason {
    COALESCE_MEASURED, /* a test's verdict: see gain */
    COALESCE_IDLE,     /* traffic stopped during a test: nothing to compare */
    COALESCE_CALM,     /* the worker no longer waits for a CPU */
    COALESCE_RESUMED,  /* it waits for a CPU again soon after a drop for calm */
};

struct coalesce {
    bool enabled; /* configuration: coalesce auto (true) or off */
    bool on;      /* the window applies during the current period */
    enum coalesce_phase phase;
    bool was_kept;                       /* the test running began from COALESCE_ON */
    unsigned periods;                    /* periods of the running test so far */
    uint64_t with_bytes, with_ms;        /* its periods with the window */
    uint64_t without_bytes, without_ms;  /* its periods without */
    uint64_t kept_bytes, kept_ms;        /* ON: periods since the window was last kept, */
    unsigned kept_periods, calm_periods; /* how many, and how many in a row uncontended */
    unsigned calm_needed;                /* uncontended kept periods in a row that drop it */
    uint64_t resume_until;               /* OFF after a drop for calm: resume, not test, before */
    uint64_t resume_next;                /* ... and then test at the kept window's time */
    uint64_t next_ms;                    /* OFF: no test before this; ON: the next test */
    uint64_t keep_ms;                    /* ON: how long the window stays before the next test */
    uint64_t backoff_ms;                 /* wait after the next lost test */
    double lost_rate;                    /* OFF: bytes per ms without the window in the lost test */
    unsigned new_load_periods;           /* OFF: periods in a row far from lost_rate */
    bool retried;                        /* the last test started early, for a new load */
    enum coalesce_reason reason;
    double gain; /* the last verdict: bytes per ms with the window / without */
};

void coalesce_init(struct coalesce *c, bool enabled);

/* Switch on or off (a configuration change); off takes effect at once, on starts afresh, and
 * the same setting again changes nothing. */
void coalesce_enable(struct coalesce *c, bool enabled);

/* Whether a thread that was scheduled `slices` times and waited delay_ns in all to get a CPU was
 * contended: COALESCE_CONTENDED_NS or more per scheduling. */
bool coalesce_contended(uint64_t delay_ns, uint64_t slices);

/*
 * End of a period of ms milliseconds (ending at now_ms) that delivered bytes, with the window on
 * for all of it if c->on was set. contended: the worker waited for a CPU during it. Decides the
 * next period (c->on); returns true when the window is kept by a test that began without it, a
 * kept window is dropped, or one dropped for calm resumes: the changes worth a log line (c->reason,
 * c->gain say why).
 */
bool coalesce_period(struct coalesce *c, uint64_t now_ms, uint64_t ms, uint64_t bytes,
                     bool contended);

#endif
