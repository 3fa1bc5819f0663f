"""Relay parts without a broker: config errors, envelope checks, token buckets, the queue."""
import json
import logging
import re
import socket
import threading
import time
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from relayparts import CHARGERS, LIMITS, OP, STATUS_CHARGERS, Clock, doc, drain, env, raw_env

from cpagent.oicp import build as oicp
from host_sim.relay import envelope, sessions
from host_sim.relay.config import Config, ConfigError
from host_sim.relay.forwarder import Hub, Unreachable
from host_sim.relay.metrics import Recent, Throttle
from host_sim.relay.ratelimit import QueueFull, Scheduler, TokenBucket
from host_sim.relay.service import ReadAhead


@pytest.mark.parametrize("change, field", [
    ({"broker": {"host": "h", "user": "u"}}, "broker.password: required"),
    ({"broker": {"host": "h", "user": "u", "password": "p", "port": "1883"}}, "broker.port"),
    ({"broker": {"host": "h", "user": "u", "password": "p", "grup": "x"}}, "broker.grup"),
    ({"hub": {"url": "ftp://x"}}, "hub.url"),
    ({"hub": {"url": "https://127.0.0.1:1"}}, "hub.ca: required"),
    ({"chargers": {}}, "chargers"),
    ({"chargers": {"cp/1": {"operator_id": OP, "evses": ["DE*ABC*E1"]}}}, "chargers.cp/1"),
    ({"chargers": {"cp-1": {"operator_id": "DEABCD", "evses": ["DE*ABC*E1"]}}},
     "chargers.cp-1.operator_id"),
    ({"chargers": {"cp-1": {"operator_id": OP, "evses": ["E1"]}}}, r"chargers.cp-1.evses\[0\]"),
    ({"limits": {"cdr_per_min": 0}}, "limits.cdr_per_min"),
    ({"http": {"port": 70000}}, "http.port"),
    ({"queue": {"max_wait_s": "x"}}, "queue.max_wait_s"),
    ({"sessions": {"unknown_wait_s": -1}}, "sessions.unknown_wait_s"),
    ({"sessions": {"maxx": 1}}, "sessions.maxx"),
])
def test_config_errors_name_the_field(change, field):
    with pytest.raises(ConfigError, match=field):
        Config(doc(**change))


def test_config_defaults_are_hubjects_limits():
    c = Config(doc())
    assert c.limits["authorize_per_min"] == 200 and c.limits["notifications_per_min"] == 100
    assert c.limits["cdr_per_min"] == 350 and c.broker["group"] == "relays"


def test_envelope_parses_and_orders():
    path, body = oicp.authorize_start(OP, "04A1B2C3D4E5F6", "DE*ABC*E1")
    r = envelope.parse("cp/cp-1/up", env("a-1", path, body), CHARGERS)
    assert (r.charger, r.id, r.op, r.operator, r.limit) == (
        "cp-1", "a-1", "AuthorizeStart", OP, "authorize_per_min")
    assert json.loads(r.data) == body


@pytest.mark.parametrize("payload, msg_id, text", [
    (b"{", None, "envelope: not JSON"),
    (b"\xff\xfe", None, "envelope: not UTF-8"),
    (b"[1]", None, "envelope: expected a JSON object, got list"),
    (b'{"v":1,"id":"a b","path":"x","body":{}}', None, "id: expected"),
    (b'{"v":2,"id":"a","path":"x","body":{}}', "a", "v: expected 1, got 2"),
    (b'{"v":1,"id":"a","path":"/x","body":{}}', "a", "path: expected an OICP CPO path"),
    (b'{"v":1,"id":"a","path":"/api/oicp/notificationmgmt/v11/charging-notifications",'
     b'"body":[]}', "a", "body: expected a JSON object"),
    (b'{"v":1,"id":"a","path":"/api/oicp/notificationmgmt/v11/charging-notifications",'
     b'"body":{"Type":"Late"}}', "a", "body.Type"),
    (b'{"v":1,"id":"a","x":1,"path":"p","body":{}}', "a", "x: not a field"),
    (b'{"v":1,"id":"big","pad":"' + b"x" * 9000 + b'"}', "big", "envelope: 9"),
])
def test_envelope_errors_name_the_field(payload, msg_id, text):
    with pytest.raises(envelope.Refused, match=text) as e:
        envelope.parse("cp/cp-1/up", payload, CHARGERS)
    assert e.value.id == msg_id


