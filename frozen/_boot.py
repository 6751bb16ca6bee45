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


def start_app(name):
    try:
        module = __import__("apps." + name, None, None, ("main",))
    except ImportError as error:
        print("boot: cannot start app '%s': %s" % (name, error))
        return
    module.main()


_options = parse_cmdline(machine.cmdline())
if _options.get("app"):
    start_app(_options["app"])
del _options
