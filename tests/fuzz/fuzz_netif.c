// Fuzz harness: the port's frame-to-pbuf glue (ports/manticore/netif_virtio.c) between the
// virtio-net driver and lwIP, from the unchanged sources (with the driver, the split
// virtqueue and lwIP as the image builds them; kernel services from netif_sim.h). What the
// glue must get right under any sequence: zero-copy pbufs over DMA buffers up to half the
// ring, copies beyond that, buffers returned whenever lwIP or a socket lets go (in any order,
// late), frames arriving in bursts larger than a soft IRQ's budget, link flaps, the
// interface going down and up, an app taking the NIC from lwIP and giving it back, and the
// device holding transmit buffers (back-pressure). en0 is 10.0.2.15/24 with echod's listeners
// on 7777 and a UDP sink on 7778 that holds what it receives until told to let go.
//
// Input: records of an op byte, low 3 bits:
//   0  a frame: u16 little-endian length, the bytes; received (op >> 3) + 1 times, soft IRQs
//      not yet run (a burst waits in the ring)
//   1  soft IRQs run, the device transmits what was queued (unless stalled)
//   2  time: u8 * 4 ms pass, lwIP's timers run
//   3  the link toggles (QMP set_link: a configuration interrupt)
//   4  the UDP sink lets go of what it held
//   5  an app acquires the NIC (raw binding), or releases it (lwIP gets it back)
//   6  the device stops taking transmit buffers, or starts again
//   7  the interface goes down (the glue's netif_virtio_down) and up again
// After every input every receive buffer must be back in the ring (netif_sim.h).
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
    bool stalled = false;
    for (size_t at = 0; at < size;) {
        uint8_t op = data[at++];
        switch (op & 7) {
            case 0: {
                if (size - at < 2) {
                    at = size;
                    break;
                }
                size_t n = data[at] | data[at + 1] << 8;
                at += 2;
                if (n > size - at) {
                    n = size - at;
                }
                if (n > 0 && n <= NET_BUFFER_SIZE - 12) {
                    for (int i = 0; i <= op >> 3; i++) {
                        sim_receive(data + at, n);
                    }
                }
                at += n;
                break;
            }
            case 1:
                softirq_run();
                if (!stalled) {
                    sim_transmit();
                }
                break;
            case 2:
                sim_advance_ms(at < size ? data[at++] * 4u : 0);
                break;
            case 3:
                sim_set_link(!config[6]);
                break;
            case 4:
                sim_release_held();
                break;
            case 5:
                raw_acquired = !raw_acquired;
                if (!raw_acquired) {
                    // As modnic.c's release: the saved consumer hears of everything missed.
                    void (*callback)(void *, unsigned);
                    void *context;
                    virtio_net_get_notify(sim_queue, &callback, &context);
                    callback(context, NET_EVENT_RX | NET_EVENT_TX | NET_EVENT_LINK);
                }
                break;
            case 6:
                stalled = !stalled;
                break;
            case 7:
                netif_virtio_down();
                netif_virtio_up();
                break;
        }
    }
    softirq_run();
    sim_transmit();
    sim_release_held();
    // An app still holding the NIC pops its own frames: give them back as it would.
    if (raw_acquired) {
        struct net_frame f;
        while (virtio_net_rx_poll(sim_queue, &f)) {
            virtio_net_rx_release(sim_queue, f.buffer_id);
        }
    }
    sim_settle();
    return 0;
}
