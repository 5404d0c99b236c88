/*
 * The ferry process harness. ferry_start() writes a YAML into a fresh temporary directory, spawns
 * FERRY_BIN -c on it (optionally under a given RLIMIT_NOFILE) and waits for its `ready` log line.
 * A background thread captures ferry's stderr and stdout into buffers, so tests wait for log lines
 * with a deadline and count them. Exits are awaited with a timeout (then kill -9 and a failure).
 * The process, the thread and the directory are always cleaned up by the test teardown, which
 * also prints ferry's log when the process was still running (the test did not reach its end).
 */
#ifndef FERRY_TEST_HARNESS_H
#define FERRY_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Placeholder in ferry_spawn() arguments, replaced by the config file's path. */
#define FERRY_CONFIG_ARG "@CONFIG@"

struct ferry_opts {
    long rlimit_nofile;   /* > 0: soft and hard RLIMIT_NOFILE for ferry */
    int ready_timeout_ms; /* 0: 10 s */
    /* Not NULL: ferry runs in a mount namespace of its own where DIR/hosts and DIR/nsswitch.conf
     * (and DIR/resolv.conf, if it exists) are bind-mounted over the files in /etc, so the test
     * controls (and can change, by rewriting the file in place) what host names resolve to.
     * Needs private_etc_supported(). */
    const char *etc_dir;
};

/* Whether this process may give a child a private /etc/hosts (a mount namespace; root here). */
bool private_etc_supported(void);

struct ferry;

/* Starts ferry -c on yaml and waits for its "ready generation=" log line (asserts). */
struct ferry *ferry_start(const char *yaml);
struct ferry *ferry_start_opts(const char *yaml, const struct ferry_opts *opts);

/*
 * Spawns FERRY_BIN with args (NULL-terminated; FERRY_CONFIG_ARG stands for the config path). yaml
 * may be NULL (no config file written). Does not wait for anything.
 */
struct ferry *ferry_spawn(const char *yaml, const char *const *args, const struct ferry_opts *opts);

/* Spawns with args and waits up to timeout_ms for the exit; returns the exit code (asserts exit).
 */
int ferry_run(const char *yaml, const char *const *args, int timeout_ms, struct ferry **out);

pid_t ferry_pid(const struct ferry *f);
/* Absolute path of the config file written for this process. */
const char *ferry_config_path(const struct ferry *f);

/* Waits until a stderr line contains needle; false after timeout_ms or when ferry's stderr closed.
 */
bool ferry_wait_log(struct ferry *f, const char *needle, int timeout_ms);
/* Number of complete stderr lines containing needle. */
int ferry_count_log(struct ferry *f, const char *needle);
/* Waits until at least n stderr lines contain needle. */
bool ferry_wait_log_count(struct ferry *f, const char *needle, int n, int timeout_ms);
/*
 * Waits for the access line of the client whose address (as local_addr_str() prints it) is
 * client_addr; copies it into line. Asserts it appears within timeout_ms.
 */
void ferry_wait_access(struct ferry *f, const char *client_addr, int timeout_ms, char *line,
                       size_t size);
/* Copy of everything ferry wrote to stderr / stdout so far (malloc'd, caller frees). */
char *ferry_stderr(struct ferry *f);
/* hold: the capture stops reading ferry's stderr, as a log collector that stalls would, until
 * called again with false (the pipe fills and ferry's writes find no room). */
void ferry_hold_stderr(struct ferry *f, bool hold);
/* The read end of ferry's stderr pipe (to inspect or resize the pipe). */
int ferry_stderr_pipe(const struct ferry *f);
char *ferry_stdout(struct ferry *f);
/* Prints ferry's stderr to the test's stderr (for diagnosis). */
void ferry_dump(struct ferry *f, const char *why);

/* Sends sig to ferry. */
void ferry_signal(struct ferry *f, int sig);
/* True while the process has not exited. */
bool ferry_alive(struct ferry *f);
/*
 * Waits up to timeout_ms for ferry to exit and returns its exit code (128 + signal when killed by
 * one). On timeout: kill -9 and fail the test. Also fails when ferry's stderr holds a sanitizer
 * report (ASan, LSan, UBSan), whatever the exit code.
 */
int ferry_wait_exit(struct ferry *f, int timeout_ms);
/* SIGTERM, then asserts exit code 0 within 5 s. */
void ferry_stop(struct ferry *f);
/* SIGSTOP, and waits (bounded) until every thread of ferry is stopped: what arrives meanwhile
 * queues in the kernel, and ferry finds all of it ready at once after ferry_resume(). */
void ferry_pause(struct ferry *f);
void ferry_resume(struct ferry *f);

/* ---- /proc readings of a process ---- */
/* Resident set size in KiB (VmRSS), -1 if unreadable. */
long proc_rss_kib(pid_t pid);
/* User + system CPU time in seconds (utime + stime of /proc/PID/stat), -1 if unreadable. */
double proc_cpu_seconds(pid_t pid);
/* Number of open file descriptors (entries of /proc/PID/fd), -1 if unreadable. */
int proc_fd_count(pid_t pid);
/* How many of those are pipes, -1 if unreadable. */
int proc_pipe_count(pid_t pid);
/* How many are sockets, -1 if unreadable. */
int proc_socket_count(pid_t pid);

/* ---- access log fields ---- */
/*
 * Value of " key=" in a text log line into out (up to the next space); false if absent.
 * A JSON line is read too: "key": "value" or "key": number.
 */
bool log_field(const char *line, const char *key, char *out, size_t size);
/* Asserts that field key of line equals want. */
void assert_field(const char *line, const char *key, const char *want);
/* Asserts that field key of line is the decimal number want. */
void assert_field_num(const char *line, const char *key, long long want);

/* 1-based line number of the nth (1-based) line of text containing needle; asserts it exists. */
int line_of(const char *text, const char *needle, int nth);

#endif
