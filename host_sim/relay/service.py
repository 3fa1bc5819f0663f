"""The relay service: MQTT requests in (shared subscription), OICP to the hub, replies out.

Threads: paho's network thread receives, parses and queues; `hub.connections` workers take from
the queue, post to the hub and publish the reply. A request's MQTT message is acknowledged
(PUBACK, manual) only once the broker acknowledged the reply we published for it, so a relay
killed at any point leaves the request with the broker, which delivers it again.
Containment: whatever goes wrong with one message (a malformed envelope, a bug of ours) is
answered to its charger, acknowledged, counted and logged (rate-limited), and the threads go on;
a thread that dies anyway makes /health fail, so a supervisor restarts the relay.
Every hub answer is sorted by the firmware's own classifier (cpagent.uplink.result.classify): one
that is not the hub's (an HTML 404 of a proxy, a 502 of a gateway) reaches the charger as "not
reached" (status 0), which it retries. Session ownership: see sessions.py; a status older than
one the hub already took for its EVSE is never pushed: see latest.py.
"""
import collections
import logging
import socket
import sys
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cpagent.uplink.result import classify
from host_sim.relay import commands, envelope, evse_data, latest, sessions
from host_sim.relay.cpo_endpoint import Endpoint
from host_sim.relay.forwarder import Hub, Reply, Unreachable
from host_sim.relay.metrics import Metrics, Recent, Server, Throttle
from host_sim.relay.ratelimit import QueueFull, Scheduler

log = logging.getLogger("relay")
UP = "cp/+/up"
SYNC = "relay/sync/"
# Hub answers that say nothing against one message but against the path to the hub: /health
# counts them (a "fail" is the hub's own no to one message, e.g. an unknown card).
_BAD = ("nothub", "retry", "hold", "stop", "unreachable")


