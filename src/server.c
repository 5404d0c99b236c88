/*
 * server.c - the control thread.
 *
 * Owns the current configuration, the listening sockets (one per address, shared by the workers)
 * and the worker threads. It runs its own small event loop over a signalfd (SIGTERM, SIGINT,
 * SIGHUP), an inotify watch on the configuration file's directory, and an eventfd the workers
 * signal when they exit. It never touches a session: it talks to workers through their mailboxes.
 *
 * Reload: parse and validate the new file with the same code as --check; bind every new listen
 * address; then hand the new configuration to each worker, which swaps atomically for new
 * connections; only then close the listening sockets that are gone. Any failure before the
 * hand-over leaves the running configuration exactly as it was. One exception to the order: a new
 * address that overlaps an old one on the same port (a specific address and the wildcard) cannot
 * be bound while the old one listens, so the workers let go of the old one, it is closed, and the
 * new one is bound right after (hand_over()); if that bind fails, the old address is opened again.
 */
#include "server.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config_diff.h"
#include "log.h"
#include "loop.h"
#include "resolver.h"
#include "worker.h"

#define LISTEN_BACKLOG      511
#define RELOAD_DEBOUNCE_MS  150  /* quiet time after the last file event */
#define RELOAD_MAX_DELAY_MS 1000 /* a steady stream of events still reloads this often */
#define WATCH_RETRY_MS      1000

/* A directory watched because a symlink on the way to the configuration file is in it, or the
 * file itself is (name is the entry that matters there). */
#define LINK_WATCH_MAX 8
struct link_watch {
    int wd; /* -1: not watched (yet, or any more) */
    char dir[PATH_MAX];
    char name[NAME_MAX + 1];
};

struct server {
    struct config *cfg;
    unsigned generation;
    struct lsock **lsocks; /* open listening sockets, one per address */
    size_t nlsocks;
    struct shared shared;
    struct worker *workers;
    unsigned nworkers;
    unsigned exited;

    struct loop loop;
    struct io sig;
    struct io exits;
    struct io inotify;
    int wd;     /* inotify watch descriptor, -1 when not watching */
    char *dir;  /* directory holding the configuration file */
    char *base; /* the file's name in it */
    /* Symlinks on the way to the file: the directory of each link (a swapped link shows only
     * there) and the directory of the file it leads to are watched too, each for one name in it
     * (see follow_links). */
    struct link_watch links[LINK_WATCH_MAX];
    size_t nlinks;
    struct loop_timer debounce;
    uint64_t first_event;       /* when the current burst of file events began, 0 if none */
    struct config_file_id seen; /* the file as the last load read it (or as an event-driven load
                                   in progress found it); not settled after a rejected reload */
    bool burst_names_file;      /* an event of the current burst may be about the file itself */
    struct loop_timer drain_timer;
    struct loop_timer resolve_timer;
    struct resolver *resolver; /* started at the first lookup round */
    struct io resolved;        /* the resolver's eventfd: a round is done */
    unsigned resolve_gen;      /* generation the round in progress copied */
    const char *load_why;      /* the reload whose file the resolver is loading */
    const char *reload_why;    /* a reload asked for while another job ran, or NULL */
    char resolve_error[1024];  /* last failed lookup of backend host names, "" if none */
    bool resolver_failed;      /* the last resolver_start() failed (logged once) */
    bool shutting_down;
    bool reuseport; /* one SO_REUSEPORT socket per worker instead of one shared socket */
};

/* ---- listening sockets ---------------------------------------------------------------------- */

static struct lsock *find_lsock(struct lsock **set, size_t n, const struct sockaddr_any *a)
{
    for (size_t i = 0; i < n; i++)
        if (sock_addr_equal(&set[i]->addr, a))
            return set[i];
    return NULL;
}

static void close_lsock(struct lsock *ls)
{
    for (unsigned i = 0; i < ls->nfds; i++)
        if (ls->fds[i] != -1)
            close(ls->fds[i]);
    free(ls);
}

/* Open the socket(s) of one listening address: one shared by the workers, or one per worker with
 * SO_REUSEPORT. Returns the lsock or NULL with *err = -errno. */
static struct lsock *open_lsock(const struct server *srv, const struct sockaddr_any *addr, int *err)
{
    unsigned n = srv->reuseport ? srv->nworkers : 1;
    struct lsock *ls = calloc(1, sizeof(*ls) + n * sizeof(int));
    if (!ls) {
        *err = -ENOMEM;
        return NULL;
    }
    ls->addr = *addr;
    sock_addr_format(addr, ls->name, sizeof(ls->name));
    for (; ls->nfds < n; ls->nfds++) {
        int fd = sock_listen(addr, LISTEN_BACKLOG, srv->reuseport);
        if (fd < 0) {
            *err = fd;
            close_lsock(ls);
            return NULL;
        }
        ls->fds[ls->nfds] = fd;
    }
    return ls;
}

/* Is a listed by some route of cfg? */
static bool listed(const struct config *cfg, const struct sockaddr_any *a)
{
    for (size_t i = 0; i < cfg->nroutes; i++)
        for (size_t j = 0; j < cfg->routes[i].nlistens; j++)
            if (sock_addr_equal(&cfg->routes[i].listens[j].addr, a))
                return true;
    return false;
}

/*
 * Is the port of a held by listening sockets of ours that cfg no longer lists, and only by such
 * as far as we know: one of ours overlaps a (a specific address and the wildcard of its family)
 * and none that overlaps it stays? Ours are not SO_REUSEPORT (in that mode bind() does not fail
 * on them), and cfg is validated, so it lists nothing that overlaps a itself.
 */
static bool held_by_dropped(const struct server *srv, const struct config *cfg,
                            const struct sockaddr_any *a)
{
    if (srv->reuseport)
        return false;
    bool held = false;
    for (size_t i = 0; i < srv->nlsocks; i++) {
        if (!sock_addr_overlaps(&srv->lsocks[i]->addr, a))
            continue;
        if (listed(cfg, &srv->lsocks[i]->addr))
            return false;
        held = true;
    }
    return held;
}

