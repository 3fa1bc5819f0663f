"""The relay end to end: real Mosquitto (host_sim/broker.py), the mock hub over mutual TLS."""
import json
import os
import signal
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpagent import oicp
from host_sim import certs
from host_sim.broker import Broker, BrokerClient
from host_sim.hub import HubThread
from host_sim.relay import Relay, child
from host_sim.relay.config import Config
from host_sim.relay.envelope import NOTIFY_PATH


def envelope_notify_path():
    return NOTIFY_PATH

OP, UID = "DE*ABC", "04A1B2C3D4E5F6"
EVSES = ["DE*ABC*E1", "DE*ABC*E2"]
USERS = {"cp-1": "pw1", "cp-2": "pw2", "relay": "rpw"}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return certs.make_test_pki(str(tmp_path_factory.mktemp("pki")), (OP,))


@pytest.fixture
def hub(pki):
    with HubThread(cards=[UID], tls=pki["dir"]) as h:
        yield h


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path / "mq", USERS) as b:
        yield b


def config_doc(pki, hub, broker, **over):
    cert, key = pki["clients"][OP]
    doc = {"broker": {"host": broker.host, "port": broker.port, "user": "relay",
                      "password": USERS["relay"], "client_id": "relay-a", "group": "relays"},
           "hub": {"url": hub.url, "ca": pki["ca"], "cert": cert, "key": key, "timeout_s": 5},
           "chargers": {"cp-1": {"operator_id": OP, "evses": EVSES[:1]},
                        "cp-2": {"operator_id": OP, "evses": EVSES[1:]}},
           "http": {"port": 0}}
    for k, v in over.items():
        doc[k] = dict(doc.get(k, {}), **v)
    return doc


@pytest.fixture
def relay(pki, hub, broker):
    r = Relay(Config(config_doc(pki, hub, broker))).start()
    child.healthy(r.http.port)   # subscribed: a request published before would find no one
    yield r
    r.stop()


class Charger:
    """A charger on the broker, speaking the envelope by hand."""

    def __init__(self, broker, cid="cp-1", clean=True):
        self.cid = cid
        self.mq = BrokerClient(broker, cid, USERS[cid], clean=clean)
        self.mq.subscribe("cp/%s/down" % cid)

    def send(self, msg_id, path, body):
        env = {"v": 1, "id": msg_id, "path": path, "body": body}
        self.send_raw(json.dumps(env, separators=(",", ":")).encode())

    def send_raw(self, payload, topic=None):
        self.mq.publish(topic or "cp/%s/up" % self.cid, payload)

    def reply(self, timeout=20):
        topic, payload = self.mq.get(timeout)
        assert topic == "cp/%s/down" % self.cid
        return json.loads(payload)

    def request(self, msg_id, path, body):
        """The reply to msg_id; a repeated reply to an earlier id (the relay answers each
        delivery of a duplicate) is skipped, as the firmware skips it."""
        self.send(msg_id, path, body)
        while True:
            rep = self.reply()
            if rep["id"] == msg_id:
                return rep


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


def _window_ok(times, per_min):
    """No more than a token bucket of per_min lets through, in any window of the times."""
    burst = max(1, per_min // 10)
    rate = (per_min - burst) / 60.0
    for i in range(len(times)):
        for j in range(i, len(times)):
            # +1: the hub stamps arrival, the relay took the token a little earlier
            if j - i + 1 > burst + rate * (times[j] - times[i]) + 1:
                return False
    return True


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


def spawn_relay(cfg_path):
    return child.spawn(cfg_path)[0]


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
