"""The relay end to end: real Mosquitto (host_sim/broker.py), the mock hub over mutual TLS (or a
stand-in); and what a charger cannot do to it: malformed envelopes, another charger's sessions."""
import http.server
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import pytest
import relaymq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from relaymq import (
    EVSES,
    FAST,
    OP,
    ROOT,
    UID,
    USERS,
    Charger,
    _window_ok,
    config_doc,
    spawn_relay,
    start_relay,
)

from cpagent.oicp import build as oicp
from host_sim.broker import Broker, BrokerClient
from host_sim.hub import HubThread
from host_sim.relay import Relay, child
from host_sim.relay.config import Config
from host_sim.relay.envelope import NOTIFY_PATH

pki, hub, broker = relaymq.pki, relaymq.hub, relaymq.broker  # relaymq's fixtures


def envelope_notify_path():
    return NOTIFY_PATH


@pytest.fixture
def relay(pki, hub, broker):
    r = Relay(Config(config_doc(pki, hub, broker))).start()
    child.healthy(r.http.port)   # subscribed: a request published before would find no one
    yield r
    r.stop()


def authorize(ch, msg_id="a-00000001", evse=EVSES[0]):
    path, body = oicp.authorize_start(OP, UID, evse)
    rep = ch.request(msg_id, path, body)
    assert rep["id"] == msg_id and rep["status"] == 200, rep
    assert rep["body"]["AuthorizationStatus"] == "Authorized"
    return rep["body"]["SessionID"]


def test_request_reply_through_the_relay(relay, hub, broker):
    ch = Charger(broker)
    sid = authorize(ch)
    assert [e["operation"] for e in hub.hub.exchanges] == ["AuthorizeStart"]
    assert hub.hub.exchanges[0]["cn"] == OP   # mutual TLS with the relay's certificate
    path, body = oicp.notification_start(OP, sid, EVSES[0], "2026-01-01T10:00:00.000Z")
    rep = ch.request("m-1", path, body)
    assert rep["status"] == 200 and rep["body"]["Result"] is True
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % relay.http.port).read()
    assert b'relay_hub_requests_total{status="200"} 2' in text
    assert urllib.request.urlopen("http://127.0.0.1:%d/health" % relay.http.port).read() == b"ok\n"


def test_a_duplicate_gets_the_cached_reply_and_reaches_the_hub_once(relay, hub, broker):
    ch = Charger(broker)
    sid = authorize(ch)
    path, body = oicp.notification_start(OP, sid, EVSES[0], "2026-01-01T10:00:00.000Z")
    first = ch.request("m-1", path, body)
    again = ch.request("m-1", path, body)
    assert again == first
    assert [e["operation"] for e in hub.hub.exchanges] == ["AuthorizeStart",
                                                           "ChargingNotifications"]
    assert relay.metrics.get("relay_up_messages_total", result="duplicate") == 1


def test_another_chargers_evse_or_operator_is_refused(relay, hub, broker):
    ch = Charger(broker)
    path, body = oicp.authorize_start(OP, UID, EVSES[1])       # cp-2's EVSE
    rep = ch.request("a-1", path, body)
    assert rep["status"] == 400 and rep["body"] is None
    assert "body.EvseID" in rep["error"] and "not an EVSE of charger cp-1" in rep["error"]
    path, body = oicp.authorize_start("DE*XYZ", UID, EVSES[0])  # another operator
    rep = ch.request("a-2", path, body)
    assert rep["status"] == 400 and "path OperatorID" in rep["error"]
    assert hub.hub.exchanges == []
    assert relay.metrics.get("relay_refused_total", reason="evse") == 1
    assert relay.metrics.get("relay_refused_total", reason="operator") == 1


def test_publishing_to_another_chargers_topic_never_reaches_the_hub(relay, hub, broker):
    ch1, ch2 = Charger(broker, "cp-1"), Charger(broker, "cp-2")
    path, body = oicp.authorize_start(OP, UID, EVSES[1])
    ch1.send("a-forged", path, body)
    ch1.send_raw(json.dumps({"v": 1, "id": "a-forged", "path": path, "body": body}).encode(),
                 topic="cp/cp-2/up")                          # the broker's ACL drops it
    authorize(ch2, "a-real", EVSES[1])                         # cp-2's own request goes through
    assert ch1.reply()["status"] == 400                        # its own topic: refused, EVSE
    assert [e["request"]["EvseID"] for e in hub.hub.exchanges] == [EVSES[1]]


