/*
 * main.c - command line: parse arguments, load the configuration, run. The only place that exits.
 */
#include <getopt.h>
#include <stdbool.h>
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

static const struct option opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"check", no_argument, NULL, 'k'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Whether getopt_long() just stopped at a long option, whose argv element it has stepped past
 * (argv[optind - 1]). A short one is only optopt: getopt stays on a cluster such as "-zq" until
 * its last letter, so argv[optind - 1] may then be an earlier argument or the program's name.
 * before: optind before the call. */
static bool stopped_at_long(char **argv, int before)
{
    return optind > before && strncmp(argv[optind - 1], "--", 2) == 0;
}

/* The option getopt_long() just stopped at, as written (a long one without its "=VALUE"). */
static const char *option_text(char **argv, int before, char *buf, size_t len)
{
    if (stopped_at_long(argv, before)) {
        const char *arg = argv[optind - 1];
        snprintf(buf, len, "%.*s", (int)strcspn(arg, "="), arg);
    } else {
        snprintf(buf, len, "-%c", optopt);
    }
    return buf;
}

/* How many long options start with name ("--c" could be --config or --check). */
static int long_matches(const char *name)
{
    int n = 0;
    for (const struct option *o = opts; o->name; o++)
        n += strncmp(o->name, name + 2, strlen(name + 2)) == 0;
    return n;
}

int main(int argc, char **argv)
{
    const char *path = DEFAULT_CONFIG;
    int check = 0;
    char opt[64];
    opterr = 0;
    for (;;) {
        int before = optind;
        int c = getopt_long(argc, argv, ":c:hV", opts, NULL);
        if (c == -1)
            break;
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
            fprintf(stderr, "ferry: option %s needs a value\n",
                    option_text(argv, before, opt, sizeof(opt)));
            usage(stderr);
            return 2;
        default:
            option_text(argv, before, opt, sizeof(opt));
            /* A known long option given "=VALUE" has optopt set; an unknown one has not. */
            if (stopped_at_long(argv, before) && optopt)
                fprintf(stderr, "ferry: option %s takes no value\n", opt);
            else if (stopped_at_long(argv, before) && long_matches(opt) > 1)
                fprintf(stderr, "ferry: ambiguous option %s\n", opt);
            else
                fprintf(stderr, "ferry: unknown option %s\n", opt);
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
