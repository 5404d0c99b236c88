/*
 * Test backends that ferry connects to. A backend server runs one epoll thread on loopback:0 and
 * serves any number of connections (the 1000-connection test needs that): echo, or greet-then-echo
 * (the server speaks first). Counters tell the test how many connections it accepted and holds.
 * The black hole is a listener that never accepts, so a connect to it never completes.
 * All of them are released by the test teardown if the test does not stop them.
 */
#ifndef FERRY_TEST_BACKENDS_H
#define FERRY_TEST_BACKENDS_H

#include <stdbool.h>

enum backend_mode {
    BACKEND_ECHO,  /* sends back every byte; closes after the peer's FIN once all is echoed */
    BACKEND_GREET, /* sends backend_greeting() on accept, then echoes */
};

struct backend;

/* Starts a backend on loopback:0 of family. Asserts on failure. */
struct backend *backend_start(int family, enum backend_mode mode);
int backend_port(const struct backend *b);
/* Connections accepted so far. */
int backend_accepted(struct backend *b);
/* Connections currently open. */
int backend_active(struct backend *b);
/* Waits until backend_active() == n; true if reached within timeout_ms. */
bool backend_wait_active(struct backend *b, int n, int timeout_ms);
/* Waits until backend_accepted() >= n; true if reached within timeout_ms. */
bool backend_wait_accepted(struct backend *b, int n, int timeout_ms);
/* The greeting a BACKEND_GREET backend sends first: "hello from backend PORT\n". */
const char *backend_greeting(const struct backend *b);
/* Stops the thread, closes every connection and the listener, frees b. */
void backend_stop(struct backend *b);

/*
 * A black-holed address on 127.0.0.1: a socket listening with backlog 0 that never accepts, its
 * accept queue filled by one held connection, so the kernel drops further SYNs and connects hang.
 * Checks that a probe connect really does not complete. Returns the port; fds are tracked.
 */
int black_hole_port(void);

#endif
