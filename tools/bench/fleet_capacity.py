"""How many simulated chargers one process runs at real-time speed (1) with their OICP traffic.

Each charger is the real firmware Agent on a HostBoard at speed 1 (as in host_sim/sim): a
VirtualPn532 (the agent's driver polls it every 200 ms), two virtual SDM630 meters on one bus
(polled every poll_s 10 s) with an EvLoad behind each, the link to a mock hub that runs in its own
process (`python -m host_sim hub`, plain HTTP: another machine's work, on the other core). Steps
of N chargers, STEP_S seconds each, all of them with a session: a person taps a card at a random
time in the first 8 s, plugs the car at once (Start at the next meter poll), taps again 18 s later
(End, CDR). The chargers are switched on spread over one meter period (10 s), as a fleet's
meters are not polled in step. Measured on this loop: the lag of a 20 ms ticker; the slip of
the PN532 polls (interval between InListPassiveTarget commands minus the 200 ms period); how
late the meter task wakes for each poll it scheduled; tap to authorized; what the hub got.
The figure: the largest N whose ticker lag p99 stays under LAG_BOUND_MS. A cProfile of a
shorter run at that N says which task eats the CPU.
"""
import asyncio
import cProfile
import gc
import json
import os
import pstats
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(ROOT, "host_sim", "pyshim"), os.path.join(ROOT, "firmware"), ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from relay_throughput import cpu_s  # noqa: E402  (tools/bench: /proc CPU seconds)

from cpagent.agent import Agent  # noqa: E402
from cpagent.boards.host import HostBoard  # noqa: E402
from host_sim.sim.fleet import Bus, charger_config  # noqa: E402
from host_sim.virtual.ev import EvLoad, RealTime  # noqa: E402
from host_sim.virtual.meter import VirtualMeter  # noqa: E402
from host_sim.virtual.pn532 import VirtualPn532  # noqa: E402

STEPS = (300, 1000, 1250, 1500, 2000, 4000, 10000)
BUDGET_S = 200  # no further step once the steps so far took this long (`make bench` < 5 min)
STEP_S = 30  # measured seconds per step (after the boot)
# Chargers are switched on one after another over one meter period (a fleet is not in step:
# all meters polled in the same instant would measure the burst, not the fleet), then booted.
SPREAD_S = 10
BOOT_S = SPREAD_S + 2
PROFILE_S = 8
LAG_BOUND_MS = 100
TICK_S = 0.02
POLL_MS = 200  # the agent's PN532 poll period (driver default)
CHARGER = {"evses": 2, "meter": "sdm630", "poll_s": 10, "progress_s": 300, "ev_wait_s": 600}
TAP_HOLD_S = 3  # a person holds the card at most this long


def pct(xs, p):
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))]


class Rec:
    """Schedule samples of one step, shared by every charger."""

    def __init__(self):
        self.on = False
        self.t_on = None  # intervals that start before this (the boot) are not counted
        self.reader_slip = []
        self.meter_slip = []
        self.auth = []
        self.logs = {}


