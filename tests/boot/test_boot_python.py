"""The interpreter on the image: numbers, the platform, the modules, emitters and time.

All read-only, on one shared VM per module.
"""

import binascii
import hashlib
import math
import struct
import time
from datetime import datetime, timezone

import pytest

pytestmark = pytest.mark.timeout(60)


def check(repl_vm, expr: str, expected: str):
    out = repl_vm.repl(expr)
    assert out == expected, f"{expr!r}: expected {expected!r}, got {out!r}"


@pytest.mark.parametrize(
    "expr,expected",
    [
        ("1+1", "2"),
        ("7*6-2", "40"),
        ("17//5, 17%5, -17//5, -17%5", "(3, 2, -4, 3)"),
        ("divmod(100, 7)", "(14, 2)"),
        ("0x7fffffff + 1", "2147483648"),
        ("(1 << 62) * 4", "18446744073709551616"),
        ("2**200", str(2**200)),
        ("-(3**99)", str(-(3**99))),
        ("2**200 // 3**50", str(2**200 // 3**50)),
        ("int('123456789' * 5) % 1000000007", str(int("123456789" * 5) % 1000000007)),
        ("hex(2**100 - 1)", repr(hex(2**100 - 1))),
    ],
)
def test_integers(repl_vm, expr, expected):
    check(repl_vm, expr, expected)


def test_factorial_50_is_exact(repl_vm):
    stdout, stderr = repl_vm.console.raw_exec(
        "f = 1\nfor i in range(2, 51):\n    f *= i\nprint(f)\n")
    assert stderr == "", f"expected no error computing 50!, got:\n{stderr}"
    assert stdout.strip() == str(math.factorial(50)), (
        f"expected 50! = {math.factorial(50)}, got {stdout.strip()!r}")


@pytest.mark.parametrize(
    "expr,value",
    [
        ("1/3", 1 / 3),
        ("math.sqrt(2)", math.sqrt(2)),
        ("0.1 + 0.2", 0.1 + 0.2),
        ("math.pi", math.pi),
        ("math.sin(0.5)", math.sin(0.5)),
        ("math.log(10)", math.log(10)),
        ("math.exp(-1.5)", math.exp(-1.5)),
        ("2.5 ** 0.5", 2.5 ** 0.5),
        ("float('1.7976931348623157e308')", 1.7976931348623157e308),
        ("5e-324", 5e-324),
        ("1e308 * 10", float("inf")),
        ("-float('inf')", float("-inf")),
        ("float(2**53 + 1)", float(2**53 + 1)),
    ],
)
def test_floats_are_ieee_doubles(repl_vm, expr, value):
    """Bit-exact against CPython: the guest's float is an IEEE-754 double, computed the same."""
    out = repl_vm.repl(f"import math, struct, binascii; binascii.hexlify(struct.pack('<d', {expr}))")
    want = repr(binascii.hexlify(struct.pack("<d", value)))
    assert out == want, f"{expr}: expected the double {value!r} (bits {want}), got bits {out}"


@pytest.mark.parametrize(
    "expr,expected",
    [
        ("1/3", "0.3333333333333333"),
        ("float('inf'), -float('inf')", "(inf, -inf)"),
        ("float('nan') != float('nan')", "True"),
        ("print('%.3f' % 3.14159)", "3.142"),
        ("print('{:.2e}'.format(12345.678))", "1.23e+04"),
        ("'{:10.4f}|'.format(-2.5)", "'   -2.5000|'"),
        ("int(1e20)", str(int(1e20))),
        ("1.5e300 * 1e10", "inf"),
        ("round(2.5), round(3.5), round(-0.5)", "(2, 4, 0)"),
        ("abs(math.sqrt(2) ** 2 - 2) < 1e-15", "True"),
        ("str(1e16), str(1.5), str(-0.0)", "('1e+16', '1.5', '-0.0')"),
    ],
)
def test_float_formatting(repl_vm, expr, expected):
    check(repl_vm, "import math; " + expr if "math." in expr else expr, expected)


def test_platform(repl_vm):
    check(repl_vm, "import sys; sys.platform", "'manticore'")
    check(repl_vm, "sys.implementation.name", "'micropython'")
    check(repl_vm, "sys.implementation.version[:2]", "(1, 25)")
    check(repl_vm, "sys.maxsize", str(2**63 - 1))
    out = repl_vm.repl("import os; os.uname()")
    assert "manticore" in out, f"expected os.uname() to mention manticore, got {out!r}"
    check(repl_vm, "os.uname().sysname", "'manticore'")


MODULES = ("array struct collections json re heapq binascii hashlib random io errno select "
           "asyncio micropython gc sys os time machine").split()


@pytest.mark.parametrize("module", MODULES)
def test_module_importable(repl_vm, module):
    out = repl_vm.repl(f"import {module}; print({module}.__name__)")
    assert out == module, f"expected 'import {module}' to work, got:\n{out}"


def test_modules_work(repl_vm):
    code = """\
import array, struct, collections, json, re, heapq, binascii, hashlib, random, io, errno
print(array.array('i', [1, 2, 3])[2])
print(struct.pack('<IH', 1, 2))
print(collections.OrderedDict(a=1)['a'], collections.deque((1, 2), 5).popleft())
print(json.dumps({'a': [1, 2.5, None, True]}), json.loads('[1, {"b": "c"}]'))
print(re.match(r'(\\d+)-(\\w+)', '42-abc').group(2))
h = [5, 1, 3]; heapq.heapify(h); print(heapq.heappop(h))
print(binascii.hexlify(b'\\x01\\xff'), binascii.b2a_base64(b'hi'))
print(binascii.hexlify(hashlib.sha256(b'abc').digest()))
random.seed(1); print(0 <= random.random() < 1, random.getrandbits(8) < 256)
s = io.StringIO(); s.write('x'); print(s.getvalue())
print(errno.ENOENT)
"""
    expected = "\n".join([
        "3",
        "b'\\x01\\x00\\x00\\x00\\x02\\x00'",
        "1 1",
        "{\"a\": [1, 2.5, null, true]} [1, {'b': 'c'}]",
        "abc",
        "1",
        f"{binascii.hexlify(bytes([1, 255]))} {binascii.b2a_base64(b'hi')}",
        str(binascii.hexlify(hashlib.sha256(b"abc").digest())),
        "True True",
        "x",
        "2",
    ])
    stdout, stderr = repl_vm.console.raw_exec(code)
    assert stderr == "", f"expected no exception, got:\n{stderr}"
    assert stdout.replace("\r\n", "\n").strip() == expected


def test_native_and_viper_emitters(repl_vm):
    code = """\
import micropython
@micropython.native
def nat(n):
    s = 0
    for i in range(n):
        s += i
    return s
@micropython.viper
def vip(n: int) -> int:
    s = 0
    for i in range(n):
        s += i
    return s
@micropython.viper
def poke(buf) -> int:
    p = ptr8(buf)
    p[0] = 0x41
    return p[1]
b = bytearray(b'zB')
print(nat(100), vip(100000), poke(b), b)
"""
    stdout, stderr = repl_vm.console.raw_exec(code)
    assert stderr == "", f"expected native/viper functions to run, got:\n{stderr}"
    assert stdout.strip() == f"4950 {sum(range(100000))} 66 bytearray(b'AB')"


def test_time_is_host_utc(repl_vm):
    out = repl_vm.repl("import time; print(time.time(), time.gmtime())")
    host = time.time()
    guest_s, _, tm = out.partition(" ")
    guest = int(guest_s)
    fields = [int(x) for x in tm.strip("()").split(",")]
    guest_dt = datetime(*fields[:6], tzinfo=timezone.utc)
    host_dt = datetime.fromtimestamp(host, timezone.utc)
    skew = abs((guest_dt - host_dt).total_seconds())
    assert skew < 300, f"expected time.gmtime() within 5 minutes of the host's UTC {host_dt}, got {guest_dt}"
    assert abs(guest - host) < 300, (
        f"expected time.time() (seconds since 1970) within 5 minutes of the host's {host:.0f}, "
        f"got {guest}" + (" (that is the 2000 epoch)" if abs(guest + 946684800 - host) < 300 else ""))


def test_ticks_are_monotonic(repl_vm):
    code = """\
import time
bad = 0
a = time.ticks_ms(); u = time.ticks_us(); c = time.ticks_cpu()
for i in range(2000):
    b = time.ticks_ms(); v = time.ticks_us(); d = time.ticks_cpu()
    if time.ticks_diff(b, a) < 0 or time.ticks_diff(v, u) < 0:
        bad += 1
    a, u, c = b, v, d
t0 = time.ticks_us(); time.sleep_us(1000); dt = time.ticks_diff(time.ticks_us(), t0)
print(bad, dt >= 1000)
"""
    stdout, stderr = repl_vm.console.raw_exec(code)
    assert stderr == "", stderr
    assert stdout.strip() == "0 True", (
        f"expected ticks never to go backwards and sleep_us(1000) to last >= 1000 us; got {stdout!r}")


def test_sleep_ms_is_measured_by_ticks(repl_vm):
    code = """\
import time
t0 = time.ticks_ms(); time.sleep_ms(200); t1 = time.ticks_ms()
s0 = time.ticks_ms(); time.sleep(0.3); s1 = time.ticks_ms()
print(time.ticks_diff(t1, t0), time.ticks_diff(s1, s0))
"""
    h0 = time.monotonic()
    stdout, stderr = repl_vm.console.raw_exec(code)
    host_ms = (time.monotonic() - h0) * 1000
    assert stderr == "", stderr
    ms200, ms300 = (int(x) for x in stdout.split())
    assert 200 <= ms200 < 600, f"expected sleep_ms(200) to take 200..600 ms by ticks_ms, got {ms200}"
    assert 300 <= ms300 < 700, f"expected sleep(0.3) to take 300..700 ms by ticks_ms, got {ms300}"
    assert host_ms >= 450, f"the guest slept {ms200}+{ms300} ms by its clock but only {host_ms:.0f} ms passed on the host"


def test_machine_module(repl_vm):
    out = repl_vm.repl("import machine; machine.freq() > 0")
    assert out == "True", f"expected machine.freq() > 0, got {out!r}"
    # The BIOS data area / low memory is identity mapped; mem8/16/32 read something consistent.
    code = ("import machine\n"
            "a = 0x100000\n"  # the kernel is loaded at 1 MiB
            "w = machine.mem32[a]\n"
            "print(w == machine.mem16[a] | (machine.mem16[a + 2] << 16),"
            " machine.mem8[a] == w & 0xff)\n")
    stdout, stderr = repl_vm.console.raw_exec(code)
    assert stderr == "", stderr
    assert stdout.strip() == "True True"
