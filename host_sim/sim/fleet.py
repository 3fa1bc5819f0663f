"""The fleet: each simulated charger is a real firmware Agent on a HostBoard; people act on it.

A charger's people are lanes (one card each) acting at the same time; a lane plays its sessions'
steps in order. The cursor (which session, which step, the wait left) and the physical world (each
EVSE's car and meter) are written atomically to <state>/<charger id>/sim.json, so a run killed
at any point resumes: the Agent resumes its open sessions from the journal, and steps that a
kill may have carried out already are checked against the charger before they act again (a start
tap is skipped when the card's session is open, a stop tap when it is not; a remote start when
the SessionID the hub made runs, a remote stop when it does not).
"""
import asyncio
import json
import os
import sys
import time

from cpagent import config as fw_config
from cpagent.agent import Agent
from cpagent.boards.host import HostBoard
from cpagent.session import AUTHORIZING, IDLE
from host_sim.sim.record import refusal_code
from host_sim.sim.scenario import OPERATOR
from host_sim.virtual.ev import EvLoad
from host_sim.virtual.meter import VirtualMeter
from host_sim.virtual.pn532 import VirtualPn532

AUTHORIZE_S = 120  # virtual s a charger waits for the hub's AuthorizeStart answer
RETRY_S = 30  # virtual seconds before a person taps again after a refused/failed start
_SEEN_S = 1.5  # real s for a tap to show at the charger (read, then authorizing or closed)
_PERSON_S = 30  # the same with a real reader, where a person is asked to tap
_TICK_S = 0.05  # real seconds between looks at the charger's state
_SAVE_S = 0.2  # real seconds between cursor saves while a wait runs
_AWAY_S = 6 * 3600  # virtual seconds a car charges on at most while the simulator is down


def evse_id(n, i, operator=OPERATOR):
    """EVSE i of charger n, under the run's OperatorID (ISO form: DE*ABC*E0003*1)."""
    return "%s*E%04d*%d" % (operator, n, i + 1)


