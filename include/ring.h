/*
 * ring.h - a byte ring buffer for one direction of a connection pair.
 *
 * Owns a byte area and the accounting of what is stored in it; knows nothing of fds, the loop or
 * logging. The area is borrowed from a buffer pool on first use and handed back when the ring
 * drains, so an idle connection pair holds no buffer memory at all.
 *
 * Invariants:  0 <= head < size (when area != NULL),  0 <= len <= size,  area == NULL => len == 0.
 *
 *   case 1: data does not wrap                case 2: data wraps
 *   +------+==========+-------+               +=====+---------+========+
 *   | free |   data   | free  |               |data2|  free   | data1  |
 *   +------+==========+-------+               +=====+---------+========+
 *   0     head   head+len   size              0   tail      head     size
 *   data iovs: [head, head+len)               data iovs: [head, size) + [0, tail)
 *   room iovs: [head+len, size) + [0, head)   room iovs: [tail, head)
 *
 * When the ring drains, head goes back to 0, so the next read gets one contiguous iovec.
 * Released, a ring may take its next area from a pool of another size: that is how a connection's
 * ring grows while a direction streams and shrinks back when it quiets down.
 */
#ifndef FERRY_RING_H
#define FERRY_RING_H

#include <stddef.h>
#include <sys/uio.h>

struct ring {
    char *area;  /* borrowed from a bufpool; NULL while empty and released */
    size_t size; /* capacity in bytes: the size of the pool the area came from */
    size_t head; /* offset of the oldest stored byte */
    size_t len;  /* bytes stored */
};

/* A free list of equal-sized buffers, one per worker (never shared between threads). */
struct bufpool {
    size_t size;   /* bytes per buffer */
    void *free;    /* singly linked list threaded through the buffers themselves */
    size_t nfree;  /* buffers in the free list */
    size_t max;    /* keep at most this many free; beyond, buffers go back to malloc */
    size_t in_use; /* buffers handed out and not yet returned */
    size_t low;    /* the fewest free buffers since the last bufpool_trim() */
};

void ring_init(struct ring *r, size_t size);
static inline size_t ring_room(const struct ring *r)
{
    return r->size - r->len;
}
static inline int ring_empty(const struct ring *r)
{
    return r->len == 0;
}
static inline int ring_full(const struct ring *r)
{
    return r->len == r->size;
}

/* Fill iov[0..1] with the free space, in write order; returns how many iovecs (0..2). */
int ring_room_iov(const struct ring *r, struct iovec iov[2]);
/* Record n bytes written into the space ring_room_iov() described; n <= ring_room(). */
void ring_produce(struct ring *r, size_t n);
/* Fill iov[0..1] with the stored data, oldest first; returns how many iovecs (0..2). */
int ring_data_iov(const struct ring *r, struct iovec iov[2]);
/* Drop the n oldest bytes (n <= len); an emptied ring restarts at offset 0. */
void ring_consume(struct ring *r, size_t n);
/* Copy in up to n bytes (for tests and small writes); returns bytes copied. */
size_t ring_put(struct ring *r, const void *src, size_t n);
/* Copy out and consume up to n bytes; returns bytes copied. */
size_t ring_get(struct ring *r, void *dst, size_t n);

/* Attach an area from the pool if the ring has none, taking the pool's buffer size as the ring's
 * (an empty ring can change size this way); returns 0 or -ENOMEM. */
int ring_acquire(struct ring *r, struct bufpool *pool);
/* Give the area back to the pool if the ring is empty; no-op otherwise. */
void ring_release(struct ring *r, struct bufpool *pool);

void bufpool_init(struct bufpool *p, size_t size, size_t max_free);
void *bufpool_get(struct bufpool *p);
void bufpool_put(struct bufpool *p, void *buf);
/* Free the buffers that stayed free since the last call (the fewest the free list held in that
 * time): a pool keeps what its bursts use and returns what outlived them. Returns how many. */
size_t bufpool_trim(struct bufpool *p);
/* Free every buffer in the free list (buffers in use are the caller's to return first). */
void bufpool_destroy(struct bufpool *p);

#endif
