"""An independent minimal OICP 2.3 hub for the tests: the CPO endpoints and nothing else.

Written from the OICP 2.3 CPO API (paths and reply fields), on http.server, with none of the
mock hub's code: no /api/stats, no /api/faults, no web page (GET answers 501, as http.server
does). Plain HTTP, or mutual TLS with its own test PKI (host_sim/certs.py: the openssl CLI).
`quirks` make it answer against the spec on purpose, to test that the simulator notices:
  "no_status_code"   acknowledgements without StatusCode
  "auth_no_session"  an Authorized AuthorizationStart without SessionID
  "unknown_code"     acknowledgements with StatusCode 999 (not in the spec's table)
"""
import http.server
import json
import os
import re
import ssl
import threading
import uuid

from host_sim import certs

_OP = r"/api/oicp/%s/operators/([^/]+)/%s$"
ROUTES = (
    ("AuthorizeStart", re.compile(_OP % ("charging/v21", "authorize/start"))),
    ("AuthorizeStop", re.compile(_OP % ("charging/v21", "authorize/stop"))),
    ("ChargeDetailRecord", re.compile(_OP % ("cdrmgmt/v22", "charge-detail-record"))),
    ("PushEvseStatus", re.compile(_OP % ("evsepush/v21", "status-records"))),
    ("PushEvseData", re.compile(_OP % ("evsepush/v23", "data-records"))),
    ("ChargingNotification",
     re.compile(r"/api/oicp/notificationmgmt/v11/charging-notifications$")),
)
PROVIDER = "DE-8EO"


def _status(code, text):
    return {"Code": code, "Description": text}


class MiniHub:
    """MiniHub(cards, tls_dir=None, operator=..., quirks=(), mount="", client_certs=True);
    start() -> url (scheme://host:port + mount); stop(). The endpoints are at mount + their OICP
    path, nothing else (404). `received` lists (operation, body) in order, `raw` (operation, the
body's bytes as they came); `sessions` maps
    SessionID to the Types of its notifications and "CDR". With tls_dir, client_certs False is
    server-only TLS."""

    def __init__(self, cards=(), tls_dir=None, operator="DE*SIM", quirks=(), mount="",
                 client_certs=True):
        self.cards = {c.upper() for c in cards}
        self.quirks = set(quirks)
        self.mount = mount
        self.client_certs = client_certs
        self.received = []
        self.raw = []
        self.sessions = {}
        self.lock = threading.Lock()
        self.tls_dir = tls_dir
        if tls_dir:
            certs.make_test_pki(tls_dir, (operator,))
        self._srv = self._thread = None
        self.url = None

    def start(self):
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n)
                status, reply = hub.answer(self.path, raw)
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._srv.daemon_threads = True
        scheme = "http"
        if self.tls_dir:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.path.join(self.tls_dir, "server.pem"),
                                os.path.join(self.tls_dir, "server.key"))
            ctx.load_verify_locations(os.path.join(self.tls_dir, certs.CA))
            ctx.verify_mode = ssl.CERT_REQUIRED if self.client_certs else ssl.CERT_NONE
            self._srv.socket = ctx.wrap_socket(self._srv.socket, server_side=True)
            scheme = "https"
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True)
        self._thread.start()
        self.url = "%s://127.0.0.1:%d%s" % (scheme, self._srv.server_address[1], self.mount)
        return self.url

    def stop(self):
        self._srv.shutdown()
        self._srv.server_close()
        self._thread.join(10)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def answer(self, path, raw):
        """(HTTP status, reply object) for one POST."""
        path = path.split("?")[0]
        if path[:len(self.mount) + 1] != self.mount + "/":
            return 404, {"message": "no such OICP endpoint: %s" % path}
        path = path[len(self.mount):]
        op = next((name for name, rx in ROUTES if rx.match(path)), None)
        if op is None:
            return 404, {"message": "no such OICP endpoint: %s" % path}
        try:
            body = json.loads(raw)
        except ValueError:
            return 400, {"message": "body is not JSON"}
        with self.lock:
            self.received.append((op, body))
            self.raw.append((op, raw))
            return 200, self._reply(op, body)

    def _ack(self, sid):
        out = {"Result": True, "StatusCode": _status("000", "Success")}
        if "unknown_code" in self.quirks:
            out["StatusCode"] = _status("999", "made up")
        if "no_status_code" in self.quirks:
            del out["StatusCode"]
        if sid:  # an EVSE status push names no session
            out["SessionID"] = sid
        return out

    def _reply(self, op, body):
        uid = ((body.get("Identification") or {}).get("RFIDMifareFamilyIdentification")
               or {}).get("UID", "")
        if op == "AuthorizeStart":
            if uid.upper() not in self.cards:
                return {"AuthorizationStatus": "NotAuthorized",
                        "StatusCode": _status("102", "RFID Authentication failed")}
            sid = body.get("SessionID") or str(uuid.uuid4())
            self.sessions.setdefault(sid, [])
            reply = {"AuthorizationStatus": "Authorized", "ProviderID": PROVIDER,
                     "StatusCode": _status("000", "Success")}
            if "auth_no_session" not in self.quirks:
                reply["SessionID"] = sid
            return reply
        if op == "AuthorizeStop":
            return {"SessionID": body.get("SessionID"), "AuthorizationStatus": "Authorized",
                    "ProviderID": PROVIDER, "StatusCode": _status("000", "Success")}
        sid = body.get("SessionID")
        if op == "ChargingNotification":
            self.sessions.setdefault(sid, []).append(body.get("Type"))
        elif op == "ChargeDetailRecord":
            self.sessions.setdefault(sid, []).append("CDR")
        return self._ack(sid)
