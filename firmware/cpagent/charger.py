"""The charger's core: EVSE sessions, journal and clock wired together, with no I/O and no tasks.

The agent's tasks call in with events (tap, meter reading, plug, fault, timer tick, hub answers)
and call out for work: `authorizations()` to send interactively, `next_message()` to deliver from
the journal. Every effect a session returns is carried out here, journal first, so that a power
cut at any point leaves the flash consistent (see session.py and journal.py).
"""
from micropython import const

from cpagent import oicp
from cpagent.session import IDLE, Session

_MAX_SHOWN = const(16)  # recent messages for the display/log; the oldest is dropped


class Charger:
    """All EVSEs of one charge point."""

    def __init__(self, cfg, journal, clock):
        self.journal = journal
        self.clock = clock
        t = cfg["timing"]
        self.evses = []
        for e in cfg["evses"]:
            self.evses.append(Session(
                cfg["operator_id"], e["evse_id"], clock, progress_s=t["progress_s"],
                ev_wait_s=t["ev_wait_s"], authorize_timeout_s=t["authorize_timeout_s"],
                start_power_w=t["start_power_w"], product_id=e.get("product_id"),
                stop_power_w=t["stop_power_w"], stop_hold_s=t["stop_hold_s"],
                save_wh=cfg["journal"]["save_wh"]))
        # EVSE index -> meter fault text: out of order (a session there could not be billed) until
        # the meter gives a good reading again.
        self.broken = [None] * len(self.evses)
        self._auth = {}  # EVSE index -> (path, body) of an AuthorizeStart not yet sent
        self.shown = []

    def boot(self, readings):
        """Recover the journal and resume open sessions; readings: import Wh per EVSE or None."""
        self.journal.load()
        for snap in self.journal.sessions().values():
            i = self._index(snap.get("e"))
            if i is None:
                continue  # an EVSE removed from the config: its messages still drain
            self._apply(i, self.evses[i].restore(snap, readings[i]))

    def _index(self, evse_id):
        for i, s in enumerate(self.evses):
            if s.evse_id == evse_id:
                return i
        return None

    # --- events -----------------------------------------------------------------------------

    def tap(self, uid, evse=None):
        """A card: it stops the session it owns, else starts on `evse` or the first idle EVSE."""
        for i, s in enumerate(self.evses):
            if s.state != IDLE and (uid == s.uid or uid in s.stop_uids):
                return self._apply(i, s.tap(uid))
        if evse is None:
            for i, s in enumerate(self.evses):
                if s.state == IDLE and not self.broken[i]:
                    evse = i
                    break
        if evse is None:
            return self._show(None, "no free EVSE")
        if self.broken[evse]:
            return self._show(evse, "out of order: " + self.broken[evse])
        if self.evses[evse].state == IDLE and not self.journal.can_open_session():
            # Never start what the journal could not record to the end.
            return self._show(evse, "journal full: try later")
        return self._apply(evse, self.evses[evse].tap(uid))

    def authorized(self, i, reply):
        self._apply(i, self.evses[i].authorized(reply))

    def authorize_failed(self, i, reason):
        self._apply(i, self.evses[i].authorize_failed(reason))

    def meter(self, i, wh, watts):
        self.broken[i] = None
        self._apply(i, self.evses[i].meter(wh, watts))

    def plug(self, i, plugged):
        self._apply(i, self.evses[i].plug(plugged))

    def fault(self, i, connector, info):
        if not connector:
            self.broken[i] = info
        self._apply(i, self.evses[i].fault(connector, info))

    def tick(self):
        for i, s in enumerate(self.evses):
            self._apply(i, s.tick())

    # --- work for the link --------------------------------------------------------------------

    def authorizations(self):
        """AuthorizeStart requests to send now: a list of (EVSE index, path, body); taken once."""
        out = [(i, p, b) for i, (p, b) in self._auth.items()]
        self._auth = {}
        return out

    def next_message(self):
        """The oldest journaled message ready to send as (msg_id, path, body), or None.

        Timestamps taken before the wall clock was known are filled in here; a message whose
        time is not known yet waits (and with it every later one, to keep the order).
        """
        head = self.journal.pending(1)
        if not head:
            return None
        msg_id, _kind, path, body = head[0]
        try:
            return msg_id, path, oicp.resolve_times(body, self._resolve)
        except ValueError:
            return None

    def _resolve(self, stamp):
        iso = self.clock.resolve(stamp)
        if iso is None and self.clock.known and stamp[0] == "@":
            # A boot that never learned the wall time: its ticks cannot be placed exactly. The
            # only bound known is that the event happened before now; the log says so.
            self._show(None, "time of an event before the last restart is approximate")
            iso = self.clock.stamp()
        return iso

    def delivered(self, msg_id):
        self.journal.delivered(msg_id)

    def failed(self, msg_id, reason):
        self.journal.failed(msg_id, reason)

    # --- effects ------------------------------------------------------------------------------

    def _apply(self, i, effects):
        sid = self.evses[i].session_id
        for e in effects:
            what = e[0]
            if what == "journal":
                key = e[3].get("SessionID") or sid
                self.journal.add(key, e[1], e[2], e[3], state=e[4])
            elif what == "save":
                self.journal.put_session(e[1]["sid"], e[1])
            elif what == "authorize":
                self._auth[i] = (e[1], e[2])
            elif what == "cancel":
                self._auth.pop(i, None)
            elif what == "show":
                self._show(i, e[1])

    def _show(self, i, text):
        self.shown.append((i, text))
        if len(self.shown) > _MAX_SHOWN:
            self.shown.pop(0)
