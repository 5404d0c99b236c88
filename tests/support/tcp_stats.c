/*
 * TCP_INFO counters for the end-to-end tests (see net.h). A file of its own because the kernel's
 * struct tcp_info (linux/tcp.h) has fields that glibc's copy in netinet/tcp.h lacks, and the two
 * headers cannot be included together.
 */
#include "net.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

int tcp_stats(int fd, struct tcp_counts *out)
{
    struct tcp_info ti;
    memset(&ti, 0, sizeof(ti));
    socklen_t len = sizeof(ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == -1)
        return -errno;
    if (len < offsetof(struct tcp_info, tcpi_data_segs_in) + sizeof(ti.tcpi_data_segs_in))
        return -ENOTSUP; /* a kernel older than 4.6 */
    out->segs_in = ti.tcpi_segs_in;
    out->data_segs_in = ti.tcpi_data_segs_in;
    out->unacked = ti.tcpi_unacked;
    return 0;
}
