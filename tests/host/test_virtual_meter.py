"""Each model's VirtualMeter read by the firmware's MeterBus: values as the source says, faults."""
import asyncio
import json

import pytest
from fakeport import FakePort

from check import Sink
from cpagent.drivers.meter import MeterBus
from cpagent.drivers.meter_maps import decode
from host_sim.virtual.ev import EvLoad, Fixed
from host_sim.virtual.meter import FAULTS, LAYOUTS, NOISE, VirtualMeter

MODELS = sorted(LAYOUTS)
# The energy register's step in Wh, per model (float32 kWh is exact to the Wh below 8192 kWh).
STEP = {"abb_b23": 10, "em340": 100}
PHASES = {"sdm72d": 0, "sdm120": 1}


class Clock:
    def __init__(self):
        self.t = 0

    def ms(self):
        return self.t


def bus(meter, cfg=None, units=(1,)):
    sink, clock = Sink(), Clock()
    c = {"model": meter.model, "timeout_ms": 50, "retries": 0, "dead_polls": 3}
    c.update(cfg or {})
    mb = MeterBus(FakePort(meter.handle), c, list(units), sink, clock.ms)
    return mb, sink, clock


_LOOP = []  # FakePort's Event binds to one loop: every poll of a test runs on the same one


@pytest.fixture(autouse=True)
def loop():
    _LOOP.append(asyncio.new_event_loop())
    yield
    _LOOP.pop().close()


def poll(mb):
    return _LOOP[-1].run_until_complete(asyncio.wait_for(mb.poll(), 10))


@pytest.mark.parametrize("model", MODELS)
def test_each_model_reads_what_the_source_says(model):
    src = Fixed(wh=4321987, w=7360, volts=(230.1, 229.4, 231.7), amps=(10.68, 10.71, 10.59))
    m = VirtualMeter(model, unit=7, source=src)
    mb, sink, _ = bus(m, units=[7])
    (r,) = poll(mb)
    step = STEP.get(model, 1)
    assert r[0] == 4321987 // step * step
    assert r[1] == 7360
    assert sink.meters == [(0, r[0], 7360)] and sink.faults == []
    n = PHASES.get(model, 3)
    if n == 0:
        assert r[2] is None and r[3] is None
    else:
        assert r[2][:n] == pytest.approx(src.volts[:n], abs=0.01)
        assert r[3][:n] == pytest.approx(src.amps[:n], abs=0.001)
        assert all(x is None for x in r[2][n:] + r[3][n:])


@pytest.mark.parametrize("model", MODELS)
def test_energy_rises_with_the_ev(model):
    ev = EvLoad(start_wh=1000000, phases=1 if model == "sdm120" else 3)
    m = VirtualMeter(model, source=ev)
    mb, sink, clock = bus(m)
    ev.plug()
    ev.start()
    seen = []
    for _ in range(6):
        ev.advance(600)
        clock.t += 600000
        (r,) = poll(mb)
        step = STEP.get(model, 1)
        assert r[0] == ev.energy_wh // step * step
        assert r[1] == ev.power_w
        seen.append(r[0])
    assert seen == sorted(seen) and seen[-1] - seen[0] > 9000  # 11 kW for 50 minutes
    assert sink.faults == []


def test_an_ev_saved_and_loaded_goes_on_as_if_never_stopped():
    a = EvLoad(capacity_wh=20000, max_w=7400, ramp_s=5, start_wh=1234)
    a.plug()
    a.start()
    a.advance(90)
    b = EvLoad(capacity_wh=20000, max_w=7400, ramp_s=5).load(json.loads(json.dumps(a.save())))
    assert b.reading() == a.reading() and b.energy_wh > 1234
    a.advance(600)
    b.advance(600)
    assert b.reading() == a.reading() and b.soc == a.soc

def test_iskra_energy_exponent_is_applied():
    m = VirtualMeter("wm3m4", source=Fixed(wh=123456789, w=0), wh_exp=1)
    (r,) = poll(bus(m)[0])
    assert r[0] == 123456780
    m = VirtualMeter("wm3m4", source=Fixed(wh=123456, w=0), wh_exp=-2)
    (r,) = poll(bus(m)[0])
    assert r[0] == 123456


def test_large_float_counter_is_within_its_resolution():
    m = VirtualMeter("sdm630", source=Fixed(wh=98765432, w=0))  # 98765.432 kWh in a float32
    (r,) = poll(bus(m)[0])
    assert abs(r[0] - 98765432) <= 4  # float32 step there is 7.8 Wh; rounding keeps half of it


def test_meter_answers_only_its_unit_and_skips_bad_crc():
    m = VirtualMeter("sdm630", unit=3, source=Fixed(wh=1000, w=0))
    from cpagent.drivers.modbus import request

    assert m.handle(request(4, 4, 0x48, 2)) == b""
    bad = bytearray(request(3, 4, 0x48, 2))
    bad[7] ^= 1
    assert m.handle(bytes(bad)) == b""
    good = request(3, 4, 0x48, 2)
    reply = m.handle(good[:3]) + m.handle(good[3:])  # a request split across reads
    assert reply[:3] == b"\x03\x04\x04" and len(reply) == 9
    assert m.handle(request(3, 4, 0x4C, 2))[1:3] == b"\x84\x02"  # unmapped: exception 02
    assert m.handle(request(3, 3, 0x48, 2))[1:3] == b"\x83\x01"  # wrong function: 01


