/*
 * timer.c - binary min-heap of embedded timers (the idea of libuv's heap-inl.h, array-based).
 */
#include "timer.h"

#include <errno.h>
#include <stdlib.h>

void timer_heap_init(struct timer_heap *h)
{
    h->items = NULL;
    h->len = 0;
    h->cap = 0;
}

void timer_heap_free(struct timer_heap *h)
{
    for (size_t i = 0; i < h->len; i++)
        h->items[i]->slot = TIMER_NONE;
    free(h->items);
    timer_heap_init(h);
}

static void place(struct timer_heap *h, size_t i, struct timer *t)
{
    h->items[i] = t;
    t->slot = i;
}

static void sift_up(struct timer_heap *h, size_t i)
{
    struct timer *t = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->items[parent]->deadline <= t->deadline)
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(struct timer_heap *h, size_t i)
{
    struct timer *t = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->len)
            break;
        if (child + 1 < h->len && h->items[child + 1]->deadline < h->items[child]->deadline)
            child++;
        if (t->deadline <= h->items[child]->deadline)
            break;
        place(h, i, h->items[child]);
        i = child;
    }
    place(h, i, t);
}

int timer_heap_arm(struct timer_heap *h, struct timer *t, uint64_t deadline)
{
    if (t->slot != TIMER_NONE) {
        uint64_t old = t->deadline;
        t->deadline = deadline;
        if (deadline < old)
            sift_up(h, t->slot);
        else if (deadline > old)
            sift_down(h, t->slot);
        return 0;
    }
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct timer **items = realloc(h->items, cap * sizeof(*items));
        if (!items)
            return -ENOMEM;
        h->items = items;
        h->cap = cap;
    }
    t->deadline = deadline;
    place(h, h->len++, t);
    sift_up(h, t->slot);
    return 0;
}

void timer_heap_cancel(struct timer_heap *h, struct timer *t)
{
    if (t->slot == TIMER_NONE)
        return;
    size_t i = t->slot;
    t->slot = TIMER_NONE;
    h->len--;
    if (i == h->len)
        return;
    struct timer *last = h->items[h->len];
    place(h, i, last);
    /* The moved item may belong above or below its new slot. */
    if (i > 0 && h->items[(i - 1) / 2]->deadline > last->deadline)
        sift_up(h, i);
    else
        sift_down(h, i);
}

struct timer *timer_heap_pop_expired(struct timer_heap *h, uint64_t now)
{
    struct timer *t = timer_heap_peek(h);
    if (!t || t->deadline > now)
        return NULL;
    timer_heap_cancel(h, t);
    return t;
}
