/*
 * Allocation-failure injection for unit tests linked with
 * -Wl,--wrap=malloc,realloc,calloc: nomem_exhaust() runs an operation with
 * allocation k failing, for k = 0, 1, ... until it completes without a
 * failure; every failing run must return HERALD_ENOMEM (leaks are ASan's
 * to report at exit). Include once, in the test's one .c file.
 */
#ifndef HERALD_NOMEM_H
#define HERALD_NOMEM_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "herald/error.h"
#include "testutil.h"

void *__real_malloc(size_t n);
void *__real_realloc(void *p, size_t n);
void *__real_calloc(size_t n, size_t m);

static long nomem_countdown = -1; /* allocations left before one fails; -1: never */
static bool nomem_injected;

/** True when this allocation is the one to fail. */
static bool nomem_should_fail(void)
{
    if (nomem_countdown < 0)
        return false;
    if (nomem_countdown == 0) {
        nomem_injected = true;
        return true;
    }
    nomem_countdown--;
    return false;
}

void *__wrap_malloc(size_t n)
{
    return nomem_should_fail() ? NULL : __real_malloc(n);
}

void *__wrap_realloc(void *p, size_t n)
{
    return nomem_should_fail() ? NULL : __real_realloc(p, n);
}

void *__wrap_calloc(size_t n, size_t m)
{
    return nomem_should_fail() ? NULL : __real_calloc(n, m);
}

typedef int (*nomem_op_fn)(void);

/** Run op failing allocation k = 0, 1, ... (at most max_k) until it succeeds. */
static void nomem_exhaust(const char *name, nomem_op_fn op, long max_k)
{
    for (long k = 0; k < max_k; k++) {
        nomem_countdown = k;
        nomem_injected = false;
        int rc = op();
        nomem_countdown = -1;
        if (!nomem_injected) {
            CHECK_INTEQ(rc, 0);
            CHECK(k > 0); /* else the wrapping is not in effect */
            fprintf(stderr, "%s: %ld allocations, each failed once\n", name, k);
            return;
        }
        if (rc != HERALD_ENOMEM) {
            fprintf(stderr, "%s: allocation %ld failed but rc = %d\n", name, k, rc);
            CHECK_INTEQ(rc, HERALD_ENOMEM);
        }
    }
    CHECK(!"op never completed");
}

#endif
