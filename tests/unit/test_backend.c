/*
 * test_backend.c - the specification of backend selection and health (backend.h).
 *
 * Selection is smooth weighted round robin, as in nginx: on every pick each eligible backend gains
 * its weight, the one with the highest running total is chosen and pays the sum of the weights
 * back. Over every cycle of (sum of weights) picks each backend is chosen exactly `weight` times,
 * and the picks are interleaved instead of bunched (5:1:1 gives a a b a c a a, nginx's documented
 * order). Backends already tried for this client are avoided while any other remains; a backend
 * whose connect failed is avoided for BACKEND_DOWN_MS (time is passed in) while another is up, but
 * picked anyway when all are down. balancer_report says when a backend changes between up and down.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "backend.h"

#define MAXB 70

/* A route with n backends of the given weights, and its balancer. */
struct fix {
    struct backend_conf conf[MAXB];
    struct route_conf route;
    struct balancer bal;
};

static struct fix *fix_new(const unsigned *weights, size_t n)
{
    struct fix *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    assert_true(n <= MAXB);
    for (size_t i = 0; i < n; i++)
        f->conf[i].weight = weights[i];
    f->route.backends = f->conf;
    f->route.nbackends = n;
    assert_int_equal(balancer_init(&f->bal, &f->route), 0);
    assert_int_equal(f->bal.n, n);
    for (size_t i = 0; i < n; i++) {
        assert_ptr_equal(f->bal.b[i].conf, &f->conf[i]);
        assert_false(f->bal.b[i].down);
    }
    return f;
}

static void fix_free(struct fix *f)
{
    balancer_free(&f->bal);
    assert_null(f->bal.b);
    assert_int_equal(f->bal.n, 0);
    free(f);
}

/* n picks with nothing tried and everything up, as letters: "aabacaa". */
static void picks(struct fix *f, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        size_t k = balancer_pick(&f->bal, 0, 1000);
        assert_true(k < f->bal.n);
        out[i] = (char)('a' + k);
    }
    out[n] = '\0';
}

static void test_equal_weights_alternate(void **state)
{
    (void)state;
    static const unsigned w[] = {1, 1};
    struct fix *f = fix_new(w, 2);
    char seq[101];
    picks(f, 100, seq);
    for (size_t i = 1; i < 100; i++)
        assert_int_not_equal(seq[i], seq[i - 1]);
    fix_free(f);

    static const unsigned w3[] = {4, 4, 4};
    f = fix_new(w3, 3);
    picks(f, 99, seq);
    /* Equal weights of any size: a plain rotation, every backend once per three picks. */
    for (size_t i = 3; i < 99; i++)
        assert_int_equal(seq[i], seq[i - 3]);
    assert_true(seq[0] != seq[1] && seq[1] != seq[2] && seq[0] != seq[2]);
    fix_free(f);
}

/* 2:1 is a b a, not a a b: the heavier backend's picks are spread around the lighter one's. */
static void test_two_to_one_is_smooth(void **state)
{
    (void)state;
    static const unsigned w[] = {2, 1};
    struct fix *f = fix_new(w, 2);
    char seq[31], want[31] = "";
    picks(f, 30, seq);
    for (int cycle = 0; cycle < 10; cycle++)
        strcat(want, "aba");
    assert_string_equal(seq, want);
    fix_free(f);
}

/* nginx documents the sequence for weights 5, 1, 1 as { a, a, b, a, c, a, a }: b and c are never
 * adjacent and a never runs 5 times in a row, as a plain weighted rotation (a a a a a b c) would.
 */
static void test_five_one_one_matches_nginx(void **state)
{
    (void)state;
    static const unsigned w[] = {5, 1, 1};
    struct fix *f = fix_new(w, 3);
    char seq[7 * 20 + 1];
    picks(f, 7 * 20, seq);
    for (size_t cycle = 0; cycle < 20; cycle++)
        assert_memory_equal(seq + cycle * 7, "aabacaa", 7);
    assert_null(strstr(seq, "aaaaa"));
    assert_null(strstr(seq, "bc"));
    assert_null(strstr(seq, "cb"));
    fix_free(f);
}

/* Over every window of (sum of weights) consecutive picks, each backend gets exactly its weight. */
static void check_windows(const unsigned *w, size_t n)
{
    enum { PICKS = 4000 };
    struct fix *f = fix_new(w, n);
    unsigned total = 0;
    for (size_t i = 0; i < n; i++)
        total += w[i];
    size_t *seq = malloc(PICKS * sizeof(*seq));
    assert_non_null(seq);
    for (size_t i = 0; i < PICKS; i++)
        seq[i] = balancer_pick(&f->bal, 0, 1000);

    unsigned count[MAXB] = {0};
    for (size_t i = 0; i < PICKS; i++) {
        count[seq[i]]++;
        if (i >= total)
            count[seq[i - total]]--;
        if (i + 1 >= total)
            for (size_t k = 0; k < n; k++)
                assert_int_equal(count[k], w[k]);
    }
    free(seq);
    fix_free(f);
}

