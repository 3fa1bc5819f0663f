"""Benchmark inside MicroPython: the whole agent's heap with no JavaScript in the loop.

Run: node tools/bench/mpy_async.mjs tools/bench/agent_heap_py.py (prints one JSON line last).

cpagent.agent.Agent on a pure-Python board: the firmware tests' fakes (test_agent's Board with
its board time, test_meter's Modbus Bank of two ABB B23 meters, test_pn532's scripted chip), the
journal on the port's in-memory flash (/flash: files in JS memory, not the Python heap, as a
device's flash is not), and a hub stream written here that answers the agent's POSTs with valid
OICP replies (AuthorizeStart: authorized with a SessionID; the rest: acknowledged) and keeps
nothing of a request but its path. Two sessions on two EVSEs: tap, charge, tap again.

The webassembly port collects only when control enters Python from JS at the top
(gc.collect() inside a step merely asks for it), and at times not for several such entries; it
also keeps a Python object handed to JS (asyncio's timer callbacks here) until Node finalizes
its proxy. So a live-heap figure (live()) is: Node's collector, gc.collect(), a real sleep, and
gc.mem_alloc() only if it fell (a collection ran), board time standing still meanwhile. Figures
above the baseline (the live heap after imports and Agent(cfg, board), before its journal loads,
as tools/bench/agent_heap_e2e.py takes it):

- sampler_peak: a task that collects and samples every SAMPLE_MS without the care above, the
  method of agent_heap_e2e.py: a sample also holds the garbage of every step since the last
  collection that did run. For comparison with that benchmark.
- in_send_peak (by point: in_send_by_point): the live heap at each await of the uplink's
  exchange (the stream's drain, after the request is written, and its read of the reply): the
  request head and body, the client's buffers, the frames of link, uplink and client.
- end: the live heap once both sessions are over and everything is delivered.
- alloc: the most bytes one synchronous stretch allocated (no collection runs within one on this
  port): some calls on their own, "message in" from the reply's read to the journal record of
  its delivery, "message out" from the journal's read of the next message to the request
  written (other tasks may run within it too). Heap the stretch needs at most on top of the
  live heap it starts from, less where a device collects within it.
"""
import asyncio
import gc
import json
import time

import js
from fakeboard import Board
from fakemeter import abb
from fakepn532 import Chip
from fakeport import FakePort

from cpagent import config
from cpagent.agent import Agent
from cpagent.fsio import OsFs
from cpagent.oicp import build as oicp
from cpagent.oicp import replies as oicp_replies

SAMPLE_MS = 5
POWER = 100000  # 1 kW (0.01 W units): slow enough that the health check's frozen-register
# test (more energy implied than read) stays quiet over the run's board time
STEP_MS = 100  # board time per driver step (the meter polls each 1000 ms of it)
CARDS = (b"\x04\xa1\xb2\xc3\xd4\xe5\xf6", b"\x04\x11\x22\x33\x44\x55\x66")
SID = b"%08x-aaaa-bbbb-cccc-000000000000"
CFG = {"charger_id": "bench", "operator_id": "DE*ABC",
       "evses": [{"evse_id": "DE*ABC*E0001*1", "meter_address": 1},
                 {"evse_id": "DE*ABC*E0001*2", "meter_address": 2}],
       "reader": {"type": "pn532", "hold_ms": 200},
       "meter": {"model": "abb_b23", "timeout_ms": 50, "retries": 0},
       "uplink": {"kind": "http", "url": "http://hub.test:8080", "timeout_s": 5},
       "timing": {"poll_s": 1}}
HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
        b"Date: Tue, 01 Dec 2026 16:00:00 GMT\r\nContent-Length: %d\r\n\r\n")

R = {"base": 0, "phase": "boot", "sampler": [0, ""], "in_send": [0, ""], "alloc": {},
     "by_point": {}, "kinds": {}, "posts": 0, "in": 0, "out": None, "hold": 0, "errors": 0}


def note(key, v, where):
    if v > R[key][0]:
        R[key] = [v, where]
    if key == "in_send" and v > R["by_point"].get(where, -1 << 30):
        R["by_point"][where] = v


def _js_gc():
    """Node's collector: the port holds a Python object handed to JS (asyncio's timer
    callbacks) until Node finalizes its proxy, so a live figure first lets Node collect."""
    js.process.getBuiltinModule("v8").setFlagsFromString("--expose-gc")
    return js.process.getBuiltinModule("vm").runInNewContext("gc")


