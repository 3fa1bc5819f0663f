"""Power-safe journal: the durable outbox of messages, open sessions' state and dead letters."""
# File `<dir>/log`: records appended one per event, each = magic 0xA5, payload length (u16 LE),
# CRC-32 of the payload (u32 LE), payload = op byte + fields (u16 LE length + bytes each).
# A record counts once its append's close() returned (littlefs commits on close). A torn or
# corrupt stretch (power cut mid-write, FAT-like media, bit rot) fails the CRC: it is skipped and
# counted, the scan resyncs at the next magic byte, and the log is rewritten (tmp + rename)
# before the next append, so no record ever lands behind garbage.
# Compaction rewrites only live state (boot, sessions, dead letters, pending with their attempt
# counts) into `log.tmp`, then renames it over `log`: when the log has grown _MAX_LOG past the
# live state of the last compaction, or passes _IDLE_LOG plus the dead letters while nothing is
# pending and no session is open (once per session, a few dozen bytes). Never per event.
# Order is per session key: next_pending(hold) skips the sessions in `hold` (waiting for a
# retry), so one session's stuck message never delays another's. attempt() records a failed
# try in a small "T" record; a message delivered at the first try writes nothing more.
# Overflow policy: Start, End, Error, CDR are never dropped. Progress and Status are "latest
# wins": a new one supersedes a still-pending one of the same session key and kind (the older is
# never sent), and one that would make more than max_messages pending is dropped and counted
# (stats dropped_progress). can_open_session() is False once pending must-keep messages plus
# dead letters plus a reserve of 4 (Start, End, Error, CDR) per open session, the new one
# included, would exceed max_messages, or while the dead letters fill their area (_DEAD_CAP of
# them or _DEAD_BYTES): the session layer refuses the session instead.
# A Status the hub refused for good is no dead letter: it is dropped and counted (stats
# refused_status), as only an EVSE's latest status matters and the next change sends it again;
# so refused Status messages never fill the dead-letter area and never block a session.
# Dead letters: a message the hub refused for good (failed()) is copied whole into an "X" record
# (id, session key, kind, path, body, reason, time, attempts) and kept until requeue() puts it
# back as pending under a fresh id (a relay or hub that remembers the refusal by id must see a
# new request) ahead of its session's later messages, or discard() drops it. A full dead-letter
# area never drops one: the open sessions' refusals still land there (they are inside the
# max_messages reserve); only new sessions are refused. `<dir>/dead.jsonl` (one JSON object a
# line, dead_lines()) is rewritten tmp + rename whenever they change and at boot, for mpremote.
# RAM holds only a small index per pending message (sequence, kind, session token, offset in
# the log, JSON flag, attempts) and per dead letter: bodies and keys stay on flash and are read
# back with the CRC re-checked, so 100 waiting messages cost a few KB of heap. The session token
# is a 30-bit hash of the key (a small int: no heap); two sessions whose keys collide (odds
# about 1 in 50,000 with 200 sessions waiting) are ordered as one and their Progress/Status
# coalesce, which that policy allows. A record damaged on flash after load becomes a dead
# letter without its body and key ("damaged on flash").
# session_key names one charging session (e.g. its SessionID), str or int. A body is bytes (str
# is encoded) or a JSON value (stored as compact JSON, decoded by pending()). A message record
# is at most 8 KB (its dead-letter copy up to MAX_REC), which also bounds RAM while load()
# scans the log.
import json
import struct
from binascii import crc32

from micropython import const

from cpagent import once

