"""`python -m host_sim run` as a user runs it: fleets, make sim, failures, SIGKILL and resume."""
import json
import signal
import subprocess
import sys
import time
import urllib.request

from simrun import CARD, ENV, ROOT, _cmd, _run, _scenario

# Short sessions (3 Progress each at 300 s) so a fleet at x500 spends its time charging.
SHORT = {"charger": {"evses": 1}, "chargers": [{"sessions": [
    {"card": CARD, "idle_s": 30, "plug_s": 10, "charge_s": 700}]}]}


def _get(url):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


def test_fleet_of_20_chargers_x_5_sessions_all_acknowledged(tmp_path):
    t0 = time.monotonic()
    r, s = _run(_cmd("--chargers", 20, "--sessions", 5, "--speed", 500, "--scenario",
                     _scenario(tmp_path, SHORT)))
    print("20 x 5 at x500: %.1f s wall" % (time.monotonic() - t0))
    assert r.returncode == 0, r.stderr[-3000:]
    assert s["ok"] and s["chargers"] == 20 and s["chargers_done"] == 20
    assert s["sessions"] == s["sessions_planned"] == 100
    # each session: Start, 2..3 Progress, End, CDR, all delivered, none left
    # (and each EVSE's status pushes: latest wins, so a superseded one is never delivered)
    assert 100 * 5 <= s["delivered"] and s["failed"] == s["pending"] == 0
    assert s["journaled"] == s["delivered"] + s["superseded"]
    assert s["hub_view"]["sessions"] == 100 and set(s["exchanges"]["codes"]) == {"000"}
    assert s["outcomes"] == {"done": 100} and s["exchanges"]["requests"] >= 600
    assert "sim [" in r.stderr  # the progress bar


