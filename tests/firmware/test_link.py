"""Link supervisor: order per session, full-jitter backoff of a session or the whole link,
Retry-After, dead letters, stop, AuthorizeStarts, answers that are not the hub's."""
import asyncio

from fakecharger import Charger

from check import arun, until
from cpagent.uplink.link import Link

RETRY = ("retry", "hub unreachable: [Errno 111] ECONNREFUSED", 0)  # the whole link backs off
BUSY = ("hold", "HTTP 503 hub unavailable: 500 hub busy", 0)  # about this message
OK = ("ok", "reply", 0)
HTML = ("nothub", "not the hub's answer: HTTP 404 not found (text/html): <html><head>", 0)


class Uplink:
    """Answers each send with the next scripted Result (then OK), or with answer(body) if
    given; records the bodies."""

    def __init__(self, *results, answer=None):
        self.results = list(results)
        self.answer = answer
        self.sent = []

    async def send(self, path, body, msg_id=None):
        self.sent.append(body)
        await asyncio.sleep(0)
        if self.answer:
            return self.answer(body)
        return self.results.pop(0) if self.results else OK


class Rig:
    def __init__(self, n, *results, rand="ffff", hold=False, keys=None, answer=None,
                 charger=None):
        self.ch = charger or Charger(n, keys)
        self.up = Uplink(*results, answer=answer)
        self.slept = []
        self.t = 0  # board ms: moves only by what the link sleeps
        self.hold = hold  # sleeps never end (the test kicks instead)
        self.shown = []
        self.link = Link(self.ch, self.up, self.sleep_ms, lambda n: rand, self.shown.append,
                         ms=lambda: self.t)

    async def sleep_ms(self, ms):
        self.slept.append(ms)
        if self.hold:
            await asyncio.Event().wait()
        await asyncio.sleep(0)
        self.t += ms

    async def until(self, cond, what):
        await until(cond, what, 2000)

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
                                "last_error": None, "foreign": 0, "last_foreign": None,
                                "held": 0}
        await r.until(lambda: 10000 in r.slept, "idle re-check")
        r.ch.queue.append(("m9", "/p", {"i": 9}, "s"))
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
        assert r.link.stats["last_error"] == "will retry: " + RETRY[1]
        assert r.ch.tries == {}  # the hub never judged the message: no attempt counted
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
        assert r.shown == ["message m0 refused, kept as a dead letter: "
                           "HTTP 400 validation error: EvseID"]
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
                             ("authorize_failed", 1, RETRY[1]),
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


def test_a_message_retried_forever_holds_back_only_its_own_session():
    # Session "a" has a message the hub answers 503 forever; "b"'s five are all delivered at
    # board time 0 (no backoff in between), and "a"'s second message never overtakes its first.
    keys = ["a", "b", "a", "b", "b", "b", "b"]
    r = Rig(7, keys=keys, answer=lambda b: BUSY if keys[b["i"]] == "a" else OK)

    async def body():
        await r.until(lambda: [m[3] for m in r.ch.queue] == ["a", "a"], "b all delivered")
        assert r.t == 0 and r.link.state == "up"
        assert [d[1] for d in r.ch.done] == ["m1", "m3", "m4", "m5", "m6"]
        await r.until(lambda: r.ch.tries.get("m0", 0) >= 6, "a retried with backoff")
        assert "m2" not in r.ch.tries and all(b["i"] == 0 for b in r.up.sent if b["i"] != 1
                                              and keys[b["i"]] == "a")
        # Every session waits: the link sleeps until the earliest due time (full jitter at
        # rand ffff = the ceiling: 1 s, 2 s, 4 s, ... per attempt of m0).
        assert r.slept[:5] == [1000, 2000, 4000, 8000, 10000]
        assert r.link.stats["held"] == 1 and r.link.state == "up"
        assert "m0 will retry (try " in r.link.stats["last_error"]
        r.ch.queue.append(("m9", "/p", {"i": 1}, "c"))  # a new session meanwhile goes at once
        t = r.t
        r.link.kick()
        await r.until(lambda: ("delivered", "m9") in r.ch.done, "new session delivered")
        assert r.t - t <= 10000  # at most the one sleep the kick cut short
    return arun(r.run(body))


def test_a_retry_with_retry_after_or_without_the_hub_backs_off_the_whole_link():
    r = Rig(2, ("retry", "HTTP 503 hub unavailable", 7000), RETRY, keys=["a", "b"])

    async def body():
        await r.until(lambda: not r.ch.queue, "delivered")
        assert r.slept[:2] == [7000, 2000] and r.ch.tries == {}
        assert [b["i"] for b in r.up.sent] == [0, 0, 0, 1]  # "b" waited with the link
    return arun(r.run(body))


def test_more_held_sessions_than_the_cap_back_off_the_whole_link():
    keys = ["s%d" % i for i in range(17)]
    r = Rig(17, keys=keys, answer=lambda b: BUSY, hold=True)

    async def body():
        await r.until(lambda: r.slept == [1000], "the 17th backs off the link")
        assert r.link.stats["held"] == 16 and len(r.ch.tries) == 16
        assert r.link.state == "backoff" and r.link.stats["last_error"].startswith("will retry")
    return arun(r.run(body))


