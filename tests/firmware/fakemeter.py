"""A fake Modbus meter bank (registers per unit, CRC framed replies) and ABB B23 registers."""
from cpagent.drivers.modbus import crc16


class Bank:
    """A Modbus device for several units: registers (fc, addr) -> 16-bit word, default 0.

    A unit not in `units` is silent; a read longer than `most` gets exception 02, and so does
    one spanning a register the unit lacks if `strict`.
    """

    def __init__(self, units, most=125, strict=False):
        self.units = units
        self.most = most
        self.strict = strict

    def set32(self, unit, fc, addr, v):
        self.units[unit][(fc, addr)] = v >> 16 & 0xFFFF
        self.units[unit][(fc, addr + 1)] = v & 0xFFFF

    def __call__(self, f):
        u, fc, start, count = f[0], f[1], f[2] << 8 | f[3], f[4] << 8 | f[5]
        if u not in self.units:
            return None
        if count > self.most or self.strict and any(
                (fc, a) not in self.units[u] for a in range(start, start + count)):
            out = bytearray((u, fc | 0x80, 2))
        else:
            out = bytearray((u, fc, 2 * count))
            for a in range(start, start + count):
                w = self.units[u].get((fc, a), 0)
                out += bytes((w >> 8, w & 255))
        c = crc16(out)
        return bytes(out + bytes((c & 255, c >> 8)))


def abb(e, p):
    """ABB B23 registers: import e x 0.01 kWh, power p x 0.01 W, 230.0 V and 10.00 A on L1."""
    return {(3, 0x5002): e >> 16, (3, 0x5003): e & 0xFFFF, (3, 0x5B01): 2300, (3, 0x5B0D): 1000,
            (3, 0x5B14): p >> 16 & 0xFFFF, (3, 0x5B15): p & 0xFFFF}
