/*
 * The admin's view of a page's last delivered visit (deliver/timeline.h)
 * as JSON, for GET /maps/timeline?page=KEY (README, "Admin").
 */
#ifndef HERALD_ADMIN_TIMELINE_H
#define HERALD_ADMIN_TIMELINE_H

#include <jansson.h>

#include "timeline.h"

/**
 * The JSON object of t: page, at (Unix ms of the arrival), status, hints_ms,
 * head_ms, html_end_ms, think_ms (arrival to head), dropped, and items
 * [{url, via, outcome, at_ms, fetch_ms, first_byte_ms, fetched_ms, end_ms,
 * bytes}]; times that did not happen are null. A new reference (the
 * caller's); out of memory aborts.
 */
json_t *admin_timeline_json(const timeline_t *t);

#endif
