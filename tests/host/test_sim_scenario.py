"""Simulator scenarios: errors name fields, short forms expand, plans cycle, random is seeded."""
import json
import os

import pytest

from host_sim.sim import scenario
from host_sim.sim.scenario import ScenarioError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CARD = "04A1B2C3D4E5F6"


def _doc(**session):
    s = {"card": CARD}
    s.update(session)
    return {"chargers": [{"sessions": [s]}]}


def _err(doc):
    with pytest.raises(ScenarioError) as e:
        scenario.check(doc)
    return str(e.value)


@pytest.mark.parametrize("doc, field", [
    ({"chargers": []}, "chargers:"),
    ({"chargers": [{"sessions": [{}]}]}, "chargers[0].sessions[0].card: required"),
    (_doc(card="04A1"), "chargers[0].sessions[0].card: expected a card UID"),
    (_doc(card="04A1B2C3D4E5FZ"), "chargers[0].sessions[0].card:"),
    (_doc(idle_s=-1), "chargers[0].sessions[0].idle_s: expected a number"),
    (_doc(charge_s="long"), "chargers[0].sessions[0].charge_s:"),
    (_doc(end="explode"), "chargers[0].sessions[0].end: expected one of tap, unplug"),
    (_doc(ev={"max_w": 0}), "chargers[0].sessions[0].ev.max_w:"),
    (_doc(ev={"phases": 2}), "chargers[0].sessions[0].ev.phases: expected 1 or 3"),
    (_doc(ev={"soc": 1.5}), "chargers[0].sessions[0].ev.soc:"),
    (_doc(ev={"colour": "red"}), "chargers[0].sessions[0].ev.colour: unknown key"),
    (_doc(lane=9), "chargers[0].sessions[0].lane: expected an integer 0..3"),
    (_doc(steps=[{"tap": "start"}, {"wait": -5}]), "chargers[0].sessions[0].steps[1].wait:"),
    (_doc(steps=[{"tap": "start"}, {"dance": 1}]),
     "chargers[0].sessions[0].steps[1].dance: unknown step"),
    (_doc(steps=[{"tap": "begin"}]), "chargers[0].sessions[0].steps[0].tap: expected \"start\""),
    (_doc(steps=[{"tap": "start"}, {"meter": "melted"}]),
     "chargers[0].sessions[0].steps[1].meter: expected null or one of dead"),
    (_doc(steps=[{"tap": "start"}, {"wait": 1, "tap": "stop"}]),
     "chargers[0].sessions[0].steps[1]: expected an object with one key"),
    (_doc(steps=[{"tap": "stop"}]),
     "chargers[0].sessions[0].steps: expected a {\"tap\": \"start\"}"),
    (_doc(steps=[{"tap": "start"}], idle_s=3), "chargers[0].sessions[0].idle_s: not with steps"),
    (_doc(steps=[]), "chargers[0].sessions[0].steps: expected a list of 1..200 steps"),
    (dict(_doc(), charger={"evses": 9}), "charger.evses: expected an integer 1..4"),
    (dict(_doc(), charger={"meter": "sdm999"}), "charger.meter: expected one of"),
    (dict(_doc(), charger={"progress_s": 60}), "charger.progress_s: expected an integer 300.."),
    (dict(_doc(), cards=["xyz"]), "cards[0]: expected a card UID"),
    (dict(_doc(), hub=[{"at_s": 5}]), "hub[0]: expected one of refuse_s or fault"),
    (dict(_doc(), hub=[{"refuse_s": 5}]), "hub[0].at_s: expected a number"),
    (dict(_doc(), hub=[{"at_s": 5, "fault": {"kind": "meteor"}}]), "hub[0].fault.kind:"),
    (dict(_doc(), hub=[{"at_s": 5, "fault": {"kind": "5xx", "status": 200}}]),
     "hub[0].fault.status: expected 500..599"),
    (dict(_doc(), extra=1), "scenario.extra: unknown key"),
    (dict(_doc(), operator_id="DE-ABC"), "operator_id: expected an ISO OperatorID"),
    (dict(_doc(), operator_id="+49*536"), "operator_id: expected an ISO OperatorID"),
    (_doc(expect="maybe"), "chargers[0].sessions[0].expect: expected \"accepted\" or"),
    (_doc(expect_code="102"), "chargers[0].sessions[0].expect_code: only with"),
    (_doc(expect="refused", expect_code="000"), "chargers[0].sessions[0].expect_code: expected"),
    (_doc(expect="refused", expect_code=102), "chargers[0].sessions[0].expect_code: expected"),
])
def test_errors_name_the_field(doc, field):
    assert field in _err(doc)


