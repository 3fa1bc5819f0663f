"""The journal's dead letters: a refusal kept whole, their export, requeue and discard."""
# Rare work (the hub refused a message, a person requeues one): the Journal imports this for one
# call and drops it again (cpagent.once), so its code holds no heap while nothing is refused.
# journal.py describes the dead letters and their records.
from micropython import const

from cpagent.journal import DEAD_FILE, _dumps, _rec
from cpagent.oicp.build import numbers

_REASON = const(120)  # characters of a refusal's reason kept
_DROP_REFUSED = ("Status",)


def failed(j, msg_id, reason):
    """Journal.failed(): msg_id refused for good."""
    seq = j._seqof(msg_id)
    i = j._index(seq)
    if i is None:
        return False
    e = j._pend[i]
    if e[1] in _DROP_REFUSED:
        j.stats["refused_status"] += 1
        j.delivered(msg_id)
        return False
    reason = str(reason)[:_REASON]
    try:
        f = j._read(e[3])
        x = _rec("X", msg_id, f[1], e[1], f[3], f[4], "1" if e[4] else "", reason, j.stamp(),
                 str(e[5] + 1))
    except ValueError:
        damaged(j, e)
        return True
    at = j._append(x)
    j._drop(seq)
    j.stats["failed"] += 1
    j._bury(msg_id, e[1], e[2], at, reason, e[4], len(x))
    export(j)
    j._tidy()
    return True


def damaged(j, e):
    """Pending entry e's record failed its CRC on flash: a dead letter without its body."""
    j.stats["bad_records"] += 1
    mid = j._mid(e[0])
    x = _rec("X", mid, "null", e[1], "", "", "", "damaged on flash", j.stamp(), str(e[5]))
    at = j._append(x)
    j._drop(e[0])
    j.stats["failed"] += 1
    j._bury(mid, e[1], e[2], at, "damaged on flash", None, len(x))
    export(j)


def requeue(j, msg_id):
    """Journal.requeue()."""
    f = []
    for d in j.dead:
        if d[5] is not None and (msg_id is None or d[0] == msg_id):
            f.append(d[0])
            f.append(j._mid(j._seq + 1 + len(f) // 2))
    if not f:
        return []
    j._append(_rec("R", *f))
    revive(j, [x.encode() for x in f])
    export(j)
    j._tidy()
    return f[1::2]


def revive(j, f):
    """An "R" record's fields applied (requeue, and replay at boot)."""
    # Pairs (dead id, new id), applied last first: each lands before the first pending
    # message of its session, so a batch keeps its own order ahead of the session's rest.
    for k in range(len(f) - 2, -1, -2):
        old, new = f[k].decode(), f[k + 1].decode()
        for d in j.dead:
            if d[0] == old:
                break
        else:
            continue
        seq = j._seqof(new, True)
        j._seq = max(j._seq, seq)
        e = (seq, d[1], d[2], d[3], d[5] is True, 0)
        i = 0
        while i < len(j._pend) and j._pend[i][2] != d[2]:
            i += 1
        j._pend.insert(i, e)
        j.dead.remove(d)


def discard(j, msg_id):
    """Journal.discard()."""
    for d in j.dead:
        if d[0] == msg_id:
            j._append(_rec("D", msg_id))
            j._forget(msg_id)
            export(j)
            j._tidy()
            return True
    return False


def lines(j):
    """Journal.dead_lines(): each dead letter as one line of JSON text, its body as sent."""
    for d in j.dead:
        try:
            x = j._read(d[3], "X")
            body = "null" if d[5] is None else x[4].decode() if d[5] else _dumps(x[4].decode())
            path, key, t, n = x[3].decode(), x[1].decode(), x[7].decode(), int(x[8])
        except ValueError:
            path, key, t, n, body = "", "null", "", 0, "null"
        if d[5]:
            try:
                body = numbers(body)
            except ValueError:  # kWh text that cannot be a number: shown as it was kept
                pass
        yield '{"id":%s,"kind":%s,"path":%s,"key":%s,"reason":%s,"time":%s,"attempts":%d,' \
              '"body":%s}' % (_dumps(d[0]), _dumps(d[1]), _dumps(path), key, _dumps(d[4]),
                              _dumps(t), n, body)


def export(j):
    """Rewrite <dir>/dead.jsonl from the dead letters (tmp + rename); none: remove it."""
    fs = j._fs
    path = j._dir + "/" + DEAD_FILE
    if not j.dead:
        if DEAD_FILE in fs.listdir(j._dir):
            fs.remove(path)
        return
    with fs.open(path + ".tmp", "wb") as f:
        for line in lines(j):
            b = line.encode() + b"\n"
            f.write(b)
            j.stats["bytes_written"] += len(b)
    fs.rename(path + ".tmp", path)
