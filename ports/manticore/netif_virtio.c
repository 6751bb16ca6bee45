// lwIP's netif "en0" over the virtio-net fast path, and lwIP's timers on the kernel timer.
//
// Receive is zero copy: each frame the driver pops is wrapped in a custom pbuf over its DMA
// buffer (lwIP docs, "Zero-copy RX": pbuf_alloced_custom with PBUF_REF), and the buffer goes
// back to the RX ring in the pbuf's custom free function, whenever lwIP or a socket drops the
// last reference. So that slow readers (a socket nobody reads, TCP out-of-order queues) cannot
// starve the ring, only up to half the RX buffers may be held that way; beyond that a frame is
// copied into a pool pbuf and its buffer returned at once. Transmit copies the pbuf chain into
// a driver TX buffer; a full TX ring is back-pressure: wait briefly for completions, then
// ERR_MEM (TCP retransmits, a UDP send raises OSError), never a silent drop.
//
// Everything here runs in thread context: soft IRQs (ports/manticore/softirq.h) at bytecode
// boundaries or in the idle loop, and Python calling into lwIP. The only hard-IRQ code is the
// driver's notify callback and the timer event handler, which just raise soft IRQs.
//
// lwIP runs in NO_SYS mode (lwIP docs, "Mainloop mode"): frames go to netif->input, and
// sys_check_timeouts runs when the kernel timer event armed for sys_timeouts_sleeptime()
// fires; there is no periodic tick. The timer is only armed while the interface is up.
#include <string.h>

#include "py/mphal.h"
#include "py/runtime.h"

#include "lwip/dhcp.h"
#include "lwip/dns.h"
#include "lwip/etharp.h"
#include "lwip/ethip6.h"
#include "lwip/init.h"
#include "lwip/netif.h"
#include "lwip/pbuf.h"
#include "lwip/stats.h"
#include "lwip/timeouts.h"
#include "netif/ethernet.h"

#include "arch/x86_64/boot_info.h"
#include "arch/x86_64/cpu.h"
#include "arch/x86_64/panic.h"
#include "arch/x86_64/smp.h"
#include "arch/x86_64/timer.h"
#include "arch/x86_64/tsc.h"
#include "drivers/virtio/virtio_net.h"
#include "extmod/modnetwork.h"

#include "ports/manticore/netif_virtio.h"
#include "ports/manticore/nic.h"
#include "ports/manticore/softirq.h"

enum {
    RX_BUDGET = 64,             // frames per soft IRQ run before other soft IRQs get a turn
    RX_PBUFS_MAX = 512,         // custom pbuf descriptors (>= half the RX buffers)
    TX_WAIT_US = 2000,          // how long linkoutput waits for a TX buffer to come back
    ETH_MTU = 1500,
};

// A received frame lent to lwIP: the custom pbuf and the DMA buffer behind it.
struct rx_pbuf {
    struct pbuf_custom custom;  // first: lwIP hands the struct pbuf * back to rx_pbuf_free
    uint16_t buffer_id;
    struct virtio_net_queue *q;     // the queue pair the buffer belongs to
    struct rx_pbuf *next_free;
};

static struct netif en0;
static bool present;
// Queue pair 0 of the NIC lwIP is bound to (lwip=ethN): lwIP transmits there. It receives
// from every pair of that NIC that no app holds, so that flows the device steers to a pair
// nobody acquired (a multiqueue tap hashes flows over all pairs) still reach the stack.
static struct virtio_net_queue *lwq;
static const char *addressing = "off";
static struct dhcp dhcp_state;
#if LWIP_IPV6
static ip6_addr_t static_gw6;       // gw6= from the command line; any: routers from RAs
#endif

static struct rx_pbuf rx_pbufs[RX_PBUFS_MAX];
static struct rx_pbuf *rx_pbuf_free_list;
static uint32_t rx_zero_copy_limit;     // at most this many DMA buffers inside lwIP at once
static struct netif_virtio_stats stats;

static unsigned pending_events;   // NET_EVENT_* collected by the hard IRQ callback

static bool cmdline_value(const char *key, char *out, size_t out_size);

static struct timer_event lwip_timer;
static uint32_t lwip_timer_due_ms;         // sys_now() value the timer is armed for
static bool lwip_timer_armed;

// ---------------------------------------------------------------------------------------
// lwIP's system interface (NO_SYS): time and assertions.

