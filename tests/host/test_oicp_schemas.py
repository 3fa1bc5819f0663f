"""The codec's messages and the spec's own examples against host_sim/oicp_schemas (jsonschema)."""
import copy
import json
import os

import pytest

from cpagent.oicp import build as oicp
from cpagent.oicp import replies as oicp_replies
from host_sim import oicp_schemas

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "oicp_examples")
OP = "DE*ABC"
EVSE = "DE*ABC*E1234"
SID = "b2688855-7f00-0002-6d8e-48d883f6abb6"
UID = "04A1B2C3D4E5F6"
T0, T1, T2, T3 = ("2024-05-01T12:00:00+02:00", "2024-05-01T12:05:00.250Z",
                  "2024-05-01T13:00:00-01:30", "2024-05-01T13:01:00+02:00")

# (schema, builder, args, kwargs): a minimal and a full message per builder.
BUILT = [
    ("AuthorizeStart", oicp.authorize_start, (OP, UID), {}),
    ("AuthorizeStart", oicp.authorize_start, ("+49*536", "1234ABCD"),
     {"evse_id": "+49*810*000*438", "session_id": SID, "cpo_session_id": "c" * 250,
      "product_id": "AC1"}),
    ("AuthorizeStop", oicp.authorize_stop, (OP, SID, UID), {}),
    ("AuthorizeStop", oicp.authorize_stop, (OP, SID, "0123456789ABCDEF0123"),
     {"evse_id": EVSE, "cpo_session_id": "cp-1"}),
    ("ChargingNotificationStart", oicp.notification_start, (OP, SID, EVSE, T0), {}),
    ("ChargingNotificationStart", oicp.notification_start, (OP, SID, EVSE, T0),
     {"uid": UID, "session_start": T0, "meter_start": 0, "cpo_session_id": "c",
      "product_id": "Standard Price"}),
    ("ChargingNotificationProgress", oicp.notification_progress, (OP, SID, EVSE, T0, T1),
     {"duration_ms": 0}),
    ("ChargingNotificationProgress", oicp.notification_progress, (OP, SID, EVSE, T0, T1),
     {"consumed": 0.5}),
    ("ChargingNotificationProgress", oicp.notification_progress, (OP, SID, EVSE, T0, T1),
     {"duration_ms": 300000, "consumed": 1.23456, "uid": UID, "session_start": T0,
      "meter_start": 1000.5, "meter_values": [1000.6 + i for i in range(14)],
      "cpo_session_id": "c", "product_id": "AC3"}),
    ("ChargingNotificationEnd", oicp.notification_end, (OP, SID, EVSE, T2), {}),
    ("ChargingNotificationEnd", oicp.notification_end, (OP, SID, EVSE, T2),
     {"charging_start": T1, "session_start": T0, "session_end": T3, "consumed": 4.5,
      "meter_start": 10, "meter_end": 14.5, "meter_values": [12], "uid": UID,
      "cpo_session_id": "c", "product_id": "DC"}),
    ("ChargingNotificationError", oicp.notification_error, (OP, SID, EVSE, "ConnectorError"),
     {}),
    ("ChargingNotificationError", oicp.notification_error, (OP, SID, EVSE, "CriticalError"),
     {"info": "\u00dcbertemperatur " + "x" * 234, "uid": UID, "cpo_session_id": "c"}),
    ("ChargeDetailRecord", oicp.charge_detail_record,
     (OP, SID, EVSE, UID, T0, T3, T1, T2, 0), {}),
    ("ChargeDetailRecord", oicp.charge_detail_record,
     (OP, SID, EVSE, UID, T0, T3, T1, T2, 4.5),
     {"meter_start": 10, "meter_end": 14.5, "meter_values": [11, 12, 13], "product_id": "AC1",
      "cpo_session_id": "c"}),
    ("PushEvseStatus", oicp.push_evse_status, (OP, []), {"action": "fullLoad"}),
    ("PushEvseStatus", oicp.push_evse_status,
     (OP, [(EVSE, s) for s in ("Available", "Reserved", "Occupied", "OutOfService",
                               "EvseNotFound", "Unknown")]), {}),
]


def _wire(builder, args, kw):
    """What goes on the wire: built, encoded and decoded again."""
    path, body = builder(*args, **kw)
    return path, json.loads(oicp.encode(body))


