"""`cp-agent run`: a fleet of simulated chargers (real firmware Agents) against an OICP hub.

Exit status: 0 when every session of the plan is done, every journaled message was acknowledged
and every scenario expectation met (with --strict: and no hub reply against OICP 2.3); 1 when
not (a message failed for good, the deadline came first, an expectation missed); 2 for a usage,
scenario, TLS, hub or state error. The last line on stdout is always the JSON summary (unless
exit 2).
"""
import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time

from host_sim.hub.remote import Cpo
from host_sim.sim import (
    conform,
    fleet,
    hubs,
    mqtt_path,
    record,
    report,
    results,
    scenario,
    timeline,
    tls,
    workers,
)
from host_sim.sim.fleet import SimCharger, VClock, evse_id, read_json, write_json
from host_sim.sim.lag import LagMeter

_BAR = 24
# Above it the charger's 120 virtual s AuthorizeStart window is under 120 real ms (a hub's answer
# may take longer) and a 600 ms tap is 10 virtual minutes: the real-time parts outrun the run.
MAX_SPEED = 1000
_BOOT_S = 2.0  # real s after the last charger is switched on before the loop lag is measured
_TICK_S = 0.25  # real s between progress ticks (--state: the virtual clock saved at each)
_BAR_TICKS = 20  # ticks between progress lines when stderr is not a terminal (5 s)
_SAMPLE_VS = 10  # virtual seconds between the report's power/energy samples
_SAMPLE_MIN_S = 0.02  # real seconds at least between them (a high --speed)


def _args(argv):
    p = argparse.ArgumentParser(prog="cp-agent run", description=__doc__.split("\n")[0])
    p.add_argument("--hub", metavar="URL", help="hub base URL (default: an embedded mock hub)")
    p.add_argument("--chargers", type=int, default=None,
                   help="number of chargers (default: one per scenario charger entry)")
    p.add_argument("--sessions", type=int, default=None,
                   help="sessions per charger, cycling its scenario sessions (default: as given)")
    p.add_argument("--speed", type=float, default=100.0,
                   help="virtual seconds per real second (default 100)")
    p.add_argument("--state", metavar="DIR",
                   help="keep each charger's flash and scenario cursor in DIR/<charger id>/; "
                        "a killed run started again with the same DIR resumes")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--scenario", metavar="FILE", help="scenario JSON (docs/sim.md; default: "
                                                      "host_sim/scenarios/default.json)")
    g.add_argument("--random", metavar="SEED", help="a random fleet, deterministic from SEED")
    p.add_argument("--reader-port", metavar="PATH", help="charger 0 reads cards from this serial "
                                                         "PN532 (a person taps the cards)")
    p.add_argument("--meter-port", metavar="PATH", help="charger 0 polls meters on this serial "
                                                        "port (the scenario's EV steps skip it)")
    p.add_argument("--mqtt", metavar="start|HOST:PORT", type=mqtt_path.parse,
                   help="the chargers speak MQTT to a broker and a relay forwards to the hub: "
                        "'start' runs Mosquitto and the relay here; HOST:PORT is a broker that "
                        "exists (docs/sim.md)")
    p.add_argument("--mqtt-password", metavar="PW", help="with --mqtt HOST:PORT: the chargers' "
                                                         "password (user name: the charger id)")
    p.add_argument("--mqtt-relay-user", metavar="USER",
                   help="with --mqtt HOST:PORT: the broker login of the relay this run starts")
    p.add_argument("--mqtt-relay-password", metavar="PW", help="its password")
    p.add_argument("--no-relay", action="store_true",
                   help="with --mqtt HOST:PORT: a relay (forwarding to --hub) is attached there")
    p.add_argument("--operator-id", metavar="ID",
                   help="the chargers' OperatorID; EvseIDs are ID*E0000*1, ... (default: the "
                        "scenario's operator_id, else %s)" % scenario.OPERATOR)
    p.add_argument("--ca", metavar="FILE", help="with an https:// --hub: the CA (PEM) that "
                                                "signed the hub's certificate (default: the "
                                                "system's CA store)")
    p.add_argument("--cert", metavar="FILE", help="with an https:// --hub: the client "
                                                  "certificate (PEM) for mutual TLS")
    p.add_argument("--key", metavar="FILE", help="its private key (PEM)")
    p.add_argument("--tls", action="store_true",
                   help="mutual TLS with the test PKI: made here for the embedded hub, or found "
                        "in --certs DIR; with --mqtt, TLS to the broker too")
    p.add_argument("--certs", metavar="DIR", help="with --tls: ca.pem and the client certificate "
                                                  "client-<OperatorID>.pem/.key")
    p.add_argument("--answer-limit-ms", type=float, metavar="MS", default=conform.ANSWER_MS,
                   help="a hub answer slower than MS real ms is reported as a non-conformance "
                        "(default %d)" % conform.ANSWER_MS)
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when the hub answered against OICP 2.3 (default: report it)")
    p.add_argument("--skip-hub-events", action="store_true",
                   help="run a scenario's hub events (outages, faults) against a hub that cannot "
                        "inject them by leaving them out")
    p.add_argument("--deadline", type=float, metavar="S", default=None,
                   help="stop after S virtual seconds (default: twice the longest charger's "
                        "waits and 5 real seconds per session, plus an hour)")
    p.add_argument("--deadline-real", type=float, metavar="S", default=None,
                   help="stop after S real seconds")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--timeline", action="store_true",
                   help="print the timeline of the OICP exchanges before the summary")
    p.add_argument("--log", metavar="FILE", help="append the chargers' log lines to FILE")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="spread the chargers over N processes (charger k in worker k %% N); "
                        "one hub and its events in this one, the summary merged (default 1)")
    p.add_argument("--worker", metavar="K/N", help=argparse.SUPPRESS)  # a worker's share
    p.add_argument("--worker-t0", type=float, help=argparse.SUPPRESS)  # the fleet's clock
    p.add_argument("--report", metavar="DIR", help="write DIR/report.json and DIR/report.html "
                                                   "(plots, sessions, exchanges; docs/sim.md)")
    a = p.parse_args(argv)
    if a.speed <= 0:
        p.error("--speed: expected a number above 0")
    if a.chargers is not None and not 1 <= a.chargers <= 10000:
        p.error("--chargers: expected 1..10000")
    if a.certs and not a.tls:
        p.error("--certs: only with --tls")
    if a.report:
        try:
            os.makedirs(a.report, exist_ok=True)
        except OSError as e:
            p.error("--report %s: cannot make the folder (%s)" % (a.report, e.strerror))
    tls.check(a, p.error)
    workers.check(a, p.error)
    mqtt_path.check(a, p.error)
    return a


