// Shared by the fuzz harnesses that feed frames through the port's own lwIP glue
// (fuzz_lwip.c, fuzz_netif.c): the kernel services ports/manticore/netif_virtio.c and
// drivers/virtio/virtio_net.c call (DMA pool, TSC, one-shot timer events, soft IRQs, the
// command line, the raw-NIC flag), a stand-in virtio transport, and the device side of one
// virtio-net with one queue pair (virtio 1.2, 2.7 split virtqueues, 5.1.6 receive/transmit).
// Frames reach lwIP the way they do in the image: written into a posted receive buffer,
// marked used, the queue's interrupt, the driver's notify callback, the "net" soft IRQ, the
// glue's frame_to_pbuf, netif->input. Included once, by the harness's C file.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/timer.h"
#include "arch/x86_64/tsc.h"
#include "drivers/pci/msix.h"
#include "drivers/virtio/virtio_net.h"
#include "drivers/virtio/virtio_pci.h"
#include "mm/mm.h"
#include "ports/manticore/netif_virtio.h"
#include "ports/manticore/nic.h"
#include "ports/manticore/softirq.h"
#include "py/runtime.h"

#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/priv/tcp_priv.h"
#include "lwip/tcp.h"
#include "lwip/udp.h"

static void sim_fail(const char *why) {
    fprintf(stderr, "netif_sim: %s\n", why);
    abort();
}