u32_t sys_now(void) {
    return (u32_t)(tsc_to_us(tsc_read()) / 1000);
}

// An lwIP assertion is a panic. Each guards the statement after it: lwIP goes on to do what
// the assertion forbids (tcp_err() on a LISTEN pcb writes past lwIP's smaller listen struct,
// which patch 0005 removed from modlwip.c), so surviving one trades a clear stop for silent
// memory corruption. The report names lwIP's file and line, and QEMU exits non-zero.
void manticore_lwip_assert(const char *message, const char *file, int line) {
    const char *base = file;    // the file name without the fetched tree's path
    for (const char *c = file; *c != '\0'; c++) {
        if (*c == '/') {
            base = c + 1;
        }
    }
    panic("lwIP: assertion \"%s\" failed at %s:%d", message, base, line);
}

// ---------------------------------------------------------------------------------------
// lwIP timeouts on the kernel timer.

static void lwip_timer_fired(void *context) {
    (void)context;
    softirq_raise(SOFTIRQ_NET_TIMER);   // hard IRQ: only hand over to thread context
}

// Arm the timer event for lwIP's next timeout, or disarm it while the interface is down.
static void lwip_timer_rearm(void) {
    if (!present || !netif_is_up(&en0)) {
        if (lwip_timer_armed) {
            timer_event_cancel(&lwip_timer);
            lwip_timer_armed = false;
        }
        return;
    }
    u32_t sleep_ms = sys_timeouts_sleeptime();
    if (sleep_ms == SYS_TIMEOUTS_SLEEPTIME_INFINITE) {
        if (lwip_timer_armed) {
            timer_event_cancel(&lwip_timer);
            lwip_timer_armed = false;
        }
        return;
    }
    u32_t due = sys_now() + sleep_ms;
    if (lwip_timer_armed && due == lwip_timer_due_ms) {
        return;     // the common case after a socket call: nothing moved
    }
    lwip_timer_due_ms = due;
    lwip_timer_armed = true;
    // One millisecond past the due time, so that sys_now() has surely reached it when the
    // handler runs (sys_now truncates to whole milliseconds).
    uint64_t delta_us = (uint64_t)sleep_ms * 1000 + 1000;
    timer_event_arm(&lwip_timer, tsc_read() + delta_us * tsc_hz / 1000000);
}

static void lwip_timer_softirq(void *context) {
    (void)context;
    lwip_timer_armed = false;
    sys_check_timeouts();
    lwip_timer_rearm();
}

void netif_virtio_lwip_exit(void) {
    lwip_timer_rearm();
}

// ---------------------------------------------------------------------------------------
// Receive.

static void rx_pbuf_free(struct pbuf *p) {
    struct rx_pbuf *rx = (struct rx_pbuf *)p;
    virtio_net_rx_release(rx->q, rx->buffer_id);
    rx->next_free = rx_pbuf_free_list;
    rx_pbuf_free_list = rx;
    stats.rx_pbufs_held--;
}

// Wrap (or copy) one frame into a pbuf; NULL when neither is possible. The frame's buffer
// is either owned by the returned pbuf or already released.
static struct pbuf *frame_to_pbuf(struct virtio_net_queue *q, const struct net_frame *frame) {
    if (stats.rx_pbufs_held < rx_zero_copy_limit && rx_pbuf_free_list != NULL) {
        struct rx_pbuf *rx = rx_pbuf_free_list;
        rx_pbuf_free_list = rx->next_free;
        rx->buffer_id = frame->buffer_id;
        rx->q = q;
        rx->custom.custom_free_function = rx_pbuf_free;
        struct pbuf *p = pbuf_alloced_custom(PBUF_RAW, frame->len, PBUF_REF, &rx->custom,
            frame->data, frame->len);
        if (++stats.rx_pbufs_held > stats.rx_pbufs_held_max) {
            stats.rx_pbufs_held_max = stats.rx_pbufs_held;
        }
        stats.rx_zero_copy++;
        return p;
    }
    // DMA buffers are scarce: copy, give the buffer straight back.
    struct pbuf *p = pbuf_alloc(PBUF_RAW, frame->len, PBUF_POOL);
    if (p != NULL) {
        pbuf_take(p, frame->data, frame->len);
        stats.rx_copied++;
    } else {
        stats.rx_dropped_no_pbuf++;
        virtio_net_rx_count_no_buffer(q);
        LINK_STATS_INC(link.memerr);
        LINK_STATS_INC(link.drop);
    }
    virtio_net_rx_release(q, frame->buffer_id);
    return p;
}

