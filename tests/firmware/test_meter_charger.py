"""Meter bus into the charger core: readings start a session, meter faults end it with an Error."""
from chargerbox import A, Box
from fakemeter import Bank, abb
from fakeport import FakePort

from check import arun
from cpagent.drivers.meter import MeterBus

CFG = {"model": "abb_b23", "baud": 9600, "timeout_ms": 20, "retries": 0, "dead_polls": 2}


def _charging(units):
    b = Box()
    bank = Bank(units)
    bus = MeterBus(FakePort(bank), CFG, [1, 2], b.ch, lambda: b.now)
    b.ch.tap(A)
    b.authorize_all()
    return b, bank, bus


def _messages(b):
    return [(m.get("Type", "CDR"), m) for m in b.sent()]


def test_readings_start_and_a_backwards_register_ends_with_an_error():
    async def go():
        b, bank, bus = _charging({1: abb(123456, 700000), 2: abb(5000, 0)})
        await bus.poll()  # 7 kW on EVSE 0: energy flows
        assert b.ch.evses[0].state == "charging" and b.ch.evses[1].state == "idle"
        b.now += 60000
        bank.units[1].update(abb(123400, 700000))  # 0.56 kWh less than before
        await bus.poll()
        msgs = _messages(b)
        assert [k for k, _ in msgs] == ["Start", "Error", "End", "CDR"]
        start, err, end, cdr = [m for _, m in msgs]
        assert start["MeterValueStart"] == 1234.56
        assert err["ErrorType"] == "CriticalError"
        assert "meter 1: energy register went backwards (1234560 -> 1234000 Wh)" \
            in err["ErrorAdditionalInfo"]
        # The bill ends at the last good reading, never at the bad one.
        assert end["MeterValueEnd"] == 1234.56 and cdr["ConsumedEnergy"] == 0.0
        assert b.ch.evses[0].state == "idle"
    return arun(go())


def test_a_dead_meter_ends_the_session_after_dead_polls():
    async def go():
        b, bank, bus = _charging({1: abb(100000, 1100000), 2: abb(0, 0)})
        await bus.poll()
        b.now += 10000
        bank.units[1].update(abb(100250, 1100000))
        await bus.poll()
        del bank.units[1]  # silent from now on
        await bus.poll()
        assert b.ch.evses[0].state == "charging"  # one failed poll is not a dead meter
        await bus.poll()
        kinds = [k for k, _ in _messages(b)]
        assert kinds == ["Start", "Error", "End", "CDR"], kinds
        assert b.ch.evses[0].state == "idle"
        assert "meter 1: no valid reading in 2 polls" in b.ch.shown[-1][1]
    return arun(go())


def test_an_evse_with_a_broken_meter_starts_nothing_until_the_meter_is_good_again():
    async def go():
        b, bank, bus = _charging({1: abb(100000, 1100000), 2: abb(0, 0)})
        await bus.poll()
        b.now += 600000  # ten minutes at 11 kW and the register has not moved
        await bus.poll()
        assert [k for k, _ in _messages(b)] == ["Start", "Error", "End", "CDR"]
        assert "frozen" in b.ch.broken[0]
        b.ch.tap(A)  # the next driver is sent to the healthy EVSE, never to the broken one
        b.authorize_all()
        assert b.ch.evses[0].state == "idle" and b.ch.evses[1].state == "authorized"
        b.ch.tap("11223344", evse=0)
        assert b.ch.shown[-1][1].startswith("out of order: meter 1: energy register frozen")
        b.now += 10000
        await bus.poll()  # still frozen: the EVSE stays out of order
        assert b.ch.broken[0]
        bank.units[1].update(abb(100300, 1100000))
        b.now += 10000
        await bus.poll()  # the register moves again: back in service
        assert b.ch.broken[0] is None
        b.ch.tap("11223344", evse=0)
        b.authorize_all()
        assert b.ch.evses[0].state == "authorized"
    return arun(go())


def test_a_frozen_register_does_not_keep_the_evse_out_of_order_once_no_power_flows():
    async def go():
        b, bank, bus = _charging({1: abb(100000, 1100000), 2: abb(0, 0)})
        await bus.poll()
        b.now += 600000
        await bus.poll()  # frozen: Error, the session ends, the EVSE is out of order
        assert "frozen" in b.ch.broken[0] and b.ch.evses[0].state == "idle"
        bank.units[1].update(abb(100000, 0))  # contactor open: no power, the register still
        b.now += 10000
        await bus.poll()  # the last interval still had power: out of order
        assert b.ch.broken[0]
        b.now += 10000
        await bus.poll()  # no power since the last reading: nothing says frozen any more
        assert b.ch.broken[0] is None
        b.ch.tap("11223344", evse=0)
        b.authorize_all()
        assert b.ch.evses[0].state == "authorized"
    return arun(go())


class LatePort(FakePort):
    """A reply the event loop gets to only `lag` ms after the meter sent it (a busy loop)."""

    def __init__(self, device, box, lag):
        super().__init__(device)
        self.box, self.lag = box, lag

    async def read(self, n):
        self.box.now += self.lag
        return await super().read(n)


def test_a_reply_read_late_is_stamped_when_the_meter_was_asked():
    async def go():
        b = Box()
        bank = Bank({1: abb(100000, 1100000), 2: abb(0, 0)})
        port = LatePort(bank, b, 0)
        bus = MeterBus(port, CFG, [1, 2], b.ch, lambda: b.now)
        await bus.poll()
        port.lag = 200000  # each reply waits 200 s: 11 kW x 200 s would be 611 Wh
        await bus.poll()  # asked right after the last (an overrun): the register stood still
        assert b.ch.broken == [None, None], b.ch.broken
        assert bus.health[0].active == () and bus.health[0].implied < 100 * 3600000
    return arun(go())
