/*
 * The ferry process harness (see harness.h). The child between fork and exec only makes
 * async-signal-safe calls: the test process has threads running (backends, pumps, other readers).
 */
#include "harness.h"
#include "net.h"
#include "registry.h"

#include <stdarg.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ARGS 32

struct buf {
    char *data; /* NUL-terminated */
    size_t len;
    size_t cap;
};

struct ferry {
    pid_t pid;
    bool reaped; /* waitpid() returned for pid */
    int status;  /* its wait status */
    bool has_dir;
    char dir[PATH_MAX - 64];
    char config[PATH_MAX];
    int out_fd; /* read ends of ferry's stdout and stderr */
    int err_fd;
    pthread_t reader;
    bool reader_joined;
    pthread_mutex_t mu; /* guards out, err, eof, err_held */
    pthread_cond_t cv;  /* signalled on new output and on eof */
    struct buf out;
    struct buf err;
    bool eof;
    bool err_held; /* the reader leaves stderr unread (ferry_hold_stderr) */
    int wake[2];   /* a byte in wake[1] makes the reader look at err_held again */
    int cleanup;
};

static void buf_append(struct buf *b, const char *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        char *d = realloc(b->data, cap);
        if (d == NULL) {
            abort();
        }
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void *reader_main(void *arg)
{
    struct ferry *f = arg;
    int fds[2] = {f->out_fd, f->err_fd}; /* -1 once at end of file */
    char chunk[8192];
    while (fds[0] >= 0 || fds[1] >= 0) {
        pthread_mutex_lock(&f->mu);
        bool held = f->err_held;
        pthread_mutex_unlock(&f->mu);
        /* poll ignores negative fds */
        struct pollfd p[3] = {{.fd = fds[0], .events = POLLIN},
                              {.fd = held ? -1 : fds[1], .events = POLLIN},
                              {.fd = f->wake[0], .events = POLLIN}};
        if (poll(p, 3, -1) == -1) {
            if (errno == EINTR) {
                continue;
            }
            break;
        }
        if (p[2].revents != 0 && read(f->wake[0], chunk, sizeof chunk) <= 0) {
            break;
        }
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || p[i].revents == 0) {
                continue;
            }
            ssize_t r = read(p[i].fd, chunk, sizeof chunk);
            if (r <= 0) {
                if (r == -1 && errno == EINTR) {
                    continue;
                }
                fds[i] = -1;
                continue;
            }
            pthread_mutex_lock(&f->mu);
            buf_append(i == 0 ? &f->out : &f->err, chunk, (size_t)r);
            pthread_cond_broadcast(&f->cv);
            pthread_mutex_unlock(&f->mu);
        }
    }
    pthread_mutex_lock(&f->mu);
    f->eof = true;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

void ferry_hold_stderr(struct ferry *f, bool hold)
{
    pthread_mutex_lock(&f->mu);
    f->err_held = hold;
    pthread_mutex_unlock(&f->mu);
    assert_int_equal(write(f->wake[1], "w", 1), 1);
    if (hold || f->reaped) {
        return;
    }
    /* Released: returns once the reader has drained what the pipe held, so ferry's next line
     * finds room. */
    int64_t deadline = now_ms() + 5000;
    int queued;
    while (ioctl(f->err_fd, FIONREAD, &queued) == 0 && queued > 0) {
        if (now_ms() > deadline) {
            fail_msg("ferry's stderr pipe still holds %d bytes 5 s after the reader resumed",
                     queued);
        }
        sleep_ms(1);
    }
}

int ferry_stderr_pipe(const struct ferry *f)
{
    return f->err_fd;
}

static bool try_reap(struct ferry *f)
{
    if (f->reaped) {
        return true;
    }
    int status;
    pid_t r = waitpid(f->pid, &status, WNOHANG);
    if (r == f->pid) {
        f->reaped = true;
        f->status = status;
    }
    return f->reaped;
}

static void join_reader(struct ferry *f)
{
    if (!f->reader_joined) {
        ferry_hold_stderr(f, false); /* the reader must see stderr's end */
        pthread_join(f->reader, NULL);
        f->reader_joined = true;
        close(f->out_fd);
        close(f->err_fd);
        close(f->wake[0]);
        close(f->wake[1]);
    }
}

