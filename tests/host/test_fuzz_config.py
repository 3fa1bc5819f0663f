"""Fuzzes config.load(): any input gives a self-consistent dict or a ConfigError naming a path."""
import copy
import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cpagent import config
from cpagent.config import ConfigError, load

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
with open(os.path.join(ROOT, "firmware", "config.example.json")) as f:
    EXAMPLE = json.load(f)
MQTT = dict(EXAMPLE, uplink={"kind": "mqtt", "host": "broker", "tls": True, "ca": "ca.pem"})
CUSTOM = dict(EXAMPLE, meter={"model": "custom", "map": {"power": {"addr": 12, "type": "f32"},
                                                       "energy": {"addr": 72, "type": "f32"}}})
RUNS = {"n": 0}
FAST = settings(max_examples=400, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow])

scalars = st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats() \
    | st.text(max_size=12) | st.sampled_from(["none", "custom", "mqtt", "http", "pn532", "N",
                                              "DE*ABC", "DE*ABC*E1", "https://h", 300, 1])
json_values = st.recursive(
    scalars, lambda kids: st.lists(kids, max_size=5)
    | st.dictionaries(st.text(max_size=10) | st.sampled_from(sorted(config._SCHEMA)), kids,
                      max_size=6), max_leaves=25)


def check(text, doc=None):
    """The property: a dict that reloads to itself, or a ConfigError that names where."""
    RUNS["n"] += 1
    try:
        out = load(text)
    except ConfigError as e:
        msg = str(e)
        heads = ["config"] + list(config._SCHEMA) + (list(doc) if isinstance(doc, dict) else [])
        # Every path starts with a top-level key of the input (or is the whole "config").
        assert any(msg.startswith(h) and msg[len(h):len(h) + 1] in ".[:" for h in heads), msg
        assert ": " in msg, msg
        return None
    assert isinstance(out, dict)
    assert load(json.dumps(out)) == out
    return out


def _paths(node, prefix=()):
    """Every (container, key) in a JSON tree, so a mutation can target any of them."""
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for k, v in items:
        yield node, k
        yield from _paths(v, prefix + (k,))


@FAST
@given(json_values)
def _random_json(doc):
    check(json.dumps(doc), doc)


@FAST
@given(st.sampled_from([EXAMPLE, MQTT, CUSTOM]), st.data())
def _mutated(base, data):
    doc = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        spots = list(_paths(doc))
        node, key = data.draw(st.sampled_from(spots))
        how = data.draw(st.sampled_from(["replace", "delete", "add", "null"]))
        if how == "delete" and isinstance(node, dict):
            del node[key]
        elif how == "add" and isinstance(node, dict):
            node[data.draw(st.text(min_size=1, max_size=8))] = data.draw(scalars)
        else:
            node[key] = None if how == "null" else data.draw(json_values)
    check(json.dumps(doc), doc)


@FAST
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def _random_bytes(raw):
    check(raw)
    check(raw.decode("utf-8", "replace"))


def _ran(capsys, fn):
    before = RUNS["n"]
    fn()
    with capsys.disabled():
        print("\n%s: %d cases" % (fn.__name__.lstrip("_"), RUNS["n"] - before))


def test_random_json(capsys):
    _ran(capsys, _random_json)


def test_mutated_valid_configs(capsys):
    for base in (EXAMPLE, MQTT, CUSTOM):  # the seeds themselves are valid
        assert check(json.dumps(base), base)
    _ran(capsys, _mutated)


def test_random_bytes(capsys):
    _ran(capsys, _random_bytes)


def _schema_paths(tab, prefix=""):
    """(path, row) for every field of a schema table, in the docs' notation."""
    for k, row in tab.items():
        p = prefix + k
        yield p, row
        kind = row[0]
        if kind == config._OBJ:
            yield from _schema_paths(row[2], p + ".")
        elif kind == config._LIST:
            yield from _schema_paths(row[2], p + "[].")
        elif kind == config._DICT:
            yield from _schema_paths(row[2], p + ".<name>.")
        elif kind == config._VAR:
            for sub in row[3].values():
                yield from _schema_paths(sub, p + ".")


def test_docs_list_every_field_with_its_default():
    with open(os.path.join(ROOT, "docs", "config.md"), encoding="utf-8") as f:
        rows = {line.split("`")[1]: line for line in f if line.startswith("| `")}
    fields = dict(_schema_paths(config._SCHEMA))
    assert sorted(rows) == sorted(fields)
    for path, row in fields.items():
        default = row[1]
        if default is config._R or isinstance(default, dict):
            continue
        cell = rows[path].split(" | ")[2]
        assert cell == "`%s`" % json.dumps(default), (path, cell)
