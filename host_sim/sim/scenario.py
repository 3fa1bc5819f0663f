"""Simulator scenarios: the JSON format (docs/sim.md), checks, per-charger plans, random fleets.

A plan is what one charger's people do: lanes (people acting at the same time, each with its own
card) of sessions, each session a list of steps. Steps are small dicts, one key each:
  {"wait": seconds | "closed"}     virtual seconds pass / until the charger closed the session
  {"tap": "start" | "stop"}        the lane's card on the reader (see fleet.py for the retries)
  {"plug": true | {EvLoad args}}   the EV is plugged into the session's EVSE and draws power
  {"unplug": true}                 the EV is unplugged (it stops drawing)
  {"meter": fault | null}          the session's meter: one of VirtualMeter's FAULTS, or healthy
  {"remote_start": {"evco_id", "provider_id"}}   the hub starts the session from an app (the
                                   lane's EVSE; --mqtt start only: the relay is the CPO endpoint)
  {"remote_stop": true}            the hub stops it from the app
A remote session has no card: remote_start takes the place of the start tap.
"""
import hashlib
import json
import os
import random

from host_sim.virtual.meter import FAULTS, LAYOUTS

DEFAULT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scenarios",
                       "default.json")
OPERATOR = "DE*SIM"  # the OperatorID when neither the scenario nor --operator-id gives one

EV_KEYS = ("capacity_wh", "soc", "max_w", "phases", "ramp_s", "taper_soc", "min_frac")
ENDS = ("tap", "unplug", "meter_fault", "full")
REMOTE_ENDS = ("remote_stop", "meter_fault")
CHARGER_DEFAULTS = {"evses": 2, "meter": "sdm630", "poll_s": 10, "progress_s": 300,
                    "ev_wait_s": 600, "tap_ms": 600}
_CHARGER_LIMITS = {"evses": (1, 4), "poll_s": (1, 3600), "progress_s": (300, 86400),
                   "ev_wait_s": (10, 3600), "tap_ms": (250, 10000)}
_SHORT = {"idle_s": 60, "plug_s": 10, "charge_s": 1200}
MAX_SESSIONS = 100000  # per charger after --sessions; more is a typo, not a scenario
MAX_STEPS = 200  # per session


class ScenarioError(ValueError):
    """A scenario file is wrong; the message starts with the field path."""


def _bad(path, what, v):
    r = json.dumps(v) if not isinstance(v, float) else repr(v)
    raise ScenarioError("%s: expected %s, got %s" % (path, what, r[:60]))


def _obj(v, path, keys):
    if not isinstance(v, dict):
        _bad(path, "an object", v)
    for k in v:
        if k not in keys:
            raise ScenarioError("%s.%s: unknown key (expected one of %s)"
                                % (path, k, ", ".join(sorted(keys))))
    return v


def _num(v, path, lo=0, hi=None, what=None):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v < lo or (
            hi is not None and v > hi):
        _bad(path, what or ("a number %s..%s" % (lo, hi if hi is not None else "")), v)
    return v


