"""OICP 2.3 CPO request builders (sans-IO): each returns (path, body) with every field checked."""
import json

from micropython import const

from cpagent.oicp import ids

# Overflow policy for MeterValueInBetween: the most recent values are checked and sent, older
# ones dropped (the End/CDR carry start and end values anyway).
_MAX_METER = const(10)
# A charger has a handful of EVSEs; more records than this is a caller bug, refused.
_MAX_RECORDS = const(32)

NOTIFY_PATH = "/api/oicp/notificationmgmt/v11/charging-notifications"
_TIMES = const(("ChargingStart", "ChargingEnd", "SessionStart", "SessionEnd", "EventOccurred",
                 "PenaltyTimeStart"))
_EVSE_STATUS = const(("Available", "Reserved", "Occupied", "OutOfService", "EvseNotFound",
                      "Unknown"))
_ACTIONS = const(("fullLoad", "update", "insert", "delete"))
_ERRORS = const(("ConnectorError", "CriticalError"))
# Bodies hold kWh as exact decimal text (ids.kwh), journaled as such; the wire has numbers.
_KWH_KEYS = const(('"ConsumedEnergy":"', '"ConsumedEnergyProgress":"', '"MeterValueStart":"',
                   '"MeterValueEnd":"'))
_KWH_LIST = const('"meterValues":[')


def _path(fmt, operator_id):
    # The spec only shows {operatorID}. `*` is an RFC 3986 sub-delim, legal verbatim in a path
    # segment and read the same as %2A by any server, so it stays readable in logs. `+` is
    # legal too, but servers that form-decode paths turn it into a space, while %2B means
    # `+` to every decoder: so only `+` is escaped.
    return fmt % ids.check_operator_id(operator_id).replace("+", "%2B")


def _one_of(v, field, allowed):
    if v not in allowed:
        ids.bad(field, "one of " + "|".join(allowed), v)
    return v


def _ident(uid, evco_id=None):
    # A remote start has no card: OICP wants RemoteIdentification (the EvcoID) in every
    # message of that session, and only that option.
    if evco_id is not None:
        return {"RemoteIdentification": {"EvcoID": ids.check_evco_id(evco_id)}}
    return {"RFIDMifareFamilyIdentification": {"UID": ids.check_uid(uid)}}


def _ms(v, field):
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        ids.bad(field, "milliseconds as an integer >= 0", v)
    return v


def _meter(vals, field):
    if not isinstance(vals, (list, tuple)):
        ids.bad(field, "a list of kWh values", vals)
    return {"meterValues": [ids.check_kwh(x, field) for x in vals[-_MAX_METER:]]}


def _opt(body, *items):
    # items: (key, value, checker) triples; None values are left out of the body.
    for key, v, check in items:
        if v is not None:
            body[key] = check(v, key)
    return body


def _note(kind, operator_id, session_id, evse_id, uid, cpo_session_id, evco_id):
    b = {"Type": kind, "OperatorID": ids.check_operator_id(operator_id),
         "SessionID": ids.check_session_id(session_id), "EvseID": ids.check_evse_id(evse_id)}
    if uid is not None or evco_id is not None:
        b["Identification"] = _ident(uid, evco_id)
    return NOTIFY_PATH, _opt(b, ("CPOPartnerSessionID", cpo_session_id, ids.check_cpo_session_id))


def authorize_start(operator_id, uid, evse_id=None, session_id=None, cpo_session_id=None,
                    product_id=None):
    path = _path("/api/oicp/charging/v21/operators/%s/authorize/start", operator_id)
    return path, _opt({"OperatorID": operator_id, "Identification": _ident(uid)},
                      ("EvseID", evse_id, ids.check_evse_id),
                      ("SessionID", session_id, ids.check_session_id),
                      ("CPOPartnerSessionID", cpo_session_id, ids.check_cpo_session_id),
                      ("PartnerProductID", product_id, ids.check_product_id))


