"""Boot-only: the journal's log read back into its state, the charger's sessions resumed."""
# Journal.load() and Charger.boot() import this module and drop it again when done
# (cpagent.forget): code that runs once per boot holds no heap for the agent's life (from .mpy
# its bytecode, frozen its function objects). The record format is journal.py's; the ops are
# compared as the letters it names them by.
import json
import struct
from binascii import crc32, hexlify

from cpagent.charger import _AUTH
from cpagent.journal import DEAD_FILE, HDR, KINDS, MAGIC, MAX_REC, _fields, _token
from cpagent.session import _FAULTED, _STOPPING, AUTHORIZED, CHARGING, IDLE, MAX_BETWEEN, PARKED


def load(j):
    """Journal.load(): recover its state, count bad records, drop stale tmp, persist boot + 1."""
    fs = j._fs
    fs.mkdir(j._dir)
    names = fs.listdir(j._dir)
    for n in names:
        if n.endswith(".tmp"):  # a rewrite cut before its rename: the old file is intact
            fs.remove(j._dir + "/" + n)
    if "log" in names:
        with fs.open(j._log, "rb") as f:
            _scan(j, f)
    else:
        j._dirty = True
    j.boot += 1
    if j._epoch is None:
        j._epoch = (j._rand or _rand_hex)()
    for d in j.dead:  # older firmware's failures: rewritten as X records below
        if d[3] is None:
            j._dirty = True
    if j._dirty:
        j._compact()
    else:
        j._append(j._boot_rec())
        j._tidy()
    if j.dead or DEAD_FILE in names:
        j._export()  # a cut may have come between an X record and the file
    j._ready = True


def _rand_hex():
    try:
        from os import urandom

        r = urandom(4)
    except ImportError:  # the webassembly port has no os.urandom
        from random import getrandbits

        r = getrandbits(32).to_bytes(4, "big")
    return hexlify(r).decode()


def _scan(j, f):
    # Streams the log: RAM peaks at one record plus a chunk, not the whole file.
    buf = b""
    bad = False
    while True:
        buf = _fill(j, f, buf, HDR)
        if not buf:
            return
        at = j._size - len(buf)  # this record's offset in the file
        if buf[0] == MAGIC and len(buf) >= HDR:
            _, e, crc = struct.unpack_from("<BHI", buf)
            e += HDR
            if e <= MAX_REC:
                buf = _fill(j, f, buf, e)
                if len(buf) >= e and crc32(memoryview(buf)[HDR:e]) == crc:
                    try:
                        _apply(j, buf[HDR:e], at, e)
                    except (ValueError, IndexError, KeyError, TypeError):
                        j.stats["bad_records"] += 1
                        j._dirty = True
                    buf = buf[e:]
                    bad = False
                    continue
        if not bad:
            j.stats["bad_records"] += 1
            j._dirty = bad = True
        e = buf.find(b"\xa5", 1)  # resync at the next magic byte
        buf = buf[e:] if e > 0 else b""


def _fill(j, f, buf, k):
    while len(buf) < k:
        c = f.read(256)
        if not c:
            break
        j._size += len(c)
        buf += c
    return buf