class Relay:
    def __init__(self, cfg, client_id=None):
        self.cfg = cfg
        self.client_id = client_id or cfg.broker["client_id"]
        self.metrics = Metrics()
        self.scheduler = Scheduler(cfg.limits, cfg.queue["max_items"], cfg.queue["max_wait_s"])
        self.hub = Hub(cfg.hub)
        ss = cfg.sessions
        self.owners = sessions.Owners(ss["max"], ss["unknown_wait_s"], ss["closed_keep_s"])
        self.latest = latest.Latest(cfg.chargers)
        self.recent = Recent()
        self.throttle = Throttle(log)
        self._sync = None   # the marker that says every retained record has come
        self._held = []     # (message, token) with a SessionID or a status, until then
        self.net_thread = None
        self._lock = threading.Lock()
        self.pending = {}   # (charger, id) -> [(epoch, mid)] to PUBACK once it is answered
        self.cache = {}     # charger -> OrderedDict id -> down payload (hub answers only)
        self._acks = {}     # mid of a published reply -> [(epoch, mid)] to PUBACK after it
        self._early = set()  # replies the broker acknowledged before we noted their mid
        self.epoch = 0
        self.connected = self.subscribed = False
        self.workers = []
        self.http = None
        self.cpo = None
        self.client = self._client()
        self.commands = commands.Commands(
            self.client_id, cfg.chargers, cfg.cpo["command_timeout_s"] if cfg.cpo else 10.0,
            self._send, self._own_remote, self.metrics)
        m = self.metrics
        m.gauges.update(relay_queue_depth=self.scheduler.depth,
                        relay_inflight=lambda: self.scheduler.inflight,
                        relay_mqtt_connected=lambda: int(self.subscribed),
                        relay_hub_connects_total=lambda: self.hub.connects,
                        relay_python_heap_blocks=sys.getallocatedblocks,
                        relay_chargers_online=self.commands.online_count)

    # ---- MQTT -----------------------------------------------------------------------------

    def _client(self):
        b = self.cfg.broker
        # MQTT 5: a session that outlives the connection (clean start off, session expiry)
        # and a Receive Maximum as large as our queue, so the broker lets that many requests
        # wait here unacknowledged (Mosquitto's default in-flight window is 20).
        c = _Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                    protocol=mqtt.MQTTv5, manual_ack=True)
        c.username_pw_set(b["user"], b["password"])
        if b["tls"]:
            t = b["tls"]
            c.tls_set(ca_certs=t["ca"], certfile=t.get("cert"), keyfile=t.get("key"))
        c.reconnect_delay_set(1, 30)
        c.max_inflight_messages_set(100)
        c.on_connect, c.on_disconnect = self._on_connect, self._on_disconnect
        c.on_message, c.on_publish = self._on_message, self._on_publish
        c.on_subscribe = self._on_subscribe
        c.on_socket_open = _nodelay
        return c

    def _connect_props(self):
        p = Properties(PacketTypes.CONNECT)
        p.SessionExpiryInterval = self.cfg.broker["session_expiry_s"]
        p.ReceiveMaximum = self.cfg.queue["max_items"]
        return p

    def _on_connect(self, client, userdata, flags, rc, props):
        if rc.is_failure:
            log.error("broker %s:%d refused the connection: %s", self.cfg.broker["host"],
                      self.cfg.broker["port"], rc)
            return
        self.epoch += 1  # PUBACKs owed on an older connection are void: the broker resends
        self.connected, self.subscribed = True, False
        self.metrics.inc("relay_mqtt_connects_total")
        if not flags.session_present:
            # A broker that lost its state (no persistence, a new broker) lost the retained
            # session records too: give back the ones this process knows.
            with self._lock:
                known = self.owners.open_records()
                statuses = [(c, self.latest.record(c)) for c in self.latest.known()]
            for sid, charger in known:
                self._send(sessions.topic(sid), sessions.record(charger), retain=True)
            for charger, data in statuses:
                self._send(latest.topic(charger), data, retain=True)
        self._sync = "%s-%d" % (self.client_id, self.epoch)
        client.subscribe([(sessions.TOPIC + "+", 1), (latest.TOPIC + "+", 1),
                          (SYNC + self.client_id, 1),
                          (commands.STATUS, 1), (commands.REPLIES + self.client_id, 1)])
        client.subscribe("$share/%s/%s" % (self.cfg.broker["group"], UP), qos=1)
        log.info("connected to %s:%d as %s (session present: %s)", self.cfg.broker["host"],
                 self.cfg.broker["port"], self.client_id, flags.session_present)

    def _on_subscribe(self, client, userdata, mid, codes, props):
        if any(c.is_failure for c in codes):
            self.subscribed = False
            log.error("broker refused a subscription (records, sync or cp/+/up): %s", codes)
        elif len(codes) > 1:
            # The retained records came with the SUBACK's subscription; a marker published
            # now arrives after them (one connection, in order).
            self._send(SYNC + self.client_id, self._sync.encode())
        else:
            self.subscribed = True

    def _on_disconnect(self, client, userdata, flags, rc, props):
        self.connected = self.subscribed = False
        log.warning("broker connection lost (%s); paho reconnects", rc)

    def _on_message(self, client, userdata, msg):
        token = (self.epoch, msg.mid) if msg.qos else None
        try:
            if msg.topic.startswith((sessions.TOPIC, latest.TOPIC)):
                self._on_record(msg)
                self._ack([token])
            elif msg.topic.endswith("/status") or msg.topic.startswith(commands.REPLIES):
                self._ack([token])
                self._on_charger_news(msg)
            elif msg.topic.startswith(SYNC):
                self._ack([token])
                if msg.payload == (self._sync or "").encode() and not self.owners.synced:
                    with self._lock:
                        self.owners.synced = True
                    held, self._held = self._held, []
                    for m, t in held:
                        try:
                            self._on_request(m, t)
                        except Exception as e:
                            self._contain(m, t, e)
            else:
                self._on_request(msg, token)
        except Exception as e:  # one message must never stop the relay (the paho thread)
            self._contain(msg, token, e)

    def _contain(self, msg, token, e):
        why = "relay error: %s: %s" % (type(e).__name__, str(e)[:160])
        self.metrics.inc("relay_refused_total", reason="internal")
        self.throttle.log("internal " + type(e).__name__, "%s on %s", why, msg.topic[:100],
                          exc_info=True)
        charger = envelope.charger_of(msg.topic)
        try:
            if charger:
                self._publish(charger, envelope.down(envelope.peek_id(msg.payload), 400,
                                                     error=why), [token])
            else:
                self._ack([token])
        except Exception:  # the broker connection is gone: it delivers the message again
            log.exception("answering a message that raised failed")

    def _on_charger_news(self, msg):
        """A charger's status (online, its will) or a remote command's answer passed on by
        another relay of the group."""
        if msg.topic.startswith(commands.REPLIES):
            doc = envelope.loads(msg.payload.decode("utf-8"))
            if isinstance(doc, dict):
                self.commands.on_reply(None, doc)
            return
        charger = msg.topic.split("/")[1]
        # Only configured chargers are kept (the broker's users may be more).
        if charger in self.cfg.chargers and self.commands.on_status(charger, msg.payload):
            self._out_of_service(charger)

    def _out_of_service(self, charger):
        """The charger's will: its EVSEs are OutOfService at the hub until it says otherwise
        (it pushes every status again at its reconnect). The push is the relay's own (no
        charger waits for its answer); it merges with the operator's queued ones."""
        c = self.cfg.chargers[charger]
        path, body = envelope.status_push(c["operator_id"], [
            {"EvseID": e, "EvseStatus": "OutOfService"} for e in sorted(c["evses"])])
        r = envelope.Request(charger, None, path, body, "PushEvseStatus", "PushEvseStatus",
                             c["operator_id"])
        log.info("charger %s went offline (its will): %d EVSEs OutOfService", charger,
                 len(c["evses"]))
        try:
            self.scheduler.put(r)
        except QueueFull as e:
            log.warning("charger %s offline: its OutOfService push is not queued: %s",
                        charger, e)

    def _on_reply(self, msg, token):
        """True when msg is a charger's answer to a remote command (then taken)."""
        if b'"reply"' not in msg.payload[:64]:
            return False
        try:
            doc = envelope.loads(msg.payload.decode("utf-8"))
        except (ValueError, RecursionError):
            return False
        if not isinstance(doc, dict) or "reply" not in doc or "path" in doc:
            return False
        self._ack([token])
        self.commands.on_reply(envelope.charger_of(msg.topic), doc)
        return True

    def _own_remote(self, sid, charger):
        """sid is charger's: its session record goes to every relay (and the broker) before
        anything else is sent: a remote start's command, a hub answer's reply (one connection,
        in order; the answer may be lost while the charger runs the session: its messages still
        pass). False when sid is another charger's."""
        with self._lock:
            if not self.owners.learn(sid, charger):
                return False
        self._send(sessions.topic(sid), sessions.record(charger), retain=True)
        return True

    def _on_record(self, msg):
        """A retained record of another relay or ours: a session's owner or EVSE statuses."""
        owner = msg.topic.startswith(sessions.TOPIC)
        try:
            with self._lock:
                if owner:
                    self.owners.on_record(msg.topic[len(sessions.TOPIC):], msg.payload)
                else:
                    self.latest.on_record(msg.topic[len(latest.TOPIC):], msg.payload)
        except ValueError as e:
            self.metrics.inc("relay_%s_records_total" % ("session" if owner else "status"),
                             result="bad")
            self.throttle.log("record", "ignored: %s", e)

    def _refuse(self, charger, msg_id, reason, why, token):
        self.metrics.inc("relay_up_messages_total", result="refused")
        self.metrics.inc("relay_refused_total", reason=reason)
        self.throttle.log("refused " + reason, "refused %s from %s: %s", msg_id or "(no id)",
                          charger or "(no charger)", why)
        if charger:
            self._publish(charger, envelope.down(msg_id, 400, error=why), [token])
        else:
            self._ack([token])

    def _on_request(self, msg, token):
        if self._on_reply(msg, token):
            return
        try:
            r = envelope.parse(msg.topic, msg.payload, self.cfg.chargers)
        except envelope.Refused as e:
            self._refuse(envelope.charger_of(msg.topic), e.id, e.reason, str(e), token)
            return
        sid = r.body.get("SessionID")
        if (sid is not None or r.stamps) and not self.owners.synced \
                and len(self._held) < self.cfg.queue["max_items"]:
            # Until every record came, unacknowledged; all of them, so that a session's
            # messages keep their order whether its record came before or after, and a
            # status redelivered at our start meets the newer one another relay pushed.
            self._held.append((msg, token))
            return
        if sid is not None:
            with self._lock:
                verdict = self.owners.check(r.charger, sid)
            # An AuthorizeStart may name a SessionID the hub then makes anew: only another
            # charger's stops it.
            if verdict is not None and (r.op != "AuthorizeStart" or verdict[0] == "other"):
                if verdict[0] == "wait":
                    self.metrics.inc("relay_not_reached_total", reason="session")
                    self._publish(r.charger, envelope.down(r.id, 0, error=verdict[1]), [token])
                else:
                    self._refuse(r.charger, r.id, "session", verdict[1], token)
                return
        key = (r.charger, r.id)
        with self._lock:
            cached = self.cache.get(r.charger, {}).get(r.id)
            waiting = self.pending.get(key)
            if cached is None and waiting is None:
                self.pending[key] = [token]
            elif waiting is not None:
                waiting.append(token)
        if cached is not None or waiting is not None:
            self.metrics.inc("relay_up_messages_total", result="duplicate")
            if cached is not None:
                self._publish(r.charger, cached, [token])
            return
        if r.stamps and not self._fresh(r):
            return
        self.metrics.inc("relay_up_messages_total", result="queued")
        try:
            old = self.scheduler.put(r)
        except QueueFull as e:
            log.warning("refused %s from %s for now: %s", r.id, r.charger, e)
            self._answer(r, Reply(0, None, None, str(e)), cache=False)
            return
        if old is not None:
            self.metrics.inc("relay_up_messages_total", result="superseded")

    def _fresh(self, r):
        """Takes out of status push r every record older than the one the hub already took for
        its EVSE (from any relay of the group), each counted and logged, and answers the ids
        left with no record (they are pending): 400 + error, the relay's own answer, never one
        that looks like the hub's. The charger ignores it: its journal superseded that message
        before the newer one existed (a Status it did hold would be dropped at a 400, as any
        refused Status). False when nothing is left to push."""
        keep, stale = [], []
        with self._lock:
            for x in r.body["OperatorEvseStatus"]["EvseStatusRecord"]:
                s = r.stamps.get(x["EvseID"])
                newer = s and self.latest.newer(s[0], x["EvseID"], s[1])
                (stale if newer else keep).append((x, s, newer))
        if not stale:
            return True
        for x, s, newer in stale:
            self.metrics.inc("relay_stale_status_total")
            log.info("status %s of %s from %s not pushed: older than %s, which the hub has",
                     s[1], x["EvseID"], s[0], newer)
        if keep:  # the ids of a merged push whose every record was stale are answered now
            envelope.keep_status(r, [x for x, _, _ in keep])
            gone = set(s for _, s, _ in stale) - set(r.stamps.values())
        else:
            gone = set(r.ids)
        x, s, newer = stale[0]
        why = "stale: status %s of %s is older than %s, which the hub has: not pushed" % (
            s[1], x["EvseID"], newer)
        self._answer(r, Reply(400, None, None, why), False, [i for i in r.ids if i in gone])
        r.ids = [i for i in r.ids if i not in gone]
        return bool(keep)

    def _publish(self, charger, data, tokens):
        self.metrics.inc("relay_down_messages_total")
        self._send("cp/%s/down" % charger, data, tokens)

    def _send(self, topic, data, tokens=(), **kw):
        """Publishes with QoS 1; tokens are acknowledged once the broker acknowledged it (every
        mid is noted, also with no tokens, so _early never keeps one)."""
        info = self.client.publish(topic, data, qos=1, **kw)
        tokens = [t for t in tokens if t is not None]
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
            else:
                self._acks[info.mid] = tokens
                tokens = []
        self._ack(tokens)

    def _on_publish(self, client, userdata, mid, rc, props):
        with self._lock:
            tokens = self._acks.pop(mid, None)
            if tokens is None:
                self._early.add(mid)
        self._ack(tokens or [])

    def _ack(self, tokens):
        for t in tokens:
            if t is not None and t[0] == self.epoch:
                self.client.ack(t[1], 1)

    # ---- forwarding -----------------------------------------------------------------------

    def _work(self):
        while True:
            r = self.scheduler.take()
            if r is None:
                return
            try:
                self._forward(r)
            except Exception as e:  # a bug of ours with one request: answer it, go on
                why = "relay error: %s: %s" % (type(e).__name__, str(e)[:160])
                self.metrics.inc("relay_refused_total", reason="internal")
                self.throttle.log("internal " + type(e).__name__, "%s forwarding %s from %s",
                                  why, r.id, r.charger, exc_info=True)
                if r.state != "done":
                    self.scheduler.done(r)
                try:
                    self._answer(r, Reply(400, None, None, why), cache=False)
                except Exception:
                    log.exception("answering %s from %s failed", r.id, r.charger)

    def _forward(self, r):
        if r.state == "expired":
            self.scheduler.done(r)
            self.metrics.inc("relay_not_reached_total", reason="expired")
            reply = Reply(0, None, None, "waited over %g s in the relay queue (%s)"
                          % (self.cfg.queue["max_wait_s"], r.limit))
            self._answer(r, reply, cache=False)
            return
        if r.stamps and not self._fresh(r):  # another relay pushed newer ones meanwhile
            self.scheduler.done(r)
            return
        t0 = time.perf_counter()
        try:
            reply = self.hub.post(r.path, r.data)
        except Unreachable as e:
            reply = Reply(0, None, None, str(e))
        self.metrics.inc("relay_hub_seconds_total", time.perf_counter() - t0)
        self.metrics.inc("relay_hub_requests_total", status=reply.status)
        kind, parsed = self._sort(r, reply)
        self.scheduler.done(r, reply.retry_after if reply.status == 429 else None)
        if not r.ids and kind in _BAD:
            self._again(r)  # the relay's own push: no charger retries it
        if kind == "nothub":
            reply = Reply(0, None, None, parsed)  # the charger retries, as for a hub outage
        elif kind == "ok" and r.op == "AuthorizeStart" and parsed.session_id:
            self._own(r, parsed.session_id)
        elif kind == "ok" and r.op == "ChargeDetailRecord":
            self._close(r)
        elif kind == "ok" and r.stamps:
            self._took(r)
        # Only an answer a retry would not change is remembered for duplicates.
        self._answer(r, reply, cache=kind in ("ok", "fail"))

    def _again(self, r):
        """Queues the relay's own push r again after 2, 4, ... 60 s (a hub outage)."""
        again = envelope.Request(r.charger, None, r.path, r.body, r.op, r.kind, r.operator)
        again.tries = r.tries + 1
        delay = min(2.0 ** again.tries, 60.0)
        log.warning("%s for %s not accepted by the hub: again in %g s", r.op, r.operator, delay)

        def put():
            if not self.scheduler.closed:
                try:
                    self.scheduler.put(again)
                except QueueFull as e:
                    log.error("%s for %s dropped: %s", r.op, r.operator, e)
        t = threading.Timer(delay, put)
        t.daemon = True
        t.start()

    def _sort(self, r, reply):
        """(kind, Reply of the hub | reason) by the firmware's classifier; counted, logged."""
        if not reply.status:
            kind, why, code = "unreachable", reply.error, "0"
        else:
            kind, why, _ = classify(r.path, reply.status, reply.data, 0, None, reply.ctype)
            code = str(reply.status)
            if 200 <= reply.status < 300 and kind != "nothub":
                code = why.code if kind == "ok" else why[:3]
        self.metrics.inc("relay_hub_answers_total", kind=kind, code=code)
        bad = kind in _BAD
        self.recent.add(bad, "%s %s: %s" % (kind, code, why) if bad else "")
        if kind != "ok":
            self.throttle.log("hub %s %s" % (kind, code), "%s %s from %s: hub answer %s: %s",
                              r.kind, r.id, r.charger, kind, why)
        return kind, why

    def _own(self, r, sid):
        """The hub gave r's charger a session: say so to every relay before the charger
        hears it (the record goes to the broker ahead of the reply, on one connection)."""
        if not self._own_remote(sid, r.charger):
            self.throttle.log("session clash", "hub answered %s from %s with SessionID %s, "
                              "which another charger holds: not given to it", r.id, r.charger,
                              sid)

    def _took(self, r):
        """The hub took status push r: its EVSEs' newest ids go to every relay (and to the
        broker for a relay that starts later) before the answer, as a session's owner does."""
        with self._lock:
            changed = sorted(set(s[0] for e, s in r.stamps.items()
                                 if self.latest.learn(s[0], e, s[1])))
            records = [(c, self.latest.record(c)) for c in changed]
        for charger, data in records:
            self._send(latest.topic(charger), data, retain=True)

    def _close(self, r):
        sid = r.body["SessionID"]
        with self._lock:
            self.owners.learn(sid, r.charger, closed=True)
        p = Properties(PacketTypes.PUBLISH)
        p.MessageExpiryInterval = self.cfg.sessions["closed_keep_s"]
        self._send(sessions.topic(sid), sessions.record(r.charger, closed=True), retain=True,
                   properties=p)

    def _answer(self, r, reply, cache, ids=None):
        """Publishes the reply for r and for every Progress it superseded (same reply); ids:
        only for those."""
        cap = self.cfg.queue["dedupe_per_charger"]
        for charger, msg_id in r.ids if ids is None else ids:
            data = envelope.down(msg_id, reply.status, reply.body, reply.retry_after,
                                 reply.error)
            with self._lock:
                tokens = self.pending.pop((charger, msg_id), [])
                if cache:
                    recent = self.cache.setdefault(charger, collections.OrderedDict())
                    recent[msg_id] = data
                    if len(recent) > cap:
                        recent.popitem(last=False)
            self._publish(charger, data, tokens)

    # ---- lifecycle ------------------------------------------------------------------------

    def health(self):
        """'' when healthy, else what is wrong."""
        if self.net_thread is not None and not self.net_thread.is_alive():
            return "mqtt: the network thread stopped"
        if not self.connected:
            return "mqtt: not connected to %s:%d" % (self.cfg.broker["host"],
                                                     self.cfg.broker["port"])
        if not self.subscribed:
            return "mqtt: subscription $share/%s/%s not acknowledged" % (
                self.cfg.broker["group"], UP)
        if not self.owners.synced:
            return ("mqtt: the retained records (relay/sessions/+, relay/evse-status/+) have not "
                    "all come yet")
        dead = sum(1 for w in self.workers if not w.is_alive())
        if dead:
            return "workers: %d of %d stopped" % (dead, len(self.workers))
        return self.recent.problem()

    def start(self):
        h = self.cfg.http
        self.http = Server(self.metrics, self.health, h["host"], h["port"])
        self.http.start()
        if self.cfg.cpo:
            self.cpo = Endpoint(self.cfg.cpo, self.commands, self.metrics, self.throttle).start()
        for i in range(self.cfg.hub["connections"]):
            w = threading.Thread(target=self._work, name="relay-hub-%d" % i, daemon=True)
            w.start()
            self.workers.append(w)
        self._push_data(evse_data.at_start(self.cfg.evse_data))
        b = self.cfg.broker
        self.client.connect_async(b["host"], b["port"], b["keepalive_s"], clean_start=False,
                                  properties=self._connect_props())
        self.client.loop_start()
        self.net_thread = self.client._thread  # paho 2.2 (pinned) sets it to None as it ends
        log.info("relay %s: broker %s:%d, hub %s, metrics http://%s:%d/metrics",
                 self.client_id, b["host"], b["port"], self.cfg.hub["url"], h["host"],
                 self.http.port)
        return self

    def reload(self, cfg):
        """A changed config (SIGHUP): its EVSE data records go to the hub as updates and
        deletes; the rest of the config takes a restart."""
        pushes = evse_data.changes(self.cfg.evse_data, cfg.evse_data)
        self.cfg.evse_data = cfg.evse_data
        self._push_data(pushes)
        return len(pushes)

    def _push_data(self, pushes):
        """The relay's own PushEvseData requests (no charger waits for them), queued."""
        for op, path, body in pushes:
            n = len(body["OperatorEvseData"]["EvseDataRecord"])
            r = envelope.Request(None, None, path, body, "PushEvseData", "PushEvseData", op)
            try:
                self.scheduler.put(r)
            except QueueFull as e:
                log.error("EVSE data %s of %s (%d records) not queued: %s",
                          body["ActionType"], op, n, e)
                continue
            log.info("EVSE data: %s of %d records for %s queued", body["ActionType"], n, op)

    def stop(self, drain_s=5.0):
        """Lets the requests at the hub finish and their replies reach the broker; what is
        still queued stays unacknowledged at the broker, which delivers it again."""
        self.net_thread = None  # it ends now: no longer a failure
        self.scheduler.close()
        for w in self.workers:
            w.join(self.cfg.hub["timeout_s"] + 1)
        end = time.monotonic() + drain_s
        while self._acks and self.connected and time.monotonic() < end:
            time.sleep(0.01)
        self.client.disconnect()
        self.client.loop_stop()
        self.hub.close()
        if self.cpo:
            self.cpo.stop()
        if self.http:
            self.http.stop()


