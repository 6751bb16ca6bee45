# Bringing up the network before the apps start: network.LAN over virtio-net, configured by
# DHCP or by the command line's static ip=/netmask=/gw=/dns= (read by the port's LAN object).


def start(timeout_ms=10000):
    """Activate network.LAN when the machine has a NIC and wait (at most timeout_ms) for an
    address, so that apps start on a configured interface. Returns the LAN object or None."""
    try:
        import network

        nic = network.LAN()
    except (ImportError, OSError):
        return None  # no NIC (or no network support): the apps run without
    import time

    nic.active(True)
    start_ms = time.ticks_ms()
    while not nic.isconnected() and time.ticks_diff(time.ticks_ms(), start_ms) < timeout_ms:
        time.sleep_ms(5)
    addr, mask = nic.ipconfig("addr4")
    how = "dhcp" if nic.ipconfig("dhcp4") else "static"
    if nic.isconnected():
        print("net: en0 %s/%s gw %s (%s)" % (addr, mask, nic.ipconfig("gw4"), how))
    else:
        print("net: en0 has no address after %d ms (%s); the apps start anyway" % (timeout_ms, how))
    return nic
