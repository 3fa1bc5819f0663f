"""HttpUplink: URL parsing, the insecure warning, and every hub answer sorted into a Result."""
from fakenet import Net, ok
from hubreply import ACK, AUTH, SID, ack, reply, uplink

from check import arun, raises_naming
from cpagent.oicp import build as oicp
from cpagent.uplink.http import HttpUplink, parse_url

START = oicp.authorize_start("DE*ABC", "04A1B2C3D4E5F6")
DATE = "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n"


async def one(raw, path=oicp.NOTIFY_PATH, body=None):
    """The Result of one send whose reply is `raw` (or a connection script)."""
    net = Net(raw if isinstance(raw, (list, str)) else [raw])
    return await uplink(net).send(path, body or {"Type": "Start"})


def test_parse_url():
    assert parse_url("http://hub") == (False, "hub", 80, "")
    assert parse_url("https://hub.example:8443/") == (True, "hub.example", 8443, "")
    assert parse_url("https://service.hubject.com/api/oicp/") == (
        True, "service.hubject.com", 443, "/api/oicp")
    assert parse_url("http://[::1]:9000/x") == (False, "::1", 9000, "/x")
    assert parse_url("https://[fe80::1]") == (True, "fe80::1", 443, "")
    for bad, what in (("ftp://hub", "http:// or https://"), ("http://hub:0", "port"),
                      ("http://hub:x1", "port"), ("http://hub:/a", "port"),
                      ("http://:80", "host"), ("http://hub:70000", "port")):
        raises_naming(ValueError, what, parse_url, bad)
        raises_naming(ValueError, "uplink.url", parse_url, bad)


def test_ok_posts_the_encoded_body_under_the_base_path():
    async def go():
        net = Net([ok(ACK, DATE)])
        u = uplink(net, "http://hub:8080/base/")
        kind, r, after = await u.send(oicp.NOTIFY_PATH, {"n": 1})
        assert (kind, r.ok, r.code, after) == ("ok", True, "000", 0)
        assert net.requests[0].startswith(b"POST /base" + oicp.NOTIFY_PATH.encode())
        assert net.requests[0].endswith(b'\r\n\r\n{"n":1}')
        assert u.last_ms == 5
    return arun(go())


def test_a_base_the_path_already_has_is_not_doubled():
    async def go():
        net = Net([ok(ACK)])
        await uplink(net, "https://hub/api/oicp", insecure=True).send(oicp.NOTIFY_PATH, {})
        assert net.requests[0].startswith(b"POST " + oicp.NOTIFY_PATH.encode() + b" ")
    return arun(go())


def test_authorize_paths_parse_authorizations():
    async def go():
        kind, r, _ = await one(ok(AUTH), START[0], START[1])
        assert kind == "ok" and r.session_id == SID and r.kind == "authorization"
        no = b'{"AuthorizationStatus":"NotAuthorized","StatusCode":{"Code":"102"}}'
        assert await one(ok(no), START[0], START[1]) == ("fail", "102 RFID card unknown", 0)
        # The hub's 017 to an AuthorizeStart comes as an acknowledgement.
        assert (await one(ok(ack("017")), START[0], START[1]))[0] == "stop"
    return arun(go())


def test_oicp_codes():
    async def go():
        assert await one(ok(ack("001"))) == ("retry", "001 hub system error", 0)
        assert (await one(ok(ack("310"))))[0] == "retry"
        assert await one(ok(ack("017"))) == (
            "stop", "017 access refused (certificate/OperatorID)", 0)
        assert await one(ok(ack("400"))) == ("fail", "400 session invalid", 0)
        assert await one(ok(ack("000"))) == ("fail", "000 ok", 0)  # Result false: a plain no
        assert (await one(ok(ack("000", True))))[0] == "ok"
    return arun(go())