def publish_once(b, topic, payload, timeout=10.0):
    """One QoS 1 message with the relay's broker credentials (b: Config.broker), acknowledged
    by the broker, or OSError naming why not. Its own client id (the relay's + "-cmd"), so a
    running relay is not disconnected."""
    done, got = threading.Event(), []
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=b["client_id"] + "-cmd",
                    protocol=mqtt.MQTTv5)
    c.username_pw_set(b["user"], b["password"])
    if b["tls"]:
        c.tls_set(ca_certs=b["tls"]["ca"], certfile=b["tls"].get("cert"),
                  keyfile=b["tls"].get("key"))

    def on_connect(client, userdata, flags, rc, props):
        if rc.is_failure:
            got.append("broker %s:%d refused the connection: %s" % (b["host"], b["port"], rc))
            done.set()
        else:
            client.publish(topic, payload, qos=1)

    def on_publish(client, userdata, mid, rc, props):
        if rc.is_failure:
            got.append("broker refused the message on %s: %s" % (topic, rc))
        done.set()
    c.on_connect, c.on_publish = on_connect, on_publish
    try:
        c.connect(b["host"], b["port"], 30)
    except (OSError, ValueError) as e:
        raise OSError("broker %s:%d: %s" % (b["host"], b["port"], e))
    c.loop_start()
    try:
        if not done.wait(timeout):
            raise OSError("broker %s:%d: no acknowledgement within %g s"
                          % (b["host"], b["port"], timeout))
        if got:
            raise OSError(got[0])
    finally:
        c.disconnect()
        c.loop_stop()


