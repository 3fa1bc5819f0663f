"""tools/deploy.py: the exact mpremote command lines, and a bad config refused before the device
is touched; firmware/package.json lists the image's modules."""
import ast
import json
import os
import shlex
import subprocess
import sys
from types import SimpleNamespace

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import build  # noqa: E402
import deploy  # noqa: E402

from cpagent import config  # noqa: E402  (tools/deploy.py put firmware/ on the path)

PORT = "/dev/fake-cp0"
M = deploy.MPREMOTE


class Device:
    """Stands in for subprocess.run: records each command; `fails` first calls fail; `platform`
    is what the device prints for sys.platform."""

    def __init__(self, fails=0, platform="esp32"):
        self.calls = []
        self.fails = fails
        self.platform = platform

    def __call__(self, cmd, **kw):
        self.calls.append(cmd)
        if self.fails:
            self.fails -= 1
            return SimpleNamespace(returncode=1, stdout="", stderr="no device")
        return SimpleNamespace(returncode=0, stdout="%s\n" % self.platform, stderr="")


@pytest.fixture
def site(tmp_path, monkeypatch):
    for board in ("esp32", "rp2"):
        for rel in ("boards/__init__.mpy", "boards/mcu.mpy", "boards/%s.mpy" % board,
                    "cpagent/agent.mpy", "main.py", "boot.py"):
            p = tmp_path / "dist" / board / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(board + rel)
    with open(os.path.join(ROOT, "firmware", "config.example.json")) as f:
        cfg = json.load(f)
    (tmp_path / "site" / "certs").mkdir(parents=True)
    for name in ("hub-ca.pem", "client.pem", "client.key"):
        (tmp_path / "site" / "certs" / name).write_text("PEM " + name)
    (tmp_path / "package.json").write_text(json.dumps(
        {"urls": [], "deps": [["ntptime", "latest"], ["github:org/lib", "v1.2"]]}))
    monkeypatch.setattr(deploy, "DIST", str(tmp_path / "dist"))
    monkeypatch.setattr(deploy, "STAGE", str(tmp_path / "stage"))
    monkeypatch.setattr(deploy, "PACKAGE", str(tmp_path / "package.json"))
    return SimpleNamespace(root=tmp_path, cfg=cfg, path=tmp_path / "site" / "config.json")


def _write(site, cfg):
    site.path.write_text(json.dumps(cfg))
    return str(site.path)


def test_dry_run_prints_the_exact_mpremote_commands_and_touches_nothing(site):
    dev, out = Device(), []
    cmds = deploy.main(["--port", PORT, "--board", "esp32", "--config", _write(site, site.cfg),
                        "--dry-run"], run=dev, echo=out.append)
    st = str(site.root / "stage" / "esp32")
    assert cmds == [
        [M, "connect", PORT, "exec", deploy.HOLD, "+", "reset"],
        [M, "connect", PORT, "fs", "cp", "-r"] + [
            os.path.join(st, n) for n in ("boards", "boot.py", "certs", "config.json",
                                          "cpagent", "main.py")] + [":"],
        [M, "connect", PORT, "mip", "install", "ntptime"],
        [M, "connect", PORT, "mip", "install", "github:org/lib@v1.2"],
        [M, "connect", PORT, "exec", deploy.RELEASE, "+", "reset"],
    ]
    assert out == [shlex.join(c) for c in cmds] and dev.calls == []
    # The staged tree is the device's flash: the image, config.json, the certificates.
    staged = sorted(os.path.relpath(os.path.join(d, f), st) for d, _, fs in os.walk(st)
                    for f in fs)
    assert staged == ["boards/__init__.mpy", "boards/esp32.mpy", "boards/mcu.mpy", "boot.py",
                      "certs/client.key", "certs/client.pem", "certs/hub-ca.pem", "config.json",
                      "cpagent/agent.mpy", "main.py"]
    assert json.loads(open(os.path.join(st, "config.json")).read()) == site.cfg
    assert open(os.path.join(st, "certs", "hub-ca.pem")).read() == "PEM hub-ca.pem"