def _hub_times(exchanges):
    from datetime import datetime
    return [datetime.fromisoformat(e["time"]).timestamp() for e in exchanges]


def test_burst_above_the_limit_keeps_the_rate_and_the_priority(pki, hub, broker):
    # 120/min: a burst of 12, then 1.8 per second. Sessions first (AuthorizeStart has its own
    # bucket), then one notification per session at once, of every kind.
    doc = config_doc(pki, hub, broker, limits={"notifications_per_min": 120})
    doc["chargers"]["cp-1"]["evses"] = EVSES[:1]
    r = Relay(Config(doc)).start()
    try:
        child.healthy(r.http.port)
        ch = Charger(broker)
        sids = [authorize(ch, "a-%d" % i) for i in range(24)]
        kinds = ["Progress", "Start", "Error", "End"] * 6
        for i, (sid, kind) in enumerate(zip(sids, kinds, strict=True)):
            ch.send("n-%d" % i, *_note(kind, sid))
        got = {}
        while len(got) < 24:
            rep = ch.reply(timeout=60)
            got[rep["id"]] = rep
        notes = [e for e in hub.hub.exchanges if e["operation"] == "ChargingNotifications"]
        assert len(notes) == 24
        assert _window_ok(_hub_times(notes), 120)
        # Past the first burst, everything was queued: End, Error, Start, Progress.
        order = {"End": 0, "Error": 1, "Start": 2, "Progress": 3}
        late = [order[e["request"]["Type"]] for e in notes[12:]]
        assert late == sorted(late), late
    finally:
        r.stop()


def _note(kind, sid):
    t = "2026-01-01T10:00:00.000Z"
    if kind == "Start":
        return oicp.notification_start(OP, sid, EVSES[0], t)
    if kind == "Progress":
        return oicp.notification_progress(OP, sid, EVSES[0], t, "2026-01-01T10:06:00.000Z",
                                          1000, 360000)
    if kind == "End":
        return oicp.notification_end(OP, sid, EVSES[0], "2026-01-01T10:30:00.000Z")
    return oicp.notification_error(OP, sid, EVSES[0], "ConnectorError")


def session_messages(sid, evse=EVSES[0]):
    t0, t1 = "2026-01-01T10:00:00.000Z", "2026-01-01T10:30:00.000Z"
    return [oicp.notification_start(OP, sid, evse, t0),
            oicp.notification_end(OP, sid, evse, t1, t0),
            oicp.charge_detail_record(OP, sid, evse, UID, t0, t1, t0, t1, 5.5)]


def test_relay_killed_mid_stream_loses_nothing(pki, hub, broker, tmp_path):
    doc = config_doc(pki, hub, broker, limits={"notifications_per_min": 100000,
                                               "cdr_per_min": 100000})
    cfg = tmp_path / "relay.json"
    cfg.write_text(json.dumps(doc))
    proc = spawn_relay(str(cfg))
    try:
        ch = Charger(broker)
        sids = [authorize(ch, "a-%d" % i) for i in range(10)]
        hub.call(hub.hub.add_fault, "latency", count=None, seconds=0.05)
        ids = []
        for i, sid in enumerate(sids):
            for j, (path, body) in enumerate(session_messages(sid)):
                ids.append("j-%d-%d" % (i, j))
                ch.send(ids[-1], path, body)
        answered = {}
        while len(answered) < 5:
            rep = ch.reply()
            answered[rep["id"]] = rep
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc = spawn_relay(str(cfg))
        while len(answered) < len(ids):
            rep = ch.reply(timeout=60)
            assert rep["status"] == 200 and rep["body"]["Result"] is True, rep
            answered[rep["id"]] = rep
        assert sorted(answered) == sorted(ids)
    finally:
        proc.kill()
        proc.wait()
    sessions = dict((s["SessionID"], s) for s in hub.hub.sessions())
    for sid in sids:
        s = sessions[sid]   # each message once in effect, in order
        assert [n["Type"] for n in s["notifications"]] == ["Start", "End"]
        assert s["state"] == "closed" and s["cdr"] is not None