JS_GC = _js_gc()


async def live(want=2, tries=50):
    """The live heap: gc.collect() here only asks for a collection, which runs when control
    next enters Python from JS at the top (a real sleep lets it), yet at times not for several
    entries. So: the least of `want` figures each taken right after a collection that was seen
    to free something, with board time standing still meanwhile (fewer other tasks' temporaries
    in the figure)."""
    out = []
    R["hold"] += 1
    for _ in range(tries):
        JS_GC()
        m = gc.mem_alloc()
        gc.collect()
        await asyncio.sleep_ms(1)
        if gc.mem_alloc() < m:
            out.append(gc.mem_alloc())
            if len(out) == want:
                break
    R["hold"] -= 1
    if not out:
        raise RuntimeError("no collection in %d returns to JS" % tries)
    return min(out)


async def sampler():
    while True:
        gc.collect()
        await asyncio.sleep_ms(SAMPLE_MS)
        note("sampler", gc.mem_alloc() - R["base"], R["phase"])


class Wire:
    """Both ends of one connection to the hub. The agent writes a head then a body; the hub
    answers once the body is complete, keeping only the request's path."""

    def __init__(self):
        self._path = None
        self._left = 0
        self._rx = b""

    def write(self, data):
        if self._path is None:
            head = bytes(data).split(b"\r\n")
            if head[-2:] != [b"", b""]:
                raise ValueError("expected a whole request head in one write")
            self._path = head[0].split(b" ")[1].decode()
            n = [h for h in head if h[:15].lower() == b"content-length:"]
            self._left = int(n[0][15:])
        else:
            self._left -= len(data)
        if self._left < 0:
            raise ValueError("body longer than its Content-Length")
        if not self._left:
            self._rx = answer(self._path)
            self._path = None

    async def drain(self):
        if R["out"] is not None:
            grew("message out: journal read to request written", gc.mem_alloc() - R["out"])
            R["out"] = None
        note("in_send", await live() - R["base"], "written: " + R["what"])

    async def read(self, n):
        note("in_send", await live() - R["base"], "reply wait: " + R["what"])
        while not self._rx:
            await asyncio.sleep_ms(1)
        out, self._rx = self._rx[:n], self._rx[n:]
        R["in"] = gc.mem_alloc()
        return out

    def close(self):
        pass


def answer(path):
    R["posts"] += 1
    if "/authorize/start" in path:
        body = (b'{"AuthorizationStatus":"Authorized","SessionID":"' + SID % R["posts"] +
                b'","StatusCode":{"Code":"000"}}')
    else:
        body = b'{"Result":true,"StatusCode":{"Code":"000"}}'
    return HEAD % len(body) + body


async def connect(host, port, tls):
    if (host, port, tls) != ("hub.test", 8080, False):
        raise OSError("unexpected connect %r" % ((host, port, tls),))
    w = Wire()
    return w, w


def grew(name, d):
    if d > R["alloc"].get(name, 0):
        R["alloc"][name] = d


def allocs(name, fn):
    """fn, noting the most bytes one call allocated (no collection runs within a call here)."""
    def call(*a):
        m = gc.mem_alloc()
        out = fn(*a)
        grew(name, gc.mem_alloc() - m)
        return out
    return call


def log(level, text):
    if level == 0:
        R["errors"] += 1
        print("ERROR " + text)


def board():
    b = Board({1: abb(100000, 0), 2: abb(200000, 0)})
    b.fs = OsFs()
    for d in ("/flash", "/flash/bench"):
        try:
            b.fs.mkdir(d)
        except OSError:
            pass
    for n in b.fs.listdir("/flash/bench"):
        b.fs.remove("/flash/bench/" + n)
    b.journal_dir = "/flash/bench/j"
    b.chip = Chip()
    b.card = FakePort(b.chip)
    b.connect = connect
    b.real_ms = time.ticks_ms  # the reader's poll and hold run on real time
    b.log = log
    return b


async def until(b, cond, what, steps=3000):
    """Board time on by STEP_MS per real 2 ms until cond(); the fakes' write logs emptied."""
    for _ in range(steps):
        if cond():
            return
        if not R["hold"]:
            b.advance(STEP_MS)
        del b.card.sent[:], b.meter.sent[:]
        await asyncio.sleep_ms(2)
    raise RuntimeError("never happened: " + what)


