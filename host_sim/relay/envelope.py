"""The relay's MQTT envelope (DESIGN §4): parse and authorise an up message, build a down one.

parse() takes strict JSON only (no NaN/Infinity, no key twice), within size and depth caps, and
checks the body against its operation's OICP schema (the mock hub's own check) before the
OperatorID and EvseIDs are compared with the charger's: nothing malformed is ever forwarded.

Up:   {"v": 1, "id": "...", "path": "/api/oicp/...", "body": {...}}  on cp/<charger id>/up
Down: {"v": 1, "id": "...", "status": N, "body": {...}|null, "retry_after": s, "error": "..."}
"""
import json
from urllib.parse import quote

from host_sim import oicp_schemas
from host_sim.relay import latest

MAX_UP = 8192
# Objects and lists nested deeper than this are refused (an OICP body is 5 deep at most): the
# cap is checked after parsing, which the size cap keeps cheap.
MAX_DEPTH = 16
# Past this a payload is not even parsed for its id (the reply then carries "id": null).
_MAX_PARSE = 65536
_ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-")
NOTIFY_PATH = oicp_schemas.NOTIFY_PATH
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

    __slots__ = ("charger", "id", "path", "body", "_data", "op", "kind", "operator", "limit",
                 "priority", "chain", "ids", "state", "seq", "deadline", "tries", "stamps")

    def __init__(self, charger, msg_id, path, body, op, kind, operator):
        self.charger, self.id, self.path, self.body = charger, msg_id, path, body
        self.op, self.kind, self.operator = op, kind, operator
        self._data = None  # the body's bytes, made when posted: a merged push is one at the end
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
        # (charger, id) of this request, then of those it superseded (a Progress of its
        # session, status pushes of its operator, latest wins): each gets its reply.
        self.ids = [(charger, msg_id)] if msg_id is not None else []
        self.state, self.seq, self.deadline = "new", 0, 0.0
        self.tries = 0  # the relay's own pushes: sent again after a hub that was not reached
        # A status push: EvseID -> (charger, id) of the message its record came from (none for
        # the relay's own), so that an older status never overwrites a newer one (latest.py).
        self.stamps = {}
        if op == "PushEvseStatus" and msg_id is not None:
            self.stamps = dict((r["EvseID"], (charger, msg_id))
                               for r in body["OperatorEvseStatus"]["EvseStatusRecord"])

    @property
    def data(self):
        """The body as the compact UTF-8 JSON posted to the hub."""
        if self._data is None:
            self._data = json.dumps(self.body, separators=(",", ":")).encode()
        return self._data


