/*
 * test_ring.c - the specification of the ring buffer and its buffer pool (ring.h).
 *
 * The tests follow the ASCII diagram in ring.h: a ring with no area offers no iovecs; stored data
 * that does not wrap is one data iovec and up to two room iovecs ([head+len, size) then [0, head));
 * data that wraps is two data iovecs ([head, size) then [0, tail)) and one room iovec [tail, head);
 * a full ring has no room; an emptied ring restarts at offset 0 so the next read is contiguous.
 * Every state is reached through the public operations only. A reference model then checks long
 * random sequences of put/get/produce/consume/release (fixed seed, so failures reproduce). Last,
 * the pool: buffers are reused, at most max_free are kept, and a ring holds an area only while it
 * has bytes to hold.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ring.h"

/* The huge-allocation test needs malloc to fail with NULL instead of aborting under ASan. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

#define SIZE 8

/* A deterministic generator (xorshift64*), so a failing random sequence can be replayed. */
static uint64_t rng_state;
static void rng_seed(uint64_t s)
{
    rng_state = s ? s : 1;
}
static uint64_t rng_next(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}
static size_t rng_below(size_t n)
{
    return n ? (size_t)(rng_next() % n) : 0;
}

/* A pool and an acquired ring of SIZE bytes; `next` is the value of the next byte written, so
 * the stored bytes always form a known run and their order can be checked. */
struct fix {
    struct bufpool pool;
    struct ring r;
    unsigned char next; /* value of the next byte produced */
    unsigned char old;  /* value of the oldest stored byte */
};

static void fix_init(struct fix *f, size_t size)
{
    bufpool_init(&f->pool, size, 4);
    ring_init(&f->r, size);
    assert_int_equal(ring_acquire(&f->r, &f->pool), 0);
    f->next = 0;
    f->old = 0;
}

static void fix_done(struct fix *f)
{
    f->r.len = 0; /* the test is over: drop whatever is stored so the area can go back */
    ring_release(&f->r, &f->pool);
    assert_null(f->r.area);
    assert_int_equal(f->pool.in_use, 0);
    bufpool_destroy(&f->pool);
}

static void put_n(struct fix *f, size_t n)
{
    unsigned char buf[256];
    assert_true(n <= sizeof(buf));
    for (size_t i = 0; i < n; i++)
        buf[i] = (unsigned char)(f->next + i);
    assert_int_equal(ring_put(&f->r, buf, n), n);
    f->next = (unsigned char)(f->next + n);
}

static void get_n(struct fix *f, size_t n)
{
    unsigned char buf[256];
    assert_true(n <= sizeof(buf));
    assert_int_equal(ring_get(&f->r, buf, n), n);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(buf[i], (unsigned char)(f->old + i));
    f->old = (unsigned char)(f->old + n);
}

/* Bring an empty acquired ring to exactly (head, len) through put and get only. */
static void reach(struct fix *f, size_t head, size_t len)
{
    size_t size = f->r.size;
    assert_true(head < size && len <= size);
    if (len == 0)
        return; /* an empty ring is always at head 0: nothing else is reachable */
    if (head + len <= size) {
        put_n(f, head + len);
        get_n(f, head);
    } else {
        put_n(f, size);
        get_n(f, head);
        put_n(f, len - (size - head));
    }
    assert_int_equal(f->r.head, head);
    assert_int_equal(f->r.len, len);
}

static void assert_iov(const struct fix *f, const struct iovec *iov, size_t off, size_t len)
{
    assert_ptr_equal(iov->iov_base, f->r.area + off);
    assert_int_equal(iov->iov_len, len);
}

/* The data iovecs hold the stored bytes, oldest first, as one unbroken run of values. */
static void assert_data_content(const struct fix *f)
{
    struct iovec iov[2];
    int n = ring_data_iov(&f->r, iov);
    unsigned char want = f->old;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        const unsigned char *p = iov[i].iov_base;
        for (size_t k = 0; k < iov[i].iov_len; k++, want++)
            assert_int_equal(p[k], want);
        total += iov[i].iov_len;
    }
    assert_int_equal(total, f->r.len);
}

