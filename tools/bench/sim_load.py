"""The simulator against an external hub: its own share of each exchange, and fleets at real time.

The hub is `cp-agent hub` in its own process (plain HTTP on loopback: another machine's work).
1. overhead: `cp-agent run --hub URL` with OVERHEAD_CHARGERS chargers at x300; the summary's
   sim_overhead_ms per exchange (the round trip less the HTTP client's post to the hub: encoding,
   reply parsing, the link, recording and the OICP 2.3 check of the reply), p50/p99.
2. workers: FLEETS chargers at speed 1 for FLEET_S real seconds with `--workers 2`, each a session
   (a tap at a random-ish time, plug, charge, tap); the summary's loop_lag_ms (a 20 ms ticker on
   every worker's loop) p99 against the bound, as tools/bench/fleet_capacity.py measures one
   process. run(fleets=...) picks the steps.
"""
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OVERHEAD_CHARGERS = 20
FLEETS = (2000, 2500)
FLEET_S = 40
LAG_BOUND_MS = 100
CARD = "04A1B2C3D4E5F6"
SHORT = {"charger": {"evses": 1}, "chargers": [{"sessions": [
    {"card": CARD, "idle_s": 30, "plug_s": 10, "charge_s": 700}]}]}
# at speed 1: the tap at 5 s, charging until 25 s; Start at the next meter poll
REAL = {"charger": {"evses": 2, "poll_s": 10}, "chargers": [{"sessions": [
    {"card": CARD, "idle_s": 5, "plug_s": 1, "charge_s": 20}]}]}


def _hub():
    p = subprocess.Popen([sys.executable, "-m", "host_sim", "hub", "--port", "0", "--card",
                          CARD], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True)
    url = p.stdout.readline().strip()
    if not url.startswith("http"):
        p.kill()
        raise RuntimeError("mock hub did not start: %r" % url)
    return p, url


def _sim(url, doc, tmp, *args, timeout=600):
    path = os.path.join(tmp, "s.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "host_sim", "run", "--hub", url, "--quiet",
                        "--scenario", path] + [str(a) for a in args], cwd=ROOT,
                       capture_output=True, text=True, timeout=timeout)
    lines = r.stdout.strip().splitlines()
    if not lines or not lines[-1].startswith("{"):
        raise RuntimeError("simulator failed (%d): %s" % (r.returncode, r.stderr[-1500:]))
    return json.loads(lines[-1]), time.monotonic() - t0


def run(fleets=FLEETS, seconds=FLEET_S):
    hub, url = _hub()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            s, wall = _sim(url, SHORT, tmp, "--chargers", OVERHEAD_CHARGERS, "--sessions", 2,
                           "--speed", 300)
            out = {"overhead": {"chargers": OVERHEAD_CHARGERS, "sim_ms": s["sim_overhead_ms"],
                                "round_trip_ms": s["latency_ms"], "ok": s["ok"],
                                "wall_s": round(wall, 1)}, "workers": []}
            for n in fleets:
                s, wall = _sim(url, REAL, tmp, "--workers", 2, "--chargers", n, "--speed", 1,
                               "--deadline-real", seconds, timeout=seconds + 300)
                out["workers"].append({
                    "chargers": n, "workers": 2, "lag_ms": s["loop_lag_ms"],
                    "sessions": s["sessions"], "exchanges": s["exchanges"]["requests"],
                    "codes": s["exchanges"]["codes"], "wall_s": round(wall, 1),
                    "ok": s["loop_lag_ms"]["p99"] is not None
                    and s["loop_lag_ms"]["p99"] < LAG_BOUND_MS})
    finally:
        hub.terminate()
        hub.wait(10)
    ok = [w["chargers"] for w in out["workers"] if w["ok"]]
    out["max_chargers_realtime_2_workers"] = max(ok) if ok else 0
    out["note"] = ("external mock hub process, plain HTTP loopback; overhead: sim_overhead_ms "
                   "(round trip - HTTP post, + recording and the reply's OICP check); workers: "
                   "%d s real at speed 1, bound loop lag p99 < %d ms on every worker's loop "
                   "(merged histogram)" % (seconds, LAG_BOUND_MS))
    return out


def lines(r):
    o = r["overhead"]
    out = ["simulator vs an external hub (%s):" % r["note"],
           "  overhead per exchange, %d chargers x300: p50 %s ms, p99 %s ms (n %s)"
           % (o["chargers"], o["sim_ms"]["p50"], o["sim_ms"]["p99"], o["sim_ms"]["n"])]
    for w in r["workers"]:
        out.append("  --workers 2, %5d chargers at speed 1: loop lag p50/p99/max %s/%s/%s ms, "
                   "%d exchanges, %s" % (w["chargers"], w["lag_ms"]["p50"], w["lag_ms"]["p99"],
                                         w["lag_ms"]["max"], w["exchanges"],
                                         "ok" if w["ok"] else "over the bound"))
    out.append("  largest fleet at real time with 2 workers: %d"
               % r["max_chargers_realtime_2_workers"])
    return out


if __name__ == "__main__":
    fl = tuple(int(x) for x in sys.argv[1:]) or FLEETS
    print("\n".join(lines(run(fl))))
