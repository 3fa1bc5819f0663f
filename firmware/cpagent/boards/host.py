"""Host board layer (CPython): serial and virtual-device ports, virtual time, TLS, flash folder."""
import asyncio
import json
import os
import ssl
import time

import serial

from cpagent.fsio import OsFs

_TX_CAP = 4096  # bytes queued but not yet taken by the OS; more is a driver bug: refuse it
_RX_CAP = 4096  # a virtual device's unread reply bytes; more: the oldest go, as in a UART FIFO


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


class DevicePort:
    """The port protocol onto an in-process virtual device: its handle(bytes) -> reply bytes
    (or the device itself a callable) answers each write; read() waits on the loop for bytes."""

    def __init__(self, device):
        self._dev = getattr(device, "handle", device)
        self._rx = bytearray()
        self._ready = asyncio.Event()

    def write(self, data):
        reply = self._dev(bytes(data))
        if reply:
            self._rx.extend(reply)
            del self._rx[:-_RX_CAP]
            self._ready.set()

    async def drain(self):
        await asyncio.sleep(0)

    async def read(self, n):
        while not self._rx:
            self._ready.clear()
            await self._ready.wait()
        out = bytes(self._rx[:n])
        del self._rx[:n]
        return out


class HostBoard:
    """The board interface of cpagent.agent on CPython, for the simulator and host tests.

    Board time (ticks_ms, sleep_ms) runs `speed` times faster than real time; real_ms() does not.
    The flash is the folder state_dir (journal in state_dir/journal). The RTC is state_dir/rtc:
    the virtual wall clock goes on from where an earlier run left it (speed times the real time
    between), so a restarted charger never stamps earlier than before. wall_unix() answers
    after ntp_s board seconds (None: never). Ports: a pyserial path/URL (reader_port,
    meter_port), else the virtual device (reader_dev, meter_dev: handle(bytes) -> bytes).
    TLS (an https url, or an mqtt uplink with tls true): CA, client certificate and key from
    cfg uplink, relative to the folder `certs`.
    Log lines "[charger_id] text" up to cfg log_level go to echo (print).
    """

    def __init__(self, cfg, state_dir, speed=1.0, reader_port=None, meter_port=None,
                 reader_dev=None, meter_dev=None, certs=None, ntp_s=0, echo=print):
        if not speed > 0:
            raise ValueError("speed: expected a number above 0, got %r" % (speed,))
        self.cfg = cfg
        self.speed = speed
        self.fs = OsFs()
        os.makedirs(state_dir, exist_ok=True)
        self.journal_dir = os.path.join(state_dir, "journal")
        # No RS-485 driver-enable pin (USB adapters switch by themselves), so no txdone either.
        self.de = self.txdone = None
        self.ntp_ms = None if ntp_s is None else ntp_s * 1000
        self.echo = echo
        self._ports = {"reader": (reader_port, reader_dev, cfg["reader"]["baud"], "N"),
                       "meter": (meter_port, meter_dev, cfg["meter"]["baud"],
                                 cfg["meter"]["parity"])}
        self._t0 = time.monotonic()
        self._wall0 = self._rtc(os.path.join(state_dir, "rtc"))
        u = cfg["uplink"]
        self.tls = None
        if u.get("url", "")[:6] == "https:" or u.get("tls"):
            self.tls = self._context(u, certs or ".")

    def _rtc(self, path):
        now = time.time()
        wall = now
        try:
            with open(path) as f:
                r = json.load(f)
            wall = max(now, r["wall"] + (now - r["real"]) * r["speed"])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # no RTC yet (or a damaged one): start at the host's time
        with open(path + ".tmp", "w") as f:
            json.dump({"real": now, "wall": wall, "speed": self.speed}, f)
        os.replace(path + ".tmp", path)
        return wall

    @staticmethod
    def _context(u, certs):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if u.get("insecure"):
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        try:
            if u.get("ca") and not u.get("insecure"):
                ctx.load_verify_locations(os.path.join(certs, u["ca"]))
            if u.get("cert"):
                ctx.load_cert_chain(os.path.join(certs, u["cert"]), os.path.join(certs, u["key"]))
        except (OSError, ssl.SSLError) as e:
            raise ValueError("uplink.ca/cert/key: cannot load from %s (%s)" % (certs, e))
        return ctx

    def ticks_ms(self):
        return int((time.monotonic() - self._t0) * 1000 * self.speed)

    @staticmethod
    def ticks_diff(a, b):
        return a - b

    async def sleep_ms(self, ms):
        await asyncio.sleep(ms / 1000 / self.speed)

    @staticmethod
    def real_ms():
        return int(time.monotonic() * 1000)

    def wall_unix(self):
        t = self.ticks_ms()
        if self.ntp_ms is None or t < self.ntp_ms:
            return None
        return int(self._wall0 + t / 1000)

    def _port(self, what):
        url, dev, baud, parity = self._ports[what]
        if url:
            return SerialPort(url, baud, parity)
        if dev is None:
            raise ValueError("%s port: expected a serial path/URL or a virtual device" % what)
        return DevicePort(dev)

    def reader_port(self):
        return self._port("reader")

    def meter_port(self):
        return self._port("meter")

    async def connect(self, host, port, tls):
        if tls and self.tls is None:
            raise OSError("TLS asked for %s:%d but the uplink has none (uplink.url not https, "
                          "uplink.tls not true)" % (host, port))
        return await asyncio.open_connection(host, port, ssl=self.tls if tls else None,
                                             server_hostname=host if tls else None)

    @staticmethod
    def rand_hex(n):
        return os.urandom(n).hex()

    def log(self, level, text):
        if level <= self.cfg["log_level"]:
            self.echo("[%s] %s" % (self.cfg["charger_id"], text))
