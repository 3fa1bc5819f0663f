"""The relay's MQTT envelope (DESIGN §4): parse and authorise an up message, build a down one.

Up:   {"v": 1, "id": "...", "path": "/api/oicp/...", "body": {...}}  on cp/<charger id>/up
Down: {"v": 1, "id": "...", "status": N, "body": {...}|null, "retry_after": s, "error": "..."}
"""
import json
from urllib.parse import unquote

MAX_UP = 8192
# Past this a payload is not even parsed for its id (the reply then carries "id": null).
_MAX_PARSE = 65536
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-")
_P = "/api/oicp/"
# (operation, path before the OperatorID, path after it); notifications have no OperatorID.
_ROUTES = (
    ("AuthorizeStart", _P + "charging/v21/operators/", "/authorize/start"),
    ("AuthorizeStop", _P + "charging/v21/operators/", "/authorize/stop"),
    ("ChargeDetailRecord", _P + "cdrmgmt/v22/operators/", "/charge-detail-record"),
    ("PushEvseStatus", _P + "evsepush/v21/operators/", "/status-records"),
    ("PushEvseData", _P + "evsepush/v23/operators/", "/data-records"),
)
NOTIFY_PATH = _P + "notificationmgmt/v11/charging-notifications"
NOTIFY_TYPES = ("Start", "Progress", "End", "Error")
# Queue order (lower first) and rate-limit class of each kind of message.
PRIORITY = {"AuthorizeStart": 0, "AuthorizeStop": 1, "End": 2, "Error": 3,
            "ChargeDetailRecord": 4, "Start": 5, "PushEvseStatus": 6, "PushEvseData": 7,
            "Progress": 8}
LIMIT = {"AuthorizeStart": "authorize_per_min", "AuthorizeStop": "authorize_stop_per_min",
         "ChargeDetailRecord": "cdr_per_min", "PushEvseStatus": "evse_status_per_min",
         "PushEvseData": "evse_data_per_min", "Start": "notifications_per_min",
         "Progress": "notifications_per_min", "End": "notifications_per_min",
         "Error": "notifications_per_min"}


class Refused(ValueError):
    """A refusal for good (down status 400). .id is the request's id when it could be read."""

    def __init__(self, message, msg_id=None, reason="envelope"):
        ValueError.__init__(self, message)
        self.id, self.reason = msg_id, reason


class Request:
    """One authorised request: where it goes and how the queue treats it."""

    __slots__ = ("charger", "id", "path", "body", "data", "op", "kind", "operator", "limit",
                 "priority", "chain", "ids", "state", "seq", "deadline")

    def __init__(self, charger, msg_id, path, body, op, kind, operator):
        self.charger, self.id, self.path, self.body = charger, msg_id, path, body
        self.op, self.kind, self.operator = op, kind, operator
        self.data = json.dumps(body, separators=(",", ":")).encode()
        self.priority, self.limit = PRIORITY[kind], LIMIT[kind]
        sid = body.get("SessionID")
        # Messages of one session (and pushes of one operation, which OICP wants one at a time)
        # keep their order; priority only reorders between chains.
        if op.startswith("Push"):
            self.chain = (operator, op)
        elif isinstance(sid, str):
            self.chain = (charger, sid)
        else:
            self.chain = None
        self.ids = [msg_id]  # this id, then the ids of Progress messages it superseded
        self.state, self.seq, self.deadline = "new", 0, 0.0


def route(path):
    """(operation, path OperatorID or None), or None for a path the relay does not forward."""
    if path == NOTIFY_PATH:
        return "ChargingNotifications", None
    for op, head, tail in _ROUTES:
        if path.startswith(head) and path.endswith(tail):
            middle = path[len(head):len(path) - len(tail)]
            if middle and "/" not in middle:
                return op, unquote(middle)
    return None


