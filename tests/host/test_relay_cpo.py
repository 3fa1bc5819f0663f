"""The relay as the CPO's OICP endpoint: the mock hub plays Hubject (remote start/stop over mutual
TLS) toward the relay, which commands a real firmware charger (HostBoard + Agent on its own event
loop) through a real Mosquitto; what is not valid OICP never reaches a charger."""
import asyncio
import json
import os
import ssl
import threading
import time
import urllib.request
from types import SimpleNamespace

import pytest
from relaydoc import BOUND, EVCO, EVSE, HUB_CN, OP, PROVIDER, USERS, relay_doc, until

from cpagent import config as fw_config
from cpagent.agent import Agent
from cpagent.boards.host import HostBoard
from host_sim import certs, oicp_schemas
from host_sim.broker import Broker, BrokerClient
from host_sim.hub import HubThread
from host_sim.hub.remote import Cpo
from host_sim.relay import Relay, child
from host_sim.relay.config import Config, ConfigError
from host_sim.virtual.ev import EvLoad, RealTime
from host_sim.virtual.meter import VirtualMeter
from host_sim.virtual.pn532 import VirtualPn532


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = certs.make_test_pki(str(tmp_path_factory.mktemp("pki")), (OP, HUB_CN))
    stranger = str(tmp_path_factory.mktemp("stranger"))
    p["stranger"] = certs.make_client(stranger, HUB_CN, ca_dir=stranger)  # another CA
    return p


@pytest.fixture
def rig(pki, tmp_path):
    """(hub thread, relay, broker): the hub calls the relay's endpoint with CN=HUBJECT."""
    with HubThread(tls=pki["dir"]) as hub, Broker(tmp_path / "mq", USERS) as broker:
        relay = Relay(Config(relay_doc(pki, hub, broker))).start()
        try:
            child.healthy(relay.http.port)
            cert, key = pki["clients"][HUB_CN]
            hub.hub.cpo = Cpo(relay.cpo.url, cert=cert, key=key, ca=pki["ca"])
            yield hub, relay, broker
        finally:
            relay.stop()


