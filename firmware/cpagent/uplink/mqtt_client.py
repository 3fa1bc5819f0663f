"""The charger's MQTT 3.1.1 client: one task owns the socket; QoS 1 both ways, keepalive, will."""
import asyncio

from micropython import const

from cpagent.uplink import mqtt_codec as mqtt
from cpagent.uplink.result import delay

_MAX_FLY = const(4)  # unacknowledged publishes; publish() waits for room
_MAX_ACKS = const(32)  # PUBACKs owed; more means the broker ignores its in-flight window
_CHUNK = const(1024)  # one read
_BASE_MS = const(1000)  # reconnect backoff: half fixed, half jitter, doubling up to the cap
_CAP_MS = const(64000)


class MqttClient:
    """MqttClient(cfg["uplink"], charger_id, connect, sleep_ms, ms, rand_hex, on_message,
    log=None); `await run()` forever (connects, reconnects; never raises), `await publish(topic,
    payload)` (QoS 1). on_message(topic, payload) runs before the PUBACK. Subscribes
    cp/<id>/down (QoS 1) and says retained "online" on cp/<id>/status at each connect; the will
    says "offline" there. `up`, `error` (the last failure, None once connected), `connects`."""

    def __init__(self, cfg, cid, connect, sleep_ms, ms, rand_hex, on_message, log=None):
        self._cfg, self._id, self._connect = cfg, cid, connect
        self._sleep, self._ms, self._rand, self._on = sleep_ms, ms, rand_hex, on_message
        self._log = log or (lambda level, text: None)
        self._t = cfg["timeout_s"] * 1000
        self._ka = cfg["keepalive_s"] * 1000
        self.status = "cp/%s/status" % cid
        self.up, self.error = False, None
        self.connects = 0  # sessions the broker accepted since boot
        self._p = mqtt.Parser()
        self._fly = []  # [pid, PUBLISH packet, sent], oldest first
        self._acks = []
        self._pid = 0
        self._ev = asyncio.Event()  # work for the socket's task
        self._room = asyncio.Event()  # a PUBACK freed a place
        self._w = self._r = self._err = None
        self._rx = self._tx = self._ping = 0
        self._dirty = False

    async def publish(self, topic, payload):
        """Queue a QoS 1 PUBLISH; it is (re)sent, DUP after a reconnect, until PUBACKed.
        Waits while _MAX_FLY are unacknowledged (the caller bounds the wait)."""
        while len(self._fly) >= _MAX_FLY:
            self._room.clear()
            await self._room.wait()
        pid = self._next()
        self._fly.append([pid, mqtt.publish(topic, payload, 1, pid), 0])
        self._ev.set()

    def _next(self):
        while True:  # skips ids still in flight: at most _MAX_FLY of them
            self._pid = mqtt.next_pid(self._pid)
            if not [e for e in self._fly if e[0] == self._pid]:
                return self._pid

    async def run(self):
        n = 0
        while True:
            t0 = self._ms()
            try:
                await self._session()
            except Exception as e:  # OSError, MqttError, a bug: the link is bad, never fatal
                self.error = "%s" % (e,) or repr(e)
                self._log(1, "mqtt: " + self.error)
            finally:
                self.up = False
                w, self._w = self._w, None
                try:
                    w and w.close()
                except OSError:
                    pass  # already dead
            if self._ms() - t0 > self._ka:  # it lived a keepalive: the next failure is new
                n = 0
            wait = delay(n, _BASE_MS, _CAP_MS, self._rand, 2)
            n = min(n + 1, 6)
            await self._sleep(wait)

    async def _within(self, aw, what):
        try:
            return await asyncio.wait_for(aw, self._t / 1000)
        except asyncio.TimeoutError:
            raise OSError("%s: no answer in %d ms" % (what, self._t))

    async def _session(self):
        c = self._cfg
        self._p.reset()
        self._acks, self._err = [], None
        h, port = c["host"], c["port"]
        self._r, self._w = await self._within(self._connect(h, port, c["tls"]),
                                              "connect %s:%d" % (h, port))
        self._write(mqtt.connect(self._id, self._ka // 1000, c["user"], c["password"],
                                 (self.status, b"offline")))
        await self._within(self._w.drain(), "CONNECT")
        p = await self._within(self._packet(), "CONNACK")
        if p[0] != mqtt.CONNACK:
            raise mqtt.MqttError("CONNACK: expected, got type %d" % p[0])
        if p[2]:
            raise OSError("refused: " + (mqtt.REFUSED[p[2]] if p[2] < 6 else "code %d" % p[2]))
        self.error = None
        self.connects += 1
        self._write(mqtt.subscribe(self._next(), "cp/%s/down" % self._id))
        self._write(mqtt.publish(self.status, b"online", 1, self._next(), True))
        for e in self._fly:
            if e[2]:
                e[1][0] |= 8  # DUP: the broker may have it already (MQTT-4.4.0-1)
            e[2] = 0
        self._rx = self._ms()
        self.up = True
        tasks = (asyncio.create_task(self._reader()), asyncio.create_task(self._tick()))
        try:
            while True:
                self._ev.clear()
                if self._err:
                    raise self._err
                now = self._ms()
                if now - self._rx > self._ka * 3 // 2:
                    raise OSError("broker silent for %d ms (keepalive %d s)"
                                  % (now - self._rx, self._ka // 1000))
                while self._acks:
                    self._write(mqtt.puback(self._acks.pop(0)))
                for e in self._fly:
                    if not e[2]:
                        e[2] = 1
                        self._write(e[1])
                # A ping when either way has been quiet for half the keepalive (and none was
                # sent since): the broker's answer is what proves the link alive.
                if now - max(self._ping, min(self._tx, self._rx)) >= self._ka // 2:
                    self._write(mqtt.PINGREQ)
                    self._ping = now
                if self._dirty:  # (a wait_for on an idle drain only risks a lost cancel)
                    await self._within(self._w.drain(), "send")
                    self._dirty = False
                await self._ev.wait()
        finally:
            for t in tasks:
                t.cancel()

    def _write(self, data):
        self._w.write(data)
        self._tx = self._ms()
        self._dirty = True

    async def _tick(self):
        while True:
            await self._sleep(self._ka // 4)
            self._ev.set()

    async def _packet(self):
        p = self._p
        while True:
            k = p.next()
            if k:
                return k
            b = await self._r.read(min(p.room(), _CHUNK))
            if not b:
                raise OSError("closed by the broker")
            p.feed(b)

    async def _reader(self):
        try:
            while True:
                p = await self._packet()
                self._rx = self._ms()
                k = p[0]
                if k == mqtt.PUBLISH:
                    try:
                        self._on(p[1], p[2])
                    except Exception as e:  # a bad message is dropped, not redelivered forever
                        self._log(1, "mqtt: down message dropped: %r" % (e,))
                    if p[3]:
                        if len(self._acks) >= _MAX_ACKS:
                            raise mqtt.MqttError("PUBACK: more than %d owed" % _MAX_ACKS)
                        self._acks.append(p[4])
                elif k == mqtt.PUBACK:
                    self._fly = [e for e in self._fly if e[0] != p[1]]
                    self._room.set()
                elif k == mqtt.SUBACK and p[2] & 0x80:
                    raise mqtt.MqttError("SUBACK: 0x80 failure, no down topic")
                elif k == mqtt.CONNACK:
                    raise mqtt.MqttError("CONNACK: twice")
                self._ev.set()
        except Exception as e:  # handed to the socket's task, which ends the session
            self._err = e
            self._ev.set()
