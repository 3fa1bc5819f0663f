"""What a run's own exchange records say: counts by code and reason, latencies, sessions."""
from datetime import datetime

from host_sim.sim.record import no_reply_class
from host_sim.sim.timeline import hms

_TABLE_HEAD = ("charger", "EVSE", "card", "session", "outcome", "kWh", "duration",
               "auth ms", "retries")


def _inc(d, k, n=1):
    d[k] = d.get(k, 0) + n


def percentile(values, q):
    """The q-th percentile (0..100) of values by nearest rank; None for none."""
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, max(0, int(round(q / 100 * len(v) + 0.5)) - 1))]


def latency(rows):
    """Per operation: count, p50, p99, max of the round trips that got an HTTP answer (ms)."""
    by = {}
    for x in rows:
        if x.status is not None:
            by.setdefault(x.op.split()[0], []).append(x.ms)
    return {op: {"n": len(v), "p50": percentile(v, 50), "p99": percentile(v, 99),
                 "max": max(v)} for op, v in sorted(by.items())}


def overhead(rows):
    """The simulator's own share of each HTTP exchange (ms): the round trip less the wire and
    the hub (the HTTP client's post), plus recording and checking it; p50/p99/max."""
    v = [x.sim_ms for x in rows if getattr(x, "sim_ms", None) is not None]
    return {"n": len(v), "p50": percentile(v, 50), "p99": percentile(v, 99),
            "max": max(v) if v else None}


def counts(rows):
    """This run's answers: OICP codes (every reply with one, fault answers too), HTTP statuses
    that were not 2xx, sends with no answer by class, refused cards and dead letters (messages
    the hub refused for good) by code or reason."""
    out = {"requests": len(rows), "codes": {}, "http": {}, "no_reply": {}, "refused": {},
           "dead_letters": {}, "retries": 0}
    for x in rows:
        if x.code:
            _inc(out["codes"], x.code)
        if x.status is None:
            _inc(out["no_reply"], no_reply_class(x.reason))
        elif not 200 <= x.status < 300:
            _inc(out["http"], str(x.status))
        out["retries"] += x.result == "retry"
        if x.result in ("fail", "stop"):
            why = x.code or ("HTTP %s" % x.status if x.status else no_reply_class(x.reason))
            _inc(out["refused" if x.op == "AuthorizeStart" else "dead_letters"], why)
    return out


def _iso(v):
    try:
        return datetime.fromisoformat(str(v).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def sessions(rows):
    """One line per session the hub opened (or an earlier run had opened), and one per card
    left refused, in order. Taps before the one the hub accepted count as its retries."""
    by, refused, order = {}, {}, []
    for x in rows:
        if x.op == "AuthorizeStart":
            key = (x.charger, x.card)
            if x.result == "ok" and x.session:
                r = refused.pop(key, None)
                s = by[x.session] = {"session": x.session, "charger": x.charger,
                                     "evse": x.evse, "card": x.card, "auth_ms": x.ms,
                                     "outcome": "open", "kwh": None, "duration_s": None,
                                     "retries": x.attempt - 1 + (r["retries"] + 1 if r else 0)}
                if r:
                    r["drop"] = True
                order.append(s)
            else:
                r = refused.get(key)
                if r is None:
                    r = refused[key] = {"session": None, "charger": x.charger, "evse": x.evse,
                                        "card": x.card, "auth_ms": None, "kwh": None,
                                        "duration_s": None, "retries": -1}
                    order.append(r)
                r["retries"] += 1
                r["outcome"] = "refused %s" % (x.code or ("HTTP %s" % x.status if x.status
                                                          else no_reply_class(x.reason)))
            continue
        s = by.get(x.session)
        if s is None and x.session:  # opened by an earlier run (--state): no AuthorizeStart here
            s = by[x.session] = {"session": x.session, "charger": x.charger, "evse": x.evse,
                                 "card": x.card, "auth_ms": None, "outcome": "open",
                                 "kwh": None, "duration_s": None, "retries": 0}
            order.append(s)
        if s is None:
            continue
        s["retries"] += x.result == "retry"
        if x.result in ("fail", "stop"):
            s["outcome"] = "%s failed: %s" % (x.op, x.code or x.reason)
        elif x.result == "ok" and x.op == "Notification End" and s["outcome"] == "open":
            s["outcome"] = "ended"
        elif x.result == "ok" and x.op == "ChargeDetailRecord":
            b = x.body or {}
            s["kwh"] = b.get("ConsumedEnergy")
            a, e = _iso(b.get("ChargingStart")), _iso(b.get("ChargingEnd"))
            s["duration_s"] = None if a is None or e is None else round(e - a)
            if "failed" not in s["outcome"]:
                s["outcome"] = "done"
    return [r for r in order if not r.pop("drop", False)]


def table(rows_, limit=40):
    """The session lines as aligned text (the first `limit`, then how many more)."""
    def dur(s):
        return "" if s is None else "%d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60)
    lines = [_TABLE_HEAD] + [
        (r["charger"], r["evse"] or "", r["card"] or "", (r["session"] or "")[:8], r["outcome"],
         "" if r["kwh"] is None else "%.3f" % r["kwh"], dur(r["duration_s"]),
         "" if r["auth_ms"] is None else "%.0f" % r["auth_ms"], str(r["retries"]))
        for r in rows_[:limit]]
    widths = [max(len(str(r[k])) for r in lines) for k in range(len(_TABLE_HEAD))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
           for r in lines]
    if len(rows_) > limit:
        out.append("... %d more sessions (all in --report DIR/report.json)" % (len(rows_) - limit))
    return out


def nonconformance(groups):
    """The recorder's non-conformance groups in order of first sight."""
    return sorted(groups.values(), key=lambda g: g["first"]["t"])


def nonconformance_lines(groups, limit=40):
    out = ["hub replies against OICP 2.3 (%d kinds, %d replies):"
           % (len(groups), sum(g["count"] for g in groups))] if groups else []
    for g in groups[:limit]:
        f = g["first"]
        out.append("  %s: %s (%d replies); first to %s at %s by %s%s%s" % (
            g["op"], g["issue"], g["count"], f["path"], hms(f["t"]), f["charger"],
            " for " + f["evse"] if f["evse"] else "",
            ", session " + f["session"] if f["session"] else ""))
    if len(groups) > limit:
        out.append("  ... %d more kinds (all in --report DIR/report.json)" % (len(groups) - limit))
    return out