def authorize_stop(operator_id, session_id, uid, evse_id=None, cpo_session_id=None):
    path = _path("/api/oicp/charging/v21/operators/%s/authorize/stop", operator_id)
    return path, _opt({"OperatorID": operator_id, "SessionID": ids.check_session_id(session_id),
                       "Identification": _ident(uid)},
                      ("EvseID", evse_id, ids.check_evse_id),
                      ("CPOPartnerSessionID", cpo_session_id, ids.check_cpo_session_id))


def notification_start(operator_id, session_id, evse_id, charging_start, uid=None,
                       session_start=None, meter_start=None, cpo_session_id=None,
                       product_id=None, evco_id=None):
    path, b = _note("Start", operator_id, session_id, evse_id, uid, cpo_session_id, evco_id)
    b["ChargingStart"] = ids.check_datetime(charging_start, "ChargingStart")
    return path, _opt(b, ("SessionStart", session_start, ids.check_datetime),
                      ("MeterValueStart", meter_start, ids.check_kwh),
                      ("PartnerProductID", product_id, ids.check_product_id))


def notification_progress(operator_id, session_id, evse_id, charging_start, event_occurred,
                          duration_ms=None, consumed=None, uid=None, session_start=None,
                          meter_start=None, meter_values=None, cpo_session_id=None,
                          product_id=None, evco_id=None):
    if duration_ms is None and consumed is None:
        raise ids.FieldError("ChargingDuration", "give ChargingDuration or ConsumedEnergyProgress")
    path, b = notification_start(operator_id, session_id, evse_id, charging_start, uid,
                                 session_start, meter_start, cpo_session_id, product_id, evco_id)
    b["Type"] = "Progress"
    b["EventOccurred"] = ids.check_datetime(event_occurred, "EventOccurred")
    return path, _opt(b, ("ChargingDuration", duration_ms, _ms),
                      ("ConsumedEnergyProgress", consumed, ids.check_kwh),
                      ("MeterValueInBetween", meter_values, _meter))


def notification_end(operator_id, session_id, evse_id, charging_end, charging_start=None,
                     session_start=None, session_end=None, consumed=None, meter_start=None,
                     meter_end=None, meter_values=None, uid=None, cpo_session_id=None,
                     product_id=None, evco_id=None):
    path, b = _note("End", operator_id, session_id, evse_id, uid, cpo_session_id, evco_id)
    b["ChargingEnd"] = ids.check_datetime(charging_end, "ChargingEnd")
    return path, _opt(b, ("ChargingStart", charging_start, ids.check_datetime),
                      ("SessionStart", session_start, ids.check_datetime),
                      ("SessionEnd", session_end, ids.check_datetime),
                      ("ConsumedEnergy", consumed, ids.check_kwh),
                      ("MeterValueStart", meter_start, ids.check_kwh),
                      ("MeterValueEnd", meter_end, ids.check_kwh),
                      ("MeterValueInBetween", meter_values, _meter),
                      ("PartnerProductID", product_id, ids.check_product_id))


def notification_error(operator_id, session_id, evse_id, error_type, info=None, uid=None,
                       cpo_session_id=None, evco_id=None):
    path, b = _note("Error", operator_id, session_id, evse_id, uid, cpo_session_id, evco_id)
    b["ErrorType"] = _one_of(error_type, "ErrorType", _ERRORS)
    if info is not None:
        b["ErrorAdditionalInfo"] = ids.check_str(info, "ErrorAdditionalInfo", 250)
    return path, b