class Charger:
    def __init__(self, n, url, state, rec):
        cfg = charger_config(n, CHARGER, url)
        self.card = "04%012X" % (0xC0000000 + n)
        self.pn = VirtualPn532()
        self.cars = [RealTime(EvLoad(max_w=11000, ramp_s=2)) for _ in range(2)]
        bus = Bus([VirtualMeter("sdm630", i + 1, c) for i, c in enumerate(self.cars)])
        self.rec = rec
        self.board = HostBoard(cfg, os.path.join(state, cfg["charger_id"]), 1.0,
                               reader_dev=self.pn, meter_dev=bus, echo=self._log)
        self.agent = Agent(cfg, self.board)
        self.agent.bus._sleep = self._timed_sleep(self.agent.bus._sleep)
        self._last_poll = None
        command = self.pn._command

        def timed_command(cmd, args):  # the reader's schedule: one InListPassiveTarget a poll
            if cmd == 0x4A:
                now = time.perf_counter()
                if rec.on and self._last_poll is not None and self._last_poll >= rec.t_on:
                    rec.reader_slip.append((now - self._last_poll) * 1000 - POLL_MS)
                self._last_poll = now
            return command(cmd, args)
        self.pn._command = timed_command

    def _timed_sleep(self, sleep):
        """The meter task's schedule: how late it wakes for each poll (its sleep runs to the
        poll's due time)."""
        rec = self.rec

        async def timed(ms):
            due = time.perf_counter() + ms / 1000
            await sleep(ms)
            if rec.on and due - ms / 1000 >= rec.t_on:
                rec.meter_slip.append((time.perf_counter() - due) * 1000)
        return timed

    def _log(self, line):
        key = line.split("] ", 1)[-1][:40]
        self.rec.logs[key] = self.rec.logs.get(key, 0) + 1

    def state(self):
        return self.agent.charger.evses[0].state

    async def person(self, step_s):
        """Tap in the first 8 s, plug at once, tap again 18 s later (End + CDR)."""
        await asyncio.sleep(random.uniform(0, 8))
        t0 = time.perf_counter()
        if await self._hold(lambda: self.state() not in ("idle", "authorizing")):
            self.rec.auth.append((time.perf_counter() - t0) * 1000)
        else:
            return
        car = self.cars[0].ev
        car.plug()
        car.start()
        await asyncio.sleep(min(18, step_s - 12))
        car.stop()
        await asyncio.sleep(1.2)  # away longer than the reader's hold_ms: a new tap
        await self._hold(lambda: self.state() == "idle")

    async def _hold(self, done):
        self.pn.card = self.card
        t0 = time.monotonic()
        try:
            while not done() and time.monotonic() - t0 < TAP_HOLD_S:
                await asyncio.sleep(0.02)
        finally:
            self.pn.card = None
        return done()


def _hub(cards_path):
    p = subprocess.Popen([sys.executable, "-m", "host_sim", "hub", "--port", "0",
                          "--cards", cards_path], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    url = p.stdout.readline().strip()
    if not url.startswith("http"):
        p.kill()
        raise RuntimeError("mock hub did not start: %r" % url)
    return p, url


def _api(url, path, method="GET"):
    req = urllib.request.Request(url + path, b"" if method == "POST" else None, method=method)
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


async def _step(n, url, state, seconds, profile=None):
    rec = Rec()
    random.seed(n)
    t_build = time.perf_counter()
    chargers = [Charger(k, url, state, rec) for k in range(n)]
    build_s = time.perf_counter() - t_build
    async def switch_on(c, delay):
        await asyncio.sleep(delay)
        await c.agent.run()
    tasks = [asyncio.create_task(switch_on(c, SPREAD_S * k / n)) for k, c in enumerate(chargers)]
    await asyncio.sleep(BOOT_S)
    lag = []

    async def ticker():
        last = time.perf_counter()
        while True:
            await asyncio.sleep(TICK_S)
            now = time.perf_counter()
            lag.append((now - last - TICK_S) * 1000)
            last = now
    tick = asyncio.create_task(ticker())
    people = [asyncio.create_task(c.person(seconds)) for c in chargers]
    rec.on, rec.t_on = True, time.perf_counter()
    pauses = []  # CPython's garbage collector: (generation, ms); the loop stands still meanwhile
    gc_t = [0.0]

    def on_gc(phase, info):
        if phase == "start":
            gc_t[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], (time.perf_counter() - gc_t[0]) * 1000))
    gc.callbacks.append(on_gc)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profile:
        profile.enable()
    await asyncio.sleep(seconds)
    if profile:
        profile.disable()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    gc.callbacks.remove(on_gc)
    full = [ms for g, ms in pauses if g == 2]
    rec.on = False
    for t in people + tasks + [tick]:
        t.cancel()
    await asyncio.gather(*people, *tasks, tick, return_exceptions=True)
    stats = [c.agent.stats() for c in chargers]
    for c in chargers:
        http = getattr(c.agent.link.uplink, "http", None)
        if http:
            http.close()
    await asyncio.sleep(0.1)
    lag.sort()
    return {"chargers": n, "build_s": round(build_s, 1),
            "cpu_busy": round(cpu / wall, 2),
            "lag_ms": {"p50": _r(pct(lag, 50)), "p99": _r(pct(lag, 99)), "max": _r(lag[-1])},
            "reader_poll_slip_ms": {"p50": _r(pct(rec.reader_slip, 50)),
                                    "p99": _r(pct(rec.reader_slip, 99)),
                                    "polls": len(rec.reader_slip)},
            "meter_poll_slip_ms": {"p50": _r(pct(rec.meter_slip, 50)),
                                   "p99": _r(pct(rec.meter_slip, 99)),
                                   "polls": len(rec.meter_slip)},
            "tap_to_authorized_ms": {"p50": _r(pct(rec.auth, 50)), "p99": _r(pct(rec.auth, 99)),
                                     "authorized": len(rec.auth)},
            "gc": {"collections": len(pauses), "pause_total_ms": _r(sum(ms for _g, ms in pauses)),
                   "full": len(full), "full_max_ms": _r(max(full, default=0))},
            "delivered": sum(s["delivered"] for s in stats),
            "pending_at_end": sum(s["pending"] for s in stats),
            "retries": sum(s["retries"] for s in stats),
            "log": dict(sorted(rec.logs.items(), key=lambda kv: -kv[1])[:5])}


