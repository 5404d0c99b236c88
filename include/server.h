/*
 * server.h - the process: the control thread that owns the configuration, the listening sockets
 * and the workers; signals, live reload and graceful shutdown.
 */
#ifndef FERRY_SERVER_H
#define FERRY_SERVER_H

#include "config.h"

/* Run ferry with an already validated configuration (the reference is taken over). Returns the
 * process exit status: 0 after a clean stop, 1 on a startup error. */
int server_run(struct config *cfg);

#endif
