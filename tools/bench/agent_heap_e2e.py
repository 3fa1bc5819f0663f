"""The MicroPython heap of the whole agent end to end: the power-cut test's two sessions
(tests/host/test_mpy_agent.py) with tools/mpy_agent.mjs --heap-ms, on a device-sized heap.

Per boot: the baseline (gc.mem_alloc after importing and building the agent, before it runs),
the peak above it (sampled every SAMPLE_MS after gc.collect(), in a task of its own: the live
heap between task steps, so garbage and a step's passing temporaries do not count), and the
largest free block (micropython.mem_info's "max free sz", smallest seen: fragmentation).
The webassembly heap can grow past HEAP (MicroPython's split heap): heap_total says if it did.
"""
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(ROOT, "host_sim", "pyshim"), os.path.join(ROOT, "firmware"),
           os.path.join(ROOT, "tests", "host"), ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from test_mpy_agent import two_sessions  # noqa: E402  (the scenario is the test's)

SAMPLE_MS = 20
HEAP = 128 * 1024  # about what MicroPython has on an ESP32 without PSRAM


def run():
    with tempfile.TemporaryDirectory() as tmp:
        r = two_sessions(tmp, ["--heap-ms", str(SAMPLE_MS), "--heapsize", str(HEAP)])
    boots = []
    for boot in (1, 2):
        last = [t for t in r.charger.log(boot) if t.startswith("HEAP ")]
        if not last:
            raise RuntimeError("no HEAP line from boot %d:\n%s" % (boot, r.charger.text()))
        boots.append(json.loads(last[-1][5:]))
    return {"heapsize": HEAP, "boots": boots,
            "peak_above_baseline": max(b["peak_above_baseline"] for b in boots),
            "baseline": max(b["baseline"] for b in boots),
            "smallest_largest_free_block": min(b["smallest_largest_free_block"] for b in boots)}


def lines(r):
    out = ["whole agent in MicroPython (webassembly, %d KB heap), two sessions with a power cut:"
           % (r["heapsize"] // 1024)]
    for i, b in enumerate(r["boots"]):
        out.append("  boot %d: baseline %d B after imports and build, peak %d B above it "
                   "(%d samples every %d ms), largest free block %d B at the least, heap %d B"
                   % (i + 1, b["baseline"], b["peak_above_baseline"], b["samples"],
                      b["sample_ms"], b["smallest_largest_free_block"], b["heap_total"]))
    return out


if __name__ == "__main__":
    res = run()
    print("\n".join(lines(res)))
    print(json.dumps(res))
