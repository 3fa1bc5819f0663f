"""Mock hub logic (host_sim.hub.oicp_rules) in-process: validation, sessions, duplicates, codes."""
import copy
import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oicpdocs import EVSE_DATA

from cpagent.oicp import build as oicp
from cpagent.oicp import replies as oicp_replies
from host_sim.hub import oicp_rules
from host_sim.hub.oicp_rules import Rules, route

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "oicp_examples")
OP, EVSE, UID = "DE*ABC", "DE*ABC*E1234", "04A1B2C3D4E5F6"
EX_SID = "f98efba4-02d8-4fa0-b810-9a9d50d2c527"  # the spec examples' SessionID
T0 = "2024-05-01T12:00:00+02:00"


def _ex(name):
    with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
        return json.load(f)


def send(rules, path, body, identity=None):
    """POST-equivalent: route the path, hand the encoded body to the rules."""
    op, path_op = route(path)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return rules.handle(op, path_op, raw, identity)


def build(builder, *args, **kw):
    path, body = builder(*args, **kw)
    return path, oicp.encode(body)


def fields(a):
    assert a.status == 400, a.body
    return [e["fieldReference"] for e in a.body["validationErrors"]]


def authorize(rules, uid=UID, op=OP):
    a = send(rules, *build(oicp.authorize_start, op, uid, evse_id=EVSE))
    r = oicp_replies.parse_authorization(json.dumps(a.body))
    assert r.ok, a.body
    return r.session_id


# ---- routing ------------------------------------------------------------------------------

@pytest.mark.parametrize("path,want", [
    ("/api/oicp/charging/v21/operators/DE*ABC/authorize/start", ("AuthorizeStart", "DE*ABC")),
    ("/api/oicp/charging/v21/operators/%2B49*536/authorize/stop", ("AuthorizeStop", "+49*536")),
    ("/api/oicp/cdrmgmt/v22/operators/DE%2AABC/charge-detail-record",
     ("ChargeDetailRecord", "DE*ABC")),
    ("/api/oicp/notificationmgmt/v11/charging-notifications", ("ChargingNotifications", None)),
    ("/api/oicp/evsepush/v21/operators/DE*ABC/status-records", ("PushEvseStatus", "DE*ABC")),
    ("/api/oicp/evsepush/v23/operators/DE*ABC/data-records?x=1", ("PushEvseData", "DE*ABC")),
    ("/api/oicp/evsepush/v22/operators/DE*ABC/data-records", None),
    ("/api/oicp/charging/v21/operators//authorize/start", None),
    ("/api/oicp/charging/v21/operators/a/b/authorize/start", None),
])
def test_routes_are_the_official_paths(path, want):
    assert route(path) == want


def test_every_firmware_path_routes():
    paths = [build(oicp.authorize_start, "+49*536", UID)[0],
             build(oicp.authorize_stop, OP, EX_SID, UID)[0],
             build(oicp.notification_start, OP, EX_SID, EVSE, T0)[0],
             build(oicp.charge_detail_record, OP, EX_SID, EVSE, UID, T0, T0, T0, T0, 0)[0],
             build(oicp.push_evse_status, OP, [])[0]]
    assert [route(p)[0] for p in paths] == ["AuthorizeStart", "AuthorizeStop",
                                            "ChargingNotifications", "ChargeDetailRecord",
                                            "PushEvseStatus"]


# ---- the spec's examples ------------------------------------------------------------------

NOTIFY = "/api/oicp/notificationmgmt/v11/charging-notifications"
PUSH_STATUS = "/api/oicp/evsepush/v21/operators/DE*ABC/status-records"


@pytest.mark.parametrize("source", ["snippet_%s_request.json", "openapi_%s.json"])
def test_valid_notification_examples_are_accepted_in_session_order(source):
    rules = Rules(cards=["04A1B2C3D4E5F6"])
    rules.add_session(EX_SID, "DE*ABC", UID)
    for kind in ("Start", "Progress", "End", "Error"):
        a = send(rules, NOTIFY, _ex(source % ("ChargingNotification" + kind)))
        assert (a.status, a.body["Result"], a.code) == (200, True, "000"), (kind, a.body)
    s = rules.sessions[EX_SID]
    assert [n["Type"] for n in s.notifications] == ["Start", "Progress", "End", "Error"]
    assert s.state == "ended" and s.errors == 1


