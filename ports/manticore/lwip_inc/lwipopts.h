// lwIP configuration for the manticore port (lwIP 2.2.1 from Debian's source package).
//
// MicroPython's common lwIP options (extmod/lwip-include/lwipopts_common.h: NO_SYS, the raw
// API only, ARP/DHCP/DNS/IGMP, checksums per netif) first, then this port's deviations: no
// mDNS, 8-byte alignment, statistics on, and buffers sized for a virtual NIC on a machine
// with hundreds of MiB rather than an MCU (lwIP docs: doc/doxygen "Tuning" and opt.h).
#ifndef MICROPY_INCLUDED_MANTICORE_LWIPOPTS_H
#define MICROPY_INCLUDED_MANTICORE_LWIPOPTS_H

#include <stdint.h>

// TCP: a full-size MSS and the largest window that needs no window scaling (RFC 7323), so a
// bulk transfer keeps ~44 segments in flight. lwipopts_common.h only sizes these when
// MEM_SIZE is unset, so setting it here selects ours.
#define MEM_SIZE                        (1024 * 1024)   // the lwIP heap: TX segments, ARP queue
#define TCP_MSS                         (1460)          // Ethernet MTU 1500 - IPv4 20 - TCP 20
#define TCP_WND                         (44 * TCP_MSS)  // 64240 < 65535
#define TCP_SND_BUF                     (44 * TCP_MSS)
#define TCP_SND_QUEUELEN                (4 * TCP_SND_BUF / TCP_MSS)
#define MEMP_NUM_TCP_SEG                (TCP_SND_QUEUELEN + 2 * TCP_WND / TCP_MSS)

#include "extmod/lwip-include/lwipopts_common.h"

// Deviations from lwipopts_common.h.
#undef MEM_ALIGNMENT
#define MEM_ALIGNMENT                   8               // x86-64: pbufs hold pointers
#undef LWIP_MDNS_RESPONDER
#define LWIP_MDNS_RESPONDER             0               // not built (apps/mdns is left out)
#undef LWIP_DNS_SUPPORT_MDNS_QUERIES
#define LWIP_DNS_SUPPORT_MDNS_QUERIES   0
#undef LWIP_STATS
#define LWIP_STATS                      1               // drop counters for network.LAN.stats()
#undef TCP_LISTEN_BACKLOG
#define TCP_LISTEN_BACKLOG              1

#define LWIP_IPV4                       1
#define LWIP_IPV6                       1
#define LWIP_STATS_DISPLAY              0
#define MIB2_STATS                      0
#define LWIP_NETIF_EXT_STATUS_CALLBACK  1
#define LWIP_NETIF_LINK_CALLBACK        1
#define LWIP_DHCP_GET_NTP_SRV           0

// Checksums: generated in software on TX (no offload negotiated), verified on RX for every
// protocol; a bad one is dropped and counted (lwip_stats.{ip,udp,tcp,icmp}.chkerr).
#define CHECKSUM_GEN_IP                 1
#define CHECKSUM_GEN_UDP                1
#define CHECKSUM_GEN_TCP                1
#define CHECKSUM_GEN_ICMP               1
#define CHECKSUM_CHECK_IP               1
#define CHECKSUM_CHECK_UDP              1
#define CHECKSUM_CHECK_TCP              1
#define CHECKSUM_CHECK_ICMP             1

// Pools. RX frames normally arrive as custom pbufs over the driver's DMA buffers (no pool
// needed); the pool backs the copy taken when those buffers run low (netif_virtio.c).
#define PBUF_POOL_SIZE                  (128)
#define PBUF_POOL_BUFSIZE               LWIP_MEM_ALIGN_SIZE(1514 + PBUF_LINK_ENCAPSULATION_HLEN)
#define MEMP_NUM_PBUF                   (64)            // PBUF_REF/ROM headers (sendto, DNS)
#undef MEMP_NUM_UDP_PCB
#define MEMP_NUM_UDP_PCB                (16)
#define MEMP_NUM_TCP_PCB                (16)
#define MEMP_NUM_TCP_PCB_LISTEN         (8)
#define MEMP_NUM_REASSDATA              (8)
#define MEMP_NUM_FRAG_PBUF              (16)
#define MEMP_NUM_ARP_QUEUE              (16)
#define ARP_TABLE_SIZE                  (16)
#define ARP_QUEUEING                    1
#define IP_REASS_MAX_PBUFS              (16)            // fragments held for reassembly, all datagrams
#define TCP_QUEUE_OOSEQ                 1
#define TCP_OOSEQ_MAX_PBUFS             (16)            // bounds what out-of-order data can pin
#define LWIP_TCP_SACK_OUT               0

// IPv6 (dual stack beside IPv4): ND6 (RFC 4861), MLD (RFC 3810, the solicited-node groups ND
// needs), SLAAC (RFC 4862) from router advertisements, fragmentation and reassembly (RFC 8200
// section 4.5). One interface, so no address zones (scopes only matter with several netifs
// sharing a link-local prefix). Link-local, one SLAAC address and one static (ip6= on the
// command line): 3 slots. RDNSS (RFC 8106) is off so a router advertisement does not replace
// the DNS server DHCP gave (lwIP writes RDNSS servers from index 0); dns6= sets one instead.
#define LWIP_IPV6_SCOPES                0
#define LWIP_IPV6_NUM_ADDRESSES         3
#define LWIP_IPV6_AUTOCONFIG            1
#define LWIP_IPV6_SEND_ROUTER_SOLICIT   1
#define LWIP_IPV6_MLD                   1
#define LWIP_IPV6_FRAG                  1
#define LWIP_IPV6_REASS                 1
#define IPV6_FRAG_COPYHEADER            1               // 64-bit: the reassembly helper holds pointers
#define LWIP_IPV6_DHCP6                 0
#define LWIP_ND6_RDNSS_MAX_DNS_SERVERS  0
#define LWIP_ND6_ALLOW_RA_UPDATES       1
// The neighbour cache is a fixed table: a flood of solicitations from made-up sources recycles
// its stale entries (nd6.c, nd6_new_neighbor_cache_entry) and can grow nothing.
#define LWIP_ND6_NUM_NEIGHBORS          (16)
#define LWIP_ND6_NUM_DESTINATIONS       (16)
#define MEMP_NUM_ND6_QUEUE              (16)
#define MEMP_NUM_MLD6_GROUP             (8)
// gw6= on the command line: the next hop for off-link destinations (netif_virtio.c).
struct netif;
struct ip6_addr;
const struct ip6_addr *netif_virtio_ip6_gateway(struct netif *netif, const struct ip6_addr *dest);
#define LWIP_HOOK_ND6_GET_GW(netif, dest) netif_virtio_ip6_gateway(netif, dest)
#undef DNS_MAX_SERVERS
#define DNS_MAX_SERVERS                 (2)             // [0] DHCP's or dns=, [1] dns6= (netif_virtio.c)

// Randomness for DHCP transaction ids, ephemeral ports and TCP initial sequence numbers.
#define LWIP_RAND()                     ((uint32_t)manticore_random_seed())
#define LWIP_RAND_FOR_RANDOM_TCP_PORTS  1
uint64_t manticore_random_seed(void);

#endif // MICROPY_INCLUDED_MANTICORE_LWIPOPTS_H
