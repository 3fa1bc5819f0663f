"""Mock hub over HTTP (HubThread, http.client): keep-alive, control API, log, faults, CLI."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys

import pytest
from hubapi import EVSE, OP, T0, T1, UID, conn, get_json, post, request, start

from cpagent.oicp import build as oicp
from cpagent.oicp import replies as oicp_replies
from host_sim.hub import FaultError, HubThread

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def hub(tmp_path):
    with HubThread(cards=[UID], log=str(tmp_path / "x.jsonl")) as h:
        yield h


def test_session_over_one_keep_alive_connection(hub):
    c = conn(hub.url)
    path, body = oicp.authorize_start(OP, UID, evse_id=EVSE)
    status, headers, raw = request(c, "POST", path, oicp.encode(body))
    assert status == 200 and headers["Connection"] == "keep-alive"
    sid = oicp_replies.parse_authorization(raw).session_id
    for p, b in [oicp.notification_start(OP, sid, EVSE, T0),
                 oicp.notification_end(OP, sid, EVSE, T1),
                 oicp.charge_detail_record(OP, sid, EVSE, UID, T0, T1, T0, T1, 2.5)]:
        status, _, raw = request(c, "POST", p, oicp.encode(b))
        assert status == 200 and oicp_replies.parse_acknowledgement(raw).ok
    assert len({e["peer"] for e in hub.hub.exchanges}) == 1  # the same connection throughout
    c.close()
    (s,) = get_json(hub.url, "/api/sessions")
    assert (s["SessionID"], s["state"], s["cdr"]["ConsumedEnergy"]) == (sid, "closed", 2.5)
    assert [n["Type"] for n in s["notifications"]] == ["Start", "End"]


def test_exchanges_in_memory_over_http_and_in_the_log(hub, tmp_path):
    start(hub.url)
    status, _, raw = post(hub.url, oicp.NOTIFY_PATH, b"{oops")
    assert status == 400
    ex = hub.hub.exchanges
    assert [(e["seq"], e["operation"], e["status"], e["code"]) for e in ex] == [
        (1, "AuthorizeStart", 200, "000"), (2, "ChargingNotifications", 400, None)]
    assert ex[0]["request"]["Identification"] == {"RFIDMifareFamilyIdentification": {
        "UID": UID}}
    assert ex[0]["reply"]["AuthorizationStatus"] == "Authorized"
    assert ex[1]["request"] == "{oops" and ex[1]["reply"]["validationErrors"]
    assert all(e["latency_ms"] >= 0 and e["peer"].startswith("127.0.0.1:") for e in ex)
    assert get_json(hub.url, "/api/exchanges") == ex
    assert get_json(hub.url, "/api/exchanges?since=1") == ex[1:]
    with open(tmp_path / "x.jsonl", encoding="utf-8") as f:
        assert [json.loads(line) for line in f] == ex
    stats = get_json(hub.url, "/api/stats")
    assert (stats["requests"], stats["codes"], stats["http"]) == (2, {"000": 1}, {"400": 1})


def test_page_and_control_plane(hub):
    status, headers, body = request(conn(hub.url), "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    page = body.decode()
    assert 'id="sessions"' in page and "/api/sessions" in page
    assert "http://" not in page.replace("http://" + "www.w3.org", "")  # no external assets
    assert request(conn(hub.url), "GET", "/nothing")[0] == 404
    assert request(conn(hub.url), "GET", oicp.NOTIFY_PATH)[0] == 405
    assert request(conn(hub.url), "GET", "/api/exchanges?since=x")[0] == 400
    assert get_json(hub.url, "/api/evses") == []
    start(hub.url)
    assert request(conn(hub.url), "POST", "/api/reset", b"")[0] == 200
    assert get_json(hub.url, "/api/sessions") == [] and hub.hub.exchanges == []


def test_chunked_body_and_oversized_body(hub):
    path, body = oicp.authorize_start(OP, UID)
    c = conn(hub.url)
    c.request("POST", path, body=iter([oicp.encode(body)]),
              headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
    r = c.getresponse()
    assert r.status == 200 and oicp_replies.parse_authorization(r.read()).ok
    c = conn(hub.url)
    c.putrequest("POST", path)
    c.putheader("Content-Length", str(2 << 20))
    c.endheaders()
    r = c.getresponse()
    assert r.status == 413 and r.getheader("Connection") == "close"


# ---- faults -------------------------------------------------------------------------------

def add(hub, kind, **kw):
    return hub.call(hub.hub.add_fault, kind, **kw)


def test_5xx_429_408_and_garbage_as_a_scripted_outage(hub):
    status, _, raw = post(hub.url, "/api/faults", [
        {"kind": "5xx", "count": 2}, {"kind": "5xx", "status": 502},
        {"kind": "429", "retry_after": 7}, {"kind": "408"}, {"kind": "garbage"}])
    assert status == 200 and [f["kind"] for f in json.loads(raw)] == [
        "5xx", "5xx", "429", "408", "garbage"]
    path, body = oicp.authorize_start(OP, UID)
    seen = []
    for _ in range(7):
        status, headers, raw = post(hub.url, path, oicp.encode(body))
        seen.append((status, headers.get("Retry-After"), headers["Connection"]))
        if status in (502, 503, 429, 408):
            assert oicp_replies.parse_http_error(status, raw).startswith("HTTP %d" % status)
        elif seen.count((200, None, "keep-alive")) == 1:  # the garbage one
            with pytest.raises(oicp_replies.ReplyError):
                oicp_replies.parse_authorization(raw)
    assert seen == [(503, None, "keep-alive"), (503, None, "keep-alive"),
                    (502, None, "keep-alive"), (429, "7", "keep-alive"), (408, None, "close"),
                    (200, None, "keep-alive"), (200, None, "keep-alive")]
    assert oicp_replies.parse_authorization(raw).ok  # healthy again
    assert [e["fault"] for e in hub.hub.exchanges] == [
        "5xx", "5xx", "5xx", "429", "408", "garbage", None]
    assert len(hub.hub.rules.sessions) == 1  # faulted requests changed nothing


def test_drop_closes_without_reply_and_process_loses_only_the_reply(hub):
    add(hub, "drop")
    add(hub, "drop", process=True)
    path, body = oicp.authorize_start(OP, UID)
    for _ in range(2):
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            post(hub.url, path, oicp.encode(body))
    ex = hub.hub.exchanges
    assert [(e["fault"], e["status"], e["code"]) for e in ex] == [
        ("drop", None, None), ("drop", None, "000")]
    assert len(hub.hub.rules.sessions) == 1  # the second took effect


def test_latency_outlasts_a_client_timeout_and_the_request_still_lands(hub):
    add(hub, "latency", seconds=3)
    path, body = oicp.authorize_start(OP, UID)
    c = conn(hub.url, timeout=0.2)
    with pytest.raises(socket.timeout):
        request(c, "POST", path, oicp.encode(body))
    c.close()
    assert start(hub.url).ok  # the rule was used up by the first request


def test_refuse_stops_listening_until_resumed(hub):
    c = conn(hub.url)
    assert request(c, "GET", "/api/stats")[0] == 200
    add(hub, "refuse")
    with pytest.raises(ConnectionRefusedError):
        request(conn(hub.url), "GET", "/api/stats")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        request(c, "GET", "/api/stats")  # open connections were dropped too
    hub.call(hub.hub.resume)
    assert start(hub.url).ok


def test_refuse_over_http_with_seconds_comes_back_by_itself(hub):
    status, _, _ = post(hub.url, "/api/faults", {"kind": "refuse", "seconds": 0.3})
    assert status == 200
    refused = 0
    while True:  # bounded by the hub's own timer, not by a timed assertion here
        try:
            assert start(hub.url).ok
            break
        except ConnectionRefusedError:
            refused += 1
            hub._thread.join(0.05)
    assert refused >= 1


def test_cert_mismatch_and_code_faults_over_plain_http(hub):
    add(hub, "cert_mismatch")
    add(hub, "code", code="310", match="AuthorizeStart")
    r = start(hub.url)
    assert (r.ok, r.code, oicp_replies.classify(r.code)) == (False, "017", "stop")
    r = start(hub.url)
    assert (r.ok, r.code, oicp_replies.classify(r.code)) == (False, "310", "retry")
    assert start(hub.url).ok


def test_faults_match_an_operation_and_count_none_stays(hub):
    add(hub, "5xx", count=None, match="ChargingNotifications")
    sid = start(hub.url).session_id  # AuthorizeStart is not matched
    p, b = oicp.notification_start(OP, sid, EVSE, T0)
    assert [post(hub.url, p, oicp.encode(b))[0] for _ in range(3)] == [503] * 3
    (rule,) = get_json(hub.url, "/api/faults")
    assert (rule["fired"], rule["count"]) == (3, None)
    assert request(conn(hub.url), "DELETE", "/api/faults")[0] == 200
    assert post(hub.url, p, oicp.encode(b))[0] == 200


@pytest.mark.parametrize("rule,named", [
    ({"kind": "meteor"}, "kind"), ({"kind": "5xx", "status": 404}, "status"),
    ({"kind": "429", "count": 0}, "count"), ({"kind": "latency", "secs": 1}, "secs"),
    ([{"kind": "408"}, {"kind": "latency", "seconds": -1}], "seconds")])
def test_bad_fault_rules_are_refused_naming_the_field(hub, rule, named):
    status, _, raw = post(hub.url, "/api/faults", rule)
    assert status == 400 and json.loads(raw)["message"].startswith(named)
    assert get_json(hub.url, "/api/faults") == []  # nothing of a bad list was queued
    with pytest.raises(FaultError):
        hub.hub.faults.add_json(rule)


# ---- CLI ----------------------------------------------------------------------------------

def test_cli_prints_its_url_first_and_stops_on_sigterm(tmp_path):
    cards = tmp_path / "cards.txt"
    cards.write_text("# UID ProviderID\n%s DE-8EO\nDEADBEEF\n" % UID)
    log = tmp_path / "hub.jsonl"
    p = subprocess.Popen([sys.executable, "-m", "host_sim", "hub", "--port", "0",
                          "--host", "127.0.0.1", "--cards", str(cards), "--log", str(log),
                          "--fault", "5xx:count=1,status=500"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        url = p.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        path, body = oicp.authorize_start(OP, "DEADBEEF")
        assert post(url, path, oicp.encode(body))[0] == 500
        r = oicp_replies.parse_authorization(post(url, path, oicp.encode(body))[2])
        assert (r.ok, r.provider_id) == (True, "DE-EMP")
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 0 and "hub stopped" in err
    assert [json.loads(line)["status"] for line in log.read_text().splitlines()] == [500, 200]


def test_cli_refuses_a_bad_cards_file(tmp_path):
    cards = tmp_path / "cards.txt"
    cards.write_text("A B C\n")
    r = subprocess.run([sys.executable, "-m", "host_sim", "hub", "--cards", str(cards)],
                       cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "cards.txt:1" in r.stderr
