"""Tap to authorized for a whole charger (Agent + HostBoard at speed 1) against the mock hub.

The card is put on a VirtualPn532 at t0; the charger is authorized when the link hands the hub's
answer to charger.authorized. The split: reader (t0 to the reader's on_tap: the PN532 poll wait,
200 ms period, plus the frame exchange), hub (the hub's own processing time of the
AuthorizeStart, `latency_ms` of its exchange log), agent overhead (everything but the hub time:
reader, waking the link, encode, HTTP and TLS both ends over loopback, reply parse). Each
session is stopped again by the same card (journal: a 0 kWh CDR, delivered before the next tap),
the next tap comes after a random 0..200 ms (the same offsets in each configuration). The hub runs
in its own thread (as another machine would, though it shares this process's GIL). Three
configurations: HTTPS with mutual TLS (test PKI made here), plain HTTP, and the MQTT uplink
(plain MQTT on loopback) through a real Mosquitto and the relay (`python -m host_sim relay`, its
own process, limits raised) to the same hub over mutual TLS. `uplink` is the AuthorizeStart's
send round trip (request sent -> reply), the part the uplink choice changes; MQTT over HTTPS
is the ratio of the two, at p50 and p99.
"""
import asyncio
import json
import os
import random
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(ROOT, "host_sim", "pyshim"), os.path.join(ROOT, "firmware"), ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from cpagent import config  # noqa: E402
from cpagent.agent import Agent  # noqa: E402
from cpagent.boards.host import HostBoard  # noqa: E402
from host_sim import certs  # noqa: E402
from host_sim.broker import Broker  # noqa: E402
from host_sim.hub.server import HubThread  # noqa: E402
from host_sim.relay import child  # noqa: E402
from host_sim.relay.config import DEFAULT_LIMITS  # noqa: E402
from host_sim.virtual.ev import Fixed  # noqa: E402
from host_sim.virtual.meter import VirtualMeter  # noqa: E402
from host_sim.virtual.pn532 import VirtualPn532  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relay_throughput  # noqa: E402  (the relay as a subprocess, its limits raised)

OP = "DE*ABC"
EVSE = "DE*ABC*E0001*1"
N = 50


def _cfg(url, pki, mqtt=None):
    u = {"kind": "http", "url": url, "timeout_s": 10}
    if mqtt:
        u = dict(mqtt, kind="mqtt", timeout_s=10)
    elif pki:
        cert, key = (os.path.basename(p) for p in pki["clients"][OP])
        u.update(ca="ca.pem", cert=cert, key=key)
    return config.load(json.dumps({
        "charger_id": "bench", "operator_id": OP,
        "evses": [{"evse_id": EVSE, "meter_address": 1}],
        "reader": {"type": "pn532", "hold_ms": 200},
        "meter": {"model": "sdm630", "timeout_ms": 200}, "uplink": u,
        "timing": {"poll_s": 10, "authorize_timeout_s": 15, "ev_wait_s": 600},
        "log_level": 0}))


def pct(xs, p):
    """Nearest-rank percentile (p99 of 50 samples is the largest)."""
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))]


