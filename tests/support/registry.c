/*
 * The per-test registry of open sockets and cleanups, and the cmocka setup/teardown that use it.
 * cmocka leaves a failing test by longjmp, so nothing a test opened may depend on the test's own
 * code running to its end: the teardown releases it all.
 */
#include "registry.h"
#include "sha256.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct cleanup {
    cleanup_cb fn; /* NULL once cancelled or run */
    void *arg;
};

static int *fds;
static size_t fds_len, fds_cap;
static struct cleanup *cleanups;
static size_t cleanups_len, cleanups_cap;

int registry_track_fd(int fd)
{
    if (fd < 0) {
        return fd;
    }
    if (fds_len == fds_cap) {
        size_t cap = fds_cap ? fds_cap * 2 : 64;
        int *p = realloc(fds, cap * sizeof *p);
        if (p == NULL) {
            abort();
        }
        fds = p;
        fds_cap = cap;
    }
    fds[fds_len++] = fd;
    return fd;
}

void registry_untrack_fd(int fd)
{
    /* Newest first: tests usually close what they opened last. */
    for (size_t i = fds_len; i-- > 0;) {
        if (fds[i] == fd) {
            fds[i] = fds[--fds_len];
            return;
        }
    }
}

int registry_defer(cleanup_cb fn, void *arg)
{
    if (cleanups_len == cleanups_cap) {
        size_t cap = cleanups_cap ? cleanups_cap * 2 : 16;
        struct cleanup *p = realloc(cleanups, cap * sizeof *p);
        if (p == NULL) {
            abort();
        }
        cleanups = p;
        cleanups_cap = cap;
    }
    cleanups[cleanups_len].fn = fn;
    cleanups[cleanups_len].arg = arg;
    return (int)cleanups_len++;
}

void registry_cancel(int handle)
{
    if (handle >= 0 && (size_t)handle < cleanups_len) {
        cleanups[handle].fn = NULL;
    }
}

char *tfmt(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) {
        abort();
    }
    registry_defer(free, s);
    return s;
}

static int sha256_self_test(void)
{
    /* FIPS 180-4 / NIST CSRC examples: "abc", the two-block message, and one million 'a'. */
    static const char *want_abc =
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    static const char *want_two =
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
    static const char *want_million =
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
    uint8_t d[SHA256_DIGEST_LEN];
    char hex[2 * SHA256_DIGEST_LEN + 1];

    sha256_digest("abc", 3, d);
    sha256_hex(d, hex);
    if (strcmp(hex, want_abc) != 0) {
        return -1;
    }
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    sha256_digest(two, strlen(two), d);
    sha256_hex(d, hex);
    if (strcmp(hex, want_two) != 0) {
        return -1;
    }
    /* Uneven update sizes exercise the partial-block path. */
    char a[997];
    memset(a, 'a', sizeof a);
    struct sha256 s;
    sha256_init(&s);
    size_t left = 1000000;
    while (left > 0) {
        size_t n = left < sizeof a ? left : sizeof a;
        sha256_update(&s, a, n);
        left -= n;
    }
    sha256_final(&s, d);
    sha256_hex(d, hex);
    return strcmp(hex, want_million) == 0 ? 0 : -1;
}

int e2e_group_setup(void **state)
{
    (void)state;
    /* The tests write to sockets that ferry may reset; they use MSG_NOSIGNAL, this is a backstop.
     * ferry itself gets SIGPIPE back to its default (see harness.c), so its own handling is tested.
     */
    signal(SIGPIPE, SIG_IGN);
    if (sha256_self_test() != 0) {
        fprintf(stderr, "sha256 self-test failed: stream comparisons would be meaningless\n");
        return -1;
    }
    return 0;
}

int e2e_teardown(void **state)
{
    (void)state;
    /* Wake any thread blocked on a tracked socket before joining it. */
    for (size_t i = 0; i < fds_len; i++) {
        shutdown(fds[i], SHUT_RDWR);
    }
    while (cleanups_len > 0) {
        struct cleanup c = cleanups[--cleanups_len];
        if (c.fn != NULL) {
            c.fn(c.arg);
        }
    }
    for (size_t i = 0; i < fds_len; i++) {
        close(fds[i]);
    }
    fds_len = 0;
    return 0;
}
