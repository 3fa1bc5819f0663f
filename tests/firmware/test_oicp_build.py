"""OICP request builders: literal bodies and paths; every bad field is refused by name."""
import json

from check import raises, raises_naming
from cpagent.oicp import build as oicp
from cpagent.oicp.ids import FieldError

OP = "DE*ABC"
EVSE = "DE*ABC*E1234"
SID = "b2688855-7f00-0002-6d8e-48d883f6abb6"
UID = "04A1B2C3D4E5F6"
T0 = "2024-05-01T12:00:00+02:00"
T1 = "2024-05-01T12:05:00+02:00"
T2 = "2024-05-01T13:00:00+02:00"
T3 = "2024-05-01T13:01:00+02:00"
RFID = {"RFIDMifareFamilyIdentification": {"UID": UID}}
NOTIFY = "/api/oicp/notificationmgmt/v11/charging-notifications"


def _eq(got, want):
    if got != want:
        raise AssertionError("got %r\nwant %r" % (got, want))


def test_authorize_start_minimal_and_full():
    _eq(oicp.authorize_start(OP, UID),
        ("/api/oicp/charging/v21/operators/DE*ABC/authorize/start",
         {"OperatorID": OP, "Identification": RFID}))
    path, body = oicp.authorize_start(OP, UID, evse_id=EVSE, session_id=SID,
                                      cpo_session_id="cp-42", product_id="AC3")
    _eq(body, {"OperatorID": OP, "Identification": RFID, "EvseID": EVSE, "SessionID": SID,
               "CPOPartnerSessionID": "cp-42", "PartnerProductID": "AC3"})


def test_plus_in_operator_id_is_percent_encoded_in_the_path_only():
    path, body = oicp.authorize_stop("+49*536", SID, UID)
    _eq(path, "/api/oicp/charging/v21/operators/%2B49*536/authorize/stop")
    _eq(body, {"OperatorID": "+49*536", "SessionID": SID, "Identification": RFID})


def test_authorize_stop_full():
    _eq(oicp.authorize_stop(OP, SID, UID, evse_id=EVSE, cpo_session_id="cp-42")[1],
        {"OperatorID": OP, "SessionID": SID, "Identification": RFID, "EvseID": EVSE,
         "CPOPartnerSessionID": "cp-42"})


def test_notification_start():
    _eq(oicp.notification_start(OP, SID, EVSE, T0),
        (NOTIFY, {"Type": "Start", "OperatorID": OP, "SessionID": SID, "EvseID": EVSE,
                  "ChargingStart": T0}))
    _eq(oicp.notification_start(OP, SID, EVSE, T0, uid=UID, session_start=T0, meter_start=12.5,
                                cpo_session_id="c", product_id="AC1")[1],
        {"Type": "Start", "OperatorID": OP, "SessionID": SID, "EvseID": EVSE,
         "ChargingStart": T0, "Identification": RFID, "CPOPartnerSessionID": "c",
         "SessionStart": T0, "MeterValueStart": "12.5", "PartnerProductID": "AC1"})


def test_notification_progress():
    path, body = oicp.notification_progress(OP, SID, EVSE, T0, T1, duration_ms=300000,
                                            consumed=1.23456, meter_start=10,
                                            meter_values=[10.5, 11.25])
    _eq(path, NOTIFY)
    _eq(body, {"Type": "Progress", "OperatorID": OP, "SessionID": SID, "EvseID": EVSE,
               "ChargingStart": T0, "MeterValueStart": "10.0", "EventOccurred": T1,
               "ChargingDuration": 300000, "ConsumedEnergyProgress": "1.235",
               "MeterValueInBetween": {"meterValues": ["10.5", "11.25"]}})


def test_notification_progress_needs_duration_or_energy():
    raises_naming(FieldError, "ChargingDuration", oicp.notification_progress, OP, SID, EVSE,
                  T0, T1)
    if "ChargingDuration" in oicp.notification_progress(OP, SID, EVSE, T0, T1, consumed=0)[1]:
        raise AssertionError("ChargingDuration sent though not given")


def test_meter_values_keep_the_most_recent_ten():
    body = oicp.notification_progress(OP, SID, EVSE, T0, T1, consumed=1,
                                      meter_values=list(range(25)))[1]
    _eq(body["MeterValueInBetween"], {"meterValues": ["%d.0" % x for x in range(15, 25)]})


