"""Modbus RTU client over an injected serial port: line silence, RS-485 DE, timeout, retries."""
import asyncio

from micropython import const

from cpagent.drivers.modbus import ModbusError, request, scan
from cpagent.drivers.tap import read

_CAP = const(256)  # bytes a quiet wait may drop: the longest reply (125 registers) is 255
_BITS = const(11)  # an RTU character: start, 8 data, parity or a 2nd stop, stop


def _ms(halves, baud):
    # ms on the wire of `halves` half characters, rounded up, plus one
    return -(-halves * _BITS * 500 // baud) + 1


class ModbusClient:
    """Reads registers over `port` (write, await drain, await read(n)); one task owns it.

    de: optional de(1)/de(0) for the RS-485 driver-enable pin; txdone: optional txdone() -> True
    once the UART has shifted out its last bit (machine.UART.txdone), else DE waits the request's
    wire time. timeout_ms: the meter's reaction time; the reply's own wire time comes on top.
    most: the most registers one read asks for (its reply and a byte size the receive buffer).
    stats counts requests, retries, timeouts, bad_frames (bytes came but no valid reply),
    tx_bytes and rx_bytes.
    """

    def __init__(self, port, baud=9600, timeout_ms=500, retries=2, de=None, txdone=None,
                 most=125):
        self.port = port
        self.de = de
        self.txdone = txdone
        self.timeout_ms = timeout_ms
        self.retries = retries
        # Waits in whole ms, rounded up plus a tick: MicroPython sleeps int(ms) and may wake 1 ms
        # early. t3.5 silence ends a frame; the spec fixes it at 1.75 ms above 19200 baud.
        self._t35 = _ms(7, baud) if baud <= 19200 else 3
        self.baud = baud
        self._buf = bytearray(6 + 2 * most)
        self._n = 0
        self.stats = {"requests": 0, "retries": 0, "timeouts": 0, "bad_frames": 0,
                      "tx_bytes": 0, "rx_bytes": 0}

    async def read(self, unit, fc, start, count):
        """The 2*count data bytes of registers start.. (fc 3 or 4); raises ModbusError."""
        req = request(unit, fc, start, count)
        if 6 + 2 * count > len(self._buf):
            raise ValueError("modbus registers: expected at most %d (the client's most), got %d"
                             % ((len(self._buf) - 6) // 2, count))
        st = self.stats
        st["requests"] += 1
        for attempt in range(self.retries + 1):
            if attempt:
                st["retries"] += 1
            await self._quiet(unit, fc, start, attempt)
            self._n = 0
            if self.de:
                self.de(1)
            try:
                self.port.write(req)
                await self.port.drain()
                if self.txdone:  # drain() only hands the bytes to the UART
                    while not self.txdone():
                        await asyncio.sleep(0)
                elif self.de:
                    await asyncio.sleep(_ms(16, self.baud) / 1000)  # the request's wire time
            finally:
                if self.de:
                    self.de(0)
            st["tx_bytes"] += 8
            try:
                return await asyncio.wait_for(self._rx(unit, fc, start, count), (
                    self.timeout_ms + _ms(10 + 4 * count, self.baud) - 1) / 1000)
            except asyncio.TimeoutError:
                if self._n:
                    st["bad_frames"] += 1
                    why = "%d bytes but no valid reply (bad CRC or noise)" % self._n
                else:
                    st["timeouts"] += 1
                    why = "no reply within %d ms" % self.timeout_ms
        raise ModbusError(unit, fc, start, "%s (%d attempts)" % (why, self.retries + 1))

    async def _quiet(self, unit, fc, addr, retry):
        # Wait for t3.5 of silence, or timeout_ms before a retry (a late reply to the attempt
        # that timed out would pass for the retry's), dropping what comes meanwhile. A failed
        # read ends its meter's poll: the next request is another unit's or a poll later.
        dropped = 0
        t = self.timeout_ms if retry else self._t35
        while True:
            try:
                n = len(await asyncio.wait_for(read(self.port, _CAP), t / 1000))
            except asyncio.TimeoutError:
                return
            self.stats["rx_bytes"] += n
            dropped += n
            if dropped > _CAP:
                raise ModbusError(unit, fc, addr, "line never went quiet")

    async def _rx(self, unit, fc, start, count):
        b = self._buf
        cap = len(b)
        keep = 4 + 2 * count  # a full buffer keeps only what may begin a reply still arriving
        while True:
            n = self._n
            if n == cap:
                b[:keep] = b[cap - keep:]
                n = self._n = keep
            d = await read(self.port, cap - n)
            self.stats["rx_bytes"] += len(d)
            b[n:n + len(d)] = d
            self._n += len(d)
            # Starts before n - keep were decided by an earlier scan: each byte is scanned once.
            i = scan(b, self._n, unit, fc, count, start, n - keep if n > keep else 0)
            if i >= 0:  # bytes after the reply are dropped with the buffer
                return bytes(b[i + 3:i + 3 + 2 * count])
