"""OICP reply parsers: literal hub answers in, Reply fields out; bad input only as ReplyError."""
from check import raises, raises_naming
from cpagent.oicp.replies import (
    TABLE,
    Reply,
    ReplyError,
    classify,
    describe,
    parse_acknowledgement,
    parse_authorization,
    parse_http_error,
)

SID = "f98efba4-02d8-4fa0-b810-9a9d50d2c527"

AUTH_OK = (b'{"AuthorizationStatus":"Authorized","SessionID":"' + SID.encode() + b'",'
           b'"ProviderID":"DE-DCB","StatusCode":{"Code":"000"},'
           b'"AuthorizationStopIdentifications":['
           b'{"RFIDMifareFamilyIdentification":{"UID":"1234ABCD"}},'
           b'{"PlugAndChargeIdentification":{"EvcoID":"DE-DCB-C12345678-X"}},'
           b'{"RFIDMifareFamilyIdentification":{"UID":"7568290FFF765F"}}]}')
ACK_OK = ('{"Result": true, "StatusCode": {"Code": "000", "Description": "Success"},'
          ' "SessionID": "' + SID + '", "CPOPartnerSessionID": "1234XYZ"}')


def _eq(got, want):
    if got != want:
        raise AssertionError("got %r, want %r" % (got, want))


def test_authorized_start():
    r = parse_authorization(AUTH_OK)
    if not isinstance(r, Reply) or r.ok is not True:
        raise AssertionError("not ok")
    _eq((r.kind, r.code, r.session_id, r.provider_id), ("authorization", "000", SID, "DE-DCB"))
    _eq(r.stop_uids, ("1234ABCD", "7568290FFF765F"))
    _eq(r.description, "ok")


def test_not_authorized_with_hub_description():
    r = parse_authorization('{"AuthorizationStatus":"NotAuthorized","StatusCode":'
                            '{"Code":"102","Description":"RFID Authentication failed",'
                            '"AdditionalInfo":"card blocked"}}')
    _eq((r.ok, r.code, r.session_id, r.stop_uids), (False, "102", None, ()))
    _eq(r.description, "RFID Authentication failed: card blocked")


def test_authorized_but_nonzero_code_is_not_ok():
    r = parse_authorization('{"AuthorizationStatus":"Authorized","StatusCode":{"Code":"210"}}')
    _eq((r.ok, r.description), (False, "no valid contract"))


def test_authorization_may_come_as_an_acknowledgement():
    # Hubject answers "partner not found" (300) and "partner locked" (017) this way.
    r = parse_authorization(b'{"Result":false,"StatusCode":{"Code":"017"}}')
    _eq((r.kind, r.ok, r.code), ("acknowledgement", False, "017"))
    _eq(classify(r.code), "stop")


def test_acknowledgement():
    r = parse_acknowledgement(ACK_OK)
    _eq((r.kind, r.ok, r.code, r.session_id, r.description),
        ("acknowledgement", True, "000", SID, "Success"))
    r = parse_acknowledgement(bytearray(b'{"Result":false,"StatusCode":{"Code":"400"}}'))
    _eq((r.ok, r.code, r.description), (False, "400", "session invalid"))
    r = parse_acknowledgement(b'{"Result":true,"StatusCode":{"Code":"009"}}')
    _eq(r.ok, False)


def test_acknowledgement_parser_refuses_an_authorization():
    raises_naming(ReplyError, "Result", parse_acknowledgement,
                  '{"AuthorizationStatus":"Authorized","StatusCode":{"Code":"000"}}')


def test_null_optionals_count_as_absent():
    r = parse_acknowledgement('{"Result":true,"StatusCode":{"Code":"000","Description":null},'
                              '"SessionID":null}')
    _eq((r.ok, r.session_id, r.description), (True, None, "ok"))