def _errors(schema, doc):
    """Every error, with the nested ones of oneOf/anyOf, as (json_path, message) pairs."""
    out, todo = [], list(oicp_schemas.validator(schema).iter_errors(doc))
    while todo:
        e = todo.pop()
        out.append((e.json_path, e.message))
        todo.extend(e.context or ())
    return out


@pytest.mark.parametrize("schema,builder,args,kw", BUILT,
                         ids=["%s-%d" % (b[0], i) for i, b in enumerate(BUILT)])
def test_built_messages_validate(schema, builder, args, kw):
    path, doc = _wire(builder, args, kw)
    assert _errors(schema, doc) == []
    if schema.startswith("ChargingNotification"):
        assert path == oicp.NOTIFY_PATH
        assert _errors("ChargingNotification", doc) == []
    else:
        assert ("/operators/%s/" % args[0].replace("+", "%2B")) in path


def test_every_request_schema_is_exercised_by_the_codec():
    requests = {"AuthorizeStart", "AuthorizeStop", "ChargingNotificationStart",
                "ChargingNotificationProgress", "ChargingNotificationEnd",
                "ChargingNotificationError", "ChargeDetailRecord", "PushEvseStatus"}
    assert {b[0] for b in BUILT} == requests
    assert set(oicp_schemas.NAMES) == requests | {
        "common", "ChargingNotification", "AuthorizationStart", "AuthorizationStop",
        "Acknowledgement", "PushEvseData", "AuthorizeRemoteStart", "AuthorizeRemoteStop"}


def test_deferred_time_is_refused_by_the_schema_until_resolved():
    body = oicp.notification_start(OP, SID, EVSE, "@3:1200")[1]
    assert any("ChargingStart" in p for p, _ in _errors("ChargingNotificationStart", body))
    done = oicp.resolve_times(body, lambda tok: T0)
    assert _errors("ChargingNotificationStart", done) == []


# ---- the spec's own examples -----------------------------------------------------------------

_RESPONSE_SCHEMA = {"AuthorizeStart": "AuthorizationStart", "AuthorizeStop": "AuthorizationStop"}
# file -> json_path fragments that must appear among the errors (None: the example is valid).
_INVALID = {
    "snippet_AuthorizeStart_request.json": ["Identification.RFIDMifareFamilyIdentification.UID",
                                            "HashedPIN.Value", "$.Identification"],
    "snippet_AuthorizeStop_request.json": ["RFIDMifareFamilyIdentification.UID",
                                           "HashedPIN.Value", "$.Identification", "$"],
    "snippet_AuthorizeStart_response.json": ["AuthorizationStopIdentifications[0]"],
    "snippet_ChargeDetailRecord_request.json": ["$.SessionID", "QRCodeIdentification.EvcoID",
                                                "$.Identification"],
    "snippet_PushEvseStatus_response.json": ["$.SessionID"],
    "openapi_AuthorizeStart.json": ["$.Identification"],
    "openapi_AuthorizeStop.json": ["$.Identification", "$"],
    "openapi_AuthorizationStart.json": ["$.AuthorizationStopIdentifications[0]"],
    "openapi_ChargeDetailRecord.json": ["$.Identification"],
}


def _examples():
    names = sorted(n for n in os.listdir(EXAMPLES) if n.endswith(".json"))
    assert len(names) == 27, names
    out = []
    for n in names:
        source, message, *part = n[:-5].split("_")
        schema = message
        if part == ["response"]:
            schema = _RESPONSE_SCHEMA.get(message, "Acknowledgement")
        out.append((n, schema))
    return out


def _load_example(name):
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("name,schema", _examples(), ids=[e[0] for e in _examples()])
def test_spec_examples(name, schema):
    errors = _errors(schema, _load_example(name))
    if name not in _INVALID:
        assert errors == []
        return
    paths = [p for p, _ in errors]
    for want in _INVALID[name]:
        # "$" is an error on the message itself (an unknown field); others are path fragments.
        assert (want in paths) if want == "$" else any(want in p for p in paths), (want, errors)


@pytest.mark.parametrize("name,key", [("openapi_AuthorizeStart.json", "Identification"),
                                      ("openapi_AuthorizeStop.json", "Identification"),
                                      ("openapi_ChargeDetailRecord.json", "Identification"),
                                      ("openapi_AuthorizationStart.json", None)])
