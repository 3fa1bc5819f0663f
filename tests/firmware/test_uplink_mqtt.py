"""MqttUplink over a scripted broker and relay: the envelope, replies sorted exactly as the HTTP
uplink sorts the same hub answers, timeouts, a broker that is down, the link and the agent."""
import asyncio
import json
import sys

from fakeboard import CARD, Board, cfg
from fakebroker import CFG, Broker
from fakecharger import Charger
from fakenet import Net
from hubreply import ACK, AUTH, SID, ack, reply, uplink

from check import arun, stop, until
from cpagent.agent import Agent
from cpagent.oicp import build as oicp
from cpagent.uplink.link import Link
from cpagent.uplink.mqtt import MqttUplink

START = oicp.authorize_start("DE*ABC", "04A1B2C3D4E5F6")


class Rig:
    """An MqttUplink whose relay answers each envelope with answer(env) -> down dict or None."""

    def __init__(self, answer=None, timeout_s=5):
        self.broker = Broker()
        self.envs = []
        self.answer = answer or (lambda env: {"status": 200, "body": json.loads(ACK)})
        self.broker.relay = self.relay
        self.t = 0
        self.logged = []
        c = dict(CFG)
        c["timeout_s"] = timeout_s
        self.up = MqttUplink(c, "cp-1", self.broker.connect, self.sleep_ms, lambda: self.t,
                             lambda n: "1a2b3c4d"[:2 * n], lambda lv, t: self.logged.append(t))
        self.task = None

    def relay(self, topic, payload):
        env = json.loads(payload)
        self.envs.append(env)
        d = self.answer(env)
        if d is None:
            return None
        if "id" not in d:
            d["id"] = env["id"]
        d["v"] = 1
        return json.dumps(d).encode()

    async def sleep_ms(self, ms):
        self.t += ms
        await asyncio.sleep(0)

    async def start(self):
        self.task = asyncio.create_task(self.up.run())
        await until(lambda: self.up.client.up, "connected")

    async def send(self, path=oicp.NOTIFY_PATH, body=None, msg_id="m-1"):
        return await self.up.send(path, {"Type": "Start"} if body is None else body, msg_id)


def test_the_envelope_goes_up_and_the_reply_with_its_id_comes_back():
    async def go():
        r = Rig()
        await r.start()
        kind, rep, after = await r.send(oicp.NOTIFY_PATH, {"n": 1}, "j-42")
        assert (kind, rep.ok, rep.code, after) == ("ok", True, "000", 0)
        topic, payload, flags, _ = r.broker.got[-1]
        assert (topic, flags) == ("cp/cp-1/up", 2)  # QoS 1
        assert payload == ('{"v":1,"id":"j-42","path":"%s","body":{"n":1}}'
                           % oicp.NOTIFY_PATH).encode()
        await stop(r.task)
    return arun(go())


def test_an_authorize_start_gets_a_fresh_a_id():
    async def go():
        r = Rig(lambda env: {"status": 200, "body": json.loads(AUTH)})
        await r.start()
        kind, rep, _ = await r.up.send(START[0], START[1])
        assert kind == "ok" and rep.session_id == SID
        assert r.envs[0]["id"] == "a-1a2b3c4d" and r.envs[0]["path"] == START[0]
        assert r.envs[0]["body"] == START[1]
        await stop(r.task)
    return arun(go())


def result(res):
    kind, value, after = res
    return kind, value.code if hasattr(value, "code") else value, after


def test_hub_answers_are_sorted_as_the_http_uplink_sorts_them():
    cases = (  # (status, body bytes, Retry-After seconds or None)
        (200, ACK, None), (200, ack("102"), None), (200, ack("017"), None),
        (200, ack("021"), None), (200, b"not json", None), (200, b"", None),
        (503, b"", 30), (429, b"", None), (500, b'{"message":"boom"}', None),
        (400, b'{"StatusCode":{"Code":"018","Description":"bad EvseID"}}', None),
        (404, b"", None), (403, b"", None))

    async def go():
        for status, body, after in cases:
            net = Net([reply(status, body, "" if after is None else
                             "Retry-After: %d\r\n" % after)])
            want = result(await uplink(net).send(oicp.NOTIFY_PATH, {"Type": "Start"}))

            d = {"status": status, "body": json.loads(body) if body[:1] == b"{" else None}
            if after is not None:
                d["retry_after"] = after
            r = Rig(lambda env, d=d: dict(d))
            await r.start()
            got = result(await r.send())
            if body and body[:1] != b"{":  # the relay turns a non-JSON hub body into null
                assert got[0] == want[0] and (got[0] != "retry" or "garbage" in got[1]), got
            else:
                assert got == want, (status, body, got, want)
            await stop(r.task)
    return arun(go())