/* The n-th listen address of cfg, counting across its routes in order (the order of the binds
 * build_listeners() makes when it leaves nothing out). */
static const struct listen_conf *nth_listen(const struct config *cfg, size_t n, size_t *route)
{
    for (size_t i = 0; i < cfg->nroutes; i++) {
        if (n < cfg->routes[i].nlistens) {
            *route = i;
            return &cfg->routes[i].listens[n];
        }
        n -= cfg->routes[i].nlistens;
    }
    return NULL;
}

static void cannot_listen(const struct config *cfg, size_t route, const struct listen_conf *l,
                          int err, char *errs, size_t errlen)
{
    char name[SOCK_ADDRSTRLEN];
    sock_addr_format(&l->addr, name, sizeof(name));
    snprintf(errs, errlen, "%s:%u:%u: cannot listen on %s (route %s): %s", cfg->path, l->line,
             l->col, name, cfg->routes[route].name, strerror(-err));
}

enum build_mode {
    BUILD_ALL,    /* open every address cfg lists, or fail (startup, and a reload...) */
    BUILD_RELOAD, /* ...except that an address whose port only listeners cfg drops hold is left
                     for hand_over(): NULL in the set and in its bind */
    BUILD_OPEN,   /* open what can be; log and leave out what cannot */
    BUILD_KEEP,   /* only the addresses open already; open nothing */
};

/*
 * For cfg, build the listening sockets (reusing those open in srv->lsocks, opening the rest as
 * mode says) and the address -> route table the workers need. Returns 0, or -1 with errs filled
 * with a startup-style message naming the address that failed (sockets opened by this call are
 * closed again).
 */
static int build_listeners(struct server *srv, const struct config *cfg, enum build_mode mode,
                           struct lsock ***out, size_t *nout, struct listen_bind **binds_out,
                           char *errs, size_t errlen)
{
    size_t total = 0;
    for (size_t i = 0; i < cfg->nroutes; i++)
        total += cfg->routes[i].nlistens;
    struct lsock **set = calloc(total ? total : 1, sizeof(*set));
    struct listen_bind *binds = calloc(total ? total : 1, sizeof(*binds));
    bool *fresh = calloc(total ? total : 1, sizeof(*fresh));
    if (!set || !binds || !fresh) {
        snprintf(errs, errlen, "out of memory");
        free(set);
        free(binds);
        free(fresh);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < cfg->nroutes; i++) {
        const struct route_conf *r = &cfg->routes[i];
        for (size_t j = 0; j < r->nlistens; j++) {
            const struct listen_conf *l = &r->listens[j];
            struct lsock *ls = find_lsock(srv->lsocks, srv->nlsocks, &l->addr);
            if (!ls && mode == BUILD_KEEP)
                continue;
            if (!ls) {
                int err = 0;
                ls = open_lsock(srv, &l->addr, &err);
                if (!ls && mode == BUILD_RELOAD && err == -EADDRINUSE &&
                    held_by_dropped(srv, cfg, &l->addr)) {
                    binds[n++].route = i;
                    continue;
                }
                if (!ls && mode == BUILD_OPEN) {
                    char msg[512];
                    cannot_listen(cfg, i, l, err, msg, sizeof(msg));
                    log_error("%s: it stays closed until a reload opens it", msg);
                    continue;
                }
                if (!ls) {
                    cannot_listen(cfg, i, l, err, errs, errlen);
                    for (size_t k = 0; k < n; k++)
                        if (fresh[k])
                            close_lsock(set[k]);
                    free(set);
                    free(binds);
                    free(fresh);
                    return -1;
                }
                fresh[n] = true;
            }
            set[n] = ls;
            binds[n].ls = ls;
            binds[n].route = i;
            n++;
        }
    }
    free(fresh);
    *out = set;
    *nout = n;
    *binds_out = binds;
    return 0;
}

/* Close the sockets of set (NULL entries skipped) that srv->lsocks does not hold, unannounced: a
 * reload that did not take opened them and no worker uses them. Frees set. */
static void discard_listeners(struct server *srv, struct lsock **set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] && !find_lsock(srv->lsocks, srv->nlsocks, &set[i]->addr))
            close_lsock(set[i]);
    free(set);
}

/*
 * A reload that moves a port between a specific address and the wildcard of its family
 * (127.0.0.1:P -> 0.0.0.0:P, [::]:P -> [::1]:P, ...) cannot bind the new address while the old
 * listener holds the port, and new listeners are bound before old ones close. For the addresses
 * build_listeners() left NULL in set: every worker drops its registrations of the old listeners on
 * their ports (a worker holds only borrowed fds and the sessions it accepted hold none, so once
 * all have answered, nothing uses them), the old listeners are closed, and the new addresses are
 * bound at once. Clients that arrive in between are refused, and those still in the old
 * listeners' backlogs are reset. Returns 0 with set and binds complete, or -1 with errs filled:
 * the old listeners are closed then (gone from srv->lsocks), and restore_listeners() opens them
 * again.
 */
