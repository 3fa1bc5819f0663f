"""The whole agent in real MicroPython (tools/mpy_agent.mjs: main.py, boards/wasm.py in Node)
against the mock hub, with the virtual PN532 and meters behind TCP bridges: two sessions on two
EVSEs with a power cut (kill -9, a new process over the same flash) while both are charging;
a bad config stops the runner (status 2), a fatal error resets the board (status 3)."""
import json
import os
import subprocess
import threading
import time

from meterbus import Bus

from cpagent import config as fw_config
from host_sim.hub.server import HubThread
from host_sim.virtual.ev import EvLoad, RealTime
from host_sim.virtual.pn532 import VirtualPn532
from host_sim.virtual.tcp_bridge import TcpBridge

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNNER = os.path.join(ROOT, "tools", "mpy_agent.mjs")
CARDS = ("04A1B2C3D4E5F6", "A1B2C3D4")
HOLD_MS = 500


def Car():
    """A car that outlives the charger's processes, as a real one does; 6 Wh a second, so
    seconds show on the meter."""
    return RealTime(EvLoad(max_w=22000, ramp_s=1))


def config(url, **over):
    c = {"charger_id": "cp-wasm", "operator_id": "DE*ABC",
         "evses": [{"evse_id": "DE*ABC*E0001*1", "meter_address": 1},
                   {"evse_id": "DE*ABC*E0001*2", "meter_address": 2}],
         "reader": {"type": "pn532", "hold_ms": HOLD_MS},
         "meter": {"model": "sdm630", "timeout_ms": 300},
         "uplink": {"kind": "http", "url": url, "timeout_s": 5},
         "timing": {"poll_s": 1, "authorize_timeout_s": 30, "ev_wait_s": 600},
         "log_level": 2}
    c.update(over)
    return c


class Charger:
    """The Node process running the agent: start() over the flash folder, cut() = power cut."""

    def __init__(self, tmp, cfg, ports=None, checked=True):
        self.flash = os.path.join(tmp, "flash")
        self.cfg_path = os.path.join(tmp, "config.json")
        with open(self.cfg_path, "w") as f:  # as make deploy writes it, unless not `checked`
            f.write(fw_config.checked(fw_config.load(json.dumps(cfg))) if checked
                    else json.dumps(cfg))
        self.args = ["node", RUNNER, "--flash", self.flash, "--config", self.cfg_path]
        for name, port in (ports or {}).items():
            self.args += ["--" + name, "127.0.0.1:%d" % port]
        self.lines = []
        self.proc = self.reading = None
        self.boots = 0

    def start(self):
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self.boots += 1
        self.reading = threading.Thread(target=self._read, args=(self.proc, self.boots),
                                        daemon=True)
        self.reading.start()

    def wait(self, limit):
        """The exit status, once the process ended and its last line was read."""
        code = self.proc.wait(limit)
        self.reading.join(limit)
        return code

    def _read(self, proc, boot):
        for line in proc.stdout:
            self.lines.append((boot, line.rstrip("\n")))

    def cut(self):
        self.proc.kill()  # SIGKILL: nothing gets to run, as when the power goes
        self.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.cut()

    def log(self, boot=None):
        return [t for b, t in self.lines if boot is None or b == boot]

    def text(self):
        return "\n".join("%d| %s" % bt for bt in self.lines)


def until(cond, what, charger, limit=20.0):
    end = time.monotonic() + limit
    while not cond():
        if charger.proc.poll() is not None or time.monotonic() > end:
            raise AssertionError("never happened: %s (node exit %r)\n%s"
                                 % (what, charger.proc.poll(), charger.text()))
        time.sleep(0.05)


def tap(charger, reader, card):
    """A card on the antenna until the agent logs the tap, then gone longer than hold_ms, so
    that the next sighting is a new tap."""
    n = charger.log().count("[cp-wasm] tap " + card)
    reader.card = card
    until(lambda: charger.log().count("[cp-wasm] tap " + card) > n, "tap " + card, charger)
    reader.card = None
    time.sleep((HOLD_MS + 300) / 1000)  # a lower bound on the card's absence, not a guess


class Run:
    """What two_sessions() saw: the charger (its log), the bridge and devices, the hub's final
    sessions and exchanges, each car's Wh at the cut."""