@pytest.mark.parametrize("name", ["snippet_PushEvseStatus_request.json",
                                  "openapi_PushEvseStatus.json"])
def test_valid_push_status_examples_are_accepted(name):
    # The examples push DE*XYZ's EVSE as DE*ABC: XYZ is ABC's sub-operator there.
    rules = Rules(sub_operators={"DE*ABC": ["DE*XYZ"]})
    a = send(rules, PUSH_STATUS, _ex(name))
    assert (a.status, a.code, a.body["Result"]) == (200, "000", True)
    assert rules.evses_json() == [{"OperatorID": "DE*ABC", "EvseID": "DE*XYZ*ETEST1",
                                   "EvseStatus": "Available", "data": False}]
    assert send(Rules(), PUSH_STATUS, _ex(name)).code == "018"  # without the sub-operator


def _one_identification_each(name, drop=()):
    doc = _ex(name)
    for k in drop:
        del doc[k]
    for option, value in doc["Identification"].items():
        one = copy.deepcopy(doc)
        one["Identification"] = {option: value}
        yield option, value, one


def test_authorize_examples_with_one_identification_each_are_accepted():
    start = "/api/oicp/charging/v21/operators/DE*ABC/authorize/start"
    for option, value, doc in _one_identification_each("openapi_AuthorizeStart.json"):
        token = value.get("UID") or value["EvcoID"]
        refused = send(Rules(), start, doc)
        assert refused.body["AuthorizationStatus"] == "NotAuthorized", option
        a = send(Rules(cards=[token]), start, doc)
        assert (a.code, a.body["AuthorizationStatus"]) == ("000", "Authorized"), option
        assert a.body["SessionID"] != EX_SID  # an unknown SessionID is not taken over
    stop = "/api/oicp/charging/v21/operators/DE*ABC/authorize/stop"
    for option, value, doc in _one_identification_each("openapi_AuthorizeStop.json",
                                                        ["PartnerProductID"]):
        rules = Rules()
        rules.add_session(EX_SID, "DE*ABC", value.get("UID") or value["EvcoID"])
        a = send(rules, stop, doc)
        assert (a.code, a.body["AuthorizationStatus"]) == ("000", "Authorized"), option


def test_cdr_example_with_one_identification_each_is_accepted():
    path = "/api/oicp/cdrmgmt/v22/operators/DE*ABC/charge-detail-record"
    for option, _value, doc in _one_identification_each("openapi_ChargeDetailRecord.json"):
        rules = Rules()
        rules.add_session(doc["SessionID"], "DE*ABC", UID)
        a = send(rules, path, doc)
        assert (a.code, a.body["Result"]) == ("000", True), (option, a.body)


PUSH_DATA = "/api/oicp/evsepush/v23/operators/DE*ABC/data-records"


def test_push_evse_data_example_is_accepted_and_mutations_named():
    rules = Rules()
    a = send(rules, PUSH_DATA, EVSE_DATA)
    assert (a.code, a.body["Result"]) == ("000", True), a.body
    assert list(rules.evse_data) == [("DE*ABC", "DE*XYZ*ETEST1")]
    rec = "$.OperatorEvseData.EvseDataRecord[0]"
    for path, value, want in [
            (("HotlinePhoneNumber",), "0305132787", rec + ".HotlinePhoneNumber"),
            (("Address", "Country"), "DE", rec + ".Address.Country"),
            (("Address", "Street"), "s" * 101, rec + ".Address.Street"),
            (("Plugs", 0), "Type 9", rec + ".Plugs[0]"),
            (("ChargingFacilities", 0, "Power"), "22", rec + ".ChargingFacilities[0].Power"),
            (("IsOpen24Hours",), "no", rec + ".IsOpen24Hours")]:
        doc = copy.deepcopy(EVSE_DATA)
        _set(doc["OperatorEvseData"]["EvseDataRecord"][0], path, value)
        assert want in fields(send(rules, PUSH_DATA, doc)), path
    doc = copy.deepcopy(EVSE_DATA)
    del doc["OperatorEvseData"]["EvseDataRecord"][0]["OpeningTimes"]  # not open 24 h
    assert rec + ".OpeningTimes" in fields(send(rules, PUSH_DATA, doc))


