"""The device's config loader: config.json as the host checked and filled it (config.checked)."""
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


def _need(path, why):
    raise ConfigError("%s: %s" % (path, why))
