/*
 * What a test opened, so the teardown can release it even when an assertion jumped out of the test:
 * file descriptors and cleanup callbacks (ferry processes, backend threads, pumps). Only the test's
 * main thread touches the registry.
 */
#ifndef FERRY_TEST_REGISTRY_H
#define FERRY_TEST_REGISTRY_H

typedef void (*cleanup_cb)(void *arg);

/* Remembers fd; returns it. */
int registry_track_fd(int fd);
/* Forgets fd (after the test closed it). */
void registry_untrack_fd(int fd);
/* Registers fn(arg) to run at teardown, last registered first; returns a handle. */
int registry_defer(cleanup_cb fn, void *arg);
/* Drops a deferred cleanup (the owner released itself). */
void registry_cancel(int handle);

/* printf into a new string that lives until the test's teardown. */
char *tfmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The cmocka group setup: ignores SIGPIPE in the test process, checks the SHA-256 implementation
 * against the FIPS 180-4 examples.
 */
int e2e_group_setup(void **state);
/* The cmocka per-test teardown: shuts down tracked sockets, runs cleanups, closes fds. */
int e2e_teardown(void **state);

#endif
