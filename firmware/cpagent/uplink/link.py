"""The uplink's one supervisor: AuthorizeStarts first, then the journal in order per session."""
# Backoff has two scopes. An answer the hub gave about one message ("hold": its HTTP 408 or
# 5xx without Retry-After, as uplink/result.classify sorts it) holds back only that message's
# session: its attempt is counted in the journal and the session waits a full-jitter time from
# that count; every other session goes on. An answer that says the path or the hub as a whole
# is not there (no connection, timeout, status 0, a Retry-After, an answer that is not the
# hub's, "stop") backs off the whole link, as one exponent. Answers that are not the hub's
# ("nothub": HTML from a proxy, a gateway's 404/502, a redirect) never fail a message;
# _PATH_AFTER of them in a row set the state PATH until the hub itself answers again.
import asyncio

from micropython import const

from cpagent.uplink.result import delay

_BASE_MS = const(1000)  # first backoff ceiling; doubles per retry
_CAP_MS = const(300000)  # the ceiling stops doubling here (5 min)
_MAX_N = const(9)  # 2**9 s > the cap: n stays small
_IDLE_MS = const(10000)  # idle re-check, e.g. a message waiting for the wall time
_MAX_HELD = const(16)  # sessions waiting for their own retry; one more backs off the whole link
_PATH_AFTER = const(3)  # answers in a row that are not the hub's before the state says so

UP = "up"
BACKOFF = "backoff"
STOPPED = "stopped"
PATH = "path"  # the path to the hub is wrong: what answers is not the hub


