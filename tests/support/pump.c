/*
 * Pump threads (see pump.h). The stream is xorshift64* output, so it is incompressible and any
 * reordering, loss or duplication changes the digest.
 */
#include "pump.h"
#include "net.h"
#include "registry.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define CHUNK 65536

struct pump {
    pthread_t thread;
    int fd;
    bool sender;
    bool shut_wr;
    uint64_t nbytes;
    uint64_t state; /* xorshift64* state */
    int op_timeout_ms;
    int cleanup;
    atomic_uint_fast64_t progress;
    atomic_bool done;
    struct pump_result result;
};

static uint64_t next_word(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

static void *send_main(void *arg)
{
    struct pump *p = arg;
    uint64_t *chunk = malloc(CHUNK);
    struct sha256 sha;
    sha256_init(&sha);
    uint64_t left = p->nbytes;
    while (chunk != NULL && left > 0) {
        for (size_t i = 0; i < CHUNK / 8; i++) {
            chunk[i] = next_word(&p->state);
        }
        size_t n = left < CHUNK ? (size_t)left : CHUNK;
        sha256_update(&sha, chunk, n);
        int rc = send_all(p->fd, chunk, n, p->op_timeout_ms);
        if (rc != 0) {
            p->result.err = rc;
            break;
        }
        left -= n;
        atomic_fetch_add(&p->progress, n);
    }
    if (chunk == NULL) {
        p->result.err = -ENOMEM;
    }
    if (p->result.err == 0 && p->shut_wr && shutdown(p->fd, SHUT_WR) == -1) {
        p->result.err = -errno;
    }
    p->result.bytes = atomic_load(&p->progress);
    sha256_final(&sha, p->result.sha);
    free(chunk);
    atomic_store(&p->done, true);
    return NULL;
}

static void *recv_main(void *arg)
{
    struct pump *p = arg;
    char *buf = malloc(CHUNK);
    struct sha256 sha;
    sha256_init(&sha);
    while (buf != NULL) {
        ssize_t r = recv_some(p->fd, buf, CHUNK, p->op_timeout_ms);
        if (r < 0) {
            p->result.err = (int)r;
            break;
        }
        if (r == 0) {
            p->result.eof = true;
            break;
        }
        sha256_update(&sha, buf, (size_t)r);
        atomic_fetch_add(&p->progress, (uint64_t)r);
    }
    if (buf == NULL) {
        p->result.err = -ENOMEM;
    }
    p->result.bytes = atomic_load(&p->progress);
    sha256_final(&sha, p->result.sha);
    free(buf);
    atomic_store(&p->done, true);
    return NULL;
}

/* Teardown after a failed test: the fd was shut down by the registry, so the thread ends. */
static void pump_cleanup(void *arg)
{
    struct pump *p = arg;
    pthread_join(p->thread, NULL);
    free(p);
}

static struct pump *pump_new(int fd, int op_timeout_ms)
{
    struct pump *p = calloc(1, sizeof *p);
    assert_non_null(p);
    p->fd = fd;
    p->op_timeout_ms = op_timeout_ms;
    atomic_init(&p->progress, 0);
    atomic_init(&p->done, false);
    return p;
}

struct pump *pump_send(int fd, uint64_t nbytes, uint32_t seed, bool shut_wr, int op_timeout_ms)
{
    struct pump *p = pump_new(fd, op_timeout_ms);
    p->sender = true;
    p->nbytes = nbytes;
    p->shut_wr = shut_wr;
    p->state = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)seed << 17 | seed);
    assert_int_equal(pthread_create(&p->thread, NULL, send_main, p), 0);
    p->cleanup = registry_defer(pump_cleanup, p);
    return p;
}

struct pump *pump_recv(int fd, int op_timeout_ms)
{
    struct pump *p = pump_new(fd, op_timeout_ms);
    assert_int_equal(pthread_create(&p->thread, NULL, recv_main, p), 0);
    p->cleanup = registry_defer(pump_cleanup, p);
    return p;
}

#define PUMP_JOIN_CAP 4

uint64_t pump_progress(struct pump *p)
{
    return atomic_load(&p->progress);
}

bool pump_done(struct pump *p)
{
    return atomic_load(&p->done);
}

void pump_join(struct pump *p, int timeout_ms, struct pump_result *out)
{
    /* A slow machine (a sanitizer build, a loaded CI host) may move the bytes slower but not
     * stop: the wait fails after timeout_ms without progress, or PUMP_JOIN_CAP times it in all. */
    int64_t start = now_ms(), last_move = start;
    uint64_t seen = pump_progress(p);
    while (!pump_done(p)) {
        int64_t now = now_ms();
        uint64_t moved = pump_progress(p);
        if (moved != seen) {
            seen = moved;
            last_move = now;
        }
        if (now > last_move + timeout_ms || now > start + (int64_t)PUMP_JOIN_CAP * timeout_ms) {
            fail_msg("%s pump on fd %d did not finish: %lld ms since it last moved a byte, "
                     "%lld ms in all (moved %llu bytes)",
                     p->sender ? "send" : "receive", p->fd, (long long)(now - last_move),
                     (long long)(now - start), (unsigned long long)moved);
        }
        sleep_ms(5);
    }
    registry_cancel(p->cleanup);
    pthread_join(p->thread, NULL);
    *out = p->result;
    free(p);
}

bool pump_wait_stalled(struct pump *p, int quiet_ms, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    uint64_t last = pump_progress(p);
    int64_t since = now_ms();
    while (now_ms() < deadline) {
        sleep_ms(10);
        uint64_t cur = pump_progress(p);
        if (cur != last) {
            last = cur;
            since = now_ms();
        } else if (now_ms() - since >= quiet_ms) {
            return true;
        }
    }
    return false;
}

void assert_same_stream(const struct pump_result *sent, const struct pump_result *received,
                        uint64_t want_bytes)
{
    if (sent->err != 0) {
        fail_msg("sender stopped after %llu of %llu bytes: %s", (unsigned long long)sent->bytes,
                 (unsigned long long)want_bytes, strerror(-sent->err));
    }
    if (received->err != 0) {
        fail_msg("receiver stopped after %llu of %llu bytes: %s",
                 (unsigned long long)received->bytes, (unsigned long long)want_bytes,
                 strerror(-received->err));
    }
    if (!received->eof) {
        fail_msg("receiver did not see EOF after %llu bytes", (unsigned long long)received->bytes);
    }
    if (received->bytes != want_bytes) {
        fail_msg("received %llu bytes, want %llu", (unsigned long long)received->bytes,
                 (unsigned long long)want_bytes);
    }
    assert_int_equal(sent->bytes, want_bytes);
    char a[2 * SHA256_DIGEST_LEN + 1], b[2 * SHA256_DIGEST_LEN + 1];
    sha256_hex(sent->sha, a);
    sha256_hex(received->sha, b);
    if (strcmp(a, b) != 0) {
        fail_msg("stream corrupted: sent sha256 %s, received sha256 %s", a, b);
    }
}
