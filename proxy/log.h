/*
 * Error log (stderr) and access log. The level is checked before any
 * formatting, so a DEBUG line costs one predictable branch when debug is
 * off, and --log-level=debug works in every build users run.
 * Safe from every worker thread: each line goes out in one write(2).
 */
#ifndef HERALD_LOG_H
#define HERALD_LOG_H

#include <stdatomic.h>

#include "proxy/config.h"

/** The level in force; written by log_set_level() (SIGHUP on the main
 * thread) while workers read it: atomic, read relaxed by LOG_AT. */
extern _Atomic int log_current_level;

/** Set the level in force (any thread). */
void log_set_level(log_level_t level);
void log_write(log_level_t level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/** Open (or reopen) the access log: "" disables it, "-" is stdout. 0 or -errno. */
int log_access_open(const char *path);
/** True when an access log is open (check before formatting a line). */
bool log_access_enabled(void);
/** Append one complete line (with its newline) to the access log, if open. */
void log_access_write(const char *line, size_t len);

/** Whether a line at `lvl` would be written (to skip work done only for it). */
#define log_enabled(lvl)                                                                           \
    __builtin_expect((int)(lvl) >= atomic_load_explicit(&log_current_level, memory_order_relaxed), \
                     (lvl) >= LOG_LEVEL_INFO)

#define LOG_AT(lvl, ...)                                                                           \
    do {                                                                                           \
        if (log_enabled(lvl))                                                                      \
            log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);                                     \
    } while (0)

#define LOG_DEBUG(...) LOG_AT(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define LOG_INFO(...) LOG_AT(LOG_LEVEL_INFO, __VA_ARGS__)
#define LOG_WARN(...) LOG_AT(LOG_LEVEL_WARN, __VA_ARGS__)
#define LOG_ERROR(...) LOG_AT(LOG_LEVEL_ERROR, __VA_ARGS__)
#define LOG_FATAL(...) LOG_AT(LOG_LEVEL_FATAL, __VA_ARGS__)

#endif
