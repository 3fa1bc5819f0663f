"""Acceptance: pymodbus 3.16 as the meter (an RTU server on a pty pair), the firmware's MeterBus
reading it through the host board layer's SerialPort (pyserial). Serial only, no network."""
import asyncio
import struct

import pytest
from pymodbus import FramerType
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from check import Sink
from cpagent.boards.host import SerialPort
from cpagent.drivers.meter import MeterBus
from cpagent.drivers.modbus import ModbusError
from host_sim.virtual.pty import NullModem

VOLTS = (230.0, 229.5, 231.0)
AMPS = (15.9375, 16.0, 15.8125)  # exact in float32; no half steps at 0.01 A
WATTS = 11000


def f32(x):
    return list(struct.unpack(">HH", struct.pack(">f", x)))


class Counter:
    """The meter's import register, advanced by the test between polls; pymodbus serves it via
    the device action, which also counts the reads that touched it."""

    def __init__(self, wh, addr, words):
        self.wh, self.addr, self.words, self.reads = wh, addr, words, 0

    async def action(self, fc, start, addr, count, regs, values):
        if addr <= self.addr < addr + count:
            self.reads += 1
            regs[self.addr - start:self.addr - start + len(self.words(self.wh))] = \
                self.words(self.wh)
        return None


def sdm630(counter):
    # FC04 input registers, float32 MSW first: V, I, P per phase from 0, total P 0x34, kWh 0x48.
    per_phase = list(VOLTS) + list(AMPS) + [v * a for v, a in zip(VOLTS, AMPS, strict=True)]
    return SimDevice(1, simdata=[
        SimData(0x00, values=per_phase, datatype=DataType.FLOAT32),
        SimData(0x34, values=float(WATTS), datatype=DataType.FLOAT32),
        SimData(0x48, values=0.0, datatype=DataType.FLOAT32),
    ], action=counter.action)


def abb_b23(counter):
    # FC03 holding registers: U64 kWh x0.01 at 0x5000, U32 V x0.1, U32 A x0.01, S32 W x0.01.
    return SimDevice(1, simdata=[
        SimData(0x5000, values=0, datatype=DataType.UINT64),
        SimData(0x5B00, values=[round(v * 10) for v in VOLTS], datatype=DataType.UINT32),
        SimData(0x5B0C, values=[round(a * 100) for a in AMPS], datatype=DataType.UINT32),
        SimData(0x5B14, values=WATTS * 100, datatype=DataType.INT32),
    ], action=counter.action)


CASES = {
    # model: (device, first Wh, Wh added per poll, register words for a Wh value, parity,
    # energy register). Parity stays N: pymodbus re-applies termios after opening, which a pty
    # refuses (EINVAL) once PARENB is set.
    # float32 kWh holds every Wh below 8192 kWh; the ABB register counts 10 Wh steps.
    "sdm630": (sdm630, 1234567, 137, lambda wh: f32(wh / 1000), "N", 0x48),
    "abb_b23": (abb_b23, 98765430, 130,
                lambda wh: list(struct.unpack(">4H", struct.pack(">Q", wh // 10))), "N", 0x5000),
}


async def read_meter(model, server_path, agent_path):
    make, wh0, step, words, parity, addr = CASES[model]
    counter = Counter(wh0, addr, words)
    server = ModbusSerialServer(make(counter), framer=FramerType.RTU, port=server_path,
                                baudrate=9600, parity=parity)
    serving = asyncio.create_task(server.serve_forever())
    port = None
    try:
        port = SerialPort(agent_path, 9600, parity=parity)
        sink = Sink()
        cfg = {"model": model, "baud": 9600, "parity": parity, "timeout_ms": 1000,
               "retries": 1, "dead_polls": 3}
        bus = MeterBus(port, cfg, [1], sink, lambda: 0)
        for _ in range(20):  # probe until the server has opened its end of the line
            try:
                await bus.client.read(1, bus.plan[0][0], addr, 1)
                break
            except ModbusError:
                pass
        else:
            raise AssertionError("the pymodbus server never answered")
        for k in bus.client.stats:
            bus.client.stats[k] = 0
        readings, reads = [], []
        for k in range(3):
            counter.wh = wh0 + k * step
            before = counter.reads
            (r,) = await bus.poll()
            readings.append(r)
            reads.append(counter.reads - before)
        return readings, sink, reads, bus
    finally:
        if port:
            port.close()
        await server.shutdown()
        serving.cancel()


@pytest.mark.parametrize("model", sorted(CASES))
def test_meter_bus_reads_pymodbus_over_a_pty(model):
    _, wh0, step, _, _, _ = CASES[model]
    with NullModem() as (server_path, agent_path):
        readings, sink, reads, bus = asyncio.run(
            asyncio.wait_for(read_meter(model, server_path, agent_path), 30))
    assert [r[0] for r in readings] == [wh0, wh0 + step, wh0 + 2 * step]  # exact Wh, advancing
    assert [r[1] for r in readings] == [WATTS] * 3
    for r in readings:
        assert r[2] == pytest.approx(VOLTS, abs=1e-6)
        # the ABB register holds 0.01 A: 15.9375 A is 1594 there
        assert r[3] == pytest.approx(AMPS, abs=1e-6 if model == "sdm630" else 0.005)
    assert sink.meters == [(0, r[0], WATTS) for r in readings]
    assert sink.faults == []
    # once the plan has settled (the first poll may fall back from reads spanning gaps), one
    # read of the energy register per poll
    assert reads[0] >= 1 and reads[1:] == [1, 1]
    st = bus.client.stats
    print("%s: %d requests, %d retries, %d timeouts, %d tx bytes, %d rx bytes for 3 polls"
          % (model, st["requests"], st["retries"], st["timeouts"], st["tx_bytes"],
             st["rx_bytes"]))
    assert st["timeouts"] == 0 and st["bad_frames"] == 0
