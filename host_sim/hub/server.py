"""The mock hub's asyncio HTTP/1.1 server: keep-alive, plain or mutual TLS, faults, exchange log.

Mutual TLS: the server presents `server.pem` and requires a client certificate signed by the
test CA (`ca.pem`), both from the certs directory (host_sim/certs.py makes them). A client
without one fails the handshake. The OperatorID of each request (path and body) is compared with
the client certificate's subject commonName (CN), upper-cased and without `*`/`+` separators
(so CN=DE*ABC matches DEABC); a mismatch answers StatusCode 017. Over plain HTTP nothing is
compared (only the cert_mismatch fault gives 017).

Control plane (never faulted): GET / (page), GET /api/sessions, /api/exchanges?since=SEQ,
/api/stats, /api/evses, /api/faults; POST /api/faults (a rule or a list, see faults.py),
DELETE /api/faults, POST /api/reset (forget sessions, exchanges, EVSEs and faults),
POST /api/remote {"op": "start"|"stop", "evse_id", "evco_id", "provider_id", "session_id"}
(the hub calls the CPO's endpoint as Hubject: remote.py; answers the call's record),
GET /api/remote (the calls made), GET /api/evse-data (the EVSE records pushed).

Hubject's rules on pushes and rates: two pushes of one operation by one operator while the first
is still being handled are an error of the CPO (OICP: pushes "MUST never be executed in
parallel"): the second is answered 009 (data transaction error) and counted in
stats()["overlaps"]. rate_limits ({operation: calls per minute}, or True for Hubject's
acceptable-use figures in AUP_LIMITS) answers 429 with Retry-After past the limit, per
operation and client (certificate CN, else peer address), over any 60 s window; off by default.
"""
import asyncio
import collections
import json
import os
import ssl
import threading
import time
from datetime import datetime, timezone

from host_sim.hub import oicp_rules
from host_sim.hub.faults import Faults
from host_sim.hub.page import HTML

MAX_BODY = 1 << 20
MAX_HEAD = 16 << 10
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            408: "Request Timeout", 411: "Length Required", 413: "Content Too Large",
            409: "Conflict", 429: "Too Many Requests", 431: "Request Header Fields Too Large"}
# Hubject's acceptable use policy, calls per minute (research notes [AUP]).
AUP_LIMITS = {"AuthorizeStart": 200, "AuthorizeStop": 50, "ChargeDetailRecord": 350,
              "ChargingNotifications": 100, "PushEvseStatus": 2000, "PushEvseData": 375}
_MAX_REMOTE = 1000  # remote calls kept for the page and /api/remote; the oldest goes


class _BadRequest(Exception):
    def __init__(self, status, message):
        Exception.__init__(self, message)
        self.status = status


def tls_context(certs_dir):
    """Server context for mutual TLS from certs_dir (ca.pem, server.pem, server.key)."""
    return server_context(os.path.join(certs_dir, "server.pem"),
                          os.path.join(certs_dir, "server.key"), os.path.join(certs_dir, "ca.pem"))


def server_context(cert, key, ca):
    """Server context for mutual TLS: clients must show a certificate of the CA `ca`."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.load_verify_locations(ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _cn(peercert):
    for rdn in (peercert or {}).get("subject", ()):
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


async def _read_request(reader):
    """(method, target, version, headers) and body, or None at a clean end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial.strip():
            raise _BadRequest(400, "incomplete request head")
        return None
    except asyncio.LimitOverrunError:
        raise _BadRequest(431, "request head over %d bytes" % MAX_HEAD)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise _BadRequest(400, "bad request line %r" % lines[0][:80])
    headers = {}
    for line in lines[1:]:
        if line:
            k, sep, v = line.partition(":")
            if not sep:
                raise _BadRequest(400, "bad header line %r" % line[:80])
            headers[k.strip().lower()] = v.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunked(reader)
    else:
        try:
            n = int(headers.get("content-length", "0"))
        except ValueError:
            raise _BadRequest(400, "Content-Length: not a number")
        if n > MAX_BODY or n < 0:
            raise _BadRequest(413, "body of %d bytes; the hub takes at most %d" % (n, MAX_BODY))
        body = await reader.readexactly(n) if n else b""
    return parts[0], parts[1], parts[2], headers, body


async def _read_chunked(reader):
    body = bytearray()
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if len(body) + size > MAX_BODY:
            raise _BadRequest(413, "chunked body over %d bytes" % MAX_BODY)
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


