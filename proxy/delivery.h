/*
 * Delivery: at request arrival, turn the learned plan for the page into
 * HTTP/2 pushes or one 103 Early Hints, before the origin has answered; and
 * act on what the origin itself says (its 103 and Link headers, SSE push
 * comments). Protocol-neutral: it drives the frontend through
 * exchange_frontend_ops_t (push_promise, early_hints).
 *
 * Hook points (called by exchange.c only).
 */
#ifndef HERALD_DELIVERY_H
#define HERALD_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/exchange.h"

/** Request head complete, before the origin is asked: plan and deliver. */
void delivery_on_request(exchange_t *ex);
/** A response head from the origin, before the frontend sees it (may edit ex->resp_headers). */
void delivery_on_response_head(exchange_t *ex, bool final);
/**
 * Response body bytes before the frontend sees them. Returns the bytes to
 * forward: `data`/`len` unchanged, or a filtered copy in ex->pool (SSE push
 * comments removed); *out_len gets its length.
 */
const uint8_t *delivery_on_response_body(exchange_t *ex, const uint8_t *data, size_t len,
                                         size_t *out_len);
/** The response ended (ok) or failed. */
void delivery_on_response_end(exchange_t *ex, bool ok);
void delivery_on_free(exchange_t *ex);

#endif