# Invalid examples (see tests/host/data/oicp_examples/SOURCE.md) and the fields named.
_INVALID = [
    ("snippet_AuthorizeStart_request.json", "/api/oicp/charging/v21/operators/DE*ABC/"
     "authorize/start", ["$.Identification.RFIDMifareFamilyIdentification.UID",
                         "$.Identification"]),
    ("snippet_AuthorizeStop_request.json", "/api/oicp/charging/v21/operators/DE*ABC/"
     "authorize/stop", ["$.PartnerProductID", "$.Identification"]),
    ("snippet_ChargeDetailRecord_request.json", "/api/oicp/cdrmgmt/v22/operators/DE*ABC/"
     "charge-detail-record", ["$.SessionID", "$.Identification"]),
    ("openapi_AuthorizeStart.json", "/api/oicp/charging/v21/operators/DE*ABC/authorize/start",
     ["$.Identification"]),
]


@pytest.mark.parametrize("name,path,want", _INVALID, ids=[i[0] for i in _INVALID])
def test_invalid_examples_are_refused_naming_the_fields(name, path, want):
    a = send(Rules(cards=[UID]), path, _ex(name))
    got = fields(a)
    for w in want:
        assert w in got, (w, got)
    assert a.body["message"].startswith("Validation error: $")
    # The firmware's reason for it names the field too.
    assert want[0] in oicp_replies.parse_http_error(400, json.dumps(a.body).encode()) or \
        got[0] in oicp_replies.parse_http_error(400, json.dumps(a.body).encode())


# ---- mutations of the firmware's own messages ---------------------------------------------

SID = "b2688855-7f00-0002-6d8e-48d883f6abb6"
T1 = "2024-05-01T12:06:00+02:00"
FULL = {
    "AuthorizeStart": lambda: build(oicp.authorize_start, OP, UID, evse_id=EVSE,
                                    cpo_session_id="c1", product_id="AC1"),
    "ChargingNotificationProgress": lambda: build(
        oicp.notification_progress, OP, SID, EVSE, T0, T1, duration_ms=360000, consumed=1.5,
        uid=UID, meter_values=[1.0, 2.0]),
    "ChargingNotificationError": lambda: build(oicp.notification_error, OP, SID, EVSE,
                                               "ConnectorError", info="x"),
    "ChargeDetailRecord": lambda: build(oicp.charge_detail_record, OP, SID, EVSE, UID, T0, T1,
                                        T0, T1, 2.5, meter_start=1, meter_end=3.5),
    "PushEvseStatus": lambda: build(oicp.push_evse_status, OP, [(EVSE, "Available")]),
}
_MUTATIONS = [
    # missing required fields
    ("AuthorizeStart", ("OperatorID",), None, "$.OperatorID"),
    ("AuthorizeStart", ("Identification",), None, "$.Identification"),
    ("ChargingNotificationProgress", ("EventOccurred",), None, "$.EventOccurred"),
    ("ChargingNotificationProgress", ("EvseID",), None, "$.EvseID"),
    ("ChargingNotificationError", ("ErrorType",), None, "$.ErrorType"),
    ("ChargeDetailRecord", ("ConsumedEnergy",), None, "$.ConsumedEnergy"),
    ("ChargeDetailRecord", ("SessionEnd",), None, "$.SessionEnd"),
    ("PushEvseStatus", ("OperatorEvseStatus", "EvseStatusRecord", 0, "EvseStatus"), None,
     "$.OperatorEvseStatus.EvseStatusRecord[0].EvseStatus"),
    # bad patterns and enums
    ("AuthorizeStart", ("EvseID",), "DE*ABC", "$.EvseID"),
    ("AuthorizeStart", ("Identification", "RFIDMifareFamilyIdentification", "UID"), "AFFH1768",
     "$.Identification.RFIDMifareFamilyIdentification.UID"),
    ("ChargingNotificationProgress", ("SessionID",), "b2688855-7f00", "$.SessionID"),
    ("ChargingNotificationProgress", ("EventOccurred",), "2024-05-01 12:06", "$.EventOccurred"),
    ("ChargingNotificationError", ("ErrorType",), "Connector Error", "$.ErrorType"),
    ("PushEvseStatus", ("ActionType",), "replace", "$.ActionType"),
    # too long
    ("AuthorizeStart", ("CPOPartnerSessionID",), "c" * 251, "$.CPOPartnerSessionID"),
    ("AuthorizeStart", ("PartnerProductID",), "p" * 51, "$.PartnerProductID"),
    ("ChargingNotificationError", ("ErrorAdditionalInfo",), "i" * 251,
     "$.ErrorAdditionalInfo"),
    # wrong type or range
    ("ChargingNotificationProgress", ("ChargingDuration",), "360000", "$.ChargingDuration"),
    ("ChargingNotificationProgress", ("ConsumedEnergyProgress",), -1,
     "$.ConsumedEnergyProgress"),
    ("ChargingNotificationProgress", ("MeterValueInBetween", "meterValues", 1), "2",
     "$.MeterValueInBetween.meterValues[1]"),
    ("ChargeDetailRecord", ("ConsumedEnergy",), "2.5", "$.ConsumedEnergy"),
    ("PushEvseStatus", ("OperatorEvseStatus", "EvseStatusRecord"), {"EvseID": EVSE},
     "$.OperatorEvseStatus.EvseStatusRecord"),
    # unknown fields
    ("ChargeDetailRecord", ("OperatorID",), OP, "$.OperatorID"),
    ("ChargingNotificationError", ("ChargingStart",), T0, "$.ChargingStart"),
]


