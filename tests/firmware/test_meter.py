"""Meter bus and health: readings into a fake sink, each fault once, recovery, the poll loop."""
import asyncio

from fakemeter import Bank, abb
from fakeport import FakePort

from check import Sink, arun, raises_naming, stop
from cpagent.drivers.meter import MeterBus, MeterHealth

CFG = {"model": "abb_b23", "baud": 9600, "timeout_ms": 20, "retries": 0, "dead_polls": 2}


def test_poll_reads_every_meter_in_turn_and_feeds_the_sink():
    async def go():
        port = FakePort(Bank({1: abb(123456, 700000), 2: abb(5000, 0)}))
        sink = Sink()
        bus = MeterBus(port, CFG, [1, 2], sink, lambda: 0)
        r = await bus.poll()
        assert sink.meters == [(0, 1234560, 7000), (1, 50000, 0)] and sink.faults == []
        assert r[0][:2] == (1234560, 7000) and r[0][2][1:] == (0.0, 0.0)
        assert abs(r[0][2][0] - 230.0) < 1e-6 and abs(r[0][3][0] - 10.0) < 1e-6
        assert bus.last == r
        assert [f[0] for f in port.sent] == [1, 1, 2, 2]  # two reads per ABB poll
        assert bus.client.stats["requests"] == 4 and bus.client.stats["tx_bytes"] == 32
        assert bus.client.stats["rx_bytes"] == 2 * (13 + 49)
    return arun(go())


def test_a_dead_meter_is_reported_once_and_again_after_it_answers():
    async def go():
        bank = Bank({1: abb(100, 0)})
        sink = Sink()
        bus = MeterBus(FakePort(bank), CFG, [1, 2], sink, lambda: 0)
        assert (await bus.poll())[1] is None and sink.faults == []
        await bus.poll()
        assert sink.faults == [(1, False, "meter 2: no valid reading in 2 polls in a row (last: "
                                "modbus unit 2 fc 3 addr 20480: no reply within 20 ms (1 "
                                "attempts))")]
        await bus.poll()
        assert len(sink.faults) == 1 and bus.health[1].active == ("dead",)
        assert [m[0] for m in sink.meters] == [0, 0, 0]
        bank.units[2] = abb(200, 0)
        await bus.poll()
        assert sink.meters[-1] == (1, 2000, 0) and bus.health[1].active == ()
        del bank.units[2]
        await bus.poll()
        await bus.poll()
        assert len(sink.faults) == 2 and sink.faults[1][2].startswith("meter 2: no valid")
    return arun(go())


def test_not_available_energy_counts_as_a_failed_poll():
    async def go():
        sink = Sink()
        regs = abb(0, 0)
        for a in range(0x5000, 0x5004):
            regs[(3, a)] = 0xFFFF
        bus = MeterBus(FakePort(Bank({7: regs})), CFG, [7], sink, lambda: 0)
        assert await bus.poll() == [None]
        await bus.poll()
        assert sink.meters == [] and sink.faults == [
            (0, False, "meter 7: no valid reading in 2 polls in a row (last: energy register "
             "not available)")]
    return arun(go())


def test_exception_replies_fail_the_poll_and_gap_reads_fall_back():
    async def go():
        sink = Sink()
        cfg = {"model": "sdm630", "timeout_ms": 20, "retries": 0, "dead_polls": 1}
        bank = Bank({1: {(4, 0x49): 0}}, most=12)  # refuses the 74-register read
        bus = MeterBus(FakePort(bank), cfg, [1], sink, lambda: 0)
        assert await bus.poll() == [(0, 0, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0))]
        assert bus.plan == [(4, 0, 12), (4, 0x34, 2), (4, 0x48, 2)]
        bank.most = 1
        assert await bus.poll() == [None]
        assert sink.faults[0][2] == ("meter 1: no valid reading in 1 polls in a row (last: "
                                     "modbus unit 1 fc 4 addr 0: exception 02 illegal data "
                                     "address)")
    return arun(go())


def test_the_receive_buffer_fits_the_one_per_block_plan_too():
    # Fields at 0 (2 registers), 3 (2) and 5 (4), at most 7 a read: the gapped plan reads 0..4
    # and 5..8, one read per block 0..1 and 3..8, longer than any read of the gapped plan.
    from cpagent.drivers import meter

    async def go():
        made = meter.model
        meter.model = lambda name: (7, True, ((0, 4, 0, 2, 0, 1), (1, 4, 3, 2, 0, 1),
                                              (2, 4, 5, 7, 0, 1)))
        try:
            regs = {(4, a): 0 for a in (0, 1, 3, 4, 5, 6, 7, 8)}
            regs[(4, 1)], regs[(4, 4)] = 1234, 56
            bus = MeterBus(FakePort(Bank({1: regs}, most=7, strict=True)), CFG, [1], Sink(),
                           lambda: 0)
        finally:
            meter.model = made
        r = await bus.poll()
        assert bus.plan == [(4, 0, 2), (4, 3, 6)] and r[0][:2] == (1234000, 56)  # kWh in
    return arun(go())