// Feed up to RX_BUDGET frames of queue pair q to lwIP; true if more may be waiting.
static bool rx_process_queue(struct virtio_net_queue *q) {
    struct net_frame frame;
    for (int n = 0; n < RX_BUDGET; n++) {
        if (!virtio_net_rx_poll(q, &frame)) {
            return false;
        }
        LINK_STATS_INC(link.recv);
        struct pbuf *p = frame_to_pbuf(q, &frame);
        if (p == NULL) {
            continue;
        }
        if (!netif_is_up(&en0) || en0.input(p, &en0) != ERR_OK) {
            // Down: nothing listens. Otherwise ethernet_input only fails without consuming
            // the pbuf on internal errors; either way free it (returns the DMA buffer).
            LINK_STATS_INC(link.drop);
            pbuf_free(p);
        }
    }
    return true;
}

// Every pair of lwIP's NIC that no app holds.
static bool rx_process(void) {
    bool more = false;
    struct virtio_net *nic = lwq->nic;
    for (unsigned pair = 0; pair < nic->pairs; pair++) {
        if (!nic_raw_acquired(&nic->queue[pair])) {
            more |= rx_process_queue(&nic->queue[pair]);
        }
    }
    return more;
}

static void update_link(void) {
    if (virtio_net_link_up(lwq->nic)) {
        if (!netif_is_link_up(&en0)) {
            netif_set_link_up(&en0);    // DHCP restarts its exchange on this (dhcp_network_changed)
        }
    } else if (netif_is_link_up(&en0)) {
        netif_set_link_down(&en0);
    }
}

static void net_softirq(void *context) {
    (void)context;
    unsigned events = __atomic_exchange_n(&pending_events, 0, __ATOMIC_ACQ_REL);

    if (events & NET_EVENT_LINK) {
        update_link();
    }
    if (events & NET_EVENT_TX) {
        virtio_net_tx_reclaim(lwq);
    }
    // A pair an app owns (the raw binding) is popped by the app itself: rx_process skips it.
    if (rx_process()) {
        // More frames than the budget: run again before Python resumes (bounded per run).
        __atomic_or_fetch(&pending_events, NET_EVENT_RX, __ATOMIC_RELEASE);
        softirq_raise(SOFTIRQ_NET);
    }
    lwip_timer_rearm();
}

// Hard IRQ context: record and hand over. lwIP is CPU 0's; the one call that can come from
// another CPU is a raw pair given back there (modnic.c: "let lwIP look"), which wakes CPU 0.
static void net_notify(void *context, unsigned events) {
    (void)context;
    __atomic_or_fetch(&pending_events, events, __ATOMIC_RELEASE);
    if (smp_cpu_id() == LWIP_CPU) {
        softirq_raise(SOFTIRQ_NET);
    } else {
        smp_wake(LWIP_CPU);   // its wake handler calls netif_virtio_wake()
    }
}

void netif_virtio_wake(void) {
    if (smp_cpu_id() == LWIP_CPU && __atomic_load_n(&pending_events, __ATOMIC_ACQUIRE) != 0) {
        softirq_raise(SOFTIRQ_NET);
    }
}

// ---------------------------------------------------------------------------------------
// Transmit.

static err_t en0_linkoutput(struct netif *netif, struct pbuf *p) {
    (void)netif;
    if (nic_raw_acquired(lwq)) {
        LINK_STATS_INC(link.drop);      // the NIC belongs to an app; lwIP is off the wire
        return ERR_IF;
    }
    if (p->tot_len > VIRTIO_NET_TX_MTU) {
        LINK_STATS_INC(link.lenerr);
        return ERR_BUF;
    }
    void *buffer = virtio_net_tx_alloc(lwq);
    if (buffer == NULL) {
        // Back-pressure: the device still holds every TX buffer. QEMU completes them within
        // microseconds, so wait a little (tx_alloc reclaims on every call).
        stats.tx_waits++;
        uint64_t deadline = tsc_read() + (uint64_t)TX_WAIT_US * tsc_hz / 1000000;
        while (buffer == NULL && tsc_read() < deadline) {
            cpu_relax();
            buffer = virtio_net_tx_alloc(lwq);
        }
        if (buffer == NULL) {
            stats.tx_dropped_busy++;
            LINK_STATS_INC(link.memerr);
            return ERR_MEM;
        }
    }
    pbuf_copy_partial(p, buffer, p->tot_len, 0);
    if (virtio_net_tx_send(lwq, buffer, p->tot_len) != 0) {
        // The ring is full although a buffer was free: reclaim completions and retry once.
        virtio_net_tx_reclaim(lwq);
        if (virtio_net_tx_send(lwq, buffer, p->tot_len) != 0) {
            virtio_net_tx_free(lwq, buffer);
            stats.tx_dropped_busy++;
            LINK_STATS_INC(link.memerr);
            return ERR_MEM;
        }
    }
    LINK_STATS_INC(link.xmit);
    return ERR_OK;
}