def test_unknown_charger_and_foreign_push_records_are_refused():
    path, body = oicp.push_evse_status(OP, [("DE*ABC*E1", "Available"),
                                             ("DE*ABC*E9", "Available")])
    with pytest.raises(envelope.Refused, match=r"EvseStatusRecord\[1\].EvseID"):
        envelope.parse("cp/cp-1/up", env("p-1", path, body), CHARGERS)
    with pytest.raises(envelope.Refused, match="charger cp-9 is not configured"):
        envelope.parse("cp/cp-9/up", env("p-1", path, body), CHARGERS)


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                     | st.text(max_size=20),
                     lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                          max_size=4),
                     max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.binary(max_size=300),
    _json.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"v": _json, "id": _json, "path": _json, "body": _json})
    .map(lambda v: json.dumps(v).encode()),
    st.integers(8000, 20000).map(lambda n: b'{"v":1,"id":"x","body":"' + b"a" * n + b'"}')))
def test_fuzz_envelope_is_parsed_or_refused_with_a_message(payload):
    try:
        envelope.parse("cp/cp-1/up", payload, CHARGERS)
    except envelope.Refused as e:
        assert str(e) and len(str(e)) < 300
        reply = json.loads(envelope.down(e.id, 400, error=str(e)))
        assert reply["status"] == 400 and reply["id"] == e.id


def _greedy(b, start, end, sent):
    """Take every token the bucket gives from start until end (a relay with a full queue)."""
    now = start
    while True:
        now = max(now, b.ready_at(now))
        if now >= end:
            return
        b.take(now)
        sent.append(now)


def _max_per_window(sent):
    j, most = 0, 0
    for i, t in enumerate(sent):
        while sent[j] <= t - 60:
            j += 1
        most = max(most, i - j + 1)
    return most


def test_token_bucket_keeps_every_60_s_window_at_the_limit():
    for per_min in (2, 7, 100, 350):
        sent = []
        b = TokenBucket(per_min, 0.0)
        _greedy(b, 0.0, 600.0, sent)
        assert _max_per_window(sent) <= per_min, per_min
        # and it does not starve: per_min - burst every minute, the burst once it is idle
        assert len(sent) >= (per_min - b.burst) * 10 - 1, (per_min, len(sent))
        _greedy(b, 700.0, 700.001, sent)
        assert len(sent) - (per_min - b.burst) * 10 >= b.burst - 1, per_min


def test_a_relay_restarted_after_a_burst_stays_within_the_limit():
    # The killed process spent its refill and its burst just before dying; the new one starts
    # empty, so no 60 s window around the restart holds more than the limit.
    for per_min in (7, 100, 200):
        sent = []
        old = TokenBucket(per_min, 0.0)
        _greedy(old, 0.0, 100.0, sent)  # steady at the limit ...
        _greedy(old, 200.0, 200.001, sent)  # ... idle, then a full burst
        for restart in (200.002, 230.0):
            new = TokenBucket(per_min, restart)
            both = list(sent)
            _greedy(new, restart, restart + 120.0, both)
            assert _max_per_window(both) <= per_min, (per_min, restart)


def uuid(name):
    """A SessionID (the OICP pattern) named by a short test name."""
    return "%08x-0000-0000-0000-000000000000" % zlib.crc32(name.encode())


def req(i, kind, sid=None, charger="cp-1"):
    e, t0, t1 = "DE*ABC*E1", "2026-01-01T10:00:00.000Z", "2026-01-01T10:30:00.000Z"
    sid = uuid(sid)
    path, body = {
        "AuthorizeStart": lambda: oicp.authorize_start(OP, "04A1B2C3D4E5F6", e),
        "CDR": lambda: oicp.charge_detail_record(OP, sid, e, "04A1B2C3D4E5F6", t0, t1, t0, t1,
                                                 5.5),
        "Start": lambda: oicp.notification_start(OP, sid, e, t0),
        "Progress": lambda: oicp.notification_progress(OP, sid, e, t0, t1, 1000, 1800000),
        "End": lambda: oicp.notification_end(OP, sid, e, t1, t0),
        "Error": lambda: oicp.notification_error(OP, sid, e, "ConnectorError"),
    }[kind]()
    return envelope.parse("cp/%s/up" % charger, env("m-%d" % i, path, body),
                          dict(CHARGERS, **{charger: CHARGERS["cp-1"]}))


