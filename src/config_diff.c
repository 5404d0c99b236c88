/*
 * config_diff.c - compares two loaded configurations route by route (routes are matched by name,
 * listen addresses by their resolved address, backends as written and resolved, then a host name
 * whose address moved, then by resolved address alone). Pure: reports through a callback.
 */
#include "config_diff.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct diff {
    config_diff_cb cb;
    void *arg;
    unsigned n;
};

static void say(struct diff *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct diff *d, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (d->cb)
        d->cb(d->arg, line);
    d->n++;
}

static const struct route_conf *find_route(const struct config *c, const char *name)
{
    for (size_t i = 0; i < c->nroutes; i++)
        if (strcmp(c->routes[i].name, name) == 0)
            return &c->routes[i];
    return NULL;
}

/* The backend of r written and resolved exactly like b. */
static const struct backend_conf *same_backend(const struct route_conf *r,
                                               const struct backend_conf *b)
{
    for (size_t i = 0; i < r->nbackends; i++)
        if (strcmp(r->backends[i].address, b->address) == 0 &&
            sock_addr_equal(&r->backends[i].addr, &b->addr))
            return &r->backends[i];
    return NULL;
}

/*
 * The backend of r written as the same host name as b (of route rb) but resolved elsewhere, and not
 * itself unchanged in rb: the name moved. Checked before the address, so a name that moves onto an
 * address another backend already has, or two names that swap addresses, read as moves.
 */
static const struct backend_conf *
moved_backend(const struct route_conf *r, const struct route_conf *rb, const struct backend_conf *b)
{
    if (!b->named)
        return NULL;
    for (size_t i = 0; i < r->nbackends; i++) {
        const struct backend_conf *x = &r->backends[i];
        if (x->named && strcmp(x->address, b->address) == 0 &&
            !sock_addr_equal(&x->addr, &b->addr) && !same_backend(rb, x))
            return x;
    }
    return NULL;
}

/* The backend of r at b's address, however it is written (a name or the address itself). */
static const struct backend_conf *backend_at(const struct route_conf *r,
                                             const struct backend_conf *b)
{
    for (size_t i = 0; i < r->nbackends; i++)
        if (sock_addr_equal(&r->backends[i].addr, &b->addr))
            return &r->backends[i];
    return NULL;
}

static bool has_listen(const struct route_conf *r, const struct listen_conf *l)
{
    for (size_t i = 0; i < r->nlistens; i++)
        if (sock_addr_equal(&r->listens[i].addr, &l->addr))
            return true;
    return false;
}

typedef void (*format_fn)(uint64_t v, char *buf, size_t len);

/* "route R: KEY A -> B" (or "KEY A -> B" for a top-level key, route NULL) for a changed duration
 * or size. */
static void changed(struct diff *d, const char *route, const char *key, uint64_t a, uint64_t b,
                    format_fn fmt)
{
    if (a == b)
        return;
    char x[32], y[32];
    fmt(a, x, sizeof(x));
    fmt(b, y, sizeof(y));
    if (route)
        say(d, "route %s: %s %s -> %s", route, key, x, y);
    else
        say(d, "%s %s -> %s", key, x, y);
}

static void dur(struct diff *d, const char *route, const char *key, uint64_t a, uint64_t b)
{
    changed(d, route, key, a, b, config_format_duration);
}

static void size(struct diff *d, const char *route, const char *key, uint64_t a, uint64_t b)
{
    changed(d, route, key, a, b, config_format_size);
}