void ferry_dump(struct ferry *f, const char *why)
{
    char *log = ferry_stderr(f);
    fprintf(stderr, "---- ferry pid %d stderr (%s) ----\n%s", (int)f->pid, why, log);
    if (log[0] != '\0' && log[strlen(log) - 1] != '\n') {
        fputc('\n', stderr);
    }
    fprintf(stderr, "---- end of ferry stderr ----\n");
    free(log);
}

static void ferry_cleanup(void *arg)
{
    struct ferry *f = arg;
    if (!try_reap(f)) {
        ferry_dump(f, "still running at the end of the test; killed");
        kill(f->pid, SIGKILL);
        waitpid(f->pid, &f->status, 0);
        f->reaped = true;
    }
    join_reader(f);
    if (f->has_dir) {
        unlink(f->config);
        rmdir(f->dir);
    }
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f->out.data);
    free(f->err.data);
    free(f);
}

static void write_config(struct ferry *f, const char *yaml)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/ferry-e2e-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL) {
        fail_msg("mkdtemp(%s): %s", f->dir, strerror(errno));
    }
    f->has_dir = true;
    snprintf(f->config, sizeof f->config, "%s/ferry.yaml", f->dir);
    FILE *fp = fopen(f->config, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(yaml, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

/* In a child: a mount namespace of its own with hosts and nss (and resolv, if not NULL) over the
 * /etc files. */
static int private_etc(const char *hosts, const char *nss, const char *resolv)
{
    if (unshare(CLONE_NEWNS) == -1 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == -1 ||
        mount(hosts, "/etc/hosts", NULL, MS_BIND, NULL) == -1 ||
        mount(nss, "/etc/nsswitch.conf", NULL, MS_BIND, NULL) == -1 ||
        (resolv != NULL && mount(resolv, "/etc/resolv.conf", NULL, MS_BIND, NULL) == -1)) {
        return -1;
    }
    return 0;
}

bool private_etc_supported(void)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        _exit(private_etc("/etc/hosts", "/etc/nsswitch.conf", "/etc/resolv.conf") == 0 ? 0 : 1);
    }
    int status;
    int64_t deadline = now_ms() + 5000;
    while (waitpid(pid, &status, WNOHANG) == 0) {
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return false;
        }
        sleep_ms(5);
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

struct ferry *ferry_spawn(const char *yaml, const char *const *args, const struct ferry_opts *opts)
{
    struct ferry *f = calloc(1, sizeof *f);
    assert_non_null(f);
    pthread_mutex_init(&f->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->cv, &ca);
    pthread_condattr_destroy(&ca);
    f->reader_joined = true;
    f->reaped = true;
    f->cleanup = registry_defer(ferry_cleanup, f);
    if (yaml != NULL) {
        write_config(f, yaml);
    }

    /* Everything the child needs is prepared before fork. */
    const char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = FERRY_BIN;
    for (int i = 0; args[i] != NULL; i++) {
        assert_true(argc < MAX_ARGS);
        argv[argc++] = strcmp(args[i], FERRY_CONFIG_ARG) == 0 ? f->config : args[i];
    }
    argv[argc] = NULL;
    int out[2], err[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    assert_int_equal(pipe2(err, O_CLOEXEC), 0);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(devnull >= 0);
    struct rlimit rl = {0, 0};
    if (opts != NULL && opts->rlimit_nofile > 0) {
        rl.rlim_cur = rl.rlim_max = (rlim_t)opts->rlimit_nofile;
    }
    sigset_t none;
    sigemptyset(&none);
    char hosts[PATH_MAX], nss[PATH_MAX], resolv[PATH_MAX];
    const char *etc = opts != NULL ? opts->etc_dir : NULL;
    bool own_resolv = false;
    if (etc != NULL) {
        snprintf(hosts, sizeof hosts, "%s/hosts", etc);
        snprintf(nss, sizeof nss, "%s/nsswitch.conf", etc);
        snprintf(resolv, sizeof resolv, "%s/resolv.conf", etc);
        own_resolv = access(resolv, R_OK) == 0;
    }

    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* The test process ignores SIGPIPE: ferry must cope with it at the default action. */
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(devnull, 0) == -1 || dup2(out[1], 1) == -1 || dup2(err[1], 2) == -1) {
            _exit(126);
        }
        /* No test socket may leak into ferry (it would count against a low RLIMIT_NOFILE). */
        if (close_range(3, ~0U, 0) == -1) {
            for (int fd = 3; fd < 65536; fd++) {
                close(fd);
            }
        }
        if (rl.rlim_max > 0 && setrlimit(RLIMIT_NOFILE, &rl) == -1) {
            _exit(125);
        }
        if (etc != NULL && private_etc(hosts, nss, own_resolv ? resolv : NULL) != 0) {
            _exit(124);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(devnull);
    close(out[1]);
    close(err[1]);
    f->pid = pid;
    f->reaped = false;
    f->out_fd = out[0];
    f->err_fd = err[0];
    assert_int_equal(pipe2(f->wake, O_CLOEXEC | O_NONBLOCK), 0);
    assert_int_equal(pthread_create(&f->reader, NULL, reader_main, f), 0);
    f->reader_joined = false;
    return f;
}

struct ferry *ferry_start_opts(const char *yaml, const struct ferry_opts *opts)
{
    static const char *const args[] = {"-c", FERRY_CONFIG_ARG, NULL};
    struct ferry *f = ferry_spawn(yaml, args, opts);
    int timeout = opts != NULL && opts->ready_timeout_ms > 0 ? opts->ready_timeout_ms : 10000;
    if (!ferry_wait_log(f, "ready generation=", timeout)) {
        if (try_reap(f)) {
            ferry_dump(f, "exited before ready");
            fail_msg("ferry exited (status 0x%x) before logging ready", f->status);
        }
        ferry_dump(f, "no ready line");
        fail_msg("ferry did not log ready within %d ms", timeout);
    }
    return f;
}

struct ferry *ferry_start(const char *yaml)
{
    return ferry_start_opts(yaml, NULL);
}

int ferry_run(const char *yaml, const char *const *args, int timeout_ms, struct ferry **out)
{
    struct ferry *f = ferry_spawn(yaml, args, NULL);
    if (out != NULL) {
        *out = f;
    }
    return ferry_wait_exit(f, timeout_ms);
}

pid_t ferry_pid(const struct ferry *f)
{
    return f->pid;
}

const char *ferry_config_path(const struct ferry *f)
{
    return f->config;
}

/* Calls match(line, len, ctx) on each complete line (and the last partial one after EOF). */
static int count_lines(const struct buf *b, bool eof, bool (*match)(const char *, size_t, void *),
                       void *ctx, int stop_at)
{
    int n = 0;
    const char *p = b->data;
    const char *end = b->data + b->len;
    while (p != NULL && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL && !eof) {
            break;
        }
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (match(p, len, ctx) && ++n == stop_at) {
            return n;
        }
        p = nl ? nl + 1 : NULL;
    }
    return n;
}

static bool contains(const char *line, size_t len, void *ctx)
{
    const char *needle = ctx;
    size_t nlen = strlen(needle);
    for (size_t i = 0; i + nlen <= len; i++) {
        if (memcmp(line + i, needle, nlen) == 0) {
            return true;
        }
    }
    return false;
}

struct wait_spec {
    bool (*match)(const char *, size_t, void *);
    void *ctx;
    int count;
};

static bool wait_lines(struct ferry *f, const struct wait_spec *w, int timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    bool found = false;
    pthread_mutex_lock(&f->mu);
    for (;;) {
        if (f->err.data != NULL &&
            count_lines(&f->err, f->eof, w->match, w->ctx, w->count) >= w->count) {
            found = true;
            break;
        }
        if (f->eof) {
            break;
        }
        if (pthread_cond_timedwait(&f->cv, &f->mu, &deadline) == ETIMEDOUT) {
            found = f->err.data != NULL &&
                    count_lines(&f->err, f->eof, w->match, w->ctx, w->count) >= w->count;
            break;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return found;
}

bool ferry_wait_log(struct ferry *f, const char *needle, int timeout_ms)
{
    struct wait_spec w = {contains, (void *)needle, 1};
    return wait_lines(f, &w, timeout_ms);
}

bool ferry_wait_log_count(struct ferry *f, const char *needle, int n, int timeout_ms)
{
    struct wait_spec w = {contains, (void *)needle, n};
    return wait_lines(f, &w, timeout_ms);
}

int ferry_count_log(struct ferry *f, const char *needle)
{
    pthread_mutex_lock(&f->mu);
    int n = f->err.data ? count_lines(&f->err, f->eof, contains, (void *)needle, -1) : 0;
    pthread_mutex_unlock(&f->mu);
    return n;
}

struct access_match {
    const char *client;
    char *line;
    size_t size;
};

static bool is_access_of(const char *line, size_t len, void *ctx)
{
    struct access_match *m = ctx;
    char copy[2048];
    if (len >= sizeof copy) {
        return false;
    }
    memcpy(copy, line, len);
    copy[len] = '\0';
    char client[256];
    if (strstr(copy, "access") == NULL || !log_field(copy, "client", client, sizeof client) ||
        strcmp(client, m->client) != 0) {
        return false;
    }
    snprintf(m->line, m->size, "%s", copy);
    return true;
}

void ferry_wait_access(struct ferry *f, const char *client_addr, int timeout_ms, char *line,
                       size_t size)
{
    struct access_match m = {client_addr, line, size};
    struct wait_spec w = {is_access_of, &m, 1};
    if (!wait_lines(f, &w, timeout_ms)) {
        ferry_dump(f, "missing access line");
        fail_msg("no access line for client=%s within %d ms", client_addr, timeout_ms);
    }
}

static char *copy_buf(struct ferry *f, const struct buf *b)
{
    pthread_mutex_lock(&f->mu);
    char *s = strdup(b->data ? b->data : "");
    pthread_mutex_unlock(&f->mu);
    assert_non_null(s);
    return s;
}

char *ferry_stderr(struct ferry *f)
{
    return copy_buf(f, &f->err);
}

char *ferry_stdout(struct ferry *f)
{
    return copy_buf(f, &f->out);
}

void ferry_signal(struct ferry *f, int sig)
{
    assert_false(f->reaped);
    assert_int_equal(kill(f->pid, sig), 0);
}

bool ferry_alive(struct ferry *f)
{
    return !try_reap(f);
}

int ferry_wait_exit(struct ferry *f, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    while (!try_reap(f)) {
        if (now_ms() > deadline) {
            kill(f->pid, SIGKILL);
            waitpid(f->pid, &f->status, 0);
            f->reaped = true;
            join_reader(f);
            ferry_dump(f, "did not exit in time; killed");
            fail_msg("ferry (pid %d) did not exit within %d ms", (int)f->pid, timeout_ms);
        }
        sleep_ms(2);
    }
    join_reader(f);
    /* A sanitizer build may exit with the very code the test expects (UBSan and ASan exit 1, like
     * a configuration error), so its report in stderr is what counts. */
    static const char *const reports[] = {"runtime error:", "ERROR: AddressSanitizer",
                                          "ERROR: LeakSanitizer", "WARNING: ThreadSanitizer"};
    for (size_t i = 0; i < sizeof reports / sizeof reports[0]; i++) {
        if (f->err.data != NULL && strstr(f->err.data, reports[i]) != NULL) {
            ferry_dump(f, "sanitizer report");
            fail_msg("ferry (pid %d) reported \"%s\"", (int)f->pid, reports[i]);
        }
    }
    if (WIFEXITED(f->status)) {
        return WEXITSTATUS(f->status);
    }
    return 128 + WTERMSIG(f->status);
}

void ferry_stop(struct ferry *f)
{
    ferry_signal(f, SIGTERM);
    int code = ferry_wait_exit(f, 5000);
    if (code != 0) {
        ferry_dump(f, "unclean stop");
        fail_msg("ferry exited with %d after SIGTERM, want 0", code);
    }
}

/* Whether every thread of pid is stopped ('T' in /proc/PID/task/TID/stat). */
static bool all_threads_stopped(pid_t pid)
{
    char dir[64], path[128], buf[512];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return false;
    }
    bool stopped = true;
    struct dirent *e;
    while (stopped && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof path, "%s/%.20s/stat", dir, e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ssize_t n = fd == -1 ? -1 : read(fd, buf, sizeof buf - 1);
        if (fd != -1) {
            close(fd);
        }
        if (n <= 0) {
            continue; /* a thread that exited meanwhile */
        }
        buf[n] = '\0';
        char *p = strrchr(buf, ')');
        stopped = p != NULL && p[1] == ' ' && p[2] == 'T';
    }
    closedir(d);
    return stopped;
}

void ferry_pause(struct ferry *f)
{
    pid_t pid = ferry_pid(f);
    assert_int_equal(kill(pid, SIGSTOP), 0);
    for (int64_t end = now_ms() + 5000; !all_threads_stopped(pid); sleep_ms(1)) {
        if (now_ms() >= end) {
            fail_msg("ferry (pid %d) did not stop within 5 s of SIGSTOP", (int)pid);
        }
    }
}

void ferry_resume(struct ferry *f)
{
    assert_int_equal(kill(ferry_pid(f), SIGCONT), 0);
}

long proc_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *fp = fopen(path, "r");
    if (fp == NULL) {
        return -1;
    }
    long kib = -1;
    while (fgets(line, sizeof line, fp) != NULL) {
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1) {
            break;
        }
    }
    fclose(fp);
    return kib;
}

