/*
 * config.c - YAML -> struct config, validated, every error with FILE:LINE:COL.
 *
 * Each YAML mapping is described by a table of keys and setters (like twemproxy's nc_conf.c and
 * nginx's ngx_command_t). A mapping is read in two passes: the first rejects unknown and duplicate
 * keys, the second calls the setters in table order, so `defaults` is applied before `routes`
 * wherever it is written in the file. No sockets are opened here; host names are resolved.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include <arpa/inet.h>
#include <netinet/in.h>

/* ---- durations, sizes, hashing ---------------------------------------------------------- */

static int parse_uint(const char *s, const char **end, uint64_t *v)
{
    if (!isdigit((unsigned char)*s))
        return -1;
    uint64_t x = 0;
    while (isdigit((unsigned char)*s)) {
        if (x > (UINT64_MAX - 9) / 10)
            return -1;
        x = x * 10 + (uint64_t)(*s - '0');
        s++;
    }
    *end = s;
    *v = x;
    return 0;
}

int config_parse_duration(const char *s, bool allow_zero, uint64_t *ms, const char **why)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
    const char *end;
    uint64_t v;
    if (parse_uint(s, &end, &v) != 0) {
        *why = "expected a duration such as 250ms, 5s, 10m or 1h";
        return -1;
    }
    if (*end == '\0') {
        if (v != 0) {
            *why = "a duration needs a unit: ms, s, m or h (e.g. 5s)";
            return -1;
        }
        if (!allow_zero) {
            *why = "must be greater than 0";
            return -1;
        }
        *ms = 0;
        return 0;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) == 0) {
            /* 100 days is far beyond any sensible timeout and keeps arithmetic overflow-free. */
            if (v > 100ull * 24 * 3600 * 1000 / units[i].ms) {
                *why = "duration too large (at most 100 days)";
                return -1;
            }
            *ms = v * units[i].ms;
            if (*ms == 0 && !allow_zero) {
                *why = "must be greater than 0";
                return -1;
            }
            return 0;
        }
    }
    *why = *end == '.' || *end == ',' ? "must be a whole number (for 1.5s write 1500ms)"
                                      : "unknown duration unit (use ms, s, m or h)";
    return -1;
}

int config_parse_size(const char *s, uint64_t *bytes, const char **why)
{
    const char *end;
    uint64_t v;
    if (parse_uint(s, &end, &v) != 0) {
        *why = "expected a size such as 4096, 16KiB or 1MiB";
        return -1;
    }
    uint64_t mult;
    if (*end == '\0')
        mult = 1;
    else if (strcmp(end, "KiB") == 0)
        mult = 1024;
    else if (strcmp(end, "MiB") == 0)
        mult = 1024 * 1024;
    else {
        *why = *end == '.' || *end == ',' ? "must be a whole number (for 1.5KiB write 1536)"
                                          : "unknown size unit (use bytes, KiB or MiB)";
        return -1;
    }
    if (v > (1ull << 40) / mult) {
        *why = "size too large";
        return -1;
    }
    *bytes = v * mult;
    return 0;
}

void config_format_duration(uint64_t ms, char *buf, size_t len)
{
    if (ms == 0)
        snprintf(buf, len, "0");
    else if (ms % 3600000 == 0)
        snprintf(buf, len, "%lluh", (unsigned long long)(ms / 3600000));
    else if (ms % 60000 == 0)
        snprintf(buf, len, "%llum", (unsigned long long)(ms / 60000));
    else if (ms % 1000 == 0)
        snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
    else
        snprintf(buf, len, "%llums", (unsigned long long)ms);
}

void config_format_size(uint64_t bytes, char *buf, size_t len)
{
    if (bytes && bytes % (1024 * 1024) == 0)
        snprintf(buf, len, "%lluMiB", (unsigned long long)(bytes >> 20));
    else if (bytes && bytes % 1024 == 0)
        snprintf(buf, len, "%lluKiB", (unsigned long long)(bytes >> 10));
    else
        snprintf(buf, len, "%llu", (unsigned long long)bytes);
}

