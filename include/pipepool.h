/*
 * pipepool.h - kernel pipes for splice routes, borrowed while a direction has bytes in flight.
 *
 * A splice route moves a direction's bytes through a pipe. Like a ring's area, the pipe is taken
 * when the direction has something to read and handed back once it drains, so an idle pair holds
 * only its two sockets. A worker keeps a few empty pipes for reuse, and apart from them a few grown
 * ones for directions that stream: a burst then costs no pipe2(), fcntl() or close(). A pipe that
 * still holds bytes is never kept.
 *
 * Each pipe is two file descriptors, and descriptors are the process's scarcest resource here: the
 * pipes open in the process (in use or kept) are counted against a process-wide limit that
 * pipepool_split_fds() derives, so that pipes never take the descriptors the connection limit
 * promises to sockets. A direction that gets no pipe relays through its ring: slower, never wrong.
 */
#ifndef FERRY_PIPEPOOL_H
#define FERRY_PIPEPOOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct spipe {
    int rd, wr;         /* read and write ends, both non-blocking */
    size_t len;         /* bytes in the pipe */
    size_t cap;         /* bytes it holds (F_GETPIPE_SZ, or what growing it got) */
    size_t charged;     /* what the borrower counted against its buffer budget */
    struct spipe *next; /* in a free list */
};

/* One per worker (never shared between threads); the two counters are process-wide. */
struct pipepool {
    struct spipe *free;     /* empty pipes of the base size */
    struct spipe *free_big; /* empty grown pipes, all of size big */
    unsigned nfree, nfree_big;
    unsigned low, low_big;  /* the fewest kept in each list since the last pipepool_trim() */
    unsigned max_free;      /* keep at most this many in each list */
    size_t base;            /* a new pipe's size: the largest F_GETPIPE_SZ seen, 0 before */
    size_t big;             /* the size of the grown pipes kept (set by the first one kept) */
    uint64_t refused_until; /* after the kernel refused a pipe: no pipe2() before this (ms) */
    int refused_errno;      /* what it said */
    atomic_uint *open;      /* pipes open in the process, kept ones included */
    atomic_uint *limit;     /* at most this many */
};

#define PIPE_RETRY_MS 100 /* after EMFILE/ENFILE/ENOMEM, how long no new pipe is tried */

void pipepool_init(struct pipepool *pp, unsigned max_free, atomic_uint *open, atomic_uint *limit);
/*
 * An empty pipe: a kept grown one if big is their size (0: not wanted), else a kept one of the base
 * size, else a new one if the limit allows. NULL with errno set when there is none: EAGAIN at the
 * limit, or what the kernel said (EMFILE, ENFILE, ENOMEM; then no new pipe is tried for
 * PIPE_RETRY_MS, and the same error is returned meanwhile).
 */
struct spipe *pipepool_get(struct pipepool *pp, size_t big, uint64_t now_ms);
/* Hand a pipe back: kept if empty, the process is within the limit (lowered on reload, say), and
 * its list has room: base-size pipes in one, grown ones of one size in the other (the size of the
 * first kept while that list is empty). Closed otherwise. */
void pipepool_put(struct pipepool *pp, struct spipe *p);
/* Close the kept pipes that stayed unused since the last call (the fewest each list held in that
 * time); returns how many. */
unsigned pipepool_trim(struct pipepool *pp);
/* Close every kept pipe; returns how many. */
unsigned pipepool_close_kept(struct pipepool *pp);
void pipepool_destroy(struct pipepool *pp);
/* The size the kernel makes a pipe asked to hold n bytes: a power of two pages. */
size_t pipepool_round(size_t n);

/*
 * Share fds usable descriptors between sockets (two per connection) and pipes (two each).
 * max_connections 0 means "derive": every descriptor for sockets, or, when some route splices,
 * all but a sixteenth that is left for pipes (at least PIPE_FDS_SHARE, but never more than an
 * eighth: small limits keep most for sockets, large ones get pipes in proportion to their
 * connections, as Docker's default of 1048576 would otherwise allow 512 pipes for half a million
 * connections). An explicit max_connections
 * leaves pipes what its sockets do not need, and at least PIPES_MIN even if that is nothing (a
 * pipe the kernel then refuses just means the ring).
 */
#define PIPE_FDS_SHARE 1024
#define PIPES_MIN      16
void pipepool_split_fds(long fds, unsigned max_connections, bool splice, unsigned *connections,
                        unsigned *pipes);

#endif
