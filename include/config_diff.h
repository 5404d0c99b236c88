/*
 * config_diff.h - what changed between two configurations, one log line per difference.
 */
#ifndef FERRY_CONFIG_DIFF_H
#define FERRY_CONFIG_DIFF_H

#include "config.h"

/* Called once per difference with a human sentence, e.g. "route web: backend 10.0.0.1:80 added". */
typedef void (*config_diff_cb)(void *arg, const char *line);

/* Report every difference from a to b (cb may be NULL: only count); returns how many there were.
 * Process-wide settings that cannot change without a restart (workers) are reported with "needs a
 * restart". */
unsigned config_diff(const struct config *a, const struct config *b, config_diff_cb cb, void *arg);

#endif
