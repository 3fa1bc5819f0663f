"""`run --workers N`: chargers spread over worker processes, one hub and its events, one merged
timeline, summary and report."""
import json

from minihub import MiniHub
from simrun import CARD, _file
from simrun import _run_lines as _run

DOC = {"charger": {"evses": 1}, "chargers": [{"sessions": [
    {"card": CARD, "idle_s": 30, "plug_s": 10, "charge_s": 400}]}],
    "hub": [{"at_s": 60, "fault": {"kind": "5xx", "count": 2}}]}


def test_two_workers_share_the_hub_its_events_and_one_summary(tmp_path):
    r, lines, s = _run("--workers", 2, "--chargers", 5, "--sessions", 2, "--speed", 300,
                       "--quiet", "--timeline", "--scenario", _file(tmp_path, DOC), "--report",
                       tmp_path / "rep", timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert s["ok"] and s["workers"] == 2 and s["chargers"] == s["chargers_done"] == 5
    assert s["sessions"] == s["sessions_planned"] == 10 and s["outcomes"] == {"done": 10}
    # the events went to the hub once, from this process: two 503s in all, not two per worker
    assert s["hub_events"] == {"applied": 1, "skipped": 0}
    assert s["exchanges"]["http"] == {"503": 2}
    # every exchange of both workers, counted once: the hub saw what the chargers recorded
    assert s["hub_view"]["requests"] == s["exchanges"]["requests"] - 2
    head = [i for i, line in enumerate(lines) if line.startswith("virtual ")][0]
    rows = [line.split() for line in lines[head + 1:-1]]
    assert {x[1] for x in rows} == {"sim-%03d" % k for k in range(5)} | {"hub"}
    times = [x[0] for x in rows]
    assert times == sorted(times) and not any(t.startswith("-") for t in times)
    assert s["loop_lag_ms"]["p99"] is not None
    doc = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert len(doc["exchanges"]) == s["exchanges"]["requests"] and len(doc["sessions"]) == 10
    assert len(doc["samples"]) == 5


def test_workers_against_a_foreign_hub(tmp_path):
    with MiniHub([CARD]) as hub:
        r, _lines, s = _run("--hub", hub.url, "--workers", 2, "--chargers", 3, "--speed", 300,
                            "--quiet", "--skip-hub-events", "--scenario", _file(tmp_path, DOC),
                            timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert s["ok"] and len(hub.sessions) == 3 and "hub_view" not in s
    assert s["exchanges"]["requests"] == len(hub.received)


def test_workers_with_options_one_process_runs_say_so(tmp_path):
    r, _lines, s = _run("--workers", 2, "--state", tmp_path / "st", timeout=60)
    assert r.returncode == 2 and "--workers: not with --state" in r.stderr
    r, _lines, s = _run("--workers", 3, "--chargers", 2, timeout=60)
    assert r.returncode == 2 and "--workers 3: more workers than --chargers 2" in r.stderr