def test_priority_between_sessions_order_within_one():
    clock = Clock()
    s = Scheduler(LIMITS, clock=clock)
    kinds = ["Progress", "Start", "ChargeDetailRecord", "Error", "End", "AuthorizeStart"]
    for i, k in enumerate(kinds):
        s.put(req(i, "CDR" if k == "ChargeDetailRecord" else k, sid="s%d" % i))
    clock.full()
    assert [r.kind for r in drain(s)] == ["AuthorizeStart", "End", "Error",
                                          "ChargeDetailRecord", "Start", "Progress"]
    for i, k in enumerate(["Start", "Progress", "End"]):   # one session: its own order
        s.put(req(10 + i, k, sid="same"))
    s.put(req(20, "End", sid="other"))
    # End of "same" outranks everything here, but waits for its session's Start and Progress.
    assert [(r.kind, r.body["SessionID"]) for r in drain(s)] == [
        ("End", uuid("other")), ("Start", uuid("same")), ("Progress", uuid("same")),
        ("End", uuid("same"))]


def test_a_newer_progress_replaces_a_queued_one():
    clock = Clock()
    s = Scheduler(LIMITS, clock=clock)
    first = req(1, "Start", sid="s")
    s.put(first)
    clock.full()
    assert s.take(timeout=0) is first                    # Start at the hub
    assert s.put(req(2, "Progress", sid="s")) is None
    old = s.put(req(3, "Progress", sid="s"))
    assert old is not None and old.id == "m-2"
    s.done(first)
    r = s.take(timeout=0)
    assert r.id == "m-3" and [i for _c, i in r.ids] == ["m-2", "m-3"]
    s.done(r)
    assert s.take(timeout=0) is None and s.count == 0


def test_rate_limit_waits_and_expiry_and_bound():
    clock = Clock()
    s = Scheduler(dict(LIMITS, notifications_per_min=20), max_items=5, max_wait_s=30,
                  clock=clock)
    for i in range(5):
        s.put(req(i, "Start", sid="s%d" % i))
    with pytest.raises(QueueFull):
        s.put(req(9, "Start", sid="s9"))
    assert [r.id for r in drain(s)] == []                # a fresh bucket is empty
    clock.t = 60 / 18 + 0.001                            # one refill at 18 per minute
    assert [r.id for r in drain(s)] == ["m-0"]
    clock.t = 3 * 60 / 18 + 0.001
    assert [r.id for r in drain(s)] == ["m-1", "m-2"]    # up to the burst of 20 // 10
    clock.t = 31
    r = s.take(timeout=0)
    assert r.id == "m-3" and r.state == "expired"


def test_an_answer_wakes_one_waiting_worker_for_the_next_of_its_session():
    clock = Clock()
    s = Scheduler(LIMITS, clock=clock)
    first = req(1, "Start", sid="s")
    s.put(first)
    clock.full()
    assert s.take(timeout=0) is first
    s.put(req(2, "Progress", sid="s"))                   # waits for the Start's answer
    got = []
    workers = [threading.Thread(target=lambda: got.append(s.take()), daemon=True)
               for _ in range(3)]
    for w in workers:
        w.start()
    s.done(first, hold_s=None)
    for _ in range(500):                                 # a bounded wait for the woken one
        if got:
            break
        time.sleep(0.01)
    assert [r.id for r in got] == ["m-2"]
    s.close()                                            # the other two return None
    for w in workers:
        w.join(5)
    assert sorted(got, key=lambda r: r is None)[1:] == [None, None]