class ChargerThread:
    """A real firmware charger on its own event loop in a thread: kill() is a power cut (the
    loop stops between two steps: nothing more is written), freeze(s) blocks the loop (the
    socket stays open, nothing is read), start() boots it again from its flash folder."""

    def __init__(self, tmp, broker):
        self.cfg = fw_config.load(json.dumps({
            "charger_id": "cp-1", "operator_id": OP,
            "evses": [{"evse_id": EVSE, "meter_address": 1}],
            "reader": {"type": "pn532", "hold_ms": 500},
            "meter": {"model": "sdm630", "timeout_ms": 200},
            "uplink": {"kind": "mqtt", "host": broker.host, "port": broker.port,
                       "user": "cp-1", "password": USERS["cp-1"], "keepalive_s": 30},
            "timing": {"poll_s": 5, "ev_wait_s": 600}, "log_level": 2}))
        self.state = os.path.join(str(tmp), "flash")
        self.car = RealTime(EvLoad(max_w=7400, ramp_s=5), 1)
        self.meter = VirtualMeter("sdm630", 1, self.car)
        self.lines = []
        self.loop = self.agent = self.thread = None

    def start(self, speed=1):
        self.car.speed, self.car.t = speed, time.monotonic() * speed
        self.loop = asyncio.new_event_loop()
        board = HostBoard(self.cfg, self.state, speed=speed, reader_dev=VirtualPn532(),
                          meter_dev=self.meter, echo=self.lines.append)
        self.agent = Agent(self.cfg, board)
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            self.loop.call_soon(ready.set)
            self.task = self.loop.create_task(self.agent.run())
            self.loop.run_forever()
        self.thread = threading.Thread(target=run, daemon=True, name="charger")
        self.thread.start()
        ready.wait(5)

    def kill(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        tasks = asyncio.all_tasks(self.loop)
        for t in tasks:
            t.cancel()
        # Every task must have unwound and each closed transport run its connection_lost
        # (one more loop turn) before the broker sees the socket go: then the will fires at
        # once, not 1.5 keepalives later.
        self.loop.run_until_complete(asyncio.wait_for(
            asyncio.gather(*tasks, return_exceptions=True), 5))
        for _ in range(3):
            self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()

    def freeze(self, seconds):
        self.loop.call_soon_threadsafe(time.sleep, seconds)

    def states(self):
        return [e.state for e in self.agent.charger.evses]


def remote(hub, op, **kw):
    return hub.call(hub.hub.remote, op, EVSE, **kw)


def start(hub, **kw):
    return remote(hub, "start", evco_id=EVCO, provider_id=PROVIDER, **kw)


def test_remote_start_power_cut_after_yes_and_remote_stop_through_the_relay(rig, tmp_path):
    hub, relay, broker = rig
    ch = ChargerThread(tmp_path, broker)
    ch.start(speed=1)
    until(lambda: relay.commands.online.get("cp-1"), "the charger online", lines=ch.lines)
    until(lambda: hub.call(hub.hub.rules.evses_json) == [
        {"OperatorID": OP, "EvseID": EVSE, "EvseStatus": "Available", "data": False}],
        "Available at the hub", lines=ch.lines)
    first = start(hub)
    assert first["status"] == 200 and first["code"] == "000", first
    assert first["body"]["Result"] is True and first["body"]["SessionID"] == first["session_id"]
    assert first["seconds"] < BOUND          # the relay's bound, measured at the hub
    sid = first["session_id"]
    ch.kill()                                 # power cut right after the charger's "yes"
    until(lambda: not relay.commands.online.get("cp-1"), "the will")
    ch.start()                                # boots from its flash: the session resumes
    until(lambda: relay.commands.online.get("cp-1"), "online again", lines=ch.lines)
    until(lambda: ch.states() == ["authorized"], "the session resumed", lines=ch.lines)
    again = start(hub, session_id=sid)        # Hubject repeats it: answered the same
    assert again["code"] == "000" and again["seconds"] < BOUND
    other = start(hub)                         # another driver on the same EVSE
    assert other["code"] == "602" and other["seconds"] < BOUND, other
    # Once more from the flash, 100x faster, for a Progress within the test's time (the
    # board's wall clock then runs ahead: a start's deadline would have passed, not a stop's).
    ch.kill()
    until(lambda: not relay.commands.online.get("cp-1"), "the will")
    ch.start(speed=100)
    until(lambda: relay.commands.online.get("cp-1"), "online again", lines=ch.lines)
    ch.car.ev.plug()
    ch.car.ev.start()

    def session():
        return [s for s in hub.call(hub.hub.sessions) if s["SessionID"] == sid]
    until(lambda: any(n["Type"] == "Progress" for n in session()[0]["notifications"]),
          "Start and a Progress at the hub", 60, ch.lines)
    stop = remote(hub, "stop", provider_id=PROVIDER, session_id=sid)
    assert stop["code"] == "000" and stop["seconds"] < BOUND, stop
    until(lambda: session()[0]["cdr"] is not None, "the CDR", 60, ch.lines)
    s = session()[0]
    types = [n["Type"] for n in s["notifications"]]
    assert types[0] == "Start" and types[-1] == "End" and types.count("Start") == 1
    assert types.count("End") == 1 and s["stopped"] and s["errors"] == 0
    assert s["Identification"] == {"RemoteIdentification": EVCO}
    ex = hub.call(lambda: hub.hub.exchanges)
    mine = [e for e in ex if e["operation"] != "PushEvseStatus"]
    assert "AuthorizeStart" not in [e["operation"] for e in mine]
    assert all(e["request"]["SessionID"] == sid for e in mine)
    for e in mine:
        assert e["request"]["Identification"] == {"RemoteIdentification": {"EvcoID": EVCO}}
    cdrs = [e for e in mine if e["operation"] == "ChargeDetailRecord" and not e["duplicate"]]
    assert len(cdrs) == 1 and cdrs[0]["code"] == "000"
    assert len([x for x in hub.call(hub.hub.sessions) if x["state"] != "authorized"]) == 1
    # EVSE status at the hub: Available -> Occupied -> Available for the session
    seen = [r["EvseStatus"] for e in ex if e["operation"] == "PushEvseStatus"
            for r in e["request"]["OperatorEvseStatus"]["EvseStatusRecord"]]
    # (the power cuts between: OutOfService from the will, Occupied again at each boot)
    assert seen[0] == "Available" and seen[-1] == "Available", seen
    assert [x for x in seen if x != "OutOfService"][1] == "Occupied", seen
    assert hub.call(hub.hub.stats)["overlaps"] == {}
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % relay.http.port).read()
    assert b'relay_remote_commands_total{code="000",op="AuthorizeRemoteStart"} 2' in text
    assert b'relay_remote_commands_total{code="602",op="AuthorizeRemoteStart"} 1' in text
    # The charger goes away: its will turns the EVSE OutOfService; a start is 501 at once.
    ch.kill()
    until(lambda: hub.call(hub.hub.rules.evses_json) and hub.call(
        hub.hub.rules.evses_json)[0]["EvseStatus"] == "OutOfService", "OutOfService")
    off = start(hub)
    assert off["code"] == "501" and off["seconds"] < 1.0 and "offline" in \
        off["body"]["StatusCode"]["AdditionalInfo"]


