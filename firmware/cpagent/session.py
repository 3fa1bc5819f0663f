"""Per-EVSE charging session state machine: pure, clock injected, returns effects for the agent.

idle -tap-> authorizing -Authorized-> authorized -power or plug-> charging -tap or unplug-> idle
idle -remote start (the hub's SessionID and EvcoID)-> authorized: no AuthorizeStart, no card
charging -power at or below stop_power_w for stop_hold_s-> parked -tap or unplug-> idle
A live session is also ended by a remote stop, or by another card the hub authorizes through
AuthorizeStop (asked like an AuthorizeStart; the session runs on meanwhile).
OICP keeps the two ends apart: End says energy flow ended (ChargingEnd, the reading then) while
the session goes on; the charge detail record closes it at the tap or unplug (SessionEnd) and
bills the reading then. A parked EV that draws again moves ChargingEnd to its next stop.
Every event method returns a list of effects (tuples) that the agent carries out in order:
  ("authorize", path, body)            ask the hub now (interactive): AuthorizeStart (the
                                       charger journals its key) or AuthorizeStop (not journaled)
  ("journal", kind, path, body, state) journal the message and the session's new snapshot in one
                                       record (state None: the session is over)
  ("save", state)                      journal the snapshot alone
  ("cancel",)                          drop the AuthorizeStart still waiting for an answer
  ("show", text)                       tell the driver (display, log)
A snapshot holds what a reboot needs to carry on: resume.restore() (boot-only) resumes from it
with the meter's cumulative register and finishes a stop that a power cut interrupted.
"""
from micropython import const

from cpagent.clock import unix_from_iso
from cpagent.oicp import build as oicp
from cpagent.oicp.ids import kwh

IDLE = "idle"
AUTHORIZING = "authorizing"
AUTHORIZED = "authorized"
CHARGING = "charging"
PARKED = "parked"  # End journaled: no energy flows, the EV is still plugged in
# Snapshot-only phases: the End (or the Error) is journaled, what follows it is not yet.
_STOPPING = "stopping"
_FAULTED = "faulted"

_MS = const(1000)
_MIN_PROGRESS_S = const(300)  # OICP: Progress at most every 5 minutes; the hub refuses sooner
MAX_BETWEEN = const(10)  # MeterValueInBetween cap: the most recent readings are kept
_MAX_STOP_UIDS = const(8)  # AuthorizationStopIdentifications kept; more are ignored
_LIVE = (AUTHORIZED, CHARGING, PARKED)  # authorized at the hub: a tap or unplug ends it


