"""make deploy: a board's .mpy image, config.json and its certificates onto a device (mpremote).

The config is validated (cpagent.config; the device gets its checked form, config.checked) and
its certificate files checked before the device is touched (the `openssl` CLI parses them:
dates, the key against its certificate, and what the
board's TLS can load: PEM as it is on the ESP32; on the Pico W, whose mbedTLS has no PEM parser,
one DER certificate per file, converted here, with config.json naming the .der files). Then, each
step one mpremote command line (--dry-run prints them and does nothing):
1. hold: interrupt the app, delete stale .py sources in /cpagent and its packages (a .py shadows
   the .mpy of the same name), write /nowdt, hard reset. A running watchdog stops only with a
   reset, and with /nowdt the board starts none (boards/mcu.py), so the copying is not cut off;
2. copy the staged tree (dist/<board>/ + config.json + certificates) to / (mpremote skips files
   whose hash is unchanged);
3. mip install each dependency of firmware/package.json (mpremote fetches them on this host);
4. remove /nowdt and hard reset: the agent starts, with its watchdog.
A command that fails (the device is still rebooting) is run again, up to RETRIES times.
--frozen (an image with the agent frozen in): step 1 deletes the .mpy of an earlier deploy too,
and step 2 copies no module. --romfs (an image with a ROMFS partition): the modules go into a
ROMFS image (build/deploy/<board>.romfs) that `mpremote romfs deploy` writes between steps 1
and 2; the firmware mounts it at /rom and imports run from flash in place (bytecode and strings
stay there, as frozen ones do), and step 1 deletes the module files that would shadow it.
"""
import argparse
import ast
import datetime
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "host_sim", "pyshim")]

from mpremote.romfs import VfsRomWriter  # noqa: E402

from cpagent import config, loader  # noqa: E402
from cpagent.drivers.meter_maps import NAMES  # noqa: E402

DIST = os.path.join(ROOT, "dist")
STAGE = os.path.join(ROOT, "build", "deploy")
PACKAGE = os.path.join(ROOT, "firmware", "package.json")
MPREMOTE = os.path.join(os.path.dirname(sys.executable), "mpremote")
BOARDS = ("esp32", "rp2")
RETRIES = 5
NOWDT = "nowdt"  # boards/mcu.py NOWDT
# The folders of the agent's modules on the flash (firmware/cpagent/ and its packages).
PACKAGES = ("cpagent", "cpagent/oicp", "cpagent/uplink", "cpagent/drivers", "cpagent/boards")
# Scripts run on the device; double quotes inside, so that the shell lines --dry-run prints
# stay readable.
_HOLD = ("import os\n"
         "for d in (" + ", ".join('\"%s\"' % d for d in PACKAGES) + "):\n"
         "    try:\n"
         "        for f in os.listdir(d):\n"
         "            if f[-3:] == \".py\"%s:\n"
         "                os.remove(d + \"/\" + f)\n"
         "    except OSError:\n"
         "        pass\n"
         "open(\"%s\", \"w\").close()\n")
HOLD = _HOLD % ("", NOWDT)
# An image with the agent frozen in (firmware/manifest.py): any module file on the flash comes
# first on sys.path and would shadow the frozen one, the .mpy of an earlier deploy too.
HOLD_FROZEN = _HOLD % (" or f[-4:] == \".mpy\"", NOWDT)
RELEASE = ("import os\n"
           "try:\n"
           "    os.remove(\"%s\")\n"
           "except OSError:\n"
           "    pass\n" % NOWDT)


_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class DeployError(Exception):
    """Refused before touching the device; the message says what to fix."""


def load_config(path, board=None):
    """(validated config, [(device path, local file)] of its certificates); board: also the
    board's limits (its UARTs, its watchdog) and its pins as the board takes them at boot (each
    once, none the board's hardware holds)."""
    try:
        with open(path, "rb") as f:
            cfg = config.load(f.read())
        if board:
            found = _board_class(board)
            config.check_board(cfg, found["UARTS"], found["WDT_MAX_S"])
            loader.board_pins(cfg, found["UARTS"], found["DE"], found["LED"], found["RESERVED"])
    except OSError as e:
        raise DeployError("config %s: cannot read it (%s); start from "
                          "firmware/config.example.json" % (path, e.strerror))
    except config.ConfigError as e:
        raise DeployError("config %s: %s" % (path, e))
    certs = []
    u = cfg["uplink"]
    for key in ("ca", "cert", "key"):
        name = u.get(key)
        if name is None:
            continue
        dev = name.lstrip("/")
        if ".." in dev.split("/") or "\\" in dev:
            raise DeployError("uplink.%s: %r: expected a path inside the device's flash" % (
                key, name))
        local = os.path.join(os.path.dirname(os.path.abspath(path)), dev)
        if not os.path.isfile(local):
            raise DeployError("uplink.%s: %s not found (looked for %s, next to the config)"
                              % (key, name, local))
        certs.append(("uplink." + key, dev, local))
    return cfg, certs


