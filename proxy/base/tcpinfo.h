/*
 * The kernel's view of a TCP connection's path (TCP_INFO), for the pacer
 * (pace.h) and the TLS record sizing of client connections (conn.c). Kept
 * apart from them: <linux/tcp.h> has the newer fields but clashes with the
 * <netinet/tcp.h> that uv.h brings in.
 */
#ifndef HERALD_TCPINFO_H
#define HERALD_TCPINFO_H

#include <stdbool.h>
#include <stdint.h>

/** What herald uses of struct tcp_info. */
typedef struct tcpinfo {
    uint32_t min_rtt_us;    /* the smallest RTT the kernel saw; 0 unknown */
    uint64_t delivery_rate; /* bytes/s, the newest delivery rate sample; 0 none */
    bool app_limited;       /* that sample was limited by the sender, not the path */
    uint64_t bytes_acked;   /* bytes the peer acknowledged */
} tcpinfo_t;

/**
 * Read socket fd's TCP_INFO into *out. Returns 0; a negative errno from
 * getsockopt; or HERALD_EUNSUPPORTED when the kernel's struct lacks the
 * fields (kernels before 4.9).
 */
int tcpinfo_read(int fd, tcpinfo_t *out);

#endif