static int hand_over(struct server *srv, const struct config *cfg, struct lsock **set, size_t n,
                     struct listen_bind *binds, char *errs, size_t errlen)
{
    struct listen_bind *old = calloc(srv->nlsocks ? srv->nlsocks : 1, sizeof(*old));
    if (!old) {
        snprintf(errs, errlen, "out of memory");
        return -1;
    }
    size_t nold = 0, route = 0;
    for (size_t i = 0; i < srv->nlsocks; i++)
        for (size_t k = 0; k < n; k++) {
            const struct listen_conf *l = nth_listen(cfg, k, &route);
            if (!set[k] && sock_addr_overlaps(&srv->lsocks[i]->addr, &l->addr)) {
                char name[SOCK_ADDRSTRLEN];
                log_warn("reload: listener %s closes before %s (route %s) can listen on its "
                         "port: clients arriving in between may be refused",
                         srv->lsocks[i]->name, sock_addr_format(&l->addr, name, sizeof(name)),
                         cfg->routes[route].name);
                old[nold++].ls = srv->lsocks[i];
                break;
            }
        }
    /* Fails only for a worker whose loop has ended, which polls nothing any more. */
    for (unsigned w = 0; w < srv->nworkers; w++)
        worker_request(&srv->workers[w], WREQ_RELEASE, NULL, old, nold);
    size_t kept = 0;
    for (size_t i = 0; i < srv->nlsocks; i++) {
        bool gone = false;
        for (size_t j = 0; j < nold && !gone; j++)
            gone = old[j].ls == srv->lsocks[i];
        if (!gone)
            srv->lsocks[kept++] = srv->lsocks[i];
    }
    srv->nlsocks = kept;
    for (size_t j = 0; j < nold; j++)
        for (unsigned f = 0; f < old[j].ls->nfds; f++) {
            close(old[j].ls->fds[f]);
            old[j].ls->fds[f] = -1;
        }
    /* The port is free from here until the bind: nothing else in between. */
    int rc = 0;
    for (size_t k = 0; k < n && rc == 0; k++) {
        if (set[k])
            continue;
        const struct listen_conf *l = nth_listen(cfg, k, &route);
        int err = 0;
        struct lsock *ls = open_lsock(srv, &l->addr, &err);
        if (!ls) {
            cannot_listen(cfg, route, l, err, errs, errlen);
            rc = -1;
            break;
        }
        set[k] = binds[k].ls = ls;
    }
    for (size_t j = 0; j < nold; j++) {
        log_info("listener %s closed", old[j].ls->name);
        close_lsock(old[j].ls);
    }
    free(old);
    return rc;
}

/* Does the running configuration list an address no socket holds (closed by a hand-over whose
 * reload did not take, and not opened again)? */
static bool listeners_missing(const struct server *srv)
{
    size_t total = 0;
    for (size_t i = 0; i < srv->cfg->nroutes; i++)
        total += srv->cfg->routes[i].nlistens;
    return srv->nlsocks < total;
}

/*
 * Open again what the running configuration lists and no socket holds (a hand-over whose reload
 * did not take closed it) and give every worker the whole set. An address that cannot be opened
 * now (another process took the port in between) is logged and left out: the next reload that
 * lists it opens it.
 */
static void restore_listeners(struct server *srv)
{
    if (!listeners_missing(srv))
        return;
    struct lsock **set;
    size_t n;
    struct listen_bind *binds;
    char msg[512];
    if (build_listeners(srv, srv->cfg, BUILD_OPEN, &set, &n, &binds, msg, sizeof(msg)) != 0) {
        log_error("cannot open the listeners of generation %u again: %s", srv->generation, msg);
        return;
    }
    for (unsigned w = 0; w < srv->nworkers; w++) {
        int rc = worker_request(&srv->workers[w], WREQ_SWAP, srv->cfg, binds, n);
        if (rc != 0)
            log_error("worker %u: cannot take the listeners back: %s", w, strerror(-rc));
    }
    for (size_t i = 0; i < n; i++)
        if (!find_lsock(srv->lsocks, srv->nlsocks, &set[i]->addr))
            log_info("listening again route=%s address=%s", srv->cfg->routes[binds[i].route].name,
                     set[i]->name);
    free(srv->lsocks); /* every socket it holds is in set */
    srv->lsocks = set;
    srv->nlsocks = n;
    free(binds);
}

/* Close the sockets of `old` that are not in `keep`, then free the array. */
static void retire_listeners(struct lsock **old, size_t nold, struct lsock **keep, size_t nkeep)
{
    for (size_t i = 0; i < nold; i++) {
        bool kept = false;
        for (size_t j = 0; j < nkeep && !kept; j++)
            kept = keep[j] == old[i];
        if (!kept) {
            log_info("listener %s closed", old[i]->name);
            close_lsock(old[i]);
        }
    }
    free(old);
}

/* ---- reload --------------------------------------------------------------------------------- */

static void log_diff_line(void *arg, const char *line)
{
    (void)arg;
    log_info("reload: %s", line);
}

/* The open-file limit, less what listeners (nlsocks addresses), workers and the control thread
 * keep. */
static long usable_fds(const struct server *srv, size_t nlsocks)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > (rlim_t)INT_MAX)
        return INT_MAX;
    return (long)rl.rlim_cur - (32 + 4 * (long)srv->nworkers + (long)nlsocks);
}

/* The connection and pipe limits cfg puts in force with nlsocks listening addresses. */
static void process_limits(const struct server *srv, const struct config *cfg, size_t nlsocks,
                           unsigned *conns, unsigned *pipes)
{
    pipepool_split_fds(usable_fds(srv, nlsocks), cfg->max_connections, config_any_splice(cfg),
                       conns, pipes);
}

static void apply_limits(struct server *srv, unsigned conns, unsigned pipes)
{
    atomic_store(&srv->shared.max_connections, conns);
    atomic_store(&srv->shared.max_pipes, pipes);
}

static void update_watch(struct server *srv);
static void update_target_watch(struct server *srv);
static void catch_up(struct server *srv);

static void warn_no_idle_timeout(const struct config *cfg)
{
    for (size_t i = 0; i < cfg->nroutes; i++)
        if (cfg->routes[i].s.idle_timeout_ms == 0)
            log_warn("route %s: idle_timeout is 0: stuck connections are never closed",
                     cfg->routes[i].name);
}

static void arm_resolve(struct server *srv);
static void on_resolved(struct loop *l, struct io *io, uint32_t ev);

/* A reload that did not take: the next event of any kind tries again (the cause may have been
 * outside the file: a busy port, a failed lookup). */
static void forget_seen(struct server *srv)
{
    srv->seen.settled = false;
}

