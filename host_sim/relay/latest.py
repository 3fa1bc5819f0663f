"""Each EVSE's newest charger status the hub took, shared by every relay through retained records.

A charger's status message carries its journal id, "<epoch>-<seq>": the epoch (8 hex digits) is
kept for the journal's life, seq only grows, also across reboots (firmware journal.py). A
message redelivered late (a relay died holding it, the charger's journal had superseded it and
another relay pushed the newer one) must not overwrite the newer status at the hub. So the relay
that pushed a status the hub accepted publishes, before the answer, a retained QoS 1 record on
`relay/evse-status/<charger>`: {"v": 1, "evses": {"<EvseID>": "<journal id>", ...}} (every
EVSE of that charger it knows); every relay subscribes to `relay/evse-status/+` and drops a
status with the same epoch and a lower seq than the one recorded for its EVSE. Another epoch (a
charger whose journal was wiped) is never older; an id of another form is not filtered.
"""
import json

TOPIC = "relay/evse-status/"
_HEX = frozenset("0123456789abcdef")
_EPOCH = 8  # hex digits: the journal's rand_hex(4)


def order(msg_id):
    """(epoch, seq) of a charger's journal id, or None for an id of another form."""
    if not isinstance(msg_id, str):
        return None
    epoch, _, seq = msg_id.partition("-")
    if (len(epoch) != _EPOCH or not set(epoch) <= _HEX or not seq.isdigit()
            or not seq.isascii() or len(seq) > 18 or (seq[0] == "0" and seq != "0")):
        return None
    return epoch, int(seq)


def older(a, b):
    """True when journal id a is of b's epoch with a lower seq (else False, whatever they are)."""
    oa, ob = order(a), order(b)
    return oa is not None and ob is not None and oa[0] == ob[0] and oa[1] < ob[1]


def topic(charger):
    return TOPIC + charger


class Latest:
    """(charger, EvseID) -> journal id of the newest status the hub took, for the configured
    chargers' EVSEs only (chargers: Config.chargers). Overflow policy: none needed, the map
    never holds more than the config's EVSEs; a record naming others is ignored for them."""

    def __init__(self, chargers):
        self.chargers = chargers
        self.ids = {}  # charger -> {EvseID: journal id}

    def newer(self, charger, evse, msg_id):
        """The recorded id that makes msg_id stale for (charger, evse), or None."""
        had = self.ids.get(charger, {}).get(evse)
        return had if had is not None and older(msg_id, had) else None

    def learn(self, charger, evse, msg_id):
        """msg_id's status of evse was taken: True if that changed the record (an id of
        another form, an older one, or one not configured changes nothing)."""
        c = self.chargers.get(charger)
        if c is None or evse not in c["evses"] or order(msg_id) is None:
            return False
        mine = self.ids.setdefault(charger, {})
        had = mine.get(evse)
        if had == msg_id or (had is not None and older(msg_id, had)):
            return False
        mine[evse] = msg_id  # newer, or another epoch: the journal was wiped
        return True

    def on_record(self, charger, payload):
        """A retained record from the broker (empty: deleted, kept here: it only weakens the
        filter). Raises ValueError if malformed."""
        if not payload:
            return
        doc = json.loads(payload)
        evses = doc.get("evses") if isinstance(doc, dict) else None
        if not isinstance(evses, dict) or doc.get("v") != 1 \
                or not all(isinstance(v, str) for v in evses.values()):
            raise ValueError("EVSE status record %s: expected {v: 1, evses: {EvseID: id}}, "
                             "got %r" % (charger, payload[:80]))
        for evse, msg_id in evses.items():
            self.learn(charger, evse, msg_id)

    def record(self, charger):
        """The payload of charger's record: every EVSE of it known here."""
        return json.dumps({"v": 1, "evses": dict(sorted(self.ids.get(charger, {}).items()))},
                          separators=(",", ":")).encode()

    def known(self):
        """The chargers with a record: republished to a broker that lost them."""
        return [c for c, m in self.ids.items() if m]
