"""PN532 over HSU (UART): frame codec (build, scan with resync) and a polling ISO14443A driver."""
import asyncio

from micropython import const

from cpagent.drivers.tap import Reader, hexu, read

HOST = const(0xD4)  # TFI of host -> PN532 frames
CHIP = const(0xD5)  # TFI of PN532 -> host frames
ACK = b"\x00\x00\xff\x00\xff\x00"  # also sent by the host: aborts the command in progress
NACK = b"\x00\x00\xff\xff\x00\x00"  # asks the other side to send its last frame again
# What scan() found; FRAME's body (TFI, command, data) is b[start:used - 1].
NEED = const(0)
GOT_ACK = const(1)
GOT_NACK = const(2)
FRAME = const(3)
BAD_LCS = const(4)
BAD_DCS = const(5)
TOO_LONG = const(6)
_WHY = const(("", "", "", "", "length checksum (LCS) fails", "data checksum (DCS) fails",
              "longer than the receive buffer"))
# Receive buffer: the longest reply expected (10-byte UID + ATS) fits; a frame announcing more is
# dropped as TOO_LONG by scan(), and a read never asks for more than the free space.
_CAP = const(64)
_ACK_MS = const(100)
_REPLY_MS = const(500)  # InListPassiveTarget with 2 tries answers well within this
# Wake-up from power-down/low-battery mode: 55 55 and zeros, then SAMConfiguration (UM0701).
# It and the command frames below are const literals: no global names; frozen, they stay in flash.
_WAKE = const(b"\x55\x55\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")


def frame(body, tfi=HOST):
    """Command (or reply) bytes -> a normal information frame 00 00 FF LEN LCS TFI body DCS 00."""
    n = len(body) + 1
    if n > 255:
        raise ValueError("pn532: body of %d bytes (expected at most 254)" % len(body))
    s = tfi
    for c in body:
        s += c
    return bytes((0, 0, 0xFF, n, -n & 0xFF, tfi)) + bytes(body) + bytes((-s & 0xFF, 0))


def scan(b, n):
    """Look for the first frame in b[:n] -> (kind, used, start). Bytes before the start code
    00 FF are noise. used: bytes to drop (frame and noise; for NEED the noise seen so far). A bad
    checksum drops only its start code, so a real frame inside it is still found (resync).
    A frame that cannot fit in b (its capacity) is TOO_LONG: the overflow policy is to drop it."""
    i = 0
    while i + 1 < n:
        if b[i] or b[i + 1] != 0xFF:
            i += 1
            continue
        if i + 4 > n:
            break
        ln = b[i + 2]
        lcs = b[i + 3]
        if ln == 0 and lcs == 0xFF:
            return GOT_ACK, i + 4, i
        if ln == 0xFF and lcs == 0:
            return GOT_NACK, i + 4, i
        if (ln + lcs) & 0xFF or not ln:
            return BAD_LCS, i + 2, i
        end = i + 5 + ln
        if end > len(b):
            return TOO_LONG, i + 2, i
        if end > n:
            break
        s = 0
        for j in range(i + 4, end):
            s += b[j]
        if s & 0xFF:
            return BAD_DCS, i + 2, i
        return FRAME, end, i + 4
    return NEED, i, i


# frame() of: SAMConfiguration 14 01 14 01 (normal mode, 1 s timeout, use IRQ);
_SAM = const(b"\x00\x00\xff\x05\xfb\xd4\x14\x01\x14\x01\x02\x00")
# RFConfiguration MaxRetries 32 05 FF 01 01: ATR default, PSL 1, passive activation 1 retry (not
# 0xFF = forever), so InListPassiveTarget answers NbTg=0 when no card is there;
_RETRIES = const(b"\x00\x00\xff\x06\xfa\xd4\x32\x05\xff\x01\x01\xf4\x00")
# InListPassiveTarget 4A 01 00: 1 target, 106 kbps type A.
_LIST = const(b"\x00\x00\xff\x04\xfc\xd4\x4a\x01\x00\xe1\x00")


class Pn532Error(ValueError):
    """A failed exchange with the PN532; the message names the command and what went wrong."""


