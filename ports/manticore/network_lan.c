// network.LAN: the virtio-net NIC under lwIP, with MicroPython's network conventions
// (docs/library/network.LAN.rst; the same shape as ports/mimxrt/network_lan.c).
//
//   >>> import network
//   >>> nic = network.LAN()          # the one virtio-net NIC; OSError(ENODEV) without one
//   >>> nic.active(True)             # DHCP, or ip=/netmask=/gw=/dns= from the command line
//   >>> nic.isconnected(), nic.ipconfig('addr4'), nic.ifconfig(), nic.config('mac')
//   >>> nic.stats()                  # driver, glue and lwIP counters (drops included)
#include <string.h>

#include "py/runtime.h"
#include "py/mperrno.h"
#include "extmod/modnetwork.h"
#include "shared/netutils/netutils.h"

#include "lwip/dhcp.h"
#include "lwip/netif.h"
#include "lwip/stats.h"

#include "drivers/virtio/virtio_net.h"
#include "ports/manticore/netif_virtio.h"

// status() values, as ports/mimxrt's LAN.
enum {
    LAN_STATUS_LINK_DOWN = 0,   // no carrier
    LAN_STATUS_LINK_UP = 1,     // carrier, interface inactive
    LAN_STATUS_NO_IP = 2,       // active, waiting for an address (DHCP)
    LAN_STATUS_GOT_IP = 3,      // active with an address
};

typedef struct _network_lan_obj_t {
    mp_obj_base_t base;
} network_lan_obj_t;

static const network_lan_obj_t network_lan_en0 = { { &network_lan_type } };

static struct netif *lan_netif(void) {
    struct netif *netif = netif_virtio();
    if (netif == NULL) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("no virtio-net NIC"));
    }
    return netif;
}

static int lan_status(struct netif *netif) {
    if (!netif_is_link_up(netif)) {
        return LAN_STATUS_LINK_DOWN;
    }
    if (!netif_is_up(netif)) {
        return LAN_STATUS_LINK_UP;
    }
    return ip4_addr_isany_val(*netif_ip4_addr(netif)) ? LAN_STATUS_NO_IP : LAN_STATUS_GOT_IP;
}

static void network_lan_print(const mp_print_t *print, mp_obj_t self_in, mp_print_kind_t kind) {
    (void)self_in;
    (void)kind;
    struct netif *netif = lan_netif();
    const uint8_t *ip = (const uint8_t *)netif_ip4_addr(netif);
    mp_printf(print, "<LAN en0 status=%d ip=%u.%u.%u.%u %s>", lan_status(netif),
        ip[0], ip[1], ip[2], ip[3], netif_virtio_addressing());
}

static mp_obj_t network_lan_make_new(const mp_obj_type_t *type, size_t n_args, size_t n_kw, const mp_obj_t *args) {
    (void)type;
    mp_arg_check_num(n_args, n_kw, 0, 1, false);
    // lwIP is CPU 0's. Other CPUs' `network` is a stand-in that says so; this catches code
    // that went around it (a LAN object made here is the only way to its methods).
    manticore_lwip_enter();
    if (n_args == 1 && mp_obj_get_int(args[0]) != 0) {
        mp_raise_ValueError(MP_ERROR_TEXT("only LAN(0) exists"));
    }
    if (netif_virtio() == NULL) {
        mp_raise_OSError(MP_ENODEV);
    }
    mod_network_register_nic(MP_OBJ_FROM_PTR(&network_lan_en0));
    return MP_OBJ_FROM_PTR(&network_lan_en0);
}

