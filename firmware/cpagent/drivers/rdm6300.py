"""RDM6300 125 kHz EM4100 reader, receive-only at 9600 baud: 02, 10 hex id, 2 hex XOR, 03.

UID mapping: the 5-byte id is a version/customer byte and a 32-bit tag. The UID is the tag as 8 hex
digits (the number printed on EM4100 cards is the decimal of these 32 bits); the first byte is
dropped because OICP allows only 8, 14 or 20 hex digits and a zero-padded 14-digit form would match
nothing printed or stored elsewhere. Two cards differing only in that byte give the same UID.
"""
from micropython import const

from cpagent.drivers.tap import Reader, nibble

_STX = const(2)
_ETX = const(3)
_FRAME = const(14)


def parse(frame):
    """A whole 14-byte frame (02 .. 03) -> the UID (8 upper-case hex digits). Raises ValueError
    naming what is wrong: length, markers, a non-hex digit, the checksum, an all-zero tag."""
    if len(frame) != _FRAME or frame[0] != _STX or frame[-1] != _ETX:
        raise ValueError("rdm6300: frame %r is not 02 + 12 hex digits + 03" % bytes(frame))
    x = 0
    for i in range(1, 13, 2):
        hi = nibble(frame[i])
        lo = nibble(frame[i + 1])
        if hi < 0 or lo < 0:
            raise ValueError("rdm6300: frame %r has a non-hex digit" % bytes(frame))
        x ^= hi << 4 | lo
    if x:  # the 5 id bytes and the checksum byte XOR to 0 when the checksum holds
        raise ValueError("rdm6300: frame %r fails its XOR checksum" % bytes(frame))
    uid = bytes(frame[3:11]).decode().upper()
    if uid == "00000000":
        raise ValueError("rdm6300: all-zero tag ignored")
    return uid


class Rdm6300(Reader):
    """Frames are resynced on 02 (it never occurs inside one: the body is ASCII hex); bytes
    between frames are line noise and are skipped. The module repeats the frame while the card
    stays in the field; Reader.seen makes that one tap."""

    def __init__(self, port, ms, hold_ms=1500, on_error=None):
        super().__init__(port, ms, hold_ms, on_error)
        self._b = bytearray(_FRAME)
        self._n = 0  # bytes of the current frame; 0: waiting for 02

    def _byte(self, c, on_tap):
        n = self._n
        if c == _STX:
            if n:
                self._bad("rdm6300: frame cut off by 02 after %d bytes" % n)
            n = 0
        elif not n:
            return
        self._b[n] = c
        n += 1
        if c == _ETX or n == _FRAME:
            try:
                self._uid(parse(memoryview(self._b)[:n]), on_tap)
            except ValueError as e:
                self._bad(str(e))
            n = 0
        self._n = n