def _json(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


class Hub:
    """The mock OICP 2.3 hub. `url = await hub.start()`, then `await hub.stop()`.

    tls: None (plain HTTP), a directory with ca.pem/server.pem/server.key, or an SSLContext.
    cards: UIDs/EvcoIDs to authorize (list, or dict to ProviderID). log: JSON-lines file path.
    Other keywords go to oicp_rules.Rules (provider_id, operators, progress_interval, ...).
    """

    def __init__(self, host="127.0.0.1", port=0, tls=None, cards=(), log=None,
                 max_exchanges=100_000, idle_timeout=60.0, cpo=None, rate_limits=None,
                 **rules):
        self.host, self.port = host, port
        self.ssl = tls_context(tls) if isinstance(tls, str) else tls
        self.rules = oicp_rules.Rules(cards, **rules)
        self.faults = Faults()
        self.log_path = log
        self.idle_timeout = idle_timeout
        # Overflow policy: the oldest exchanges leave memory (the log file keeps them all).
        self._exchanges = collections.deque(maxlen=max_exchanges)
        self.refused = 0  # answers a charger takes as a refusal for good
        self._seq = 0
        self._server = None
        self._conns = set()
        self._tasks = set()
        self._log = None
        self._resume_task = None
        self.refusing = False
        self.url = None
        self.cpo = cpo  # a remote.Cpo: the CPO endpoint this hub calls as Hubject
        self.remote_calls = collections.deque(maxlen=_MAX_REMOTE)
        self.rate_limits = AUP_LIMITS if rate_limits is True else (rate_limits or {})
        self._calls = {}     # (operation, client) -> deque of arrival times within 60 s
        self._pushing = set()  # (operation, OperatorID) of pushes being handled now
        self.overlaps = collections.Counter()  # operation -> pushes that overlapped
        self.limited = collections.Counter()   # operation -> answers 429

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self):
        if self.log_path:
            self._log = open(self.log_path, "a", encoding="utf-8")
        await self._listen()
        self.port = self._server.sockets[0].getsockname()[1]
        host = "[%s]" % self.host if ":" in self.host else self.host
        self.url = "%s://%s:%d" % ("https" if self.ssl else "http", host, self.port)
        return self.url

    async def _listen(self):
        self._server = await asyncio.start_server(self._conn, self.host, self.port,
                                                  ssl=self.ssl, limit=MAX_HEAD)

    async def stop(self):
        if self._resume_task:
            self._resume_task.cancel()
        await self._close_listener()
        self._close_conns()
        # Handlers end at the EOF the close gives them; one asleep in a latency fault is cut.
        tasks = list(self._tasks)
        if tasks:
            _done, late = await asyncio.wait(tasks, timeout=1.0)
            for t in late:
                t.cancel()
            if late:
                await asyncio.wait(late)
        if self._log:
            self._log.close()
            self._log = None

    async def _close_listener(self):
        if self._server:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def _close_conns(self, keep=None):
        for w in list(self._conns):
            if w is not keep:
                w.close()

    async def refuse(self, seconds=None, keep=None):
        """Stop listening and drop open connections; listen again after seconds (or resume())."""
        self.refusing = True
        await self._close_listener()
        self._close_conns(keep)
        if self._resume_task:
            self._resume_task.cancel()
        if seconds is not None:
            self._resume_task = asyncio.ensure_future(self._resume_after(seconds))

    async def _resume_after(self, seconds):
        await asyncio.sleep(seconds)
        self._resume_task = None
        await self.resume()

    async def resume(self):
        if self._resume_task:
            self._resume_task.cancel()
            self._resume_task = None
        if self._server is None:
            await self._listen()
        self.refusing = False

    # ---- API for tests and the simulator ----------------------------------------------------

    async def add_fault(self, kind, count=1, match=None, **params):
        f = self.faults.add(kind, count, match, **params)
        if kind == "refuse":
            await self.refuse(f.seconds)
        return f

    @property
    def exchanges(self):
        return list(self._exchanges)

    def sessions(self):
        return self.rules.sessions_json()

    async def remote(self, op, evse_id, evco_id=None, provider_id=None, session_id=None,
                     operator_id=None, **extra):
        """Calls the CPO (self.cpo) as Hubject: op "start" or "stop". A start makes a new
        SessionID (unless given) and opens the session before the call, as Hubject does, so
        the CPO's notifications find it; a start the CPO does not accept (code not 000) is
        forgotten again. Returns the call's record (remote.Cpo.call). ValueError for bad
        arguments, LookupError when no CPO endpoint is configured."""
        if self.cpo is None:
            raise LookupError("no CPO endpoint configured (Hub(cpo=remote.Cpo(url, ...)))")
        provider_id = provider_id or self.rules.provider_id
        if op == "stop" and session_id is None:
            running = [s for s in self.rules.sessions.values() if s.evse == evse_id
                       and s.state in ("authorized", "charging")]
            if not running:
                raise ValueError("session_id: none given and no session runs on %s" % evse_id)
            session_id = running[-1].sid
        body = self.cpo.body(op, evse_id, provider_id, evco_id, session_id, **extra)
        sid = body["SessionID"]
        opened = None
        if op == "start" and sid not in self.rules.sessions:
            operator = operator_id or "*".join(evse_id.split("*")[:2])
            opened = self.rules.add_session(sid, operator, evco_id, evse_id, _now(),
                                            kind="RemoteIdentification", provider=provider_id)
        rec = await asyncio.get_running_loop().run_in_executor(None, self.cpo.call, op, body)
        rec["time"], rec["evse_id"] = _now(), evse_id
        if opened is not None and rec["code"] != "000":
            self.rules.sessions.pop(sid, None)
        elif op == "stop" and rec["code"] == "000" and sid in self.rules.sessions:
            self.rules.sessions[sid].stopped = True
        self.remote_calls.append(rec)
        return rec

    def stats(self):
        c = self.rules.counts
        return {"overlaps": dict(self.overlaps), "rate_limited": dict(self.limited),
                "remote_calls": len(self.remote_calls),
                "sessions": len(self.rules.sessions), "requests": c["requests"],
                "duplicates": c["duplicates"], "exchanges": self._seq, "refused": self.refused,
                "faults": len(self.faults.rules), "refusing": self.refusing,
                "codes": dict((k[5:], v) for k, v in c.items() if k.startswith("code_")),
                "http": dict((k[5:], v) for k, v in c.items() if k.startswith("http_"))}

    def reset(self):
        self.rules.sessions.clear()
        self.rules._by_cpo_sid.clear()
        self.rules.evse_status.clear()
        self.rules.evse_data.clear()
        self.rules.counts.clear()
        self._exchanges.clear()
        self.refused = 0
        self.faults.clear()

    # ---- connections ------------------------------------------------------------------------

    async def _conn(self, reader, writer):
        self._conns.add(writer)
        self._tasks.add(asyncio.current_task())
        peer = writer.get_extra_info("peername")
        client = {"peer": "%s:%s" % peer[:2] if peer else None,
                  "cn": _cn(writer.get_extra_info("peercert"))}
        try:
            while True:
                try:
                    req = await asyncio.wait_for(_read_request(reader), self.idle_timeout)
                except _BadRequest as e:
                    await self._send(writer, e.status, _json({"message": str(e)}), (), False)
                    return
                if req is None:
                    return
                if not await self._one(req, client, writer):
                    return
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError,
                ssl.SSLError, ValueError):
            pass  # the client went away, idled out or sent a broken chunk size: just close
        except asyncio.CancelledError:
            # stop() cut it short. Ending normally: asyncio (3.11) would log a cancelled
            # client_connected_cb task as an unhandled exception.
            pass
        finally:
            self._tasks.discard(asyncio.current_task())
            self._conns.discard(writer)
            writer.close()

    async def _send(self, writer, status, body, headers, keep, ctype="application/json"):
        head = ["HTTP/1.1 %d %s" % (status, _REASONS.get(status, "Error")),
                "Content-Type: " + ctype, "Content-Length: %d" % len(body),
                "Connection: " + ("keep-alive" if keep else "close")]
        head.extend("%s: %s" % h for h in headers)
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()

    async def _one(self, req, client, writer):
        """Serve one request; False when the connection must close."""
        method, target, version, headers, body = req
        t0 = time.perf_counter()
        conn = headers.get("connection", "").lower()
        keep = conn != "close" if version == "HTTP/1.1" else conn == "keep-alive"
        path = target.split("?", 1)[0]
        found = oicp_rules.route(path)
        if found is None:
            status, out, extra, ctype = await self._control(method, target, body, writer)
            await self._send(writer, status, out, extra, keep, ctype)
            return keep and not self.refusing
        op, path_operator = found
        key = (op, path_operator) if op.startswith("Push") else None
        if key is not None and key in self._pushing:
            self.overlaps[op] += 1
            a = oicp_rules.ack(False, "009", "a push of %s by %s is still being handled: "
                               "pushes of one operation never run in parallel (OICP)"
                               % (op, path_operator))
            return await self._answer_now(op, path, body, client, a, keep, t0, writer)
        limited = self._limited(op, client)
        if limited is not None:
            self.limited[op] += 1
            a = oicp_rules.Answer(429, {"message": "rate limit: %d %s per minute"
                                        % (self.rate_limits[op], op),
                                        "extendedInfo": "Hubject acceptable use policy",
                                        "validationErrors": []})
            a.headers = (("Retry-After", "%d" % limited),)
            return await self._answer_now(op, path, body, client, a, keep, t0, writer)
        if key is None:
            return await self._oicp(req, client, writer, op, path_operator, path, keep, t0)
        self._pushing.add(key)
        try:
            return await self._oicp(req, client, writer, op, path_operator, path, keep, t0)
        finally:
            self._pushing.discard(key)

    def _limited(self, op, client):
        """None, or the seconds to wait when op's per-minute limit is used up for client."""
        limit = self.rate_limits.get(op)
        if not limit:
            return None
        now = time.monotonic()
        who = client["cn"] or (client["peer"] or "").rpartition(":")[0]
        q = self._calls.setdefault((op, who), collections.deque())
        while q and now - q[0] >= 60:
            q.popleft()
        if len(q) >= limit:
            return max(1, int(q[0] + 60 - now + 0.999))
        q.append(now)
        return None

    async def _answer_now(self, op, path, body, client, a, keep, t0, writer):
        rec = {"seq": None, "time": _now(), "peer": client["peer"], "cn": client["cn"],
               "operation": op, "path": path, "request": _loads(body)}
        self._record(rec, a.status, a.body, a.code, t0)
        await self._send(writer, a.status, _json(a.body), a.headers, keep)
        return keep

    async def _oicp(self, req, client, writer, op, path_operator, path, keep, t0):
        method, target, version, headers, body = req
        rec = {"seq": None, "time": _now(), "peer": client["peer"], "cn": client["cn"],
               "operation": op, "path": path, "request": _loads(body)}
        if method != "POST":
            out = {"message": "OICP operations are POST"}
            self._record(rec, 405, out, None, t0)
            await self._send(writer, 405, _json(out), (("Allow", "POST"),), keep)
            return keep
        f = self.faults.take(op)
        rec["fault"] = f.kind if f else None
        identity = client["cn"]
        if f is not None:
            if f.kind == "latency":
                await asyncio.sleep(f.seconds)
            elif f.kind == "cert_mismatch":
                identity = "(cert_mismatch fault: another operator)"
            elif f.kind == "drop":
                if f.process:
                    a = self.rules.handle(op, path_operator, body, identity, rec["time"])
                    rec["session_id"], rec["code"] = a.session_id, a.code
                self._record(rec, None, None, rec.get("code"), t0)
                return False
            elif f.kind != "code":
                return await self._http_fault(f, rec, writer, keep, t0)
        if f is not None and f.kind == "code":
            a = oicp_rules.ack(False, f.code, "injected fault")
        else:
            a = self.rules.handle(op, path_operator, body, identity, rec["time"])
        rec["session_id"], rec["duplicate"] = a.session_id, a.duplicate
        # Recorded before the reply goes out: a client that has its answer finds it logged.
        self._record(rec, a.status, a.body, a.code, t0)
        await self._send(writer, a.status, _json(a.body), a.headers, keep)
        return keep

    async def _http_fault(self, f, rec, writer, keep, t0):
        extra = ()
        if f.kind == "garbage":
            out = f.body.encode("utf-8", "surrogateescape") if isinstance(f.body, str) else f.body
            status = 200
        else:
            status = {"429": 429, "408": 408}.get(f.kind) or f.status
            msg = "injected fault: HTTP %d" % status
            out = _json({"message": msg, "extendedInfo": "fault rule %s" % f.kind,
                         "validationErrors": []})
            if f.kind == "429":
                extra = (("Retry-After", "%d" % f.retry_after),)
            keep = keep and f.kind != "408"
        self._record(rec, status, _loads(out), None, t0)
        await self._send(writer, status, out, extra, keep)
        return keep

    def _record(self, rec, status, reply, code, t0):
        self._seq += 1
        rec.update(seq=self._seq, status=status, reply=reply, code=code,
                   latency_ms=round((time.perf_counter() - t0) * 1000, 3))  # hub time only
        rec["refused"] = oicp_rules.refused_for_good(rec["operation"], status, code)
        self.refused += rec["refused"]
        rec.setdefault("duplicate", False)
        rec.setdefault("session_id", None)
        rec.setdefault("fault", None)
        self._exchanges.append(rec)
        if self._log:
            self._log.write(json.dumps(rec, separators=(",", ":")) + "\n")
            self._log.flush()

    # ---- control plane ----------------------------------------------------------------------

    async def _control(self, method, target, body, writer):
        path, _, query = target.partition("?")
        args = dict(p.partition("=")[::2] for p in query.split("&") if p)
        if method == "GET" and path in ("/", "/index.html"):
            return 200, HTML.encode(), (), "text/html; charset=utf-8"
        if method == "GET" and path == "/api/sessions":
            return self._ok(self.sessions())
        if method == "GET" and path == "/api/exchanges":
            try:
                since = int(args.get("since", "0"))
            except ValueError:
                return self._err(400, "since: expected an exchange seq number")
            return self._ok([e for e in self._exchanges if e["seq"] > since])
        if method == "GET" and path == "/api/stats":
            return self._ok(self.stats())
        if method == "GET" and path == "/api/evses":
            return self._ok(self.rules.evses_json())
        if path == "/api/faults":
            if method == "GET":
                return self._ok(self.faults.as_json())
            if method == "DELETE":
                self.faults.clear()
                return self._ok([])
            if method == "POST":
                try:
                    added = self.faults.add_json(json.loads(body))
                except (ValueError, TypeError) as e:  # FaultError, bad JSON, unknown key
                    return self._err(400, str(e))
                for f in added:
                    if f.kind == "refuse":
                        await self.refuse(f.seconds, keep=writer)
                return self._ok(self.faults.as_json())
        if path == "/api/remote":
            if method == "GET":
                return self._ok(list(self.remote_calls))
            if method == "POST":
                try:
                    args = json.loads(body)
                    if not isinstance(args, dict):
                        raise ValueError("expected a JSON object")
                    rec = await self.remote(**args)
                except LookupError as e:
                    return self._err(409, str(e))
                except (ValueError, TypeError) as e:
                    return self._err(400, "remote: %s" % e)
                return self._ok(rec)
        if method == "GET" and path == "/api/evse-data":
            return self._ok([r for r in self.rules.evse_data.values()])
        if method == "POST" and path == "/api/reset":
            self.reset()
            return self._ok({"reset": True})
        return self._err(404, "nothing at %s %s" % (method, path))

    def _ok(self, obj):
        return 200, _json(obj), (), "application/json"

    def _err(self, status, message):
        return status, _json({"message": message}), (), "application/json"