class Session:
    """The session of one EVSE. `timing` is the config's "timing" dict (progress_s, ev_wait_s,
    authorize_timeout_s, start_power_w, stop_power_w, stop_hold_s), read where it is used: one
    dict for all EVSEs, no copies in each session."""

    def __init__(self, operator_id, evse_id, clock, timing, product_id=None, save_wh=1000):
        if timing["progress_s"] < _MIN_PROGRESS_S:
            raise ValueError("progress_s: must be >= 300 (OICP 5-minute rule), got %r"
                             % timing["progress_s"])
        self.operator_id = operator_id
        self.evse_id = evse_id
        self.clock = clock
        self.product_id = product_id
        self._t = timing
        self._save_wh = save_wh
        self.wh = None  # last good cumulative import reading, integer Wh
        self._clear()

    def _clear(self):
        self.state = IDLE
        self.uid = None
        self.evco = None  # the EvcoID of a remote start (uid is None then)
        self.provider = None  # its ProviderID
        self.cpo = None  # its CPOPartnerSessionID, if the hub gave one
        self.product = self.product_id  # PartnerProductID: the EVSE's, or the remote start's
        self.stopper = None  # a card waiting for its AuthorizeStop answer: (uid, ticks asked)
        self.session_id = None
        self.stop_uids = ()
        self.session_start = None
        self.charging_start = None
        self.charging_end = None  # when energy flow ended (parked), None while it flows
        self.meter_start = None
        self._saved_wh = None  # the latest reading on flash: a restart bills at least this
        self._low = None  # (ticks, stamp, Wh) when power first fell to stop_power_w or below
        self.between = []
        # When the current state's timer started: the AuthorizeStart asked, the wait for the EV
        # begun; while charging, the last Progress.
        self._since = self.clock.ms()
        self._last_wall = None  # the wall ms of the last ChargingStart or Progress stamp, if real
        self._cs_ticks = None  # ChargingStart in this boot's ticks, for ChargingDuration

    # --- events -------------------------------------------------------------------------------

    def tap(self, uid):
        """A card was read: start, stop, or refuse."""
        if self.state == IDLE:
            path, body = oicp.authorize_start(self.operator_id, uid, evse_id=self.evse_id,
                                              product_id=self.product_id)
            self._clear()
            self.state = AUTHORIZING
            self.uid = uid
            self.session_start = self.clock.stamp()
            return [("authorize", path, body), ("show", "authorizing")]
        if self.state in _LIVE and (uid == self.uid or uid in self.stop_uids):
            return self._stop("stopped by card")
        if self.state in _LIVE and self.stopper is None:
            # Not the starting card: only the hub can say whether it may stop this session.
            path, body = oicp.authorize_stop(self.operator_id, self.session_id, uid,
                                             evse_id=self.evse_id, cpo_session_id=self.cpo)
            self.stopper = (uid, self.clock.ms())
            return [("authorize", path, body), ("show", "checking card")]
        return [("show", "busy")]

    def remote_start(self, session_id, evco_id, provider_id, cpo_session_id=None,
                     product_id=None):
        """The hub started a session from an app: authorized at once, waiting for the EV."""
        if self.state != IDLE:
            return None
        self._clear()
        self.state = AUTHORIZED
        self.session_id = session_id
        self.evco = evco_id
        self.provider = provider_id
        self.cpo = cpo_session_id
        if product_id is not None:
            self.product = product_id
        self.session_start = self.clock.stamp()
        return [("save", self.snapshot()), ("show", "started remotely: plug in")]

    def remote_stop(self):
        """The hub stopped this session from an app: as a stopping tap."""
        return self._stop("stopped remotely")

    def authorized(self, reply):
        """The hub answered the AuthorizeStart or a card's AuthorizeStop (oicp_replies.Reply)."""
        if self.stopper is not None and self.state in _LIVE:
            self.stopper = None
            if reply.ok:
                return self._stop("stopped by card (hub)")
            return [("show", "not stopped: %s %s" % (reply.code, reply.description or ""))]
        if self.state != AUTHORIZING:
            return []  # a late answer to a request that already timed out
        if not reply.ok or not reply.session_id:
            reason = "not authorized (%s %s)" % (reply.code, reply.description or "")
            self._clear()
            return [("show", reason)]
        self.state = AUTHORIZED
        self.session_id = reply.session_id
        self.stop_uids = tuple(reply.stop_uids[:_MAX_STOP_UIDS])
        self._since = self.clock.ms()
        return [("save", self.snapshot()), ("show", "authorized: plug in")]

    def authorize_failed(self, reason):
        """The AuthorizeStart (or AuthorizeStop) could not be answered (link down, hub error)."""
        if self.stopper is not None and self.state in _LIVE:
            self.stopper = None
            return [("show", "not stopped: " + reason)]  # a refusal, or no answer
        if self.state != AUTHORIZING:
            return []
        self._clear()
        return [("show", "authorization failed: " + reason)]

    def meter(self, wh, watts):
        """A good meter reading: cumulative import in integer Wh and active power in W."""
        self.wh = wh
        if self.state == AUTHORIZED and watts is not None and watts >= self._t["start_power_w"]:
            return self._start()
        if self.state not in (CHARGING, PARKED):
            return []
        effects = self._flow(watts) if watts is not None else []
        if effects:
            return effects
        # Due by the ticks, and by the stamps once they are wall time: a re-sync that moved the
        # clock back holds stamps still (clock.py), and the hub measures 5 min between stamps.
        p = self._t["progress_s"] * _MS
        if self.state == CHARGING and self.clock.ms() - self._since >= p:
            w, last = self.clock.wall_ms(), self._last_wall
            if w is None or last is None or w - last >= p:
                return self._progress()
        if self._saved_wh is None or wh - self._saved_wh >= self._save_wh:
            return [("save", self.snapshot())]  # bounds what a restart with a dead meter loses
        return []

    def _flow(self, watts):
        """Energy flow ended (power at or below stop_power_w for the hold time) or restarted."""
        if self.state == PARKED and self.charging_end is None:
            pass  # drawing again after End: watch for the next stop
        elif self.state == PARKED:
            if watts < self._t["start_power_w"]:
                return []
            self.charging_end = None
            return [("save", self.snapshot()), ("show", "EV draws again")]
        if watts > self._t["stop_power_w"]:
            self._low = None
            return []
        now = self.clock.ms()
        if self._low is None:
            self._low = (now, self.clock.stamp(), self.wh)
            return []
        if now - self._low[0] < self._t["stop_hold_s"] * _MS:
            return []
        _t, self.charging_end, end_wh = self._low
        self._low = None
        if self.state == PARKED:
            return [("save", self.snapshot())]
        self.state = PARKED
        path, body = oicp.notification_end(
            self.operator_id, self.session_id, self.evse_id, self.charging_end,
            charging_start=self.charging_start, session_start=self.session_start,
            consumed=self._consumed(end_wh), meter_start=_kwh(self.meter_start),
            meter_end=_kwh(end_wh), meter_values=_kwhs(self.between), uid=self.uid,
            product_id=self.product, evco_id=self.evco, cpo_session_id=self.cpo)
        return [("journal", "End", path, body, self.snapshot()), ("show", "charged: unplug")]

    def plug(self, plugged):
        """The connector reported the EV plugged in or out."""
        if plugged and self.state == AUTHORIZED:
            return self._start()
        if not plugged and self.state in _LIVE:
            return self._stop("unplugged")
        return []

    def fault(self, connector, info):
        """A connector fault (connector=True) or a meter fault: Error, then stop."""
        if self.state not in _LIVE:
            return [("show", "fault: " + info)]
        return self._error("ConnectorError" if connector else "CriticalError", info)

    def _error(self, kind, info):
        """Error notification, then stop (a restart in between finishes the stop)."""
        path, body = oicp.notification_error(self.operator_id, self.session_id, self.evse_id,
                                             kind, info=info[:250], uid=self.uid,
                                             evco_id=self.evco, cpo_session_id=self.cpo)
        snap = self.snapshot()
        snap["p"] = _FAULTED
        snap["me"] = self.wh
        snap["fe"] = self.clock.stamp()
        return [("journal", "Error", path, body, snap)] + self._stop("fault: " + info)

    def tick(self):
        """Timers: the AuthorizeStart or AuthorizeStop answer and the wait for the EV."""
        now = self.clock.ms()
        wait = self._t["authorize_timeout_s"] * _MS
        if self.state == AUTHORIZING and (now - self._since) >= wait:
            self._clear()
            return [("cancel",), ("show", "authorization timed out")]
        if self.stopper is not None and (now - self.stopper[1]) >= wait:
            self.stopper = None
            return [("cancel",), ("show", "stop check timed out")]
        if self.state == AUTHORIZED and (now - self._since) >= self._t["ev_wait_s"] * _MS:
            if self.evco is not None:
                # Started from an app: the Error tells the provider why nothing happened.
                return self._error("ConnectorError", "EV did not start charging")
            return self._stop("EV did not start charging")
        return []

    # --- transitions ----------------------------------------------------------------------------

    def _start(self):
        self.state = CHARGING
        self.charging_start = self.clock.stamp()
        self._last_wall = self.clock.wall_ms()
        self._cs_ticks = self._since = self.clock.ms()
        self.meter_start = self.wh
        path, body = oicp.notification_start(
            self.operator_id, self.session_id, self.evse_id, self.charging_start, uid=self.uid,
            session_start=self.session_start, meter_start=_kwh(self.meter_start),
            product_id=self.product, evco_id=self.evco, cpo_session_id=self.cpo)
        return [("journal", "Start", path, body, self.snapshot()), ("show", "charging")]

    def _consumed(self, end):
        """kWh from the start reading to the reading `end` (Wh)."""
        if end is None or self.meter_start is None:
            return 0.0
        return _kwh(max(0, end - self.meter_start))

    def _duration_ms(self):
        if self._cs_ticks is not None:
            return (self.clock.ms() - self._cs_ticks)
        # Resumed after a reboot: this boot's ticks say nothing about the earlier one.
        return self._restored_duration_ms()

    def _progress(self):
        self._since = self.clock.ms()
        now = self.clock.stamp()
        self._last_wall = self.clock.wall_ms()  # taken after the stamp: never below it
        if self.wh is not None:
            self.between.append(self.wh)
            if len(self.between) > MAX_BETWEEN:
                self.between.pop(0)
        path, body = oicp.notification_progress(
            self.operator_id, self.session_id, self.evse_id, self.charging_start,
            now, duration_ms=self._duration_ms(), consumed=self._consumed(self.wh),
            uid=self.uid, session_start=self.session_start, meter_start=_kwh(self.meter_start),
            meter_values=_kwhs(self.between), product_id=self.product, evco_id=self.evco,
            cpo_session_id=self.cpo)
        return [("journal", "Progress", path, body, self.snapshot())]

    def _stop(self, reason, now=None):
        """End (if energy flowed) and the charge detail record; back to idle."""
        now = now or self.clock.stamp()
        effects = []
        if self.state == CHARGING:
            path, body = oicp.notification_end(
                self.operator_id, self.session_id, self.evse_id, now,
                charging_start=self.charging_start, session_start=self.session_start,
                session_end=now, consumed=self._consumed(self.wh),
                meter_start=_kwh(self.meter_start), meter_end=_kwh(self.wh),
                meter_values=_kwhs(self.between), uid=self.uid, product_id=self.product,
                evco_id=self.evco, cpo_session_id=self.cpo)
            snap = self.snapshot()
            snap["p"] = _STOPPING
            snap["ce"] = now
            snap["me"] = self.wh
            effects.append(("journal", "End", path, body, snap))
        # Parked: End went out when the flow ended. Authorized but no energy flowed: a 0 kWh
        # record closes the session at the hub.
        effects += self._cdr(self.charging_end or now if self.state == PARKED else now, now,
                             self.wh)
        if self.stopper is not None:
            effects.append(("cancel",))  # an AuthorizeStop not sent yet has nothing to stop
        effects.append(("show", reason))
        self._clear()
        return effects

    def _cdr(self, charging_end, session_end, meter_end):
        charged = self.charging_start is not None
        path, body = oicp.charge_detail_record(
            self.operator_id, self.session_id, self.evse_id, self.uid, self.session_start,
            session_end, self.charging_start if charged else self.session_start, charging_end,
            self._consumed(meter_end) if charged else 0.0,
            meter_start=_kwh(self.meter_start) if charged else None,
            meter_end=_kwh(meter_end) if charged else None, meter_values=_kwhs(self.between),
            product_id=self.product, cpo_session_id=self.cpo, evco_id=self.evco)
        return [("journal", "CDR", path, body, None)]

    # --- persistence ----------------------------------------------------------------------------

    def snapshot(self):
        """The small dict a reboot needs (short keys, no empty fields: it is written to flash)."""
        snap = {"p": self.state, "e": self.evse_id, "sid": self.session_id, "uid": self.uid,
                "ss": self.session_start}
        if self.state == PARKED:
            snap["ed"] = 1  # End journaled (kept when a fault rewrites the phase)
        if self.wh is not None and self.state in (CHARGING, PARKED):
            snap["w"] = self._saved_wh = self.wh
        if self.evco is not None:  # a remote start: what the hub gave, journaled before "yes"
            snap["ev"] = self.evco
            snap["pv"] = self.provider
            if self.product != self.product_id:
                snap["pp"] = self.product
        for k, v in (("cs", self.charging_start), ("ce", self.charging_end),
                     ("ms", self.meter_start), ("cpo", self.cpo),
                     ("mv", list(self.between)), ("stop", list(self.stop_uids))):
            if v is not None and v != []:
                snap[k] = v
        return snap

    def _restored_duration_ms(self):
        """ChargingDuration after a reboot, from the wall clock when both ends are known."""
        now = self.clock.now_unix()
        cs = self.charging_start
        if now is None or not cs or cs[0] == "@":
            return None
        return max(0, int((now - unix_from_iso(cs)) * _MS))


# Energy stays integer Wh in RAM, kWh text in the journal and JSON numbers on the wire: exact on
# single-precision boards, where a float holds 7 digits (20000.001 kWh would go out as 20000.0).
def _kwh(wh):
    return None if wh is None else kwh(wh)


def _kwhs(whs):
    return [kwh(w) for w in whs] or None
