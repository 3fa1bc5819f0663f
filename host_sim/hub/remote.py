"""The mock hub as Hubject toward a CPO: AuthorizeRemoteStart/Stop v2.1 to the CPO's endpoint.

Cpo(url, cert=, key=, ca=) calls it over mutual TLS with the hub's client certificate (or plain
HTTP for an http:// url); call() blocks (the Hub runs it in an executor) and returns a dict:
{"op", "status", "body", "code", "session_id", "seconds", "error"}. One connection per call, as
Hubject's answer budget (60 s) is far above a handshake's cost.
"""
import http.client
import json
import ssl
import time
import uuid
from urllib.parse import urlsplit

from host_sim import oicp_schemas

OPS = {"start": "AuthorizeRemoteStart", "stop": "AuthorizeRemoteStop"}


class Cpo:
    def __init__(self, url, cert=None, key=None, ca=None, timeout_s=60.0):
        u = urlsplit(url.rstrip("/"))
        if u.scheme not in ("http", "https") or not u.hostname:
            raise ValueError("cpo url: expected http(s)://host:port[/prefix], got %r" % url)
        self.url, self.host, self.prefix = url, u.hostname, u.path
        self.port = u.port or (443 if u.scheme == "https" else 80)
        self.timeout_s = timeout_s
        self.ctx = None
        if u.scheme == "https":
            self.ctx = ssl.create_default_context(cafile=ca)
            if cert:
                self.ctx.load_cert_chain(cert, key)

    def body(self, op, evse_id, provider_id, evco_id=None, session_id=None,
             cpo_session_id=None, product_id=None):
        """The request body of op ("start"/"stop"); a start without session_id gets a new
        SessionID (a GUID, as Hubject makes them)."""
        if op not in OPS:
            raise ValueError("op: expected start or stop, got %r" % (op,))
        if session_id is None:
            if op == "stop":
                raise ValueError("session_id: required for a stop")
            session_id = str(uuid.uuid4())
        b = {"SessionID": session_id, "ProviderID": provider_id, "EvseID": evse_id}
        if op == "start":
            if not evco_id:
                raise ValueError("evco_id: required for a start")
            b["Identification"] = {"RemoteIdentification": {"EvcoID": evco_id}}
            if product_id:
                b["PartnerProductID"] = product_id
        if cpo_session_id:
            b["CPOPartnerSessionID"] = cpo_session_id
        return b

    def call(self, op, body):
        """POSTs body to op's path; never raises for the network (error says what failed)."""
        name = OPS[op]
        path = self.prefix + oicp_schemas.remote_path(name, body["ProviderID"])
        out = {"op": name, "status": None, "body": None, "code": None,
               "session_id": body["SessionID"], "seconds": None, "error": None}
        t0 = time.perf_counter()
        if self.ctx is None:
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        else:
            conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout_s,
                                               context=self.ctx)
        try:
            conn.request("POST", path, json.dumps(body, separators=(",", ":")),
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            raw = r.read()
            out["status"] = r.status
            try:
                out["body"] = json.loads(raw)
            except ValueError:
                out["body"] = raw[:2000].decode("utf-8", "replace")
            if isinstance(out["body"], dict):
                sc = out["body"].get("StatusCode")
                out["code"] = sc.get("Code") if isinstance(sc, dict) else None
        except (OSError, http.client.HTTPException) as e:
            out["error"] = "%s: %s" % (type(e).__name__, e)
        finally:
            conn.close()
            out["seconds"] = round(time.perf_counter() - t0, 4)
        return out
