"""A scripted MQTT broker for the client tests: packets split, answered as told, per connection."""
import asyncio

from cpagent.uplink import mqtt_codec as mqtt

CFG = {"host": "broker", "port": 1883, "tls": False, "user": "cp-1", "password": "pw",
       "timeout_s": 5, "keepalive_s": 10}


def split(pkt):
    """(type, flags, body) of one packet the client wrote (each write is one packet)."""
    i = n = s = 0
    while True:
        i += 1
        n |= (pkt[i] & 127) << s
        s += 7
        if pkt[i] < 128:
            break
    return pkt[0] >> 4, pkt[0] & 15, pkt[i + 1:i + 1 + n]


def pid_of(pkt):
    t, f, body = split(pkt)
    k = 2 + (body[0] << 8 | body[1])
    return body[k] << 8 | body[k + 1]


class Stream:
    """One connection: the client's writes go to the broker, which may answer at once; reads
    return what was fed, and b"" after hangup()."""

    def __init__(self, broker):
        self.broker = broker
        self.rx = b""
        self.ev = asyncio.Event()
        self.eof = self.closed = False
        self.sent = []

    def feed(self, data):
        self.rx += data
        self.ev.set()

    def hangup(self):
        self.eof = True
        self.ev.set()

    def write(self, data):
        data = bytes(data)
        self.sent.append(data)
        self.feed(self.broker.answer(self, data))

    async def drain(self):
        await asyncio.sleep(0)

    def close(self):
        self.closed = True

    async def read(self, n):
        while not self.rx and not self.eof:
            self.ev.clear()
            await self.ev.wait()
        out, self.rx = self.rx[:n], self.rx[n:]
        return out


class Broker:
    """Answers CONNECT, SUBSCRIBE, PINGREQ and QoS 1 PUBLISH as told; relay(topic, payload)
    may return a payload to publish (QoS 1) on cp/cp-1/down."""

    def __init__(self):
        self.conns = []
        self.refuse = 0  # connects to refuse
        self.hold = False  # connects never complete
        self.connack = 0  # return code; None: no CONNACK
        self.suback = 1
        self.pubacks = self.pings = True
        self.got = []  # (topic, payload, flags, pid) of every PUBLISH
        self.acked = []  # packet ids the client PUBACKed
        self.relay = None
        self.pid = 0

    async def connect(self, host, port, tls):
        if self.hold:
            await asyncio.Event().wait()
        if self.refuse:
            self.refuse -= 1
            raise OSError("ECONNREFUSED")
        s = Stream(self)
        self.conns.append(s)
        return s, s

    def down(self, payload, qos=1):
        self.pid = mqtt.next_pid(self.pid)
        return bytes(mqtt.publish("cp/cp-1/down", payload, qos, self.pid))

    def answer(self, s, pkt):
        t, f, body = split(pkt)
        if t == 1:
            return b"" if self.connack is None else bytes((0x20, 2, 0, self.connack))
        if t == 8:
            return b"\x90\x03" + body[:2] + bytes((self.suback,))
        if t == 12:
            return b"\xd0\x00" if self.pings else b""
        if t == 4:
            self.acked.append(body[0] << 8 | body[1])
        if t != 3:
            return b""
        k = 2 + (body[0] << 8 | body[1])
        topic = body[2:k].decode()
        self.got.append((topic, body[k + 2:], f, body[k] << 8 | body[k + 1]))
        out = b"\x40\x02" + body[k:k + 2] if self.pubacks else b""
        reply = self.relay and topic.endswith("/up") and self.relay(topic, body[k + 2:])
        return out + (self.down(reply) if reply else b"")
