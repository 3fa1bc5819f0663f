"""A serial port for driver tests on both runtimes: scripted device replies, no real time."""
import asyncio


class FakePort:
    """The stream a board layer hands a driver: write(), await drain(), await read(n).

    `device(frame_bytes)` (optional) is called with every write and returns the bytes the device
    answers (b"" or None: silence). Tests may also feed() bytes at any time, e.g. line noise.
    """

    def __init__(self, device=None):
        self.device = device
        self.sent = []  # every write, in order
        self._rx = bytearray()
        self._ready = asyncio.Event()

    def feed(self, data):
        if data:
            self._rx.extend(data)
            self._ready.set()

    def write(self, data):
        data = bytes(data)
        self.sent.append(data)
        if self.device is not None:
            self.feed(self.device(data))

    async def drain(self):
        await asyncio.sleep(0)

    async def read(self, n):
        while not self._rx:
            self._ready.clear()
            await self._ready.wait()
        out = bytes(self._rx[:n])
        self._rx = self._rx[n:]
        return out
