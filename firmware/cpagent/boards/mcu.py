"""MicroPython board layer shared by the ESP32 and the Pico W: UARTs, Wi-Fi, NTP, TLS, watchdog."""
import asyncio
import gc
import os
import random
import time

import machine
import network
import ntptime
from micropython import const

from cpagent import once
from cpagent.fsio import OsFs
from cpagent.uplink.link import UP
from cpagent.uplink.result import delay

_WIFI_MIN_MS = const(2000)  # Wi-Fi rejoin backoff, doubling up to the cap
_WIFI_MAX_MS = const(60000)
_JOIN_MS = const(20000)  # a join without an address by then has failed
_NTP_MS = const(3600000)  # the RTC drifts: set it again hourly
_NTP_RETRY_MS = const(30000)
_PLUG_MS = const(100)  # plug inputs sampled this often; a change counts after two equal samples
NOWDT = "nowdt"  # tools/deploy.py writes it: no watchdog while files are copied over the REPL
# What mbedTLS says when an allocation failed (an OSError's first argument): ENOMEM, as
# modtls_mbedtls.c turns MBEDTLS_ERR_SSL_ALLOC_FAILED at setup into, and the raw code, as the
# handshake's reads and writes pass it on.
_NO_MEMORY = const((12, -0x7F00))