/* A reload that did not take: the running log settings back, then the reason. */
static void reject(struct server *srv, struct config *next, const char *why, const char *msg)
{
    log_thread_settings(-1, -1);
    log_error("reload rejected (%s): %s; still running generation %u", why, msg, srv->generation);
    forget_seen(srv);
    config_unref(next);
    arm_resolve(srv);
}

/*
 * Switch every worker to next (loaded and validated; a reference is taken over): bind the new
 * listen addresses first (closing an old listener first where the new address needs its port),
 * roll back if a worker cannot swap, then log one line per difference.
 */
static void install(struct server *srv, struct config *next, const char *why)
{
    struct lsock **set;
    size_t nset;
    struct listen_bind *binds;
    char msg[512];
    /* The reload's own lines (each difference, new listeners, the summary) are written under the
     * log settings it installs: raising the level shows them, lowering it hides them. Workers
     * keep the running settings until the reload has taken; one that does not take says so
     * under the running settings. */
    log_thread_settings((int)next->log_level, (int)next->log_format);
    if (build_listeners(srv, next, BUILD_RELOAD, &set, &nset, &binds, msg, sizeof(msg)) != 0) {
        reject(srv, next, why, msg);
        return;
    }
    bool handover = false;
    for (size_t i = 0; i < nset; i++)
        handover |= set[i] == NULL;
    if (handover && hand_over(srv, next, set, nset, binds, msg, sizeof(msg)) != 0) {
        log_thread_settings(-1, -1);
        discard_listeners(srv, set, nset);
        free(binds);
        restore_listeners(srv);
        reject(srv, next, why, msg);
        return;
    }
    next->generation = srv->generation + 1;
    unsigned done = 0;
    int rc = 0;
    for (; done < srv->nworkers; done++) {
        rc = worker_request(&srv->workers[done], WREQ_SWAP, next, binds, nset);
        if (rc != 0)
            break;
    }
    if (rc != 0) {
        log_thread_settings(-1, -1);
        log_error("reload failed in worker %u: %s; rolling back to generation %u", done,
                  strerror(-rc), srv->generation);
        forget_seen(srv);
        /* Put the workers that did swap back on the old configuration and the old sockets still
         * open, so that none uses a new one; close the new ones; open again what a hand-over
         * closed. */
        struct lsock **oset;
        size_t onset;
        struct listen_bind *obinds;
        int kept =
            build_listeners(srv, srv->cfg, BUILD_KEEP, &oset, &onset, &obinds, msg, sizeof(msg));
        if (kept == 0) {
            for (unsigned i = 0; i < done; i++)
                worker_request(&srv->workers[i], WREQ_SWAP, srv->cfg, obinds, onset);
            free(oset);
            free(obinds);
        }
        discard_listeners(srv, set, nset);
        free(binds);
        restore_listeners(srv);
        config_unref(next);
        arm_resolve(srv);
        return;
    }
    log_setup(next->log_level, next->log_format); /* taken: the workers' lines follow it */
    unsigned conns, pipes;
    process_limits(srv, next, nset, &conns, &pipes);
    struct config_in_force run = {srv->nworkers, atomic_load(&srv->shared.max_connections), conns};
    unsigned changes = config_diff(srv->cfg, next, &run, log_diff_line, NULL);
    for (size_t i = 0; i < nset; i++)
        if (!find_lsock(srv->lsocks, srv->nlsocks, &set[i]->addr))
            log_info("listening route=%s address=%s", next->routes[binds[i].route].name,
                     set[i]->name);
    retire_listeners(srv->lsocks, srv->nlsocks, set, nset);
    free(binds);
    srv->lsocks = set;
    srv->nlsocks = nset;
    config_unref(srv->cfg);
    srv->cfg = next;
    srv->generation++;
    apply_limits(srv, conns, pipes);
    bool watched = srv->wd != -1;
    update_watch(srv);
    arm_resolve(srv);
    warn_no_idle_timeout(next);
    log_info("reload generation=%u routes=%zu listeners=%zu changes=%u (%s)", srv->generation,
             next->nroutes, nset, changes, why);
    log_thread_settings(-1, -1); /* the process-wide settings are next's now */
    if (!watched && srv->wd != -1)
        catch_up(srv);
}

/* The end of a reload, once its file is loaded (next, or NULL and err): install what changed. */
static void loaded(struct server *srv, struct config *next, const struct config_error *err,
                   const char *why)
{
    if (!next) {
        log_error("reload rejected (%s): %s; still running generation %u", why, err->msg,
                  srv->generation);
        forget_seen(srv);
        return;
    }
    srv->seen = next->file_id;
    if (next->hash == srv->cfg->hash && config_diff(srv->cfg, next, NULL, NULL, NULL) == 0 &&
        !listeners_missing(srv)) {
        log_info("reload: no change (%s)", why);
        config_unref(next);
        return;
    }
    install(srv, next, why);
}

static bool ensure_resolver(struct server *srv);

/*
 * Reading the file resolves its host names, which can wait on DNS for seconds per name, so the
 * resolver thread loads it and on_resolved() installs the result; meanwhile signals, shutdown and
 * further reload requests are taken here (those coalesce into one reload after the current job).
 * Without a resolver thread the file is loaded right here.
 */
static void reload(struct server *srv, const char *why)
{
    if (srv->shutting_down)
        return;
    int rc = ensure_resolver(srv) ? resolver_submit_load(srv->resolver, srv->cfg->path, srv->cfg)
                                  : -ESRCH;
    if (rc == -EBUSY) {
        if (!srv->reload_why)
            log_debug("reload (%s) waits for the host name lookups in progress", why);
        srv->reload_why = why;
        return;
    }
    if (rc == 0) {
        srv->load_why = why;
        return;
    }
    /* No resolver thread (or no memory to hand it the job): load the file right here. */
    struct config *next;
    struct config_error err;
    if (config_load_file(srv->cfg->path, &next, &err) == 0)
        resolver_keep_current(srv->cfg, next);
    else
        next = NULL;
    loaded(srv, next, &err, why);
}

/* ---- backend host names --------------------------------------------------------------------- */