def test_relay_errors_retry_when_the_hub_was_not_reached_and_fail_when_the_relay_refused():
    async def go():
        for down, want in (
                ({"status": 0, "body": None, "error": "hub unreachable: timeout"},
                 ("retry", "relay: hub unreachable: timeout", 0)),
                ({"status": 0, "body": None, "error": "hub unreachable", "retry_after": 5},
                 ("retry", "relay: hub unreachable", 5000)),
                ({"status": 400, "body": None, "error": "EvseID DE*XYZ*E1: not this charger's"},
                 ("fail", "relay: EvseID DE*XYZ*E1: not this charger's", 0)),
                ({"status": "200", "body": None}, ("retry", "garbage reply: down envelope", 0)),
                ({"status": 200, "body": [1]},
                 ("nothub", "not the hub's answer: HTTP 200: reply: expected", 0)),
                ({"status": 503, "body": None, "retry_after": "5"},
                 ("retry", "garbage reply: down envelope", 0)),
                ({"body": None}, ("retry", "garbage reply: down envelope", 0)),
                ({"status": 503, "body": None, "retry_after": 1e99},
                 ("nothub", "not the hub's answer: HTTP 5", 3600000)),
                ({"status": 503, "body": None, "retry_after": 99999},
                 ("nothub", "not the hub's answer: HTTP 503", 3600000)),
                ({"status": 503, "body": {"message": "x"}, "retry_after": -3},
                 ("hold", "HTTP 503", 0)),
                ({"status": 503, "body": None, "error": "busy", "retry_after": 2},
                 ("retry", "relay: busy", 2000))):
            r = Rig(lambda env, down=down: dict(down))
            await r.start()
            kind, value, after = await r.send()
            assert kind == want[0] and value.startswith(want[1]) and after == want[2], (
                down, kind, value, after)
            await stop(r.task)
    return arun(go())


def test_other_ids_and_junk_on_down_are_dropped_and_a_silent_relay_is_a_retry():
    async def go():
        r = Rig(timeout_s=0.02)
        conn = []

        def answer(env):
            if env["id"] == "m-1":
                return None  # the relay stays silent
            b = r.broker
            b.conns[-1].feed(b.down(b"not json") + b.down(b'{"v":1,"id":"m-1","status":200}')
                             + b.down(b"[1]"))
            conn.append(1)
            return {"status": 200, "body": json.loads(ACK)}
        r.answer = answer
        await r.start()
        kind, value, after = await r.send()
        assert (kind, value, after) == ("retry", "no reply from the relay in 20 ms", 0)
        kind, rep, _ = await r.send(msg_id="m-2")
        assert kind == "ok" and conn == [1]
        # every down message acknowledged, even junk (the reply's ack follows its delivery)
        await until(lambda: r.broker.acked == [1, 2, 3, 4], "all acked")
        assert len([t for t in r.logged if "dropped" in t]) == 1, r.logged  # the non-JSON one
        await stop(r.task)
    return arun(go())


def test_a_known_down_broker_is_a_retry_at_once_and_nothing_queues():
    async def go():
        r = Rig()
        r.broker.refuse = 1000
        task = asyncio.create_task(r.up.run())
        await until(lambda: r.up.client.error, "refused")
        assert await r.send() == ("retry", "broker unreachable: ECONNREFUSED", 0)
        assert r.up.client._fly == []
        await stop(task)
    return arun(go())


def test_what_cannot_be_sent_fails_for_good():
    async def go():
        r = Rig()
        await r.start()
        kind, value, _ = await r.send(body={"Type": "Start", "ChargingStart": "@1:500"})
        assert kind == "fail" and value.startswith("not sendable: ") and "ChargingStart" in value
        kind, value, _ = await r.send(body={"x": "y" * 8200})
        assert kind == "fail" and "at most 8192" in value
        assert len(r.broker.got) == 1  # only the online status went out
        await stop(r.task)
    return arun(go())


def test_the_link_sends_journal_ids_and_retries_with_the_same_id():
    async def go():
        n = [0]

        def answer(env):
            n[0] += 1
            if n[0] == 1:
                return {"status": 0, "body": None, "error": "hub unreachable"}
            return {"status": 200, "body": json.loads(ACK)}
        r = Rig(answer)
        await r.start()
        ch = Charger(2)
        link = Link(ch, r.up, r.sleep_ms, lambda n: "0000")
        task = asyncio.create_task(link.run())
        await until(lambda: len(ch.done) == 2, "delivered")
        assert [e["id"] for e in r.envs] == ["m0", "m0", "m1"]
        assert ch.done == [("delivered", "m0"), ("delivered", "m1")]
        await stop(task)
        await stop(r.task)
    return arun(go())


