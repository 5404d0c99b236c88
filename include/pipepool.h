/*
 * pipepool.h - kernel pipes for splice routes, borrowed while a direction has bytes in flight.
 *
 * A splice route moves a direction's bytes through a pipe. Like a ring's area, the pipe is taken
 * when the direction has something to read and handed back once it drains, so an idle pair holds
 * only its two sockets. A worker keeps a few empty pipes for reuse: a burst then costs no pipe2(),
 * fcntl() or close(). A pipe is reusable only empty and at the size new pipes get; a grown or
 * non-empty one is closed instead.
 *
 * Each pipe is two file descriptors, and descriptors are the process's scarcest resource here: the
 * pipes open in the process (in use or kept) are counted against a process-wide limit that
 * fd_budget_split() derives, so that pipes never take the descriptors the connection limit
 * promises to sockets. A direction that gets no pipe relays through its ring: slower, never wrong.
 */
#ifndef FERRY_PIPEPOOL_H
#define FERRY_PIPEPOOL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

struct spipe {
    int rd, wr;         /* read and write ends, both non-blocking */
    size_t len;         /* bytes in the pipe */
    size_t cap;         /* bytes it holds: the pool's base, more once grown */
    struct spipe *next; /* in the free list */
};

/* One per worker (never shared between threads); the two counters are process-wide. */
struct pipepool {
    struct spipe *free;
    unsigned nfree;
    unsigned max_free;  /* keep at most this many empty pipes */
    size_t base;        /* a new pipe's size (F_GETPIPE_SZ), 0 until the first pipe */
    atomic_uint *open;  /* pipes open in the process, kept ones included */
    atomic_uint *limit; /* at most this many */
};

void pipepool_init(struct pipepool *pp, unsigned max_free, atomic_uint *open, atomic_uint *limit);
/* An empty pipe of the base size: a kept one, or a new one if the limit allows. NULL with errno
 * set (EMFILE/ENFILE or ENOMEM from the kernel, EAGAIN at the limit) when there is none. */
struct spipe *pipepool_get(struct pipepool *pp);
/* Hand a pipe back: kept if empty, at the base size, the pool has room and the process is within
 * the limit (lowered on reload, say); closed otherwise. */
void pipepool_put(struct pipepool *pp, struct spipe *p);
/* Close kept pipes until at most keep remain; returns how many were closed. */
unsigned pipepool_trim(struct pipepool *pp, unsigned keep);
void pipepool_destroy(struct pipepool *pp);

/*
 * Share fds usable descriptors between sockets (two per connection) and pipes (two each).
 * max_connections 0 means "derive": every descriptor for sockets, or, when some route splices,
 * all but an eighth (at most PIPE_FDS_SHARE) that is left for pipes. An explicit max_connections
 * leaves pipes what its sockets do not need, and at least PIPES_MIN (a pipe the kernel then
 * refuses just means the ring).
 */
#define PIPE_FDS_SHARE 1024
#define PIPES_MIN      16
void fd_budget_split(long fds, unsigned max_connections, bool splice, unsigned *connections,
                     unsigned *pipes);

#endif
