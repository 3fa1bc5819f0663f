"""Charger core: tap routing, admission control, and times fixed before anything is sent."""
import json

from chargerbox import CFG, T0, A, B, Box

from cpagent.oicp.replies import parse_authorization


def test_taps_go_to_free_evses_and_stop_their_own_session():
    b = Box()
    b.ch.tap(A)
    b.ch.tap(B)
    b.authorize_all()
    assert [s.uid for s in b.ch.evses] == [A, B]
    b.ch.tap("11223344")
    assert b.ch.shown[-1] == (None, "no free EVSE")
    b.ch.meter(1, 5000, 4000)
    b.ch.tap(B)  # B's card ends B's session, not A's
    assert b.ch.evses[1].state == "idle" and b.ch.evses[0].state == "authorized"
    assert [m.get("Type", "CDR") for m in b.sent()] == ["Start", "End", "CDR"]


def test_the_contactor_closes_only_for_an_authorized_session():
    b = Box()
    shut = lambda: [b.ch.contactor(i) for i in range(2)]  # noqa: E731
    assert shut() == [False, False]
    b.ch.tap(A)
    assert shut() == [False, False]  # asked, not yet answered
    b.authorize_all()
    assert shut() == [True, False]
    b.ch.plug(0, True)
    b.ch.meter(0, 100, 4000)
    assert shut() == [True, False]  # charging
    b.ch.tap(A)
    assert shut() == [False, False]  # stopped: open again

def test_full_journal_refuses_new_sessions_and_drops_nothing():
    b = Box(max_messages=8)
    b.ch.tap(A)
    b.authorize_all()
    b.ch.meter(0, 1000, 5000)  # Start journaled, link down: nothing delivered
    b.ch.tap(B)
    assert b.ch.shown[-1] == (1, "journal full: try later")
    assert b.ch.evses[1].state == "idle" and not b.ch.authorizations()
    b.ch.tap(A)
    assert len(b.pending()) == 3  # Start, End, CDR all kept


def test_times_before_the_wall_clock_wait_then_go_out_real():
    b = Box(known=False)
    b.ch.tap(A)
    b.authorize_all()
    b.now += 5000
    b.ch.meter(0, 1000, 5000)
    b.settle()
    assert b.ch.next_message() is None  # the Start's ChargingStart is not known yet
    b.now += 1000
    b.clock.set_unix(T0)
    start = b.sent()[0]
    # Set at 6 s since boot to 04:00:00; the events were at 0 s and 5 s.
    assert start["SessionStart"] == "2026-11-22T03:59:54.000Z"
    assert start["ChargingStart"] == "2026-11-22T03:59:59.000Z"


def test_times_from_a_boot_that_never_knew_the_clock_are_bounded_by_now():
    b = Box(known=False)
    b.ch.tap(A)
    b.authorize_all()
    b.ch.meter(0, 1000, 5000)
    again = Box(known=True, fs=b.fs.reboot())  # the next boot learns the time at once
    start = again.sent()[0]
    assert start["ChargingStart"][:4] == "2026"
    assert any("approximate" in t for _i, t in again.ch.shown)
    for k, v in start.items():
        assert not (isinstance(v, str) and (v[:4] in ("1970", "2000") or v[:1] == "@")), k


def test_held_sessions_wait_and_the_others_go_on():
    b = Box()
    b.ch.tap(A)
    b.ch.tap(B)
    b.authorize_all()
    b.ch.meter(0, 1000, 5000)
    b.ch.meter(1, 2000, 5000)
    b.settle()
    a = b.ch.next_message()
    other = b.ch.next_message([a[3]])  # a[3]: the token of its session
    assert other[3] != a[3] and other[2]["Type"] == "Start"
    assert b.ch.next_message([a[3], other[3]]) is None
    assert b.ch.retry(a[0]) == 1 and b.ch.retry(a[0]) == 2


