// Fuzz harness: lwIP's input path (Ethernet, ARP, IPv4 and IPv6 with reassembly, ICMP, ICMPv6
// with neighbour discovery and MLD, UDP, TCP) as the image runs it, fed through the port's own netif: each frame is received by the
// virtio-net driver (drivers/virtio/virtio_net.c, virtqueue.c) into a posted DMA buffer,
// wrapped into a pbuf by the port's glue (ports/manticore/netif_virtio.c, en0 with the
// port's linkoutput and lwIP timers) and handed to netif->input; lwIP is built with the port's
// lwipopts.h and arch/cc.h from the same sources as its Makefile. All from the unchanged
// sources; the kernel services around them are netif_sim.h's. en0 is 10.0.2.15/24 and fd77::2
// beside its link-local address (ip= and ip6= on the command line), with echod's listeners,
// dual stack (UDP and TCP echo on 7777).
//
// Input: frames as (u16 little-endian length, bytes, u8 milliseconds to advance the clock
// before lwIP's timers run). After every input every receive buffer must be back (netif_sim.h).
#include "netif_sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool ready;
    if (!ready) {
        ready = true;
        sim_init(SIM_CMDLINE);
        netif_virtio_up();
        sim_listen();
        softirq_run();
    }
    for (size_t at = 0; at + 2 <= size;) {
        size_t n = data[at] | data[at + 1] << 8;
        at += 2;
        if (n > size - at) {
            n = size - at;
        }
        if (n > 0 && n <= NET_BUFFER_SIZE - 12) {
            sim_receive(data + at, n);
            softirq_run();
            sim_transmit();
        }
        at += n;
        sim_advance_ms(at < size ? data[at++] : 0);
        sim_transmit();
    }
    sim_release_held();
    sim_settle();
    return 0;
}
