/*
 * Live-reload test helpers (see reload_support.h). Like the rest of the support library they fail
 * the test through cmocka, except connect_untracked() and read_greeting(), which threads call.
 */
#include "reload_support.h"
#include "harness.h"
#include "net.h"
#include "registry.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void write_all_to(const char *path, const char *text, int flags)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | flags, 0644);
    if (fd == -1) {
        fail_msg("open %s: %s", path, strerror(errno));
    }
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int err = errno;
    if (w != (ssize_t)len) {
        close(fd);
        fail_msg("write %s: %s", path, w == -1 ? strerror(err) : "short write");
    }
    if (close(fd) == -1) {
        fail_msg("close %s: %s", path, strerror(errno));
    }
}

void write_file(const char *path, const char *text)
{
    write_all_to(path, text, O_CREAT | O_TRUNC);
}

void replace_file(const char *path, const char *text)
{
    char tmp[PATH_MAX];
    const char *slash = strrchr(path, '/');
    int dirlen = slash ? (int)(slash - path) : 1;
    snprintf(tmp, sizeof tmp, "%.*s/.%s.swp", dirlen, slash ? path : ".", slash ? slash + 1 : path);
    write_all_to(tmp, text, O_CREAT | O_TRUNC | O_EXCL);
    if (rename(tmp, path) == -1) {
        int err = errno;
        unlink(tmp);
        fail_msg("rename %s -> %s: %s", tmp, path, strerror(err));
    }
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type == FTW_DP) {
        rmdir(path);
    } else {
        unlink(path);
    }
    return 0;
}

static void remove_tree(void *arg)
{
    nftw(arg, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *temp_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    char *dir = tfmt("%s/ferry-reload-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        fail_msg("mkdtemp(%s): %s", dir, strerror(errno));
    }
    registry_defer(remove_tree, dir);
    return dir;
}

static void make_version(const char *dir, const char *name, const char *text, const char *version)
{
    const char *vdir = tfmt("%s/..%s", dir, version);
    if (mkdir(vdir, 0755) == -1) {
        fail_msg("mkdir %s: %s", vdir, strerror(errno));
    }
    write_file(tfmt("%s/%s", vdir, name), text);
}

const char *configmap_init(const char *dir, const char *name, const char *text, const char *version)
{
    make_version(dir, name, text, version);
    const char *data = tfmt("%s/..data", dir);
    const char *file = tfmt("%s/%s", dir, name);
    if (symlink(tfmt("..%s", version), data) == -1) {
        fail_msg("symlink %s: %s", data, strerror(errno));
    }
    if (symlink(tfmt("..data/%s", name), file) == -1) {
        fail_msg("symlink %s: %s", file, strerror(errno));
    }
    return file;
}

void configmap_swap(const char *dir, const char *name, const char *text, const char *version,
                    const char *old_version)
{
    make_version(dir, name, text, version);
    const char *tmp = tfmt("%s/..data_tmp", dir);
    const char *data = tfmt("%s/..data", dir);
    if (symlink(tfmt("..%s", version), tmp) == -1) {
        fail_msg("symlink %s: %s", tmp, strerror(errno));
    }
    if (rename(tmp, data) == -1) {
        fail_msg("rename %s -> %s: %s", tmp, data, strerror(errno));
    }
    remove_tree(tfmt("%s/..%s", dir, old_version));
}

struct ferry *ferry_start_path(const char *config_path)
{
    const char *args[] = {"-c", config_path, NULL};
    struct ferry *f = ferry_spawn(NULL, args, NULL);
    if (!ferry_wait_log(f, " ready ", 10000)) {
        ferry_dump(f, "no ready line");
        fail_msg("ferry -c %s did not log ready within 10 s", config_path);
    }
    return f;
}

int connect_untracked(int port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd == -1) {
        return -errno;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int err = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == -1) {
        if (errno != EINPROGRESS) {
            err = errno;
        } else {
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int64_t deadline = now_ms() + timeout_ms;
            int n;
            do {
                int64_t left = deadline - now_ms();
                n = poll(&p, 1, left > 0 ? (int)left : 0);
            } while (n == -1 && errno == EINTR);
            socklen_t elen = sizeof err;
            if (n == 0) {
                err = ETIMEDOUT;
            } else if (n == -1) {
                err = errno;
            } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) == -1) {
                err = errno;
            }
        }
    }
    if (err != 0) {
        close(fd);
        return -err;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {NET_TIMEOUT_MS / 1000, (NET_TIMEOUT_MS % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    return fd;
}

int read_greeting(int fd, int timeout_ms)
{
    static const char prefix[] = "hello from backend ";
    char line[64];
    size_t n = 0;
    int64_t deadline = now_ms() + timeout_ms;
    while (n < sizeof line - 1) {
        int64_t left = deadline - now_ms();
        ssize_t r = recv_some(fd, line + n, 1, left > 0 ? (int)left : 0);
        if (r < 0) {
            return (int)r;
        }
        if (r == 0) {
            return -EPIPE;
        }
        if (line[n++] == '\n') {
            break;
        }
    }
    line[n] = '\0';
    char *end;
    if (strncmp(line, prefix, sizeof prefix - 1) != 0) {
        return -EPROTO;
    }
    long port = strtol(line + sizeof prefix - 1, &end, 10);
    if (strcmp(end, "\n") != 0 || port < 1 || port > 65535) {
        return -EPROTO;
    }
    return (int)port;
}

int served_by(int port, int timeout_ms)
{
    int fd = tcp_connect(AF_INET, port, timeout_ms);
    if (fd < 0) {
        return fd;
    }
    int got = read_greeting(fd, timeout_ms);
    close_fd(fd);
    return got;
}

unsigned long listen_inode(int port)
{
    FILE *fp = fopen("/proc/net/tcp", "r");
    if (fp == NULL) {
        fail_msg("/proc/net/tcp: %s", strerror(errno));
    }
    char line[512];
    unsigned long found = 0;
    /* The address is the __be32 printed as a host-order %08X. */
    unsigned int want_ip = (unsigned int)htonl(INADDR_LOOPBACK);
    while (found == 0 && fgets(line, sizeof line, fp) != NULL) {
        unsigned int ip, lport, state;
        unsigned long inode;
        if (sscanf(line, " %*u: %8X:%4X %*8X:%*4X %2X %*8X:%*8X %*2X:%*8X %*8X %*u %*d %lu", &ip,
                   &lport, &state, &inode) == 4 &&
            ip == want_ip && (int)lport == port && state == 0x0A) {
            found = inode;
        }
    }
    fclose(fp);
    return found;
}

const char *log_line(struct ferry *f, const char *needle)
{
    char *log = ferry_stderr(f);
    const char *result = NULL;
    for (char *p = log; *p != '\0' && result == NULL;) {
        char *nl = strchr(p, '\n');
        if (nl == NULL) {
            break; /* only complete lines */
        }
        *nl = '\0';
        if (strstr(p, needle) != NULL) {
            result = tfmt("%s", p);
        }
        p = nl + 1;
    }
    free(log);
    return result;
}
