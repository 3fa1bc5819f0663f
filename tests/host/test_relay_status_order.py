"""A charger's EVSE status never goes back: a status redelivered late (a relay died holding it,
another pushed the newer one) is not pushed, by any relay of the group, also after a restart;
the queue merge keeps the newer by the charger journal's seq, not by arrival."""
import json
import signal
import socket
import threading
import urllib.request

import pytest
import relaymq as mq
from relaymq import FAST, OP, Charger, config_doc, start_relay
from relayparts import LIMITS, STATUS_CHARGERS, Clock, drain, env

from cpagent.oicp import build as oicp
from host_sim.relay import child, envelope, latest
from host_sim.relay.ratelimit import Scheduler

EPOCH, WIPED = "c0ffee01", "0badf00d"   # two journals' id epochs (8 hex digits, rand_hex(4))
E1, E2, E3 = "DE*ABC*E1", "DE*ABC*E2", "DE*ABC*E3"
pki, hub, broker = mq.pki, mq.hub, mq.broker   # relaymq's fixtures


def push(msg_id, charger, *records):
    path, body = oicp.push_evse_status(OP, list(records))
    return envelope.parse("cp/%s/up" % charger, env(msg_id, path, body), STATUS_CHARGERS)


def test_journal_ids_are_ordered_within_one_epoch_only():
    assert latest.order(EPOCH + "-12") == (EPOCH, 12)
    for foreign in ("s-1", "a-00000001", "C0FFEE01-1", EPOCH + "-01", EPOCH + "-", EPOCH,
                    EPOCH + "-1-2", "c0ffee0-1", None, 7):
        assert latest.order(foreign) is None, foreign
    assert latest.older(EPOCH + "-9", EPOCH + "-10")
    assert not latest.older(EPOCH + "-10", EPOCH + "-9")
    assert not latest.older(EPOCH + "-9", EPOCH + "-9")
    assert not latest.older(WIPED + "-1", EPOCH + "-10")   # a wiped journal: never older
    assert not latest.older("s-1", "s-2")                  # not journal ids: no order


def test_the_latest_map_takes_the_newer_id_and_only_configured_evses():
    m = latest.Latest(STATUS_CHARGERS)
    assert m.learn("cp-1", E1, EPOCH + "-5")
    assert not m.learn("cp-1", E1, EPOCH + "-4")          # older: no change
    assert not m.learn("cp-1", E3, EPOCH + "-6")          # cp-2's EVSE
    assert not m.learn("cp-9", E1, EPOCH + "-6") and not m.learn("cp-1", E2, "s-1")
    assert m.newer("cp-1", E1, EPOCH + "-4") == EPOCH + "-5"
    assert m.newer("cp-1", E1, EPOCH + "-5") is None      # the same id: a duplicate passes
    assert m.newer("cp-1", E1, WIPED + "-1") is None
    other = latest.Latest(STATUS_CHARGERS)
    other.on_record("cp-1", m.record("cp-1"))
    assert other.ids == {"cp-1": {E1: EPOCH + "-5"}}
    other.on_record("cp-1", json.dumps({"v": 1, "evses": {E1: EPOCH + "-3"}}).encode())
    assert other.ids == {"cp-1": {E1: EPOCH + "-5"}}     # a record that came late: kept newer
    for bad in (b"[]", b'{"v":2,"evses":{}}', b'{"v":1,"evses":{"DE*ABC*E1":5}}', b"{"):
        with pytest.raises(ValueError):
            other.on_record("cp-1", bad)


def test_the_queue_merge_keeps_the_newer_status_by_the_journals_seq():
    clock = Clock()
    s = Scheduler(LIMITS, clock=clock)
    first = push(WIPED + "-1", "cp-2", (E3, "Available"))
    s.put(first)
    clock.full()
    assert s.take(timeout=0) is first                      # in flight: the next ones merge
    s.put(push(EPOCH + "-7", "cp-1", (E1, "Available")))
    s.put(push(EPOCH + "-5", "cp-1", (E1, "Occupied"), (E2, "Occupied")))  # came late
    s.put(push("d00dfeed-1", "cp-1", (E2, "Available")))   # a wiped journal: by arrival
    s.put(push("s-3", "cp-2", (E3, "Occupied")))
    s.put(push("s-2", "cp-2", (E3, "Available")))          # not journal ids: by arrival
    s.done(first)
    (merged,) = drain(s)
    recs = merged.body["OperatorEvseStatus"]["EvseStatusRecord"]
    assert dict((r["EvseID"], r["EvseStatus"]) for r in recs) == {
        E1: "Available", E2: "Available", E3: "Available"}
    assert merged.stamps == {E1: ("cp-1", EPOCH + "-7"), E2: ("cp-1", "d00dfeed-1"),
                             E3: ("cp-2", "s-2")}
    assert [i for _, i in merged.ids] == [EPOCH + "-7", EPOCH + "-5", "d00dfeed-1", "s-3",
                                          "s-2"]              # every one gets the answer
    assert json.loads(merged.data) == merged.body


