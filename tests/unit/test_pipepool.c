/*
 * test_pipepool.c - the specification of the splice routes' pipe pool and of how the open-file
 * limit is shared between sockets and pipes (pipepool.h).
 *
 * A pipe handed back empty and at its first size is the one handed out next (no new descriptors);
 * one that still holds bytes, has grown, or finds the pool full is closed. The process-wide count
 * follows every pipe opened and closed, and no pipe is opened past the limit. The split gives
 * sockets the descriptors max_connections promises and pipes only what is left.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "pipepool.h"

struct fixture {
    atomic_uint open, limit;
    struct pipepool pp;
};

static void setup(struct fixture *f, unsigned max_free, unsigned limit)
{
    atomic_init(&f->open, 0);
    atomic_init(&f->limit, limit);
    pipepool_init(&f->pp, max_free, &f->open, &f->limit);
}

static bool fd_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

static void test_a_new_pipe_is_empty_nonblocking_and_counted(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, 4, 8);
    struct spipe *p = pipepool_get(&f.pp);
    assert_non_null(p);
    assert_int_equal(atomic_load(&f.open), 1);
    assert_int_equal(p->len, 0);
    assert_int_equal(p->cap, (size_t)fcntl(p->wr, F_GETPIPE_SZ));
    assert_int_equal(f.pp.base, p->cap);
    assert_true(fcntl(p->rd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(p->wr, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(p->rd, F_GETFD) & FD_CLOEXEC);
    /* The two ends are one pipe. */
    assert_int_equal(write(p->wr, "xy", 2), 2);
    char buf[4];
    assert_int_equal(read(p->rd, buf, sizeof buf), 2);
    assert_int_equal(read(p->rd, buf, sizeof buf), -1);
    assert_int_equal(errno, EAGAIN);
    pipepool_put(&f.pp, p);
    pipepool_destroy(&f.pp);
    assert_int_equal(atomic_load(&f.open), 0);
}

static void test_an_empty_pipe_handed_back_is_reused(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, 4, 8);
    struct spipe *p = pipepool_get(&f.pp);
    assert_non_null(p);
    int rd = p->rd, wr = p->wr;
    pipepool_put(&f.pp, p);
    assert_int_equal(f.pp.nfree, 1);
    assert_true(fd_open(rd) && fd_open(wr));
    struct spipe *q = pipepool_get(&f.pp);
    assert_non_null(q);
    assert_int_equal(q->rd, rd);
    assert_int_equal(q->wr, wr);
    assert_int_equal(f.pp.nfree, 0);
    assert_int_equal(atomic_load(&f.open), 1);
    pipepool_put(&f.pp, q);
    pipepool_destroy(&f.pp);
    assert_false(fd_open(rd) || fd_open(wr));
    assert_int_equal(atomic_load(&f.open), 0);
}

static void test_a_pipe_holding_bytes_or_grown_is_closed(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, 4, 8);
    struct spipe *full = pipepool_get(&f.pp), *grown = pipepool_get(&f.pp);
    assert_non_null(full);
    assert_non_null(grown);
    assert_int_equal(atomic_load(&f.open), 2);
    assert_int_equal(write(full->wr, "abc", 3), 3);
    full->len = 3;
    int got = fcntl(grown->wr, F_SETPIPE_SZ, (int)f.pp.base * 2);
    assert_true(got > (int)f.pp.base);
    grown->cap = (size_t)got;
    int fds[4] = {full->rd, full->wr, grown->rd, grown->wr};
    pipepool_put(&f.pp, full);
    pipepool_put(&f.pp, grown);
    assert_int_equal(f.pp.nfree, 0);
    assert_int_equal(atomic_load(&f.open), 0);
    for (int i = 0; i < 4; i++)
        assert_false(fd_open(fds[i]));
}

static void test_the_pool_keeps_at_most_max_free(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, 2, 8);
    struct spipe *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = pipepool_get(&f.pp);
        assert_non_null(p[i]);
    }
    int last_rd = p[2]->rd;
    for (int i = 0; i < 3; i++)
        pipepool_put(&f.pp, p[i]);
    assert_int_equal(f.pp.nfree, 2);
    assert_int_equal(atomic_load(&f.open), 2);
    assert_false(fd_open(last_rd));
    assert_int_equal(pipepool_trim(&f.pp, 1), 1);
    assert_int_equal(f.pp.nfree, 1);
    assert_int_equal(atomic_load(&f.open), 1);
    assert_int_equal(pipepool_trim(&f.pp, 0), 1);
    assert_int_equal(pipepool_trim(&f.pp, 0), 0);
    assert_int_equal(atomic_load(&f.open), 0);
}

