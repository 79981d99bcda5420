/*
 * The glue between the proxy and learn/: what herald observes of each
 * exchange (requests, responses, bodies teed into parser/ discovery) becomes
 * page visits committed to the shared pagemap. Runs on the worker's loop;
 * discovery of large documents runs on libuv's thread pool.
 *
 * Hook points (called by exchange.c only): learning_on_request() when the
 * request head is complete, then the response hooks as upstream delivers
 * the response, learning_on_free() when the exchange is freed.
 */
#ifndef HERALD_LEARNING_H
#define HERALD_LEARNING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proxy/exchange.h"

void learning_on_request(exchange_t *ex);
void learning_on_response_head(exchange_t *ex, bool final);
void learning_on_response_body(exchange_t *ex, const uint8_t *data, size_t len);
void learning_on_response_end(exchange_t *ex, bool ok);
void learning_on_free(exchange_t *ex);

#endif
