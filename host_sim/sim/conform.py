"""The hub checked, not only the charger: each 2xx reply against the OICP 2.3 schemas of
host_sim/oicp_schemas and the spec's rules a charger can see.

Rules beyond the schemas: an Authorized AuthorizeStart carries the SessionID the later messages
use; Result true goes with code 000 and code 000 with Result true (or Authorized); the answer
comes within the limit (default 10 s: what OICP 2.3 gives a partner's answer, network
included, for the remote start/stop calls; the spec names no other).
"""
import json

from host_sim import oicp_schemas

ANSWER_MS = 10000
_SCHEMA = {"AuthorizeStart": "AuthorizationStart", "AuthorizeStop": "AuthorizationStop"}


def _where(err):
    return ".".join(str(p) for p in err.absolute_path) or "reply"


def _schema_issue(err):
    """One schema error, short (an enum error would list the whole code table)."""
    if err.validator == "enum":
        return "%s: %s is not in the spec's table" % (_where(err), json.dumps(err.instance)[:40])
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        where = _where(err)
        return "%s missing" % (missing if where == "reply" else where + "." + missing)
    return "%s: %s" % (_where(err), err.message[:160])


class Checker:
    """check(exchange) -> a list of texts, one per non-conformance of the hub's reply."""

    def __init__(self, answer_ms=ANSWER_MS):
        self.answer_ms = answer_ms

    def __call__(self, x):
        out = []
        if x.status is not None and x.ms > self.answer_ms:
            out.append("answered later than %d ms" % self.answer_ms)
        if x.status is None or not 200 <= x.status < 300 or x.raw is None:
            return out  # no reply, or an HTTP error: its body is not an OICP message
        try:
            obj = json.loads(x.raw)
        except ValueError:
            return out + ["reply is not JSON"]
        if not isinstance(obj, dict):
            return out + ["reply is not a JSON object"]
        name = _SCHEMA.get(x.op, "Acknowledgement")
        errors = sorted(oicp_schemas.inlined(name).iter_errors(obj),
                        key=lambda e: list(e.absolute_path))
        out += ["%s: %s" % (name, _schema_issue(e)) for e in errors]
        sc = obj.get("StatusCode")
        code = sc.get("Code") if isinstance(sc, dict) else None
        status = obj.get("AuthorizationStatus")
        if x.op == "AuthorizeStart" and status == "Authorized" and not obj.get("SessionID"):
            out.append("Authorized without a SessionID (the session's messages need one)")
        ok = obj.get("Result") is True or status == "Authorized"
        if code is not None and ok != (code == "000"):
            out.append("%s with StatusCode %s" % ("Result true" if obj.get("Result") is True
                                                  else status or "Result false", code))
        return out
