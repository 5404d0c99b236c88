/*
 * Everything an end-to-end test file includes: cmocka, the ferry harness, sockets with deadlines,
 * backends, pumps and SHA-256. Register each test with E2E_TEST() so the teardown releases what an
 * aborted test left open, and run the group with e2e_group_setup.
 */
#ifndef FERRY_TEST_E2E_H
#define FERRY_TEST_E2E_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "backends.h"
#include "harness.h"
#include "net.h"
#include "pump.h"
#include "registry.h"
#include "sha256.h"

#define E2E_TEST(fn) cmocka_unit_test_teardown(fn, e2e_teardown)

/*
 * The start of a configuration for files that run twice (see tests/e2e/CMakeLists.txt): once as
 * written, once built with FERRY_E2E_SPLICE, where every route relays with splice(2).
 */
#ifdef FERRY_E2E_SPLICE
#define E2E_ROUTES "defaults: {splice: true}\nroutes:\n"
#else
#define E2E_ROUTES "routes:\n"
#endif

#define E2E_MAIN(tests) cmocka_run_group_tests(tests, e2e_group_setup, NULL)

/* Hands a malloc'd string to the teardown, so a failing assertion does not leak it. */
static inline char *owned(char *s)
{
    registry_defer(free, s);
    return s;
}

/* Fails with the text of an errno-style result: "what: strerror(-rc)". */
#define assert_ok(rc, what)                                                                        \
    do {                                                                                           \
        long long rc_ = (long long)(rc);                                                           \
        if (rc_ < 0) {                                                                             \
            fail_msg("%s: %s", (what), strerror((int)-rc_));                                       \
        }                                                                                          \
    } while (0)

#endif
