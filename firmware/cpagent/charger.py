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
_ORPHAN_MS = const(60000)  # an unresolved authorization from before a restart: re-sent this often
# Journal key prefix of an AuthorizeStart on its way: its record lives from just before the send
# until the answer is carried out. One still there at boot whose EVSE has no session is an
# orphan: the hub may have opened a session the charger never heard of.
_AUTH = "a:"


class Charger:
    """All EVSEs of one charge point."""

    def __init__(self, cfg, journal, clock):
        self.journal = journal
        self.clock = clock
        journal.stamp = clock.stamp  # the time a refusal is recorded with
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
        self._asking = {}  # EVSE index -> journal key of its AuthorizeStart on its way
        # journal key -> (path, body): to re-send, then close; bounded as each counts as an open
        # session in the journal's admission control
        self._orphans = {}
        self._orphan_due = 0
        self.operator_id = cfg["operator_id"]
        self.shown = []

    def boot(self, readings):
        """Recover the journal and resume open sessions; readings: import Wh per EVSE or None."""
        self.journal.load()
        asked = {}
        for key, snap in self.journal.sessions().items():
            if isinstance(key, str) and key[:len(_AUTH)] == _AUTH:
                asked[key] = snap
                continue
            i = self._index(snap.get("e"))
            if i is None:
                continue  # an EVSE removed from the config: its messages still drain
            self._apply(i, self.evses[i].restore(snap, readings[i]))
        for key, snap in asked.items():
            i = self._index(snap["b"].get("EvseID"))
            if i is not None and self.evses[i].state != IDLE:
                self.journal.put_session(key, None)  # its session was journaled: resolved
            else:
                self._orphans[key] = (snap["p"], snap["b"])

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
            return self._show(evse, "dead letters full: export, fix and requeue them"
                              if self.journal.dead_full() else "journal full: try later")
        return self._apply(evse, self.evses[evse].tap(uid))

    def authorized(self, i, reply):
        self._apply(i, self.evses[i].authorized(reply))
        self._answered(i)

    def authorize_failed(self, i, reason):
        self._apply(i, self.evses[i].authorize_failed(reason))
        self._answered(i)

    def _answered(self, i):
        key = self._asking.pop(i, None)
        if key:
            self.journal.put_session(key, None)

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
        """AuthorizeStart requests to send now: a list of (EVSE index, path, body); taken once.

        Each is journaled first (with a CPOPartnerSessionID naming it), so a restart before its
        answer was carried out leaves an orphan to resolve (orphans()).
        """
        out = []
        for i, (p, b) in self._auth.items():
            cpo = "%d-%d-%d" % (self.journal.boot, self.clock.ms(), i)  # unique on this charger
            b["CPOPartnerSessionID"] = cpo
            self.journal.put_session(_AUTH + cpo, {"p": p, "b": b})
            self._asking[i] = _AUTH + cpo
            out.append((i, p, b))
        self._auth = {}
        return out

    def orphans(self):
        """AuthorizeStarts of before a restart whose answer was lost, due for a re-send with the
        same body: a list of (key, path, body); answer each with resolved()."""
        now = self.clock.ms()
        if not self._orphans or now < self._orphan_due:
            return []
        self._orphan_due = now + _ORPHAN_MS
        return [(k, p, b) for k, (p, b) in self._orphans.items()]

    def resolved(self, key, kind, value):
        """The hub's answer to an orphan's re-send (a Result of the uplink). Authorized: the
        session it names is closed with a 0 kWh charge detail record, in the same journal record
        that closes the orphan; refused: nothing was opened; no answer: re-sent later."""
        if key not in self._orphans or kind not in ("ok", "fail"):
            return
        path, body = self._orphans.pop(key)
        sid = value.session_id if kind == "ok" else None
        if not sid:
            self.journal.put_session(key, None)
            return
        t = self.clock.stamp()
        p, cdr = oicp.charge_detail_record(
            self.operator_id, sid, body["EvseID"],
            body["Identification"]["RFIDMifareFamilyIdentification"]["UID"], t, t, t, t, 0.0,
            cpo_session_id=body["CPOPartnerSessionID"])
        self.journal.add(key, "CDR", p, cdr, state=None)
        self._show(self._index(body["EvseID"]),
                   "session %s of a tap before the restart closed with 0 kWh" % sid)

    def next_message(self, hold=()):
        """The oldest journaled message ready to send of a session not in `hold`, as
        (msg_id, path, body, session token), or None (the token: journal.next_pending()).

        Timestamps taken before the wall clock was known are filled in here; a message whose
        time is not known yet waits (and with it the later ones of its session; other sessions
        go on).
        """
        skip = list(hold)
        while True:
            m = self.journal.next_pending(skip)
            if m is None:
                return None
            try:
                return m[0], m[2], oicp.resolve_times(m[3], self._resolve), m[4]
            except ValueError:
                skip.append(m[4])

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

    def retry(self, msg_id):
        """The hub asked to retry msg_id later: its attempts so far (power-safe)."""
        return self.journal.attempt(msg_id)

    def failed(self, msg_id, reason):
        """Refused for good: a dead letter (journal.py says what happens when they fill up)."""
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
