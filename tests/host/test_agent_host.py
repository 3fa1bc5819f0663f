"""A whole charger (Agent + HostBoard, virtual PN532 and two virtual meters with EVs) against the
mock hub over plain HTTP and mutual TLS at 100x; a restart mid-session closes it exactly once."""
import asyncio
import json
import os
import time
from decimal import Decimal

import pytest
from meterbus import Bus
from minihub import MiniHub

from cpagent import config
from cpagent.agent import Agent
from cpagent.boards.host import HostBoard
from host_sim import certs
from host_sim.hub.server import Hub
from host_sim.virtual.ev import EvLoad, RealTime
from host_sim.virtual.pn532 import VirtualPn532

OP = "DE*ABC"
CARDS = ("04A1B2C3D4E5F6", "A1B2C3D4")
SPEED = 100  # 300 s of board time (one Progress) in 3 s


def Car(start_wh=0):
    """A car on the virtual time (monotonic x SPEED) that survives agent restarts; start_wh: the
    meter's lifetime counter before it."""
    return RealTime(EvLoad(max_w=7400, ramp_s=5, start_wh=start_wh), SPEED)


class Rig:
    """One charger's devices and flash, and the agent (restartable) over them; model and
    start_wh: its two meters'."""

    def __init__(self, tmp, url, pki=None, model="sdm630", start_wh=0):
        u = {"kind": "http", "url": url, "timeout_s": 10}
        if pki:
            cert, key = (os.path.basename(p) for p in pki["clients"][OP])
            u.update(ca="ca.pem", cert=cert, key=key)  # relative to the board's certs folder
        self.cfg = config.load(json.dumps({
            "charger_id": "cp-1", "operator_id": OP,
            "evses": [{"evse_id": "DE*ABC*E0001*1", "meter_address": 1},
                      {"evse_id": "DE*ABC*E0001*2", "meter_address": 2}],
            "reader": {"type": "pn532", "hold_ms": 500},
            "meter": {"model": model, "timeout_ms": 200}, "uplink": u,
            "timing": {"poll_s": 5, "authorize_timeout_s": 120, "ev_wait_s": 600},
            "log_level": 2}))
        self.pki = pki
        self.state = os.path.join(tmp, "state")
        self.cars = [Car(start_wh), Car(start_wh)]
        self.reader = VirtualPn532()
        self.bus = Bus(self.cars, model)
        self.lines = []
        self.agent = self.task = None

    def start(self):
        board = HostBoard(self.cfg, self.state, speed=SPEED, reader_dev=self.reader,
                          meter_dev=self.bus, certs=self.pki and self.pki["dir"],
                          echo=self.lines.append)
        self.agent = Agent(self.cfg, board)
        self.task = asyncio.create_task(self.agent.run())

    async def stop(self):
        self.task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self.task

    async def tap(self, card):
        self.reader.card = card
        await asyncio.sleep(0.45)  # a few 200 ms reader polls, each within hold_ms of the last
        self.reader.card = None
        await asyncio.sleep(0.6)  # gone longer than hold_ms: the next sighting is a new tap

    async def until(self, cond, what, limit=30.0):
        end = time.monotonic() + limit
        while not cond():
            if self.task.done() or time.monotonic() > end:
                raise AssertionError("never happened: %s\n%s" % (what, "\n".join(self.lines)))
            await asyncio.sleep(0.02)

    def states(self):
        return [s.state for s in self.agent.charger.evses]


def types(session):
    return [n["Type"] for n in session["notifications"]]


def closed(hub, n):
    s = hub.sessions()
    return len(s) == n and all(x["cdr"] for x in s)