class Hanging:
    """A stand-in for a hub that takes a request and never answers: the relay posting to it
    holds the charger's message, unacknowledged, until it is killed."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.got, self.conns = threading.Event(), []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:   # closed: the test is over
                return
            self.conns.append(c)
            c.settimeout(30)
            try:
                if c.recv(65536):
                    self.got.set()
            except OSError:
                pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def _status(hub):
    return dict((e["EvseID"], e["EvseStatus"]) for e in hub.call(hub.hub.rules.evses_json))


def _pushed(hub):
    return [r["EvseStatus"] for e in hub.call(lambda: list(hub.hub.exchanges))
            if e["operation"] == "PushEvseStatus"
            for r in e["request"]["OperatorEvseStatus"]["EvseStatusRecord"] if r["EvseID"] == E1]


def test_a_status_redelivered_after_a_newer_one_never_reaches_the_hub(pki, hub, broker,
                                                                     tmp_path):
    hang = Hanging()
    doc = config_doc(pki, hub, broker, limits=FAST)
    stuck = dict(doc, hub={"url": hang.url, "timeout_s": 60})
    (tmp_path / "a-stuck.json").write_text(json.dumps(stuck))
    (tmp_path / "a.json").write_text(json.dumps(doc))
    a, _ = child.spawn(str(tmp_path / "a-stuck.json"), "relay-a")
    b = start_relay(doc, "relay-b")   # subscribed after a: Mosquitto's round-robin gives a
    try:                              # the first message, b the next
        ch = Charger(broker)
        ch.send(EPOCH + "-1", *oicp.push_evse_status(OP, [(E1, "Occupied")]))
        assert hang.got.wait(20), "relay-a never posted the first status"
        a.send_signal(signal.SIGKILL)  # it dies holding S1: unacknowledged at the broker
        a.wait()
        # The charger's journal superseded S1 with S2 (a new id); b pushes it.
        rep = ch.request(EPOCH + "-2", *oicp.push_evse_status(OP, [(E1, "Available")]))
        assert rep["status"] == 200 and rep["body"]["Result"] is True, rep
        assert b.metrics.get("relay_up_messages_total", result="queued") == 1
        assert _status(hub)[E1] == "Available"
        a, port = child.spawn(str(tmp_path / "a.json"), "relay-a")  # back: S1 redelivered
        rep = ch.reply()
        assert rep["id"] == EPOCH + "-1", rep
        assert rep["status"] == 400 and rep["body"] is None, rep     # the relay's, not a hub's
        assert rep["error"].startswith("stale: status %s-1 of %s is older than %s-2"
                                       % (EPOCH, E1, EPOCH)), rep
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read()
        assert b"\nrelay_stale_status_total 1\n" in text
        assert _status(hub)[E1] == "Available" and _pushed(hub) == ["Available"]
        # A charger whose journal was wiped starts a new epoch at seq 1: never stale.
        rep = ch.request(WIPED + "-1", *oicp.push_evse_status(OP, [(E1, "Occupied")]))
        assert rep["status"] == 200 and rep["body"]["Result"] is True, rep
        assert _status(hub)[E1] == "Occupied"
    finally:
        child.stop(a)
        b.stop()
        hang.close()


def test_only_the_stale_records_of_a_push_are_taken_out_and_only_their_ids_answered():
    from relayparts import doc

    from host_sim.relay import Relay
    from host_sim.relay.config import Config
    r = Relay(Config(doc(chargers={"cp-1": {"operator_id": OP, "evses": [E1, E2]},
                                   "cp-2": {"operator_id": OP, "evses": [E3]}})))
    sent = []
    r._publish = lambda charger, data, tokens: sent.append((charger, json.loads(data)))
    r.latest.learn("cp-1", E1, EPOCH + "-5")
    both = push(EPOCH + "-4", "cp-1", (E1, "Occupied"), (E2, "Available"))
    assert r._fresh(both) and sent == []                   # E2's record still goes
    assert both.body["OperatorEvseStatus"]["EvseStatusRecord"] == [
        {"EvseID": E2, "EvseStatus": "Available"}]
    assert json.loads(both.data) == both.body and list(both.stamps) == [E2]
    assert both.ids == [("cp-1", EPOCH + "-4")]
    # A merged push: cp-1's late one is taken out and answered now, cp-2's goes on.
    merged = envelope.merge_status(push(EPOCH + "-3", "cp-1", (E1, "Occupied")),
                                   push("s-1", "cp-2", (E3, "Available")))
    assert r._fresh(merged)
    assert [x["EvseID"] for x in merged.body["OperatorEvseStatus"]["EvseStatusRecord"]] == [E3]
    assert merged.ids == [("cp-2", "s-1")]
    assert sent == [("cp-1", {"v": 1, "id": EPOCH + "-3", "status": 400, "body": None,
                              "error": "stale: status %s-3 of %s is older than %s-5, which the "
                                       "hub has: not pushed" % (EPOCH, E1, EPOCH)})]
    late = push(EPOCH + "-2", "cp-1", (E1, "Available"))
    assert not r._fresh(late) and sent[-1][1]["id"] == EPOCH + "-2"
    assert r.metrics.get("relay_stale_status_total") == 3
    assert r._fresh(push(EPOCH + "-5", "cp-1", (E1, "Occupied")))  # a duplicate passes
