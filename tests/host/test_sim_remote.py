"""`run --mqtt start` with app-started sessions: the embedded mock hub sends AuthorizeRemoteStart/
Stop to the relay's CPO endpoint, the charger runs the session under the hub's SessionID; such a
scenario is refused without --mqtt start; the relay's command deadlines follow the run's clock."""
import asyncio
import io
import json
import threading
import time

from simrun import CARD, _cmd, _run, _scenario

from host_sim.relay.commands import Commands, real_deadline
from host_sim.relay.metrics import Metrics
from host_sim.sim import cli, hubs, scenario

EVCO, PROVIDER = "DE-8EO-CAB123456-7", "DE-8EO"
REMOTE = {"charger": {"evses": 2}, "cards": [CARD], "chargers": [{"sessions": [
    {"card": CARD, "idle_s": 20, "plug_s": 10, "charge_s": 400},
    {"lane": 1, "remote_start": {"evco_id": EVCO, "provider_id": PROVIDER},
     "idle_s": 30, "plug_s": 10, "charge_s": 400}]}]}
STEP = "chargers[0].sessions[1].steps[1].remote_start"


def test_a_remote_session_runs_through_the_relays_cpo_endpoint(tmp_path, monkeypatch):
    kept = []

    class Kept(hubs.Embedded):  # the real embedded hub, kept for a look after the run
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            kept.append(self.hub)

    monkeypatch.setattr(cli.hubs, "Embedded", Kept)
    a = cli._args(["--scenario", _scenario(tmp_path, REMOTE), "--speed", "200", "--mqtt",
                   "start", "--quiet", "--log", str(tmp_path / "log")])
    o, e = io.StringIO(), io.StringIO()
    rc = asyncio.run(cli.Run(a, cli._load_scenario(a), o, e).main())
    out, err = o.getvalue(), e.getvalue()
    assert rc == 0, out + err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["cpo_endpoint"].startswith("http://127.0.0.1:")
    assert "run: relay cpo endpoint %s" % summary["cpo_endpoint"] in err
    assert EVCO in out  # the session table's card column
    hub = kept[0]
    calls = [(c["op"], c["code"]) for c in hub.remote_calls]
    assert calls == [("AuthorizeRemoteStart", "000"), ("AuthorizeRemoteStop", "000")]
    sid = hub.remote_calls[0]["session_id"]
    assert hub.remote_calls[1]["session_id"] == sid
    mine = [e for e in hub.exchanges if e["session_id"] == sid]
    ops = [(e["operation"], e["request"].get("Type")) for e in mine if e["code"] == "000"]
    for want in (("ChargingNotifications", "Start"), ("ChargingNotifications", "End"),
                 ("ChargeDetailRecord", None)):
        assert want in ops, ops
    for e in mine:
        if e["operation"] != "PushEvseStatus":
            assert e["request"]["Identification"] == {"RemoteIdentification": {"EvcoID": EVCO}}
    remote_evse = hub.remote_calls[0]["evse_id"]
    assert not [e for e in hub.exchanges if e["operation"] == "AuthorizeStart"
                and e["request"].get("EvseID") == remote_evse]
    assert [e for e in hub.exchanges if e["operation"] == "AuthorizeStart"]  # the card's


def test_a_remote_session_without_mqtt_start_is_refused_naming_the_step(tmp_path):
    r, summary = _run(_cmd("--scenario", _scenario(tmp_path, REMOTE), "--quiet"))
    assert r.returncode == 2 and summary is None
    assert STEP in r.stderr and "--mqtt start" in r.stderr


def test_scenario_errors_name_the_remote_field():
    def err(session):
        try:
            scenario.check({"chargers": [{"sessions": [session]}]})
        except scenario.ScenarioError as e:
            return str(e)
        raise AssertionError("accepted %r" % session)
    good = {"evco_id": EVCO, "provider_id": PROVIDER}
    assert err({"remote_start": dict(good, evco_id="x")}).startswith(
        "chargers[0].sessions[0].remote_start.evco_id:")
    assert err({"remote_start": {"evco_id": EVCO}}) == \
        "chargers[0].sessions[0].remote_start.provider_id: required"
    assert err({"remote_start": good, "card": CARD}).startswith(
        "chargers[0].sessions[0].card: not with remote_start")
    assert err({"remote_start": good, "end": "tap"}).startswith(
        "chargers[0].sessions[0].end: expected one of remote_stop, meter_fault")
    assert err({"steps": [{"remote_start": good}, {"tap": "stop"}]}).startswith(
        "chargers[0].sessions[0].steps[1].tap: not in a remote_start session")
    assert err({"steps": [{"remote_stop": True}, {"remote_start": good}]}).startswith(
        "chargers[0].sessions[0].steps: expected one")
    ok = scenario.check({"chargers": [{"sessions": [{"remote_start": good}]}]})
    assert scenario.remote_step(ok) == "chargers[0].sessions[0].steps[1].remote_start"
    assert "remote_stop" in ok["chargers"][0]["sessions"][0]["steps"][5]


def _commands(**kw):
    sent = []
    c = Commands("r1", {"cp-1": {"evses": ["DE*SIM*E0000*1"]}}, 0.2,
                 lambda t, p: sent.append((t, json.loads(p))), lambda sid, ch: True,
                 Metrics(), **kw)
    c.on_status("cp-1", b"online")
    return c, sent


def _stop(c):
    body = {"SessionID": "3f1c4b6e-0000-4000-8000-000000000001", "EvseID": "DE*SIM*E0000*1",
            "ProviderID": PROVIDER}
    t = threading.Thread(target=c.handle, args=("AuthorizeRemoteStop", body))
    t.start()
    t.join(5)


def test_command_deadlines_are_the_injected_clocks_and_real_time_by_default():
    c, sent = _commands(deadline=lambda charger, timeout_s: 1000 * len(charger) + timeout_s)
    _stop(c)
    assert sent[0][0] == "cp/cp-1/down" and sent[0][1]["deadline"] == 4000.2
    c, sent = _commands()
    t = time.time()
    _stop(c)
    assert int(t + 0.2) <= sent[0][1]["deadline"] <= int(time.time() + 0.2)
    assert c.deadline is real_deadline


def test_the_mqtt_scenario_is_the_default_and_one_app_started_session():
    def load(name):
        with open(scenario.DEFAULT.replace("default.json", name)) as f:
            return scenario.load(f.read())
    default, mqtt = load("default.json"), load("mqtt.json")
    extra = [s for c in mqtt["chargers"] for s in c["sessions"] if s["card"] is None]
    assert len(extra) == 1 and scenario.remote_step(default) is None
    for c in mqtt["chargers"]:
        c["sessions"] = [s for s in c["sessions"] if s["card"] is not None]
    assert dict(mqtt, name=None) == dict(default, name=None)
