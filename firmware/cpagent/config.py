"""config.json: one schema table, validated on the host (make deploy) and in the tests; every
error names the field path. The device loads what checked() wrote (cpagent.loader)."""
import json

from micropython import const

from cpagent import ConfigError
from cpagent.loader import VERSION, check_board  # noqa: F401  (config.check_board: the host's)
from cpagent.oicp.ids import FieldError, check_evse_id, check_operator_id

# Row kinds. A row is (kind, default, a, b[, c]); default _R means required, None means optional
# and filled as null. _INT/_NUM: a..b (c: why). _STR: length a..b (c: allowed chars).
# _ENUM: a = choices. _OBJ: a = table ({} default fills it). _LIST/_DICT: a = item table,
# a count b..c. _FN: a(value, path) checks, b names the form. _VAR: an object whose a-key
# picks its table in b. Descriptions are the comments (free in .mpy); docs/config.md has them
# in full, and a host test keeps that page and this table in step.
_INT = const(0)
_NUM = const(1)
_BOOL = const(2)
_STR = const(3)
_ENUM = const(4)
_OBJ = const(5)
_LIST = const(6)
_DICT = const(7)
_FN = const(8)
_VAR = const(9)
_R = object()
_IDCH = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_URL = "an http:// or https:// URL"
_OICP5 = " (OICP: Progress notifications at least 5 minutes apart)"


def _oicp(check):
    def f(v, p):
        try:
            return check(v, p)
        except FieldError as e:
            raise ConfigError(str(e))
    return f


def _url(v, p):
    if isinstance(v, str) and len(v) <= 256 and v[:8 if v[:5] == "https" else 7] in (
            "http://", "https://") and v.split("//", 1)[1][:1] not in "/:" \
            and not [c for c in v if c <= " "]:
        return v
    _bad(p, _URL, v)


_PATH = (_STR, None, 1, 64)  # a file on the device's flash (PEM)
_REG = {  # one register of a custom meter map
    "addr": (_INT, _R, 0, 65535),  # register address (0-based, as sent on the wire)
    "type": (_ENUM, _R, ("u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64")),
    "scale": (_NUM, 1, -1000000000, 1000000000),  # value = raw * scale
    "words": (_ENUM, "hi", ("hi", "lo")),  # which 16-bit word comes first
    "fc": (_INT, 4, 3, 4),  # Modbus function: 3 holding, 4 input registers
}
_KIND = (_ENUM, _R, ("http", "mqtt"))
_PINS = "a GPIO number 0..48, a pin name such as \"LED\", or false (none)"


def _pin(v, p):
    if v is False or type(v) is int and 0 <= v <= 48 or type(v) is str and 1 <= len(v) <= 8 \
            and not [c for c in v if c not in _IDCH]:
        return v
    _bad(p, _PINS, v)


