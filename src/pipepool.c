/*
 * pipepool.c - see pipepool.h.
 */
#include "pipepool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

void pipepool_init(struct pipepool *pp, unsigned max_free, atomic_uint *open, atomic_uint *limit)
{
    *pp = (struct pipepool){.max_free = max_free, .open = open, .limit = limit};
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

static struct spipe *pop(struct spipe **list, unsigned *n, unsigned *low)
{
    struct spipe *p = *list;
    *list = p->next;
    (*n)--;
    if (*n < *low)
        *low = *n;
    p->next = NULL;
    return p;
}

struct spipe *pipepool_get(struct pipepool *pp, size_t big, uint64_t now_ms)
{
    if (big && pp->free_big && pp->big == big)
        return pop(&pp->free_big, &pp->nfree_big, &pp->low_big);
    if (pp->free)
        return pop(&pp->free, &pp->nfree, &pp->low);
    if (now_ms < pp->refused_until) {
        errno = pp->refused_errno;
        return NULL;
    }
    if (!reserve(pp)) {
        errno = EAGAIN;
        return NULL;
    }
    struct spipe *p = malloc(sizeof(*p));
    int fds[2];
    if (!p || pipe2(fds, O_NONBLOCK | O_CLOEXEC) == -1) {
        int err = p ? errno : ENOMEM;
        free(p);
        atomic_fetch_sub(pp->open, 1);
        pp->refused_until = now_ms + PIPE_RETRY_MS;
        pp->refused_errno = err;
        errno = err;
        return NULL;
    }
    int cap = fcntl(fds[1], F_GETPIPE_SZ);
    *p = (struct spipe){.rd = fds[0], .wr = fds[1], .cap = cap > 0 ? (size_t)cap : 4096};
    if (p->cap > pp->base)
        pp->base = p->cap;
    return p;
}

void pipepool_put(struct pipepool *pp, struct spipe *p)
{
    if (!p)
        return;
    p->charged = 0;
    if (!p->len && atomic_load(pp->open) <= atomic_load(pp->limit)) {
        if (p->cap == pp->base && pp->nfree < pp->max_free) {
            p->next = pp->free;
            pp->free = p;
            pp->nfree++;
            return;
        }
        if (p->cap > pp->base && (!pp->nfree_big || p->cap == pp->big) &&
            pp->nfree_big < pp->max_free) {
            pp->big = p->cap;
            p->next = pp->free_big;
            pp->free_big = p;
            pp->nfree_big++;
            return;
        }
    }
    close_pipe(pp, p);
}

static unsigned close_all(struct pipepool *pp, struct spipe **list, unsigned *nfree, unsigned *low)
{
    unsigned closed = 0;
    while (*list) {
        close_pipe(pp, pop(list, nfree, low));
        closed++;
    }
    *low = 0;
    return closed;
}

/* Close the n least recently kept pipes of a list (its tail: the list is last-in first-out). */
static unsigned trim_list(struct pipepool *pp, struct spipe **list, unsigned *nfree, unsigned *low)
{
    unsigned n = *low < *nfree ? *low : *nfree;
    struct spipe **link = list;
    for (unsigned i = 0; i < *nfree - n; i++)
        link = &(*link)->next;
    struct spipe *p = *link;
    *link = NULL;
    while (p) {
        struct spipe *next = p->next;
        close_pipe(pp, p);
        p = next;
    }
    *nfree -= n;
    *low = *nfree;
    return n;
}

unsigned pipepool_trim(struct pipepool *pp)
{
    return trim_list(pp, &pp->free, &pp->nfree, &pp->low) +
           trim_list(pp, &pp->free_big, &pp->nfree_big, &pp->low_big);
}

unsigned pipepool_close_kept(struct pipepool *pp)
{
    return close_all(pp, &pp->free, &pp->nfree, &pp->low) +
           close_all(pp, &pp->free_big, &pp->nfree_big, &pp->low_big);
}

void pipepool_destroy(struct pipepool *pp)
{
    pipepool_close_kept(pp);
}

void pipepool_split_fds(long fds, unsigned max_connections, bool splice, unsigned *connections,
                        unsigned *pipes)
{
    if (fds < 2)
        fds = 2;
    long share = 0;
    if (splice) {
        share = fds / 16 > PIPE_FDS_SHARE ? fds / 16 : PIPE_FDS_SHARE;
        if (share > fds / 8)
            share = fds / 8;
    }
    long conns = max_connections ? (long)max_connections : (fds - share) / 2;
    if (conns < 1)
        conns = 1;
    long p = (fds - 2 * conns) / 2;
    if (p < 0 || (max_connections && p < PIPES_MIN))
        p = max_connections ? PIPES_MIN : 0;
    *connections = (unsigned)conns;
    *pipes = splice ? (unsigned)p : 0;
}

size_t pipepool_round(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE), size = page;
    while (size < n && size <= SIZE_MAX / 2)
        size *= 2;
    return size;
}
