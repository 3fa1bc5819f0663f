"""`run --mqtt`: the chargers speak MQTT to a broker and a relay forwards to the hub (docs/sim.md).

`--mqtt start`: a Mosquitto of our own (host_sim/broker.py) on a free loopback port, a generated
password per charger and for the relay, and an in-process relay. `--mqtt HOST:PORT`: a broker
that exists; the chargers log in as their charger id with `--mqtt-password`, and the relay started
here with `--mqtt-relay-user/--mqtt-relay-password`, unless `--no-relay` (one is attached there).
A scenario with remote starts gives the relay a CPO endpoint (plain HTTP on 127.0.0.1: only the
run's own mock hub calls it) whose command deadlines are on the chargers' virtual wall clocks.
"""
import argparse
import asyncio
import logging
import math
import os
import re
import secrets
import time

from host_sim import certs as pki
from host_sim.broker import Broker
from host_sim.relay import Config, Relay
from host_sim.relay.config import DEFAULT_LIMITS

START = "start"
RELAY_USER = "relay"
RELAY_ID = "sim-relay"  # a stable client id: the broker keeps the relay's session across runs
_READY_S = 20.0  # real seconds for the relay to connect and subscribe
_MAX_PER_MIN = 10_000_000  # the relay config's ceiling
_TIMEOUT_S = 20  # a charger's wait for the relay's reply (real s), as the HTTP uplink's


def parse(value):
    """--mqtt's value: START, or (host, port) for a broker that exists."""
    if value == START:
        return START
    m = re.match(r"^(\[[0-9a-fA-F:]+\]|[^:\s\[\]]+):(\d{1,5})$", value)
    if not m or not 1 <= int(m.group(2)) <= 65535:
        raise argparse.ArgumentTypeError("expected 'start' or HOST:PORT (port 1..65535), got %r"
                                         % value)
    return m.group(1).strip("[]"), int(m.group(2))


def check(a, error):
    """The --mqtt options together; error(text) exits 2 naming the option."""
    external = a.mqtt not in (None, START)
    given = [o for o, v in (("--mqtt-password", a.mqtt_password),
                            ("--mqtt-relay-user", a.mqtt_relay_user),
                            ("--mqtt-relay-password", a.mqtt_relay_password),
                            ("--no-relay", a.no_relay or None)) if v is not None]
    if given and not external:
        error("%s: only with --mqtt HOST:PORT (--mqtt start makes its own users and relay)"
              % given[0])
    if not external:
        return
    if a.no_relay:
        if a.mqtt_relay_user is not None or a.mqtt_relay_password is not None:
            error("--mqtt-relay-user/--mqtt-relay-password: not with --no-relay (the attached "
                  "relay has its own login)")
        if not a.hub:
            error("--no-relay: needs --hub URL, the hub the attached relay forwards to")
    elif not (a.mqtt_relay_user and a.mqtt_relay_password):
        error("--mqtt-relay-user, --mqtt-relay-password: required with --mqtt HOST:PORT for "
              "the relay this run starts (or --no-relay when one is attached)")


class _ToLog(logging.Handler):
    """The relay's log lines to --log; keeps the last error (a refused login ends the start)."""

    def __init__(self, log):
        super().__init__(logging.WARNING)
        self._out = log
        self.error = None

    def emit(self, record):
        text = record.getMessage()
        if record.levelno >= logging.ERROR:
            self.error = text
        self._out("[relay] " + text)


