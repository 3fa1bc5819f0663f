"""Fuzz the OICP reply parsers: whatever arrives, only ReplyError (with a message) comes out."""
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpagent.oicp.ids import check_session_id, check_uid
from cpagent.oicp.replies import (
    Reply,
    ReplyError,
    hub_fault,
    parse_acknowledgement,
    parse_authorization,
    parse_http_error,
)
from cpagent.uplink.result import classify

SID = "f98efba4-02d8-4fa0-b810-9a9d50d2c527"
RUNS = {}
FUZZ = settings(max_examples=1500, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

VALID = [
    {"AuthorizationStatus": "Authorized", "SessionID": SID, "ProviderID": "DE-DCB",
     "StatusCode": {"Code": "000", "Description": "Success", "AdditionalInfo": "ok"},
     "AuthorizationStopIdentifications": [
         {"RFIDMifareFamilyIdentification": {"UID": "1234ABCD"}},
         {"QRCodeIdentification": {"EvcoID": "DE-DCB-C12345678-X"}}],
     "CPOPartnerSessionID": "1234XYZ"},
    {"AuthorizationStatus": "NotAuthorized", "StatusCode": {"Code": "102"}},
    {"Result": True, "StatusCode": {"Code": "000"}, "SessionID": SID},
    {"Result": False, "StatusCode": {"Code": "017", "Description": "Unauthorized Access"}},
    {"message": "Validation failed", "extendedInfo": "x",
     "validationErrors": [{"fieldReference": "EvseID", "errorMessage": "bad"}]},
    {"StatusCode": {"Code": "017"}, "message": "certificate mismatch"},
]
KEYS = st.sampled_from([
    "Result", "StatusCode", "Code", "Description", "AdditionalInfo", "AuthorizationStatus",
    "SessionID", "ProviderID", "AuthorizationStopIdentifications",
    "RFIDMifareFamilyIdentification", "UID", "message", "extendedInfo", "validationErrors",
    "fieldReference", "errorMessage"]) | st.text(max_size=6)
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
           | st.sampled_from(["000", "017", "310", "Authorized", "NotAuthorized", SID,
                              "1234ABCD", "DE-DCB", "", "\u0661\u0662\u0663", "1e3"]))
JSON = st.recursive(SCALARS, lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(KEYS, kids, max_size=6), max_leaves=12)


def _count(name):
    RUNS[name] = RUNS.get(name, 0) + 1


def _check(parse, data):
    """Run one parser: a Reply that keeps its promises, or a ReplyError with a message."""
    try:
        r = parse(data)
    except ReplyError as e:
        assert str(e), "empty ReplyError"
        return
    assert isinstance(r, Reply) and r.kind in ("authorization", "acknowledgement")
    assert isinstance(r.code, str) and len(r.code) == 3 and r.code.strip("0123456789") == ""
    assert r.ok in (True, False) and (not r.ok or r.code == "000")
    assert isinstance(r.description, str) and 0 < len(r.description) <= 200
    assert r.session_id is None or check_session_id(r.session_id)
    assert isinstance(r.stop_uids, tuple) and len(r.stop_uids) <= 8
    assert all(check_uid(u) for u in r.stop_uids)


def _both(data):
    _check(parse_authorization, data)
    _check(parse_acknowledgement, data)
    text = parse_http_error(400, data)
    assert isinstance(text, str) and text.startswith("HTTP 400")


@FUZZ
@given(st.binary(max_size=300) | st.sampled_from(VALID).map(json.dumps).map(str.encode)
       .flatmap(lambda b: st.integers(0, len(b)).map(lambda n: b[:n])))
def test_random_and_truncated_bytes(data):
    _count("bytes")
    _both(data)


@settings(FUZZ, max_examples=800)
@given(JSON)
def test_random_json(doc):
    _count("json")
    raw = json.dumps(doc)  # NaN/Infinity included: Python's json reads them back
    _both(raw)
    _both(raw.encode())


def _mutate(data, doc):
    """Walk a random path into doc and delete, replace or add something there."""
    node = doc
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        if not keys:
            break
        k = data.draw(st.sampled_from(keys))
        child = node[k]
        if isinstance(child, (dict, list)) and child and data.draw(st.booleans()):
            node = child
            continue
        action = data.draw(st.sampled_from(["delete", "replace", "add"]))
        if action == "delete":
            del node[k]
        elif action == "replace":
            node[k] = data.draw(JSON)
        elif isinstance(node, dict):
            node[data.draw(KEYS)] = data.draw(JSON)
        else:
            node.append(data.draw(JSON))
        break
    return doc


@settings(FUZZ, max_examples=1000)
@given(st.data())
def test_mutated_valid_replies(data):
    _count("mutated")
    doc = json.loads(json.dumps(data.draw(st.sampled_from(VALID))))
    for _ in range(data.draw(st.integers(1, 3))):
        doc = _mutate(data, doc)
    _both(json.dumps(doc).encode())


@FUZZ
@given(st.one_of(st.integers(-1, 1000), st.none(), st.text(max_size=5), st.floats()),
       st.one_of(st.binary(max_size=200), st.text(max_size=200), JSON.map(json.dumps),
                 st.none(), st.integers(), st.lists(st.integers(0, 255))))
def test_http_error_never_raises(status, data):
    _count("http_error")
    text = parse_http_error(status, data)
    assert isinstance(text, str) and text.startswith("HTTP ") and len(text) <= 240


_GATEWAY = (301, 302, 307, 401, 403, 404, 405, 502, 503, 504)


@FUZZ
@given(st.sampled_from(_GATEWAY + (200, 400, 408, 429, 500)),
       st.one_of(st.binary(max_size=200), st.text(max_size=200), JSON.map(json.dumps)),
       st.sampled_from(["/api/oicp/notificationmgmt/v11/charging-notifications",
                        "/api/oicp/charging/v21/operators/DE*ABC/authorize/start"]))
def test_only_the_hubs_own_answer_refuses(status, data, path):
    """Whatever the body: the verdict is one of the six kinds, never raises, and a status a
    gateway sends with a body that is not the hub's error form is never a refusal."""
    _count("classify")
    kind, value, after = classify(path, status, data, 0)
    assert kind in ("ok", "retry", "hold", "nothub", "fail", "stop") and after == 0
    if status in _GATEWAY and hub_fault(data) is None:
        assert kind == "nothub" and value.startswith("not the hub's answer: HTTP %d" % status)
    if kind in ("fail", "stop"):
        assert 200 <= status < 300 or hub_fault(data) is not None, (status, data, kind)


def test_pathological_inputs():
    for data in [b"[" * 100000, b'{"a":' * 50000, "\ud800", b"\x00" * 1000, bytearray(b"{}"),
                 memoryview(b'{"Result":true,"StatusCode":{"Code":"000"}}'), 10 ** 100, [],
                 {"Result": True}]:
        _both(data)


def test_zz_report_case_counts(capsys):
    with capsys.disabled():
        print("\nfuzz cases run: %s (total %d)" % (
            ", ".join("%s=%d" % kv for kv in sorted(RUNS.items())), sum(RUNS.values())))
    assert RUNS, "no fuzz cases ran"