static err_t en0_init(struct netif *netif) {
    netif->name[0] = 'e';
    netif->name[1] = 'n';
    netif->linkoutput = en0_linkoutput;
    netif->output = etharp_output;
    #if LWIP_IPV6
    netif->output_ip6 = ethip6_output;
    #endif
    netif->mtu = ETH_MTU;
    netif->hwaddr_len = ETH_HWADDR_LEN;
    memcpy(netif->hwaddr, lwq->nic->mac, 6);
    netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET | NETIF_FLAG_IGMP
        | NETIF_FLAG_MLD6;
    // No offload negotiated: generate every checksum, and verify every one received (a bad
    // one is dropped and counted in lwip_stats).
    NETIF_SET_CHECKSUM_CTRL(netif, NETIF_CHECKSUM_ENABLE_ALL);
    return ERR_OK;
}

// ---------------------------------------------------------------------------------------
// Setup and addressing.

void netif_virtio_start_lwip(void) {
    // lwIP cannot be initialised twice (its timeout list lives in .bss): once per boot, on
    // LWIP_CPU (manticore_lwip_enter has checked that).
    static bool started;
    if (!started) {
        started = true;
        lwip_init();
    }
}

void netif_virtio_init(void) {
    char name[8] = "eth0";
    if (cmdline_value("lwip", name, sizeof(name))
        && !(name[0] == 'e' && name[1] == 't' && name[2] == 'h' && name[3] >= '0' && name[3] <= '9'
             && name[4] == '\0')) {
        mp_printf(&mp_plat_print, "net: lwip=%s is not a NIC name (ethN); using eth0\n", name);
        name[3] = '0';
        name[4] = '\0';
    }
    lwq = virtio_net_queue((unsigned)(name[3] - '0'), 0);
    if (lwq == NULL) {
        if (virtio_net_count() > 0) {
            mp_printf(&mp_plat_print, "net: lwip=%s: no such NIC; lwIP has no interface\n", name);
        }
        return;
    }
    present = true;
    netif_virtio_start_lwip();

    struct virtio_net_stats driver;
    virtio_net_get_stats(lwq, &driver);
    rx_zero_copy_limit = driver.rx_buffers_total / 2;
    if (rx_zero_copy_limit > RX_PBUFS_MAX) {
        rx_zero_copy_limit = RX_PBUFS_MAX;
    }
    for (int i = RX_PBUFS_MAX - 1; i >= 0; i--) {
        rx_pbufs[i].next_free = rx_pbuf_free_list;
        rx_pbuf_free_list = &rx_pbufs[i];
    }

    netif_add(&en0, IP4_ADDR_ANY4, IP4_ADDR_ANY4, IP4_ADDR_ANY4, NULL, en0_init, ethernet_input);
    netif_set_hostname(&en0, mod_network_hostname_data);
    netif_set_default(&en0);
    dhcp_set_struct(&en0, &dhcp_state);
    if (virtio_net_link_up(lwq->nic)) {
        netif_set_link_up(&en0);
    }

    timer_event_init(&lwip_timer, lwip_timer_fired, NULL);
    softirq_register(SOFTIRQ_NET, net_softirq, NULL, "net");
    softirq_register(SOFTIRQ_NET_TIMER, lwip_timer_softirq, NULL, "lwip-timers");
    for (unsigned pair = 0; pair < lwq->nic->pairs; pair++) {
        virtio_net_set_notify(&lwq->nic->queue[pair], net_notify, NULL);
    }
}

struct virtio_net_queue *netif_virtio_queue(void) {
    return lwq;
}

struct netif *netif_virtio(void) {
    return present ? &en0 : NULL;
}

