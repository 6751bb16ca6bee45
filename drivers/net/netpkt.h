// Per-packet work for raw NIC queues that Python would otherwise do byte by byte: plain C over
// a frame in memory (no MicroPython, no driver state), bound to Python in modnic.c.
#ifndef DRIVERS_NET_NETPKT_H
#define DRIVERS_NET_NETPKT_H

#include <stdbool.h>
#include <stdint.h>

// RFC 1071 Internet checksum of `len` bytes (the one's complement of the one's complement sum).
uint16_t netpkt_checksum(const uint8_t *data, unsigned len);

// Turn an Ethernet/IPv4/UDP datagram for `mac`/`ip`, destination port `port` (0: any), into
// its echo in place: MAC addresses, IPv4 addresses and UDP ports swapped. Neither checksum
// changes (one's complement sums do not depend on the order of the 16-bit words, RFC 1071),
// so the payload is never read. Returns false, leaving the frame as it was, for anything else:
// not IPv4/UDP, not for us, a fragment, IP options that do not fit, a bad IPv4 header
// checksum, or lengths that do not add up (RFC 791, RFC 768).
bool netpkt_udp_echo(uint8_t *frame, unsigned len, const uint8_t mac[6], const uint8_t ip[4],
    uint16_t port);

#endif
