"""Mock hub over mutual TLS with a test PKI made by host_sim.certs (openssl CLI)."""
import http.client
import json
import socket
import ssl

import pytest

from cpagent.oicp import build as oicp
from cpagent.oicp import replies as oicp_replies
from host_sim import certs
from host_sim.hub import HubThread

OP, UID = "DE*ABC", "04A1B2C3D4E5F6"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    out = certs.make_test_pki(str(d), (OP, "DE*XYZ", "+49*536"))
    out["stranger"] = certs.make_client(str(d / "other"), OP, ca_dir=str(d / "other"))
    return out


@pytest.fixture
def hub(pki):
    with HubThread(cards=[UID], tls=pki["dir"]) as h:
        yield h


def client_ctx(pki, cert=None):
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if cert:
        ctx.load_cert_chain(*cert)
    return ctx


def post(hub, ctx, op=OP):
    path, body = oicp.authorize_start(op, UID)
    c = http.client.HTTPSConnection("127.0.0.1", hub.hub.port, context=ctx, timeout=10)
    try:
        c.request("POST", path, body=oicp.encode(body))
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def test_good_client_certificate_is_accepted_and_recorded(hub, pki):
    assert hub.url.startswith("https://127.0.0.1:")
    status, raw = post(hub, client_ctx(pki, pki["clients"][OP]))
    r = oicp_replies.parse_authorization(raw)
    assert status == 200 and r.ok
    (ex,) = hub.hub.exchanges
    assert ex["cn"] == OP
    status, raw = post(hub, client_ctx(pki, pki["clients"]["+49*536"]), op="+49*536")
    assert oicp_replies.parse_authorization(raw).ok  # `+` in CN and %2B in the path


@pytest.mark.parametrize("which", ["none", "stranger"])
def test_client_without_a_certificate_of_the_ca_is_refused_at_handshake(hub, pki, which):
    cert = pki["stranger"] if which == "stranger" else None
    with pytest.raises((ssl.SSLError, ConnectionError)):
        post(hub, client_ctx(pki, cert))
    assert hub.hub.exchanges == []  # no request got through
    assert post(hub, client_ctx(pki, pki["clients"][OP]))[0] == 200  # the hub lives on


def test_certificate_of_another_operator_gets_017(hub, pki):
    status, raw = post(hub, client_ctx(pki, pki["clients"]["DE*XYZ"]))
    r = oicp_replies.parse_authorization(raw)
    assert (status, r.ok, r.code, oicp_replies.classify(r.code)) == (200, False, "017", "stop")
    body = json.loads(raw)
    assert "CN=DE*XYZ" in body["StatusCode"]["AdditionalInfo"]
    assert hub.hub.rules.sessions == {}


def test_notification_body_operator_is_checked_against_the_certificate(hub, pki):
    status, raw = post(hub, client_ctx(pki, pki["clients"][OP]))
    sid = oicp_replies.parse_authorization(raw).session_id
    path, body = oicp.notification_start("DE*XYZ", sid, "DE*XYZ*E1", "2024-05-01T12:00:00Z")
    c = http.client.HTTPSConnection("127.0.0.1", hub.hub.port,
                                    context=client_ctx(pki, pki["clients"][OP]), timeout=10)
    c.request("POST", path, body=oicp.encode(body))
    r = oicp_replies.parse_acknowledgement(c.getresponse().read())
    c.close()
    assert (r.ok, r.code) == (False, "017")


def test_server_certificate_verifies_for_localhost_too(hub, pki):
    ctx = client_ctx(pki, pki["clients"][OP])
    with socket.create_connection(("127.0.0.1", hub.hub.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(b"GET /api/stats HTTP/1.1\r\nHost: localhost\r\n"
                        b"Connection: close\r\n\r\n")
            assert tls.recv(64).startswith(b"HTTP/1.1 200 OK")
