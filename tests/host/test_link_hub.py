"""Charger + journal + HttpUplink + Link against the real mock hub: plain HTTP and mutual TLS,
a hub outage of every kind (refused, timing out, dropped, 5xx, 429, garbage) with no loss, no
effective duplicate and no reordering, the loop's longest stall measured, and 017 stopping it."""
import asyncio
import ssl
import time

import pytest
from linkhub import CARDS, OP, Box, check_hub, on_mock_hub, with_link

from cpagent.session import IDLE
from host_sim import certs
from host_sim.hub import Hub

STALL_BOUND_S = 0.2  # the longest extra gap a 10 ms ticker may see during the outage


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
