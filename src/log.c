/*
 * log.c - line-oriented logging to stderr. The level and format are process-wide atomics (a reload
 * may change them while workers log).
 *
 * Workers log from the event loop, so a write must not wait for the reader of stderr. When stderr
 * is a pipe or a socket (a container runtime, systemd, a shell pipeline) and its reader stops
 * reading, a blocking write would stop all relaying and even a graceful shutdown. There, lines are
 * written without waiting: a line that finds no room is dropped and counted, and the next line
 * that gets through is preceded by one saying how many were lost. A pipe is also enlarged to
 * LOG_PIPE_SIZE, so a reader that falls behind for a moment loses nothing. A terminal or a file is
 * written as before.
 */
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define LOG_PIPE_SIZE (1 << 20)
/* A line cut short by a full socket (never a pipe: a line is below PIPE_BUF, so a pipe takes all
 * of it or nothing) waits this long in all for room to finish, so lines are not run together. */
#define LOG_FINISH_WAIT_MS 100

enum out_kind { OUT_BLOCKING, OUT_PIPE, OUT_SOCKET };
static _Atomic int out_kind = OUT_BLOCKING;
static pthread_once_t out_once = PTHREAD_ONCE_INIT;
static atomic_ullong dropped;

static _Atomic int cur_level = LOG_INFO;
static _Atomic int cur_format = LOG_TEXT;
/* This thread's own settings while >= 0 (log_thread_settings). */
static _Thread_local int thread_level = -1, thread_format = -1;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_setup(enum log_level level, enum log_format format)
{
    atomic_store_explicit(&cur_level, (int)level, memory_order_relaxed);
    atomic_store_explicit(&cur_format, (int)format, memory_order_relaxed);
}

void log_thread_settings(int level, int format)
{
    thread_level = level;
    thread_format = format;
}

bool log_enabled(enum log_level level)
{
    int cur =
        thread_level >= 0 ? thread_level : atomic_load_explicit(&cur_level, memory_order_relaxed);
    return (int)level <= cur;
}

static bool format_is_json(void)
{
    int f = thread_format >= 0 ? thread_format
                               : atomic_load_explicit(&cur_format, memory_order_relaxed);
    return f == LOG_JSON;
}

const char *log_level_name(enum log_level level)
{
    return level_names[level];
}

int log_level_parse(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0)
            return i;
    return -1;
}

int log_format_parse(const char *name)
{
    if (strcmp(name, "text") == 0)
        return LOG_TEXT;
    if (strcmp(name, "json") == 0)
        return LOG_JSON;
    return -1;
}

/* A bounded line buffer; output past its end is dropped and the line still ends with '\n'. */
struct line {
    char buf[2048];
    size_t len;
};

