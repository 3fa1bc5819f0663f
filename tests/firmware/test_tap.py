"""The shared reader base: one event per tap (debounce), counters, errors that never stop it."""
import asyncio

from fakeport import FakePort

from check import ClosedPort, arun, stop
from cpagent.drivers.line_reader import LineReader
from cpagent.drivers.tap import Reader, hexu, nibble


def _clock():
    t = [0]
    return t, lambda: t[0]


def test_first_sighting_is_a_tap_and_a_resting_card_is_not():
    t, ms = _clock()
    d = Reader(None, ms, 1500, None)
    assert d.seen("04A1B2C3")
    for _ in range(20):  # re-reported every 200 ms for 4 s: the hold restarts each time
        t[0] += 200
        assert not d.seen("04A1B2C3")


def test_same_card_after_hold_away_is_a_new_tap():
    t, ms = _clock()
    d = Reader(None, ms, 1500, None)
    assert d.seen("04A1B2C3")
    t[0] += 1499
    assert not d.seen("04A1B2C3")
    t[0] += 1500
    assert d.seen("04A1B2C3")


def test_another_card_is_a_new_tap_at_once():
    t, ms = _clock()
    d = LineReader(None, ms)
    assert d.seen("04A1B2C3")
    assert d.seen("11223344")
    assert d.seen("04A1B2C3")  # A, B, A: three taps, nothing rests on the reader
    assert d.hold_ms == 1500


def test_hexu_is_upper_case_in_wire_order():
    assert hexu(b"\x04\xa1\xb2\xc3\xd4\xe5\xf6") == "04A1B2C3D4E5F6"
    assert hexu(b"") == ""


def test_nibble_takes_only_hex_digits():
    assert [nibble(c) for c in b"09afAF"] == [0, 9, 10, 15, 10, 15]
    assert [nibble(c) for c in b"gG/:@`_+ \x00\xff"] == [-1] * 11


async def _failing_callbacks():
    port = FakePort()
    said = []

    def on_error(text):
        said.append(text)
        raise RuntimeError("logger down")

    def on_tap(uid):
        raise KeyError(uid)

    r = LineReader(port, lambda: 0, on_error=on_error)
    task = asyncio.create_task(r.run(on_tap))
    port.feed(b"04A1B2C3\nzz\n11223344\n")
    for _ in range(10):
        await asyncio.sleep(0)
    await stop(task)
    return r, said


def test_failing_on_tap_and_on_error_do_not_stop_the_reader():
    def check(res):
        r, said = res
        assert r.stats == {"good": 2, "bad": 1, "taps": 2}
        assert len(said) == 3 and "on_tap(04A1B2C3) failed" in said[0]
        assert "'zz'" in said[1] and "on_tap(11223344)" in said[2]
    return _run_then(_failing_callbacks(), check)


class _BrokenOnce(FakePort):
    def __init__(self):
        super().__init__()
        self.fails = 1

    async def read(self, n):
        if self.fails:
            self.fails -= 1
            raise OSError(5)
        return await super().read(n)


async def _port_error():
    port = _BrokenOnce()
    said = []
    taps = []
    r = LineReader(port, lambda: 0, on_error=said.append)
    task = asyncio.create_task(r.run(taps.append))
    port.feed(b"04A1B2C3\n")
    for _ in range(150):  # the reader waits a second after a failed read
        if taps:
            break
        await asyncio.sleep(0.02)
    await stop(task)
    return said, taps


def test_port_read_error_is_reported_and_reading_goes_on():
    def check(res):
        said, taps = res
        assert taps == ["04A1B2C3"]
        assert len(said) == 1 and "port read failed" in said[0]
    return _run_then(_port_error(), check)


def _run_then(coro, check):
    async def go():
        check(await coro)
    return arun(go())


def test_an_empty_read_is_reported_instead_of_spun_on():
    async def go():
        said = []
        r = LineReader(ClosedPort(), lambda: 0, on_error=said.append)
        task = asyncio.create_task(r.run(said.append))
        for _ in range(20):  # the reader waits a second after a failed read
            await asyncio.sleep(0)
        await stop(task)
        assert len(said) == 1 and "port read failed: OSError(" in said[0]
        assert "port read: no bytes (port closed?)" in said[0]
    return arun(go())