def test_the_hold_and_release_scripts_name_the_boards_flag():
    # The watchdog stays off while /nowdt exists (boards/mcu.py); the scripts make and remove it.
    with open(os.path.join(ROOT, "firmware", "boards", "mcu.py")) as f:
        tree = ast.parse(f.read())
    flag = [n.value.value for n in tree.body if isinstance(n, ast.Assign)
            and getattr(n.targets[0], "id", "") == "NOWDT"]
    assert flag == [deploy.NOWDT]
    assert 'open("%s", "w")' % flag[0] in deploy.HOLD
    assert 'os.remove("%s")' % flag[0] in deploy.RELEASE
    for script in (deploy.HOLD, deploy.RELEASE):
        compile(script, "exec", "exec")  # valid Python (the device compiles the same text)


def test_a_bad_config_is_refused_before_the_device_is_touched(site):
    def bad(path, value):
        cfg = json.loads(json.dumps(site.cfg))
        node = cfg
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
        return cfg

    for cfg, words in (
        (bad("meter.uart", 7), "meter.uart: expected an integer 0..2"),
        (bad("board.de_pin", 99), "board.de_pin"),
        (bad("uplink.ca", "certs/missing.pem"), "uplink.ca: certs/missing.pem not found"),
        (bad("uplink.key", "../../etc/key.pem"), "uplink.key: '../../etc/key.pem': expected a"),
    ):
        dev = Device()
        with pytest.raises(SystemExit) as e:
            deploy.main(["--port", PORT, "--config", _write(site, cfg)], run=dev,
                        echo=lambda s: None)
        assert words in str(e.value), (words, e.value)
        assert dev.calls == [] and not (site.root / "stage").exists()
    with pytest.raises(SystemExit) as e:
        deploy.main(["--port", PORT, "--config", str(site.root / "nope.json")], run=Device())
    assert "cannot read it" in str(e.value)


def test_a_deploy_runs_the_steps_retrying_a_rebooting_device(site):
    dev, naps = Device(fails=2, platform="rp2"), []
    pico = dict(site.cfg, meter=dict(site.cfg["meter"], uart=0))  # a Pico W has UART0 and 1
    cmds = deploy.main(["--port", PORT, "--config", _write(site, pico)], run=dev,
                       sleep=naps.append, echo=lambda s: None)
    # board "all": the device said rp2 (its first answers failed: asked again 2 s later)
    assert [c[3:5] for c in dev.calls[:3]] == [["exec", "import sys; print(sys.platform)"]] * 3
    assert dev.calls[3:] == cmds and naps == [2, 2]
    assert any(p.endswith(os.path.join("stage", "rp2", "boards")) for p in cmds[1])
    dev = Device(fails=3)
    deploy.main(["--port", PORT, "--board", "esp32", "--config", _write(site, site.cfg)],
                run=dev, sleep=naps.append, echo=lambda s: None)
    assert naps == [2, 2, 2, 2, 2] and dev.calls[:4] == [cmds[0]] * 4
    dev = Device(fails=99)
    with pytest.raises(SystemExit) as e:
        deploy.main(["--port", PORT, "--board", "esp32", "--config", _write(site, site.cfg)],
                    run=dev, sleep=lambda s: None, echo=lambda s: None)
    assert "failed %d times" % deploy.RETRIES in str(e.value)
    assert len(dev.calls) == deploy.RETRIES  # nothing after the failed step
    with pytest.raises(SystemExit) as e:
        deploy.main(["--port", PORT, "--config", _write(site, site.cfg), "--dry-run"])
    assert "--dry-run needs --board" in str(e.value)


def test_package_json_lists_every_module_of_both_images():
    # `make build` rewrites it when a module comes or goes; here it must be current.
    path, text = build.package_json()
    with open(path) as f:
        assert f.read() == text, "firmware/package.json is stale: run make build"
    pkg = json.loads(text)
    mods = sorted(set(build.modules("esp32")) | set(build.modules("rp2")))
    assert pkg["urls"] == [[m, m] for m in mods] and pkg["deps"] == []
    assert "boards/host.py" not in mods and "manifest.py" not in mods
    assert deploy.deps(path) == []


