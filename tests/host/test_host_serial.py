"""The host board layer SerialPort over a pty: bytes both ways, timeouts, back-pressure, errors."""
import asyncio
import os

import pytest

from cpagent.boards.host import SerialPort, SerialPortError
from host_sim.virtual.pty import NullModem, PtyDevice, open_pty


def run(coro, limit=10):
    """Every test stops by itself: the whole coroutine has a deadline."""
    return asyncio.run(asyncio.wait_for(coro, limit))


@pytest.fixture
def pty():
    master, slave, path = open_pty()
    yield master, path
    os.close(master)
    os.close(slave)


async def read_master(master, n, limit=2.0):
    """Read n bytes from the device side of the pty (non-blocking fd, polled on the loop)."""
    got = bytearray()
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while len(got) < n and loop.time() < end:
        try:
            got.extend(os.read(master, n - len(got)))
        except BlockingIOError:
            await asyncio.sleep(0.005)
    return bytes(got)


def test_bytes_both_ways(pty):
    master, path = pty

    async def go():
        port = SerialPort(path, 9600)
        port.write(b"\x01\x04\x00\x00\x00\x02\x71\xcb")
        await port.drain()
        assert await read_master(master, 8) == b"\x01\x04\x00\x00\x00\x02\x71\xcb"
        os.write(master, bytes(range(256)))
        got = bytearray()
        while len(got) < 256:
            chunk = await port.read(100)
            assert 1 <= len(chunk) <= 100
            got.extend(chunk)
        assert bytes(got) == bytes(range(256))
        port.close()

    run(go())


def test_read_timeout_leaves_port_usable(pty):
    master, path = pty

    async def go():
        port = SerialPort(path, 9600, parity="E", stop=1)
        for _ in range(3):
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(port.read(10), 0.05)
        os.write(master, b"late")
        assert await asyncio.wait_for(port.read(10), 1.0) == b"late"
        port.write(b"ok")
        await port.drain()
        assert await read_master(master, 2) == b"ok"
        port.close()

    run(go())


def test_read_waits_without_blocking_the_loop(pty):
    master, path = pty

    async def go():
        port = SerialPort(path, 9600)
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        t = asyncio.create_task(ticker())
        reader = asyncio.create_task(port.read(4))
        await asyncio.sleep(0.2)
        assert not reader.done()
        assert ticks >= 5  # the loop ran other tasks while read() waited
        os.write(master, b"abcd")
        assert await asyncio.wait_for(reader, 1.0) == b"abcd"
        t.cancel()
        port.close()

    run(go())


def test_drain_waits_for_a_full_pty_and_loses_nothing(pty):
    master, path = pty
    data = bytes((i * 7) & 0xFF for i in range(64 * 1024))  # well over the pty's buffer

    async def go():
        port = SerialPort(path, 115200)
        reader = asyncio.create_task(read_master(master, len(data), limit=5.0))
        for i in range(0, len(data), 4096):
            port.write(data[i:i + 4096])
            await port.drain()
        assert await reader == data
        port.close()

    run(go())


def test_write_beyond_the_queue_cap_names_the_port(pty):
    _, path = pty
    port = SerialPort(path, 9600)
    port.write(b"x" * 4096)
    if port._tx:  # the OS took it all: nothing queued, the cap cannot be hit this way
        with pytest.raises(SerialPortError, match=path):
            port.write(b"y" * 4096)
    port.write(b"")
    port.close()


def test_missing_port_error_names_it():
    with pytest.raises(SerialPortError) as e:
        SerialPort("/dev/ttyNOPE_cpagent", 9600)
    assert "/dev/ttyNOPE_cpagent" in str(e.value)
    assert "cannot open" in str(e.value)
    assert isinstance(e.value, OSError)
    with pytest.raises(SerialPortError, match="loop://: no file descriptor"):
        SerialPort("loop://", 9600)


def test_other_end_gone_is_an_error_not_a_spin():
    master, slave, path = open_pty()

    async def go():
        port = SerialPort(path, 9600)
        os.close(slave)
        os.close(master)
        with pytest.raises(SerialPortError, match=path):
            await asyncio.wait_for(port.read(1), 1.0)
        port.close()

    run(go())


class Upper:
    """A toy device: answers each chunk in upper case."""

    def handle(self, data):
        return data.upper()


def test_pty_device_pumps_and_stops():
    dev = PtyDevice(Upper())

    async def go(path):
        port = SerialPort(path, 9600)
        port.write(b"hello")
        await port.drain()
        got = b""
        while len(got) < 5:
            got += await asyncio.wait_for(port.read(5), 1.0)
        assert got == b"HELLO"
        dev.inject(b"tap\n")
        assert await asyncio.wait_for(port.read(10), 1.0) == b"tap\n"
        port.close()

    with dev as path:
        run(go(path))
        thread = dev._thread
    assert not thread.is_alive()
    assert dev.error is None


def test_pty_device_reports_a_broken_device():
    class Broken:
        def handle(self, data):
            raise ValueError("boom")

    dev = PtyDevice(Broken())

    async def go(path):
        port = SerialPort(path, 9600)
        port.write(b"x")
        await port.drain()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(port.read(1), 0.2)
        port.close()

    with dev as path:
        run(go(path))
    assert isinstance(dev.error, ValueError)


def test_null_modem_joins_two_serial_ports():
    async def go(a, b):
        pa, pb = SerialPort(a, 9600), SerialPort(b, 9600)
        pa.write(b"ping")
        await pa.drain()
        got = b""
        while len(got) < 4:
            got += await asyncio.wait_for(pb.read(4), 1.0)
        assert got == b"ping"
        pb.write(b"pong")
        await pb.drain()
        got = b""
        while len(got) < 4:
            got += await asyncio.wait_for(pa.read(4), 1.0)
        assert got == b"pong"
        pa.close()
        pb.close()

    modem = NullModem()
    with modem as (a, b):
        run(go(a, b))
    modem.stop()  # twice is harmless