static void put(struct line *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 1 - l->len; /* keep one byte for '\n' */
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void puts_(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

static void putf(struct line *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct line *l, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n > 0)
        put(l, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void put_json_str(struct line *l, const char *s)
{
    puts_(l, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            put(l, e, 2);
        } else if (c < 0x20) {
            putf(l, "\\u%04x", c);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
    puts_(l, "\"");
}

int log_escape_control(unsigned char c, char out[5])
{
    if (c >= 0x20 && c != 0x7f)
        return 0;
    if (c == '\n' || c == '\t' || c == '\r') {
        out[0] = '\\';
        out[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
        return 2;
    }
    static const char hex[] = "0123456789abcdef";
    out[0] = '\\';
    out[1] = 'x';
    out[2] = hex[c >> 4];
    out[3] = hex[c & 15];
    return 4;
}

/* Text lines escape control characters, so one event is one line whatever a value holds. */
static void put_text(struct line *l, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        char e[5];
        int n = log_escape_control((unsigned char)*s, e);
        if (n == 0)
            continue;
        put(l, run, (size_t)(s - run));
        put(l, e, (size_t)n);
        run = s + 1;
    }
    put(l, run, (size_t)(s - run));
}

static void put_time(struct line *l)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    putf(l, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
         tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

static void begin(struct line *l, enum log_level level, bool json)
{
    l->len = 0;
    if (json) {
        puts_(l, "{\"time\":\"");
        put_time(l);
        putf(l, "\",\"level\":\"%s\",\"msg\":", level_names[level]);
    } else {
        put_time(l);
        putf(l, " %s ", level_names[level]);
    }
}

static void out_init(void)
{
    struct stat st;
    if (fstat(STDERR_FILENO, &st) == -1)
        return;
    if (S_ISFIFO(st.st_mode)) {
        if (fcntl(STDERR_FILENO, F_GETPIPE_SZ) < LOG_PIPE_SIZE)
            (void)fcntl(STDERR_FILENO, F_SETPIPE_SZ, LOG_PIPE_SIZE); /* best effort */
        atomic_store(&out_kind, OUT_PIPE);
    } else if (S_ISSOCK(st.st_mode)) {
        atomic_store(&out_kind, OUT_SOCKET);
    }
}

/* One write of stderr that waits for room only in OUT_BLOCKING. */
static ssize_t write_some(const char *p, size_t n)
{
    switch (atomic_load_explicit(&out_kind, memory_order_relaxed)) {
    case OUT_SOCKET:
        return send(STDERR_FILENO, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    case OUT_PIPE: {
        struct iovec v = {(void *)p, n};
        ssize_t r = pwritev2(STDERR_FILENO, &v, 1, -1, RWF_NOWAIT);
        if (r == -1 && errno == EOPNOTSUPP) {
            /* A kernel that cannot write a pipe without waiting: wait, as before. */
            atomic_store(&out_kind, OUT_BLOCKING);
            return write(STDERR_FILENO, p, n);
        }
        return r;
    }
    default:
        return write(STDERR_FILENO, p, n);
    }
}

/* Writes all of p, or nothing if the reader has no room for it now: returns false then. A
 * stderr that is gone counts as written (there is nothing sensible to do). */
static bool write_line(const char *p, size_t n)
{
    size_t done = 0;
    int waited_ms = 0;
    while (done < n) {
        ssize_t r = write_some(p + done, n - done);
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (done == 0)
                return false;
            if (waited_ms < LOG_FINISH_WAIT_MS) {
                struct pollfd pf = {.fd = STDERR_FILENO, .events = POLLOUT};
                (void)poll(&pf, 1, 10);
                waited_ms += 10;
                continue;
            }
        }
        return true;
    }
    return true;
}

/* A whole message line (no fields) at level, ending in '\n'. */
static void format_text_line(struct line *l, enum log_level level, const char *text)
{
    bool json = format_is_json();
    begin(l, level, json);
    if (json) {
        put_json_str(l, text);
        puts_(l, "}");
    } else {
        put_text(l, text);
    }
    l->buf[l->len++] = '\n';
}

/* Writes l (its '\n' added by the caller), after saying how many lines were dropped before it. */
static void emit(struct line *l)
{
    pthread_once(&out_once, out_init);
    unsigned long long lost = atomic_exchange(&dropped, 0);
    if (lost > 0 && log_enabled(LOG_WARN)) {
        char text[160];
        snprintf(text, sizeof(text),
                 "log: %llu line%s dropped: the reader of stderr did not keep up", lost,
                 lost == 1 ? "" : "s");
        struct line n;
        format_text_line(&n, LOG_WARN, text);
        if (!write_line(n.buf, n.len)) {
            atomic_fetch_add(&dropped, lost + 1);
            return;
        }
    }
    if (!write_line(l->buf, l->len))
        atomic_fetch_add(&dropped, 1);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    char text[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    struct line l;
    format_text_line(&l, level, text);
    emit(&l);
}

void log_fields(enum log_level level, const char *msg, const struct log_field *f, size_t n)
{
    if (!log_enabled(level))
        return;
    struct line l;
    bool json = format_is_json();
    begin(&l, level, json);
    if (json)
        put_json_str(&l, msg);
    else
        put_text(&l, msg);
    for (size_t i = 0; i < n; i++) {
        if (json) {
            puts_(&l, ",");
            put_json_str(&l, f[i].key);
            puts_(&l, ":");
            if (f[i].str)
                put_json_str(&l, f[i].str);
            else
                putf(&l, "%lld", f[i].num);
        } else if (f[i].str) {
            putf(&l, " %s=", f[i].key);
            put_text(&l, f[i].str);
        } else {
            putf(&l, " %s=%lld", f[i].key, f[i].num);
        }
    }
    if (json)
        puts_(&l, "}");
    l.buf[l.len++] = '\n';
    emit(&l);
}