class Scripted:
    """A loopback HTTP server answering each request with the next scripted reply (bytes), or
    closing the connection at None; records the requests it read."""

    def __init__(self, replies):
        self.replies, self.requests, self.conns = list(replies), [], 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while self.replies:
            c, _ = self.sock.accept()
            self.conns += 1
            with c:
                buf = b""
                while self.replies:
                    while b"\r\n\r\n" not in buf:
                        data = c.recv(65536)
                        if not data:
                            break
                        buf += data
                    if b"\r\n\r\n" not in buf:
                        break
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    n = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    while len(buf) < n:
                        buf += c.recv(65536)
                    self.requests.append((head, buf[:n]))
                    buf = buf[n:]
                    reply = self.replies.pop(0)
                    if reply is None:
                        break
                    c.sendall(reply)

    def hub(self):
        return Hub(Config(doc(hub={"url": "http://127.0.0.1:%d/p" % self.port,
                                   "connections": 1, "retries": 0, "timeout_s": 5})).hub)


def _ok(body=b'{"a":1}', extra=b""):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def test_hub_client_reuses_its_connection_and_reads_every_framing():
    chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"3;x=1\r\n{\"a\r\n4\r\n\":2}\r\n0\r\nX-Trailer: t\r\n\r\n")
    s = Scripted([_ok(), b"HTTP/1.1 100 Continue\r\n\r\n" + _ok(b'{"b":2}'), chunked,
                  _ok(b"[]", b"Retry-After: 7\r\n").replace(b"200 OK", b"429 Too Many"),
                  _ok(b"<html>"), b"HTTP/1.0 200 OK\r\n\r\n{\"to\":\"close\"}"])
    hub = s.hub()
    got = [hub.post("/x", b'{"q":%d}' % i) for i in range(6)]
    assert [(r.status, r.body) for r in got[:3]] == [(200, {"a": 1}), (200, {"b": 2}),
                                                     (200, {"a": 2})]
    assert (got[3].status, got[3].retry_after) == (429, 7)
    assert got[4].body is None and "not JSON" in got[4].error
    assert got[5].body == {"to": "close"}
    assert hub.connects == 1 and s.conns == 1                 # kept alive all along
    head, body = s.requests[0]
    assert head.startswith(b"POST /p/x HTTP/1.1\r\n") and body == b'{"q":0}'
    assert b"Host: 127.0.0.1:%d" % s.port in head


def test_hub_client_retries_a_reused_connection_the_hub_closed_and_gives_up_on_garbage():
    s = Scripted([_ok(), None, _ok(b'{"again":1}'), b"SMTP ready\r\n\r\n"])
    hub = s.hub()
    assert hub.post("/x", b"{}").body == {"a": 1}
    assert hub.post("/x", b"{}").body == {"again": 1}         # closed when reused: once more
    assert hub.connects == 2
    with pytest.raises(Unreachable, match="not an HTTP/1.x status line"):
        hub.post("/x", b"{}")


def test_hub_client_cuts_a_reply_over_the_limit_and_drops_the_connection():
    big = b'"' + b"x" * (Hub.MAX_REPLY + 10) + b'"'
    s = Scripted([_ok(big), _ok()])
    hub = s.hub()
    r = hub.post("/x", b"{}")
    assert r.body is None and "over" in r.error
    assert hub.post("/x", b"{}").body == {"a": 1} and hub.connects == 2


def test_read_ahead_serves_pahos_small_reads_from_one_receive():
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        r = ReadAhead(a)
        b.sendall(b"\x30\x05hello\x40")
        assert r.recv(1) == b"\x30" and r.pending() == 7     # all of it read at once
        assert [r.recv(1), r.recv(5), r.recv(9)] == [b"\x05", b"hello", b"\x40"]
        assert r.pending() == 0
        with pytest.raises(BlockingIOError):                  # nothing more: paho's AGAIN
            r.recv(1)
        b.sendall(b"xyz")
        assert r.recv(3) == b"xyz" and r.pending() == 0       # a fitting read: no buffer
        assert r.fileno() == a.fileno()                       # select() sees the socket
        b.close()
        assert r.recv(1) == b""                               # the broker closed it


