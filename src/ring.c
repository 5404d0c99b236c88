/*
 * ring.c - byte ring buffer and buffer pool. Pure memory bookkeeping: no syscalls but malloc.
 */
#include "ring.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void ring_init(struct ring *r, size_t size)
{
    r->area = NULL;
    r->size = size;
    r->head = 0;
    r->len = 0;
}

int ring_room_iov(const struct ring *r, struct iovec iov[2])
{
    if (r->len == r->size || r->area == NULL)
        return 0;
    size_t tail = r->head + r->len;
    if (tail >= r->size) { /* data wraps: the room is one run between tail and head */
        tail -= r->size;
        iov[0].iov_base = r->area + tail;
        iov[0].iov_len = r->head - tail;
        return 1;
    }
    iov[0].iov_base = r->area + tail;
    iov[0].iov_len = r->size - tail;
    if (r->head == 0)
        return 1;
    iov[1].iov_base = r->area;
    iov[1].iov_len = r->head;
    return 2;
}

void ring_produce(struct ring *r, size_t n)
{
    assert(n <= r->size - r->len);
    r->len += n;
}

int ring_data_iov(const struct ring *r, struct iovec iov[2])
{
    if (r->len == 0)
        return 0;
    size_t first = r->size - r->head;
    iov[0].iov_base = r->area + r->head;
    if (r->len <= first) {
        iov[0].iov_len = r->len;
        return 1;
    }
    iov[0].iov_len = first;
    iov[1].iov_base = r->area;
    iov[1].iov_len = r->len - first;
    return 2;
}

void ring_consume(struct ring *r, size_t n)
{
    assert(n <= r->len);
    r->len -= n;
    if (r->len == 0) {
        r->head = 0;
        return;
    }
    r->head += n;
    if (r->head >= r->size)
        r->head -= r->size;
}

size_t ring_put(struct ring *r, const void *src, size_t n)
{
    struct iovec iov[2];
    int cnt = ring_room_iov(r, iov);
    size_t done = 0;
    for (int i = 0; i < cnt && done < n; i++) {
        size_t k = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
        memcpy(iov[i].iov_base, (const char *)src + done, k);
        done += k;
    }
    ring_produce(r, done);
    return done;
}

size_t ring_get(struct ring *r, void *dst, size_t n)
{
    struct iovec iov[2];
    int cnt = ring_data_iov(r, iov);
    size_t done = 0;
    for (int i = 0; i < cnt && done < n; i++) {
        size_t k = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
        memcpy((char *)dst + done, iov[i].iov_base, k);
        done += k;
    }
    ring_consume(r, done);
    return done;
}

int ring_acquire(struct ring *r, struct bufpool *pool)
{
    if (r->area)
        return 0;
    r->area = bufpool_get(pool);
    if (!r->area)
        return -ENOMEM;
    r->size = pool->size;
    r->head = 0;
    r->len = 0;
    return 0;
}

void ring_release(struct ring *r, struct bufpool *pool)
{
    if (!r->area || r->len)
        return;
    bufpool_put(pool, r->area);
    r->area = NULL;
    r->head = 0;
}

void bufpool_init(struct bufpool *p, size_t size, size_t max_free)
{
    p->size = size;
    p->free = NULL;
    p->nfree = 0;
    p->max = max_free;
    p->in_use = 0;
    p->low = 0;
}

void *bufpool_get(struct bufpool *p)
{
    void *b = p->free;
    if (b) {
        memcpy(&p->free, b, sizeof(void *));
        p->nfree--;
        if (p->nfree < p->low)
            p->low = p->nfree;
    } else {
        /* A buffer holds at least the free-list link. */
        b = malloc(p->size < sizeof(void *) ? sizeof(void *) : p->size);
        if (!b)
            return NULL;
    }
    p->in_use++;
    return b;
}

void bufpool_put(struct bufpool *p, void *buf)
{
    assert(p->in_use > 0);
    p->in_use--;
    if (p->nfree >= p->max) {
        free(buf);
        return;
    }
    memcpy(buf, &p->free, sizeof(void *));
    p->free = buf;
    p->nfree++;
}

size_t bufpool_trim(struct bufpool *p)
{
    size_t n = p->low < p->nfree ? p->low : p->nfree;
    if (n) {
        /* The list is last-in first-out: the buffers no burst took are its tail. */
        void **link = &p->free;
        for (size_t i = 0; i < p->nfree - n; i++)
            link = (void **)*link;
        void *b = *link;
        *link = NULL;
        while (b) {
            void *next;
            memcpy(&next, b, sizeof(void *));
            free(b);
            b = next;
        }
        p->nfree -= n;
    }
    p->low = p->nfree;
    return n;
}

void bufpool_destroy(struct bufpool *p)
{
    while (p->free) {
        void *b = p->free;
        memcpy(&p->free, b, sizeof(void *));
        free(b);
    }
    p->nfree = 0;
}
