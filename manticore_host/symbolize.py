"""Turn addresses in a panic report into function names and source lines.

    Symbolizer("build/kernel.elf").describe(0x10abcd)
        -> "mp_execute_bytecode+0x1c (py/vm.c:123)"

`annotate(text)` appends such a description to the lines of a panic report
that carry code addresses (see arch/x86_64/panic.c and CONTRACT.md):

    RIP    0x000000000010abcd  RSP ...      <- the faulting instruction
      #1 0x0000000000112233                 <- return addresses

`SymbolizingStream` does the same for a live byte stream (`invoke run`):
bytes pass through at once, and after a complete line that matches it
writes one more, indented line with the description.

Uses pyelftools: the symbol table for names, DWARF line tables (when the
ELF has them) for file:line.  A parse is cached per ELF path and mtime.
"""

from __future__ import annotations

import bisect
import os
import re
import sys
from pathlib import Path
from typing import BinaryIO

RIP_LINE = re.compile(r"^RIP\s+(0x[0-9a-f]{16})\b")
FRAME_LINE = re.compile(r"^\s+#(\d+) (0x[0-9a-f]{16})\s*$")


def _repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _short_path(path: str) -> str:
    """A source path as a reader wants it: relative to the repo when it is
    inside, else its last two components (py/vm.c)."""
    path = os.path.normpath(path)
    root = str(_repo_root()) + os.sep
    if path.startswith(root):
        return path[len(root):]
    # The Makefile maps the clone's path to /manticore (-ffile-prefix-map, for
    # reproducible debug info) and the fetched trees to /micropython and /lwip.
    mapped = os.sep + "manticore" + os.sep
    if path.startswith(mapped):
        return path[len(mapped):]
    parts = Path(path).parts
    return str(Path(*parts[-2:])) if len(parts) >= 2 else path


class Symbolizer:
    """Address -> "func+0xoff (file.c:line)" for one ELF file."""

    def __init__(self, elf_path: str | os.PathLike):
        self.path = Path(elf_path)
        self._syms: list[tuple[int, int, str]] | None = None
        self._sym_addrs: list[int] = []
        self._rows: list[tuple[int, str | None, int]] | None = None
        self._row_addrs: list[int] = []

    # -- parsing (lazy) --

    def _load(self) -> None:
        if self._syms is not None:
            return
        from elftools.elf.elffile import ELFFile
        with open(self.path, "rb") as f:
            elf = ELFFile(f)
            self._syms = self._read_symbols(elf)
            self._rows = self._read_lines(elf) if elf.has_dwarf_info() else []
        self._sym_addrs = [s[0] for s in self._syms]
        self._row_addrs = [r[0] for r in self._rows]

    @staticmethod
    def _read_symbols(elf) -> list[tuple[int, int, str]]:
        table = elf.get_section_by_name(".symtab")
        if table is None:
            return []
        syms = {}
        for sym in table.iter_symbols():
            kind = sym["st_info"]["type"]
            if kind not in ("STT_FUNC", "STT_NOTYPE") or not sym.name:
                continue
            if sym["st_shndx"] in ("SHN_UNDEF", "SHN_ABS") or \
                    sym.name.startswith(".L") or sym.name.startswith("$"):
                continue
            addr, size = sym["st_value"], sym["st_size"]
            # prefer a sized FUNC over a label at the same address
            old = syms.get(addr)
            if old is None or (size and not old[1]) or \
                    (kind == "STT_FUNC" and old[1] == size
                     and old[3] != "STT_FUNC"):
                syms[addr] = (addr, size, sym.name, kind)
        ordered = sorted(syms.values())
        result = []
        for i, (addr, size, name, _) in enumerate(ordered):
            if not size:                # a label: up to the next symbol
                nxt = ordered[i + 1][0] if i + 1 < len(ordered) else addr + 1
                size = max(1, nxt - addr)
            result.append((addr, size, name))
        return result

    @staticmethod
    def _read_lines(elf) -> list[tuple[int, str | None, int]]:
        dwarf = elf.get_dwarf_info()
        rows: list[tuple[int, str | None, int]] = []
        for cu in dwarf.iter_CUs():
            program = dwarf.line_program_for_CU(cu)
            if program is None:
                continue
            top = cu.get_top_DIE()
            comp_dir = top.attributes.get("DW_AT_comp_dir")
            comp_dir = comp_dir.value.decode(errors="replace") \
                if comp_dir else ""
            version = program.header["version"]
            files = program.header["file_entry"]
            dirs = program.header["include_directory"]
            names: dict[int, str] = {}

            def file_name(index: int) -> str:
                if index in names:
                    return names[index]
                i = index if version >= 5 else index - 1
                if not 0 <= i < len(files):
                    return "?"
                entry = files[i]
                d = entry.dir_index
                if version >= 5:
                    base = dirs[d].decode(errors="replace") \
                        if d < len(dirs) else ""
                else:
                    base = dirs[d - 1].decode(errors="replace") if d else ""
                full = os.path.join(comp_dir, base,
                                    entry.name.decode(errors="replace"))
                names[index] = _short_path(full)
                return names[index]

            for entry in program.get_entries():
                state = entry.state
                if state is None:
                    continue
                if state.end_sequence:
                    rows.append((state.address, None, 0))
                else:
                    rows.append((state.address, file_name(state.file),
                                 state.line))
        # at one address an end of sequence yields to a real row
        rows.sort(key=lambda r: (r[0], r[1] is not None))
        return rows

    # -- lookups --

    def symbol(self, addr: int) -> tuple[str, int] | None:
        """(function name, offset) containing addr, or None."""
        self._load()
        i = bisect.bisect_right(self._sym_addrs, addr) - 1
        while i >= 0:
            start, size, name = self._syms[i]
            if start <= addr < start + size:
                return name, addr - start
            if addr - start > 1 << 20:  # no enclosing symbol nearby
                break
            i -= 1
        return None

    def line(self, addr: int) -> tuple[str, int] | None:
        """(source file, line) of addr from DWARF, or None."""
        self._load()
        i = bisect.bisect_right(self._row_addrs, addr) - 1
        if i < 0:
            return None
        _, name, line = self._rows[i]
        if name is None or line == 0:
            return None
        return name, line

    def describe(self, addr: int, return_address: bool = False) -> str | None:
        """"func+0x1c (file.c:123)", "func+0x1c" without line info, or None
        if addr is in no function.  For a return address (backtrace frames
        after #0) the function and line are those of the call, i.e. of addr - 1:
        a call to a noreturn function (panic, __stack_chk_fail) can be a function's
        last instruction, and then addr is already the next function's start."""
        sym = self.symbol(addr - 1 if return_address else addr)
        if sym is None:
            return None
        name, offset = sym
        if return_address:
            offset += 1
        text = f"{name}+{offset:#x}" if offset else name
        where = self.line(addr - 1 if return_address else addr)
        if where is not None:
            text += f" ({where[0]}:{where[1]})"
        return text

    # -- panic reports --

    def describe_line(self, line: str) -> str | None:
        """The description for one line of a panic report, or None."""
        m = RIP_LINE.match(line)
        if m:
            return self.describe(int(m.group(1), 16))
        m = FRAME_LINE.match(line)
        if m:
            return self.describe(int(m.group(2), 16),
                                 return_address=int(m.group(1)) > 0)
        return None

    def annotate(self, text: str) -> str:
        """`text` with "  func+0x1c (file.c:123)" appended to each RIP and
        backtrace line whose address is in a known function."""
        out = []
        for line in text.splitlines(keepends=True):
            body = line.rstrip("\r\n")
            desc = self.describe_line(body)
            if desc:
                out.append(body + "  " + desc + line[len(body):])
            else:
                out.append(line)
        return "".join(out)


