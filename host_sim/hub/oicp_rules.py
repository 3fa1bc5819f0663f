"""The mock hub's OICP 2.3 logic, sans-IO: route, validate, check sessions, build replies.

`Rules.handle(operation, path_operator, body, identity)` -> Answer. No sockets, no clock of its
own (the hub passes `now`), so it is fast and tested directly. Status codes (OICP 2.3 CodeType;
sources as tagged in the project's research notes on OICP):
- schema violations and non-JSON bodies: HTTP 400 with a FaultBody whose validationErrors name
  each field by JSON path (OICP 2.2 Swagger, "400 Validation error");
- client certificate CN != OperatorID: 017 Unauthorized Access (S01 Security);
- OperatorID in the body differs from the path, or is not a known partner: 300 Partner not found
  (Integration Guide: "mostly because the OperatorID in the URL or body is not correct");
- unknown card at AuthorizeStart/Stop: NotAuthorized with 102 (RFID), 101 (QR), 105 (PnC), 106
  (other) (BPD eroamingauthorization: the 1xx authentication codes);
- unknown session, a session of another operator, a session closed by its CDR, End/Progress
  before Start, Start/Progress after End, a second (different) CDR: 400 Session is invalid
  (BPD: "invalid session: 400"; S02: "Hubject will accept only one CDR per SessionID");
- Progress less than 5 minutes after the previous Progress (or the Start's ChargingStart),
  measured on the messages' own EventOccurred/ChargingStart: 022 Data error (the BPD gives only
  the text "Progress Notification can be sent only at interval of at least 5 min");
- EvseID not of the pushing operator (nor of a configured sub-operator, nor with the operator
  as its HubOperatorID), or listed twice: 018 (S02 EVSE consistency; IG "duplicated EvseID");
- a notification or CDR whose EvseID is not its session's (the AuthorizeStart's, else the first
  notification's): 018 Inconsistent EvseID (the code S02 gives EvseIDs that do not fit the
  request; a session lives on one EVSE); one for a session of another operator: 400 (above).
A byte-for-byte repeat of an accepted message (a retry after a lost reply) gets the first reply
again and changes nothing; the session counts it in `duplicates`. An AuthorizeStart that repeats
the CPOPartnerSessionID of one already authorized (the operator's own id for its session, re-sent
by a charger that lost the answer in a power cut) is answered with that session again.
"""
import collections
import json
import re
import uuid
from datetime import datetime

from cpagent.oicp import replies
from host_sim import oicp_schemas

NOTIFY_PATH = oicp_schemas.NOTIFY_PATH
OPERATIONS = tuple(r[0] for r in oicp_schemas.ROUTES) + ("ChargingNotifications",)
DESCRIPTIONS = {
    "000": "Success.", "001": "Hubject system error.", "009": "Data transaction error.",
    "017": "Unauthorized Access.", "018": "Inconsistent EvseID.", "022": "Data error.",
    "101": "QR Code Authentication failed – Invalid Credentials.",
    "102": "RFID Authentication failed – invalid UID.",
    "105": "PLC Authentication failed - invalid EvcoID.",
    "106": "No positive authentication response.", "300": "Partner not found.",
    "310": "Partner did not respond.", "320": "Service not available.",
    "400": "Session is invalid."}
_UNKNOWN_CARD = {"RFIDMifareFamilyIdentification": "102", "RFIDIdentification": "102",
                 "QRCodeIdentification": "101", "PlugAndChargeIdentification": "105"}
# Memory caps. Overflow policy: the oldest session is forgotten (a late message for it then gets
# 400 like any unknown session); an EVSE table over the cap refuses new EvseIDs with 009.
MAX_SESSIONS = 200_000
MAX_EVSES = 100_000
_MAX_ERRORS = 10
_MAX_MSG = 200
_OPERATOR_RE = re.compile(oicp_schemas.load("common")["$defs"]["OperatorID"]["pattern"])


def route(path):
    """(operation, path OperatorID or None) for an OICP path (a query is ignored), or None."""
    return oicp_schemas.route(path.split("?", 1)[0])