def charge_detail_record(operator_id, session_id, evse_id, uid, session_start, session_end,
                         charging_start, charging_end, consumed, meter_start=None,
                         meter_end=None, meter_values=None, product_id=None,
                         cpo_session_id=None, evco_id=None):
    # v2.2 carries the OperatorID only in the path. uid None with evco_id: a remote start.
    path = _path("/api/oicp/cdrmgmt/v22/operators/%s/charge-detail-record", operator_id)
    b = {"SessionID": ids.check_session_id(session_id), "EvseID": ids.check_evse_id(evse_id),
         "Identification": _ident(uid, evco_id),
         "SessionStart": ids.check_datetime(session_start, "SessionStart"),
         "SessionEnd": ids.check_datetime(session_end, "SessionEnd"),
         "ChargingStart": ids.check_datetime(charging_start, "ChargingStart"),
         "ChargingEnd": ids.check_datetime(charging_end, "ChargingEnd"),
         "ConsumedEnergy": ids.check_kwh(consumed, "ConsumedEnergy")}
    return path, _opt(b, ("MeterValueStart", meter_start, ids.check_kwh),
                      ("MeterValueEnd", meter_end, ids.check_kwh),
                      ("MeterValueInBetween", meter_values, _meter),
                      ("PartnerProductID", product_id, ids.check_product_id),
                      ("CPOPartnerSessionID", cpo_session_id, ids.check_cpo_session_id))


def push_evse_status(operator_id, records, action="update"):
    path = _path("/api/oicp/evsepush/v21/operators/%s/status-records", operator_id)
    if not isinstance(records, (list, tuple)) or len(records) > _MAX_RECORDS:
        ids.bad("EvseStatusRecord", "a list of at most %d (EvseID, status) pairs" % _MAX_RECORDS,
            records)
    recs = []
    for r in records:
        if not isinstance(r, (list, tuple)) or len(r) != 2:
            ids.bad("EvseStatusRecord", "an (EvseID, status) pair", r)
        recs.append({"EvseID": ids.check_evse_id(r[0]),
                     "EvseStatus": _one_of(r[1], "EvseStatus", _EVSE_STATUS)})
    return path, {"ActionType": _one_of(action, "ActionType", _ACTIONS),
                  "OperatorEvseStatus": {"OperatorID": operator_id, "EvseStatusRecord": recs}}


def resolve_times(body, resolve):
    """Copy of body with each deferred '@...' time replaced by resolve(token), an ISO string."""
    b = dict(body)
    for k in _TIMES:
        v = b.get(k)
        if isinstance(v, str) and v[:1] == "@":
            r = resolve(v)
            if r is None:
                raise ids.FieldError(k, "wall time for %s is not known yet" % v)
            b[k] = ids.check_datetime(r, k, False)
    return b


def numbers(text):
    """A body's JSON text with its kWh texts as JSON numbers, as the hub wants them.

    The keys are only ever keys: a quote inside a string value is escaped, so `"Key":"` is
    found nowhere else. Each text is checked again (a body read back from flash): a bad one
    is a FieldError, never a garbled request. Numbers (journaled before kWh texts) stay.
    Runs on every send: the spans are found first and the text is copied once."""
    cut = []  # (start, end, replacement), at most five
    for k in _KWH_KEYS:
        i = text.find(k)
        if i >= 0:
            i += len(k)
            e = text.find('"', i)
            if e < 0:
                raise ids.FieldError(k[1:-3], "unterminated kWh text")
            cut.append((i - 1, e + 1, ids.check_kwh(text[i:e], k[1:-3])))
    i = text.find(_KWH_LIST)
    if i >= 0:
        i += len(_KWH_LIST)
        e = text.find("]", i)
        if e > i and '"' in text[i:e]:
            try:
                v = json.loads(text[i - 1:e + 1])
            except ValueError:
                raise ids.FieldError("meterValues", "expected a list of kWh texts")
            cut.append((i, e, ",".join([ids.check_kwh(x, "meterValues") for x in v])))
    if not cut:
        return text
    cut.sort()
    out, at = [], 0
    for i, e, v in cut:
        out.append(text[at:i])
        out.append(v)
        at = e
    out.append(text[at:])
    return "".join(out)


def encode(body):
    """Compact UTF-8 JSON with kWh as numbers; refuses a body that still holds a deferred time."""
    for k in _TIMES:
        v = body.get(k)
        if isinstance(v, str) and v[:1] == "@":
            raise ids.FieldError(k, "deferred time %s must be resolved before sending" % v)
    return numbers(json.dumps(body, separators=(",", ":"))).encode()
