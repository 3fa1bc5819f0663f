"""OICP 2.3 reply parsers: hub answers in, Reply out; anything malformed raises ReplyError only."""
import json

from micropython import const

from cpagent.oicp.ids import check_provider_id, check_session_id, check_uid

# Overflow policy: the first stop identifications are kept, the rest ignored.
_MAX_STOP_UIDS = const(8)
_MAX_TEXT = const(200)

# OICP 2.3 CodeType, in our own short words: "|<code><text>" each, searched by describe()
# (one string in RAM; a dict of them cost 2.4 KB more of the baseline).
TABLE = (
    "|000ok|001hub system error|002hub database error|009hub data transaction error|"
    "017access refused (certificate/OperatorID)|018EvseID inconsistent|019EvcoID inconsistent|"
    "021partner system error|022data error|101QR credentials invalid|102RFID card unknown|"
    "103RFID card unreadable|105EvcoID invalid|106no positive authorization|"
    "110QR app timed out|120PnC EvcoID invalid|121PnC certificate invalid|122PnC timed out|"
    "200contract locked|210no valid contract|300partner not found|310partner did not answer|"
    "320service not available|400session invalid|501EVSE unreachable|510no EV connected|"
    "601EVSE reserved|602EVSE in use or wrong card|603EVSE unknown|"
    "604EVSE not Hubject compatible|700EVSE out of service")

# Transient at the hub or the partner behind it, so the same message may succeed later:
# 001/002/009 hub-internal system, database and transaction failures;
# 021 generic system error on the partner side; 310 the EMP timed out.
# Not 320: on notifications it means "EMP does not support service", which never heals, and
# retrying it would block the session's later messages (its CDR) behind it.
_RETRY = const(("001", "002", "009", "021", "310"))
# The HTTP statuses the OICP hub documents, in the same form as TABLE.
_HTTP = const("|400validation error|401not authorized|403forbidden|404not found|429rate limited"
              "|500hub processing error|503hub unavailable")
_FAULT_KEYS = const(("message", "extendedInfo", "validationErrors"))


class ReplyError(ValueError):
    pass


class Reply:
    """A parsed answer; ok means Authorized/Result true with code 000."""

    def __init__(self, kind, ok, code, description, session_id=None, provider_id=None,
                 stop_uids=()):
        self.kind = kind
        self.ok = ok
        self.code = code
        self.description = description
        self.session_id = session_id
        self.provider_id = provider_id
        self.stop_uids = stop_uids


def _look(table, code):
    """The text of a 3-character code in a "|<code><text>..." table, or None."""
    i = table.find("|" + code) if len(code) == 3 else -1
    if i < 0:
        return None
    j = table.find("|", i + 1)
    return table[i + 4:j if j > 0 else len(table)]


def describe(code):
    """The short text of an OICP status code ("unknown status <code>" for one not in TABLE)."""
    return (isinstance(code, str) and _look(TABLE, code)) or "unknown status %s" % (code,)


def classify(code):
    """'ok', 'retry' (transient), 'stop' (017: credentials; stop sending) or 'fail'."""
    if code == "000":
        return "ok"
    if code == "017":
        return "stop"
    return "retry" if code in _RETRY else "fail"


def _text(v):
    return v[:_MAX_TEXT] if isinstance(v, str) and v else None


def _load(data):
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            data = bytes(data).decode()
        except Exception:
            raise ReplyError("reply: expected UTF-8 text")
    if not isinstance(data, str):
        raise ReplyError("reply: expected bytes or str, got %s" % type(data).__name__)
    try:
        obj = json.loads(data)
    except Exception:  # bad JSON, or nested too deep for the stack: both "not JSON"
        raise ReplyError("reply: expected a JSON object, got %r" % (data[:40],))
    if not isinstance(obj, dict):
        raise ReplyError("reply: expected a JSON object, got %s" % type(obj).__name__)
    return obj


def _field(obj, key, check):
    v = obj.get(key)
    if v is None:
        return None
    try:
        return check(v, key)
    except ValueError as e:
        raise ReplyError(str(e))


