// See netpkt.h.
#include "drivers/net/netpkt.h"

#include <string.h>

enum {
    ETH_HLEN = 14,
    ETHERTYPE_IPV4 = 0x0800,
    IPPROTO_UDP = 17,
    UDP_HLEN = 8,
};

static inline uint16_t be16(const uint8_t *p) {
    return (uint16_t)(p[0] << 8 | p[1]);
}

uint16_t netpkt_checksum(const uint8_t *data, unsigned len) {
    uint32_t sum = 0;
    for (unsigned i = 0; i + 1 < len; i += 2) {
        sum += be16(data + i);
    }
    if (len & 1) {
        sum += (uint32_t)data[len - 1] << 8;
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

static inline void swap(uint8_t *a, uint8_t *b, unsigned n) {
    uint8_t t[6];
    memcpy(t, a, n);
    memcpy(a, b, n);
    memcpy(b, t, n);
}

bool netpkt_udp_echo(uint8_t *frame, unsigned len, const uint8_t mac[6], const uint8_t ip[4],
    uint16_t port) {
    if (len < ETH_HLEN + 20 + UDP_HLEN || be16(frame + 12) != ETHERTYPE_IPV4
        || memcmp(frame, mac, 6) != 0) {
        return false;
    }
    uint8_t *iph = frame + ETH_HLEN;
    unsigned ihl = (iph[0] & 15u) * 4;
    unsigned total = be16(iph + 2);
    if ((iph[0] >> 4) != 4 || ihl < 20 || total < ihl + UDP_HLEN || ETH_HLEN + total > len
        || iph[9] != IPPROTO_UDP || (be16(iph + 6) & 0x3fff) != 0     // MF or an offset
        || memcmp(iph + 16, ip, 4) != 0 || netpkt_checksum(iph, ihl) != 0) {
        return false;
    }
    uint8_t *udp = iph + ihl;
    unsigned udp_len = be16(udp + 4);
    if (udp_len < UDP_HLEN || udp_len > total - ihl || (port != 0 && be16(udp + 2) != port)) {
        return false;
    }
    swap(frame, frame + 6, 6);
    swap(iph + 12, iph + 16, 4);
    swap(udp, udp + 2, 2);
    return true;
}