def test_broker_restart_and_hub_outage(pki, hub, broker):
    r = Relay(Config(config_doc(pki, hub, broker))).start()
    try:
        child.healthy(r.http.port)
        ch = Charger(broker, clean=False)
        sid = authorize(ch)
        hub.call(hub.hub.add_fault, "latency", count=1, seconds=0.5)
        path, body = session_messages(sid)[0]
        ch.send("m-start", path, body)           # at the hub while the broker restarts
        broker.restart()
        rep = ch.reply(timeout=60)
        assert rep["id"] == "m-start" and rep["status"] == 200, rep
        child.healthy(r.http.port)
        hub.call(hub.hub.refuse)                 # the hub goes away
        path, body = session_messages(sid)[1]
        rep = ch.request("m-end", path, body)
        assert rep["status"] == 0 and rep["body"] is None and "unreachable" in rep["error"]
        hub.call(hub.hub.resume)                 # back: the charger's retry gets through
        rep = ch.request("m-end", path, body)
        assert rep["status"] == 200 and rep["body"]["Result"] is True
        assert r.metrics.get("relay_hub_requests_total", status=0) == 1
    finally:
        r.stop()


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(payload=st.one_of(
    st.binary(max_size=200),
    st.dictionaries(st.sampled_from(["v", "id", "path", "body", "x"]),
                    st.none() | st.integers() | st.text(max_size=10)
                    | st.just({"EvseID": "DE*ABC*E2"}) | st.just("a-1")
                    | st.just(envelope_notify_path()), max_size=5)
    .map(lambda d: json.dumps(d).encode()),
    st.integers(8193, 30000).map(lambda n: b'{"v":1,"id":"big","body":"' + b"a" * n + b'"}')))
def test_fuzz_envelopes_through_the_broker(fuzz_env, payload):
    ch, relay = fuzz_env
    ch.send_raw(payload)
    rep = ch.reply()
    assert rep["status"] == 400 and rep["body"] is None and rep["error"], rep
    assert relay.health() == ""


@pytest.fixture(scope="module")
def fuzz_env(pki, tmp_path_factory):
    with HubThread(cards=[UID], tls=pki["dir"]) as h, \
            Broker(tmp_path_factory.mktemp("fuzzmq"), USERS) as b:
        r = Relay(Config(config_doc(pki, h, b))).start()
        child.healthy(r.http.port)
        ch = Charger(b)
        yield ch, r
        authorize(ch, "a-after-fuzz")            # still serving
        assert h.hub.exchanges[-1]["operation"] == "AuthorizeStart"
        r.stop()


def test_a_retryable_hub_answer_is_not_remembered_for_the_retry(relay, hub, broker):
    ch = Charger(broker)
    sid = authorize(ch)
    hub.call(hub.hub.add_fault, "5xx", count=1, match="ChargingNotifications")
    path, body = oicp.notification_start(OP, sid, EVSES[0], "2026-01-01T10:00:00.000Z")
    assert ch.request("m-1", path, body)["status"] == 503
    rep = ch.request("m-1", path, body)          # the charger's retry, same id: to the hub again
    assert rep["status"] == 200 and rep["body"]["Result"] is True
    assert ch.request("m-1", path, body) == rep  # a final answer is remembered
    assert [e["status"] for e in hub.hub.exchanges][1:] == [503, 200]


# ---- what a charger cannot do to the relay ------------------------------------------------

T0, T1 = "2026-01-01T10:00:00.000Z", "2026-01-01T10:30:00.000Z"


def raw(msg_id, body, path=NOTIFY_PATH):
    return json.dumps({"v": 1, "id": msg_id, "path": path, "body": body}).encode()


def _start(sid):
    return oicp.notification_start(OP, sid, EVSES[0], T0)[1]


def _with(sid, **change):
    body = _start(sid)
    body.update(change)
    return body