class MqttPath:
    """The broker and the relay between the fleet and the hub.

    MqttPath(a, state, certs_dir, log): `await start(hub_url, evses, hub_tls)` with evses
    {charger id: [EvseIDs]} (what each may speak for) and hub_tls the relay's {"ca", "cert",
    "key"} paths for an https hub; then uplink(charger id) is the charger's config.json uplink;
    `await stop()`. With certs_dir (--tls) the broker link is TLS too, verified with its ca.pem.
    start(..., cpo=True): the relay serves a CPO endpoint too (.cpo_url), for remote starts.
    """

    def __init__(self, a, state, certs_dir=None, log=None):
        self.a = a
        self.state = state
        self.certs = certs_dir
        self._log = log or (lambda text: None)
        self.broker = self.relay = None
        self.host = self.port = None
        self.passwords = {}
        self._handler = None
        self.cpo_url = None

    async def start(self, hub_url, evses, hub_tls=None, cpo=False):
        a = self.a
        if a.mqtt == START:
            self.passwords = dict((cid, secrets.token_hex(12)) for cid in evses)
            user, password = RELAY_USER, secrets.token_hex(12)
            if self.certs:
                for f in pki.SERVER:
                    if not os.path.exists(os.path.join(self.certs, f)):
                        raise ValueError("--certs %s: %s is missing (the broker's certificate "
                                         "with --mqtt start --tls)" % (self.certs, f))
            self.broker = Broker(os.path.join(self.state, "mqtt"),
                                 dict(self.passwords, **{user: password}), (user,),
                                 tls=self.certs)
            # On this thread: Mosquitto dies with the thread that started it (PR_SET_PDEATHSIG),
            # and an executor's worker thread may end before the run does.
            self.broker.start()
            self.host, self.port = self.broker.host, self.broker.port
        else:
            (self.host, self.port), user, password = a.mqtt, a.mqtt_relay_user, \
                a.mqtt_relay_password
        if a.mqtt != START and a.no_relay:
            return
        self._handler = _ToLog(self._log)
        lg = logging.getLogger("relay")
        lg.addHandler(self._handler)
        lg.setLevel(logging.WARNING)
        lg.propagate = False  # its lines go to --log, not over the progress bar
        doc = self._relay_doc(hub_url, evses, hub_tls, user, password)
        if cpo:
            # Plain HTTP: the caller is this run's own mock hub on 127.0.0.1 (docs/sim.md).
            doc["cpo"] = {"host": "127.0.0.1", "port": 0, "insecure_http": True}
        self.relay = Relay(Config(doc), RELAY_ID).start()
        if self.relay.cpo:
            self.cpo_url = self.relay.cpo.url
        end = time.monotonic() + _READY_S
        while self.relay.health():
            why = self._handler.error or (time.monotonic() > end and "not subscribed within "
                                          "%g s: %s" % (_READY_S, self.relay.health()))
            if why:
                raise ValueError("%s: the relay at %s:%d: %s" % (
                    "--mqtt start" if a.mqtt == START else "--mqtt-relay-user", self.host,
                    self.port, why))
            await asyncio.sleep(0.05)

    def _relay_doc(self, hub_url, evses, hub_tls, user, password):
        broker = {"host": self.host, "port": self.port, "user": user, "password": password}
        if self.certs:
            broker["tls"] = {"ca": os.path.join(self.certs, pki.CA)}
        hub = {"url": hub_url}
        hub.update(hub_tls or {})
        # Hubject's limits hold per minute of the fleet's (virtual) time: at --speed X a real
        # minute is X of them.
        limits = dict((k, min(_MAX_PER_MIN, int(math.ceil(v * self.a.speed))))
                      for k, v in DEFAULT_LIMITS.items())
        return {"broker": broker, "hub": hub, "limits": limits, "http": {"port": 0},
                "chargers": dict((cid, {"operator_id": self.a.operator_id, "evses": e})
                                 for cid, e in evses.items())}

    def virtual_deadlines(self, boards):
        """The relay's command deadlines on each charger's board wall clock ({charger id:
        HostBoard}), which runs --speed times real time: the relay waits command_timeout_s real
        seconds, so many virtual ones pass at the charger."""
        speed = self.a.speed

        def deadline(charger, timeout_s):
            b = boards.get(charger)
            wall = b.wall_unix() if b is not None else None
            return int((time.time() if wall is None else wall) + timeout_s * speed)
        if self.relay:
            self.relay.commands.deadline = deadline

    def uplink(self, cid):
        u = {"kind": "mqtt", "host": self.host, "port": self.port, "user": cid,
             "tls": self.certs is not None, "timeout_s": _TIMEOUT_S}
        password = self.passwords.get(cid, self.a.mqtt_password)
        if password is not None:
            u["password"] = password
        if self.certs:
            u["ca"] = pki.CA
        return u

    async def stop(self):
        if self.relay:
            await asyncio.to_thread(self.relay.stop)
        if self.broker:
            await asyncio.to_thread(self.broker.stop)
        if self._handler:
            logging.getLogger("relay").removeHandler(self._handler)
