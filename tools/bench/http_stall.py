"""Loop stall during a hub outage: a blocking HTTP client (requests' design) vs the firmware's.

micropython-lib `requests` cannot run here: it needs MicroPython's socket module (CPython has a
different one, the webassembly port has none). What makes it unfit is its design, which this
stand-in copies: one blocking socket per request (`Connection: close`), `settimeout(timeout)`,
connect, send and recv run to completion, called straight from a coroutine as an asyncio agent
would call `requests.post`. CPython's http.client does exactly that. The firmware's HttpClient
(asyncio streams, keep-alive) runs the same sequence on the same loop.

On the loop under test, besides the client: a LineReader on an in-process port that a feeder
thread fills with a new card every 100 ms (the time each tap is put on the port is taken in the
thread, so a blocked loop cannot hide it), and a 10 ms ticker. The hub runs in its own thread
(HubThread): healthy, then one reply delayed 3 s (latency fault), then refused connections, then
HTTP 503, then healthy again.
"""
import asyncio
import http.client
import os
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(ROOT, "host_sim", "pyshim"), os.path.join(ROOT, "firmware"), ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from cpagent.drivers.line_reader import LineReader  # noqa: E402
from cpagent.oicp import build as oicp  # noqa: E402
from cpagent.uplink.http_client import HttpClient  # noqa: E402
from host_sim.hub.server import HubThread  # noqa: E402

OP = "DE*ABC"
CARD = "04A1B2C3D4E5F6"
TIMEOUT_S = 20  # the uplink's default timeout_s, for both clients
LATE_MS = 200  # a tap read later than this after it reached the port is late
TAP_S = 0.1
TICK_S = 0.01
PAUSE_S = 0.2  # between posts (the link backs off longer; this keeps both clients busy)
# (seconds from the start, what the hub does): the outage
SCHEDULE = ((1.0, "latency"), (4.5, "refuse"), (6.5, "5xx"), (8.0, "healthy"), (9.0, "end"))


class FedPort:
    """Port protocol onto bytes fed from another thread (as a UART's receive buffer fills while
    the CPU is busy): write() is ignored, read(n) waits on the loop."""

    def __init__(self, loop):
        self._loop = loop
        self._rx = bytearray()
        self._ready = asyncio.Event()

    def feed(self, data):  # from any thread
        self._loop.call_soon_threadsafe(self._put, data)

    def _put(self, data):
        self._rx.extend(data)
        self._ready.set()

    def write(self, data):
        pass

    async def drain(self):
        pass

    async def read(self, n):
        while not self._rx:
            self._ready.clear()
            await self._ready.wait()
        out = bytes(self._rx[:n])
        del self._rx[:n]
        return out


def blocking_post(host, port, path, body):
    """What requests.post does: a new blocking socket with settimeout, connect, send, recv to
    the end, close. The caller (a coroutine) holds the whole loop meanwhile."""
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT_S)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json",
                                          "Connection": "close"})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _outage(hub, t0, done):
    """The hub's side of the schedule, in its own thread on wall time."""
    h = hub.hub
    for at, what in SCHEDULE:
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        if what == "latency":
            hub.call(h.add_fault, "latency", 1, seconds=3.0)
        elif what == "refuse":
            hub.call(h.refuse)
        elif what == "5xx":
            hub.call(h.resume)
            hub.call(h.add_fault, "5xx", None)
        elif what == "healthy":
            hub.call(h.faults.clear)
    done.set()