@pytest.mark.parametrize("model", MODELS)
def test_dead_meter_is_one_fault_until_it_answers(model):
    m = VirtualMeter(model, source=Fixed(wh=5000, w=0))
    mb, sink, clock = bus(m)
    m.fault = "dead"
    for _ in range(5):
        clock.t += 10000
        assert poll(mb) == [None]
    assert len(sink.faults) == 1
    i, connector, text = sink.faults[0]
    assert (i, connector) == (0, False) and "meter 1" in text and "no valid reading" in text
    m.fault = None
    clock.t += 10000
    assert poll(mb)[0][0] == 5000 // STEP.get(model, 1) * STEP.get(model, 1)
    m.fault = "dead"
    for _ in range(3):
        clock.t += 10000
        poll(mb)
    assert len(sink.faults) == 2  # recovered, then dead again: a second report


@pytest.mark.parametrize("model", MODELS)
def test_frozen_energy_while_power_flows(model):
    ev = EvLoad(start_wh=2000000, phases=1 if model == "sdm120" else 3)
    m = VirtualMeter(model, source=ev)
    mb, sink, clock = bus(m)
    ev.plug()
    ev.start()
    ev.advance(60)
    clock.t += 60000
    poll(mb)
    m.fault = "frozen"
    got = []
    for _ in range(10):  # 10 minutes at 11 kW: ~1.8 kWh the register does not show
        ev.advance(60)
        clock.t += 60000
        got.append(poll(mb)[0])
    texts = [t for _, _, t in sink.faults]
    assert len(texts) == 1 and "frozen" in texts[0] and "meter 1" in texts[0]
    # readings pass (power still flowing) until the fault is found, none after it: the bill
    # stays where it was
    k = got.index(None)
    assert all(r[1] == 11000 for r in got[:k]) and got[k:] == [None] * (10 - k)
    assert len(sink.meters) == 1 + k and mb.health[0].active == ("frozen",)


@pytest.mark.parametrize("model", MODELS)
def test_backwards_energy(model):
    src = Fixed(wh=3000000, w=0)
    m = VirtualMeter(model, source=src, back_wh=1000)
    mb, sink, clock = bus(m)
    poll(mb)
    m.fault = "backwards"
    for _ in range(3):
        clock.t += 10000
        assert poll(mb) == [None]  # a backwards reading is not passed on
    texts = [t for _, _, t in sink.faults]
    assert len(texts) == 1 and "backwards" in texts[0] and "meter 1" in texts[0]
    assert sink.meters == [(0, 3000000, 0)]


@pytest.mark.parametrize("model", MODELS)
def test_not_available_markers(model):
    m = VirtualMeter(model, source=Fixed(wh=3000000, w=500))
    mb, sink, clock = bus(m)
    m.fault = "na"
    for _ in range(3):
        clock.t += 10000
        assert poll(mb) == [None]
    texts = [t for _, _, t in sink.faults]
    assert len(texts) == 1 and "not available" in texts[0] and "meter 1" in texts[0]
    assert sink.meters == []
    # every quantity the firmware reads decodes as None, phases included
    reps = [(q, m.answer(q[0], q[1], q[2])[3:-2]) for q in mb.plan]
    wh, w, volts, amps = decode(mb.model, reps)
    assert (wh, w) == (None, None)
    assert set((volts or ()) + (amps or ())) <= {None}


@pytest.mark.parametrize("model", MODELS)
def test_noise_before_each_reply_is_skipped(model):
    m = VirtualMeter(model, source=Fixed(wh=777000, w=1234))
    m.fault = "noise"
    mb, sink, _ = bus(m)
    (r,) = poll(mb)
    assert r[:2] == (777000, 1234)
    assert sink.faults == []
    assert NOISE in b"".join(m.handle(f) for f in mb.client.port.sent[-1:])


def test_unknown_model_and_fault_are_named():
    with pytest.raises(ValueError, match="sdm999"):
        VirtualMeter("sdm999")
    m = VirtualMeter("sdm630", source=Fixed())
    with pytest.raises(ValueError, match="melted"):
        m.fault = "melted"
    assert set(FAULTS) == {"dead", "frozen", "backwards", "na", "noise"}


def test_ev_load_curve():
    ev = EvLoad(capacity_wh=10000, soc=0.5, max_w=11000, ramp_s=10, start_wh=500)
    assert ev.reading()[:2] == (500, 0)
    ev.start()  # not plugged: nothing
    assert not ev.charging
    ev.plug()
    ev.start()
    ev.advance(5)
    assert ev.power_w == 5500  # half way up the ramp
    ev.advance(5)
    wh, w, volts, amps = ev.reading()
    assert w == 11000 and wh > 500
    assert [round(a * v) for a, v in zip(amps, volts, strict=True)] == [3667, 3667, 3667]
    ev.advance(3600 * 2)  # past 80 %: tapers, then stops full
    assert not ev.charging and ev.soc == 1.0 and ev.power_w == 0
    assert ev.energy_wh == 500 + 5000  # exactly the 50 % it took, no more
    again = EvLoad(capacity_wh=10000, soc=0.5, max_w=11000, ramp_s=10, start_wh=500)
    again.plug()
    again.start()
    for _ in range(7210):
        again.advance(1)
    assert again.energy_wh == ev.energy_wh  # deterministic, whatever the step of advance()


def test_ev_taper_lowers_power():
    ev = EvLoad(capacity_wh=10000, soc=0.9, max_w=11000, ramp_s=0)
    ev.plug()
    ev.start()
    assert ev.power_w == 5500  # 10 % left of the 20 % taper band: half power
    single = EvLoad(phases=1, ramp_s=0, max_w=7360, volts=(230.0, 230.0, 230.0))
    single.plug()
    single.start()
    assert single.reading()[3] == (32.0, 0.0, 0.0)
