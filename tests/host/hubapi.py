"""The mock hub over HTTP for its tests: posts and gets, a session started, a CPO stand-in."""
import http.client
import http.server
import json
import threading
import urllib.parse

from cpagent.oicp import build as oicp
from cpagent.oicp import replies as oicp_replies

OP, EVSE, UID = "DE*ABC", "DE*ABC*E1", "04A1B2C3D4E5F6"
T0, T1 = "2024-05-01T12:00:00+02:00", "2024-05-01T12:30:00+02:00"


def conn(url, timeout=10):
    u = urllib.parse.urlsplit(url)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)


def request(c, method, path, body=None):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    c.request(method, path, body=data, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, dict(r.getheaders()), r.read()


def post(url, path, body):
    c = conn(url)
    try:
        return request(c, "POST", path, body)
    finally:
        c.close()


def get_json(url, path):
    status, _, body = request(conn(url), "GET", path)
    assert status == 200
    return json.loads(body)


def start(url):
    path, body = oicp.authorize_start(OP, UID, evse_id=EVSE)
    status, _, raw = post(url, path, oicp.encode(body))
    assert status == 200
    return oicp_replies.parse_authorization(raw)


class StandIn:
    """A CPO endpoint answering every remote operation with code; keeps what it got."""

    def __init__(self, code="000"):
        got = self.got = []

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                got.append((self.path, body))
                out = json.dumps({"Result": code == "000", "StatusCode": {"Code": code},
                                  "SessionID": body["SessionID"]}).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *a):
                pass
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    def close(self):
        self.server.shutdown()
        self.server.server_close()
