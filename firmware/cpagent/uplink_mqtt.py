"""Relay uplink: OICP requests in envelopes over MQTT, answers sorted as the HTTP uplink sorts."""
import asyncio
import json

from cpagent import oicp
from cpagent.mqtt import MAX_PAYLOAD
from cpagent.mqtt_client import MqttClient
from cpagent.uplink_http import classify


class MqttUplink:
    """MqttUplink(cfg["uplink"], charger_id, board.connect, sleep_ms, ms, rand_hex, log=None);
    `await send(path, body, msg_id=None)` -> Result as HttpUplink's; `await run()` is the
    client's task (the agent runs it). One send at a time (the link's); `last_ms`: round trip."""

    def __init__(self, cfg, charger_id, connect, sleep_ms, ms, rand_hex, log=None):
        self.client = c = MqttClient(cfg, charger_id, connect, sleep_ms, ms, rand_hex,
                                     self._down, log)
        self.run = c.run
        self._topic = "cp/%s/up" % charger_id
        self._t = cfg["timeout_s"] * 1000
        self._ms, self._rand = ms, rand_hex
        self._want = self._got = self.last_ms = None
        self._ev = asyncio.Event()

    def _down(self, topic, payload):
        # Only the awaited id is kept: late, duplicate and foreign replies are dropped here.
        env = json.loads(payload)
        if self._want and type(env) is dict and env.get("id") == self._want:
            self._got = env
            self._ev.set()

    async def send(self, path, body, msg_id=None):
        c = self.client
        if not c.up and c.error:  # known down: the link backs off now, not after a timeout
            return "retry", "broker unreachable: " + c.error, 0
        mid = msg_id or "a-" + self._rand(4)
        try:
            data = ('{"v":1,"id":"%s","path":"%s","body":' % (mid, path)).encode() \
                + oicp.encode(body) + b"}"
        except ValueError as e:
            return "fail", "not sendable: %s" % (e,), 0
        if len(data) > MAX_PAYLOAD:
            return "fail", "not sendable: envelope of %d bytes, at most %d" % (
                len(data), MAX_PAYLOAD), 0
        self._want, self._got = mid, None
        self._ev.clear()
        t0 = self._ms()
        try:
            await asyncio.wait_for(self._exchange(data), self._t / 1000)
        except asyncio.TimeoutError:
            return "retry", "no reply from the relay in %d ms" % self._t, 0
        finally:
            self._want = None
        self.last_ms = self._ms() - t0
        e = self._got
        st, b, ra, err = e.get("status"), e.get("body"), e.get("retry_after", 0), e.get("error")
        if type(st) is not int or not (b is None or type(b) is dict) \
                or type(ra) not in (int, float) or not -1e9 < ra < 1e9 \
                or not (err is None or type(err) is str):
            return "retry", "garbage reply: down envelope: expected status (integer), body " \
                            "(object or null), retry_after (seconds), error (text)", 0
        return classify(path, st, json.dumps(b) if b else "",
                        int(min(max(ra, 0), 3600)) * 1000, err)

    async def _exchange(self, data):
        await self.client.publish(self._topic, data)
        await self._ev.wait()
