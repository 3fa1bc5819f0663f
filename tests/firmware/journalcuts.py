"""Journal sessions and dead letters driven across power cuts, on any FaultFs-like flash."""
import json

from faultfs import PowerCut

from cpagent.journal import Journal

D = "/flash/j"
P = "/api/oicp/notificationmgmt/v11/charging-notifications"


def _body(kind, n, pad):
    # Shaped like an OICP ChargingNotification / ChargeDetailRecord of realistic size.
    return ('{"Type":"%s","SessionID":"b2688ef2-8a0e-4f66-a7f8-8a8e5a1b%04d",'
            '"EvseID":"DE*ABC*E1234567*1","Identification":{"RFIDMifareFamilyIdentification":'
            '{"UID":"04A2B3C4D5E6F7"}},"ChargingStart":"2024-05-01T10:00:00Z",'
            '"MeterValueStart":1234.5,"ConsumedEnergyProgress":%d.25,"OperatorID":"DE*ABC",'
            '"PartnerProductID":"AC-22kW"%s}' % (kind, n, n * 7, pad)).encode()


def _steps(n):
    """Step i of session n: (kind, body, state after it); state i=0 is the card tap."""
    cdr_pad = ',"MeterValueInBetween":{"meterValues":[1234.5,1240.1,1251.7,1262.0]},' \
              '"SignedMeteringValues":[{"SignedMeteringValue":"' + "AB" * 90 + '"}]'
    return [
        None,
        ("Start", _body("Start", n, ""), {"st": "charging", "i": 2}),
        ("Progress", _body("Progress", n, ',"P":1'), {"st": "charging", "i": 3}),
        ("Progress", _body("Progress", n, ',"P":2'), {"st": "charging", "i": 4}),
        ("Progress", _body("Progress", n, ',"P":3'), {"st": "charging", "i": 5}),
        ("End", _body("End", n, ',"ChargingEnd":"2024-05-01T11:00:00Z"'), {"st": "ended", "i": 6}),
        ("CDR", _body("CDR", n, cdr_pad), None),
    ]


def _drain(j, rx):
    """Send what is pending in order; the receiver records it, then the journal hears the ack."""
    for mid, _kind, _path, body in j.pending():
        rx.append((mid, body))
        j.delivered(mid)


def _drive(j, world, rx, n=0):
    """Carry session n on from what the journal says (idempotent after any power cut).

    The session's state holds its step, so a restart knows what is done; a message whose step
    was not recorded yet is still pending (deliveries wait until the step is recorded).
    With world["atomic"] the message and the next step go in one add(..., state=...)."""
    key = "s%d" % n
    steps = _steps(n)
    while True:
        s = j.sessions().get(key)
        if s is None:
            if world["tapped"]:  # the session is over: only deliveries are left
                _drain(j, rx)
                return
            j.put_session(key, {"st": "authorized", "i": 1})
            world["tapped"] = True
            continue
        world["tapped"] = True
        kind, body, nxt = steps[s["i"]]
        if world.get("atomic"):
            _drain(j, rx)
            world["ids"].append(j.add(key, kind, P, body, state=nxt))
            continue
        if not any(m[1] == kind and m[3] == body for m in j.pending()):
            # Deliver earlier ones first, so this Progress never supersedes an unsent one.
            _drain(j, rx)
            world["ids"].append(j.add(key, kind, P, body))
        j.put_session(key, nxt)
        _drain(j, rx)


def _rand_seq():
    n = [0]

    def rand_hex():
        n[0] += 1
        return "%08x" % (0x5eed0000 + n[0])

    return rand_hex


def _session(fs, cuts=(), tear=None, atomic=False):
    """Run one session to the end on fs; after each power cut reboot with the next cut point.
    Returns (final fs, receiver log, journal, ids that add() returned)."""
    rx = []
    world = {"tapped": False, "ids": [], "atomic": atomic}
    rand = _rand_seq()
    cuts = list(cuts)
    while True:
        try:
            j = Journal(fs, D, rand_hex=rand).load()
            _drive(j, world, rx)
            return fs, rx, j, world["ids"]
        except PowerCut:
            fs = fs.reboot(cuts.pop(0) if cuts else 0, tear)


def _check(rx, j, ids, what):
    expect = [s[1] for s in _steps(0)[1:]]
    seen = {}
    got = []
    for mid, body in rx:
        if mid in seen:  # a resend: same id, same body, dropped by the receiver
            if seen[mid] != body:
                raise AssertionError("%s: id %s resent with another body" % (what, mid))
            continue
        seen[mid] = body
        got.append(body)
    if got != expect:
        raise AssertionError("%s: receiver got %r" % (what, [b[9:20] for b in got]))
    for mid in ids:
        if mid not in seen:
            raise AssertionError("%s: journaled %s never arrived" % (what, mid))
    if j.pending() or j.sessions():
        raise AssertionError("%s: journal not empty at the end" % what)


def _dead_script(j, w):
    """A person's and the hub's steps, each taken once (w remembers the intent across cuts):
    refuse both messages, requeue "one", discard "two"."""
    for mid, _k, _p, body in j.pending():
        if body not in w["refused"]:
            w["refused"].append(body)
            j.failed(mid, "019 refused")
    for line in list(j.dead_lines()):
        d = json.loads(line)
        if d["body"] == "one" and not w["requeued"]:
            w["requeued"] = True
            j.requeue(d["id"])
        elif d["body"] == "two":
            w["discarded"] = True
            j.discard(d["id"])


def _dead_check(j, w, what):
    """Each message once, pending or a dead letter ("two" gone only once its discard was
    asked), and dead.jsonl as the log says."""
    where = [body for _m, _k, _p, body in j.pending()] + \
        [json.loads(line)["body"].encode() for line in j.dead_lines()]
    want = [b"one", b"two"] if b"two" in where or not w["discarded"] else [b"one"]
    if sorted(where) != want:
        raise AssertionError("%s: messages %r" % (what, where))
    try:
        with j._fs.open(D + "/dead.jsonl", "rb") as f:
            f = f.read().decode().splitlines()
    except OSError:
        f = []
    if f != list(j.dead_lines()):
        raise AssertionError("%s: dead.jsonl %r is not the journal's" % (what, f))


def _two(fs):
    j = Journal(fs, D, rand_hex=_rand_seq()).load()
    j.add("s1", "CDR", P, b"one")
    j.add("s2", "CDR", P, b"two")
    return fs


def dead_letter_cuts(new_fs):
    """Power lost at every operation of refusing two messages, requeueing one and discarding
    the other, on the fs new_fs() makes (reboot(cut, tear) as FaultFs's), each cut also torn;
    returns how many cut points there were."""
    w = {"refused": [], "requeued": False, "discarded": False}
    fs = _two(new_fs()).reboot()
    j = Journal(fs, D, rand_hex=_rand_seq()).load()
    _dead_script(j, w)
    _dead_check(j, w, "no cut")
    assert [m[3] for m in j.pending()] == [b"one"] and not j.dead
    total = fs.ops
    for cut in range(1, total + 1):
        for tear in (None, (cut * 53) % 120):
            what = "cut at %d (torn %s)" % (cut, tear)
            w = {"refused": [], "requeued": False, "discarded": False}
            fs = _two(new_fs()).reboot(cut, tear)
            try:
                _dead_script(Journal(fs, D, rand_hex=_rand_seq()).load(), w)
            except PowerCut:
                pass
            j = Journal(fs.reboot(), D, rand_hex=_rand_seq()).load()
            _dead_check(j, w, what)
            _dead_script(j, w)  # the rest, after the reboot
            _dead_check(j, w, what + ", then the rest")
    return total
