"""Relay throughput against the mock hub's own, and two relays sharing the load (docs/relay.md).

Setup, all on this machine (2 cores, shared with whatever else runs): the mock hub in its own
process over mutual TLS (`python -m host_sim hub --tls`), a real Mosquitto (host_sim/broker.py),
the relay as `python -m host_sim relay` (rate limits raised out of the way), and a load generator
of GEN_PROCS processes (this file, `gen` argument). The generator plays chargers: sessions of an
AuthorizeStart, a Start, PROGRESS Progress notifications (5+ minutes apart in message time, as
the hub wants) and an End, each message sent when the previous one of its session was answered,
many sessions at once. Two ways, the same sessions and bodies:
- hub directly: one thread per kept-alive mutual-TLS connection (HUB_CONNECTIONS in all), as the
  relay holds them, posting the OICP bodies;
- through the relay: one paho client per charger (its own broker user), QoS 1 envelopes on
  cp/<id>/up, WINDOW sessions in flight per charger, replies from cp/<id>/down.
Counted: replies (200 and Result/Authorized true) received in MEASURE_S after WARMUP_S; the CPU
seconds each process used in that window (/proc), to show where the 2 cores went.
"""
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(ROOT, "host_sim", "pyshim"), os.path.join(ROOT, "firmware"), ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from cpagent.oicp import build as oicp  # noqa: E402
from host_sim import certs  # noqa: E402
from host_sim.broker import Broker  # noqa: E402
from host_sim.relay import child  # noqa: E402

OP, UID = "DE*ABC", "04A1B2C3D4E5F6"
GEN_PROCS = 2
CHARGERS = 16           # MQTT clients (broker users), split over the generator processes
WINDOW = 16             # sessions in flight per charger through the relay
HUB_CONNECTIONS = 16    # the relay's hub.connections, and the direct run's connections
PROGRESS = 8            # Progress notifications per session
WARMUP_S, MEASURE_S = 3.0, 10.0
RAISED = 10_000_000     # per minute: limits out of the way
BASE = 1767261600       # 2026-01-01T10:00:00Z, the sessions' message time


def _ts(s):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(BASE + s))


class Session:
    """One charging session's messages, one at a time: (path, body) of the next, or None."""

    def __init__(self, evse):
        self.evse, self.step, self.sid = evse, 0, None

    def request(self):
        i, ev = self.step, self.evse
        if i == 0:
            return oicp.authorize_start(OP, UID, ev)
        if i == 1:
            return oicp.notification_start(OP, self.sid, ev, _ts(0))
        if i <= PROGRESS + 1:
            return oicp.notification_progress(OP, self.sid, ev, _ts(0), _ts(360 * (i - 1)),
                                              360000 * (i - 1))
        return oicp.notification_end(OP, self.sid, ev, _ts(360 * (PROGRESS + 1)), _ts(0))

    def answered(self, status, body):
        """True if the reply is a success; moves to the next message (a failure: a new
        session, so a lost step never wedges the load)."""
        ok = status == 200 and isinstance(body, dict) and (
            body.get("Result") is True if self.step else
            body.get("AuthorizationStatus") == "Authorized")
        if ok and self.step == 0:
            self.sid = body["SessionID"]
        self.step = self.step + 1 if ok and self.step <= PROGRESS + 1 else 0
        return ok


class Counter:
    """Replies in the measuring window [t0, t1): ok by kind, failures by status, latencies."""

    def __init__(self, t0, t1):
        self.t0, self.t1 = t0, t1
        self.lock = threading.Lock()
        self.ok = {"authorize": 0, "notification": 0}
        self.failed = {}
        self.lat = []

    def add(self, kind, ok, status, sent):
        now = time.time()
        if not self.t0 <= now < self.t1:
            return
        with self.lock:
            if ok:
                self.ok[kind] += 1
            else:
                self.failed[str(status)] = self.failed.get(str(status), 0) + 1
            if len(self.lat) < 50_000:
                self.lat.append(round((now - sent) * 1000, 3))


def _kind(session):
    return "authorize" if session.step == 0 else "notification"


