// The REPL over TCP (kernel command line netrepl=PORT; the _netrepl module), and the hooks
// through which os.dupterm streams share the REPL with the serial console.
//
// The session lives in C, on lwIP's raw TCP API with static state, not in Python objects:
// a soft reset (Ctrl-D, which mpremote sends before every command) frees every Python
// object, and the client must stay connected through it. One session at a time: a second
// client is told so and closed. There is no authentication (README, "The REPL over TCP").
//
// lwIP belongs to CPU 0 (docs/multicore.md): the session follows the REPL only while the
// REPL is CPU 0's. Its callbacks run in thread context, inside lwIP's input processing.
#include <string.h>

#include "py/runtime.h"
#include "py/mphal.h"
#include "py/mperrno.h"
#include "extmod/misc.h"
#include "shared/runtime/interrupt_char.h"
#include "shared/runtime/pyexec.h"
#include "lwip/tcp.h"

#include "arch/x86_64/smp.h"
#include "ports/manticore/netif_virtio.h"

#define NETREPL_RX_SIZE (4096)

static const char busy_msg[] = "netrepl: another session is connected; try again later\r\n";

static struct {
    struct tcp_pcb *listener;
    struct tcp_pcb *session;
    uint16_t port;
    uint8_t rx[NETREPL_RX_SIZE];
    uint32_t rx_head, rx_tail;     // free-running; used = head - tail
    // Counters for _netrepl.stats().
    uint32_t accepted, refused, ended, interrupts;
    uint64_t rx_bytes, tx_bytes, tx_dropped;
    // An os.dupterm stream (WebREPL) said it has input: the REPL's wait for a key (the
    // kernel's event loop polls stdin) ends, and the stream is read until it runs dry.
    volatile bool dupterm_ready;
} netrepl;

// A client that leaves in the raw REPL (mpremote does) would leave the serial console's user
// there too: queue the Ctrl-B that takes the REPL back to the friendly one.
static void session_gone(void) {
    netrepl.session = NULL;
    netrepl.ended++;
    netrepl.rx_tail = netrepl.rx_head;
    if (pyexec_mode_kind == PYEXEC_MODE_RAW_REPL) {
        netrepl.rx[netrepl.rx_head++ % NETREPL_RX_SIZE] = 2;   // Ctrl-B
    }
}

static void session_end(void) {
    struct tcp_pcb *pcb = netrepl.session;
    if (pcb == NULL) {
        return;
    }
    session_gone();
    tcp_arg(pcb, NULL);
    tcp_recv(pcb, NULL);
    tcp_err(pcb, NULL);
    if (tcp_close(pcb) != ERR_OK) {
        tcp_abort(pcb);
    }
}

static void session_err(void *arg, err_t err) {
    (void)arg;
    (void)err;
    // lwIP has freed the PCB already (reset by the peer, or aborted).
    session_gone();
}

static err_t session_recv(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err) {
    (void)arg;
    if (p == NULL) {            // the client closed: end the session, keep listening
        session_end();
        return ERR_OK;
    }
    if (pcb != netrepl.session) {
        pbuf_free(p);
        return ERR_OK;
    }
    if (NETREPL_RX_SIZE - (netrepl.rx_head - netrepl.rx_tail) < p->tot_len) {
        return ERR_MEM;         // lwIP keeps it and offers it again once the REPL read some
    }
    for (struct pbuf *q = p; q != NULL; q = q->next) {
        const uint8_t *data = q->payload;
        for (uint16_t i = 0; i < q->len; i++) {
            if (data[i] == mp_interrupt_char) {
                // Ctrl-C while code runs: interrupt it, as on the serial console; pending
                // input before it is discarded as a terminal would.
                netrepl.rx_tail = netrepl.rx_head;
                netrepl.interrupts++;
                mp_sched_keyboard_interrupt();
                continue;
            }
            netrepl.rx[netrepl.rx_head++ % NETREPL_RX_SIZE] = data[i];
        }
    }
    netrepl.rx_bytes += p->tot_len;
    tcp_recved(pcb, p->tot_len);
    pbuf_free(p);
    return ERR_OK;
}

