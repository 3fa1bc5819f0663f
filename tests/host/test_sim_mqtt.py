"""`python -m host_sim run --mqtt`: the fleet through Mosquitto and the relay. The hub records what
a direct run gives it; faults along the whole chain lose nothing, repeat nothing in effect and
keep the relay's rate; the options' errors are named; HostBoard speaks TLS to a broker."""
import asyncio
import json
import signal
import subprocess
import time
from datetime import datetime

import pytest
from relaymq import _window_ok, spawn_relay
from simrun import CARD, ENV, ROOT, _cmd, _run, _scenario

from cpagent.boards.host import HostBoard
from cpagent.uplink import mqtt_codec as mqtt
from host_sim import certs
from host_sim.broker import Broker
from host_sim.hub import HubThread
from host_sim.sim import cli, scenario
from host_sim.sim.fleet import OPERATOR, charger_config, charger_id, evse_id

CARD2 = "04B2C3D4E5F607"
# Two lanes on two EVSEs: a tap-to-stop session with one Progress (400 s: the next one would be
# due 200 s = 2 real s after the stop tap), an unplug-first one, a meter fault (Error).
SAME = {"charger": {"evses": 2}, "chargers": [{"sessions": [
    {"card": CARD, "idle_s": 20, "plug_s": 10, "charge_s": 400},
    {"card": CARD2, "lane": 1, "idle_s": 60, "plug_s": 10, "charge_s": 200, "end": "unplug"},
    {"card": CARD, "idle_s": 30, "plug_s": 10, "charge_s": 100, "end": "meter_fault"}]}]}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return certs.make_test_pki(str(tmp_path_factory.mktemp("pki")), (OPERATOR,))


def _exchanges(hub):
    return hub.call(lambda: hub.hub.exchanges)


def _by_evse(exchanges):
    """{EvseID: [one list per hub session, in order: (operation, Type, card, status, code)]}:
    what differs by nature (SessionIDs, times, energies) left out."""
    sessions = {}
    for e in exchanges:
        if e["operation"] == "PushEvseStatus":
            continue  # latest wins: how many were superseded depends on the timing
        req = e["request"]
        ident = req.get("Identification", {}).get("RFIDMifareFamilyIdentification", {})
        key = (e["operation"], req.get("Type"), ident.get("UID"), e["status"], e["code"])
        sessions.setdefault(e["session_id"], (req["EvseID"], []))[1].append(key)
    out = {}
    for evse, msgs in sessions.values():
        out.setdefault(evse, []).append(msgs)
    return out


def _without_pushes(stats, exchanges):
    """The hub's counters (requests, codes, duplicates) less its PushEvseStatus answers."""
    out = json.loads(json.dumps(stats))
    for e in exchanges:
        if e["operation"] == "PushEvseStatus":
            out["requests"] -= 1
            if e["duplicate"]:
                out["duplicates"] -= 1
            elif e["code"]:
                out["codes"][e["code"]] -= 1
    return out


def _records(pushes):
    return [r for e in pushes for r in e["request"]["OperatorEvseStatus"]["EvseStatusRecord"]]


def test_direct_https_and_through_mosquitto_and_the_relay_give_the_hub_the_same(pki, tmp_path):
    scn = _scenario(tmp_path, SAME)
    seen = {}
    for mode in ("http", "mqtt"):
        with HubThread(cards=[CARD, CARD2], tls=pki["dir"]) as hub:
            extra = ["--mqtt", "start"] if mode == "mqtt" else []
            r, s = _run(_cmd("--hub", hub.url, "--tls", "--certs", pki["dir"], "--chargers", 2,
                             "--speed", 100, "--quiet", "--scenario", scn, *extra))
            assert r.returncode == 0, r.stderr[-3000:]
            assert s["ok"] and s["uplink"] == mode and s["sessions"] == 6
            assert s["journaled"] == s["delivered"] + s["superseded"]  # statuses: latest wins
            assert s["failed"] == s["pending"] == 0
            ex = _exchanges(hub)
            # the relay's client certificate speaks for DE*SIM as the chargers' own did
            assert {e["cn"] for e in ex} == {OPERATOR}
            seen[mode] = (_by_evse(ex), _without_pushes(s["hub_view"], ex))
    direct, relayed = seen["http"][0], seen["mqtt"][0]
    assert sorted(direct) == [evse_id(k, i) for k in range(2) for i in range(2)]
    first = direct[evse_id(0, 0)][0]
    assert [m[:2] for m in first] == [("AuthorizeStart", None), ("ChargingNotifications", "Start"),
                                      ("ChargingNotifications", "Progress"),
                                      ("ChargingNotifications", "End"),
                                      ("ChargeDetailRecord", None)]
    assert relayed == direct
    # the hub's counters but for the status pushes, which the relay merges (docs/relay.md)
    assert seen["mqtt"][1] == seen["http"][1]