def advancing(b, cond, what):
    """until(cond) while the board's clock moves 100 ms a step (3000 steps at most)."""
    return until(cond, what, 3000, lambda: b.advance(100))


def mqtt_agent(answers=None):
    """An Agent on the MQTT uplink, its scripted relay answering from the board's hub; the
    charger's answers to commands go into `answers` (cid -> (code, info)), unanswered."""
    c = cfg("none", "none")
    c["uplink"] = dict(CFG, kind="mqtt")
    b = Board({})
    broker = Broker()

    def relay(topic, payload):
        env = json.loads(payload)
        if "reply" in env:
            if answers is not None:
                answers[env["reply"]] = (env["code"], env["info"])
            return None
        body = b.hub.answer(env["path"], env["body"])
        return json.dumps({"v": 1, "id": env["id"], "status": 200,
                           "body": json.loads(body)}).encode()
    broker.relay = relay
    b.connect = broker.connect
    return Agent(c, b), b, broker


def test_the_agent_runs_a_session_through_the_broker_and_loads_only_its_uplink():
    async def go():
        sys.modules.pop("cpagent.uplink.mqtt", None)
        b = Board({})
        Agent(cfg("none", "none"), b)
        assert "cpagent.uplink.mqtt" not in sys.modules
        a, b, broker = mqtt_agent()
        assert type(a.uplink).__name__ == "MqttUplink"  # a fresh import: not the same class
        task = asyncio.create_task(a.run())
        ev = a.charger.evses[0]
        for what, cond in (("connected", lambda: a.uplink.client.up),
                           ("wall clock", lambda: a.clock.known)):
            for _ in range(500):
                if cond():
                    break
                b.advance(100)
                await asyncio.sleep(0)
            assert cond(), what
        a.tap(CARD)
        for step in ("authorized", "plug", "charging", "unplug", "sent"):
            if step == "plug" or step == "unplug":
                a.charger.plug(0, step == "plug")
                a.link.kick()
                continue
            for _ in range(2000):
                if ev.state == step or step == "sent" and ev.state == "idle" \
                        and a.stats()["pending"] == 0:
                    break
                b.advance(100)
                await asyncio.sleep(0)
        assert b.hub.kinds() == ["Authorize", "Start", "End", "CDR"]
        ids = [json.loads(g[1])["id"] for g in broker.got if g[0] == "cp/cp-1/up"
               and b"/status-records" not in g[1]]
        assert ids[0] == "a-7f7f7f7f" and len(set(ids)) == 4
        await stop(task)
        for _ in range(5):
            await asyncio.sleep(0)
        assert not a.uplink.client.up  # the broker task went with the agent
    return arun(go())


def test_a_down_command_goes_to_on_command_and_is_no_reply():
    async def go():
        r = Rig(lambda env: None, timeout_s=1)
        got = []
        r.up.on_command = got.append
        await r.start()
        r.broker.conns[-1].feed(r.broker.down(b'{"v":1,"cmd":"requeue","msg_id":null}'))
        await until(lambda: got, "command")
        assert got == [{"v": 1, "cmd": "requeue", "msg_id": None}]
        await stop(r.task)
    return arun(go())


def test_the_status_topic_tells_the_dead_letters_and_requeue_comes_down_the_broker():
    async def go():
        a, b, broker = mqtt_agent()
        fixed = [False]
        hub_relay = broker.relay

        def relay(topic, payload):  # the board's hub, but a CDR is refused until fixed
            env = json.loads(payload)
            if "charge-detail-record" in env["path"] and not fixed[0]:
                body = {"Result": False, "StatusCode": {"Code": "019", "Description": "no"}}
                return json.dumps({"v": 1, "id": env["id"], "status": 200,
                                   "body": body}).encode()
            return hub_relay(topic, payload)
        broker.relay = relay
        task = asyncio.create_task(a.run())

        def wait(cond, what):
            return advancing(b, cond, what)

        def status():
            return [json.loads(p) for t, p, _f, _i in broker.got
                    if t == "cp/cp-1/status" and p[:1] == b"{"]
        await wait(lambda: a.clock.known and status(), "connected, status told")
        first = status()[0]  # (pending: the EVSE's status at boot may not be sent yet)
        assert (first["link"], first["dead"], first["dead_reasons"]) == ("up", 0, [])
        a.tap(CARD)
        await wait(lambda: a.charger.evses[0].state == "authorized", "authorized")
        a.charger.plug(0, True)
        a.charger.plug(0, False)
        a.link.kick()
        await wait(lambda: status()[-1]["dead"] == 1, "dead letter on the status topic")
        assert status()[-1]["dead_reasons"][0].startswith("019")
        fixed[0] = True
        broker.conns[-1].feed(broker.down(b'{"v":1,"cmd":"requeue","msg_id":null}'))
        await wait(lambda: status()[-1]["dead"] == 0 and a.stats()["pending"] == 0, "requeued")
        assert b.hub.kinds()[-2:] == ["End", "CDR"]
        broker.conns[-1].feed(broker.down(b'{"v":1,"cmd":"reboot"}'))
        await wait(lambda: [t for lv, t in b.logs if "command ignored" in t], "bad command")
        await stop(task)
    return arun(go())


