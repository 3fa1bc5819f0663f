"""`python -m host_sim run`: a fleet of simulated chargers (real firmware Agents) against a hub.

Exit status: 0 when every session of the plan is done and every journaled message was
acknowledged; 1 when not (a message failed for good, or the deadline came first); 2 for a usage,
scenario or state error. The last line on stdout is always the JSON summary (unless exit 2).
"""
import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time

from host_sim import certs as pki
from host_sim.sim import fleet, hubs, mqtt_path, scenario, timeline
from host_sim.sim.fleet import OPERATOR, SimCharger, VClock, evse_id, read_json, write_json

DEFAULT_SCENARIO = os.path.join(os.path.dirname(os.path.dirname(__file__)), "scenarios",
                                "default.json")
_BAR = 24


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
    p.add_argument("--tls", action="store_true",
                   help="mutual TLS to the hub; with --mqtt, TLS to the broker too")
    p.add_argument("--certs", metavar="DIR", help="with --tls: ca.pem and the client certificate "
                                                  "for %s (made here for the embedded hub)"
                                                  % OPERATOR)
    p.add_argument("--deadline", type=float, metavar="S", default=None,
                   help="stop after S virtual seconds (default: twice the longest charger's "
                        "waits and 5 real seconds per session, plus an hour)")
    p.add_argument("--deadline-real", type=float, metavar="S", default=None,
                   help="stop after S real seconds")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--timeline", action="store_true",
                   help="print the timeline of the OICP exchanges before the summary")
    p.add_argument("--log", metavar="FILE", help="append the chargers' log lines to FILE")
    a = p.parse_args(argv)
    if a.speed <= 0:
        p.error("--speed: expected a number above 0")
    if a.chargers is not None and not 1 <= a.chargers <= 10000:
        p.error("--chargers: expected 1..10000")
    if a.certs and not a.tls:
        p.error("--certs: only with --tls")
    mqtt_path.check(a, p.error)
    return a


