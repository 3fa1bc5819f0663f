"""RemoteStart to Acknowledgement through the relay, a real Mosquitto and a crowd of chargers.

Setup on this machine (2 cores, shared): Mosquitto (host_sim/broker.py, one broker user per
charger), the relay as `python -m host_sim relay` with its CPO endpoint over mutual TLS, and
CHARGERS connected chargers in one process of their own (this file, `crowd` argument): small
asyncio MQTT 3.1.1 clients speaking the firmware's contract (docs/mqtt.md "Remote commands":
retained online and the offline will on cp/<id>/status, the command on cp/<id>/down, the answer
{"v":1,"reply":cid,"code":"000"} on cp/<id>/up), and REAL real firmware chargers (Agent on a
HostBoard, on the same event loop). This process plays Hubject: remote.Cpo (the mock hub's
client, a new mutual-TLS connection per call, as Hubject's would be) to random chargers' EVSEs.
- latency: SEQUENTIAL calls one after another to the crowd, REAL_CALLS to the real chargers
  (the first start on each is accepted and journaled, the next ones are 602, EVSE in use: each
  is a full round trip through the firmware): p50/p99 of RemoteStart to Acknowledgement.
- throughput: PARALLEL callers for MEASURE_S: commands answered per second, and the CPU
  seconds the relay and the broker used meanwhile.
"""
import asyncio
import json
import os
import random
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

from relay_throughput import cpu_s, pct  # noqa: E402  (tools/bench)

from cpagent.uplink import mqtt_codec as mc  # noqa: E402  (the firmware's own packets)
from host_sim import certs  # noqa: E402
from host_sim.broker import Broker  # noqa: E402
from host_sim.hub import HubThread  # noqa: E402
from host_sim.hub.remote import Cpo  # noqa: E402
from host_sim.relay import child  # noqa: E402

OP, HUB_CN, EVCO = "DE*ABC", "HUBJECT", "DE-EMP-C12345678-X"
CHARGERS = int(os.environ.get("BENCH_REMOTE_CHARGERS", "1000"))
SEQUENTIAL = 300
REAL, REAL_CALLS = 2, 40
PARALLEL = 8
MEASURE_S = 10.0
PASSWORD = "cpw"


def cid(i):
    return "f-%04d" % i


def evse(i):
    return "DE*ABC*E%04d" % i


def real_id(k):
    return "r-%d" % k


def real_evse(k):
    return "DE*ABC*E9%03d" % k


def _real_charger(k, host, port, state_dir):
    """A real firmware charger (imported here only: the crowd process)."""
    from cpagent import config as fw_config
    from cpagent.agent import Agent
    from cpagent.boards.host import HostBoard
    from host_sim.virtual.ev import EvLoad, RealTime
    from host_sim.virtual.meter import VirtualMeter
    from host_sim.virtual.pn532 import VirtualPn532
    cfg = fw_config.load(json.dumps({
        "charger_id": real_id(k), "operator_id": OP,
        "evses": [{"evse_id": real_evse(k), "meter_address": 1}],
        "reader": {"type": "pn532"}, "meter": {"model": "sdm630"},
        "uplink": {"kind": "mqtt", "host": host, "port": port, "user": real_id(k),
                   "password": PASSWORD},
        "timing": {"ev_wait_s": 3600}, "log_level": 0}))
    board = HostBoard(cfg, os.path.join(state_dir, real_id(k)), reader_dev=VirtualPn532(),
                      meter_dev=VirtualMeter("sdm630", 1, RealTime(EvLoad(), 1)),
                      echo=lambda line: None)
    return Agent(cfg, board)


# ---- the crowd: minimal MQTT 3.1.1 chargers (a process of their own), the firmware's codec --

async def _read(r):
    first = (await r.readexactly(1))[0]
    n, shift = 0, 0
    while True:
        b = (await r.readexactly(1))[0]
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
    return first, await r.readexactly(n)


