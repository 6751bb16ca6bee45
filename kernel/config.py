# The kernel command line and the boot facts that get_config() answers from.
import gc
import os
import sys

options = {}  # the command line: {"app": "echod", "ip": "10.0.2.15", "quiet": ""}


def parse_cmdline(text):
    """Split "app=echod ip=10.0.2.15 quiet" into {"app": "echod", "ip": ..., "quiet": ""}."""
    result = {}
    for word in text.split():
        key, _, value = word.partition("=")
        result[key] = value
    return result


def load(text=None):
    global options
    if text is None:
        try:
            import machine
            text = machine.cmdline()
        except (ImportError, AttributeError):
            text = ""
    options = parse_cmdline(text)
    options["cmdline"] = text
    return options


def _meminfo():
    try:
        import _kernel
        return _kernel.meminfo()
    except ImportError:
        return {}


def _cpus():
    try:
        return os.cpu_count()
    except AttributeError:
        return 1


# Boot facts: computed when asked (heap figures change).
FACTS = {
    "memory": lambda: _meminfo().get("ram"),
    "heap": lambda: _meminfo().get("heap"),
    "dma": lambda: _meminfo().get("dma"),
    "heap_free": gc.mem_free,
    "heap_alloc": gc.mem_alloc,
    "cpus": _cpus,
    "platform": lambda: sys.platform,
}


def get(key, default=None):
    """A command line option (a str: "" for a bare word), else a boot fact, else default."""
    value = options.get(key)
    if value is not None:
        return value
    fact = FACTS.get(key)
    if fact is not None:
        return fact()
    return default


def keys():
    return sorted(set(options) | set(FACTS))