def _set(doc, path, value):
    *head, last = path
    for k in head:
        doc = doc[k]
    if value is None:
        del doc[last]
    else:
        doc[last] = value


@pytest.mark.parametrize("name,path,value,want", _MUTATIONS,
                         ids=["%s-%s" % (m[0], ".".join(map(str, m[1]))) for m in _MUTATIONS])
def test_mutated_firmware_message_is_refused_naming_the_field(name, path, value, want):
    url, raw = FULL[name]()
    doc = json.loads(raw)
    rules = Rules(cards=[UID])
    rules.add_session(SID, OP, UID)
    _set(doc, path, value)
    got = fields(send(rules, url, doc))
    assert want in got, got


def test_progress_without_duration_or_energy_names_both():
    url, raw = FULL["ChargingNotificationProgress"]()
    doc = json.loads(raw)
    del doc["ChargingDuration"], doc["ConsumedEnergyProgress"]
    assert fields(send(Rules(), url, doc)) == ["$.ChargingDuration|ConsumedEnergyProgress"]


@pytest.mark.parametrize("body,want", [
    (b"{not json", "$"), (b"\xff\xfe", "$"), (b"[]", "$.Type"), (b'{"Type": "Stop"}', "$.Type"),
    (b'{"Type": 3}', "$.Type")])
def test_bodies_that_are_not_notifications_are_refused(body, want):
    assert fields(send(Rules(), NOTIFY, body))[0] == want


_REQUIRED = {"ChargingNotificationProgress": ["Type", "SessionID", "EvseID", "ChargingStart",
                                              "EventOccurred", "OperatorID"],
             "ChargeDetailRecord": ["SessionID", "EvseID", "Identification", "ChargingStart",
                                    "ChargingEnd", "SessionStart", "SessionEnd",
                                    "ConsumedEnergy"],
             "AuthorizeStart": ["OperatorID", "Identification"]}


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(sorted(_REQUIRED)), data=st.data(),
       junk=st.one_of(st.integers(), st.booleans(), st.lists(st.integers(), max_size=2),
                      st.text(max_size=3)))
