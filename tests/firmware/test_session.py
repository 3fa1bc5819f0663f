"""Session state machine: every path from a tap to idle, with a fake clock (both runtimes)."""
from sessionrig import EVSE, SID, T0, UID, charging, make, ok_reply

from check import raises_naming
from cpagent.clock import unix_from_iso
from cpagent.oicp.replies import parse_authorization
from cpagent.resume import restore
from cpagent.session import AUTHORIZED, AUTHORIZING, CHARGING, IDLE, PARKED


def kinds(effects):
    return [e[1] if e[0] == "journal" else e[0] for e in effects]


def body_of(effects, kind):
    for e in effects:
        if e[0] == "journal" and e[1] == kind:
            return e[3]
    raise AssertionError("no %s in %r" % (kind, kinds(effects)))


def test_tap_asks_the_hub_and_waits():
    s, _ = make()
    eff = s.tap(UID)
    assert s.state == AUTHORIZING
    assert eff[0][0] == "authorize"
    assert eff[0][1] == "/api/oicp/charging/v21/operators/DE*ABC/authorize/start"
    body = eff[0][2]
    assert body["EvseID"] == EVSE
    assert body["Identification"]["RFIDMifareFamilyIdentification"]["UID"] == UID
    assert kinds(s.tap("11223344")) == ["show"]  # busy: a second card is not a second request


def test_authorized_then_power_journals_start_with_meter_start():
    s, t, eff = charging()
    assert kinds(eff) == ["Start", "show"]
    b = body_of(eff, "Start")
    assert b["Type"] == "Start" and b["SessionID"] == SID and b["MeterValueStart"] == "10.0"
    assert b["ChargingStart"].startswith("2026-11-22T")
    snap = eff[0][4]
    assert snap["p"] == CHARGING and snap["sid"] == SID
    assert snap["ms"] == 10000 and type(snap["ms"]) is int


def test_plug_starts_without_power_reading():
    s, _ = make()
    s.tap(UID)
    s.authorized(ok_reply())
    assert kinds(s.plug(True)) == ["Start", "show"]


def test_not_authorized_ends_with_reason():
    s, _ = make()
    s.tap(UID)
    r = parse_authorization('{"AuthorizationStatus":"NotAuthorized",'
                            '"StatusCode":{"Code":"102","Description":"invalid UID"}}')
    eff = s.authorized(r)
    assert s.state == IDLE
    assert eff[0][0] == "show" and "102" in eff[0][1]


def test_acknowledgement_instead_of_authorization_ends_cleanly():
    s, _ = make()
    s.tap(UID)
    eff = s.authorized(parse_authorization('{"Result":false,"StatusCode":{"Code":"300"}}'))
    assert s.state == IDLE and "300" in eff[0][1]


def test_hub_error_and_timeout_end_cleanly():
    s, t = make(authorize_timeout_s=15)
    s.tap(UID)
    assert s.authorize_failed("connection refused")[0][1].endswith("connection refused")
    assert s.state == IDLE
    s.tap(UID)
    t.t += 14999
    assert s.tick() == []
    t.t += 1
    eff = s.tick()
    assert kinds(eff) == ["cancel", "show"] and s.state == IDLE
    assert s.authorized(ok_reply()) == []  # the late answer changes nothing


def test_progress_never_sooner_than_interval():
    s, t, _ = charging()
    t.t += 299999
    assert s.meter(11000, 3700) == []
    t.t += 1
    eff = s.meter(11500, 3700)
    b = body_of(eff, "Progress")
    assert b["ConsumedEnergyProgress"] == "1.5"
    assert b["ChargingDuration"] == 300000
    assert b["MeterValueInBetween"] == {"meterValues": ["11.5"]}
    t.t += 100000
    assert s.meter(12000, 3700) == []  # the interval restarts at each Progress


