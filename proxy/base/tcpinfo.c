/* The kernel's view of a socket's path: see tcpinfo.h. */
#include "tcpinfo.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>

#include "herald/error.h"

int tcpinfo_read(int fd, tcpinfo_t *out)
{
    struct tcp_info ti;
    memset(&ti, 0, sizeof(ti));
    memset(out, 0, sizeof(*out));
    socklen_t len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
        return -errno;
    /* Older kernels return a shorter struct: the fields must be inside len. */
    size_t need = offsetof(struct tcp_info, tcpi_delivery_rate) + sizeof(ti.tcpi_delivery_rate);
    if ((size_t)len < need)
        return HERALD_EUNSUPPORTED;
    out->min_rtt_us = ti.tcpi_min_rtt;
    out->delivery_rate = ti.tcpi_delivery_rate;
    out->app_limited = ti.tcpi_delivery_rate_app_limited;
    out->bytes_acked = ti.tcpi_bytes_acked;
    return 0;
}
