"""PN532 HSU: literal frames (worked out by hand), scan and resync, driver and its recovery."""
import asyncio

from fakepn532 import Chip
from fakeport import FakePort

from check import ClosedPort, arun, raises_naming, stop
from cpagent.drivers.pn532 import (
    ACK,
    BAD_DCS,
    BAD_LCS,
    CHIP,
    FRAME,
    GOT_ACK,
    GOT_NACK,
    NACK,
    NEED,
    TOO_LONG,
    Pn532,
    frame,
)
from cpagent.drivers.pn532 import scan as scan_

# LEN = TFI + body bytes, LCS = -LEN, DCS = -(TFI + body) (all & 0xFF).
SAM = b"\x00\x00\xff\x05\xfb\xd4\x14\x01\x14\x01\x02\x00"  # D4+14+01+14+01 = 0xFE -> DCS 02
LIST = b"\x00\x00\xff\x04\xfc\xd4\x4a\x01\x00\xe1\x00"  # D4+4A+01+00 = 0x11F -> E1
FIRMWARE = b"\x00\x00\xff\x02\xfe\xd4\x02\x2a\x00"  # D4+02 = 0xD6 -> 2A
RETRIES = b"\x00\x00\xff\x06\xfa\xd4\x32\x05\xff\x01\x01\xf4\x00"  # 0x20C -> F4
WAKE = b"\x55\x55" + b"\x00" * 15
ERROR = b"\x00\x00\xff\x01\xff\x7f\x81\x00"  # the chip's syntax-error frame
# InListPassiveTarget reply, 4-byte UID 04 A1 B2 C3: D5 4B NbTg=1 Tg=1 SENS_RES 00 04 SEL_RES 08
# NFCIDLength 04; LEN 0C, LCS F4; D5+4B+01+01+00+04+08+04+04+A1+B2+C3 = 0x34C -> DCS B4
CARD4 = b"\x00\x00\xff\x0c\xf4\xd5\x4b\x01\x01\x00\x04\x08\x04\x04\xa1\xb2\xc3\xb4\x00"


def scan(b):
    buf = bytearray(64)  # the driver's capacity
    buf[:len(b)] = b
    return scan_(buf, len(b))


def test_command_frames_match_the_hand_computed_bytes():
    assert frame(b"\x14\x01\x14\x01") == SAM
    assert frame(b"\x4a\x01\x00") == LIST
    assert frame(b"\x02") == FIRMWARE
    assert frame(b"\x32\x05\xff\x01\x01") == RETRIES
    assert frame(b"\x4b\x01\x01\x00\x04\x08\x04\x04\xa1\xb2\xc3", CHIP) == CARD4
    raises_naming(ValueError, "at most 254", frame, bytes(255))


def test_scan_finds_ack_nack_frames_and_error_frames():
    assert scan(ACK) == (GOT_ACK, 5, 1)
    assert scan(NACK) == (GOT_NACK, 5, 1)
    assert scan(CARD4) == (FRAME, 18, 5)  # body D5 4B ... C3 is CARD4[5:17]
    assert scan(ERROR) == (FRAME, 7, 5) and ERROR[5] == 0x7F
    assert scan(SAM)[0] == FRAME  # host frames too (the virtual chip uses this scanner)


def test_scan_skips_noise_and_waits_for_the_rest():
    b = b"\x55\xff\x00\x01" + ACK
    assert scan(b) == (GOT_ACK, 9, 5)
    assert scan(b"\x12\x34\x00") == (NEED, 2, 2)  # the 00 may start a frame: kept
    assert scan(b"\x12\x34\x56") == (NEED, 2, 2)
    assert scan(CARD4[:10]) == (NEED, 1, 1)  # frame incomplete: only the preamble goes
    assert scan(b"") == (NEED, 0, 0)


def test_scan_rejects_bad_checksums_and_resyncs_inside():
    bad = bytearray(CARD4)
    bad[14] ^= 0x01  # one UID bit: DCS fails
    assert scan(bad) == (BAD_DCS, 3, 1)
    assert scan(bytes(bad[3:])) == (NEED, 15, 15)  # no start code: all but the last 00 go
    assert scan(b"\x00\xff\x05\xfa" + ACK) == (BAD_LCS, 2, 0)
    assert scan(b"\xff\x05\xfa" + ACK) == (GOT_ACK, 8, 4)
    # a bogus start code inside a good frame's way: the real frame after it is found
    assert scan(b"\x00\xff\x0c\xf3" + CARD4[:2])[0] == BAD_LCS
    assert scan(b"\x00\xff\x00\x00")[0] == BAD_LCS  # LEN 0 is only valid as ACK
    assert scan(b"\x00\xff\xff\xff\x00\x05")[0] == BAD_LCS  # extended frames are not used


def test_scan_rejects_a_frame_longer_than_the_buffer():
    b = bytearray(16)
    b[:5] = b"\x00\x00\xff\x20\xe0"  # LEN 32: cannot fit in 16 bytes
    assert scan_(b, 5) == (TOO_LONG, 3, 1)


class Run:
    def __init__(self, chip, t=None):
        self.port = FakePort(chip)
        self.taps = []
        self.errors = []
        self.r = Pn532(self.port, (lambda: t[0]) if t else (lambda: 0), 1500, 1,
                       self.errors.append)
        self.task = asyncio.create_task(self.r.run(self.taps.append))

    async def until(self, cond):
        for _ in range(400):  # a guard against a hang, not a timing claim
            if cond():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("not reached; taps %r errors %r" % (self.taps, self.errors))

    async def stop(self):
        await stop(self.task)