double proc_cpu_seconds(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        return -1;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    /* The command name may contain spaces and parentheses: fields restart after the last ')'. */
    char *p = strrchr(buf, ')');
    if (p == NULL) {
        return -1;
    }
    /* After ')': state (field 3) ... utime is field 14, stime field 15. */
    unsigned long long utime, stime;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) !=
        2) {
        return -1;
    }
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* Entries of /proc/PID/fd; with kind, only those whose link starts with it ("pipe:"). */
static int count_fds(pid_t pid, const char *kind)
{
    char dir[64], path[320], target[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (kind == NULL) {
            n++;
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len > 0) {
            target[len] = '\0';
            n += strncmp(target, kind, strlen(kind)) == 0;
        }
    }
    closedir(d);
    return n;
}

int proc_fd_count(pid_t pid)
{
    return count_fds(pid, NULL);
}

int proc_pipe_count(pid_t pid)
{
    return count_fds(pid, "pipe:");
}

int proc_socket_count(pid_t pid)
{
    return count_fds(pid, "socket:");
}

bool log_field(const char *line, const char *key, char *out, size_t size)
{
    char pat[128];
    /* text: " key=value" */
    snprintf(pat, sizeof pat, " %s=", key);
    const char *p = strstr(line, pat);
    if (p != NULL) {
        p += strlen(pat);
        size_t n = strcspn(p, " \n");
        if (n >= size) {
            return false;
        }
        memcpy(out, p, n);
        out[n] = '\0';
        return true;
    }
    /* JSON: "key": "value" or "key": number */
    snprintf(pat, sizeof pat, "\"%s\"", key);
    p = strstr(line, pat);
    if (p == NULL) {
        return false;
    }
    p += strlen(pat);
    p += strspn(p, " \t");
    if (*p++ != ':') {
        return false;
    }
    p += strspn(p, " \t");
    size_t n;
    if (*p == '"') {
        p++;
        n = strcspn(p, "\"");
    } else {
        n = strcspn(p, ",} \t\n");
    }
    if (n >= size) {
        return false;
    }
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

void assert_field(const char *line, const char *key, const char *want)
{
    char got[512];
    if (!log_field(line, key, got, sizeof got)) {
        fail_msg("no field %s in log line: %s", key, line);
    }
    if (strcmp(got, want) != 0) {
        fail_msg("field %s is \"%s\", want \"%s\" in log line: %s", key, got, want, line);
    }
}

void assert_field_num(const char *line, const char *key, long long want)
{
    char want_s[32];
    snprintf(want_s, sizeof want_s, "%lld", want);
    assert_field(line, key, want_s);
}

int line_of(const char *text, const char *needle, int nth)
{
    int line = 1;
    const char *p = text;
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (contains(p, len, (void *)needle) && --nth == 0) {
            return line;
        }
        if (nl == NULL) {
            break;
        }
        p = nl + 1;
        line++;
    }
    fail_msg("\"%s\" not found in the test's own YAML", needle);
    return -1;
}
