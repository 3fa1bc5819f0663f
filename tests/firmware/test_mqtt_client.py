"""MqttClient against a scripted broker: connect, QoS 1 both ways, retransmission, keepalive,
backoff, packet id wrap, malformed packets. Board time is a fake clock that sleeps advance."""
import asyncio

from fakebroker import CFG, Broker

from check import arun, stop, until
from cpagent.uplink import mqtt_codec as mqtt
from cpagent.uplink.mqtt_client import MqttClient

TICK = 2500  # keepalive / 4: the client's timer
ONLINE = b"\x33\x18\x00\x0ecp/cp-1/status" + b"\x00\x02" + b"online"  # pid 2


class Rig:
    def __init__(self, broker=None, rand="0000", handler=None, **cfg):
        self.t = 0
        self.slept = []
        self.msgs = []
        self.logged = []
        self.broker = broker or Broker()
        c = dict(CFG)
        c.update(cfg)
        self.client = MqttClient(c, "cp-1", self.broker.connect, self.sleep_ms, self.ms,
                                 lambda n: rand, handler or self.on_msg,
                                 lambda level, text: self.logged.append(text))

    def ms(self):
        return self.t

    async def sleep_ms(self, ms):
        self.slept.append(ms)
        self.t += ms
        await asyncio.sleep(0)

    def on_msg(self, topic, payload):
        self.msgs.append((bytes(topic), bytes(payload), len(self.broker.conns[-1].sent)))

    def backoffs(self):
        return [s for s in self.slept if s != TICK]

    def sent(self, i=-1):
        return self.broker.conns[i].sent

    async def up(self, conns=1):
        await until(lambda: self.client.up and len(self.broker.conns) == conns
                    and len(self.sent()) >= 3, "connected")


def test_connects_subscribes_and_says_online():
    async def go():
        r = Rig()
        task = asyncio.create_task(r.client.run())
        await r.up()
        s = r.sent()
        assert s[0] == bytes(mqtt.connect("cp-1", 10, "cp-1", "pw",
                                          ("cp/cp-1/status", b"offline")))
        assert s[1] == b"\x82\x11\x00\x01\x00\x0ccp/cp-1/down\x01"  # pid 1, QoS 1
        assert s[2] == ONLINE  # retained (0x01), QoS 1 (0x02)
        assert r.client.error is None and r.backoffs() == []
        await stop(task)
        assert not r.client.up and r.broker.conns[0].closed
    return arun(go())


def test_publish_is_acked_and_in_flight_is_bounded():
    async def go():
        r = Rig()
        task = asyncio.create_task(r.client.run())
        await r.up()
        await r.client.publish("cp/cp-1/up", b"x")
        await until(lambda: r.client._fly == [], "acked")
        assert r.broker.got[-1] == ("cp/cp-1/up", b"x", 2, 3)  # QoS 1, no DUP, pid 3
        r.broker.pubacks = False
        for i in range(4):
            await r.client.publish("cp/cp-1/up", str(i).encode())
        fifth = asyncio.create_task(r.client.publish("cp/cp-1/up", b"5"))
        await until(lambda: len(r.broker.got) == 6, "four sent")
        for _ in range(50):
            await asyncio.sleep(0)
        assert not fifth.done() and len(r.client._fly) == 4
        r.broker.conns[0].feed(b"\x40\x02\x00\x05")  # the second one's PUBACK
        await until(lambda: fifth.done() and len(r.broker.got) == 7, "room made")
        assert [g[3] for g in r.broker.got[2:]] == [4, 5, 6, 7, 8]
        await stop(task)
    return arun(go())


def test_unacked_publishes_are_resent_with_dup_after_a_reconnect():
    async def go():
        r = Rig()
        r.broker.pubacks = False
        task = asyncio.create_task(r.client.run())
        await r.up()
        await r.client.publish("cp/cp-1/up", b"a")
        await r.client.publish("cp/cp-1/up", b"b")
        await until(lambda: len(r.broker.got) == 3, "sent")
        r.broker.conns[0].hangup()
        await until(lambda: not r.client.up, "dropped")
        assert "closed by the broker" in r.client.error
        await r.client.publish("cp/cp-1/up", b"c")  # while down: queued
        r.broker.pubacks = True
        await r.up(2)
        await until(lambda: r.client._fly == [], "acked")
        s = r.sent()
        assert s[2] == ONLINE.replace(b"\x00\x02online", b"\x00\x07online")  # pid 7
        # original ids, DUP (0x08) on the two the broker may have seen, not on the new one
        assert s[3:6] == [b"\x3a\x0f\x00\x0acp/cp-1/up\x00\x03a",
                          b"\x3a\x0f\x00\x0acp/cp-1/up\x00\x04b",
                          b"\x32\x0f\x00\x0acp/cp-1/up\x00\x05c"]
        await stop(task)
    return arun(go())


