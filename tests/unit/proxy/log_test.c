/* log.c: the access log's fd number is never closed while workers may hold it. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "testutil.h"

/* The descriptor open on path (by /proc/self/fd), or -1. */
static int fd_of(const char *path)
{
    for (int fd = 0; fd < 1024; fd++) {
        char link[64], target[PATH_MAX];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, target, sizeof(target) - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, path) == 0)
            return fd;
    }
    return -1;
}

static char *slurp(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    size_t n = f != NULL ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
    if (f != NULL)
        fclose(f);
    buf[n] = '\0';
    return buf;
}

/* On, off, on again: the number a worker loaded before "off" stays open (on
 * /dev/null, so its lines go nowhere rather than into a reused socket), and
 * "on" again puts the new file under that same number. */
static void test_switch_off_keeps_number(void)
{
    char dir[] = "/tmp/herald-log-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char a[PATH_MAX], b[PATH_MAX];
    snprintf(a, sizeof(a), "%s/a.log", dir);
    snprintf(b, sizeof(b), "%s/b.log", dir);

    CHECK(log_access_open(a) == 0);
    CHECK(log_access_enabled());
    int fd = fd_of(a);
    CHECK(fd >= 0);
    log_access_write("one\n", 4);

    CHECK(log_access_open("") == 0);
    CHECK(!log_access_enabled());
    CHECK(fd_of(a) == -1);
    CHECK(fcntl(fd, F_GETFD) >= 0); /* not closed */
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    target[n > 0 ? n : 0] = '\0';
    CHECK_STREQ(target, "/dev/null");
    log_access_write("dropped\n", 8); /* off: nothing written */

    CHECK(log_access_open(b) == 0);
    CHECK(log_access_enabled());
    CHECK(fd_of(b) == fd);
    log_access_write("two\n", 4);
    CHECK_STREQ(slurp(a), "one\n");
    CHECK_STREQ(slurp(b), "two\n");

    /* reopen (logrotate): the same number again */
    char moved[PATH_MAX];
    snprintf(moved, sizeof(moved), "%s/b.log.1", dir);
    CHECK(rename(b, moved) == 0);
    CHECK(log_access_open(b) == 0);
    CHECK(fd_of(b) == fd);
    log_access_write("three\n", 6);
    CHECK_STREQ(slurp(b), "three\n");
    CHECK_STREQ(slurp(moved), "two\n");

    CHECK(log_access_open("") == 0);
    unlink(a);
    unlink(b);
    unlink(moved);
    rmdir(dir);
}

/* The level is read by LOG_AT on every call: a change is seen at once. */
static void test_level(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    CHECK(atomic_load(&log_current_level) == LOG_LEVEL_ERROR);
    log_set_level(LOG_LEVEL_DEBUG);
    CHECK(atomic_load(&log_current_level) == LOG_LEVEL_DEBUG);
    log_set_level(LOG_LEVEL_INFO);
}

int main(void)
{
    test_switch_off_keeps_number();
    test_level();
    return TESTUTIL_SUMMARY();
}
