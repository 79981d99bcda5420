/* The connection's bandwidth estimate: see bandwidth.h. */
#include "proxy/bandwidth.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

uint64_t bandwidth_estimate(int fd, uint64_t hint_bits, bool *measured, uint32_t *rtt_us)
{
    uint64_t hint = hint_bits / 8 > 0 ? hint_bits / 8 : 1;
    if (measured != NULL)
        *measured = false;
    if (rtt_us != NULL)
        *rtt_us = 0;
    if (fd < 0)
        return hint;
    struct tcp_info ti;
    memset(&ti, 0, sizeof(ti));
    socklen_t len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return hint;
    if (rtt_us != NULL)
        *rtt_us = ti.tcpi_rtt;
    /* Older kernels return a shorter struct: the fields must be inside len. */
    size_t need = offsetof(struct tcp_info, tcpi_delivery_rate) + sizeof(ti.tcpi_delivery_rate);
    if ((size_t)len < need || ti.tcpi_bytes_acked < BANDWIDTH_MIN_ACKED ||
        ti.tcpi_delivery_rate == 0)
        return hint;
    if (measured != NULL)
        *measured = true;
    return ti.tcpi_delivery_rate;
}