async def tap(b, card, cond, what):
    b.chip.uid = card
    await until(b, cond, what)
    b.chip.uid = None
    await asyncio.sleep_ms(300)  # past hold_ms: the same card again is a new tap


def instrument(a):
    oicp.encode = allocs("oicp.encode (request body)", oicp.encode)
    for f in ("parse_authorization", "parse_acknowledgement"):
        setattr(oicp_replies, f, allocs("oicp_replies." + f, getattr(oicp_replies, f)))
    ch = a.charger
    nxt = allocs("charger.next_message (journal read)", ch.next_message)

    def next_message(hold=()):
        m = gc.mem_alloc()
        out = nxt(hold)
        R["out"] = None if out is None else m
        return out
    ch.next_message = next_message
    deliver = a.link._deliver

    async def delivering(m):
        out = await deliver(m)
        grew("message in: reply read to journal record", gc.mem_alloc() - R["in"])
        return out
    a.link._deliver = delivering
    ch.delivered = allocs("charger.delivered (journal record)", ch.delivered)
    ch.authorized = allocs("charger.authorized (session record)", ch.authorized)
    send = a.uplink.send

    async def sending(path, body, msg_id=None):
        w = R["what"] = body.get("Type") or ("AuthorizeStart" if "/authorize/" in path
                                                else "Status" if "/status-records" in path
                                                else "CDR")
        R["kinds"][w] = R["kinds"].get(w, 0) + 1
        return await send(path, body, msg_id)
    a.uplink.send = sending


async def main():
    b = board()
    a = Agent(config.load(json.dumps(CFG)), b)
    instrument(a)
    R["base"] = await live()
    s = asyncio.create_task(sampler())
    task = asyncio.create_task(a.run())
    ev = a.charger.evses
    st = a.link.stats
    await until(b, lambda: a.clock.known, "wall clock")
    for i, card in enumerate(CARDS):
        R["phase"] = "tap %d (AuthorizeStart)" % (i + 1)
        await tap(b, card, lambda i=i: ev[i].state == "authorized", "authorized %d" % i)
        R["phase"] = "charging %d (Start)" % (i + 1)
        b.bank.units[i + 1].update(abb((i + 1) * 100000, POWER))
        await until(b, lambda i=i: ev[i].state == "charging" and st["delivered"] >= 2 * i + 1,
                    "Start %d" % i)
    R["phase"] = "charging both"
    for k in range(1, 11):
        for u in (1, 2):
            b.bank.units[u].update(abb(u * 100000 + 25 * k, POWER))
        await until(b, lambda k=k: a.bus.last[1][0] == (200000 + 25 * k) * 10, "reading %d" % k)
    for i, card in enumerate(CARDS):
        R["phase"] = "tap %d again (End, CDR)" % (i + 1)
        await tap(b, card, lambda i=i: ev[i].state != "charging", "stop %d" % i)
        b.bank.units[i + 1].update(abb((i + 1) * 100000 + 250, 0))
        await until(b, lambda i=i: ev[i].state == "idle" and a.stats()["pending"] == 0,
                    "sent %d" % i)
    R["phase"] = "idle"
    for _ in range(20):
        b.advance(STEP_MS)
        await asyncio.sleep_ms(SAMPLE_MS)
    end = await live() - R["base"]
    task.cancel()
    s.cancel()
    kinds = R["kinds"]
    progress = kinds.pop("Progress", 0)  # meter values in between, as the charger sees fit
    kinds.pop("Status", 0)  # each EVSE's status on change, latest wins
    if kinds != {"AuthorizeStart": 2, "Start": 2, "End": 2, "CDR": 2} or R["errors"]:
        raise RuntimeError("the sessions went wrong: %r" % (R,))
    return {"sample_ms": SAMPLE_MS, "baseline": R["base"],
            "sampler_peak_above_baseline": R["sampler"][0], "sampler_peak_phase": R["sampler"][1],
            "in_send_peak_above_baseline": R["in_send"][0], "in_send_peak_at": R["in_send"][1],
            "in_send_by_point": R["by_point"], "alloc": R["alloc"], "end_above_baseline": end,
            "posts": R["posts"], "progress_notifications": progress,
            "delivered": st["delivered"]}
