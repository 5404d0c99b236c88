/*
 * log.h - one event per line on stderr, text or JSON, safe from several threads.
 *
 * Each line is formatted into a local buffer and written with one write(2), so lines from worker
 * threads never interleave. Logging never decides control flow, and never waits for a pipe or a
 * socket whose reader stopped reading: such lines are dropped, counted and reported (log.c).
 */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_INFO, LOG_DEBUG };
enum log_format { LOG_TEXT, LOG_JSON };

/* A key and either a string or a number, for structured lines (the access log). */
struct log_field {
    const char *key;
    const char *str; /* NULL: the field is the number num */
    long long num;
};

void log_setup(enum log_level level, enum log_format format);
/* Settings for the calling thread only, over the process-wide ones; -1, -1 ends that. A reload
 * writes its own lines under the settings it installs before they apply to the workers. */
void log_thread_settings(int level, int format);
bool log_enabled(enum log_level level);
const char *log_level_name(enum log_level level);
/* Returns the level / format for a name, or -1. */
int log_level_parse(const char *name);
int log_format_parse(const char *name);

/* Writes the escape text lines use for a control character into out (a backslash and n, t or r,
 * or \xNN) and returns its length; 0 for any other character, which is written as it is. */
int log_escape_control(unsigned char c, char out[5]);

/* A free-form message. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* msg followed by key=value pairs (text) or an object with msg and the fields (JSON). */
void log_fields(enum log_level level, const char *msg, const struct log_field *f, size_t n);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_msg(LOG_DEBUG, __VA_ARGS__);                                                       \
    } while (0)

#endif