def norm_operator(op_id):
    """OperatorID as compared: upper case, separators `*` and `+` dropped (DE*ABC == DEABC)."""
    return op_id.upper().replace("*", "").replace("+", "") if isinstance(op_id, str) else ""


def evse_operator(evse_id):
    """The normalized OperatorID inside an EvseID (ISO DE*ABC*E1 or DIN +49*810*000*438)."""
    if evse_id[:1] == "+" or evse_id[:1].isdigit():
        return norm_operator("*".join(evse_id.split("*")[:2]))
    return norm_operator(evse_id)[:5]


class Answer:
    """What to send back: HTTP status, JSON body, OICP code (None for HTTP faults), meta."""

    __slots__ = ("status", "body", "code", "session_id", "duplicate", "headers")

    def __init__(self, status, body, code=None, session_id=None, duplicate=False):
        self.status = status
        self.body = body
        self.code = code
        self.session_id = session_id
        self.duplicate = duplicate
        self.headers = ()


def _status(code, info=None):
    sc = {"Code": code, "Description": DESCRIPTIONS.get(code, "")}
    if info:
        sc["AdditionalInfo"] = info[:1000]
    return sc


def refused_for_good(operation, status, code):
    """True when this answer refuses a journaled message (not an AuthorizeStart/Stop, which a
    charger never retries) for good: a validation error, or an OICP code a retry cannot
    change (the charger's own sorting of codes: cpagent.oicp.replies.classify). Such messages
    are what a charger keeps as dead letters."""
    if operation.startswith("Authorize") or status is None:
        return False
    if 400 <= status < 500 and status not in (408, 429):
        return True
    return status == 200 and code is not None and replies.classify(code) in ("fail", "stop")


def ack(result, code, info=None, session_id=None, extra=None):
    body = {"Result": result, "StatusCode": _status(code, info)}
    if session_id:
        body["SessionID"] = session_id
    body.update(extra or {})
    return Answer(200, body, code, session_id)


def _auth(ok, code, info=None, session=None):
    body = {"AuthorizationStatus": "Authorized" if ok else "NotAuthorized",
            "StatusCode": _status(code, info)}
    if session is not None:
        body["SessionID"] = session.sid
        body.update(session.partner_ids)
        if ok:
            body["ProviderID"] = session.provider
            if session.kind == "RFIDMifareFamilyIdentification":
                body["AuthorizationStopIdentifications"] = [{session.kind: {"UID": session.token}}]
    return Answer(200, body, code, session.sid if session else None)


def fault(fields, what):
    """HTTP 400 FaultBody; fields: [(json_path, message)], the first named in `message`."""
    errs = [{"fieldReference": p, "errorMessage": m[:_MAX_MSG]} for p, m in fields[:_MAX_ERRORS]]
    return Answer(400, {"message": "Validation error: %s: %s" % (errs[0]["fieldReference"],
                                                                 errs[0]["errorMessage"]),
                        "extendedInfo": "%d invalid field(s) in %s" % (len(fields), what),
                        "validationErrors": errs})


def parse_time(s):
    return datetime.fromisoformat(s)


class Session:
    """One SessionID the hub issued, with everything that arrived for it."""

    def __init__(self, sid, operator, evse, kind, token, provider, partner_ids, at):
        self.sid, self.operator, self.evse = sid, operator, evse
        self.kind, self.token, self.provider = kind, token, provider
        self.partner_ids = partner_ids
        self.created = at
        self.state = "authorized"  # -> charging (Start) -> ended (End); closed by the CDR
        self.stopped = False
        self.errors = 0
        self.duplicates = 0
        self.notifications = []
        self.cdr = None
        self.seen = {}  # canonical request -> the Answer it got (for retries)
        self.last_progress = None  # datetime of the last Progress (or the Start's ChargingStart)

    def as_json(self):
        return {"SessionID": self.sid, "OperatorID": self.operator, "EvseID": self.evse,
                "Identification": {self.kind: self.token}, "ProviderID": self.provider,
                "state": self.state, "stopped": self.stopped, "created": self.created,
                "notifications": list(self.notifications), "cdr": self.cdr,
                "errors": self.errors, "duplicates": self.duplicates}


