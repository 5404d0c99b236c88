/*
 * timer.h - a binary min-heap of deadlines embedded in their owners.
 *
 * Each owner embeds a struct timer; the heap stores pointers to them and each timer remembers its
 * slot, so insert, remove and re-arm are O(log n) and finding the next deadline is O(1). Time is
 * passed in by the caller (milliseconds on a monotonic clock), so the heap makes no syscalls and is
 * unit-testable. Timers are not thread-safe: one heap per event loop.
 *
 * Idle timeouts are re-armed lazily: the owner records "last activity" on every byte moved (no heap
 * work) and, when the deadline fires, re-arms it to last_activity + timeout if it was not idle.
 */
#ifndef FERRY_TIMER_H
#define FERRY_TIMER_H

#include <stddef.h>
#include <stdint.h>

#define TIMER_NONE ((size_t)-1)

struct timer {
    uint64_t deadline; /* ms on the loop's monotonic clock */
    size_t slot;       /* index in the heap, TIMER_NONE when not armed */
};

struct timer_heap {
    struct timer **items;
    size_t len;
    size_t cap;
};

void timer_heap_init(struct timer_heap *h);
void timer_heap_free(struct timer_heap *h);
static inline void timer_init(struct timer *t)
{
    t->deadline = 0;
    t->slot = TIMER_NONE;
}
static inline int timer_armed(const struct timer *t)
{
    return t->slot != TIMER_NONE;
}
/* Arm (or move) t to fire at deadline; returns 0 or -ENOMEM. */
int timer_heap_arm(struct timer_heap *h, struct timer *t, uint64_t deadline);
/* Disarm t if armed; safe to call on a disarmed timer. */
void timer_heap_cancel(struct timer_heap *h, struct timer *t);
/* The earliest armed timer, or NULL. */
static inline struct timer *timer_heap_peek(const struct timer_heap *h)
{
    return h->len ? h->items[0] : NULL;
}
/* Remove and return the earliest timer whose deadline is <= now, or NULL. */
struct timer *timer_heap_pop_expired(struct timer_heap *h, uint64_t now);

#endif
