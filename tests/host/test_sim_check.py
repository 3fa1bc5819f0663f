"""The simulator checks the back end: non-conformant hub replies are reported with the request
they answered, and a scenario's expected refusals pass or fail the run."""
import json

from minihub import MiniHub
from simrun import CARD, ONE, _file
from simrun import _run_lines as _run

from host_sim.sim import conform, record

STRANGER = "DEADBEEF"
REFUSED = {"charger": {"evses": 1}, "chargers": [{"sessions": [
    {"card": CARD, "idle_s": 30, "plug_s": 10, "charge_s": 400},
    {"card": STRANGER, "idle_s": 30, "charge_s": 60, "expect": "refused",
     "expect_code": "102"}]}]}


def _nonconformance(stdout):
    lines = stdout.splitlines()
    i = [k for k, line in enumerate(lines) if line.startswith("hub replies against OICP")]
    return lines[i[0] + 1:-1] if i else []


def test_a_hub_answering_against_the_spec_is_reported_with_each_request(tmp_path):
    scn = _file(tmp_path, ONE)
    found = {}
    for quirk in ("no_status_code", "auth_no_session", "unknown_code"):
        with MiniHub([CARD], quirks=[quirk]) as hub:
            r, _lines, s = _run("--hub", hub.url, "--scenario", scn, "--speed", 300, "--quiet",
                                "--deadline-real", 8, "--strict", timeout=60)
        assert r.returncode == 1 and not s["ok"], r.stderr[-2000:]
        assert s["nonconforming"]["replies"] >= 1
        found[quirk] = _nonconformance(r.stdout)
    path = "/api/oicp/charging/v21/operators/DE*SIM/authorize/start"
    assert any(line.startswith("  AuthorizeStart: Authorized without a SessionID") and path in
               line and "DE*SIM*E0000*1" in line for line in found["auth_no_session"])
    notes = "/api/oicp/notificationmgmt/v11/charging-notifications"
    assert any("Acknowledgement: StatusCode missing" in line and notes in line
               for line in found["no_status_code"]), found["no_status_code"]
    assert any("Acknowledgement: StatusCode.Code: \"999\" is not in the spec's table" in line
               and notes in line for line in found["unknown_code"]), found["unknown_code"]


def test_a_conforming_hub_has_nothing_reported(tmp_path):
    with MiniHub([CARD]) as hub:
        r, _lines, s = _run("--hub", hub.url, "--scenario", _file(tmp_path, ONE), "--speed",
                            300, "--quiet", "--strict", timeout=60)
    assert r.returncode == 0 and s["nonconforming"] == {"kinds": 0, "replies": 0}
    assert _nonconformance(r.stdout) == []


def test_a_card_that_must_be_refused_passes_when_refused(tmp_path):
    with MiniHub([CARD]) as hub:
        r, lines, s = _run("--hub", hub.url, "--scenario", _file(tmp_path, REFUSED), "--speed",
                           300, "--quiet", timeout=60)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert s["expectations"] == {"met": 1, "missed": 0}
    assert s["exchanges"]["refused"] == {"102": 1} and s["outcomes"]["refused 102"] == 1
    assert [op for op, b in hub.received if op == "AuthorizeStart"
            and "DEADBEEF" in json.dumps(b)] == ["AuthorizeStart"]  # one tap, no re-taps


def test_the_same_card_accepted_fails_the_run(tmp_path):
    with MiniHub([CARD, STRANGER]) as hub:
        r, lines, s = _run("--hub", hub.url, "--scenario", _file(tmp_path, REFUSED), "--speed",
                           300, "--quiet", timeout=60)
    assert r.returncode == 1 and not s["ok"]
    assert s["expectations"] == {"met": 0, "missed": 1}
    assert "expected refused 102, got accepted: DEADBEEF at sim-000" in r.stdout


def test_a_wrong_refusal_code_fails_the_run_on_the_embedded_hub(tmp_path):
    doc = json.loads(json.dumps(REFUSED))
    doc["chargers"][0]["sessions"][1]["expect_code"] = "106"
    r, _lines, s = _run("--scenario", _file(tmp_path, doc), "--speed", 300, "--quiet",
                        timeout=60)
    assert r.returncode == 1 and s["expectations"] == {"met": 0, "missed": 1}
    assert "expected refused 106, got refused 102: DEADBEEF" in r.stdout


def test_an_unexpected_refusal_is_said_on_stderr_not_retried_silently(tmp_path):
    doc = {"charger": {"evses": 1}, "chargers": [{"sessions": [
        {"card": STRANGER, "idle_s": 10, "charge_s": 60}]}]}
    with MiniHub([CARD]) as hub:
        r, _lines, s = _run("--hub", hub.url, "--scenario", _file(tmp_path, doc), "--speed",
                            300, "--quiet", "--deadline", 400, timeout=60)
    assert r.returncode == 1 and s["deadline"]
    told = [line for line in r.stderr.splitlines() if "refused by the hub" in line]
    assert len(told) == 1 and "DEADBEEF" in told[0] and "102" in told[0], r.stderr
    assert "expect" in told[0]


def test_kinds_of_non_conformance_are_capped_and_every_reply_counted():
    class Clock:
        def now(self):
            return 0.0

    n = record.MAX_KINDS + 50
    texts = iter("issue %d" % k for k in range(n))
    rec = record.Recorder(Clock(), lambda x: [next(texts)])
    for k in range(n):
        rec._add("sim-000", 0.0, 1.0, "/api/oicp/x/charge-detail-record", {"SessionID": "s"},
                 "m%d" % k, ("ok", None, 0), {"status": 200, "raw": "{}"})
    groups = list(rec.nonconformance.values())
    assert len(groups) == record.MAX_KINDS + 1 and sum(g["count"] for g in groups) == n
    assert groups[-1]["issue"] == "other kinds (more than %d)" % record.MAX_KINDS
    assert groups[-1]["count"] == 50


def test_checker_rules_directly():
    x = record.Exchange()
    x.op, x.status, x.ms = "AuthorizeStart", 200, 12000.0
    x.raw = json.dumps({"AuthorizationStatus": "Authorized", "StatusCode": {"Code": "000"}})
    issues = conform.Checker()(x)
    assert "answered later than 10000 ms" in issues
    assert "Authorized without a SessionID (the session's messages need one)" in issues
    x.op, x.ms = "ChargeDetailRecord", 5.0
    x.raw = json.dumps({"Result": True, "StatusCode": {"Code": "022"}})
    assert conform.Checker()(x) == ["Result true with StatusCode 022"]
    x.raw = "<html>"
    assert conform.Checker()(x) == ["reply is not JSON"]
    x.status = 503  # an HTTP error's body is not checked as an OICP message
    assert conform.Checker()(x) == []