uint64_t config_hash_bytes(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 14695981039346656037ull; /* FNV-1a 64 offset basis */
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* ---- parse context ------------------------------------------------------------------------ */

struct pctx {
    const char *name; /* file name for messages */
    yaml_document_t *doc;
    struct config *cfg;
    struct config_error *err;
    struct route_conf *route; /* the route being read, for route-level setters */
    struct backend_conf *backend;
};

static int fail_at(struct pctx *p, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail_at(struct pctx *p, const yaml_node_t *n, const char *fmt, ...)
{
    char text[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (n)
        snprintf(p->err->msg, sizeof(p->err->msg), "%s:%zu:%zu: %s", p->name,
                 n->start_mark.line + 1, n->start_mark.column + 1, text);
    else
        snprintf(p->err->msg, sizeof(p->err->msg), "%s: %s", p->name, text);
    return -1;
}

static int fail_at_pos(struct pctx *p, unsigned line, unsigned col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail_at_pos(struct pctx *p, unsigned line, unsigned col, const char *fmt, ...)
{
    char text[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    snprintf(p->err->msg, sizeof(p->err->msg), "%s:%u:%u: %s", p->name, line, col, text);
    return -1;
}

static yaml_node_t *node(struct pctx *p, int id)
{
    return yaml_document_get_node(p->doc, id);
}

static const char *kind_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a scalar";
    }
}

/* The scalar text of n, or an error naming key. Empty (null) scalars are errors. */
static int scalar(struct pctx *p, const yaml_node_t *n, const char *key, const char **out)
{
    *out = ""; /* defined on every path, so callers' error messages never read garbage */
    if (n->type != YAML_SCALAR_NODE)
        return fail_at(p, n, "'%s' must be a single value, not %s", key, kind_name(n));
    const char *s = (const char *)n->data.scalar.value;
    if (n->data.scalar.length == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0)
        return fail_at(p, n, "'%s' has no value", key);
    if (strlen(s) != n->data.scalar.length)
        return fail_at(p, n, "'%s' contains a NUL byte", key);
    *out = s;
    return 0;
}

static int get_uint(struct pctx *p, const yaml_node_t *n, const char *key, uint64_t lo, uint64_t hi,
                    uint64_t *out)
{
    const char *s, *end;
    uint64_t v;
    if (scalar(p, n, key, &s))
        return -1;
    if (parse_uint(s, &end, &v) != 0 || *end)
        return fail_at(p, n, "'%s' must be a whole number, got '%s'", key, s);
    if (v < lo || v > hi)
        return fail_at(p, n, "'%s' must be from %llu to %llu, got %llu", key,
                       (unsigned long long)lo, (unsigned long long)hi, (unsigned long long)v);
    *out = v;
    return 0;
}

static int get_duration(struct pctx *p, const yaml_node_t *n, const char *key, bool allow_zero,
                        uint64_t *out)
{
    const char *s, *why;
    if (scalar(p, n, key, &s))
        return -1;
    if (config_parse_duration(s, allow_zero, out, &why) != 0)
        return fail_at(p, n, "'%s': bad duration '%s': %s", key, s, why);
    return 0;
}

static int get_bool(struct pctx *p, const yaml_node_t *n, const char *key, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"}, *const no[] = {"false", "no", "off"};
    const char *s;
    if (scalar(p, n, key, &s))
        return -1;
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return fail_at(p, n, "'%s' must be true or false, got '%s'", key, s);
}

/* ---- mapping tables ------------------------------------------------------------------------- */

typedef int (*setter_cb)(struct pctx *p, yaml_node_t *value, const char *key);

struct key_entry {
    const char *key;
    setter_cb set;
    bool required;
};

#define MAX_KEYS 16

/* Two passes over a mapping: reject unknown/duplicate keys, then call setters in table order. */
static int read_mapping(struct pctx *p, yaml_node_t *map, const char *what,
                        const struct key_entry *table, size_t nkeys)
{
    if (map->type != YAML_MAPPING_NODE)
        return fail_at(p, map, "%s must be a mapping (key: value), not %s", what, kind_name(map));
    yaml_node_t *values[MAX_KEYS] = {0};
    yaml_node_t *keys[MAX_KEYS] = {0};
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *k = node(p, pair->key);
        if (k->type != YAML_SCALAR_NODE)
            return fail_at(p, k, "keys in %s must be plain words", what);
        const char *name = (const char *)k->data.scalar.value;
        size_t i;
        for (i = 0; i < nkeys; i++)
            if (strcmp(table[i].key, name) == 0)
                break;
        if (i == nkeys) {
            char known[256] = "";
            for (size_t j = 0; j < nkeys; j++) {
                strncat(known, j ? ", " : "", sizeof(known) - strlen(known) - 1);
                strncat(known, table[j].key, sizeof(known) - strlen(known) - 1);
            }
            return fail_at(p, k, "unknown key '%s' in %s (known keys: %s)", name, what, known);
        }
        if (values[i])
            return fail_at(p, k, "duplicate key '%s' in %s (first at line %zu)", name, what,
                           keys[i]->start_mark.line + 1);
        keys[i] = k;
        values[i] = node(p, pair->value);
    }
    for (size_t i = 0; i < nkeys; i++) {
        if (!values[i]) {
            if (table[i].required)
                return fail_at(p, map, "%s: missing required key '%s'", what, table[i].key);
            continue;
        }
        if (table[i].set(p, values[i], table[i].key))
            return -1;
    }
    return 0;
}

/* ---- log, reload, defaults ------------------------------------------------------------------ */

static int set_log_level(struct pctx *p, yaml_node_t *v, const char *key)
{
    const char *s;
    if (scalar(p, v, key, &s))
        return -1;
    int lv = log_level_parse(s);
    if (lv < 0)
        return fail_at(p, v, "'level' must be error, warn, info or debug, got '%s'", s);
    p->cfg->log_level = (enum log_level)lv;
    return 0;
}

static int set_log_format(struct pctx *p, yaml_node_t *v, const char *key)
{
    const char *s;
    if (scalar(p, v, key, &s))
        return -1;
    int f = log_format_parse(s);
    if (f < 0)
        return fail_at(p, v, "'format' must be text or json, got '%s'", s);
    p->cfg->log_format = (enum log_format)f;
    return 0;
}

static int set_log_access(struct pctx *p, yaml_node_t *v, const char *key)
{
    return get_bool(p, v, key, &p->cfg->log_access);
}

static const struct key_entry log_keys[] = {
    {"level", set_log_level, false},
    {"format", set_log_format, false},
    {"access", set_log_access, false},
};

static int set_log(struct pctx *p, yaml_node_t *v, const char *key)
{
    (void)key;
    return read_mapping(p, v, "'log'", log_keys, sizeof(log_keys) / sizeof(log_keys[0]));
}

static int set_reload_watch(struct pctx *p, yaml_node_t *v, const char *key)
{
    return get_bool(p, v, key, &p->cfg->reload_watch);
}

static const struct key_entry reload_keys[] = {{"watch", set_reload_watch, false}};

static int set_reload(struct pctx *p, yaml_node_t *v, const char *key)
{
    (void)key;
    return read_mapping(p, v, "'reload'", reload_keys, 1);
}

/* Route settings setters write into p->route->s when reading a route, else into defaults. */
static struct route_settings *settings(struct pctx *p)
{
    return p->route ? &p->route->s : &p->cfg->defaults;
}

static int set_connect_timeout(struct pctx *p, yaml_node_t *v, const char *key)
{
    return get_duration(p, v, key, false, &settings(p)->connect_timeout_ms);
}

static int set_idle_timeout(struct pctx *p, yaml_node_t *v, const char *key)
{
    return get_duration(p, v, key, true, &settings(p)->idle_timeout_ms);
}

static int set_connect_attempts(struct pctx *p, yaml_node_t *v, const char *key)
{
    uint64_t n;
    if (get_uint(p, v, key, 1, 100, &n))
        return -1;
    settings(p)->connect_attempts = (unsigned)n;
    return 0;
}

/* A size: bytes, or with KiB / MiB. *text is what was written, for messages. */
static int get_size(struct pctx *p, yaml_node_t *v, const char *key, uint64_t *n, const char **text)
{
    const char *why;
    if (scalar(p, v, key, text))
        return -1;
    if (config_parse_size(*text, n, &why) != 0)
        return fail_at(p, v, "'%s': bad size '%s': %s", key, *text, why);
    return 0;
}

/* A buffer size: a size from 64 bytes to 64MiB. */
static int get_buffer_size(struct pctx *p, yaml_node_t *v, const char *key, uint64_t *n)
{
    const char *s;
    if (get_size(p, v, key, n, &s))
        return -1;
    if (*n < CONFIG_BUFFER_MIN || *n > CONFIG_BUFFER_MAX)
        return fail_at(p, v, "'%s' must be from 64 bytes to 64MiB, got '%s'", key, s);
    return 0;
}

static int set_buffer_size(struct pctx *p, yaml_node_t *v, const char *key)
{
    uint64_t n = 0; /* set on success; initialised for gcc -O3's flow analysis */
    if (get_buffer_size(p, v, key, &n))
        return -1;
    settings(p)->buffer_size = (size_t)n;
    return 0;
}

/* Read after buffer_size in the same mapping (table order), so it can be checked against it. A
 * buffer_max inherited from `defaults` below a route's own buffer_size just means no growth. */
static int set_buffer_max(struct pctx *p, yaml_node_t *v, const char *key)
{
    uint64_t n = 0; /* set on success; initialised for gcc -O3's flow analysis */
    if (get_buffer_size(p, v, key, &n))
        return -1;
    if (n < settings(p)->buffer_size) {
        char a[32], b[32];
        config_format_size(n, a, sizeof(a));
        config_format_size(settings(p)->buffer_size, b, sizeof(b));
        return fail_at(p, v,
                       "'%s' (%s) is smaller than buffer_size (%s): set it to buffer_size for "
                       "rings that never grow",
                       key, a, b);
    }
    settings(p)->buffer_max = (size_t)n;
    return 0;
}

static int set_splice(struct pctx *p, yaml_node_t *v, const char *key)
{
    return get_bool(p, v, key, &settings(p)->splice);
}

/* The settings a route inherits from `defaults`, in application order (buffer_max after
 * buffer_size, which it is checked against). */
/* clang-format off */
#define ROUTE_SETTING_KEYS                                  \
    {"connect_timeout", set_connect_timeout, false},        \
    {"idle_timeout", set_idle_timeout, false},              \
    {"connect_attempts", set_connect_attempts, false},      \
    {"buffer_size", set_buffer_size, false},                \
    {"buffer_max", set_buffer_max, false},                  \
    {"splice", set_splice, false}
/* clang-format on */

static const struct key_entry defaults_keys[] = {ROUTE_SETTING_KEYS};

static int set_defaults(struct pctx *p, yaml_node_t *v, const char *key)
{
    (void)key;
    return read_mapping(p, v, "'defaults'", defaults_keys,
                        sizeof(defaults_keys) / sizeof(defaults_keys[0]));
}

/* ---- top-level scalars -------------------------------------------------------------------- */

unsigned config_quota_cpus(long long quota, long long period)
{
    if (quota <= 0 || period <= 0)
        return 0;
    long long n = (quota + period - 1) / period;
    return n > (long long)CONFIG_WORKERS_MAX ? CONFIG_WORKERS_MAX : (unsigned)n;
}

unsigned config_cpu_max_cpus(const char *text)
{
    char quota[32];
    long long period;
    if (sscanf(text, "%31s %lld", quota, &period) != 2 || strcmp(quota, "max") == 0)
        return 0;
    char *end;
    long long q = strtoll(quota, &end, 10);
    return *end ? 0 : config_quota_cpus(q, period);
}

int config_cgroup_cpu_path(const char *text, char *path, size_t len)
{
    int found = 0;
    char line[1024];
    for (const char *p = text; *p;) {
        size_t n = strcspn(p, "\n");
        snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) ? n : sizeof(line) - 1), p);
        p += n + (p[n] == '\n');
        /* "ID:CONTROLLERS:PATH"; the path may itself hold ':' */
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = '\0';
        *c2 = '\0';
        const char *ctrls = c1 + 1, *where = c2 + 1;
        if (strcmp(line, "0") == 0 && ctrls[0] == '\0') {
            if (found != 1) { /* v1 "cpu" wins on a hybrid host: it is where the quota is */
                snprintf(path, len, "%s", where);
                found = 2;
            }
            continue;
        }
        char list[512];
        snprintf(list, sizeof(list), "%s", ctrls);
        for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (strcmp(t, "cpu") == 0) {
                snprintf(path, len, "%s", where);
                found = 1;
            }
    }
    return found;
}