class Pacer:
    """rate None: each ready session sends at once (closed loop). Else rate/s for this process:
    ready sessions wait in line and leave at that pace (open loop at a steady rate: the soak)."""

    def __init__(self, rate):
        self.rate = rate
        self.line, self.cv = [], threading.Condition()
        if rate:
            threading.Thread(target=self._run, daemon=True).start()

    def ready(self, send, session):
        if not self.rate:
            send(session)
            return
        with self.cv:
            self.line.append((send, session))
            self.cv.notify()

    def _run(self):
        due = time.monotonic()
        while True:
            with self.cv:
                while not self.line:
                    self.cv.wait()
                send, session = self.line.pop(0)
            due = max(due + 1 / self.rate, time.monotonic() - 1)  # no catch-up burst
            time.sleep(max(0.0, due - time.monotonic()))
            send(session)


def _gen_mqtt(a, count):
    import paho.mqtt.client as mqtt
    clients, pacer = [], Pacer(a["rate"])

    def charger(cid, password, evses):
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid, protocol=mqtt.MQTTv311)
        c.username_pw_set(cid, password)
        c.max_inflight_messages_set(a["window"] + 4)
        flying, seq = {}, iter(range(1 << 62))
        up = "cp/%s/up" % cid

        def send(s):
            path, body = s.request()
            mid = "%s-%d" % (cid, next(seq))
            flying[mid] = (s, time.time())
            c.publish(up, json.dumps({"v": 1, "id": mid, "path": path, "body": body},
                                     separators=(",", ":")), 1)

        def on_message(client, userdata, m):
            env = json.loads(m.payload)
            s, sent = flying.pop(env.get("id"), (None, 0))
            if s is None:
                return  # a repeated reply (a redelivered request): already counted
            kind = _kind(s)
            count.add(kind, s.answered(env.get("status"), env.get("body")), env.get("status"),
                      sent)
            if time.time() < count.t1:
                pacer.ready(send, s)

        def on_connect(client, userdata, flags, rc, props):
            client.subscribe("cp/%s/down" % cid, 1)

        def on_subscribe(client, userdata, mid, codes, props):
            for i in range(a["window"]):
                pacer.ready(send, Session(evses[i % len(evses)]))
        c.on_message, c.on_connect, c.on_subscribe = on_message, on_connect, on_subscribe
        c.on_socket_open = lambda cl, u, sock: sock.setsockopt(socket.IPPROTO_TCP,
                                                               socket.TCP_NODELAY, 1)
        c.connect(a["host"], a["port"], 60)
        c.loop_start()
        clients.append(c)
    for cid, password, evses in a["chargers"]:
        charger(cid, password, evses)
    return clients


def _gen_https(a, count):
    import http.client
    import ssl
    ctx = ssl.create_default_context(cafile=a["ca"])
    ctx.load_cert_chain(a["cert"], a["key"])
    host, port = a["url"].split("//")[1].split(":")

    def lane(i):
        conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=30)
        s = Session("DE*ABC*E%d" % i)
        while time.time() < count.t1:
            path, body = s.request()
            t = time.time()
            conn.request("POST", path, json.dumps(body, separators=(",", ":")),
                         {"Content-Type": "application/json", "Accept": "application/json"})
            resp = conn.getresponse()
            reply = json.loads(resp.read())
            kind = _kind(s)
            count.add(kind, s.answered(resp.status, reply), resp.status, t)
        conn.close()
    threads = [threading.Thread(target=lane, args=(i,), daemon=True) for i in a["lanes"]]
    for t in threads:
        t.start()
    return threads


def gen_main(a):
    """One generator process: runs until a["t1"] (wall time), prints its counts as JSON."""
    count = Counter(a["t0"], a["t1"])
    keep = _gen_https(a, count) if a["mode"] == "https" else _gen_mqtt(a, count)
    time.sleep(max(0.0, a["t1"] - time.time()) + 0.2)
    with count.lock:
        out = {"ok": count.ok, "failed": count.failed, "lat": count.lat}
    print(json.dumps(out), flush=True)
    if a["mode"] == "mqtt":
        for c in keep:
            c.disconnect()
            c.loop_stop()


# ---- the orchestra ----------------------------------------------------------------------------


