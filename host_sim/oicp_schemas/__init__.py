"""JSON Schemas (draft 2020-12) of the OICP 2.3 requests the agent builds and replies it parses.

`validator("ChargeDetailRecord").validate(body)` checks a body; names are the file names here
without `.json` (see NAMES). The schemas share `common.json` through relative `$ref`s.
"""
import functools
import json
import os

from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

_DIR = os.path.dirname(os.path.abspath(__file__))
NAMES = tuple(sorted(n[:-5] for n in os.listdir(_DIR) if n.endswith(".json")))


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