class ReadAhead:
    """The broker socket as paho sees it, reading ahead.

    paho reads a packet with recv(1) for its type, recv(1) for each length byte, then recv() of
    the rest: three or more system calls per packet, each one releasing the GIL, which one of
    the forwarding workers takes while paho's thread waits to get it back. This takes what the
    kernel has (up to 64 KB) in one call and serves paho's small reads from it. pending() is
    paho's own hook (meant for bytes TLS holds): its loop reads those before select().
    """

    __slots__ = ("_sock", "_data", "_pos")

    def __init__(self, sock):
        self._sock, self._data, self._pos = sock, b"", 0

    def recv(self, n):
        if self._pos >= len(self._data):
            data = self._sock.recv(max(n, 65536))
            if len(data) <= n:
                self._data, self._pos = b"", 0
                return data
            self._data, self._pos = data, 0
        out = self._data[self._pos:self._pos + n]
        self._pos += len(out)
        return out

    def pending(self):
        inner = self._sock.pending() if hasattr(self._sock, "pending") else 0
        return len(self._data) - self._pos + inner

    def __getattr__(self, name):  # send, fileno, setblocking, close, setsockopt: the socket's
        return getattr(self._sock, name)


class _Client(mqtt.Client):
    def _create_socket(self):
        # paho-mqtt 2.2.0 (pinned): where it makes the socket it then only recv()s, send()s,
        # select()s and asks pending(); its websocket transport wraps it the same way.
        return ReadAhead(super()._create_socket())


def _nodelay(client, userdata, sock):
    # Replies and PUBACKs are small packets sent one by one: without this, Nagle's algorithm and
    # delayed ACKs add ~40 ms to each request/reply.
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass  # a websocket or a proxy socket: keep going without it
