/*
 * test_pipepool.c - the specification of the splice routes' pipe pool and of how the open-file
 * limit is shared between sockets and pipes (pipepool.h).
 *
 * A pipe handed back empty is the one handed out next (no new descriptors): new-sized pipes to
 * anyone, grown ones only to who asks for a big one. One that still holds bytes, or finds its list
 * full, is closed. The process-wide count follows every pipe opened and closed, no pipe is opened
 * past the limit, and after the kernel refuses a pipe none is tried for PIPE_RETRY_MS. The split
 * gives sockets the descriptors max_connections promises and pipes only what is left.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <sys/resource.h>
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
    struct spipe *p = pipepool_get(&f.pp, 0, 0);
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
    struct spipe *p = pipepool_get(&f.pp, 0, 0);
    assert_non_null(p);
    int rd = p->rd, wr = p->wr;
    pipepool_put(&f.pp, p);
    assert_int_equal(f.pp.nfree, 1);
    assert_true(fd_open(rd) && fd_open(wr));
    struct spipe *q = pipepool_get(&f.pp, 0, 0);
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

static void test_a_pipe_holding_bytes_is_closed(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, 4, 8);
    struct spipe *full = pipepool_get(&f.pp, 0, 0);
    assert_non_null(full);
    assert_int_equal(write(full->wr, "abc", 3), 3);
    full->len = 3;
    int rd = full->rd, wr = full->wr;
    pipepool_put(&f.pp, full);
    assert_int_equal(f.pp.nfree, 0);
    assert_int_equal(atomic_load(&f.open), 0);
    assert_false(fd_open(rd) || fd_open(wr));
}

static struct spipe *grown(struct fixture *f, size_t size)
{
    struct spipe *p = pipepool_get(&f->pp, 0, 0);
    assert_non_null(p);
    int got = fcntl(p->wr, F_SETPIPE_SZ, (int)size);
    assert_int_equal(got, (int)size);
    p->cap = (size_t)got;
    return p;
}

/* Grown pipes are kept apart, of one size, and handed out only to who asks for a big one. */
static void test_grown_pipes_go_to_who_streams(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, 4, 8);
    struct spipe *g = grown(&f, 4 * 65536);
    struct spipe *other = grown(&f, 2 * 65536);
    int other_rd = other->rd;
    assert_int_equal(atomic_load(&f.open), 2);
    g->charged = 12345;
    pipepool_put(&f.pp, g);
    assert_int_equal(f.pp.nfree_big, 1);
    assert_int_equal(f.pp.big, 4 * 65536);
    /* Another grown size is not kept. */
    pipepool_put(&f.pp, other);
    assert_int_equal(f.pp.nfree_big, 1);
    assert_false(fd_open(other_rd));
    assert_int_equal(atomic_load(&f.open), 1);
    /* Not for a direction that does not stream: it gets a new-sized pipe. */
    struct spipe *small = pipepool_get(&f.pp, 0, 0);
    assert_non_null(small);
    assert_ptr_not_equal(small, g);
    assert_int_equal(small->cap, f.pp.base);
    /* Nor for one that wants another size (a route with another buffer_max). */
    pipepool_put(&f.pp, small);
    assert_ptr_equal(pipepool_get(&f.pp, 2 * 65536, 0), small);
    struct spipe *big = pipepool_get(&f.pp, 4 * 65536, 0);
    assert_ptr_equal(big, g);
    assert_int_equal(big->cap, 4 * 65536);
    assert_int_equal(big->charged, 0);
    /* Asked for a big one with none kept: a new-sized one will do. */
    pipepool_put(&f.pp, small);
    assert_ptr_equal(pipepool_get(&f.pp, 4 * 65536, 0), small);
    pipepool_put(&f.pp, small);
    /* With the grown list empty, the next grown pipe handed back sets its size. */
    struct spipe *other2 = grown(&f, 2 * 65536);
    pipepool_put(&f.pp, other2);
    assert_int_equal(f.pp.nfree_big, 1);
    assert_int_equal(f.pp.big, 2 * 65536);
    pipepool_put(&f.pp, big); /* now the other size: closed */
    assert_int_equal(f.pp.nfree_big, 1);
    assert_ptr_equal(pipepool_get(&f.pp, 2 * 65536, 0), other2);
    pipepool_put(&f.pp, other2);
    assert_int_equal(pipepool_close_kept(&f.pp), 1); /* other2 was the kept new-sized pipe */
    assert_int_equal(atomic_load(&f.open), 0);
}