/* ---- the states of the diagram ------------------------------------------------------------ */

static void test_ring_without_area_offers_nothing(void **state)
{
    (void)state;
    struct ring r;
    ring_init(&r, SIZE);
    struct iovec iov[2];
    char buf[SIZE] = "abc";

    assert_null(r.area);
    assert_true(ring_empty(&r));
    assert_false(ring_full(&r));
    assert_int_equal(ring_room(&r), SIZE);
    /* Capacity is known, but there is nowhere to write until an area is acquired. */
    assert_int_equal(ring_room_iov(&r, iov), 0);
    assert_int_equal(ring_data_iov(&r, iov), 0);
    assert_int_equal(ring_put(&r, buf, 3), 0);
    assert_int_equal(ring_get(&r, buf, 3), 0);
    assert_int_equal(r.len, 0);
}

static void test_empty_ring_offers_the_whole_area_as_one_room_iovec(void **state)
{
    (void)state;
    struct fix f;
    fix_init(&f, SIZE);
    struct iovec iov[2];

    assert_non_null(f.r.area);
    assert_int_equal(ring_room_iov(&f.r, iov), 1);
    assert_iov(&f, &iov[0], 0, SIZE);
    assert_int_equal(ring_data_iov(&f.r, iov), 0);
    assert_true(ring_empty(&f.r));
    fix_done(&f);
}

/* case 1 with free space on both sides: data [head, head+len), room [tail, size) + [0, head). */
static void test_case1_data_in_the_middle(void **state)
{
    (void)state;
    struct fix f;
    fix_init(&f, SIZE);
    struct iovec iov[2];
    reach(&f, 3, 3);

    assert_int_equal(ring_data_iov(&f.r, iov), 1);
    assert_iov(&f, &iov[0], 3, 3);
    assert_int_equal(ring_room_iov(&f.r, iov), 2);
    assert_iov(&f, &iov[0], 6, SIZE - 6);
    assert_iov(&f, &iov[1], 0, 3);
    assert_int_equal(ring_room(&f.r), SIZE - 3);
    assert_data_content(&f);
    fix_done(&f);
}

/* case 1 with head at 0: the room is the single run after the data. */
static void test_case1_head_at_zero(void **state)
{
    (void)state;
    struct fix f;
    fix_init(&f, SIZE);
    struct iovec iov[2];
    reach(&f, 0, 5);

    assert_int_equal(ring_data_iov(&f.r, iov), 1);
    assert_iov(&f, &iov[0], 0, 5);
    assert_int_equal(ring_room_iov(&f.r, iov), 1);
    assert_iov(&f, &iov[0], 5, SIZE - 5);
    assert_data_content(&f);
    fix_done(&f);
}

/* case 1 with the data ending exactly at size: the tail is offset 0, the room is [0, head). */
static void test_case1_data_ends_at_size(void **state)
{
    (void)state;
    struct fix f;
    fix_init(&f, SIZE);
    struct iovec iov[2];
    reach(&f, 5, SIZE - 5);

    assert_int_equal(ring_data_iov(&f.r, iov), 1);
    assert_iov(&f, &iov[0], 5, SIZE - 5);
    assert_int_equal(ring_room_iov(&f.r, iov), 1);
    assert_iov(&f, &iov[0], 0, 5);
    assert_data_content(&f);
    fix_done(&f);
}

/* case 2: data [head, size) + [0, tail), room [tail, head). */
static void test_case2_data_wraps(void **state)
{
    (void)state;
    struct fix f;
    fix_init(&f, SIZE);
    struct iovec iov[2];
    reach(&f, 5, 5); /* tail = 5 + 5 - 8 = 2 */

    assert_int_equal(ring_data_iov(&f.r, iov), 2);
    assert_iov(&f, &iov[0], 5, SIZE - 5);
    assert_iov(&f, &iov[1], 0, 2);
    assert_int_equal(ring_room_iov(&f.r, iov), 1);
    assert_iov(&f, &iov[0], 2, 5 - 2);
    assert_int_equal(ring_room(&f.r), 3);
    assert_data_content(&f);
    fix_done(&f);
}

