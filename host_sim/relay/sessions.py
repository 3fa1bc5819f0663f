"""Which charger owns which SessionID, shared by every relay through retained broker records.

The relay that forwards a hub's Authorized answer publishes, before the answer itself, a
retained QoS 1 record on `relay/sessions/<SessionID>`: {"v": 1, "charger": "<id>"}. Every relay
subscribes to `relay/sessions/+` and keeps the records in a capped map, so the owner is known
to all processes of a group and to a relay that restarts (the broker hands the retained records
to each new subscription). Once the session's CDR was accepted the record is published again
with "closed": true and a message expiry (closed_keep_s), after which the broker drops it: the
owner's late retries (a lost reply) still pass meanwhile. docs/relay.md lists the failure modes.
"""
import collections
import json
import time

TOPIC = "relay/sessions/"


def topic(sid):
    return TOPIC + sid


def record(charger, closed=False):
    """The payload of a record."""
    doc = {"v": 1, "charger": charger}
    if closed:
        doc["closed"] = True
    return json.dumps(doc, separators=(",", ":")).encode()


class Owners:
    """SessionID -> charger id. check() says whether a charger may send for a SessionID.

    Overflow policy: past `cap` records the oldest is forgotten (a later message for it is then
    unknown: answered "not reached" for unknown_wait_s, then refused); the first-seen times of
    unknown sessions are capped the same way (a forgotten one starts its wait again)."""

    def __init__(self, cap=200_000, unknown_wait_s=120.0, closed_keep_s=7 * 86400.0,
                 clock=time.monotonic):
        self.cap, self.unknown_wait_s, self.closed_keep_s = cap, unknown_wait_s, closed_keep_s
        self.clock = clock
        self.owner = collections.OrderedDict()   # sid -> (charger, closed at or None)
        self.unknown = collections.OrderedDict()  # (charger, sid) -> first seen
        self.synced = False  # True once this process has had every retained record

    def learn(self, sid, charger, closed=False):
        """A record, ours or another relay's. False when sid belongs to another charger
        (the record is then not changed)."""
        had = self.owner.get(sid)
        if had is not None and had[0] != charger:
            return False
        self.owner[sid] = (charger, self.clock() if closed else None)
        self.owner.move_to_end(sid)
        self.unknown.pop((charger, sid), None)
        while len(self.owner) > self.cap:
            self.owner.popitem(last=False)
        return True

    def on_record(self, sid, payload):
        """A retained record from the broker (empty: deleted). Raises ValueError if malformed."""
        if not payload:
            self.owner.pop(sid, None)
            return
        doc = json.loads(payload)
        charger = doc.get("charger") if isinstance(doc, dict) else None
        if doc.get("v") != 1 or not isinstance(charger, str) or not charger:
            raise ValueError("session record %s: expected {v: 1, charger: id}, got %r"
                             % (sid, payload[:80]))
        had = self.owner.get(sid)
        if had is not None and had[0] != charger:
            raise ValueError("session record %s names charger %s, already %s's"
                             % (sid, charger, had[0]))
        self.learn(sid, charger, doc.get("closed") is True)

    def check(self, charger, sid):
        """None if charger may send for sid, else ("other", why) (another charger's: 400),
        ("wait", why) (unknown yet: status 0, not reached, the charger retries) or
        ("refuse", why) (unknown for unknown_wait_s: 400, for good)."""
        now = self.clock()
        had = self.owner.get(sid)
        if had is not None and had[1] is not None and now - had[1] > self.closed_keep_s:
            del self.owner[sid]
            had = None
        if had is not None:
            if had[0] == charger:
                return None
            return "other", "SessionID %s belongs to another charger" % sid
        if not self.synced:
            return "wait", "SessionID %s: the relay is still loading its session records" % sid
        first = self.unknown.setdefault((charger, sid), now)
        while len(self.unknown) > self.cap:
            self.unknown.popitem(last=False)
        if now - first < self.unknown_wait_s:
            return "wait", ("SessionID %s is not known to the relay yet (refused after %g s)"
                            % (sid, self.unknown_wait_s))
        return "refuse", ("SessionID %s was not authorized through charger %s"
                          % (sid, charger))

    def open_records(self):
        """[(sid, charger)] of the sessions not closed: republished to a broker that lost them."""
        return [(s, c) for s, (c, closed) in self.owner.items() if closed is None]
