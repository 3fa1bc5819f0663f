"""The CPO's OICP endpoint in the relay: Hubject's AuthorizeRemoteStart/Stop v2.1 over mutual TLS.

Each connection is a thread. The TLS handshake runs there (not in the accepting thread, so a
slow or foreign client holds only itself) and requires a client certificate signed by the
configured CA; with cpo.hub_cn set, its subject CN must be that too (else 017, Unauthorized
Access, as Hubject answers a partner's wrong certificate). A request is read within caps
(16 KB), parsed as strict JSON and checked against the shared schema: a bad one is answered as
the mock hub answers a CPO's (HTTP 400 with the field named), logged, counted, and reaches no
charger. A valid one goes to commands.Commands; the answer is an eRoamingAcknowledgement.
"""
import http.server
import logging
import socket
import socketserver
import ssl
import sys
import threading

from host_sim import oicp_schemas
from host_sim.hub.oicp_rules import ack, fault
from host_sim.hub.server import _cn, _json, server_context
from host_sim.relay import envelope

log = logging.getLogger("relay.cpo")
MAX_BODY = 16384
# Connections served at once (a thread each); one more is closed at once, counted ("busy").
MAX_CONNECTIONS = 256


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    on_busy = None

    def __init__(self, *a, **kw):
        http.server.HTTPServer.__init__(self, *a, **kw)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.on_busy(client_address)
            self.shutdown_request(request)
            return
        socketserver.ThreadingMixIn.process_request(self, request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            socketserver.ThreadingMixIn.process_request_thread(self, request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a refused handshake (logged as such) or a client gone
        log.exception("CPO endpoint: a request from %s raised", client_address[0])


class Endpoint:
    """Endpoint(cfg.cpo, commands, metrics, throttle).start(); .port, .url; stop()."""

    def __init__(self, cfg, commands, metrics, throttle):
        self.cfg, self.commands, self.metrics, self.throttle = cfg, commands, metrics, throttle
        self.ctx = None if cfg["insecure_http"] else server_context(cfg["cert"], cfg["key"],
                                                                    cfg["ca"])
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 30

            def setup(self):
                http.server.BaseHTTPRequestHandler.setup(self)
                self.cn = None
                # The head and the body are two writes: without this, Nagle's algorithm and
                # the client's delayed ACK hold the body ~40 ms.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if outer.ctx is None:
                    return
                try:
                    self.connection.do_handshake()
                except (ssl.SSLError, OSError) as e:
                    outer.refused("tls", "TLS handshake with %s failed: %s"
                                  % (self.client_address[0], e))
                    raise ConnectionAbortedError("TLS handshake") from None
                self.cn = _cn(self.connection.getpeercert())

            def do_POST(self):
                status, body = outer.serve(self.path, self.headers, self.rfile, self.cn)
                data = _json(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self.send_error(405, "OICP operations are POST")

            def log_message(self, *args):
                pass

        self.server = _Server((cfg["host"], cfg["port"]), Handler, bind_and_activate=True)
        self.server.on_busy = lambda addr: self.refused(
            "busy", "%s: %d connections already served" % (addr[0], MAX_CONNECTIONS))
        if self.ctx is not None:
            self.server.socket = self.ctx.wrap_socket(self.server.socket, server_side=True,
                                                      do_handshake_on_connect=False)
        else:
            log.warning("CPO endpoint on PLAIN HTTP (cpo.insecure_http): no client "
                        "certificate is checked; for tests only, never toward Hubject")
        self.port = self.server.server_address[1]
        self.url = "%s://%s:%d" % ("http" if self.ctx is None else "https", cfg["host"],
                                   self.port)
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self.server.serve_forever, name="relay-cpo",
                                       daemon=True)
        self.thread.start()
        log.info("CPO endpoint (Hubject's remote start/stop) at %s", self.url)
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def refused(self, reason, why):
        self.metrics.inc("relay_remote_refused_total", reason=reason)
        self.throttle.log("cpo " + reason, "CPO endpoint refused a request: %s", why)

    def serve(self, target, headers, rfile, cn):
        """(HTTP status, JSON body) for one POST."""
        path = target.split("?", 1)[0]
        found = oicp_schemas.remote_route(path)
        if found is None:
            self.refused("path", "no OICP remote operation at %s" % path[:120])
            return 404, {"message": "no OICP operation at %s" % path[:120]}
        op, provider = found
        try:
            n = int(headers.get("Content-Length", ""))
        except ValueError:
            n = -1
        if not 0 <= n <= MAX_BODY:
            self.refused("size", "%s: Content-Length %r (at most %d)" % (
                op, headers.get("Content-Length"), MAX_BODY))
            return 413, {"message": "Content-Length: expected 0..%d" % MAX_BODY}
        raw = rfile.read(n)
        want = self.cfg["hub_cn"]
        if want is not None and cn != want:
            self.refused("certificate", "%s from CN=%s: not the hub's certificate (CN=%s)"
                         % (op, cn, want))
            return 200, ack(False, "017", "client certificate CN=%s is not the hub's" % cn).body
        try:
            doc = envelope.loads(raw.decode("utf-8"))
            if not isinstance(doc, dict):
                raise ValueError("expected a JSON object")
        except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
            return self._fault(op, [("$", "body is not a JSON object: %s" % str(e)[:120])])
        errs = oicp_schemas.schema_errors(op, doc)
        if errs:
            return self._fault(op, errs)
        if doc["ProviderID"] != provider:
            return self._fault(op, [("$.ProviderID", "body has %s, the path %s"
                                     % (doc["ProviderID"], provider))])
        if op == "AuthorizeRemoteStart" and "EvcoID" not in doc["Identification"].get(
                "RemoteIdentification", {}):
            return self._fault(op, [("$.Identification.RemoteIdentification",
                                     "is required (the remote process carries the EvcoID)")])
        try:
            code, info = self.commands.handle(op, doc)
        except Exception as e:  # a bug of ours: Hubject still gets an answer, logged once
            self.throttle.log("cpo internal " + type(e).__name__, "%s %s: %s", op,
                              doc["SessionID"], e, exc_info=True)
            self.metrics.inc("relay_refused_total", reason="internal")
            code, info = "501", "relay error: %s" % type(e).__name__
        extra = dict((k, doc[k]) for k in ("CPOPartnerSessionID", "EMPPartnerSessionID")
                     if k in doc)
        return 200, ack(code == "000", code, info, doc["SessionID"], extra).body

    def _fault(self, op, errs):
        a = fault(errs, "eRoaming" + op)
        self.refused("schema", "%s: %s" % (op, a.body["message"][:200]))
        return a.status, a.body
