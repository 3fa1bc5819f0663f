"""Modbus client over a FakePort: replies, timeouts and retries, noise, bad CRC, DE pin order."""
import asyncio

from fakeport import FakePort

from check import ClosedPort, arun
from cpagent.drivers.modbus import ModbusError
from cpagent.drivers.modbus_client import ModbusClient

H = bytes.fromhex
REQ = H("01040000000271CB")  # unit 1 reads V L1 (2 input registers from 0)
REPLY = H("010404436633341B38")  # 230.2 V
BAD = H("010404436633351B38")  # the same with a flipped data bit
STALE = H("01040400000000FB84")  # 0 V, a valid reply to the same request


def script(*answers):
    """A device giving answers[k] to the k-th request (None: silence), then silence."""
    seen = []

    def device(frame):
        seen.append(frame)
        return answers[len(seen) - 1] if len(seen) <= len(answers) else None
    return device



async def expect_error(coro):
    try:
        await coro
    except ModbusError as e:
        return e
    raise AssertionError("expected ModbusError")


def test_a_read_returns_the_data_bytes_and_counts():
    async def go():
        port = FakePort(script(REPLY))
        c = ModbusClient(port)
        assert await c.read(1, 4, 0, 2) == H("43663334")
        assert port.sent == [REQ]
        assert c.stats == {"requests": 1, "retries": 0, "timeouts": 0, "bad_frames": 0,
                           "tx_bytes": 8, "rx_bytes": 9}
    return arun(go())


def test_silence_times_out_and_retries():
    async def go():
        port = FakePort(script())
        c = ModbusClient(port, timeout_ms=50, retries=2)
        e = await expect_error(c.read(1, 4, 0x48, 2))
        assert e.code is None
        assert str(e) == "modbus unit 1 fc 4 addr 72: no reply within 50 ms (3 attempts)"
        assert port.sent == [H("010400480002F1DD")] * 3
        assert c.stats["timeouts"] == 3 and c.stats["retries"] == 2
        assert c.stats["requests"] == 1 and c.stats["tx_bytes"] == 24
    return arun(go())


def test_a_timeout_then_an_answer_on_the_retry():
    async def go():
        c = ModbusClient(FakePort(script(None, REPLY)), timeout_ms=50, retries=1)
        assert await c.read(1, 4, 0, 2) == H("43663334")
        assert c.stats["timeouts"] == 1 and c.stats["retries"] == 1
    return arun(go())


def test_noise_before_the_reply_is_skipped():
    async def go():
        c = ModbusClient(FakePort(script(b"\x00\xff\x01\x04" + REQ + REPLY)))
        assert await c.read(1, 4, 0, 2) == H("43663334")
        assert c.stats["bad_frames"] == 0 and c.stats["rx_bytes"] == 21
    return arun(go())


def test_a_bad_crc_is_never_accepted_and_the_retry_is():
    async def go():
        c = ModbusClient(FakePort(script(BAD, REPLY)), timeout_ms=50)
        assert await c.read(1, 4, 0, 2) == H("43663334")
        assert c.stats["bad_frames"] == 1 and c.stats["retries"] == 1
        c = ModbusClient(FakePort(script(BAD, BAD)), timeout_ms=50, retries=1)
        e = await expect_error(c.read(1, 4, 0, 2))
        assert e.code is None and "9 bytes but no valid reply (bad CRC or noise) (2 att" in str(e)
        assert c.stats["bad_frames"] == 2
    return arun(go())


def test_an_exception_reply_raises_at_once_with_its_code():
    async def go():
        port = FakePort(script(H("018402C2C1"), REPLY))
        c = ModbusClient(port, timeout_ms=50)
        e = await expect_error(c.read(1, 4, 0, 2))
        assert e.code == 2 and "exception 02 illegal data address" in str(e)
        assert len(port.sent) == 1  # a meter's answer is not retried
    return arun(go())