static err_t listener_accept(void *arg, struct tcp_pcb *pcb, err_t err) {
    (void)arg;
    if (err != ERR_OK || pcb == NULL) {
        return ERR_VAL;
    }
    if (netrepl.session != NULL) {
        netrepl.refused++;
        tcp_write(pcb, busy_msg, sizeof(busy_msg) - 1, TCP_WRITE_FLAG_COPY);
        tcp_output(pcb);
        if (tcp_close(pcb) != ERR_OK) {
            tcp_abort(pcb);
            return ERR_ABRT;
        }
        return ERR_OK;
    }
    netrepl.accepted++;
    netrepl.session = pcb;
    netrepl.rx_tail = netrepl.rx_head;
    tcp_nagle_disable(pcb);     // a prompt or an echoed key goes out at once
    tcp_recv(pcb, session_recv);
    tcp_err(pcb, session_err);
    return ERR_OK;
}

// -- the hooks in mphalport.c ------------------------------------------------------------

int manticore_netrepl_rx_chr(void) {
    // The TCP REPL is lwIP's CPU's, as its output is (below): lwIP fills this ring there.
    if (smp_cpu_id() != LWIP_CPU) {
        return -1;
    }
    if (netrepl.rx_head != netrepl.rx_tail) {
        return netrepl.rx[netrepl.rx_tail++ % NETREPL_RX_SIZE];
    }
    #if MICROPY_PY_OS_DUPTERM
    // Clear the flag before reading, not after: the stream's read runs Python code, during
    // which soft IRQs run and its socket callback may set the flag again for new data; a
    // clear after the read would lose that wake-up, and the REPL would wait for input that
    // is already there (a WebREPL file put stalled so). Anything read means more may follow.
    netrepl.dupterm_ready = false;
    int c = mp_os_dupterm_rx_chr();   // -2: a Ctrl-C, already turned into an interrupt
    if (c != -1) {
        netrepl.dupterm_ready = true;
    }
    return c < 0 ? -1 : c;
    #else
    return -1;
    #endif
}

bool manticore_netrepl_rx_pending(void) {
    return netrepl.rx_head != netrepl.rx_tail || netrepl.dupterm_ready;
}

void manticore_netrepl_tx(const char *str, size_t len) {
    #if MICROPY_PY_OS_DUPTERM
    mp_os_dupterm_tx_strn(str, len);
    #endif
    if (netrepl.session == NULL || smp_cpu_id() != LWIP_CPU) {
        return;
    }
    // lwIP's send buffer (TCP_SND_BUF, 64 KiB) holds what the client has not acknowledged
    // yet; output beyond it is dropped and counted rather than waited for, since this runs
    // inside print() and must not block the REPL on a client that stopped reading.
    size_t room = tcp_sndbuf(netrepl.session);
    size_t n = len < room ? len : room;
    if (n > 0 && tcp_write(netrepl.session, str, n, TCP_WRITE_FLAG_COPY) == ERR_OK) {
        netrepl.tx_bytes += n;
        tcp_output(netrepl.session);
    } else {
        n = 0;
    }
    netrepl.tx_dropped += len - n;
    netif_virtio_lwip_exit();
}

// -- _netrepl -----------------------------------------------------------------------------

