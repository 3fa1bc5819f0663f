"""A readable timeline of a run: the chargers' own exchange records and the hub events."""
from host_sim.sim.record import no_reply_class

_HEAD = ("virtual", "charger", "EVSE", "message", "session", "hub")


def hms(seconds):
    s = int(seconds)
    return "%s%02d:%02d:%02d" % ("-" if s < 0 else "", abs(s) // 3600, abs(s) // 60 % 60,
                                 abs(s) % 60)


def answer(x):
    """The hub's answer to one exchange, short: '200 000', '503', 'no reply (timeout)'."""
    if x.status is None:
        out = "no reply (%s)" % no_reply_class(x.reason)
    else:
        out = "%s" % x.status + (" " + x.code if x.code else "")
    if x.attempt > 1:
        out += " (attempt %d)" % x.attempt
    return out


def rows(exchanges, events=()):
    """(virtual s, charger, EvseID, message, session, hub answer) of each exchange by the time
    it was sent, with the hub events ({"t", "text"}) as rows of their own."""
    out = [(x.t, x.charger, x.evse or "", x.op, (x.session or "")[:8], answer(x))
           for x in exchanges]
    out += [(e["t"], "hub", "", "event: " + e["text"], "", "") for e in events]
    out.sort(key=lambda r: r[0])
    return out


def render(rows_):
    """The rows as aligned text lines, headed."""
    table = [_HEAD] + [(hms(r[0]),) + r[1:] for r in rows_]
    widths = [max(len(str(r[k])) for r in table) for k in range(len(_HEAD) - 1)]
    return [("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) + "  "
             + str(r[-1])).rstrip() for r in table]
