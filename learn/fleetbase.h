/*
 * The fleet's base map (docs/fleet.md): the evidence log is trimmed, so a
 * starting instance needs a copy of a map to begin from, and a Redis that
 * lost its data needs one again. One instance at a time writes its map as
 * the base: a header, then chunks.
 *
 * A chunk is a snapshot document (snapshot.h, version 2) holding a slice
 * of the map's pages, so it is read with the snapshot's validated (and
 * fuzzed) decoder and merged with pagemap_restore; no second map format.
 *
 * The header says what the base holds, so that the loader folds exactly
 * the evidence that is not in it:
 *
 *   {"v":1,"inst":"7f3a0c1d9e2b4a65","gen":"7f3a0c1d9e2b4a65-12","t":1700000000000,
 *    "chunks":3,"log":"1700000000000-0","seqs":[["a1b2",40],["7f3a0c1d9e2b4a65",12]]}
 *
 * "seqs" is the writer's fold record (fleetfold_entries) plus its own
 * instance with the number of its last finished batch: every batch with
 * a number up to these is in the base. "log" is the stream position the
 * writer had read (opaque to learn/; "" none), "gen" the name of this
 * base's chunk list (fleetkey_base_chunks), "chunks" their count.
 * No network, no logging, no locks.
 */
#ifndef HERALD_FLEETBASE_H
#define HERALD_FLEETBASE_H

#include <stddef.h>
#include <stdint.h>

#include "fleetfold.h"
#include "fleetlog.h"
#include "pagemap.h"

#define FLEETBASE_VERSION 1
/** Default chunk size the writer aims at. */
#define FLEETBASE_CHUNK_BYTES (512u * 1024)
/** Largest chunk a loader reads. */
#define FLEETBASE_MAX_CHUNK_BYTES (16u * 1024 * 1024)
/** Chunks of one base at most. */
#define FLEETBASE_MAX_CHUNKS 100000
/** Instances a header names at most. */
#define FLEETBASE_MAX_SEQS 4096
/** Largest header. */
#define FLEETBASE_MAX_HEADER_BYTES (512u * 1024)
/** Longest "log" position. */
#define FLEETBASE_MAX_LOG_ID 64

/** Chunks of a base: v[i] (malloc'd, NUL-terminated) of len[i] bytes. */
typedef struct fleetbase_chunks {
    char **v;
    size_t *len;
    size_t n;
    size_t skipped; /* pages alone larger than FLEETBASE_MAX_CHUNK_BYTES, left out */
} fleetbase_chunks_t;

/**
 * Cut the dump `d` (borrowed; pagemap_dump) into snapshot documents of
 * about `target` bytes each (0 = FLEETBASE_CHUNK_BYTES; a page is never
 * split, so a chunk may be larger, up to FLEETBASE_MAX_CHUNK_BYTES).
 * Chunk 0 holds the least recently used pages: loading the chunks in
 * order (fleetbase_load_chunk) leaves the loader's map in the writer's LRU
 * order, and a loader with fewer --max-pages keeps the most recent.
 * *out is overwritten; owned by the caller
 * (fleetbase_chunks_dispose). Returns 0, HERALD_EINVAL, HERALD_ETOOBIG
 * (more than FLEETBASE_MAX_CHUNKS) or HERALD_ENOMEM (*out empty).
 */
int fleetbase_encode(const pagemap_dump_t *d, size_t target, fleetbase_chunks_t *out);

/** Free the chunks and zero *c. NULL is a no-op. */
void fleetbase_chunks_dispose(fleetbase_chunks_t *c);

/**
 * Merge one chunk data[0..len) into pm (snapshot_import, SNAPSHOT_MERGE:
 * pages in the chunk replace the same pages of the map). Returns 0,
 * HERALD_ETOOBIG (over FLEETBASE_MAX_CHUNK_BYTES) or snapshot_import's
 * codes, with its reason; on error the map is untouched.
 */
int fleetbase_load_chunk(pagemap_t *pm, const char *data, size_t len, char *reason,
                         size_t reasonlen);

/** A decoded header. Free with fleetbase_header_dispose. */
typedef struct fleetbase_header {
    char instance[FLEETLOG_MAX_INSTANCE + 1];
    char gen[FLEETLOG_MAX_INSTANCE + 1];
    int64_t t_ms;
    size_t chunks;
    char log_id[FLEETBASE_MAX_LOG_ID + 1];
    fleetfold_entry_t *seqs; /* malloc'd */
    size_t nseqs;
} fleetbase_header_t;

/**
 * Encode the header of a base written by the owner of `f` (its self id)
 * whose last finished batch is own_seq (0 = none yet), named `gen`
 * (fleetlog_instance_valid), made at t_ms, of `chunks` chunks, having read
 * the log up to `log_id` (NULL = ""; [0-9-], at most FLEETBASE_MAX_LOG_ID).
 * *out malloc'd, owned by the caller. Returns 0, HERALD_EINVAL or
 * HERALD_ENOMEM.
 */
int fleetbase_header_encode(const fleetfold_t *f, const char *self, uint64_t own_seq,
                            const char *gen, int64_t t_ms, size_t chunks, const char *log_id,
                            char **out, size_t *outlen);

/**
 * Decode and validate a header (strict, as fleetlog_decode). *out owned by
 * the caller. Returns 0, HERALD_ETOOBIG, HERALD_EUNSUPPORTED,
 * HERALD_EPARSE or HERALD_ENOMEM with a reason (*out empty on error).
 */
int fleetbase_header_decode(const char *data, size_t len, fleetbase_header_t *out, char *reason,
                            size_t reasonlen);

/** Free a header's array and zero it. NULL is a no-op. */
void fleetbase_header_dispose(fleetbase_header_t *h);

/**
 * Seed a loader's fold record with the header's numbers (fleetfold_note
 * each at now_ms), so the batches the base holds are not folded again.
 * Returns 0, HERALD_EINVAL or HERALD_ENOMEM.
 */
int fleetbase_header_seed(const fleetbase_header_t *h, fleetfold_t *f, int64_t now_ms);

#endif
