"""The agent on a fake board: a whole session from tap to delivered CDR, supervision, options."""
import asyncio
import json

from fakeboard import CARD, SID, Board, Hub, cfg
from fakemeter import abb

import check
from check import arun
from cpagent.agent import Agent


def until(board, cond, what, steps=2000):
    """Advance board time 100 ms a step (letting the loop run) until cond(); bounded."""
    return check.until(cond, what, steps, lambda: board.advance(100), 0.002)


def test_a_tap_charges_stops_and_every_message_is_delivered():
    async def go():
        b = Board({1: abb(100000, 0)})
        a = Agent(cfg(), b)
        task = asyncio.create_task(a.run())
        ev = a.charger.evses[0]
        await until(b, lambda: a.clock.known, "wall clock")
        b.card.feed(CARD.encode() + b"\n")
        await until(b, lambda: ev.state == "authorized", "authorized")
        assert b.hub.got[0][1]["Identification"]["RFIDMifareFamilyIdentification"]["UID"] == CARD
        b.bank.units[1].update(abb(100000, 700000))  # the EV draws 7 kW
        await until(b, lambda: ev.state == "charging", "charging")
        b.bank.units[1].update(abb(100250, 700000))  # 2.5 kWh later
        await until(b, lambda: a.bus.last[0][0] == 1002500, "meter reading")
        b.real += 5000  # the card comes back after the debounce hold
        b.card.feed(CARD.encode() + b"\n")
        await until(b, lambda: ev.state == "idle" and a.stats()["pending"] == 0, "all sent")
        assert b.hub.kinds() == ["Authorize", "Start", "End", "CDR"]
        sid = SID % 1
        assert [body["SessionID"] for _, body in b.hub.got[1:]] == [sid] * 3
        assert b.hub.got[2][1]["MeterValueEnd"] == 1002.5
        assert b.hub.got[3][1]["ConsumedEnergy"] == 2.5
        assert b.hub.statuses == [("DE*ABC*E0001*1", v) for v in (
            "Available", "Occupied", "Available")]
        s = a.stats()
        assert s["delivered"] == 6 and s["failed"] == 0 and s["link"] == "up"
        assert s["evses"] == ["idle"] and s["restarts"] == 0
        assert not [t for lv, t in b.logs if lv == 0]
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
    return arun(go())


def test_a_crashed_task_is_logged_and_restarted_and_cancel_stops_all():
    async def go():
        b = Board({1: abb(100000, 0)})
        a = Agent(cfg(), b)
        ticks = []
        real_tick = a.charger.tick

        def tick():
            ticks.append(b.now)
            if len(ticks) == 3:
                raise ValueError("boom")
            real_tick()

        a.charger.tick = tick
        task = asyncio.create_task(a.run())
        await until(b, lambda: len(ticks) >= 6, "ticks after the crash")
        assert [t for lv, t in b.logs if lv == 0 and t[:16] == "ticker crashed: " and "boom" in t]
        assert a.restarts == 1
        # The restart waited its backoff: the gap is the 2 s pause, not the 1 s period.
        assert ticks[3] - ticks[2] >= 2000 and ticks[2] - ticks[1] < 2000
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        n, sent = len(ticks), len(b.meter.sent)
        assert sent > 6  # the meter polled on through the ticker's crash
        for _ in range(30):
            b.advance(1000)
            await asyncio.sleep(0.002)
        assert len(ticks) == n  # the ticker is gone with the agent
        assert len(b.meter.sent) == sent  # and so is the meter poller
    return arun(go())


def test_no_reader_and_no_meter_plug_drives_the_session():
    async def go():
        b = Board({})
        a = Agent(cfg("none", "none"), b)
        assert a.reader is None and a.bus is None
        task = asyncio.create_task(a.run())
        ev = a.charger.evses[0]
        await until(b, lambda: a.clock.known, "wall clock")
        a.tap(CARD)  # what a reader would call
        await until(b, lambda: ev.state == "authorized", "authorized")
        a.plug(0, True)  # what the board's plug pin calls: the charger hears it, the link wakes
        await until(b, lambda: ev.state == "charging", "charging")
        a.plug(0, False)
        await until(b, lambda: ev.state == "idle" and a.stats()["pending"] == 0, "all sent")
        assert b.hub.kinds() == ["Authorize", "Start", "End", "CDR"]
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
    return arun(go())


def test_board_jobs_run_supervised_with_the_agents_and_stop_with_it():
    async def go():
        b = Board({})
        runs = []

        async def led():
            runs.append(b.now)
            if len(runs) == 1:
                raise OSError("pin gone")  # a board task's crash is logged and restarted
            while True:
                await b.sleep_ms(1000)

        b.jobs = lambda agent: [("led", led)] if agent is a else []
        a = Agent(cfg("none", "none"), b)
        task = asyncio.create_task(a.run())
        await until(b, lambda: len(runs) == 2, "the board job restarted")
        assert [t for lv, t in b.logs if lv == 0 and t[:13] == "led crashed: " and "pin gone" in t]
        assert a.restarts == 1 and runs[1] - runs[0] >= 2000
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        for _ in range(30):
            b.advance(1000)
            await asyncio.sleep(0.002)
        assert len(runs) == 2  # gone with the agent, not restarted
    return arun(go())


