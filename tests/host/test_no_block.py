"""No driver blocks the loop: a meter that never answers (3 tries of 2 s a poll, 2 s of silence
before each retry) and two readers on one asyncio loop, all through ptys and the host SerialPort;
every tap arrives within a bound."""
import asyncio
import time

from check import Sink
from cpagent.boards.host import SerialPort
from cpagent.drivers.line_reader import LineReader
from cpagent.drivers.meter import MeterBus
from cpagent.drivers.pn532 import Pn532
from host_sim.virtual.ev import Fixed
from host_sim.virtual.meter import VirtualMeter
from host_sim.virtual.pn532 import VirtualPn532
from host_sim.virtual.pty import PtyDevice

BOUND_S = 0.3  # a tap's worst latency; the meter would block 10 s a poll if anything waited
STALL_S = 0.1  # the longest gap a 10 ms ticker may see beyond its 10 ms
TAPS = 10  # a pair (PN532, line) every ~0.4 s: ~4.5 s, inside the meter's first 10 s


class Silent:
    """The line reader's device: it only talks when a card is shown (inject)."""

    def handle(self, data):
        return b""


def ms():
    return int(time.monotonic() * 1000)


async def scenario(pn, vpn, line, meter_dev):
    got = asyncio.Queue()
    ports = [SerialPort(pn.path, 115200), SerialPort(line.path, 9600),
             SerialPort(meter_dev.path, 9600)]
    pn532 = Pn532(ports[0], ms, hold_ms=200, poll_ms=50)
    lines = LineReader(ports[1], ms, hold_ms=200)
    sink = Sink()
    bus = MeterBus(ports[2], {"model": "sdm630", "timeout_ms": 2000, "retries": 2,
                              "dead_polls": 1}, [1], sink, ms, poll_s=1)
    stall = [0.0]

    async def ticker():
        last = time.monotonic()
        while True:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            stall[0] = max(stall[0], now - last - 0.01)
            last = now

    tasks = [asyncio.create_task(c) for c in (
        pn532.run(lambda uid: got.put_nowait(("pn532", uid, time.monotonic()))),
        lines.run(lambda uid: got.put_nowait(("line", uid, time.monotonic()))),
        bus.run(), ticker())]
    latencies = []
    try:
        await asyncio.sleep(0.3)  # the PN532 is woken and configured
        start = time.monotonic()
        for k in range(TAPS):
            uid = "04A1B2C3D4E5%02X" % k
            t0 = time.monotonic()
            vpn.card = uid
            which, seen, t1 = await asyncio.wait_for(got.get(), 2.0)
            assert (which, seen) == ("pn532", uid)
            latencies.append(t1 - t0)
            vpn.card = None
            uid = "DEADBE%02X" % k
            t0 = time.monotonic()
            line.inject(uid.encode() + b"\r\n")
            which, seen, t1 = await asyncio.wait_for(got.get(), 2.0)
            assert (which, seen) == ("line", uid)
            latencies.append(t1 - t0)
            await asyncio.sleep(0.4)
        window = time.monotonic() - start
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for p in ports:
            p.close()
    return latencies, stall[0], window, bus, sink


def test_taps_arrive_while_the_meter_times_out():
    vpn = VirtualPn532()
    meter = VirtualMeter("sdm630", source=Fixed(wh=1000, w=0))
    meter.fault = "dead"
    devs = [PtyDevice(vpn), PtyDevice(Silent()), PtyDevice(meter)]
    for d in devs:
        d.start()
    try:
        latencies, stall, window, bus, sink = asyncio.run(
            asyncio.wait_for(scenario(devs[0], vpn, devs[1], devs[2]), 30))
    finally:
        for d in devs:
            d.stop()
    worst = max(latencies)
    st = bus.client.stats
    print("taps: %d, worst latency %.1f ms, mean %.1f ms; longest loop stall %.1f ms; "
          "meter: %d requests, %d timeouts over %.1f s"
          % (len(latencies), worst * 1000, 1000 * sum(latencies) / len(latencies),
             stall * 1000, st["requests"], st["timeouts"], window))
    assert len(latencies) == 2 * TAPS
    assert worst < BOUND_S  # 30x below the meter's 10 s of waiting per poll
    assert stall < STALL_S
    # the taps came while the meter was waiting: its first poll (10 s) outlasts them, and
    # its first 2 s timeout ran out meanwhile
    assert window < 6.0 and st["timeouts"] >= 1 and bus.last == [None]
    assert [d.error for d in devs] == [None, None, None]
