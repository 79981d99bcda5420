#include "proxy/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

log_level_t log_current_level = LOG_LEVEL_INFO;

/* -1: access log off. Swapped atomically on reopen (SIGUSR1). */
static _Atomic int access_fd = -1;

void log_set_level(log_level_t level)
{
    log_current_level = level;
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
    /* Reopen (SIGUSR1, logrotate): put the new file under the fd number the
     * workers already use (dup3 is atomic), so a worker that loaded the old
     * number mid-reopen writes to the old or the new file, never to a closed
     * or reused descriptor. Only switching the log off still swaps numbers. */
    int cur = atomic_load(&access_fd);
    if (fd >= 0 && cur >= 0) {
        int rc = dup3(fd, cur, O_CLOEXEC) < 0 ? -errno : 0;
        close(fd);
        return rc;
    }
    int old = atomic_exchange(&access_fd, fd);
    if (old >= 0)
        close(old);
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
