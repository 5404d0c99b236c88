/*
 * pipepool.c - see pipepool.h.
 */
#include "pipepool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

void pipepool_init(struct pipepool *pp, unsigned max_free, atomic_uint *open, atomic_uint *limit)
{
    pp->free = NULL;
    pp->nfree = 0;
    pp->max_free = max_free;
    pp->base = 0;
    pp->open = open;
    pp->limit = limit;
}

/* Count a pipe against the process-wide limit; false if it is reached. */
static bool reserve(struct pipepool *pp)
{
    unsigned cur = atomic_load(pp->open);
    do {
        if (cur >= atomic_load(pp->limit))
            return false;
    } while (!atomic_compare_exchange_weak(pp->open, &cur, cur + 1));
    return true;
}

static void close_pipe(struct pipepool *pp, struct spipe *p)
{
    close(p->rd);
    close(p->wr);
    free(p);
    atomic_fetch_sub(pp->open, 1);
}

struct spipe *pipepool_get(struct pipepool *pp)
{
    struct spipe *p = pp->free;
    if (p) {
        pp->free = p->next;
        pp->nfree--;
        p->next = NULL;
        return p;
    }
    if (!reserve(pp)) {
        errno = EAGAIN;
        return NULL;
    }
    p = malloc(sizeof(*p));
    int fds[2];
    if (!p || pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1) {
        int err = p ? errno : ENOMEM;
        free(p);
        atomic_fetch_sub(pp->open, 1);
        errno = err;
        return NULL;
    }
    if (!pp->base) {
        int cap = fcntl(fds[1], F_GETPIPE_SZ);
        pp->base = cap > 0 ? (size_t)cap : 4096;
    }
    *p = (struct spipe){.rd = fds[0], .wr = fds[1], .len = 0, .cap = pp->base, .next = NULL};
    return p;
}

void pipepool_put(struct pipepool *pp, struct spipe *p)
{
    if (!p)
        return;
    if (p->len || p->cap != pp->base || pp->nfree >= pp->max_free ||
        atomic_load(pp->open) > atomic_load(pp->limit)) {
        close_pipe(pp, p);
        return;
    }
    p->next = pp->free;
    pp->free = p;
    pp->nfree++;
}

unsigned pipepool_trim(struct pipepool *pp, unsigned keep)
{
    unsigned closed = 0;
    while (pp->nfree > keep) {
        struct spipe *p = pp->free;
        pp->free = p->next;
        pp->nfree--;
        close_pipe(pp, p);
        closed++;
    }
    return closed;
}

void pipepool_destroy(struct pipepool *pp)
{
    pipepool_trim(pp, 0);
}

void fd_budget_split(long fds, unsigned max_connections, bool splice, unsigned *connections,
                     unsigned *pipes)
{
    if (fds < 2)
        fds = 2;
    long share = 0;
    if (splice) {
        share = fds / 8;
        if (share > PIPE_FDS_SHARE)
            share = PIPE_FDS_SHARE;
    }
    long conns = max_connections ? (long)max_connections : (fds - share) / 2;
    if (conns < 1)
        conns = 1;
    long p = (fds - 2 * conns) / 2;
    if (p < PIPES_MIN)
        p = PIPES_MIN;
    *connections = (unsigned)conns;
    *pipes = splice ? (unsigned)p : 0;
}
