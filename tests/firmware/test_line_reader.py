"""Line reader: one hex UID per line, separators between bytes, bad and overlong lines."""
import asyncio

from fakeport import FakePort

from check import arun, raises, raises_naming, stop
from cpagent.drivers.line_reader import LineReader, parse


def test_plain_and_separated_uids_normalise_to_upper_hex():
    assert parse(b"04a1b2c3") == "04A1B2C3"
    assert parse(b"04:A1:B2:C3:D4:E5:F6") == "04A1B2C3D4E5F6"
    assert parse(b"04-a1-b2-c3-d4-e5-f6") == "04A1B2C3D4E5F6"
    assert parse(b"04 A1 B2 C3") == "04A1B2C3"
    assert parse(b"  04A1B2C3\r") == "04A1B2C3"
    assert parse(b"04A1:B2C3") == "04A1B2C3"  # separators are optional at each byte boundary
    assert parse(b"0102030405060708090A") == "0102030405060708090A"
    assert parse(memoryview(b"deadbeef")) == "DEADBEEF"


def test_bad_lines_name_the_line_and_the_expected_form():
    e = raises_naming(ValueError, "expected 8, 14 or 20 hex digits", parse, b"04A1B2C")
    assert "'04A1B2C'" in str(e)
    for bad in (b"04A1B2C3D4", b"0:4A1B2C3", b"04::A1B2C3", b":04A1B2C3", b"04A1B2C3:",
                b"04A1B2CG", b"0102030405060708090A0B", b"04A1B2C3 x", b"04,A1,B2,C3",
                b"04\tA1B2C3", b"", b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8"):
        raises(ValueError, parse, bad)
    e = raises_naming(ValueError, "line b'AAAAAAAAAAAAAAAAAAAAAAAA'", parse, b"A" * 50)
    assert "A" * 25 not in str(e)  # truncated


async def _drive(feeds, hold_ms=1500):
    port = FakePort()
    errors = []
    taps = []
    t = [0]
    r = LineReader(port, lambda: t[0], hold_ms, errors.append)
    task = asyncio.create_task(r.run(taps.append))
    for f in feeds:
        if isinstance(f, int):
            t[0] += f
        else:
            port.feed(f)
        for _ in range(4):
            await asyncio.sleep(0)
    await stop(task)
    return r, taps, errors


def test_lines_split_across_reads_with_either_line_end():
    async def go():
        feeds = [b"04a1", b"b2c3\r", b"\n11:22:33:44:55:66:77\n", b"\r\n\n",
                 b"0102030405060708090A", b"\n"]
        r, taps, errors = await _drive(feeds)
        assert taps == ["04A1B2C3", "11223344556677", "0102030405060708090A"]
        assert errors == [] and r.stats == {"good": 3, "bad": 0, "taps": 3}
    return arun(go())


def test_a_carriage_return_alone_ends_a_line():
    async def go():
        feeds = [b"04A1B2C3\r11:22:33", b":44\r\r", b"bad\r01020304050607\r"]
        r, taps, errors = await _drive(feeds)
        assert taps == ["04A1B2C3", "11223344", "01020304050607"]
        assert len(errors) == 1 and "line b'bad'" in errors[0]
    return arun(go())


def test_same_uid_is_one_tap_until_the_hold_passes():
    async def go():
        _, taps, _ = await _drive([b"04A1B2C3\n04A1B2C3\n", 1499, b"04a1b2c3\n", 1500,
                                   b"04A1B2C3\n"])
        assert taps == ["04A1B2C3", "04A1B2C3"]
    return arun(go())


def test_bad_line_is_reported_and_the_next_line_read():
    async def go():
        r, taps, errors = await _drive([b"hello\n04A1B2C3\n"])
        assert taps == ["04A1B2C3"] and r.stats["bad"] == 1
        assert len(errors) == 1 and "line b'hello'" in errors[0]
    return arun(go())


def test_overlong_line_is_dropped_to_its_end_once():
    async def go():
        long = b"04A1B2C3" * 40  # 320 bytes: the first 64 would even start like a UID
        r, taps, errors = await _drive([long[:100], long[100:], b"\n11223344\n"])
        assert taps == ["11223344"] and r.stats["bad"] == 1
        assert len(errors) == 1 and "longer than 64 bytes dropped" in errors[0]
    return arun(go())
