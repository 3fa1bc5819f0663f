"""The MQTT relay rig: PKI, mock hub and broker fixtures, a relay config, a scripted charger."""
import json
import os
import queue

import pytest

from cpagent.oicp import build as oicp
from host_sim import certs
from host_sim.broker import Broker, BrokerClient
from host_sim.hub import HubThread
from host_sim.relay import Relay, child
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


class Charger:
    """A charger on the broker, speaking the envelope by hand."""

    def __init__(self, broker, cid="cp-1", clean=True):
        self.cid = cid
        self.mq = BrokerClient(broker, cid, USERS[cid], clean=clean)
        self.mq.subscribe("cp/%s/down" % cid)

    def send(self, msg_id, path, body):
        # As the agent's uplink does: the body's kWh texts go up as JSON numbers.
        self.send_raw(b'{"v":1,"id":"%s","path":"%s","body":%s}'
                      % (msg_id.encode(), path.encode(), oicp.encode(body)))

    def send_raw(self, payload, topic=None):
        self.mq.publish(topic or "cp/%s/up" % self.cid, payload)

    def reply(self, timeout=20):
        topic, payload = self.mq.get(timeout)
        assert topic == "cp/%s/down" % self.cid
        return json.loads(payload)

    def request(self, msg_id, path, body, sends=3):
        """The reply to msg_id; a repeated reply to an earlier id (the relay answers each
        delivery of a duplicate) is skipped, as the firmware skips it. No reply in 20 s: sent
        again under the same id, as the firmware's link retries a request its uplink got no
        answer to (the relay answers a repeat from its cache: the hub sees it once)."""
        for _ in range(sends):
            self.send(msg_id, path, body)
            try:
                while True:
                    rep = self.reply()
                    if rep["id"] == msg_id:
                        return rep
            except queue.Empty:
                continue
        raise AssertionError("no reply to %s after %d sends" % (msg_id, sends))


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


def spawn_relay(cfg_path):
    return child.spawn(cfg_path)[0]


FAST = {"authorize_per_min": 100000, "notifications_per_min": 100000, "cdr_per_min": 100000}


def start_relay(doc, client_id=None):
    r = Relay(Config(doc), client_id).start()
    child.healthy(r.http.port)
    return r
