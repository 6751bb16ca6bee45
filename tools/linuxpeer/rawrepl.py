# MicroPython's raw REPL protocol over stdin/stdout, for the Linux peer.
#
#     micropython -m rawrepl            (/init does this for mode=raw, on a raw tty)
#
# The unix port's REPL has no raw mode, and the benchmarks drive every target through the
# raw REPL of MicroPython's tools/pyboard.py (enter_raw_repl, exec_raw_no_follow, follow)
# or its twin in manticore_host.qemu.Console. This is that protocol as
# shared/runtime/pyexec.c speaks it on a board, byte for byte:
#
#   friendly mode  a minimal line REPL (echo, `>>> `, expressions printed); Ctrl-A enters
#                  raw mode; Ctrl-D on an empty line, EOF or sys.exit() ends the program
#                  (and /init powers the VM off)
#   Ctrl-A         "raw REPL; CTRL-B to exit\r\n>" (from either mode; resets raw input)
#   raw mode       bytes accumulate until Ctrl-D; Ctrl-C clears them; Ctrl-B goes back to
#                  friendly mode ("\r\n>>> ")
#   Ctrl-D, code   "OK", the code runs in the session's globals, "\x04", the traceback if
#                  it raised, "\x04", ">"
#   Ctrl-D, empty  soft reset: "OK\r\nMPY: soft reboot\r\n", then this process exits with
#                  SOFT_RESET (100) and /init starts a new one with --resumed, which
#                  prints "raw REPL; CTRL-B to exit\r\n>": a fresh interpreter (heap,
#                  qstr pool, modules, mounts, working directory), as a board's soft
#                  reset gives. Cleaning up inside one process is not enough: qstrs
#                  interned by earlier scripts stay, and every later lookup walks them
#                  (perf_bench's core_str ran twice as slow after the rest of the suite).
#   \x05A\x01      raw-paste request: "R\x00" (understood, not supported); pyboard.py then
#                  sends the code the plain raw way
#
# As on a board, the globals live from one soft reset to the next (pyboard.py users define
# something in one exec and use it in the next; run-perfbench soft-resets per script), and
# SystemExit inside raw-mode code is a soft reset. Run without /init's restart loop (on the
# host, say), a soft reset ends the program with status 100. A traceback has one line more than a
# board's (this module's execute(), above the code's "<stdin>" frames).
#
# The protocol's line ends are written as \r\n here; the tty is raw (no output processing),
# so print() output keeps its bare \n, which pyboard.py and Console both accept. Input is
# read a byte at a time from sys.stdin.buffer (unbuffered on the unix port); nothing
# interrupts running code (the tty has no ISIG), which the benchmarks never need.
import sys

CTRL_A, CTRL_B, CTRL_C, CTRL_D, CTRL_E = 1, 2, 3, 4, 5
BANNER = b"raw REPL; CTRL-B to exit\r\n"
READY = b"rawrepl: ready\r\n"
SOFT_RESET = 100        # exit status asking /init for a fresh interpreter
RESUMED = "--resumed"   # argument of the fresh interpreter: start in raw mode


class RawRepl:
    def __init__(self, stdin=None, stdout=None):
        self.stdin = stdin or sys.stdin.buffer
        self.stdout = stdout or sys.stdout.buffer
        self.globals = self.fresh_globals()

    # -- I/O --

    def write(self, data):
        self.stdout.write(data)
        flush = getattr(self.stdout, "flush", None)
        if flush:
            flush()

    def read_byte(self):
        b = self.stdin.read(1)
        if not b:
            raise EOFError
        return b[0]

    # -- state --

    @staticmethod
    def fresh_globals():
        return {"__name__": "__main__"}

    class SoftReset(Exception):
        """Raised to end this interpreter for a soft reset."""

    # -- the modes --

    def run(self, resumed=False):
        """Serve until EOF or an exit from friendly mode; the exit status (SOFT_RESET when
        a soft reset asks for a fresh interpreter).  resumed: started by /init after a
        soft reset, so go straight back to raw mode."""
        try:
            if resumed:
                status = None
            else:
                self.write(READY)
                status = self.friendly(prompt=True)
            while status is None:
                self.raw()
                status = self.friendly(prompt=False)
        except EOFError:
            status = 0
        except self.SoftReset:
            status = SOFT_RESET
        return status

    def friendly(self, prompt):
        """The line REPL until Ctrl-A (None: go raw) or an exit (its status)."""
        line = bytearray()
        if prompt:
            self.write(b">>> ")
        while True:
            c = self.read_byte()
            if c == CTRL_A:
                self.write(b"\r\n")
                return None
            if c == CTRL_D and not line:
                self.write(b"\r\n")
                return 0
            if c == CTRL_C:
                line = bytearray()
                self.write(b"\r\n>>> ")
            elif c in (8, 127):
                if line:
                    line.pop()
                    self.write(b"\x08 \x08")
            elif c in (13, 10):
                self.write(b"\r\n")
                status = self.run_line(bytes(line))
                if status is not None:
                    return status
                line = bytearray()
                self.write(b">>> ")
            elif c >= 32 or c == 9:
                line.append(c)
                self.write(bytes((c,)))

    def run_line(self, src):
        if not src.strip():
            return None
        try:
            exec(compile(src.decode(), "<stdin>", "single"), self.globals)
        except SystemExit as e:
            return e.args[0] if e.args and isinstance(e.args[0], int) else 0
        except BaseException as e:
            sys.print_exception(e, sys.stdout)
        return None

    def raw(self):
        """Raw mode until Ctrl-B."""
        self.write(BANNER)
        while True:
            self.write(b">")
            code = self.raw_input()
            if code is None:                # Ctrl-B
                self.write(b"\r\n>>> ")
                return
            if code is CTRL_A:              # reset raw input
                self.write(BANNER)
                continue
            self.write(b"OK")
            if not code:
                self.write(b"\r\nMPY: soft reboot\r\n")
                raise self.SoftReset
            if self.execute(code):          # SystemExit: a soft reset, as on a board
                self.write(b"MPY: soft reboot\r\n")
                raise self.SoftReset

    def raw_input(self):
        """The code up to Ctrl-D (bytes), None for Ctrl-B, CTRL_A for a reset."""
        buf = bytearray()
        while True:
            c = self.read_byte()
            if c == CTRL_A:
                if len(buf) == 2 and buf[0] == CTRL_E:
                    # raw-paste request ("\x05A\x01"): understood, not supported; the
                    # host then sends the code the plain raw way (no prompt in between)
                    self.write(b"R\x00")
                    buf = bytearray()
                    continue
                return CTRL_A
            if c == CTRL_B:
                return None
            if c == CTRL_C:
                buf = bytearray()
            elif c == CTRL_D:
                return bytes(buf)
            else:
                buf.append(c)

    def execute(self, code):
        """Run raw-mode code: its output, \\x04, the traceback, \\x04.  True if it raised
        SystemExit."""
        exited = False
        try:
            exec(compile(code.decode(), "<stdin>", "exec"), self.globals)
            self.write(b"\x04")
        except SystemExit:
            self.write(b"\x04")
            exited = True
        except BaseException as e:
            self.write(b"\x04")
            sys.print_exception(e, sys.stdout)
        self.write(b"\x04")
        return exited


def main():
    return RawRepl().run(resumed=RESUMED in sys.argv)


if __name__ == "__main__":
    sys.exit(main())
