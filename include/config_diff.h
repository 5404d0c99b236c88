/*
 * config_diff.h - what changed between two configurations, one log line per difference.
 */
#ifndef FERRY_CONFIG_DIFF_H
#define FERRY_CONFIG_DIFF_H

#include "config.h"

/* Called once per difference with a human sentence, e.g. "route web: backend 10.0.0.1:80 added". */
typedef void (*config_diff_cb)(void *arg, const char *line);

/*
 * What the running process has in force where that is not simply what a file says: a setting that
 * cannot change without a restart keeps the value the process started with whatever later files
 * said, and a limit written as 0 ("derived") has a number worked out from the open-file limit.
 */
struct config_in_force {
    unsigned workers;              /* worker threads running */
    unsigned max_connections;      /* the limit in force under a */
    unsigned next_max_connections; /* the limit installing b puts in force */
};

/*
 * Report every difference from a (the file loaded last) to b (cb may be NULL: only count); returns
 * how many there were. run says what is in force; NULL means a's values are (as at startup) and a
 * derived limit is reported as "derived" without its number.
 *
 * A setting that cannot change without a restart (workers) is compared with what runs, not with
 * a, and reported when b changes it: "workers 1 -> 2 needs a restart: keeping 1" when b asks for
 * something else than what runs, "workers 1: as running, no restart needed" when b asks for what
 * runs again. A file that keeps asking for the same value is not reported again.
 */
unsigned config_diff(const struct config *a, const struct config *b,
                     const struct config_in_force *run, config_diff_cb cb, void *arg);

#endif
