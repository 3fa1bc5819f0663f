"""Boot-only: the journal's log read back into its state (Journal.load)."""
# Journal.load() imports this module for one call and drops it again (cpagent.once): code that
# runs once per boot holds no heap for the agent's life (from .mpy its bytecode, frozen its
# function objects). The record format is journal.py's.
import json
import struct
from binascii import crc32, hexlify

from cpagent import once
from cpagent.journal import DEAD_FILE, HDR, KINDS, MAGIC, MAX_REC, _fields, _token


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
        once("dead").export(j)  # a cut may have come between an X record and the file
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
        once("dead").revive(j, f)
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