def test_any_missing_or_retyped_required_field_is_named(name, data, junk):
    url, raw = FULL[name]()
    doc = json.loads(raw)
    key = data.draw(st.sampled_from(_REQUIRED[name]))
    if data.draw(st.booleans()):
        del doc[key]
    elif key == "Type" or json.dumps(junk) == json.dumps(doc[key]) or (
            type(junk) is int and type(doc[key]) in (int, float)):
        return  # a wrong Type is another message; equal junk or a number for one: no mutation
    else:
        doc[key] = junk
    got = fields(send(Rules(), url, doc))
    assert any(g == "$." + key or g.startswith("$." + key + ".") for g in got), (key, got)


# ---- sessions -----------------------------------------------------------------------------

def note(kind, sid, **kw):
    builder = {"Start": oicp.notification_start, "Progress": oicp.notification_progress,
               "End": oicp.notification_end, "Error": oicp.notification_error}[kind]
    args = {"Start": (T0,), "Progress": (T0, kw.pop("at", T1)), "End": (kw.pop("end", T1),),
            "Error": ("CriticalError",)}[kind]
    if kind == "Progress":
        kw.setdefault("consumed", 1.0)
    return build(builder, OP, sid, EVSE, *args, **kw)


def ack(rules, path_raw, identity=None):
    a = send(rules, *path_raw, identity=identity)
    r = oicp_replies.parse_acknowledgement(json.dumps(a.body))
    assert r.code == a.code
    return a


def test_authorize_start_issues_sessions_for_listed_cards_only():
    rules = Rules(cards={UID: "DE-8EO"}, provider_id="DE-EMP")
    rules.add_card("DEADBEEF")
    sid = authorize(rules)
    assert rules.sessions[sid].provider == "DE-8EO"
    r = oicp_replies.parse_authorization(json.dumps(send(
        rules, *build(oicp.authorize_start, OP, "DEADBEEF")).body))
    assert (r.ok, r.provider_id, r.stop_uids) == (True, "DE-EMP", ("DEADBEEF",))
    assert r.session_id != sid and len(rules.sessions) == 2
    a = send(rules, *build(oicp.authorize_start, OP, "0102030405060708090A"))
    r = oicp_replies.parse_authorization(json.dumps(a.body))
    assert (r.ok, r.code, r.session_id) == (False, "102", None)
    assert "0102030405060708090A" in a.body["StatusCode"]["AdditionalInfo"]
    assert len(rules.sessions) == 2


def test_authorize_start_for_qr_code_refused_with_101():
    doc = {"OperatorID": OP, "Identification": {"QRCodeIdentification": {
        "EvcoID": "DE-8EO-CAB123456-3", "PIN": "1234"}}}
    a = send(Rules(), "/api/oicp/charging/v21/operators/DE*ABC/authorize/start", doc)
    assert (a.code, a.body["AuthorizationStatus"]) == ("101", "NotAuthorized")


def test_authorize_stop_needs_the_session_and_its_card():
    rules = Rules(cards=[UID, "DEADBEEF"])
    sid = authorize(rules)
    for args, code in [((OP, SID, UID), "400"), (("DE*XYZ", sid, UID), "400"),
                       ((OP, sid, "DEADBEEF"), "102"), ((OP, sid, UID), "000")]:
        a = send(rules, *build(oicp.authorize_stop, *args))
        r = oicp_replies.parse_authorization(json.dumps(a.body))
        assert (r.code, r.ok) == (code, code == "000"), args
    assert rules.sessions[sid].stopped


