"""A readable timeline of a run's OICP exchanges, taken from the hub's exchange log."""
from datetime import datetime

_HEAD = ("virtual", "charger", "EVSE", "message", "session", "hub")


def hms(seconds):
    s = int(seconds)
    return "%s%02d:%02d:%02d" % ("-" if s < 0 else "", abs(s) // 3600, abs(s) // 60 % 60,
                                 abs(s) % 60)


def _evse(req):
    if not isinstance(req, dict):
        return None
    return req.get("EvseID") or (req.get("ChargeDetailRecord") or {}).get("EvseID")


def _message(x):
    req = x.get("request")
    op = x.get("operation") or x.get("path")
    if op == "ChargingNotifications" and isinstance(req, dict):
        return "Notification " + str(req.get("Type"))
    return op


def _hub(x):
    if x.get("status") is None:
        return "no reply (fault %s)" % x.get("fault")
    out = "%s" % x["status"]
    if x.get("code"):
        out += " " + x["code"]
    if x.get("fault"):
        out += " (fault %s)" % x["fault"]
    if x.get("duplicate"):
        out += " duplicate"
    return out


def rows(exchanges, evse_charger, clock):
    """(virtual s, charger, EvseID, message, session, hub answer) of the exchanges of our EVSEs
    (another client's traffic at a shared hub is left out), by arrival time (the hub logs an
    exchange when it answers: after a latency fault, later arrivals may come first)."""
    out = []
    for x in exchanges:
        evse = _evse(x.get("request"))
        if evse not in evse_charger:
            continue
        t = datetime.fromisoformat(x["time"]).timestamp()
        sid = x.get("session_id") or (x.get("request") or {}).get("SessionID") or ""
        out.append((clock.at_wall(t), evse_charger[evse], evse, _message(x), sid[:8], _hub(x)))
    out.sort(key=lambda r: r[0])
    return out


def render(rows_):
    """The rows as aligned text lines, headed."""
    table = [_HEAD] + [(hms(r[0]),) + r[1:] for r in rows_]
    widths = [max(len(str(r[k])) for r in table) for k in range(len(_HEAD) - 1)]
    return ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + str(r[-1])
            for r in table]
