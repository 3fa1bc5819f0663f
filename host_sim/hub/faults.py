"""Fault injection for the mock hub: an ordered queue of rules, each with a kind and a count.

Each OICP request takes the first rule whose `match` (an operation name, or None for all) fits,
and uses up one of its `count` (None: stays until cleared). So [5xx x3, 429 x1] answers the next
three requests with 503, the fourth with 429, then the hub is healthy again. The control plane
(/api/..., the page) is never faulted. Kinds and their parameters (defaults):
  latency        seconds=1.0   wait, then process and answer normally
  drop           process=False close the connection without a reply (process=True: the request
                               takes effect first, i.e. the reply is lost)
  refuse         seconds=None  stop listening and close open connections; listen again after
                               `seconds` (None: until Hub.resume()); does not use a request
  5xx            status=503    HTTP 5xx with a FaultBody
  429            retry_after=1 HTTP 429 with a Retry-After header (seconds)
  408                          HTTP 408 Request Timeout, then close
  garbage        body=...      HTTP 200 whose body is not JSON
  cert_mismatch                treat the client certificate as another operator's: 017
  code           code="001"    HTTP 200 acknowledgement with Result false and that StatusCode
"""

_PARAMS = {"latency": {"seconds": 1.0}, "drop": {"process": False}, "refuse": {"seconds": None},
           "5xx": {"status": 503}, "429": {"retry_after": 1}, "408": {},
           "garbage": {"body": "<html>502 Bad Gateway</html>\x00\xff{"},
           "cert_mismatch": {}, "code": {"code": "001"}}
KINDS = tuple(_PARAMS)
# Overflow policy: more rules than this is a runaway script; add() refuses it.
MAX_RULES = 1000


class FaultError(ValueError):
    pass


class Fault:
    """One rule. `fired` counts the requests it has hit."""

    def __init__(self, kind, count=1, match=None, **params):
        if kind not in _PARAMS:
            raise FaultError("kind: expected one of %s, got %r" % ("|".join(KINDS), kind))
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)
                                  or count < 1):
            raise FaultError("count: expected an integer >= 1 or null (until cleared), got %r"
                             % (count,))
        if match is not None and not isinstance(match, str):
            raise FaultError("match: expected an operation name or null, got %r" % (match,))
        unknown = set(params) - set(_PARAMS[kind])
        if unknown:
            raise FaultError("%s: not a parameter of %s faults (have: %s)" % (
                ", ".join(sorted(unknown)), kind, ", ".join(_PARAMS[kind]) or "none"))
        self.kind, self.count, self.match, self.fired = kind, count, match, 0
        self.params = dict(_PARAMS[kind], **params)
        if kind == "5xx" and not (isinstance(self.params["status"], int)
                                  and 500 <= self.params["status"] <= 599):
            raise FaultError("status: expected 500..599, got %r" % (self.params["status"],))
        for k in ("seconds", "retry_after"):
            v = self.params.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or v < 0):
                raise FaultError("%s: expected a number of seconds >= 0, got %r" % (k, v))

    def __getattr__(self, name):
        try:
            return self.__dict__["params"][name]
        except KeyError:
            raise AttributeError(name)

    def as_json(self):
        return dict(self.params, kind=self.kind, count=self.count, match=self.match,
                    fired=self.fired)


class Faults:
    """The queue. Not thread-safe: use it from the hub's event loop (HubThread.call)."""

    def __init__(self):
        self.rules = []

    def add(self, kind, count=1, match=None, **params):
        if len(self.rules) >= MAX_RULES:
            raise FaultError("faults: at most %d rules are queued" % MAX_RULES)
        f = Fault(kind, count, match, **params)
        if kind != "refuse":  # refuse acts at once (the hub handles it) and is not queued
            self.rules.append(f)
        return f

    def add_json(self, obj):
        """A rule as a dict {"kind": ..., "count": ..., ...}, or a list of them."""
        items = obj if isinstance(obj, list) else [obj]
        if not all(isinstance(i, dict) for i in items):
            raise FaultError("faults: expected a rule object or a list of them")
        # Check every rule before queueing any, so a bad list changes nothing.
        for i in items:
            Fault(**i)
        return [self.add(**i) for i in items]

    def clear(self):
        self.rules.clear()

    def take(self, operation):
        for f in self.rules:
            if f.match is None or f.match == operation:
                f.fired += 1
                if f.count is not None:
                    f.count -= 1
                    if f.count == 0:
                        self.rules.remove(f)
                return f
        return None

    def as_json(self):
        return [f.as_json() for f in self.rules]