def test_full_session_then_each_out_of_order_message_gets_400():
    rules = Rules(cards=[UID])
    sid = authorize(rules)
    assert ack(rules, note("End", sid)).code == "400"  # End before Start
    assert ack(rules, note("Progress", sid)).code == "400"  # Progress before Start
    assert ack(rules, note("Start", sid)).code == "000"
    assert ack(rules, note("Start", sid, meter_start=1)).code == "400"  # a second, other Start
    assert ack(rules, note("Progress", sid, at="2024-05-01T12:05:00+02:00")).code == "000"
    assert ack(rules, note("Error", sid)).code == "000"  # Error: any time
    assert ack(rules, note("End", sid)).code == "000"
    assert ack(rules, note("Progress", sid, at="2024-05-01T13:00:00+02:00")).code == "400"
    assert ack(rules, note("End", sid, end=T0)).code == "400"  # another End
    cdr = build(oicp.charge_detail_record, OP, sid, EVSE, UID, T0, T1, T0, T1, 1.5)
    assert ack(rules, cdr).code == "000"
    other = build(oicp.charge_detail_record, OP, sid, EVSE, UID, T0, T1, T0, T1, 9.5)
    a = ack(rules, other)  # a second, different CDR
    assert a.code == "400" and "one CDR per SessionID" in a.body["StatusCode"]["AdditionalInfo"]
    assert ack(rules, note("Error", sid, info="late")).code == "400"  # after the CDR
    s = rules.sessions[sid]
    assert s.state == "closed" and s.cdr["ConsumedEnergy"] == 1.5
    assert [n["Type"] for n in s.notifications] == ["Start", "Progress", "Error", "End"]


def test_unknown_session_and_other_operators_session_get_400_naming_session_id():
    rules = Rules(cards=[UID])
    sid = authorize(rules)
    for p in (note("Start", SID), build(oicp.notification_start, "DE*XYZ", sid,
                                        "DE*XYZ*E1", T0)):
        a = ack(rules, p)
        assert a.code == "400" and a.body["Result"] is False
        assert a.body["StatusCode"]["AdditionalInfo"].startswith("SessionID: ")
    cdr = build(oicp.charge_detail_record, "DE*XYZ", sid, EVSE, UID, T0, T1, T0, T1, 1)
    assert ack(rules, cdr).code == "400"


def test_progress_interval_uses_the_messages_own_timestamps():
    rules = Rules(cards=[UID])
    sid = authorize(rules)
    ack(rules, note("Start", sid))  # ChargingStart 12:00:00+02:00
    too_soon = note("Progress", sid, at="2024-05-01T10:04:59Z")  # 299 s after, other zone
    a = ack(rules, too_soon)
    assert a.code == "022" and a.body["StatusCode"]["AdditionalInfo"].startswith("EventOccurred")
    assert ack(rules, note("Progress", sid, at="2024-05-01T10:05:00Z")).code == "000"
    assert ack(rules, note("Progress", sid, at="2024-05-01T12:09:59+02:00")).code == "022"
    assert ack(rules, note("Progress", sid, at="2024-05-01T12:10:00+02:00")).code == "000"
    # The hub's wall clock plays no part: all of this ran in well under 5 minutes.


def test_progress_interval_is_configurable():
    rules = Rules(cards=[UID], progress_interval=60, progress_from_start=False)
    sid = authorize(rules)
    ack(rules, note("Start", sid))
    assert ack(rules, note("Progress", sid, at="2024-05-01T12:00:01+02:00")).code == "000"
    assert ack(rules, note("Progress", sid, at="2024-05-01T12:00:59+02:00")).code == "022"
    assert ack(rules, note("Progress", sid, at="2024-05-01T12:01:01+02:00")).code == "000"


def test_identical_repeats_are_acknowledged_once_in_effect():
    rules = Rules(cards=[UID])
    sid = authorize(rules)
    start = note("Start", sid)
    progress = note("Progress", sid, at="2024-05-01T12:05:00+02:00")
    cdr = build(oicp.charge_detail_record, OP, sid, EVSE, UID, T0, T1, T0, T1, 1.5)
    for msg in (start, start, progress, progress, progress, note("End", sid), cdr, cdr):
        a = ack(rules, msg)
        assert a.code == "000", a.body
    s = rules.sessions[sid]
    assert [n["Type"] for n in s.notifications] == ["Start", "Progress", "End"]
    assert s.duplicates == 4 and rules.counts["duplicates"] == 4
    # The repeat is byte-for-byte the first answer, flagged as a duplicate.
    first, again = send(rules, *cdr), send(rules, *cdr)
    assert first.body == again.body and again.duplicate
    # A repeat of a refused message is judged again, not replayed.
    other = build(oicp.charge_detail_record, OP, sid, EVSE, UID, T0, T1, T0, T1, 2)
    assert [send(rules, *other).code for _ in range(2)] == ["400", "400"]