def _r(x):
    return None if x is None else round(x, 1)


# Each task's top coroutine: its cumulative time is the CPU the task uses while it runs (what it
# awaits inline included); the event loop's own work (scheduling, timers) is outside all of them.
_TASKS = (("reader task (PN532 driver + virtual PN532)", "cpagent/drivers/pn532.py", "run"),
          ("meter task (Modbus + virtual meters)", "cpagent/drivers/meter.py", "run"),
          ("link task (HTTP, OICP, journal)", "cpagent/uplink/link.py", "run"),
          ("ticker task", "cpagent/agent.py", "_tick"),
          ("people + probes (bench)", "fleet_capacity.py", "person"))


def _profile(p, seconds):
    """Busy CPU (the epoll wait is idle time, left out), the share of each agent task and of the
    event loop's own work, the top functions, and who makes the loop's timers and tasks
    (calls per second of asyncio.wait_for, which wraps its awaitable in a new Task on CPython
    3.11, and of asyncio.sleep)."""
    st = pstats.Stats(p).stats
    busy = sum(v[2] for (fn, _l, name), v in st.items() if "select.epoll" not in name) or 1
    share = {}
    for what, path, func in _TASKS:
        share[what] = sum(v[3] for (fn, _l, name), v in st.items()
                          if fn.replace(os.sep, "/").endswith(path) and name == func)
    share["event loop itself (scheduling, timers, wait_for tasks)"] = busy - sum(share.values())
    churn = {}
    for (fn, _l, name), v in st.items():
        if fn.replace(os.sep, "/").endswith("asyncio/tasks.py") and name in ("wait_for", "sleep"):
            for (cfn, _cl, cname), cv in v[4].items():
                k = "%s from %s %s" % (name, os.path.basename(cfn), cname)
                churn[k] = churn.get(k, 0) + cv[1] / seconds
    top = sorted(((v[2], "%s:%d %s" % (os.path.relpath(fn, ROOT) if fn.startswith(ROOT) else
                                        os.path.basename(fn), line, name))
                  for (fn, line, name), v in st.items() if "select.epoll" not in name),
                 reverse=True)[:8]
    return {"busy_cpu_share": round(busy / seconds, 2),
            "share_by_task": dict((k, round(v / busy, 3)) for k, v in
                                  sorted(share.items(), key=lambda kv: -kv[1])),
            "loop_calls_per_s": dict((k, round(v)) for k, v in
                                     sorted(churn.items(), key=lambda kv: -kv[1])[:6]),
            "top_functions_tottime_share": [(name, round(tt / busy, 3)) for tt, name in top]}


