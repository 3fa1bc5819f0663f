"""Link supervisor: order, full-jitter backoff and Retry-After, fail, stop, AuthorizeStarts."""
import asyncio

from check import arun
from cpagent.link import Link

RETRY = ("retry", "HTTP 503 hub unavailable", 0)
OK = ("ok", "reply", 0)


class Charger:
    """The part of cpagent.charger.Charger the link uses, over a list of messages."""

    def __init__(self, n=0):
        self.queue = [("m%d" % i, "/p", {"i": i}) for i in range(n)]
        self.auth = []
        self.done = []  # ("delivered", id) / ("failed", id, reason) / ("authorized", i, r) ...
        self.boom = 0  # next_message raises this many times

    def authorizations(self):
        out, self.auth = self.auth, []
        return out

    def next_message(self):
        if self.boom:
            self.boom -= 1
            raise RuntimeError("flash read")
        return self.queue[0] if self.queue else None

    def delivered(self, msg_id):
        assert self.queue[0][0] == msg_id
        self.queue.pop(0)
        self.done.append(("delivered", msg_id))

    def failed(self, msg_id, reason):
        self.queue.pop(0)
        self.done.append(("failed", msg_id, reason))

    def authorized(self, i, reply):
        self.done.append(("authorized", i, reply))

    def authorize_failed(self, i, reason):
        self.done.append(("authorize_failed", i, reason))


class Uplink:
    """Answers each send with the next scripted Result (then OK); records the bodies."""

    def __init__(self, *results):
        self.results = list(results)
        self.sent = []

    async def send(self, path, body, msg_id=None):
        self.sent.append(body)
        await asyncio.sleep(0)
        return self.results.pop(0) if self.results else OK


class Rig:
    def __init__(self, n, *results, rand="ffff", hold=False):
        self.ch = Charger(n)
        self.up = Uplink(*results)
        self.slept = []
        self.hold = hold  # sleeps never end (the test kicks instead)
        self.shown = []
        self.link = Link(self.ch, self.up, self.sleep_ms, lambda n: rand, self.shown.append)

    async def sleep_ms(self, ms):
        self.slept.append(ms)
        if self.hold:
            await asyncio.Event().wait()
        await asyncio.sleep(0)

    async def until(self, cond, what):
        for _ in range(2000):
            if cond():
                return
            await asyncio.sleep(0)
        raise AssertionError("never: " + what)

    async def run(self, body):
        task = asyncio.create_task(self.link.run())
        try:
            await body()
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass


def test_journal_goes_out_in_order_then_idles_until_kicked():
    r = Rig(3)

    async def body():
        await r.until(lambda: not r.ch.queue, "all delivered")
        assert [b["i"] for b in r.up.sent] == [0, 1, 2]
        assert r.link.stats == {"sent": 3, "delivered": 3, "failed": 0, "retries": 0,
                                "last_error": None}
        await r.until(lambda: 10000 in r.slept, "idle re-check")
        r.ch.queue.append(("m9", "/p", {"i": 9}))
        r.link.kick()
        await r.until(lambda: not r.ch.queue, "kicked message delivered")
        assert r.link.state == "up"
    return arun(r.run(body))


def test_retry_backs_off_with_full_jitter_doubling_to_the_cap_and_resets():
    r = Rig(2, *([RETRY] * 11 + [OK, RETRY]))

    async def body():
        await r.until(lambda: not r.ch.queue, "delivered after retries")
        assert r.slept[:12] == [1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000,
                                300000, 300000, 1000]
        assert [b["i"] for b in r.up.sent] == [0] * 12 + [1, 1]  # the same message again
        assert r.link.stats["retries"] == 12 and r.link.stats["delivered"] == 2
        assert r.link.stats["last_error"] == "will retry: HTTP 503 hub unavailable"
    return arun(r.run(body))