const char *netif_virtio_addressing(void) {
    return addressing;
}

// The value of `key=` among the command line's words, copied into out; false if absent.
static bool cmdline_value(const char *key, char *out, size_t out_size) {
    size_t key_len = strlen(key);
    const char *p = boot_info.cmdline;
    while (*p != '\0') {
        while (*p == ' ') {
            p++;
        }
        const char *word = p;
        while (*p != '\0' && *p != ' ') {
            p++;
        }
        size_t len = (size_t)(p - word);
        if (len > key_len && strncmp(word, key, key_len) == 0 && word[key_len] == '=') {
            size_t value_len = len - key_len - 1;
            if (value_len >= out_size) {
                return false;
            }
            memcpy(out, word + key_len + 1, value_len);
            out[value_len] = '\0';
            return true;
        }
    }
    return false;
}

static bool cmdline_addr(const char *key, ip4_addr_t *addr) {
    char text[20];
    return cmdline_value(key, text, sizeof(text)) && ip4addr_aton(text, addr);
}

// ip=A.B.C.D or ip=A.B.C.D/len; netmask= (default /24 or the length), gw=, dns=.
static bool static_config(ip4_addr_t *ip, ip4_addr_t *mask, ip4_addr_t *gw, ip_addr_t *dns) {
    char text[24];
    if (!cmdline_value("ip", text, sizeof(text))) {
        return false;
    }
    unsigned prefix = 24;
    char *slash = strchr(text, '/');
    if (slash != NULL) {
        *slash = '\0';
        prefix = 0;
        for (const char *d = slash + 1; *d >= '0' && *d <= '9'; d++) {
            prefix = prefix * 10 + (unsigned)(*d - '0');
        }
        if (prefix > 32) {
            prefix = 24;
        }
    }
    if (!ip4addr_aton(text, ip)) {
        mp_printf(&mp_plat_print, "net: ignoring ip=%s (not an IPv4 address); using DHCP\n", text);
        return false;
    }
    ip4_addr_set_u32(mask, lwip_htonl(prefix == 0 ? 0 : 0xffffffffu << (32 - prefix)));
    cmdline_addr("netmask", mask);
    if (!cmdline_addr("gw", gw)) {
        ip4_addr_set_zero(gw);
    }
    ip4_addr_t dns4;
    if (cmdline_addr("dns", &dns4)) {
        ip_addr_copy_from_ip4(*dns, dns4);
    } else {
        ip_addr_set_zero(dns);
    }
    return true;
}

#if LWIP_IPV6
// An IPv6 address in text, all of it: lwIP's ip6addr_aton stops at the first character that
// is not a hex digit, colon or dot and takes what came before ("fd77::zz" would be fd77::).
static bool parse_ip6(const char *text, ip6_addr_t *out) {
    for (const char *c = text; *c != '\0'; c++) {
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f') || (*c >= 'A' && *c <= 'F')
              || *c == ':' || *c == '.')) {
            return false;
        }
    }
    return text[0] != '\0' && ip6addr_aton(text, out);
}