def _loads(body):
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return body[:2000].decode("utf-8", "replace")


class HubThread:
    """A Hub on its own event loop in a daemon thread, for synchronous tests and tools.

    with HubThread(cards=["04A1B2C3D4E5F6"]) as h: urlopen(h.url + "/api/stats")
    h.call(fn, *args) runs fn (plain or async) on the hub's loop and returns its result.
    """

    def __init__(self, **hub_kwargs):
        self.hub = Hub(**hub_kwargs)
        self.loop = asyncio.new_event_loop()
        self.loop.set_exception_handler(quiet_tls)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="mock-oicp-hub")
        self.url = None

    def start(self):
        self._thread.start()
        self.url = self.call(self.hub.start)
        return self.url

    def call(self, fn, *args, **kwargs):
        async def run():
            r = fn(*args, **kwargs)
            return await r if asyncio.iscoroutine(r) else r
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    def stop(self):
        if self._thread.is_alive():
            self.call(self.hub.stop)
            self.call(_cancel_others)  # e.g. a request still sleeping in a latency fault
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self.loop.close()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()


async def _cancel_others():
    me = asyncio.current_task()
    for t in asyncio.all_tasks():
        if t is not me:
            t.cancel()


def quiet_tls(loop, context):
    # A client refused at the TLS handshake (no or a foreign certificate) is expected here.
    if isinstance(context.get("exception"), (ssl.SSLError, ConnectionError)):
        return
    loop.default_exception_handler(context)
