"""Fuzz every reader driver with random and mutated bytes: no crash, no UID from a frame whose
checksum fails (each UID must come from a valid frame found in the fed bytes by an independent
oracle), and a good frame after the garbage is delivered (resync). Prints the case counts."""
import asyncio
import re

from fakeport import FakePort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from check import stop
from cpagent.drivers.line_reader import LineReader
from cpagent.drivers.pn532 import ACK, Pn532, frame
from cpagent.drivers.rdm6300 import Rdm6300
from host_sim.virtual.pn532 import VirtualPn532

RUNS = {}
FUZZ = settings(max_examples=1000, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _count(name):
    RUNS[name] = RUNS.get(name, 0) + 1


def counted(name):
    """Around a @given test: run it, print how many cases ran and require some; each
    test stands alone, whatever runs before it."""
    def wrap(fuzz):
        def test(capsys):
            before = RUNS.get(name, 0)
            fuzz()
            n = RUNS.get(name, 0) - before
            with capsys.disabled():  # shown in the make test log, not only with -s
                print("\n%s fuzz cases run: %d" % (name, n))
            assert n > 0
        test.__name__ = fuzz.__name__
        return test
    return wrap


@st.composite
def mutated(draw, data):
    """data with a few bit flips, cuts, insertions or deletions."""
    b = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        i = draw(st.integers(0, len(b)))
        if op == "flip" and i < len(b):
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "cut":
            del b[i:]
        elif op == "insert":
            b[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif i < len(b):
            del b[i]
    return bytes(b)


def stream(good, noise):
    """A mix of good frames, mutated good frames and noise, concatenated."""
    part = good | good.flatmap(mutated) | noise
    return st.lists(part, max_size=8).map(b"".join)


async def _feed(make, data, final):
    """Run make(port) over data, then final (the good frame after the garbage)."""
    port = FakePort()
    reader = make(port)
    taps = []
    task = asyncio.create_task(reader.run(taps.append))
    for chunk in (data, final):
        port.feed(chunk)
        for _ in range(len(chunk) // 32 + 3):
            await asyncio.sleep(0)
    await stop(task)
    return taps


def _ticks():
    t = [0]

    def ms():  # every reading is a hold later: the debounce never hides a frame here
        t[0] += 2000
        return t[0]
    return ms


# RDM6300 ----------------------------------------------------------------------------------------

def rdm_frame(id5, lower):
    x = 0
    for c in id5:
        x ^= c
    digits = (id5 + bytes((x,))).hex()
    return b"\x02" + (digits if lower else digits.upper()).encode() + b"\x03"


RDM_GOOD = st.builds(rdm_frame, st.binary(min_size=5, max_size=5), st.booleans())
RDM_NOISE = st.binary(max_size=30) | st.lists(
    st.sampled_from(b"\x02\x030123456789ABCDEFabcdefG \x00\xff"), max_size=30).map(bytes)


def rdm_oracle(data):
    """UIDs of every valid frame in data (written from the datasheet, not from the driver)."""
    out = []
    for m in re.finditer(rb"\x02([0-9A-Fa-f]{12})\x03", data):
        raw = bytes.fromhex(m.group(1).decode())
        x = 0
        for c in raw:
            x ^= c
        if x == 0 and raw[1:5] != bytes(4):
            out.append(raw[1:5].hex().upper())
    return out


@counted("rdm6300")
@FUZZ
@given(stream(RDM_GOOD, RDM_NOISE), RDM_GOOD.filter(rdm_oracle))
def test_fuzz_rdm6300(data, final):
    _count("rdm6300")
    errors = []
    taps = asyncio.run(_feed(lambda p: Rdm6300(p, _ticks(), 1500, errors.append), data, final))
    # no UID from a broken frame, every good frame, and the final one after the garbage
    assert taps == rdm_oracle(data) + rdm_oracle(final)
    assert all(isinstance(e, str) and e.startswith("rdm6300: ") for e in errors)


# Line reader ------------------------------------------------------------------------------------

def line(uid, sep, lower):
    h = uid.hex()
    h = h if lower else h.upper()
    return sep.join(h[i:i + 2] for i in range(0, len(h), 2)).encode()


UIDS = st.sampled_from([4, 7, 10]).flatmap(lambda n: st.binary(min_size=n, max_size=n))
LINE_GOOD = st.builds(lambda u, s, lo, end: line(u, s, lo) + end, UIDS,
                      st.sampled_from(["", ":", "-", " "]), st.booleans(),
                      st.sampled_from([b"\n", b"\r\n", b"\r"]))
LINE_NOISE = st.binary(max_size=80) | st.lists(
    st.sampled_from(b"0123456789abcdefABCDEF:- \r\n\t\x00\xffx"), max_size=90).map(bytes)
_LINE = re.compile(rb"[0-9A-Fa-f]{2}(?:[:\- ]?[0-9A-Fa-f]{2})*")


def line_oracle(data):
    """UIDs of every complete line (ended by \\n or \\r) of at most 64 bytes that is a valid
    UID."""
    out = []
    for raw in re.split(rb"[\r\n]", data)[:-1]:
        s = raw.strip()
        if len(raw) <= 64 and _LINE.fullmatch(s):
            digits = re.sub(rb"[:\- ]", b"", s)
            if len(digits) in (8, 14, 20):
                out.append(digits.decode().upper())
    return out


@counted("line_reader")
@FUZZ
@given(stream(LINE_GOOD, LINE_NOISE), LINE_GOOD)
def test_fuzz_line_reader(data, final):
    _count("line_reader")
    errors = []
    # the line end is where a line reader resyncs: the final line starts after one
    final = b"\n" + final
    taps = asyncio.run(_feed(lambda p: LineReader(p, _ticks(), 1500, errors.append), data,
                             final))
    expect = line_oracle(data + final)
    assert taps == expect and taps[-1] == line_oracle(final)[0]
    assert all(e.startswith("line reader: line ") for e in errors)


# PN532 ------------------------------------------------------------------------------------------

def list_reply(uid):
    return ACK + frame(bytes((0x4B, 1, 1, 0x00, 0x04, 0x08, len(uid))) + uid, 0xD5)


PN_GOOD = st.binary(min_size=1, max_size=12).map(list_reply)
PN_NOISE = st.binary(max_size=40) | st.lists(
    st.sampled_from([b"\x00", b"\xff", b"\x00\xff", ACK, b"\x00\x00\xff\xff\x00\x00",
                     b"\xd5", b"\x4b", b"\x01", b"\x55"]), max_size=12).map(b"".join)


def pn_oracle(data):
    """UIDs of 4, 7 or 10 bytes in every checksummed InListPassiveTarget reply frame in data."""
    out = set()
    for m in re.finditer(rb"(?=\x00\xff)", data):
        i = m.start()
        f = data[i:]
        if len(f) < 5 or (f[2] + f[3]) & 0xFF or f[2] == 0 or len(f) < 5 + f[2]:
            continue
        body = f[4:4 + f[2]]
        if (sum(body) + f[4 + f[2]]) & 0xFF or body[:3] != b"\xd5\x4b\x01" or len(body) < 8:
            continue
        uid = body[8:8 + body[7]]
        if len(uid) == body[7] and body[7] in (4, 7, 10):
            out.add(uid.hex().upper())
    return out


class InstantPort(FakePort):
    """The device answers at once on write, so an empty port means no more bytes will come:
    read() times out immediately instead of after the driver's real-time deadline."""

    async def read(self, n):
        if not self._rx:
            raise asyncio.TimeoutError
        return await super().read(n)


_LIST = frame(b"\x4a\x01\x00")


class FuzzChip:
    """The virtual PN532, whose next answers to InListPassiveTarget are the fuzz data, one per
    poll (garbage in the replies to the set-up commands only ever causes a reset)."""

    def __init__(self, answers):
        self.chip = VirtualPn532()
        self.answers = list(answers)
        self.sent = bytearray()
        self.calls = 0

    def __call__(self, data):
        self.calls += 1
        out = self.chip.handle(data)
        if self.answers and data == _LIST:
            out = self.answers.pop(0)
        self.sent += out
        return out


@counted("pn532")
@FUZZ
@given(st.lists(PN_GOOD | PN_GOOD.flatmap(mutated) | PN_NOISE, max_size=8), UIDS)
def test_fuzz_pn532(answers, final):
    _count("pn532")
    final = final.hex().upper()

    async def go():
        t = [0]
        chip = FuzzChip(answers)
        taps, errors = [], []
        r = Pn532(InstantPort(chip), lambda: t[0], 1500, 0, errors.append)
        task = asyncio.create_task(r.run(taps.append))
        while chip.answers and chip.calls < 500:
            await asyncio.sleep(0)
        n = len(taps)
        t[0] += 10000  # the final card is a new tap even if the garbage held the same UID
        chip.chip.card = final
        calls = chip.calls
        while final not in taps[n:] and chip.calls < calls + 500:
            await asyncio.sleep(0)
        await stop(task)
        return chip, taps, n, errors

    chip, taps, n, errors = asyncio.run(go())
    assert not chip.answers, "the driver stopped asking"
    valid = pn_oracle(bytes(chip.sent))
    assert set(taps[:n]) <= valid, (taps[:n], valid)
    assert final in taps[n:], (final, taps, errors[-5:])
    assert all(isinstance(e, str) and e.startswith("pn532: ") for e in errors)