def test_a_task_in_a_timed_out_wait_stops_with_the_agent():
    # MicroPython's wait_for loses a cancel that lands while it cleans up after a timeout: a
    # wait of 0 s spends most of its time there, as a Modbus quiet wait of t3.5 does.
    async def go():
        b = Board({})
        turns = []

        async def never():
            await asyncio.sleep(60)

        async def poller():
            while len(turns) < 500:  # bounded: one that survives its cancel fails, not hangs
                try:
                    await asyncio.wait_for(never(), 0)
                except asyncio.TimeoutError:
                    turns.append(b.now)

        b.jobs = lambda agent: [("poller", poller)]
        a = Agent(cfg("none", "none"), b)
        task = asyncio.create_task(a.run())
        await check.until(lambda: len(turns) > 3, "the poller polling")
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        n = len(turns)
        for _ in range(30):
            await asyncio.sleep(0)
        assert len(turns) == n  # the poller is gone with the agent
        assert not [t for lv, t in b.logs if "did not stop" in t]
    return arun(go())


class RefusingHub(Hub):
    """Refuses every CDR for good (OICP 019) until fixed."""

    fixed = False

    def answer(self, path, body):
        if "charge-detail-record" in path and not self.fixed:
            self.got.append((path, body))
            return b'{"Result":false,"StatusCode":{"Code":"019","Description":"bad CDR"}}'
        return Hub.answer(self, path, body)


async def refused_cdr_session(b, a):
    """One more session whose CDR the hub refuses; returns when it is a dead letter."""
    ev = a.charger.evses[0]
    n = a.stats()["dead"] + 1
    await until(b, lambda: a.clock.known, "wall clock")
    b.real += 5000  # past the reader's hold: the same card again is a new tap
    a.tap(CARD)
    await until(b, lambda: ev.state == "authorized", "authorized")
    a.charger.plug(0, True)
    a.charger.plug(0, False)
    a.link.kick()
    await until(b, lambda: ev.state == "idle" and a.stats()["dead"] == n, "CDR %d refused" % n)


def refusing_rig():
    """(board, agent, its running task) against a RefusingHub, no meter, no reader."""
    b = Board({})
    b.hub = RefusingHub()
    b.connect = b.hub.connect
    a = Agent(cfg("none", "none"), b)
    return b, a, asyncio.create_task(a.run())


def test_a_refused_cdr_is_shown_exported_and_requeued_from_the_repl():
    async def go():
        b, a, task = refusing_rig()
        await refused_cdr_session(b, a)
        # the EVSE's Status may still be on its way (MicroPython's timing): the rest is sent
        await until(b, lambda: a.stats()["pending"] == 0, "the rest delivered")
        s = a.stats()
        assert s["pending"] == 0 and s["failed"] == 1
        assert s["dead_reasons"] == ["019 " + s["dead_reasons"][0][4:]]
        assert a.status().startswith("link up, 0 pending, 1 dead letters (last: 019")
        await until(b, lambda: any(lv == 1 and t == a.status() for lv, t in b.logs), "logged")
        lines = []
        assert a.dead_letters(lines.append) == 1
        d = json.loads(lines[0])
        cdr = b.hub.got[-1][1]
        assert d["body"] == cdr and d["kind"] == "CDR" and d["key"] == cdr["SessionID"]
        assert d["reason"].startswith("019") and d["attempts"] == 1 and d["time"][:4] == "2026"
        assert b.fs.files["/j/dead.jsonl"] == (lines[0] + "\n").encode()
        b.hub.fixed = True
        (new,) = a.requeue()
        await until(b, lambda: a.stats()["pending"] == 0, "requeued CDR delivered")
        assert b.hub.kinds()[-2:] == ["CDR", "CDR"] and b.hub.got[-1][1] == cdr
        assert a.stats()["dead"] == 0 and "/j/dead.jsonl" not in b.fs.files
        assert (1, "requeued 1 dead letter(s)") in b.logs
        assert a.requeue() == [] and not a.discard(new)
        await check.stop(task)
    return arun(go())


def test_full_dead_letters_refuse_taps_and_say_so():
    async def go():
        b, a, task = refusing_rig()
        for _ in range(8):
            await refused_cdr_session(b, a)
        b.real += 5000
        a.tap(CARD)
        await until(b, lambda: "new sessions refused" in a.status(), "full")
        assert a.charger.evses[0].state == "idle"
        assert a.discard(a.journal.dead[0][0]) and "refused" not in a.status()
        await check.stop(task)
    return arun(go())


def test_answers_that_are_not_the_hubs_show_as_the_path_state():
    class Proxy:
        """What a misconfigured reverse proxy answers to everything."""

        async def send(self, path, body, msg_id=None):
            await asyncio.sleep(0)
            return "nothub", "HTTP 404 text/html: <html><head><title>404", 0

    async def go():
        b = Board({})
        a = Agent(cfg("none", "none"), b)
        a.link.uplink = Proxy()
        task = asyncio.create_task(a.run())
        await until(b, lambda: a.clock.known, "wall clock")
        a.tap(CARD)  # refused by what is not the hub; the tap fails, nothing is lost
        await until(b, lambda: a.charger.evses[0].state == "idle", "tap answered")
        a.link.kick()  # the EVSE's status (Available) waits in the journal
        await until(b, lambda: a.stats()["link"] == "path", "path state")
        s = a.stats()
        assert s["foreign"] >= 3 and s["last_foreign"].startswith("HTTP 404 text/html")
        assert s["failed"] == 0 and s["pending"] == 1 and s["dead"] == 0
        assert a.status().endswith("answers are not the hub's: " + s["last_foreign"])
        await until(b, lambda: (1, a.status()) in b.logs, "status logged")
        await check.stop(task)
    return arun(go())