def test_operator_mismatches():
    rules = Rules(cards=[UID], operators=["DE*ABC"])
    path, _ = build(oicp.authorize_start, OP, UID)
    body = json.loads(build(oicp.authorize_start, "DE*XYZ", UID)[1])
    a = send(rules, path, body)  # body DE*XYZ, path DE*ABC
    assert a.code == "300" and "OperatorID" in a.body["StatusCode"]["AdditionalInfo"]
    r = oicp_replies.parse_authorization(json.dumps(a.body))
    assert (r.kind, r.ok, r.code) == ("acknowledgement", False, "300")
    assert send(rules, *build(oicp.authorize_start, "DE*XYZ", UID)).code == "300"  # unknown
    assert send(rules, *build(oicp.authorize_start, OP, UID), identity="DE*XYZ").code == "017"
    assert send(rules, *build(oicp.authorize_start, OP, UID), identity="DEABC").code == "000"
    note_ = build(oicp.notification_start, OP, SID, EVSE, T0)
    a = send(rules, *note_, identity="DE*XYZ")  # no operator in the path: the body's counts
    assert a.code == "017" and oicp_replies.classify(a.code) == "stop"
    bad = "/api/oicp/charging/v21/operators/DE**ABC/authorize/start"
    assert fields(send(rules, bad, body)) == ["operatorID"]


def test_push_status_checks_evse_ownership_and_applies_actions():
    rules = Rules()
    mine = [(EVSE, "Available"), ("DE*ABC*E2", "Occupied")]
    assert ack(rules, build(oicp.push_evse_status, OP, mine, action="fullLoad")).code == "000"
    a = ack(rules, build(oicp.push_evse_status, OP, [("DE*XYZ*E1", "Available")]))
    assert a.code == "018"
    assert "EvseStatusRecord[0].EvseID" in a.body["StatusCode"]["AdditionalInfo"]
    a = ack(rules, build(oicp.push_evse_status, OP, [(EVSE, "Occupied"), (EVSE, "Available")]))
    assert a.code == "018" and "listed twice" in a.body["StatusCode"]["AdditionalInfo"]
    assert ack(rules, build(oicp.push_evse_status, OP, [(EVSE, "Occupied")])).code == "000"
    assert ack(rules, build(oicp.push_evse_status, OP, [("DE*ABC*E2", "Occupied")],
                            action="delete")).code == "000"
    assert [(e["EvseID"], e["EvseStatus"]) for e in rules.evses_json()] == [(EVSE, "Occupied")]
    din = build(oicp.push_evse_status, "+49*536", [("+49*536*000*438", "Available")])
    assert ack(rules, din).code == "000"
    assert ack(rules, build(oicp.push_evse_status, OP, [], action="fullLoad")).code == "000"
    assert [e["OperatorID"] for e in rules.evses_json()] == ["+49*536"]


def test_every_reply_of_a_whole_session_parses_in_the_firmware():
    rules = Rules(cards=[UID])
    sid = authorize(rules)
    steps = [note("Start", sid, uid=UID, meter_start=10.0),
             note("Progress", sid, at="2024-05-01T12:05:00+02:00", duration_ms=300000),
             note("End", sid, consumed=1.5, meter_start=10.0, meter_end=11.5),
             build(oicp.charge_detail_record, OP, sid, EVSE, UID, T0, T1, T0, T1, 1.5),
             build(oicp.push_evse_status, OP, [(EVSE, "Available")])]
    for p in steps:
        a = send(rules, *p)
        r = oicp_replies.parse_acknowledgement(json.dumps(a.body))
        assert r.ok and r.code == "000" and oicp_replies.classify(r.code) == "ok"
    r = oicp_replies.parse_authorization(json.dumps(send(
        rules, *build(oicp.authorize_stop, OP, sid, UID)).body))
    assert r.ok and r.session_id == sid


def test_session_cap_forgets_the_oldest(monkeypatch):
    monkeypatch.setattr(oicp_rules, "MAX_SESSIONS", 3)
    rules = Rules(cards=[UID])
    sids = [authorize(rules) for _ in range(4)]
    assert list(rules.sessions) == sids[1:]
    assert ack(rules, note("Start", sids[0])).code == "400"


