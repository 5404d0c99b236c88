/*
 * config.h - ferry's configuration: YAML in, plain immutable structs out.
 *
 * A loaded config is never modified. Workers and connections hold references to the generation
 * they started with; a reload builds a new config beside the old one and swaps, and the old one is
 * freed by its last config_unref(). Parsing reports the first error as "FILE:LINE:COL: message",
 * like a compiler. This module knows nothing of sockets in use, the loop or globals.
 */
#ifndef FERRY_CONFIG_H
#define FERRY_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "log.h"
#include "sock.h"

#define CONFIG_BUFFER_MIN  (64u)
#define CONFIG_BUFFER_MAX  (64u << 20)
#define CONFIG_WEIGHT_MAX  256u
#define CONFIG_WORKERS_MAX 256u

enum balance { BALANCE_ROUND_ROBIN };

/* Settings a route inherits from `defaults` unless it sets its own. */
struct route_settings {
    uint64_t connect_timeout_ms; /* per backend attempt, > 0 */
    uint64_t idle_timeout_ms;    /* 0 = never */
    unsigned connect_attempts;   /* backends tried per client connection, >= 1 */
    size_t buffer_size;          /* bytes per direction per pair (ring path) */
    size_t buffer_max;           /* a streaming direction's ring grows up to this (>= no growth) */
    bool splice;                 /* relay with splice(2) through a pipe per direction */
};

/* The size a streaming direction's ring may grow to; buffer_size when it never grows. */
static inline size_t settings_buffer_max(const struct route_settings *s)
{
    return s->buffer_max > s->buffer_size ? s->buffer_max : s->buffer_size;
}

struct backend_conf {
    char *address; /* as written in the file */
    struct sockaddr_any addr;
    unsigned weight; /* 1..CONFIG_WEIGHT_MAX */
    bool named;      /* address holds a host name: re-resolved every resolve_interval */
};

struct listen_conf {
    char *address; /* as written */
    struct sockaddr_any addr;
    unsigned line, col; /* where it is written (1-based), for errors found later (bind) */
};

struct route_conf {
    char *name;
    struct listen_conf *listens;
    size_t nlistens;
    enum balance balance;
    struct route_settings s;
    struct backend_conf *backends;
    size_t nbackends;
};

#define CONFIG_FILE_SETTLED_S 2

/* The configuration file as stat() sees it: a write, a rename over it or a symlink swap changes
 * it, an event on another file of its directory does not. */
struct config_file_id {
    bool present; /* stat() succeeded */
    bool settled; /* its ctime was over CONFIG_FILE_SETTLED_S old when looked at: any later change
                     has a later ctime, whatever the filesystem's timestamp granularity (a file
                     changed within that time may change again with the same stat) */
    dev_t dev;
    ino_t ino;
    off_t size;
    struct timespec mtime, ctime;
};

struct config {
    char *path;
    unsigned workers;         /* resolved: "auto" becomes the CPU count */
    bool workers_auto;        /* written as "auto" */
    unsigned max_connections; /* 0 = derive from the open-file limit at startup */
    uint64_t shutdown_timeout_ms;
    uint64_t resolve_interval_ms; /* backend host names looked up again; 0 = only on (re)load */
    bool coalesce;                /* auto: a busy worker may wait before blocking (coalesce.h) */
    uint64_t buffer_budget;       /* per worker: bytes grown rings (buffer_max) may hold at once */
    enum log_level log_level;
    enum log_format log_format;
    bool log_access;
    bool reload_watch;
    struct route_settings defaults;
    struct route_conf *routes;
    size_t nroutes;
    uint64_t hash;                 /* FNV-1a of the file's bytes: "did anything change?" */
    struct config_file_id file_id; /* the file as opened for this load (before reading it) */
    bool has_names;                /* some backend is written as a host name */
    unsigned generation;           /* set by whoever installs it: 1, 2, ... */
    atomic_uint refs;
};

struct config_error {
    char msg[1024]; /* "FILE:LINE:COL: message", or "FILE: message" without a position */
};

/* A deep copy of c (refs = 1, generation 0), to change before it is installed. Aborts if out of
 * memory, like the loader. */
struct config *config_dup(const struct config *c);

/* Load and validate a file. Returns 0 with *out (refs = 1), or -1 with err filled. */
int config_load_file(const char *path, struct config **out, struct config_error *err);
/* The same from memory; name is used in messages. */
int config_load_string(const char *name, const char *text, size_t len, struct config **out,
                       struct config_error *err);
struct config *config_ref(struct config *c);
void config_unref(struct config *c);

/* Print every route with its effective settings (for --check). */
void config_print(const struct config *c, FILE *out);
/* Does any route relay through splice(2) pipes? */
bool config_any_splice(const struct config *c);

/* CPUs a cgroup CPU quota allows (quota and period in the same unit), rounded up, at most
 * CONFIG_WORKERS_MAX; 0 if there is no quota (quota <= 0). */
unsigned config_quota_cpus(long long quota, long long period);
/* The same from a cgroup v2 cpu.max line ("max 100000" or "150000 100000"); 0 = no limit. */
unsigned config_cpu_max_cpus(const char *text);
/* From /proc/self/cgroup's text, the path of the cgroup that holds the CPU quota: 1 (cgroup v1
 * "cpu" controller, preferred on a hybrid host), 2 (the v2 "0::" line) or 0 (none). */
int config_cgroup_cpu_path(const char *text, char *path, size_t len);

/* "250ms", "5s", "10m", "1h"; "0" (or "0s"...) only if allow_zero. 0 or -1 with *why. */
int config_parse_duration(const char *s, bool allow_zero, uint64_t *ms, const char **why);
/* "4096", "16KiB", "1MiB". 0 or -1 with *why. */
int config_parse_size(const char *s, uint64_t *bytes, const char **why);
/* Human forms for printing: "5s", "16KiB" (exact, largest unit that divides). */
void config_format_duration(uint64_t ms, char *buf, size_t len);
void config_format_size(uint64_t bytes, char *buf, size_t len);
uint64_t config_hash_bytes(const void *data, size_t len);

/* stat() path (following symlinks) into *id; id->present is false if it fails. */
void config_file_id_stat(const char *path, struct config_file_id *id);
/* Same file, same size and times (settled is not compared). */
bool config_file_id_equal(const struct config_file_id *a, const struct config_file_id *b);

#endif
