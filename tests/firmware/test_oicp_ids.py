"""OICP ID validators: literal valid and invalid vectors, including the spec's own bad examples."""
from check import raises, raises_naming
from cpagent.oicp.ids import (
    FieldError,
    check_cpo_session_id,
    check_datetime,
    check_evco_id,
    check_evse_id,
    check_kwh,
    check_operator_id,
    check_product_id,
    check_provider_id,
    check_session_id,
    check_str,
    check_uid,
    kwh,
)


def _all_ok(fn, values):
    for v in values:
        if fn(v) != v:
            raise AssertionError("%r not returned unchanged" % (v,))


def _all_bad(fn, values, field):
    for v in values:
        e = raises(FieldError, fn, v)
        if e.field != field or field not in str(e):
            raise AssertionError("%r: error %r does not name %s" % (v, str(e), field))


def test_operator_id():
    _all_ok(check_operator_id, ["DE*A36", "DEA36", "+49*536", "49*536", "de*abc", "DE*ABC"])
    _all_bad(check_operator_id, ["", "DE*AB", "DE**ABC", "D1*ABC", "DE*ABCD", "+4949*536",
                                 "+49*53", "+49-536", "DE*ABC ", " DE*ABC", "DE*AB\u00c4",
                                 None, 49536, b"DE*ABC"], "OperatorID")


def test_evse_id():
    _all_ok(check_evse_id, ["DE*AB7*E840*6487", "DEAB7E8406487", "+49*810*000*438",
                            "DE*XYZ*ETEST1", "de*abc*E1",
                            "DE*ABC*E" + "1" * 30, "+49*810*" + "1" * 32])
    _all_bad(check_evse_id, ["", "DE*ABC", "DE*ABC*", "DE*ABC*E", "DE*ABC*e1", "DE*ABC*X1",
                             "DE*ABC*E" + "1" * 31, "+49*810*" + "1" * 33, "+49*810",
                             "+49*810*A1", "DE*ABC*E1-2", "DE*ABC*E1\n", None, 7], "EvseID")


def test_evse_id_message_shows_the_expected_form():
    e = raises(FieldError, check_evse_id, "xx")
    if str(e) != "EvseID: expected an EvseID such as DE*ABC*E123456, got 'xx'":
        raise AssertionError(str(e))


def test_custom_field_name_is_named():
    e = raises_naming(FieldError, "evses[1].evse_id", check_evse_id, "nope", "evses[1].evse_id")
    if e.field != "evses[1].evse_id":
        raise AssertionError(e.field)


def test_long_bad_values_are_shortened_in_the_message():
    e = raises(FieldError, check_evse_id, "X" * 5000)
    if len(str(e)) > 120:
        raise AssertionError("message not capped: %d chars" % len(str(e)))


def test_session_id():
    _all_ok(check_session_id, ["b2688855-7f00-0002-6d8e-48d883f6abb6",
                               "F98EFBA4-02D8-4FA0-B810-9A9D50D2C527"])
    _all_bad(check_session_id, ["string", "", "b2688855-7f00-0002-6d8e-48d883f6abb",
                                "b2688855-7f00-0002-6d8e-48d883f6abb6-",
                                "b2688855_7f00_0002_6d8e_48d883f6abb6",
                                "b26888557f0000026d8e48d883f6abb6", None], "SessionID")


def test_uid_accepts_8_14_20_upper_hex():
    _all_ok(check_uid, ["1234ABCD", "7568290FFF765F", "0123456789ABCDEF0123"])


def test_uid_refuses_the_spec_examples_and_lower_case():
    # AFFH1768 (data types chapter: H is no hex digit) and 12345ABCD (code snippets: 9 chars).
    _all_bad(check_uid, ["AFFH1768", "12345ABCD", "1234abcd", "1234ABC", "1234ABCDE1",
                         "0123456789ABCDEF012", "", " 1234ABCD", None, 0x1234ABCD], "UID")


def test_provider_and_evco_ids():
    _all_ok(check_provider_id, ["DE8EO", "DE-8EO", "DE*8EO", "DE-DCB"])
    _all_bad(check_provider_id, ["DE|8EO", "DE--8EO", "DE8E", "+49*536", ""], "ProviderID")
    _all_ok(check_evco_id, ["DE-8EO-CAet5e4XY-3", "DE8EOCAet5e43X1", "DE*8EO*Aet5e4*3",
                            "DE-8EO-Aet5e4-3", "DE8EOAet5e43", "DE-DCB-C12345678-X"])
    _all_bad(check_evco_id, ["string", "DE-8EO-Aet5e4-Y", "DE-8EO-CAet5e4X-3", "DE|8EO|Aet5e4|3",
                             ""], "EvcoID")


