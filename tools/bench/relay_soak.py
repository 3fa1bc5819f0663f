"""Relay memory over a soak: RSS of `python -m host_sim relay` at a steady load for SOAK_S.

The rig of relay_throughput.py (mock hub over mutual TLS in its own process, Mosquitto, the relay
as a subprocess, the paho load generator), here open loop at RATE requests/s (sessions of an
AuthorizeStart, a Start, Progress notifications, an End). The relay's RSS (/proc VmRSS) is
sampled every SAMPLE_S, with the blocks its Python allocator holds (/metrics
relay_python_heap_blocks: a leak of Python objects grows these; RSS also moves with the C
allocator's fragmentation). Reported: first (after WARMUP_S), last and largest of each, and the
slope of a least-squares line over the second half (per minute): flat is a slope near 0 there.
SOAK_S is 600 by default; the environment variable RELAY_SOAK_S shortens it.
"""
import json
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relay_throughput as rt  # noqa: E402

SOAK_S = int(os.environ.get("RELAY_SOAK_S", "600"))
RATE = 300       # requests/s, steady (a fleet of ~30,000 chargers' sessions at OICP's pace)
WINDOW = 4       # sessions in flight per charger (the pace, not the window, sets the load)
SAMPLE_S = 5
WARMUP_S = 10


def slope_kb_min(samples):
    """Least-squares slope of [(t_s, value)] per minute (0 for fewer than 2 samples)."""
    n = len(samples)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in samples) / n
    mk = sum(k for _, k in samples) / n
    den = sum((t - mt) ** 2 for t, _ in samples)
    return 60 * sum((t - mt) * (k - mk) for t, k in samples) / den if den else 0.0


def run(seconds=None):
    seconds = seconds or SOAK_S
    with tempfile.TemporaryDirectory() as tmp:
        rig = rt.Rig(tmp)
        samples, done = [], threading.Event()
        try:
            p, port = rig.start_relay(rig.relay_config(), "relay-soak")
            t_start = time.monotonic()

            def sample():
                while not done.wait(SAMPLE_S):
                    blocks = rt.metrics(port).get("relay_python_heap_blocks")
                    samples.append((time.monotonic() - t_start, rt.rss_kb(p.pid), blocks))
            th = threading.Thread(target=sample, daemon=True)
            th.start()
            load = rt.generate(rig, "mqtt", seconds=seconds, warmup=WARMUP_S, window=WINDOW,
                               rate=RATE, watch=[("relay", p.pid), ("hub", rig.hub.pid)])
            done.set()
            th.join()
            m = rt.metrics(port)
        finally:
            done.set()
            rig.close()
    steady = [(t, k) for t, k, _ in samples if t >= WARMUP_S]
    half = [(t, k) for t, k in steady if t >= WARMUP_S + seconds / 2]
    blocks = [(t, b) for t, _, b in samples if t >= WARMUP_S]
    half_blocks = [(t, b) for t, b in blocks if t >= WARMUP_S + seconds / 2]
    return {"seconds": seconds, "rate_target": RATE, "achieved_per_s": load["per_s"],
            "failed": load["failed"], "lat_ms": load["lat_ms"],
            "relay_cpu_s": load["cpu_s"].get("relay"),
            "rss_kb": {"first": steady[0][1], "last": steady[-1][1],
                       "max": max(k for _, k in steady), "samples": len(steady)},
            "slope_second_half_kb_per_min": round(slope_kb_min(half), 1),
            "python_heap_blocks": {"first": blocks[0][1], "last": blocks[-1][1],
                                   "max": max(b for _, b in blocks),
                                   "slope_second_half_per_min": round(slope_kb_min(half_blocks),
                                                                      1)},
            "relay_queue_depth_end": m.get("relay_queue_depth"),
            "relay_hub_connects": m.get("relay_hub_connects_total"),
            "samples_t_s_kb_blocks": [(round(t), k, b) for t, k, b in samples]}


def lines(r):
    k = r["rss_kb"]
    b = r["python_heap_blocks"]
    return ["relay soak %d s at %d req/s (achieved %.1f/s, failed %s, p50 %s p99 %s ms): RSS "
            "first %d KB, last %d KB, max %d KB; slope over the second half %+.1f KB/min"
            % (r["seconds"], r["rate_target"], r["achieved_per_s"], r["failed"] or 0,
               r["lat_ms"]["p50"], r["lat_ms"]["p99"], k["first"], k["last"], k["max"],
               r["slope_second_half_kb_per_min"]),
            "  Python heap blocks first %d, last %d, max %d; slope over the second half %+.1f/min"
            % (b["first"], b["last"], b["max"], b["slope_second_half_per_min"])]


if __name__ == "__main__":
    res = run()
    print("\n".join(lines(res)))
    print(json.dumps(res))
