#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

_Atomic int log_current_level = LOG_LEVEL_INFO;

/* -1: access log off. Swapped atomically on reopen (SIGUSR1). */
static _Atomic int access_fd = -1;
/* The number the access log used before it was switched off, now /dev/null:
 * a worker may still hold it. Reused when the log is switched on again.
 * Only log_access_open() (main thread) touches it. */
static int parked_fd = -1;

void log_set_level(log_level_t level)
{
    atomic_store_explicit(&log_current_level, (int)level, memory_order_relaxed);
}

void log_write(log_level_t level, const char *file, int line, const char *fmt, ...)
{
    static const char *const names[] = {"debug", "info", "warn", "error", "fatal"};
    char buf[2048];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(buf, sizeof(buf),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ herald[%d] %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (int)(tv.tv_usec / 1000), (int)getpid(), names[level]);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof(buf) - 40)
        n = (int)sizeof(buf) - 40;
    if (level == LOG_LEVEL_DEBUG)
        n += snprintf(buf + n, sizeof(buf) - (size_t)n, " (%s:%d)", file, line);
    buf[n++] = '\n';
    /* One write(2) per line keeps lines from different workers whole. */
    ssize_t w = write(STDERR_FILENO, buf, (size_t)n);
    (void)w;
}

int log_access_open(const char *path)
{
    int fd = -1;
    if (path[0] == '\0') {
        fd = -1;
    } else if (strcmp(path, "-") == 0) {
        fd = dup(STDOUT_FILENO);
        if (fd < 0)
            return -errno;
    } else {
        fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
            return -errno;
    }
    /* A worker may have loaded the current fd number just before this runs
     * and write to it just after, so the number is never closed: reopen
     * (SIGUSR1, logrotate) puts the new file under it (dup3 is atomic),
     * switching the log off (SIGHUP) puts /dev/null under it and parks it,
     * switching it on again reuses the parked number. A closed number could
     * be reused by a new client socket, which would then receive log lines. */
    int cur = atomic_load(&access_fd);
    if (fd >= 0 && cur < 0 && parked_fd >= 0) {
        int rc = dup3(fd, parked_fd, O_CLOEXEC) < 0 ? -errno : 0;
        close(fd);
        if (rc == 0) {
            atomic_store(&access_fd, parked_fd);
            parked_fd = -1;
        }
        return rc;
    }
    if (fd >= 0 && cur >= 0) {
        int rc = dup3(fd, cur, O_CLOEXEC) < 0 ? -errno : 0;
        close(fd);
        return rc;
    }
    if (fd < 0 && cur >= 0) {
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
        if (null < 0)
            return -errno;
        int rc = dup3(null, cur, O_CLOEXEC) < 0 ? -errno : 0;
        close(null);
        if (rc != 0)
            return rc;
        atomic_store(&access_fd, -1);
        parked_fd = cur;
        return 0;
    }
    atomic_store(&access_fd, fd);
    return 0;
}

bool log_access_enabled(void)
{
    return atomic_load_explicit(&access_fd, memory_order_relaxed) >= 0;
}

void log_access_write(const char *line, size_t len)
{
    int fd = atomic_load(&access_fd);
    if (fd < 0)
        return;
    /* O_APPEND and one write per line: concurrent workers never interleave. */
    ssize_t w = write(fd, line, len);
    (void)w;
}
