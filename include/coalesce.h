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
 * with it deliver more bytes than periods without it. A lost test backs off exponentially; a kept
 * window is tested again at growing intervals, and at once when its rate falls (the load changed).
 *
 * This is the decision alone, with no clock or I/O of its own, so tests can drive it.
 */
#ifndef FERRY_COALESCE_H
#define FERRY_COALESCE_H

#include <stdbool.h>
#include <stdint.h>

#define COALESCE_WINDOW_US      100   /* how long a busy worker waits before blocking */
#define COALESCE_PERIOD_MS      100   /* one measurement: the window is on or off for all of it */
#define COALESCE_TEST_PAIRS     4     /* a test alternates this many periods with and without */
#define COALESCE_CONTENDED_NS   8000  /* run delay per scheduling that means "waits for a CPU" */
#define COALESCE_GAIN           1.04  /* with the window, a test must deliver this much more */
#define COALESCE_KEEP_MIN_MS    2000  /* a kept window is tested again after this, */
#define COALESCE_KEEP_MAX_MS    30000 /* doubling up to this while tests confirm it */
#define COALESCE_DROP           0.6 /* a kept period below this part of the kept average: test at once */
#define COALESCE_BACKOFF_MIN_MS 1000
#define COALESCE_BACKOFF_MAX_MS 60000

enum coalesce_phase {
    COALESCE_OFF,  /* no window; a test may start */
    COALESCE_TEST, /* periods alternate with and without the window */
    COALESCE_ON,   /* window kept until the next test */
};

struct coalesce {
    bool enabled; /* configuration: coalesce auto (true) or off */
    bool on;      /* the window applies during the current period */
    enum coalesce_phase phase;
    bool was_kept;                      /* the test running began from COALESCE_ON */
    unsigned periods;                   /* periods of the running test so far */
    uint64_t with_bytes, with_ms;       /* its periods with the window */
    uint64_t without_bytes, without_ms; /* its periods without */
    uint64_t kept_bytes, kept_ms;       /* periods since the window was last kept */
    unsigned kept_periods;
    uint64_t next_ms;    /* OFF: no test before this; ON: the next test */
    uint64_t keep_ms;    /* ON: how long the window stays before the next test */
    uint64_t backoff_ms; /* wait after the next lost test */
    double gain;         /* the last test: bytes per ms with the window / without; < 0: idle */
};

void coalesce_init(struct coalesce *c, bool enabled);

/* Switch on or off (a configuration change); off takes effect at once. */
void coalesce_enable(struct coalesce *c, bool enabled);

/*
 * End of a period of ms milliseconds (ending at now_ms) that delivered bytes, with the window on
 * for all of it if c->on was set. contended: the worker waited for a CPU during it. Decides the
 * next period (c->on); returns true when a test ends by keeping the window or by dropping a kept
 * one, the changes worth a log line.
 */
bool coalesce_period(struct coalesce *c, uint64_t now_ms, uint64_t ms, uint64_t bytes,
                     bool contended);

#endif
