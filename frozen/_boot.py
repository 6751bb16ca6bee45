# The manticore boot script: frozen into the image and run after every (soft) reset.
#
# It reads the kernel command line (the boot loader's, or QEMU fw_cfg's
# opt/manticore/cmdline) and starts the app it names with app=NAME; without one, or when the
# app returns, the REPL follows.
import machine


def parse_cmdline(text):
    """Split "app=echod ip=10.0.2.15 quiet" into {"app": "echod", "ip": ..., "quiet": ""}."""
    options = {}
    for word in text.split():
        key, _, value = word.partition("=")
        options[key] = value
    return options


def start_network(timeout_ms=10000):
    """Bring up network.LAN when the machine has a NIC: DHCP, or the static ip=/netmask=/
    gw=/dns= of the command line. Waits for an address (at most timeout_ms) so that the app
    starts on a configured interface; returns the LAN object or None."""
    try:
        import network
        nic = network.LAN()
    except (ImportError, OSError):
        return None     # no NIC (or no network support): the app runs without
    import time

    nic.active(True)
    start = time.ticks_ms()
    while not nic.isconnected() and time.ticks_diff(time.ticks_ms(), start) < timeout_ms:
        time.sleep_ms(5)
    addr, mask = nic.ipconfig("addr4")
    how = "dhcp" if nic.ipconfig("dhcp4") else "static"
    if nic.isconnected():
        print("net: en0 %s/%s gw %s (%s)" % (addr, mask, nic.ipconfig("gw4"), how))
    else:
        print("net: en0 has no address after %d ms (%s); the app starts anyway" % (timeout_ms, how))
    return nic


def start_app(name):
    try:
        module = __import__("apps." + name, None, None, ("main",))
    except ImportError as error:
        print("boot: cannot start app '%s': %s" % (name, error))
        return
    module.main()


_options = parse_cmdline(machine.cmdline())
if _options.get("app"):
    start_network()
    start_app(_options["app"])
del _options
