"""Fuzzes ModbusClient.read with random and mutated replies: a ModbusError or the data of a frame
whose CRC holds, never anything else; a good reply after garbage is found (resync)."""
import asyncio

from fakeport import FakePort
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpagent.drivers.modbus import ModbusError, crc16
from cpagent.drivers.modbus_client import ModbusClient

UNIT, FC, START = 7, 4, 0x48
FAST = settings(max_examples=500, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])


def frame(body):
    c = crc16(body)
    return bytes(body) + bytes((c & 0xFF, c >> 8))


def reply(count, data):
    return frame(bytes((UNIT, FC, 2 * count)) + data)


def valid(stream, count):
    """What a correct client may return for these bytes: the data of every reply frame in them
    whose CRC holds, and the codes of every valid exception frame (independent of modbus.scan)."""
    size = 5 + 2 * count
    datas, codes = [], []
    for i in range(len(stream)):
        f = stream[i:i + size]
        if f[:3] == bytes((UNIT, FC, 2 * count)) and len(f) == size and not crc16(f):
            datas.append(f[3:-2])
        e = stream[i:i + 5]
        if e[:2] == bytes((UNIT, FC | 0x80)) and len(e) == 5 and not crc16(e):
            codes.append(e[2])
    return datas, codes


def read_with(stream, count):
    """One read whose request is answered with `stream`: ("data", bytes) or ("error", code)."""
    async def go():
        port = FakePort(lambda req: stream)
        client = ModbusClient(port, baud=115200, timeout_ms=5, retries=0)
        try:
            return "data", bytes(await client.read(UNIT, FC, START, count))
        except ModbusError as e:
            return "error", e.code
    return asyncio.run(asyncio.wait_for(go(), 5))


def check(stream, count, good=None):
    kind, value = read_with(stream, count)
    datas, codes = valid(stream, count)
    if kind == "data":
        assert value in datas, "returned %r, not the data of a valid frame" % value
    elif value is not None:
        assert value in codes, "exception %r without a valid exception frame" % value
    elif good is not None:
        assert good not in datas, "missed the valid reply at the end (no resync)"
    if good is not None and datas == [good] and not codes:
        assert (kind, value) == ("data", good)  # the only valid frame there: it is found
    return kind


RUNS = {"random": 0, "mutated": 0, "resync": 0}
counts = st.integers(1, 8)


@FAST
@given(counts, st.binary(max_size=600)
       | st.builds(lambda t, b: bytes((UNIT, t)) + b, st.sampled_from([FC, FC | 0x80]),
                   st.binary(max_size=40)))
def _random(count, stream):
    RUNS["random"] += 1
    check(stream, count)


def mutate(draw, f):
    f = bytearray(f)
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "duplicate"]))
        if op == "flip" and f:
            i = draw(st.integers(0, len(f) - 1))
            f[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "truncate" and f:
            del f[draw(st.integers(0, len(f) - 1)):]
        elif op == "insert":
            i = draw(st.integers(0, len(f)))
            f[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "duplicate" and f:
            i = draw(st.integers(0, len(f) - 1))
            j = draw(st.integers(i + 1, len(f)))
            f[j:j] = f[i:j]
    return bytes(f)


@st.composite
def mutated(draw):
    count = draw(counts)
    f = reply(count, draw(st.binary(min_size=2 * count, max_size=2 * count)))
    if draw(st.booleans()):
        f = frame(bytes((UNIT, FC | 0x80, draw(st.integers(0, 255)))))
    return count, mutate(draw, f)


@FAST
@given(mutated())
def _mutated(case):
    RUNS["mutated"] += 1
    check(case[1], case[0])


@FAST
@given(mutated(), st.binary(max_size=300))
def _resync(case, junk):
    count, bad = case
    good = reply(count, bytes(range(0xA0, 0xA0 + 2 * count)))
    RUNS["resync"] += 1
    check(junk + bad + good, count, good[3:-2])


def test_random_bytes(capsys):
    _random()
    with capsys.disabled():  # shown in the make test log, not only with -s
        print("\n" + "modbus fuzz, random bytes: %d cases" % RUNS["random"])
    assert RUNS["random"] >= 500


def test_mutated_replies(capsys):
    _mutated()
    with capsys.disabled():  # shown in the make test log, not only with -s
        print("\n" + "modbus fuzz, mutated replies: %d cases" % RUNS["mutated"])
    assert RUNS["mutated"] >= 500


def test_good_reply_after_garbage(capsys):
    _resync()
    with capsys.disabled():  # shown in the make test log, not only with -s
        print("\n" + "modbus fuzz, garbage then a good reply: %d cases" % RUNS["resync"])
    assert RUNS["resync"] >= 500


def test_the_property_can_fail():
    """The checker itself: a frame with a bad CRC is not valid data; a clean reply is."""
    good = reply(2, b"\x44\x9a\x50\x00")
    assert valid(good, 2) == ([b"\x44\x9a\x50\x00"], [])
    assert valid(good[:-1] + bytes((good[-1] ^ 1,)), 2) == ([], [])
    assert check(good, 2) == "data"
    assert check(good[:-1] + bytes((good[-1] ^ 1,)), 2) == "error"
