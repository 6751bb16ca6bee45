"""The RAM root (no disk) is formatted on its first write, not at boot (boot time): until then
it is an empty filesystem (no such file, an empty /, imports fall through to the frozen
modules), and afterwards a littlefs2 one like any other."""

import pytest

pytestmark = pytest.mark.timeout(90)


def test_ram_root_is_empty_until_written_then_littlefs(boot):
    vm = boot(machine="microvm", append="ramfs=256K")
    assert "fs: / is a 256 KiB RAM filesystem (no disk)" in vm.banner, vm.banner
    assert vm.repl("import os, kernel.fs as F; print(F.status['root'], os.listdir('/'), "
                   "os.getcwd())") \
        == "ram [] /"
    assert vm.repl("exec(\"try: open('/missing.txt')\\nexcept OSError as e: print(e.errno)\")") \
        == "2"
    assert vm.repl("exec(\"try: os.remove('/missing.txt')\\nexcept OSError as e: "
                   "print(e.errno)\")") == "2"
    assert vm.repl("import kernel; print(kernel.fs.status['fs'])") == "lfs2"
    unformatted = ("import vfs; root = vfs.mount()[0][0]; "
                   "print(type(root).__name__, root.fs is None)")
    assert vm.repl(unformatted) == "LazyRAMRoot True", "formatted before the first write"
    vm.repl("f = open('/a.txt', 'w'); f.write('kept'); f.close(); os.mkdir('/d')")
    assert vm.repl("print(open('/a.txt').read(), sorted(os.listdir('/')))") \
        == "kept ['a.txt', 'd']"
    assert vm.repl(unformatted) == "LazyRAMRoot False"
    blocks = int(vm.repl("print(os.statvfs('/')[2])"))
    assert blocks * int(vm.repl("print(os.statvfs('/')[0])")) == 256 * 1024