def test_malformed_replies_name_what_is_wrong():
    cases = [
        ("reply", b""), ("reply", b"not json"), ("reply", b"\xff\xfe{}"), ("reply", b"[1,2]"),
        ("reply", "null"), ("reply", 42), ("reply", None),
        ("StatusCode.Code", "{}"), ("StatusCode.Code", '{"Result":true,"StatusCode":"000"}'),
        ("StatusCode.Code", '{"Result":true,"StatusCode":{"Code":0}}'),
        ("StatusCode.Code", '{"Result":true,"StatusCode":{"Code":"00"}}'),
        ("StatusCode.Code", '{"Result":true,"StatusCode":{"Code":"0a0"}}'),
        ("StatusCode.Code", '{"Result":true,"StatusCode":{"Code":"\\u0661\\u0662\\u0663"}}'),
        ("Result", '{"Result":"true","StatusCode":{"Code":"000"}}'),
        ("Result", '{"StatusCode":{"Code":"000"}}'),
        ("AuthorizationStatus", '{"AuthorizationStatus":"Yes","StatusCode":{"Code":"000"}}'),
        ("SessionID", '{"Result":true,"StatusCode":{"Code":"000"},"SessionID":"string"}'),
        ("ProviderID", '{"AuthorizationStatus":"Authorized","StatusCode":{"Code":"000"},'
                       '"ProviderID":"nope!"}'),
        ("AuthorizationStopIdentifications",
         '{"AuthorizationStatus":"Authorized","StatusCode":{"Code":"000"},'
         '"AuthorizationStopIdentifications":{}}'),
        ("UID", '{"AuthorizationStatus":"Authorized","StatusCode":{"Code":"000"},'
                '"AuthorizationStopIdentifications":[{"RFIDMifareFamilyIdentification":'
                '{"UID":"12345ABCD"}}]}'),
    ]
    for text, data in cases:
        raises_naming(ReplyError, text, parse_authorization, data)


def test_stop_uids_are_capped_at_eight():
    ids = ",".join('{"RFIDMifareFamilyIdentification":{"UID":"%08X"}}' % i for i in range(12))
    r = parse_authorization('{"AuthorizationStatus":"Authorized","StatusCode":{"Code":"000"},'
                            '"AuthorizationStopIdentifications":[' + ids + "]}")
    _eq(r.stop_uids, tuple("%08X" % i for i in range(8)))


def test_long_hub_text_is_capped():
    r = parse_acknowledgement('{"Result":false,"StatusCode":{"Code":"022","Description":"'
                              + "d" * 500 + '","AdditionalInfo":"' + "i" * 2000 + '"}}')
    _eq(len(r.description), 200)


def test_status_table_is_complete():
    codes = ("000 001 002 009 017 018 019 021 022 101 102 103 105 106 110 120 121 122 200 210"
             " 300 310 320 400 501 510 601 602 603 604 700").split()
    _eq([s[:3] for s in TABLE[1:].split("|")], codes)
    _eq(describe("700"), "EVSE out of service")  # the last one
    _eq(describe("000"), "ok")
    _eq(describe("00"), "unknown status 00")  # a part of a code is none
    for c in codes:
        if not describe(c) or describe(c).startswith("unknown"):
            raise AssertionError(c)
    _eq(describe("999"), "unknown status 999")


def test_classify():
    _eq(classify("000"), "ok")
    _eq(classify("017"), "stop")
    for c in ("001", "002", "009", "021", "310"):
        _eq(classify(c), "retry")
    for c in ("018", "022", "102", "210", "300", "320", "400", "603", "999", None):
        _eq(classify(c), "fail")


def test_http_error_fault_body():
    msg = parse_http_error(400, b'{"message":"Validation failed","validationErrors":['
                                b'{"fieldReference":"EvseID","errorMessage":"bad pattern"}]}')
    _eq(msg, "HTTP 400 validation error: Validation failed; EvseID: bad pattern")


def test_http_error_oicp_fault():
    msg = parse_http_error(401, '{"StatusCode":{"Code":"017"},"message":"cert mismatch"}')
    _eq(msg, "HTTP 401 not authorized: 017 access refused (certificate/OperatorID); "
             "cert mismatch")


def test_http_error_without_json_body():
    _eq(parse_http_error(429, b""), "HTTP 429 rate limited")
    _eq(parse_http_error(502, b"<html>Bad Gateway</html>\n"),
        "HTTP 502 error: <html>Bad Gateway</html>")
    _eq(parse_http_error(500, b"\xff\xfe"), "HTTP 500 hub processing error")
    _eq(parse_http_error("x", None), "HTTP x error")
    _eq(parse_http_error(400, b"[1]"), "HTTP 400 validation error: [1]")


def test_reply_error_is_a_value_error():
    e = raises(ReplyError, parse_acknowledgement, b"{")
    if not isinstance(e, ValueError) or not str(e):
        raise AssertionError("ReplyError must be a ValueError with a message")