def test_answers_that_are_not_the_hubs_retry_and_after_three_say_the_path_is_wrong():
    r = Rig(2, HTML, HTML, ("nothub", "HTTP 502 text/html: <html>bad gateway", 0), OK,
            ("fail", "HTTP 400 validation error: EvseID", 0))

    async def body():
        await r.until(lambda: r.link.state == "path", "path state")
        assert r.ch.done == [] and r.ch.tries == {}  # never failed, never counted against it
        assert r.slept == [1000, 2000]
        assert r.link.stats["foreign"] == 3
        assert r.link.stats["last_foreign"] == "HTTP 502 text/html: <html>bad gateway"
        assert r.shown[-1].startswith("the path to the hub is wrong (3 answers in a row)")
        assert r.shown[0] == "will retry: " + HTML[1]
        await r.until(lambda: not r.ch.queue, "the hub answers again")
        assert r.link.state == "up" and r.slept[2] == 4000
        assert r.ch.done == [("delivered", "m0"), ("failed", "m1", "HTTP 400 validation error: "
                                                                   "EvseID")]
    return arun(r.run(body))


def test_a_foreign_answer_to_an_authorize_start_fails_the_tap_and_counts():
    r = Rig(0, HTML, HTML, HTML)
    r.ch.auth = [(0, "/a", {"a": 0}), (1, "/a", {"a": 1}), (2, "/a", {"a": 2})]

    async def body():
        await r.until(lambda: len(r.ch.done) == 3, "taps answered")
        assert r.ch.done[0] == ("authorize_failed", 0, HTML[1])
        assert r.link.state == "path" and r.link.stats["foreign"] == 3
    return arun(r.run(body))


def test_with_the_real_journal_a_stuck_session_does_not_delay_the_other():
    # Two EVSEs; the hub answers 503 to every message of the first session, forever. The
    # second session's Start, End and CDR all go out at once, on the board clock.
    from chargerbox import A, B, Box

    box = Box()
    box.ch.tap(A)
    box.ch.tap(B)
    box.authorize_all()
    stuck = box.ch.evses[0].session_id

    def answer(body):
        return BUSY if body.get("SessionID") == stuck else OK
    r = Rig(0, answer=answer, charger=box.ch)
    box.ch.meter(0, 1000, 5000)  # both charging: Start of each
    box.ch.meter(1, 2000, 5000)
    box.ch.tap(A)
    box.ch.tap(B)  # both stopped: End and CDR of each

    async def body():
        await r.until(lambda: [m[1] for m in box.journal.pending()] == ["Start", "End", "CDR"],
                      "the other session delivered")
        assert r.t == 0  # no backoff of the link in between
        other = [b.get("Type", "CDR") for b in r.up.sent
                 if b.get("SessionID") != stuck and "ActionType" not in b]  # no statuses
        assert other == ["Start", "End", "CDR"]
        await r.until(lambda: box.journal.next_pending()[5] >= 3, "the stuck one retried")
        assert [b.get("Type", "CDR") for b in r.up.sent if b.get("SessionID") == stuck] == \
            ["Start"] * box.journal.next_pending()[5]  # its End and CDR wait behind it
        r2 = Box(fs=box.fs.reboot())
        assert r2.journal.next_pending()[5] == box.journal.next_pending()[5]
    return arun(r.run(body))


def test_orphaned_authorize_starts_are_resent_after_the_taps_and_resolved():
    r = Rig(1, ("ok", "auth-reply", 0), ("ok", "orphan-reply", 0), HTML)
    r.ch.auth = [(0, "/a", {"a": 0})]
    r.ch.lost = [("a:1-5-0", "/a", {"a": "old"}), ("a:1-9-1", "/a", {"a": "old2"})]

    async def body():
        await r.until(lambda: not r.ch.queue, "delivered")
        assert r.up.sent[:3] == [{"a": 0}, {"a": "old"}, {"a": "old2"}]
        assert r.ch.done[:3] == [("authorized", 0, "auth-reply"),
                                 ("resolved", "a:1-5-0", "ok", "orphan-reply"),
                                 ("resolved", "a:1-9-1", "nothub", HTML[1])]
        assert r.link.stats["foreign"] == 1
    return arun(r.run(body))


def test_the_classifiers_answers_go_to_the_right_scope():
    # The contract with uplink/result.classify: the hub's 503 with its error form and a 408 hold
    # one session; a proxy's HTML 404, a 429 and an unreached hub back off the whole link.
    from cpagent.uplink.result import classify

    p = "/api/oicp/notificationmgmt/v11/charging-notifications"
    fault = b'{"StatusCode":{"Code":"001","Description":"busy"}}'
    for status, data, after, mine in ((503, fault, 0, True), (408, b"", 0, True),
                                      (503, fault, 5000, False), (429, b"", 0, False),
                                      (0, b"", 0, False)):
        kind, reason, ms = classify(p, status, data, after, None, "application/json")
        assert kind == ("hold" if mine else "retry"), (status, reason)
    kind, reason, _ = classify(p, 404, b"<html><title>404</title></html>", 0, None, "text/html")
    assert kind == "nothub"