/* case 2 where only the last byte wrapped: the second data iovec is one byte long. */
static void test_case2_one_byte_wrapped(void **state)
{
    (void)state;
    struct fix f;
    fix_init(&f, SIZE);
    struct iovec iov[2];
    reach(&f, 4, SIZE - 4 + 1);

    assert_int_equal(ring_data_iov(&f.r, iov), 2);
    assert_iov(&f, &iov[0], 4, SIZE - 4);
    assert_iov(&f, &iov[1], 0, 1);
    assert_int_equal(ring_room_iov(&f.r, iov), 1);
    assert_iov(&f, &iov[0], 1, 3);
    assert_data_content(&f);
    fix_done(&f);
}

static void test_full_ring_at_head_zero(void **state)
{
    (void)state;
    struct fix f;
    fix_init(&f, SIZE);
    struct iovec iov[2];
    char c = 'x';
    reach(&f, 0, SIZE);

    assert_true(ring_full(&f.r));
    assert_int_equal(ring_room(&f.r), 0);
    assert_int_equal(ring_room_iov(&f.r, iov), 0);
    assert_int_equal(ring_put(&f.r, &c, 1), 0);
    assert_int_equal(ring_data_iov(&f.r, iov), 1);
    assert_iov(&f, &iov[0], 0, SIZE);
    assert_data_content(&f);
    fix_done(&f);
}

static void test_full_ring_wrapped(void **state)
{
    (void)state;
    struct fix f;
    fix_init(&f, SIZE);
    struct iovec iov[2];
    reach(&f, 3, SIZE);

    assert_true(ring_full(&f.r));
    assert_int_equal(ring_room_iov(&f.r, iov), 0);
    assert_int_equal(ring_data_iov(&f.r, iov), 2);
    assert_iov(&f, &iov[0], 3, SIZE - 3);
    assert_iov(&f, &iov[1], 0, 3);
    assert_data_content(&f);
    fix_done(&f);
}

/* "When the ring drains, head goes back to 0, so the next read gets one contiguous iovec." */
static void test_drain_resets_head_to_zero(void **state)
{
    (void)state;
    struct fix f;
    fix_init(&f, SIZE);
    struct iovec iov[2];
    reach(&f, 6, 4); /* wrapped: [6, 8) + [0, 2) */

    ring_consume(&f.r, 3); /* head moves past the end of the area and wraps */
    assert_int_equal(f.r.head, 1);
    assert_int_equal(f.r.len, 1);
    ring_consume(&f.r, 1);
    assert_true(ring_empty(&f.r));
    assert_int_equal(f.r.head, 0);
    assert_int_equal(ring_room_iov(&f.r, iov), 1);
    assert_iov(&f, &iov[0], 0, SIZE);
    fix_done(&f);
}

/* Consuming the bytes up to exactly the end of the area leaves head at 0 too (wrap, not size). */
static void test_consume_to_end_of_area_wraps_head(void **state)
{
    (void)state;
    struct fix f;
    fix_init(&f, SIZE);
    reach(&f, 5, 5);

    get_n(&f, SIZE - 5);
    assert_int_equal(f.r.head, 0);
    assert_int_equal(f.r.len, 2);
    assert_data_content(&f);
    fix_done(&f);
}

/* Writing through the room iovecs (as readv does) and reading through the data iovecs (as
 * writev does), with partial transfers that cross the end of the area. */