def test_refused_messages_are_dead_letters_with_the_time_and_fill_up_to_refusing_taps():
    b = Box()
    for n in range(8):
        b.ch.tap(A)
        b.authorize_all()
        b.ch.meter(0, 1000 + n, 5000)
        b.ch.tap(A)  # Start, End, CDR of session n
        b.settle()
        while True:
            m = b.ch.next_message()
            if m is None:
                break
            if m[2].get("Type") == "End":
                b.ch.failed(m[0], "HTTP 400 validation error")
            else:
                b.ch.delivered(m[0])
    d = [json.loads(x) for x in b.journal.dead_lines()]
    assert len(d) == 8 and d[0]["time"] == "2026-11-22T04:00:00.000Z"
    assert d[0]["body"]["Type"] == "End" and d[0]["attempts"] == 1
    b.ch.tap(A)
    assert b.ch.shown[-1] == (0, "dead letters full: export, fix and requeue them")
    assert b.ch.evses[0].state == "idle" and not b.ch.authorizations()
    b.journal.requeue()
    assert [m.get("Type") for m in b.sent()] == ["End"] * 8
    b.ch.tap(A)
    assert b.ch.evses[0].state == "authorizing"


def _answer(sid):
    return parse_authorization('{"AuthorizationStatus":"Authorized","SessionID":"%s",'
                               '"StatusCode":{"Code":"000"}}' % sid)


def test_two_chargers_back_from_one_power_cut_never_share_a_cpo_partner_session_id():
    one, two = Box(), Box(cfg=dict(CFG, charger_id="cp-2"))
    assert one.journal.boot == two.journal.boot and one.clock.ms() == two.clock.ms()
    for b in (one, two):
        b.ch.tap(A)
    ids = [body["CPOPartnerSessionID"] for b in (one, two) for _i, _p, body in
           b.ch.authorizations()]
    assert ids[0] != ids[1] and ids[0].startswith("cp-1-") and ids[1].startswith("cp-2-"), ids


def test_an_authorize_start_whose_answer_a_restart_lost_is_resent_and_closed_with_0_kwh():
    b = Box()
    b.ch.tap(A)
    ((i, path, body),) = b.ch.authorizations()  # sent; the power goes before the answer
    cpo = body["CPOPartnerSessionID"]
    again = Box(fs=b.fs.reboot())
    assert again.ch.evses[0].state == "idle"
    assert again.ch.orphans() == [("a:" + cpo, path, body)]  # the same body, re-sent
    assert again.ch.orphans() == []  # not again before a minute
    again.ch.resolved("a:" + cpo, "retry", "hub unreachable")  # no answer: kept
    again.now += 60000
    ((key, _p, _b),) = again.ch.orphans()
    sid = "0000beef-0000-0000-0000-000000000000"
    again.ch.resolved(key, "ok", _answer(sid))
    cdr = again.sent()
    assert len(cdr) == 1 and cdr[0]["SessionID"] == sid and cdr[0]["ConsumedEnergy"] == 0.0
    assert cdr[0]["CPOPartnerSessionID"] == cpo and cdr[0]["EvseID"] == body["EvseID"]
    assert again.journal.sessions() == {}
    assert Box(fs=again.fs.reboot()).ch.orphans() == []


def test_an_answered_or_refused_authorize_start_leaves_no_orphan():
    b = Box()
    b.ch.tap(A)
    b.ch.tap(B)
    (first, second) = b.ch.authorizations()
    b.ch.authorized(first[0], _answer("0000beef-0000-0000-0000-000000000001"))
    b.ch.authorize_failed(second[0], "102 RFID card unknown")
    assert list(b.journal.sessions()) == ["0000beef-0000-0000-0000-000000000001"]
    assert Box(fs=b.fs.reboot()).ch.orphans() == []
    # A restart after the session was journaled, before its authorize record was closed.
    c = Box()
    c.ch.tap(A)
    ((i, _p, body),) = c.ch.authorizations()
    c.ch._asking.clear()  # as if the power went right after the session's own record
    c.ch.authorized(i, _answer("0000beef-0000-0000-0000-000000000002"))
    assert len(c.journal.sessions()) == 2
    d = Box(fs=c.fs.reboot())
    assert d.ch.orphans() == [] and d.ch.evses[0].state == "authorized"
    assert list(d.journal.sessions()) == ["0000beef-0000-0000-0000-000000000002"]