// _netrepl.start(port): listen for REPL sessions on TCP port (again after a soft reset: a
// no-op while already listening there, so a connected client stays connected).
static mp_obj_t netrepl_start(mp_obj_t port_in) {
    mp_int_t port = mp_obj_get_int(port_in);
    if (port <= 0 || port > 65535) {
        mp_raise_ValueError(MP_ERROR_TEXT("port must be 1-65535"));
    }
    manticore_lwip_enter();
    if (netrepl.listener != NULL && netrepl.port == port) {
        return mp_const_false;
    }
    if (netrepl.listener != NULL) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("netrepl already listens on another port"));
    }
    struct tcp_pcb *pcb = tcp_new();
    if (pcb == NULL) {
        mp_raise_OSError(MP_ENOMEM);
    }
    ip_set_option(pcb, SOF_REUSEADDR);
    err_t err = tcp_bind(pcb, IP_ADDR_ANY, (u16_t)port);
    if (err != ERR_OK) {
        tcp_close(pcb);
        netif_virtio_lwip_exit();
        mp_raise_OSError(MP_EADDRINUSE);
    }
    struct tcp_pcb *listener = tcp_listen_with_backlog(pcb, 2);
    if (listener == NULL) {
        tcp_close(pcb);
        netif_virtio_lwip_exit();
        mp_raise_OSError(MP_ENOMEM);
    }
    tcp_accept(listener, listener_accept);
    netrepl.listener = listener;
    netrepl.port = (uint16_t)port;
    netif_virtio_lwip_exit();
    return mp_const_true;
}
static MP_DEFINE_CONST_FUN_OBJ_1(netrepl_start_obj, netrepl_start);

// _netrepl.stop(): end the session and stop listening.
static mp_obj_t netrepl_stop(void) {
    manticore_lwip_enter();
    session_end();
    if (netrepl.listener != NULL) {
        tcp_close(netrepl.listener);
        netrepl.listener = NULL;
        netrepl.port = 0;
    }
    netif_virtio_lwip_exit();
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_0(netrepl_stop_obj, netrepl_stop);

// _netrepl.dupterm_notify(obj): a dupterm stream's socket has input (its socket callback).
static mp_obj_t netrepl_dupterm_notify(mp_obj_t obj) {
    (void)obj;
    netrepl.dupterm_ready = true;
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(netrepl_dupterm_notify_obj, netrepl_dupterm_notify);

static void put(mp_obj_t dict, qstr key, uint64_t value) {
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(key), mp_obj_new_int_from_ull(value));
}

// _netrepl.stats(): the port (0: off), whether a client is connected, and counters.
static mp_obj_t netrepl_stats(void) {
    mp_obj_t d = mp_obj_new_dict(10);
    put(d, MP_QSTR_port, netrepl.port);
    mp_obj_dict_store(d, MP_OBJ_NEW_QSTR(MP_QSTR_connected), mp_obj_new_bool(netrepl.session != NULL));
    put(d, MP_QSTR_accepted, netrepl.accepted);
    put(d, MP_QSTR_refused, netrepl.refused);
    put(d, MP_QSTR_ended, netrepl.ended);
    put(d, MP_QSTR_interrupts, netrepl.interrupts);
    put(d, MP_QSTR_rx_bytes, netrepl.rx_bytes);
    put(d, MP_QSTR_tx_bytes, netrepl.tx_bytes);
    put(d, MP_QSTR_tx_dropped, netrepl.tx_dropped);
    return d;
}
static MP_DEFINE_CONST_FUN_OBJ_0(netrepl_stats_obj, netrepl_stats);

static const mp_rom_map_elem_t netrepl_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR__netrepl) },
    { MP_ROM_QSTR(MP_QSTR_start), MP_ROM_PTR(&netrepl_start_obj) },
    { MP_ROM_QSTR(MP_QSTR_stop), MP_ROM_PTR(&netrepl_stop_obj) },
    { MP_ROM_QSTR(MP_QSTR_stats), MP_ROM_PTR(&netrepl_stats_obj) },
    { MP_ROM_QSTR(MP_QSTR_dupterm_notify), MP_ROM_PTR(&netrepl_dupterm_notify_obj) },
};
static MP_DEFINE_CONST_DICT(netrepl_globals, netrepl_globals_table);

const mp_obj_module_t mp_module_netrepl = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&netrepl_globals,
};

MP_REGISTER_MODULE(MP_QSTR__netrepl, mp_module_netrepl);