def test_incoming_qos1_is_acked_after_the_handler_and_qos0_is_not():
    async def go():
        r = Rig()
        task = asyncio.create_task(r.client.run())
        await r.up()
        conn = r.broker.conns[0]
        conn.feed(r.broker.down(b"hello") + r.broker.down(b"q0", 0))
        await until(lambda: len(r.msgs) == 2, "delivered")
        await until(lambda: b"\x40\x02\x00\x01" in conn.sent, "acked")
        assert r.msgs[0][:2] == (b"cp/cp-1/down", b"hello")
        assert conn.sent.index(b"\x40\x02\x00\x01") >= r.msgs[0][2]  # after the handler
        assert r.msgs[1][:2] == (b"cp/cp-1/down", b"q0") and r.broker.acked == [1]
        await stop(task)
    return arun(go())


def test_a_failing_handler_is_logged_and_the_message_still_acked():
    def boom(topic, payload):
        raise ValueError("bad envelope")

    async def go():
        r = Rig(handler=boom)
        task = asyncio.create_task(r.client.run())
        await r.up()
        r.broker.conns[0].feed(r.broker.down(b"{"))
        await until(lambda: r.broker.acked == [1], "acked")
        assert "bad envelope" in r.logged[-1] and r.client.up
        await stop(task)
    return arun(go())


def test_keepalive_pings_keep_the_link_and_a_silent_broker_is_dropped():
    async def go():
        r = Rig()
        task = asyncio.create_task(r.client.run())
        await r.up()
        await until(lambda: r.sent().count(b"\xc0\x00") >= 3, "pinged")
        assert len(r.broker.conns) == 1 and r.client.up
        r.broker.pings = False
        await until(lambda: len(r.broker.conns) == 2, "reconnected")
        assert any("broker silent for" in t and "keepalive 10 s" in t for t in r.logged)
        assert r.broker.conns[0].closed
        await stop(task)
    return arun(go())


def test_reconnect_backs_off_doubling_with_jitter_and_resets_after_a_good_session():
    async def go():
        r = Rig()
        r.broker.refuse = 8
        task = asyncio.create_task(r.client.run())
        await r.up()
        # half fixed, half jitter (rand 0 here), doubling to the 64 s cap
        assert r.backoffs() == [500, 1000, 2000, 4000, 8000, 16000, 32000, 32000]
        assert any("ECONNREFUSED" in t for t in r.logged)
        t0 = r.t
        await until(lambda: r.t > t0 + 20000, "lived two keepalives")
        r.broker.refuse = 1
        r.broker.conns[0].hangup()
        await r.up(2)
        assert r.backoffs()[8:] == [500, 1000]
        await stop(task)
        r = Rig(rand="ffff")
        r.broker.refuse = 2
        task = asyncio.create_task(r.client.run())
        await r.up()
        assert r.backoffs() == [1000, 2000]  # the full ceiling
        await stop(task)
    return arun(go())


def test_packet_ids_wrap_after_65535_and_skip_zero():
    async def go():
        r = Rig()
        r.client._pid = 65532
        task = asyncio.create_task(r.client.run())
        await r.up()
        for p in (b"a", b"b", b"c"):
            await r.client.publish("cp/cp-1/up", p)
        await until(lambda: r.client._fly == [] and len(r.broker.got) == 4, "acked")
        assert [g[3] for g in r.broker.got] == [65534, 65535, 1, 2]  # online, then a b c
        assert r.sent()[1][2:4] == b"\xff\xfd"  # SUBSCRIBE 65533
        await stop(task)
    return arun(go())


def test_malformed_and_refused_answers_are_named_and_reconnected():
    async def go():
        for feed, words in ((b"\x50\x02\x00\x01", "packet type 5"),
                            (b"\x30\xff\xff\xff\x7f", "packet type 3: 268435455 bytes"),
                            (b"\x20\x02\x00\x00", "CONNACK: twice"),
                            (b"\x34\x05\x00\x01t\x00\x01", "PUBLISH: expected QoS 0/1")):
            r = Rig()
            task = asyncio.create_task(r.client.run())
            await r.up()
            r.broker.conns[0].feed(feed)
            await r.up(2)
            assert any(words in t for t in r.logged), (words, r.logged)
            await stop(task)
        r = Rig()
        r.broker.suback = 0x80
        task = asyncio.create_task(r.client.run())
        await until(lambda: len(r.broker.conns) == 2, "retried")
        assert any("SUBACK: 0x80 failure, no down topic" in t for t in r.logged)
        await stop(task)
        r = Rig()
        r.broker.connack = 4
        task = asyncio.create_task(r.client.run())
        await until(lambda: len(r.broker.conns) == 2, "retried")
        assert r.client.error == "refused: bad user name or password"
        assert not r.client.up
        await stop(task)
    return arun(go())


def test_connect_and_connack_have_deadlines():
    async def go():
        r = Rig(timeout_s=0.02)
        r.broker.hold = True
        task = asyncio.create_task(r.client.run())
        for _ in range(200):
            if r.client.error:
                break
            await asyncio.sleep(0.005)
        assert r.client.error == "connect broker:1883: no answer in 20 ms"
        await stop(task)
        r = Rig(timeout_s=0.02)
        r.broker.connack = None
        task = asyncio.create_task(r.client.run())
        for _ in range(200):
            if r.client.error:
                break
            await asyncio.sleep(0.005)
        assert r.client.error == "CONNACK: no answer in 20 ms"
        await stop(task)
    return arun(go())
