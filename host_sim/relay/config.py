"""Relay config: one JSON file, validated whole; each error names the field and the form wanted."""
import json
import os
import re

from host_sim.relay import evse_data

OPERATOR_RE = re.compile(r"^(([A-Za-z]{2}\*?[A-Za-z0-9]{3})|(\+?[0-9]{1,3}\*[0-9]{3}))$")
EVSE_RE = re.compile(r"^(([A-Za-z]{2}\*?[A-Za-z0-9]{3}\*?E[A-Za-z0-9*]{1,30})"
                     r"|(\+?[0-9]{1,3}\*[0-9]{3}\*[0-9*]{1,32}))$")
# A charger id is a topic level and the charger's broker username: no wildcards, no separators.
CHARGER_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
# Hubject's acceptable use policy, calls per minute (OICP research notes, [AUP]).
DEFAULT_LIMITS = {"authorize_per_min": 200, "notifications_per_min": 100, "cdr_per_min": 350,
                  "authorize_stop_per_min": 50, "evse_status_per_min": 2000,
                  "evse_data_per_min": 375}
_MAX_PER_MIN = 10_000_000
_MAX_CHARGERS = 100_000
_MAX_EVSES = 64


class ConfigError(ValueError):
    pass


def _obj(v, field, keys, required=()):
    if not isinstance(v, dict):
        raise ConfigError("%s: expected an object, got %s" % (field, type(v).__name__))
    unknown = sorted(set(v) - set(keys))
    if unknown:
        raise ConfigError("%s.%s: not a field (have: %s)" % (field, unknown[0], ", ".join(keys)))
    for k in required:
        if k not in v:
            raise ConfigError("%s.%s: required" % (field, k))
    return v


def _str(v, field, empty=False):
    if not isinstance(v, str) or (not v and not empty):
        raise ConfigError("%s: expected a%s string, got %r" % (
            field, "" if empty else " non-empty", v))
    return v


def _int(v, field, lo, hi):
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ConfigError("%s: expected an integer %d..%d, got %r" % (field, lo, hi, v))
    return v


def _num(v, field, lo, hi):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
        raise ConfigError("%s: expected a number %g..%g, got %r" % (field, lo, hi, v))
    return float(v)


def _file(v, field, base):
    path = os.path.join(base, _str(v, field))
    if not os.path.isfile(path):
        raise ConfigError("%s: no such file %s" % (field, path))
    return path


