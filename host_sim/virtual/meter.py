"""Virtual Modbus RTU energy meters: each model's register layout, fed by an EV or fixed values.

The layouts are written here from the meter makers' maps on purpose, apart from the firmware's
cpagent/drivers/meter_maps.py, so that tests of the firmware against these meters check its maps.
"""
import struct

from cpagent.drivers.modbus import crc16

# quantity -> value from a reading (wh, w, volts, amps); "exp_wh" etc. are registers a real meter
# has next to the ones the agent reads (export energy, frequency) so a poll may span them.
_Q = {
    "wh": lambda r: r[0], "tot_wh": lambda r: r[0], "exp_wh": lambda r: 0,
    "w": lambda r: r[1], "exp_w": lambda r: 0, "hz": lambda r: 50.0,
    "v1": lambda r: r[2][0], "v2": lambda r: r[2][1], "v3": lambda r: r[2][2],
    "a1": lambda r: r[3][0], "a2": lambda r: r[3][1], "a3": lambda r: r[3][2],
    "w1": lambda r: r[3][0] * r[2][0], "w2": lambda r: r[3][1] * r[2][1],
    "w3": lambda r: r[3][2] * r[2][2],
}
_ENERGY = ("wh", "tot_wh")
# Register layouts: (fc, [(address, type, quantity, units per raw count)]). Types: f32 IEEE MSW
# first; u16/u32/u64/s16/s32 big-endian words; i32sw INT32 low word first; t5/t6 Iskra (signed
# decade exponent in the top byte, 24-bit unsigned/signed value), the units field then being
# that exponent; t2 int16. Sources: hardware.md §1 (mbmd, Victron, Tasmota, EVerest, Tinkerforge).
_SDM3 = [(0x00, "f32", "v1", 1), (0x02, "f32", "v2", 1), (0x04, "f32", "v3", 1),
         (0x06, "f32", "a1", 1), (0x08, "f32", "a2", 1), (0x0A, "f32", "a3", 1),
         (0x0C, "f32", "w1", 1), (0x0E, "f32", "w2", 1), (0x10, "f32", "w3", 1),
         (0x34, "f32", "w", 1), (0x46, "f32", "hz", 1), (0x48, "f32", "wh", 1000),
         (0x4A, "f32", "exp_wh", 1000), (0x156, "f32", "tot_wh", 1000)]
LAYOUTS = {
    "sdm630": (4, _SDM3),
    "sdm72d_v2": (4, _SDM3),
    "sdm120": (4, [(0x00, "f32", "v1", 1), (0x06, "f32", "a1", 1), (0x0C, "f32", "w", 1),
                   (0x46, "f32", "hz", 1), (0x48, "f32", "wh", 1000),
                   (0x4A, "f32", "exp_wh", 1000), (0x156, "f32", "tot_wh", 1000)]),
    "sdm72d": (4, [(0x34, "f32", "w", 1), (0x48, "f32", "wh", 1000),
                   (0x4A, "f32", "exp_wh", 1000), (0x156, "f32", "tot_wh", 1000),
                   (0x500, "f32", "w", 1), (0x502, "f32", "exp_w", 1)]),
    "abb_b23": (3, [(0x5000, "u64", "wh", 10), (0x5004, "u64", "exp_wh", 10),
                    (0x5B00, "u32", "v1", 0.1), (0x5B02, "u32", "v2", 0.1),
                    (0x5B04, "u32", "v3", 0.1), (0x5B0C, "u32", "a1", 0.01),
                    (0x5B0E, "u32", "a2", 0.01), (0x5B10, "u32", "a3", 0.01),
                    (0x5B14, "s32", "w", 0.01), (0x5B16, "s32", "w1", 0.01),
                    (0x5B18, "s32", "w2", 0.01), (0x5B1A, "s32", "w3", 0.01),
                    (0x5B2C, "u16", "hz", 0.01)]),
    "em340": (4, [(0x00, "i32sw", "v1", 0.1), (0x02, "i32sw", "v2", 0.1),
                  (0x04, "i32sw", "v3", 0.1), (0x0C, "i32sw", "a1", 0.001),
                  (0x0E, "i32sw", "a2", 0.001), (0x10, "i32sw", "a3", 0.001),
                  (0x12, "i32sw", "w1", 0.1), (0x14, "i32sw", "w2", 0.1),
                  (0x16, "i32sw", "w3", 0.1), (0x28, "i32sw", "w", 0.1),
                  (0x33, "s16", "hz", 0.1), (0x34, "i32sw", "wh", 100),
                  (0x4E, "i32sw", "exp_wh", 100)]),
    "wm3m4": (4, [(105, "t5", "hz", -2), (107, "t5", "v1", -2), (109, "t5", "v2", -2),
                  (111, "t5", "v3", -2), (126, "t5", "a1", -3), (128, "t5", "a2", -3),
                  (130, "t5", "a3", -3), (140, "t6", "w", -1), (142, "t6", "w1", -1),
                  (144, "t6", "w2", -1), (146, "t6", "w3", -1),
                  # exponents of counters 1..4 at 414..417, the counters at 418..425 (the
                  # 3rd and 4th inferred from that pattern; energy readers span them)
                  (414, "t2", "wh_exp", None), (415, "t2", "wh_exp", None),
                  (416, "t2", "wh_exp", None), (417, "t2", "wh_exp", None),
                  (418, "u32", "wh", "exp"), (420, "u32", "exp_wh", "exp"),
                  (422, "u32", "exp_wh", "exp"), (424, "u32", "exp_wh", "exp")]),
}
FAULTS = ("dead", "frozen", "backwards", "na", "noise")
NOISE = b"\x01\x04\x04\xff\x00\x13"  # looks like the start of a reply: the scanner must resync
_WORDS = {"u16": 1, "s16": 1, "t2": 1, "f32": 2, "u32": 2, "s32": 2, "i32sw": 2, "t5": 2,
          "t6": 2, "u64": 4}