def test_progress_waits_for_its_stamp_when_a_resync_held_the_clock_back():
    s, t, eff = charging()
    start = body_of(eff, "Start")["ChargingStart"]
    t.t += 100000
    s.clock.set_unix(T0 + 99)  # an RTC in whole seconds: the anchor moves back by 1 s
    t.t += 200000
    assert s.meter(11000, 3700) == []  # 300 s of ticks, but the stamps only 299 s apart
    t.t += 999
    assert s.meter(11000, 3700) == []
    t.t += 1
    b = body_of(s.meter(11500, 3700), "Progress")
    assert unix_from_iso(b["EventOccurred"]) - unix_from_iso(start) == 300
    t.t += 300000  # the next one is due by both clocks again
    assert kinds(s.meter(12000, 3700)) == ["Progress"]


def test_progress_interval_below_five_minutes_is_refused():
    raises_naming(ValueError, "progress_s", make, progress_s=299)
    s, t, _ = charging(progress_s=600)
    t.t += 300000
    assert s.meter(11000, 3700) == []


def test_meter_values_in_between_are_capped():
    s, t, _ = charging()
    for i in range(15):
        t.t += 300000
        eff = s.meter(11000 + 1000 * i, 3700)
    vals = body_of(eff, "Progress")["MeterValueInBetween"]["meterValues"]
    assert len(vals) == 10 and vals[-1] == "25.0" and vals[0] == "16.0"


def test_second_tap_stops_with_end_and_cdr():
    s, t, _ = charging()
    t.t += 60000
    s.meter(12250, 3700)
    eff = s.tap(UID)
    assert kinds(eff) == ["End", "CDR", "show"]
    end = body_of(eff, "End")
    assert end["MeterValueStart"] == "10.0" and end["MeterValueEnd"] == "12.25"
    assert end["ConsumedEnergy"] == "2.25"
    cdr = body_of(eff, "CDR")
    assert cdr["ConsumedEnergy"] == "2.25" and cdr["SessionID"] == SID
    assert cdr["ChargingEnd"] == end["ChargingEnd"]
    assert eff[1][4] is None  # the CDR closes the session snapshot
    assert s.state == IDLE


def test_stop_identification_from_hub_stops_too():
    s, _ = make()
    s.tap(UID)
    s.authorized(ok_reply(stop=("A1B2C3D4",)))
    s.meter(1000, 5000)
    assert kinds(s.tap("A1B2C3D4")) == ["End", "CDR", "show"]


def not_authorized():
    return parse_authorization('{"AuthorizationStatus":"NotAuthorized",'
                               '"StatusCode":{"Code":"102","Description":"no"}}')


def test_another_card_asks_authorize_stop_and_only_an_authorized_one_stops():
    s, t, _ = charging()
    eff = s.tap("DEADBEEF")
    assert kinds(eff) == ["authorize", "show"]
    path, body = eff[0][1], eff[0][2]
    assert path.endswith("/authorize/stop") and body["SessionID"] == SID
    assert body["Identification"] == {"RFIDMifareFamilyIdentification": {"UID": "DEADBEEF"}}
    assert s.tap("CAFEBABE") == [("show", "busy")]  # one AuthorizeStop at a time
    eff = s.authorized(not_authorized())
    assert s.state == CHARGING and eff == [("show", "not stopped: 102 no")]
    s.tap("DEADBEEF")
    assert s.authorize_failed("hub unreachable") == [("show", "not stopped: hub unreachable")]
    assert s.state == CHARGING
    s.tap("DEADBEEF")
    t.t += 15000  # the authorize timeout: the question is dropped, the session runs on
    assert s.tick() == [("cancel",), ("show", "stop check timed out")]
    s.tap("DEADBEEF")
    assert kinds(s.authorized(ok_reply())) == ["End", "CDR", "show"] and s.state == IDLE


EVCO = "DE-8EO-CAB123456-7"
HSID = "0ac1f1b2-1111-2222-3333-444455556666"
REMOTE = {"RemoteIdentification": {"EvcoID": EVCO}}


