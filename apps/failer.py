# failer: fails on purpose, in the way fail= names, to show that a failing app is contained
# on its CPU: "exception" (a RuntimeError), "memory" (allocates until MemoryError),
# "recursion" (recurses without bound: RuntimeError from the stack check) or "socket"
# (opens a socket, which only CPU 0 may do).
from kernel import syscalls as sc


def recurse(n):
    return recurse(n + 1) + 1


def main():
    kind = sc.get_config("fail", "exception")
    sc.console_print("failer: failing with '%s' on CPU %d" % (kind, sc.cpu()))
    if kind == "memory":
        hoard = []
        while True:
            hoard.append(bytearray(64 * 1024))
    elif kind == "recursion":
        recurse(0)
    elif kind == "socket":
        import socket
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    raise RuntimeError("failer: deliberate failure")
