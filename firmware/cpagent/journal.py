"""Power-safe journal: the durable outbox of messages and open sessions' state, in one log file."""
# File `<dir>/log`: records appended one per event, each = magic 0xA5, payload length (u16 LE),
# CRC-32 of the payload (u32 LE), payload = op byte + fields (u16 LE length + bytes each).
# A record counts once its append's close() returned (littlefs commits on close). A torn or
# corrupt stretch (power cut mid-write, FAT-like media, bit rot) fails the CRC: it is skipped and
# counted, the scan resyncs at the next magic byte, and the log is rewritten (tmp + rename)
# before the next append, so no record ever lands behind garbage.
# Compaction rewrites only live state (boot, sessions, failures, pending) into `log.tmp`, then
# renames it over `log`: when the log passes _MAX_LOG, or passes _IDLE_LOG while nothing is
# pending and no session is open (once per session, a few dozen bytes). Never per event.
# Overflow policy: Start, End, Error, CDR are never dropped. Progress and Status are "latest
# wins": a new one supersedes a still-pending one of the same session key and kind (the older is
# never sent), and one that would make more than max_messages pending is dropped and counted
# (stats dropped_progress). can_open_session() is False once pending must-keep messages plus a
# reserve of 4 (Start, End, Error, CDR) per open session, the new one included, would exceed
# max_messages: the session layer refuses the session instead. failures keeps the last 8.
# RAM holds only a small index per pending message (sequence, kind, coalescing key, offset in
# the log): bodies stay on flash and pending() reads them back, re-checking the CRC, so 100
# waiting messages cost about 4 KB of heap, not 60. A record damaged on flash after load is
# moved to failures ("damaged on flash") rather than blocking the queue.
# session_key names one charging session (e.g. its SessionID), str or int. A body is bytes (str
# is encoded) or a JSON value (stored as compact JSON, decoded by pending()). A record is at
# most 8 KB, which also bounds RAM while load() scans the log.
import json
import struct
from binascii import crc32, hexlify

from micropython import const

_MAGIC = const(0xA5)
_HDR = const(7)
_MAX_LOG = const(8192)
_IDLE_LOG = const(1024)
_RESERVE = const(4)
_FAIL_CAP = const(8)
_MAX_REC = const(8192)  # bounds RAM at boot even if a length field is corrupt
_A = const(65)  # "A" message added: id, key, kind, path, body[, session state as in "S"]
_J = const(74)  # "J" the same with a JSON body
_B = const(66)  # "B" boot: boot count, id epoch, id sequence
_D = const(68)  # "D" delivered: id
_F = const(70)  # "F" failed: id, kind, reason
_S = const(83)  # "S" session snapshot: key, state JSON ("" = closed)
KINDS = ("Start", "Progress", "End", "Error", "CDR", "Status")
_LATEST = ("Progress", "Status")
_KEEP = object()


def _rand_hex():
    try:
        from os import urandom

        r = urandom(4)
    except ImportError:  # the webassembly port has no os.urandom
        from random import getrandbits

        r = getrandbits(32).to_bytes(4, "big")
    return hexlify(r).decode()


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


def _rec(op, *fields):
    b = bytearray(_HDR + 1)
    b[_HDR] = op
    for x in fields:
        if isinstance(x, str):
            x = x.encode()
        if len(b) + len(x) > _MAX_REC - 2:
            raise ValueError("journal record over %d bytes: body or session state too big"
                             % _MAX_REC)
        b += struct.pack("<H", len(x))
        b += x
    struct.pack_into("<BHI", b, 0, _MAGIC, len(b) - _HDR, crc32(memoryview(b)[_HDR:]))
    return b