def _text(msg_id, sid, field, value_text):
    # A body field set to raw JSON text (what json.dumps cannot produce: NaN, a key twice).
    body = json.dumps(_start(sid))[:-1] + ', "%s": %s}' % (field, value_text)
    return ('{"v": 1, "id": "%s", "path": "%s", "body": %s}' % (msg_id, NOTIFY_PATH, body)
            ).encode()


def malformed(sid):
    """(name, payload, id the reply carries) of every kind of malformed envelope."""
    deep = {"a": 1}
    for _ in range(40):
        deep = {"a": deep}
    return [
        ("EvseID a list", raw("m-1", _with(sid, EvseID=[EVSES[0]])), "m-1"),
        ("EvseID a number", raw("m-2", _with(sid, EvseID=7)), "m-2"),
        ("SessionID a list", raw("m-3", _with(sid, SessionID=[sid])), "m-3"),
        ("SessionID a number", raw("m-4", _with(sid, SessionID=12)), "m-4"),
        ("OperatorID an object", raw("m-5", _with(sid, OperatorID={"x": OP})), "m-5"),
        ("Type a list", raw("m-6", _with(sid, Type=["Start"])), "m-6"),
        ("ChargingStart a number", raw("m-7", _with(sid, ChargingStart=5)), "m-7"),
        ("MeterValueStart a string", raw("m-8", _with(sid, MeterValueStart="1.0")), "m-8"),
        ("a field not in the schema", raw("m-9", _with(sid, Extra=1)), "m-9"),
        ("v a string", json.dumps({"v": "1", "id": "m-10", "path": NOTIFY_PATH,
                                   "body": _start(sid)}).encode(), "m-10"),
        ("id a number", json.dumps({"v": 1, "id": 11, "path": NOTIFY_PATH,
                                    "body": _start(sid)}).encode(), None),
        ("path a list", json.dumps({"v": 1, "id": "m-12", "path": [NOTIFY_PATH],
                                    "body": _start(sid)}).encode(), "m-12"),
        ("body a list", json.dumps({"v": 1, "id": "m-13", "path": NOTIFY_PATH,
                                    "body": [_start(sid)]}).encode(), "m-13"),
        ("body a string", raw("m-14", "x"), "m-14"),
        ("NaN", _text("m-15", sid, "MeterValueStart", "NaN"), "m-15"),
        ("Infinity", _text("m-16", sid, "MeterValueStart", "Infinity"), "m-16"),
        ("-Infinity", _text("m-17", sid, "MeterValueStart", "-Infinity"), "m-17"),
        ("a key twice in the body", _text("m-18", sid, "EvseID", json.dumps(EVSES[1])),
         "m-18"),
        ("a key twice in the envelope", raw("m-19", _start(sid))[:-1] + b', "id": "m-19"}',
         "m-19"),
        ("nested 40 deep", raw("m-20", _with(sid, Deep=deep)), "m-20"),
        ("nested past the parser's stack", b'{"v":1,"id":"m-21","body":' + b"[" * 3000
         + b"]" * 3000 + b"}", None),
        ("over 8 KB", raw("m-22", _with(sid, Pad="x" * 9000)), "m-22"),
        ("not UTF-8", raw("m-23", _start(sid)).replace(b'"Start"', b'"St\xffrt"'), None),
        ("an unknown route", raw("m-24", _start(sid),
                                 "/api/oicp/charging/v21/operators/DE*ABC/remote/start"),
         "m-24"),
        ("not JSON", b'{"v":1,"id":"m-25",', None),
    ]


@pytest.fixture
def fast_relay(pki, hub, broker):
    r = start_relay(config_doc(pki, hub, broker, limits=FAST))
    yield r
    r.stop()


