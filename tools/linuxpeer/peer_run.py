# Run one app on the Linux peer as manticore's kernel would: `asyncio.run(apps.NAME.main())`.
#
#     micropython -m peer_run echod          (/init does this for app=echod)
#
# The app's `socket` is peersocket (lwIP-style tuple addresses on the unix port), installed
# in sys.modules before the app is imported, so that the app runs unchanged. A failure
# prints the traceback and exits with status 1; an unknown app lists the frozen ones and
# exits with 127 (as manticore does).
import sys

APPS = ("echod",)


def install_socket():
    """Make `import socket` give peersocket from now on (asyncio's stream server too)."""
    import peersocket

    sys.modules["socket"] = peersocket


def run(name):
    install_socket()
    import asyncio

    try:
        module = __import__("apps." + name, None, None, ("main",))
    except ImportError as e:
        print("peer_run: no app %r (%r); apps: %s" % (name, e, ", ".join(APPS)))
        return 127
    try:
        result = module.main()
        if hasattr(result, "send"):  # a coroutine: main() was async
            asyncio.run(result)
    except KeyboardInterrupt:
        print("peer_run: %s interrupted" % name)
        return 130
    except SystemExit as e:
        code = e.args[0] if e.args else 0
        return code if isinstance(code, int) else 1
    except BaseException as e:
        print("peer_run: app %s failed:" % name)
        sys.print_exception(e)
        return 1
    return 0


def main(argv):
    if len(argv) != 1:
        print("usage: micropython -m peer_run APP")
        return 2
    return run(argv[0])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