def _apply(j, p, at, size):
    f = _fields(p)
    op = chr(p[0])
    if op in "AJ":
        mid = f[0].decode()
        if j._epoch is None:  # the boot record was lost: keep the ids the hub has seen
            j._epoch = mid[:mid.rfind("-")]
        seq = j._seqof(mid, True)
        j._seq = max(j._seq, seq)
        kind = KINDS[KINDS.index(f[2].decode())]
        j._enqueue(seq, kind, _token(f[1]), at, op == "J")
        if len(f) > 5:
            j._set(json.loads(f[1]), f[5].decode() or None)
    elif op == "D":
        j._forget(f[0].decode())
    elif op == "T":
        i = j._index(j._seqof(f[0].decode()))
        if i is not None:
            j._pend[i] = j._pend[i][:5] + (int(f[1]),)
    elif op == "X":
        mid = f[0].decode()
        j._drop(j._seqof(mid))
        j._bury(mid, f[2].decode(), _token(f[1]), at, f[6].decode(),
                None if not f[3] else f[5] == b"1", size)
    elif op == "R":
        j._revive(f)
    elif op == "F":  # older firmware's failure: id, kind, reason; a dead letter without body
        mid = f[0].decode()
        i = j._index(j._seqof(mid))
        key = None if i is None else j._pend[i][2]
        j._drop(j._seqof(mid))
        j._bury(mid, f[1].decode(), key, None, f[2].decode(), None, 0)
    elif op == "S":
        j._set(json.loads(f[0]), f[1].decode() or None)
    elif op == "B":
        j.boot = int(f[0])
        j._epoch = f[1].decode()
        j._seq = max(j._seq, int(f[2]))
    else:
        raise ValueError("journal record op")


def boot(ch, readings):
    """Charger.boot(): the journal loaded, its open sessions resumed (`readings`: import Wh per
    EVSE or None), AuthorizeStarts left by a restart resolved or kept as orphans, each EVSE's
    status journaled once."""
    ch.journal.load()
    asked = {}
    for key, snap in ch.journal.sessions().items():
        if isinstance(key, str) and key[:len(_AUTH)] == _AUTH:
            asked[key] = snap
            continue
        i = ch._index(snap.get("e"))
        if i is None:
            continue  # an EVSE removed from the config: its messages still drain
        ch._apply(i, restore(ch.evses[i], snap, readings[i]))
    for key, snap in asked.items():
        i = ch._index(snap["b"].get("EvseID"))
        if i is not None and ch.evses[i].state != IDLE:
            ch.journal.put_session(key, None)  # its session was journaled: resolved
        else:
            ch._orphans[key] = (snap["p"], snap["b"])
    for i in range(len(ch.evses)):
        ch._status(i)  # each EVSE's status once: the far end may not know it


def restore(s, snap, wh):
    """Resume Session s after a reboot from a snapshot and the meter's cumulative register now
    (Wh); returns its effects (a stop that a power cut interrupted is finished)."""
    s._clear()
    # Never bill below a reading already journaled (Start, Progress, a saved one): a dead
    # meter at boot, or one that restarted its count, leaves the latest of those.
    mv = snap.get("mv") or ()
    known = [v for v in (snap.get("w"), snap.get("me"), snap.get("ms"),
                         mv[-1] if mv else None) if v is not None]
    last = max(known) if known else None
    s.wh = wh if last is None or (wh is not None and wh >= last) else last
    s.session_id = snap["sid"]
    s.uid = snap["uid"]
    s.evco = snap.get("ev")
    s.provider = snap.get("pv")
    s.cpo = snap.get("cpo")
    s.product = snap.get("pp", s.product_id)
    s.stop_uids = tuple(snap.get("stop") or ())
    s.session_start = snap["ss"]
    s.charging_start = snap.get("cs")
    s.charging_end = snap.get("ce")
    s.meter_start = snap.get("ms")
    s.between = list(mv)[-MAX_BETWEEN:]
    phase = snap["p"]
    if phase == _STOPPING:
        # End is journaled; only the charge detail record is missing.
        s.state = CHARGING
        effects = s._cdr(snap["ce"], snap["ce"], snap.get("me"))
        s._clear()
        return effects + [("show", "session closed after restart")]
    if phase == _FAULTED:
        # Close with what was known at the fault, not with readings taken after the reboot.
        s.state = (PARKED if snap.get("ed") else CHARGING) if s.charging_start else AUTHORIZED
        if snap.get("me") is not None:
            s.wh = snap["me"]
        return s._stop("fault before restart", snap.get("fe"))
    s.state = phase if phase in (CHARGING, PARKED) else AUTHORIZED
    return [("show", "session resumed")]