def test_a_card_that_must_be_refused_is_not_one_the_embedded_hub_knows():
    doc = {"chargers": [{"sessions": [{"card": CARD}, {"card": "DEADBEEF", "lane": 0,
                                                         "expect": "refused"}]}]}
    s = scenario.check(doc)
    assert s["operator_id"] == "DE*SIM" and s["chargers"][0]["sessions"][1]["expect"] == "refused"
    assert scenario.cards(s) == [CARD]
    doc["cards"] = ["DEADBEEF"]  # listed: the hub knows it (and the expectation will miss)
    assert scenario.cards(scenario.check(doc)) == ["DEADBEEF", CARD]
    assert scenario.check(dict(doc, operator_id="DE*ABC"))["operator_id"] == "DE*ABC"


def test_not_json_says_so():
    with pytest.raises(ScenarioError, match="scenario: expected JSON"):
        scenario.load("{chargers: ")


def test_lanes_need_their_own_cards_and_evses():
    doc = {"charger": {"evses": 2}, "chargers": [{"sessions": [
        {"card": CARD}, {"card": CARD, "lane": 1}]}]}
    assert "chargers[0].sessions[1].card: 04A1B2C3D4E5F6 is already lane 0's card" in _err(doc)
    doc = {"charger": {"evses": 1}, "chargers": [{"sessions": [
        {"card": CARD}, {"card": "04B2C3D4E5F607", "lane": 1}]}]}
    assert "chargers[0].sessions: more lanes than charger.evses (1)" in _err(doc)


def test_short_form_expands_to_steps():
    s = scenario.check(_doc(idle_s=5, plug_s=7, charge_s=900, ev={"max_w": 3700}))
    steps = s["chargers"][0]["sessions"][0]["steps"]
    assert steps == [{"wait": 5}, {"tap": "start"}, {"wait": 7}, {"plug": {"max_w": 3700}},
                     {"wait": 900}, {"tap": "stop"}, {"wait": 5}, {"unplug": True}]
    ends = {e: [list(x)[0] for x in scenario.check(_doc(end=e))["chargers"][0]["sessions"][0][
        "steps"][5:]] for e in scenario.ENDS}
    assert ends["unplug"] == ["unplug", "wait", "tap"]
    assert ends["meter_fault"] == ["meter", "wait", "meter", "unplug"]
    assert scenario.check(_doc(card="04a1b2c3"))["chargers"][0]["sessions"][0]["card"] == \
        "04A1B2C3"


def test_plans_cycle_and_cards_are_collected():
    doc = {"cards": ["11223344"], "chargers": [
        {"sessions": [{"card": CARD}, {"card": CARD, "charge_s": 60}]},
        {"sessions": [{"card": "04B2C3D4E5F607"}]}]}
    s = scenario.check(doc)
    p = scenario.plan(s, 2, 5)  # charger 2 plays chargers[0]
    assert len(p) == 5 and p[1]["steps"][4] == {"wait": 60} and p[2] == p[0]
    assert len(scenario.plan(s, 1)) == 1
    assert scenario.cards(s) == ["11223344", CARD, "04B2C3D4E5F607"]
    with pytest.raises(ScenarioError, match="--sessions"):
        scenario.plan(s, 0, -1)


def test_random_fleet_is_deterministic_and_valid():
    a = scenario.random_fleet("7", 6, 4)
    assert a == scenario.random_fleet("7", 6, 4)
    assert a != scenario.random_fleet("8", 6, 4)
    assert len(a["chargers"]) == 6 and all(len(c["sessions"]) == 4 for c in a["chargers"])
    assert scenario.check(json.loads(json.dumps(a))) is not None  # its own output is a scenario
    assert a["hub"] and "refuse_s" in a["hub"][0]


def test_shipped_scenarios_load():
    d = os.path.join(ROOT, "host_sim", "scenarios")
    names = sorted(n for n in os.listdir(d) if n.endswith(".json"))
    assert "default.json" in names
    for n in names:
        with open(os.path.join(d, n)) as f:
            s = scenario.load(f.read())
        assert s["chargers"], n
