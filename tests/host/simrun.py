"""Runs `host_sim run` for the simulator tests: the command, a scenario file, its summary."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# host_sim finds the firmware by itself: no PYTHONPATH (a stray one must not help either)
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
CARD = "04A1B2C3D4E5F6"
ONE = {"charger": {"evses": 1}, "chargers": [{"sessions": [
    {"card": CARD, "idle_s": 30, "plug_s": 10, "charge_s": 400}]}]}


def _cmd(*args):
    return [sys.executable, "-m", "host_sim", "run"] + [str(a) for a in args]


def _scenario(tmp_path, doc, name="s.json"):
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return str(p)


def _run(args, timeout=120, **kw):
    r = subprocess.run(args, cwd=ROOT, env=ENV, capture_output=True, text=True,
                       timeout=timeout, **kw)
    lines = r.stdout.strip().splitlines()
    summary = json.loads(lines[-1]) if lines and lines[-1].startswith("{") else None
    return r, summary


def _file(tmp_path, doc):
    p = tmp_path / "s.json"
    p.write_text(json.dumps(doc))
    return p


def _run_lines(*args, timeout=180):
    """`host_sim run ARGS` as _run runs it: (result, stdout lines, summary)."""
    r, summary = _run(_cmd(*args), timeout=timeout)
    return r, r.stdout.strip().splitlines(), summary
