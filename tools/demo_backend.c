/*
 * demo_backend: a tiny HTTP backend that answers every request with its name.
 *
 *   demo_backend NAME [ADDRESS]      ADDRESS defaults to 0.0.0.0:9000;
 *                                    "127.0.0.1:0" picks a free port,
 *                                    "[::1]:9000" for IPv6.
 *
 * Used by the compose example (two backends behind ferry, so a route edit is
 * visible in the answers) and by the container test. For each connection it
 * reads the request head (up to a blank line, end of input, 8 KiB or 5 s),
 * answers "HTTP/1.0 200 OK" with the body "NAME\n", and closes. Plain TCP
 * clients get the same answer once they send a blank line or shut down
 * their side. It logs one line on stderr when listening:
 * "demo_backend NAME listening on ADDRESS:PORT", with the real port.
 * SIGTERM and SIGINT end it with status 0 (it may run as PID 1 in a container).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static int split_address(char *spec, char **host, char **port)
{
    char *colon;
    if (spec[0] == '[') {
        char *end = strchr(spec, ']');
        if (end == NULL || end[1] != ':')
            return -1;
        *end = '\0';
        *host = spec + 1;
        *port = end + 2;
        return 0;
    }
    colon = strrchr(spec, ':');
    if (colon == NULL)
        return -1;
    *colon = '\0';
    *host = spec;
    *port = colon + 1;
    return 0;
}

static int open_listener(const char *spec_in, char *shown, size_t shown_len)
{
    char spec[256];
    char *host, *port, *end;
    struct sockaddr_storage addr, bound;
    socklen_t addr_len, bound_len = sizeof(bound);
    char hostbuf[INET6_ADDRSTRLEN];
    unsigned long portnum;
    int fd, one = 1;

    snprintf(spec, sizeof(spec), "%s", spec_in);
    memset(&addr, 0, sizeof(addr));
    if (split_address(spec, &host, &port) != 0)
        goto bad;
    errno = 0;
    portnum = strtoul(port, &end, 10);
    if (*port == '\0' || *end != '\0' || errno != 0 || portnum > 65535)
        goto bad;
    if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&addr)->sin_addr) == 1) {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&addr;
        in4->sin_family = AF_INET;
        in4->sin_port = htons((uint16_t)portnum);
        addr_len = sizeof(*in4);
    } else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&addr)->sin6_addr) == 1) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&addr;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)portnum);
        addr_len = sizeof(*in6);
    } else {
        goto bad;
    }

    fd = socket(addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&addr, addr_len) != 0 || listen(fd, 128) != 0 ||
        getsockname(fd, (struct sockaddr *)&bound, &bound_len) != 0) {
        fprintf(stderr, "demo_backend: cannot listen on %s: %s\n", spec_in, strerror(errno));
        return -1;
    }
    if (bound.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&bound;
        inet_ntop(AF_INET6, &in6->sin6_addr, hostbuf, sizeof(hostbuf));
        snprintf(shown, shown_len, "[%s]:%u", hostbuf, ntohs(in6->sin6_port));
    } else {
        struct sockaddr_in *in4 = (struct sockaddr_in *)&bound;
        inet_ntop(AF_INET, &in4->sin_addr, hostbuf, sizeof(hostbuf));
        snprintf(shown, shown_len, "%s:%u", hostbuf, ntohs(in4->sin_port));
    }
    return fd;

bad:
    fprintf(stderr, "demo_backend: bad address '%s' (want IPV4:PORT or [IPV6]:PORT)\n", spec_in);
    return -1;
}

static void serve(int fd, const char *name)
{
    char buf[8192], head[256];
    size_t used = 0;
    struct timeval tv = {5, 0};
    int head_len, body_len;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    while (used < sizeof(buf) - 1) {
        ssize_t n = read(fd, buf + used, sizeof(buf) - 1 - used);
        if (n <= 0)
            break;
        used += (size_t)n;
        buf[used] = '\0';
        if (strstr(buf, "\r\n\r\n") != NULL || strstr(buf, "\n\n") != NULL)
            break;
    }
    body_len = (int)strlen(name) + 1;
    head_len = snprintf(head, sizeof(head),
                        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                        "Connection: close\r\nX-Backend: %s\r\n\r\n%s\n",
                        body_len, name, name);
    if (head_len > 0 && (size_t)head_len < sizeof(head)) {
        ssize_t off = 0;
        while (off < head_len) {
            ssize_t n = write(fd, head + off, (size_t)(head_len - off));
            if (n <= 0)
                break;
            off += n;
        }
    }
    shutdown(fd, SHUT_WR);
    /* Drain briefly so the close does not turn into a reset of unread input. */
    tv.tv_sec = 1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

int main(int argc, char **argv)
{
    const char *name, *address;
    char shown[300];
    struct sigaction sa;
    int lfd;

    if (argc < 2 || argc > 3 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fprintf(stderr,
                "usage: demo_backend NAME [ADDRESS]   (ADDRESS defaults to 0.0.0.0:9000)\n");
        return argc == 2 ? 0 : 2;
    }
    name = argv[1];
    address = argc == 3 ? argv[2] : "0.0.0.0:9000";
    if (strlen(name) > 64) {
        fprintf(stderr, "demo_backend: name longer than 64 bytes\n");
        return 2;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop; /* no SA_RESTART: accept() returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGCHLD, SIG_IGN); /* children are reaped automatically */
    signal(SIGPIPE, SIG_IGN);

    lfd = open_listener(address, shown, sizeof(shown));
    if (lfd < 0)
        return 1;
    fprintf(stderr, "demo_backend %s listening on %s\n", name, shown);

    while (!stop_requested) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        pid_t pid;
        if (cfd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            fprintf(stderr, "demo_backend: accept: %s\n", strerror(errno));
            sleep(1);
            continue;
        }
        pid = fork();
        if (pid == 0) {
            close(lfd);
            serve(cfd, name);
            _exit(0);
        }
        if (pid < 0)
            serve(cfd, name); /* no process to spare: answer inline */
        close(cfd);
    }
    close(lfd);
    return 0;
}
