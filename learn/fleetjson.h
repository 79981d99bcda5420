/*
 * The frame the fleet's JSON values share (fleetlog.h, fleetsteer.h,
 * fleetbase.h): one object of at most a given size, its "v" the version
 * this herald reads, no duplicate and no unknown member; and the reason
 * string that goes with a rejection. No logging.
 */
#ifndef HERALD_FLEETJSON_H
#define HERALD_FLEETJSON_H

#include <jansson.h>
#include <stddef.h>

/**
 * Write the reason (printf format) into reason[0..reasonlen) (either may
 * be NULL/0) and return rc, so that a decoder can `return
 * fleetjson_reason(...)`.
 */
int fleetjson_reason(char *reason, size_t reasonlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/** The first member of object o not among names[0..n), or NULL when there is none. */
const char *fleetjson_unknown(json_t *o, const char *const *names, size_t n);

/**
 * Parse data[0..len) as one JSON object (duplicate members rejected),
 * whose "v" is `version` and whose members are all among members[0..n)
 * (checked after the version: a newer version may have others). On
 * success *out is the object, owned by the caller (json_decref). Returns
 * 0; HERALD_EINVAL (data or out NULL); HERALD_ETOOBIG (len > max);
 * HERALD_EUNSUPPORTED (another version); HERALD_EPARSE (anything else; an
 * allocation failure inside jansson 2.14's parser reads as one too); a
 * reason goes with every error.
 */
int fleetjson_open(const char *data, size_t len, size_t max, json_int_t version,
                   const char *const *members, size_t n, json_t **out, char *reason,
                   size_t reasonlen);

#endif