static void test_produce_and_consume_across_the_boundary(void **state)
{
    (void)state;
    struct fix f;
    fix_init(&f, SIZE);
    struct iovec iov[2];
    reach(&f, 5, 2); /* tail = 7: room is [7, 8) + [0, 5) */

    assert_int_equal(ring_room_iov(&f.r, iov), 2);
    assert_int_equal(iov[0].iov_len + iov[1].iov_len, ring_room(&f.r));
    /* A short read of 4 bytes: 1 lands at the end of the area, 3 at the start. */
    size_t want = 4, done = 0;
    for (int i = 0; i < 2 && done < want; i++) {
        size_t k = iov[i].iov_len < want - done ? iov[i].iov_len : want - done;
        for (size_t j = 0; j < k; j++)
            ((unsigned char *)iov[i].iov_base)[j] = (unsigned char)(f.next + done + j);
        done += k;
    }
    ring_produce(&f.r, want);
    f.next = (unsigned char)(f.next + want);
    assert_int_equal(f.r.len, 6);
    assert_int_equal(ring_data_iov(&f.r, iov), 2);
    assert_iov(&f, &iov[0], 5, 3);
    assert_iov(&f, &iov[1], 0, 3);
    assert_data_content(&f);

    /* A short write of 2 bytes, then one of 3 that crosses the end of the area. */
    ring_consume(&f.r, 2);
    f.old = (unsigned char)(f.old + 2);
    assert_int_equal(f.r.head, 7);
    assert_data_content(&f);
    ring_consume(&f.r, 3);
    f.old = (unsigned char)(f.old + 3);
    assert_int_equal(f.r.head, 2);
    assert_int_equal(f.r.len, 1);
    assert_int_equal(ring_data_iov(&f.r, iov), 1);
    assert_iov(&f, &iov[0], 2, 1);
    assert_data_content(&f);
    fix_done(&f);
}

static void test_put_and_get_stop_at_room_and_data(void **state)
{
    (void)state;
    struct fix f;
    fix_init(&f, SIZE);
    char in[SIZE * 2], out[SIZE * 2];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (char)('a' + i);

    assert_int_equal(ring_put(&f.r, in, 5), 5);
    assert_int_equal(ring_put(&f.r, in + 5, sizeof(in) - 5), SIZE - 5);
    assert_true(ring_full(&f.r));
    assert_int_equal(ring_get(&f.r, out, 2), 2);
    assert_int_equal(ring_put(&f.r, in + SIZE, sizeof(in) - SIZE), 2); /* wraps behind head */
    assert_int_equal(ring_get(&f.r, out + 2, sizeof(out) - 2), SIZE);
    assert_true(ring_empty(&f.r));
    assert_memory_equal(out, in, SIZE + 2);
    assert_int_equal(ring_get(&f.r, out, 1), 0);
    fix_done(&f);
}

/* ---- random operation sequences against a reference model ---------------------------------- */

/* The model: the bytes the ring must hold, oldest first, in a plain array. */
struct model {
    unsigned char *q;
    size_t len;
    size_t cap;
};

static void model_push(struct model *m, const unsigned char *p, size_t n)
{
    assert_true(m->len + n <= m->cap);
    memcpy(m->q + m->len, p, n);
    m->len += n;
}

static void model_pop(struct model *m, unsigned char *p, size_t n)
{
    assert_true(n <= m->len);
    if (p)
        memcpy(p, m->q, n);
    memmove(m->q, m->q + n, m->len - n);
    m->len -= n;
}

static void check_against_model(const struct ring *r, const struct model *m)
{
    struct iovec iov[2];
    assert_int_equal(r->len, m->len);
    assert_true(r->len <= r->size);
    assert_int_equal(ring_room(r), r->size - m->len);
    if (!r->area) {
        assert_int_equal(r->len, 0);
        return;
    }
    assert_true(r->head < r->size);
    if (r->len == 0)
        assert_int_equal(r->head, 0);

    int n = ring_data_iov(r, iov);
    assert_in_range(n, r->len ? 1 : 0, r->len ? 2 : 0);
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        assert_true(iov[i].iov_len > 0);
        assert_true((char *)iov[i].iov_base >= r->area);
        assert_true((char *)iov[i].iov_base + iov[i].iov_len <= r->area + r->size);
        assert_memory_equal(iov[i].iov_base, m->q + off, iov[i].iov_len);
        off += iov[i].iov_len;
    }
    assert_int_equal(off, m->len);
    if (n)
        assert_ptr_equal(iov[0].iov_base, r->area + r->head);

    n = ring_room_iov(r, iov);
    size_t room = 0;
    for (int i = 0; i < n; i++) {
        assert_true(iov[i].iov_len > 0);
        assert_true((char *)iov[i].iov_base >= r->area);
        assert_true((char *)iov[i].iov_base + iov[i].iov_len <= r->area + r->size);
        room += iov[i].iov_len;
    }
    assert_int_equal(room, ring_room(r));
    if (n)
        assert_ptr_equal(iov[0].iov_base, r->area + (r->head + r->len) % r->size);
}