static void arm_resolve(struct server *srv)
{
    const struct config *c = srv->cfg;
    if (c->has_names && c->resolve_interval_ms && !srv->shutting_down)
        loop_timer_arm(&srv->loop, &srv->resolve_timer, loop_clock_ms() + c->resolve_interval_ms);
    else
        loop_timer_cancel(&srv->loop, &srv->resolve_timer);
}

/*
 * The backends' host names are looked up again, one by one, on a copy of the running configuration
 * (an edit of the file waits for its reload; listen addresses keep what they resolved to at load),
 * by the resolver thread, so a slow or absent DNS server never holds up signals, reloads or worker
 * exits here. A name whose current address is still among the answers keeps it, so DNS answers in
 * rotating order do not churn generations. A name that does not resolve keeps its address; the
 * failures are logged when the set of failing names changes, and once more when none is left.
 */
static void apply_lookup(struct server *srv, struct config *next, const char *failing,
                         unsigned names)
{
    if (strcmp(failing, srv->resolve_error) != 0) {
        if (failing[0])
            log_warn("looking up backend host names: %s; keeping the current addresses", failing);
        else
            log_info("backend host names resolve again");
        snprintf(srv->resolve_error, sizeof(srv->resolve_error), "%s", failing);
    }
    if (config_diff(srv->cfg, next, NULL, NULL, NULL) == 0) {
        log_debug("looked up %u backend host name%s: no address moved", names,
                  names == 1 ? "" : "s");
        config_unref(next);
        arm_resolve(srv);
        return;
    }
    install(srv, next, "backend address changed");
}

/* Start the resolver thread if it is not running; false if it cannot start now. */
static bool ensure_resolver(struct server *srv)
{
    if (srv->resolver)
        return true;
    srv->resolver = resolver_start();
    if (srv->resolver) {
        loop_io_init(&srv->resolved, resolver_fd(srv->resolver), on_resolved);
        if (loop_io_set(&srv->loop, &srv->resolved, EPOLLIN) != 0) {
            resolver_stop(srv->resolver);
            srv->resolver = NULL;
        }
    }
    if (!srv->resolver) {
        /* Tried again at the next round or reload; said once until it works. */
        if (!srv->resolver_failed)
            log_error("cannot start the host name resolver thread (%s): host names are looked "
                      "up at reloads only, which then wait on DNS, until it starts",
                      strerror(errno));
        srv->resolver_failed = true;
        return false;
    }
    if (srv->resolver_failed)
        log_info("host name resolver thread started");
    srv->resolver_failed = false;
    return true;
}

static void on_resolve(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct server *srv = container_of(t, struct server, resolve_timer);
    if (srv->shutting_down)
        return;
    if (!ensure_resolver(srv)) {
        arm_resolve(srv); /* try again next round */
        return;
    }
    struct config *job = config_dup(srv->cfg);
    if (!job || !resolver_submit(srv->resolver, job)) {
        /* Out of memory for the copy, or the previous job is still waiting on DNS. */
        config_unref(job);
        arm_resolve(srv);
        return;
    }
    srv->resolve_gen = srv->generation;
}

static void on_resolved(struct loop *l, struct io *io, uint32_t ev)
{
    (void)l;
    (void)ev;
    struct server *srv = container_of(io, struct server, resolved);
    struct resolver_result res;
    if (!resolver_take(srv->resolver, &res))
        return;
    if (srv->shutting_down) {
        config_unref(res.cfg);
        return;
    }
    if (res.load) {
        loaded(srv, res.cfg, &res.err, srv->load_why);
    } else if (res.cut) {
        /* Stopped for the reload waiting below; the next round looks every name up again. */
        log_debug("host name lookups cut short after %u name%s for a reload", res.names,
                  res.names == 1 ? "" : "s");
        config_unref(res.cfg);
        arm_resolve(srv);
    } else if (srv->resolve_gen != srv->generation) {
        /* A reload switched generations meanwhile: this copy is of a configuration gone by. */
        config_unref(res.cfg);
        arm_resolve(srv);
    } else {
        apply_lookup(srv, res.cfg, res.failing, res.names);
    }
    if (srv->reload_why) {
        const char *why = srv->reload_why;
        srv->reload_why = NULL;
        reload(srv, why);
    }
}

/* ---- file watching -------------------------------------------------------------------------- */

static void on_debounce(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct server *srv = container_of(t, struct server, debounce);
    srv->first_event = 0;
    bool names_file = srv->burst_names_file;
    srv->burst_names_file = false;
    bool retry = srv->wd == -1;
    if (retry)
        update_watch(srv); /* the directory was gone: try to watch it again */
    else
        update_target_watch(srv); /* the symlink may lead elsewhere now */
    /* The watch is on the directory (a rename over the file or a ConfigMap's symlink swap only
     * shows there), so editors' swap files and other files' updates wake it too. A burst whose
     * events all name other files reloads only if the file's stat moved (a symlink on the way to
     * it may have been swapped); one that names the file reloads whatever its stat says (a write
     * through a shared mapping leaves a tmpfs file's times as they were). */
    struct config_file_id now;
    config_file_id_stat(srv->cfg->path, &now);
    if (!names_file && srv->seen.settled && config_file_id_equal(&now, &srv->seen)) {
        if (!retry)
            log_debug("%s unchanged: the events in %s were about other files", srv->cfg->path,
                      srv->dir);
        return;
    }
    srv->seen = now;
    reload(srv, "file changed");
}