def cpu_s(pid):
    """CPU seconds (user + system) process pid has used, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


def _env():
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def _spawn(args, first):
    """A child process of ours whose first stdout line starts with `first`; (proc, line)."""
    p = subprocess.Popen([sys.executable] + args, cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True,
                         env=_env())
    line = p.stdout.readline().strip()
    if not line.startswith(first):
        p.kill()
        p.wait()
        raise RuntimeError("%s did not start: %r" % (" ".join(args[:3]), line))
    return p, line


def start_relay(cfg_path, client_id):
    """`python -m host_sim relay` as our child, once subscribed; (proc, metrics port)."""
    return child.spawn(cfg_path, client_id, _env())


class Rig:
    """Hub (mutual TLS), broker, chargers and relay configs in a temporary directory."""

    def __init__(self, tmp, chargers=CHARGERS, evses=4):
        self.tmp = tmp
        self.pki = certs.make_test_pki(os.path.join(tmp, "pki"), (OP,))
        self.hub, self.url = _spawn(["-m", "host_sim", "hub", "--tls", "--certs",
                                     self.pki["dir"], "--operator", OP, "--card", UID],
                                    "https://")
        self.chargers = [("lg-%d" % i, "pw%d" % i, ["DE*ABC*E%d*%d" % (i, k)
                                                     for k in range(evses)])
                         for i in range(chargers)]
        users = dict((c, p) for c, p, _ in self.chargers)
        users["relay"] = "rpw"
        self.broker = Broker(os.path.join(tmp, "mq"), users).start()
        self.relays = []

    def relay_config(self, connections=HUB_CONNECTIONS, limits=None):
        cert, key = self.pki["clients"][OP]
        doc = {"broker": {"host": self.broker.host, "port": self.broker.port, "user": "relay",
                          "password": "rpw", "group": "bench"},
               "hub": {"url": self.url, "ca": self.pki["ca"], "cert": cert, "key": key,
                       "connections": connections},
               "chargers": dict((c, {"operator_id": OP, "evses": e}) for c, _, e in
                                self.chargers),
               "limits": limits or dict.fromkeys(("authorize_per_min", "notifications_per_min"),
                                                 RAISED),
               "http": {"port": 0}}
        path = os.path.join(self.tmp, "relay.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        return path

    def start_relay(self, cfg_path, client_id):
        p, port = start_relay(cfg_path, client_id)
        self.relays.append((p, port))
        return p, port

    def close(self):
        for p, _ in self.relays:
            child.stop(p)
        self.broker.stop()
        child.stop(self.hub)


def metrics(port):
    """{name{labels}: value} of a relay's /metrics."""
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=10).read()
    out = {}
    for line in text.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def generate(rig, mode, seconds=MEASURE_S, warmup=WARMUP_S, window=WINDOW, rate=None,
             procs=GEN_PROCS, watch=()):
    """Runs the load; {"ok", "failed", "per_s", "lat_ms", "cpu_s"} for the measured window.
    watch: [(name, pid)] whose CPU seconds in the window are reported."""
    t0 = time.time() + warmup + 1.0  # +1: the generators start up
    t1 = t0 + seconds
    gens = []
    for i in range(procs):
        a = {"mode": mode, "t0": t0, "t1": t1, "window": window,
             "rate": rate and rate / procs}
        if mode == "https":
            cert, key = rig.pki["clients"][OP]
            a.update(url=rig.url, ca=rig.pki["ca"], cert=cert, key=key,
                     lanes=list(range(i, HUB_CONNECTIONS, procs)))
        else:
            a.update(host=rig.broker.host, port=rig.broker.port,
                     chargers=rig.chargers[i::procs])
        gens.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), "gen",
                                      json.dumps(a)], cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=_env()))
    pids = list(watch) + [("broker", rig.broker.proc.pid)] + [
        ("generator", g.pid) for g in gens]
    time.sleep(max(0.0, t0 - time.time()))
    c0 = [(n, cpu_s(p)) for n, p in pids]
    time.sleep(max(0.0, t1 - time.time()))
    c1 = [cpu_s(p) for _, p in pids]
    ok, failed, lat = {"authorize": 0, "notification": 0}, {}, []
    for g in gens:
        out, err = g.communicate(timeout=60)
        if g.returncode:
            raise RuntimeError("load generator failed: %s" % err[-2000:])
        r = json.loads(out.strip().splitlines()[-1])
        for k, v in r["ok"].items():
            ok[k] += v
        for k, v in r["failed"].items():
            failed[k] = failed.get(k, 0) + v
        lat += r["lat"]
    cpu = {}
    for (n, a), b in zip(c0, c1, strict=True):
        if a is not None and b is not None:
            cpu[n] = round(cpu.get(n, 0) + b - a, 2)
    total = ok["authorize"] + ok["notification"]
    return {"ok": ok, "failed": failed, "per_s": round(total / seconds, 1),
            "notifications_per_s": round(ok["notification"] / seconds, 1),
            "lat_ms": {"p50": pct(lat, 50), "p99": pct(lat, 99)}, "cpu_s": cpu,
            "seconds": seconds}