def test_a_config_the_board_would_refuse_is_refused_here(site):
    # The example wires the meter to UART2, which a Pico W lacks; its watchdog stops at 8 s.
    assert deploy.limits("rp2") == ({0: (0, 1), 1: (4, 5)}, 8)
    for board, cfg, words in (
        ("rp2", site.cfg, "meter.uart: expected one of 0, 1 on this board, got 2"),
        ("esp32", dict(site.cfg, board={"wdt_s": 60}), None),
        ("rp2", dict(site.cfg, meter=dict(site.cfg["meter"], uart=0), board={"wdt_s": 9}),
         "board.wdt_s: expected at most 8 on this board, got 9"),
        ("esp32", dict(site.cfg, wifi=None), "wifi: required on this board"),
    ):
        dev = Device()
        argv = ["--port", PORT, "--board", board, "--config", _write(site, cfg), "--dry-run"]
        if words is None:
            assert deploy.main(argv, run=dev, echo=lambda s: None)
            continue
        with pytest.raises(SystemExit) as e:
            deploy.main(argv, run=dev, echo=lambda s: None)
        assert words in str(e.value) and dev.calls == [], e.value


CONFIGS = [  # (uplink, reader, meter model): the modules each leaves off the device
    (("http", "pn532", "sdm630"), {"mqtt", "mqtt_client", "uplink_mqtt", "rdm6300",
                                   "line_reader"}),
    (("mqtt", "rdm6300", "none"), {"pn532", "line_reader", "meter", "meter_maps", "modbus",
                                   "modbus_client"}),
    (("http", "none", "none"), {"mqtt", "mqtt_client", "uplink_mqtt", "pn532", "rdm6300",
                                "line_reader", "meter", "meter_maps", "modbus", "modbus_client",
                                "tap"}),
    (("mqtt", "line", "abb_b23"), {"pn532", "rdm6300"}),
]


def _variant(kind, reader, model):
    with open(os.path.join(ROOT, "firmware", "config.example.json")) as f:
        doc = json.load(f)
    doc["uplink"] = ({"kind": "mqtt", "host": "127.0.0.1"} if kind == "mqtt" else
                     {"kind": "http", "url": "http://127.0.0.1:9"})
    doc["reader"] = {"type": reader}
    doc["meter"] = {"model": model}
    return doc


@pytest.mark.parametrize("variant,left_out", CONFIGS)
def test_a_deploy_leaves_out_only_modules_the_config_never_imports(variant, left_out, tmp_path):
    doc = _variant(*variant)
    assert deploy.unused(config.load(json.dumps(doc))) == left_out
    # The proof: the agent builds for this config from a tree without those modules.
    fw = os.path.join(ROOT, "firmware")
    (tmp_path / "cpagent").mkdir()
    for name in os.listdir(os.path.join(fw, "cpagent")):
        if name.endswith(".py") and name[:-3] not in left_out:
            (tmp_path / "cpagent" / name).write_bytes(
                open(os.path.join(fw, "cpagent", name), "rb").read())
    script = (
        "import json, sys\n"
        "from cpagent import config\n"
        "from cpagent.agent import Agent\n"
        "from boards.host import HostBoard\n"
        "cfg = config.load(sys.argv[1])\n"
        "dev = lambda data: b''\n"
        "Agent(cfg, HostBoard(cfg, sys.argv[2], reader_dev=dev, meter_dev=dev))\n"
        "gone = [m for m in sys.argv[3:] if 'cpagent.' + m in sys.modules]\n"
        "print('imported', gone)\n")
    (tmp_path / "boards").mkdir()
    for name in ("__init__.py", "host.py"):
        (tmp_path / "boards" / name).write_bytes(open(os.path.join(fw, "boards", name),
                                                      "rb").read())
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path), os.path.join(ROOT, "host_sim", "pyshim")]))
    out = subprocess.run([sys.executable, "-c", script, json.dumps(doc), str(tmp_path / "st")]
                         + sorted(left_out), env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "imported []"
