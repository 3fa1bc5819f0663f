"""The charger agent on a fake board: config, a canned hub behind a fake connection, the Board."""
import asyncio
import json

from fakemeter import Bank
from fakeport import FakePort
from faultfs import FaultFs

from cpagent import config

T0 = 1795320000
CARD = "04A1B2C3"
SID = "%08x-aaaa-bbbb-cccc-000000000000"


def cfg(reader="line", meter="abb_b23"):
    return config.load(json.dumps({
        "charger_id": "cp-1", "operator_id": "DE*ABC",
        "evses": [{"evse_id": "DE*ABC*E0001*1", "meter_address": 1}],
        "reader": {"type": reader, "hold_ms": 200},
        "meter": {"model": meter, "timeout_ms": 50, "retries": 0},
        "uplink": {"kind": "http", "url": "http://hub.test:8080", "timeout_s": 5},
        "timing": {"poll_s": 1}}))


class Stream:
    """Both ends of a fake connection to the hub: requests in through write/drain, replies out
    through read/readline/readexactly."""

    def __init__(self, hub):
        self.hub = hub
        self._tx = b""
        self._rx = b""
        self._ready = asyncio.Event()

    def write(self, b):
        self._tx += bytes(b)

    async def drain(self):
        while b"\r\n\r\n" in self._tx:
            head, rest = self._tx.split(b"\r\n\r\n", 1)
            n = 0
            for line in head.split(b"\r\n")[1:]:
                k, v = line.split(b":", 1)
                if k.strip().lower() == b"content-length":
                    n = int(v)
            if len(rest) < n:
                return
            self._tx = rest[n:]
            body = self.hub.answer(head.split(b" ")[1].decode(), json.loads(rest[:n]))
            self._rx += b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" \
                        b"Content-Length: %d\r\n\r\n" % len(body) + body
            self._ready.set()

    async def _need(self, n):
        while len(self._rx) < n:
            self._ready.clear()
            await self._ready.wait()

    async def read(self, n):
        await self._need(1)
        out, self._rx = self._rx[:n], self._rx[n:]
        return out

    async def readexactly(self, n):
        await self._need(n)
        return await self.read(n)

    async def readline(self):
        while b"\n" not in self._rx:
            await self._need(len(self._rx) + 1)
        i = self._rx.index(b"\n") + 1
        return await self.read(i)

    def close(self):
        pass

    async def wait_closed(self):
        pass


class Hub:
    """Canned OICP answers: every card authorized, every message acknowledged; keeps requests."""

    def __init__(self):
        self.got = []  # (path, body) of the session messages
        self.statuses = []  # (EvseID, EvseStatus) of each status push, in order

    def answer(self, path, body):
        if "/status-records" in path:
            for r in body["OperatorEvseStatus"]["EvseStatusRecord"]:
                self.statuses.append((r["EvseID"], r["EvseStatus"]))
            return b'{"Result":true,"StatusCode":{"Code":"000"}}'
        self.got.append((path, body))
        if "/authorize/start" in path:
            r = {"AuthorizationStatus": "Authorized", "SessionID": SID % len(self.got)}
        else:
            r = {"Result": True}
        r["StatusCode"] = {"Code": "000"}
        return json.dumps(r).encode()

    def kinds(self):
        return [b.get("Type", "Authorize" if "authorize" in p else "CDR") for p, b in self.got]

    async def connect(self, host, port, tls):
        if (host, port, tls) != ("hub.test", 8080, False):
            raise OSError("unexpected connect %r" % ((host, port, tls),))
        s = Stream(self)
        return s, s


class Board:
    """Board time moves only by advance(); real time (debounce) only when the test sets it."""

    def __init__(self, units):
        self.fs = FaultFs()
        self.journal_dir = "/j"
        self.de = self.txdone = None
        self.now = 0
        self.real = 0
        self.hub = Hub()
        self.bank = Bank(units)
        self.card = FakePort()
        self.meter = FakePort(self.bank)
        self.logs = []
        self._tick = asyncio.Event()
        self.connect = self.hub.connect

    def ticks_ms(self):
        return self.now

    def ticks_diff(self, a, b):
        return a - b

    def real_ms(self):
        return self.real

    def wall_unix(self):
        return T0 + self.now // 1000

    async def sleep_ms(self, ms):
        until = self.now + ms
        while self.now < until:
            await self._tick.wait()

    def advance(self, ms):
        self.now += ms
        ev, self._tick = self._tick, asyncio.Event()
        ev.set()  # wakes every sleeper; each waits on the new event if not due yet

    def reader_port(self):
        return self.card

    def meter_port(self):
        return self.meter

    def rand_hex(self, n):
        return "7f" * n

    def log(self, level, text):
        self.logs.append((level, text))