def test_a_remote_start_charges_with_the_evco_id_in_every_message():
    s, t = make()
    eff = s.remote_start(HSID, EVCO, "DE-8EO", "cpo-7", "AC_1")
    assert kinds(eff) == ["save", "show"] and s.state == AUTHORIZED
    snap = eff[0][1]
    assert (snap["sid"], snap["ev"], snap["pv"], snap["cpo"], snap["pp"], snap["uid"]) == (
        HSID, EVCO, "DE-8EO", "cpo-7", "AC_1", None)
    start = body_of(s.meter(10000, 3700), "Start")
    t.t += 300000
    prog = body_of(s.meter(11000, 3700), "Progress")
    stop = s.remote_stop()
    for b in (start, prog, body_of(stop, "End"), body_of(stop, "CDR")):
        assert b["Identification"] == REMOTE and b["SessionID"] == HSID, b
        assert b["CPOPartnerSessionID"] == "cpo-7" and b["PartnerProductID"] == "AC_1", b
    assert s.state == IDLE and s.remote_start(HSID, EVCO, "DE-8EO") is not None


def test_a_remote_start_whose_ev_never_comes_ends_with_an_error_and_a_0_kwh_cdr():
    s, t = make(ev_wait_s=120)
    s.remote_start(HSID, EVCO, "DE-8EO")
    t.t += 120000
    eff = s.tick()
    assert kinds(eff) == ["Error", "CDR", "show"] and s.state == IDLE
    err = body_of(eff, "Error")
    assert err["ErrorType"] == "ConnectorError" and err["Identification"] == REMOTE
    assert body_of(eff, "CDR")["ConsumedEnergy"] == "0.0"


def test_a_remote_session_survives_a_restart_with_its_evco_id():
    s, t = make()
    snap = s.remote_start(HSID, EVCO, "DE-8EO")[0][1]
    s2, _ = make()
    restore(s2, snap, 5000)
    assert (s2.state, s2.evco, s2.provider, s2.product) == (AUTHORIZED, EVCO, "DE-8EO", None)
    assert body_of(s2.meter(5000, 3700), "Start")["Identification"] == REMOTE
    # a card on a remote session: only the hub can let it stop (AuthorizeStop)
    assert kinds(s2.tap(UID)) == ["authorize", "show"]


def test_unplug_stops_and_ev_timeout_closes_with_zero_kwh_cdr():
    s, t, _ = charging()
    assert kinds(s.plug(False)) == ["End", "CDR", "show"]
    s2, t2 = make(ev_wait_s=120)
    s2.tap(UID)
    s2.authorized(ok_reply())
    t2.t += 120000
    eff = s2.tick()
    assert kinds(eff) == ["CDR", "show"]
    cdr = body_of(eff, "CDR")
    assert cdr["ConsumedEnergy"] == "0.0" and "MeterValueStart" not in cdr


def test_faults_journal_error_with_openapi_spelling():
    s, _, _ = charging()
    eff = s.fault(True, "plug locked")
    assert kinds(eff) == ["Error", "End", "CDR", "show"]
    assert body_of(eff, "Error")["ErrorType"] == "ConnectorError"
    s2, _, _ = charging()
    assert body_of(s2.fault(False, "meter silent"), "Error")["ErrorType"] == "CriticalError"
    s3, _ = make()
    assert kinds(s3.fault(False, "meter silent")) == ["show"]  # no session, no notification


def test_stamps_before_wall_clock_are_tokens():
    s, t, eff = charging(known=False)
    cs = body_of(eff, "Start")["ChargingStart"]
    assert cs[0] == "@"
    s.clock.set_unix(T0)
    assert s.clock.resolve(cs).startswith("2026-11-22T")


def test_restore_charging_resumes_from_cumulative_register():
    s, t, eff = charging()
    snap = eff[0][4]
    s2, t2 = make()
    assert kinds(restore(s2, snap, 14000)) == ["show"]
    assert s2.state == CHARGING
    t2.t += 300000
    b = body_of(s2.meter(14500, 3700), "Progress")
    assert b["ConsumedEnergyProgress"] == "4.5" and b["MeterValueStart"] == "10.0"
    assert kinds(s2.tap(UID)) == ["End", "CDR", "show"]


def test_restore_finishes_an_interrupted_stop():
    s, t, _ = charging()
    s.meter(13000, 0)
    eff = s.tap(UID)
    stopping = eff[0][4]  # snapshot journaled with the End
    s2, _ = make()
    eff2 = restore(s2, stopping, 99000)
    assert kinds(eff2) == ["CDR", "show"] and s2.state == IDLE
    cdr = body_of(eff2, "CDR")
    assert cdr["ConsumedEnergy"] == "3.0" and cdr["MeterValueEnd"] == "13.0"