async def _taps(hub, cards, pki, state, mqtt=None):
    cfg = _cfg(hub.url, pki, mqtt)
    pn = VirtualPn532()
    board = HostBoard(cfg, state, reader_dev=pn, certs=None if mqtt else pki and pki["dir"],
                      meter_dev=VirtualMeter("sdm630", 1, Fixed(wh=1000)), echo=lambda t: None)
    agent = Agent(cfg, board)
    marks = {}
    tap, authorized, send = agent.tap, agent.charger.authorized, agent.link.uplink.send

    def on_tap(uid):
        marks.setdefault(uid, {})["read"] = time.perf_counter()
        tap(uid)

    def on_authorized(i, reply):
        authorized(i, reply)
        marks[agent.charger.evses[i].uid]["auth"] = time.perf_counter()

    async def timed_send(path, body, *more):
        t = time.perf_counter()
        r = await send(path, body, *more)
        uid = body.get("Identification", {}).get("RFIDMifareFamilyIdentification", {})
        if "/authorize/start" in path and uid.get("UID") in marks:
            marks[uid["UID"]].update(send=t, sent=time.perf_counter())
        return r
    agent.tap, agent.charger.authorized, agent.link.uplink.send = on_tap, on_authorized, \
        timed_send
    task = asyncio.create_task(agent.run())
    rows = []
    try:
        await asyncio.sleep(0.5)  # boot: first meter poll, PN532 woken and configured
        for card in cards:
            await asyncio.sleep(random.uniform(0, 0.2))
            t0 = time.perf_counter()
            pn.card = card
            while "auth" not in marks.get(card, {}):
                if task.done() or time.perf_counter() - t0 > 15:
                    raise RuntimeError("tap %s: never authorized (%r)" % (card, agent.stats()))
                await asyncio.sleep(0.001)
            pn.card = None
            m = marks[card]
            rows.append({"card": card, "total": m["auth"] - t0, "reader": m["read"] - t0,
                         "link_wake": m["send"] - m["read"], "uplink": m["sent"] - m["send"]})
            agent.charger.tap(card)  # stop it again (same card), not measured
            agent.link.kick()
            t1 = time.perf_counter()
            while agent.stats()["pending"]:
                if task.done() or time.perf_counter() - t1 > 15:
                    raise RuntimeError("stop of %s: never delivered (%r)" % (card, agent.stats()))
                await asyncio.sleep(0.005)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return rows