def test_a_refused_resend_closes_the_orphan_without_a_cdr():
    b = Box()
    b.ch.tap(A)
    b.ch.authorizations()
    again = Box(fs=b.fs.reboot())
    ((key, _p, _b),) = again.ch.orphans()
    again.ch.resolved(key, "fail", "102 RFID card unknown")
    assert again.sent() == [] and again.journal.sessions() == {}


EVCO = "DE-8EO-CAB123456-7"
HSID = "0ac1f1b2-1111-2222-3333-444455556666"
E1, E2 = CFG["evses"][0]["evse_id"], CFG["evses"][1]["evse_id"]


def start_cmd(sid=HSID, evse=E1, deadline=T0 + 30, **kw):
    f = {"cmd": "remote_start", "session_id": sid, "evse_id": evse, "evco_id": EVCO,
         "provider_id": "DE-8EO", "deadline": deadline, "cpo_session_id": None,
         "product_id": None}
    f.update(kw)
    return f


def stop_cmd(sid=HSID, evse=E1, deadline=T0 + 30):
    return {"cmd": "remote_stop", "session_id": sid, "evse_id": evse, "provider_id": "DE-8EO",
            "deadline": deadline}


def test_a_remote_start_is_journaled_before_its_yes_and_needs_no_authorize_start():
    b = Box()
    assert b.ch.remote(start_cmd()) == ("000", "started: waiting for the EV")
    assert not b.ch.authorizations()  # no AuthorizeStart for it
    snap = Box(fs=b.fs.reboot()).journal.sessions()[HSID]  # on flash before the answer
    assert (snap["ev"], snap["pv"], snap["p"]) == (EVCO, "DE-8EO", "authorized")
    b.ch.meter(0, 1000, 5000)
    b.ch.remote(stop_cmd())
    sent = b.sent()
    assert [m.get("Type", "CDR") for m in sent] == ["Start", "End", "CDR"]
    for m in sent:
        assert m["SessionID"] == HSID
        assert m["Identification"] == {"RemoteIdentification": {"EvcoID": EVCO}}


def test_remote_commands_get_the_spec_codes_and_a_repeat_gets_the_same_answer():
    b = Box()
    assert b.ch.remote(start_cmd(evse="DE*ABC*E9"))[0] == "603"
    assert b.ch.remote(start_cmd()) == ("000", "started: waiting for the EV")
    assert b.ch.remote(start_cmd()) == ("000", "started: waiting for the EV")  # a repeat
    assert [s.session_id for s in b.ch.evses].count(HSID) == 1
    other = "0ac1f1b2-1111-2222-3333-444455557777"
    assert b.ch.remote(start_cmd(sid=other)) == ("602", "EVSE in use")
    assert b.ch.remote(start_cmd(sid=other, evse=E2, deadline=T0 - 1))[0] == "501"
    assert b.ch.evses[1].state == "idle"  # past its deadline: refused, not started late
    b.ch.fault(1, False, "meter 2: no valid reading in 2 polls")
    assert b.ch.remote(start_cmd(sid="0ac1f1b2-1111-2222-3333-444455558888", evse=E2))[0] \
        == "700"
    assert b.ch.remote(stop_cmd(sid=other))[0] == "400"
    assert b.ch.remote(stop_cmd(evse=E2))[0] == "602"  # not the session this EVSE runs
    # a stop past its deadline is still carried out
    assert b.ch.remote(stop_cmd(deadline=T0 - 60)) == ("000", "stopped")
    assert b.ch.evses[0].state == "idle"
    assert b.ch.remote(stop_cmd()) == ("000", "stopped")  # a repeat: the same answer
    assert b.ch.remote(start_cmd()) == ("000", "started: waiting for the EV")  # no new one
    assert b.ch.evses[0].state == "idle"
    assert [m.get("Type", "CDR") for m in b.sent()] == ["CDR"]  # one 0 kWh record


def test_a_remote_start_without_the_wall_time_is_refused():
    b = Box(known=False)
    assert b.ch.remote(start_cmd())[0] == "501" and b.ch.evses[0].state == "idle"