// --- kernel services ---
// The kernel's panic: an lwIP assertion (netif_virtio.c) lands here, a finding.
void panic(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "netif_sim: panic: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

#include "virtio_net_stub.h"     // the DMA pool and the stand-in transport

// The TSC counts microseconds and moves by one at every read, so that a wait loop (the glue's
// linkoutput waiting for a TX buffer) ends; the harness moves it further between frames.
static uint64_t now_us = 1000000;
uint64_t tsc_hz = 1000000;
uint64_t tsc_read(void) { return now_us++; }
uint64_t tsc_to_us(uint64_t ticks) { return ticks; }
void kprintf(const char *fmt, ...) { (void)fmt; }
uint64_t manticore_random_seed(void) { return 0x6d616e7469636f72ull; }
struct boot_info boot_info;
char mod_network_hostname_data[33] = "manticore";
const mp_print_t mp_plat_print;
static unsigned long sim_printed;
int mp_printf(const mp_print_t *print, const char *fmt, ...) {
    (void)print;
    (void)fmt;
    sim_printed++;
    return 0;
}

// The one timer event the glue arms (lwIP's timeouts).
static struct timer_event *armed;
void timer_event_init(struct timer_event *event, void (*handler)(void *), void *context) {
    event->deadline = 0;
    event->handler = handler;
    event->context = context;
    event->next = NULL;
}
void timer_event_arm(struct timer_event *event, uint64_t deadline) {
    event->deadline = deadline ? deadline : 1;
    armed = event;
}
void timer_event_cancel(struct timer_event *event) {
    event->deadline = 0;
    if (armed == event) {
        armed = NULL;
    }
}

// Soft IRQs as ports/manticore/softirq.c runs them: a pending mask, handlers in id order.
static softirq_handler_t softirq_handlers[SOFTIRQ_MAX];
static void *softirq_contexts[SOFTIRQ_MAX];
static uint32_t softirq_mask;
void softirq_register(int id, softirq_handler_t handler, void *context, const char *name) {
    (void)name;
    softirq_handlers[id] = handler;
    softirq_contexts[id] = context;
}
void softirq_raise(int id) { softirq_mask |= 1u << id; }
void smp_wake(unsigned cpu) { (void)cpu; sim_fail("smp_wake: the simulation has one CPU"); }
uint32_t softirq_pending(void) { return softirq_mask; }
void softirq_run(void) {
    // Bounded: the glue re-raises itself while frames remain, RX_BUDGET at a time.
    for (int round = 0; softirq_mask != 0; round++) {
        if (round > 10000) {
            sim_fail("soft IRQs never settle");
        }
        for (int id = 0; id < SOFTIRQ_MAX; id++) {
            if (softirq_mask & (1u << id)) {
                softirq_mask &= ~(1u << id);
                if (softirq_handlers[id]) {
                    softirq_handlers[id](softirq_contexts[id]);
                }
            }
        }
    }
}

// Time passes: the timer event fires (its handler raises the timer soft IRQ), soft IRQs run.
static void sim_advance_ms(uint32_t ms) {
    now_us += (uint64_t)ms * 1000;
    if (armed && armed->deadline <= now_us) {
        struct timer_event *e = armed;
        armed = NULL;
        e->deadline = 0;
        e->handler(e->context);
    }
    softirq_run();
}

// An app holding the NIC (the raw binding) takes it from lwIP.
static bool raw_acquired;
bool nic_raw_acquired(const struct virtio_net_queue *q) { (void)q; return raw_acquired; }


// --- the device side ---
static uint16_t device_avail[3];
static unsigned long sim_frames_out, sim_frames_dropped;
static bool device_take(struct virtqueue *vq, uint16_t *head) {
    if (device_avail[vq->index] == vq->avail->idx) {
        return false;
    }
    *head = vq->avail->ring[device_avail[vq->index]++ % vq->size];
    return true;
}
static void device_use(struct virtqueue *vq, uint16_t id, uint32_t len) {
    uint16_t u = vq->used->idx;
    vq->used->ring[u % vq->size].id = id;
    vq->used->ring[u % vq->size].len = len;
    vq->used->idx = u + 1;
}

// The device receives a frame: into the next posted buffer behind a zeroed virtio_net_hdr
// (5.1.6.4), or dropped when the driver posted none (as QEMU does).
static void sim_receive(const uint8_t *frame, size_t len) {
    struct virtqueue *rx = the_device->queues[0];
    uint16_t head;
    if (!device_take(rx, &head)) {
        sim_frames_dropped++;
        return;
    }
    uint8_t *buf = (uint8_t *)(uintptr_t)rx->desc[head].addr;
    if (rx->desc[head].len != NET_BUFFER_SIZE || len + 12 > NET_BUFFER_SIZE) {
        sim_fail("posted receive buffer of the wrong size");
    }
    memset(buf, 0, 12);
    memcpy(buf + 12, frame, len);
    device_use(rx, head, (uint32_t)(len + 12));
    virtqueue_interrupt(rx);
}

// The device transmits what the driver queued (unless stalled), and the TX interrupt follows.
static void sim_transmit(void) {
    struct virtqueue *tx = the_device->queues[1];
    uint16_t t;
    bool any = false;
    while (device_take(tx, &t)) {
        const uint8_t *buf = (const uint8_t *)(uintptr_t)tx->desc[t].addr;
        uint32_t len = tx->desc[t].len;
        if (len < 12 || len > NET_BUFFER_SIZE) {
            sim_fail("transmit descriptor of a bad length");
        }
        volatile uint8_t last = buf[len - 1];   // all of it readable
        (void)last;
        device_use(tx, t, 0);
        sim_frames_out++;
        any = true;
    }
    if (any) {
        virtqueue_interrupt(tx);
    }
}

static void sim_set_link(bool up) {
    config[6] = up;
    the_device->config_callback(the_device, the_device->config_context);
}

// The port's static addressing, both families (netif_virtio.c reads it at netif_virtio_up).
#define SIM_CMDLINE "ip=10.0.2.15/24 gw=10.0.2.2 ip6=fd77::2/64"

// Probe the driver, set up the glue (lwip_init, en0 over queue pair 0): once per process.
static struct virtio_net_queue *sim_queue;

// NETIF_SIM_REPORT=1: what went through, printed at exit (the regression test checks that
// the seeds reach lwIP and get answers, so the harness is not fuzzing a dead path).
static void sim_report(void) {
    struct netif_virtio_stats glue;
    netif_virtio_get_stats(&glue);
    struct virtio_net_stats s;
    virtio_net_get_stats(sim_queue, &s);
    printf("netif_sim: rx_frames %llu zero_copy %llu copied %llu held_max %u tx_frames_out %lu "
           "rx_dropped_by_device %lu rx_dropped_malformed %llu tx_waits %llu\n",
           (unsigned long long)s.rx_frames, (unsigned long long)glue.rx_zero_copy,
           (unsigned long long)glue.rx_copied, glue.rx_pbufs_held_max, sim_frames_out,
           sim_frames_dropped, (unsigned long long)s.rx_dropped_malformed,
           (unsigned long long)glue.tx_waits);
}

static void sim_init(const char *cmdline) {
    if (sim_queue) {
        return;
    }
    if (getenv("NETIF_SIM_REPORT")) {
        atexit(sim_report);
    }
    snprintf(boot_info.cmdline, sizeof(boot_info.cmdline), "%s", cmdline);
    if (virtio_net_probe() != 1) {
        sim_fail("probe");
    }
    netif_virtio_init();
    sim_queue = netif_virtio_queue();
    if (sim_queue == NULL || netif_virtio() == NULL) {
        sim_fail("no en0");
    }
}

// End of an input: the link comes back, no app holds the NIC, the device transmits everything,
// every TCP connection is aborted (so nothing a connection queued outlives the input), time
// runs on until lwIP's reassembly (IPv4 and IPv6) and ARP/ND queues expire. Then every
// receive buffer must be back in the ring and no pbuf lent to lwIP outstanding, as the fault
// campaign checks on the image.
static void sim_settle(void) {
    raw_acquired = false;
    softirq_raise(SOFTIRQ_NET);     // the glue pops what waited while an app held the NIC
    if (!config[6]) {
        sim_set_link(true);
    }
    softirq_run();
    sim_transmit();
    while (tcp_active_pcbs != NULL) {
        tcp_abort(tcp_active_pcbs);
    }
    // 70 s: past IPV6_REASS_MAXAGE (60 s, lwIP's opt.h), the longest any queue keeps a frame.
    for (int i = 0; i < 70; i++) {
        sim_transmit();
        sim_advance_ms(1000);
    }
    while (tcp_tw_pcbs != NULL) {
        tcp_abort(tcp_tw_pcbs);
    }
    sim_transmit();
    softirq_run();
    struct netif_virtio_stats glue;
    netif_virtio_get_stats(&glue);
    struct virtio_net_stats s;
    virtio_net_get_stats(sim_queue, &s);
    if (glue.rx_pbufs_held != 0) {
        sim_fail("pbufs over receive buffers still held by lwIP after the input");
    }
    if (s.rx_buffers_held != 0 || s.rx_buffers_free_in_ring != s.rx_buffers_total) {
        sim_fail("receive buffers not all back in the ring");
    }
}

// echod's listeners: a UDP and a TCP echo on 7777; and a UDP sink on 7778 that keeps what it
// receives until the harness lets go (a socket nobody reads: pbufs over DMA buffers held).
enum { HELD_MAX = 600 };
static struct pbuf *held[HELD_MAX];
static int held_count;

static void udp_echo(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *addr,
                     u16_t port) {
    (void)arg;
    udp_sendto(pcb, p, addr, port);
    pbuf_free(p);
}

static void udp_sink(void *arg, struct udp_pcb *pcb, struct pbuf *p, const ip_addr_t *addr,
                     u16_t port) {
    (void)arg; (void)pcb; (void)addr; (void)port;
    if (held_count < HELD_MAX) {
        held[held_count++] = p;
    } else {
        pbuf_free(p);
    }
}

static void sim_release_held(void) {
    while (held_count > 0) {
        pbuf_free(held[--held_count]);
    }
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

static void sim_listen(void) {
    struct udp_pcb *u = udp_new_ip_type(IPADDR_TYPE_ANY);
    udp_bind(u, IP_ANY_TYPE, 7777);
    udp_recv(u, udp_echo, NULL);
    struct udp_pcb *s = udp_new_ip_type(IPADDR_TYPE_ANY);
    udp_bind(s, IP_ANY_TYPE, 7778);
    udp_recv(s, udp_sink, NULL);
    struct tcp_pcb *t = tcp_new_ip_type(IPADDR_TYPE_ANY);
    tcp_bind(t, IP_ANY_TYPE, 7777);
    t = tcp_listen(t);
    tcp_accept(t, tcp_echo_accept);
}