def charger_of(topic):
    """The charger id of a cp/<id>/up topic, or None."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == "cp" and parts[2] == "up" and parts[1]:
        return parts[1]
    return None


def _peek_id(payload):
    # Best effort, for the reply to a refused envelope: the charger matches replies by id.
    if len(payload) > _MAX_PARSE:
        return None
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    v = doc.get("id") if isinstance(doc, dict) else None
    return v if _valid_id(v) else None


def _valid_id(v):
    return isinstance(v, str) and 1 <= len(v) <= 64 and all(c in _ID_CHARS for c in v)


def _evses(op, body):
    """[(field, EvseID)] the request speaks for."""
    if op in ("PushEvseStatus", "PushEvseData"):
        outer, inner = (("OperatorEvseStatus", "EvseStatusRecord") if op == "PushEvseStatus"
                        else ("OperatorEvseData", "EvseDataRecord"))
        records = body.get(outer, {}).get(inner) if isinstance(body.get(outer), dict) else None
        if not isinstance(records, list):
            raise Refused("body.%s.%s: expected a list of records" % (outer, inner))
        out = []
        for i, r in enumerate(records):
            if not isinstance(r, dict):
                raise Refused("body.%s.%s[%d]: expected an object" % (outer, inner, i))
            out.append(("body.%s.%s[%d].EvseID" % (outer, inner, i), r.get("EvseID")))
        return out
    return [("body.EvseID", body["EvseID"])] if "EvseID" in body else []


def _body_operator(op, body):
    for outer in ("OperatorEvseStatus", "OperatorEvseData"):
        if op.endswith(outer[8:]) and isinstance(body.get(outer), dict):
            return "body.%s.OperatorID" % outer, body[outer].get("OperatorID")
    if "OperatorID" in body:
        return "body.OperatorID", body["OperatorID"]
    return None, None


def parse(topic, payload, chargers):
    """Request from an up message, or raises Refused naming what was wrong.

    chargers: {charger_id: {"operator_id": ..., "evses": set}} (Config.chargers).
    """
    charger = charger_of(topic)
    if charger is None:
        raise Refused("topic: expected cp/<charger id>/up, got %r" % topic[:100], reason="topic")
    if len(payload) > MAX_UP:
        raise Refused("envelope: %d bytes; at most %d" % (len(payload), MAX_UP),
                      _peek_id(payload), "size")
    try:
        # Decoded here: json.loads(bytes) would also take UTF-16/32, which the envelope is not.
        doc = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise Refused("envelope: not UTF-8 (%s at byte %d)" % (e.reason, e.start))
    except (ValueError, RecursionError) as e:
        raise Refused("envelope: not JSON: %s" % str(e)[:120])
    if not isinstance(doc, dict):
        raise Refused("envelope: expected a JSON object, got %s" % type(doc).__name__)
    msg_id = doc.get("id")
    if not _valid_id(msg_id):
        raise Refused("id: expected 1..64 of [A-Za-z0-9_.:-], got %s" % _short(msg_id))
    unknown = sorted(set(doc) - {"v", "id", "path", "body"})
    if unknown:
        raise Refused("%s: not a field of the envelope (v, id, path, body)" % unknown[0][:40],
                      msg_id)
    if doc.get("v") != 1 or isinstance(doc.get("v"), bool):
        raise Refused("v: expected 1, got %s" % _short(doc.get("v")), msg_id)
    path, body = doc.get("path"), doc.get("body")
    found = route(path) if isinstance(path, str) else None
    if found is None:
        raise Refused("path: expected an OICP CPO path, got %s" % _short(path), msg_id)
    if not isinstance(body, dict):
        raise Refused("body: expected a JSON object, got %s" % _short(body), msg_id)
    op, path_operator = found
    kind = op
    if op == "ChargingNotifications":
        kind = body.get("Type")
        if kind not in NOTIFY_TYPES:
            raise Refused("body.Type: expected one of Start|Progress|End|Error, got %s"
                          % _short(kind), msg_id)
    c = chargers.get(charger)
    if c is None:
        raise Refused("charger %s is not configured at this relay" % charger, msg_id, "charger")
    mine = c["operator_id"]
    field, body_operator = _body_operator(op, body)
    for f, v in (("path OperatorID", path_operator), (field, body_operator)):
        if f and v is not None and v != mine:
            raise Refused("%s: %s is not charger %s's operator (%s)" % (f, _short(v), charger,
                                                                          mine),
                          msg_id, "operator")
    for f, e in _evses(op, body):
        if e not in c["evses"]:
            raise Refused("%s: %s is not an EVSE of charger %s" % (f, _short(e), charger),
                          msg_id, "evse")
    return Request(charger, msg_id, path, body, op, kind, mine)


def _short(v):
    s = json.dumps(v) if not isinstance(v, str) else repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def down(msg_id, status, body=None, retry_after=None, error=None):
    """The down envelope as compact UTF-8 JSON."""
    out = {"v": 1, "id": msg_id, "status": status, "body": body}
    if retry_after is not None:
        out["retry_after"] = retry_after
    if error is not None:
        out["error"] = error
    return json.dumps(out, separators=(",", ":")).encode()