static void random_run(size_t size, unsigned steps)
{
    struct bufpool pool;
    struct ring r;
    struct model m = {malloc(size), 0, size};
    unsigned char *in = malloc(size + 3), *out = malloc(size + 3), *expect = malloc(size + 3);
    unsigned char counter = 0;
    assert_non_null(m.q);
    assert_non_null(in);
    assert_non_null(out);
    assert_non_null(expect);
    bufpool_init(&pool, size, 1);
    ring_init(&r, size);

    for (unsigned step = 0; step < steps; step++) {
        size_t n = rng_below(size + 3);
        switch (rng_below(6)) {
        case 0: { /* ring_put of up to size + 2 bytes */
            if (ring_acquire(&r, &pool) != 0)
                fail_msg("acquire failed");
            for (size_t i = 0; i < n; i++)
                in[i] = counter++;
            size_t want = n < ring_room(&r) ? n : ring_room(&r);
            assert_int_equal(ring_put(&r, in, n), want);
            counter = (unsigned char)(counter - (n - want)); /* the rest was not stored */
            model_push(&m, in, want);
            break;
        }
        case 1: { /* ring_get of up to size + 2 bytes */
            size_t want = n < m.len ? n : m.len;
            assert_int_equal(ring_get(&r, out, n), want);
            model_pop(&m, expect, want);
            assert_memory_equal(out, expect, want);
            break;
        }
        case 2: { /* a readv-like write through the room iovecs, then ring_produce */
            if (ring_acquire(&r, &pool) != 0)
                fail_msg("acquire failed");
            struct iovec iov[2];
            int cnt = ring_room_iov(&r, iov);
            size_t k = rng_below(ring_room(&r) + 1), done = 0;
            for (int i = 0; i < cnt && done < k; i++) {
                size_t c = iov[i].iov_len < k - done ? iov[i].iov_len : k - done;
                for (size_t j = 0; j < c; j++)
                    in[done + j] = counter++;
                memcpy(iov[i].iov_base, in + done, c);
                done += c;
            }
            assert_int_equal(done, k);
            ring_produce(&r, k);
            model_push(&m, in, k);
            break;
        }
        case 3: { /* a writev-like partial send, then ring_consume */
            size_t k = rng_below(m.len + 1);
            ring_consume(&r, k);
            model_pop(&m, NULL, k);
            break;
        }
        case 4: /* release: only an empty ring gives its area back */
            if (r.area) {
                char *area = r.area;
                ring_release(&r, &pool);
                if (m.len)
                    assert_ptr_equal(r.area, area);
                else
                    assert_null(r.area);
            }
            break;
        default: /* acquire: a no-op when the ring already has an area */
            if (r.area) {
                char *area = r.area;
                assert_int_equal(ring_acquire(&r, &pool), 0);
                assert_ptr_equal(r.area, area);
            }
            break;
        }
        check_against_model(&r, &m);
        assert_int_equal(pool.in_use, r.area ? 1 : 0);
    }
    r.len = 0;
    ring_release(&r, &pool);
    bufpool_destroy(&pool);
    free(m.q);
    free(in);
    free(out);
    free(expect);
}

static void test_random_sequences_match_a_reference_model(void **state)
{
    (void)state;
    static const size_t sizes[] = {1, 2, 3, 7, 8, 64, 1000};
    rng_seed(0x5eedf00dull);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        random_run(sizes[i], 20000);
}