def pct(xs, p):
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))]


def _per_req_us(r):
    n = r["ok"]["authorize"] + r["ok"]["notification"] + sum(r["failed"].values())
    return dict((k, round(v * 1e6 / n)) for k, v in r["cpu_s"].items()) if n else {}


def run():
    random.seed(7)
    load0 = os.getloadavg()[0]  # the machine is shared: what else ran shows here
    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(tmp)
        try:
            direct = generate(rig, "https", watch=[("hub", rig.hub.pid)])
            cfg = rig.relay_config()
            p, port = rig.start_relay(cfg, "relay-a")
            relay = generate(rig, "mqtt", watch=[("hub", rig.hub.pid), ("relay", p.pid)])
            relay["metrics"] = dict((k, v) for k, v in metrics(port).items()
                                    if k.startswith(("relay_hub_connects", "relay_up")))
            q, port2 = rig.start_relay(cfg, "relay-b")
            m0 = [metrics(port), metrics(port2)]
            two = generate(rig, "mqtt", watch=[("hub", rig.hub.pid), ("relay-a", p.pid),
                                               ("relay-b", q.pid)])
            m1 = [metrics(port), metrics(port2)]
        finally:
            rig.close()
    key = 'relay_up_messages_total{result="queued"}'
    got = [b.get(key, 0) - a.get(key, 0) for a, b in zip(m0, m1, strict=True)]
    two["shares"] = {"relay-a": int(got[0]), "relay-b": int(got[1]),
                     "a_fraction": round(got[0] / max(1, sum(got)), 3)}
    for r in (direct, relay, two):
        r["cpu_us_per_request"] = _per_req_us(r)
    # What one core of each would carry on its own machine (CPU per request, no other load).
    hub_us, relay_us = direct["cpu_us_per_request"]["hub"], relay["cpu_us_per_request"]["relay"]
    return {"hub_direct": direct, "one_relay": relay, "two_relays": two,
            "relay_vs_hub": round(relay["per_s"] / max(direct["per_s"], 1), 3),
            "per_core_per_s": {"hub": round(1e6 / hub_us), "relay": round(1e6 / relay_us),
                               "relay_vs_hub": round(hub_us / relay_us, 3)},
            "setup": {"cores": os.cpu_count(), "generator_processes": GEN_PROCS,
                      "chargers": CHARGERS, "window_per_charger": WINDOW,
                      "hub_connections": HUB_CONNECTIONS, "progress_per_session": PROGRESS,
                      "warmup_s": WARMUP_S, "measure_s": MEASURE_S,
                      "loadavg_1min": [load0, os.getloadavg()[0]]}}


def lines(r):
    s = r["setup"]
    out = ["relay throughput (%d cores shared by generator, broker, hub, relay; %d chargers x %d"
           " sessions in flight; %d hub connections; session = AuthorizeStart, Start, %d "
           "Progress, End):" % (s["cores"], s["chargers"], s["window_per_charger"],
                                s["hub_connections"], s["progress_per_session"])]
    for key, name in (("hub_direct", "hub directly"), ("one_relay", "one relay"),
                      ("two_relays", "two relays")):
        m = r[key]
        out.append("  %-13s %7.1f req/s (%6.1f notifications/s), failed %s, latency p50 %s "
                   "p99 %s ms; CPU us/request %s" % (name, m["per_s"], m["notifications_per_s"],
                                                     m["failed"] or 0, m["lat_ms"]["p50"],
                                                     m["lat_ms"]["p99"],
                                                     m["cpu_us_per_request"]))
    sh = r["two_relays"]["shares"]
    out.append("  relay / hub directly: %.0f%%; two relays' shares: %d / %d (%.1f%% to a)"
               % (100 * r["relay_vs_hub"], sh["relay-a"], sh["relay-b"],
                  100 * sh["a_fraction"]))
    c = r["per_core_per_s"]
    out.append("  one core each, by CPU per request: hub %d req/s, relay %d req/s (%.0f%%); load "
               "average before/after %.1f / %.1f" % (c["hub"], c["relay"], 100 * c["relay_vs_hub"],
                                                    s["loadavg_1min"][0], s["loadavg_1min"][1]))
    return out


if __name__ == "__main__":
    if sys.argv[1:2] == ["gen"]:
        gen_main(json.loads(sys.argv[2]))
    else:
        res = run()
        print("\n".join(lines(res)))
        print(json.dumps(dict((k, v) for k, v in res.items())))
