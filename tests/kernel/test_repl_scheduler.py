"""The scheduler loads on first use: a boot to the bare REPL imports neither kernel.sched nor
asyncio, and the first `import asyncio` typed at the REPL loads them with the REPL as an
app, so that tasks made there run while the prompt waits, as they did when every boot
loaded the scheduler."""

import time

import pytest

pytestmark = pytest.mark.timeout(120)

LOADED = "[m for m in ('asyncio', 'kernel.sched') if m in sys.modules]"


@pytest.mark.parametrize("machine", ["q35", "microvm"])
def test_import_asyncio_at_the_repl_brings_the_scheduler(boot, machine):
    vm = boot(machine=machine)
    assert vm.repl("import sys; " + LOADED) == "[]", (
        "expected a boot to the bare REPL to load neither asyncio nor kernel.sched")
    out = vm.repl("import nosuchmodule")
    assert "ImportError: no module named 'nosuchmodule'" in out and "kernel" not in out, (
        f"expected a plain ImportError with no kernel frame while the import is watched, got:\n{out}")
    assert vm.repl(LOADED) == "[]", "expected another module's import to leave the scheduler unloaded"

    vm.repl("import asyncio")
    assert vm.repl(LOADED + ", kernel.sched.repl_app.name") == "(['asyncio', 'kernel.sched'], 'repl')"
    vm.repl('exec("ticks = []\\nasync def tick():\\n while len(ticks) < 5:\\n'
            '  ticks.append(1)\\n  await asyncio.sleep_ms(50)")')
    vm.repl("task = asyncio.create_task(tick())")
    time.sleep(1.5)  # the REPL waits at its prompt: its idle hook runs the loop meanwhile
    assert vm.repl("len(ticks), task.done()") == "(5, True)", (
        "expected the task made at the REPL to run to its end while the prompt waited")
    assert vm.repl("kernel.sys.whoami()") == "'repl'", "expected the REPL's syscalls to be the repl app's"


def test_the_scheduler_loaded_another_way_still_takes_the_repl(boot):
    vm = boot()
    ps = vm.repl("kernel.ps()")  # loads kernel.sched (and asyncio) without `import asyncio`
    assert "APP" in ps, ps
    assert vm.repl("import sys; kernel.sched.repl_app.name, 'asyncio' in sys.modules") == "('repl', True)"
    vm.repl('exec("import asyncio\\nseen = []\\nasync def once():\\n seen.append(1)")')
    vm.repl("asyncio.create_task(once())")
    time.sleep(0.5)
    assert vm.repl("seen") == "[1]", "expected the task to run while the REPL waited"
