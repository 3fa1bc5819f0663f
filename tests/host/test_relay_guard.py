"""What a charger cannot do to the relay: malformed envelopes, another charger's sessions; answers
that are not the hub's; the relay's liveness. Real Mosquitto, the mock hub or a stand-in."""
import http.server
import json
import queue
import signal
import threading
import time
import urllib.error
import urllib.request

import pytest
from test_relay_mqtt import (  # noqa: F401 (fixtures)
    EVSES,
    OP,
    UID,
    Charger,
    authorize,
    broker,
    config_doc,
    hub,
    pki,
)

from cpagent import oicp
from host_sim.relay import Relay, child
from host_sim.relay.config import Config
from host_sim.relay.envelope import NOTIFY_PATH

T0, T1 = "2026-01-01T10:00:00.000Z", "2026-01-01T10:30:00.000Z"
FAST = {"authorize_per_min": 100000, "notifications_per_min": 100000, "cdr_per_min": 100000}


def start_relay(doc, client_id=None):
    r = Relay(Config(doc), client_id).start()
    child.healthy(r.http.port)
    return r


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