class McuBoard:
    """The board interface of cpagent.agent on MicroPython; boards/esp32.py and boards/rp2.py
    give the port's defaults: UARTS (uart number -> (tx, rx) pins), DE, LED, RESERVED (what
    the board's own hardware holds, then those pins), WDT_MAX_S, TLS_PEM (whether the port's
    mbedTLS parses PEM; without, the certificate files are DER) and TXBUF (a UART's transmit
    buffer, bytes).

    Raises ConfigError naming the field for what the port cannot do (a UART it lacks, a pin
    twice, a reserved or unusable pin, a missing certificate). The journal lives in /journal on
    flash; board time and real time are both time.ticks_ms, unwrapped.
    """

    UARTS = ()  # none: each port's module gives its own
    DE = LED = None
    RESERVED = ("",)
    WDT_MAX_S = 60
    TLS_PEM = True
    TXBUF = 256  # the ports' default
    journal_dir = "/journal"

    def __init__(self, cfg):
        # Pins, UARTs and the TLS context come from boot-only code (boards/setup.py), freed
        # once built; the board keeps only the few config values its tasks read.
        once("boards.setup").build(self, cfg)
        self.charger_id = cfg["charger_id"]
        self.log_level = cfg["log_level"]  # may be raised at the REPL: board.log_level = 2
        w = cfg["wifi"]
        self._join = (w["ssid"], w["password"])
        self._wdt_s = cfg["board"]["wdt_s"]
        self._plug_low = cfg["board"]["plug_low"]
        self.fs = OsFs()
        self.wlan = network.WLAN(network.STA_IF)
        self.wifi = "down"  # the last Wi-Fi status name, for the log and the LED
        self.synced = False  # the RTC was set by NTP in this boot
        self._wdt = None
        self._last = time.ticks_ms()
        self._ms = 0
        # Seconds from 1970 to the port's epoch: the ESP32 counts from 2000, the rp2 from 1970.
        self._epoch = 946684800 if time.gmtime(0)[0] == 2000 else 0

    # --- the board interface ----------------------------------------------------------------

    def ticks_ms(self):
        # time.ticks_ms wraps (2**30 ms, 12 days, on the ESP32); the agent wants a plain count.
        t = time.ticks_ms()
        self._ms += time.ticks_diff(t, self._last)
        self._last = t
        return self._ms

    real_ms = ticks_ms

    @staticmethod
    def ticks_diff(a, b):
        return a - b

    async def sleep_ms(self, ms):  # the board's tasks sleep through it too (tests replace it)
        await asyncio.sleep_ms(ms)

    def wall_unix(self):
        return time.time() + self._epoch if self.synced else None

    def reader_port(self):
        return asyncio.StreamReader(self._reader)

    def meter_port(self):
        return asyncio.StreamReader(self._meter)

    async def connect(self, host, port, secure):
        if not self.wlan.isconnected():
            raise OSError("no Wi-Fi (%s)" % self.wifi)
        if secure:
            if self.tls is None:
                raise OSError("TLS asked for %s:%d but the uplink has no TLS" % (host, port))
            if not self.synced:  # certificate dates cannot be checked before NTP
                raise OSError("TLS to %s waits for the wall clock (NTP)" % host)
        if not secure:
            return await asyncio.open_connection(host, port)
        # open_connection sends host as the TLS server name and verifies it. Its TLS setup takes
        # the largest blocks (the 16.7 KB input record buffer, 4 KB out): one failure for memory
        # is tried again after a collection; the handshake's own allocations come in the
        # uplink's first write, whose failure the link's supervisor sees.
        if self.log_level >= 2:  # heap() probes with allocations: only when shown
            self.log(2, "tls: to %s:%d, %s" % (host, port, self.heap()))
        try:
            return await asyncio.open_connection(host, port, ssl=self.tls)
        except (MemoryError, OSError) as e:
            if isinstance(e, OSError) and not (e.args and e.args[0] in _NO_MEMORY):
                raise
            why = repr(e)
        gc.collect()
        self.log(1, "tls: out of memory (%s), once more after a collection: %s"
                 % (why, self.heap()))
        return await asyncio.open_connection(host, port, ssl=self.tls)

    def heap(self):
        """Free heap and its largest block, to 1 KB, for the log line before each TLS setup (no
        call tells the largest block: bisected by trying; each refusal is a collection, which
        the handshake after it profits from)."""
        free = gc.mem_free()
        lo, hi = 0, free // 1024
        while lo < hi:
            mid = (lo + hi + 1) // 2
            try:
                bytearray(mid * 1024)
                lo = mid
            except MemoryError:
                hi = mid - 1
        return "heap %d B free, largest block %d B" % (free, lo * 1024)

    @staticmethod
    def rand_hex(n):
        return "".join("%02x" % random.getrandbits(8) for _ in range(n))

    def log(self, level, text):
        if level <= self.log_level:
            print("[%s %d] %s" % (self.charger_id, self.ticks_ms() // 1000, text))

    @staticmethod
    def reset():
        machine.reset()

    def jobs(self, agent):
        """The board's tasks, supervised with the agent's: Wi-Fi, NTP, LED, EVSE pins, watchdog."""
        j = [("wifi", self._wifi), ("ntp", self._ntp)]
        if self.led:
            j.append(("led", lambda: self._blink(agent.link)))
        if self.evse:
            j.append(("evse", lambda: self._pins(agent)))
        if self._wdt_s:
            try:
                os.stat(NOWDT)
            except OSError:  # no flag: the watchdog runs
                j.append(("watchdog", self._watchdog))
            else:
                self.log(1, "watchdog off: /%s is there (a deploy in progress)" % NOWDT)
        return j

    # --- tasks ------------------------------------------------------------------------------

    def _status(self):
        s = self.wlan.status()
        for n in dir(network):  # the STAT_ names and numbers differ per port
            if n[:5] == "STAT_" and getattr(network, n) == s:
                return n[5:].lower()
        return str(s)

    async def _wifi(self):
        w = self.wlan
        ssid, key = self._join
        network.hostname(self.charger_id)
        w.active(True)
        n = 0  # failed joins in a row
        while True:
            if w.isconnected():
                if self.wifi != "up":
                    self.wifi = "up"
                    self.log(2, "wifi: up, address %s" % w.ifconfig()[0])
                n = 0
                await self.sleep_ms(1000)
                continue
            if self.wifi == "up":
                self.log(1, "wifi: lost (%s)" % self._status())
            self.wifi = "joining"
            try:
                w.disconnect()  # the ESP32 refuses connect() while an attempt is under way
            except OSError:
                pass  # nothing to end
            try:
                w.connect(ssid, key)
            except OSError as e:
                self.log(1, "wifi: connect failed: %r" % (e,))
            t = 0
            while t < _JOIN_MS and not w.isconnected():
                await self.sleep_ms(250)
                t += 250
            if not w.isconnected():
                self.wifi = self._status()
                wait = delay(n, _WIFI_MIN_MS, _WIFI_MAX_MS)
                n = min(n + 1, 6)
                self.log(1, "wifi: %s to %r, again in %d s" % (self.wifi, ssid, wait // 1000))
                await self.sleep_ms(wait)

    async def _ntp(self):
        while True:
            if not self.wlan.isconnected():
                await self.sleep_ms(1000)
                continue
            try:
                # Blocks the loop for the DNS lookup and at most ntptime.timeout (1 s) for the
                # reply: once an hour. Sets the RTC to UTC.
                ntptime.settime()
                if not self.synced:
                    self.log(2, "ntp: wall clock set")
                self.synced = True
            except (OSError, OverflowError) as e:
                self.log(1, "ntp: %r" % (e,))
            await self.sleep_ms(_NTP_MS if self.synced else _NTP_RETRY_MS)

    async def _blink(self, link):
        led = self.led
        while True:
            # No Wi-Fi: fast blink. No hub: a short flash each second. All well: steady.
            if self.wifi != "up":
                on, off = 100, 100
            elif link.state != UP:
                on, off = 100, 900
            else:
                on, off = 1000, 0
            led(1)
            await self.sleep_ms(on)
            if off:
                led(0)
                await self.sleep_ms(off)

    async def _pins(self, agent):
        ch = agent.charger
        low = self._plug_low
        n = len(self.evse) // 2
        seen = [None] * n  # the debounced plug state
        last = [None] * n  # the previous sample
        while True:
            for i in range(n):
                enable, plug = self.evse[2 * i], self.evse[2 * i + 1]
                if plug:
                    v = plug.value() == (0 if low else 1)
                    if v == last[i] and v != seen[i]:
                        seen[i] = v
                        agent.plug(i, v)
                    last[i] = v
                if enable:  # the contactor may close only for an authorized session
                    enable(1 if ch.contactor(i) else 0)
            await self.sleep_ms(_PLUG_MS)

    async def _watchdog(self):
        # Fed by a task: a loop that hangs (a blocking call, a task that never yields) stops the
        # feeding and the chip resets. Once started, it cannot be stopped (both ports).
        s = self._wdt_s
        if self._wdt is None:
            self._wdt = machine.WDT(timeout=s * 1000)
        while True:
            self._wdt.feed()
            await self.sleep_ms(s * 250)