/* ---- buffer pool ----------------------------------------------------------------------------- */

static void test_bufpool_reuses_returned_buffers(void **state)
{
    (void)state;
    struct bufpool p;
    bufpool_init(&p, 4096, 8);

    void *a = bufpool_get(&p);
    assert_non_null(a);
    memset(a, 0xab, 4096); /* the whole size is usable */
    assert_int_equal(p.in_use, 1);
    assert_int_equal(p.nfree, 0);
    bufpool_put(&p, a);
    assert_int_equal(p.in_use, 0);
    assert_int_equal(p.nfree, 1);

    void *b = bufpool_get(&p);
    assert_ptr_equal(b, a); /* from the free list, not from malloc */
    assert_int_equal(p.nfree, 0);
    assert_int_equal(p.in_use, 1);

    void *c = bufpool_get(&p); /* the free list is empty again: a new buffer */
    assert_non_null(c);
    assert_ptr_not_equal(c, b);
    assert_int_equal(p.in_use, 2);
    bufpool_put(&p, b);
    bufpool_put(&p, c);
    assert_int_equal(p.nfree, 2);

    void *d = bufpool_get(&p), *e = bufpool_get(&p);
    assert_true((d == b && e == c) || (d == c && e == b));
    bufpool_put(&p, d);
    bufpool_put(&p, e);
    bufpool_destroy(&p);
    assert_int_equal(p.nfree, 0);
    assert_null(p.free);
}

static void test_bufpool_keeps_at_most_max_free(void **state)
{
    (void)state;
    struct bufpool p;
    void *bufs[5];
    bufpool_init(&p, 256, 2);
    for (int i = 0; i < 5; i++)
        bufs[i] = bufpool_get(&p);
    assert_int_equal(p.in_use, 5);
    for (int i = 0; i < 5; i++) {
        bufpool_put(&p, bufs[i]);
        assert_int_equal(p.nfree, i < 2 ? (size_t)i + 1 : 2);
    }
    assert_int_equal(p.in_use, 0);
    /* The two kept are handed out again; the third get allocates. */
    void *x = bufpool_get(&p), *y = bufpool_get(&p), *z = bufpool_get(&p);
    assert_int_equal(p.nfree, 0);
    assert_int_equal(p.in_use, 3);
    bufpool_put(&p, x);
    bufpool_put(&p, y);
    bufpool_put(&p, z);
    bufpool_destroy(&p); /* ASan's leak check sees anything freed twice or never */
}

/* A trim frees what stayed free since the previous one, and keeps what was used in between. */
static void test_bufpool_trim_frees_what_no_burst_used(void **state)
{
    (void)state;
    struct bufpool p;
    void *b[6];
    bufpool_init(&p, 256, 8);
    for (int i = 0; i < 6; i++)
        b[i] = bufpool_get(&p);
    for (int i = 0; i < 6; i++)
        bufpool_put(&p, b[i]);
    assert_int_equal(p.nfree, 6);
    /* The first trim only starts the period: the burst just ended. */
    assert_int_equal(bufpool_trim(&p), 0);
    assert_int_equal(p.nfree, 6);
    /* A burst of two during the period: four were never taken, and go. */
    void *x = bufpool_get(&p), *y = bufpool_get(&p);
    bufpool_put(&p, x);
    bufpool_put(&p, y);
    assert_int_equal(bufpool_trim(&p), 4);
    assert_int_equal(p.nfree, 2);
    /* The two kept are handed out again, then the pool allocates. */
    void *a = bufpool_get(&p), *c = bufpool_get(&p), *d = bufpool_get(&p);
    assert_true((a == x || a == y) && (c == x || c == y));
    assert_int_equal(p.in_use, 3);
    bufpool_put(&p, a);
    bufpool_put(&p, c);
    bufpool_put(&p, d);
    /* A period with no use at all frees the rest, the one after frees nothing more. */
    assert_int_equal(bufpool_trim(&p), 0); /* low was 0 during the last burst */
    assert_int_equal(bufpool_trim(&p), 3);
    assert_int_equal(p.nfree, 0);
    assert_int_equal(bufpool_trim(&p), 0);
    bufpool_destroy(&p);
}

