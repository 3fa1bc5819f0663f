"""Benchmark inside MicroPython: the agent's own time per meter poll and per card tap.

Devices answer at once and line silence is instant, so the time measured is the firmware's work
alone (framing, CRC, scanning, decoding, debounce, asyncio switches), never the wire's.
"""
import asyncio
import time

from cpagent.drivers import pn532
from cpagent.drivers.line_reader import LineReader
from cpagent.drivers.meter import MeterBus
from cpagent.drivers.meter_maps import NAMES
from cpagent.drivers.modbus import crc16
from cpagent.drivers.rdm6300 import Rdm6300

POLLS = 100
TAPS = 200


class Port:
    """Answers every write at once; an empty line reads as silence without waiting."""

    def __init__(self, device):
        self.device = device
        self.rx = b""

    def write(self, data):
        self.rx += self.device(data) or b""

    async def drain(self):
        pass

    async def read(self, n):
        if not self.rx:
            await asyncio.sleep(0)
            raise asyncio.TimeoutError
        out, self.rx = self.rx[:n], self.rx[n:]
        return out


def meter(f):
    """Any Modbus read: register pairs FD01 E240 (Iskra's T5 example, 123.456; other types
    decode them as whatever they mean to them: the work is the same)."""
    n = f[4] << 8 | f[5]
    out = bytes((f[0], f[1], 2 * n)) + (b"\xfd\x01\xe2\x40" * n)[:2 * n]
    c = crc16(out)
    return out + bytes((c & 255, c >> 8))


class Chip:
    """A PN532 that finds a different 7-byte card at every InListPassiveTarget."""

    def __init__(self):
        self.n = 0

    def __call__(self, data):
        i = data.find(b"\x00\xff")
        if i < 0 or len(data) < i + 7 or data[i + 2] == 0:  # wake-up bytes or the host's ACK
            return b""
        cmd = data[i + 5]
        body = bytes((cmd + 1,))
        if cmd == 0x4A:
            self.n += 1
            body += b"\x01\x01\x00\x44\x00\x07\x04" + self.n.to_bytes(6, "big")
        return pn532.ACK + pn532.frame(body, pn532.CHIP)


def now_ms():
    return time.ticks_ms()


async def per_poll(model):
    bus = MeterBus(Port(meter), {"model": model}, [1], Sink(), now_ms)
    await bus.poll()  # warm up: the first poll may fall back to narrower reads
    t0 = time.ticks_us()
    for _ in range(POLLS):
        await bus.poll()
    return time.ticks_diff(time.ticks_us(), t0) / POLLS / 1000


class Sink:
    def meter(self, i, wh, w):
        pass

    def fault(self, i, connector, text):
        pass


async def per_tap(reader, feed=None):
    taps = []
    if feed:
        reader._port.rx = feed
    task = asyncio.create_task(reader.run(taps.append))
    t0 = time.ticks_us()
    while len(taps) < TAPS:
        await asyncio.sleep(0)
    us = time.ticks_diff(time.ticks_us(), t0)
    task.cancel()
    return us / TAPS / 1000


def rdm_frames():
    out = b""
    for k in range(TAPS):
        data = bytes((0x14,)) + (k + 1).to_bytes(4, "big")
        x = 0
        for b in data:
            x ^= b
        out += b"\x02" + ("%010X%02X" % (int.from_bytes(data, "big"), x)).encode() + b"\x03"
    return out


def lines():
    return b"".join(b"04%012X\n" % (k + 1) for k in range(TAPS))


class Feed(Port):
    """A receive-only reader's line: the prepared bytes, then nothing more."""

    async def read(self, n):
        while not self.rx:
            await asyncio.sleep(1)
        out, self.rx = self.rx[:n], self.rx[n:]
        return out


async def main():
    polls = {}
    for model in sorted(NAMES):
        polls[model] = await per_poll(model)
    # hold_ms=0: every UID is a tap; the real debounce logic still runs for each.
    taps = {
        "pn532": await per_tap(pn532.Pn532(Port(Chip()), now_ms, 0, poll_ms=0)),
        "rdm6300": await per_tap(Rdm6300(Feed(None), now_ms, 0), rdm_frames()),
        "line": await per_tap(LineReader(Feed(None), now_ms, 0), lines()),
    }
    return {"ms_per_poll": polls, "ms_per_tap": taps, "polls": POLLS, "taps": TAPS}