static void test_weights_are_honoured_in_every_window(void **state)
{
    (void)state;
    static const unsigned a[] = {5, 1, 1};
    static const unsigned b[] = {3, 2};
    static const unsigned c[] = {1, 2, 3, 4};
    static const unsigned d[] = {256, 1};
    static const unsigned e[] = {7, 7, 1};
    check_windows(a, 3);
    check_windows(b, 2);
    check_windows(c, 4);
    check_windows(d, 2);
    check_windows(e, 3);
}

static uint64_t rng_state = 0x5eed5eedull;
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* The algorithm as nginx publishes it, written out independently: every backend adds its weight,
 * the first with the largest running total wins and subtracts the sum of the weights. */
static size_t reference_pick(int64_t *cur, const unsigned *w, size_t n)
{
    int64_t total = 0;
    size_t best = 0;
    for (size_t i = 0; i < n; i++) {
        cur[i] += w[i];
        total += w[i];
        if (cur[i] > cur[best])
            best = i;
    }
    cur[best] -= total;
    return best;
}

static void test_sequence_matches_the_published_algorithm(void **state)
{
    (void)state;
    for (int trial = 0; trial < 300; trial++) {
        size_t n = 1 + (size_t)(rng_next() % 8);
        unsigned w[8], total = 0;
        int64_t cur[8] = {0};
        for (size_t i = 0; i < n; i++) {
            w[i] = rng_next() % 4 == 0 ? 1 + (unsigned)(rng_next() % 256)
                                       : 1 + (unsigned)(rng_next() % 5);
            total += w[i];
        }
        struct fix *f = fix_new(w, n);
        for (unsigned i = 0; i < 3 * total; i++)
            assert_int_equal(balancer_pick(&f->bal, 0, 1000), reference_pick(cur, w, n));
        fix_free(f);
    }
}

static void test_single_backend_is_always_picked(void **state)
{
    (void)state;
    static const unsigned w[] = {3};
    struct fix *f = fix_new(w, 1);
    for (int i = 0; i < 10; i++)
        assert_int_equal(balancer_pick(&f->bal, 0, 0), 0);
    /* Even when tried and down: there is nothing else. */
    balancer_report(&f->bal, 0, false, 0);
    assert_int_equal(balancer_pick(&f->bal, balancer_bit(0), 1), 0);
    fix_free(f);
}

/* Within one client connection, a retry goes to a backend not tried yet. */
static void test_tried_backends_are_excluded(void **state)
{
    (void)state;
    static const unsigned w[] = {10, 1, 1};
    struct fix *f = fix_new(w, 3);
    for (int round = 0; round < 50; round++) {
        uint64_t tried = 0;
        unsigned seen = 0;
        for (int attempt = 0; attempt < 3; attempt++) {
            size_t k = balancer_pick(&f->bal, tried, 1000);
            assert_true(k < 3);
            assert_false(tried & balancer_bit(k)); /* never the same one twice */
            tried |= balancer_bit(k);
            seen++;
        }
        assert_int_equal(seen, 3);
        assert_int_equal(tried, balancer_bit(0) | balancer_bit(1) | balancer_bit(2));
        /* All tried: one is still returned (the caller decides when to give up). */
        assert_true(balancer_pick(&f->bal, tried, 1000) < 3);
    }
    /* The only untried backend wins whatever the weights say. */
    for (int i = 0; i < 20; i++)
        assert_int_equal(balancer_pick(&f->bal, balancer_bit(0) | balancer_bit(2), 1000), 1);
    fix_free(f);
}

/* "Sets wider than 64 backends fold onto 64 bits": backend 64 shares backend 0's bit. */
static void test_tried_bits_fold_beyond_64(void **state)
{
    (void)state;
    unsigned w[MAXB];
    for (size_t i = 0; i < MAXB; i++)
        w[i] = 1;
    struct fix *f = fix_new(w, MAXB);
    assert_true(balancer_bit(64) == balancer_bit(0));
    assert_true(balancer_bit(63) != balancer_bit(0));
    uint64_t tried = ~balancer_bit(5); /* everything but 5 and 69 */
    for (int i = 0; i < 20; i++) {
        size_t k = balancer_pick(&f->bal, tried, 1000);
        assert_true(k == 5 || k == 69);
    }
    fix_free(f);
}