def two_sessions(tmp, extra=()):
    """The scenario, also run by tools/bench/agent_heap_e2e.py (extra: runner options): two
    cards start two sessions; the power is cut while both charge; after the restart, each card
    stops its session; returns once the hub has both CDRs."""
    r = Run()
    r.cars = cars = [Car(), Car()]
    r.bus = bus = Bus(cars)
    r.reader = reader = VirtualPn532()
    r.bridge = TcpBridge({"reader": reader, "meter": bus})
    with HubThread(cards=CARDS) as h, r.bridge as ports:
        r.charger = ch = Charger(tmp, config(h.url), ports)
        ch.args += list(extra)
        sessions = lambda: h.call(h.hub.sessions)  # noqa: E731

        def notes(i):
            s = sessions()
            return [n["Type"] for n in s[i]["notifications"]] if len(s) > i else None

        try:
            ch.start()
            for i, card in enumerate(CARDS):  # one reader, two cards: each takes a free EVSE
                tap(ch, reader, card)
                until(lambda i=i: len(sessions()) > i and sessions()[i]["state"] == "authorized",
                      "session %d authorized" % i, ch)
                cars[i].ev.plug()
                cars[i].ev.start()
                until(lambda i=i: notes(i) == ["Start"], "Start of session %d" % i, ch)
            # The power goes while both charge; the journal on the flash folder is all that
            # survives. The new process resumes both sessions and reads the meters again.
            ch.cut()
            r.wh = wh = [c.ev.energy_wh for c in cars]
            ch.start()
            until(lambda: all(c.ev.energy_wh > w + 10 for c, w in zip(cars, wh, strict=True)),
                  "energy after the cut", ch)
            polls = [m.requests for m in bus.meters]
            until(lambda: all(m.requests >= p + 2 for m, p in zip(bus.meters, polls, strict=True)),
                  "meter polls after the restart", ch)
            for card in CARDS:
                tap(ch, reader, card)
            until(lambda: len(sessions()) == 2 and all(s["cdr"] for s in sessions()),
                  "both CDRs", ch)
            r.sessions = sessions()
        finally:
            ch.stop()
        r.exchanges = h.call(lambda: h.hub.exchanges)
    return r


def test_two_sessions_with_a_power_cut_in_real_micropython(tmp_path):
    r = two_sessions(str(tmp_path))
    ch = r.charger
    assert r.bridge.error is None and r.reader.bad == 0
    assert r.bridge.connections == {"reader": 2, "meter": 2}  # one per boot
    assert ch.boots == 2
    assert any("session resumed" in t for t in ch.log(2)), ch.text()
    assert not [t for t in ch.log() if "crashed" in t or "fatal" in t], ch.text()
    for i, s in enumerate(r.sessions):
        assert s["Identification"]["RFIDMifareFamilyIdentification"] == CARDS[i]
        assert [n["Type"] for n in s["notifications"]] == ["Start", "End"], s
        assert s["errors"] == 0
        cdr = s["cdr"]
        # Energy counted on both sides of the cut: the End reading is past the cut's.
        assert cdr["ConsumedEnergy"] > 0 and cdr["MeterValueEnd"] * 1000 > r.wh[i] + 10, cdr
        # Every message took effect exactly once, in order (a resend after the cut may come
        # as a duplicate, which the hub answers without taking it again).
        taken = [what(e) for e in r.exchanges
                 if e["session_id"] == s["SessionID"] and not e["duplicate"]
                 and e["status"] == 200]
        assert taken == ["AuthorizeStart", "Start", "End", "ChargeDetailRecord"], taken


def what(exchange):
    op = exchange["operation"]
    if op == "ChargingNotifications":
        return exchange["request"]["Type"]
    return op


def test_a_config_not_checked_by_deploy_stops_with_the_field_named_and_no_reset(tmp_path):
    ch = Charger(str(tmp_path), config("http://127.0.0.1:9", log_level=7), checked=False)
    ch.start()
    assert ch.wait(30) == 2  # not started; 3 would be a reset, to be restarted
    assert any("config error" in t and "config.checked" in t for t in ch.log()), ch.text()


def test_a_fatal_error_is_logged_and_resets_the_board(tmp_path):
    ch = Charger(str(tmp_path), config("http://127.0.0.1:9", reader={"type": "none"},
                                       meter={"model": "none"}))
    os.makedirs(ch.flash)
    with open(os.path.join(ch.flash, "journal"), "w") as f:
        f.write("a file where the journal's folder belongs: the agent cannot boot")
    ch.start()
    assert ch.wait(30) == 3, ch.text()  # board.reset(): the runner's caller starts it again
    assert any(t.startswith("[cp-wasm] fatal: ") for t in ch.log()), ch.text()