MAGIC = const(0xA5)
HDR = const(7)
_MAX_LOG = const(8192)
_IDLE_LOG = const(1024)
_RESERVE = const(4)
_MAX_ADD = const(8192)  # a message record; its dead-letter copy adds reason, time, attempts
MAX_REC = const(8448)  # bounds RAM at boot even if a length field is corrupt
_DEAD_CAP = const(8)  # dead letters before new sessions are refused
_DEAD_BYTES = const(16384)  # ... or their records' bytes
# A record's op (its payload's first byte) is a letter:
#   "A" message added: id, key, kind, path, body[, session state as in "S"]
#   "J" the same with a JSON body
#   "B" boot: boot count, id epoch, id sequence
#   "D" delivered (or a dead letter discarded): id
#   "F" failed: id, kind, reason (older firmware; replay.py reads it as a dead letter, no body)
#   "S" session snapshot: key, state JSON ("" = closed)
#   "T" tried: id, attempts so far
#   "X" dead letter: id, key, kind, path, body, "1" if JSON, reason, time, attempts
#   "R" requeued: dead id, new id[, dead id, new id ...]
# The journal's rarer work lives beside it, each part imported for one use and dropped again
# (cpagent.once), so that its code holds no heap meanwhile: the boot's replay of the log in
# replay.py, compaction in compact.py, the dead letters' (refusal, export, requeue, discard) in
# dead.py.
KINDS = ("Start", "Progress", "End", "Error", "CDR", "Status")
_LATEST = ("Progress", "Status")
_KEEP = object()
DEAD_FILE = "dead.jsonl"


def _dumps(x):
    return json.dumps(x, separators=(",", ":"))  # no spaces: fewer flash bytes


def _fields(p):
    """The fields of a record's payload (after the op byte)."""
    f = []
    i = 1
    while i < len(p):
        j = i + 2 + (p[i] | p[i + 1] << 8)
        if j > len(p):
            raise ValueError("journal record field length")
        f.append(p[i + 2:j])
        i = j
    return f


def _token(key_json):
    """A session's token: its key's JSON hashed to a small int (no heap on MicroPython)."""
    return crc32(key_json) & 0x3FFFFFFF


def _rec(op, *fields):
    b = bytearray(HDR + 1)
    b[HDR] = ord(op)
    for x in fields:
        if isinstance(x, str):
            x = x.encode()
        if len(b) + len(x) > MAX_REC - 2:
            raise ValueError("journal record over %d bytes: body or session state too big"
                             % MAX_REC)
        b += struct.pack("<H", len(x))
        b += x
    struct.pack_into("<BHI", b, 0, MAGIC, len(b) - HDR, crc32(memoryview(b)[HDR:]))
    return b