def _board_class(board):
    """The constants of boards/<board>.py's class, read from its source (it imports machine)."""
    with open(os.path.join(ROOT, "firmware", "cpagent", "boards", board + ".py")) as f:
        tree = ast.parse(f.read())
    found = {}
    for cls in tree.body:
        for n in getattr(cls, "body", ()):
            if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Name):
                found[n.targets[0].id] = ast.literal_eval(n.value)
    return found


def _openssl(field, path, what, *args, data=None):
    r = subprocess.run(("openssl",) + args, input=data, capture_output=True)
    if r.returncode:
        raise DeployError("%s: %s is not %s that openssl can read (%s)" % (
            field, path, what, " ".join(r.stderr.decode(errors="replace").split()[-12:])))
    return r.stdout


def _date(text):
    return datetime.datetime.strptime(text.split("=", 1)[1].strip(), "%b %d %H:%M:%S %Y %Z")


def _certificates(field, path, data, now):
    """The DER certificates of a PEM or DER file, each checked to be in date at `now`."""
    blocks = _PEM_CERT.findall(data) if data.lstrip()[:11] == b"-----BEGIN " else [data]
    if not blocks:
        raise DeployError("%s: %s holds no certificate (expected PEM or DER)" % (field, path))
    out = []
    for b in blocks:
        form = "PEM" if b[:1] == b"-" else "DER"
        dates = _openssl(field, path, "a certificate", "x509", "-inform", form, "-noout",
                         "-startdate", "-enddate", data=b).decode().splitlines()
        start, end = _date(dates[0]), _date(dates[1])
        if now > end:
            raise DeployError("%s: %s expired on %s UTC" % (field, path, end))
        if now < start:
            raise DeployError("%s: %s is valid only from %s UTC (check this computer's clock)"
                              % (field, path, start))
        out.append(_openssl(field, path, "a certificate", "x509", "-inform", form, "-outform",
                            "DER", data=b))
    return out


def der_name(dev):
    """The device path of a converted file: certs/client.pem -> certs/client.der; a key
    certs/client.key -> certs/client.key.der (a certificate and its key often share a stem)."""
    stem, ext = os.path.splitext(dev)
    if ext == ".der":
        return dev
    return stem + ".der" if ext in (".pem", ".crt", ".cer") else dev + ".der"


def tls_files(board, certs, now=None):
    """[(device path, bytes)] of the uplink's certificate files as `board`'s TLS loads them, and
    {config field: device path} where that path changed. Checks what the device cannot: each
    certificate parses and is in date, the key parses (unencrypted: the device has no password)
    and belongs to the client certificate; on a board without a PEM parser each file must hold
    one certificate (mbedTLS reads one from DER). now: UTC, naive (default: this computer's)."""
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    pem = _board_class(board)["TLS_PEM"]
    files, renamed, pubkeys = [], {}, {}
    for field, dev, local in certs:
        with open(local, "rb") as f:
            data = f.read()
        form = "PEM" if data.lstrip()[:11] == b"-----BEGIN " else "DER"
        if field == "uplink.key":
            # -passin pass: refuses an encrypted key: the device has no password for it.
            der = _openssl(field, local, "an unencrypted private key", "pkey", "-inform", form,
                           "-outform", "DER", "-passin", "pass:", data=data)
            pubkeys[field] = (local, _openssl(field, local, "a key", "pkey", "-inform", "DER",
                                              "-pubout", data=der))
        else:
            chain = _certificates(field, local, data, now)
            if not pem and len(chain) != 1:
                raise DeployError(
                    "%s: %s holds %d certificates; the %s port's TLS loads one (DER): give only "
                    "%s" % (field, local, len(chain), board, "the CA that signed the hub's "
                            "certificate" if field == "uplink.ca" else "the charger's own"))
            der = chain[0]
            if field == "uplink.cert":
                pubkeys[field] = (local, _openssl(field, local, "a certificate", "x509",
                                                  "-inform", "DER", "-noout", "-pubkey",
                                                  data=der))
        if pem or der == data:
            files.append((dev, data))
        else:
            files.append((der_name(dev), der))
            renamed[field] = der_name(dev)
    if len(pubkeys) == 2 and pubkeys["uplink.key"][1] != pubkeys["uplink.cert"][1]:
        raise DeployError("uplink.key: %s is not the key of %s (uplink.cert)" % (
            pubkeys["uplink.key"][0], pubkeys["uplink.cert"][0]))
    return files, renamed