def test_a_reply_from_another_unit_is_ignored():
    async def go():
        other = H("020404436633341B38")  # unit 2 (its CRC is wrong too, so doubly not ours)
        c = ModbusClient(FakePort(script(other + REPLY)), timeout_ms=50)
        assert await c.read(1, 4, 0, 2) == H("43663334")
        c = ModbusClient(FakePort(script(other)), timeout_ms=50, retries=0)
        assert "no valid reply" in str(await expect_error(c.read(1, 4, 0, 2)))
    return arun(go())


def test_stale_bytes_are_dropped_before_sending():
    async def go():
        port = FakePort(script(REPLY))
        port.feed(STALE)  # a late reply to an earlier request: valid, and it would be taken
        c = ModbusClient(port)
        assert await c.read(1, 4, 0, 2) == H("43663334")
        assert c.stats["rx_bytes"] == 18
    return arun(go())


def test_a_flood_beyond_the_buffer_keeps_the_reply_and_a_busy_line_fails():
    async def go():
        c = ModbusClient(FakePort(script(b"\x01" * 496 + REPLY)))  # 8 of 9 bytes fill a buffer
        assert await c.read(1, 4, 0, 2) == H("43663334")
        port = FakePort(script(REPLY))
        port.feed(b"\x00" * 300)  # more than a buffer of chatter before we may send
        c = ModbusClient(port)
        e = await expect_error(c.read(1, 4, 0, 2))
        assert "line never went quiet" in str(e) and port.sent == []
    return arun(go())



def test_a_buffer_sized_to_the_longest_read_takes_it_through_noise_and_refuses_longer():
    async def go():
        # most=2: a 10-byte buffer, the 9-byte reply and a byte; noise before it is shifted out.
        port = FakePort(script(b"\x01\x04\x55" * 40 + REPLY, REPLY))
        c = ModbusClient(port, most=2)
        assert len(c._buf) == 10 and await c.read(1, 4, 0, 2) == H("43663334")
        assert c.stats["bad_frames"] == 0 and c.stats["rx_bytes"] == 129
        try:
            await c.read(1, 4, 0, 3)
        except ValueError as e:
            assert "expected at most 2 (the client's most), got 3" in str(e), e
        else:
            raise AssertionError("a read longer than the buffer was not refused")
        assert len(port.sent) == 1  # refused before anything was sent
    return arun(go())

class DePort(FakePort):
    """Logs the DE pin, writes and drains in order."""

    def __init__(self, device):
        FakePort.__init__(self, device)
        self.log = []

    def write(self, data):
        self.log.append("write %d" % len(data))
        FakePort.write(self, data)

    async def drain(self):
        self.log.append("drain")
        await FakePort.drain(self)


def test_de_is_high_only_around_the_write():
    async def go():
        port = DePort(script(None, REPLY))
        de = lambda v: port.log.append("de %d" % v)  # noqa: E731
        c = ModbusClient(port, baud=19200, timeout_ms=50, de=de)
        assert await c.read(1, 4, 0, 2) == H("43663334")
        assert port.log == ["de 1", "write 8", "drain", "de 0"] * 2
    return arun(go())


def test_de_waits_for_txdone_when_the_board_has_it():
    async def go():
        port = DePort(script(REPLY))
        busy = [3]

        def txdone():
            busy[0] -= 1
            port.log.append("txdone %d" % (busy[0] < 0))
            return busy[0] < 0
        de = lambda v: port.log.append("de %d" % v)  # noqa: E731
        c = ModbusClient(port, baud=9600, de=de, txdone=txdone)
        assert await c.read(1, 4, 0, 2) == H("43663334")
        assert port.log == ["de 1", "write 8", "drain"] + ["txdone 0"] * 3 + ["txdone 1", "de 0"]
    return arun(go())