static mp_obj_t network_lan_active(size_t n_args, const mp_obj_t *args) {
    struct netif *netif = lan_netif();
    if (n_args == 1) {
        return mp_obj_new_bool(netif_is_up(netif));
    }
    if (mp_obj_is_true(args[1])) {
        netif_virtio_up();
    } else {
        netif_virtio_down();
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(network_lan_active_obj, 1, 2, network_lan_active);

static mp_obj_t network_lan_isconnected(mp_obj_t self_in) {
    (void)self_in;
    return mp_obj_new_bool(lan_status(lan_netif()) == LAN_STATUS_GOT_IP);
}
static MP_DEFINE_CONST_FUN_OBJ_1(network_lan_isconnected_obj, network_lan_isconnected);

static mp_obj_t network_lan_status(size_t n_args, const mp_obj_t *args) {
    if (n_args == 1) {
        return MP_OBJ_NEW_SMALL_INT(lan_status(lan_netif()));
    }
    mp_raise_ValueError(MP_ERROR_TEXT("unknown status param"));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(network_lan_status_obj, 1, 2, network_lan_status);

static mp_obj_t network_lan_ifconfig(size_t n_args, const mp_obj_t *args) {
    mp_obj_t ret = mod_network_nic_ifconfig(lan_netif(), n_args - 1, args + 1);
    netif_virtio_lwip_exit();   // DHCP may have (re)started: lwIP's timers moved
    return ret;
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(network_lan_ifconfig_obj, 1, 2, network_lan_ifconfig);

static mp_obj_t network_lan_ipconfig(size_t n_args, const mp_obj_t *args, mp_map_t *kwargs) {
    mp_obj_t ret = mod_network_nic_ipconfig(lan_netif(), n_args - 1, args + 1, kwargs);
    netif_virtio_lwip_exit();
    return ret;
}
static MP_DEFINE_CONST_FUN_OBJ_KW(network_lan_ipconfig_obj, 1, network_lan_ipconfig);

static mp_obj_t network_lan_config(size_t n_args, const mp_obj_t *args, mp_map_t *kwargs) {
    struct netif *netif = lan_netif();
    if (kwargs->used == 0) {
        if (n_args != 2) {
            mp_raise_TypeError(MP_ERROR_TEXT("must query one param"));
        }
        switch (mp_obj_str_get_qstr(args[1])) {
            case MP_QSTR_mac:
                return mp_obj_new_bytes(netif->hwaddr, netif->hwaddr_len);
            case MP_QSTR_mtu:
                return MP_OBJ_NEW_SMALL_INT(netif->mtu);
            case MP_QSTR_hostname:
                return mod_network_hostname(0, NULL);
            default:
                mp_raise_ValueError(MP_ERROR_TEXT("unknown config param"));
        }
    }
    if (n_args != 1) {
        mp_raise_TypeError(MP_ERROR_TEXT("can't specify pos and kw args"));
    }
    for (size_t i = 0; i < kwargs->alloc; ++i) {
        if (!MP_MAP_SLOT_IS_FILLED(kwargs, i)) {
            continue;
        }
        mp_map_elem_t *e = &kwargs->table[i];
        switch (mp_obj_str_get_qstr(e->key)) {
            case MP_QSTR_hostname:
                // network.hostname() holds the name; DHCP sends it from the next exchange.
                mod_network_hostname(1, &e->value);
                break;
            default:
                mp_raise_ValueError(MP_ERROR_TEXT("unknown config param"));
        }
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_KW(network_lan_config_obj, 1, network_lan_config);

// ---------------------------------------------------------------------------------------
// stats(): every counter that explains where a frame went.

static void store(mp_obj_t dict, const char *key, uint64_t value) {
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(qstr_from_str(key)), mp_obj_new_int_from_ull(value));
}

#if LWIP_STATS
static mp_obj_t proto_stats(const struct stats_proto *proto) {
    mp_obj_t dict = mp_obj_new_dict(12);
    store(dict, "xmit", proto->xmit);
    store(dict, "recv", proto->recv);
    store(dict, "fw", proto->fw);
    store(dict, "drop", proto->drop);
    store(dict, "chkerr", proto->chkerr);
    store(dict, "lenerr", proto->lenerr);
    store(dict, "memerr", proto->memerr);
    store(dict, "rterr", proto->rterr);
    store(dict, "proterr", proto->proterr);
    store(dict, "opterr", proto->opterr);
    store(dict, "err", proto->err);
    store(dict, "cachehit", proto->cachehit);
    return dict;
}

#if LWIP_IPV6
static mp_obj_t mld_stats(const struct stats_igmp *mld) {
    mp_obj_t dict = mp_obj_new_dict(8);
    store(dict, "xmit", mld->xmit);
    store(dict, "recv", mld->recv);
    store(dict, "drop", mld->drop);
    store(dict, "chkerr", mld->chkerr);
    store(dict, "lenerr", mld->lenerr);
    store(dict, "memerr", mld->memerr);
    store(dict, "proterr", mld->proterr);
    store(dict, "tx_join", mld->tx_join);
    return dict;
}
#endif
#endif

static mp_obj_t network_lan_stats(mp_obj_t self_in) {
    (void)self_in;
    lan_netif();
    struct virtio_net_stats driver;
    virtio_net_get_stats(netif_virtio_queue(), &driver);
    struct netif_virtio_stats glue;
    netif_virtio_get_stats(&glue);

    mp_obj_t dict = mp_obj_new_dict(24);
    store(dict, "rx_frames", driver.rx_frames);
    store(dict, "rx_bytes", driver.rx_bytes);
    store(dict, "tx_frames", driver.tx_frames);
    store(dict, "tx_bytes", driver.tx_bytes);
    store(dict, "rx_dropped_malformed", driver.rx_dropped_malformed);
    store(dict, "rx_dropped_no_buffer", driver.rx_dropped_no_buffer);
    store(dict, "tx_busy", driver.tx_busy);
    store(dict, "link_changes", driver.link_changes);
    store(dict, "rx_buffers_total", driver.rx_buffers_total);
    store(dict, "rx_buffers_free_in_ring", driver.rx_buffers_free_in_ring);
    store(dict, "tx_buffers_free", driver.tx_buffers_free);
    store(dict, "rx_zero_copy", glue.rx_zero_copy);
    store(dict, "rx_copied", glue.rx_copied);
    store(dict, "rx_dropped_no_pbuf", glue.rx_dropped_no_pbuf);
    store(dict, "rx_pbufs_held", glue.rx_pbufs_held);
    store(dict, "rx_pbufs_held_max", glue.rx_pbufs_held_max);
    store(dict, "tx_waits", glue.tx_waits);
    store(dict, "tx_dropped_busy", glue.tx_dropped_busy);
    #if LWIP_STATS
    mp_obj_t lwip = mp_obj_new_dict(12);
    mp_obj_dict_store(lwip, MP_OBJ_NEW_QSTR(MP_QSTR_link), proto_stats(&lwip_stats.link));
    mp_obj_dict_store(lwip, MP_OBJ_NEW_QSTR(qstr_from_str("etharp")), proto_stats(&lwip_stats.etharp));
    mp_obj_dict_store(lwip, MP_OBJ_NEW_QSTR(qstr_from_str("ip_frag")), proto_stats(&lwip_stats.ip_frag));
    mp_obj_dict_store(lwip, MP_OBJ_NEW_QSTR(qstr_from_str("ip")), proto_stats(&lwip_stats.ip));
    mp_obj_dict_store(lwip, MP_OBJ_NEW_QSTR(qstr_from_str("icmp")), proto_stats(&lwip_stats.icmp));
    mp_obj_dict_store(lwip, MP_OBJ_NEW_QSTR(qstr_from_str("udp")), proto_stats(&lwip_stats.udp));
    mp_obj_dict_store(lwip, MP_OBJ_NEW_QSTR(qstr_from_str("tcp")), proto_stats(&lwip_stats.tcp));
    #if LWIP_IPV6
    // IPv6: a malformed extension header is ip6.drop (+ lenerr/proterr, and an ICMPv6
    // parameter problem where RFC 8200 section 4.2 asks for one); a neighbour discovery
    // message that fails RFC 4861's checks (hop limit 255, lengths, options) is nd6.drop.
    mp_obj_dict_store(lwip, MP_OBJ_NEW_QSTR(qstr_from_str("ip6")), proto_stats(&lwip_stats.ip6));
    mp_obj_dict_store(lwip, MP_OBJ_NEW_QSTR(qstr_from_str("ip6_frag")), proto_stats(&lwip_stats.ip6_frag));
    mp_obj_dict_store(lwip, MP_OBJ_NEW_QSTR(qstr_from_str("icmp6")), proto_stats(&lwip_stats.icmp6));
    mp_obj_dict_store(lwip, MP_OBJ_NEW_QSTR(qstr_from_str("nd6")), proto_stats(&lwip_stats.nd6));
    mp_obj_dict_store(lwip, MP_OBJ_NEW_QSTR(qstr_from_str("mld6")), mld_stats(&lwip_stats.mld6));
    #endif
    mp_obj_dict_store(dict, MP_OBJ_NEW_QSTR(qstr_from_str("lwip")), lwip);
    #endif
    return dict;
}
static MP_DEFINE_CONST_FUN_OBJ_1(network_lan_stats_obj, network_lan_stats);

static const mp_rom_map_elem_t network_lan_locals_dict_table[] = {
    { MP_ROM_QSTR(MP_QSTR_active), MP_ROM_PTR(&network_lan_active_obj) },
    { MP_ROM_QSTR(MP_QSTR_isconnected), MP_ROM_PTR(&network_lan_isconnected_obj) },
    { MP_ROM_QSTR(MP_QSTR_ifconfig), MP_ROM_PTR(&network_lan_ifconfig_obj) },
    { MP_ROM_QSTR(MP_QSTR_ipconfig), MP_ROM_PTR(&network_lan_ipconfig_obj) },
    { MP_ROM_QSTR(MP_QSTR_status), MP_ROM_PTR(&network_lan_status_obj) },
    { MP_ROM_QSTR(MP_QSTR_config), MP_ROM_PTR(&network_lan_config_obj) },
    { MP_ROM_QSTR(MP_QSTR_stats), MP_ROM_PTR(&network_lan_stats_obj) },
};
static MP_DEFINE_CONST_DICT(network_lan_locals_dict, network_lan_locals_dict_table);

MP_DEFINE_CONST_OBJ_TYPE(
    network_lan_type,
    MP_QSTR_LAN,
    MP_TYPE_FLAG_NONE,
    make_new, network_lan_make_new,
    print, network_lan_print,
    locals_dict, &network_lan_locals_dict
    );