_NA = {"f32": b"\x7f\xc0\x00\x00", "u16": b"\xff\xff", "u32": b"\xff" * 4, "u64": b"\xff" * 8,
       "s16": b"\x7f\xff", "s32": b"\x7f\xff\xff\xff", "i32sw": b"\xff\xff\x7f\xff",
       "t5": b"\xff" * 4, "t6": b"\x7f\xff\xff\xff"}  # T6 all ones is -0.1, a value
_INBUF = 256  # request bytes kept while waiting for a whole frame; beyond: drop the oldest


def _frame(body):
    c = crc16(body)
    return body + bytes((c & 0xFF, c >> 8))


def encode(typ, value, units):
    """Raw register bytes for a value in base units (Wh, W, V, A, Hz)."""
    if typ == "f32":
        return struct.pack(">f", value / units)
    if typ in ("t5", "t6"):
        raw = int(round(value / 10.0 ** units)) & 0xFFFFFF
        return struct.pack(">I", ((units & 0xFF) << 24) | raw)
    if typ == "t2":
        return struct.pack(">h", value)
    # a counter truncates (it has not reached the next step yet); instant values round
    raw = int(value // units) if units >= 1 else int(round(value / units))
    if typ == "i32sw":
        b = struct.pack(">i", raw)
        return b[2:] + b[:2]
    return struct.pack({"u16": ">H", "s16": ">h", "u32": ">I", "s32": ">i", "u64": ">Q"}[typ],
                       raw)


class VirtualMeter:
    """A meter on the bus: handle(request bytes) -> reply bytes, as behind FakePort or a pty.

    source.reading() -> (wh, w, volts, amps) gives the true values (EvLoad, ev.Fixed).
    fault: None or one of FAULTS: "dead" (no reply), "frozen" (energy stops where it was when the
    fault was set while power is still reported), "backwards" (energy back_wh lower than the
    truth), "na" (every value is the type's not-available marker), "noise" (NOISE before each
    reply). wh_exp: the Iskra WM3M4's energy exponent (counter = Wh / 10**wh_exp).
    """

    def __init__(self, model, unit=1, source=None, wh_exp=0, back_wh=1000):
        if model not in LAYOUTS:
            raise ValueError("VirtualMeter model %r: expected one of %s"
                             % (model, ", ".join(sorted(LAYOUTS))))
        self.model, self.unit, self.source = model, unit, source
        self.fc, self._layout = LAYOUTS[model]
        self.wh_exp, self.back_wh = wh_exp, back_wh
        self.requests = 0  # frames for this unit that had a good CRC
        self._fault = None
        self._frozen_wh = 0
        self._rx = bytearray()

    @property
    def fault(self):
        return self._fault

    @fault.setter
    def fault(self, name):
        if name is not None and name not in FAULTS:
            raise ValueError("VirtualMeter fault %r: expected None or one of %s"
                             % (name, ", ".join(FAULTS)))
        if name == "frozen":
            self._frozen_wh = self.source.reading()[0]
        self._fault = name

    def registers(self):
        """{address: 2 raw bytes} of every mapped register, from the source's values now."""
        r = self.source.reading()
        wh = r[0]
        if self._fault == "frozen":
            wh = self._frozen_wh
        elif self._fault == "backwards":
            wh = max(0, wh - self.back_wh)
        r = (wh,) + tuple(r[1:])
        regs = {}
        for addr, typ, q, units in self._layout:
            if units == "exp":
                units = 10 ** self.wh_exp
            if self._fault == "na" and typ in _NA:
                raw = _NA[typ]
            elif q == "wh_exp":
                raw = encode(typ, self.wh_exp, None)
            else:
                raw = encode(typ, _Q[q](r), units)
            for i in range(_WORDS[typ]):
                regs[addr + i] = raw[2 * i:2 * i + 2]
        return regs

    def answer(self, fc, start, count):
        """The reply frame to one read request for this unit."""
        if fc != self.fc:
            return _frame(bytes((self.unit, fc | 0x80, 1)))
        if not 1 <= count <= 125:
            return _frame(bytes((self.unit, fc | 0x80, 3)))
        regs = self.registers()
        data = bytearray()
        for a in range(start, start + count):
            if a not in regs:
                return _frame(bytes((self.unit, fc | 0x80, 2)))
            data += regs[a]
        return _frame(bytes((self.unit, fc, 2 * count)) + data)

    def handle(self, data):
        """Take request bytes (any split); return the replies to whole requests for this unit."""
        self._rx += data
        if len(self._rx) > _INBUF:
            del self._rx[:-_INBUF]
        out = bytearray()
        while len(self._rx) >= 8:
            f = bytes(self._rx[:8])
            if crc16(f[:6]) != f[6] | f[7] << 8:
                del self._rx[0]  # not a frame start: slide on (resync after noise)
                continue
            del self._rx[:8]
            if f[0] != self.unit:
                continue  # another meter's request, or a broadcast: reads get no answer
            self.requests += 1
            if self._fault == "dead":
                continue
            if self._fault == "noise":
                out += NOISE
            out += self.answer(f[1], f[2] << 8 | f[3], f[4] << 8 | f[5])
        return bytes(out)

