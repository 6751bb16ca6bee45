// Fuzz harness: lwIP's input path (Ethernet, ARP, IPv4 and IPv6 with reassembly, ICMP, ICMPv6
// with neighbour discovery and MLD, UDP, TCP) as
// the port builds it (the port's lwipopts.h and arch/cc.h, the same lwIP sources as its
// Makefile), from the unchanged sources, fed frames through a netif configured as the port's
// en0 (ethernet_input, etharp_output and ethip6_output, 10.0.2.15/24, fe80:: from the MAC and
// fd77::2 static) with echod's listeners, dual stack: a UDP echo and a TCP echo on 7777. The port's own glue (netif_virtio.c) needs MicroPython and is left out:
// the virtio_net harness covers the driver side.
//
// Input: frames as (u16 little-endian length, bytes, u8 milliseconds to advance the clock
// before lwIP's timers run).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lwip/etharp.h"
#include "lwip/ethip6.h"
#include "lwip/init.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/tcp.h"
#include "lwip/timeouts.h"
#include "lwip/udp.h"
#include "netif/ethernet.h"

// --- stand-ins for the port ---
static uint32_t now_ms;
uint32_t sys_now(void) { return now_ms; }
uint64_t manticore_random_seed(void) { return 0x6d616e7469636f72ull; }
void manticore_lwip_assert(const char *message, const char *file, int line) {
    // The port counts and survives lwIP assertions (arch/cc.h); a fuzzer wants to see them.
    fprintf(stderr, "lwIP assertion: %s (%s:%d)\n", message, file, line);
    abort();
}

static struct netif en0;
static unsigned long frames_out;

// The port's gw6= hook (LWIP_HOOK_ND6_GET_GW in lwipopts.h; netif_virtio.c): none here.
const ip6_addr_t *netif_virtio_ip6_gateway(struct netif *netif, const ip6_addr_t *dest) {
    (void)netif;
    (void)dest;
    return NULL;
}

static err_t linkoutput(struct netif *netif, struct pbuf *p) {
    (void)netif;
    volatile uint8_t last = ((uint8_t *)p->payload)[p->len - 1];   // readable, all of it
    (void)last;
    frames_out++;
    return ERR_OK;
}

static err_t en0_init(struct netif *netif) {
    static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
    memcpy(netif->hwaddr, mac, 6);
    netif->hwaddr_len = 6;
    netif->mtu = 1500;
    netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET
                   | NETIF_FLAG_IGMP | NETIF_FLAG_MLD6;
    netif->output = etharp_output;
    netif->output_ip6 = ethip6_output;
    netif->linkoutput = linkoutput;
    netif->name[0] = 'e';
    netif->name[1] = 'n';
    return ERR_OK;
}

static void udp_echo(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *addr,
                     u16_t port) {
    (void)arg;
    udp_sendto(pcb, p, addr, port);
    pbuf_free(p);
}

static err_t tcp_echo_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err) {
    (void)arg;
    (void)err;
    if (p == NULL) {
        tcp_close(pcb);
        return ERR_OK;
    }
    for (struct pbuf *q = p; q; q = q->next) {
        tcp_write(pcb, q->payload, q->len, TCP_WRITE_FLAG_COPY);
    }
    tcp_recved(pcb, p->tot_len);
    pbuf_free(p);
    return ERR_OK;
}

static err_t tcp_echo_accept(void *arg, struct tcp_pcb *pcb, err_t err) {
    (void)arg;
    if (err != ERR_OK || pcb == NULL) {
        return ERR_VAL;
    }
    tcp_recv(pcb, tcp_echo_recv);
    return ERR_OK;
}

static void init_once(void) {
    static int done;
    if (done) {
        return;
    }
    done = 1;
    lwip_init();
    ip4_addr_t ip, mask, gw;
    IP4_ADDR(&ip, 10, 0, 2, 15);
    IP4_ADDR(&mask, 255, 255, 255, 0);
    IP4_ADDR(&gw, 10, 0, 2, 2);
    netif_add(&en0, &ip, &mask, &gw, NULL, en0_init, ethernet_input);
    netif_set_default(&en0);
    netif_set_up(&en0);
    netif_set_link_up(&en0);
    netif_create_ip6_linklocal_address(&en0, 1);
    en0.ip6_autoconfig_enabled = 1;
    ip6_addr_t ip6;
    s8_t slot;
    IP6_ADDR(&ip6, PP_HTONL(0xfd770000), 0, 0, PP_HTONL(2));
    if (netif_add_ip6_address(&en0, &ip6, &slot) == ERR_OK) {
        netif_ip6_addr_set_state(&en0, slot, IP6_ADDR_PREFERRED);
    }
    netif_ip6_addr_set_state(&en0, 0, IP6_ADDR_PREFERRED);
    struct udp_pcb *u = udp_new_ip_type(IPADDR_TYPE_ANY);
    udp_bind(u, IP_ANY_TYPE, 7777);
    udp_recv(u, udp_echo, NULL);
    struct tcp_pcb *t = tcp_new_ip_type(IPADDR_TYPE_ANY);
    tcp_bind(t, IP_ANY_TYPE, 7777);
    t = tcp_listen(t);
    tcp_accept(t, tcp_echo_accept);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    init_once();
    for (size_t at = 0; at + 2 <= size;) {
        size_t n = data[at] | data[at + 1] << 8;
        at += 2;
        if (n > size - at) {
            n = size - at;
        }
        if (n > 0 && n <= 1514) {
            struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)n, PBUF_POOL);
            if (p != NULL) {
                pbuf_take(p, data + at, (u16_t)n);
                if (en0.input(p, &en0) != ERR_OK) {
                    pbuf_free(p);
                }
            }
        }
        at += n;
        if (at < size) {
            now_ms += data[at++];
        }
        sys_check_timeouts();
    }
    // Let reassembly, ARP and TCP timers run out so state does not pile up across inputs.
    for (int i = 0; i < 40; i++) {
        now_ms += 1000;
        sys_check_timeouts();
    }
    return 0;
}