def test_openapi_examples_with_one_identification_each_validate(name, key):
    # The examples fill all five options at once; each option on its own is valid.
    doc = _load_example(name)
    if "AuthorizeStop" in name:
        del doc["PartnerProductID"]  # not an AuthorizeStop field
    schema = dict(_examples())[name]
    idents = doc[key] if key else doc["AuthorizationStopIdentifications"][0]
    assert len(idents) == 5
    for option, value in idents.items():
        one = copy.deepcopy(doc)
        if key:
            one[key] = {option: value}
        else:
            one["AuthorizationStopIdentifications"] = [{option: value}]
        assert _errors(schema, one) == [], option


@pytest.mark.parametrize("name", ["snippet_AuthorizeStart_response.json",
                                  "snippet_AuthorizeStop_response.json",
                                  "openapi_AuthorizationStop.json"])
def test_reply_parser_reads_authorization_examples(name):
    with open(os.path.join(EXAMPLES, name), "rb") as f:
        r = oicp_replies.parse_authorization(f.read())
    assert (r.ok, r.code, r.session_id, r.provider_id) == (
        True, "000", "f98efba4-02d8-4fa0-b810-9a9d50d2c527", "DE-DCB")


@pytest.mark.parametrize("name", [n for n, s in _examples()
                                  if s == "Acknowledgement" and n not in _INVALID])
def test_reply_parser_reads_valid_acknowledgement_examples(name):
    with open(os.path.join(EXAMPLES, name), "rb") as f:
        r = oicp_replies.parse_acknowledgement(f.read())
    assert r.ok and r.kind == "acknowledgement"


def test_reply_parser_and_schema_agree_on_the_bad_session_id_example():
    with open(os.path.join(EXAMPLES, "snippet_PushEvseStatus_response.json"), "rb") as f:
        with pytest.raises(oicp_replies.ReplyError, match="SessionID"):
            oicp_replies.parse_acknowledgement(f.read())


# ---- mutations must be refused ------------------------------------------------------------------

def _full(schema):
    """The fullest built message for a schema (the last one in BUILT)."""
    return [_wire(b, a, k)[1] for s, b, a, k in BUILT if s == schema][-1]


_REQUIRED = {
    "AuthorizeStart": ["OperatorID", "Identification"],
    "AuthorizeStop": ["SessionID", "OperatorID", "Identification"],
    "ChargingNotificationStart": ["Type", "SessionID", "EvseID", "ChargingStart", "OperatorID"],
    "ChargingNotificationProgress": ["Type", "SessionID", "EvseID", "ChargingStart",
                                     "EventOccurred", "OperatorID"],
    "ChargingNotificationEnd": ["Type", "SessionID", "EvseID", "ChargingEnd", "OperatorID"],
    "ChargingNotificationError": ["Type", "SessionID", "EvseID", "ErrorType", "OperatorID"],
    "ChargeDetailRecord": ["SessionID", "EvseID", "Identification", "ChargingStart",
                           "ChargingEnd", "SessionStart", "SessionEnd", "ConsumedEnergy"],
    "PushEvseStatus": ["ActionType", "OperatorEvseStatus"],
}


@pytest.mark.parametrize("schema,field", [(s, f) for s, fs in _REQUIRED.items() for f in fs])
def test_missing_required_field_is_refused(schema, field):
    doc = _full(schema)
    assert _errors(schema, doc) == []
    del doc[field]
    assert _errors(schema, doc)


def test_progress_without_duration_and_energy_is_refused():
    doc = _full("ChargingNotificationProgress")
    del doc["ChargingDuration"]
    assert _errors("ChargingNotificationProgress", doc) == []
    del doc["ConsumedEnergyProgress"]
    assert _errors("ChargingNotificationProgress", doc)


def _set(doc, path, value):
    *head, last = path
    for k in head:
        doc = doc[k]
    doc[last] = value