def test_a_register_going_backwards_is_reported_at_once_and_not_fed():
    async def go():
        bank = Bank({2: abb(123400, 0)})
        sink = Sink()
        bus = MeterBus(FakePort(bank), CFG, [2], sink, lambda: 0)
        await bus.poll()
        bank.units[2] = abb(120000, 0)
        assert await bus.poll() == [None]
        assert sink.faults == [(0, False, "meter 2: energy register went backwards "
                                "(1234000 -> 1200000 Wh)")]
        await bus.poll()
        assert len(sink.faults) == 1 and sink.meters == [(0, 1234000, 0)]
        assert bus.last[0][0] == 1234000
    return arun(go())


def test_health_backwards_once_until_cleared():
    h = MeterHealth(2)
    assert h.reading(0, 1234, 0) is None
    assert h.reading(10, 1200, 0) == "meter 2: energy register went backwards (1234 -> 1200 Wh)"
    assert h.reading(20, 1100, 0) is None and h.active == ("backwards",)
    assert h.reading(30, 1234, 0) is None and h.active == ()
    assert h.reading(40, 1233, 0).endswith("(1234 -> 1233 Wh)")


def test_health_frozen_when_power_implies_more_than_the_limit():
    h = MeterHealth(3)
    assert h.reading(0, 5000, 7000) is None
    assert h.reading(30000, 5000, 7000) is None  # 58 Wh implied
    text = h.reading(60000, 5000, 7000)  # 117 Wh > 100 Wh
    assert text == ("meter 3: energy register frozen at 5000 Wh while its power implies over "
                    "100 Wh more")
    assert h.reading(90000, 5000, 7000) is None and h.active == ("frozen",)
    assert h.reading(100000, 5001, 7000) is None and h.active == ()
    assert h.reading(160000, 5001, 7000) is not None  # again after a change cleared it
    h = MeterHealth(3)
    h.reading(0, 5000, 7000)
    assert h.reading(120000, 5000, 7000, res=100) is None  # 233 Wh < 3 x 100 Wh
    assert h.reading(160000, 5000, 7000, res=100) is not None  # 311 Wh
    h = MeterHealth(3)
    h.reading(0, 5000, 0)
    assert h.reading(3600000, 5000, 0) is None  # no power: a still register is right
    assert h.reading(3660000, 5000, -7000) is None  # export is not import
    assert h.reading(3710000, 5000, 14000) is None  # (0 + 14 kW) / 2 for 50 s: 97 Wh
    assert h.active == () and h.reading(3712000, 5000, 0) is not None  # + 7 kW for 2 s
    # No power since the last reading (the session over): nothing contradicts a still
    # register any more, the EVSE may serve the next driver (who finds out anew).
    assert h.active == ("frozen",) and h.reading(3722000, 5000, 0) is None and h.active == ()
    assert h.reading(3782000, 5000, 7000) is None  # 58 Wh: counted afresh
    assert h.reading(3812000, 5000, 7000) is not None and h.active == ("frozen",)
    # A meter that shows standby or noise watts with the contactor open: at or below idle_w
    # nothing draws, so the still register neither raises nor keeps the fault.
    h = MeterHealth(3, idle_w=50)
    h.reading(0, 5000, 7000)
    assert h.reading(60000, 5000, 7000) is not None and h.active == ("frozen",)
    assert h.reading(70000, 5000, 30) is None and h.active == ("frozen",)  # 7 kW until now
    assert h.reading(80000, 5000, 12) is None and h.active == ()
    assert h.reading(86400000, 5000, 40) is None and h.active == ()  # a day of 40 W noise


def test_health_dead_after_n_failures_once():
    h = MeterHealth(4, dead_polls=3)
    assert h.failed("a") is None and h.failed("b") is None
    assert h.failed("timeout") == "meter 4: no valid reading in 3 polls in a row (last: timeout)"
    assert h.failed("c") is None and h.active == ("dead",)
    assert h.reading(0, 1, 0) is None and h.active == () and h.failed("d") is None


def test_bad_model_names_the_field():
    raises_naming(ValueError, "meter.model: no register map named 'sdm999'", MeterBus,
                  FakePort(), {"model": "sdm999"}, [1], Sink(), lambda: 0)


def test_run_polls_by_the_clock_survives_a_failing_sink_and_says_each_new_error_once():
    async def go():
        t = [0]

        def ms():
            t[0] += 6000  # every poll overruns its 10 s period: no sleep, no burst
            return t[0]

        class Bad(Sink):
            def meter(self, i, wh, w):
                Sink.meter(self, i, wh, w)
                raise RuntimeError("sink bug %d" % (len(self.meters) > 3))

        sink = Bad()
        said = []
        bus = MeterBus(FakePort(Bank({1: abb(1, 0)})), CFG, [1], sink, ms,
                       on_error=said.append)
        task = asyncio.create_task(bus.run())
        for _ in range(2000):  # a guard against a hang, not a timing claim
            if len(sink.meters) >= 6:
                break
            await asyncio.sleep(0.005)
        await stop(task)
        assert len(sink.meters) >= 6 and bus.error == "meter bus: RuntimeError: sink bug 1"
        assert said == ["meter bus: RuntimeError: sink bug %d" % k for k in (0, 1)]
    return arun(go())
