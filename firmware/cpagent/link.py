"""The uplink's one supervisor: AuthorizeStarts first, then the journal in order, with backoff."""
import asyncio

from micropython import const

_BASE_MS = const(1000)  # first backoff ceiling; doubles per retry of the same message
_CAP_MS = const(300000)  # the ceiling stops doubling here (5 min)
_MAX_N = const(9)  # 2**9 s > the cap: n stays small
_IDLE_MS = const(10000)  # idle re-check, e.g. a message waiting for the wall time
_RAND_MAX = const(65535)  # rand(2): 4 hex digits

UP = "up"
BACKOFF = "backoff"
STOPPED = "stopped"


class Link:
    """Link(charger, uplink, sleep_ms, rand, show=None); `await run()` forever, `kick()` on work.

    rand(n) gives n random bytes as hex (board.rand_hex); show(text) tells the driver/log.
    """

    def __init__(self, charger, uplink, sleep_ms, rand, show=None):
        self.charger = charger
        self.uplink = uplink
        self._sleep = sleep_ms
        self._rand = rand
        self._show = show or (lambda text: None)
        self.state = UP
        self.stats = {"sent": 0, "delivered": 0, "failed": 0, "retries": 0, "last_error": None}
        self._n = 0  # retries in a row: the backoff exponent
        self._ev = asyncio.Event()
        self._kicked = self._due = False

    def kick(self):
        """New work for the link (a tap, a journaled message); cheap, from any task."""
        self._kicked = True
        self._ev.set()

    async def run(self):
        while True:
            try:
                await self._authorize()
                m = None if self.state == STOPPED else self.charger.next_message()
                if m is None:
                    await self._wait(None if self.state == STOPPED else _IDLE_MS, True)
                else:
                    await self._deliver(m)
            except Exception as e:  # a bug or a flash error: logged, backed off, never fatal
                self._error("link: %r" % (e,))
                await self._backoff(0)

    async def _deliver(self, m):
        msg_id, path, body = m
        self.stats["sent"] += 1
        kind, value, after = await self.uplink.send(path, body, msg_id)
        if kind == "ok":
            self.charger.delivered(msg_id)
            self.stats["delivered"] += 1
            self._n = 0
            self.state = UP
        elif kind == "fail":  # for good: kept in the journal's failures, and the next goes out
            self.charger.failed(msg_id, value)
            self.stats["failed"] += 1
            self._n = 0
            self.state = UP
            self._error("message %s not accepted: %s" % (msg_id, value))
        elif kind == "stop":
            self._stop(value)
        else:
            self.stats["retries"] += 1
            self._error("will retry: " + value)
            await self._backoff(after)

    async def _authorize(self):
        """Send the waiting AuthorizeStarts once each; True if the hub answered one."""
        heard = False
        for i, path, body in self.charger.authorizations():
            if self.state == STOPPED:
                self.charger.authorize_failed(i, "link stopped")
                continue
            kind, value, _after = await self.uplink.send(path, body)
            if kind == "ok":
                self.charger.authorized(i, value)
            else:  # interactive: no retry, the driver taps again
                self.charger.authorize_failed(i, value)
                if kind == "stop":
                    self._stop(value)
            heard = heard or kind in ("ok", "fail")
        return heard

    def _stop(self, reason):
        self.state = STOPPED
        self._error("link stopped until restart: " + reason)

    def _error(self, text):
        self.stats["last_error"] = text
        self._show(text)

    async def _backoff(self, floor_ms):
        """Full jitter: rand in [0, min(cap, base * 2**n)], at least floor_ms (Retry-After)."""
        ceiling = min(_CAP_MS, _BASE_MS << self._n)
        self._n = min(self._n + 1, _MAX_N)
        if self.state != STOPPED:
            self.state = BACKOFF
        await self._wait(max(floor_ms, int(self._rand(2), 16) * ceiling // _RAND_MAX), False)

    async def _wait(self, ms, idle):
        """Board time ms (None: until kicked). A kick ends an idle wait; in a backoff it only
        sends AuthorizeStarts, and a hub that answers one ends the backoff early."""
        self._due = False
        alarm = None if ms is None else asyncio.create_task(self._alarm(ms))
        try:
            while not self._due:
                await self._ev.wait()
                self._ev.clear()
                if self._kicked:
                    self._kicked = False
                    if idle or await self._authorize():
                        break
        finally:
            if alarm:
                alarm.cancel()

    async def _alarm(self, ms):
        await self._sleep(ms)
        self._due = True
        self._ev.set()