def _ident(identification):
    kind, value = next(iter(identification.items()))
    token = value.get("UID") or value.get("EvcoID")
    return kind, token.upper()


class Rules:
    """Hub state and behaviour. cards: {UID or EvcoID: ProviderID or None} or an iterable."""

    def __init__(self, cards=(), provider_id="DE-EMP", operators=None, progress_interval=300,
                 progress_from_start=True, sub_operators=None):
        self.provider_id = provider_id
        self.cards = {}
        for c in cards.items() if isinstance(cards, dict) else ((c, None) for c in cards):
            self.add_card(*c)
        # None: any OperatorID is a partner; else only these (others get 300).
        self.operators = None if operators is None else {norm_operator(o) for o in operators}
        # {hub OperatorID: [sub OperatorIDs]}: EvseIDs of a sub-operator count as the hub's.
        self.sub_operators = dict((norm_operator(k), {norm_operator(o) for o in v})
                                  for k, v in (sub_operators or {}).items())
        self.progress_interval = progress_interval
        self.progress_from_start = progress_from_start
        self.sessions = collections.OrderedDict()
        self._by_cpo_sid = {}  # (operator, CPOPartnerSessionID) -> SessionID, as capped
        self.evse_status = {}
        self.evse_data = {}
        self.counts = collections.Counter()

    def add_card(self, token, provider_id=None):
        self.cards[token.upper()] = provider_id or self.provider_id

    def add_session(self, session_id, operator_id, uid, evse_id=None, now="",
                    kind="RFIDMifareFamilyIdentification", provider=None):
        """Seed an authorized session (as if AuthorizeStart had made it, e.g. after a restart,
        or a remote start: kind RemoteIdentification, uid the EvcoID)."""
        s = Session(session_id, operator_id, evse_id, kind, uid.upper(),
                    provider or self.provider_id, {}, now)
        self.sessions[session_id] = s
        return s

    # ---- entry point ------------------------------------------------------------------------

    def handle(self, op, path_operator, body, identity=None, now=""):
        """Answer one request. identity: the client certificate's CN (None: not checked)."""
        self.counts["requests"] += 1
        a = self._handle(op, path_operator, body, identity, now)
        self.counts["duplicates" if a.duplicate else "code_%s" % a.code if a.code
                    else "http_%d" % a.status] += 1
        return a

    def _handle(self, op, path_operator, body, identity, now):
        if path_operator is not None:
            if identity is not None and norm_operator(identity) != norm_operator(path_operator):
                return self._refuse_017(op, identity, path_operator)
            if not _OPERATOR_RE.match(path_operator):
                return fault([("operatorID", "path OperatorID %r does not match the "
                                             "OperatorID pattern" % path_operator)], op)
        try:
            doc = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            return fault([("$", "body is not JSON: %s" % e)], op)
        schema = oicp_schemas.request_schema(op, doc)
        if schema is None:
            t = doc.get("Type") if isinstance(doc, dict) else None
            return fault([("$.Type", "expected one of Start|Progress|End|Error, got %r"
                           % (t,))], op)
        errs = oicp_schemas.schema_errors(schema, doc)
        if errs:
            return fault(errs, "eRoaming" + schema)
        body_operator = _body_operator(op, doc)
        if body_operator is not None:
            if identity is not None and norm_operator(identity) != norm_operator(body_operator):
                return self._refuse_017(op, identity, body_operator)
            if path_operator is not None and body_operator != path_operator:
                return self._partner(op, "OperatorID: body has %s, the path %s"
                                     % (body_operator, path_operator))
        operator = body_operator or path_operator
        if self.operators is not None and norm_operator(operator) not in self.operators:
            return self._partner(op, "OperatorID: %s is not a partner of this hub" % operator)
        return getattr(self, "_" + op)(doc, operator, now)

    def _refuse_017(self, op, identity, operator):
        info = ("OperatorID: %s does not match the client certificate (CN=%s)"
                % (operator, identity))
        return ack(False, "017", info)

    def _partner(self, op, info):
        return ack(False, "300", info)

    # ---- authorization ----------------------------------------------------------------------

    def _AuthorizeStart(self, doc, operator, now):
        kind, token = _ident(doc["Identification"])
        provider = self.cards.get(token)
        if provider is None:
            code = _UNKNOWN_CARD.get(kind, "106")
            return _auth(False, code, "Identification: %s %s is not authorized" % (kind, token))
        sid = doc.get("SessionID")
        s = self.sessions.get(sid)
        cpo_sid = doc.get("CPOPartnerSessionID")
        if s is None and cpo_sid:
            s = self.sessions.get(self._by_cpo_sid.get((operator, cpo_sid)))
            if s is not None and s.token == token:
                return _auth(True, "000", session=s)  # the same request, answered the same
        if s is None or s.operator != operator or s.token != token or s.state == "closed":
            sid = str(uuid.uuid4())
            ids = dict((k, doc[k]) for k in ("CPOPartnerSessionID", "EMPPartnerSessionID")
                       if k in doc)
            s = Session(sid, operator, doc.get("EvseID"), kind, token, provider, ids, now)
            self.sessions[sid] = s
            if cpo_sid:
                self._by_cpo_sid[(operator, cpo_sid)] = sid
            if len(self.sessions) > MAX_SESSIONS:
                old = self.sessions.popitem(last=False)[1]
                self._by_cpo_sid.pop((old.operator, old.partner_ids.get("CPOPartnerSessionID")),
                                     None)
        return _auth(True, "000", session=s)

    def _AuthorizeStop(self, doc, operator, now):
        s, err = self._session(doc, operator, closed_ok=True)
        if err:
            return _auth(False, "400", err)
        kind, token = _ident(doc["Identification"])
        if token != s.token:
            return _auth(False, _UNKNOWN_CARD.get(kind, "106"),
                         "Identification: %s %s did not start session %s" % (kind, token, s.sid),
                         s)
        s.stopped = True
        return _auth(True, "000", session=s)

    # ---- session messages -------------------------------------------------------------------

    def _session(self, doc, operator, closed_ok=False):
        sid = doc["SessionID"]
        s = self.sessions.get(sid)
        if s is None or s.operator != operator:
            return None, "SessionID: %s is not a session of operator %s at this hub" % (
                sid, operator)
        if s.state == "closed" and not closed_ok:
            return s, "SessionID: session %s already has its CDR (Hubject accepts only one " \
                      "CDR per SessionID)" % sid
        return s, None

    def _evse_of_session(self, s, doc):
        """An error text when doc's EvseID is not s's own (binding it when s has none yet)."""
        e = doc["EvseID"]
        if s.evse is None:
            s.evse = e
        elif e != s.evse:
            return "EvseID: %s is not the EVSE of session %s (%s)" % (e, s.sid, s.evse)
        return None

    def _repeat(self, s, key):
        a = s.seen.get(key)
        if a is not None:
            s.duplicates += 1
            return Answer(a.status, a.body, a.code, a.session_id, True)
        return None

    def _ChargingNotifications(self, doc, operator, now):
        key = json.dumps(doc, sort_keys=True)
        s = self.sessions.get(doc["SessionID"])
        again = s is not None and s.operator == operator and self._repeat(s, key)
        if again:
            return again
        s, err = self._session(doc, operator)
        if err:
            return ack(False, "400", err, doc["SessionID"])
        err = self._evse_of_session(s, doc)
        if err:
            return ack(False, "018", err, s.sid)
        t = doc["Type"]
        err = code = None
        if t == "Start":
            if s.state != "authorized":
                err = "Type: Start for session %s, which is already %s" % (s.sid, s.state)
            else:
                s.state = "charging"
                if self.progress_from_start:
                    s.last_progress = parse_time(doc["ChargingStart"])
        elif t in ("Progress", "End") and s.state != "charging":
            err = "Type: %s before Start for session %s" % (t, s.sid) if s.state == "authorized" \
                else "Type: %s for session %s, which is already %s" % (t, s.sid, s.state)
        elif t == "Progress":
            at, prev = parse_time(doc["EventOccurred"]), s.last_progress
            gap = (at - prev).total_seconds() if prev is not None else None
            if gap is not None and gap < self.progress_interval:
                err, code = ("EventOccurred: Progress Notification can be sent only at interval "
                             "of at least 5 min (%s is %.0f s after %s)"
                             % (doc["EventOccurred"], gap, prev.isoformat())), "022"
            else:
                s.last_progress = at
        elif t == "End":
            s.state = "ended"
        else:
            s.errors += 1
        if err:
            return ack(False, code or "400", err, s.sid)
        s.notifications.append(_summary(doc, now))
        a = ack(True, "000", session_id=s.sid)
        s.seen[key] = a
        return a

    def _ChargeDetailRecord(self, doc, operator, now):
        key = json.dumps(doc, sort_keys=True)
        s = self.sessions.get(doc["SessionID"])
        again = s is not None and s.operator == operator and self._repeat(s, key)
        if again:
            return again
        s, err = self._session(doc, operator)
        if err:
            return ack(False, "400", err, doc["SessionID"])
        err = self._evse_of_session(s, doc)
        if err:
            return ack(False, "018", err, s.sid)
        s.cdr = doc
        s.state = "closed"
        a = ack(True, "000", session_id=s.sid)
        s.seen[key] = a
        return a

    # ---- EVSE pushes ------------------------------------------------------------------------

    def _evses(self, records, operator, where):
        seen = set()
        for i, r in enumerate(records):
            e = r["EvseID"]
            owner, me = evse_operator(e), norm_operator(operator)
            mine = (owner == me or owner in self.sub_operators.get(me, ())
                    or norm_operator(r.get("HubOperatorID")) == me)
            if not mine:
                return ack(False, "018", "%s[%d].EvseID: %s does not belong to operator %s"
                           % (where, i, e, operator))
            if e in seen:
                return ack(False, "018", "%s[%d].EvseID: %s is listed twice" % (where, i, e))
            seen.add(e)
        return None

    def _push(self, doc, operator, where, table, value):
        records = doc[where.split(".")[0]][where.split(".")[1]]
        bad = self._evses(records, operator, where)
        if bad:
            return bad
        action = doc["ActionType"]
        if action == "fullLoad":
            for k in [k for k in table if k[0] == operator]:
                del table[k]
        for r in records:
            k = (operator, r["EvseID"])
            if action == "delete":
                table.pop(k, None)
            elif k in table or len(table) < MAX_EVSES:
                table[k] = value(r)
            else:
                return ack(False, "009", "%s: this hub keeps at most %d EVSEs"
                           % (where, MAX_EVSES))
        return ack(True, "000")

    def _PushEvseStatus(self, doc, operator, now):
        return self._push(doc, operator, "OperatorEvseStatus.EvseStatusRecord",
                          self.evse_status, lambda r: r["EvseStatus"])

    def _PushEvseData(self, doc, operator, now):
        return self._push(doc, operator, "OperatorEvseData.EvseDataRecord", self.evse_data,
                          lambda r: r)

    # ---- views ------------------------------------------------------------------------------

    def sessions_json(self):
        return [s.as_json() for s in self.sessions.values()]

    def evses_json(self):
        return [{"OperatorID": k[0], "EvseID": k[1], "EvseStatus": v,
                 "data": k in self.evse_data} for k, v in self.evse_status.items()]


def _body_operator(op, doc):
    if op == "PushEvseStatus":
        return doc["OperatorEvseStatus"]["OperatorID"]
    if op == "PushEvseData":
        return doc["OperatorEvseData"]["OperatorID"]
    return doc.get("OperatorID")


_SUMMARY = ("ChargingStart", "EventOccurred", "ChargingEnd", "ChargingDuration",
            "ConsumedEnergyProgress", "ConsumedEnergy", "MeterValueStart", "MeterValueEnd",
            "ErrorType", "ErrorAdditionalInfo")


def _summary(doc, now):
    out = {"Type": doc["Type"], "received": now}
    out.update((k, doc[k]) for k in _SUMMARY if k in doc)
    return out