def test_a_start_held_past_its_deadline_is_refused_by_the_charger(rig, tmp_path):
    hub, relay, broker = rig
    mon = BrokerClient(broker, "relay", USERS["relay"], client_id="monitor")
    mon.subscribe("cp/cp-1/up")
    ch = ChargerThread(tmp_path, broker)
    ch.start()
    until(lambda: relay.commands.online.get("cp-1"), "online", lines=ch.lines)
    while True:  # the boot's statuses, until the line is quiet
        try:
            mon.get(1.5)
        except Exception:
            break
    ch.freeze(BOUND + 2)   # connected, but it reads nothing: the command waits at the broker
    r = start(hub)
    assert r["code"] == "501" and "no answer" in r["body"]["StatusCode"]["AdditionalInfo"]
    assert BOUND <= r["seconds"] < BOUND + 1
    end = time.monotonic() + 20
    while True:
        _topic, payload = mon.get(max(end - time.monotonic(), 0.1))
        doc = json.loads(payload)
        if "reply" in doc:
            break
    assert doc["code"] == "501" and "deadline" in doc["info"], doc
    assert ch.states() == ["idle"]
    ch.kill()
    mon.close()


class FakeCharger:
    """A charger speaking the contract by hand: answers each command with code (None: silent)."""

    def __init__(self, broker, code="000"):
        self.got = []
        self.mq = BrokerClient(broker, "cp-1", USERS["cp-1"], will=("cp/cp-1/status",
                                                                      b"offline"))
        self.mq.subscribe("cp/cp-1/down")
        self.mq.publish("cp/cp-1/status", b"online", retain=True)
        self.code = code
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            try:
                _t, payload = self.mq.get(0.2)
            except Exception:
                continue
            doc = json.loads(payload)
            self.got.append(doc)
            if self.code and "cmd" in doc:
                self.mq.publish("cp/cp-1/up", json.dumps(
                    {"v": 1, "reply": doc["cid"], "code": self.code, "info": "ok"}).encode())

    def close(self):
        self.stop = True
        self.thread.join(2)
        self.mq.close()


