# What is frozen into the host's MicroPython for the multi_net suite (the unix port with
# mbedTLS): asyncio, and the port's own ssl module over tls, as in manticore's image
# (MicroPython keeps ssl.py in micropython-lib, which Debian's source package lacks).
include("$(MPY_DIR)/extmod/asyncio")
module("ssl.py", base_path="../../frozen")