def write_json(path, obj):
    """Atomically: a reader (or a restart after SIGKILL) sees the old file or the new one."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
    os.replace(tmp, path)


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


class VClock:
    """Virtual seconds = offset + real seconds x speed (the HostBoard's rate)."""

    def __init__(self, speed, offset=0.0, t0=None):
        """t0: the monotonic instant of virtual `offset` (workers share their parent's:
        CLOCK_MONOTONIC is the same in every process of the host)."""
        self.speed = speed
        self.offset = offset
        self.t0 = time.monotonic() if t0 is None else t0

    def now(self):
        return self.offset + (time.monotonic() - self.t0) * self.speed

    async def sleep(self, seconds):
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class Live:
    """A meter's source: the EVSE's car, advanced to the virtual time at each reading."""

    def __init__(self, clock, wh=0):
        self.clock = clock
        self.ev = EvLoad(start_wh=wh)
        self.params = {}
        self._t = clock.now()

    def reading(self):
        now = self.clock.now()
        if now > self._t:
            self.ev.advance(now - self._t)
        self._t = now
        return self.ev.reading()

    def plug(self, params):
        self.reading()  # settle the old car's energy into the counter first
        self.params = dict(params)
        self.ev = EvLoad(start_wh=self.ev.energy_wh, **params)
        self.ev.plug()
        self.ev.start()

    def save(self):
        self.reading()
        return dict(self.ev.save(), p=self.params, real=time.time())

    def load(self, d):
        e = self.ev = EvLoad(**d["p"]).load(d)
        self.params = d["p"]
        # The car went on charging after the last save (and while the simulator was down): so
        # the meter never reads below what the firmware saw before a kill.
        e.advance(min(_AWAY_S, max(0.0, time.time() - d["real"]) * self.clock.speed))
        self._t = self.clock.now()


class Bus:
    """Several virtual meters on one RS-485 pair: each answers its own unit address."""

    def __init__(self, meters):
        self.meters = meters

    def handle(self, data):
        return b"".join(m.handle(data) for m in self.meters)


def charger_id(n):
    return "sim-%03d" % n


def charger_config(n, c, url=None, tls_files=None, uplink=None, operator=OPERATOR):
    """A charger's config.json (checked by the firmware's own config.load): the HTTP(S) uplink
    to url, or the given uplink (an MQTT one)."""
    u = uplink or {"kind": "http", "url": url, "timeout_s": 20}
    if tls_files and not uplink:
        u.update(tls_files)
    cfg = {"charger_id": charger_id(n), "operator_id": operator,
           "evses": [{"evse_id": evse_id(n, i, operator), "meter_address": i + 1,
                      "connector": i + 1}
                     for i in range(c["evses"])],
           # hold_ms: a card resting for a tap (tap_ms) is seen at every 200 ms poll; one tap
           "reader": {"type": "pn532", "hold_ms": 1000},
           "meter": {"model": c["meter"], "timeout_ms": 200, "retries": 1, "dead_polls": 3},
           "uplink": u,
           "timing": {"poll_s": c["poll_s"], "progress_s": c["progress_s"],
                      "ev_wait_s": c["ev_wait_s"], "authorize_timeout_s": AUTHORIZE_S},
           "log_level": 1}
    return fw_config.load(json.dumps(cfg))


class SimCharger:
    """One charger and its people. run() returns when every lane is done and the journal empty
    (or when cancelled at the fleet's deadline)."""

    def __init__(self, n, sessions, chg, url, clock, state_dir, fingerprint, tls_files=None,
                 certs=None, reader_port=None, meter_port=None, log=None, uplink=None,
                 operator=OPERATOR, recorder=None, persist=True, remote=None):
        """remote: the hub's remote(op, evse_id, **kw) (host_sim/hub/server.py), which calls
        the CPO endpoint as Hubject; needed by remote_start/remote_stop steps."""
        self.n = n
        self.remote = remote
        self.clock = clock
        self.cfg = charger_config(n, chg, url, tls_files, uplink, operator)
        self.id = self.cfg["charger_id"]
        self.dir = os.path.join(state_dir, self.id)
        os.makedirs(self.dir, exist_ok=True)
        self.tap_s = chg["tap_ms"] / 1000
        self.hold_s = self.cfg["reader"]["hold_ms"] / 1000
        self.sessions = sessions
        self.lanes = {}
        for k, s in enumerate(sessions):
            self.lanes.setdefault(s["lane"], []).append(k)
        self.live = [Live(clock) for _ in range(chg["evses"])]
        self.meters = [VirtualMeter(chg["meter"], i + 1, self.live[i])
                       for i in range(chg["evses"])]
        self.pn = VirtualPn532()
        self.real_reader = reader_port is not None
        self.real_meter = meter_port is not None
        self.seen_s = _PERSON_S if self.real_reader and n == 0 else _SEEN_S
        self._log = log or (lambda text: None)
        self.board = HostBoard(self.cfg, self.dir, clock.speed, reader_port, meter_port,
                               self.pn, Bus(self.meters), certs, echo=self._log)
        self.agent = Agent(self.cfg, self.board)
        if recorder is not None:
            recorder.wrap(self.id, self.agent.uplink)
        self.opened = {}  # card -> EVSE index, set when the hub's answer opens its session
        self.refused = {}  # card -> (OICP code, reason) of the hub's last no to it
        self.expectations = []  # {"charger", "card", "expect", "got", "ok"} per expect checked
        self._told = set()  # cards whose unexpected refusal stderr has shown
        self._hook()
        self.path = os.path.join(self.dir, "sim.json")
        self.persist = persist  # False: no resume (no --state), so the cursor is not written
        self.cur = self._load_cursor(fingerprint)
        self.booted = asyncio.Event()
        self._tap_lock = asyncio.Lock()
        self._last_tap = (None, -1e9)  # (card, real time it left the reader)
        self._saved = 0.0
        self.finished = False

    # --- counting and state ------------------------------------------------------------------

    def _hook(self):
        """Count what this run journals, delivers and fails (wrapping this charger's Journal);
        note which EVSE each authorization opened (a session may close again before anyone
        looks: an EV wait shorter than a tap at a high speed)."""
        j = self.agent.journal
        self._left = 0
        failed = j.failed

        def _failed(mid, reason):  # the simulator's log line; the counts are the journal's
            dead = failed(mid, reason)
            if dead:
                self._log("[%s] message failed for good: %s" % (self.id, reason))
            return dead

        j.failed = _failed
        ch = self.agent.charger
        authorized = ch.authorized

        def _authorized(i, reply):
            authorized(i, reply)
            s = ch.evses[i]
            if s.state not in (IDLE, AUTHORIZING):
                self.opened[s.uid] = i
        ch.authorized = _authorized
        auth_failed = ch.authorize_failed

        def _authorize_failed(i, reason):
            uid = ch.evses[i].uid
            auth_failed(i, reason)
            code = refusal_code(reason)
            if code is not None:  # the hub answered no (not: it could not be reached)
                self.refused[uid] = (code, str(reason))
        ch.authorize_failed = _authorize_failed
        boot = ch.boot

        def _boot(readings):
            self._left = j.count()  # left by an earlier run: still to deliver
            boot(readings)
            self.booted.set()
        ch.boot = _boot

    def _load_cursor(self, fingerprint):
        cur = read_json(self.path)
        if cur is not None and cur.get("plan") != fingerprint:
            raise ValueError("--state %s: made by another scenario, --sessions or --chargers "
                             "(plan %s, this run %s); use a new directory"
                             % (self.dir, cur.get("plan"), fingerprint))
        if cur is None:
            return {"plan": fingerprint, "lanes": {str(L): {"next": 0, "step": 0, "left": None,
                                                            "evse": None, "sid": None}
                                                   for L in self.lanes},
                    "world": None}
        if cur["world"]:
            for live, meter, w in zip(self.live, self.meters, cur["world"], strict=True):
                live.load(w)
                meter.fault = w["fault"]
        return cur

    def save(self, force=True):
        now = time.monotonic()
        if not self.persist or not force and now - self._saved < _SAVE_S:
            return
        self._saved = now
        self.cur["world"] = [dict(live.save(), fault=m.fault)
                             for live, m in zip(self.live, self.meters, strict=True)]
        write_json(self.path, self.cur)

    @property
    def done(self):
        return sum(c["next"] for c in self.cur["lanes"].values())

    @property
    def counts(self):
        """What this run journaled (with what an earlier run left), delivered and failed."""
        s = self.agent.journal.stats
        return {"journaled": self._left + s["journaled"], "delivered": s["delivered"],
                "failed": s["failed"]}

    def pending(self):
        return self.agent.journal.count()

    # --- what the charger shows -----------------------------------------------------------------

    def _evse(self, card, states=None):
        """Index of the EVSE whose session belongs to card (in states if given), else None."""
        for i, s in enumerate(self.agent.charger.evses):
            if s.uid == card and s.state != IDLE and (states is None or s.state in states):
                return i
        return None

    def open(self, card):
        """The EVSE of the card's authorized or charging session, else None."""
        i = self._evse(card)
        return None if i is None or self.agent.charger.evses[i].state == AUTHORIZING else i

    # --- the run --------------------------------------------------------------------------------

    async def run(self, delay_s=0.0):
        """delay_s: real seconds before the charger is switched on (a fleet's chargers are
        not switched on, nor their meters polled, all in the same instant)."""
        await asyncio.sleep(delay_s)
        agent = asyncio.ensure_future(self.agent.run())
        try:
            await _first(self.booted.wait(), agent)
            await asyncio.gather(*(self._lane(L) for L in sorted(self.lanes)))
            while self.pending():  # the people are done; the link delivers what is left
                await _first(asyncio.sleep(_TICK_S), agent)
            self.finished = True
        finally:
            agent.cancel()
            await asyncio.gather(agent, return_exceptions=True)
            if self.lanes:
                self.save()

    async def _lane(self, lane):
        cur = self.cur["lanes"][str(lane)]
        order = self.lanes[lane]
        while cur["next"] < len(order):
            s = self.sessions[order[cur["next"]]]
            while cur["step"] < len(s["steps"]):
                await self._step(s, s["steps"][cur["step"]], cur)
                cur["step"] += 1
                cur["left"] = None
                self.save()
            cur.update(next=cur["next"] + 1, step=0, evse=None, sid=None)
            self.save()

    async def _step(self, s, step, cur):
        (what, arg), = step.items()
        card = s["card"]
        if what == "wait":
            if arg == "closed":
                while (self._evse(card) if card else self._remote_open(cur)) is not None:
                    await asyncio.sleep(_TICK_S)
                return
            end = self.clock.now() + (arg if cur["left"] is None else cur["left"])
            # in steps of the cursor saves when it is kept (--state), else at once
            step = _SAVE_S if self.persist else float("inf")
            while self.clock.now() < end:
                await asyncio.sleep(min(step, (end - self.clock.now()) / self.clock.speed))
                cur["left"] = max(0.0, end - self.clock.now())
                self.save(False)
        elif what == "tap":
            await (self._start(s, cur) if arg == "start" else self._stop(card))
        elif what == "remote_start":
            await self._remote_start(s, arg, cur)
        elif what == "remote_stop":
            await self._remote_stop(s, cur)
        else:
            i = cur["evse"]
            if i is None or self.real_meter and self.n == 0:
                return  # no session opened (start refused for good), or a real meter
            if what == "plug":
                self.live[i].plug(arg)
            elif what == "unplug":
                self.live[i].reading()
                self.live[i].ev.unplug()
            else:
                self.meters[i].fault = arg
            self.save()

    async def _tap(self, card, seen):
        """Hold the card on the virtual reader until seen() or for tap_ms (real time: the reader
        polls in real time), the reader's hold time after this card's last tap (else it is the
        same tap)."""
        async with self._tap_lock:
            last, t = self._last_tap
            wait = t + self.hold_s + 0.1 - time.monotonic()
            if last == card and wait > 0:
                await asyncio.sleep(wait)
            if self.real_reader and self.n == 0:
                ask = "[%s] tap card %s on the reader" % (self.id, card)
                self._log(ask)
                print(ask, file=sys.stderr, flush=True)  # a person is at the reader
            else:
                self.pn.card = card
                t0 = time.monotonic()
                while not seen() and time.monotonic() - t0 < self.tap_s:
                    await asyncio.sleep(_TICK_S)
                self.pn.card = None
            self._last_tap = (card, time.monotonic())

    async def _start(self, s, cur):
        """Tap until the card's session is open (authorized or charging); a refusal or a failed
        authorization (hub down) makes the person try again after RETRY_S, and a refusal is
        said on stderr. A session that expects a refusal taps once per hub answer: a refusal
        meets it (the session's other steps have no EVSE then), an acceptance misses it."""
        card = s["card"]
        while True:
            i = self.open(card)
            if i is not None:
                cur["evse"] = i
                return
            self.opened.pop(card, None)
            self.refused.pop(card, None)
            await self._tap(card, lambda: card in self.opened or card in self.refused
                            or self._evse(card) is not None)
            t0 = time.monotonic()
            while card not in self.opened and card not in self.refused and (
                    self._evse(card, (AUTHORIZING,)) is not None
                    or time.monotonic() - t0 < self.seen_s):
                await asyncio.sleep(_TICK_S)
            ref = self.refused.get(card)
            if card in self.opened:
                cur["evse"] = self.opened[card]
                if s.get("expect") == "refused":
                    self._expect(s, "accepted", False)
                return
            if ref is not None and s.get("expect") == "refused":
                want = s.get("expect_code")
                self._expect(s, "refused " + ref[0], want is None or want == ref[0])
                return
            if ref is not None and card not in self._told:
                self._told.add(card)
                print("[%s] card %s refused by the hub (%s); the scenario expects it accepted: "
                      "tapping again every %d virtual s until the deadline (a scenario session "
                      "with \"expect\": \"refused\" says a card must be refused)"
                      % (self.id, card, ref[1], RETRY_S), file=sys.stderr, flush=True)
            await self.clock.sleep(RETRY_S)

    def _remote_open(self, cur):
        """The EVSE of the lane's remote session (the SessionID the hub made), else None."""
        i = cur["evse"]
        if i is None or not cur.get("sid"):
            return None
        e = self.agent.charger.evses[i]
        return i if e.state != IDLE and e.session_id == cur["sid"] else None

    async def _remote(self, op, i, provider, **kw):
        """The hub's call to the CPO endpoint for EVSE i; the code ("000" yes), said on stderr
        when it is not a yes."""
        ev = self.cfg["evses"][i]["evse_id"]
        rec = await self.remote(op, ev, provider_id=provider, **kw)
        if rec["code"] != "000":
            text = "[%s] remote %s on %s: %s %s" % (self.id, op, ev, rec["code"] or "no answer",
                                                    rec["error"] or rec["body"])
            self._log(text)
            print(text[:300], file=sys.stderr, flush=True)
        return rec

    async def _remote_start(self, s, arg, cur):
        """The hub starts a session on the lane's EVSE from an app (no tap); asked again after
        RETRY_S while the answer is not a yes (the relay's 501 while the charger connects)."""
        i = s["lane"]
        while self._remote_open(dict(cur, evse=i)) is None:
            rec = await self._remote("start", i, arg["provider_id"], evco_id=arg["evco_id"])
            if rec["code"] == "000":
                cur["sid"] = rec["session_id"]
                break
            await self.clock.sleep(RETRY_S)
        cur["evse"] = i

    async def _remote_stop(self, s, cur):
        """The hub stops the lane's remote session from the app, until the charger ended it."""
        provider = next(x["remote_start"] for x in s["steps"]
                        if "remote_start" in x)["provider_id"]
        while self._remote_open(cur) is not None:
            rec = await self._remote("stop", cur["evse"], provider, session_id=cur["sid"])
            t0 = time.monotonic()
            while self._remote_open(cur) is not None and time.monotonic() - t0 < self.seen_s:
                await asyncio.sleep(_TICK_S)
            if rec["code"] != "000" and self._remote_open(cur) is not None:
                await self.clock.sleep(RETRY_S)

    def _expect(self, s, got, ok):
        want = "refused" + (" " + s["expect_code"] if s.get("expect_code") else "")
        self.expectations.append({"charger": self.id, "card": s["card"], "expect": want,
                                  "got": got, "ok": ok})

    async def _stop(self, card):
        while self._evse(card) is not None:
            await self._tap(card, lambda: self._evse(card) is None)
            t0 = time.monotonic()
            while self._evse(card) is not None and time.monotonic() - t0 < self.seen_s:
                await asyncio.sleep(_TICK_S)


async def _first(aw, agent):
    """Await aw unless the agent's run ends first (it never should: then raise its error)."""
    t = asyncio.ensure_future(aw)
    await asyncio.wait((t, agent), return_when=asyncio.FIRST_COMPLETED)
    if not t.done():
        t.cancel()
        agent.result()
        raise RuntimeError("agent.run() returned")
