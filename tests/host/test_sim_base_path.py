"""One base-path rule (cpagent.uplink.http.join_path) for the firmware, the relay and the
simulator: a hub URL with a path reaches the same endpoints straight and through the relay."""
from minihub import MiniHub
from simrun import CARD, ONE, _file
from simrun import _run_lines as _run


def _complete(hub, r, s):
    assert r.returncode == 0, r.stdout[-1500:] + r.stderr[-1500:]
    assert s["ok"] and s["exchanges"]["http"] == {} and len(hub.sessions) == 1
    assert {"Start", "End", "CDR"} <= set(next(iter(hub.sessions.values())))


def test_a_hub_url_ending_in_the_oicp_root_straight_and_through_the_relay(tmp_path):
    scn = _file(tmp_path, ONE)
    for extra in ((), ("--mqtt", "start")):
        with MiniHub([CARD]) as hub:  # endpoints at /api/oicp/...: the URL names that root
            r, _lines, s = _run("--hub", hub.url + "/api/oicp", "--scenario", scn, "--speed",
                                300, "--quiet", *extra, timeout=90)
        _complete(hub, r, s)
        assert s["uplink"] == ("mqtt" if extra else "http")


def test_a_hub_mounted_under_a_path_with_or_without_the_oicp_root(tmp_path):
    scn = _file(tmp_path, ONE)
    for tail, extra in (("", ()), ("/api/oicp", ()), ("/api/oicp/", ("--mqtt", "start"))):
        with MiniHub([CARD], mount="/emp/hub") as hub:
            r, _lines, s = _run("--hub", hub.url + tail, "--scenario", scn, "--speed", 300,
                                "--quiet", *extra, timeout=90)
        _complete(hub, r, s)
