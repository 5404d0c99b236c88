/*
 * Helpers for the live-reload tests: the ways an operator changes ferry's file (written in place,
 * replaced by rename, a Kubernetes ConfigMap symlink swap), temporary directories released at
 * teardown, a connect that threads may call (it does not touch the test registry), the greeting
 * of a BACKEND_GREET backend read back as a port, and the kernel's identity (socket inode) of a
 * listening socket, read from /proc/net/tcp, to tell a kept socket from a reopened one.
 */
#ifndef FERRY_TEST_RELOAD_SUPPORT_H
#define FERRY_TEST_RELOAD_SUPPORT_H

#include <stdbool.h>
#include <stddef.h>

struct ferry;

/* Rewrites path in place: open with O_TRUNC, one write of the whole text, close. Asserts. */
void write_file(const char *path, const char *text);

/* Writes text to a temporary file in path's directory, then renames it over path. Asserts. */
void replace_file(const char *path, const char *text);

/* A new empty directory under $TMPDIR (or /tmp), removed with all it holds at teardown. */
const char *temp_dir(void);

/*
 * Kubernetes ConfigMap layout in dir: dir/..VERSION/NAME holds the text, dir/..data is a symlink
 * to ..VERSION, dir/NAME a symlink to ..data/NAME. configmap_init creates it (returns dir/NAME);
 * configmap_swap publishes new text as the kubelet does: a new ..VERSION directory, a symlink
 * ..data_tmp to it renamed over ..data, then the previous version directory removed.
 */
const char *configmap_init(const char *dir, const char *name, const char *text,
                           const char *version);
void configmap_swap(const char *dir, const char *name, const char *text, const char *version,
                    const char *old_version);

/*
 * Starts ferry -c config_path for a file the test laid out itself (so not in the harness's own
 * directory) and waits for the ready line (asserts).
 */
struct ferry *ferry_start_path(const char *config_path);

/*
 * Connects to 127.0.0.1:port within timeout_ms. The fd is NOT tracked by the registry, so any
 * thread may call this; the caller closes it. Blocking, TCP_NODELAY, SO_RCVTIMEO/SO_SNDTIMEO set.
 * Returns the fd or -errno.
 */
int connect_untracked(int port, int timeout_ms);

/*
 * Reads the "hello from backend PORT\n" greeting of a BACKEND_GREET backend on fd (one byte at a
 * time, so nothing after the newline is consumed). Returns PORT, or -errno (-EPROTO when the
 * bytes are not a greeting, -ECONNRESET, -ETIMEDOUT, or -EPIPE on EOF).
 */
int read_greeting(int fd, int timeout_ms);

/*
 * Connects (tracked) to 127.0.0.1:port, reads the greeting, closes. Returns the port of the
 * backend that answered, or -errno of the connect or the read.
 */
int served_by(int port, int timeout_ms);

/* Inode of the socket listening on 127.0.0.1:port (from /proc/net/tcp); 0 when none listens. */
unsigned long listen_inode(int port);

/* The first complete stderr line of f containing needle (lives until teardown), or NULL. */
const char *log_line(struct ferry *f, const char *needle);

#endif
