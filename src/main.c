/*
 * main.c - command line: parse arguments, load the configuration, run. The only place that exits.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "server.h"

#define DEFAULT_CONFIG "/etc/ferry/ferry.yaml"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry [-c FILE] [--check]\n"
            "\n"
            "ferry is a TCP reverse proxy: it forwards each client connection on a route's listen\n"
            "addresses to one of the route's backends.\n"
            "\n"
            "  -c, --config FILE  configuration file (default " DEFAULT_CONFIG ")\n"
            "      --check        validate the configuration, print the effective routes, exit\n"
            "  -h, --help         show this help\n"
            "  -V, --version      show the version\n"
            "\n"
            "signals: SIGHUP reloads the configuration (so does editing the file, unless\n"
            "reload.watch is false); SIGTERM/SIGINT stop accepting and drain connections for\n"
            "up to shutdown_timeout, then exit.\n"
            "exit status: 0 clean stop, 1 configuration or startup error, 2 usage error.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *path = DEFAULT_CONFIG;
    int check = 0, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'k':
            check = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("ferry %s\n", FERRY_VERSION);
            return 0;
        case ':':
            fprintf(stderr, "ferry: option %s needs a value\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        default:
            fprintf(stderr, "ferry: unknown option %s\n", argv[optind - 1]);
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ferry: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }

    struct config *cfg;
    struct config_error err;
    if (config_load_file(path, &cfg, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    if (check) {
        /* The same warning the running ferry logs, where whoever checks the file sees it. */
        for (size_t i = 0; i < cfg->nroutes; i++)
            if (cfg->routes[i].s.idle_timeout_ms == 0)
                fprintf(stderr,
                        "%s: warning: route %s: idle_timeout is 0: stuck connections are "
                        "never closed\n",
                        path, cfg->routes[i].name);
        config_print(cfg, stdout);
        config_unref(cfg);
        return 0;
    }
    return server_run(cfg);
}
