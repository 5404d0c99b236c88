/*
 * resolver.h - everything that may wait on DNS, off the control thread.
 *
 * getaddrinfo() can block for the resolver's timeout (seconds per name) when DNS is slow or gone;
 * the control thread must keep taking signals meanwhile. A resolver is one thread that takes one
 * job at a time: either a lookup (a private copy of the running configuration whose named
 * backends it re-resolves in place; sock_resolve_keep: an address still among the answers is
 * kept) or a load (the configuration file read, parsed and resolved for a reload). When the job
 * is done its eventfd becomes readable and resolver_take() hands the result back.
 */
#ifndef FERRY_RESOLVER_H
#define FERRY_RESOLVER_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct resolver;

/* What a finished job hands back. */
struct resolver_result {
    bool load;               /* a file load for a reload (else a lookup round) */
    struct config *cfg;      /* lookup: the copy, resolved; load: the new configuration or NULL */
    struct config_error err; /* load failed: why (file:line:col: message) */
    char failing[1024];      /* lookup: "route R backend NAME (why), ..." or "" */
    unsigned names;          /* lookup: named backends looked up */
    bool cut;                /* lookup: cut short for a reload (incomplete: to be discarded) */
};

/*
 * Re-resolve every named backend of c in place. Failed names keep their address and are listed
 * in failing ("route R backend NAME (why), ..."; "" if none). Returns how many names were looked
 * up: all of them, unless stop (may be NULL) is set meanwhile: then the names not started yet
 * are skipped and *stopped (if not NULL) says so, the round being incomplete.
 */
unsigned resolver_lookup(struct config *c, char *failing, size_t len, const atomic_bool *stop,
                         bool *stopped);

/*
 * After a load has resolved every name afresh: a backend host name that is unchanged from cur and
 * still resolves to the address it had there keeps that address (not whichever answer came first
 * this time), so a reload changes only what did change.
 */
void resolver_keep_current(const struct config *cur, struct config *next);

/* Start the thread. Returns NULL with errno set on failure. */
struct resolver *resolver_start(void);
/* Readable (eventfd) when a job is done. */
int resolver_fd(const struct resolver *r);
/* Hand over a lookup of copy (ownership passes); false if a job is still running (copy untouched).
 */
bool resolver_submit(struct resolver *r, struct config *copy);
/* Load path for a reload, keeping cur's addresses where they still resolve (a reference to cur is
 * taken). Returns 0, -EBUSY if a job is still running, -ENOMEM. A lookup round in progress is
 * then cut short after the name being looked up (unless the round before it was cut too), so the
 * reload waits for one lookup, not for the whole round (names x resolver timeout while DNS does
 * not answer). */
int resolver_submit_load(struct resolver *r, const char *path, struct config *cur);
/* True while a job is submitted, running, or done and not taken. */
bool resolver_busy(struct resolver *r);
/* The finished job's result into *out (true), or false if none is done (the fd is drained
 * either way). */
bool resolver_take(struct resolver *r, struct resolver_result *out);
/*
 * Stop the thread. An idle thread is joined and everything freed; one stuck in a lookup is left
 * to end with the process (its memory stays reachable, and its fd open so no write goes astray).
 */
void resolver_stop(struct resolver *r);

#endif
