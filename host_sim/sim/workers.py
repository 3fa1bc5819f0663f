"""`run --workers N`: the chargers spread over N worker processes (charger k in worker k % N),
so a back end can be driven by more chargers than one core runs.

This process keeps the hub (the embedded one, or the check of `--hub`), sends the scenario's
hub events and shares its virtual clock with the workers (their VClocks start at its monotonic
instant). Each worker is `run` again with `--worker K/N` against this hub, writing its
report.json into a folder of ours; their records (exchanges, sessions, expectations,
non-conformances, samples, loop lag) are merged into one timeline, summary and report.
"""
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time

from host_sim.sim import hubs, report, results, scenario, tls
from host_sim.sim.fleet import VClock
from host_sim.sim.record import Row

MAX_WORKERS = 64
_GRACE_S = 60  # real s a worker gets past the deadline to write its report
_SUMS = ("chargers", "chargers_done", "sessions", "sessions_planned", "journaled", "delivered",
         "failed", "pending", "superseded", "rows_dropped")


def check(a, error):
    """The --workers options together; error(text) exits 2 naming the option."""
    if not 1 <= a.workers <= MAX_WORKERS:
        error("--workers: expected 1..%d, got %d" % (MAX_WORKERS, a.workers))
    if a.workers == 1:
        return
    for opt, v in (("--state", a.state), ("--mqtt", a.mqtt), ("--reader-port", a.reader_port),
                   ("--meter-port", a.meter_port), ("--worker", a.worker)):
        if v:
            error("--workers: not with %s (one process runs those)" % opt)
    if a.chargers is not None and a.chargers < a.workers:
        error("--workers %d: more workers than --chargers %d" % (a.workers, a.chargers))


def share(value):
    """--worker K/N -> (K, N), or None."""
    if value is None:
        return None
    k, n = (int(x) for x in value.split("/"))
    return k, n


class Parent:
    """The process that runs the workers: `await Parent(run).run()` -> exit status."""

    def __init__(self, run):
        self.r = run
        self.a = run.a

    def _args(self, url, certs_dir, k, out):
        a, r = self.a, self.r
        args = ["--hub", url, "--chargers", str(r.n), "--speed", repr(a.speed),
                "--operator-id", r.operator, "--deadline", repr(r.deadline),
                "--answer-limit-ms", repr(a.answer_limit_ms), "--skip-hub-events", "--quiet",
                "--worker", "%d/%d" % (k, a.workers), "--worker-t0", repr(r.clock.t0),
                "--report", out]
        if a.random is not None:
            args += ["--random", a.random]
        else:
            args += ["--scenario", os.path.abspath(a.scenario or scenario.DEFAULT)]
        if a.sessions is not None:
            args += ["--sessions", str(a.sessions)]
        if a.deadline_real is not None:
            args += ["--deadline-real", repr(a.deadline_real)]
        if a.tls:
            args += ["--tls", "--certs", certs_dir]
        for opt in ("ca", "cert", "key", "log"):
            if getattr(a, opt):
                args += ["--" + opt, os.path.abspath(getattr(a, opt))]
        if a.strict:
            args.append("--strict")
        return [sys.executable, "-m", "host_sim", "run"] + args

    async def run(self):
        r = self.r
        state = r._state()
        tmp = tempfile.mkdtemp(prefix="sim-workers-")
        _files, certs_dir, ctx = tls.files(self.a, state, r.operator)
        hub = hubs.Remote(self.a.hub, ctx) if self.a.hub else hubs.Embedded(
            scenario.cards(r.scn), certs_dir)
        url = await hub.start()
        procs = []
        try:
            r._check_hub_events(hub)
            r.clock = VClock(self.a.speed)
            r.events = []
            fl = {"hub_next": 0, "vt": 0.0}
            t0 = time.monotonic()
            outs = [os.path.join(tmp, "w%d" % k) for k in range(self.a.workers)]
            for k, out in enumerate(outs):
                procs.append(await asyncio.create_subprocess_exec(
                    *self._args(url, certs_dir, k, out), stdout=asyncio.subprocess.DEVNULL,
                    stdin=asyncio.subprocess.DEVNULL))
            if not self.a.quiet:
                r.err.write("sim: %d chargers in %d worker processes against %s\n"
                            % (r.n, len(procs), url))
            events = None if r.skip_events else asyncio.ensure_future(
                r._hub_events(hub, fl, None))
            limit = (r.deadline / self.a.speed if self.a.deadline_real is None
                     else min(r.deadline / self.a.speed, self.a.deadline_real))
            done, late = await asyncio.wait([asyncio.ensure_future(p.wait()) for p in procs],
                                            timeout=limit + _GRACE_S)
            if events:
                events.cancel()
            for p in procs:
                if p.returncode is None:
                    p.kill()
            codes = [p.returncode for p in procs]
            if late or any(c not in (0, 1) for c in codes):
                raise ValueError("--workers: a worker failed (exit statuses %s; its stderr is "
                                 "above)" % codes)
            return await self._merge(hub, outs, time.monotonic() - t0)
        finally:
            for p in procs:
                if p.returncode is None:
                    p.kill()
                    await p.wait()
            await hub.stop()
            shutil.rmtree(tmp, ignore_errors=True)
            if r._tmp:
                shutil.rmtree(r._tmp, ignore_errors=True)

    async def _merge(self, hub, outs, seconds):
        summary = dict.fromkeys(_SUMS, 0)
        table, rows, expect, samples, lag, groups = [], [], [], {}, {}, {}
        late = False
        for out in outs:
            with open(os.path.join(out, "report.json"), encoding="utf-8") as f:
                doc = json.load(f)
            s = doc["summary"]
            for k in _SUMS:
                summary[k] += s[k]
            late = late or s["deadline"]
            table += doc["sessions"]
            rows += [Row(x) for x in doc["exchanges"]]
            expect += doc["expectations"]
            for evse, pts in doc["samples"].items():
                if len(samples) < report.MAX_SERIES:
                    samples[evse] = [(p["t"], p["w"], p["wh"]) for p in pts]
            for ms, n in doc["loop_lag_buckets"].items():
                lag[ms] = lag.get(ms, 0) + n
            for g in doc["nonconformance"]:
                mine = groups.setdefault((g["op"], g["issue"]), dict(g, count=0))
                mine["count"] += g["count"]
                if g["first"]["t"] < mine["first"]["t"]:
                    mine["first"] = g["first"]
        rows.sort(key=lambda x: x.t)
        table.sort(key=lambda x: x["charger"])
        bad = results.nonconformance(groups)
        return await self.r.output(hub, summary, table, rows, bad, expect, samples, lag,
                                   seconds, late)
