"""host_sim/broker.py: a real Mosquitto with its users, the lock-down and persistence."""
import json
import os
import queue
import socket
import subprocess
import sys

import pytest

from host_sim.broker import Broker, BrokerClient, BrokerError

USERS = {"cp-1": "pw1", "cp-2": "pw2", "relay": "rpw"}
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path / "mq", USERS) as b:
        yield b


def client(b, user, **kw):
    return BrokerClient(b, user, USERS[user], **kw)


def test_every_user_connects_and_a_wrong_password_is_refused(broker):
    for u in USERS:
        client(broker, u).close()
    with pytest.raises(BrokerError, match="refused"):
        BrokerClient(broker, "cp-1", "wrong")
    with pytest.raises(BrokerError, match="refused"):
        BrokerClient(broker, "nobody", "pw")


def test_charger_publishes_only_its_own_up_topic(broker):
    relay, cp1 = client(broker, "relay"), client(broker, "cp-1")
    relay.subscribe("$share/relays/cp/+/up")
    cp1.publish("cp/cp-2/up", b"not mine")   # the broker drops it (3.1.1 still PUBACKs)
    cp1.publish("cp/cp-1/up", b"mine")       # same client, so it arrives after the first
    assert relay.get() == ("cp/cp-1/up", b"mine")
    with pytest.raises(queue.Empty):
        relay.get(timeout=0)


def test_charger_reads_only_its_own_down_topic(broker):
    relay, cp1, cp2 = client(broker, "relay"), client(broker, "cp-1"), client(broker, "cp-2")
    cp1.subscribe("cp/cp-1/down")
    assert cp2.subscribe("cp/cp-1/down").is_failure   # refused at SUBSCRIBE (dynsec)
    cp2.subscribe("cp/cp-2/down")
    relay.publish("cp/cp-1/down", b"for 1")
    relay.publish("cp/cp-2/down", b"for 2")
    assert cp1.get() == ("cp/cp-1/down", b"for 1")
    assert cp2.get() == ("cp/cp-2/down", b"for 2")   # and not cp-1's, published before it
    with pytest.raises(queue.Empty):
        cp2.get(timeout=0)


def test_relay_cannot_publish_requests_and_charger_cannot_read_requests(broker):
    relay, cp1 = client(broker, "relay"), client(broker, "cp-1")
    cp1.subscribe("cp/+/up")
    cp1.subscribe("cp/cp-1/down")
    relay.subscribe("cp/+/up")
    relay.publish("cp/cp-1/up", b"forged by the relay")
    cp1.publish("cp/cp-1/up", b"real")
    assert relay.get() == ("cp/cp-1/up", b"real")
    relay.publish("cp/cp-1/down", b"marker")
    assert cp1.get() == ("cp/cp-1/down", b"marker")  # no request of its own before it


def test_queued_qos1_message_survives_a_restart(broker):
    sub = client(broker, "relay", client_id="relay-a", clean=False)
    sub.subscribe("cp/+/up")
    sub.close()                                    # offline, session kept
    cp1 = client(broker, "cp-1")
    cp1.publish("cp/cp-1/up", b"queued while the relay is away")
    cp1.close()
    broker.restart()
    assert os.path.exists(os.path.join(broker.dir, "mosquitto.db"))
    sub = client(broker, "relay", client_id="relay-a", clean=False)
    assert sub.get() == ("cp/cp-1/up", b"queued while the relay is away")
    sub.close()


def test_stop_leaves_no_process_and_frees_the_port(tmp_path):
    b = Broker(tmp_path, {"relay": "x"}).start()
    pid, port = b.proc.pid, b.port
    b.stop()
    assert not os.path.exists("/proc/%d" % pid)
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), 1).close()
    b.stop()  # twice is harmless


