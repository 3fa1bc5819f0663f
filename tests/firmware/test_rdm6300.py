"""RDM6300 frames (literal, worked by hand) and the driver: checksum, resync, debounce."""
import asyncio

from fakeport import FakePort

from check import arun, raises_naming, stop
from cpagent.drivers.rdm6300 import Rdm6300, parse

# "14" version, "008EC793" tag, "CE" = 14^00^8E^C7^93 (14^8E = 9A, ^C7 = 5D, ^93 = CE)
GOOD = b"\x02\x31\x34\x30\x30\x38\x45\x43\x37\x39\x33\x43\x45\x03"
# "01" "0A0B0C0D", checksum 01^0A^0B^0C^0D = 0x01
OTHER = b"\x02010A0B0C0D01\x03"


def test_literal_frame_gives_the_4_byte_tag():
    assert GOOD == b"\x02" + b"14008EC793CE" + b"\x03"
    assert parse(GOOD) == "008EC793"
    assert parse(OTHER) == "0A0B0C0D"
    assert parse(b"\x0214008ec793ce\x03") == "008EC793"  # lower-case digits too
    assert parse(memoryview(bytearray(GOOD))) == "008EC793"


def test_bad_frames_raise_naming_the_problem():
    raises_naming(ValueError, "XOR checksum", parse, b"\x0214008EC793CF\x03")
    raises_naming(ValueError, "XOR checksum", parse, b"\x0215008EC793CE\x03")
    raises_naming(ValueError, "non-hex", parse, b"\x0214008EC7G3CE\x03")
    raises_naming(ValueError, "02 + 12 hex digits + 03", parse, GOOD[:-1])
    raises_naming(ValueError, "02 + 12 hex digits + 03", parse, b"\x0314008EC793CE\x03")
    raises_naming(ValueError, "02 + 12 hex digits + 03", parse, b"\x0214008EC793CE\x02")


def test_all_zero_tag_is_ignored():
    raises_naming(ValueError, "all-zero tag", parse, b"\x02000000000000\x03")
    raises_naming(ValueError, "all-zero tag", parse, b"\x02140000000014\x03")


async def _drive(feeds, t=None, hold_ms=1500):
    port = FakePort()
    errors = []
    taps = []
    r = Rdm6300(port, (lambda: t[0]) if t else (lambda: 0), hold_ms, errors.append)
    task = asyncio.create_task(r.run(taps.append))
    for f in feeds:
        if callable(f):
            f()
        else:
            port.feed(f)
        for _ in range(4):
            await asyncio.sleep(0)
    await stop(task)
    return r, taps, errors


def test_card_resting_on_the_reader_is_one_tap():
    async def go():
        r, taps, errors = await _drive([GOOD, GOOD, GOOD * 3])
        assert taps == ["008EC793"] and errors == []
        assert r.stats == {"good": 5, "bad": 0, "taps": 1}
    return arun(go())


def test_same_card_again_after_the_hold_and_another_card():
    t = [0]

    def away():
        t[0] += 1500

    async def go():
        _, taps, _ = await _drive([GOOD, away, GOOD, OTHER], t)
        assert taps == ["008EC793", "008EC793", "0A0B0C0D"]
    return arun(go())


def test_frame_split_anywhere_and_noise_between_frames():
    async def go():
        feeds = [b"\xff\x00 noise", GOOD[:1], GOOD[1:7], GOOD[7:], b"\x03\x03\xaa", OTHER]
        r, taps, errors = await _drive(feeds)
        assert taps == ["008EC793", "0A0B0C0D"] and errors == []
    return arun(go())


def test_garbage_frames_are_reported_and_the_next_good_frame_is_read():
    async def go():
        feeds = [b"\x0214008EC793CF\x03",  # checksum
                 b"\x0214008E" + GOOD,  # cut off by a new 02, then good
                 b"\x02" + b"1" * 20,  # no 03 after 12 digits
                 b"\x0212\x03",  # too short
                 b"\x02000000000000\x03",
                 OTHER]
        r, taps, errors = await _drive(feeds)
        assert taps == ["008EC793", "0A0B0C0D"]
        assert r.stats == {"good": 2, "bad": 5, "taps": 2}
        assert "XOR checksum" in errors[0] and "cut off by 02 after 7 bytes" in errors[1]
        assert "02 + 12 hex digits + 03" in errors[2] and "02 + 12" in errors[3]
        assert "all-zero" in errors[4]
    return arun(go())