def charger_of(topic):
    """The charger id of a cp/<id>/up topic, or None."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == "cp" and parts[2] == "up" and parts[1]:
        return parts[1]
    return None


def _no_constant(name):
    raise ValueError("%s is not a JSON number (RFC 8259)" % name)


def _object(pairs):
    d = dict(pairs)
    if len(d) != len(pairs):
        seen = set()
        for k, _ in pairs:
            if k in seen:
                raise ValueError("key %s appears twice in one object" % _short(k))
            seen.add(k)
    return d


def loads(text):
    """Strict JSON (RFC 8259): no NaN/Infinity, no key twice in an object; ValueError if not."""
    return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_object)


def depth(doc, cap=MAX_DEPTH):
    """How deep doc nests objects and lists, counted up to cap + 1 (then it stops looking)."""
    deepest, todo = 0, [(doc, 1)]
    while todo:
        v, d = todo.pop()
        if isinstance(v, (dict, list)):
            if d > cap:
                return d
            deepest = max(deepest, d)
            todo.extend((c, d + 1) for c in (v.values() if isinstance(v, dict) else v))
    return deepest


def peek_id(payload):
    # Best effort, for the reply to a refused envelope: the charger matches replies by id.
    if len(payload) > _MAX_PARSE:
        return None
    try:
        doc = json.loads(payload.decode("utf-8"))
    except (ValueError, RecursionError):
        return None
    v = doc.get("id") if isinstance(doc, dict) else None
    return v if valid_id(v) else None


def valid_id(v):
    return isinstance(v, str) and 1 <= len(v) <= 64 and all(c in _ID_CHARS for c in v)


def _evses(op, body):
    """[(field, EvseID)] the request speaks for (the body passed its schema)."""
    if op in ("PushEvseStatus", "PushEvseData"):
        outer, inner = (("OperatorEvseStatus", "EvseStatusRecord") if op == "PushEvseStatus"
                        else ("OperatorEvseData", "EvseDataRecord"))
        return [("body.%s.%s[%d].EvseID" % (outer, inner, i), r["EvseID"])
                for i, r in enumerate(body[outer][inner])]
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
                      peek_id(payload), "size")
    try:
        # Decoded here: json.loads(bytes) would also take UTF-16/32, which the envelope is not.
        doc = loads(payload.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise Refused("envelope: not UTF-8 (%s at byte %d)" % (e.reason, e.start),
                      reason="utf8")
    except RecursionError:
        raise Refused("envelope: nested over %d deep" % MAX_DEPTH, peek_id(payload), "depth")
    except ValueError as e:
        raise Refused("envelope: not JSON: %s" % str(e)[:120], peek_id(payload), "json")
    if depth(doc, MAX_DEPTH + 1) > MAX_DEPTH + 1:  # the envelope is one level above its body
        raise Refused("envelope: nested over %d deep" % MAX_DEPTH, peek_id(payload), "depth")
    if not isinstance(doc, dict):
        raise Refused("envelope: expected a JSON object, got %s" % type(doc).__name__)
    msg_id = doc.get("id")
    if not valid_id(msg_id):
        raise Refused("id: expected 1..64 of [A-Za-z0-9_.:-], got %s" % _short(msg_id))
    unknown = sorted(set(doc) - {"v", "id", "path", "body"})
    if unknown:
        raise Refused("%s: not a field of the envelope (v, id, path, body)" % unknown[0][:40],
                      msg_id)
    if doc.get("v") != 1 or isinstance(doc.get("v"), bool):
        raise Refused("v: expected 1, got %s" % _short(doc.get("v")), msg_id)
    path, body = doc.get("path"), doc.get("body")
    found = oicp_schemas.route(path) if isinstance(path, str) else None
    if found is None:
        raise Refused("path: expected an OICP CPO path, got %s" % _short(path), msg_id)
    if not isinstance(body, dict):
        raise Refused("body: expected a JSON object, got %s" % _short(body), msg_id)
    c = chargers.get(charger)
    if c is None:
        raise Refused("charger %s is not configured at this relay" % charger, msg_id, "charger")
    op, path_operator = found
    schema = oicp_schemas.request_schema(op, body)
    if schema is None:
        raise Refused("body.Type: expected one of Start|Progress|End|Error, got %s"
                      % _short(body.get("Type")), msg_id, "schema")
    kind = body["Type"] if op == "ChargingNotifications" else op
    errs = oicp_schemas.schema_errors(schema, body)
    if errs:
        where, what = errs[0]
        raise Refused("body%s: %s%s" % (where[1:], what[:160], " (and %d more)" % (len(errs) - 1)
                                        if len(errs) > 1 else ""), msg_id, "schema")
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
    if op == "PushEvseStatus" and body["ActionType"] != "update":
        # A fullLoad replaces every status of the operator at Hubject: one charger knows
        # only its own EVSEs.
        raise Refused("body.ActionType: a charger pushes update records only, got %s"
                      % _short(body["ActionType"]), msg_id, "action")
    return Request(charger, msg_id, path, body, op, kind, mine)


MAX_BATCH = 500  # EVSE status records in one push the relay makes of several


def status_push(operator, records):
    """The PushEvseStatus v2.1 path and update body for records [{"EvseID", "EvseStatus"}]."""
    path = "/api/oicp/evsepush/v21/operators/%s/status-records" % quote(operator, safe="*")
    return path, {"ActionType": "update", "OperatorEvseStatus": {
        "OperatorID": operator, "EvseStatusRecord": list(records)}}


def merge_status(old, new):
    """new's status records over old's (old's order kept) as one Request of new's with both
    requests' ids; None when the batch would exceed MAX_BATCH. Per EVSE the newer wins: by the
    journal's seq when both come from one charger's journal (a message redelivered late is
    older than one that came before it), else the later to arrive."""
    recs = dict((r["EvseID"], r) for r in old.body["OperatorEvseStatus"]["EvseStatusRecord"])
    stamps = dict(old.stamps)
    for r in new.body["OperatorEvseStatus"]["EvseStatusRecord"]:
        e = r["EvseID"]
        mine, had = new.stamps.get(e), stamps.get(e)
        if mine and had and mine[0] == had[0] and latest.older(mine[1], had[1]):
            continue
        recs.pop(e, None)
        recs[e] = r
        stamps.pop(e, None)
        if mine:
            stamps[e] = mine
    if len(recs) > MAX_BATCH:
        return None
    path, body = status_push(new.operator, recs.values())
    r = Request(new.charger, None, path, body, new.op, new.kind, new.operator)
    r.ids, r.stamps = old.ids + new.ids, stamps
    return r


def keep_status(r, records):
    """r's status push carrying only `records` (a subset of its own)."""
    r.path, r.body = status_push(r.operator, records)
    r._data = None
    evses = set(x["EvseID"] for x in records)
    r.stamps = dict((e, s) for e, s in r.stamps.items() if e in evses)


def _short(v):
    s = json.dumps(v) if not isinstance(v, str) else repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


def requeue(msg_id=None):
    """The command a charger takes on its down topic: send the dead letter msg_id (None: all
    of them) again (docs/relay.md)."""
    return json.dumps({"v": 1, "cmd": "requeue", "msg_id": msg_id}, separators=(",", ":")).encode()


def down(msg_id, status, body=None, retry_after=None, error=None):
    """The down envelope as compact UTF-8 JSON."""
    out = {"v": 1, "id": msg_id, "status": status, "body": body}
    if retry_after is not None:
        out["retry_after"] = retry_after
    if error is not None:
        out["error"] = error
    return json.dumps(out, separators=(",", ":")).encode()