def test_bad_users_are_named(tmp_path):
    with pytest.raises(BrokerError, match="users: 'cp/1'"):
        Broker(tmp_path, {"cp/1": "x"})
    with pytest.raises(BrokerError, match=r"users\['cp-1'\]"):
        Broker(tmp_path, {"cp-1": ""})


def test_a_client_id_is_bound_to_its_user(broker):
    cp1 = client(broker, "cp-1")
    cp1.subscribe("cp/cp-1/down")
    for cid in ("cp-1", "relay-a", "relay", "anything"):   # another charger's, the relay's
        with pytest.raises(BrokerError, match="refused"):
            client(broker, "cp-2", client_id=cid)
    relay = client(broker, "relay", client_id="relay-a")  # a relay user picks its ids
    relay.publish("cp/cp-1/down", b"still here")
    assert cp1.get() == ("cp/cp-1/down", b"still here")    # cp-1 was not kicked off


def test_a_charger_subscribes_to_its_own_down_topic_only(broker):
    cp2 = client(broker, "cp-2")
    for topic in ("$share/relays/cp/+/up", "$share/other/cp/+/up", "$share/g/cp/cp-2/down",
                  "cp/+/up", "cp/cp-1/down", "cp/+/down", "#", "relay/#", "cp/cp-2/up"):
        assert cp2.subscribe(topic).is_failure, topic
    assert not cp2.subscribe("cp/cp-2/down").is_failure
    assert not client(broker, "relay").subscribe("$share/relays/cp/+/up").is_failure


def test_a_charger_takes_nothing_from_the_relays_shared_subscription(broker):
    relay, cp1, cp2 = client(broker, "relay"), client(broker, "cp-1"), client(broker, "cp-2")
    relay.subscribe("$share/relays/cp/+/up")
    cp2.subscribe("$share/relays/cp/+/up")                 # refused: it joins no group
    sent = [b"req-%d" % i for i in range(8)]
    for p in sent:
        cp1.publish("cp/cp-1/up", p)
    assert [relay.get()[1] for _ in sent] == sent          # every one to the relay
    with pytest.raises(queue.Empty):
        cp2.get(timeout=0.2)


def test_only_relays_read_and_write_the_session_records(broker):
    relay, cp1 = client(broker, "relay"), client(broker, "cp-1")
    relay.subscribe("relay/sessions/+")
    cp1.publish("relay/sessions/forged", b'{"v":1,"charger":"cp-1"}', retain=True)
    relay.publish("relay/sessions/real", b'{"v":1,"charger":"cp-2"}', retain=True)
    assert relay.get() == ("relay/sessions/real", b'{"v":1,"charger":"cp-2"}')
    late = client(broker, "relay", client_id="late")
    late.subscribe("relay/sessions/+")                     # retained: only the relay's
    assert late.get() == ("relay/sessions/real", b'{"v":1,"charger":"cp-2"}')
    with pytest.raises(queue.Empty):
        late.get(timeout=0.2)


def test_the_config_for_a_broker_of_ones_own_is_the_tested_one(tmp_path):
    users = tmp_path / "users.json"
    users.write_text(json.dumps(USERS))
    p = subprocess.run([sys.executable, "-m", "host_sim.broker", "--users", str(users)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    clients = dict((c["username"], c) for c in doc["clients"])
    assert clients["cp-1"]["clientid"] == "cp-1" and "clientid" not in clients["relay"]
    assert doc["defaultACLAccess"] == {"publishClientSend": False,
                                       "publishClientReceive": False, "subscribe": False,
                                       "unsubscribe": True}
    roles = dict((r["rolename"], r["acls"]) for r in doc["roles"])
    assert {"acltype": "subscribeLiteral", "topic": "cp/cp-2/down", "allow": True} in roles[
        "charger:cp-2"]
    users.write_text(json.dumps({"cp/1": "x"}))
    p = subprocess.run([sys.executable, "-m", "host_sim.broker", "--users", str(users)],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "'cp/1' is not a valid charger id" in p.stderr