class Config:
    """The validated config: .broker, .hub, .chargers, .limits, .http, .queue, .sessions, .cpo,
    .evse_data (plain dicts; .cpo None when the relay serves no CPO endpoint, .evse_data None
    when it pushes no EVSE data: evse_data.py)."""

    def __init__(self, doc, base="."):
        _obj(doc, "config", ("broker", "hub", "chargers", "limits", "http", "queue", "sessions",
                             "cpo", "evse_data"),
             ("broker", "hub", "chargers"))
        self.broker = self._broker(doc["broker"], base)
        self.hub = self._hub(doc["hub"], base)
        self.chargers = self._chargers(doc["chargers"])
        lim = _obj(doc.get("limits", {}), "limits", tuple(DEFAULT_LIMITS))
        self.limits = dict((k, _int(lim.get(k, d), "limits." + k, 2, _MAX_PER_MIN))
                           for k, d in DEFAULT_LIMITS.items())
        h = _obj(doc.get("http", {}), "http", ("host", "port"))
        self.http = {"host": _str(h.get("host", "127.0.0.1"), "http.host"),
                     "port": _int(h.get("port", 9100), "http.port", 0, 65535)}
        q = _obj(doc.get("queue", {}), "queue", ("max_items", "max_wait_s", "dedupe_per_charger"))
        self.queue = {"max_items": _int(q.get("max_items", 10_000), "queue.max_items", 1, 65535),
                      "max_wait_s": _num(q.get("max_wait_s", 120), "queue.max_wait_s", 1, 86400),
                      "dedupe_per_charger": _int(q.get("dedupe_per_charger", 64),
                                                 "queue.dedupe_per_charger", 1, 10_000)}
        ss = _obj(doc.get("sessions", {}), "sessions", ("max", "unknown_wait_s", "closed_keep_s"))
        self.sessions = {
            "max": _int(ss.get("max", 200_000), "sessions.max", 1, 10_000_000),
            "unknown_wait_s": _num(ss.get("unknown_wait_s", 120), "sessions.unknown_wait_s", 0,
                                   86400),
            "closed_keep_s": _int(ss.get("closed_keep_s", 7 * 86400), "sessions.closed_keep_s",
                                  60, 0xFFFFFFFE)}
        self.cpo = self._cpo(doc["cpo"], base) if "cpo" in doc else None
        try:
            self.evse_data = (evse_data.check(doc["evse_data"], self.chargers)
                              if "evse_data" in doc else None)
        except evse_data.EvseDataError as e:
            raise ConfigError(str(e))

    @staticmethod
    def _cpo(c, base):
        _obj(c, "cpo", ("host", "port", "ca", "cert", "key", "hub_cn", "insecure_http",
                        "command_timeout_s"))
        insecure = c.get("insecure_http", False)
        if not isinstance(insecure, bool):
            raise ConfigError("cpo.insecure_http: expected true or false, got %r" % insecure)
        out = {"host": _str(c.get("host", "127.0.0.1"), "cpo.host"),
               "port": _int(c.get("port", 9443), "cpo.port", 0, 65535),
               "insecure_http": insecure,
               "hub_cn": None if c.get("hub_cn") is None else _str(c["hub_cn"], "cpo.hub_cn"),
               # Hubject gives up after 60 s: the charger's answer must come well before.
               "command_timeout_s": _num(c.get("command_timeout_s", 10),
                                         "cpo.command_timeout_s", 0.1, 50),
               "ca": None, "cert": None, "key": None}
        if not insecure:
            for k in ("ca", "cert", "key"):
                if k not in c:
                    raise ConfigError("cpo.%s: required (mutual TLS toward the hub; "
                                      "cpo.insecure_http: true only for tests)" % k)
                out[k] = _file(c[k], "cpo." + k, base)
        return out

    @staticmethod
    def _broker(b, base):
        _obj(b, "broker", ("host", "port", "user", "password", "tls", "client_id", "group",
                           "keepalive_s", "session_expiry_s"), ("host", "user", "password"))
        out = {"host": _str(b["host"], "broker.host"),
               "port": _int(b.get("port", 1883), "broker.port", 1, 65535),
               "user": _str(b["user"], "broker.user"),
               "password": _str(b["password"], "broker.password"),
               "client_id": _str(b.get("client_id", "oicp-relay"), "broker.client_id"),
               "group": _str(b.get("group", "relays"), "broker.group"),
               "keepalive_s": _int(b.get("keepalive_s", 30), "broker.keepalive_s", 5, 3600),
               "session_expiry_s": _int(b.get("session_expiry_s", 7 * 86400),
                                        "broker.session_expiry_s", 60, 0xFFFFFFFE),
               "tls": None}
        if any(c in out["group"] for c in "/+#"):
            raise ConfigError("broker.group: expected a name without / + #, got %r"
                              % out["group"])
        tls = b.get("tls")
        if tls is not None:
            _obj(tls, "broker.tls", ("ca", "cert", "key"), ("ca",))
            out["tls"] = {"ca": _file(tls["ca"], "broker.tls.ca", base)}
            if ("cert" in tls) != ("key" in tls):
                raise ConfigError("broker.tls.%s: cert and key go together"
                                  % ("key" if "cert" in tls else "cert"))
            for k in ("cert", "key"):
                if k in tls:
                    out["tls"][k] = _file(tls[k], "broker.tls." + k, base)
        return out

    @staticmethod
    def _hub(h, base):
        _obj(h, "hub", ("url", "ca", "cert", "key", "timeout_s", "connections", "retries"),
             ("url",))
        url = _str(h["url"], "hub.url").rstrip("/")
        m = re.match(r"^(https?)://([^/:]+|\[[0-9a-fA-F:]+\])(?::(\d{1,5}))?(/[^?#]*)?$", url)
        if not m:
            raise ConfigError("hub.url: expected https://host[:port][/prefix], got %r" % url)
        out = {"url": url, "scheme": m.group(1), "host": m.group(2).strip("[]"),
               "port": int(m.group(3) or (443 if m.group(1) == "https" else 80)),
               "prefix": m.group(4) or "",
               "timeout_s": _num(h.get("timeout_s", 10), "hub.timeout_s", 0.1, 300),
               "connections": _int(h.get("connections", 4), "hub.connections", 1, 256),
               "retries": _int(h.get("retries", 2), "hub.retries", 0, 10),
               "ca": None, "cert": None, "key": None}
        if out["scheme"] == "https":
            for k in ("ca", "cert", "key"):
                if k not in h:
                    raise ConfigError("hub.%s: required for https (mutual TLS)" % k)
                out[k] = _file(h[k], "hub." + k, base)
        return out

    @staticmethod
    def _chargers(c):
        if not isinstance(c, dict) or not c:
            raise ConfigError("chargers: expected an object {charger_id: {...}} with at least one")
        if len(c) > _MAX_CHARGERS:
            raise ConfigError("chargers: at most %d per relay" % _MAX_CHARGERS)
        out = {}
        for cid, v in c.items():
            f = "chargers.%s" % cid
            if not CHARGER_RE.match(cid):
                raise ConfigError("%s: a charger id is 1..64 of [A-Za-z0-9_.:-]" % f)
            _obj(v, f, ("operator_id", "evses"), ("operator_id", "evses"))
            op = _str(v["operator_id"], f + ".operator_id")
            if not OPERATOR_RE.match(op):
                raise ConfigError("%s.operator_id: expected an OperatorID such as DE*ABC, got %r"
                                  % (f, op))
            evses = v["evses"]
            if not isinstance(evses, list) or not 1 <= len(evses) <= _MAX_EVSES:
                raise ConfigError("%s.evses: expected a list of 1..%d EvseIDs" % (f, _MAX_EVSES))
            for i, e in enumerate(evses):
                if not isinstance(e, str) or not EVSE_RE.match(e):
                    raise ConfigError("%s.evses[%d]: expected an EvseID such as DE*ABC*E1, got %r"
                                      % (f, i, e))
            out[cid] = {"operator_id": op, "evses": frozenset(evses)}
        return out


def load(path):
    """Config from a JSON file; relative file names inside are relative to the file's folder."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except OSError as e:
        raise ConfigError("config: cannot read %s: %s" % (path, e.strerror))
    except ValueError as e:
        raise ConfigError("config: %s is not JSON: %s" % (path, e))
    return Config(doc, os.path.dirname(os.path.abspath(path)))