static void on_inotify(struct loop *l, struct io *io, uint32_t ev)
{
    (void)ev;
    struct server *srv = container_of(io, struct server, inotify);
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool any = false;
    for (int i = 0; i < 64; i++) {
        ssize_t n = read(io->fd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *e = (struct inotify_event *)p;
            p += sizeof(*e) + e->len;
            /* A watch ferry removed itself (reload.watch turned off) ends with IN_IGNORED too,
             * and events queued for it before are about nothing watched now. */
            bool link_dir = false;
            for (size_t k = 0; k < srv->nlinks && !(e->mask & IN_Q_OVERFLOW); k++) {
                struct link_watch *lw = &srv->links[k];
                if (lw->wd == -1 || e->wd != lw->wd)
                    continue;
                link_dir = true;
                if (e->mask & IN_IGNORED)
                    lw->wd = -1; /* gone: the burst's end follows the links again */
                /* The entry, the directory itself moving or going: the file may be another. */
                if (e->len == 0 || strcmp(e->name, lw->name) == 0 ||
                    (e->mask & (IN_IGNORED | IN_MOVE_SELF | IN_DELETE_SELF)))
                    srv->burst_names_file = true;
            }
            if (link_dir) {
                any = true;
                continue;
            }
            if (!(e->mask & IN_Q_OVERFLOW) && (srv->wd == -1 || e->wd != srv->wd))
                continue;
            if (e->mask & IN_IGNORED) { /* directory deleted or unmounted */
                srv->wd = -1;
                log_warn("configuration directory %s is gone; watching again when it is back",
                         srv->dir);
            }
            /* The file, the directory itself, a ConfigMap's "..data" and its versions, or lost
             * events: the file may have changed whatever its stat says. */
            if (e->len == 0 || (e->mask & IN_Q_OVERFLOW) || strncmp(e->name, "..", 2) == 0 ||
                strcmp(e->name, srv->base) == 0)
                srv->burst_names_file = true;
            any = true;
        }
    }
    if (!any)
        return;
    /* Debounce: reload once the burst is quiet, but never later than RELOAD_MAX_DELAY_MS. */
    if (!srv->first_event)
        srv->first_event = l->now;
    uint64_t at = l->now + RELOAD_DEBOUNCE_MS;
    if (at > srv->first_event + RELOAD_MAX_DELAY_MS)
        at = srv->first_event + RELOAD_MAX_DELAY_MS;
    loop_timer_arm(l, &srv->debounce, at);
}

/* The watch has just begun: a change since the file was last read had no event to show it. */
static void catch_up(struct server *srv)
{
    struct config_file_id now;
    config_file_id_stat(srv->cfg->path, &now);
    if (config_file_id_equal(&now, &srv->seen))
        return;
    srv->seen = now;
    reload(srv, "file changed before it was watched");
}

/* Adds (dir, name) to the list unless it is there already or dir is the watched directory or one
 * of a ConfigMap's "..*" version directories in it (whose swaps that directory's events show). */
static void add_link_watch(struct link_watch *list, size_t *n, const char *dir, const char *name,
                           const char *own_dir)
{
    size_t own = strlen(own_dir);
    if (strcmp(dir, own_dir) == 0)
        return;
    if (strncmp(dir, own_dir, own) == 0 && dir[own] == '/' &&
        strncmp(dir + own + 1, "..", 2) == 0 && strchr(dir + own + 1, '/') == NULL)
        return;
    for (size_t k = 0; k < *n; k++)
        if (strcmp(list[k].dir, dir) == 0 && strcmp(list[k].name, name) == 0)
            return;
    if (*n == LINK_WATCH_MAX || strlen(dir) >= sizeof(list[0].dir) ||
        strlen(name) >= sizeof(list[0].name))
        return;
    list[*n].wd = -1;
    snprintf(list[*n].dir, sizeof(list[0].dir), "%s", dir);
    snprintf(list[*n].name, sizeof(list[0].name), "%s", name);
    (*n)++;
}

/*
 * Walks path one component at a time, as the kernel resolves it, and lists the directory of every
 * symlink met on the way (its swap, `current -> releases/2`, shows only there) and the directory
 * of the file it leads to, each with the entry's name. At most 16 links are followed.
 */
static size_t follow_links(const char *path, const char *own_dir, struct link_watch *list)
{
    size_t n = 0;
    char cur[PATH_MAX]; /* what is left to resolve */
    snprintf(cur, sizeof(cur), "%s", path);
    for (int hops = 0; hops < 16; hops++) {
        char done[PATH_MAX]; /* the part resolved so far, without symlinks */
        if (cur[0] == '/')
            snprintf(done, sizeof(done), "/");
        else if (getcwd(done, sizeof(done)) == NULL)
            return n;
        char *rest = cur;
        bool relinked = false;
        while (*rest) {
            while (*rest == '/')
                rest++;
            if (!*rest)
                break;
            char *end = strchr(rest, '/');
            size_t len = end ? (size_t)(end - rest) : strlen(rest);
            char comp[NAME_MAX + 1];
            if (len >= sizeof(comp))
                return n;
            memcpy(comp, rest, len);
            comp[len] = '\0';
            rest += len;
            char at[PATH_MAX];
            if (snprintf(at, sizeof(at), "%s%s%s", done, strcmp(done, "/") ? "/" : "", comp) >=
                (int)sizeof(at))
                return n;
            struct stat st;
            if (lstat(at, &st) == -1)
                return n;
            if (!S_ISLNK(st.st_mode)) {
                if (!end) { /* the file itself */
                    add_link_watch(list, &n, done, comp, own_dir);
                    return n;
                }
                snprintf(done, sizeof(done), "%s", at);
                continue;
            }
            add_link_watch(list, &n, done, comp, own_dir);
            char target[PATH_MAX];
            ssize_t t = readlink(at, target, sizeof(target) - 1);
            if (t <= 0)
                return n;
            target[t] = '\0';
            char next[PATH_MAX];
            int w = target[0] == '/' ? snprintf(next, sizeof(next), "%s%s", target, rest)
                                     : snprintf(next, sizeof(next), "%s/%s%s", done, target, rest);
            if (w >= (int)sizeof(next))
                return n;
            snprintf(cur, sizeof(cur), "%s", next);
            relinked = true;
            break;
        }
        if (!relinked)
            return n;
    }
    return n;
}

/* Watch the directories the configuration path's symlinks lead through (follow_links), again
 * whenever they change. */
