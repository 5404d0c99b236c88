/*
 * test_timer.c - the specification of the timer heap (timer.h).
 *
 * The earliest armed deadline is always at the top; timers come out of pop_expired in deadline
 * order and only once their deadline is <= the `now` the caller passes in (the heap never reads a
 * clock). A timer can be cancelled wherever it sits (the root, the middle, the last slot) and
 * re-armed earlier or later without being stored twice; cancelling a disarmed timer does nothing.
 * After every operation each stored timer knows its slot and no parent is later than its
 * children. A long random sequence of arm / re-arm / cancel / pop (fixed seed) is compared with a
 * plain reference list.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>

#include "timer.h"

static uint64_t rng_state;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static size_t rng_below(size_t n)
{
    return (size_t)(rng_next() % n);
}

/* The heap property and the slot back-pointers, checked after every operation. */
static void check_heap(const struct timer_heap *h)
{
    assert_true(h->len <= h->cap);
    for (size_t i = 0; i < h->len; i++) {
        assert_int_equal(h->items[i]->slot, i);
        if (i > 0)
            assert_true(h->items[(i - 1) / 2]->deadline <= h->items[i]->deadline);
    }
}

static void arm(struct timer_heap *h, struct timer *t, uint64_t deadline)
{
    assert_int_equal(timer_heap_arm(h, t, deadline), 0);
    assert_true(timer_armed(t));
    assert_int_equal(t->deadline, deadline);
    check_heap(h);
}

/* Pops everything with now = UINT64_MAX and checks the deadlines come out as `want`. */
static void drain_expect(struct timer_heap *h, const uint64_t *want, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct timer *t = timer_heap_pop_expired(h, UINT64_MAX);
        assert_non_null(t);
        assert_false(timer_armed(t));
        assert_int_equal(t->deadline, want[i]);
        check_heap(h);
    }
    assert_null(timer_heap_pop_expired(h, UINT64_MAX));
    assert_int_equal(h->len, 0);
}

static void test_empty_heap(void **state)
{
    (void)state;
    struct timer_heap h;
    timer_heap_init(&h);
    assert_null(timer_heap_peek(&h));
    assert_null(timer_heap_pop_expired(&h, UINT64_MAX));
    struct timer t;
    timer_init(&t);
    assert_false(timer_armed(&t));
    timer_heap_free(&h);
}

static void test_peek_is_the_earliest_deadline(void **state)
{
    (void)state;
    static const uint64_t deadlines[] = {50, 20, 70, 10, 40, 60, 30};
    struct timer_heap h;
    struct timer t[7];
    timer_heap_init(&h);
    uint64_t min = UINT64_MAX;
    for (size_t i = 0; i < 7; i++) {
        timer_init(&t[i]);
        arm(&h, &t[i], deadlines[i]);
        if (deadlines[i] < min)
            min = deadlines[i];
        assert_int_equal(timer_heap_peek(&h)->deadline, min);
    }
    assert_int_equal(h.len, 7);
    static const uint64_t sorted[] = {10, 20, 30, 40, 50, 60, 70};
    drain_expect(&h, sorted, 7);
    timer_heap_free(&h);
}

/* pop_expired returns only timers whose deadline is <= now, earliest first. */
static void test_pop_expired_respects_now(void **state)
{
    (void)state;
    struct timer_heap h;
    struct timer a, b, c;
    timer_heap_init(&h);
    timer_init(&a);
    timer_init(&b);
    timer_init(&c);
    arm(&h, &a, 100);
    arm(&h, &b, 200);
    arm(&h, &c, 200);

    assert_null(timer_heap_pop_expired(&h, 0));
    assert_null(timer_heap_pop_expired(&h, 99));
    assert_int_equal(h.len, 3);
    assert_ptr_equal(timer_heap_pop_expired(&h, 100), &a); /* deadline == now has expired */
    assert_false(timer_armed(&a));
    assert_null(timer_heap_pop_expired(&h, 199));
    struct timer *x = timer_heap_pop_expired(&h, 250);
    struct timer *y = timer_heap_pop_expired(&h, 250);
    assert_true((x == &b && y == &c) || (x == &c && y == &b)); /* equal deadlines: both */
    assert_null(timer_heap_pop_expired(&h, 250));
    assert_null(timer_heap_peek(&h));
    timer_heap_free(&h);
}