async def full_sessions(tmp, pki=None):
    hub = Hub(tls=pki and pki["dir"], cards=CARDS)
    url = await hub.start()
    rig = Rig(tmp, url, pki)
    try:
        rig.start()
        for i, card in enumerate(CARDS):  # one reader, two cards: each takes a free EVSE
            await rig.tap(card)
            await rig.until(lambda i=i: rig.states()[i] == "authorized", "authorized %d" % i)
            rig.cars[i].ev.plug()
            rig.cars[i].ev.start()
        await rig.until(lambda: all("Progress" in types(s) for s in hub.sessions()),
                        "a Progress of each session")
        for card in CARDS:
            await rig.tap(card)
        await rig.until(lambda: closed(hub, 2) and rig.agent.stats()["pending"] == 0, "CDRs")
        assert rig.states() == ["idle", "idle"]
        for s, card in zip(hub.sessions(), CARDS, strict=True):
            assert types(s) == ["Start", "Progress", "End"], s
            assert s["Identification"]["RFIDMifareFamilyIdentification"] == card
            assert s["errors"] == 0 and s["duplicates"] == 0
            assert s["cdr"]["ConsumedEnergy"] > 0
        st = rig.agent.stats()
        # 8 session messages, and the EVSEs' status pushes (latest wins: some superseded)
        pushed = [e for e in hub.exchanges if e["operation"] == "PushEvseStatus"]
        assert len(pushed) >= 2 and {e["code"] for e in pushed} == {"000"}
        assert st["delivered"] == 8 + len(pushed) and st["failed"] == 0 and st["restarts"] == 0
        assert not [ln for ln in rig.lines if "crashed" in ln or "link:" in ln], rig.lines
        return hub, rig
    finally:
        if rig.task:
            await rig.stop()
        await hub.stop()


def test_full_sessions_over_plain_http(tmp_path):
    asyncio.run(full_sessions(str(tmp_path)))


def test_full_sessions_over_mutual_tls(tmp_path):
    pki = certs.make_test_pki(str(tmp_path / "pki"), (OP,))
    asyncio.run(full_sessions(str(tmp_path), pki))


def test_a_restart_mid_session_resumes_and_closes_it_once(tmp_path):
    async def go():
        hub = Hub(cards=CARDS)
        url = await hub.start()
        rig = Rig(str(tmp_path), url)
        try:
            rig.start()
            await rig.tap(CARDS[0])
            await rig.until(lambda: rig.states()[0] == "authorized", "authorized")
            rig.cars[0].ev.plug()
            rig.cars[0].ev.start()
            await rig.until(lambda: hub.sessions() and types(hub.sessions()[0]) == ["Start"],
                            "Start at the hub")
            await rig.stop()  # the power goes while charging
            first = rig.agent
            rig.start()
            await rig.until(lambda: rig.agent.clock.known, "boot")
            assert rig.agent is not first and rig.states() == ["charging", "idle"]
            wh = rig.cars[0].ev.energy_wh
            await rig.until(lambda: rig.agent.bus.last[0] and rig.agent.bus.last[0][0] > wh,
                            "energy after the restart")
            await rig.tap(CARDS[0])
            await rig.until(lambda: closed(hub, 1) and rig.agent.stats()["pending"] == 0,
                            "the CDR")
            s = hub.sessions()[0]
            assert types(s) == ["Start", "End"] and s["errors"] == 0
            assert s["cdr"]["ConsumedEnergy"] > 0 and s["cdr"]["MeterValueEnd"] * 1000 > wh
            assert any("session resumed" in ln for ln in rig.lines)
            kinds = [e.get("operation") for e in hub.exchanges]
            assert kinds.count("ChargeDetailRecord") == 1
        finally:
            if rig.task and not rig.task.done():
                await rig.stop()
            await hub.stop()
    asyncio.run(go())


