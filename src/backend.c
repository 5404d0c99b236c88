/*
 * backend.c - smooth weighted round robin with passive failure marks.
 */
#include "backend.h"

#include <errno.h>
#include <stdlib.h>

int balancer_init(struct balancer *bal, const struct route_conf *route)
{
    bal->n = route->nbackends;
    bal->b = calloc(bal->n, sizeof(*bal->b));
    if (!bal->b)
        return -ENOMEM;
    for (size_t i = 0; i < bal->n; i++)
        bal->b[i].conf = &route->backends[i];
    return 0;
}

void balancer_free(struct balancer *bal)
{
    free(bal->b);
    bal->b = NULL;
    bal->n = 0;
}

/* Eligibility classes, best first: untried+up, untried+down, tried (all). */
static int rank(const struct backend_rt *b, uint64_t tried, size_t i, uint64_t now)
{
    int r = (tried & balancer_bit(i)) ? 2 : 0;
    if (r == 0 && b->down_until > now)
        r = 1;
    return r;
}

size_t balancer_pick(struct balancer *bal, uint64_t tried, uint64_t now)
{
    int best_rank = 3;
    for (size_t i = 0; i < bal->n; i++) {
        int r = rank(&bal->b[i], tried, i, now);
        if (r < best_rank)
            best_rank = r;
    }
    int64_t total = 0;
    size_t best = 0;
    bool found = false;
    for (size_t i = 0; i < bal->n; i++) {
        struct backend_rt *b = &bal->b[i];
        if (rank(b, tried, i, now) != best_rank)
            continue;
        b->current += b->conf->weight;
        total += b->conf->weight;
        if (!found || b->current > bal->b[best].current) {
            best = i;
            found = true;
        }
    }
    bal->b[best].current -= total;
    return best;
}

bool balancer_report(struct balancer *bal, size_t i, bool ok, uint64_t now)
{
    struct backend_rt *b = &bal->b[i];
    bool was_down = b->down;
    if (ok) {
        b->connects++;
        b->down = false;
        b->down_until = 0;
    } else {
        b->failures++;
        b->down = true;
        b->down_until = now + BACKEND_DOWN_MS;
    }
    return was_down != b->down;
}
