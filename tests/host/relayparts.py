"""Relay parts for unit tests: a config doc and limits, envelopes, a fake clock, a drain."""
import json

from cpagent.oicp import build as oicp

OP = "DE*ABC"
CHARGERS = {"cp-1": {"operator_id": OP, "evses": frozenset(["DE*ABC*E1"])}}
LIMITS = {"authorize_per_min": 200, "notifications_per_min": 100, "cdr_per_min": 350,
          "authorize_stop_per_min": 50, "evse_status_per_min": 2000, "evse_data_per_min": 375}
STATUS_CHARGERS = {"cp-1": {"operator_id": OP, "evses": frozenset(["DE*ABC*E1", "DE*ABC*E2"])},
                   "cp-2": {"operator_id": OP, "evses": frozenset(["DE*ABC*E3"])}}


def doc(**over):
    d = {"broker": {"host": "127.0.0.1", "user": "relay", "password": "pw"},
         "hub": {"url": "http://127.0.0.1:8080"},
         "chargers": {"cp-1": {"operator_id": OP, "evses": ["DE*ABC*E1"]}}}
    for k, v in over.items():
        d[k] = v
    return d


def env(msg_id, path, body):
    # As the agent's uplink does: the body's kWh texts go up as JSON numbers.
    return raw_env(msg_id, path, json.loads(oicp.encode(body)))


def raw_env(msg_id, path, body):
    """The envelope of a body as given: what a foreign or hostile charger may send."""
    return json.dumps({"v": 1, "id": msg_id, "path": path, "body": body}).encode()


class Clock:
    def __init__(self):
        self.t = 0.0

    def full(self):
        """A minute on: the buckets made so far hold their burst (a fresh one is empty)."""
        self.t += 60

    def __call__(self):
        return self.t


def drain(s):
    out = []
    while True:
        r = s.take(timeout=0)
        if r is None:
            return out
        out.append(r)
        s.done(r)