async def _charger(i, host, port, ready):
    name = cid(i).encode()
    r, w = await asyncio.open_connection(host, port)
    w.write(mc.connect(cid(i), 60, cid(i), PASSWORD, will=(b"cp/%s/status" % name, b"offline")))
    first, body = await _read(r)
    if first != 0x20 or body[1] != 0:
        raise SystemExit("charger %s: CONNACK %r" % (cid(i), body))
    w.write(mc.subscribe(1, b"cp/%s/down" % name, 1))
    w.write(mc.publish(b"cp/%s/status" % name, b"online", 1, 2, retain=True))
    ready()
    pid, up = 2, b"cp/%s/up" % name
    while True:
        first, body = await _read(r)
        if first >> 4 != 3:
            continue  # SUBACK, PUBACK
        tl = int.from_bytes(body[:2], "big")
        at = 2 + tl
        if first & 0x06:
            w.write(mc.puback(int.from_bytes(body[at:at + 2], "big")))
            at += 2
        cmd = json.loads(body[at:])
        pid = mc.next_pid(pid)
        w.write(mc.publish(up, ('{"v":1,"reply":%s,"code":"000","info":"ok"}'
                                % json.dumps(cmd["cid"])).encode(), 1, pid))


def crowd_main(host, port, count, state_dir):
    async def go():
        agents = [_real_charger(k, host, int(port), state_dir) for k in range(REAL)]
        real = [asyncio.ensure_future(a.run()) for a in agents]
        left = [count]

        def ready():
            left[0] -= 1
            if not left[0]:
                print("ready", flush=True)
        tasks = []
        for i in range(count):
            tasks.append(asyncio.ensure_future(_charger(i, host, port, ready)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)  # a fleet comes up over time, not in one instant
        await asyncio.gather(*(tasks + real))
    asyncio.run(go())


# ---- the run ------------------------------------------------------------------------------

def _online(port):
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read()
    for line in text.decode().splitlines():
        if line.startswith("relay_chargers_online "):
            return int(float(line.split()[1]))
    return 0


def run(chargers=CHARGERS, sequential=SEQUENTIAL, parallel=PARALLEL, measure_s=MEASURE_S):
    tmp = tempfile.mkdtemp(prefix="bench-remote-")
    pki = certs.make_test_pki(os.path.join(tmp, "pki"), (OP, HUB_CN))
    users = dict((cid(i), PASSWORD) for i in range(chargers))
    users.update((real_id(k), PASSWORD) for k in range(REAL))
    users["relay"] = "rpw"
    procs = []
    with HubThread() as hub, Broker(os.path.join(tmp, "mq"), users) as broker:
        cert, key = pki["clients"][OP]
        cfg = {"broker": {"host": broker.host, "port": broker.port, "user": "relay",
                          "password": "rpw", "client_id": "relay-bench"},
               "hub": {"url": hub.url},
               "chargers": dict([(cid(i), {"operator_id": OP, "evses": [evse(i)]})
                                 for i in range(chargers)]
                                + [(real_id(k), {"operator_id": OP, "evses": [real_evse(k)]})
                                   for k in range(REAL)]),
               "http": {"port": 0},
               "cpo": {"port": 0, "ca": pki["ca"], "cert": pki["server"][0],
                       "key": pki["server"][1], "hub_cn": HUB_CN, "command_timeout_s": 10}}
        path = os.path.join(tmp, "relay.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        relay, port = child.spawn(path, "relay-bench")  # host_sim finds the firmware itself
        procs.append(relay)
        try:
            cpo_url = relay.stdout.readline().strip().rsplit(" ", 1)[1]
            crowd = subprocess.Popen([sys.executable, os.path.abspath(__file__), "crowd",
                                      broker.host, str(broker.port), str(chargers),
                                      os.path.join(tmp, "flash")],
                                     stdout=subprocess.PIPE, text=True, cwd=ROOT)
            procs.append(crowd)
            if crowd.stdout.readline().strip() != "ready":
                raise SystemExit("the charger crowd did not come up")
            end = time.monotonic() + 60
            while _online(port) < chargers + REAL and time.monotonic() < end:
                time.sleep(0.2)
            online = _online(port)
            hc, hk = pki["clients"][HUB_CN]
            cpo = Cpo(cpo_url, cert=hc, key=hk, ca=pki["ca"])
            rnd = random.Random(1)

            def one():
                i = rnd.randrange(chargers)
                return cpo.call("start", cpo.body("start", evse(i), "DE-EMP", EVCO))
            lat, codes = [], {}
            for _ in range(sequential):
                rec = one()
                codes[rec["code"]] = codes.get(rec["code"], 0) + 1
                lat.append(rec["seconds"])
            real_lat, real_codes = [], {}
            for n in range(REAL_CALLS):
                e = real_evse(n % REAL)
                rec = cpo.call("start", cpo.body("start", e, "DE-EMP", EVCO))
                real_codes[rec["code"]] = real_codes.get(rec["code"], 0) + 1
                real_lat.append(rec["seconds"])
            done, stop = [0], time.monotonic() + measure_s
            cpu0 = (cpu_s(relay.pid), cpu_s(broker.proc.pid))

            def caller():
                while time.monotonic() < stop:
                    if one()["code"] == "000":
                        done[0] += 1
            ts = [threading.Thread(target=caller) for _ in range(parallel)]
            t0 = time.monotonic()
            for t in ts:
                t.start()
            for t in ts:
                t.join(measure_s + 30)
            wall = time.monotonic() - t0
            cpu1 = (cpu_s(relay.pid), cpu_s(broker.proc.pid))
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    lat.sort()
    real_lat.sort()
    return {"real_chargers": REAL, "real_calls": REAL_CALLS, "real_codes": real_codes,
            "real_p50_ms": round(pct(real_lat, 50) * 1000, 1),
            "real_p99_ms": round(pct(real_lat, 99) * 1000, 1),
            "chargers_connected": online, "sequential_calls": sequential, "codes": codes,
            "p50_ms": round(pct(lat, 50) * 1000, 1), "p99_ms": round(pct(lat, 99) * 1000, 1),
            "max_ms": round(lat[-1] * 1000, 1), "parallel_callers": parallel,
            "commands_per_s": round(done[0] / wall, 1),
            "relay_cpu_s": round(cpu1[0] - cpu0[0], 2),
            "broker_cpu_s": round(cpu1[1] - cpu0[1], 2), "measure_s": round(wall, 1)}


def lines(r):
    return ["remote start to acknowledgement (hub -> relay over mutual TLS -> Mosquitto -> "
            "charger -> back), %d chargers connected: p50 %.1f ms, p99 %.1f ms, max %.1f ms "
            "(%d sequential calls, codes %s)" % (r["chargers_connected"], r["p50_ms"],
                                                  r["p99_ms"], r["max_ms"],
                                                  r["sequential_calls"], r["codes"]),
            "same to %d real firmware chargers among them: p50 %.1f ms, p99 %.1f ms (%d calls, "
            "codes %s)" % (r["real_chargers"], r["real_p50_ms"], r["real_p99_ms"],
                           r["real_calls"], r["real_codes"]),
            "remote commands one relay serves: %.1f/s with %d parallel callers (relay %.2f, "
            "broker %.2f CPU s in %.1f s)" % (r["commands_per_s"], r["parallel_callers"],
                                              r["relay_cpu_s"], r["broker_cpu_s"],
                                              r["measure_s"])]


if __name__ == "__main__":
    if sys.argv[1:2] == ["crowd"]:
        crowd_main(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
    else:
        n = int(sys.argv[1]) if len(sys.argv) > 1 else CHARGERS
        print("\n".join(lines(run(n))))