def test_a_remote_session_whose_ev_never_comes_ends_with_an_error_and_a_0_kwh_cdr():
    b = Box()
    b.ch.remote(start_cmd())
    b.now += 600000  # timing.ev_wait_s
    b.ch.tick()
    sent = b.sent()
    assert [m.get("Type", "CDR") for m in sent] == ["Error", "CDR"]
    assert sent[1]["ConsumedEnergy"] == 0.0 and b.ch.evses[0].state == "idle"


def test_another_card_on_a_live_session_asks_authorize_stop_unjournaled():
    b = Box()
    b.ch.tap(A)
    b.authorize_all()
    b.ch.meter(0, 1000, 5000)
    b.ch.tap(B, evse=0)  # not the starting card, on EVSE 1
    ((i, path, body),) = b.ch.authorizations()
    assert i == 0 and path.endswith("/authorize/stop") and "CPOPartnerSessionID" not in body
    assert [k for k in b.journal.sessions() if k[:2] == "a:"] == []  # not journaled
    b.ch.authorized(i, parse_authorization('{"AuthorizationStatus":"NotAuthorized",'
                                           '"StatusCode":{"Code":"102"}}'))
    assert b.ch.evses[0].state == "charging"  # refused: it runs on
    b.ch.tap(B)  # one reader: the only live session is the one it can mean (EVSE 2 is free)
    ((i, path, body),) = b.ch.authorizations()
    assert path.endswith("/authorize/start") and i == 1  # a free EVSE: B starts there
    b.ch.authorize_failed(i, "102")
    b.ch.remote(start_cmd(evse=E2))  # now both are busy
    b.ch.tap(B)
    assert b.ch.shown[-1] == (None, "no free EVSE")  # two live sessions: which one?
    b.ch.tap(B, evse=0)
    ((i, path, body),) = b.ch.authorizations()
    b.ch.authorized(i, _answer(b.ch.evses[0].session_id))
    assert b.ch.evses[0].state == "idle"
    assert [m.get("Type", "CDR") for m in b.sent()][-2:] == ["End", "CDR"]


def test_each_evse_reports_its_status_latest_wins_and_a_refused_one_blocks_nothing():
    b = Box()
    assert [m[3] for m in b.journal.pending()] == [E1.encode() + b" Available",
                                                    E2.encode() + b" Available"]
    b.ch.tap(A)
    b.authorize_all()
    b.ch.fault(1, False, "meter 2: frozen")
    # one Status per EVSE pending at most: the latest
    assert [m[3] for m in b.journal.pending()] == [E1.encode() + b" Occupied",
                                                    E2.encode() + b" OutOfService"]
    m = b.ch.next_message()
    assert m[1].endswith("/status-records") and m[2] == {
        "ActionType": "update", "OperatorEvseStatus": {"OperatorID": "DE*ABC",
                                                       "EvseStatusRecord": [
                                                           {"EvseID": E1,
                                                            "EvseStatus": "Occupied"}]}}
    assert b.ch.failed(m[0], "018 inconsistent EvseID") is False  # dropped, no dead letter
    assert b.journal.dead == [] and b.journal.stats["refused_status"] == 1
    b.ch.meter(0, 1000, 5000)
    b.ch.tap(A)
    assert [m.get("Type", "CDR") for m in b.sent()] == ["Start", "End", "CDR"]
    assert [r["OperatorEvseStatus"]["EvseStatusRecord"][0]["EvseStatus"]
            for r in b.statuses] == ["OutOfService", "Available"]
    n = len(b.journal.pending())
    b.ch.push_status()  # a reconnect: every EVSE's status again
    assert len(b.journal.pending()) == n + 2
    c = Box(fs=b.fs.reboot())  # and at boot
    assert [m[1] for m in c.journal.pending()] == ["Status", "Status"]


def test_the_boot_only_code_is_dropped_after_boot():
    # The journal's replay and the sessions' resume run once per boot: freed right after.
    import sys

    b = Box()
    b.ch.tap(A)
    b.authorize_all()
    b2 = Box(fs=b.fs.reboot())
    assert b2.ch.evses[0].state == "authorized"  # resumed from the journal
    assert "cpagent.replay" not in sys.modules and "cpagent.resume" not in sys.modules