static void test_bufpool_with_max_free_zero_caches_nothing(void **state)
{
    (void)state;
    struct bufpool p;
    bufpool_init(&p, 64, 0);
    void *a = bufpool_get(&p);
    bufpool_put(&p, a);
    assert_int_equal(p.nfree, 0);
    assert_null(p.free);
    assert_int_equal(p.in_use, 0);
    bufpool_destroy(&p);
}

/* A buffer smaller than a pointer still works (the free-list link lives inside the buffer). */
static void test_bufpool_tiny_buffers(void **state)
{
    (void)state;
    struct bufpool p;
    bufpool_init(&p, 1, 4);
    unsigned char *a = bufpool_get(&p), *b = bufpool_get(&p);
    a[0] = 1;
    b[0] = 2;
    bufpool_put(&p, a);
    bufpool_put(&p, b);
    assert_int_equal(p.nfree, 2);
    bufpool_destroy(&p);
}

/* ---- ring_acquire / ring_release --------------------------------------------------------- */

static void test_acquire_takes_one_area_and_is_idempotent(void **state)
{
    (void)state;
    struct bufpool p;
    struct ring r;
    bufpool_init(&p, SIZE, 4);
    ring_init(&r, SIZE);

    assert_int_equal(ring_acquire(&r, &p), 0);
    char *area = r.area;
    assert_non_null(area);
    assert_int_equal(p.in_use, 1);
    assert_int_equal(ring_put(&r, "abc", 3), 3);
    assert_int_equal(ring_acquire(&r, &p), 0); /* already has one: keeps it and its bytes */
    assert_ptr_equal(r.area, area);
    assert_int_equal(r.len, 3);
    assert_int_equal(p.in_use, 1);

    char out[3];
    assert_int_equal(ring_get(&r, out, 3), 3);
    assert_memory_equal(out, "abc", 3);
    ring_release(&r, &p);
    bufpool_destroy(&p);
}

static void test_release_only_when_empty(void **state)
{
    (void)state;
    struct bufpool p;
    struct ring r;
    char out[4];
    bufpool_init(&p, SIZE, 4);
    ring_init(&r, SIZE);

    ring_release(&r, &p); /* no area: nothing to give back */
    assert_null(r.area);
    assert_int_equal(p.nfree, 0);

    assert_int_equal(ring_acquire(&r, &p), 0);
    char *area = r.area;
    assert_int_equal(ring_put(&r, "wxyz", 4), 4);
    ring_get(&r, out, 1);
    ring_release(&r, &p); /* still holds bytes: the area stays */
    assert_ptr_equal(r.area, area);
    assert_int_equal(r.len, 3);
    assert_int_equal(p.in_use, 1);
    assert_int_equal(ring_get(&r, out, 3), 3);
    assert_memory_equal(out, "xyz", 3);

    ring_release(&r, &p); /* empty: the area goes back to the pool */
    assert_null(r.area);
    assert_int_equal(r.head, 0);
    assert_int_equal(p.in_use, 0);
    assert_int_equal(p.nfree, 1);
    assert_int_equal(ring_room(&r), SIZE);

    assert_int_equal(ring_acquire(&r, &p), 0); /* and comes back from it */
    assert_ptr_equal(r.area, area);
    assert_int_equal(r.head, 0);
    assert_int_equal(r.len, 0);
    assert_int_equal(p.nfree, 0);
    ring_release(&r, &p);
    bufpool_destroy(&p);
}

/* A released ring takes its next area from any pool and the pool's size with it: how a ring grows
 * while its direction streams and shrinks back (the caller returns the area to its own pool). */