def _make_sim_command():
    out = subprocess.run(["make", "-n", "sim"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.replace("\\\n", " ")
    return [line for line in out.splitlines() if "cp-agent run" in line][0]


def test_make_sim_command_prints_a_timeline_and_the_summary():
    cmd = _make_sim_command()
    assert "--timeline" in cmd and "--hub" not in cmd
    t0 = time.monotonic()
    r = subprocess.run(cmd, shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120)
    print("make sim: %.1f s wall" % (time.monotonic() - t0))
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    s = json.loads(lines[-1])
    assert s["ok"] and s["chargers"] == 2 and s["sessions"] == s["sessions_planned"] > 0
    head = [i for i, line in enumerate(lines) if line.split()[:2] == ["virtual", "charger"]]
    assert head, r.stdout[:2000]
    rows = lines[head[0] + 1:-1]
    ops = " ".join(rows)
    for op in ("AuthorizeStart", "Notification Start", "Notification Progress",
               "Notification End", "Notification Error", "ChargeDetailRecord",
               "event: refuse 240 s", "no reply (unreachable)", "event: fault 5xx x3", " 503",
               "event: fault 429 x1", " 429"):
        assert op in ops
    assert all(row.split()[1] in ("sim-000", "sim-001", "hub") for row in rows)
    times = [row.split()[0] for row in rows]
    assert times == sorted(times)  # hub order is virtual time order


def test_a_cdr_refused_for_good_exits_nonzero(tmp_path):
    doc = dict(SHORT, hub=[{"at_s": 0, "fault": {"kind": "code", "code": "022",
                                                "match": "ChargeDetailRecord", "count": None}}])
    r, s = _run(_cmd("--chargers", 2, "--speed", 500, "--quiet", "--scenario",
                     _scenario(tmp_path, doc)))
    assert r.returncode == 1, r.stderr[-2000:]
    assert not s["ok"] and s["sessions"] == 2 and s["failed"] == 2 and s["pending"] == 0
    assert s["delivered"] == s["journaled"] - 2 - s["superseded"]  # (statuses superseded)
    assert r.stderr == ""  # --quiet


def test_a_hub_down_until_the_deadline_exits_nonzero(tmp_path):
    doc = dict(SHORT, hub=[{"at_s": 0, "refuse_s": 10 ** 7}])
    t0 = time.monotonic()
    r, s = _run(_cmd("--chargers", 2, "--speed", 200, "--quiet", "--deadline", 1200,
                     "--scenario", _scenario(tmp_path, doc)))
    assert r.returncode == 1, r.stderr[-2000:]
    assert s["deadline"] and not s["ok"] and s["sessions"] == 0 and s["delivered"] == 0
    assert 1200 <= s["virtual_s"] < 2400 and time.monotonic() - t0 < 60


def test_mutual_tls_with_the_embedded_hub(tmp_path):
    r, s = _run(_cmd("--chargers", 2, "--speed", 500, "--quiet", "--tls", "--certs",
                     tmp_path / "certs", "--scenario", _scenario(tmp_path, SHORT)))
    assert r.returncode == 0, r.stderr[-2000:]
    assert s["ok"] and s["sessions"] == 2 and s["hub_view"]["sessions"] == 2
    assert (tmp_path / "certs" / "ca.pem").exists()


def test_a_speed_past_the_real_time_parts_is_warned_about(tmp_path):
    r, s = _run(_cmd("--speed", 3000, "--quiet", "--deadline-real", 1, "--scenario",
                     _scenario(tmp_path, SHORT)))
    assert s is not None and "run: warning: --speed 3000 outruns the real-time parts" in r.stderr
    assert "40 real ms" in r.stderr and "at most x1000" in r.stderr
    r, s = _run(_cmd("--speed", 1000, "--quiet", "--deadline-real", 1, "--scenario",
                     _scenario(tmp_path, SHORT)))
    assert s is not None and "warning" not in r.stderr  # x1000 is still within bounds


def test_random_fleet_runs_to_the_end():
    r, s = _run(_cmd("--random", 42, "--chargers", 3, "--sessions", 2, "--speed", 1000,
                     "--quiet"))
    assert r.returncode == 0, r.stderr[-2000:]
    assert s["ok"] and s["sessions"] == s["sessions_planned"] == 6


def test_bad_scenario_exits_2_naming_the_field(tmp_path):
    doc = {"chargers": [{"sessions": [{"card": CARD, "charge_s": -3}]}]}
    p = _scenario(tmp_path, doc)
    r, s = _run(_cmd("--scenario", p))
    assert r.returncode == 2 and s is None
    assert "chargers[0].sessions[0].charge_s: expected a number" in r.stderr
    assert p in r.stderr


def test_sigkill_mid_run_then_resume_gives_one_start_end_cdr_per_session(tmp_path):
    hub = subprocess.Popen([sys.executable, "-m", "host_sim", "hub", "--port", "0",
                            "--card", CARD, "--card", "04B2C3D4E5F607"],
                           cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           text=True)
    try:
        url = hub.stdout.readline().strip()
        doc = {"charger": {"evses": 2}, "chargers": [{"sessions": [
            {"card": CARD, "idle_s": 20, "plug_s": 10, "charge_s": 700},
            {"card": "04B2C3D4E5F607", "lane": 1, "idle_s": 150, "plug_s": 10,
             "charge_s": 500, "end": "unplug"}]}]}
        args = _cmd("--hub", url, "--chargers", 3, "--sessions", 4, "--speed", 300, "--quiet",
                    "--state", tmp_path / "state", "--scenario", _scenario(tmp_path, doc))
        first = subprocess.Popen(args, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 90
        cdrs = 0
        while cdrs < 4 and time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.1)
            cdrs = sum(1 for x in _get(url + "/api/sessions") if x["cdr"])
        assert first.poll() is None, "the first run ended before the kill"
        first.send_signal(signal.SIGKILL)
        first.wait()
        before = _get(url + "/api/sessions")
        assert 4 <= sum(1 for x in before if x["cdr"]) < 12
        r, s = _run(args + ["--timeline"], timeout=120)
        assert r.returncode == 0, r.stderr[-3000:]
        assert s["ok"] and s["sessions"] == s["sessions_planned"] == 12
        assert s["superseded"] >= 0
        out = r.stdout.splitlines()
        head = [i for i, line in enumerate(out) if line.startswith("virtual ")][0]
        times = [line.split()[0] for line in out[head + 1:-1]]
        # this run's own records on its clock, which goes on from the killed run's
        assert times and not any(t.startswith("-") for t in times) and times == sorted(times)
        assert times[0] >= "00:10:00"  # 4 CDRs came before the kill: ~12 virtual min
        # the session table lists the sessions the first run opened and this one finished
        done = [line for line in out[:head] if " done " in line]
        assert len(done) >= 12 - sum(1 for x in before if x["cdr"])
        sessions = _get(url + "/api/sessions")
        closed = [x for x in sessions if x["cdr"]]
        assert len(closed) == 12
        for x in sessions:
            types = [n["Type"] for n in x["notifications"]]
            if x["cdr"]:
                assert types.count("Start") == 1 and types.count("End") == 1, x
                assert types[0] == "Start" and types[-1] == "End", x
            else:  # killed between AuthorizeStart and its answer: the person tapped again
                assert types == [], x
    finally:
        hub.send_signal(signal.SIGTERM)
        hub.wait(10)


def test_resuming_after_a_deadline_counts_what_the_journal_held(tmp_path):
    from host_sim.hub import HubThread

    doc = {"charger": {"evses": 1}, "chargers": [{"sessions": [
        {"card": CARD, "idle_s": 30, "plug_s": 10, "charge_s": 1500}]}],
        "hub": [{"at_s": 100, "refuse_s": 1500}]}
    with HubThread(cards=[CARD]) as hub:
        args = _cmd("--hub", hub.url, "--speed", 300, "--quiet", "--state", tmp_path / "st",
                    "--scenario", _scenario(tmp_path, doc))
        r, first = _run(args + ["--deadline", "1000"])
        assert r.returncode == 1 and first["deadline"] and first["pending"] > 0
        r, s = _run(args)
    assert r.returncode == 0, r.stderr[-2000:]
    # the journal's leftovers count as this run's (so none is "superseded" below zero)
    assert s["ok"] and s["pending"] == 0 and s["superseded"] >= 0
    assert s["journaled"] >= first["pending"] + 3  # + Progress, End, CDR of this run


def test_charger_0_on_a_serial_meter_port(tmp_path):
    from host_sim.sim.fleet import Bus
    from host_sim.virtual.ev import Fixed
    from host_sim.virtual.meter import VirtualMeter
    from host_sim.virtual.pty import PtyDevice

    # A meter with no car behind it: charger 0's sessions close when the EV wait runs out, with
    # a CDR and no Start; charger 1 (virtual meter, a car) charges as usual.
    meter = VirtualMeter("sdm630", 1, Fixed(wh=5000))
    doc = dict(SHORT, charger={"evses": 1, "ev_wait_s": 60})
    with PtyDevice(Bus([meter])) as path:
        r, s = _run(_cmd("--chargers", 2, "--speed", 500, "--quiet", "--timeline",
                         "--meter-port", path, "--scenario", _scenario(tmp_path, doc)))
    assert r.returncode == 0, r.stderr[-2000:]
    assert s["ok"] and s["sessions"] == 2 and meter.requests > 3
    out = r.stdout.splitlines()
    head = [i for i, line in enumerate(out) if line.split()[:2] == ["virtual", "charger"]][0]
    rows = [line.split() for line in out[head + 1:-1] if "PushEvseStatus" not in line]
    assert [x[3] for x in rows if x[1] == "sim-000"] == ["AuthorizeStart", "ChargeDetailRecord"]
    assert "Start" in [x[4] for x in rows if x[1] == "sim-001"]


def test_charger_0_on_a_serial_reader_a_person_taps(tmp_path):
    from host_sim.virtual.pn532 import VirtualPn532
    from host_sim.virtual.pty import PtyDevice

    # The simulator asks (in its log) for each tap on charger 0's real reader; "the person"
    # here is this test, holding the card on a virtual PN532 behind a pty.
    pn = VirtualPn532()
    log = tmp_path / "sim.log"
    log.write_text("")
    with PtyDevice(pn) as path:
        p = subprocess.Popen(_cmd("--chargers", 1, "--speed", 200, "--quiet", "--log", log,
                                  "--reader-port", path, "--scenario",
                                  _scenario(tmp_path, SHORT)),
                             cwd=ROOT, env=ENV, stdout=subprocess.PIPE, text=True)
        asked = 0
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline:
            n = log.read_text().count("tap card %s on the reader" % CARD)
            if n > asked:
                asked = n
                pn.card = CARD
                time.sleep(0.6)
                pn.card = None
            time.sleep(0.05)
        out = p.communicate(timeout=30)[0]
    s = json.loads(out.strip().splitlines()[-1])
    assert p.returncode == 0 and s["ok"] and s["sessions"] == 1
    assert asked == 2  # one tap to start, one to stop
