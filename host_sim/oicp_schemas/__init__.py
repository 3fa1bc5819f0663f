"""JSON Schemas (draft 2020-12) of the OICP 2.3 requests the agent builds and replies it parses.

`validator("ChargeDetailRecord").validate(body)` checks a body; names are the file names here
without `.json` (see NAMES). The schemas share `common.json` through relative `$ref`s.
The mock hub and the relay check requests with the same pieces: `route(path)` (which OICP
operation a CPO path is), `request_schema(op, body)` and `schema_errors(name, body)`.
"""
import functools
import json
import os
from urllib.parse import quote, unquote

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

_DIR = os.path.dirname(os.path.abspath(__file__))
NAMES = tuple(sorted(n[:-5] for n in os.listdir(_DIR) if n.endswith(".json")))
_P = "/api/oicp/"
# (operation, path before the operator, path after it); notifications have no operator.
ROUTES = (
    ("AuthorizeStart", _P + "charging/v21/operators/", "/authorize/start"),
    ("AuthorizeStop", _P + "charging/v21/operators/", "/authorize/stop"),
    ("ChargeDetailRecord", _P + "cdrmgmt/v22/operators/", "/charge-detail-record"),
    ("PushEvseStatus", _P + "evsepush/v21/operators/", "/status-records"),
    ("PushEvseData", _P + "evsepush/v23/operators/", "/data-records"),
)
NOTIFY_PATH = _P + "notificationmgmt/v11/charging-notifications"
# What Hubject calls at the CPO (the relay's endpoint): (operation, head, tail) around the
# ProviderID. Kept apart from ROUTES: a charger never sends these.
REMOTE_ROUTES = (
    ("AuthorizeRemoteStart", _P + "charging/v21/providers/", "/authorize-remote/start"),
    ("AuthorizeRemoteStop", _P + "charging/v21/providers/", "/authorize-remote/stop"),
)
NOTIFY_TYPES = ("Start", "Progress", "End", "Error")


@functools.lru_cache(maxsize=None)
def _load(name):
    if name not in NAMES:
        raise KeyError("no OICP schema %r; have %s" % (name, ", ".join(NAMES)))
    with open(os.path.join(_DIR, name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def load(name):
    """The schema as a fresh dict (callers may change it)."""
    return json.loads(json.dumps(_load(name)))


@functools.lru_cache(maxsize=None)
def _registry():
    return Registry().with_resources(
        (_load(n)["$id"], Resource.from_contents(_load(n))) for n in NAMES)


@functools.lru_cache(maxsize=None)
def validator(name):
    """A Draft 2020-12 validator for one message, with `format` asserted where checkable."""
    schema = _load(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry(), format_checker=FormatChecker())


def route(path):
    """(operation, path OperatorID or None) for a CPO path (no query), or None if none."""
    if path == NOTIFY_PATH:
        return "ChargingNotifications", None
    return _match(path, ROUTES)


def remote_route(path):
    """(operation, path ProviderID) for a path Hubject calls at the CPO, or None."""
    return _match(path, REMOTE_ROUTES)


def remote_path(op, provider_id):
    """The path of a remote operation for provider_id (quoted as Hubject quotes it)."""
    for name, head, tail in REMOTE_ROUTES:
        if name == op:
            return head + quote(provider_id, safe="") + tail
    raise KeyError("no remote operation %r" % op)


def _match(path, routes):
    for op, head, tail in routes:
        if path.startswith(head) and path.endswith(tail):
            middle = path[len(head):len(path) - len(tail)]
            if middle and "/" not in middle:
                return op, unquote(middle)
    return None


def request_schema(op, body):
    """The schema name of a request of operation op, or None for a notification whose Type is
    not one of NOTIFY_TYPES."""
    if op != "ChargingNotifications":
        return op
    t = body.get("Type") if isinstance(body, dict) else None
    return "ChargingNotification" + t if isinstance(t, str) and t in NOTIFY_TYPES else None


def _inline(node, doc):
    # Replace each $ref ("common.json#/$defs/X", "#/$defs/X") by its target, recursively: the
    # same checks, without the per-request $ref resolution that dominated the hub's CPU time.
    if isinstance(node, list):
        return [_inline(n, doc) for n in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if ref is not None:
        file, _, pointer = ref.partition("#")
        target_doc = _load(file[:-5]) if file else doc
        target = target_doc
        for part in pointer.strip("/").split("/"):
            target = target[part]
        rest = dict((k, v) for k, v in node.items() if k != "$ref")
        return dict(_inline(target, target_doc), **_inline(rest, doc))
    return dict((k, v if k == "$defs" else _inline(v, doc)) for k, v in node.items())


@functools.lru_cache(maxsize=None)
def inlined(name):
    """validator(name) with every $ref inlined: the same errors, found several times faster."""
    schema = _inline(load(name), load(name))
    schema.pop("$defs", None)
    return Draft202012Validator(schema, format_checker=FormatChecker())


def schema_errors(name, doc):
    """[(json_path, message)] with the JSON path naming the field itself, even when missing."""
    out, seen = [], set()
    for e in inlined(name).iter_errors(doc):
        inst = e.instance if isinstance(e.instance, dict) else {}
        if e.validator == "required":
            found = [(e.json_path + "." + k, "is required") for k in e.validator_value
                     if k not in inst]
        elif e.validator == "additionalProperties":
            known = e.schema.get("properties", {})
            found = [(e.json_path + "." + k, "is not a field of this message")
                     for k in inst if k not in known]
        elif e.validator == "anyOf" and all("required" in s for s in e.validator_value):
            names = "|".join(k for s in e.validator_value for k in s["required"])
            found = [(e.json_path + "." + names, "give at least one of " + names)]
        else:
            found = [(e.json_path, e.message)]
        for f in found:
            if f not in seen:
                seen.add(f)
                out.append(f)
    return out