async def _measure(hub, kind):
    loop = asyncio.get_running_loop()
    host, port = "127.0.0.1", hub.hub.port
    path, body = oicp.authorize_start(OP, CARD, evse_id="DE*ABC*E0001*1")
    body = oicp.encode(body)
    if kind == "blocking":
        async def post():
            return blocking_post(host, port, path, body)[0]
    else:
        async def connect(h, p, tls):  # board.connect() of the host board, plain TCP
            return await asyncio.open_connection(h, p)
        client = HttpClient(connect, host, port, False, TIMEOUT_S * 1000)

        async def post():
            return (await client.post(path, body))[0]
    done = threading.Event()
    put = {}  # uid -> time it reached the port
    delays = []
    stall = [0.0]
    outcomes = {}
    port_ = FedPort(loop)
    reader = LineReader(port_, lambda: int(time.monotonic() * 1000), hold_ms=200)

    def on_tap(uid):
        delays.append(time.monotonic() - put.pop(uid))

    def feeder():
        k = 0
        while not done.is_set():
            uid = "%08X" % (0x10000000 + k)
            put[uid] = time.monotonic()
            port_.feed(uid.encode() + b"\n")
            k += 1
            time.sleep(TAP_S)

    async def ticker():
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(TICK_S)
            now = time.perf_counter()
            stall[0] = max(stall[0], now - last - TICK_S)
            last = now

    async def driver():
        while not done.is_set():
            try:
                what = str(await post())
            except OSError as e:
                what = type(e).__name__ if type(e) is not OSError else str(e).split(": ")[-1]
            except ValueError as e:  # HttpError: a malformed reply
                what = "malformed: %s" % e
            outcomes[what] = outcomes.get(what, 0) + 1
            await asyncio.sleep(PAUSE_S)

    tasks = [asyncio.create_task(c) for c in (reader.run(on_tap), ticker(), driver())]
    t0 = time.monotonic()
    threading.Thread(target=feeder, daemon=True).start()
    sched = threading.Thread(target=_outage, args=(hub, t0, done), daemon=True)
    sched.start()
    while not done.is_set():
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # taps still on their way are read
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if kind != "blocking":
        client.close()
    return {"loop_stall_max_ms": round(stall[0] * 1000, 1), "taps": len(delays) + len(put),
            "taps_late": sum(d * 1000 > LATE_MS for d in delays) + len(put),
            "tap_delay_max_ms": round(max(delays) * 1000, 1),
            "tap_delay_p50_ms": round(sorted(delays)[len(delays) // 2] * 1000, 1),
            "posts": outcomes, "seconds": round(time.monotonic() - t0, 1)}


def run():
    with HubThread(cards=[CARD]) as hub:
        out = {}
        for kind in ("blocking", "asyncio"):
            hub.call(hub.hub.reset)
            out[kind] = asyncio.run(_measure(hub, kind))
    return {"note": "blocking = CPython http.client with a blocking socket per request, "
                    "timeout %d s, called inside the event loop: a stand-in for micropython-lib "
                    "requests (same design; requests itself needs MicroPython's socket, which "
                    "CPython and the webassembly port lack); asyncio = firmware HttpClient"
                    % TIMEOUT_S,
            "outage": "0-1 s healthy, 1 s: next reply delayed 3 s, 4.5 s: refused, 6.5 s: "
                      "HTTP 503, 8 s: healthy, 9 s: end; taps every %d ms, late > %d ms"
                      % (TAP_S * 1000, LATE_MS),
            "blocking_requests_stand_in": out["blocking"], "firmware_http_client": out["asyncio"]}


def lines(r):
    """Human-readable lines for `make bench`."""
    out = ["HTTP client during a hub outage (3 s slow reply, refused, 503), reader taps every "
           "100 ms + 10 ms ticker on the same loop:"]
    for key, name in (("blocking_requests_stand_in", "blocking (requests stand-in)"),
                      ("firmware_http_client", "firmware HttpClient")):
        m = r[key]
        out.append("  %-29s longest loop stall %7.1f ms, taps late (>%d ms) %2d/%d, worst tap "
                   "%7.1f ms" % (name, m["loop_stall_max_ms"], LATE_MS, m["taps_late"],
                                 m["taps"], m["tap_delay_max_ms"]))
    out.append("  (the blocking client is CPython http.client with requests' design: blocking "
               "socket per request, same timeout, called in the loop; requests itself needs "
               "MicroPython's socket)")
    return out


if __name__ == "__main__":
    import json
    res = run()
    print("\n".join(lines(res)))
    print(json.dumps(res))