_PIN = (_FN, None, _pin, _PINS)  # null: the board's default (boards/esp32.py, boards/rp2.py)
_SCHEMA = {
    "charger_id": (_STR, _R, 1, 32, _IDCH),  # MQTT topic cp/<charger_id>/up
    "operator_id": (_FN, _R, _oicp(check_operator_id), "an OperatorID"),  # e.g. DE*ABC
    "evses": (_LIST, _R, {
        "evse_id": (_FN, _R, _oicp(check_evse_id), "an EvseID"),
        "meter_address": (_INT, 1, 1, 247),  # Modbus slave address of its meter
        "connector": (_INT, 1, 1, 8),  # connector number on the charger
        "product_id": (_STR, None, 1, 50),  # OICP PartnerProductID for CDRs
    }, 1, 4),
    "reader": (_OBJ, _R, {
        "type": (_ENUM, _R, ("pn532", "rdm6300", "line", "none")),
        "uart": (_INT, 1, 0, 2),
        "baud": (_INT, None, 1200, 921600),  # None: 115200 for pn532, else 9600
        "hold_ms": (_INT, 1500, 200, 10000),  # a card seen again within this is the same tap
    }),
    "meter": (_OBJ, _R, {
        "model": (_ENUM, _R, ("sdm630", "sdm120", "sdm72d", "sdm72d_v2", "abb_b23", "em340",
                              "wm3m4", "custom", "none")),
        "uart": (_INT, 2, 0, 2),
        "baud": (_INT, 9600, 1200, 115200),
        "parity": (_ENUM, "N", ("N", "E", "O")),
        "map": (_DICT, None, _REG, 2, 8),  # quantity -> register; iff model is custom
        "timeout_ms": (_INT, 500, 50, 5000),  # wait for a reply before retrying
        "retries": (_INT, 2, 0, 5),  # retries per request before the poll fails
        "dead_polls": (_INT, 3, 1, 100),  # failed polls in a row: the meter is dead (Error)
    }),
    "uplink": (_VAR, _R, "kind", {
        "http": {
            "kind": _KIND,
            "url": (_FN, _R, _url, _URL),  # hub base URL
            "ca": _PATH, "cert": _PATH, "key": _PATH,  # server CA; client cert and key
            "insecure": (_BOOL, False),  # skip server verification (test hubs only)
            "timeout_s": (_INT, 20, 1, 120),
        },
        "mqtt": {
            "kind": _KIND,
            "host": (_STR, _R, 1, 253),
            "port": (_INT, None, 1, 65535),  # None: 8883 with tls, else 1883
            "user": (_STR, None, 1, 128),
            "password": (_STR, None, 0, 128),
            "tls": (_BOOL, False),
            "ca": _PATH,
            "timeout_s": (_INT, 20, 1, 120),  # connect, CONNACK, and the relay's reply
            "keepalive_s": (_INT, 60, 10, 1200),  # PINGREQ after half of it idle
        },
    }),
    "timing": (_OBJ, {}, {
        "poll_s": (_INT, 10, 1, 3600),  # meter poll period
        "progress_s": (_INT, 300, 300, 86400, _OICP5),
        "ev_wait_s": (_INT, 120, 10, 3600),  # authorized, waiting for the EV to draw power
        "authorize_timeout_s": (_INT, 15, 1, 120),
        "start_power_w": (_INT, 100, 1, 50000),  # draw above this: energy flow started
        "stop_power_w": (_INT, 50, 0, 50000),  # draw at or below this: flow stopped
        "stop_hold_s": (_INT, 120, 0, 3600),  # ... for this long: charging ended (End)
    }),
    # save_wh: while energy flows, the reading is journaled each time it grew this much, so a
    # restart with a dead meter bills at most this much less than was delivered.
    "journal": (_OBJ, {}, {"max_messages": (_INT, 200, 16, 2000),
                           "save_wh": (_INT, 1000, 10, 100000)}),
    "wifi": (_OBJ, None, {"ssid": (_STR, _R, 1, 32), "password": (_STR, "", 0, 63)}),
    "log_level": (_INT, 1, 0, 3),  # 0 errors, 1 warnings, 2 info, 3 debug
    "board": (_OBJ, {}, {  # MicroPython boards only; the host board ignores it
        "reader_tx": _PIN, "reader_rx": _PIN, "meter_tx": _PIN, "meter_rx": _PIN,
        "de_pin": _PIN,  # RS-485 driver enable, high while sending
        "led_pin": _PIN,  # status LED
        "wdt_s": (_INT, 8, 0, 60),  # hardware watchdog timeout; 0: off
        "evse_pins": (_LIST, None, {"enable": _PIN, "plug": _PIN}, 1, 4),  # one per EVSE
        "plug_low": (_BOOL, True),  # a plug input reads 0 when plugged (pulled up)
    }),
}


def _bad(path, what, v):
    r = repr(v)
    r = r if len(r) <= 40 else r[:37] + "..."
    raise ConfigError("%s: expected %s, got %s" % (path, what, r))


def _what(row):
    k = row[0]
    if k == _INT or k == _NUM:
        return "a%s %s..%s%s" % ("n integer" if k == _INT else " number", row[2], row[3],
                                 row[4] if len(row) > 4 else "")
    if k == _STR:
        return "a string of %d..%d characters%s" % (
            row[2], row[3], " from A-Z a-z 0-9 _ -" if len(row) > 4 else "")
    if k == _ENUM:
        return "one of " + ", ".join(row[2])
    if k == _BOOL:
        return "true or false"
    if k == _LIST or k == _DICT:
        return "a%s of %d..%d entries" % (" list" if k == _LIST else "n object", row[3], row[4])
    return row[3] if k == _FN else "an object"


def _value(row, v, p):
    k = row[0]
    if k == _FN:
        return row[2](v, p)
    if k == _OBJ:
        return _table(row[2], v, p)
    if k == _VAR:
        if type(v) is not dict:
            _bad(p, "an object", v)
        key = _value((_ENUM, 0, tuple(sorted(row[3]))), v.get(row[2]), p + "." + row[2])
        return _table(row[3][key], v, p)
    if k == _LIST or k == _DICT:
        if type(v) is not (list if k == _LIST else dict) or not row[3] <= len(v) <= row[4]:
            _bad(p, _what(row), v)
        if k == _LIST:
            return [_table(row[2], x, "%s[%d]" % (p, i)) for i, x in enumerate(v)]
        return {n: _table(row[2], v[n], p + "." + _value((_STR, 0, 1, 24, _IDCH), n, p))
                for n in v}
    num = type(v) is int or type(v) is float and v - v == 0
    if (k == _INT and type(v) is int or k == _NUM and num) and row[2] <= v <= row[3] \
            or k == _STR and type(v) is str and row[2] <= len(v) <= row[3] \
            and not (len(row) > 4 and [c for c in v if c not in row[4]]) \
            or k == _ENUM and type(v) is str and v in row[2] or k == _BOOL and type(v) is bool:
        return v
    _bad(p, _what(row), v)