/* The first line of a small file, or "" if it cannot be read. */
static void read_line(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    if (!fgets(buf, (int)len, f))
        buf[0] = '\0';
    fclose(f);
}

/* The limit in one cgroup directory (path under the v1 cpu or the v2 mount); 0 = none. */
static unsigned cgroup_dir_cpus(int version, const char *path)
{
    char file[640], text[64];
    if (version == 1) {
        snprintf(file, sizeof(file), "/sys/fs/cgroup/cpu%s/cpu.cfs_quota_us", path);
        read_line(file, text, sizeof(text));
        long long quota = text[0] ? strtoll(text, NULL, 10) : -1;
        snprintf(file, sizeof(file), "/sys/fs/cgroup/cpu%s/cpu.cfs_period_us", path);
        read_line(file, text, sizeof(text));
        return config_quota_cpus(quota, text[0] ? strtoll(text, NULL, 10) : 0);
    }
    snprintf(file, sizeof(file), "/sys/fs/cgroup%s/cpu.max", path);
    read_line(file, text, sizeof(text));
    return config_cpu_max_cpus(text);
}

/* The cgroup CPU limit on this process (the tightest of its cgroup and their parents, cgroup v2
 * cpu.max or v1 cpu.cfs_quota_us), in CPUs rounded up; 0 = none found. A container's --cpus and
 * a Kubernetes CPU limit are such quotas. The mount root is looked at last: in a container
 * without a cgroup namespace it is the container's own cgroup, whatever /proc says the path is. */
