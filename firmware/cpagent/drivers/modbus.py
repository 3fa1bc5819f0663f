"""Modbus RTU frames, sans-IO: CRC-16/MODBUS, FC 03/04 read requests, reply scan with resync."""
from micropython import const

# Exception codes 1..11 by name ("" where the spec defines none), split only to name one: a
# literal stays in flash when frozen, a list would be built in RAM at import.
_EXC = const("illegal function,illegal data address,illegal data value,server device failure,"
             "acknowledge,server device busy,,memory parity error,,gateway path unavailable,"
             "gateway target failed to respond")


class ModbusError(ValueError):
    """A failed read; .code is the exception code of the meter's reply, None for no valid reply."""

    def __init__(self, unit, fc, addr, what, code=None):
        super().__init__("modbus unit %d fc %d addr %d: %s" % (unit, fc, addr, what))
        self.code = code


def crc16(data):
    """CRC-16/MODBUS (reflected 0xA001, init 0xFFFF); a frame with its CRC appended gives 0."""
    crc = 0xFFFF
    for b in data:  # bitwise, no table: 8 shifts a byte cost less than 512 bytes of RAM
        crc ^= b
        for _ in range(8):
            crc = crc >> 1 ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def request(unit, fc, start, count):
    """The 8-byte frame that reads `count` registers from `start` (FC 3 holding, 4 input)."""
    if fc != 3 and fc != 4:
        raise ValueError("modbus fc: expected 3 or 4, got %r" % (fc,))
    if not 1 <= unit <= 247:
        raise ValueError("modbus unit: expected 1..247, got %r" % (unit,))
    if not 1 <= count <= 125 or not 0 <= start <= 65536 - count:
        raise ValueError("modbus registers: expected 1..125 from 0..65535, got %r from %r"
                         % (count, start))
    b = bytearray((unit, fc, start >> 8, start & 255, count >> 8, count & 255, 0, 0))
    c = crc16(memoryview(b)[:6])
    b[6] = c & 255  # the CRC goes low byte first
    b[7] = c >> 8
    return bytes(b)


def scan(buf, n, unit, fc, count, addr=0, first=0):
    """Offset of the reply to (unit, fc, count) in buf[first:n], or -1 while there is none yet.

    Skips noise, stale bytes, echoes and other units' frames (resync); a frame counts only if its
    CRC holds. A valid exception reply raises ModbusError with its code; addr is for the message.
    A caller adding bytes may pass first = old n - 4 - 2 * count: earlier starts were decided.
    """
    mv = memoryview(buf)
    size = 5 + 2 * count
    for i in range(max(first, 0), n - 4):
        if buf[i] != unit:
            continue
        f = buf[i + 1]
        if f == fc and buf[i + 2] == 2 * count:
            if i + size <= n and not crc16(mv[i:i + size]):
                return i
        elif f == fc | 0x80 and not crc16(mv[i:i + 5]):
            c = buf[i + 2]
            why = 0 < c < 12 and _EXC.split(",")[c - 1] or "unknown"
            raise ModbusError(unit, fc, addr, "exception %02X %s" % (c, why), c)
    return -1