static void diff_route(struct diff *d, const struct route_conf *a, const struct route_conf *b)
{
    const char *n = b->name;
    for (size_t i = 0; i < b->nlistens; i++)
        if (!has_listen(a, &b->listens[i]))
            say(d, "route %s: listener %s added", n, b->listens[i].address);
    for (size_t i = 0; i < a->nlistens; i++)
        if (!has_listen(b, &a->listens[i]))
            say(d, "route %s: listener %s removed", n, a->listens[i].address);
    for (size_t i = 0; i < b->nbackends; i++) {
        const struct backend_conf *nb = &b->backends[i];
        const struct backend_conf *old = same_backend(a, nb);
        const struct backend_conf *moved = old ? NULL : moved_backend(a, b, nb);
        if (!old && !moved)
            old = backend_at(a, nb);
        if (moved) {
            char x[SOCK_ADDRSTRLEN], y[SOCK_ADDRSTRLEN];
            say(d, "route %s: backend %s now resolves to %s (was %s)", n, nb->address,
                sock_addr_format(&nb->addr, y, sizeof(y)),
                sock_addr_format(&moved->addr, x, sizeof(x)));
            old = moved;
        }
        if (!old)
            say(d, "route %s: backend %s added (weight %u)", n, nb->address, nb->weight);
        else if (old->weight != nb->weight)
            say(d, "route %s: backend %s weight %u -> %u", n, nb->address, old->weight, nb->weight);
    }
    for (size_t i = 0; i < a->nbackends; i++)
        if (!same_backend(b, &a->backends[i]) && !moved_backend(b, a, &a->backends[i]) &&
            !backend_at(b, &a->backends[i]))
            say(d, "route %s: backend %s removed", n, a->backends[i].address);
    dur(d, n, "connect_timeout", a->s.connect_timeout_ms, b->s.connect_timeout_ms);
    dur(d, n, "idle_timeout", a->s.idle_timeout_ms, b->s.idle_timeout_ms);
    if (a->s.connect_attempts != b->s.connect_attempts)
        say(d, "route %s: connect_attempts %u -> %u", n, a->s.connect_attempts,
            b->s.connect_attempts);
    if (a->s.splice != b->s.splice)
        say(d, "route %s: splice %s -> %s", n, a->s.splice ? "on" : "off",
            b->s.splice ? "on" : "off");
    size(d, n, "buffer_size", a->s.buffer_size, b->s.buffer_size);
    size(d, n, "buffer_max", settings_buffer_max(&a->s), settings_buffer_max(&b->s));
}

/*
 * A setting that only a restart applies: `running` is what the process has, a and b what the files
 * said. Compared with what runs, and said only when b changes it, so a file that keeps asking for
 * the same value is not reported again at every reload.
 */
static void restart_only(struct diff *d, const char *key, unsigned running, unsigned a, unsigned b)
{
    if (a == b)
        return;
    if (b != running)
        say(d, "%s %u -> %u needs a restart: keeping %u", key, running, b, running);
    else
        say(d, "%s %u: as running, no restart needed", key, b);
}

/* A limit as written, or "derived" (0) with the number in force when it is known. */
static void format_limit(unsigned written, unsigned in_force, char *buf, size_t len)
{
    if (written)
        snprintf(buf, len, "%u", written);
    else if (in_force)
        snprintf(buf, len, "derived (%u)", in_force);
    else
        snprintf(buf, len, "derived");
}

unsigned config_diff(const struct config *a, const struct config *b,
                     const struct config_in_force *run, config_diff_cb cb, void *arg)
{
    struct diff d = {cb, arg, 0};
    restart_only(&d, "workers", run ? run->workers : a->workers, a->workers, b->workers);
    if (a->max_connections != b->max_connections) {
        char x[32], y[32];
        format_limit(a->max_connections, run ? run->max_connections : 0, x, sizeof(x));
        format_limit(b->max_connections, run ? run->next_max_connections : 0, y, sizeof(y));
        say(&d, "max_connections %s -> %s", x, y);
    }
    dur(&d, NULL, "shutdown_timeout", a->shutdown_timeout_ms, b->shutdown_timeout_ms);
    dur(&d, NULL, "resolve_interval", a->resolve_interval_ms, b->resolve_interval_ms);
    size(&d, NULL, "buffer_budget", a->buffer_budget, b->buffer_budget);
    if (a->log_level != b->log_level)
        say(&d, "log level %s -> %s", log_level_name(a->log_level), log_level_name(b->log_level));
    if (a->log_format != b->log_format)
        say(&d, "log format %s -> %s", a->log_format == LOG_JSON ? "json" : "text",
            b->log_format == LOG_JSON ? "json" : "text");
    if (a->log_access != b->log_access)
        say(&d, "access log %s", b->log_access ? "on" : "off");
    if (a->coalesce != b->coalesce)
        say(&d, "coalesce %s", b->coalesce ? "auto" : "off");
    if (a->reload_watch != b->reload_watch)
        say(&d, "reload watch %s", b->reload_watch ? "on" : "off");
    for (size_t i = 0; i < b->nroutes; i++) {
        const struct route_conf *old = find_route(a, b->routes[i].name);
        if (!old) {
            say(&d, "route %s added (%zu listener%s, %zu backend%s)", b->routes[i].name,
                b->routes[i].nlistens, b->routes[i].nlistens == 1 ? "" : "s",
                b->routes[i].nbackends, b->routes[i].nbackends == 1 ? "" : "s");
            continue;
        }
        diff_route(&d, old, &b->routes[i]);
    }
    for (size_t i = 0; i < a->nroutes; i++)
        if (!find_route(b, a->routes[i].name))
            say(&d, "route %s removed", a->routes[i].name);
    return d.n;
}