// ip6=ADDR[/64] (a static address beside the link-local and SLAAC ones; lwIP gives a static
// address an implied /64 on-link prefix, RFC 5942), gw6=ADDR (next hop for everything off
// that prefix, ahead of routers learnt from advertisements), dns6=ADDR (DNS server 1, or 0
// when static IPv4 addressing left that empty).
static void static_config6(void) {
    char text[64];
    ip6_addr_set_any(&static_gw6);
    if (cmdline_value("ip6", text, sizeof(text))) {
        char *slash = strchr(text, '/');
        if (slash != NULL) {
            *slash = '\0';
            if (strcmp(slash + 1, "64") != 0) {
                mp_printf(&mp_plat_print, "net: ip6=%s/%s: only /64 prefixes are supported; using /64\n",
                    text, slash + 1);
            }
        }
        ip6_addr_t ip6;
        s8_t slot;
        if (!parse_ip6(text, &ip6) || ip6_addr_isany(&ip6) || ip6_addr_ismulticast(&ip6)
            || ip6_addr_islinklocal(&ip6)) {
            mp_printf(&mp_plat_print, "net: ignoring ip6=%s (not a global or unique-local IPv6 address)\n", text);
        } else if (netif_add_ip6_address(&en0, &ip6, &slot) != ERR_OK) {
            mp_printf(&mp_plat_print, "net: ip6=%s: no free address slot\n", text);
        } else {
            // Preferred at once: duplicate address detection (RFC 4862 section 5.4) is for
            // autoconfigured addresses; the operator chose this one.
            netif_ip6_addr_set_valid_life(&en0, slot, IP6_ADDR_LIFE_STATIC);
            netif_ip6_addr_set_pref_life(&en0, slot, IP6_ADDR_LIFE_STATIC);
            netif_ip6_addr_set_state(&en0, slot, IP6_ADDR_PREFERRED);
        }
    }
    if (cmdline_value("gw6", text, sizeof(text))) {
        if (!parse_ip6(text, &static_gw6) || ip6_addr_ismulticast(&static_gw6)) {
            mp_printf(&mp_plat_print, "net: ignoring gw6=%s (not an IPv6 unicast address)\n", text);
            ip6_addr_set_any(&static_gw6);
        }
    }
    if (cmdline_value("dns6", text, sizeof(text))) {
        ip_addr_t dns;
        if (parse_ip6(text, ip_2_ip6(&dns))) {
            IP_SET_TYPE_VAL(dns, IPADDR_TYPE_V6);
            // lwIP asks slot 1 only after slot 0 failed, and nothing while slot 0 is empty
            // (dns.c, dns_gethostbyname_addrtype): slot 0 when neither dns= nor DHCP fills it.
            bool slot0_free = ip_addr_isany_val(*dns_getserver(0)) && strcmp(addressing, "static") == 0;
            dns_setserver(slot0_free ? 0 : 1, &dns);
        } else {
            mp_printf(&mp_plat_print, "net: ignoring dns6=%s (not an IPv6 address)\n", text);
        }
    }
}

// LWIP_HOOK_ND6_GET_GW (lwipopts.h): the static gateway for off-link destinations, if any.
const ip6_addr_t *netif_virtio_ip6_gateway(struct netif *netif, const ip6_addr_t *dest) {
    (void)dest;
    return netif == &en0 && !ip6_addr_isany(&static_gw6) ? &static_gw6 : NULL;
}

static void up6(void) {
    // fe80::/64 from the MAC (RFC 4862 section 5.3, modified EUI-64), then router
    // solicitations; an advertisement with an autonomous prefix adds a SLAAC address.
    netif_create_ip6_linklocal_address(&en0, 1);
    en0.ip6_autoconfig_enabled = 1;     // netif_set_ip6_autoconfig_enabled, without its NULL test
    static_config6();
}

static void down6(void) {
    for (int i = 0; i < LWIP_IPV6_NUM_ADDRESSES; i++) {
        netif_ip6_addr_set_state(&en0, i, IP6_ADDR_INVALID);
    }
    en0.ip6_autoconfig_enabled = 0;     // netif_set_down clears ND6's caches
}
#endif

void netif_virtio_up(void) {
    if (!present || netif_is_up(&en0)) {
        return;
    }
    ip4_addr_t ip, mask, gw;
    ip_addr_t dns;
    update_link();
    if (static_config(&ip, &mask, &gw, &dns)) {
        netif_set_addr(&en0, &ip, &mask, &gw);
        if (!ip_addr_isany(&dns)) {
            dns_setserver(0, &dns);
        }
        netif_set_up(&en0);
        addressing = "static";
    } else {
        netif_set_addr(&en0, IP4_ADDR_ANY4, IP4_ADDR_ANY4, IP4_ADDR_ANY4);
        netif_set_up(&en0);
        dhcp_start(&en0);
        addressing = "dhcp";
    }
    #if LWIP_IPV6
    up6();
    #endif
    // Pick up frames that waited in the ring while the interface was down.
    __atomic_or_fetch(&pending_events, NET_EVENT_RX, __ATOMIC_RELEASE);
    softirq_raise(SOFTIRQ_NET);
    lwip_timer_rearm();
}

void netif_virtio_down(void) {
    if (!present || !netif_is_up(&en0)) {
        return;
    }
    dhcp_release_and_stop(&en0);
    #if LWIP_IPV6
    down6();
    #endif
    netif_set_down(&en0);
    netif_set_addr(&en0, IP4_ADDR_ANY4, IP4_ADDR_ANY4, IP4_ADDR_ANY4);
    addressing = "off";
    lwip_timer_rearm();
}

void netif_virtio_get_stats(struct netif_virtio_stats *out) {
    *out = stats;
}
