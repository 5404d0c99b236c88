/*
 * Byte pumps: a thread that sends a deterministic pseudo-random stream of N bytes on a socket, or
 * one that reads a socket to EOF; both hash what they moved with SHA-256, so a test compares the
 * sender's digest with the receiver's. Pumps never assert (cmocka is not thread-safe): the test
 * joins them and asserts on the result. A pump gives up after op_timeout_ms without progress.
 */
#ifndef FERRY_TEST_PUMP_H
#define FERRY_TEST_PUMP_H

#include "sha256.h"

#include <stdbool.h>
#include <stdint.h>

#define MIB (1024u * 1024u)

struct pump_result {
    uint64_t bytes;                 /* bytes sent or received */
    uint8_t sha[SHA256_DIGEST_LEN]; /* digest of those bytes */
    int err;                        /* 0, or the -errno that stopped the pump */
    bool eof;                       /* receiver: the stream ended with EOF */
};

struct pump;

/* Sends nbytes of the stream seeded by seed on fd; then shutdown(SHUT_WR) if shut_wr. */
struct pump *pump_send(int fd, uint64_t nbytes, uint32_t seed, bool shut_wr, int op_timeout_ms);
/* Receives from fd until EOF, an error, or op_timeout_ms without a byte. */
struct pump *pump_recv(int fd, int op_timeout_ms);
/* Bytes moved so far (readable while the pump runs). */
uint64_t pump_progress(struct pump *p);
/* True once the pump's thread has finished. */
bool pump_done(struct pump *p);
/* Waits for the pump to finish (asserts): it fails after timeout_ms in which no byte moved, or
 * after 4 * timeout_ms in all. Copies its result and frees it. */
void pump_join(struct pump *p, int timeout_ms, struct pump_result *out);
/* Waits until the pump's progress has not changed for quiet_ms; false if not within timeout_ms. */
bool pump_wait_stalled(struct pump *p, int quiet_ms, int timeout_ms);

/* Asserts that two results describe the same complete stream of want_bytes bytes. */
void assert_same_stream(const struct pump_result *sent, const struct pump_result *received,
                        uint64_t want_bytes);

#endif