def _post(url, path, body, ctx):
    req = urllib.request.Request(url + path, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _ctx(pki, which):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.load_cert_chain(*which)
    return ctx


def test_what_is_not_valid_oicp_is_refused_named_logged_and_reaches_no_charger(rig, pki,
                                                                                 caplog):
    hub, relay, broker = rig
    fake = FakeCharger(broker)
    try:
        until(lambda: relay.commands.online.get("cp-1"), "online")
        url, hubs = relay.cpo.url, _ctx(pki, pki["clients"][HUB_CN])
        path = oicp_schemas.remote_path("AuthorizeRemoteStart", PROVIDER)
        good = hub.hub.cpo.body("start", EVSE, PROVIDER, EVCO)
        assert _post(url, path, b"{not json", hubs)[0] == 400
        status, out = _post(url, path, json.dumps(dict(good, EvseID="nope")).encode(), hubs)
        assert status == 400 and "$.EvseID" in out["message"], out
        status, out = _post(url, path, json.dumps({k: v for k, v in good.items()
                                                   if k != "SessionID"}).encode(), hubs)
        assert status == 400 and "$.SessionID: is required" in out["message"], out
        other = oicp_schemas.remote_path("AuthorizeRemoteStart", "DE-XYZ")
        status, out = _post(url, other, json.dumps(good).encode(), hubs)
        assert status == 400 and "$.ProviderID" in out["message"]
        # a certificate of the right CA that is not the hub's: 017, Unauthorized Access
        status, out = _post(url, path, json.dumps(good).encode(), _ctx(pki, pki["clients"][OP]))
        assert status == 200 and out["StatusCode"]["Code"] == "017" and out["Result"] is False
        with pytest.raises(OSError):  # another CA's: the handshake is refused
            _post(url, path, json.dumps(good).encode(), _ctx(pki, pki["stranger"]))
        with pytest.raises(OSError):  # no certificate at all
            _post(url, path, json.dumps(good).encode(), ssl.create_default_context(
                cafile=pki["ca"]))
        unknown = hub.call(hub.hub.remote, "start", "DE*ABC*E9", evco_id=EVCO,
                           provider_id=PROVIDER)
        assert unknown["code"] == "603" and unknown["body"]["Result"] is False
        time.sleep(0.5)
        assert [d for d in fake.got if "cmd" in d] == []     # nothing reached the charger
        assert relay.metrics.get("relay_remote_refused_total", reason="schema") == 4
        assert relay.metrics.get("relay_remote_refused_total", reason="certificate") == 1
        assert relay.metrics.get("relay_remote_refused_total", reason="tls") == 2
        assert "not the hub's certificate" in caplog.text
        ok = start(hub)                                       # a valid one does
        assert ok["code"] == "000" and [d["cmd"] for d in fake.got] == ["remote_start"]
        assert fake.got[0]["evco_id"] == EVCO and fake.got[0]["session_id"] == ok["session_id"]
        assert fake.got[0]["deadline"] <= time.time() + BOUND + 1
        assert relay.owners.check("cp-1", ok["session_id"]) is None  # its session is cp-1's
    finally:
        fake.close()


def test_a_silent_charger_is_501_at_the_bound_and_a_repeat_sends_one_command(rig):
    hub, relay, broker = rig
    fake = FakeCharger(broker, code=None)
    try:
        until(lambda: relay.commands.online.get("cp-1"), "online")
        results = []
        body = hub.hub.cpo.body("start", EVSE, PROVIDER, EVCO)

        def call():
            results.append(hub.hub.cpo.call("start", body))
        ts = [threading.Thread(target=call) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(BOUND + 5)
        assert [r["code"] for r in results] == ["501", "501"]
        assert all(BOUND - 0.1 <= r["seconds"] < BOUND + 1 for r in results)
        assert len([d for d in fake.got if "cmd" in d]) == 1  # one command down for both
    finally:
        fake.close()


def test_cpo_config_errors_name_the_field(pki):
    # Config() only checks fields and files: no hub or broker needs to run for it.
    hub = SimpleNamespace(url="http://127.0.0.1:1")
    broker = SimpleNamespace(host="127.0.0.1", port=1883)
    doc = relay_doc(pki, hub, broker)
    del doc["cpo"]["cert"]
    with pytest.raises(ConfigError, match="cpo.cert: required"):
        Config(doc)
    doc = relay_doc(pki, hub, broker, timeout=90)
    with pytest.raises(ConfigError, match="cpo.command_timeout_s"):
        Config(doc)
    doc = relay_doc(pki, hub, broker)
    doc["cpo"] = {"port": 0, "insecure_http": True}
    assert Config(doc).cpo["ca"] is None