async def _waits(baud, de=None):
    """The seconds asyncio.sleep and asyncio.wait_for were given during one read."""
    got = []
    sleep, wait_for = asyncio.sleep, asyncio.wait_for

    def spy_sleep(t):
        if t:
            got.append(("sleep", t))
        return sleep(t)

    def spy_wait_for(aw, t):
        got.append(("wait_for", t))
        return wait_for(aw, t)
    asyncio.sleep, asyncio.wait_for = spy_sleep, spy_wait_for
    try:
        c = ModbusClient(FakePort(script(REPLY)), baud=baud, timeout_ms=50, de=de)
        assert await c.read(1, 4, 0, 2) == H("43663334")
    finally:
        asyncio.sleep, asyncio.wait_for = sleep, wait_for
    return [(k, round(t * 1000, 6)) for k, t in got]


def test_waits_are_whole_ms_rounded_up_plus_one_and_cover_the_reply_on_the_wire():
    async def go():
        # 1200 baud: t3.5 = 32.08 ms; a request 73.33 ms on the wire; the 9-byte reply 82.5 ms
        assert await _waits(1200, lambda v: None) == [
            ("wait_for", 34), ("sleep", 75), ("wait_for", 50 + 83)]
        assert await _waits(38400) == [("wait_for", 3), ("wait_for", 50 + 3)]  # t3.5: 1.75 ms
    return arun(go())


class Wire(FakePort):
    """A meter behind a real line: answers[k] = (reply, reaction s) to the k-th request; the
    reply comes at `baud` (11-bit characters), a byte at a time."""

    def __init__(self, answers, baud):
        FakePort.__init__(self)
        self.answers = list(answers)
        self.baud = baud

    def write(self, data):
        self.sent.append(bytes(data))
        if self.answers:
            asyncio.create_task(self._send(*self.answers.pop(0)))

    async def _send(self, reply, react):
        await asyncio.sleep(react)
        for b in reply:
            await asyncio.sleep(11 / self.baud)
            self.feed(bytes((b,)))


def test_the_reply_timeout_covers_the_reply_on_a_slow_line():
    async def go():
        port = Wire([(REPLY, 0)], 1200)  # 82.5 ms of reply after a 50 ms reaction limit
        c = ModbusClient(port, baud=1200, timeout_ms=50, retries=0)
        assert await c.read(1, 4, 0, 2) == H("43663334")
    return arun(go())


def test_a_late_reply_is_not_taken_for_the_retry_answer():
    async def go():
        # The first reply comes 60 ms after the 200 ms timeout, which a retry sent after t3.5
        # would take for its own; the client waits for timeout_ms of silence first.
        port = Wire([(STALE, 0.26), (REPLY, 0.1)], 115200)
        c = ModbusClient(port, baud=115200, timeout_ms=200, retries=1)
        assert await c.read(1, 4, 0, 2) == H("43663334")
        assert c.stats["timeouts"] == 1 and c.stats["rx_bytes"] == 18 and len(port.sent) == 2
    return arun(go())


def test_an_empty_read_raises_instead_of_spinning():
    async def go():
        c = ModbusClient(ClosedPort(), retries=0)
        try:
            await asyncio.wait_for(c.read(1, 4, 0, 2), 2)
        except OSError as e:
            assert str(e) == "port read: no bytes (port closed?)"
        else:
            raise AssertionError("expected OSError")
    return arun(go())


def test_bad_arguments_raise_before_anything_is_sent():
    async def go():
        port = FakePort(script(REPLY))
        c = ModbusClient(port)
        try:
            await c.read(1, 4, 0, 200)
        except ValueError as e:
            assert "modbus registers" in str(e)
        else:
            raise AssertionError("expected ValueError")
        assert port.sent == []
    return arun(go())


def test_a_reply_trickling_in_byte_by_byte_is_found():
    async def go():
        port = FakePort()
        c = ModbusClient(port, timeout_ms=500)

        async def trickle():
            while not port.sent:
                await asyncio.sleep(0)
            for k, x in enumerate(b"\x01\x04" + REPLY):  # noise that looks like a start first
                port.feed(bytes((x,)))
                for _ in range(3 if k % 2 else 1):
                    await asyncio.sleep(0)
        t = asyncio.create_task(trickle())
        assert await c.read(1, 4, 0, 2) == H("43663334")
        await t
        assert c.stats["rx_bytes"] == 11 and c.stats["retries"] == 0
    return arun(go())