def _parse(data, auth):
    obj = _load(data)
    sc = obj.get("StatusCode")
    code = sc.get("Code") if isinstance(sc, dict) else None
    # strip(), not isdigit(): CPython's isdigit() also accepts digits of other scripts.
    if not (isinstance(code, str) and len(code) == 3 and not code.strip("0123456789")):
        raise ReplyError("StatusCode.Code: expected a 3-digit string, got %r" % (code,))
    status = obj.get("AuthorizationStatus")
    result = obj.get("Result")
    if auth and status is not None:
        if status not in ("Authorized", "NotAuthorized"):
            raise ReplyError("AuthorizationStatus: expected Authorized|NotAuthorized, got %r"
                             % (status,))
        kind, ok = "authorization", status == "Authorized"
    elif isinstance(result, bool):
        kind, ok = "acknowledgement", result
    else:
        raise ReplyError("Result: expected true or false%s, got %r"
                         % (" or an AuthorizationStatus" if auth else "", result))
    desc = _text(sc.get("Description")) or describe(code)
    info = _text(sc.get("AdditionalInfo"))
    if info:
        desc = (desc + ": " + info)[:_MAX_TEXT]
    uids = []
    stops = obj.get("AuthorizationStopIdentifications") if auth else None
    if stops is not None:
        if not isinstance(stops, list):
            raise ReplyError("AuthorizationStopIdentifications: expected a list")
        for i in stops[:_MAX_STOP_UIDS]:
            m = i.get("RFIDMifareFamilyIdentification") if isinstance(i, dict) else None
            if isinstance(m, dict):  # other kinds (QR, Plug&Charge) cannot stop at a card reader
                uids.append(_field(m, "UID", check_uid))
    sid = _field(obj, "SessionID", check_session_id)
    return Reply(kind, ok and code == "000", code, desc, sid,
                 _field(obj, "ProviderID", check_provider_id), tuple(u for u in uids if u))


def parse_authorization(data):
    """An eRoamingAuthorizationStart/Stop, or the eRoamingAcknowledgement sent for 300/017."""
    return _parse(data, True)


def parse_acknowledgement(data):
    return _parse(data, False)


def parse_http_error(status, data, ctype=None):
    """A one-line reason for a non-200 answer (FaultBody or OicpERoamingFault); never raises.
    ctype (the Content-Type) is named when given: "HTTP 404 not found (text/html): <html>..."."""
    head = "HTTP %s %s" % (status, isinstance(status, int) and _look(_HTTP, str(status))
                           or "error")
    if isinstance(ctype, str) and ctype:
        head += " (%s)" % ctype.split(";")[0].strip()[:40]
    try:
        return (head + _fault(data))[:_MAX_TEXT + 40]
    except Exception:
        return head


def hub_fault(data):
    """The hub's own error body -> the Code of its StatusCode ("" for a FaultBody, which has
    none); None when `data` is not that form: an HTML page, an empty body, a proxy's JSON.
    OicpERoamingFault is {StatusCode, message}; FaultBody {message, extendedInfo,
    validationErrors} and nothing else (a framework's error JSON adds timestamp, path, ...)."""
    try:
        obj = _load(data)
    except ReplyError:
        return None
    sc = obj.get("StatusCode")
    if isinstance(sc, dict):
        code = sc.get("Code")
        return code if isinstance(code, str) and len(code) == 3 and not code.strip(
            "0123456789") else None
    if not obj or any(k not in _FAULT_KEYS for k in obj):
        return None
    errs = obj.get("validationErrors")
    ok = (errs is None or isinstance(errs, list)) and all(
        obj.get(k) is None or isinstance(obj[k], str) for k in ("message", "extendedInfo"))
    return "" if ok else None


def _fault(data):
    try:
        obj = _load(data)
    except ReplyError:
        t = data.decode() if isinstance(data, (bytes, bytearray)) else data
        return ": " + t.strip()[:80] if isinstance(t, str) and t.strip() else ""
    parts = []
    sc = obj.get("StatusCode")
    if isinstance(sc, dict) and isinstance(sc.get("Code"), str):
        parts.append("%s %s" % (sc["Code"][:3], describe(sc["Code"])))
    for k in ("message", "extendedInfo"):
        if _text(obj.get(k)):
            parts.append(obj[k][:_MAX_TEXT])
    errs = obj.get("validationErrors")
    if isinstance(errs, list):
        for e in errs[:3]:
            if isinstance(e, dict):
                parts.append("%s: %s" % (_text(e.get("fieldReference")) or "?",
                                         _text(e.get("errorMessage")) or "invalid"))
    return ": " + "; ".join(parts) if parts else ""