static unsigned cgroup_cpus(void)
{
    char text[4096], path[512];
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return 0;
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    int version = config_cgroup_cpu_path(text, path, sizeof(path));
    if (!version)
        return 0;
    unsigned best = 0;
    for (;;) {
        unsigned c = cgroup_dir_cpus(version, path);
        if (c && (!best || c < best))
            best = c;
        if (path[0] == '\0')
            break;
        char *slash = strrchr(path, '/');
        if (!slash)
            break;
        *slash = '\0'; /* "/a/b" -> "/a" -> "" (the mount root) */
    }
    return best;
}

static int set_workers(struct pctx *p, yaml_node_t *v, const char *key)
{
    const char *s;
    if (scalar(p, v, key, &s))
        return -1;
    if (strcmp(s, "auto") == 0) {
        cpu_set_t set;
        int n = 1;
        if (sched_getaffinity(0, sizeof(set), &set) == 0)
            n = CPU_COUNT(&set);
        unsigned quota = cgroup_cpus();
        if (quota && (int)quota < n)
            n = (int)quota;
        p->cfg->workers = n < 1                         ? 1
                          : n > (int)CONFIG_WORKERS_MAX ? CONFIG_WORKERS_MAX
                                                        : (unsigned)n;
        p->cfg->workers_auto = true;
        return 0;
    }
    uint64_t n;
    const char *end;
    if (parse_uint(s, &end, &n) != 0 || *end)
        return fail_at(p, v, "'workers' must be a number or auto, got '%s'", s);
    if (n < 1 || n > CONFIG_WORKERS_MAX)
        return fail_at(p, v, "'workers' must be from 1 to %u, got %llu", CONFIG_WORKERS_MAX,
                       (unsigned long long)n);
    p->cfg->workers = (unsigned)n;
    return 0;
}

static int set_max_connections(struct pctx *p, yaml_node_t *v, const char *key)
{
    uint64_t n;
    if (get_uint(p, v, key, 1, 10000000, &n))
        return -1;
    p->cfg->max_connections = (unsigned)n;
    return 0;
}

static int set_buffer_budget(struct pctx *p, yaml_node_t *v, const char *key)
{
    const char *s;
    return get_size(p, v, key, &p->cfg->buffer_budget, &s);
}

static int set_coalesce(struct pctx *p, yaml_node_t *v, const char *key)
{
    const char *s;
    if (scalar(p, v, key, &s))
        return -1;
    if (strcmp(s, "auto") != 0 && strcmp(s, "off") != 0)
        return fail_at(p, v, "'%s' must be auto or off, got '%s'", key, s);
    p->cfg->coalesce = strcmp(s, "auto") == 0;
    return 0;
}

static int set_shutdown_timeout(struct pctx *p, yaml_node_t *v, const char *key)
{
    return get_duration(p, v, key, true, &p->cfg->shutdown_timeout_ms);
}

static int set_resolve_interval(struct pctx *p, yaml_node_t *v, const char *key)
{
    if (get_duration(p, v, key, true, &p->cfg->resolve_interval_ms))
        return -1;
    if (p->cfg->resolve_interval_ms != 0 && p->cfg->resolve_interval_ms < 100)
        return fail_at(p, v, "'%s' must be 0 (never) or at least 100ms", key);
    return 0;
}

/* ---- routes ------------------------------------------------------------------------------- */

static char *dup_str(const char *s)
{
    char *d = strdup(s);
    if (!d)
        abort(); /* configuration is tiny; running out of memory here is fatal */
    return d;
}

static void *grow(void *arr, size_t n, size_t elem)
{
    void *a = realloc(arr, (n + 1) * elem);
    if (!a)
        abort();
    memset((char *)a + n * elem, 0, elem);
    return a;
}

/* Whether a connection to backend address b arrives on listening address l: the same address
 * (an IPv4-mapped one included), or l is the wildcard of b's family and port and b a loopback
 * address, which only this host answers. The host's other addresses behind a wildcard are not
 * known here. */
static bool backend_reaches(const struct sockaddr_any *b, const struct sockaddr_any *l)
{
    struct sockaddr_any x = sock_addr_unmapped(b);
    if (sock_addr_equal(&x, l))
        return true;
    return x.u.sa.sa_family == l->u.sa.sa_family && sock_addr_port(&x) == sock_addr_port(l) &&
           sock_addr_is_any(l) && sock_addr_is_loopback(&x);
}

