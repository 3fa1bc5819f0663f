"""Charger + journal + HttpUplink + Link against the real mock hub: plain HTTP and mutual TLS,
a hub outage of every kind (refused, timing out, dropped, 5xx, 429, garbage) with no loss, no
effective duplicate and no reordering, the loop's longest stall measured, and 017 stopping it."""
import asyncio
import os
import ssl
import time

import pytest

from cpagent.charger import Charger
from cpagent.clock import Clock
from cpagent.fsio import OsFs
from cpagent.journal import Journal
from cpagent.session import AUTHORIZED, IDLE
from cpagent.uplink.http import HttpUplink
from cpagent.uplink.link import Link
from host_sim import certs
from host_sim.hub import Hub

OP = "DE*ABC"
CARDS = ["04A1B2C3D4E5F6", "A1B2C3D4", "11223344", "55667788"]
CFG = {"charger_id": "cp-1", "operator_id": OP,
       "evses": [{"evse_id": "DE*ABC*E0001*%d" % i} for i in (1, 2, 3)],
       "timing": {"progress_s": 300, "ev_wait_s": 600, "authorize_timeout_s": 15,
                  "start_power_w": 100, "stop_power_w": 50, "stop_hold_s": 120},
       "journal": {"save_wh": 1000}}
STALL_BOUND_S = 0.2  # the longest extra gap a 10 ms ticker may see during the outage


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


def test_sessions_over_plain_http_then_an_outage_of_every_kind(tmp_path):
    async def main():
        return await on_mock_hub(tmp_path, scenario)

    async def scenario(hub, box):
        await box.full_session(0, CARDS[0])
        check_hub(hub, 1)
        assert box.link.state == "up" and box.warned == []
        # Two sessions authorized while the hub is fine; everything else happens in the outage.
        await box.authorize(0, CARDS[0])
        await box.authorize(1, CARDS[1])
        stall = [0.0]
        ticking = [True]

        async def ticker():
            while ticking[0]:
                t = time.perf_counter()
                await asyncio.sleep(0.01)
                stall[0] = max(stall[0], time.perf_counter() - t - 0.01)
        tick = asyncio.create_task(ticker())
        await hub.refuse()
        for i in (0, 1):
            box.charge_and_stop(i, CARDS[i])
        assert len([m for m in box.pending() if m[1] != "Status"]) == 6
        await box.until(lambda: box.link.stats["retries"] >= 4, "retries while refused")
        # A tap in the outage is read and answered at once (not queued behind the backoff).
        box.event(box.ch.tap, CARDS[2], 2)
        await box.until(lambda: any("authorization failed: hub unreachable" in t
                                    for _i, t in box.ch.shown), "tap answered in the outage")
        assert box.ch.evses[2].state == IDLE
        for kind, n, kw in (("latency", 2, {"seconds": 1.5}), ("drop", 1, {"process": True}),
                            ("5xx", 2, {}), ("429", 1, {"retry_after": 2}),
                            ("garbage", 2, {})):
            await hub.add_fault(kind, n, **kw)
        await hub.resume()
        await box.until(lambda: not box.pending(), "all delivered after the outage")
        ticking[0] = False
        await tick
        reasons = [r[1] for r in box.up.results if r[0] in ("retry", "hold", "nothub")]
        for what in ("hub unreachable", "no complete reply in 1000 ms", "connection closed",
                     "HTTP 503", "HTTP 429", "not the hub's answer: HTTP 200"):
            assert any(what in r for r in reasons), (what, reasons)
        assert [r for r in box.up.results if r[2] == 2000], "the 429's Retry-After"
        sessions = check_hub(hub, 3)
        assert sum(s["duplicates"] for s in sessions) >= 1  # retries after lost replies
        assert box.link.state == "up" and box.link.stats["failed"] == 0
        print("longest loop stall during the outage: %.1f ms" % (stall[0] * 1000))
        assert stall[0] < STALL_BOUND_S

    asyncio.run(main())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return certs.make_test_pki(str(tmp_path_factory.mktemp("pki")), (OP, "DE*XYZ"))


def client_ctx(pki, operator):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.load_cert_chain(*pki["clients"][operator])
    return ctx


def test_sessions_over_mutual_tls(tmp_path, pki):
    async def main():
        hub = Hub(cards=CARDS, tls=pki["dir"])
        url = await hub.start()  # its certificate names 127.0.0.1 too
        box = Box(tmp_path, url, client_ctx(pki, OP), timeout_s=5)
        try:
            async def body():
                await box.full_session(0, CARDS[0])
                await box.full_session(1, CARDS[1])
            await with_link(box, body)
            check_hub(hub, 2)
            assert {e["cn"] for e in hub.exchanges} == {OP}
        finally:
            await hub.stop()
    asyncio.run(main())


def test_a_client_certificate_of_another_operator_stops_the_link(tmp_path, pki):
    async def main():
        hub = Hub(cards=CARDS, tls=pki["dir"])
        url = await hub.start()
        box = Box(tmp_path, url, client_ctx(pki, "DE*XYZ"), timeout_s=5)
        try:
            async def body():
                box.event(box.ch.tap, CARDS[0], 0)
                await box.until(lambda: box.link.state == "stopped", "stopped")
                assert box.ch.evses[0].state == IDLE
                assert "017" in box.link.stats["last_error"]
                box.event(box.ch.tap, CARDS[1], 1)
                await box.until(lambda: box.ch.shown[-1] == (
                    1, "authorization failed: link stopped"), "second tap refused")
                for _ in range(20):
                    await asyncio.sleep(0.005)
            await with_link(box, body)
            assert [(e["operation"], e["code"]) for e in hub.exchanges] == [
                ("AuthorizeStart", "017")]  # and nothing more was sent
        finally:
            await hub.stop()
    asyncio.run(main())