def deps(package):
    """The mip names of package.json's dependencies ("name" or "name@version")."""
    with open(package) as f:
        return [n if v == "latest" else "%s@%s" % (n, v) for n, v in json.load(f).get("deps", [])]


def unused(cfg):
    """The cpagent modules this config never imports (cpagent/agent.py imports the uplink, the
    reader driver and the meter bus only where the config asks for them): left off the device,
    they cost no flash (uplink/result.py: what both uplinks share)."""
    out = {"config"}  # the validator: the host ran it (stage writes the checked form)
    if cfg["uplink"]["kind"] != "mqtt":
        out.update(("uplink/mqtt_codec", "uplink/mqtt_client", "uplink/mqtt", "oicp/remote",
                    "relay"))
    else:
        out.update(("uplink/http", "uplink/http_client"))
    reader = cfg["reader"]["type"]
    out.update("drivers/" + m for t, m in (
        ("pn532", "pn532"), ("rdm6300", "rdm6300"), ("line", "line_reader")) if t != reader)
    # Only the configured meter's register map (for "custom", the module that reads its map
    # from the config).
    out.update("drivers/map_" + n for n in NAMES + ("custom",) if n != cfg["meter"]["model"])
    if cfg["meter"]["model"] == "none":
        out.update("drivers/" + m for m in ("meter", "meter_maps", "modbus", "modbus_client"))
        if reader == "none":
            out.update(("drivers/tap", "drivers/__init__"))  # no driver at all
    return out


def stage(board, config_path, certs, dist, out, cfg=None, frozen=False, romfs=False):
    """A fresh copy of what goes onto the device, laid out as on its flash, without the modules
    the config never imports (`unused`; frozen: no modules at all, the image has them; romfs:
    they go into the ROMFS image `<folder>.romfs` instead), the certificates in the form the
    board's TLS loads (`tls_files`; config.json then names the converted files); returns its
    folder."""
    files, renamed = tls_files(board, certs)
    src = os.path.join(dist, board)
    if not os.path.isdir(src):
        raise DeployError("%s: no image; run `make build BOARD=%s` first" % (src, board))
    out = os.path.join(out, board)
    shutil.rmtree(out, ignore_errors=True)
    if os.path.exists(out + ".romfs"):
        os.remove(out + ".romfs")
    shutil.copytree(src, out)
    if frozen:
        shutil.rmtree(os.path.join(out, "cpagent"))
    for name in unused(cfg) if cfg and not frozen else ():
        path = os.path.join(out, "cpagent", name + ".mpy")
        if os.path.exists(path):
            os.remove(path)
    if romfs:
        with open(out + ".romfs", "wb") as f:
            f.write(romfs_image(out, "cpagent"))
        shutil.rmtree(os.path.join(out, "cpagent"))
    # The device loads the checked form (cpagent.loader): every default filled, a version; the
    # validator stays on the host and off the device.
    if cfg is None:
        with open(config_path, "rb") as f:
            cfg = config.load(f.read())
    cfg = dict(cfg, uplink=dict(cfg["uplink"]))
    cfg["uplink"].update((field.split(".")[1], dev) for field, dev in renamed.items())
    with open(os.path.join(out, "config.json"), "w") as f:
        f.write(config.checked(cfg))
    for dev, data in files:
        os.makedirs(os.path.dirname(os.path.join(out, dev)) or out, exist_ok=True)
        with open(os.path.join(out, dev), "wb") as f:
            f.write(data)
    return out


def romfs_image(top, name):
    """A ROMFS image (mpremote's writer, the format the firmware mounts at /rom) holding the
    folder `name` of `top` as it is, the .mpy compiled already."""
    rom = VfsRomWriter()

    def add(path):
        for entry in sorted(os.listdir(path)):
            full = os.path.join(path, entry)
            if os.path.isdir(full):
                rom.opendir(entry)
                add(full)
                rom.closedir()
            else:
                with open(full, "rb") as f:
                    rom.mkfile(entry, f.read())

    rom.opendir(name)
    add(os.path.join(top, name))
    rom.closedir()
    return rom.finalise()