static int add_listen(struct pctx *p, yaml_node_t *v)
{
    const char *s, *why;
    if (scalar(p, v, "listen", &s))
        return -1;
    struct sockaddr_any addr;
    if (sock_addr_parse(s, true, &addr, &why) != 0)
        return fail_at(p, v, "'listen': bad address '%s': %s", s, why);
    /* Listening IPv6 sockets are IPv6-only (sock_listen), and such a socket cannot bind an
     * IPv4-mapped address: it would pass here and fail at startup. */
    struct sockaddr_any v4 = sock_addr_unmapped(&addr);
    if (v4.u.sa.sa_family != addr.u.sa.sa_family) {
        char f[SOCK_ADDRSTRLEN];
        return fail_at(p, v,
                       "'listen': '%s' is an IPv4-mapped IPv6 address, which ferry cannot listen "
                       "on (its IPv6 listening sockets take IPv6 only): write the IPv4 form, %s",
                       s, sock_addr_format(&v4, f, sizeof(f)));
    }
    struct route_conf *r = p->route;
    r->listens = grow(r->listens, r->nlistens, sizeof(*r->listens));
    r->listens[r->nlistens].address = dup_str(s);
    r->listens[r->nlistens].addr = addr;
    r->listens[r->nlistens].line = (unsigned)v->start_mark.line + 1;
    r->listens[r->nlistens].col = (unsigned)v->start_mark.column + 1;
    r->nlistens++;
    return 0;
}

static int set_listen(struct pctx *p, yaml_node_t *v, const char *key)
{
    (void)key;
    if (v->type != YAML_SEQUENCE_NODE)
        return add_listen(p, v);
    if (v->data.sequence.items.start == v->data.sequence.items.top)
        return fail_at(p, v, "'listen' is an empty list: give at least one address");
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++)
        if (add_listen(p, node(p, *it)))
            return -1;
    return 0;
}

static int set_route_name(struct pctx *p, yaml_node_t *v, const char *key)
{
    const char *s;
    if (scalar(p, v, key, &s))
        return -1;
    for (const char *c = s; *c; c++)
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '.' && *c != '-')
            return fail_at(p, v, "'name' may use only letters, digits, '_', '.' and '-', got '%s'",
                           s);
    if (strlen(s) > 64)
        return fail_at(p, v, "'name' is longer than 64 characters");
    free(p->route->name);
    p->route->name = dup_str(s);
    return 0;
}

static int set_balance(struct pctx *p, yaml_node_t *v, const char *key)
{
    const char *s;
    if (scalar(p, v, key, &s))
        return -1;
    if (strcmp(s, "round_robin") != 0)
        return fail_at(p, v, "'balance' must be round_robin, got '%s'", s);
    p->route->balance = BALANCE_ROUND_ROBIN;
    return 0;
}

static int set_backend_address(struct pctx *p, yaml_node_t *v, const char *key)
{
    const char *s, *why;
    if (scalar(p, v, key, &s))
        return -1;
    if (sock_addr_parse(s, false, &p->backend->addr, &why) != 0)
        return fail_at(p, v, "'address': bad backend address '%s': %s", s, why);
    p->backend->address = dup_str(s);
    p->backend->named = sock_addr_is_name(s);
    if (p->backend->named)
        p->cfg->has_names = true;
    /* A name is checked as it resolves now: the address ferry will connect to. */
    char resolved[SOCK_ADDRSTRLEN + 32] = "", f[SOCK_ADDRSTRLEN];
    if (p->backend->named)
        snprintf(resolved, sizeof(resolved), " (resolved to %s)",
                 sock_addr_format(&p->backend->addr, f, sizeof(f)));
    struct sockaddr_any a = sock_addr_unmapped(&p->backend->addr);
    if (sock_addr_is_any(&a))
        return fail_at(p, v,
                       "'address': backend '%s'%s is not an address to connect to (0.0.0.0 and "
                       "[::] stand for every address of a host, for listening): give the "
                       "backend's own address",
                       s, resolved);
    /* The listen addresses are read before the backends (route_keys order). */
    const struct route_conf *r = p->route;
    for (size_t i = 0; i < r->nlistens; i++)
        if (backend_reaches(&p->backend->addr, &r->listens[i].addr))
            return fail_at(p, v,
                           "route '%s': backend '%s'%s connects to the route's own listen "
                           "address '%s': connections would loop back into ferry",
                           r->name, s, resolved, r->listens[i].address);
    return 0;
}

static int set_backend_weight(struct pctx *p, yaml_node_t *v, const char *key)
{
    uint64_t n;
    if (get_uint(p, v, key, 1, CONFIG_WEIGHT_MAX, &n))
        return -1;
    p->backend->weight = (unsigned)n;
    return 0;
}

static const struct key_entry backend_keys[] = {
    {"address", set_backend_address, true},
    {"weight", set_backend_weight, false},
};

static int set_backends(struct pctx *p, yaml_node_t *v, const char *key)
{
    (void)key;
    if (v->type != YAML_SEQUENCE_NODE)
        return fail_at(p, v, "'backends' must be a list, not %s", kind_name(v));
    if (v->data.sequence.items.start == v->data.sequence.items.top)
        return fail_at(p, v, "'backends' is empty: a route needs at least one backend");
    struct route_conf *r = p->route;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        yaml_node_t *b = node(p, *it);
        r->backends = grow(r->backends, r->nbackends, sizeof(*r->backends));
        p->backend = &r->backends[r->nbackends++];
        p->backend->weight = 1;
        int rc = b->type == YAML_SCALAR_NODE
                     ? set_backend_address(p, b, "address")
                     : read_mapping(p, b, "a backend", backend_keys,
                                    sizeof(backend_keys) / sizeof(backend_keys[0]));
        p->backend = NULL;
        if (rc)
            return -1;
        /* The same address twice is one backend counted twice: weight says that plainly. */
        const struct backend_conf *nb = &r->backends[r->nbackends - 1];
        for (size_t i = 0; i + 1 < r->nbackends; i++)
            if (strcmp(r->backends[i].address, nb->address) == 0)
                return fail_at(p, b,
                               "backend '%s' is listed twice in this route (give it a weight "
                               "instead)",
                               nb->address);
    }
    return 0;
}

