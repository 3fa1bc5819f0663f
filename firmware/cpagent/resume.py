"""After a restart: the charger's open sessions resumed from the journal, its orphans resolved."""
# Charger.boot() and Charger.resolved() import this module for one call and drop it again
# (cpagent.once), as Journal.load() does replay.py: code that runs once per boot (and per
# orphan) holds no heap afterwards.
from cpagent.oicp import build as oicp
from cpagent.session import _FAULTED, _STOPPING, AUTHORIZED, CHARGING, IDLE, MAX_BETWEEN, PARKED


def boot(ch, readings, auth):
    """Charger.boot(): the journal loaded, its open sessions resumed (`readings`: import Wh per
    EVSE or None), AuthorizeStarts left by a restart (keys starting with `auth`) resolved or
    kept as orphans, each EVSE's status journaled once."""
    ch.journal.load()
    asked = {}
    for key, snap in ch.journal.sessions().items():
        if isinstance(key, str) and key[:len(auth)] == auth:
            asked[key] = snap
            continue
        i = ch._index(snap.get("e"))
        if i is None:
            continue  # an EVSE removed from the config: its messages still drain
        ch._apply(i, restore(ch.evses[i], snap, readings[i]))
    for key, snap in asked.items():
        i = ch._index(snap["b"].get("EvseID"))
        if i is not None and ch.evses[i].state != IDLE:
            ch.journal.put_session(key, None)  # its session was journaled: resolved
        else:
            ch._orphans[key] = (snap["p"], snap["b"])
    for i in range(len(ch.evses)):
        ch._status(i)  # each EVSE's status once: the far end may not know it


def resolved(ch, key, kind, value):
    """Charger.resolved() for an orphan's answer ("ok" or "fail")."""
    body = ch._orphans.pop(key)[1]
    sid = value.session_id if kind == "ok" else None
    if not sid:
        ch.journal.put_session(key, None)
        return
    t = ch.clock.stamp()
    p, cdr = oicp.charge_detail_record(
        ch.operator_id, sid, body["EvseID"],
        body["Identification"]["RFIDMifareFamilyIdentification"]["UID"], t, t, t, t, 0.0,
        cpo_session_id=body["CPOPartnerSessionID"])
    ch.journal.add(key, "CDR", p, cdr, state=None)
    ch._show(ch._index(body["EvseID"]),
             "session %s of a tap before the restart closed with 0 kWh" % sid)


def restore(s, snap, wh):
    """Resume Session s after a reboot from a snapshot and the meter's cumulative register now
    (Wh); returns its effects (a stop that a power cut interrupted is finished)."""
    s._clear()
    # Never bill below a reading already journaled (Start, Progress, a saved one): a dead
    # meter at boot, or one that restarted its count, leaves the latest of those.
    mv = snap.get("mv") or ()
    known = [v for v in (snap.get("w"), snap.get("me"), snap.get("ms"),
                         mv[-1] if mv else None) if v is not None]
    last = max(known) if known else None
    s.wh = wh if last is None or (wh is not None and wh >= last) else last
    s.session_id = snap["sid"]
    s.uid = snap["uid"]
    s.evco = snap.get("ev")
    s.provider = snap.get("pv")
    s.cpo = snap.get("cpo")
    s.product = snap.get("pp", s.product_id)
    s.stop_uids = tuple(snap.get("stop") or ())
    s.session_start = snap["ss"]
    s.charging_start = snap.get("cs")
    s.charging_end = snap.get("ce")
    s.meter_start = snap.get("ms")
    s.between = list(mv)[-MAX_BETWEEN:]
    phase = snap["p"]
    if phase == _STOPPING:
        # End is journaled; only the charge detail record is missing.
        s.state = CHARGING
        effects = s._cdr(snap["ce"], snap["ce"], snap.get("me"))
        s._clear()
        return effects + [("show", "session closed after restart")]
    if phase == _FAULTED:
        # Close with what was known at the fault, not with readings taken after the reboot.
        s.state = (PARKED if snap.get("ed") else CHARGING) if s.charging_start else AUTHORIZED
        if snap.get("me") is not None:
            s.wh = snap["me"]
        return s._stop("fault before restart", snap.get("fe"))
    s.state = phase if phase in (CHARGING, PARKED) else AUTHORIZED
    return [("show", "session resumed")]