def test_malformed_envelopes_are_refused_acknowledged_and_never_reach_the_hub(
        pki, hub, broker, fast_relay):
    ch1, ch2 = Charger(broker, "cp-1", clean=False), Charger(broker, "cp-2")
    sid = authorize(ch1)
    table = malformed(sid)
    for i, (name, payload, msg_id) in enumerate(table):
        ch1.send_raw(payload)
        rep = ch1.reply()
        assert rep["status"] == 400 and rep["body"] is None and rep["error"], (name, rep)
        assert rep["id"] == msg_id, name
        authorize(ch2, "a-2-%d" % i, EVSES[1])        # the others are served all along
    assert [e["operation"] for e in hub.hub.exchanges] == ["AuthorizeStart"] * (len(table) + 1)
    assert fast_relay.health() == ""
    m = fast_relay.metrics
    assert sum(v for (n, _), v in m.counts.items() if n == "relay_refused_total") == len(table)
    assert m.get("relay_refused_total", reason="schema") >= 8
    assert m.get("relay_refused_total", reason="json") >= 5
    # Each one was acknowledged: a relay in its place (same client id, so the same broker
    # session) gets none of them again, only what comes next.
    fast_relay.stop()
    again = start_relay(config_doc(pki, hub, broker, limits=FAST))
    try:
        ch1.send("after", *oicp.notification_start(OP, sid, EVSES[0], T0))
        rep = ch1.reply()
        assert rep["id"] == "after" and rep["status"] == 200, rep
    finally:
        again.stop()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_relay_whose_worker_died_is_unhealthy(fast_relay, broker):
    r = fast_relay
    ch = Charger(broker)

    def die(timeout=None):
        raise RuntimeError("worker killed by the test")
    r.scheduler.take = die               # the workers waiting inside take() go on for now
    authorize(ch, "a-1")                 # answered; its worker dies as it takes the next
    for _ in range(1000):
        if not all(w.is_alive() for w in r.workers):
            break
        time.sleep(0.01)
    assert _health(r) == (503, "workers: 1 of %d stopped\n" % len(r.workers))


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_relay_whose_network_thread_died_is_unhealthy(fast_relay, broker):
    r = fast_relay
    ch = Charger(broker)

    def boom(*args):
        raise RuntimeError("network thread killed by the test")
    r.client.on_message = boom           # paho lets it out: its thread ends
    ch.send_raw(b"{}")
    r.net_thread.join(10)
    assert _health(r) == (503, "mqtt: the network thread stopped\n")


def _health(r):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/health" % r.http.port) as f:
            return f.status, f.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _foreign(sid):
    """cp-1's messages for a session of cp-2: with cp-1's EvseID, with none, with cp-2's."""
    mine, theirs = EVSES
    no_evse = oicp.notification_error(OP, sid, mine, "ConnectorError")[1]
    del no_evse["EvseID"]
    return [("end, own EVSE", oicp.notification_end(OP, sid, mine, T1, T0)),
            ("error, no EVSE", (NOTIFY_PATH, no_evse)),
            ("end, their EVSE", oicp.notification_end(OP, sid, theirs, T1, T0)),
            ("cdr, own EVSE", oicp.charge_detail_record(OP, sid, mine, UID, T0, T1, T0, T1, 5)),
            ("stop", oicp.authorize_stop(OP, sid, UID, mine))]


def test_a_charger_cannot_send_for_another_chargers_session_two_relays_and_a_restart(
        pki, hub, broker, tmp_path):
    doc = config_doc(pki, hub, broker, limits=FAST, sessions={"unknown_wait_s": 1})
    cfg = tmp_path / "relay.json"
    cfg.write_text(json.dumps(doc))
    a, _ = child.spawn(str(cfg), "relay-a")
    b, _ = child.spawn(str(cfg), "relay-b")
    try:
        ch1, ch2 = Charger(broker, "cp-1"), Charger(broker, "cp-2")
        theirs = [authorize(ch2, "a-2-%d" % i, EVSES[1]) for i in range(4)]  # through both
        mine = authorize(ch1, "a-1")
        a.send_signal(signal.SIGKILL)                 # one relay dies, comes back
        a.wait()
        a, _ = child.spawn(str(cfg), "relay-a")
        n = 0
        for sid in theirs:
            for name, (path, body) in _foreign(sid):
                n += 1
                rep = ch1.request("f-%d" % n, path, body)
                assert rep["status"] == 400 and rep["body"] is None, (name, rep)
                assert "belongs to another charger" in rep["error"] or "EvseID" in rep[
                    "error"], (name, rep)
        for i, sid in enumerate(theirs + [mine]):     # the owners go on, through either
            ch = ch1 if sid == mine else ch2
            evse = EVSES[0] if sid == mine else EVSES[1]
            rep = ch.request("s-%d" % i, *oicp.notification_start(OP, sid, evse, T0))
            assert rep["status"] == 200 and rep["body"]["Result"] is True, rep
        # A SessionID no relay knows: "not reached" (retry) for a while, then refused.
        unknown = "0000beef-0000-0000-0000-000000000000"
        path, body = oicp.notification_start(OP, unknown, EVSES[0], T0)
        first = ch1.request("u-1", path, body)
        assert first["status"] == 0 and "not known to the relay yet" in first["error"], first
        for _ in range(300):
            rep = ch1.request("u-1", path, body)
            if rep["status"] != 0:
                break
            time.sleep(0.02)
        assert rep["status"] == 400 and "not authorized through charger cp-1" in rep["error"]
    finally:
        child.stop(a)
        child.stop(b)
    notes = [e for e in hub.hub.exchanges if e["operation"] != "AuthorizeStart"]
    assert [(e["request"]["Type"], e["request"]["SessionID"]) for e in notes] == [
        ("Start", sid) for sid in theirs + [mine]]    # nothing of cp-1's for cp-2 reached it


