"""The firmware's MqttClient and MqttUplink on CPython asyncio against a real Mosquitto
(host_sim/broker.py): credentials, QoS 1 both ways, retained online, the offline will, and a
persistent session that keeps a down message for a charger that was away (even over a broker
restart). The relay side is a paho client (BrokerClient)."""
import asyncio
import json
import queue
import threading
import time

import pytest

from check import stop
from cpagent.uplink.mqtt import MqttUplink
from cpagent.uplink.mqtt_client import MqttClient
from cpagent.uplink.mqtt_codec import REFUSED
from host_sim.broker import Broker, BrokerClient

ACK = {"Result": True, "StatusCode": {"Code": "000"}}


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path, users={"cp-1": "pw", "relay": "pw"}) as b:
        yield b


def cfg(broker, password="pw"):
    return {"host": broker.host, "port": broker.port, "tls": False, "user": "cp-1",
            "password": password, "timeout_s": 5, "keepalive_s": 10}


class Charger:
    """The firmware client with a connect() over asyncio.open_connection; keeps each writer so
    a test can cut the TCP connection as a power loss or a dead Wi-Fi would."""

    def __init__(self, broker, password="pw"):
        self.writers = []
        self.got = []
        self.client = MqttClient(cfg(broker, password), "cp-1", self.connect, self.sleep_ms,
                                 lambda: int(time.monotonic() * 1000), lambda n: "00" * n,
                                 lambda topic, payload: self.got.append((topic, payload)))
        self.task = None

    async def connect(self, host, port, tls):
        r, w = await asyncio.open_connection(host, port)
        self.writers.append(w)
        return r, w

    @staticmethod
    async def sleep_ms(ms):
        await asyncio.sleep(ms / 1000)

    async def start(self):
        self.task = asyncio.create_task(self.client.run())
        await until(lambda: self.client.up, "connected")

    def cut(self):
        self.writers[-1].transport.abort()  # no DISCONNECT: the broker sends the will


async def until(cond, what, seconds=15):
    end = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("never: " + what)
        await asyncio.sleep(0.01)


async def get(client, timeout=10):
    return await asyncio.to_thread(client.get, timeout)


def test_connect_publish_qos1_receive_down_and_retained_online(broker):
    async def go():
        relay = BrokerClient(broker, "relay", "pw")
        relay.subscribe("cp/+/up")
        ch = Charger(broker)
        await ch.start()
        await ch.client.publish("cp/cp-1/up", b'{"v":1}')
        assert await get(relay) == ("cp/cp-1/up", b'{"v":1}')
        await until(lambda: ch.client._fly == [], "PUBACK")
        relay.publish("cp/cp-1/down", b"reply", qos=1)
        await until(lambda: ch.got, "down message")
        assert ch.got == [(b"cp/cp-1/down", b"reply")]
        late = BrokerClient(broker, "relay", "pw", client_id="observer")
        late.subscribe("cp/cp-1/status")  # a subscriber after the fact: only retained comes
        assert await get(late) == ("cp/cp-1/status", b"online")
        late.close()
        relay.close()
        await stop(ch.task)
    asyncio.run(go())


def test_a_wrong_password_is_refused_by_name(broker):
    async def go():
        ch = Charger(broker, password="nope")
        task = asyncio.create_task(ch.client.run())
        await until(lambda: ch.client.error, "refused")
        assert ch.client.error[:9] == "refused: " and ch.client.error[9:] in REFUSED[4:]
        assert not ch.client.up
        await stop(task)
    asyncio.run(go())


def test_the_will_says_offline_when_the_link_dies_and_online_comes_back(broker):
    async def go():
        watch = BrokerClient(broker, "relay", "pw", client_id="watch")
        watch.subscribe("cp/+/status")
        ch = Charger(broker)
        await ch.start()
        assert await get(watch) == ("cp/cp-1/status", b"online")
        ch.cut()
        assert await get(watch) == ("cp/cp-1/status", b"offline")
        await until(lambda: len(ch.writers) == 2 and ch.client.up, "reconnected")
        assert await get(watch) == ("cp/cp-1/status", b"online")
        watch.close()
        await stop(ch.task)
    asyncio.run(go())


def test_a_persistent_session_keeps_down_messages_while_away_and_over_a_restart(broker):
    async def go():
        ch = Charger(broker)
        await ch.start()  # subscribed: the session now holds cp/cp-1/down
        await stop(ch.task)
        relay = BrokerClient(broker, "relay", "pw")
        relay.publish("cp/cp-1/down", b"while away", qos=1)
        relay.close()
        await asyncio.to_thread(broker.restart)  # SIGTERM saves the session and its queue
        relay = BrokerClient(broker, "relay", "pw")
        relay.publish("cp/cp-1/down", b"after the restart", qos=1)
        ch2 = Charger(broker)  # a new boot, same client id, clean_session 0
        await ch2.start()
        await until(lambda: len(ch2.got) == 2, "queued messages")
        assert [p for _, p in ch2.got] == [b"while away", b"after the restart"]
        relay.close()
        await stop(ch2.task)
    asyncio.run(go())


def test_the_uplink_round_trip_through_mosquitto(broker):
    relay = BrokerClient(broker, "relay", "pw")
    relay.subscribe("cp/+/up")
    done = threading.Event()

    def serve():  # a one-request relay: answers the envelope on the charger's down topic
        while not done.is_set():
            try:
                topic, payload = relay.get(0.1)
            except queue.Empty:
                continue
            env = json.loads(payload)
            relay.publish("cp/cp-1/down", json.dumps(
                {"v": 1, "id": env["id"], "status": 200, "body": ACK}), qos=1)

    t = threading.Thread(target=serve)
    t.start()

    async def go():
        ch = Charger(broker)
        up = MqttUplink(cfg(broker), "cp-1", ch.connect, ch.sleep_ms,
                        lambda: int(time.monotonic() * 1000), lambda n: "ab" * n)
        task = asyncio.create_task(up.run())
        kind, reply, after = await up.send("/api/oicp/notificationmgmt/v11/charging-notifications",
                                           {"Type": "Start"}, "j-1")
        assert (kind, reply.code, after) == ("ok", "000", 0)
        await stop(task)
    try:
        asyncio.run(go())
    finally:
        done.set()
        t.join()
        relay.close()