static void update_target_watch(struct server *srv)
{
    struct link_watch want[LINK_WATCH_MAX];
    size_t n = 0;
    char own[PATH_MAX];
    if (srv->cfg->reload_watch && realpath(srv->dir, own) != NULL)
        n = follow_links(srv->cfg->path, own, want);
    bool same = n == srv->nlinks;
    for (size_t k = 0; same && k < n; k++)
        same = srv->links[k].wd != -1 && strcmp(want[k].dir, srv->links[k].dir) == 0 &&
               strcmp(want[k].name, srv->links[k].name) == 0;
    if (same)
        return;
    for (size_t k = 0; k < srv->nlinks; k++)
        if (srv->links[k].wd != -1) /* its IN_IGNORED is skipped: no entry has its wd now */
            inotify_rm_watch(srv->inotify.fd, srv->links[k].wd);
    srv->nlinks = n;
    for (size_t k = 0; k < n; k++) {
        struct link_watch *lw = &srv->links[k];
        *lw = want[k];
        lw->wd = inotify_add_watch(srv->inotify.fd, lw->dir,
                                   IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                       IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
        if (lw->wd == -1)
            log_warn("cannot watch %s, on the way to %s: %s (SIGHUP still reloads)", lw->dir,
                     srv->cfg->path, strerror(errno));
        else
            log_info("watching %s too: %s leads through it", lw->dir, srv->cfg->path);
    }
}

/* Watch the directory, not the file: editors replace files by rename, and Kubernetes swaps a
 * symlink to a new directory; both show up as events in the directory. */
static void update_watch(struct server *srv)
{
    if (srv->inotify.fd == -1)
        return;
    if (!srv->cfg->reload_watch) {
        if (srv->wd != -1) {
            inotify_rm_watch(srv->inotify.fd, srv->wd);
            srv->wd = -1;
            log_info("no longer watching %s", srv->dir);
        }
        update_target_watch(srv);
        return;
    }
    update_target_watch(srv);
    if (srv->wd != -1)
        return;
    srv->wd = inotify_add_watch(srv->inotify.fd, srv->dir,
                                IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE |
                                    IN_DELETE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
    if (srv->wd == -1) {
        log_warn("cannot watch %s for changes: %s (SIGHUP still reloads)", srv->dir,
                 strerror(errno));
        loop_timer_arm(&srv->loop, &srv->debounce, srv->loop.now + WATCH_RETRY_MS);
    } else {
        log_info("watching %s for configuration changes", srv->dir);
    }
}

/* ---- signals and shutdown ------------------------------------------------------------------- */

static void request_all(struct server *srv, enum worker_req req)
{
    for (unsigned i = 0; i < srv->nworkers; i++)
        worker_request(&srv->workers[i], req, NULL, NULL, 0);
}

static void on_drain_timeout(struct loop *l, struct loop_timer *t)
{
    (void)l;
    struct server *srv = container_of(t, struct server, drain_timer);
    unsigned n = atomic_load(&srv->shared.active);
    log_info("shutdown_timeout reached: closing %u connection%s", n, n == 1 ? "" : "s");
    request_all(srv, WREQ_CLOSE_ALL);
}

static void begin_shutdown(struct server *srv, const char *signame)
{
    if (srv->shutting_down) {
        unsigned n = atomic_load(&srv->shared.active);
        log_info("%s during the graceful shutdown: closing %u connection%s now", signame, n,
                 n == 1 ? "" : "s");
        request_all(srv, WREQ_CLOSE_ALL);
        return;
    }
    srv->shutting_down = true;
    char t[32];
    config_format_duration(srv->cfg->shutdown_timeout_ms, t, sizeof(t));
    log_info("shutdown signal=%s connections=%u timeout=%s", signame,
             atomic_load(&srv->shared.active), t);
    request_all(srv, WREQ_STOP_ACCEPT);
    retire_listeners(srv->lsocks, srv->nlsocks, NULL, 0);
    srv->lsocks = NULL;
    srv->nlsocks = 0;
    loop_timer_cancel(&srv->loop, &srv->debounce);
    loop_timer_cancel(&srv->loop, &srv->resolve_timer);
    loop_timer_arm(&srv->loop, &srv->drain_timer, srv->loop.now + srv->cfg->shutdown_timeout_ms);
}

static void on_signal(struct loop *l, struct io *io, uint32_t ev)
{
    (void)l;
    (void)ev;
    struct server *srv = container_of(io, struct server, sig);
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        switch (si.ssi_signo) {
        case SIGHUP:
            reload(srv, "SIGHUP");
            break;
        case SIGTERM:
            begin_shutdown(srv, "SIGTERM");
            break;
        case SIGINT:
            begin_shutdown(srv, "SIGINT");
            break;
        default:
            break;
        }
    }
}

static void on_worker_exit(struct loop *l, struct io *io, uint32_t ev)
{
    (void)ev;
    struct server *srv = container_of(io, struct server, exits);
    uint64_t n;
    if (read(io->fd, &n, sizeof(n)) == (ssize_t)sizeof(n))
        srv->exited += (unsigned)n;
    if (srv->exited >= srv->nworkers)
        l->stop = true;
}

/* ---- startup -------------------------------------------------------------------------------- */

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int setup_control(struct server *srv)
{
    int rc = loop_init(&srv->loop, 64);
    if (rc != 0)
        return rc;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    int sfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    int ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (sfd == -1 || efd == -1)
        return -errno;
    loop_io_init(&srv->sig, sfd, on_signal);
    loop_io_init(&srv->exits, efd, on_worker_exit);
    loop_io_init(&srv->inotify, ifd, on_inotify);
    if (ifd == -1)
        log_warn("inotify unavailable (%s): only SIGHUP reloads", strerror(errno));
    if ((rc = loop_io_set(&srv->loop, &srv->sig, EPOLLIN)) != 0 ||
        (rc = loop_io_set(&srv->loop, &srv->exits, EPOLLIN)) != 0)
        return rc;
    if (ifd != -1 && (rc = loop_io_set(&srv->loop, &srv->inotify, EPOLLIN)) != 0)
        return rc;
    loop_timer_init(&srv->debounce, on_debounce);
    loop_timer_init(&srv->drain_timer, on_drain_timeout);
    loop_timer_init(&srv->resolve_timer, on_resolve);
    char *copy = strdup(srv->cfg->path);
    srv->dir = strdup(copy ? dirname(copy) : ".");
    free(copy);
    copy = strdup(srv->cfg->path);
    srv->base = strdup(copy ? basename(copy) : "");
    free(copy);
    srv->wd = -1;
    srv->seen = srv->cfg->file_id;
    return 0;
}

static void teardown(struct server *srv)
{
    for (unsigned i = 0; srv->workers && i < srv->nworkers; i++)
        worker_destroy(&srv->workers[i]);
    free(srv->workers);
    free(srv->shared.workers);
    retire_listeners(srv->lsocks, srv->nlsocks, NULL, 0);
    resolver_stop(srv->resolver); /* owns the fd behind srv->resolved */
    int fds[] = {srv->sig.fd, srv->exits.fd, srv->inotify.fd};
    for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] != -1)
            close(fds[i]);
    loop_destroy(&srv->loop);
    free(srv->dir);
    free(srv->base);
    config_unref(srv->cfg);
}