class ScriptedHub:
    """A stand-in for what sits in front of a hub: answers each POST with the next of script
    (status, content type, body), the last one for ever after."""

    def __init__(self, script):
        self.script, self.seen = list(script), 0
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                status, ctype, body = outer.script[min(outer.seen, len(outer.script) - 1)]
                outer.seen += 1
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


HTML_404 = (404, "text/html", b"<html><body><h1>404 Not Found</h1></body></html>")
HTML_502 = (502, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>")
AUTHORIZED = (200, "application/json", json.dumps(
    {"AuthorizationStatus": "Authorized", "SessionID": "0000cafe-0000-0000-0000-000000000000",
     "StatusCode": {"Code": "000"}}).encode())


def test_answers_that_are_not_the_hubs_are_not_reached_counted_and_unhealthy(
        pki, hub, broker):
    gate = ScriptedHub([HTML_404] * 6 + [HTML_502] * 6 + [AUTHORIZED])
    doc = config_doc(pki, hub, broker, limits=FAST)
    doc["hub"] = {"url": gate.url, "timeout_s": 5}
    r = start_relay(doc)
    try:
        ch = Charger(broker)
        path, body = oicp.authorize_start(OP, UID, EVSES[0])
        for i in range(12):
            rep = ch.request("a-%d" % i, path, body)
            assert rep["status"] == 0 and rep["body"] is None, rep       # the charger retries
            assert "not the hub's answer: HTTP %d" % (404 if i < 6 else 502) in rep["error"]
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % r.http.port).read()
        assert b'relay_hub_answers_total{code="404",kind="nothub"} 6' in text
        assert b'relay_hub_answers_total{code="502",kind="nothub"} 6' in text
        status, why = _health(r)
        assert status == 503 and why.startswith(
            "hub: 12 of the last 12 answers (within 300 s) failed or were not the hub's"), why
        rep = ch.request("a-0", path, body)          # the retry: not remembered, so it goes on
        assert rep["status"] == 200 and rep["body"]["AuthorizationStatus"] == "Authorized"
        assert gate.seen == 13
    finally:
        r.stop()
        gate.close()


def test_a_charger_in_the_relays_shared_subscription_takes_nothing(fast_relay, broker):
    ch1, spy = Charger(broker, "cp-1"), Charger(broker, "cp-2")
    for topic in ("$share/relays/cp/+/up", "$share/spies/cp/+/up", "cp/+/up", "cp/cp-1/down"):
        assert spy.mq.subscribe(topic).is_failure, topic
    sids = [authorize(ch1, "a-%d" % i) for i in range(8)]   # every one answered
    assert len(set(sids)) == 8
    with pytest.raises(queue.Empty):
        spy.mq.get(timeout=0.2)


