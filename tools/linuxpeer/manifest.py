# What is frozen into the Linux peer's MicroPython (the unix port, linked statically), with
# the same compile options as manticore's frozen/manifest.py. Paths are relative to this
# file; the peer freezes the one benchmarked app, not the others.

# MicroPython's asyncio (the C part, _asyncio, is built in).
include("$(MPY_DIR)/extmod/asyncio")

# The app, unchanged, as apps.echod; with line numbers, as on manticore.
module("apps/__init__.py", base_path="../..")
module("apps/echod.py", base_path="../..")

# ssl over the built-in tls module (mbedTLS), manticore's own frozen/ssl.py: the TLS
# benchmark's server code runs unchanged on both.
module("ssl.py", base_path="../../frozen")

# The shims that let it and the benchmarks run on Linux: kernel.syscalls (readable,
# writable), the lwIP-style socket, the app runner and the raw REPL.
package("kernel")
module("peersocket.py")
module("peer_run.py")
module("rawrepl.py")