async def _all(url, hub_pid, tmp, steps, seconds):
    results = []
    best = None
    t0 = time.monotonic()
    for n in steps:
        if time.monotonic() - t0 > BUDGET_S:
            results.append({"chargers": n, "ok": None, "skipped": "time budget of the bench"})
            break
        _api(url, "/api/reset", "POST")
        cpu0 = cpu_s(hub_pid)
        state = os.path.join(tmp, "n%d" % n)
        r = await _step(n, url, state, seconds)
        shutil.rmtree(state, ignore_errors=True)
        hub_cpu = cpu_s(hub_pid)
        s = _api(url, "/api/stats")
        r["hub"] = {"requests": s["requests"], "sessions": s["sessions"], "codes": s["codes"],
                    "http": s["http"],
                    "cpu_s": None if cpu0 is None else round(hub_cpu - cpu0, 1)}
        r["ok"] = r["lag_ms"]["p99"] < LAG_BOUND_MS
        results.append(r)
        print("  fleet %5d chargers: lag p99 %s ms, reader slip p99 %s ms, meter slip p99 %s "
              "ms, cpu %.0f%%" % (n, r["lag_ms"]["p99"], r["reader_poll_slip_ms"]["p99"],
                                  r["meter_poll_slip_ms"]["p99"], 100 * r["cpu_busy"]),
              file=sys.stderr, flush=True)
        if not r["ok"]:
            break
        best = n
    prof_n = best or steps[0]
    p = cProfile.Profile()
    _api(url, "/api/reset", "POST")
    state = os.path.join(tmp, "profile")
    await _step(prof_n, url, state, PROFILE_S, p)
    return results, best, prof_n, _profile(p, PROFILE_S)


def run(steps=STEPS, seconds=STEP_S):
    with tempfile.TemporaryDirectory() as tmp:
        cards = os.path.join(tmp, "cards.json")
        with open(cards, "w") as f:
            json.dump(["04%012X" % (0xC0000000 + k) for k in range(max(steps))], f)
        hub, url = _hub(cards)
        try:
            results, best, prof_n, prof = asyncio.run(_all(url, hub.pid, tmp, steps, seconds))
        finally:
            hub.terminate()
            hub.wait(10)
    return {"note": "chargers at speed 1 in one CPython process (one core: the GIL), mock hub "
                    "in another process, plain HTTP over loopback; each charger: Agent + "
                    "HostBoard, virtual PN532 polled every %d ms, 2 virtual SDM630 polled every "
                    "%d s, one session per step (tap, Start, End, CDR); %d s per step; figure = "
                    "largest N with p99 lag of a %d ms ticker < %d ms; profile: cProfile "
                    "tottime over %d s at that N"
                    % (POLL_MS, CHARGER["poll_s"], seconds, TICK_S * 1000, LAG_BOUND_MS,
                       PROFILE_S),
            "lag_bound_ms": LAG_BOUND_MS, "step_s": seconds, "max_chargers_realtime": best,
            "steps": results,
            "profile_chargers": prof_n, "profile": prof}


def lines(r):
    out = ["simulated chargers at real-time speed in one process, each with a session (%d s a "
           "step; bound: ticker lag p99 < %d ms):" % (r["step_s"], r["lag_bound_ms"])]
    for s in r["steps"]:
        if s["ok"] is None:
            out.append("  %5d chargers: not run (%s)" % (s["chargers"], s["skipped"]))
            continue
        out.append("  %5d chargers: lag p50/p99/max %s/%s/%s ms, reader poll slip p99 %s ms, "
                   "meter poll slip p99 %s ms, tap->authorized p99 %s ms, CPU %d%%, full GC "
                   "%d x up to %s ms, hub %d requests (%s), pending %d%s"
                   % (s["chargers"], s["lag_ms"]["p50"], s["lag_ms"]["p99"], s["lag_ms"]["max"],
                      s["reader_poll_slip_ms"]["p99"], s["meter_poll_slip_ms"]["p99"],
                      s["tap_to_authorized_ms"]["p99"], 100 * s["cpu_busy"], s["gc"]["full"],
                      s["gc"]["full_max_ms"], s["hub"]["requests"], s["hub"]["codes"],
                      s["pending_at_end"],
                      "" if s["ok"] else "  <- over the bound"))
    pr = r["profile"]
    out.append("  figure: %s chargers at real time; where the CPU goes at %d chargers (cProfile,"
               " which slows it: busy %d%% of one core):"
               % (r["max_chargers_realtime"], r["profile_chargers"], 100 * pr["busy_cpu_share"]))
    out.append("    " + ", ".join("%s %d%%" % (k, round(100 * v))
                                  for k, v in pr["share_by_task"].items()))
    out.append("    loop churn per second: " + ", ".join(
        "%s %d" % kv for kv in list(pr["loop_calls_per_s"].items())[:4]))
    return out


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    res = run(tuple(args[1:]) or STEPS, args[0]) if args else run()
    print("\n".join(lines(res)))
    print(json.dumps(res))