def test_notification_end():
    _eq(oicp.notification_end(OP, SID, EVSE, T2, charging_start=T1, session_start=T0,
                              session_end=T3, consumed=4.5, meter_start=10, meter_end=14.5,
                              meter_values=[12], uid=UID, cpo_session_id="c",
                              product_id="AC1"),
        (NOTIFY, {"Type": "End", "OperatorID": OP, "SessionID": SID, "EvseID": EVSE,
                  "Identification": RFID, "CPOPartnerSessionID": "c", "ChargingEnd": T2,
                  "ChargingStart": T1, "SessionStart": T0, "SessionEnd": T3,
                  "ConsumedEnergy": "4.5", "MeterValueStart": "10.0", "MeterValueEnd": "14.5",
                  "MeterValueInBetween": {"meterValues": ["12.0"]}, "PartnerProductID": "AC1"}))


def test_notification_error():
    _eq(oicp.notification_error(OP, SID, EVSE, "CriticalError", info="meter lost", uid=UID),
        (NOTIFY, {"Type": "Error", "OperatorID": OP, "SessionID": SID, "EvseID": EVSE,
                  "Identification": RFID, "ErrorType": "CriticalError",
                  "ErrorAdditionalInfo": "meter lost"}))
    for bad in ("Connector Error", "Critical Error", "connectorerror", "", None):
        raises_naming(FieldError, "ErrorType", oicp.notification_error, OP, SID, EVSE, bad)
    raises_naming(FieldError, "ErrorAdditionalInfo", oicp.notification_error, OP, SID, EVSE,
                  "ConnectorError", "x" * 251)


def test_charge_detail_record_has_operator_only_in_path():
    path, body = oicp.charge_detail_record(OP, SID, EVSE, UID, T0, T3, T1, T2, 4.5,
                                           meter_start=10, meter_end=14.5, meter_values=[12],
                                           product_id="AC1", cpo_session_id="c")
    _eq(path, "/api/oicp/cdrmgmt/v22/operators/DE*ABC/charge-detail-record")
    _eq(body, {"SessionID": SID, "EvseID": EVSE, "Identification": RFID, "SessionStart": T0,
               "SessionEnd": T3, "ChargingStart": T1, "ChargingEnd": T2,
               "ConsumedEnergy": "4.5", "MeterValueStart": "10.0", "MeterValueEnd": "14.5",
               "MeterValueInBetween": {"meterValues": ["12.0"]}, "PartnerProductID": "AC1",
               "CPOPartnerSessionID": "c"})


def test_charge_detail_record_mandatory_fields_cannot_be_none():
    args = [OP, SID, EVSE, UID, T0, T3, T1, T2, 4.5]
    names = ["OperatorID", "SessionID", "EvseID", "UID", "SessionStart", "SessionEnd",
             "ChargingStart", "ChargingEnd", "ConsumedEnergy"]
    for i, name in enumerate(names):
        bad = list(args)
        bad[i] = None
        raises_naming(FieldError, name, oicp.charge_detail_record, *bad)


def test_push_evse_status():
    _eq(oicp.push_evse_status(OP, [(EVSE, "Available"), ("DE*ABC*E2", "Occupied")]),
        ("/api/oicp/evsepush/v21/operators/DE*ABC/status-records",
         {"ActionType": "update", "OperatorEvseStatus": {"OperatorID": OP, "EvseStatusRecord": [
             {"EvseID": EVSE, "EvseStatus": "Available"},
             {"EvseID": "DE*ABC*E2", "EvseStatus": "Occupied"}]}}))
    _eq(oicp.push_evse_status(OP, [], "fullLoad")[1]["ActionType"], "fullLoad")
    raises_naming(FieldError, "ActionType", oicp.push_evse_status, OP, [], "replace")
    raises_naming(FieldError, "EvseStatus", oicp.push_evse_status, OP, [(EVSE, "Charging")])
    raises_naming(FieldError, "EvseID", oicp.push_evse_status, OP, [("DE*ABC", "Available")])
    raises_naming(FieldError, "EvseStatusRecord", oicp.push_evse_status, OP, [EVSE])
    raises_naming(FieldError, "EvseStatusRecord", oicp.push_evse_status, OP, "Available")
    raises_naming(FieldError, "EvseStatusRecord", oicp.push_evse_status, OP,
                  [(EVSE, "Available")] * 33)