def image_bytes(staged):
    """The bytes of .mpy a deploy writes: its files, or its ROMFS image."""
    if os.path.exists(staged + ".romfs"):
        return os.path.getsize(staged + ".romfs")
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(staged) for f in fs
               if f.endswith(".mpy"))


def commands(port, staged, dependencies, frozen=False, romfs=False):
    """The mpremote command lines of a deploy, in order."""
    dev = [MPREMOTE, "connect", port]
    tops = [os.path.join(staged, n) for n in sorted(os.listdir(staged))]
    out = [dev + ["exec", HOLD_FROZEN if frozen or romfs else HOLD, "+", "reset"]]
    if romfs:
        # mpremote refuses a firmware without ROMFS, or an image larger than its partition,
        # before it writes anything; the new image is mounted at the reset of the last step.
        out.append(dev + ["romfs", "deploy", staged + ".romfs"])
    out.append(dev + ["fs", "cp", "-r"] + tops + [":"])
    out.extend(dev + ["mip", "install", d] for d in dependencies)
    out.append(dev + ["exec", RELEASE, "+", "reset"])
    return out


def attempt(cmd, run, sleep, **kw):
    """Run one mpremote command, again on failure (a device just reset needs a moment to come
    back), up to RETRIES times; returns its result."""
    for i in range(RETRIES):
        r = run(cmd, **kw)
        if r.returncode == 0:
            return r
        if i < RETRIES - 1:
            sleep(2)
    raise DeployError("failed %d times: %s%s" % (RETRIES, shlex.join(cmd), (
        "\n" + r.stderr.strip()) if kw and r.stderr else ""))


def detect(port, run, sleep):
    """The board of the device on `port`, from its sys.platform."""
    r = attempt([MPREMOTE, "connect", port, "exec", "import sys; print(sys.platform)"], run,
                sleep, capture_output=True, text=True)
    name = (r.stdout.strip().splitlines() or [""])[-1]
    if name not in BOARDS:
        raise DeployError("%s: the device says %r; give BOARD=esp32 or BOARD=rp2" % (port, name))
    return name


def main(argv=None, run=subprocess.run, sleep=time.sleep, echo=print):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", required=True, help="the device, e.g. /dev/ttyUSB0")
    ap.add_argument("--board", choices=BOARDS + ("all",), default="all",
                    help="all: ask the device (not with --dry-run)")
    ap.add_argument("--config", default="config.json")
    ap.add_argument("--dry-run", action="store_true", help="print the mpremote commands only")
    form = ap.add_mutually_exclusive_group()
    form.add_argument("--frozen", action="store_true",
                      help="the device runs an image with firmware/manifest.py frozen in: copy "
                           "no module, delete those of an earlier deploy")
    form.add_argument("--romfs", action="store_true",
                      help="the device's firmware has a ROMFS partition: write the modules "
                           "there (run from flash in place), delete those of an earlier deploy")
    args = ap.parse_args(argv)
    try:
        # A bad config stops here, before the device is asked anything.
        board = None if args.board == "all" else args.board
        load_config(args.config, board)
        if board is None:
            if args.dry_run:
                raise DeployError("--dry-run needs --board esp32 or rp2 (BOARD=...)")
            board = detect(args.port, run, sleep)
        cfg, certs = load_config(args.config, board)
        staged = stage(board, args.config, certs, DIST, STAGE, cfg, args.frozen, args.romfs)
        cmds = commands(args.port, staged, deps(PACKAGE), args.frozen, args.romfs)
        if args.dry_run:
            for cmd in cmds:
                echo(shlex.join(cmd))
            return cmds
        echo("deploy: %d bytes of .mpy%s for this config (%s left out: not imported)"
             % (image_bytes(staged), " in a ROMFS image" if args.romfs else "",
                ", ".join(sorted(unused(cfg))) or "nothing"))
        for cmd in cmds:
            echo("$ " + shlex.join(cmd))
            attempt(cmd, run, sleep)
    except DeployError as e:
        sys.exit("deploy: %s" % e)
    echo("deploy: done; `mpremote connect %s repl` shows the log (Ctrl-C stops the agent)"
         % args.port)
    return cmds


if __name__ == "__main__":
    main()