EVCO = "DE-8EO-CAB123456-7"
HSID = "0ac1f1b2-1111-2222-3333-444455556666"


def remote_cmd(cmd, cid, deadline, sid=HSID, evse="DE*ABC*E0001*1"):
    env = {"v": 1, "cmd": cmd, "cid": cid, "deadline": deadline, "session_id": sid,
           "evse_id": evse, "provider_id": "DE-8EO"}
    if cmd == "remote_start":
        env.update(evco_id=EVCO, cpo_session_id="emp-app-1", product_id=None)
    return json.dumps(env).encode()


def test_remote_start_and_stop_come_down_the_broker_and_are_answered_on_up():
    async def go():
        answers = {}
        a, b, broker = mqtt_agent(answers)
        task = asyncio.create_task(a.run())
        ev = a.charger.evses[0]

        def wait(cond, what):
            return advancing(b, cond, what)

        def down(payload):
            broker.conns[-1].feed(broker.down(payload))
        await wait(lambda: a.clock.known and a.uplink.client.up, "connected")
        t = a.clock.now_unix()
        down(remote_cmd("remote_start", "c-1", t + 30))
        await wait(lambda: "c-1" in answers, "the start answered")
        assert answers["c-1"] == ("000", "started: waiting for the EV")
        assert a.journal.sessions()[HSID]["ev"] == EVCO  # on flash
        down(remote_cmd("remote_start", "c-1", t + 30))  # the broker brings it again
        down(remote_cmd("remote_start", "c-2", t + 30,
                        sid="0ac1f1b2-1111-2222-3333-444455557777"))
        down(remote_cmd("remote_start", "c-3", t + 30, evse="DE*ABC*E0009"))
        down(remote_cmd("remote_start", "c-4", t - 1, sid="0ac1f1b2-1111-2222-3333-44445555"
                        "8888"))
        down(b'{"v":1,"cmd":"remote_stop","cid":"c-5","deadline":1,"session_id":"x"}')
        await wait(lambda: len(answers) == 5, "all answered")
        assert [answers[k][0] for k in ("c-2", "c-3", "c-4")] == ["602", "603", "501"]
        assert answers["c-5"][0] == "501" and "session_id" in answers["c-5"][1]
        assert not [p for p, _b in b.hub.got if "/authorize/start" in p]
        a.charger.plug(0, True)
        a.link.kick()
        await wait(lambda: ev.state == "charging", "charging")
        down(remote_cmd("remote_stop", "c-6", t - 60))  # late: a stop is still carried out
        await wait(lambda: ev.state == "idle" and a.stats()["pending"] == 0, "all sent")
        assert answers["c-6"] == ("000", "stopped")
        assert b.hub.kinds() == ["Start", "End", "CDR"]
        for _p, body in b.hub.got:
            assert body["SessionID"] == HSID and body["CPOPartnerSessionID"] == "emp-app-1"
            assert body["Identification"] == {"RemoteIdentification": {"EvcoID": EVCO}}
        assert [s for _e, s in b.hub.statuses][-2:] == ["Occupied", "Available"]
        await stop(task)
    return arun(go())


def test_a_reconnect_reports_every_evse_status_again():
    async def go():
        a, b, broker = mqtt_agent()
        task = asyncio.create_task(a.run())

        def wait(cond, what):
            return advancing(b, cond, what)
        await wait(lambda: b.hub.statuses, "the boot's status")
        assert b.hub.statuses == [("DE*ABC*E0001*1", "Available")]
        broker.conns[-1].hangup()  # the broker drops the charger; it reconnects
        await wait(lambda: len(b.hub.statuses) == 2, "the status again")
        assert a.uplink.client.connects == 2
        await stop(task)
    return arun(go())