# One call per builder with a single bad field; the error must name that field.
_BAD = [
    ("OperatorID", oicp.authorize_start, ("DE*AB", UID), {}),
    ("UID", oicp.authorize_start, (OP, "AFFH1768"), {}),
    ("UID", oicp.authorize_start, (OP, "12345ABCD"), {}),
    ("EvseID", oicp.authorize_start, (OP, UID), {"evse_id": "DE*ABC"}),
    ("SessionID", oicp.authorize_start, (OP, UID), {"session_id": "string"}),
    ("CPOPartnerSessionID", oicp.authorize_start, (OP, UID), {"cpo_session_id": "x" * 251}),
    ("CPOPartnerSessionID", oicp.authorize_start, (OP, UID), {"cpo_session_id": ""}),
    ("PartnerProductID", oicp.authorize_start, (OP, UID), {"product_id": "x" * 51}),
    ("SessionID", oicp.authorize_stop, (OP, None, UID), {}),
    ("UID", oicp.authorize_stop, (OP, SID, "1234abcd"), {}),
    ("EvseID", oicp.notification_start, (OP, SID, "", T0), {}),
    ("ChargingStart", oicp.notification_start, (OP, SID, EVSE, "2000-01-01T00:00:00Z"), {}),
    ("SessionStart", oicp.notification_start, (OP, SID, EVSE, T0), {"session_start": "now"}),
    ("MeterValueStart", oicp.notification_start, (OP, SID, EVSE, T0), {"meter_start": -1}),
    ("EventOccurred", oicp.notification_progress, (OP, SID, EVSE, T0, None), {"consumed": 1}),
    ("ChargingDuration", oicp.notification_progress, (OP, SID, EVSE, T0, T1),
     {"duration_ms": -5}),
    ("ChargingDuration", oicp.notification_progress, (OP, SID, EVSE, T0, T1),
     {"duration_ms": 1.5}),
    ("ConsumedEnergyProgress", oicp.notification_progress, (OP, SID, EVSE, T0, T1),
     {"consumed": float("nan")}),
    ("MeterValueInBetween", oicp.notification_progress, (OP, SID, EVSE, T0, T1),
     {"consumed": 1, "meter_values": [1, "2"]}),
    ("MeterValueInBetween", oicp.notification_progress, (OP, SID, EVSE, T0, T1),
     {"consumed": 1, "meter_values": 5}),
    ("ChargingEnd", oicp.notification_end, (OP, SID, EVSE, "2024-02-30T00:00:00Z"), {}),
    ("SessionEnd", oicp.notification_end, (OP, SID, EVSE, T2), {"session_end": 5}),
    ("ConsumedEnergy", oicp.notification_end, (OP, SID, EVSE, T2), {"consumed": "4"}),
    ("MeterValueEnd", oicp.notification_end, (OP, SID, EVSE, T2), {"meter_end": True}),
    ("SessionID", oicp.notification_error, (OP, "x", EVSE, "ConnectorError"), {}),
    ("UID", oicp.notification_error, (OP, SID, EVSE, "ConnectorError"), {"uid": "ZZ"}),
    ("OperatorID", oicp.charge_detail_record, ("", SID, EVSE, UID, T0, T3, T1, T2, 1), {}),
    ("ConsumedEnergy", oicp.charge_detail_record, (OP, SID, EVSE, UID, T0, T3, T1, T2, -1), {}),
    ("MeterValueStart", oicp.charge_detail_record, (OP, SID, EVSE, UID, T0, T3, T1, T2, 1),
     {"meter_start": float("inf")}),
    ("OperatorID", oicp.push_evse_status, ("DE**ABC", []), {}),
]


def test_each_builder_names_the_bad_field():
    for field, fn, args, kw in _BAD:
        e = raises_naming(FieldError, field, fn, *args, **kw)
        if e.field != field:
            raise AssertionError("%s: .field is %r" % (field, e.field))