class Link:
    """Link(charger, uplink, sleep_ms, rand, show=None, ms=None); `await run()` forever,
    `kick()` on work.

    rand(n) gives n random bytes as hex (board.rand_hex); show(text) tells the driver/log;
    ms() is board time in ms for the sessions' due times; without it every retry backs off
    the whole link.
    """

    def __init__(self, charger, uplink, sleep_ms, rand, show=None, ms=None):
        self.charger = charger
        self.uplink = uplink
        self._sleep = sleep_ms
        self._rand = rand
        self._show = show or (lambda text: None)
        self._ms = ms
        self.state = UP
        self.stats = {"sent": 0, "delivered": 0, "failed": 0, "retries": 0, "last_error": None,
                      "foreign": 0, "last_foreign": None, "held": 0}
        self._n = 0  # link-wide retries in a row: the backoff exponent
        self._foreign = 0  # answers in a row that were not the hub's
        self._held = {}  # session key -> board ms its next try is due
        self._ev = asyncio.Event()  # set by kick() and by a wait's alarm

    def kick(self):
        """New work for the link (a tap, a journaled message); cheap, from any task."""
        self._ev.set()

    async def run(self):
        while True:
            try:
                await self._authorize()
                if self.state == STOPPED:
                    await self._wait(None, True)
                    continue
                hold = self._hold()
                m = self.charger.next_message(hold)
                if m is None:  # idle until a kick, or until the first held session is due
                    ms = _IDLE_MS
                    now = self._ms() if self._held else 0
                    for t in self._held.values():
                        ms = min(ms, max(0, t - now))
                    await self._wait(ms, True)
                else:
                    await self._deliver(m)
            except Exception as e:  # a bug or a flash error: logged, backed off, never fatal
                self._error("link: %r" % (e,))
                await self._backoff(0)

    def _hold(self):
        """The session keys still waiting for their due time (the due ones are let go)."""
        if self._held:  # at each send: no copies while nothing is held
            now = self._ms() if self._ms else 0
            for k in list(self._held):
                if self._held[k] <= now:
                    del self._held[k]
        self.stats["held"] = len(self._held)
        return self._held

    async def _deliver(self, m):
        msg_id, path, body, key = m
        self.stats["sent"] += 1
        kind, value, after = await self.uplink.send(path, body, msg_id)
        if kind == "ok":
            self.charger.delivered(msg_id)
            self.stats["delivered"] += 1
            self._heard()
        elif kind == "fail":  # for good: a dead letter (a Status: dropped), the next goes out
            kept = self.charger.failed(msg_id, value)
            self.stats["failed"] += 1
            self._heard()
            self._error("message %s refused, %s: %s" % (
                msg_id, "kept as a dead letter" if kept else "dropped (a status)", value))
        elif kind == "stop":
            self._stop(value)
        elif kind == "hold" and self._ms and (key in self._held or len(self._held) < _MAX_HELD):
            self.stats["retries"] += 1
            n = self.charger.retry(msg_id)
            self._held[key] = self._ms() + delay(n - 1, _BASE_MS, _CAP_MS, self._rand)
            self._heard()
            self._error("message %s will retry (try %d), its session waits: %s"
                        % (msg_id, n, value))
        else:
            self.stats["retries"] += 1
            if kind == "nothub":
                self._not_the_hub(value)
            else:
                self._error("will retry: " + value)
            await self._backoff(after)

    async def _authorize(self):
        """Send the waiting AuthorizeStarts once each, then the re-sends of those a restart
        orphaned; True if the hub answered one."""
        heard = False
        for i, path, body in self.charger.authorizations():
            if self.state == STOPPED:
                self.charger.authorize_failed(i, "link stopped")
                continue
            kind, value = await self._ask(path, body)
            if kind == "ok":
                self.charger.authorized(i, value)
            else:  # interactive: no retry, the driver taps again
                self.charger.authorize_failed(i, value)
            heard = heard or kind in ("ok", "fail")
        for key, path, body in self.charger.orphans():
            if self.state != STOPPED:
                kind, value = await self._ask(path, body)
                self.charger.resolved(key, kind, value)
                heard = heard or kind in ("ok", "fail")
        return heard

    async def _ask(self, path, body):
        kind, value, _after = await self.uplink.send(path, body)
        if kind == "stop":
            self._stop(value)
        elif kind == "nothub":
            self._not_the_hub(value)
        elif kind in ("ok", "fail"):
            self._heard()
        return kind, value

    def _heard(self):
        """The hub itself answered: the link is up."""
        self._n = self._foreign = 0
        if self.state != STOPPED:
            self.state = UP

    def _not_the_hub(self, reason):
        self.stats["foreign"] += 1
        self.stats["last_foreign"] = reason
        self._foreign += 1
        if self._foreign >= _PATH_AFTER and self.state != STOPPED:
            self.state = PATH
            self._error("the path to the hub is wrong (%d answers in a row), will retry: %s"
                        % (self._foreign, reason))
        else:
            self._error("will retry: " + reason)

    def _stop(self, reason):
        self.state = STOPPED
        self._error("link stopped until restart: " + reason)

    def _error(self, text):
        self.stats["last_error"] = text
        self._show(text)

    async def _backoff(self, floor_ms):
        """The whole link waits the jittered time, at least floor_ms (Retry-After)."""
        ms = delay(self._n, _BASE_MS, _CAP_MS, self._rand)  # full jitter
        self._n = min(self._n + 1, _MAX_N)
        if self.state == UP:
            self.state = BACKOFF
        await self._wait(max(floor_ms, ms), False)

    async def _wait(self, ms, idle):
        """Board time ms (None: until kicked). A kick ends an idle wait; in a backoff it only
        sends AuthorizeStarts, and a hub that answers one ends the backoff early."""
        alarm = None if ms is None else asyncio.create_task(self._alarm(ms))
        try:
            while True:
                await self._ev.wait()
                self._ev.clear()
                # The alarm's task is done once it set the event: what else woke us is a kick
                # (one that came with the alarm is seen by run(), which authorizes first).
                if alarm and alarm.done() or idle or await self._authorize():
                    break
        finally:
            if alarm:
                alarm.cancel()

    async def _alarm(self, ms):
        await self._sleep(ms)
        self._ev.set()