static void test_down_backend_avoided_while_another_is_up(void **state)
{
    (void)state;
    static const unsigned w[] = {1, 1, 1};
    struct fix *f = fix_new(w, 3);
    uint64_t t0 = 50000;
    balancer_report(&f->bal, 1, false, t0);
    assert_true(f->bal.b[1].down);
    assert_int_equal(f->bal.b[1].down_until, t0 + BACKEND_DOWN_MS);

    unsigned count[3] = {0};
    for (uint64_t now = t0; now < t0 + BACKEND_DOWN_MS; now += 10)
        count[balancer_pick(&f->bal, 0, now)]++;
    assert_int_equal(count[1], 0);
    assert_true(count[0] > 0 && count[2] > 0);
    assert_in_range(count[0], count[2] - 1, count[2] + 1); /* the rest still share evenly */

    /* A down backend is still preferred to one already tried for this client. */
    assert_int_equal(balancer_pick(&f->bal, balancer_bit(0) | balancer_bit(2), t0 + 1), 1);
    fix_free(f);
}

/* The mark expires at exactly down_until, with no report needed. */
static void test_down_mark_expires(void **state)
{
    (void)state;
    static const unsigned w[] = {1, 1};
    struct fix *f = fix_new(w, 2);
    uint64_t t0 = 1000;
    balancer_report(&f->bal, 0, false, t0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(balancer_pick(&f->bal, 0, t0 + BACKEND_DOWN_MS - 1), 1);

    unsigned count[2] = {0};
    for (int i = 0; i < 10; i++)
        count[balancer_pick(&f->bal, 0, t0 + BACKEND_DOWN_MS)]++;
    assert_true(count[0] >= 4); /* back in the rotation */
    assert_true(count[1] >= 4);
    fix_free(f);
}

static void test_all_down_still_picks(void **state)
{
    (void)state;
    static const unsigned w[] = {2, 1};
    struct fix *f = fix_new(w, 2);
    uint64_t t0 = 7;
    balancer_report(&f->bal, 0, false, t0);
    balancer_report(&f->bal, 1, false, t0);
    unsigned count[2] = {0};
    for (int i = 0; i < 30; i++)
        count[balancer_pick(&f->bal, 0, t0 + 1)]++;
    /* Marks never make a route refuse: the weights still apply among the down ones. */
    assert_int_equal(count[0], 20);
    assert_int_equal(count[1], 10);
    fix_free(f);
}

/* One backend recovering while the other is down gets all the picks. */
static void test_success_clears_the_mark(void **state)
{
    (void)state;
    static const unsigned w[] = {1, 1};
    struct fix *f = fix_new(w, 2);
    balancer_report(&f->bal, 0, false, 100);
    balancer_report(&f->bal, 1, false, 100);
    balancer_report(&f->bal, 0, true, 200);
    assert_false(f->bal.b[0].down);
    assert_int_equal(f->bal.b[0].down_until, 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(balancer_pick(&f->bal, 0, 201), 0);
    fix_free(f);
}

static void test_report_returns_transitions_and_counts(void **state)
{
    (void)state;
    static const unsigned w[] = {1, 1};
    struct fix *f = fix_new(w, 2);
    struct backend_rt *b = &f->bal.b[0];

    assert_false(balancer_report(&f->bal, 0, true, 10)); /* up -> up */
    assert_int_equal(b->connects, 1);
    assert_true(balancer_report(&f->bal, 0, false, 20)); /* up -> down */
    assert_true(b->down);
    assert_int_equal(b->failures, 1);
    assert_int_equal(b->down_until, 20 + BACKEND_DOWN_MS);
    assert_false(balancer_report(&f->bal, 0, false, 30)); /* down -> down: no new log line */
    assert_int_equal(b->failures, 2);
    assert_int_equal(b->down_until, 30 + BACKEND_DOWN_MS); /* the window restarts */
    assert_true(balancer_report(&f->bal, 0, true, 40));    /* down -> up */
    assert_false(b->down);
    assert_int_equal(b->connects, 2);
    assert_int_equal(b->failures, 2);
    assert_false(balancer_report(&f->bal, 0, true, 50));
    assert_int_equal(b->connects, 3);

    /* The other backend is untouched. */
    assert_int_equal(f->bal.b[1].connects, 0);
    assert_int_equal(f->bal.b[1].failures, 0);
    assert_false(f->bal.b[1].down);
    fix_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equal_weights_alternate),
        cmocka_unit_test(test_two_to_one_is_smooth),
        cmocka_unit_test(test_five_one_one_matches_nginx),
        cmocka_unit_test(test_weights_are_honoured_in_every_window),
        cmocka_unit_test(test_sequence_matches_the_published_algorithm),
        cmocka_unit_test(test_single_backend_is_always_picked),
        cmocka_unit_test(test_tried_backends_are_excluded),
        cmocka_unit_test(test_tried_bits_fold_beyond_64),
        cmocka_unit_test(test_down_backend_avoided_while_another_is_up),
        cmocka_unit_test(test_down_mark_expires),
        cmocka_unit_test(test_all_down_still_picks),
        cmocka_unit_test(test_success_clears_the_mark),
        cmocka_unit_test(test_report_returns_transitions_and_counts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