/* Fifteen timers fill a complete heap of four levels; one is cancelled from a chosen spot. */
static void cancel_case(size_t which)
{
    struct timer_heap h;
    struct timer t[15];
    uint64_t want[14];
    timer_heap_init(&h);
    for (size_t i = 0; i < 15; i++) {
        timer_init(&t[i]);
        arm(&h, &t[i], (uint64_t)(i + 1) * 10); /* ascending: t[i] sits in slot i */
    }
    struct timer *victim = &t[which];
    assert_int_equal(victim->slot, which); /* ascending arms: t[i] is in slot i */
    timer_heap_cancel(&h, victim);
    assert_false(timer_armed(victim));
    assert_int_equal(h.len, 14);
    check_heap(&h);
    for (size_t i = 0; i < 15; i++)
        if (&t[i] != victim)
            assert_true(timer_armed(&t[i]));
    for (size_t i = 0, k = 0; i < 15; i++)
        if (i != which)
            want[k++] = (uint64_t)(i + 1) * 10;
    drain_expect(&h, want, 14);
    timer_heap_free(&h);
}

static void test_cancel_root(void **state)
{
    (void)state;
    cancel_case(0);
}

static void test_cancel_middle(void **state)
{
    (void)state;
    cancel_case(5);
}

static void test_cancel_last_slot(void **state)
{
    (void)state;
    cancel_case(14);
}

/* The element moved into the hole can be smaller than the hole's parent: it must go up. */
static void test_cancel_moves_the_last_timer_up(void **state)
{
    (void)state;
    struct timer_heap h;
    struct timer t[7];
    timer_heap_init(&h);
    /*            1
     *       100       2
     *    101  102   3   4      cancelling 102 moves 4 into its slot, below 100 */
    static const uint64_t d[] = {1, 100, 2, 101, 102, 3, 4};
    for (size_t i = 0; i < 7; i++) {
        timer_init(&t[i]);
        arm(&h, &t[i], d[i]);
    }
    assert_int_equal(t[4].slot, 4);
    assert_int_equal(t[6].slot, 6);
    timer_heap_cancel(&h, &t[4]);
    check_heap(&h);
    static const uint64_t want[] = {1, 2, 3, 4, 100, 101};
    drain_expect(&h, want, 6);
    timer_heap_free(&h);
}

static void test_cancel_disarmed_is_a_no_op(void **state)
{
    (void)state;
    struct timer_heap h;
    struct timer a, b, never;
    timer_heap_init(&h);
    timer_init(&a);
    timer_init(&b);
    timer_init(&never);
    arm(&h, &a, 10);
    arm(&h, &b, 20);

    timer_heap_cancel(&h, &never);
    assert_int_equal(h.len, 2);
    timer_heap_cancel(&h, &a);
    timer_heap_cancel(&h, &a); /* twice */
    assert_int_equal(h.len, 1);
    assert_ptr_equal(timer_heap_peek(&h), &b);
    assert_true(timer_armed(&b));
    check_heap(&h);

    assert_ptr_equal(timer_heap_pop_expired(&h, 20), &b);
    timer_heap_cancel(&h, &b); /* popped timers are disarmed */
    assert_int_equal(h.len, 0);
    timer_heap_free(&h);
}

static void test_rearm_earlier_and_later(void **state)
{
    (void)state;
    struct timer_heap h;
    struct timer t[6];
    timer_heap_init(&h);
    for (size_t i = 0; i < 6; i++) {
        timer_init(&t[i]);
        arm(&h, &t[i], (uint64_t)(i + 1) * 100); /* 100 .. 600 */
    }

    arm(&h, &t[5], 50); /* the latest becomes the earliest */
    assert_int_equal(h.len, 6);
    assert_ptr_equal(timer_heap_peek(&h), &t[5]);

    arm(&h, &t[5], 1000); /* and then the latest again */
    assert_int_equal(h.len, 6);
    assert_ptr_equal(timer_heap_peek(&h), &t[0]);

    arm(&h, &t[0], 350); /* the root moves down between 300 and 400 */
    assert_ptr_equal(timer_heap_peek(&h), &t[1]);
    arm(&h, &t[2], 300); /* same deadline: nothing moves, nothing breaks */
    assert_int_equal(h.len, 6);

    static const uint64_t want[] = {200, 300, 350, 400, 500, 1000};
    drain_expect(&h, want, 6);
    timer_heap_free(&h);
}

/* A popped (disarmed) timer can be armed again: it goes back in. */
static void test_rearm_after_pop(void **state)
{
    (void)state;
    struct timer_heap h;
    struct timer a, b;
    timer_heap_init(&h);
    timer_init(&a);
    timer_init(&b);
    arm(&h, &a, 10);
    arm(&h, &b, 30);
    assert_ptr_equal(timer_heap_pop_expired(&h, 10), &a);
    arm(&h, &a, 20); /* as an idle timeout re-armed lazily from its callback */
    assert_int_equal(h.len, 2);
    assert_ptr_equal(timer_heap_pop_expired(&h, 40), &a);
    assert_ptr_equal(timer_heap_pop_expired(&h, 40), &b);
    timer_heap_free(&h);
}

