"""Power cut at every flash write of a whole session: after each reboot nothing is lost or doubled.

The world (driver, EV, meter, hub) goes on across cuts; the charger is rebuilt from its flash
after each one, as a real reboot would. A full session is authorize, Start, three Progress, End
and the charge detail record; variants have the hub refuse the CDR for good (a dead letter,
requeued once a person fixed the hub) or ask to retry the End later (an attempt count). Each
run cuts the power at one mutating filesystem operation (write, close, rename, remove), with
littlefs semantics and again with that write torn at a random byte; the hub must end with every
journaled message exactly once in effect, in order.
"""
import json
import random

from world import EVCO, HSID, RemoteWorld, run


def check(w, label):
    started = [sid for sid, k in w.hub.order if k == "Start"]
    if len(started) != 1:
        raise AssertionError("%s: %d sessions started at the hub" % (label, len(started)))
    sid = started[0]
    kinds = [k for s, k in w.hub.order if s == sid]
    if kinds[0] != "Start" or kinds[-2:] != ["End", "CDR"] or kinds.count("End") != 1 or \
            kinds.count("CDR") != 1 or kinds.count("Progress") < 3:
        raise AssertionError("%s: hub got %r" % (label, kinds))
    closed = [sid for sid, k in w.hub.order if k == "CDR"]
    for sid in w.hub.by_cpo.values():
        if sid not in closed:
            raise AssertionError("%s: session %s left open at the hub" % (label, sid))
    if w.charger.journal.sessions():
        raise AssertionError("%s: left in the journal: %r" % (label, w.charger.journal.sessions()))
    bodies = list(w.hub.seen.values())
    lost = [m for m in w.journaled if m is not None and m not in w.hub.seen
            and w.hub.refused.get(m) not in bodies]  # refused, then requeued under a new id
    if lost:
        raise AssertionError("%s: journaled but never delivered: %r" % (label, lost))
    # Exactly once in effect: no two ids carry the same event.
    events = [json.dumps(sorted(b.items())) for b in w.hub.seen.values()]
    if len(set(events)) != len(events):
        raise AssertionError("%s: the same event arrived under two ids" % label)


def _every_cut(what, min_ops, **hub):
    # hub: the Hub's refuse/busy, and world=RemoteWorld for a session started from an app
    base = run(**hub)
    check(base, what + ", no cut")
    total = base.fs.ops
    rnd = random.Random(2026) if hasattr(random, "Random") else None
    tried = 0
    for k in range(1, total + 1):
        check(run(k, **hub), "%s, cut at op %d" % (what, k))
        tear = rnd.randint(0, 200) if rnd else (k * 37) % 200
        check(run(k, tear, **hub), "%s, cut at op %d torn at byte %d" % (what, k, tear))
        tried += 2
    print("power-cut test (%s): %d cut points tried (%d operations, littlefs and torn)"
          % (what, tried, total))
    assert total >= min_ops
    return base


def test_power_cut_at_every_write():
    _every_cut("a session", 20)


def test_power_cut_at_every_write_while_dead_lettering_and_requeueing():
    # The hub refuses the CDR for good; once the session is over a person fixes the hub and
    # requeues it: cut at every write of the refusal, the dead-letter file, the requeue.
    plain = run().fs.ops
    w = _every_cut("a refused CDR requeued", plain + 4, refuse="CDR")
    assert len(w.hub.refused) == 1 and not w.charger.journal.dead


def test_power_cut_at_every_write_of_a_remote_start_and_stop():
    # A cut anywhere, also right after the "000": the session still completes once.
    w = _every_cut("a remote session", 20, world=RemoteWorld)
    assert ("remote_start", "000") in w.answers and ("remote_stop", "000") in w.answers
    assert w.answers[:2] == [("remote_start", "000")] * 2  # the duplicate: the same answer
    assert [s for s, _k in w.hub.order] == [HSID] * len(w.hub.order)
    for b in w.hub.seen.values():
        assert b["Identification"] == {"RemoteIdentification": {"EvcoID": EVCO}}, b


def test_power_cut_at_every_write_of_an_attempt_count():
    w = _every_cut("an End retried", 20, busy="End")
    assert w.hub.busy is None  # the retry was answered


def test_flash_bytes_per_session_within_twice_the_messages():
    w = run()
    msg_bytes = sum(len(json.dumps(b, separators=(",", ":"))) for b in w.hub.seen.values())
    status_bytes = sum(n for _m, _s, n in w.hub.statuses)
    written = w.fs.bytes_written
    print("flash bytes written %d for %d message bytes, %d of them %d status pushes (%.2fx)"
          % (written, msg_bytes + status_bytes, status_bytes, len(w.hub.statuses),
             written / (msg_bytes + status_bytes)))
    # the boot's Available was superseded by Occupied before the world sent it: latest wins
    assert [s for _m, s, _n in w.hub.statuses] == ["Occupied", "Available"]
    assert written <= 2 * (msg_bytes + status_bytes), (written, msg_bytes, status_bytes)
