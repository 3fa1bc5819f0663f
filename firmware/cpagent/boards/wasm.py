"""Webassembly board (MicroPython in Node): Node sockets for the hub and the virtual devices."""
import asyncio
import time
from binascii import hexlify

import js

from cpagent.fsio import OsFs

FLASH = "/flash"  # the runner restores it from the host and mirrors every commit back


class Stream:
    """A Node socket (the runner's Stream: take/ready/write/drain/close) as the reader and writer
    of board.connect and as the port protocol: write(data), await drain(), await read(n).

    Bytes wait in Node until read() takes them, so a read cancelled by a timeout loses nothing.
    read() gives b"" at the end of the stream and raises OSError on a socket error.
    """

    def __init__(self, sock):
        self._s = sock

    def write(self, data):
        # As hex text, which goes to JS by value: bytes would go as a proxy that keeps them on
        # the heap until Node's collector finalizes it (kilobytes per message, for seconds).
        self._s.write(hexlify(data).decode())

    async def drain(self):
        await self._s.drain()

    async def read(self, n):
        while True:
            got = self._s.take(n)  # Uint8Array, None at the end, str: the socket's error
            if got is None:
                return b""
            if isinstance(got, str):
                raise OSError(got)
            if got.length:
                return bytes(got)
            await self._s.ready()

    def close(self):
        self._s.close()


class Board:
    """The board interface of cpagent.agent on the webassembly port, run by tools/mpy_agent.mjs.

    The runner puts `cpagentHost` on the JS global object: connect(host, port) -> Stream,
    reader/meter ("host:port" of tcp_bridge.py servers, or None), reset(). Board time is real
    time (ticks_ms); wall_unix is the host's clock. The flash is the Emscripten folder /flash.
    No TLS (node:tls is not wired in): an https:// uplink fails to connect, saying so.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        self._host = js.cpagentHost
        self.fs = OsFs()
        self.fs.mkdir(FLASH)
        self.journal_dir = FLASH + "/journal"
        self.de = self.txdone = None  # a TCP bridge needs no RS-485 direction pin

    ticks_ms = staticmethod(time.ticks_ms)
    ticks_diff = staticmethod(time.ticks_diff)
    real_ms = staticmethod(time.ticks_ms)

    @staticmethod
    async def sleep_ms(ms):
        await asyncio.sleep_ms(ms)

    @staticmethod
    def wall_unix():
        return int(time.time())

    def _port(self, what):
        addr = getattr(self._host, what)
        if not addr:
            raise ValueError("%s port: the runner was given no --%s host:port" % (what, what))
        host, port = addr.rsplit(":", 1)
        return Stream(self._host.connect(host, int(port)))

    def reader_port(self):
        return self._port("reader")

    def meter_port(self):
        return self._port("meter")

    async def connect(self, host, port, tls):
        if tls:
            raise OSError("TLS to %s:%d: not available on the webassembly board" % (host, port))
        s = self._host.connect(host, port)
        err = await s.opened()
        if err:
            raise OSError("connect to %s:%d: %s" % (host, port, err))
        s = Stream(s)
        return s, s

    def rand_hex(self, n):
        return self._host.randHex(n)

    def log(self, level, text):
        if level <= self.cfg["log_level"]:
            print("[%s] %s" % (self.cfg["charger_id"], text))

    def reset(self):
        """The runner ends the process with status 3: its caller starts it again (a reboot)."""
        self._host.reset()
