/*
 * Query strings ("?page=...&asset=..." of admin requests and of the rule-set
 * URL): find a parameter and percent-decode it. Pure functions over a NUL-terminated string (the
 * part of the request target after '?'), fuzzed in tests/fuzz/.
 */
#ifndef HERALD_QUERY_H
#define HERALD_QUERY_H

#include <stdbool.h>
#include <stddef.h>

/**
 * The value of the first parameter `name` in query `q` (NUL-terminated,
 * borrowed; NULL is an empty query), percent-decoded ('+' is a space, as in
 * forms; a '%' not followed by two hex digits stays as it is). Returns a
 * malloc'd string the caller frees ("" for "name" or "name="), or NULL when
 * the parameter is absent. A decoded %00 ends the string there.
 */
char *query_get(const char *q, const char *name);

/**
 * Parameter `name` of `q` as a decimal count: *out gets `def` when it is
 * absent or empty, else its value. Returns false (and *out undefined) when
 * the value is not all decimal digits or does not fit.
 */
bool query_size(const char *q, const char *name, size_t def, size_t *out);

#endif