_cache: dict[tuple[str, int], Symbolizer] = {}


def symbolizer_for(elf_path: str | os.PathLike) -> Symbolizer:
    """A Symbolizer for the ELF, shared while the file is unchanged."""
    path = os.path.abspath(elf_path)
    key = (path, os.stat(path).st_mtime_ns)
    if key not in _cache:
        _cache.clear()
        _cache[key] = Symbolizer(path)
    return _cache[key]


def annotate_with(elf_path: str | os.PathLike, text: str) -> str:
    return symbolizer_for(elf_path).annotate(text)


class SymbolizingStream:
    """Forward bytes to `out` at once; after each complete line that is a
    RIP or backtrace line, write one indented line with its description."""

    MAX_LINE = 4096

    def __init__(self, out: BinaryIO, elf_path: str | os.PathLike | None):
        self.out = out
        self.elf_path = elf_path
        self._line = bytearray()

    def _symbolizer(self) -> Symbolizer | None:
        if not self.elf_path or not os.path.isfile(self.elf_path):
            return None
        try:
            return symbolizer_for(self.elf_path)
        except OSError:
            return None

    def feed(self, data: bytes) -> None:
        start = 0
        while start < len(data):
            end = data.find(b"\n", start)
            piece = data[start:] if end < 0 else data[start:end + 1]
            self.out.write(piece)
            self._line += piece
            if end < 0:
                if len(self._line) > self.MAX_LINE:
                    self._line.clear()
                break
            self.out.write(self._finish_line(bytes(self._line)))
            self._line.clear()
            start = end + 1
        self.out.flush()

    def _finish_line(self, raw: bytes) -> bytes:
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not (RIP_LINE.match(line) or FRAME_LINE.match(line)):
            return b""
        sym = self._symbolizer()
        if sym is None:
            return b""
        try:
            desc = sym.describe_line(line)
        except Exception as e:          # a broken ELF must not stop the run
            desc = f"(symbolizer: {e})"
        return f"        -> {desc}\r\n".encode() if desc else b""


def main(argv: list[str] | None = None) -> int:
    """python -m manticore_host.symbolize [ELF] < log: annotate a log;
    or with addresses as arguments: describe each."""
    args = argv if argv is not None else sys.argv[1:]
    elf = _repo_root() / "build" / "kernel.elf"
    if args and not args[0].startswith("0x"):
        elf, args = Path(args[0]), args[1:]
    sym = Symbolizer(elf)
    if args:
        for a in args:
            print(f"{a}: {sym.describe(int(a, 16)) or '?'}")
    else:
        sys.stdout.write(sym.annotate(sys.stdin.read()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
