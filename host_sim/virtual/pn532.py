"""A virtual PN532 in HSU mode: answers the host's command frames with ACK + reply, one card."""
from cpagent.drivers.pn532 import ACK, CHIP, FRAME, GOT_ACK, GOT_NACK, HOST, NEED, frame, scan

_ERROR = b"\x00\x00\xff\x01\xff\x7f\x81\x00"  # the PN532's "syntax error" frame
_FIRMWARE = b"\x03\x32\x01\x06\x07"  # GetFirmwareVersion reply: IC PN532, v1.6, ISO A/B + 18092
_LOG = 200  # commands kept in .commands (oldest dropped)


class VirtualPn532:
    """handle(bytes_in) -> bytes_out, bytes may arrive split anywhere across calls.

    Like the chip it starts asleep: frames are ignored until a wake-up (0x55) and then answered
    only after SAMConfiguration. Until RFConfiguration sets MaxRetries (CfgItem 05) to less than
    0xFF, InListPassiveTarget with no card never answers (the real chip retries forever).
    .card: the UID in hex (8, 14 or 20 digits) on the antenna, or None. reset(): power cycle.
    Counters: .bad (frames with failed checksums), .aborts (ACKs from the host).
    """

    def __init__(self, card=None):
        self.card = card
        self.commands = []  # command codes received, for tests
        self.bad = 0
        self.aborts = 0
        self._b = bytearray(262)  # the longest normal frame, as in the chip
        self._n = 0
        self._last = b""
        self.reset()

    def reset(self):
        self.awake = False
        self.configured = False
        self.passive_retries = 0xFF

    def handle(self, data):
        if b"\x55" in data:
            self.awake = True
        out = bytearray()
        for c in data:  # scan() keeps at most one partial frame (<= 260 bytes) in the buffer
            self._b[self._n] = c
            self._n += 1
            while True:
                k, used, s = scan(self._b, self._n)
                body = bytes(self._b[s:used - 1])
                self._b[:self._n - used] = self._b[used:self._n]
                self._n -= used
                if k == NEED:
                    break
                if k == GOT_ACK:
                    self.aborts += 1
                elif k == GOT_NACK:
                    out += self._last
                elif k != FRAME:
                    self.bad += 1
                elif self.awake and body[0] == HOST and len(body) > 1:
                    out += self._command(body[1], body[2:])
        return bytes(out)

    def _command(self, cmd, args):
        self.commands.append(cmd)
        del self.commands[:-_LOG]
        if cmd != 0x14 and not self.configured:
            return b""  # low-battery mode: SAMConfiguration must come first
        if cmd == 0x14:
            self.configured = True
            reply = b"\x15"
        elif cmd == 0x02:
            reply = _FIRMWARE
        elif cmd == 0x32:
            if args[:1] == b"\x05" and len(args) == 4:
                self.passive_retries = args[3]
            reply = b"\x33"
        elif cmd == 0x4A and args[:2] == b"\x01\x00":
            if self.card is None:
                if self.passive_retries == 0xFF:
                    return ACK  # and then silence: it keeps looking for a card
                reply = b"\x4b\x00"
            else:
                uid = bytes.fromhex(self.card)
                size = {4: 0x00, 7: 0x40, 10: 0x80}.get(len(uid), 0xC0)  # SENS_RES UID size bits
                sel = 0x08 if len(uid) == 4 else 0x00  # MIFARE Classic 1K / Ultralight-like
                reply = bytes((0x4B, 1, 1, 0x00, 0x04 | size, sel, len(uid))) + uid
        else:
            self._last = _ERROR
            return ACK + _ERROR
        self._last = frame(reply, CHIP)
        return ACK + self._last