def test_http_statuses():
    async def go():
        fault = b'{"message":"bad","validationErrors":[{"fieldReference":"EvseID"}]}'
        assert await one(reply(400, fault)) == (
            "fail", "HTTP 400 validation error: bad; EvseID: invalid", 0)
        names = {500: "hub processing error", 503: "hub unavailable"}
        hub5xx = b'{"message":"down for maintenance","extendedInfo":null}'
        for st in (500, 502, 503, 599):
            assert await one(reply(st, hub5xx)) == ("hold", "HTTP %d %s: down for maintenance"
                                                     % (st, names.get(st, "error")), 0), st
        assert await one(reply(408)) == ("hold", "HTTP 408 error", 0)
        assert await one(reply(408, extra="Retry-After: 2\r\n")) == ("retry", "HTTP 408 error",
                                                                       2000)
        assert await one(reply(429, extra="Retry-After: 7\r\n")) == (
            "retry", "HTTP 429 rate limited", 7000)
        assert (await one(reply(503, hub5xx, "Retry-After: 99999\r\n")))[2] == 3600000
        dated = DATE + "Retry-After: Sun, 06 Nov 1994 08:50:07 GMT\r\n"
        assert (await one(reply(503, hub5xx, dated)))[2] == 30000
        past = DATE + "Retry-After: Sun, 06 Nov 1994 08:40:07 GMT\r\n"
        assert (await one(reply(503, hub5xx, past)))[2] == 0
        undated = "Retry-After: Sun, 06 Nov 1994 08:50:07 GMT\r\n"  # no Date to measure from
        assert (await one(reply(429, extra=undated)))[2] == 0
        assert (await one(reply(429, extra="Retry-After: soon\r\n")))[2] == 0
    return arun(go())


def test_the_hubs_own_error_bodies_are_its_verdict():
    async def go():
        refused = b'{"StatusCode":{"Code":"017","Description":"x"},"message":"no"}'
        assert (await one(reply(401, refused)))[0] == "stop"
        unknown = b'{"StatusCode":{"Code":"400"},"message":"session invalid"}'
        kind, why, _ = await one(reply(404, unknown))
        assert kind == "fail" and why.startswith("HTTP 404 not found: 400 session"), why
        busy = b'{"StatusCode":{"Code":"001"}}'
        assert (await one(reply(404, busy)))[0] == "retry"
        assert (await one(reply(403, b'{"message":"IP not allowed"}')))[0] == "fail"
    return arun(go())


def test_answers_that_are_not_the_hubs_are_never_a_refusal():
    async def go():
        html = b"<html><head><title>404 Not Found</title></head></html>"
        kind, why, _ = await one(reply(404, html, "Content-Type: text/html; charset=utf-8\r\n"))
        assert kind == "nothub", (kind, why)
        assert why == "not the hub's answer: HTTP 404 not found (text/html): " + html.decode(
            )[:80], why
        for st in (301, 302, 401, 403, 404, 405, 500, 502, 503, 504):
            for body in (b"", b"{}", b"<h1>Bad Gateway</h1>", b"[]", b'{"error":"x"}',
                         b'{"timestamp":1,"status":404,"error":"Not Found","message":"",'
                         b'"path":"/api/oicp"}', b'{"StatusCode":{"Code":"1"}}',
                         b'{"message":7}'):
                kind, why, _ = await one(reply(st, body))
                assert kind == "nothub" and why.startswith(
                    "not the hub's answer: HTTP %d" % st), (st, body, kind, why)
        kind, why, _ = await one(ok(b"<html>502 Bad Gateway</html>\x00\xff{"))
        assert kind == "nothub" and "HTTP 200: reply: expected" in why, why
        kind, why, _ = await one(ok(b'{"Result":true}'))
        assert kind == "nothub" and "StatusCode.Code" in why, why
    return arun(go())


def test_network_errors_are_retried_with_the_reason():
    async def go():
        kind, why, _ = await one(b"SMTP ready\r\n")
        assert kind == "retry" and "garbage reply: status line" in why, why
        kind, why, _ = await one("refuse")
        assert kind == "retry" and why.startswith("hub unreachable: "), why
        kind, why, _ = await one(["close"])
        assert kind == "retry" and "connection closed" in why, why
    return arun(go())


def test_a_body_that_cannot_be_encoded_fails_for_good():
    async def go():
        kind, why, _ = await one(ok(ACK), body={"ChargingStart": "@1:5"})
        assert kind == "fail" and "ChargingStart" in why, why
    return arun(go())


def test_insecure_is_warned_at_construction_only_for_tls():
    said = []
    net = Net()
    HttpUplink({"url": "https://hub", "insecure": True}, net.connect, lambda: 0,
               lambda level, text: said.append((level, text)))
    assert len(said) == 1 and said[0][0] == 1 and "NOT verified" in said[0][1]
    HttpUplink({"url": "https://hub", "insecure": False}, net.connect, lambda: 0,
               lambda level, text: said.append(text))
    HttpUplink({"url": "https://hub"}, net.connect, lambda: 0, lambda level, text: said.append(1))
    assert len(said) == 1 and net.connects == []
