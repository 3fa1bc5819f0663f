"""Fuzz the kWh path: integer Wh to kWh text to the wire's JSON numbers, exact, whatever text."""
import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpagent.journal import _dumps
from cpagent.oicp import build as oicp
from cpagent.oicp.ids import FieldError, check_kwh, kwh

FUZZ = settings(max_examples=1500, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])
SID = "f98efba4-02d8-4fa0-b810-9a9d50d2c527"
EVSE = "DE*ABC*E1"
T0, T1 = "2026-01-01T10:00:00.000Z", "2026-01-01T11:00:00.000Z"
WH = st.integers(min_value=0, max_value=2 ** 64)
# Text a fault message may carry into ErrorAdditionalInfo: the kWh keys, quotes, backslashes.
TRICKS = st.lists(st.sampled_from(list('"\\:,[]{} .0123456789\u00fc\n') + [
    '"MeterValueStart":"', '"meterValues":[', '"ConsumedEnergy":"']), max_size=40).map("".join)


def _exact(text):
    return json.loads(text, parse_float=Decimal, parse_int=Decimal)


@FUZZ
@given(start=WH, used=WH, between=st.lists(WH, max_size=12))
def test_any_reading_goes_out_to_the_wh(start, used, between):
    _path, body = oicp.charge_detail_record(
        "DE*ABC", SID, EVSE, "04A1B2C3", T0, T1, T0, T1, kwh(used), meter_start=kwh(start),
        meter_end=kwh(start + used), meter_values=[kwh(w) for w in between])
    stored = json.loads(_dumps(body))  # as the journal keeps it and reads it back
    wire = _exact(oicp.encode(stored).decode())
    k = Decimal(1000)
    assert wire["MeterValueStart"] == start / k and wire["MeterValueEnd"] == (start + used) / k
    assert wire["ConsumedEnergy"] == wire["MeterValueEnd"] - wire["MeterValueStart"]
    assert wire["MeterValueInBetween"]["meterValues"] == [w / k for w in between[-10:]]


@FUZZ
@given(info=TRICKS, start=WH)
def test_a_text_field_that_looks_like_a_kwh_key_is_left_as_text(info, start):
    _path, body = oicp.notification_end("DE*ABC", SID, EVSE, T1, meter_start=kwh(start))
    body["ErrorAdditionalInfo"] = info  # where a meter's fault text goes
    wire = json.loads(oicp.encode(body).decode())
    assert wire["ErrorAdditionalInfo"] == info
    assert _exact(oicp.encode(body).decode())["MeterValueStart"] == Decimal(start) / 1000


@FUZZ
@given(text=st.text(max_size=30))
def test_a_kwh_text_from_flash_that_is_no_decimal_is_refused_by_name(text):
    body = {"Type": "End", "MeterValueEnd": text}
    try:
        check_kwh(text, "x")
    except FieldError:
        try:
            oicp.encode(body)
        except FieldError as e:
            assert e.field == "MeterValueEnd"
            return
        raise AssertionError("no decimal %r was sent" % text)
    assert json.loads(oicp.encode(body).decode())["MeterValueEnd"] == float(text)