def _table(tab, obj, path):
    if type(obj) is not dict:
        _bad(path or "config", "an object", obj)
    pre = path + "." if path else ""
    for k in obj:
        if k not in tab:
            raise ConfigError("%s%s: unknown key (expected one of %s)"
                              % (pre, k, ", ".join(sorted(tab))))
    out = {}
    for k, row in tab.items():
        v = obj.get(k)
        if v is None:
            if row[1] is _R:
                raise ConfigError("%s%s: required, %s" % (pre, k, _what(row)))
            v = row[1]
        out[k] = v if v is None else _value(row, v, pre + k)
    return out


def _need(path, why):
    raise ConfigError("%s: %s" % (path, why))


def load(text):
    """config.json text or bytes -> dict with defaults filled; raises ConfigError."""
    try:
        c = json.loads(text.decode() if isinstance(text, (bytes, bytearray)) else text)
    except (ValueError, RuntimeError) as e:  # UnicodeError is a ValueError; deep nesting
        raise ConfigError("config: expected UTF-8 JSON (%s)" % e)
    if type(c) is dict and "checked" in c:  # a file checked() wrote: checked again, as it is
        c = dict(c)
        del c["checked"]
    c = _table(_SCHEMA, c, "")
    m, r, u, t = c["meter"], c["reader"], c["uplink"], c["timing"]
    for key in ("evse_id", "meter_address"):
        seen = []
        for i, e in enumerate(c["evses"]):
            # EvseIDs match without case and '*' (DE*ABC*E1 is DEABCE1); a meter per address.
            v = e[key].upper().replace("*", "") if key == "evse_id" else e[key]
            if v in seen and (key == "evse_id" or m["model"] != "none"):
                _need("evses[%d].%s" % (i, key), "%r is used by another EVSE" % e[key])
            seen.append(v)
    if (m["model"] == "custom") != (m["map"] is not None):
        _need("meter.map", "required if and only if meter.model is 'custom'")
    if m["map"] is not None:
        from cpagent.drivers.meter_maps import MAP_NAMES  # the meter's vocabulary

        for n in m["map"]:
            if n not in MAP_NAMES:
                _need("meter.map." + n, "unknown quantity (expected one of %s)"
                      % ", ".join(MAP_NAMES))
        for n in MAP_NAMES[:2]:
            if n not in m["map"]:
                _need("meter.map." + n, "required in a custom map")
    if r["baud"] is None:
        r["baud"] = 115200 if r["type"] == "pn532" else 9600
    if r["type"] != "none" and m["model"] != "none" and r["uart"] == m["uart"]:
        _need("meter.uart", "UART %d is already the reader's" % m["uart"])
    if u["kind"] == "mqtt":
        if u["port"] is None:
            u["port"] = 8883 if u["tls"] else 1883
        if u["tls"] and u["ca"] is None:
            _need("uplink.ca", "required with uplink.tls (a CA file to verify the broker)")
    else:
        if u["url"][:6] == "https:" and not u["insecure"] and u["ca"] is None:
            _need("uplink.ca", "required for an https:// url unless uplink.insecure is true")
        if (u["cert"] is None) != (u["key"] is None):
            _need("uplink.cert", "uplink.cert and uplink.key go together")
    if 0 < c["board"]["wdt_s"] < 4:
        _need("board.wdt_s", "expected 0 (off) or at least 4: DNS and NTP may hold the loop")
    pins = c["board"]["evse_pins"]
    if pins is not None and len(pins) != len(c["evses"]):
        _need("board.evse_pins", "expected one entry per EVSE (%d), got %d"
              % (len(c["evses"]), len(pins)))
    if t["stop_power_w"] >= t["start_power_w"]:
        _need("timing.stop_power_w", "expected below timing.start_power_w (hysteresis)")
    if t["poll_s"] > t["progress_s"]:
        _need("timing.poll_s", "expected at most timing.progress_s")
    return c


def checked(c):
    """A loaded config (load's dict) as the config.json text the device loads (cpagent.loader):
    every field filled, and the version of this checked form."""
    d = dict(c)
    d["checked"] = VERSION
    return json.dumps(d)
