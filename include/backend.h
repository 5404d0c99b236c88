/*
 * backend.h - the backend set of one route inside one worker: selection and health.
 *
 * Selection is smooth weighted round robin (each backend gains its weight on every pick and the
 * chosen one pays the total back), which spreads picks evenly instead of in bursts. A backend whose
 * connect failed is marked down for a short while and skipped while another is up; when all are
 * down they are tried anyway, so marks never make a route refuse by themselves. Each worker has its
 * own balancer (shared-nothing), so nothing here is locked. Knows nothing of sessions or buffers.
 */
#ifndef FERRY_BACKEND_H
#define FERRY_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* How long a failed backend is avoided before it is tried again (ms). */
#define BACKEND_DOWN_MS 2000

struct backend_rt {
    const struct backend_conf *conf;
    int64_t current;     /* smooth WRR running weight */
    unsigned active;     /* pairs connected through it now */
    uint64_t connects;   /* successful connects */
    uint64_t failures;   /* failed attempts */
    uint64_t down_until; /* ms; avoided until then after a failure */
    bool down;           /* last attempt failed (for up/down log transitions) */
};

struct balancer {
    struct backend_rt *b;
    size_t n;
};

/* Returns 0 or -ENOMEM. */
int balancer_init(struct balancer *bal, const struct route_conf *route);
void balancer_free(struct balancer *bal);
/* Bit for backend i in a "tried" set (sets wider than 64 backends fold onto 64 bits). */
static inline uint64_t balancer_bit(size_t i)
{
    return 1ull << (i % 64);
}
/* Pick the next backend: untried ones first, up ones before down ones, then weighted round robin.
 * Never fails when n > 0; returns the index. */
size_t balancer_pick(struct balancer *bal, uint64_t tried, uint64_t now);
/* Record an attempt's outcome. Returns true if the backend's up/down state changed. */
bool balancer_report(struct balancer *bal, size_t i, bool ok, uint64_t now);

#endif