def test_restore_authorized_waits_for_ev_again():
    s, _ = make()
    s.tap(UID)
    eff = s.authorized(ok_reply())
    s2, t2 = make()
    restore(s2, eff[0][1], None)
    assert s2.state == AUTHORIZED
    assert kinds(s2.meter(1000, 4000)) == ["Start", "show"]


def test_restore_after_fault_closes_with_values_from_the_fault():
    s, t, _ = charging()
    s.meter(12000, 3700)
    t.t += 1000
    eff = s.fault(False, "meter silent")
    faulted = eff[0][4]  # the snapshot journaled with the Error
    s2, t2 = make()
    t2.t += 3600000  # the reboot comes an hour later, and the register has moved on
    eff2 = restore(s2, faulted, 20000)
    assert kinds(eff2) == ["End", "CDR", "show"]
    end = body_of(eff2, "End")
    assert end["MeterValueEnd"] == "12.0" and end["ConsumedEnergy"] == "2.0"
    assert end["ChargingEnd"] == faulted["fe"]


def parked(**kw):
    """Charging from 10 kWh, then power at 20 W from 14 kWh on: End after the hold time."""
    kw.setdefault("stop_hold_s", 120)
    s, t, _ = charging(**kw)
    t.t += 60000
    assert s.meter(14000, 20) == []  # flow stopped here (ChargingEnd)
    stopped_at = s.clock.stamp()
    t.t += 60000
    assert s.meter(14001, 30) == []  # still within the hold time
    t.t += 60000
    eff = s.meter(14002, 10)
    assert s.state == PARKED and kinds(eff) == ["End", "show"], kinds(eff)
    return s, t, eff, stopped_at


def test_charging_ends_when_power_stays_low_and_the_session_at_unplug():
    s, t, eff, stopped_at = parked()
    end = body_of(eff, "End")
    assert end["ChargingEnd"] == stopped_at and "SessionEnd" not in end
    assert end["MeterValueEnd"] == "14.0" and end["ConsumedEnergy"] == "4.0"
    assert eff[0][4]["p"] == PARKED and eff[0][4]["ce"] == stopped_at
    t.t += 7 * 60000  # parked: no Progress, no second End
    assert s.meter(14005, 5) == []
    t.t += 600000
    eff = s.plug(False)
    assert kinds(eff) == ["CDR", "show"] and s.state == IDLE
    cdr = body_of(eff, "CDR")
    assert cdr["ChargingEnd"] == stopped_at < cdr["SessionEnd"] == s.clock.stamp()
    assert cdr["MeterValueEnd"] == "14.005" and cdr["ConsumedEnergy"] == "4.005"  # what it drew


def test_a_dip_shorter_than_the_hold_time_is_not_the_end():
    s, t, _ = charging(stop_hold_s=120)
    for w in (0, 10, 3700, 0, 20):
        t.t += 100000
        eff = s.meter(11000, w)
        assert "End" not in kinds(eff) and s.state == CHARGING, (w, kinds(eff))


def test_a_parked_ev_that_draws_again_moves_charging_end_to_its_next_stop():
    s, t, _, first = parked()
    t.t += 60000
    assert kinds(s.meter(14100, 60)) == []  # above stop, below start: no restart
    t.t += 60000
    eff = s.meter(14200, 3700)
    assert kinds(eff) == ["save", "show"] and s.charging_end is None
    assert eff[0][1]["p"] == PARKED and "ce" not in eff[0][1]
    t.t += 60000
    s.meter(15000, 0)
    second = s.clock.stamp()
    t.t += 120000
    eff = s.meter(15000, 0)
    assert kinds(eff) == ["save"] and eff[0][1]["ce"] == second != first
    cdr = body_of(s.tap(UID), "CDR")
    assert cdr["ChargingEnd"] == second and cdr["ConsumedEnergy"] == "5.0"