_IDENT_UID = ("Identification", "RFIDMifareFamilyIdentification", "UID")
_MUTATIONS = [
    # bad patterns
    ("AuthorizeStart", ("OperatorID",), "DE**ABC"),
    ("AuthorizeStart", _IDENT_UID, "AFFH1768"),
    ("AuthorizeStart", _IDENT_UID, "12345ABCD"),
    ("AuthorizeStart", _IDENT_UID, "04a1b2c3d4e5f6"),
    ("AuthorizeStart", ("EvseID",), "DE*ABC"),
    ("AuthorizeStop", ("SessionID",), "b2688855-7f00-0002-6d8e"),
    ("ChargingNotificationStart", ("ChargingStart",), "2024-05-01 12:00:00"),
    ("ChargingNotificationStart", ("ChargingStart",), "@3:1200"),
    ("ChargingNotificationStart", ("ChargingStart",), "2024-05-01T12:00:00"),
    ("ChargingNotificationStart", ("Type",), "Progress"),
    ("ChargingNotificationError", ("ErrorType",), "Connector Error"),
    ("PushEvseStatus", ("ActionType",), "replace"),
    ("PushEvseStatus", ("OperatorEvseStatus", "EvseStatusRecord", 0, "EvseStatus"), "Charging"),
    ("PushEvseStatus", ("OperatorEvseStatus", "OperatorID"), "DEABCD"),
    # too long
    ("AuthorizeStart", ("CPOPartnerSessionID",), "c" * 251),
    ("AuthorizeStart", ("PartnerProductID",), "p" * 51),
    ("ChargingNotificationError", ("ErrorAdditionalInfo",), "i" * 251),
    ("ChargeDetailRecord", ("EMPPartnerSessionID",), "e" * 251),
    ("PushEvseStatus", ("OperatorEvseStatus", "OperatorName"), "n" * 101),
    # wrong type or range
    ("ChargingNotificationProgress", ("ChargingDuration",), "300000"),
    ("ChargingNotificationProgress", ("ChargingDuration",), 1.5),
    ("ChargingNotificationProgress", ("ChargingDuration",), -1),
    ("ChargingNotificationProgress", ("ConsumedEnergyProgress",), "1.2"),
    ("ChargingNotificationProgress", ("MeterValueInBetween", "meterValues", 0), "9"),
    ("ChargingNotificationEnd", ("ConsumedEnergy",), -0.5),
    ("ChargeDetailRecord", ("ConsumedEnergy",), None),
    ("ChargeDetailRecord", ("Identification",), {}),
    ("ChargeDetailRecord", ("Identification",), {"RFIDMifareFamilyIdentification": {
        "UID": UID}, "RemoteIdentification": {"EvcoID": "DE-DCB-C12345678-X"}}),
    ("AuthorizeStop", ("OperatorID",), 49536),
    ("PushEvseStatus", ("OperatorEvseStatus", "EvseStatusRecord"), {"EvseID": EVSE}),
    # unknown fields: the spec's objects are closed
    ("AuthorizeStop", ("PartnerProductID",), "AC1"),
    ("ChargeDetailRecord", ("OperatorID",), OP),
    ("ChargingNotificationStart", ("EventOccurred",), T1),
    ("AuthorizeStart", ("Identification", "RFIDMifareFamilyIdentification", "RFID"), "nfc"),
]


@pytest.mark.parametrize("schema,path,value", _MUTATIONS,
                         ids=["%s-%s" % (m[0], ".".join(map(str, m[1]))) for m in _MUTATIONS])
def test_mutated_message_is_refused(schema, path, value):
    doc = _full(schema)
    assert _errors(schema, doc) == []
    _set(doc, path, value)
    assert _errors(schema, doc), (path, value)


@pytest.mark.parametrize("schema,doc", [
    ("Acknowledgement", {"Result": "true", "StatusCode": {"Code": "000"}}),
    ("Acknowledgement", {"Result": True, "StatusCode": {"Code": "123"}}),
    ("Acknowledgement", {"Result": True, "StatusCode": {"Code": "000", "Description": "d" * 201}}),
    ("Acknowledgement", {"Result": True}),
    ("AuthorizationStart", {"AuthorizationStatus": "Maybe", "StatusCode": {"Code": "000"}}),
    ("AuthorizationStop", {"AuthorizationStatus": "Authorized", "StatusCode": {"Code": "000"},
                           "ProviderID": "DE|8EO|X"}),
])
def test_bad_replies_are_refused(schema, doc):
    assert _errors(schema, doc)


def test_load_returns_a_fresh_copy_and_unknown_names_fail():
    a = oicp_schemas.load("Acknowledgement")
    a["required"].append("Nothing")
    assert "Nothing" not in oicp_schemas.load("Acknowledgement")["required"]
    with pytest.raises(KeyError):
        oicp_schemas.load("eRoamingNothing")
