"""Host board layer (CPython): pyserial ports as the drivers' async stream, on the asyncio loop."""
import asyncio
import os

import serial

_TX_CAP = 4096  # bytes queued but not yet taken by the OS; more is a driver bug: refuse it


class SerialPortError(OSError):
    """A serial port that cannot be opened, read or written; the message names the port."""


def _wake(fut):
    if not fut.done():
        fut.set_result(None)


class SerialPort:
    """A serial device (/dev/ttyUSB0, a pty path, any pyserial URL with a file descriptor) as the
    port protocol: write(data), await drain(), await read(n) -> 1..n bytes.

    Nothing blocks: the fd is non-blocking and watched with loop.add_reader/add_writer. One task
    reads (as on the device, one task owns a UART); timeouts are the caller's (asyncio.wait_for).
    """

    def __init__(self, url, baud, parity="N", bits=8, stop=1):
        self.url = url
        try:
            self._s = serial.serial_for_url(url, baudrate=baud, parity=parity, bytesize=bits,
                                            stopbits=stop, timeout=0, write_timeout=0)
        except (serial.SerialException, ValueError, OSError) as e:
            raise SerialPortError("serial port %s: cannot open at %s %d%s%s (%s)"
                                  % (url, baud, bits, parity, stop, e))
        try:
            self._fd = self._s.fileno()
        except (OSError, ValueError):  # loop://, rfc2217://: nothing the event loop can watch
            self._s.close()
            raise SerialPortError("serial port %s: no file descriptor to watch (expected a "
                                  "device or pty path)" % url)
        os.set_blocking(self._fd, False)
        self._tx = bytearray()

    def _fail(self, what, e):
        return SerialPortError("serial port %s: %s (%s)" % (self.url, what, e))

    async def _wait(self, add, remove):
        fut = asyncio.get_running_loop().create_future()
        add(self._fd, _wake, fut)
        try:
            await fut
        finally:
            remove(self._fd)  # also on cancel (a wait_for timeout): the port stays usable

    def _send(self):
        try:
            n = os.write(self._fd, self._tx)
        except BlockingIOError:
            return
        except OSError as e:
            raise self._fail("write failed", e)
        del self._tx[:n]

    def write(self, data):
        if len(self._tx) + len(data) > _TX_CAP:
            raise SerialPortError("serial port %s: %d bytes already queued, drain() first"
                                  % (self.url, len(self._tx)))
        self._tx.extend(data)
        self._send()

    async def drain(self):
        """Wait until the OS has taken every queued byte (not until they are on the wire)."""
        loop = asyncio.get_running_loop()
        while self._tx:
            await self._wait(loop.add_writer, loop.remove_writer)
            self._send()

    async def read(self, n):
        loop = asyncio.get_running_loop()
        woke = False
        while True:
            try:
                data = os.read(self._fd, n)
            except BlockingIOError:
                data = b""
            except OSError as e:
                raise self._fail("read failed", e)
            if data:
                return data
            if woke:  # pyserial sets VMIN=0: "readable" with nothing to read is a hangup
                raise SerialPortError("serial port %s: readable but no data (device gone?)"
                                      % self.url)
            await self._wait(loop.add_reader, loop.remove_reader)
            woke = True

    def close(self):
        self._s.close()