def test_str_and_product_id():
    if check_str("abc", "Info", 3) != "abc" or check_str("", "Info", 3) != "":
        raise AssertionError("check_str refused a good value")
    raises_naming(FieldError, "Info", check_str, "abcd", "Info", 3)
    raises_naming(FieldError, "Info", check_str, "", "Info", 3, 1)
    raises_naming(FieldError, "Info", check_str, 3, "Info", 3)
    _all_ok(check_product_id, ["AC1", "AC 1", "Standard Price", "x" * 50])
    _all_bad(check_product_id, ["", "x" * 51, None], "PartnerProductID")
    _all_ok(check_cpo_session_id, ["c", "CPO 17/a", "x" * 250])
    _all_bad(check_cpo_session_id, ["", "x" * 251, None, 17], "CPOPartnerSessionID")


def _dt(v, deferred=True):
    return check_datetime(v, "ChargingStart", deferred)


def test_datetime_accepts_zones_and_fractions():
    for v in ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00+02:00", "2020-01-01T00:00:00-05:30",
              "2020-09-23T14:17:53.038Z", "2024-02-29T23:59:59.123456+14:00",
              "2099-12-31T23:59:59Z"]:
        if _dt(v) != v:
            raise AssertionError(v)


def test_datetime_refuses_bad_calendar_values_and_forms():
    for v in ["2023-02-29T12:00:00Z", "2100-02-29T12:00:00Z", "2024-04-31T12:00:00Z",
              "2024-13-01T12:00:00Z", "2024-00-01T12:00:00Z", "2024-05-00T12:00:00Z",
              "2024-05-01T24:00:00Z", "2024-05-01T12:60:00Z", "2024-05-01T12:00:60Z",
              "2024-05-01T12:00:00", "2024-05-01 12:00:00Z", "2024-05-01T12:00:00+0200",
              "2024-05-01T12:00:00+15:00", "2024-05-01T12:00:00+02:60", "2024-05-01T12:00:00.Z",
              "2024-05-01T12:00:00.1234567Z", "2024-05-01T12:00Z", "24-05-01T12:00:00Z",
              "2024-5-01T12:00:00Z", "2024-05-01T12:00:00z", "2024-05-01T12:00:00Z ",
              "2024-05-01T1a:00:00Z", "", None, 1714564800, "@", "@1", "@1:", "@:5", "@a:5",
              "@1:2:3", "@-1:5"]:
        raises_naming(FieldError, "ChargingStart", _dt, v)


def test_datetime_refuses_default_clock_epochs():
    # ESP32 boots at 2000-01-01, RP2 at 1970-01-01: never a valid OICP time.
    raises_naming(FieldError, "ChargingStart", _dt, "2000-01-01T00:00:05Z")
    raises_naming(FieldError, "ChargingStart", _dt, "1970-01-01T00:00:05Z")
    raises_naming(FieldError, "ChargingStart", _dt, "2019-12-31T23:59:59Z")


def test_datetime_deferred_token():
    if _dt("@3:123456") != "@3:123456" or _dt("@0:0") != "@0:0":
        raise AssertionError("deferred token refused")
    raises_naming(FieldError, "ChargingStart", _dt, "@3:123456", False)


def test_kwh_rounds_to_three_decimals_as_exact_text():
    if check_kwh(1.23456, "E") != "1.235" or check_kwh(0, "E") != "0.0":
        raise AssertionError("kWh not rounded")
    if check_kwh(12345, "E") != "12345.0" or check_kwh(0.5, "E") != "0.5":
        raise AssertionError("integer kWh not accepted")
    if check_kwh("20000.001", "E") != "20000.001":
        raise AssertionError("kWh text not returned unchanged")


def test_kwh_text_from_integer_wh_is_exact_where_a_float32_is_not():
    # 20,000,001 Wh in a float32 is 20000.0 kWh; a meter's total passes 10,000 kWh in a year.
    cases = ((0, "0.0"), (1, "0.001"), (10, "0.01"), (1500, "1.5"), (7000, "7.0"),
             (20000001, "20000.001"), (123456789012, "123456789.012"))
    for wh, text in cases:
        if kwh(wh) != text:
            raise AssertionError("%d Wh gave %r" % (wh, kwh(wh)))


def test_kwh_refuses_negative_nonfinite_and_non_numbers():
    for v in [-0.001, float("inf"), float("nan"), -float("inf"), True, False, "1", "-1.0", "1.",
              ".5", "1.2345", "1e3", "1,5", " 1.0", "0x1.0", "00.5", "007.5", 1e38, "", None, [1]]:
        raises_naming(FieldError, "MeterValueStart", check_kwh, v, "MeterValueStart")