/* More timers than the first allocation holds. */
static void test_heap_grows(void **state)
{
    (void)state;
    enum { N = 1000 };
    struct timer_heap h;
    struct timer *t = calloc(N, sizeof(*t));
    assert_non_null(t);
    timer_heap_init(&h);
    for (size_t i = 0; i < N; i++) {
        timer_init(&t[i]);
        /* A permutation of 0..N-1 (7 and 1000 are coprime). */
        assert_int_equal(timer_heap_arm(&h, &t[i], (uint64_t)(i * 7 % N)), 0);
    }
    check_heap(&h);
    assert_int_equal(h.len, N);
    for (uint64_t want = 0; want < N; want++) {
        struct timer *x = timer_heap_pop_expired(&h, UINT64_MAX);
        assert_non_null(x);
        assert_int_equal(x->deadline, want);
    }
    timer_heap_free(&h);
    free(t);
}

/* Freeing the heap disarms what it still held, so owners can tell. */
static void test_free_disarms_remaining_timers(void **state)
{
    (void)state;
    struct timer_heap h;
    struct timer a, b;
    timer_heap_init(&h);
    timer_init(&a);
    timer_init(&b);
    arm(&h, &a, 1);
    arm(&h, &b, 2);
    timer_heap_free(&h);
    assert_false(timer_armed(&a));
    assert_false(timer_armed(&b));
    assert_int_equal(h.len, 0);
    assert_null(timer_heap_peek(&h));
}

/* ---- random sequences against a reference ------------------------------------------------ */

enum { RN = 64 };

/* The smallest deadline among the armed timers of the reference, or UINT64_MAX. */
static uint64_t ref_min(const bool *armed, const uint64_t *deadline)
{
    uint64_t m = UINT64_MAX;
    for (size_t i = 0; i < RN; i++)
        if (armed[i] && deadline[i] < m)
            m = deadline[i];
    return m;
}

static void test_random_against_sorted_reference(void **state)
{
    (void)state;
    struct timer_heap h;
    struct timer t[RN];
    bool armed[RN] = {false};
    uint64_t deadline[RN] = {0};
    uint64_t now = 0;
    rng_state = 0x7133e5ull;
    timer_heap_init(&h);
    for (size_t i = 0; i < RN; i++)
        timer_init(&t[i]);

    for (int step = 0; step < 50000; step++) {
        size_t i = rng_below(RN);
        switch (rng_below(4)) {
        case 0:
        case 1: { /* arm or re-arm, sometimes in the past, often on equal deadlines */
            uint64_t back = rng_below(4) == 0 ? rng_below(50) : 0;
            uint64_t d = now + rng_below(200);
            d = d > back ? d - back : 0;
            assert_int_equal(timer_heap_arm(&h, &t[i], d), 0);
            armed[i] = true;
            deadline[i] = d;
            break;
        }
        case 2:
            timer_heap_cancel(&h, &t[i]);
            armed[i] = false;
            break;
        default: { /* time passes; pop everything due, in order */
            now += rng_below(40);
            uint64_t last = 0;
            struct timer *x;
            while ((x = timer_heap_pop_expired(&h, now)) != NULL) {
                size_t k = (size_t)(x - t);
                assert_true(k < RN);
                assert_true(armed[k]);
                assert_int_equal(x->deadline, deadline[k]);
                assert_true(x->deadline <= now);
                assert_int_equal(x->deadline, ref_min(armed, deadline));
                assert_true(x->deadline >= last);
                last = x->deadline;
                armed[k] = false;
            }
            assert_true(ref_min(armed, deadline) > now);
            break;
        }
        }
        size_t n = 0;
        for (size_t k = 0; k < RN; k++) {
            assert_int_equal(timer_armed(&t[k]), armed[k]);
            n += armed[k];
        }
        assert_int_equal(h.len, n);
        uint64_t m = ref_min(armed, deadline);
        if (n)
            assert_int_equal(timer_heap_peek(&h)->deadline, m);
        else
            assert_null(timer_heap_peek(&h));
        check_heap(&h);
    }
    timer_heap_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty_heap),
        cmocka_unit_test(test_peek_is_the_earliest_deadline),
        cmocka_unit_test(test_pop_expired_respects_now),
        cmocka_unit_test(test_cancel_root),
        cmocka_unit_test(test_cancel_middle),
        cmocka_unit_test(test_cancel_last_slot),
        cmocka_unit_test(test_cancel_moves_the_last_timer_up),
        cmocka_unit_test(test_cancel_disarmed_is_a_no_op),
        cmocka_unit_test(test_rearm_earlier_and_later),
        cmocka_unit_test(test_rearm_after_pop),
        cmocka_unit_test(test_heap_grows),
        cmocka_unit_test(test_free_disarms_remaining_timers),
        cmocka_unit_test(test_random_against_sorted_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
