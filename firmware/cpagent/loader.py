"""Boot-only: config.json as the host checked and filled it, and what a board builds from it."""
import json

from cpagent import ConfigError

VERSION = 1  # of the checked form: config.py writes it, a firmware whose schema changed raises it
# What the agent reads before anything could name a missing field; the host filled all the rest.
_TOP = ("charger_id", "operator_id", "evses", "reader", "meter", "uplink", "journal", "timing",
        "board", "log_level")


def load(text):
    """A checked config.json (text or bytes) -> its dict; raises ConfigError naming what is
    wrong. The full validator (cpagent.config) runs on the host: make deploy writes the file."""
    try:
        c = json.loads(text)
    except (ValueError, RuntimeError, TypeError) as e:  # a bad UTF-8 byte is a ValueError too
        raise ConfigError("config: expected UTF-8 JSON (%s)" % e)
    v = c.get("checked") if type(c) is dict else None
    if v != VERSION:
        raise ConfigError("config.checked: expected %d, got %r: write config.json with make deploy"
                          " (tools/deploy.py checks it and fills the defaults)" % (VERSION, v))
    for k in _TOP:
        if k not in c:
            raise ConfigError("config.%s: missing from a checked config" % k)
    return c


def check_board(c, uarts, wdt_max_s):
    """A loaded config against a MicroPython board's limits (its UART numbers, its watchdog's
    longest timeout); boards/mcu.py at boot and tools/deploy.py before copying."""
    if c["wifi"] is None:
        _need("wifi", "required on this board (ssid and password)")
    for what, used in (("reader", c["reader"]["type"] != "none"),
                       ("meter", c["meter"]["model"] != "none")):
        if used and c[what]["uart"] not in uarts:
            _need(what + ".uart", "expected one of %s on this board, got %d"
                  % (", ".join(str(k) for k in sorted(uarts)), c[what]["uart"]))
    if c["board"]["wdt_s"] > wdt_max_s:
        _need("board.wdt_s", "expected at most %d on this board, got %d"
              % (wdt_max_s, c["board"]["wdt_s"]))


def board_pins(c, uarts, de, led, reserved):
    """The UARTs and pins a MicroPython board builds for a loaded config, its own defaults filled
    in (uarts: number -> (tx, rx); de, led: pin or None; reserved: (what they are, pin, ...),
    pins the board's own hardware holds) and each pin taken once; boot-only, so the board keeps
    none of it, and tools/deploy.py's check before copying. -> ([(what, uart, baud, parity, tx,
    rx)] for the reader and the meter the config uses, [(field, pin or None, output)] for
    board.de_pin, board.led_pin, then each EVSE's enable and plug)."""
    b = c["board"]
    taken = {}  # pin -> the field that took it

    def take(field, v, default=None):
        v = default if v is None else v
        if v is None or v is False:
            return None
        if isinstance(v, str) and v[:2] == "GP":
            # The rp2's names for its GPIOs ("GP23", and "GPIO23" from the chip's table) are
            # pin 23 to both checks below, and to machine.Pin.
            n = v[4:] if v[:4] == "GPIO" else v[2:]
            if n.isdigit():
                v = int(n)
        if v in reserved[1:]:
            _need(field, "pin %r is %s on this board" % (v, reserved[0]))
        if v in taken:
            _need(field, "pin %r is already %s" % (v, taken[v]))
        taken[v] = field
        return v

    ports = []
    meter = c["meter"]["model"] != "none"
    for what, on in (("reader", c["reader"]["type"] != "none"), ("meter", meter)):
        if on:
            r = c[what]
            tx_rx = []
            for k, end in enumerate(("tx", "rx")):
                f = "board.%s_%s" % (what, end)
                if b[what + "_" + end] is False:
                    _need(f, "a UART needs both its pins")
                tx_rx.append(take(f, b[what + "_" + end], uarts[r["uart"]][k]))
            # the readers talk 8N1; a meter's parity is in its config
            ports.append((what, r["uart"], r["baud"], r.get("parity", "N")) + tuple(tx_rx))
    pins = [("board.de_pin", take("board.de_pin", b["de_pin"], de) if meter else None, 1),
            ("board.led_pin", take("board.led_pin", b["led_pin"], led), 1)]
    for i, e in enumerate(b["evse_pins"] or ()):
        f = "board.evse_pins[%d]." % i
        pins.append((f + "enable", take(f + "enable", e["enable"]), 1))
        pins.append((f + "plug", take(f + "plug", e["plug"]), 0))
    return ports, pins


def tls_files(u, pem):
    """(ca, cert, key) for a TLS context, read from the files the uplink config u names (None
    for one it does not use), or None for an uplink without TLS; pem: whether the board's TLS
    parses PEM (else a PEM file is refused, naming it: make deploy converts them to DER)."""
    if not (u["url"][:6] == "https:" if u["kind"] == "http" else u["tls"]):
        return None
    ca = _read("uplink.ca", u["ca"], pem) if u["ca"] and not u.get("insecure") else None
    if not u.get("cert"):
        return ca, None, None
    return ca, _read("uplink.cert", u["cert"], pem), _read("uplink.key", u["key"], pem)


def _read(field, path, pem):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError("%s: cannot read %s (%r)" % (field, path, e))
    if not pem and data[:11] == b"-----BEGIN ":
        raise ConfigError("%s: %s is PEM, which this port's TLS cannot parse: it loads DER "
                          "(make deploy converts the files)" % (field, path))
    return data


def _need(path, why):
    raise ConfigError("%s: %s" % (path, why))