class Journal:
    """Durable outbox over an injected fs; call load() once after construction (a new Journal
    if it raised)."""

    def __init__(self, fs, directory, max_messages=200, rand_hex=_rand_hex):
        self._fs = fs
        self._dir = directory
        self._log = directory + "/log"
        self.max_messages = max_messages
        self._rand = rand_hex
        self.boot = 0
        self._epoch = None
        self._seq = 0
        # (seq, kind, key if coalescing else None, offset in log, body is JSON), send order
        self._pend = []
        self._sess = {}  # key -> state as JSON text (a copy the caller cannot mutate)
        self.failures = []
        self._size = 0
        self._dirty = False  # the log may end in garbage: rewrite it before appending
        self._ready = False
        self.stats = {"bytes_written": 0, "appends": 0, "compactions": 0,
                      "dropped_progress": 0, "bad_records": 0, "dropped_failures": 0}

    def load(self):
        """Recover the state after boot, count bad records, drop stale tmp, persist boot + 1."""
        if self._ready:
            return self
        fs = self._fs
        fs.mkdir(self._dir)
        names = fs.listdir(self._dir)
        for n in names:
            if n.endswith(".tmp"):  # a compaction cut before its rename: `log` is intact
                fs.remove(self._dir + "/" + n)
        if "log" in names:
            with fs.open(self._log, "rb") as f:
                self._scan(f)
        else:
            self._dirty = True
        self.boot += 1
        if self._epoch is None:
            self._epoch = self._rand()
        if self._dirty:
            self._compact()
        else:
            self._append(self._boot_rec())
            self._tidy()
        self._ready = True
        return self

    def _scan(self, f):
        # Streams the log: RAM peaks at one record plus a chunk, not the whole file.
        buf = b""
        bad = False
        while True:
            buf = self._fill(f, buf, _HDR)
            if not buf:
                return
            at = self._size - len(buf)  # this record's offset in the file
            if buf[0] == _MAGIC and len(buf) >= _HDR:
                _, e, crc = struct.unpack_from("<BHI", buf)
                e += _HDR
                if e <= _MAX_REC:
                    buf = self._fill(f, buf, e)
                    if len(buf) >= e and crc32(memoryview(buf)[_HDR:e]) == crc:
                        try:
                            self._apply(buf[_HDR:e], at)
                        except (ValueError, IndexError, KeyError, TypeError):
                            self.stats["bad_records"] += 1
                            self._dirty = True
                        buf = buf[e:]
                        bad = False
                        continue
            if not bad:
                self.stats["bad_records"] += 1
                self._dirty = bad = True
            e = buf.find(b"\xa5", 1)  # resync at the next magic byte
            buf = buf[e:] if e > 0 else b""

    def _fill(self, f, buf, k):
        while len(buf) < k:
            c = f.read(256)
            if not c:
                break
            self._size += len(c)
            buf += c
        return buf

    def _apply(self, p, at):
        f = _fields(p)
        op = p[0]
        if op == _A or op == _J:
            mid = f[0].decode()
            if self._epoch is None:  # the boot record was lost: keep the ids the hub has seen
                self._epoch = mid[:mid.rfind("-")]
            seq = self._seqof(mid, True)
            self._seq = max(self._seq, seq)
            kind = KINDS[KINDS.index(f[2].decode())]
            key = json.loads(f[1])
            self._enqueue(seq, kind, key, at, op == _J)
            if len(f) > 5:
                self._set(key, f[5].decode() or None)
        elif op == _D:
            self._drop(self._seqof(f[0].decode()))
        elif op == _F:
            mid = f[0].decode()
            self._drop(self._seqof(mid))
            self._fail(mid, f[1].decode(), f[2].decode())
        elif op == _S:
            self._set(json.loads(f[0]), f[1].decode() or None)
        elif op == _B:
            self.boot = int(f[0])
            self._epoch = f[1].decode()
            self._seq = max(self._seq, int(f[2]))
        else:
            raise ValueError("journal record op")

    def _boot_rec(self):
        return _rec(_B, str(self.boot), self._epoch, str(self._seq))

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

    def _read(self, at):
        """The fields of the message record at offset `at`, CRC re-checked (flash can rot)."""
        with self._fs.open(self._log, "rb") as f:
            f.seek(at)
            h = f.read(_HDR)
            if len(h) == _HDR and h[0] == _MAGIC:
                _, n, crc = struct.unpack_from("<BHI", h)
                p = f.read(n)
                if len(p) == n and crc32(p) == crc and p[0] in (_A, _J):
                    return _fields(p)
        raise ValueError("journal record at %d is damaged" % at)

    def _compact(self):
        # Live state only: boot, sessions, failures, then each pending message copied from the
        # old log without its session-state field (the S records above are newer).
        # A message whose record fails its CRC is written as failed ("damaged on flash") after
        # the others; RAM changes only once the rename made the new log the real one. An
        # OSError aborts the compaction and leaves the old log in charge.
        tmp = self._log + ".tmp"
        n = 0
        keep = []
        bad = []
        with self._fs.open(tmp, "wb") as f:
            for r in self._head_records():
                f.write(r)
                n += len(r)
            for e in self._pend:
                try:
                    r = _rec(_J if e[4] else _A, *self._read(e[3])[:5])
                except ValueError:
                    bad.append((self._mid(e[0]), e[1], "damaged on flash"))
                    continue
                f.write(r)
                keep.append(e[:3] + (n, e[4]))
                n += len(r)
            for b in bad:
                r = _rec(_F, *b)
                f.write(r)
                n += len(r)
        self._fs.rename(tmp, self._log)
        self._pend = keep
        for b in bad:
            self.stats["bad_records"] += 1
            self._fail(*b)
        self._size = n
        self._dirty = False
        self.stats["compactions"] += 1
        self.stats["bytes_written"] += n

    def _head_records(self):
        yield self._boot_rec()
        for k in self._sess:
            yield _rec(_S, _dumps(k), self._sess[k])
        for e in self.failures:
            yield _rec(_F, *e)

    def _tidy(self):
        if self._size > _MAX_LOG or (self._size > _IDLE_LOG and not self._pend
                                     and not self._sess):
            try:
                self._compact()
            except OSError:
                pass  # the old log is intact and complete; a later event retries

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
        else:
            key = None  # only Progress and Status coalesce by key: no need to hold it
        self._pend.append((seq, kind, key, at, js))

    def _drop(self, seq):
        i = self._index(seq)
        if i is not None:
            del self._pend[i]

    def _fail(self, mid, kind, reason):
        self.failures.append((mid, kind, reason))
        if len(self.failures) > _FAIL_CAP:
            self.failures.pop(0)
            self.stats["dropped_failures"] += 1

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
        if (kind in _LATEST and self._latest(session_key, kind) is None
                and len(self._pend) >= self.max_messages):
            self.stats["dropped_progress"] += 1
            if state is not _KEEP:
                self.put_session(session_key, state)  # the message goes, the snapshot stays
            return None
        self._seq += 1
        mid = self._mid(self._seq)
        f = (mid, _dumps(session_key), kind, path, body)
        if state is not _KEEP:
            state = None if state is None else _dumps(state)
            f += (state or "",)
        at = self._append(_rec(_J if js else _A, *f))
        self._enqueue(self._seq, kind, session_key, at, js)
        if state is not _KEEP:
            self._set(session_key, state)
        self._tidy()
        return mid

    def pending(self, limit=None):
        """[(msg_id, kind, path, body)] oldest first (the send order); `limit`: only the first."""
        out = []
        i = 0
        while i < len(self._pend) and (limit is None or len(out) < limit):
            e = self._pend[i]
            try:
                f = self._read(e[3])
            except ValueError:
                self.stats["bad_records"] += 1
                self.failed(self._mid(e[0]), "damaged on flash")  # leaves _pend
                continue
            out.append((self._mid(e[0]), e[1], f[3].decode(),
                        json.loads(f[4]) if e[4] else f[4]))
            i += 1
        return out

    def delivered(self, msg_id):
        """The hub acknowledged msg_id: durably forget it (unknown id: no-op)."""
        seq = self._seqof(msg_id)
        if self._index(seq) is not None:
            self._append(_rec(_D, msg_id))
            self._drop(seq)
            self._tidy()

    def failed(self, msg_id, reason):
        """The hub refused msg_id for good: durably move it to .failures (unknown id: no-op)."""
        seq = self._seqof(msg_id)
        i = self._index(seq)
        if i is not None:
            kind = self._pend[i][1]
            reason = str(reason)[:60]
            self._append(_rec(_F, msg_id, kind, reason))
            self._drop(seq)
            self._fail(msg_id, kind, reason)
            self._tidy()

    def put_session(self, key, state):
        """Durably snapshot an open session's small dict; None closes it."""
        text = None if state is None else _dumps(state)
        if self._sess.get(key) == text:
            return
        self._append(_rec(_S, _dumps(key), text or ""))
        self._set(key, text)
        self._tidy()

    def sessions(self):
        """{key: state} of the open sessions."""
        return {k: json.loads(v) for k, v in self._sess.items()}

    def can_open_session(self):
        """Admission control: room for one more session's must-keep messages."""
        must = 0
        for e in self._pend:
            if e[1] not in _LATEST:
                must += 1
        return must + _RESERVE * (len(self._sess) + 1) <= self.max_messages