static void test_released_ring_takes_the_size_of_its_next_pool(void **state)
{
    (void)state;
    struct bufpool small, big;
    struct ring r;
    struct iovec iov[2];
    char out[8];
    bufpool_init(&small, SIZE, 4);
    bufpool_init(&big, 4 * SIZE, 4);
    ring_init(&r, SIZE);

    assert_int_equal(ring_acquire(&r, &big), 0);
    assert_int_equal(r.size, 4 * SIZE);
    assert_int_equal(ring_room(&r), 4 * SIZE);
    assert_int_equal(ring_room_iov(&r, iov), 1);
    assert_int_equal(iov[0].iov_len, 4 * SIZE);
    /* Fill past what the small ring could hold, wrap around, and read it all back in order. */
    char in[4 * SIZE];
    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (char)('a' + i % 23);
    assert_int_equal(ring_put(&r, in, sizeof(in)), sizeof(in));
    assert_true(ring_full(&r));
    char back[4 * SIZE];
    assert_int_equal(ring_get(&r, back, 5), 5);
    assert_int_equal(ring_put(&r, "12345", 5), 5); /* wraps */
    assert_int_equal(ring_get(&r, back + 5, sizeof(back) - 5), sizeof(back) - 5);
    assert_memory_equal(back, in, sizeof(in));
    assert_int_equal(ring_get(&r, out, sizeof(out)), 5);
    assert_memory_equal(out, "12345", 5);

    ring_release(&r, &big);
    assert_null(r.area);
    assert_int_equal(big.nfree, 1);
    assert_int_equal(ring_acquire(&r, &small), 0);
    assert_int_equal(r.size, SIZE);
    assert_int_equal(ring_room(&r), SIZE);
    assert_int_equal(ring_put(&r, in, sizeof(in)), SIZE); /* bounded by the new size */
    assert_true(ring_full(&r));
    assert_int_equal(ring_get(&r, back, sizeof(back)), SIZE);
    ring_release(&r, &small);
    assert_int_equal(small.in_use, 0);
    assert_int_equal(big.in_use, 0);
    bufpool_destroy(&small);
    bufpool_destroy(&big);
}

static void test_acquire_reports_enomem(void **state)
{
    (void)state;
    struct bufpool p;
    struct ring r;
    size_t huge = SIZE_MAX / 2;
    bufpool_init(&p, huge, 1);
    ring_init(&r, huge);
    assert_int_equal(ring_acquire(&r, &p), -ENOMEM);
    assert_null(r.area);
    assert_int_equal(p.in_use, 0);
    assert_int_equal(r.len, 0);
    bufpool_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_without_area_offers_nothing),
        cmocka_unit_test(test_empty_ring_offers_the_whole_area_as_one_room_iovec),
        cmocka_unit_test(test_case1_data_in_the_middle),
        cmocka_unit_test(test_case1_head_at_zero),
        cmocka_unit_test(test_case1_data_ends_at_size),
        cmocka_unit_test(test_case2_data_wraps),
        cmocka_unit_test(test_case2_one_byte_wrapped),
        cmocka_unit_test(test_full_ring_at_head_zero),
        cmocka_unit_test(test_full_ring_wrapped),
        cmocka_unit_test(test_drain_resets_head_to_zero),
        cmocka_unit_test(test_consume_to_end_of_area_wraps_head),
        cmocka_unit_test(test_produce_and_consume_across_the_boundary),
        cmocka_unit_test(test_put_and_get_stop_at_room_and_data),
        cmocka_unit_test(test_random_sequences_match_a_reference_model),
        cmocka_unit_test(test_bufpool_reuses_returned_buffers),
        cmocka_unit_test(test_bufpool_keeps_at_most_max_free),
        cmocka_unit_test(test_bufpool_trim_frees_what_no_burst_used),
        cmocka_unit_test(test_bufpool_with_max_free_zero_caches_nothing),
        cmocka_unit_test(test_bufpool_tiny_buffers),
        cmocka_unit_test(test_acquire_takes_one_area_and_is_idempotent),
        cmocka_unit_test(test_release_only_when_empty),
        cmocka_unit_test(test_released_ring_takes_the_size_of_its_next_pool),
        cmocka_unit_test(test_acquire_reports_enomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
