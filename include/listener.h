/*
 * listener.h - a worker's side of the listening sockets: registration, the accept loop, and
 * pausing accept (max_connections reached, out of file descriptors, draining). The sockets
 * themselves (struct lsock) belong to the control thread, which opens and closes them.
 */
#ifndef FERRY_LISTENER_H
#define FERRY_LISTENER_H

#include "worker.h"

/* Make the worker's registrations match binds (kept sockets keep their registration, new ones are
 * added, missing ones dropped), each serving its route in generation g. Returns 0 or -errno. */
int listener_apply(struct worker *w, struct wgen *g, const struct listen_bind *binds, size_t n);
/* Register or unregister every listening socket according to w->accept_block. */
void listener_update(struct worker *w);
/* Drop the registrations of the sockets in binds (only ls is read), keeping the others; cannot
 * fail. Once every worker has done so, the control thread may close those sockets. */
void listener_release(struct worker *w, const struct listen_bind *binds, size_t n);
/* Drop every registration (the fds stay open: the control thread closes them). */
void listener_drop_all(struct worker *w);
/* A connection slot was freed (by this worker): resume accepting where the limit had stopped it. */
void listener_slot_freed(struct worker *w);
/* Timer callback ending the back-off after EMFILE/ENFILE. */
void listener_on_backoff(struct loop *l, struct loop_timer *t);
/* Out of descriptors (err: EMFILE, ENFILE, ENOBUFS or ENOMEM) while doing what: stop accepting
 * for a back-off period, so clients wait in the backlog instead of being accepted and dropped;
 * logged once per episode. */
void listener_out_of_fds(struct worker *w, const char *what, int err);

#endif
