"""Remote start/stop from Hubject to a charger: the command down, its answer back, within a bound.

handle() runs in the CPO endpoint's request thread and blocks until the charger answered, the
bound passed, or the answer was known without asking (offline, unknown EVSE, a repeat). The
charger contract (docs/mqtt.md "Remote commands"): down {"v":1,"cmd":..,"cid":..,"deadline":..}
on cp/<id>/down, the answer {"v":1,"reply":cid,"code","info"} on cp/<id>/up. A cid is
"<relay client id>~<n>": an answer the broker's shared subscription hands to another relay of
the group is passed on to relay/replies/<client id>, which only the asking relay reads.
"""
import collections
import json
import logging
import threading
import time

log = logging.getLogger("relay.cpo")
REPLIES = "relay/replies/"
STATUS = "cp/+/status"
OPS = {"AuthorizeRemoteStart": "remote_start", "AuthorizeRemoteStop": "remote_stop"}
# Answers kept for repeats (same operation, SessionID, EvseID); the oldest goes past this.
_KEEP = 4096
_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Call:
    __slots__ = ("charger", "done", "code", "info")

    def __init__(self, charger):
        self.charger, self.done, self.code, self.info = charger, threading.Event(), None, ""


class Commands:
    """send(topic, payload) publishes QoS 1 (the relay's _send); own(sid, charger) writes the
    session ownership record (False: another charger's). deadline(charger, timeout_s) is a
    command's deadline on the charger's wall clock (unix s); .deadline may be replaced before the
    first command: the simulator's chargers keep a virtual wall clock (host_sim/sim/mqtt_path)."""

    def __init__(self, client_id, chargers, timeout_s, send, own, metrics, clock=time.monotonic,
                 deadline=None):
        self.client_id, self.timeout_s = client_id, timeout_s
        self.send, self.own, self.metrics, self.clock = send, own, metrics, clock
        self.deadline = deadline or real_deadline
        self.evse_owner = dict((e, c) for c, v in chargers.items() for e in v["evses"])
        self.online = {}   # charger -> True/False from its retained status (absent: never seen)
        self._lock = threading.Lock()
        self._n = 0
        self._calls = {}   # cid -> _Call waiting for the charger's answer
        self._keys = {}    # (op, sid, evse) -> _Call in flight (a repeat waits on it)
        self._answers = collections.OrderedDict()  # (op, sid, evse) -> (code, info)

    def on_status(self, charger, payload):
        """cp/<id>/status: "offline" is the will; anything else ("online", the dead-letter
        report) comes from a connected charger. Returns True when it went offline now."""
        now = payload != b"offline"
        with self._lock:
            was = self.online.get(charger)
            self.online[charger] = now
        return was is not False and not now

    def online_count(self):
        with self._lock:
            return sum(1 for v in self.online.values() if v)

    def on_reply(self, charger, doc):
        """An answer {"v":1,"reply":cid,...} from charger (its up topic) or passed on by another
        relay (charger None: the record says whose)."""
        cid = doc.get("reply")
        if not isinstance(cid, str):
            return
        owner = cid.rpartition("~")[0]
        if charger is not None and owner != self.client_id:
            # Another relay asked: it alone waits for this (its replies topic).
            self.send(REPLIES + owner, json.dumps(dict(doc, charger=charger)).encode())
            return
        charger = charger or doc.get("charger")
        with self._lock:
            call = self._calls.get(cid)
            if call is None or call.charger != charger:
                return  # late (already answered 501), a repeat, or not that charger's to answer
            del self._calls[cid]
        code = doc.get("code")
        call.code = code if isinstance(code, str) and len(code) == 3 else "501"
        call.info = str(doc.get("info", ""))[:200]
        call.done.set()

    def handle(self, op, body):
        """(code, info) for a validated AuthorizeRemoteStart/Stop body."""
        t0 = self.clock()
        code, info = self._handle(op, body)
        dt = self.clock() - t0
        self.metrics.inc("relay_remote_commands_total", op=op, code=code)
        self.metrics.inc("relay_remote_seconds_sum", dt, op=op)
        self.metrics.inc("relay_remote_seconds_count", op=op)
        for b in _BUCKETS:
            if dt <= b:
                self.metrics.inc("relay_remote_seconds_bucket", op=op, le="%g" % b)
        self.metrics.inc("relay_remote_seconds_bucket", op=op, le="+Inf")
        log.info("%s %s on %s: %s %s (%.0f ms)", op, body["SessionID"], body["EvseID"], code,
                 info, dt * 1000)
        return code, info

    def _handle(self, op, body):
        sid, evse = body["SessionID"], body["EvseID"]
        key = (op, sid, evse)
        charger = self.evse_owner.get(evse)
        if charger is None:
            return "603", "EvseID %s is not one of this CPO's" % evse
        with self._lock:
            if key in self._answers:
                self.metrics.inc("relay_remote_repeats_total", op=op)
                return self._answers[key]
            busy = self._keys.get(key)
            if busy is None:
                if not self.online.get(charger):
                    return "501", "charger %s is offline" % charger
                self._n += 1
                cid = "%s~%d" % (self.client_id, self._n)
                call = self._calls[cid] = self._keys[key] = _Call(charger)
        if busy is not None:  # the same command is with the charger: its answer is ours too
            self.metrics.inc("relay_remote_repeats_total", op=op)
            busy.done.wait(self.timeout_s + 1)
            return (busy.code, busy.info) if busy.code else self._silent(charger)
        try:
            if op == "AuthorizeRemoteStart" and not self.own(sid, charger):
                return "400", "SessionID %s belongs to another charger" % sid
            self.send("cp/%s/down" % charger, down(OPS[op], cid,
                                                   self.deadline(charger, self.timeout_s), body))
            call.done.wait(self.timeout_s)
        finally:
            with self._lock:
                self._keys.pop(key, None)
                self._calls.pop(cid, None)
                if call.code:
                    self._answers[key] = (call.code, call.info)
                    if len(self._answers) > _KEEP:
                        self._answers.popitem(last=False)
            call.done.set()  # a repeat waiting on it returns now
        return (call.code, call.info) if call.code else self._silent(charger)

    def _silent(self, charger):
        # Not remembered: Hubject's retry asks the charger again, which answers a command it
        # did carry out the same (docs/mqtt.md, "Repeats").
        return "501", "no answer from charger %s in %g s" % (charger, self.timeout_s)


def real_deadline(charger, timeout_s):
    """A production relay's: the host's clock, as the charger's (NTP-set) one."""
    return int(time.time() + timeout_s)


def down(cmd, cid, deadline, body):
    """The command's payload for cp/<id>/down (docs/mqtt.md "Remote commands")."""
    out = {"v": 1, "cmd": cmd, "cid": cid, "deadline": deadline, "session_id": body["SessionID"],
           "evse_id": body["EvseID"], "provider_id": body["ProviderID"]}
    if cmd == "remote_start":
        ident = body["Identification"]
        evco = next((v.get("EvcoID") for v in ident.values() if isinstance(v, dict)
                     and v.get("EvcoID")), None)
        out.update(evco_id=evco, cpo_session_id=body.get("CPOPartnerSessionID"),
                   product_id=body.get("PartnerProductID"))
    return json.dumps(out, separators=(",", ":")).encode()