/* The limit counts every pipe open in the process, other pools' and kept ones included. */
static void test_no_pipe_is_opened_past_the_limit(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, 4, 2);
    struct pipepool other;
    pipepool_init(&other, 4, &f.open, &f.limit);
    struct spipe *a = pipepool_get(&f.pp), *b = pipepool_get(&other);
    assert_non_null(a);
    assert_non_null(b);
    errno = 0;
    assert_null(pipepool_get(&f.pp));
    assert_int_equal(errno, EAGAIN);
    assert_null(pipepool_get(&other));
    assert_int_equal(atomic_load(&f.open), 2);
    /* A kept pipe is still open: it is handed out again, but no new one is made. */
    pipepool_put(&f.pp, a);
    assert_null(pipepool_get(&other));
    assert_ptr_equal(pipepool_get(&f.pp), a);
    pipepool_put(&f.pp, a);
    pipepool_put(&other, b);
    pipepool_destroy(&f.pp);
    pipepool_destroy(&other);
    assert_int_equal(atomic_load(&f.open), 0);
    /* A lower limit applies to the next pipe. */
    atomic_store(&f.limit, 0);
    assert_null(pipepool_get(&f.pp));
}

/* Lowered below what is open (a reload), the limit closes pipes as they come back. */
static void test_a_lowered_limit_closes_pipes_handed_back(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, 4, 3);
    struct spipe *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = pipepool_get(&f.pp);
        assert_non_null(p[i]);
    }
    atomic_store(&f.limit, 1);
    pipepool_put(&f.pp, p[0]);
    assert_int_equal(f.pp.nfree, 0);
    assert_int_equal(atomic_load(&f.open), 2);
    pipepool_put(&f.pp, p[1]);
    assert_int_equal(atomic_load(&f.open), 1);
    /* Within the limit again: kept. */
    pipepool_put(&f.pp, p[2]);
    assert_int_equal(f.pp.nfree, 1);
    assert_int_equal(atomic_load(&f.open), 1);
    pipepool_destroy(&f.pp);
    assert_int_equal(atomic_load(&f.open), 0);
}

static void test_split_without_splice_gives_every_descriptor_to_sockets(void **state)
{
    (void)state;
    unsigned conns, pipes;
    fd_budget_split(19960, 0, false, &conns, &pipes);
    assert_int_equal(conns, 9980);
    assert_int_equal(pipes, 0);
    fd_budget_split(19960, 500, false, &conns, &pipes);
    assert_int_equal(conns, 500);
    assert_int_equal(pipes, 0);
}

static void test_split_with_splice_keeps_most_descriptors_for_sockets(void **state)
{
    (void)state;
    unsigned conns, pipes;
    /* The open-file limit of this machine class (20000, less ferry's own). */
    fd_budget_split(19960, 0, true, &conns, &pipes);
    assert_true(conns >= 9000);
    assert_true(pipes >= 256);
    assert_true(2 * (long)conns + 2 * (long)pipes <= 19960);
    /* A small limit: an eighth goes to pipes. */
    fd_budget_split(800, 0, true, &conns, &pipes);
    assert_int_equal(conns, 350);
    assert_int_equal(pipes, 50);
    /* A large one: at most PIPE_FDS_SHARE descriptors go to pipes. */
    fd_budget_split(1000000, 0, true, &conns, &pipes);
    assert_int_equal(pipes, PIPE_FDS_SHARE / 2);
    assert_int_equal(conns, (1000000 - PIPE_FDS_SHARE) / 2);
}

static void test_split_with_explicit_max_leaves_pipes_the_rest(void **state)
{
    (void)state;
    unsigned conns, pipes;
    fd_budget_split(19960, 4000, true, &conns, &pipes);
    assert_int_equal(conns, 4000);
    assert_int_equal(pipes, (19960 - 8000) / 2);
    /* Sockets promised every descriptor: pipes still get a few (the kernel may refuse them). */
    fd_budget_split(19960, 10000, true, &conns, &pipes);
    assert_int_equal(conns, 10000);
    assert_int_equal(pipes, PIPES_MIN);
    /* Nothing usable at all still allows one connection. */
    fd_budget_split(-5, 0, false, &conns, &pipes);
    assert_int_equal(conns, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_new_pipe_is_empty_nonblocking_and_counted),
        cmocka_unit_test(test_an_empty_pipe_handed_back_is_reused),
        cmocka_unit_test(test_a_pipe_holding_bytes_or_grown_is_closed),
        cmocka_unit_test(test_the_pool_keeps_at_most_max_free),
        cmocka_unit_test(test_no_pipe_is_opened_past_the_limit),
        cmocka_unit_test(test_a_lowered_limit_closes_pipes_handed_back),
        cmocka_unit_test(test_split_without_splice_gives_every_descriptor_to_sockets),
        cmocka_unit_test(test_split_with_splice_keeps_most_descriptors_for_sockets),
        cmocka_unit_test(test_split_with_explicit_max_leaves_pipes_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
