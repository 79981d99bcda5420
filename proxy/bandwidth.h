/*
 * The client connection's bandwidth estimate for the push budget (issue 4,
 * "Deliver"): what the kernel measured on the socket when it has seen
 * enough traffic, else the configured hint.
 */
#ifndef HERALD_BANDWIDTH_H
#define HERALD_BANDWIDTH_H

#include <stdbool.h>
#include <stdint.h>

/**
 * Bytes a connection must have had acknowledged before its TCP_INFO
 * delivery rate is trusted: below this a fresh connection's rate measures
 * the handshake and slow start, not the path.
 */
#define BANDWIDTH_MIN_ACKED (64 * 1024)

/**
 * Estimated bytes per second towards the client on socket `fd`:
 * TCP_INFO tcpi_delivery_rate once tcpi_bytes_acked >= BANDWIDTH_MIN_ACKED,
 * else `hint_bits` / 8 (--bandwidth-hint). `fd` < 0 or a failing getsockopt
 * gives the hint too. *measured (may be NULL) tells which was used; *rtt_us
 * (may be NULL) gets tcpi_rtt (0 when unknown).
 */
uint64_t bandwidth_estimate(int fd, uint64_t hint_bits, bool *measured, uint32_t *rtt_us);

#endif
