"""The fleet's EVSE master data (PushEvseData v2.3) from the relay config: checked, then pushed.

Config section (optional):
  "evse_data": {"full_load_at_start": true,
                "operators": {"DE*ABC": {"name": "ABC Charging", "records": [EvseDataRecord]}}}
Each operator's records are checked at config load as the body the relay will send, with the
shared schema (host_sim/oicp_schemas/PushEvseData.json, the mock hub's own check); an error
names the config field (`evse_data.operators.DE*ABC.records[0].Address.Country: ...`), and
every EvseID must be one of that operator's chargers' EVSEs. So a bad record stops the relay
before it connects to anything. The pushes themselves go through the relay's queue (one push
of an operation per operator at a time, the evse_data_per_min limit).
"""
import json
from urllib.parse import quote

from host_sim import oicp_schemas

_BATCH = 500  # records per update push; a fullLoad is one push (it replaces the operator's)


class EvseDataError(ValueError):
    pass


def check(doc, chargers):
    """The validated section: {"full_load_at_start": bool, "operators": {op: (name, [rec])}};
    raises EvseDataError naming the field."""
    if not isinstance(doc, dict) or set(doc) - {"full_load_at_start", "operators"}:
        raise EvseDataError("evse_data: expected {full_load_at_start, operators}, got %s"
                            % (sorted(doc) if isinstance(doc, dict) else type(doc).__name__))
    full = doc.get("full_load_at_start", True)
    if not isinstance(full, bool):
        raise EvseDataError("evse_data.full_load_at_start: expected true or false, got %r"
                            % (full,))
    ops = doc.get("operators", {})
    if not isinstance(ops, dict):
        raise EvseDataError("evse_data.operators: expected {OperatorID: {name, records}}")
    mine = {}
    for c in chargers.values():
        mine.setdefault(c["operator_id"], set()).update(c["evses"])
    out = {}
    for op, v in ops.items():
        f = "evse_data.operators.%s" % op
        if op not in mine:
            raise EvseDataError("%s: no charger of this relay has operator %s" % (f, op))
        if not isinstance(v, dict) or set(v) != {"name", "records"}:
            raise EvseDataError("%s: expected {name, records}" % f)
        records = v["records"]
        if not isinstance(records, list):
            raise EvseDataError("%s.records: expected a list of EvseDataRecord" % f)
        _path, body = push(op, v["name"], records, "fullLoad")
        errs = oicp_schemas.schema_errors("PushEvseData", body)
        if errs:
            where, what = errs[0]
            where = where.replace("$.OperatorEvseData.EvseDataRecord", f + ".records")
            where = where.replace("$.OperatorEvseData.OperatorName", f + ".name")
            raise EvseDataError("%s: %s" % (where, what[:200]))
        seen = set()
        for i, r in enumerate(records):
            e = r["EvseID"]
            if e not in mine[op]:
                raise EvseDataError("%s.records[%d].EvseID: %s is not an EVSE of operator %s's "
                                    "chargers" % (f, i, e, op))
            if e in seen:
                raise EvseDataError("%s.records[%d].EvseID: %s is listed twice" % (f, i, e))
            seen.add(e)
        out[op] = (v["name"], records)
    return {"full_load_at_start": full, "operators": out}


def push(operator, name, records, action):
    """The PushEvseData v2.3 path and body."""
    path = "/api/oicp/evsepush/v23/operators/%s/data-records" % quote(operator, safe="*")
    return path, {"ActionType": action, "OperatorEvseData": {
        "OperatorID": operator, "OperatorName": name, "EvseDataRecord": list(records)}}


def at_start(section):
    """[(operator, path, body)] to push when the relay starts: a fullLoad per operator."""
    if not section or not section["full_load_at_start"]:
        return []
    return [(op,) + push(op, name, recs, "fullLoad")
            for op, (name, recs) in sorted(section["operators"].items())]


def changes(old, new):
    """[(operator, path, body)] that take the hub from old's records to new's: updates for the
    new and changed ones (in batches), a delete for the removed ones."""
    out = []
    old_ops = (old or {}).get("operators", {})
    for op, (name, recs) in sorted((new or {}).get("operators", {}).items()):
        before = dict((r["EvseID"], r) for r in old_ops.get(op, (None, []))[1])
        changed = [r for r in recs if _canon(before.get(r["EvseID"])) != _canon(r)]
        for i in range(0, len(changed), _BATCH):
            out.append((op,) + push(op, name, changed[i:i + _BATCH], "update"))
        gone = set(before) - set(r["EvseID"] for r in recs)
        if gone:
            out.append((op,) + push(op, name, [before[e] for e in sorted(gone)], "delete"))
    return out


def _canon(r):
    return None if r is None else json.dumps(r, sort_keys=True)