def test_jitter_scales_the_ceiling_and_retry_after_is_a_floor():
    r = Rig(1, RETRY, RETRY, ("retry", "HTTP 429 rate limited", 7000), rand="8000")

    async def body():
        await r.until(lambda: not r.ch.queue, "delivered")
        assert r.slept[:3] == [500, 1000, 7000]  # 0x8000/0xffff of 1 s, 2 s; 4 s < 7 s floor
    r2 = Rig(1, ("retry", "HTTP 429 rate limited", 3000), rand="0000")

    async def body2():
        await r2.until(lambda: not r2.ch.queue, "delivered")
        assert r2.slept[0] == 3000
    return arun(_both(r.run(body), r2.run(body2)))


async def _both(a, b):
    await a
    await b


def test_failed_message_is_kept_shown_and_the_next_goes_out():
    r = Rig(2, ("fail", "HTTP 400 validation error: EvseID", 0))

    async def body():
        await r.until(lambda: not r.ch.queue, "both handled")
        assert r.ch.done == [("failed", "m0", "HTTP 400 validation error: EvseID"),
                             ("delivered", "m1")]
        assert r.shown == ["message m0 not accepted: HTTP 400 validation error: EvseID"]
        assert r.link.stats["failed"] == 1 and r.link.stats["last_error"] == r.shown[0]
        assert 1000 not in r.slept  # no backoff for a refusal
    return arun(r.run(body))


def test_stop_halts_the_link_for_good():
    r = Rig(3, OK, ("stop", "017 access refused (certificate/OperatorID)", 0))

    async def body():
        await r.until(lambda: r.link.state == "stopped", "stopped")
        for _ in range(50):
            await asyncio.sleep(0)
        r.ch.auth.append((0, "/authorize/start", {"a": 1}))
        r.link.kick()
        await r.until(lambda: r.ch.done[-1][0] == "authorize_failed", "tap refused at once")
        assert r.ch.done == [("delivered", "m0"), ("authorize_failed", 0, "link stopped")]
        assert len(r.up.sent) == 2 and len(r.ch.queue) == 2  # nothing more went out
        assert "stopped until restart: 017" in r.link.stats["last_error"]
    return arun(r.run(body))


def test_authorize_starts_go_first_once_each():
    r = Rig(1, ("ok", "auth-reply", 0), RETRY, OK)
    r.ch.auth = [(0, "/a", {"a": 0}), (1, "/a", {"a": 1})]

    async def body():
        await r.until(lambda: not r.ch.queue, "delivered")
        assert r.up.sent == [{"a": 0}, {"a": 1}, {"i": 0}]
        assert r.ch.done == [("authorized", 0, "auth-reply"),
                             ("authorize_failed", 1, "HTTP 503 hub unavailable"),
                             ("delivered", "m0")]
    return arun(r.run(body))


def test_a_tap_during_backoff_is_sent_at_once_and_a_live_hub_ends_the_backoff():
    r = Rig(1, RETRY, ("fail", "102 RFID card unknown", 0), hold=True)

    async def body():
        await r.until(lambda: r.slept == [1000], "backing off")
        assert r.link.state == "backoff"
        r.ch.auth.append((0, "/a", {"a": 0}))
        r.link.kick()
        await r.until(lambda: not r.ch.queue, "retried before the alarm")
        assert r.ch.done == [("authorize_failed", 0, "102 RFID card unknown"),
                             ("delivered", "m0")]
        assert r.link.state == "up"
    return arun(r.run(body))


def test_a_kick_without_taps_does_not_cut_a_backoff():
    r = Rig(1, RETRY, hold=True)

    async def body():
        await r.until(lambda: r.slept == [1000], "backing off")
        r.link.kick()
        for _ in range(50):
            await asyncio.sleep(0)
        assert len(r.up.sent) == 1 and r.link.state == "backoff"
    return arun(r.run(body))


def test_an_unexpected_error_is_shown_backed_off_and_survived():
    r = Rig(1)
    r.ch.boom = 2

    async def body():
        await r.until(lambda: not r.ch.queue, "delivered after errors")
        assert r.slept[:2] == [1000, 2000]
        assert r.shown[0] == "link: RuntimeError('flash read',)" or \
            r.shown[0] == "link: RuntimeError('flash read')"
    return arun(r.run(body))
