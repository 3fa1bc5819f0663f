"""Every exchange the fleet's chargers have with the hub, recorded on the chargers' side.

The timeline, the summary and the report are built from these records alone, so a run needs
nothing of a hub but its OICP endpoints. A charger's uplink is wrapped (its `send`, and for HTTP
the client's `post`, to see the status and the raw reply): path, session, HTTP status, OICP
code, latency and attempt of each send, and the result the firmware made of it.
"""
import json
import time

from cpagent.oicp.build import encode

MAX_ROWS = 200000  # kept for the timeline and the report; later ones only counted (rows_dropped)
MAX_KINDS = 200  # kinds of hub non-conformance kept; later kinds count under "other kinds"
_OPS = (("/authorize/start", "AuthorizeStart"), ("/authorize/stop", "AuthorizeStop"),
        ("/charge-detail-record", "ChargeDetailRecord"), ("/status-records", "PushEvseStatus"),
        ("/data-records", "PushEvseData"), ("/charging-notifications", "Notification"))


def operation(path, body):
    """The OICP operation of a request: 'AuthorizeStart', ..., 'Notification Start'."""
    for tail, op in _OPS:
        if path.endswith(tail):
            if op == "Notification":
                return "Notification %s" % (body.get("Type") if isinstance(body, dict) else "?")
            return op
    return path


def _uid(body):
    """The card's UID, or a remote start's EvcoID (the session table's card column)."""
    ident = body.get("Identification") or {}
    m = ident.get("RFIDMifareFamilyIdentification") or {}
    return m.get("UID") or (ident.get("RemoteIdentification") or {}).get("EvcoID")


def no_reply_class(reason):
    """A short class of a send that got no OICP reply (its reason text varies by host)."""
    for k in ("unreachable", "no complete reply", "no reply", "garbage", "not sendable",
              "closed"):
        if k in (reason or ""):
            return {"no complete reply": "timeout", "no reply": "timeout"}.get(k, k)
    return "other"


class Exchange:
    """One send and its answer, as a charger saw it."""
    __slots__ = ("t", "charger", "evse", "op", "session", "card", "msg", "attempt", "status",
                 "code", "result", "reason", "ms", "sim_ms", "path", "raw", "body", "reply")

    def row(self):
        """The JSON form (report.json): no raw bytes, no request body."""
        return {k: getattr(self, k) for k in self.__slots__ if k not in ("raw", "body", "reply")}


class Row:
    """An exchange's JSON form (Exchange.row(), report.json) read back as one: what the
    timeline, the counts and the latencies need (a worker's records in the merged run)."""

    def __init__(self, d):
        self._d = d
        self.__dict__.update(d)
        self.body = self.raw = self.reply = None

    def row(self):
        return self._d


class Recorder:
    """The fleet's exchanges: rows (up to MAX_ROWS) and every later one still counted, and the
    hub's non-conformances by kind. check(exchange) -> list of non-conformance texts
    (host_sim/sim/conform.py)."""

    def __init__(self, clock, check=None):
        self.clock = clock
        self.rows = []
        self.dropped = 0
        self._check = check
        # (operation, text) -> {"op", "issue", "count", "first": the first reply's row}
        self.nonconformance = {}
        self._attempts = {}

    def wrap(self, charger_id, uplink):
        """Record every send of this charger's uplink (HttpUplink or MqttUplink)."""
        last = {}
        http = getattr(uplink, "http", None)
        if http is not None:
            post = http.post

            async def _post(path, body, headers=None):
                t0 = time.monotonic()
                out = await post(path, body, headers)
                last["post_s"] = time.monotonic() - t0
                last["status"], last["raw"] = out[0], out[2]
                return out
            http.post = _post
        send = uplink.send

        async def _send(path, body, msg_id=None):
            last.clear()
            t, t0 = self.clock.now(), time.monotonic()
            result = await send(path, body, msg_id)
            ms = (time.monotonic() - t0) * 1000
            if http is None:  # the MQTT uplink keeps the relay's down envelope
                env = getattr(uplink, "_got", None) or {}
                if "status" in env:
                    last["status"] = env.get("status")
                    b = env.get("body")
                    last["raw"] = json.dumps(b) if b is not None else ""
            x = self._add(charger_id, t, ms, path, body, msg_id, result, last)
            if "post_s" in last:  # this side's share: encoding, parsing, recording, checks
                x.sim_ms = round((time.monotonic() - t0 - last["post_s"]) * 1000, 3)
            return result
        uplink.send = _send

    def _add(self, charger_id, t, ms, path, body, msg_id, result, last):
        kind, value, _after = result
        x = Exchange()
        x.t, x.charger, x.ms, x.path, x.msg = t, charger_id, round(ms, 1), path, msg_id
        x.sim_ms = None
        x.body = _wire(body)
        x.op = operation(path, x.body)
        x.evse = x.body.get("EvseID")
        x.card = _uid(x.body)
        x.status = last.get("status")
        x.raw = last.get("raw")
        reply = value if kind == "ok" else None
        x.reply = reply
        x.code = reply.code if reply is not None else refusal_code(value) if x.status and \
            200 <= x.status < 300 else None
        x.session = x.body.get("SessionID") or (reply.session_id if reply is not None else None)
        x.result = kind
        x.reason = None if kind == "ok" else str(value)
        key = msg_id or (charger_id, x.op, x.evse, x.card)
        x.attempt = self._attempts.get(key, 0) + 1
        if kind == "retry":
            self._attempts[key] = x.attempt
        else:
            self._attempts.pop(key, None)
        if len(self.rows) < MAX_ROWS:
            self.rows.append(x)
        else:
            self.dropped += 1
        if self._check is not None:
            for text in self._check(x):
                self._nonconforming(x, text)
        # Kept for the session table: a CDR's body (energy, times); the rest is let go.
        x.raw = None
        if x.op != "ChargeDetailRecord":
            x.body = None
        return x


    def _nonconforming(self, x, text):
        key = (x.op, text)
        g = self.nonconformance.get(key)
        if g is None:
            if len(self.nonconformance) >= MAX_KINDS:
                key = (x.op, "other kinds (more than %d)" % MAX_KINDS)
                g = self.nonconformance.get(key)
            if g is None:
                g = self.nonconformance[key] = {"op": x.op, "issue": key[1], "count": 0,
                                                "first": x.row()}
        g["count"] += 1


def refusal_code(reason):
    """The OICP code at the head of a refusal's reason ('102 RFID card unknown')."""
    s = str(reason or "")
    return s[:3] if len(s) >= 3 and s[:3].isdigit() and (len(s) == 3 or s[3] == " ") else None


def _wire(body):
    """The body as the hub gets it (kWh texts as numbers); {} for no dict, kept if unsendable."""
    if not isinstance(body, dict):
        return {}
    try:
        return json.loads(encode(body))
    except ValueError:  # the uplink refused it too: the record shows what the link held
        return body