def test_resolve_times_replaces_tokens_in_a_copy():
    path, body = oicp.notification_end(OP, SID, EVSE, "@2:900", charging_start="@2:100",
                                       session_start=T0)
    seen = []

    def resolve(tok):
        seen.append(tok)
        return {"@2:900": T2, "@2:100": T1}[tok]

    out = oicp.resolve_times(body, resolve)
    _eq(out["ChargingEnd"], T2)
    _eq(out["ChargingStart"], T1)
    _eq(out["SessionStart"], T0)
    _eq(sorted(seen), ["@2:100", "@2:900"])
    _eq(body["ChargingEnd"], "@2:900")  # the journaled original is untouched


def test_resolve_times_refuses_unknown_or_bad_resolutions():
    body = oicp.notification_start(OP, SID, EVSE, "@1:5")[1]
    raises_naming(FieldError, "ChargingStart", oicp.resolve_times, body, lambda t: None)
    raises_naming(FieldError, "ChargingStart", oicp.resolve_times, body, lambda t: "@1:6")
    raises_naming(FieldError, "ChargingStart", oicp.resolve_times, body,
                  lambda t: "1970-01-01T00:00:00Z")


def test_encode_is_compact_json_and_refuses_deferred_times():
    body = oicp.notification_start(OP, SID, EVSE, T0, meter_start=1.5)[1]
    raw = oicp.encode(body)
    if not isinstance(raw, bytes) or b" " in raw:
        raise AssertionError("not compact bytes: %r" % raw)
    want = dict(body)
    want["MeterValueStart"] = 1.5
    _eq(json.loads(raw.decode()), want)
    early = oicp.notification_start(OP, SID, EVSE, "@1:5")[1]
    raises_naming(FieldError, "ChargingStart", oicp.encode, early)


def test_encode_sends_the_exact_kwh_texts_as_json_numbers():
    # Integer Wh to text to the wire without a float: exact on a float32 board.
    body = oicp.charge_detail_record(OP, SID, EVSE, UID, T0, T3, T1, T2, "0.001",
                                     meter_start="20000.001", meter_end="20000.002",
                                     meter_values=["20000.001", "20000.002"])[1]
    raw = oicp.encode(body).decode()
    for part in ('"ConsumedEnergy":0.001', '"MeterValueStart":20000.001',
                 '"MeterValueEnd":20000.002', '"meterValues":[20000.001,20000.002]'):
        if not (part + "," in raw or part + "}" in raw):  # the whole number: key order varies
            raise AssertionError("%s not in %s" % (part, raw))
    # A text value that holds a kWh field's key is escaped, never unquoted.
    trick = oicp.notification_error(OP, SID, EVSE, "ConnectorError",
                                    info='x "MeterValueStart":"1.0" y')[1]
    _eq(json.loads(oicp.encode(trick).decode()), trick)
    # Bodies journaled before the texts held numbers: they go out as they are.
    old = {"Type": "End", "MeterValueStart": 10.5, "MeterValueInBetween": {"meterValues": [11]}}
    _eq(json.loads(oicp.encode(old).decode()), old)


def test_a_kwh_text_that_is_no_decimal_is_refused_not_sent():
    # What a damaged or foreign journaled body could hold: never a garbled request.
    for key, bad in (("MeterValueEnd", {"MeterValueEnd": "1.0,\"x\":1"}),
                     ("ConsumedEnergy", {"ConsumedEnergy": "abc"}),
                     ("MeterValueStart", {"MeterValueStart": "007.5"}),
                     ("meterValues", {"MeterValueInBetween": {"meterValues": ["1.0", "2]"]}}),
                     ("meterValues", {"MeterValueInBetween": {"meterValues": ["1.0", "2,3"]}})):
        raises_naming(FieldError, key, oicp.encode, bad)


def test_encode_keeps_non_ascii_text_as_utf8():
    info = "Stecker \u00fcberhitzt"
    body = oicp.notification_error(OP, SID, EVSE, "ConnectorError", info=info)[1]
    _eq(json.loads(oicp.encode(body).decode())["ErrorAdditionalInfo"], "Stecker \u00fcberhitzt")


def test_builders_never_share_state_between_calls():
    a = oicp.authorize_start(OP, UID)[1]
    a["Identification"]["RFIDMifareFamilyIdentification"]["UID"] = "mutated"
    _eq(oicp.authorize_start(OP, UID)[1]["Identification"], RFID)
    raises(FieldError, oicp.authorize_start, OP, "mutated")
