"""Charger cores on the mock hub through the link, in a box; what the hub got, checked."""
import asyncio
import os
import time

import pytest

from cpagent.charger import Charger
from cpagent.clock import Clock
from cpagent.fsio import OsFs
from cpagent.journal import Journal
from cpagent.session import AUTHORIZED, IDLE
from cpagent.uplink.http import HttpUplink
from cpagent.uplink.link import Link
from host_sim.hub import Hub

OP = "DE*ABC"
CARDS = ["04A1B2C3D4E5F6", "A1B2C3D4", "11223344", "55667788"]
CFG = {"charger_id": "cp-1", "operator_id": OP,
       "evses": [{"evse_id": "DE*ABC*E0001*%d" % i} for i in (1, 2, 3)],
       "timing": {"progress_s": 300, "ev_wait_s": 600, "authorize_timeout_s": 15,
                  "start_power_w": 100, "stop_power_w": 50, "stop_hold_s": 120},
       "journal": {"save_wh": 1000}}


def make_connect(ctx):
    """board.connect() for the host: asyncio streams, TLS from ctx (verifies the hub, shows
    the client certificate)."""
    async def connect(host, port, tls):
        if tls:
            return await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)
        return await asyncio.open_connection(host, port)
    return connect


def ticks_ms():
    return int(time.monotonic() * 1000)


class Rec:
    """An uplink that records every Result it hands the link."""

    def __init__(self, uplink):
        self.uplink, self.results = uplink, []

    async def send(self, path, body, msg_id=None):
        r = await self.uplink.send(path, body, msg_id)
        self.results.append(r)
        return r


class Box:
    """One charger: journal on disk, real clock, the link on a fast fake sleep."""

    def __init__(self, tmp, url, ctx=None, timeout_s=1):
        self.journal = Journal(OsFs(), str(tmp / "journal")).load()
        self.clock = Clock(ticks_ms, lambda a, b: a - b, self.journal.boot)
        self.clock.set_unix(int(time.time()))
        self.ch = Charger(CFG, self.journal, self.clock)
        self.ch.boot([None, None, None])
        self.warned = []
        self.up = Rec(HttpUplink({"url": url, "timeout_s": timeout_s}, make_connect(ctx),
                                 ticks_ms, lambda lv, t: self.warned.append(t)))
        self.slept = []
        self.link = Link(self.ch, self.up, self.sleep_ms, lambda n: os.urandom(n).hex(),
                         lambda t: self.ch.shown.append((None, t)))

    async def sleep_ms(self, ms):
        self.slept.append(ms)
        await asyncio.sleep(0.002)  # board time runs fast: backoffs of minutes take 2 ms

    def event(self, fn, *args):
        fn(*args)
        self.link.kick()

    async def until(self, cond, what, seconds=20):
        end = time.monotonic() + seconds
        while not cond():
            if time.monotonic() > end:
                raise AssertionError("timed out waiting for " + what)
            await asyncio.sleep(0.005)

    def pending(self):
        return self.journal.pending()

    async def authorize(self, i, uid):
        self.event(self.ch.tap, uid, i)
        await self.until(lambda: self.ch.evses[i].state == AUTHORIZED, "authorized %d" % i)

    def charge_and_stop(self, i, uid):
        self.event(self.ch.meter, i, 12000, 7400)  # power: charging starts
        self.event(self.ch.meter, i, 15500, 7400)
        self.event(self.ch.tap, uid)

    async def full_session(self, i, uid):
        await self.authorize(i, uid)
        self.charge_and_stop(i, uid)
        await self.until(lambda: not self.pending() and self.ch.evses[i].state == IDLE,
                         "session %d delivered" % i)


def check_hub(hub, n):
    """n sessions, each with one Start, one End and one CDR, taking effect in that order."""
    sessions = hub.sessions()
    assert len(sessions) == n
    for s in sessions:
        assert [x["Type"] for x in s["notifications"]] == ["Start", "End"], s
        assert s["cdr"] is not None and s["state"] == "closed" and s["errors"] == 0, s
        took = []  # what took effect, in the hub's order (a repeat changes nothing there)
        for e in hub.exchanges:
            if e["session_id"] == s["SessionID"] and e["code"] == "000":
                what = e["operation"] + "/" + e["request"].get("Type", "")
                if what not in took:
                    took.append(what)
        assert took == ["AuthorizeStart/", "ChargingNotifications/Start",
                        "ChargingNotifications/End", "ChargeDetailRecord/"], took
    return sessions


async def with_link(box, body):
    task = asyncio.create_task(box.link.run())
    try:
        return await body()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def on_mock_hub(tmp_path, scenario):
    """scenario(hub, box) with one charger's link running against a fresh plain-HTTP mock hub."""
    hub = Hub(cards=CARDS)
    url = await hub.start()
    box = Box(tmp_path, url)
    try:
        await with_link(box, lambda: scenario(hub, box))
    finally:
        await hub.stop()
    return box
