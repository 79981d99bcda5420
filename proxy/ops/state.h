/*
 * The learned map on disk (docs/architecture.md, "State on disk"; --state,
 * --state-interval). At start the file is loaded (snapshot_load_file: a
 * corrupt, truncated or future-version file is moved aside and herald starts
 * empty). Every --state-interval seconds, when the map changed, a deep copy
 * is taken on the loop (pagemap_dump) and the JSON is built and written on
 * libuv's thread pool (snapshot_export_dump + snapshot_write_file: temp
 * file, fsync, rename, directory fsync); at most one write is in flight.
 * On shutdown state_save_sync() writes once more.
 *
 * "Changed" is a generation: the map's committed visits plus the edits
 * announced with state_mark_dirty() (admin pin/ban/forget/import).
 * Delivery counters alone do not make the map dirty; they are saved with
 * the next visit or at shutdown.
 *
 * Runs on one loop (the main thread's); only state_mark_dirty() may be
 * called from any thread.
 */
#ifndef HERALD_STATE_H
#define HERALD_STATE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

typedef struct state state_t;
typedef struct pagemap pagemap_t;

typedef struct state_stats {
    uint64_t saves;       /* completed writes */
    uint64_t save_errors; /* failed writes */
    int64_t last_save_ms; /* wall clock of the last completed write, 0 never */
    uint64_t last_save_bytes;
    double last_save_s; /* duration of the last write (copy to rename) */
    bool loaded;        /* a snapshot was loaded at start */
    bool saving;        /* a write is in flight */
} state_stats_t;

/**
 * Load `path` into `pm` (logging what happened) and start the save timer
 * on `loop`. path and pm are borrowed and must outlive the object. Never
 * fails for a missing or bad file (herald starts empty); *out is owned by
 * the caller: state_close(). Returns 0 or a libuv error (timer).
 */
int state_start(uv_loop_t *loop, pagemap_t *pm, const char *path, double interval_s, state_t **out);

/** The map was edited outside visits (admin): save it at the next tick. Any thread. NULL ok. */
void state_mark_dirty(state_t *st);

/** Copy the counters. */
void state_get_stats(state_t *st, state_stats_t *out);

/** Stop the timer; a write in flight finishes (the loop runs until it does). */
void state_stop(state_t *st);

/**
 * Write the map now, blocking (shutdown, after the loop ended and the
 * workers are joined), when it changed since the last write. Then free the
 * object. 0 or the error of snapshot_save_file (logged). NULL ok.
 */
int state_save_sync_and_free(state_t *st);

#endif