int server_run(struct config *cfg)
{
    struct server srv;
    memset(&srv, 0, sizeof(srv));
    srv.cfg = cfg;
    srv.generation = 1;
    cfg->generation = 1;
    srv.sig.fd = srv.exits.fd = srv.inotify.fd = srv.resolved.fd = -1;
    srv.loop.epfd = -1;

    /* Signals are taken through a signalfd by this thread only: block them in every thread
     * (workers inherit this mask). A peer that goes away must not kill us: ignore SIGPIPE. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    log_setup(cfg->log_level, cfg->log_format);

    int rc = setup_control(&srv);
    if (rc != 0) {
        log_error("startup: %s", strerror(-rc));
        teardown(&srv);
        return 1;
    }
    const char *mode = getenv("FERRY_LISTEN_MODE");
    srv.reuseport = cfg->workers > 1 && mode && strcmp(mode, "reuseport") == 0;
    srv.nworkers = cfg->workers; /* build_listeners needs it in reuseport mode */
    struct listen_bind *binds;
    char msg[512];
    if (build_listeners(&srv, cfg, BUILD_ALL, &srv.lsocks, &srv.nlsocks, &binds, msg,
                        sizeof(msg)) != 0) {
        log_error("%s", msg);
        teardown(&srv);
        return 1;
    }
    for (size_t i = 0; i < srv.nlsocks; i++)
        log_info("listening route=%s address=%s", cfg->routes[binds[i].route].name,
                 srv.lsocks[i]->name);

    srv.nworkers = cfg->workers;
    srv.workers = calloc(srv.nworkers, sizeof(*srv.workers));
    srv.shared.workers = calloc(srv.nworkers, sizeof(*srv.shared.workers));
    srv.shared.nworkers = srv.nworkers;
    srv.shared.exclusive = srv.nworkers > 1 && !srv.reuseport;
    if (!srv.workers || !srv.shared.workers) {
        log_error("startup: out of memory");
        free(binds);
        srv.nworkers = 0;
        teardown(&srv);
        return 1;
    }
    unsigned max_conns, max_pipes;
    process_limits(&srv, cfg, srv.nlsocks, &max_conns, &max_pipes);
    apply_limits(&srv, max_conns, max_pipes);
    if (cfg->max_connections && (long)cfg->max_connections * 2 > usable_fds(&srv, srv.nlsocks))
        log_warn("max_connections %u needs about %u file descriptors but the limit leaves %ld: "
                 "accepting will pause when they run out",
                 cfg->max_connections, cfg->max_connections * 2, usable_fds(&srv, srv.nlsocks));
    for (unsigned i = 0; i < srv.nworkers; i++) {
        srv.shared.workers[i] = &srv.workers[i];
        rc = worker_init(&srv.workers[i], i, &srv.shared, srv.exits.fd);
        if (rc != 0) {
            log_error("startup: worker %u: %s", i, strerror(-rc));
            free(binds);
            srv.nworkers = i;
            teardown(&srv);
            return 1;
        }
    }
    unsigned started = 0;
    for (; started < srv.nworkers; started++)
        if ((rc = worker_start(&srv.workers[started])) != 0)
            break;
    for (unsigned i = 0; rc == 0 && i < srv.nworkers; i++)
        rc = worker_request(&srv.workers[i], WREQ_SWAP, cfg, binds, srv.nlsocks);
    if (rc != 0) {
        log_error("startup: cannot start workers: %s", strerror(-rc));
        for (unsigned j = 0; j < started; j++)
            worker_request(&srv.workers[j], WREQ_STOP_ACCEPT, NULL, NULL, 0);
        for (unsigned j = 0; j < started; j++)
            worker_join(&srv.workers[j]);
        free(binds);
        teardown(&srv);
        return 1;
    }
    free(binds);
    warn_no_idle_timeout(cfg);
    update_watch(&srv);
    arm_resolve(&srv);
    if (srv.wd != -1)
        catch_up(&srv);
    char pipes[32] = "";
    if (config_any_splice(cfg))
        snprintf(pipes, sizeof pipes, " max_pipes=%u", atomic_load(&srv.shared.max_pipes));
    log_info("ready generation=%u routes=%zu listeners=%zu workers=%u max_connections=%u%s",
             srv.generation, cfg->nroutes, srv.nlsocks, srv.nworkers,
             atomic_load(&srv.shared.max_connections), pipes);

    rc = loop_run(&srv.loop);
    if (rc != 0)
        log_error("control loop failed: %s", strerror(-rc));
    for (unsigned i = 0; i < srv.nworkers; i++)
        worker_join(&srv.workers[i]);
    teardown(&srv);
    log_info("stopped");
    return rc == 0 ? 0 : 1;
}