@pytest.mark.parametrize("text, reason, what", [
    (b'{"v":1,"id":"a","path":"p","body":{"x":NaN}}', "json", "NaN is not a JSON number"),
    (b'{"v":1,"id":"a","path":"p","body":{"x":-Infinity}}', "json", "-Infinity"),
    (b'{"v":1,"id":"a","id":"b","path":"p","body":{}}', "json", "key 'id' appears twice"),
    (b'{"v":1,"id":"a","path":"p","body":' + b'{"a":' * 17 + b"1" + b"}" * 17 + b"}", "depth",
     "nested over 16 deep"),
    (b'{"v":1,"id":"a","path":"p","body":' + b"[" * 2000 + b"]" * 2000 + b"}", "depth",
     "nested over 16 deep"),
    (b'{"v":1,"id":"a","path":"/api/oicp/notificationmgmt/v11/charging-notifications",'
     b'"body":{"Type":"Start","EvseID":["DE*ABC*E1"]}}', "schema",
     "body.EvseID: ['DE*ABC*E1'] is not of type 'string' (and 3 more)"),
])
def test_strict_json_depth_and_schema_refusals(text, reason, what):
    with pytest.raises(envelope.Refused, match=re.escape(what)) as e:
        envelope.parse("cp/cp-1/up", text, CHARGERS)
    assert e.value.reason == reason


def test_every_schema_error_of_a_body_is_a_refusal_naming_the_field():
    path, body = oicp.notification_start(OP, uuid("s"), "DE*ABC*E1", "2026-01-01T10:00:00.000Z")
    for field, value in (("EvseID", ["DE*ABC*E1"]), ("SessionID", 5), ("ChargingStart", 1),
                         ("OperatorID", {}), ("MeterValueStart", "1")):
        bad = dict(body, **{field: value})
        with pytest.raises(envelope.Refused, match="body.%s" % field) as e:
            envelope.parse("cp/cp-1/up", raw_env("m-1", path, bad), CHARGERS)
        assert e.value.reason == "schema" and e.value.id == "m-1"
    assert envelope.parse("cp/cp-1/up", env("m-1", path, body), CHARGERS).kind == "Start"


def test_session_owners_known_other_unknown_and_closed():
    clock = Clock()
    o = sessions.Owners(cap=3, unknown_wait_s=10, closed_keep_s=100, clock=clock)
    assert o.check("cp-1", "s1")[0] == "wait" and "loading" in o.check("cp-1", "s1")[1]
    o.synced = True
    assert o.learn("s1", "cp-1") and not o.learn("s1", "cp-2")   # the first owner stays
    assert o.check("cp-1", "s1") is None
    assert o.check("cp-2", "s1")[0] == "other"
    assert o.check("cp-2", "s9")[0] == "wait"                    # unknown: wait, then refuse
    clock.t = 10
    assert o.check("cp-2", "s9") == ("refuse", "SessionID s9 was not authorized through "
                                               "charger cp-2")
    o.on_record("s2", sessions.record("cp-2"))                   # another relay's record
    assert o.check("cp-2", "s2") is None
    with pytest.raises(ValueError, match="already cp-2's"):
        o.on_record("s2", sessions.record("cp-1"))
    with pytest.raises(ValueError, match="expected"):
        o.on_record("s3", b'{"v":1}')
    o.on_record("s1", sessions.record("cp-1", closed=True))     # its CDR went through
    assert o.check("cp-1", "s1") is None and o.open_records() == [("s2", "cp-2")]
    clock.t = 111
    assert o.check("cp-1", "s1")[0] == "wait"                    # forgotten after the keep
    o.on_record("s2", b"")                                       # deleted at the broker
    assert "s2" not in o.owner
    for i in range(5):
        o.learn("x%d" % i, "cp-1")
    assert list(o.owner) == ["x2", "x3", "x4"]                   # the cap: oldest forgotten


def test_throttle_logs_once_per_reason_and_period(caplog):
    clock = Clock()
    t = Throttle(logging.getLogger("relay-test"), period_s=60, clock=clock)
    with caplog.at_level(logging.WARNING, "relay-test"):
        for _ in range(5):
            t.log("a", "refused %s", "x")
        t.log("b", "other")
        clock.t = 61
        t.log("a", "refused %s", "y")
    assert [r.getMessage() for r in caplog.records] == [
        "refused x", "other", "refused y (and 4 more like it in the last 60 s)"]


def test_recent_answers_judge_health_on_a_window():
    clock = Clock()
    r = Recent(n=50, window_s=300, share=0.8, least=10, clock=clock)
    for _ in range(9):
        r.add(True, "nothub 404")
    assert r.problem() == ""                                     # too few to judge
    r.add(True, "nothub 502")
    assert r.problem().startswith("hub: 10 of the last 10 answers") and "502" in r.problem()
    for _ in range(3):
        r.add(False, "ok")
    assert r.problem() == ""                                     # 10 of 13 < 80 %
    clock.t = 301
    assert r.problem() == ""                                     # all older than the window


