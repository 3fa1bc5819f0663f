"""The virtual PN532 answers literal command frames; the firmware driver reads cards from it."""
import asyncio
import random

from fakeport import FakePort

from check import stop
from cpagent.drivers.pn532 import ACK, NACK, Pn532, frame
from host_sim.virtual.pn532 import VirtualPn532

WAKE = b"\x55\x55" + bytes(15)
SAM = bytes.fromhex("0000FF05FBD41401140102 00")
RETRIES = bytes.fromhex("0000FF06FAD43205FF0101F4 00")
LIST = bytes.fromhex("0000FF04FCD44A0100E1 00")
FIRMWARE = bytes.fromhex("0000FF02FED4022A 00")
ERROR = bytes.fromhex("0000FF01FF7F81 00")
# D5 15: 0xEA -> DCS 16; D5 33: 0x108 -> F8; D5 4B 00: 0x120 -> E0
SAM_OK = ACK + bytes.fromhex("0000FF02FED51516 00")
RETRIES_OK = ACK + bytes.fromhex("0000FF02FED533F8 00")
NO_CARD = ACK + bytes.fromhex("0000FF03FDD54B00E0 00")
# D5 4B 01 01 00 44 00 07 04A1B2C3D4E5F6 (7-byte UID: SENS_RES 00 44, SEL_RES 00)
CARD7 = ACK + bytes.fromhex("0000FF0FF1D54B01010044000704A1B2C3D4E5F6" + "%02X" % (
    -sum(bytes.fromhex("D54B01010044000704A1B2C3D4E5F6")) & 0xFF) + "00")


def awake(card=None):
    v = VirtualPn532(card)
    assert v.handle(WAKE + SAM) == SAM_OK
    return v


def test_asleep_until_woken_and_sam_must_come_first():
    v = VirtualPn532()
    assert v.handle(SAM) == b""  # no wake-up yet
    assert v.handle(WAKE) == b""
    assert v.handle(LIST) == b"" and v.handle(FIRMWARE) == b""  # low-battery mode
    assert v.handle(SAM) == SAM_OK
    assert v.handle(FIRMWARE) == ACK + frame(b"\x03\x32\x01\x06\x07", 0xD5)
    v.reset()
    assert v.handle(SAM) == b""


def test_no_card_answers_only_after_max_retries_is_set():
    v = awake()
    assert v.handle(LIST) == ACK  # then silence: the real chip keeps trying
    assert v.handle(ACK) == b"" and v.aborts == 1
    assert v.handle(RETRIES) == RETRIES_OK and v.passive_retries == 1
    assert v.handle(LIST) == NO_CARD


def test_card_reply_and_bytes_split_anywhere():
    v = awake("04A1B2C3D4E5F6")
    assert v.handle(RETRIES + LIST) == RETRIES_OK + CARD7
    out = b"".join(v.handle(bytes((c,))) for c in b"\x12\x00" + LIST)
    assert out == CARD7
    assert v.commands == [0x14, 0x32, 0x4A, 0x4A]


def test_nack_repeats_bad_frames_are_dropped_unknown_commands_get_an_error_frame():
    v = awake()
    assert v.handle(NACK) == bytes.fromhex("0000FF02FED51516 00")
    bad = bytearray(LIST)
    bad[8] ^= 0x01
    assert v.handle(bytes(bad)) == b"" and v.bad == 1
    assert v.handle(frame(b"\x60")) == ACK + ERROR
    assert v.handle(NACK) == ERROR


class ChunkPort(FakePort):
    """FakePort that hands the driver 1..3 bytes per read, as a slow UART would."""

    def __init__(self, device, seed):
        super().__init__(device)
        self.rng = random.Random(seed)

    async def read(self, n):
        return await super().read(min(n, self.rng.randint(1, 3)))


async def _until(cond):
    for _ in range(500):  # a guard against a hang, not a timing claim
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached")


def test_driver_reads_4_7_10_byte_cards_through_the_virtual_chip():
    async def go():
        v = VirtualPn532()
        taps, errors = [], []
        # A clock that stands still: every UID below is another card, so each is a new tap
        # without time passing, and no command deadline can expire under a loaded machine.
        r = Pn532(ChunkPort(v.handle, 1), lambda: 0, 1500, 1, errors.append)
        task = asyncio.create_task(r.run(taps.append))
        for uid in ("04A1B2C3", "04A1B2C3D4E5F6", "0102030405060708090A"):
            v.card = uid
            await _until(lambda u=uid: u in taps)
            v.card = None
            n = len(v.commands)
            await _until(lambda n=n: len(v.commands) > n + 2)
        v.card = "0102030405"
        await _until(lambda: errors)
        await stop(task)
        assert taps == ["04A1B2C3", "04A1B2C3D4E5F6", "0102030405060708090A"]
        assert errors == ["pn532: UID of 5 bytes ignored (expected 4, 7 or 10)"]
        assert r.stats["resets"] == 0 and v.bad == 0
    asyncio.run(go())


def test_driver_recovers_when_the_chip_loses_power():
    async def go():
        v = VirtualPn532("04A1B2C3")
        taps, errors = [], []
        t = [0]
        r = Pn532(ChunkPort(v.handle, 2), lambda: t[0], 1500, 1, errors.append)
        task = asyncio.create_task(r.run(taps.append))
        await _until(lambda: taps)
        v.reset()  # asleep again, unconfigured: the next poll gets no ACK
        v.card = "11223344"
        await _until(lambda: len(taps) == 2)
        await stop(task)
        assert taps == ["04A1B2C3", "11223344"]
        assert r.stats["resets"] >= 1 and "no ACK to command 0x4A" in errors[0]
        assert v.aborts >= 1 and v.commands.count(0x14) >= 2
    asyncio.run(go())
