"""The symbolizer against a tiny ELF built here with gcc -g."""

import io
import re
import shutil
import subprocess

import pytest

from manticore_host.symbolize import Symbolizer, SymbolizingStream, annotate_with

SOURCE = """\
int helper(int x)
{
    return x * 3 + 1;
}

int entry_point(int y)
{
    int z = helper(y);
    return z + helper(z);
}

void _start(void)
{
    entry_point(5);
    for (;;)
        ;
}
"""

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc")


def build(tmp_path, *flags):
    src = tmp_path / "tiny.c"
    src.write_text(SOURCE)
    elf = tmp_path / ("tiny-g.elf" if "-g" in flags else "tiny.elf")
    subprocess.run(["gcc", "-O0", "-fno-pie", "-no-pie", "-nostdlib", "-static",
                    "-fno-asynchronous-unwind-tables", *flags, "-o", str(elf), str(src)],
                   check=True, cwd=tmp_path)
    return elf


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build(tmp_path_factory.mktemp("sym"), "-g")


def addr_of(elf, name):
    from elftools.elf.elffile import ELFFile
    with open(elf, "rb") as f:
        for sym in ELFFile(f).get_section_by_name(".symtab").iter_symbols():
            if sym.name == name:
                return sym["st_value"]
    raise KeyError(name)


def test_function_start(tiny):
    sym = Symbolizer(tiny)
    text = sym.describe(addr_of(tiny, "helper"))
    assert re.fullmatch(r"helper \((\S+/)?tiny\.c:2\)", text), text


def test_offset_and_line(tiny):
    sym = Symbolizer(tiny)
    start = addr_of(tiny, "entry_point")
    name, off = sym.symbol(start + 4)
    assert (name, off) == ("entry_point", 4)
    # somewhere inside entry_point's body, the line is one of its lines
    lines = {sym.line(a)[1] for a in range(start, start + 20)}
    assert lines <= {6, 7, 8, 9, 10} and len(lines) > 1
    assert re.match(r"entry_point\+0x4 \((\S+/)?tiny\.c:\d+\)$", sym.describe(start + 4))


def test_return_address_uses_call_line(tiny):
    sym = Symbolizer(tiny)
    start = addr_of(tiny, "_start")
    # the return address of `entry_point(5)` is right after the call: its line is 14
    for a in range(start, start + 40):
        if sym.line(a) and sym.line(a)[1] == 15:
            ret = a
            break
    else:
        pytest.skip("no line-15 code")
    assert sym.describe(ret, return_address=True).endswith("tiny.c:14)")


def test_unknown_address(tiny):
    assert Symbolizer(tiny).describe(0x10) is None


def test_without_dwarf(tmp_path):
    elf = build(tmp_path)
    assert Symbolizer(elf).describe(addr_of(elf, "helper") + 2) == "helper+0x2"


def panic_text(rip, ret):
    return (
        "*** MANTICORE PANIC: Page fault (#PF, vector 14) ***\n"
        "error code: 0x0000000000000000 (read, not-present, supervisor)\n"
        f"RIP    0x{rip:016x}  RSP 0x0000000000200000  RFLAGS 0x0000000000000002\n"
        "CR2    0x0000008000000000  CR3 0x0000000000001000\n"
        "backtrace:\n"
        f"  #0 0x{rip:016x}\n"
        f"  #1 0x{ret:016x}\n"
        "  #2 0x0000000000000010\n"
        "*** end of panic; exit status 3 via isa-debug-exit ***\n")


def test_annotate(tiny):
    rip = addr_of(tiny, "helper") + 1
    ret = addr_of(tiny, "entry_point") + 8
    out = Symbolizer(tiny).annotate(panic_text(rip, ret))
    lines = re.sub(r"\((\S+/)?tiny\.c:", "(tiny.c:", out).splitlines()
    assert lines[2].startswith(f"RIP    0x{rip:016x}  RSP")
    assert lines[2].endswith("  helper+0x1 (tiny.c:2)")
    assert lines[5] == f"  #0 0x{rip:016x}  helper+0x1 (tiny.c:2)"
    assert lines[6].startswith(f"  #1 0x{ret:016x}  entry_point+0x8 (tiny.c:")
    assert lines[7] == "  #2 0x0000000000000010"          # unknown: untouched
    assert lines[3] == "CR2    0x0000008000000000  CR3 0x0000000000001000"
    assert out.count("\n") == panic_text(rip, ret).count("\n")


def test_annotate_keeps_crlf(tiny):
    rip = addr_of(tiny, "helper")
    out = annotate_with(tiny, f"  #0 0x{rip:016x}\r\nnext\r\n")
    out = re.sub(r"\((\S+/)?tiny\.c:", "(tiny.c:", out)
    assert out == f"  #0 0x{rip:016x}  helper (tiny.c:2)\r\nnext\r\n"


def test_stream_forwards_and_adds_a_line(tiny):
    rip = addr_of(tiny, "helper")
    out = io.BytesIO()
    stream = SymbolizingStream(out, tiny)
    data = f"hello\r\nRIP    0x{rip:016x}  RSP 0x0\r\n  #0 0x{rip:016x}\r\n>>> ".encode()
    for i in range(0, len(data), 7):                 # in odd-sized pieces
        stream.feed(data[i:i + 7])
    text = re.sub(r"\((\S+/)?tiny\.c:", "(tiny.c:", out.getvalue().decode())
    assert text.startswith("hello\r\nRIP")
    assert text.count("        -> helper (tiny.c:2)\r\n") == 2
    assert text.endswith(">>> ")
    assert text.replace("        -> helper (tiny.c:2)\r\n", "") == data.decode()


def test_stream_without_elf_is_transparent(tmp_path):
    out = io.BytesIO()
    SymbolizingStream(out, tmp_path / "missing.elf").feed(b"  #0 0x0000000000000001\n")
    assert out.getvalue() == b"  #0 0x0000000000000001\n"