class Pn532(Reader):
    """Polls for a card every poll_ms. A timeout, NACK, error frame or malformed reply aborts the
    command (ACK), counts a reset, and the next poll wakes and configures the chip again. Errors
    go to on_error; while the chip stays unreachable only the first failure is reported."""

    def __init__(self, port, ms, hold_ms=1500, poll_ms=200, on_error=None):
        super().__init__(port, ms, hold_ms, on_error)
        self.poll_ms = poll_ms
        self._b = bytearray(_CAP)
        self._n = 0
        self._up = False
        self.stats["timeouts"] = 0
        self.stats["resets"] = 0

    async def run(self, on_tap):
        """Forever: poll, call on_tap(uid) once per tap. Never raises except CancelledError."""
        while True:
            try:
                if not self._up:
                    self._port.write(_WAKE)
                    await self._cmd(_SAM)
                    await self._cmd(_RETRIES)
                    self._up = True
                uid = await self.poll()
                if uid:
                    self._uid(uid, on_tap)
            except Exception as e:  # Pn532Error, a port error: start over with a wake-up
                self.stats["resets"] += 1
                if self._up or self.stats["resets"] == 1:  # a chip that stays away: said once
                    self._say(str(e) if isinstance(e, Pn532Error) else "pn532: %r" % (e,))
                self._up = False
                self._n = 0
                try:
                    self._port.write(ACK)
                except Exception:  # the next wake-up reports a port that stays broken
                    pass
            await asyncio.sleep(self.poll_ms / 1000)

    async def poll(self):
        """One InListPassiveTarget: the UID in hex, or None (no card, or a UID length that is not
        4, 7 or 10 bytes: reported through on_error once per tap). Raises Pn532Error."""
        r = await self._cmd(_LIST)
        # D5 4B NbTg [Tg SENS_RES(2) SEL_RES NFCIDLength NFCID1 ...]
        if len(r) < 3 or r[2] and (len(r) < 8 or len(r) < 8 + r[7]):
            raise Pn532Error("pn532: InListPassiveTarget reply %s is cut short" % hexu(r))
        if not r[2]:
            return None
        uid = hexu(r[8:8 + r[7]])
        if r[7] in (4, 7, 10):
            return uid
        if self.seen(uid):  # once per tap, not at every poll while it rests there
            self._bad("pn532: UID of %d bytes ignored (expected 4, 7 or 10)" % r[7])
        return None

    async def _cmd(self, f):
        """Send one command frame; wait for its ACK, then its reply body (TFI D5 first)."""
        cmd = f[6]
        self._port.write(f)
        await self._port.drain()
        await self._wait(cmd, 0)
        return await self._wait(cmd, 1)

    async def _wait(self, cmd, reply):
        # Stale frames (a late reply to an aborted command, a stray ACK) are skipped, not errors.
        what = "reply" if reply else "ACK"
        until = self._ms() + (_REPLY_MS if reply else _ACK_MS)
        while True:
            k, used, s = scan(self._b, self._n)
            body = bytes(self._b[s:used - 1]) if k == FRAME else None
            if used:
                self._b[:self._n - used] = self._b[used:self._n]
                self._n -= used
            if k == GOT_NACK:
                raise Pn532Error("pn532: NACK instead of the %s to command 0x%02X" % (what, cmd))
            if k >= BAD_LCS:
                self._bad("pn532: frame dropped: %s" % _WHY[k])
            elif k == GOT_ACK and not reply:
                return
            elif k == FRAME and reply:
                if body[0] == 0x7F:
                    raise Pn532Error("pn532: error frame in reply to command 0x%02X" % cmd)
                if body[0] == CHIP and len(body) > 1 and body[1] == cmd + 1:
                    return body
            if k:
                continue
            left = until - self._ms()
            try:
                if left <= 0:
                    raise asyncio.TimeoutError
                data = await asyncio.wait_for(read(self._port, _CAP - self._n), left / 1000)
            except asyncio.TimeoutError:
                self.stats["timeouts"] += 1
                raise Pn532Error("pn532: no %s to command 0x%02X within %d ms"
                                 % (what, cmd, _REPLY_MS if reply else _ACK_MS))
            self._b[self._n:self._n + len(data)] = data
            self._n += len(data)