def _load_scenario(a):
    if a.random is not None:
        n = a.chargers or 1
        return scenario.random_fleet(a.random, n, a.sessions if a.sessions is not None else 5)
    path = a.scenario or DEFAULT_SCENARIO
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
        self.n = a.chargers or len(scn["chargers"])
        per = a.sessions if a.random is None else None
        self.plans = [scenario.plan(scn, k, per) for k in range(self.n)]
        self.fingerprint = scenario.fingerprint([self.plans, scn["charger"], scn["hub"]])
        # Taps take real time (about a second each, more on a busy machine): allow 5 real s per
        # session on top of twice the waits and an hour.
        longest = max(plan_length(p) + 5 * a.speed * len(p) for p in self.plans)
        self.deadline = a.deadline if a.deadline is not None else 2 * longest + 3600
        self._tmp = None
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

    def _tls(self, state):
        """(charger config TLS keys, certs dir, client SSLContext) or Nones for plain HTTP."""
        if not self.a.tls:
            return None, None, None
        d = os.path.abspath(self.a.certs or os.path.join(state, "certs"))
        if self.a.hub is None:
            pki.make_test_pki(d, (OPERATOR,))
        cert, key = pki.client_files(d, OPERATOR)
        for f in (os.path.join(d, pki.CA), cert, key):
            if not os.path.exists(f):
                raise ValueError("--certs %s: %s is missing" % (d, os.path.basename(f)))
        files = {"ca": pki.CA, "cert": os.path.basename(cert), "key": os.path.basename(key)}
        return files, d, hubs.client_context(d, cert, key)

    async def main(self):
        state = self._state()
        tls_files, certs_dir, ctx = self._tls(state)
        if self.a.hub:
            hub = hubs.Remote(self.a.hub, ctx)
        else:
            hub = hubs.Embedded(scenario.cards(self.scn), certs_dir)
        url = await hub.start()
        mq = None
        fleet_path = os.path.join(state, "fleet.json")
        fl = read_json(fleet_path) if self.a.state else None
        if fl and fl.get("plan") != self.fingerprint:
            raise ValueError("--state %s: made by another scenario, --sessions or --chargers; "
                             "use a new directory" % state)
        fl = fl or {"plan": self.fingerprint, "vt": 0.0, "hub_next": 0}
        clock = self.clock = VClock(self.a.speed, fl["vt"])
        try:
            if self.a.mqtt:
                mq = mqtt_path.MqttPath(self.a, state, certs_dir, self.log)
                e = self.scn["charger"]["evses"]
                await mq.start(url, dict((fleet.charger_id(k), [evse_id(k, i) for i in range(e)])
                                         for k in range(self.n)),
                               tls_files and dict((k, os.path.join(certs_dir, f))
                                                  for k, f in tls_files.items()))
            chargers = [SimCharger(k, self.plans[k], self.scn["charger"], url, clock, state,
                                   self.fingerprint, tls_files, certs_dir,
                                   self.a.reader_port if k == 0 else None,
                                   self.a.meter_port if k == 0 else None, self.log,
                                   mq and mq.uplink(fleet.charger_id(k)))
                        for k in range(self.n)]
            self.chargers = chargers
            tasks = [asyncio.ensure_future(c.run()) for c in chargers]
            side = [asyncio.ensure_future(self._hub_events(hub, fl, fleet_path)),
                    asyncio.ensure_future(self._progress())]
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
            except Exception as x:  # a control-plane hiccup must not end the run
                self.log("hub event %r failed: %r" % (e, x))
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
        total = sum(len(p) for p in self.plans)
        c = self._counts()
        fill = int(_BAR * sessions / total) if total else _BAR
        line = "sim [%s%s] chargers %d/%d  sessions %d/%d  acked %d/%d  %s x%g" % (
            "#" * fill, "." * (_BAR - fill), done, self.n, sessions, total, c["delivered"],
            c["journaled"], timeline.hms(self.clock.now()), self.a.speed)
        tty = self.err.isatty()
        self.err.write(("\r" + line + ("\n" if final else "")) if tty else line + "\n")
        self.err.flush()

    async def _progress(self):
        tty = self.err.isatty()
        while True:
            await asyncio.sleep(0.25 if tty else 5.0)
            self._bar()

    async def _summary(self, hub, chargers, seconds, late):
        c = self._counts()
        try:
            stats = await hub.stats()
            hub_counts = {k: stats[k] for k in ("sessions", "requests", "duplicates", "codes",
                                                "http") if k in stats}
            exchanges = await hub.exchanges() if self.a.timeline else []
        except OSError as e:
            hub_counts, exchanges = {"error": str(e)}, []
        total = sum(len(p) for p in self.plans)
        done = sum(ch.done for ch in chargers)
        ok = done == total and c["failed"] == 0 and c["pending"] == 0
        if self.a.timeline:
            owner = {evse_id(ch.n, i): ch.id for ch in chargers for i in range(len(ch.live))}
            for line in timeline.render(timeline.rows(exchanges, owner, self.clock)):
                self.out.write(line + "\n")
        summary = {"ok": ok, "chargers": self.n, "chargers_done": sum(ch.finished for ch in
                                                                         chargers),
                   "sessions": done, "sessions_planned": total}
        summary.update(c)
        summary.update(hub=hub_counts, duration_s=round(seconds, 3),
                       virtual_s=round(self.clock.now(), 1), speed=self.a.speed,
                       deadline=bool(late), uplink="mqtt" if self.a.mqtt else "http")
        self.out.write(json.dumps(summary, separators=(",", ":")) + "\n")
        self.out.flush()
        return 0 if ok else 1


def main(argv):
    try:
        a = _args(argv)
        scn = _load_scenario(a)
        r = Run(a, scn)
        return asyncio.run(r.main())
    except (scenario.ScenarioError, ValueError, OSError) as e:
        print("run: %s" % e, file=sys.stderr)
        return 2