static const struct key_entry route_keys[] = {
    {"name", set_route_name, false},  {"listen", set_listen, true},
    {"balance", set_balance, false},  ROUTE_SETTING_KEYS,
    {"backends", set_backends, true},
};

static int check_routes(struct pctx *p, yaml_node_t *seq)
{
    struct config *c = p->cfg;
    yaml_node_item_t *items = seq->data.sequence.items.start;
    for (size_t i = 0; i < c->nroutes; i++) {
        yaml_node_t *ri = node(p, items[i]);
        for (size_t j = 0; j < i; j++)
            if (strcmp(c->routes[i].name, c->routes[j].name) == 0)
                return fail_at(p, ri,
                               "duplicate route name '%s' (a route without a name is called "
                               "routeN after its position)",
                               c->routes[i].name);
        for (size_t a = 0; a < c->routes[i].nlistens; a++) {
            struct listen_conf *la = &c->routes[i].listens[a];
            for (size_t j = 0; j <= i; j++)
                for (size_t b = 0; b < (j == i ? a : c->routes[j].nlistens); b++) {
                    const struct listen_conf *lb = &c->routes[j].listens[b];
                    if (sock_addr_equal(&la->addr, &lb->addr))
                        return fail_at_pos(p, la->line, la->col,
                                           "route '%s': listen address '%s' is already used by "
                                           "route '%s'",
                                           c->routes[i].name, la->address, c->routes[j].name);
                    if (sock_addr_overlaps(&la->addr, &lb->addr))
                        return fail_at_pos(p, la->line, la->col,
                                           "route '%s': listen address '%s' overlaps '%s' of "
                                           "route '%s' (a wildcard address takes its port on "
                                           "every address of its family)",
                                           c->routes[i].name, la->address, lb->address,
                                           c->routes[j].name);
                }
        }
    }
    return 0;
}

static int set_routes(struct pctx *p, yaml_node_t *v, const char *key)
{
    (void)key;
    struct config *c = p->cfg;
    if (v->type != YAML_SEQUENCE_NODE)
        return fail_at(p, v, "'routes' must be a list of routes, not %s", kind_name(v));
    if (v->data.sequence.items.start == v->data.sequence.items.top)
        return fail_at(p, v, "'routes' is empty: give at least one route");
    size_t idx = 0;
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++, idx++) {
        c->routes = grow(c->routes, c->nroutes, sizeof(*c->routes));
        struct route_conf *r = &c->routes[c->nroutes++];
        r->s = c->defaults;
        r->balance = BALANCE_ROUND_ROBIN;
        /* Named before it is read, so that errors about the route can say which it is; a `name`
         * key replaces this. */
        char name[32];
        snprintf(name, sizeof(name), "route%zu", idx + 1);
        r->name = dup_str(name);
        p->route = r;
        int rc = read_mapping(p, node(p, *it), "a route", route_keys,
                              sizeof(route_keys) / sizeof(route_keys[0]));
        p->route = NULL;
        if (rc)
            return -1;
    }
    return check_routes(p, v);
}

/* Table order is application order: defaults before routes. */
static const struct key_entry top_keys[] = {
    {"workers", set_workers, false},
    {"max_connections", set_max_connections, false},
    {"shutdown_timeout", set_shutdown_timeout, false},
    {"resolve_interval", set_resolve_interval, false},
    {"buffer_budget", set_buffer_budget, false},
    {"coalesce", set_coalesce, false},
    {"reload", set_reload, false},
    {"log", set_log, false},
    {"defaults", set_defaults, false},
    {"routes", set_routes, true},
};

/* ---- load / free -------------------------------------------------------------------------- */

static void config_free(struct config *c)
{
    for (size_t i = 0; i < c->nroutes; i++) {
        struct route_conf *r = &c->routes[i];
        free(r->name);
        for (size_t j = 0; j < r->nlistens; j++)
            free(r->listens[j].address);
        free(r->listens);
        for (size_t j = 0; j < r->nbackends; j++)
            free(r->backends[j].address);
        free(r->backends);
    }
    free(c->routes);
    free(c->path);
    free(c);
}

/* The code unit at byte i of the input: one byte in UTF-8, two in UTF-16. */
static unsigned unit_at(const unsigned char *text, size_t i, yaml_encoding_t enc)
{
    if (enc == YAML_UTF16LE_ENCODING)
        return text[i] | (unsigned)text[i + 1] << 8;
    if (enc == YAML_UTF16BE_ENCODING)
        return (unsigned)text[i] << 8 | text[i + 1];
    return text[i];
}

/* Line and column (1-based) of byte off of the input, counted as libyaml counts its marks: a
 * column is a character, and a byte order mark is none. */
static void offset_position(const unsigned char *text, size_t len, yaml_encoding_t enc, size_t off,
                            size_t *line, size_t *col)
{
    bool u16 = enc == YAML_UTF16LE_ENCODING || enc == YAML_UTF16BE_ENCODING;
    size_t step = u16 ? 2 : 1, i = 0;
    if (u16)
        i = 2; /* libyaml reads UTF-16 only after a byte order mark */
    else if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0)
        i = 3;
    *line = 1;
    *col = 1;
    for (; i + step <= off && i + step <= len; i += step) {
        unsigned u = unit_at(text, i, enc);
        if (u == '\r' && i + 2 * step <= len && unit_at(text, i + step, enc) == '\n')
            continue; /* the '\n' of "\r\n" ends the line */
        if (u == '\n' || u == '\r') {
            (*line)++;
            *col = 1;
        } else if (u16 ? (u & 0xFC00) != 0xDC00 : (u & 0xC0) != 0x80) {
            (*col)++; /* not a UTF-8 continuation byte or a low surrogate: a new character */
        }
    }
}

