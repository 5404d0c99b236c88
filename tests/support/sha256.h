/*
 * SHA-256 (FIPS 180-4), written from the standard so the tests need no crypto library.
 * Used to compare byte streams that pass through ferry: both ends hash what they saw.
 * Owns nothing but its context struct; no allocation, no I/O.
 */
#ifndef FERRY_TEST_SHA256_H
#define FERRY_TEST_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32

struct sha256 {
    uint32_t h[8];      /* intermediate hash value H(i) */
    uint64_t total_len; /* message length in bytes so far */
    uint8_t block[64];  /* pending partial block */
    size_t block_len;   /* bytes used in block */
};

void sha256_init(struct sha256 *s);
void sha256_update(struct sha256 *s, const void *data, size_t len);
/* Pads, writes the 32-byte digest into out; the context must be re-initialised before reuse. */
void sha256_final(struct sha256 *s, uint8_t out[SHA256_DIGEST_LEN]);
/* One-shot digest of data. */
void sha256_digest(const void *data, size_t len, uint8_t out[SHA256_DIGEST_LEN]);
/* Lower-case hex of a digest into out (65 bytes with the terminating NUL). */
void sha256_hex(const uint8_t digest[SHA256_DIGEST_LEN], char out[2 * SHA256_DIGEST_LEN + 1]);

#endif