def _load_scenario(a):
    if a.random is not None:
        n = a.chargers or 1
        return scenario.random_fleet(a.random, n, a.sessions if a.sessions is not None else 5)
    path = a.scenario or scenario.DEFAULT
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise scenario.ScenarioError("--scenario %s: %s" % (path, e.strerror))
    try:
        return scenario.load(text)
    except scenario.ScenarioError as e:
        raise scenario.ScenarioError("%s: %s" % (path, e))


def plan_length(steps_lists):
    """Virtual seconds of a charger's waits (lanes run together: the longest lane counts)."""
    lanes = {}
    for s in steps_lists:
        lanes[s["lane"]] = lanes.get(s["lane"], 0) + sum(
            x["wait"] for x in s["steps"] if isinstance(x.get("wait"), (int, float)))
    return max(lanes.values() or [0])


class Run:
    def __init__(self, a, scn, out=sys.stdout, err=sys.stderr):
        self.a, self.scn, self.out, self.err = a, scn, out, err
        if a.operator_id is not None:
            scn["operator_id"] = scenario.check_operator(a.operator_id, "--operator-id")
        a.operator_id = self.operator = scn["operator_id"]
        self.n = a.chargers or len(scn["chargers"])
        self.worker = workers.share(a.worker)  # (k, N) in a worker process, else None
        self.mine = [k for k in range(self.n) if self.worker is None
                     or k % self.worker[1] == self.worker[0]]
        per = a.sessions if a.random is None else None
        self.plans = [scenario.plan(scn, k, per) for k in range(self.n)]
        self.fingerprint = scenario.fingerprint([self.plans, scn["charger"], scn["hub"]]
                                                + ([self.operator] if self.operator !=
                                                   scenario.OPERATOR else []))
        # Taps take real time (about a second each, more on a busy machine): allow 5 real s per
        # session on top of twice the waits and an hour.
        longest = max(plan_length(p) + 5 * a.speed * len(p) for p in self.plans)
        self.deadline = a.deadline if a.deadline is not None else 2 * longest + 3600
        self._tmp = None
        self.cpo_endpoint = None  # the relay's, when the run has remote starts
        self._logf = open(a.log, "a", encoding="utf-8") if a.log else None

    def log(self, text):
        if self._logf:
            self._logf.write(text + "\n")
            self._logf.flush()

    def _state(self):
        if self.a.state:
            os.makedirs(self.a.state, exist_ok=True)
            return self.a.state
        self._tmp = tempfile.mkdtemp(prefix="sim-state-")
        return self._tmp

    async def main(self):
        if self.a.workers > 1:
            return await workers.Parent(self).run()
        remote = self._check_remote()
        state = self._state()
        tls_files, certs_dir, ctx = tls.files(self.a, state, self.operator)
        fleet_path = os.path.join(state, "fleet.json")
        fl = read_json(fleet_path) if self.a.state else None
        if fl and fl.get("plan") != self.fingerprint:
            raise ValueError("--state %s: made by another scenario, --sessions or --chargers; "
                             "use a new directory" % state)
        if self.a.hub:
            hub = hubs.Remote(self.a.hub, ctx)
            # A resumed run may meet its hub in an outage (one the first run started, say)
            url = await hub.start(fl.get("extras") if fl else None)
        else:
            hub = hubs.Embedded(scenario.cards(self.scn), certs_dir)
            url = await hub.start()
        try:
            self._check_hub_events(hub)
        except ValueError:
            await hub.stop()
            raise
        mq = None
        fl = fl or {"plan": self.fingerprint, "vt": 0.0, "hub_next": 0}
        fl["extras"] = hub.extras
        clock = self.clock = VClock(self.a.speed, fl["vt"], self.a.worker_t0)
        if self.a.speed > MAX_SPEED:
            self.err.write(
                "run: warning: --speed %g outruns the real-time parts: the charger's %d virtual "
                "s for the hub's AuthorizeStart answer are %.0f real ms, a tap holds the card up "
                "to %d real ms (%s virtual) and the reader waits 1 real s between taps of a "
                "card, so sessions stretch in virtual time (and may miss --deadline); at most "
                "x%d keeps them apart\n" % (self.a.speed, fleet.AUTHORIZE_S,
                                            fleet.AUTHORIZE_S * 1000 / self.a.speed,
                                            self.scn["charger"]["tap_ms"],
                                            timeline.hms(self.scn["charger"]["tap_ms"] / 1000
                                                         * self.a.speed), MAX_SPEED))
        self.recorder = record.Recorder(clock, conform.Checker(self.a.answer_limit_ms))
        self.events = []  # {"t", "text", "until"} of the hub events this run applied
        self.sampler = None
        if self.a.report:
            self.sampler = report.Sampler(clock, [])
        try:
            if self.a.mqtt:
                mq = mqtt_path.MqttPath(self.a, state, certs_dir, self.log)
                e = self.scn["charger"]["evses"]
                await mq.start(url, dict((fleet.charger_id(k), [evse_id(k, i, self.operator)
                                                                for i in range(e)])
                                         for k in range(self.n)),
                               tls_files and dict((k, os.path.join(certs_dir, f))
                                                  for k, f in tls_files.items()), remote)
                if mq.cpo_url:
                    hub.hub.cpo = Cpo(mq.cpo_url)
                    self.err.write("run: relay cpo endpoint %s\n" % mq.cpo_url)
                    self.cpo_endpoint = mq.cpo_url
            chargers = [SimCharger(k, self.plans[k], self.scn["charger"], url, clock, state,
                                   self.fingerprint, tls_files, certs_dir,
                                   self.a.reader_port if k == 0 else None,
                                   self.a.meter_port if k == 0 else None, self.log,
                                   mq and mq.uplink(fleet.charger_id(k)), self.operator,
                                   self.recorder, bool(self.a.state),
                                   hub.hub.remote if remote else None)
                        for k in self.mine]
            if mq:
                mq.virtual_deadlines(dict((c.id, c.board) for c in chargers))
            self.chargers = chargers
            # switched on spread over one meter poll period (virtual), charger k at k/n of it
            spread = self.scn["charger"]["poll_s"] / self.a.speed / self.n
            tasks = [asyncio.ensure_future(c.run(c.n * spread)) for c in chargers]
            self.lag = LagMeter()
            side = [asyncio.ensure_future(self._progress(fl, fleet_path)),
                    asyncio.ensure_future(self.lag.run(spread * self.n + _BOOT_S))]
            if self.sampler:
                self.sampler.evses = [(ch.cfg["evses"][i]["evse_id"], live) for ch in chargers
                                      for i, live in enumerate(ch.live)][:report.MAX_SERIES]
                self.sampler.series = {e: [] for e, _live in self.sampler.evses}
                side.append(asyncio.ensure_future(self._sample()))
            if not self.skip_events:
                side.append(asyncio.ensure_future(self._hub_events(hub, fl, fleet_path)))
            t0 = time.monotonic()
            limit = self.deadline - fl["vt"]
            timeout = limit / self.a.speed
            if self.a.deadline_real is not None:
                timeout = min(timeout, self.a.deadline_real)
            _done, late = await asyncio.wait(tasks, timeout=max(0.0, timeout))
            for t in late:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for t in side:
                t.cancel()
            errors = [t.exception() for t in tasks if not t.cancelled() and t.exception()]
            if errors:
                raise errors[0]
            self._bar(final=True)
            if self.a.state:
                fl["vt"] = clock.now()
                write_json(fleet_path, fl)
            result = await self._summary(hub, chargers, time.monotonic() - t0, late)
        finally:
            if mq:
                await mq.stop()
            await hub.stop()
            if self._tmp:
                shutil.rmtree(self._tmp, ignore_errors=True)
        return result

    async def _sample(self):
        while True:
            self.sampler.sample()
            await asyncio.sleep(max(_SAMPLE_MIN_S, _SAMPLE_VS / self.a.speed))

    def _check_remote(self):
        """Remote starts need the embedded mock hub (it plays Hubject) and the relay's CPO
        endpoint (--mqtt start): refused at the start otherwise, naming the step."""
        step = scenario.remote_step(self.scn)
        if step and (self.a.mqtt != mqtt_path.START or self.a.hub):
            raise ValueError("%s: only with --mqtt start and the embedded hub (no --hub): the "
                             "relay's CPO endpoint takes the hub's AuthorizeRemoteStart"
                             % step)
        return step is not None

    def _check_hub_events(self, hub):
        """A scenario's hub events need the mock hub's fault injection: refused at the start
        against a hub without it, unless --skip-hub-events."""
        events = self.scn["hub"]
        self.skip_events = bool(events) and not hub.extras
        if self.worker is not None:  # the parent process sends them
            self.skip_events = True
            return
        if self.skip_events and not self.a.skip_hub_events:
            raise ValueError(
                "--hub %s: the scenario has hub events (%s), which need the mock hub's fault "
                "injection (/api/faults); this hub has none. Run them against `cp-agent hub`, "
                "or give --skip-hub-events to leave them out"
                % (self.a.hub, "; ".join("hub[%d] at %g s: %s" % (i, e["at_s"], _event(e))
                                         for i, e in enumerate(events))))

    async def _hub_events(self, hub, fl, path):
        """The scenario's hub outages and faults at their virtual times (once, even on resume)."""
        events = self.scn["hub"]
        while fl["hub_next"] < len(events):
            e = events[fl["hub_next"]]
            await self.clock.sleep(e["at_s"] - self.clock.now())
            try:
                if "refuse_s" in e:
                    await hub.refuse(e["refuse_s"] / self.a.speed)
                else:
                    await hub.fault(e["fault"])
                t = self.clock.now()
                self.events.append({"t": t, "text": _event(e), "until": t + e["refuse_s"]
                                    if "refuse_s" in e else None})
            except Exception as x:  # a control-plane hiccup must not end the run
                self.log("hub event %r failed: %r" % (e, x))
                self.events.append({"t": self.clock.now(), "until": None,
                                    "text": _event(e) + " (failed: %s)" % x})
            fl["hub_next"] += 1
            if self.a.state:
                fl["vt"] = self.clock.now()
                write_json(path, fl)

    def _counts(self):
        c = {"journaled": 0, "delivered": 0, "failed": 0}
        for ch in self.chargers:
            for k in c:
                c[k] += ch.counts[k]
        c["pending"] = sum(ch.pending() for ch in self.chargers)
        # Progress notifications the journal replaced by a newer one while they waited
        c["superseded"] = c["journaled"] - c["delivered"] - c["failed"] - c["pending"]
        return c

    def _bar(self, final=False):
        if self.a.quiet:
            return
        done = sum(ch.finished for ch in self.chargers)
        sessions = sum(ch.done for ch in self.chargers)
        total = sum(len(self.plans[k]) for k in self.mine)
        c = self._counts()
        fill = int(_BAR * sessions / total) if total else _BAR
        line = "sim [%s%s] chargers %d/%d  sessions %d/%d  acked %d/%d  %s x%g" % (
            "#" * fill, "." * (_BAR - fill), done, len(self.mine), sessions, total, c["delivered"],
            c["journaled"], timeline.hms(self.clock.now()), self.a.speed)
        tty = self.err.isatty()
        self.err.write(("\r" + line + ("\n" if final else "")) if tty else line + "\n")
        self.err.flush()

    async def _progress(self, fl, path):
        """The progress bar, and with --state the virtual clock saved (a killed run resumes
        near where it was, not at its last hub event)."""
        tty = self.err.isatty()
        n = 0
        while True:
            await asyncio.sleep(_TICK_S)
            n += 1
            if tty or n % _BAR_TICKS == 0:
                self._bar()
            if self.a.state:
                fl["vt"] = self.clock.now()
                write_json(path, fl)

    async def _summary(self, hub, chargers, seconds, late):
        c = self._counts()
        rows = self.recorder.rows
        total = sum(len(self.plans[k]) for k in self.mine)
        done = sum(ch.done for ch in chargers)
        bad = results.nonconformance(self.recorder.nonconformance)
        expect = [e for ch in chargers for e in ch.expectations]
        summary = {"chargers": len(chargers),
                   "chargers_done": sum(ch.finished for ch in chargers),
                   "sessions": done, "sessions_planned": total}
        summary.update(c)
        summary["rows_dropped"] = self.recorder.dropped
        samples = self.sampler.series if self.sampler else {}
        return await self.output(hub, summary, results.sessions(rows), rows, bad, expect,
                                 samples, self.lag.buckets, seconds, bool(late))

    async def output(self, hub, summary, table, rows, bad, expect, samples, lag, seconds,
                     late):
        """The session table, non-conformances, missed expectations, timeline, report and the
        summary line (a run's, or the workers' merged); the exit status."""
        missed = [e for e in expect if not e["ok"]]
        ok = summary["sessions"] == summary["sessions_planned"] and summary["failed"] == 0 \
            and summary["pending"] == 0 and not missed and not (bad and self.a.strict)
        for line in results.table(table) + results.nonconformance_lines(bad):
            self.out.write(line + "\n")
        for e in missed:
            self.out.write("expected %s, got %s: %s at %s\n" % (e["expect"], e["got"], e["card"],
                                                               e["charger"]))
        if self.a.timeline:
            for line in timeline.render(timeline.rows(rows, self.events)):
                self.out.write(line + "\n")
        outcomes = {}
        for r in table:
            outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
        meter = LagMeter()
        meter.add(lag)
        summary = dict({"ok": ok}, **summary)
        summary.update(exchanges=results.counts(rows), outcomes=outcomes,
                       latency_ms=results.latency(rows), sim_overhead_ms=results.overhead(rows),
                       nonconforming={"kinds": len(bad),
                                      "replies": sum(g["count"] for g in bad)},
                       expectations={"met": len(expect) - len(missed), "missed": len(missed)},
                       hub_events={"applied": len(self.events),
                                   "skipped": len(self.scn["hub"]) if self.skip_events else 0},
                       loop_lag_ms=meter.summary())
        if hub.extras:
            try:
                stats = await hub.stats()
                summary["hub_view"] = {k: stats[k] for k in ("sessions", "requests",
                                                             "duplicates", "codes", "http")
                                       if k in stats}
            except (OSError, ValueError) as e:
                summary["hub_view"] = {"error": str(e)}
        summary.update(duration_s=round(seconds, 3), virtual_s=round(self.clock.now(), 1),
                       speed=self.a.speed, deadline=late,
                       uplink="mqtt" if self.a.mqtt else "http")
        if self.cpo_endpoint:
            summary["cpo_endpoint"] = self.cpo_endpoint
        if self.a.workers > 1:
            summary["workers"] = self.a.workers
        if self.a.report:
            doc = report.build(summary, table, rows, self.events, bad, expect, samples, lag)
            _pj, ph = report.write(self.a.report, doc)
            if self.worker is None:
                self.err.write("report: %s\n" % ph)
        self.out.write(json.dumps(summary, separators=(",", ":")) + "\n")
        self.out.flush()
        return 0 if ok else 1


def _event(e):
    """A hub event in words: 'refuse 240 s', 'fault 5xx x3'."""
    if "refuse_s" in e:
        return "refuse %g s" % e["refuse_s"]
    f = e["fault"]
    return "fault %s%s" % (f["kind"], " x%d" % f["count"] if "count" in f else "")


def main(argv):
    try:
        a = _args(argv)
        scn = _load_scenario(a)
        r = Run(a, scn)
        return asyncio.run(r.main())
    except (scenario.ScenarioError, ValueError, OSError) as e:
        print("run: %s" % e, file=sys.stderr)
        return 2
