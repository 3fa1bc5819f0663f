"""What every card reader shares: one event per tap (debounce), UID hex, counters, errors."""
import asyncio
from binascii import hexlify


async def read(port, n):
    """await port.read(n); an empty read (a closed port) raises OSError instead of spinning."""
    d = await port.read(n)
    if not d:
        raise OSError("port read: no bytes (port closed?)")
    return d


def nibble(c):
    """One ASCII byte -> its hex digit value 0..15, or -1 (either case; no int() leniency about
    '_', '+' or spaces)."""
    if 48 <= c <= 57:
        return c - 48
    c |= 32
    return c - 87 if 97 <= c <= 102 else -1


def hexu(b):
    """Bytes in wire order -> upper-case hex (the OICP UID form)."""
    return hexlify(b).decode().upper()


class Reader:
    """Base of the readers: debounce (seen), stats (good: UIDs read, bad: frames/lines rejected,
    taps: events delivered) and on_error. Byte-stream readers implement _byte(c, on_tap).

    A card that stays on the reader is reported again and again; only a new tap counts. The
    debounce state is one UID and one time (bounded): remembering only the last card means a card
    that was tapped, then another, then the first again within hold_ms is two taps of the first;
    that is a real tap sequence, not a card resting on the reader.
    """

    def __init__(self, port, ms, hold_ms, on_error):
        self._port = port
        self._ms = ms
        self._err = on_error
        self.hold_ms = hold_ms
        self._card = None  # the last UID seen, and when
        self._t = 0
        self.stats = {"good": 0, "bad": 0, "taps": 0}

    def seen(self, uid):
        """The reader saw `uid` now: True if that is a new tap (another card, or back after
        hold_ms away). Every sighting restarts the hold, so a resting card never repeats."""
        now = self._ms()
        new = uid != self._card or now - self._t >= self.hold_ms
        self._card = uid
        self._t = now
        return new

    def _bad(self, text):
        self.stats["bad"] += 1
        self._say(text)

    def _say(self, text):
        if self._err:
            try:
                self._err(text)
            except Exception:  # a failing logger must not stop the reader
                pass

    def _uid(self, uid, on_tap):
        self.stats["good"] += 1
        if self.seen(uid):
            self.stats["taps"] += 1
            try:
                on_tap(uid)
            except Exception as e:  # the caller's bug: report it, keep reading cards
                self._say("on_tap(%s) failed: %r" % (uid, e))

    async def run(self, on_tap):
        """Forever: read the port and feed each byte to the frame parser. Never raises except
        CancelledError; a failing port read is reported and retried after a second."""
        while True:
            try:
                data = await read(self._port, 32)
            except Exception as e:
                self._say("port read failed: %r" % (e,))
                await asyncio.sleep(1)
                continue
            for c in data:
                self._byte(c, on_tap)
