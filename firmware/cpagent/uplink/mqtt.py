"""Relay uplink: OICP requests in envelopes over MQTT, answers sorted as the HTTP uplink sorts."""
import asyncio
import json

from micropython import const

from cpagent.oicp import build as oicp
from cpagent.uplink.mqtt_client import MqttClient
from cpagent.uplink.result import classify

_MAX_REPLIES = const(8)  # answers to remote commands waiting for the broker; the oldest goes


class MqttUplink:
    """MqttUplink(cfg["uplink"], charger_id, board.connect, sleep_ms, ms, rand_hex, log=None);
    `await send(path, body, msg_id=None)` -> Result as HttpUplink's; `await run()` is the
    client's task (the agent runs it). One send at a time (the link's). A down envelope with
    "cmd" (no reply) goes to on_command(env); answer(payload) queues the answer to a remote
    command for the up topic, which the task `replies()` publishes; `await status(text)`
    publishes to the status topic."""

    def __init__(self, cfg, charger_id, connect, sleep_ms, ms, rand_hex, log=None):
        self.client = c = MqttClient(cfg, charger_id, connect, sleep_ms, ms, rand_hex,
                                     self._down, log)
        self.run = c.run
        self._topic = "cp/%s/up" % charger_id
        self.on_command = lambda env: None
        self._t = cfg["timeout_s"] * 1000
        self._rand = rand_hex
        self._want = self._got = None
        self._ev = asyncio.Event()
        self._replies = []
        self._rev = asyncio.Event()
        self.dropped_replies = 0

    def _down(self, topic, payload):
        # Only the awaited id is kept: late, duplicate and foreign replies are dropped here.
        env = json.loads(payload)
        if type(env) is dict and "cmd" in env:
            self.on_command(env)
        elif self._want and type(env) is dict and env.get("id") == self._want:
            self._got = env
            self._ev.set()

    async def send(self, path, body, msg_id=None):
        c = self.client
        if not c.up and c.error:  # known down: the link backs off now, not after a timeout
            return "retry", "broker unreachable: " + c.error, 0
        mid = msg_id or "a-" + self._rand(4)
        self._want, self._got = mid, None
        self._ev.clear()
        try:
            await asyncio.wait_for(self._exchange(('{"v":1,"id":"%s","path":"%s","body":' % (
                mid, path)).encode() + oicp.encode(body) + b"}"), self._t / 1000)
        except asyncio.TimeoutError:
            return "retry", "no reply from the relay in %d ms" % self._t, 0
        except ValueError as e:  # a deferred time, or over 8 KB: no retry changes that
            return "fail", "not sendable: %s" % (e,), 0
        finally:
            self._want = None
        e = self._got
        b = e.get("body")
        try:  # a wrong type raises here: status "200", retry_after NaN or "5"
            return classify(path, e["status"], json.dumps(b) if b else "",
                            int(min(max(e.get("retry_after") or 0, 0), 3600)) * 1000,
                            e.get("error"))
        except (KeyError, TypeError, ValueError):
            return "retry", "garbage reply: down envelope: expected status (integer), " \
                            "retry_after (seconds)", 0

    def answer(self, payload):
        """Queue a remote command's answer (bytes); over _MAX_REPLIES the oldest is dropped and
        counted (the relay then answers the hub 501 for it, as for a silent charger)."""
        self._replies.append(payload)
        if len(self._replies) > _MAX_REPLIES:
            self._replies.pop(0)
            self.dropped_replies += 1
        self._rev.set()

    async def replies(self):
        """Publish the queued answers, oldest first (QoS 1: the client resends them)."""
        while True:
            while self._replies:
                await self.client.publish(self._topic, self._replies.pop(0))
            self._rev.clear()
            await self._rev.wait()

    async def status(self, text):
        await self.client.publish(self.client.status, text.encode())

    async def _exchange(self, data):
        await self.client.publish(self._topic, data)
        await self._ev.wait()