static void test_the_pool_keeps_at_most_max_free(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, 2, 8);
    struct spipe *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = pipepool_get(&f.pp, 0, 0);
        assert_non_null(p[i]);
    }
    int last_rd = p[2]->rd;
    for (int i = 0; i < 3; i++)
        pipepool_put(&f.pp, p[i]);
    assert_int_equal(f.pp.nfree, 2);
    assert_int_equal(atomic_load(&f.open), 2);
    assert_false(fd_open(last_rd));
    assert_int_equal(pipepool_close_kept(&f.pp), 2);
    assert_int_equal(pipepool_close_kept(&f.pp), 0);
    assert_int_equal(f.pp.nfree, 0);
    assert_int_equal(atomic_load(&f.open), 0);
}

/* Kept pipes that no burst used for a whole period are closed, in both lists. */
static void test_trim_closes_pipes_no_burst_used(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, 4, 8);
    struct spipe *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = pipepool_get(&f.pp, 0, 0);
        assert_non_null(p[i]);
    }
    struct spipe *g = grown(&f, 4 * 65536);
    for (int i = 0; i < 3; i++)
        pipepool_put(&f.pp, p[i]);
    pipepool_put(&f.pp, g);
    assert_int_equal(f.pp.nfree, 3);
    assert_int_equal(f.pp.nfree_big, 1);
    assert_int_equal(pipepool_trim(&f.pp), 0); /* starts the period */
    struct spipe *used = pipepool_get(&f.pp, 0, 0);
    pipepool_put(&f.pp, used);
    /* Two new-sized and the grown one stayed unused: closed; the one used stays. */
    assert_int_equal(pipepool_trim(&f.pp), 3);
    assert_int_equal(f.pp.nfree, 1);
    assert_int_equal(f.pp.nfree_big, 0);
    assert_int_equal(atomic_load(&f.open), 1);
    assert_ptr_equal(pipepool_get(&f.pp, 0, 0), used);
    pipepool_put(&f.pp, used);
    assert_int_equal(pipepool_trim(&f.pp), 0);
    assert_int_equal(pipepool_trim(&f.pp), 1);
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
    struct spipe *a = pipepool_get(&f.pp, 0, 0), *b = pipepool_get(&other, 0, 0);
    assert_non_null(a);
    assert_non_null(b);
    errno = 0;
    assert_null(pipepool_get(&f.pp, 0, 0));
    assert_int_equal(errno, EAGAIN);
    assert_null(pipepool_get(&other, 0, 0));
    assert_int_equal(atomic_load(&f.open), 2);
    /* A kept pipe is still open: it is handed out again, but no new one is made. */
    pipepool_put(&f.pp, a);
    assert_null(pipepool_get(&other, 0, 0));
    assert_ptr_equal(pipepool_get(&f.pp, 0, 0), a);
    pipepool_put(&f.pp, a);
    pipepool_put(&other, b);
    pipepool_destroy(&f.pp);
    pipepool_destroy(&other);
    assert_int_equal(atomic_load(&f.open), 0);
    /* A lower limit applies to the next pipe. */
    atomic_store(&f.limit, 0);
    assert_null(pipepool_get(&f.pp, 0, 0));
}