def test_a_foreign_hub_reads_the_energy_as_exact_json_numbers(tmp_path):
    """The minimal hub of tests/host/minihub.py (none of the mock hub's code) gets the bodies
    as they went over HTTP; read with Decimal, not float, every energy field is a JSON number
    (not text), in kWh with the meter's own digits, and End - Start is ConsumedEnergy to the
    last digit. The meters are ABB B23s (integer registers, 10 Wh steps) at 123,456,780 Wh:
    past a float32's 7 digits (a device's), where 123456.78 would go out as 123456.8."""
    start = 123456780

    async def go():
        with MiniHub(CARDS) as hub:
            rig = Rig(str(tmp_path), hub.url, model="abb_b23", start_wh=start)
            try:
                rig.start()
                await rig.tap(CARDS[0])
                await rig.until(lambda: rig.states()[0] == "authorized", "authorized")
                rig.cars[0].ev.plug()
                rig.cars[0].ev.start()
                await rig.until(lambda: "Progress" in sum(hub.sessions.values(), []),
                                "a Progress at the hub")
                await rig.tap(CARDS[0])
                await rig.until(lambda: "CDR" in sum(hub.sessions.values(), []) and
                                rig.agent.stats()["pending"] == 0, "the CDR")
            finally:
                await rig.stop()
            return list(hub.raw)

    raw = asyncio.run(go())
    bodies = [(op, json.loads(b, parse_float=Decimal, parse_int=Decimal)) for op, b in raw]
    kinds = {(op, b.get("Type")): b for op, b in bodies if op != "PushEvseStatus"}
    begin = Decimal(start) / 1000
    assert kinds[("ChargingNotification", "Start")]["MeterValueStart"] == begin
    progress = kinds[("ChargingNotification", "Progress")]["ConsumedEnergyProgress"]
    end, cdr = kinds[("ChargingNotification", "End")], kinds[("ChargeDetailRecord", None)]
    for body, spent in ((end, end["ConsumedEnergy"]), (cdr, cdr["ConsumedEnergy"])):
        assert body["MeterValueStart"] == begin
        assert body["MeterValueEnd"] - body["MeterValueStart"] == spent > progress > 0
    assert end["MeterValueEnd"] == cdr["MeterValueEnd"]
    between = cdr["MeterValueInBetween"]["meterValues"]
    assert between and all(isinstance(v, Decimal) for v in between)
    assert [begin] + between + [cdr["MeterValueEnd"]] == sorted([begin] + between + [
        cdr["MeterValueEnd"]])
    for op, b in bodies:
        for key in ("MeterValueStart", "MeterValueEnd", "ConsumedEnergy",
                    "ConsumedEnergyProgress"):
            if key in b:
                assert isinstance(b[key], Decimal), (op, key, b[key])  # a number, not text
                assert b[key] * 100 == int(b[key] * 100), (op, key, b[key])  # B23: 10 Wh steps


def _board(tmp, **kw):
    rig = Rig(tmp, "http://127.0.0.1:9")
    lines = []
    return HostBoard(rig.cfg, rig.state, echo=lines.append, **kw), lines


def test_host_board_time_wall_clock_rtc_log_and_ports(tmp_path):
    b, lines = _board(str(tmp_path), speed=1000, ntp_s=3600)
    t0, r0 = b.ticks_ms(), b.real_ms()

    async def nap():
        await b.sleep_ms(2000)  # 2 ms of real time at 1000x
    asyncio.run(nap())
    assert b.ticks_diff(b.ticks_ms(), t0) >= 2000 and b.ticks_diff(5, 7) == -2
    assert b.real_ms() - r0 < 2000
    assert b.wall_unix() is None  # "NTP" answers only after an hour of board time
    b.ntp_ms = 0
    w = b.wall_unix()
    assert abs(w - time.time()) < 60
    # The RTC file: a new board on the same flash goes on from the virtual wall time, which
    # ran 1000x faster than the host's clock.
    time.sleep(0.05)
    b2, _ = _board(str(tmp_path), ntp_s=0)
    assert b2.wall_unix() >= w + 40
    b.log(2, "info")  # cfg log_level is 2: shown
    b.log(3, "debug")  # filtered out
    assert lines == ["[cp-1] info"]
    assert len(b.rand_hex(4)) == 8 and b.rand_hex(4) != b.rand_hex(4)
    with pytest.raises(ValueError, match="reader port"):
        b.reader_port()
    with pytest.raises(ValueError, match="speed"):
        _board(str(tmp_path), speed=0)


def test_device_port_answers_writes_and_waits_for_reads():
    from cpagent.boards.host import DevicePort

    async def go():
        p = DevicePort(lambda data: data.upper())
        got = asyncio.ensure_future(p.read(10))
        await asyncio.sleep(0.01)
        assert not got.done()  # nothing written: the read waits
        p.write(b"abc")
        await p.drain()
        assert await got == b"ABC"
        p.write(b"xyz")
        assert await p.read(2) == b"XY" and await p.read(5) == b"Z"
    asyncio.run(go())
