"""`cp-agent run --hub URL` against a hub that has only the OICP endpoints (tests/host/minihub.py):
plain HTTP and mutual TLS with the user's own files, the default scenario, errors that say what
to do."""
import os

import pytest
from minihub import MiniHub
from simrun import ROOT
from simrun import _run_lines as _run

from host_sim import certs
from host_sim.sim import scenario

DEFAULT = os.path.join(ROOT, "host_sim", "scenarios", "default.json")


def _cards():
    with open(DEFAULT) as f:
        return scenario.cards(scenario.load(f.read()))


def _check_complete(hub, r, lines, s):
    assert r.returncode == 0, r.stderr[-3000:]
    assert s["ok"] and s["sessions"] == s["sessions_planned"] == 5
    assert "hub_view" not in s and s["hub_events"] == {"applied": 0, "skipped": 3}
    # every session the hub opened got its Start, End and CDR there
    assert len(hub.sessions) == 5
    for sid, seen in hub.sessions.items():
        assert {"Start", "End", "CDR"} <= set(seen), (sid, seen)
    # the summary counts this run's answers (its own records), the hub had no stats to ask
    ops = [op for op, _body in hub.received]
    assert s["exchanges"]["requests"] == len(ops)
    assert s["exchanges"]["codes"] == {"000": len(ops)}
    assert s["outcomes"] == {"done": 5}
    assert set(s["latency_ms"]) == {"AuthorizeStart", "ChargeDetailRecord", "Notification",
                                    "PushEvseStatus"}
    o = s["sim_overhead_ms"]  # this side's share of every exchange, measured
    assert o["n"] == len(ops) and 0 <= o["p50"] <= o["p99"] <= o["max"]
    # the timeline: one row per exchange, sorted, none negative; the session table: 5 done
    head = [i for i, line in enumerate(lines) if line.split()[:2] == ["virtual", "charger"]]
    rows = lines[head[0] + 1:-1]
    assert len(rows) == len(ops)
    times = [row.split()[0] for row in rows]
    assert times == sorted(times) and not any(t.startswith("-") for t in times)
    table = [line for line in lines[:head[0]] if " done " in line]
    assert len(table) == 5


def test_default_scenario_against_a_plain_oicp_hub(tmp_path):
    with MiniHub(_cards()) as hub:
        r, lines, s = _run("--hub", hub.url, "--speed", 300, "--timeline", "--quiet",
                           "--skip-hub-events")
    _check_complete(hub, r, lines, s)


def test_default_scenario_over_mutual_tls_with_the_users_own_files(tmp_path):
    pki = tmp_path / "pki"
    with MiniHub(_cards(), tls_dir=str(pki), operator="DE*ABC") as hub:
        cert, key = certs.client_files(str(pki), "DE*ABC")
        r, lines, s = _run("--hub", hub.url, "--operator-id", "DE*ABC", "--ca", pki / "ca.pem",
                           "--cert", cert, "--key", key, "--speed", 300, "--timeline",
                           "--quiet", "--skip-hub-events")
    _check_complete(hub, r, lines, s)
    evses = {body.get("EvseID") for _op, body in hub.received if body.get("EvseID")}
    assert evses and all(e.startswith("DE*ABC*E000") for e in evses)


def test_server_only_tls_with_the_hubs_ca(tmp_path):
    from simrun import CARD, ONE, _file
    pki = tmp_path / "pki"
    with MiniHub([CARD], tls_dir=str(pki), client_certs=False) as hub:
        r, _lines, s = _run("--hub", hub.url, "--ca", pki / "ca.pem", "--scenario",
                            _file(tmp_path, ONE), "--speed", 300, "--quiet", timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    assert s["ok"] and len(hub.sessions) == 1 and hub.url.startswith("https://")


def test_hub_events_against_a_hub_without_fault_injection_are_refused_by_name():
    with MiniHub(_cards()) as hub:
        r, _lines, s = _run("--hub", hub.url, "--speed", 300, "--quiet", timeout=60)
        assert hub.received == []
    assert r.returncode == 2 and s is None
    for text in ("hub[0] at 700 s: refuse 240 s", "hub[1] at 1400 s: fault 5xx x3",
                 "--skip-hub-events"):
        assert text in r.stderr


@pytest.mark.parametrize("args, says", [
    (("--hub", "127.0.0.1:9"), "--hub 127.0.0.1:9: expected a URL such as http://127.0.0.1:9"),
    (("--hub", "http://127.0.0.1:9"), "nothing answers at 127.0.0.1:9"),
    (("--cert", "x.pem"), "--cert: only with --hub https://"),
    (("--hub", "https://127.0.0.1:9", "--cert", "x.pem"), "--key: --cert and --key go together"),
    (("--operator-id", "DE-ABC"), "--operator-id: expected an ISO OperatorID such as DE*ABC"),
    (("--hub", "https://127.0.0.1:9", "--mqtt", "start"), "--cert, --key: required with --mqtt"),
])
def test_bad_options_say_which_and_what_to_do(args, says):
    r, _lines, _s = _run(*args, "--quiet", timeout=60)
    assert r.returncode == 2 and says in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_https_hub_with_an_untrusted_certificate_says_to_give_its_ca(tmp_path):
    pki = tmp_path / "pki"
    with MiniHub(_cards(), tls_dir=str(pki)) as hub:
        r, _lines, _s = _run("--hub", hub.url, "--quiet", "--skip-hub-events", timeout=60)
        assert r.returncode == 2 and "certificate is not trusted" in r.stderr, r.stderr
        assert "--ca FILE" in r.stderr
        r, _lines, _s = _run("--hub", hub.url, "--ca", pki / "ca.pem", "--quiet",
                             "--skip-hub-events", timeout=60)
        assert r.returncode == 2 and "--cert FILE --key FILE" in r.stderr, r.stderr
        r, _lines, _s = _run("--hub", hub.url, "--ca", pki / "server.key", "--quiet",
                             timeout=60)
        assert r.returncode == 2 and "--ca" in r.stderr and "not a PEM" not in r.stderr