N, LIMIT = 8, 40  # 40 notifications/min: a burst of 4, then 0.6/s; 8 chargers start at once
ONE = {"charger": {"evses": 1}, "chargers": [{"sessions": [
    {"card": CARD, "idle_s": 20, "plug_s": 10, "charge_s": 200}]}]}


def _until(what, cond, proc, deadline_s=60):
    """Waits for cond() while the simulator runs; a bounded wait on a condition, never a sleep
    that guesses."""
    end = time.monotonic() + deadline_s
    while not cond():
        assert proc.poll() is None, "the simulator ended before %s" % what
        assert time.monotonic() < end, "no %s within %d s" % (what, deadline_s)
        time.sleep(0.02)


def _count(hub, n):
    return lambda: len(_exchanges(hub)) >= n


def _stamp(e):
    return datetime.fromisoformat(e["time"]).timestamp()


def test_relay_killed_broker_restarted_hub_down_and_a_burst_lose_and_repeat_nothing(tmp_path):
    users = dict((charger_id(k), "cpw") for k in range(N))
    users["relay"] = "rpw"
    log = tmp_path / "sim.log"
    with HubThread(cards=[CARD]) as hub, Broker(tmp_path / "mq", users) as broker:
        cfg = tmp_path / "relay.json"
        cfg.write_text(json.dumps({
            "broker": {"host": broker.host, "port": broker.port, "user": "relay",
                       "password": "rpw", "client_id": "relay-t"},
            "hub": {"url": hub.url, "timeout_s": 5},
            "chargers": dict((charger_id(k), {"operator_id": OPERATOR,
                                              "evses": [evse_id(k, 0)]}) for k in range(N)),
            "limits": {"notifications_per_min": LIMIT}, "http": {"port": 0}}))
        relay = spawn_relay(str(cfg))
        sim = subprocess.Popen(_cmd(
            "--hub", hub.url, "--mqtt", "%s:%d" % (broker.host, broker.port), "--mqtt-password",
            "cpw", "--no-relay", "--chargers", N, "--speed", 20, "--quiet", "--log", log,
            "--deadline-real", 80, "--scenario", _scenario(tmp_path, ONE)),
            cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # 8 AuthorizeStart, then the Starts, which the limit holds back: kill mid-stream.
            _until("10 exchanges", _count(hub, 10), sim)
            relay.send_signal(signal.SIGKILL)
            relay.wait()
            killed = time.time()
            relay = spawn_relay(str(cfg))  # what it held is still at the broker: delivered again
            _until("16 exchanges", _count(hub, 16), sim)
            broker.restart()
            _until("22 exchanges", _count(hub, 22), sim)
            hub.call(hub.hub.refuse)
            _until("a charger told the hub is unreachable", lambda: "will retry: relay:" in
                   log.read_text(), sim)
            hub.call(hub.hub.resume)  # the backlog comes at once: a burst over the limit
            out, err = sim.communicate(timeout=90)
        finally:
            for p in (sim, relay):
                if p.poll() is None:
                    p.kill()
                    p.wait()
        ex = _exchanges(hub)
        sessions = hub.call(hub.hub.sessions)
    assert sim.returncode == 0, err[-3000:] + log.read_text()[-3000:]
    s = json.loads(out.strip().splitlines()[-1])
    assert s["ok"] and s["uplink"] == "mqtt" and s["sessions"] == N
    # Start, End, CDR per session (checked below), and the EVSEs' statuses, latest wins: a push
    # the hub took before a relay was killed may be superseded at the charger before its answer
    # came, so the counts need not match; what the hub holds last for each EVSE must.
    assert s["journaled"] == s["delivered"] + s["superseded"] and s["delivered"] > 3 * N
    # (the relay's own OutOfService records, for the chargers' wills as the run ends, aside)
    last = dict((r["EvseID"], r["EvseStatus"]) for r in _records(
        [e for e in ex if e["operation"] == "PushEvseStatus" and e["code"] == "000"])
        if r["EvseStatus"] != "OutOfService")
    assert last and set(last.values()) == {"Available"}, last
    assert s["failed"] == s["pending"] == 0
    # Once in effect, in order: each session has one Start and one End, then its CDR; repeats
    # (a relay killed before it acknowledged) were answered as the first, and counted.
    done = [x for x in sessions if x["cdr"]]
    assert len(done) == N
    for x in done:
        assert [n["Type"] for n in x["notifications"]] == ["Start", "End"], x
        assert x["state"] == "closed"
        mine = [(e["operation"], e["request"].get("Type")) for e in ex
                if e["session_id"] == x["SessionID"] and e["code"] == "000"
                and not e["duplicate"]]
        assert mine == [("AuthorizeStart", None), ("ChargingNotifications", "Start"),
                        ("ChargingNotifications", "End"), ("ChargeDetailRecord", None)], mine
    print("hub: %d duplicates answered as the first" % s["hub_view"]["duplicates"])
    # The rate, over the whole run: a restarted relay starts with an empty bucket, so no minute
    # around the SIGKILL holds more than the limit either.
    notes = [_stamp(e) for e in ex if e["operation"] == "ChargingNotifications"]
    assert _window_ok(notes, LIMIT)
    assert len([t for t in notes if t >= killed]) > LIMIT // 10 + 1  # the limit did the work


@pytest.mark.parametrize("argv, named", [
    (["--mqtt", "broker.example"], "argument --mqtt: expected 'start' or HOST:PORT"),
    (["--mqtt", "h:70000"], "argument --mqtt: expected 'start' or HOST:PORT"),
    (["--mqtt-password", "x"], "--mqtt-password: only with --mqtt HOST:PORT"),
    (["--mqtt", "start", "--no-relay"], "--no-relay: only with --mqtt HOST:PORT"),
    (["--mqtt", "127.0.0.1:1883"], "--mqtt-relay-user, --mqtt-relay-password: required"),
    (["--mqtt", "127.0.0.1:1883", "--mqtt-relay-user", "r"], "--mqtt-relay-password: required"),
    (["--mqtt", "127.0.0.1:1883", "--no-relay"], "--no-relay: needs --hub URL"),
    (["--mqtt", "127.0.0.1:1883", "--no-relay", "--hub", "http://h", "--mqtt-relay-user", "r"],
     "--mqtt-relay-user/--mqtt-relay-password: not with --no-relay"),
])
def test_mqtt_option_errors_are_named_exit_2(argv, named, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    assert named in capsys.readouterr().err


def test_a_relay_login_the_broker_refuses_exits_2_naming_the_option(tmp_path):
    with Broker(tmp_path / "mq", {"sim-000": "pw", "relay": "rpw"}) as b:
        r, s = _run(_cmd("--chargers", 1, "--quiet", "--mqtt", "%s:%d" % (b.host, b.port),
                         "--mqtt-relay-user", "relay", "--mqtt-relay-password", "wrong"))
    assert r.returncode == 2 and s is None
    assert "run: --mqtt-relay-user: the relay at" in r.stderr
    assert "refused the connection: Not authorized" in r.stderr


def test_make_sim_mode_mqtt_adds_only_the_mqtt_option_and_its_app_started_session():
    def line(*args):
        # (under `make test` a sub-make prints its directory unless told not to)
        out = subprocess.run(["make", "--no-print-directory", "-n", "sim", *args], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        return " ".join(out.replace("\\\n", " ").split())
    plain, relayed = line(), line("MODE=mqtt")
    # MODE=mqtt plays default.json and one app-started session (the relay is the CPO endpoint)
    assert "--mqtt" not in plain and "scenarios/default.json" in plain
    assert relayed == plain.replace("/default.json", "/mqtt.json") + " --mqtt start"
    bad = subprocess.run(["make", "-n", "sim", "MODE=x"], cwd=ROOT, capture_output=True,
                         text=True)
    assert bad.returncode and "MODE: expected mqtt" in bad.stderr


def _board(tmp_path, uplink, certs_dir):
    c = scenario.load(json.dumps(ONE))["charger"]
    cfg = charger_config(0, c, uplink=dict(uplink, kind="mqtt", user="sim-000", password="pw"))
    return HostBoard(cfg, str(tmp_path / "flash"), certs=certs_dir)


def test_host_board_speaks_tls_to_a_broker_for_an_mqtt_uplink_with_tls(pki, tmp_path):
    async def connack(board, host, port):
        r, w = await board.connect(host, port, True)
        w.write(mqtt.connect("sim-000", 30, "sim-000", "pw"))
        await w.drain()
        got = await asyncio.wait_for(r.readexactly(4), 10)
        w.close()
        return got

    with Broker(tmp_path / "mq", {"sim-000": "pw"}, tls=pki["dir"]) as b:
        board = _board(tmp_path, {"host": b.host, "port": b.port, "tls": True, "ca": "ca.pem"},
                       pki["dir"])
        assert asyncio.run(connack(board, b.host, b.port)) == b"\x20\x02\x00\x00"  # accepted
        plain = _board(tmp_path, {"host": b.host, "port": b.port}, pki["dir"])
        with pytest.raises(OSError, match="uplink.tls not true"):
            asyncio.run(connack(plain, b.host, b.port))


def test_a_hub_5xx_is_retried_through_the_relay(tmp_path):
    doc = dict(ONE, hub=[{"at_s": 0, "fault": {"kind": "5xx", "count": 1,
                                                "match": "ChargingNotifications"}}])
    r, s = _run(_cmd("--chargers", 1, "--speed", 100, "--quiet", "--mqtt", "start",
                     "--timeline", "--deadline-real", 12, "--scenario", _scenario(tmp_path, doc)))
    assert "event: fault 5xx x1" in r.stdout
    assert any(line.split()[3:5] == ["Notification", "Start"] and line.split()[-1] == "503"
               for line in r.stdout.splitlines())
    assert r.returncode == 0 and s["ok"], s