def test_wakes_configures_then_polls_and_reads_4_7_10_byte_uids():
    async def go():
        for uid, hexed in ((b"\x04\xa1\xb2\xc3", "04A1B2C3"),
                           (b"\x04\xa1\xb2\xc3\xd4\xe5\xf6", "04A1B2C3D4E5F6"),
                           (bytes(range(1, 11)), "0102030405060708090A")):
            run = Run(Chip(uid))
            await run.until(lambda r=run: r.taps)
            await run.stop()
            assert run.port.sent[:4] == [WAKE, SAM, RETRIES, LIST]
            assert run.taps == [hexed] and run.errors == []
    return arun(go())


def test_card_resting_is_one_tap_and_returns_after_the_hold():
    async def go():
        t = [0]
        chip = Chip(b"\x04\xa1\xb2\xc3")
        run = Run(chip, t)
        await run.until(lambda: run.r.stats["good"] >= 5)
        chip.uid = None
        n = len(chip.cmds)
        await run.until(lambda: len(chip.cmds) > n + 3)
        t[0] += 1500
        chip.uid = b"\x04\xa1\xb2\xc3"
        await run.until(lambda: len(run.taps) == 2)
        await run.stop()
        assert run.taps == ["04A1B2C3", "04A1B2C3"] and run.r.stats["resets"] == 0
    return arun(go())


def test_uid_of_another_length_is_reported_and_ignored():
    async def go():
        chip = Chip(b"\x01\x02\x03\x04\x05")
        run = Run(chip)
        await run.until(lambda: chip.cmds.count(0x4A) >= 5)
        await run.stop()
        assert run.taps == [] and len(run.errors) == 1  # once while the card rests there
        assert "UID of 5 bytes ignored (expected 4, 7 or 10)" in run.errors[0]
    return arun(go())


def test_noise_and_stale_frames_around_the_exchange_are_skipped():
    async def go():
        chip = Chip(b"\x04\xa1\xb2\xc3")
        # noise, a late reply to an aborted poll (before the ACK: not this command's), an ACK
        # out of place, then the real answer after more noise
        chip.queue[0x14] = [b"\xff\x55\x00" + CARD4 + ACK + b"\x12" + ACK + b"\x34\x00"
                            + frame(b"\x15", CHIP)]
        run = Run(chip)
        await run.until(lambda: run.taps)
        await run.stop()
        assert run.taps == ["04A1B2C3"] and run.errors == [] and run.r.stats["resets"] == 0
    return arun(go())


async def _recovers(queue, text, timeouts=0, bad=0):
    """The chip misbehaves once as scripted; the driver reports `text`, aborts, wakes and
    configures again, and the card is read after that."""
    chip = Chip(b"\x04\xa1\xb2\xc3")
    chip.queue = queue
    run = Run(chip)
    await run.until(lambda: run.taps)
    await run.stop()
    assert run.taps == ["04A1B2C3"]
    assert len(run.errors) == 1 + bad and text in run.errors[-1], run.errors
    s = run.r.stats
    assert s["resets"] == 1 and s["timeouts"] == timeouts and s["bad"] == bad
    sent = run.port.sent
    i = sent.index(ACK)
    assert sent[i + 1:i + 5] == [WAKE, SAM, RETRIES, LIST]


def test_no_ack_times_out_and_recovers():
    return arun(_recovers({0x14: [b""]}, "no ACK to command 0x14 within 100 ms", timeouts=1))


def test_absent_chip_is_retried_forever_and_reported_once():
    async def go():
        chip = Chip()
        chip.queue = {0x14: [b""] * 3}
        run = Run(chip)
        await run.until(lambda: chip.cmds[:6] == [0x14, 0x14, 0x14, 0x14, 0x32, 0x4A])
        await run.stop()
        assert run.r.stats["resets"] == 3 and run.r.stats["timeouts"] == 3
        assert run.errors == ["pn532: no ACK to command 0x14 within 100 ms"]
        assert run.port.sent.count(WAKE) == 4 and run.port.sent.count(ACK) == 3
    return arun(go())


def test_no_reply_times_out_and_recovers():
    return arun(_recovers({0x4A: [ACK]}, "no reply to command 0x4A within 500 ms", timeouts=1))


def test_reply_with_bad_checksum_gives_no_uid_and_recovers():
    bad = bytearray(CARD4)
    bad[13] = 0x05  # 5-byte length claim with the old DCS: the frame must be dropped
    q = {0x4A: [ACK + bytes(bad)]}
    return arun(_recovers(q, "no reply to command 0x4A", timeouts=1, bad=1))


def test_nack_error_frame_and_short_reply_recover():
    async def go():
        await _recovers({0x32: [NACK]}, "NACK instead of the ACK to command 0x32")
        await _recovers({0x4A: [ACK + ERROR]}, "error frame in reply to command 0x4A")
        short = ACK + frame(b"\x4b\x01\x01\x00\x04\x08\x07\x04\xa1", CHIP)
        await _recovers({0x4A: [short]}, "reply D54B0101000408070", )
    return arun(go())


def test_a_closed_port_resets_and_is_reported_once_instead_of_spun_on():
    async def go():
        errors = []
        r = Pn532(ClosedPort(), lambda: 0, 1500, 1, errors.append)  # a clock that stands still
        task = asyncio.create_task(r.run(errors.append))
        for _ in range(400):  # a guard against a hang, not a timing claim
            if r.stats["resets"] >= 3:
                break
            await asyncio.sleep(0.01)
        await stop(task)
        assert r.stats["resets"] >= 3 and r.stats["timeouts"] == 0
        assert len(errors) == 1 and "port read: no bytes (port closed?)" in errors[0], errors
    return arun(go())