/* The parser's error as "NAME:LINE:COL: YAML syntax error: ...". An error found while decoding
 * the input (a control character, bytes that are not UTF-8) has no mark, only problem_offset:
 * libyaml decodes ahead of the scanner, and would leave it at 1:1. */
static void yaml_error(const char *name, const char *text, size_t len, const yaml_parser_t *parser,
                       struct config_error *err)
{
    size_t line = parser->problem_mark.line + 1, col = parser->problem_mark.column + 1;
    char value[32] = "";
    if (parser->error == YAML_READER_ERROR) {
        offset_position((const unsigned char *)text, len, parser->encoding, parser->problem_offset,
                        &line, &col);
        if (parser->problem_value >= 0 && parser->problem && strstr(parser->problem, "octet"))
            snprintf(value, sizeof(value), " (byte 0x%02X)", (unsigned)parser->problem_value);
        else if (parser->problem_value >= 0)
            snprintf(value, sizeof(value), " (U+%04X)", (unsigned)parser->problem_value);
    }
    snprintf(err->msg, sizeof(err->msg), "%s:%zu:%zu: YAML syntax error: %s%s%s%s", name, line, col,
             parser->problem ? parser->problem : "malformed document", value,
             parser->context ? " " : "", parser->context ? parser->context : "");
}

static int load_string(const char *name, const char *text, size_t len, struct config **out,
                       struct config_error *err)
{
    struct config *c = calloc(1, sizeof(*c));
    if (!c)
        abort();
    c->path = dup_str(name);
    c->workers = 1;
    c->shutdown_timeout_ms = 30000;
    c->resolve_interval_ms = 30000;
    c->buffer_budget = 64u << 20;
    c->coalesce = true;
    c->log_level = LOG_INFO;
    c->log_format = LOG_TEXT;
    c->log_access = true;
    c->reload_watch = true;
    c->defaults.connect_timeout_ms = 5000;
    c->defaults.idle_timeout_ms = 3600000;
    c->defaults.connect_attempts = 3;
    c->defaults.buffer_size = 16 * 1024;
    c->defaults.buffer_max = 256 * 1024;
    c->hash = config_hash_bytes(text, len);
    atomic_init(&c->refs, 1);

    struct pctx p = {.name = name, .cfg = c, .err = err};
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int rc = -1;
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_error(name, text, len, &parser, err);
        yaml_parser_delete(&parser);
        config_free(c);
        return -1;
    }
    p.doc = &doc;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root)
        fail_at(&p, NULL, "the file is empty: it needs at least a 'routes' list");
    else
        rc = read_mapping(&p, root, "the top level", top_keys,
                          sizeof(top_keys) / sizeof(top_keys[0]));
    /* A second document in the same stream is almost certainly a mistake. */
    if (rc == 0) {
        yaml_document_t extra;
        if (yaml_parser_load(&parser, &extra)) {
            yaml_node_t *r2 = yaml_document_get_root_node(&extra);
            if (r2)
                rc = fail_at(&p, r2, "only one YAML document is allowed");
            yaml_document_delete(&extra);
        } else {
            rc = -1;
            yaml_error(name, text, len, &parser, err);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc) {
        config_free(c);
        return -1;
    }
    *out = c;
    return 0;
}

static void file_id_of(const struct stat *st, struct config_file_id *id)
{
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    *id =
        (struct config_file_id){.present = true,
                                .settled = wall.tv_sec - st->st_ctim.tv_sec > CONFIG_FILE_SETTLED_S,
                                .dev = st->st_dev,
                                .ino = st->st_ino,
                                .size = st->st_size,
                                .mtime = st->st_mtim,
                                .ctime = st->st_ctim};
}

void config_file_id_stat(const char *path, struct config_file_id *id)
{
    struct stat st;
    if (stat(path, &st) == 0)
        file_id_of(&st, id);
    else /* missing: the same until it is back */
        *id = (struct config_file_id){.settled = true};
}

bool config_file_id_equal(const struct config_file_id *a, const struct config_file_id *b)
{
    if (!a->present || !b->present)
        return a->present == b->present;
    return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

static int load_file(const char *path, struct config **out, struct config_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err->msg, sizeof(err->msg), "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    /* Before reading: a write while it is read changes the file after this, and is seen again. */
    struct config_file_id id = {0};
    struct stat st;
    if (fstat(fileno(f), &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            snprintf(err->msg, sizeof(err->msg), "%s: is a directory, not a configuration file",
                     path);
            fclose(f);
            return -1;
        }
        file_id_of(&st, &id);
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf)
        abort();
    size_t n;
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            if (cap >= (16u << 20)) {
                snprintf(err->msg, sizeof(err->msg), "%s: larger than 16MiB", path);
                free(buf);
                fclose(f);
                return -1;
            }
            cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                abort();
        }
    }
    int rd_err = ferror(f);
    fclose(f);
    if (rd_err) {
        snprintf(err->msg, sizeof(err->msg), "%s: read error", path);
        free(buf);
        return -1;
    }
    int rc = load_string(path, buf, len, out, err);
    free(buf);
    if (rc == 0)
        (*out)->file_id = id;
    return rc;
}

/* Control characters from the file (a quoted name with a newline, say) are written as escapes,
 * so a message stays one line and cannot pass for a log line of its own. */