def test_inlined_validators_find_the_same_errors_as_the_shared_schemas():
    from host_sim import oicp_schemas

    def both(name, doc):
        shared = sorted((e.json_path, e.message)
                        for e in oicp_schemas.validator(name).iter_errors(doc))
        mine = sorted((e.json_path, e.message)
                      for e in oicp_schemas.inlined(name).iter_errors(doc))
        assert shared == mine, name
        return shared

    docs = [(m[0], m[1], m[2]) for m in _MUTATIONS]
    errors = 0
    for name, path, value in docs:
        doc = json.loads(FULL[name]()[1])
        _set(doc, path, value)
        errors += len(both(name, doc))
    for name, schema in [("snippet_AuthorizeStart_request.json", "AuthorizeStart"),
                         ("snippet_ChargeDetailRecord_request.json", "ChargeDetailRecord"),
                         ("openapi_ChargingNotificationProgress.json",
                          "ChargingNotificationProgress")]:
        errors += len(both(schema, _ex(name)))
    bad = copy.deepcopy(EVSE_DATA)
    bad["OperatorEvseData"]["EvseDataRecord"][0]["Address"]["Country"] = "D"
    errors += len(both("PushEvseData", bad))
    assert errors > len(docs)


def test_notifications_and_cdrs_name_their_sessions_own_evse_and_operator():
    rules = Rules(cards=[UID])
    sid = authorize(rules)                                  # on EVSE
    other = "DE*ABC*E9999"
    start = build(oicp.notification_start, OP, sid, other, T0)
    a = ack(rules, start)
    assert a.code == "018" and "not the EVSE of session" in a.body["StatusCode"]["AdditionalInfo"]
    assert ack(rules, note("Start", sid)).code == "000"
    for path_raw in (build(oicp.notification_end, OP, sid, other, T1),
                     build(oicp.notification_error, OP, sid, other, "CriticalError"),
                     build(oicp.charge_detail_record, OP, sid, other, UID, T0, T1, T0, T1, 1)):
        assert ack(rules, path_raw).code == "018"
    # Another operator's message for this session: 400, the session is not theirs.
    for path_raw in (build(oicp.notification_end, "DE*XYZ", sid, "DE*XYZ*E1", T1),
                     build(oicp.charge_detail_record, "DE*XYZ", sid, "DE*XYZ*E1", UID, T0, T1,
                           T0, T1, 1)):
        assert ack(rules, path_raw).code == "400"
    assert [n["Type"] for n in rules.sessions[sid].notifications] == ["Start"]
    assert rules.sessions[sid].cdr is None


def test_a_session_authorized_without_an_evse_takes_the_first_notifications():
    rules = Rules(cards=[UID])
    sid = rules.add_session("0000000a-0000-0000-0000-000000000000", OP, UID).sid
    assert ack(rules, note("Start", sid)).code == "000"     # binds EVSE
    assert ack(rules, build(oicp.notification_end, OP, sid, "DE*ABC*E2", T1)).code == "018"
    assert rules.sessions[sid].evse == EVSE


def test_a_repeated_cpo_partner_session_id_gets_the_same_session():
    """A charger that lost the answer in a power cut re-sends its AuthorizeStart with the same
    CPOPartnerSessionID: the hub names the session it already made, not a new one."""
    rules = Rules(cards={UID: "DE-8EO"})
    first = build(oicp.authorize_start, OP, UID, cpo_session_id="a:3-1200-0")
    sid = oicp_replies.parse_authorization(json.dumps(send(rules, *first).body)).session_id
    again = oicp_replies.parse_authorization(json.dumps(send(rules, *first).body))
    assert (again.ok, again.session_id, len(rules.sessions)) == (True, sid, 1)
    other = build(oicp.authorize_start, OP, UID, cpo_session_id="a:3-1300-0")
    assert oicp_replies.parse_authorization(json.dumps(send(rules, *other).body)).session_id \
        not in (None, sid)
    assert len(rules.sessions) == 2
