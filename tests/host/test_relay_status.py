"""EVSE status through the relay and a real Mosquitto: chargers' updates merge into one push per
operator at a time (the mock hub checks none overlap), every charger is answered; a fullLoad
from a charger is refused; a charger's will turns its EVSEs OutOfService at the hub."""
import json

import pytest
from relaydoc import HUB_CN, OP, relay_doc, until

from cpagent.oicp import build as oicp
from host_sim import certs
from host_sim.broker import Broker, BrokerClient
from host_sim.hub import HubThread
from host_sim.relay import Relay, child
from host_sim.relay.config import Config

USERS = {"cp-1": "p1", "cp-2": "p2", "cp-3": "p3", "relay": "rpw"}
EVSES = {"cp-1": "DE*ABC*E1", "cp-2": "DE*ABC*E2", "cp-3": "DE*ABC*E3"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return certs.make_test_pki(str(tmp_path_factory.mktemp("pki")), (OP, HUB_CN))


@pytest.fixture
def rig(pki, tmp_path):
    with HubThread(tls=pki["dir"]) as hub, Broker(tmp_path / "mq", USERS) as broker:
        doc = relay_doc(pki, hub, broker)
        doc["broker"]["password"] = USERS["relay"]
        doc["chargers"] = dict((c, {"operator_id": OP, "evses": [e]}) for c, e in EVSES.items())
        relay = Relay(Config(doc)).start()
        try:
            child.healthy(relay.http.port)
            yield hub, relay, broker
        finally:
            relay.stop()


def charger(broker, c):
    mq = BrokerClient(broker, c, USERS[c], will=("cp/%s/status" % c, b"offline", 1, True))
    mq.subscribe("cp/%s/down" % c)
    mq.publish("cp/%s/status" % c, b"online", retain=True)
    return mq


def send_status(mq, c, msg_id, status, action="update"):
    path, body = oicp.push_evse_status(OP, [(EVSES[c], status)], action)
    mq.publish("cp/%s/up" % c, json.dumps({"v": 1, "id": msg_id, "path": path,
                                            "body": body}).encode())


def reply(mq):
    return json.loads(mq.get(20)[1])


def pushes(hub):
    return [e for e in hub.call(lambda: hub.hub.exchanges) if e["operation"] == "PushEvseStatus"]


def test_updates_merge_one_push_at_a_time_every_charger_answered(rig):
    hub, relay, broker = rig
    mqs = dict((c, charger(broker, c)) for c in EVSES)
    hub.call(hub.hub.add_fault, "latency", seconds=1.0, match="PushEvseStatus")
    send_status(mqs["cp-1"], "cp-1", "s-1", "Available")
    until(lambda: hub.call(lambda: hub.hub._pushing), "the first push at the hub")
    for c in ("cp-2", "cp-3"):   # while it is held there: they wait, and merge
        send_status(mqs[c], c, "s-1", "Occupied")
    for c, mq in mqs.items():
        r = reply(mq)
        assert r["id"] == "s-1" and r["status"] == 200 and r["body"]["Result"] is True, (c, r)
    got = pushes(hub)
    assert [len(e["request"]["OperatorEvseStatus"]["EvseStatusRecord"]) for e in got] == [1, 2]
    assert hub.call(hub.hub.stats)["overlaps"] == {}
    assert hub.call(hub.hub.rules.evses_json) == [
        {"OperatorID": OP, "EvseID": EVSES["cp-1"], "EvseStatus": "Available", "data": False},
        {"OperatorID": OP, "EvseID": EVSES["cp-2"], "EvseStatus": "Occupied", "data": False},
        {"OperatorID": OP, "EvseID": EVSES["cp-3"], "EvseStatus": "Occupied", "data": False}]
    # a fullLoad from one charger would erase the others' statuses: refused, named
    send_status(mqs["cp-1"], "cp-1", "s-2", "Available", action="fullLoad")
    r = reply(mqs["cp-1"])
    assert r["status"] == 400 and "body.ActionType" in r["error"], r
    assert len(pushes(hub)) == 2
    # cp-3's connection dies: its will, then OutOfService for its EVSE (the relay's own push)
    mqs["cp-3"].client.loop_stop()
    mqs["cp-3"].client.socket().close()
    until(lambda: hub.call(hub.hub.rules.evses_json)[2]["EvseStatus"] == "OutOfService",
          "OutOfService at the hub")
    assert [e["EvseStatus"] for e in hub.call(hub.hub.rules.evses_json)[:2]] == [
        "Available", "Occupied"]
    assert hub.call(hub.hub.stats)["overlaps"] == {}
    for c in ("cp-1", "cp-2"):
        mqs[c].close()
