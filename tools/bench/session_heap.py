"""Benchmark inside MicroPython: live heap at each step of a two-EVSE session with 100 messages
of 10 earlier sessions waiting and 8 dead letters, flash bytes per completed session (a tap's
and a remote start's; the EVSE status messages among them counted apart too)."""
import json
import os

from cpagent import config
from cpagent.charger import Charger
from cpagent.clock import Clock
from cpagent.fsio import OsFs
from cpagent.journal import Journal
from cpagent.oicp import build as oicp
from cpagent.oicp.replies import parse_acknowledgement, parse_authorization

UIDS = ("04A1B2C3D4E5F6", "04112233445566")
ACK = b'{"Result":true,"StatusCode":{"Code":"000"}}'
CFG = json.dumps({
    "charger_id": "bench", "operator_id": "DE*ABC",
    "evses": [{"evse_id": "DE*ABC*E0001*1", "meter_address": 1, "connector": 1},
              {"evse_id": "DE*ABC*E0001*2", "meter_address": 2, "connector": 2}],
    "meter": {"model": "sdm630"}, "reader": {"type": "pn532"},
    "uplink": {"kind": "http", "url": "http://127.0.0.1:8080"}})


class CountingFile:
    """A file that counts the bytes written through it (MicroPython files take no attributes)."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        CountingFs.written += len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


class CountingFs(OsFs):
    """OsFs that counts the bytes written to flash."""

    written = 0

    def open(self, path, mode):
        f = open(path, mode)
        return f if mode == "rb" else CountingFile(f)


W = {"now": 0, "wh": [100000, 200000], "sessions": 0}


def boot():
    try:
        os.mkdir("/flash")
    except OSError:
        pass
    cfg = config.load(CFG)
    j = Journal(CountingFs(), "/flash/j", max_messages=cfg["journal"]["max_messages"])
    j.load()
    clock = Clock(lambda: W["now"], lambda a, b: a - b, j.boot)
    clock.set_unix(1795320000)
    W["charger"] = Charger(cfg, j, clock)
    add = j.add

    def counting_add(key, kind, *a, **kw):
        # The flash a Status record costs, and later its delivery (drain): counted apart.
        before = CountingFs.written
        mid = add(key, kind, *a, **kw)
        if kind == "Status":
            W["status_flash"] = W.get("status_flash", 0) + CountingFs.written - before
        return mid
    j.add = counting_add
    W["charger"].boot([None, None])


def backlog():
    """100 messages waiting, 10 each of 10 earlier sessions (shaped as charge detail records),
    while the hub was away."""
    ch = W["charger"]
    for i in range(100):
        sid = "%08x-0000-0000-0000-000000000000" % (i % 10)
        t = ch.clock.stamp()
        p, b = oicp.charge_detail_record("DE*ABC", sid, "DE*ABC*E0001*1", UIDS[0], t, t, t, t,
                                         1.5, meter_start=10.0, meter_end=11.5)
        ch.journal.add(sid, "CDR", p, b)


def dead_letters():
    """8 more messages, each refused for good: dead letters (after the taps: a full dead-letter
    area refuses new sessions)."""
    j = W["charger"].journal
    for i in range(8):
        sid = "%08x-dead-0000-0000-000000000000" % i
        t = W["charger"].clock.stamp()
        p, b = oicp.charge_detail_record("DE*ABC", sid, "DE*ABC*E0001*1", UIDS[0], t, t, t, t,
                                         1.5, meter_start=10.0, meter_end=11.5)
        j.failed(j.add(sid, "CDR", p, b), "019 CDR refused: validation")


def requeue():
    W["charger"].journal.requeue()


def tap(evse):
    def step():
        ch = W["charger"]
        ch.tap(UIDS[evse], evse)
        for i, _path, _body in ch.authorizations():
            W["sessions"] += 1
            ch.authorized(i, parse_authorization(
                '{"AuthorizationStatus":"Authorized","SessionID":"%08x-1111-2222-3333-444455556666"'
                ',"StatusCode":{"Code":"000"}}' % W["sessions"]))
    return step


def charge(minutes, evses=(0, 1), deliver=False):
    def step():
        ch = W["charger"]
        for _ in range(minutes):
            W["now"] += 60000
            for e in evses:
                W["wh"][e] += 180
                ch.meter(e, W["wh"][e], 11000)
            if deliver:
                drain()
    return step


def drain(limit=10000):
    ch = W["charger"]
    n = size = 0
    while n < limit:
        m = ch.next_message()
        if m is None:
            break
        k = len(oicp.encode(m[2]))
        size += k
        parse_acknowledgement(ACK)
        before = CountingFs.written
        ch.delivered(m[0])
        if "ActionType" in m[2]:
            W["status_msg"] = W.get("status_msg", 0) + k
            W["status_flash"] = W.get("status_flash", 0) + CountingFs.written - before
        n += 1
    W["msg_bytes"] = W.get("msg_bytes", 0) + size


def remote(cmd):
    f = {"cmd": cmd, "session_id": "0ac1f1b2-1111-2222-3333-444455556666",
         "evse_id": "DE*ABC*E0001*1", "provider_id": "DE-8EO", "deadline": 1795320000 + 86400,
         "evco_id": "DE-8EO-CAB123456-7", "cpo_session_id": None, "product_id": None}
    W["charger"].remote(f)


def flash_session(start, stop, key):
    """One complete session with the link up: every byte written against message bytes."""
    def step():
        W["msg_bytes"] = W["status_msg"] = W["status_flash"] = 0
        before = CountingFs.written
        start()
        charge(17, (0,), True)()
        stop()
        drain()
        W[key] = (CountingFs.written - before, W["msg_bytes"], W["status_flash"],
                  W["status_msg"])
    return step


STEPS = [("boot", boot), ("100 messages of 10 sessions waiting", backlog),
         ("EVSE 1 authorized", tap(0)), ("EVSE 2 authorized", tap(1)),
         ("8 dead letters", dead_letters),
         ("charging 1 min", charge(1)), ("charging 6 min", charge(5)),
         ("charging 11 min", charge(5)), ("charging 16 min", charge(5)),
         ("EVSE 1 stopped", tap(0)), ("EVSE 2 stopped", tap(1)),
         ("54 delivered", lambda: drain(54)), ("dead letters requeued", requeue),
         ("all delivered", drain),
         ("flash remote session", flash_session(lambda: remote("remote_start"),
                                                lambda: remote("remote_stop"), "remote")),
         ("flash session", flash_session(tap(0), tap(0), "flash"))]


def report(base, marks):
    return {"baseline_after_imports": base, "steps": marks,
            "peak_above_baseline": max(m[1] for m in marks[:-1]),
            "session_flash_bytes": W["flash"][0], "session_message_bytes": W["flash"][1],
            "session_status_flash_bytes": W["flash"][2],
            "session_status_message_bytes": W["flash"][3],
            "remote_session_flash_bytes": W["remote"][0],
            "remote_session_message_bytes": W["remote"][1]}