def _int(v, path, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        _bad(path, "an integer %d..%d" % (lo, hi), v)
    return v


def check_operator(v, path):
    """An ISO OperatorID (DE*ABC): the chargers' EvseIDs are made under it (DE*ABC*E0000*1)."""
    from cpagent.oicp.ids import check_evse_id, check_operator_id
    try:
        op = check_operator_id(v, path)
        check_evse_id(op + "*E0000*1", path)
    except ValueError as e:
        raise ScenarioError("%s: expected an ISO OperatorID such as DE*ABC (EvseIDs "
                            "DE*ABC*E0000*1 are made under it), got %s"
                            % (path, json.dumps(v)[:40])) from e
    return op


def check_card(v, path):
    """A card UID as the PN532 reports it: 8, 14 or 20 hex digits, upper-cased here."""
    if not isinstance(v, str) or len(v) not in (8, 14, 20) or any(
            c not in "0123456789abcdefABCDEF" for c in v):
        _bad(path, "a card UID of 8, 14 or 20 hex digits", v)
    return v.upper()


def check_ev(v, path):
    if v is True:
        return {}
    _obj(v, path, EV_KEYS)
    out = {}
    for k, x in v.items():
        p = path + "." + k
        if k == "phases":
            if x not in (1, 3) or isinstance(x, bool):
                _bad(p, "1 or 3", x)
        elif k in ("soc", "taper_soc", "min_frac"):
            _num(x, p, 0, 1)
        else:
            _num(x, p, 0 if k == "ramp_s" else 1)
        out[k] = x
    return out


def check_remote(v, path):
    """A remote start's {"evco_id", "provider_id"}, checked as OICP's ids."""
    from cpagent.oicp.ids import check_evco_id, check_provider_id
    _obj(v, path, ("evco_id", "provider_id"))
    for k, f in (("evco_id", check_evco_id), ("provider_id", check_provider_id)):
        if k not in v:
            raise ScenarioError("%s.%s: required" % (path, k))
        try:
            f(v[k], path + "." + k)
        except ValueError as e:
            raise ScenarioError(str(e)) from e
    return dict(v)


_STEPS = "wait, tap, plug, unplug, meter, remote_start or remote_stop"


def check_step(v, path):
    if not isinstance(v, dict) or len(v) != 1:
        _bad(path, "an object with one key: " + _STEPS, v)
    (k, x), = v.items()
    p = path + "." + k
    if k == "wait":
        if x != "closed":
            _num(x, p, 0, what="a number of seconds >= 0 or \"closed\"")
    elif k == "tap":
        if x not in ("start", "stop"):
            _bad(p, "\"start\" or \"stop\"", x)
    elif k == "plug":
        x = check_ev(x, p)
    elif k == "unplug":
        if x is not True:
            _bad(p, "true", x)
    elif k == "meter":
        if x is not None and x not in FAULTS:
            _bad(p, "null or one of " + ", ".join(FAULTS), x)
    elif k == "remote_start":
        x = check_remote(x, p)
    elif k == "remote_stop":
        if x is not True:
            _bad(p, "true", x)
    else:
        raise ScenarioError("%s.%s: unknown step (expected %s)" % (path, k, _STEPS))
    return {k: x}


def expand(s, path):
    """The steps of a session given in short form (idle_s, plug_s, charge_s, ev, end)."""
    idle, plug, charge = (_num(s.get(k, d), path + "." + k) for k, d in _SHORT.items())
    remote = s.get("remote_start")
    ends = ENDS if remote is None else REMOTE_ENDS
    end = s.get("end", ends[0])
    if end not in ends:
        _bad(path + ".end", "one of " + ", ".join(ends) + (" (with remote_start)" if remote
                                                             else ""), end)
    ev = check_ev(s.get("ev", True), path + ".ev")
    start = {"tap": "start"} if remote is None else {
        "remote_start": check_remote(remote, path + ".remote_start")}
    steps = [{"wait": idle}, start, {"wait": plug}, {"plug": ev}, {"wait": charge}]
    if end == "remote_stop":
        return steps + [{"remote_stop": True}, {"wait": 5}, {"unplug": True}]
    if end == "tap":
        return steps + [{"tap": "stop"}, {"wait": 5}, {"unplug": True}]
    if end == "unplug":  # the driver unplugs first, then taps to end the session
        return steps + [{"unplug": True}, {"wait": 30}, {"tap": "stop"}]
    if end == "full":  # charge_s is time after the battery is full: the car just sits there
        return steps + [{"tap": "stop"}, {"unplug": True}]
    return steps + [{"meter": "dead"}, {"wait": "closed"}, {"meter": None}, {"unplug": True}]


def check_session(s, path):
    _obj(s, path, ("card", "lane", "steps", "idle_s", "plug_s", "charge_s", "ev", "end",
                   "expect", "expect_code", "remote_start"))
    remote = "remote_start" in s or any(isinstance(x, dict) and "remote_start" in x
                                        for x in s.get("steps") or () if isinstance(
                                            s.get("steps"), list))
    if remote:
        return check_remote_session(s, path)
    if "card" not in s:
        raise ScenarioError("%s.card: required, a card UID of 8, 14 or 20 hex digits (or "
                            "remote_start for a session started from an app)" % path)
    card = check_card(s["card"], path + ".card")
    lane = _int(s.get("lane", 0), path + ".lane", 0, 3)
    if "steps" in s:
        short = [k for k in ("idle_s", "plug_s", "charge_s", "ev", "end") if k in s]
        if short:
            raise ScenarioError("%s.%s: not with steps (give either steps or the short form)"
                                % (path, short[0]))
        steps = s["steps"]
        if not isinstance(steps, list) or not 1 <= len(steps) <= MAX_STEPS:
            _bad(path + ".steps", "a list of 1..%d steps" % MAX_STEPS, steps)
        steps = [check_step(x, "%s.steps[%d]" % (path, i)) for i, x in enumerate(steps)]
        taps = [x["tap"] for x in steps if "tap" in x]
        if taps[:1] != ["start"]:
            raise ScenarioError("%s.steps: expected a {\"tap\": \"start\"} before any other tap"
                                % path)
    else:
        steps = expand(s, path)
    out = {"card": card, "lane": lane, "steps": steps}
    return dict(out, **check_expect(s, path))


def check_remote_session(s, path):
    """A session the hub starts from an app (remote_start, in short form or as a step): no card,
    no taps, on the lane's EVSE; a remote_stop only after the remote_start."""
    for k in ("card", "expect", "expect_code"):
        if k in s:
            raise ScenarioError("%s.%s: not with remote_start (an app starts the session, no "
                                "card is tapped)" % (path, k))
    lane = _int(s.get("lane", 0), path + ".lane", 0, 3)
    if "steps" in s:
        short = [k for k in ("idle_s", "plug_s", "charge_s", "ev", "end", "remote_start")
                 if k in s]
        if short:
            raise ScenarioError("%s.%s: not with steps (give either steps or the short form)"
                                % (path, short[0]))
        steps = s["steps"]
        if not 1 <= len(steps) <= MAX_STEPS:
            _bad(path + ".steps", "a list of 1..%d steps" % MAX_STEPS, steps)
        steps = [check_step(x, "%s.steps[%d]" % (path, i)) for i, x in enumerate(steps)]
        kinds = [k for x in steps for k in x]
        if "tap" in kinds:
            raise ScenarioError("%s.steps[%d].tap: not in a remote_start session (it has no "
                                "card)" % (path, kinds.index("tap")))
        if kinds.count("remote_start") != 1 or "remote_stop" in kinds[:kinds.index(
                "remote_start")]:
            raise ScenarioError("%s.steps: expected one {\"remote_start\": ...} before any "
                                "remote_stop" % path)
    else:
        steps = expand(s, path)
    return {"card": None, "lane": lane, "steps": steps}


def remote_step(scn):
    """The path of the scenario's first remote_start step (None: it has none)."""
    for i, c in enumerate(scn["chargers"]):
        for j, s in enumerate(c["sessions"]):
            for k, x in enumerate(s["steps"]):
                if "remote_start" in x:
                    return "chargers[%d].sessions[%d].steps[%d].remote_start" % (i, j, k)
    return None


def check_expect(s, path):
    """What the hub must answer the session's AuthorizeStart: "accepted" (the default) or
    "refused", and with "refused" optionally the OICP code (expect_code, e.g. "102")."""
    out = {}
    e = s.get("expect", "accepted")
    if e not in ("accepted", "refused"):
        _bad(path + ".expect", "\"accepted\" or \"refused\"", e)
    if e == "refused":
        out["expect"] = e
    if "expect_code" in s:
        c = s["expect_code"]
        if e != "refused":
            raise ScenarioError("%s.expect_code: only with \"expect\": \"refused\"" % path)
        if not isinstance(c, str) or len(c) != 3 or c.strip("0123456789") or c == "000":
            _bad(path + ".expect_code", "an OICP code of 3 digits other than 000, e.g. \"102\"",
                 c)
        out["expect_code"] = c
    return out


def check_charger(c, path):
    _obj(c, path, tuple(CHARGER_DEFAULTS))
    out = dict(CHARGER_DEFAULTS)
    for k, v in c.items():
        p = path + "." + k
        if k == "meter":
            if v not in LAYOUTS:
                _bad(p, "one of " + ", ".join(sorted(LAYOUTS)), v)
        else:
            _int(v, p, *_CHARGER_LIMITS[k])
        out[k] = v
    return out


def check_hub_event(e, path):
    _obj(e, path, ("at_s", "refuse_s", "fault"))
    _num(e.get("at_s"), path + ".at_s", 0, what="a number of virtual seconds >= 0")
    if ("refuse_s" in e) == ("fault" in e):
        raise ScenarioError("%s: expected one of refuse_s or fault" % path)
    if "refuse_s" in e:
        _num(e["refuse_s"], path + ".refuse_s", 0, what="a number of virtual seconds >= 0")
    else:
        from host_sim.hub.faults import Fault, FaultError
        f = e["fault"]
        if not isinstance(f, dict) or "kind" not in f:
            _bad(path + ".fault", "a hub fault rule {\"kind\": ..., ...}", f)
        try:
            Fault(**f)
        except (FaultError, TypeError) as x:
            raise ScenarioError("%s.fault.%s" % (path, x))
    return dict(e)


def load(text):
    """Scenario JSON text -> checked dict (sessions in steps form); raises ScenarioError."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise ScenarioError("scenario: expected JSON (%s)" % e)
    return check(doc)


def check(doc):
    _obj(doc, "scenario", ("name", "operator_id", "cards", "charger", "chargers", "hub"))
    cards = doc.get("cards", [])
    if not isinstance(cards, list):
        _bad("cards", "a list of card UIDs", cards)
    out = {"name": doc.get("name", "scenario"),
           "operator_id": check_operator(doc.get("operator_id", OPERATOR), "operator_id"),
           "cards": [check_card(c, "cards[%d]" % i) for i, c in enumerate(cards)],
           "charger": check_charger(doc.get("charger", {}), "charger")}
    chargers = doc.get("chargers")
    if not isinstance(chargers, list) or not chargers:
        _bad("chargers", "a non-empty list of {\"sessions\": [...]}", chargers)
    out["chargers"] = []
    for i, c in enumerate(chargers):
        p = "chargers[%d]" % i
        _obj(c, p, ("sessions",))
        ss = c.get("sessions")
        if not isinstance(ss, list) or not ss:
            _bad(p + ".sessions", "a non-empty list of sessions", ss)
        ss = [check_session(s, "%s.sessions[%d]" % (p, j)) for j, s in enumerate(ss)]
        lanes = {}
        for j, s in enumerate(ss):
            if s["card"] is not None and lanes.setdefault(s["card"], s["lane"]) != s["lane"]:
                raise ScenarioError("%s.sessions[%d].card: %s is already lane %d's card (a card "
                                    "at the same charger would stop the other lane's session)"
                                    % (p, j, s["card"], lanes[s["card"]]))
        if max(s["lane"] for s in ss) >= out["charger"]["evses"]:
            raise ScenarioError("%s.sessions: more lanes than charger.evses (%d)"
                                % (p, out["charger"]["evses"]))
        out["chargers"].append({"sessions": ss})
    hub = doc.get("hub", [])
    if not isinstance(hub, list):
        _bad("hub", "a list of hub events", hub)
    out["hub"] = sorted((check_hub_event(e, "hub[%d]" % i) for i, e in enumerate(hub)),
                        key=lambda e: e["at_s"])
    return out


def plan(scn, n, sessions=None):
    """Charger n's sessions: chargers[n % len], cycled up to `sessions` if given."""
    ss = scn["chargers"][n % len(scn["chargers"])]["sessions"]
    if sessions is not None:
        if not 0 <= sessions <= MAX_SESSIONS:
            raise ScenarioError("--sessions: expected 0..%d, got %d" % (MAX_SESSIONS, sessions))
        ss = [ss[i % len(ss)] for i in range(sessions)]
    return ss


def cards(scn):
    """Every card the embedded hub authorizes: the scenario's list and the cards its sessions
    use, but for those the hub must refuse ("expect": "refused") unless the list has them."""
    seen = dict.fromkeys(scn["cards"])
    for c in scn["chargers"]:
        seen.update(dict.fromkeys(s["card"] for s in c["sessions"]
                                  if s.get("expect") != "refused" and s["card"] is not None))
    return list(seen)


def fingerprint(obj):
    """A short digest of a plan, kept with --state so a resumed run has the same plan."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def random_fleet(seed, chargers, sessions=5):
    """A scenario with one charger entry per charger, deterministic from the seed."""
    out = []
    for n in range(chargers):
        rnd = random.Random("%s/%d" % (seed, n))
        lanes = rnd.choice((1, 1, 2))
        ss = []
        for j in range(sessions):
            lane = j % lanes
            s = {"card": "04%012X" % rnd.getrandbits(48), "lane": lane,
                 "idle_s": rnd.randint(10, 600), "plug_s": rnd.randint(5, 60),
                 "charge_s": rnd.randint(600, 3600),
                 "ev": {"capacity_wh": rnd.choice((40000, 60000, 77000)),
                        "soc": round(rnd.uniform(0.1, 0.7), 2),
                        "max_w": rnd.choice((3700, 7400, 11000)),
                        "phases": rnd.choice((1, 3))},
                 "end": rnd.choices(ENDS, (70, 20, 5, 5))[0]}
            ss.append(s)
        # A lane keeps one card (another lane's card would stop its session).
        first = {}
        for s in ss:
            s["card"] = first.setdefault(s["lane"], s["card"])
        out.append({"sessions": ss})
    rnd = random.Random("%s/hub" % seed)
    hub = [{"at_s": rnd.randint(300, 3000), "refuse_s": rnd.randint(30, 300)}]
    return check({"name": "random %s" % seed, "chargers": out, "hub": hub})