def test_restore_parked_closes_with_the_cdr_only():
    s, t, eff, stopped_at = parked()
    s2, t2 = make()
    assert kinds(restore(s2, eff[0][4], 14010)) == ["show"] and s2.state == PARKED
    eff2 = s2.tap(UID)
    assert kinds(eff2) == ["CDR", "show"]
    cdr = body_of(eff2, "CDR")
    assert cdr["ChargingEnd"] == stopped_at and cdr["MeterValueEnd"] == "14.01"


def test_a_fault_while_parked_sends_error_and_cdr_but_no_second_end():
    s, t, _, stopped_at = parked()
    eff = s.fault(False, "meter silent")
    assert kinds(eff) == ["Error", "CDR", "show"]
    assert body_of(eff, "CDR")["ChargingEnd"] == stopped_at
    s2, _ = make()
    eff2 = restore(s2, eff[0][4], None)  # the cut came after the Error, before the CDR
    assert kinds(eff2) == ["CDR", "show"] and s2.state == IDLE
    cdr = body_of(eff2, "CDR")
    assert cdr["ChargingEnd"] == stopped_at and cdr["MeterValueEnd"] == "14.002"


def test_the_reading_is_journaled_every_save_wh_between_messages():
    s, t, _ = charging(save_wh=500)
    assert s.meter(10400, 3700) == []
    eff = s.meter(10500, 3700)
    assert kinds(eff) == ["save"] and eff[0][1]["w"] == 10500
    assert s.meter(10999, 3700) == []
    assert kinds(s.meter(11000, 3700)) == ["save"]
    t.t += 300000
    assert kinds(s.meter(11200, 3700)) == ["Progress"]  # carries the reading too
    assert s.meter(11600, 3700) == []


def test_a_restart_with_a_dead_meter_bills_the_latest_journaled_reading():
    s, t, _ = charging(save_wh=500)
    t.t += 300000
    prog = s.meter(12000, 3700)  # Progress reported 12 kWh
    saved = s.meter(12600, 3700)  # then a saved reading
    for snap, last, used in ((prog[0][4], "12.0", "2.0"), (saved[0][1], "12.6", "2.6")):
        s2, _ = make(save_wh=500)
        restore(s2, snap, None)  # the meter is dead at boot
        eff = s2.tap(UID)
        end, cdr = body_of(eff, "End"), body_of(eff, "CDR")
        assert end["MeterValueEnd"] == cdr["MeterValueEnd"] == last, (end, cdr)
        assert cdr["ConsumedEnergy"] == used
    # A meter that restarted its count below what was reported bills the reported value.
    s3, _ = make()
    restore(s3, prog[0][4], 500)
    assert body_of(s3.tap(UID), "CDR")["MeterValueEnd"] == "12.0"


def test_a_meter_past_20000_kwh_goes_out_to_the_wh_through_the_journal():
    # ESP32 and Pico W floats are single precision, 7 digits: 20000.001 kWh as a float would go
    # out as 20000.0, and MeterValueEnd - MeterValueStart would not be ConsumedEnergy.
    from faultfs import FaultFs

    from cpagent.journal import Journal
    from cpagent.oicp.build import encode

    s, t = make()
    s.tap(UID)
    s.authorized(ok_reply())
    s.meter(20000001, 0)
    eff = s.meter(20000001, 3700)
    t.t += 300000
    eff += s.meter(20012346, 3700)
    eff += s.tap(UID)
    j = Journal(FaultFs(), "/j", 20).load()
    for e in eff:
        if e[0] == "journal":
            j.add(SID, e[1], e[2], e[3])
    wire = [encode(m[3]).decode() for m in j.pending()]  # read back from flash, as sent
    for i, part in ((0, '"MeterValueStart":20000.001'), (1, '"ConsumedEnergyProgress":12.345'),
                    (1, '"meterValues":[20012.346]'), (2, '"MeterValueEnd":20012.346'),
                    (2, '"ConsumedEnergy":12.345'), (3, '"MeterValueStart":20000.001')):
        if not (part + "," in wire[i] or part + "}" in wire[i]):  # the whole number
            raise AssertionError("%s not in %s" % (part, wire[i]))
