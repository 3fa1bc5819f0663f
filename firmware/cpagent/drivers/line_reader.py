"""Plain serial reader: one hex UID per line, optional ':' '-' or ' ' between bytes."""
from micropython import const

from cpagent.drivers.tap import Reader, nibble

_CAP = const(64)  # longest line kept; 20 digits with separators need 39
_SHOW = const(24)  # bytes of a bad line quoted in the error
_EXPECT = const("expected 8, 14 or 20 hex digits, optionally ':', '-' or ' ' between bytes")


def parse(line):
    """One line (bytes, no line end) -> the UID in upper-case hex; raises ValueError naming the
    line (truncated) and the expected form. Separators only between whole bytes, one at a time."""
    out = bytearray(20)
    n = 0
    prev = 0  # 1: last char was a hex digit, 2: a separator
    for c in bytes(line).strip():
        if nibble(c) >= 0:
            if n == 20:
                break
            out[n] = c & 0xDF if c > 57 else c  # upper-case a..f
            n += 1
            prev = 1
        elif c in b":- " and prev == 1 and not n & 1:
            prev = 2
        else:
            break
    else:
        if n in (8, 14, 20) and prev == 1:
            return out[:n].decode()
    raise ValueError("line reader: line %r: %s" % (bytes(line[:_SHOW]), _EXPECT))


class LineReader(Reader):
    """Lines end at \\n or \\r (so \\r\\n ends one, then a blank line); blank lines are skipped.
    A line longer than _CAP is dropped until its end and reported once."""

    def __init__(self, port, ms, hold_ms=1500, on_error=None):
        super().__init__(port, ms, hold_ms, on_error)
        self._b = bytearray(_CAP)
        self._n = 0
        self._long = False

    def _byte(self, c, on_tap):
        if c != 10 and c != 13:
            if self._n < _CAP:
                self._b[self._n] = c
                self._n += 1
            elif not self._long:
                self._long = True
                self._bad("line reader: line %r... longer than %d bytes dropped: %s"
                          % (bytes(self._b[:_SHOW]), _CAP, _EXPECT))
            return
        line = bytes(self._b[:self._n]).strip()
        if line and not self._long:
            try:
                self._uid(parse(line), on_tap)
            except ValueError as e:
                self._bad(str(e))
        self._n = 0
        self._long = False
