"""The charger's core: EVSE sessions, journal and clock wired together, with no I/O and no tasks.

The agent's tasks call in with events (tap, meter reading, plug, fault, timer tick, hub answers,
the relay's remote commands) and call out for work: `authorizations()` to send interactively,
`next_message()` to deliver from the journal. Each EVSE's OICP status (Available, Occupied,
OutOfService) is journaled as a Status message on every change and by push_status() (boot,
reconnect), under its own key so that it never holds back a session's messages. Every effect
a session returns is carried out here, journal first, so that a power cut at any point leaves
the flash consistent (see session.py and journal.py).
"""
from micropython import const

from cpagent import once
from cpagent.oicp import build as oicp
from cpagent.session import AUTHORIZED, AUTHORIZING, CHARGING, IDLE, PARKED, Session

_MAX_SHOWN = const(16)  # recent messages for the display/log; the oldest is dropped
_ORPHAN_MS = const(60000)  # an unresolved authorization from before a restart: re-sent this often
# Journal key prefix of an AuthorizeStart on its way: its record lives from just before the send
# until the answer is carried out. One still there at boot whose EVSE has no session is an
# orphan: the hub may have opened a session the charger never heard of.
_AUTH = "a:"
_STATUS = "s:"  # journal key prefix of an EVSE's Status: "s:<EvseID>", the latest one wins


class Charger:
    """All EVSEs of one charge point."""

    def __init__(self, cfg, journal, clock):
        self.journal = journal
        self.clock = clock
        journal.stamp = clock.stamp  # the time a refusal is recorded with
        self.evses = []
        for e in cfg["evses"]:
            self.evses.append(Session(cfg["operator_id"], e["evse_id"], clock, cfg["timing"],
                                      e.get("product_id"), cfg["journal"]["save_wh"]))
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
        self.charger_id = cfg["charger_id"]
        self.shown = []
        self._said = [None] * len(self.evses)  # the status each EVSE last journaled
        self._remote = []  # recent remote commands' answers (relay.py)

    def boot(self, readings):
        """Recover the journal and resume open sessions; readings: import Wh per EVSE or None
        (boot-only code: cpagent/resume.py, dropped again once it is done)."""
        once("resume").boot(self, readings, _AUTH)

    def push_status(self):
        """Journal every EVSE's status again (boot, a reconnect: the far end may have lost it)."""
        self._said = [None] * len(self.evses)
        for i in range(len(self.evses)):
            self._status(i)

    def _status(self, i):
        s = self.evses[i]
        now = "OutOfService" if self.broken[i] else "Available" if s.state == IDLE \
            else "Occupied"
        if now != self._said[i]:
            self._said[i] = now
            # Journaled small, "<EvseID> <EvseStatus>" with no path (a third of the flash of the
            # whole request); next_message() builds the PushEvseStatus from it.
            self.journal.add(_STATUS + s.evse_id, "Status", "", s.evse_id + " " + now)

    def _index(self, evse_id):
        for i, s in enumerate(self.evses):
            if s.evse_id == evse_id:
                return i
        return None

    # --- events -----------------------------------------------------------------------------

    def tap(self, uid, evse=None):
        """A card: it stops the session it owns, else starts on `evse` or the first idle EVSE;
        another card on a live session (on `evse`, or the only one) asks AuthorizeStop."""
        for i, s in enumerate(self.evses):
            if s.state != IDLE and (uid == s.uid or uid in s.stop_uids):
                return self._apply(i, s.tap(uid))
        if evse is None:
            live = []
            for i, s in enumerate(self.evses):
                if s.state == IDLE and not self.broken[i]:
                    evse = i
                    break
                if s.session_id:
                    live.append(i)
            else:
                if len(live) == 1:  # one reader, one session: the card can only mean that one
                    evse = live[0]
        if evse is None:
            return self._show(None, "no free EVSE")
        if self.broken[evse] and self.evses[evse].state == IDLE:
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

    def contactor(self, i):
        """Whether EVSE i's contactor may be closed: only for an authorized session."""
        return self.evses[i].state in (AUTHORIZED, CHARGING, PARKED)

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

        Each AuthorizeStart is journaled first (with a CPOPartnerSessionID naming it), so a
        restart before its answer was carried out leaves an orphan to resolve (orphans()).
        An AuthorizeStop (another card on a live session) is not journaled: its answer only
        decides whether that session stops now.
        """
        out = []
        for i, (p, b) in self._auth.items():
            if self.evses[i].state == AUTHORIZING:
                # Unique across the operator's chargers, not only here: the hub gives one
                # session to a repeated (operator, CPOPartnerSessionID), and chargers that came
                # back from one power cut together count the same boots and milliseconds.
                cpo = "%s-%d-%d-%d" % (self.charger_id, self.journal.boot, self.clock.ms(), i)
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
        if key in self._orphans and kind in ("ok", "fail"):
            once("resume").resolved(self, key, kind, value)  # rare: after a restart

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
            if m[1] == "Status":
                p, b = oicp.push_evse_status(self.operator_id, [m[3].decode().split(" ")])
                return m[0], p, b, m[4]
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
        """Refused for good: a dead letter (journal.py says what happens when they fill up), but
        a Status, which is dropped and counted (the next one says the same EVSE's latest).
        True if kept as a dead letter."""
        return self.journal.failed(msg_id, reason)

    # --- the relay's remote commands ----------------------------------------------------------

    def remote(self, f):
        """A remote start or stop (remote.parse's fields) -> (OICP code, short text). An
        accepted start is journaled (power-safe) before this returns; a repeat of a command
        (same SessionID and EvseID) gets the same answer and does nothing more."""
        from cpagent import relay  # only an MQTT charger gets them: loaded on the first

        return relay.carry_out(self, f)

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
        self._status(i)

    def _show(self, i, text):
        self.shown.append((i, text))
        if len(self.shown) > _MAX_SHOWN:
            self.shown.pop(0)
