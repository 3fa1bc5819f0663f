"""The relay end to end: real Mosquitto (host_sim/broker.py), the mock hub over mutual TLS."""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from cpagent import oicp
from host_sim import certs
from host_sim.broker import Broker, BrokerClient
from host_sim.hub import HubThread
from host_sim.relay import Relay
from host_sim.relay.config import Config

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
    yield r
    r.stop()


class Charger:
    """A charger on the broker, speaking the envelope by hand."""

    def __init__(self, broker, cid="cp-1"):
        self.cid = cid
        self.mq = BrokerClient(broker, cid, USERS[cid])
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
        self.send(msg_id, path, body)
        return self.reply()


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