def status(i, charger, *records, action="update"):
    path, body = oicp.push_evse_status(OP, list(records), action)
    return envelope.parse("cp/%s/up" % charger, env("s-%d" % i, path, body), STATUS_CHARGERS)


def test_status_pushes_of_an_operator_merge_latest_wins_and_answer_every_charger():
    clock = Clock()
    s = Scheduler(LIMITS, clock=clock)
    first = status(1, "cp-1", ("DE*ABC*E1", "Available"))
    s.put(first)
    clock.full()
    assert s.take(timeout=0) is first                      # in flight: the next one waits
    s.put(status(2, "cp-1", ("DE*ABC*E1", "Occupied"), ("DE*ABC*E2", "Available")))
    assert s.put(status(3, "cp-2", ("DE*ABC*E3", "Occupied"))) is not None
    assert s.put(status(4, "cp-1", ("DE*ABC*E1", "Available"))) is not None
    assert s.take(timeout=0) is None                       # never two of one operator at once
    s.done(first)
    (merged,) = drain(s)
    recs = merged.body["OperatorEvseStatus"]["EvseStatusRecord"]
    assert [(r["EvseID"], r["EvseStatus"]) for r in recs] == [
        ("DE*ABC*E2", "Available"), ("DE*ABC*E3", "Occupied"), ("DE*ABC*E1", "Available")]
    assert merged.ids == [("cp-1", "s-2"), ("cp-2", "s-3"), ("cp-1", "s-4")]
    assert json.loads(merged.data) == merged.body and merged.body["ActionType"] == "update"
    assert s.count == 0


def test_a_full_load_from_one_charger_is_refused_naming_the_field():
    with pytest.raises(envelope.Refused, match="body.ActionType: a charger pushes update") as e:
        status(1, "cp-1", ("DE*ABC*E1", "Available"), action="fullLoad")
    assert e.value.reason == "action" and e.value.id == "s-1"


def test_a_command_answer_another_relay_got_is_passed_to_the_asking_relay():
    from host_sim.relay import commands
    from host_sim.relay.metrics import Metrics
    sent = {"relay-a": [], "relay-b": []}
    chargers = {"cp-1": {"operator_id": OP, "evses": frozenset(["DE*ABC*E1"])}}
    a, b = (commands.Commands(n, chargers, 5.0, lambda t, p, n=n: sent[n].append((t, p)),
                              lambda sid, c: True, Metrics()) for n in ("relay-a", "relay-b"))
    for c in (a, b):
        c.on_status("cp-1", b"online")
    body = {"SessionID": uuid("s"), "ProviderID": "DE-EMP", "EvseID": "DE*ABC*E1",
            "Identification": {"RemoteIdentification": {"EvcoID": "DE-EMP-C12345678-X"}}}
    out = []
    t = threading.Thread(target=lambda: out.append(b.handle("AuthorizeRemoteStart", body)))
    t.start()
    until = time.monotonic() + 5
    while not sent["relay-b"] and time.monotonic() < until:
        time.sleep(0.01)
    (topic, payload), = sent["relay-b"]
    cmd = json.loads(payload)
    assert topic == "cp/cp-1/down" and cmd["cid"].startswith("relay-b~")
    assert cmd["evco_id"] == "DE-EMP-C12345678-X" and cmd["cmd"] == "remote_start"
    # The broker's shared subscription hands the charger's answer to relay-a:
    a.on_reply("cp-1", {"v": 1, "reply": cmd["cid"], "code": "000", "info": "ok"})
    (topic, payload), = sent["relay-a"]
    assert topic == "relay/replies/relay-b"
    b.on_reply(None, json.loads(payload))      # what relay-b reads on its replies topic
    t.join(5)
    assert out == [("000", "ok")]
    # offline now: a new start is 501 at once, a repeat of the answered one is remembered
    b.on_status("cp-1", b"offline")
    assert b.handle("AuthorizeRemoteStart", dict(body, SessionID=uuid("t")))[0] == "501"
    assert b.handle("AuthorizeRemoteStart", body) == ("000", "ok")   # a repeat: remembered