/* Lowered below what is open (a reload), the limit closes pipes as they come back. */
static void test_a_lowered_limit_closes_pipes_handed_back(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, 4, 3);
    struct spipe *p[3];
    for (int i = 0; i < 3; i++) {
        p[i] = pipepool_get(&f.pp, 0, 0);
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

/* Out of descriptors, the pool says so at once for PIPE_RETRY_MS, without asking the kernel. */
static void test_a_refused_pipe_is_not_retried_at_once(void **state)
{
    (void)state;
    struct fixture f;
    setup(&f, 4, 8);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(null >= 0);
    struct rlimit old;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    struct rlimit low = old;
    low.rlim_cur = 256;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    /* Fill every descriptor but one: a pipe needs two. */
    int fill[256], n = 0;
    while (n < 256 && (fill[n] = dup(null)) != -1)
        n++;
    assert_int_equal(errno, EMFILE);
    assert_true(n > 0);
    close(fill[--n]);
    errno = 0;
    assert_null(pipepool_get(&f.pp, 0, 1000));
    assert_int_equal(errno, EMFILE);
    assert_int_equal(atomic_load(&f.open), 0);
    /* Descriptors free again, but the back-off holds until it ends. */
    while (n > 0)
        close(fill[--n]);
    close(null);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    errno = 0;
    assert_null(pipepool_get(&f.pp, 0, 1000 + PIPE_RETRY_MS - 1));
    assert_int_equal(errno, EMFILE);
    struct spipe *p = pipepool_get(&f.pp, 0, 1000 + PIPE_RETRY_MS);
    assert_non_null(p);
    pipepool_put(&f.pp, p);
    pipepool_destroy(&f.pp);
    assert_int_equal(atomic_load(&f.open), 0);
}

static void test_split_without_splice_gives_every_descriptor_to_sockets(void **state)
{
    (void)state;
    unsigned conns, pipes;
    pipepool_split_fds(19960, 0, false, &conns, &pipes);
    assert_int_equal(conns, 9980);
    assert_int_equal(pipes, 0);
    pipepool_split_fds(19960, 500, false, &conns, &pipes);
    assert_int_equal(conns, 500);
    assert_int_equal(pipes, 0);
}

static void test_split_with_splice_keeps_most_descriptors_for_sockets(void **state)
{
    (void)state;
    unsigned conns, pipes;
    /* The open-file limit of this machine class (20000, less ferry's own). */
    pipepool_split_fds(19960, 0, true, &conns, &pipes);
    assert_true(conns >= 9000);
    assert_true(pipes >= 256);
    assert_true(2 * (long)conns + 2 * (long)pipes <= 19960);
    /* A small limit: an eighth goes to pipes (less than PIPE_FDS_SHARE). */
    pipepool_split_fds(800, 0, true, &conns, &pipes);
    assert_int_equal(conns, 350);
    assert_int_equal(pipes, 50);
    /* PIPE_FDS_SHARE once an eighth exceeds it, until a sixteenth does. */
    pipepool_split_fds(10000, 0, true, &conns, &pipes);
    assert_int_equal(pipes, PIPE_FDS_SHARE / 2);
    assert_int_equal(conns, (10000 - PIPE_FDS_SHARE) / 2);
    /* A large one (Docker's default limit): a sixteenth. */
    pipepool_split_fds(1048576, 0, true, &conns, &pipes);
    assert_int_equal(pipes, 1048576 / 16 / 2);
    assert_int_equal(conns, (1048576 - 1048576 / 16) / 2);
}

static void test_split_with_explicit_max_leaves_pipes_the_rest(void **state)
{
    (void)state;
    unsigned conns, pipes;
    pipepool_split_fds(19960, 4000, true, &conns, &pipes);
    assert_int_equal(conns, 4000);
    assert_int_equal(pipes, (19960 - 8000) / 2);
    /* Sockets promised every descriptor: pipes still get a few (the kernel may refuse them). */
    pipepool_split_fds(19960, 10000, true, &conns, &pipes);
    assert_int_equal(conns, 10000);
    assert_int_equal(pipes, PIPES_MIN);
    /* Nothing usable at all still allows one connection. */
    pipepool_split_fds(-5, 0, false, &conns, &pipes);
    assert_int_equal(conns, 1);
    /* A tiny derived limit gives pipes their eighth, however small. */
    pipepool_split_fds(32, 0, true, &conns, &pipes);
    assert_int_equal(conns, 14);
    assert_int_equal(pipes, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_new_pipe_is_empty_nonblocking_and_counted),
        cmocka_unit_test(test_an_empty_pipe_handed_back_is_reused),
        cmocka_unit_test(test_a_pipe_holding_bytes_is_closed),
        cmocka_unit_test(test_grown_pipes_go_to_who_streams),
        cmocka_unit_test(test_the_pool_keeps_at_most_max_free),
        cmocka_unit_test(test_trim_closes_pipes_no_burst_used),
        cmocka_unit_test(test_no_pipe_is_opened_past_the_limit),
        cmocka_unit_test(test_a_lowered_limit_closes_pipes_handed_back),
        cmocka_unit_test(test_a_refused_pipe_is_not_retried_at_once),
        cmocka_unit_test(test_split_without_splice_gives_every_descriptor_to_sockets),
        cmocka_unit_test(test_split_with_splice_keeps_most_descriptors_for_sockets),
        cmocka_unit_test(test_split_with_explicit_max_leaves_pipes_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