def _via_relay(hub, pki, tmp):
    """Mosquitto (the charger `bench` plain MQTT on loopback) and the relay, its limits raised
    out of the way, to the hub over mutual TLS; (broker, relay process, uplink config)."""
    broker = Broker(os.path.join(tmp, "mq"), {"bench": "pw", "relay": "rpw"}).start()
    cert, key = pki["clients"][OP]
    doc = {"broker": {"host": broker.host, "port": broker.port, "user": "relay",
                      "password": "rpw"},
           "hub": {"url": hub.url, "ca": pki["ca"], "cert": cert, "key": key},
           "chargers": {"bench": {"operator_id": OP, "evses": [EVSE]}},
           "limits": dict((k, relay_throughput.RAISED) for k in DEFAULT_LIMITS),
           "http": {"port": 0}}
    path = os.path.join(tmp, "relay.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    try:
        proc, port = relay_throughput.start_relay(path, "relay-bench")
    except BaseException:
        broker.stop()
        raise
    return broker, (proc, port), {"host": broker.host, "port": broker.port, "user": "bench",
                          "password": "pw"}


def _one(pki, cards, tmp, name, relay=False):
    random.seed(4)
    with HubThread(tls=pki and pki["dir"], cards=cards) as hub:
        broker = proc = mqtt = None
        if relay:
            broker, (proc, port), mqtt = _via_relay(hub, pki, tmp)
        try:
            rows = asyncio.run(_taps(hub, cards, pki, os.path.join(tmp, name), mqtt))
            if relay:  # the relay's own HTTPS round trips to the hub, for the split
                m = relay_throughput.metrics(port)
                n = sum(v for k, v in m.items() if k.startswith("relay_hub_requests_total"))
                relay_hub_ms = m["relay_hub_seconds_total"] * 1000 / n
        finally:
            if relay:
                child.stop(proc)
                broker.stop()
        hub_ms = {}
        for e in hub.call(lambda: hub.hub.exchanges):
            if e["operation"] == "AuthorizeStart":
                uid = e["request"]["Identification"]["RFIDMifareFamilyIdentification"]["UID"]
                hub_ms[uid] = e["latency_ms"]
    for r in rows:
        r["hub"] = hub_ms[r["card"]] / 1000
        r["agent"] = r["total"] - r["hub"]
        # encode, HTTP/TLS both ends (or MQTT, broker and relay), loopback, parse
        r["wire"] = r["uplink"] - r["hub"]
    first, warm = rows[0], rows[1:]
    out = {"taps": len(warm), "first_tap_new_connection_ms": round(first["total"] * 1000, 1),
           "first_tap_wire_ms": round(first["wire"] * 1000, 1)}
    for k in ("total", "hub", "agent", "reader", "link_wake", "uplink", "wire"):
        xs = [r[k] * 1000 for r in warm]
        out[k + "_ms"] = {"p50": round(pct(xs, 50), 2), "p99": round(pct(xs, 99), 2)}
    if relay:
        out["relay_hub_round_trip_mean_ms"] = round(relay_hub_ms, 2)
    return out


def run():
    cards = ["04%012X" % (0xA1B2C3D40000 + k) for k in range(N + 1)]  # +1: the cold first tap
    with tempfile.TemporaryDirectory() as tmp:
        pki = certs.make_test_pki(os.path.join(tmp, "pki"), (OP,))
        res = {"mutual_tls": _one(pki, cards, tmp, "tls"),
               "plain_http": _one(None, cards, tmp, "plain"),
               "mqtt_relay": _one(pki, cards, tmp, "mqtt", relay=True)}
    res["mqtt_over_https"] = dict(
        (k, dict((p, round(res["mqtt_relay"][k][p] / max(res["mutual_tls"][k][p], 1e-3), 2))
                 for p in ("p50", "p99"))) for k in ("total_ms", "uplink_ms"))
    res["note"] = ("tap on a VirtualPn532 (agent's PN532 driver polls every 200 ms) -> "
                   "charger.authorized; Agent + HostBoard speed 1, mock hub in a thread over "
                   "loopback, kept-alive connection (the first tap, which opens it, is reported "
                   "apart); hub = hub's processing time, agent = total - hub; reader = tap to "
                   "on_tap, link_wake = on_tap to the send, wire = send round trip - hub "
                   "(encode, HTTP/TLS both ends, parse; for mqtt_relay: MQTT, broker, relay and "
                   "its HTTPS); uplink = send round trip; p99 of %d = the largest" % N)
    return res


def lines(r):
    out = ["tap -> authorized, whole charger at speed 1 over loopback (%d taps; p50 / p99 ms):"
           % r["mutual_tls"]["taps"]]
    for key, name in (("mutual_tls", "HTTPS mutual TLS"), ("plain_http", "plain HTTP"),
                      ("mqtt_relay", "MQTT via relay")):
        m = r[key]

        def f(k, m=m):
            return "%.1f / %.1f" % (m[k + "_ms"]["p50"], m[k + "_ms"]["p99"])
        out.append("  %-16s total %s = hub %s + agent %s" % (name, f("total"), f("hub"),
                                                             f("agent")))
        wire = {"mutual_tls": "HTTP TLS", "plain_http": "HTTP"}.get(key, "MQTT, broker, relay")
        out.append("  %-16s agent: reader poll wait %s, link wake %s, %s + encode/parse %s;"
                   " first tap (new connection) %.1f total, %.1f uplink"
                   % ("", f("reader"), f("link_wake"), wire, f("wire"),
                      m["first_tap_new_connection_ms"], m["first_tap_wire_ms"]))
        out.append("  %-16s uplink round trip (AuthorizeStart sent -> reply) %s%s" % (
            "", f("uplink"), "; the relay's HTTPS round trips to the hub: %.2f mean"
            % m["relay_hub_round_trip_mean_ms"] if key == "mqtt_relay" else ""))
    q = r["mqtt_over_https"]
    out.append("  MQTT via relay / HTTPS mutual TLS: total %.2fx p50, %.2fx p99; uplink round "
               "trip %.2fx p50, %.2fx p99 (target <= 1.5x)"
               % (q["total_ms"]["p50"], q["total_ms"]["p99"], q["uplink_ms"]["p50"],
                  q["uplink_ms"]["p99"]))
    return out


if __name__ == "__main__":
    res = run()
    print("\n".join(lines(res)))
    print(json.dumps(res))