def test_requeue_command_reaches_the_charger_with_the_relays_credentials(pki, hub, broker,
                                                                          tmp_path):
    cfg = tmp_path / "relay.json"
    cfg.write_text(json.dumps(config_doc(pki, hub, broker)))
    ch = Charger(broker)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "host_sim", "relay", "requeue", "--config",
                               str(cfg)] + list(args), cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
    p = run("--charger", "cp-1")
    assert p.returncode == 0, p.stderr
    assert ch.mq.get() == ("cp/cp-1/down", b'{"v":1,"cmd":"requeue","msg_id":null}')
    assert run("--charger", "cp-1", "--id", "j-0007").returncode == 0
    assert ch.mq.get() == ("cp/cp-1/down", b'{"v":1,"cmd":"requeue","msg_id":"j-0007"}')
    p = run("--charger", "cp-9")
    assert p.returncode == 2 and "--charger cp-9 is not a charger" in p.stderr
    p = run("--charger", "cp-1", "--id", "a b")
    assert p.returncode == 2 and "--id" in p.stderr


def test_a_broker_that_lost_its_state_gets_the_session_records_back(pki, hub, broker):
    doc = config_doc(pki, hub, broker, limits=FAST)
    a = start_relay(doc, "relay-a")
    b = None
    try:
        ch = Charger(broker)
        sid = authorize(ch)
        broker.stop()                                 # a broker without its database
        os.remove(os.path.join(broker.dir, "mosquitto.db"))
        broker.start()
        child.healthy(a.http.port)                    # a is back, and gave its records again
        b = start_relay(doc, "relay-b")               # b knows only what the broker has
        assert b.owners.check("cp-1", sid) is None
        assert b.owners.check("cp-2", sid)[0] == "other"
        ch = Charger(broker)
        rep = ch.request("s-1", *oicp.notification_start(OP, sid, EVSES[0], T0))
        assert rep["status"] == 200 and rep["body"]["Result"] is True, rep
    finally:
        a.stop()
        if b:
            b.stop()


def test_a_message_that_raises_is_answered_and_the_relay_goes_on(fast_relay, broker, hub,
                                                                  monkeypatch):
    from host_sim.relay import envelope as env_mod
    real_parse, real_post = env_mod.parse, fast_relay.hub.post
    ch = Charger(broker)

    def parse(topic, payload, chargers):   # the bug class of issue 12: a TypeError inside
        if b"raise-1" in payload:
            raise TypeError("unhashable type: 'list'")
        return real_parse(topic, payload, chargers)
    monkeypatch.setattr(env_mod, "parse", parse)
    ch.send_raw(b'{"v":1,"id":"raise-1","path":"x","body":{}}')
    rep = ch.reply()
    assert rep == {"v": 1, "id": "raise-1", "status": 400, "body": None,
                   "error": "relay error: TypeError: unhashable type: 'list'"}

    def post(path, data):                  # and one while forwarding, in a worker
        if b"DE*ABC*E1" in data and b"Identification" in data:
            raise KeyError("boom")
        return real_post(path, data)
    fast_relay.hub.post = post
    path, body = oicp.authorize_start(OP, UID, EVSES[0])
    rep = ch.request("a-boom", path, body)
    assert rep["status"] == 400 and rep["error"] == "relay error: KeyError: 'boom'"
    fast_relay.hub.post = real_post
    authorize(ch, "a-after")               # both threads still serve
    assert fast_relay.health() == ""
    assert fast_relay.metrics.get("relay_refused_total", reason="internal") == 2


def test_the_session_record_is_closed_with_an_expiry_once_the_cdr_is_accepted(fast_relay,
                                                                             broker, hub):
    ch = Charger(broker)
    sid = authorize(ch)
    watch = BrokerClient(broker, "relay", USERS["relay"], client_id="watch")
    watch.subscribe("relay/sessions/+")
    assert watch.get() == ("relay/sessions/" + sid, b'{"v":1,"charger":"cp-1"}')
    for i, (path, body) in enumerate(session_messages(sid)):
        assert ch.request("m-%d" % i, path, body)["status"] == 200
    assert watch.get() == ("relay/sessions/" + sid, b'{"v":1,"charger":"cp-1","closed":true}')
    rep = ch.request("m-2b", *session_messages(sid)[2])  # the owner's repeat still passes
    assert rep["status"] == 200 and rep["body"]["Result"] is True
    for _ in range(500):                                # every publish's PUBACK came
        if not fast_relay._acks:
            break
        time.sleep(0.01)
    assert fast_relay._acks == {} and fast_relay._early == set()   # and none is kept