static void escape_controls(char *msg, size_t size)
{
    char out[sizeof(((struct config_error *)0)->msg)];
    size_t o = 0;
    for (const char *c = msg; *c && o + 5 < sizeof(out); c++) {
        int n = log_escape_control((unsigned char)*c, out + o);
        if (n == 0)
            out[o++] = *c;
        o += (size_t)n;
    }
    out[o] = '\0';
    snprintf(msg, size, "%s", out);
}

int config_load_string(const char *name, const char *text, size_t len, struct config **out,
                       struct config_error *err)
{
    int rc = load_string(name, text, len, out, err);
    if (rc != 0)
        escape_controls(err->msg, sizeof(err->msg));
    return rc;
}

int config_load_file(const char *path, struct config **out, struct config_error *err)
{
    int rc = load_file(path, out, err);
    if (rc != 0)
        escape_controls(err->msg, sizeof(err->msg));
    return rc;
}

struct config *config_ref(struct config *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

struct config *config_dup(const struct config *c)
{
    struct config *d = malloc(sizeof(*d));
    if (!d)
        abort();
    *d = *c;
    d->path = dup_str(c->path);
    d->routes = calloc(c->nroutes ? c->nroutes : 1, sizeof(*d->routes));
    if (!d->routes)
        abort();
    for (size_t i = 0; i < c->nroutes; i++) {
        const struct route_conf *r = &c->routes[i];
        struct route_conf *x = &d->routes[i];
        *x = *r;
        x->name = dup_str(r->name);
        x->listens = calloc(r->nlistens ? r->nlistens : 1, sizeof(*x->listens));
        x->backends = calloc(r->nbackends ? r->nbackends : 1, sizeof(*x->backends));
        if (!x->listens || !x->backends)
            abort();
        for (size_t j = 0; j < r->nlistens; j++) {
            x->listens[j] = r->listens[j];
            x->listens[j].address = dup_str(r->listens[j].address);
        }
        for (size_t j = 0; j < r->nbackends; j++) {
            x->backends[j] = r->backends[j];
            x->backends[j].address = dup_str(r->backends[j].address);
        }
    }
    d->generation = 0;
    atomic_init(&d->refs, 1);
    return d;
}

void config_unref(struct config *c)
{
    if (c && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
        config_free(c);
}

bool config_any_splice(const struct config *c)
{
    for (size_t i = 0; i < c->nroutes; i++)
        if (c->routes[i].s.splice)
            return true;
    return false;
}

void config_print(const struct config *c, FILE *out)
{
    char a[32], b[32], d[32], e[32];
    fprintf(out, "config %s: ok, %zu route%s\n", c->path, c->nroutes, c->nroutes == 1 ? "" : "s");
    fprintf(out, "workers: %u%s\n", c->workers, c->workers_auto ? " (auto)" : "");
    if (c->max_connections)
        fprintf(out, "max_connections: %u\n", c->max_connections);
    else
        fprintf(out, "max_connections: derived from the open-file limit\n");
    config_format_duration(c->shutdown_timeout_ms, a, sizeof(a));
    fprintf(out, "shutdown_timeout: %s\n", a);
    fprintf(out, "log: {level: %s, format: %s, access: %s}\n", log_level_name(c->log_level),
            c->log_format == LOG_JSON ? "json" : "text", c->log_access ? "true" : "false");
    fprintf(out, "reload: {watch: %s}\n", c->reload_watch ? "true" : "false");
    config_format_duration(c->resolve_interval_ms, a, sizeof(a));
    fprintf(out, "resolve_interval: %s%s\n", a,
            !c->has_names            ? " (no backend host names)"
            : c->resolve_interval_ms ? ""
                                     : " (host names looked up only at load and reload)");
    config_format_size(c->buffer_budget, a, sizeof(a));
    fprintf(out, "buffer_budget: %s per worker%s\n", a,
            c->buffer_budget ? "" : " (rings never grow past buffer_size)");
    fprintf(out, "coalesce: %s\n",
            c->coalesce ? "auto (a busy worker waits a moment before blocking while that pays)"
                        : "off");
    for (size_t i = 0; i < c->nroutes; i++) {
        const struct route_conf *r = &c->routes[i];
        fprintf(out, "route %s\n", r->name);
        for (size_t j = 0; j < r->nlistens; j++) {
            char addr[SOCK_ADDRSTRLEN];
            fprintf(out, "  listen: %s\n",
                    sock_addr_format(&r->listens[j].addr, addr, sizeof(addr)));
        }
        fprintf(out, "  balance: round_robin\n");
        config_format_duration(r->s.connect_timeout_ms, a, sizeof(a));
        config_format_duration(r->s.idle_timeout_ms, b, sizeof(b));
        config_format_size(r->s.buffer_size, d, sizeof(d));
        config_format_size(settings_buffer_max(&r->s), e, sizeof(e));
        fprintf(out,
                "  connect_timeout: %s\n  idle_timeout: %s%s\n  connect_attempts: %u\n"
                "  buffer_size: %s\n  buffer_max: %s%s\n",
                a, b, r->s.idle_timeout_ms ? "" : " (never)", r->s.connect_attempts, d, e,
                settings_buffer_max(&r->s) > r->s.buffer_size ? " (while a direction streams)"
                                                              : " (rings never grow)");
        if (r->s.splice)
            fprintf(out, "  splice: true (a kernel pipe per direction instead of the rings)\n");
        for (size_t j = 0; j < r->nbackends; j++) {
            char addr[SOCK_ADDRSTRLEN];
            fprintf(out, "  backend: %s weight %u", r->backends[j].address, r->backends[j].weight);
            sock_addr_format(&r->backends[j].addr, addr, sizeof(addr));
            if (strcmp(addr, r->backends[j].address) != 0)
                fprintf(out, " (%s)", addr);
            fprintf(out, "\n");
        }
    }
}
