/*
 * resolver.h - looks backend host names up again, off the control thread.
 *
 * getaddrinfo() can block for the resolver's timeout (seconds per name) when DNS is slow or gone;
 * the control thread must keep taking signals and reloads meanwhile. A resolver is one thread
 * that takes one job at a time: a private copy of a configuration whose named backends it
 * re-resolves in place (sock_resolve_keep: an address still among the answers is kept). When the
 * job is done its eventfd becomes readable and resolver_take() hands the copy back.
 */
#ifndef FERRY_RESOLVER_H
#define FERRY_RESOLVER_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct resolver;

/*
 * Re-resolve every named backend of c in place. Failed names keep their address and are listed
 * in failing ("route R backend NAME (why), ..."; "" if none). Returns how many names there were.
 */
unsigned resolver_lookup(struct config *c, char *failing, size_t len);

/* Start the thread. Returns NULL with errno set on failure. */
struct resolver *resolver_start(void);
/* Readable (eventfd) when a job is done. */
int resolver_fd(const struct resolver *r);
/* Hand over job (ownership passes); false if a job is still running (job untouched). */
bool resolver_submit(struct resolver *r, struct config *job);
/* The finished job, or NULL if none is done (the fd is drained either way). */
struct config *resolver_take(struct resolver *r, char *failing, size_t len, unsigned *names);
/*
 * Stop the thread. An idle thread is joined and everything freed; one stuck in a lookup is left
 * to end with the process (its memory stays reachable, and its fd open so no write goes astray).
 */
void resolver_stop(struct resolver *r);

#endif