class Journal:
    """Durable outbox over an injected fs; call load() once after construction (a new Journal
    if it raised). `stamp()` gives the time a refusal is recorded with (the charger sets it to
    its clock's; "" when unset). rand_hex() gives a new journal its id epoch (None: os.urandom's
    or random's)."""

    def __init__(self, fs, directory, max_messages=200, rand_hex=None):
        self._fs = fs
        self._dir = directory
        self._log = directory + "/log"
        self.max_messages = max_messages
        self._rand = rand_hex
        self.stamp = lambda: ""
        self.boot = 0
        self._epoch = None
        self._seq = 0
        # (seq, kind, session token, offset in log, body is JSON, attempts), send order
        self._pend = []
        # (msg id, kind, session token, offset of its X record or None, reason, body kept:
        # None if not kept (damaged on flash) else whether it is JSON, record bytes), oldest first
        self.dead = []
        self._sess = {}  # key -> state as JSON text (a copy the caller cannot mutate)
        self._size = 0
        self._live = 0  # bytes of the log right after the last compaction
        self._dirty = False  # the log may end in garbage: rewrite it before appending
        self._ready = False
        # journaled/delivered/failed: messages of this boot (the simulator's and benches' counts)
        self.stats = {"bytes_written": 0, "appends": 0, "compactions": 0,
                      "dropped_progress": 0, "bad_records": 0, "refused_status": 0,
                      "journaled": 0, "delivered": 0, "failed": 0}

    def load(self):
        """Recover the state after boot, count bad records, drop stale tmp, persist boot + 1."""
        if not self._ready:
            once("replay").load(self)
        return self

    def _boot_rec(self):
        return _rec("B", str(self.boot), self._epoch, str(self._seq))

    def _mid(self, seq):
        return "%s-%d" % (self._epoch, seq)

    def _seqof(self, mid, any_epoch=False):
        """The sequence number in a message id; -1 for an id this journal did not make."""
        i = mid.rfind("-")
        if i < 0 or not (any_epoch or mid[:i] == self._epoch) or not mid[i + 1:].isdigit():
            if any_epoch:
                raise ValueError("journal message id")
            return -1
        return int(mid[i + 1:])

    def _append(self, rec):
        """Append one record; returns its offset in the log."""
        if self._dirty:
            self._compact()
        at = self._size
        self._dirty = True  # until close() returns, the tail may be torn
        with self._fs.open(self._log, "ab") as f:
            f.write(rec)
        self._dirty = False
        self._size += len(rec)
        self.stats["appends"] += 1
        self.stats["bytes_written"] += len(rec)
        return at

    def _read(self, at, ops="AJX"):
        """The fields of the record at offset `at`, CRC re-checked (flash can rot)."""
        if at is not None:
            with self._fs.open(self._log, "rb") as f:
                f.seek(at)
                h = f.read(HDR)
                if len(h) == HDR and h[0] == MAGIC:
                    _, n, crc = struct.unpack_from("<BHI", h)
                    p = f.read(n)
                    if len(p) == n and crc32(p) == crc and chr(p[0]) in ops:
                        return _fields(p)
        raise ValueError("journal record at %s is damaged" % at)

    def _compact(self):
        """Rewrite the log as its live state (compact.py: imported for each compaction)."""
        once("compact").compact(self)

    def _tidy(self):
        if self._pend or self._sess:
            over = self._size - self._live > _MAX_LOG
        else:  # idle: only the boot record and the dead letters are live
            over = self._size - self._dead_bytes() > _IDLE_LOG
        if over:
            try:
                self._compact()
            except (OSError, MemoryError):
                # The old log is intact and complete (RAM changes only after the rename); a
                # later event retries. MemoryError: no room to load compact.py (cpagent.once)
                # or to build the new log on a fragmented heap; the record that called this
                # is on flash already, and the caller's next effects must still be carried out.
                pass

    def _index(self, seq):
        for i in range(len(self._pend)):
            if self._pend[i][0] == seq:
                return i
        return None

    def _latest(self, key, kind):
        for i in range(len(self._pend)):
            e = self._pend[i]
            if e[1] == kind and e[2] == key:
                return i
        return None

    def _enqueue(self, seq, kind, key, at, js):
        if kind in _LATEST:
            i = self._latest(key, kind)
            if i is not None:
                del self._pend[i]
        self._pend.append((seq, kind, key, at, js, 0))

    def _drop(self, seq):
        i = self._index(seq)
        if i is not None:
            del self._pend[i]

    def _forget(self, mid):
        self._drop(self._seqof(mid))
        self._unbury(mid)

    def _unbury(self, mid):
        for k in range(len(self.dead)):  # in place: replay calls it for every delivered id
            if self.dead[k][0] == mid:
                del self.dead[k]
                return  # one id is one dead letter at most

    def _bury(self, mid, kind, key, at, reason, whole, size):
        self._unbury(mid)
        self.dead.append((mid, kind, key, at, reason, whole, size))

    def _set(self, key, text):
        if text is None:
            self._sess.pop(key, None)
        else:
            self._sess[key] = text

    def add(self, session_key, kind, path, body, state=_KEEP):
        """Journal a message, and with `state` the session's snapshot (None closes it) in the same
        record; durable on return. Returns the message id, or None if dropped (policy)."""
        if kind not in KINDS:
            raise ValueError("journal kind %r: expected one of %s" % (kind, ", ".join(KINDS)))
        js = not isinstance(body, (bytes, bytearray, str))
        body = _dumps(body) if js else body
        if isinstance(body, str):
            body = body.encode()
        k = _dumps(session_key)
        tok = _token(k.encode())
        if (kind in _LATEST and self._latest(tok, kind) is None
                and len(self._pend) >= self.max_messages):
            self.stats["dropped_progress"] += 1
            if state is not _KEEP:
                self.put_session(session_key, state)  # the message goes, the snapshot stays
            return None
        mid = self._mid(self._seq + 1)
        f = (mid, k, kind, path, body)
        if state is not _KEEP:
            state = None if state is None else _dumps(state)
            f += (state or "",)
        rec = _rec("J" if js else "A", *f)
        if len(rec) > _MAX_ADD:
            raise ValueError("journal record over %d bytes: body or session state too big"
                             % _MAX_ADD)
        self._seq += 1
        at = self._append(rec)
        self._enqueue(self._seq, kind, tok, at, js)
        self.stats["journaled"] += 1
        if state is not _KEEP:
            self._set(session_key, state)
        self._tidy()
        return mid

    def _ready_pending(self, hold=()):
        """(index entry, its fields) oldest first, skipping the session tokens in `hold`; a
        record damaged on flash becomes a dead letter on the way."""
        i = 0
        while i < len(self._pend):
            e = self._pend[i]
            if e[2] in hold:
                i += 1
                continue
            try:
                f = self._read(e[3])
            except ValueError:
                once("dead").damaged(self, e)  # leaves _pend
                continue
            yield e, f
            i += 1

    def count(self):
        """How many messages are pending (cheap: no record is read)."""
        return len(self._pend)

    def pending(self, limit=None):
        """[(msg_id, kind, path, body)] oldest first (the send order); `limit`: only the first."""
        out = []
        for e, f in self._ready_pending():
            if limit is not None and len(out) >= limit:
                break
            out.append((self._mid(e[0]), e[1], f[3].decode(),
                        json.loads(f[4]) if e[4] else f[4]))
        return out

    def next_pending(self, hold=()):
        """The oldest pending message of a session not in `hold` as
        (msg_id, kind, path, body, session token, attempts), or None; the token is the same
        small int for every message of one session key."""
        for e, f in self._ready_pending(hold):
            return (self._mid(e[0]), e[1], f[3].decode(), json.loads(f[4]) if e[4] else f[4],
                    e[2], e[5])
        return None

    def delivered(self, msg_id):
        """The hub acknowledged msg_id: durably forget it (unknown id: no-op)."""
        seq = self._seqof(msg_id)
        if self._index(seq) is not None:
            self._append(_rec("D", msg_id))
            self._drop(seq)
            self.stats["delivered"] += 1
            self._tidy()

    def attempt(self, msg_id):
        """A try of msg_id got an answer to retry later: durably count it; returns the count
        (0 for an unknown id)."""
        i = self._index(self._seqof(msg_id))
        if i is None:
            return 0
        e = self._pend[i]
        self._append(_rec("T", msg_id, str(e[5] + 1)))
        self._pend[i] = e[:5] + (e[5] + 1,)
        self._tidy()
        return e[5] + 1

    def failed(self, msg_id, reason):
        """The hub refused msg_id for good: durably move it whole to the dead letters, with the
        reason, the time and its attempts (this one included); a Status is dropped instead.
        True if it became a dead letter (unknown id: no-op, False)."""
        return once("dead").failed(self, msg_id, reason)

    def requeue(self, msg_id=None):
        """Dead letters (all, or the one msg_id) back to pending under fresh ids, attempts 0,
        ahead of their sessions' later messages; durable on return (one record). Returns the
        new ids; one kept without its body stays a dead letter."""
        return once("dead").requeue(self, msg_id)

    def discard(self, msg_id):
        """Durably drop the dead letter msg_id (after exporting it); True if there was one."""
        return once("dead").discard(self, msg_id)

    @property
    def failures(self):
        """[(msg_id, kind, reason)] of the dead letters, oldest first."""
        return [(d[0], d[1], d[4]) for d in self.dead]

    def dead_full(self):
        """The dead-letter area is full: no new session until they are requeued or discarded."""
        return len(self.dead) >= _DEAD_CAP or self._dead_bytes() >= _DEAD_BYTES

    def _dead_bytes(self):
        return sum(d[6] for d in self.dead)

    def dead_lines(self):
        """Each dead letter as one line of JSON text: id, kind, path, key, reason, time,
        attempts, body (null if it was not kept); read from flash one at a time."""
        return once("dead").lines(self)

    def put_session(self, key, state):
        """Durably snapshot an open session's small dict; None closes it."""
        text = None if state is None else _dumps(state)
        if self._sess.get(key) == text:
            return
        self._append(_rec("S", _dumps(key), text or ""))
        self._set(key, text)
        self._tidy()

    def sessions(self):
        """{key: state} of the open sessions."""
        return {k: json.loads(v) for k, v in self._sess.items()}

    def can_open_session(self):
        """Admission control: room for one more session's must-keep messages, and room left
        in the dead-letter area."""
        must = len(self.dead)
        for e in self._pend:
            if e[1] not in _LATEST:
                must += 1
        return (not self.dead_full()
                and must + _RESERVE * (len(self._sess) + 1) <= self.max_messages)
