/*
 * A tiny assertion kit for unit tests: checks report file:line and keep
 * going, so one run shows every failure; main() ends with
 * `return TESTUTIL_SUMMARY();`. Header-only so each test is one .c file.
 *
 * testutil_guard() copies bytes to the very end of a readable mapping that is
 * followed by a PROT_NONE page: a parser reading one byte past its input
 * crashes instead of silently reading garbage (the picohttpparser trick).
 */
#ifndef HERALD_TESTUTIL_H
#define HERALD_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int testutil_checks, testutil_failures;

/** Count a check; print where and what failed. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        testutil_checks++;                                                                         \
        if (!(cond)) {                                                                             \
            testutil_failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);               \
        }                                                                                          \
    } while (0)

/** Both strings equal; NULL equals only NULL. Arguments are evaluated once. */
#define CHECK_STREQ(a, b)                                                                          \
    do {                                                                                           \
        const char *testutil_a_ = (a), *testutil_b_ = (b);                                         \
        testutil_checks++;                                                                         \
        if (!(testutil_a_ == testutil_b_ ||                                                        \
              (testutil_a_ && testutil_b_ && strcmp(testutil_a_, testutil_b_) == 0))) {            \
            testutil_failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK_STREQ(%s, %s) failed: \"%s\" != \"%s\"\n", __FILE__,     \
                    __LINE__, #a, #b, testutil_a_ ? testutil_a_ : "(null)",                        \
                    testutil_b_ ? testutil_b_ : "(null)");                                         \
        }                                                                                          \
    } while (0)

/** Two integers (long long) equal; prints both on failure. */
#define CHECK_INTEQ(a, b)                                                                          \
    do {                                                                                           \
        long long testutil_a_ = (long long)(a), testutil_b_ = (long long)(b);                      \
        testutil_checks++;                                                                         \
        if (testutil_a_ != testutil_b_) {                                                          \
            testutil_failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK_INTEQ(%s, %s) failed: %lld != %lld\n", __FILE__,         \
                    __LINE__, #a, #b, testutil_a_, testutil_b_);                                   \
        }                                                                                          \
    } while (0)

/** Print the tally; 0 when every check passed, 1 otherwise (a main() return code). */
#define TESTUTIL_SUMMARY()                                                                         \
    (fprintf(stderr, "%d checks, %d failed\n", testutil_checks, testutil_failures),                \
     testutil_failures ? 1 : 0)

typedef struct testutil_guard {
    void *map;
    size_t maplen;
} testutil_guard_t;

/**
 * Copy data[0..len) so that its last byte is the last readable byte before a
 * PROT_NONE page. Returns the copy (owned by g; free with
 * testutil_guard_free) or NULL when mmap fails.
 */
static inline const char *testutil_guard(testutil_guard_t *g, const void *data, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t pages = (len + page - 1) / page;
    g->maplen = (pages + 1) * page;
    g->map = mmap(NULL, g->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (g->map == MAP_FAILED) {
        g->map = NULL;
        return NULL;
    }
    char *guard = (char *)g->map + pages * page;
    if (mprotect(guard, page, PROT_NONE) != 0) {
        munmap(g->map, g->maplen);
        g->map = NULL;
        return NULL;
    }
    char *p = guard - len;
    if (len > 0)
        memcpy(p, data, len);
    return p;
}

/** Unmap a guarded copy. */
static inline void testutil_guard_free(testutil_guard_t *g)
{
    if (g->map != NULL)
        munmap(g->map, g->maplen);
    g->map = NULL;
}

#endif
