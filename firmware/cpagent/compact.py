"""The journal's compaction: its live state rewritten into a new log (tmp + rename)."""
# Journal._compact() imports this module for each compaction (once per session or per 8 KB of
# log, see journal.py) and drops it again (cpagent.once): between compactions its code holds
# no heap.
from cpagent import once
from cpagent.journal import _dumps, _rec


def compact(j):
    """Journal._compact(): the live state into `log.tmp`, renamed over `log`."""
    # Live state only: boot, sessions, dead letters, then each pending message copied from
    # the old log under its current id, without its session-state field (the S records
    # above are newer), and its attempts. A message whose record fails its CRC becomes a
    # dead letter without its body after the others; RAM changes only once the rename made
    # the new log the real one. An OSError aborts the compaction and leaves the old log.
    tmp = j._log + ".tmp"
    n = 0
    keep = []
    dead = []
    bad = []
    with j._fs.open(tmp, "wb") as f:
        for r in _head(j):
            f.write(r)
            n += len(r)
        for d in j.dead:
            r, d = _dead_rec(j, d)
            f.write(r)
            dead.append(d[:3] + (n,) + d[4:])
            n += len(r)
        for e in j._pend:
            mid = j._mid(e[0])
            try:
                fl = j._read(e[3])
                recs = [_rec("J" if e[4] else "A", mid, *fl[1:5])]
            except ValueError:
                bad.append((mid, e[1], e[2], None, "damaged on flash", None, 0))
                continue
            if e[5]:
                recs.append(_rec("T", mid, str(e[5])))
            keep.append(e[:3] + (n,) + e[4:])
            for r in recs:
                f.write(r)
                n += len(r)
        for b in bad:
            r, b = _dead_rec(j, b)
            f.write(r)
            dead.append(b[:3] + (n,) + b[4:])
            n += len(r)
    j._fs.rename(tmp, j._log)
    j._pend = keep
    j.dead = dead
    j.stats["bad_records"] += len(bad)
    j._size = j._live = n
    j._dirty = False
    j.stats["compactions"] += 1
    j.stats["bytes_written"] += n
    if bad:
        once("dead").export(j)


def _head(j):
    yield j._boot_rec()
    for k in j._sess:
        yield _rec("S", _dumps(k), j._sess[k])


def _dead_rec(j, d):
    """The X record of dead letter d: copied from flash, or without its body if damaged."""
    try:
        return _rec("X", *j._read(d[3], "X")), d
    except ValueError:
        r = "damaged on flash" if d[3] is not None else d[4]
        x = _rec("X", d[0], "null", d[1], "", "", "", r, "", "0")
        return x, (d[0], d[1], d[2], None, r, None, len(x))
