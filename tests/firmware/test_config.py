"""config.json tests: the example loads, defaults fill, and every wrong field is named."""
import json

import cpagent
from check import raises, raises_naming
from cpagent.config import ConfigError, load


def _example_text():
    # firmware/config.example.json sits next to the package (the MicroPython runner copies
    # firmware/ to /lib, so the same relative place works on both runtimes).
    with open(cpagent.__file__.rsplit("/", 2)[0] + "/config.example.json") as f:
        return f.read()


def _cfg():
    return json.loads(_example_text())


MINIMAL = {
    "charger_id": "cp1",
    "operator_id": "+49*536",
    "evses": [{"evse_id": "+49*536*001"}],
    "reader": {"type": "rdm6300"},
    "meter": {"model": "sdm120"},
    "uplink": {"kind": "http", "url": "http://127.0.0.1:8080"},
}


def _minimal():
    return json.loads(json.dumps(MINIMAL))


def _set(cfg, path, value):
    """Set 'a.b[1].c' in cfg; value _DEL removes the key."""
    parts = []
    for p in path.split("."):
        if "[" in p:
            name, idx = p[:-1].split("[")
            parts.append(name)
            parts.append(int(idx))
        else:
            parts.append(p)
    node = cfg
    for p in parts[:-1]:
        node = node[p]
    if value is _DEL:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return cfg


_DEL = object()


def _load_with(path, value, base=None):
    return load(json.dumps(_set(base or _cfg(), path, value)))


def test_example_is_valid_and_kept():
    c = load(_example_text())
    assert c["charger_id"] == "cp-0001"
    assert c["evses"][1]["evse_id"] == "DE*ABC*E0001*2"
    assert c["evses"][1]["product_id"] is None
    assert c["uplink"]["url"] == "https://hub.example.com"
    assert c["meter"]["map"] is None
    assert load(_example_text().encode()) == c  # bytes too
    assert load(json.dumps(c)) == c  # its own output passes its own schema


def test_defaults_are_filled():
    c = load(json.dumps(MINIMAL))
    assert c["timing"] == {"poll_s": 10, "progress_s": 300, "ev_wait_s": 120,
                           "authorize_timeout_s": 15, "start_power_w": 100, "stop_power_w": 50,
                           "stop_hold_s": 120}
    assert c["journal"] == {"max_messages": 200, "save_wh": 1000}
    assert c["wifi"] is None and c["log_level"] == 1
    assert c["evses"][0] == {"evse_id": "+49*536*001", "meter_address": 1, "connector": 1,
                             "product_id": None}
    assert c["reader"] == {"type": "rdm6300", "uart": 1, "baud": 9600, "hold_ms": 1500}
    assert c["meter"] == {"model": "sdm120", "uart": 2, "baud": 9600, "parity": "N", "map": None,
                          "timeout_ms": 500, "retries": 2, "dead_polls": 3}
    assert c["uplink"] == {"kind": "http", "url": "http://127.0.0.1:8080", "ca": None,
                           "cert": None, "key": None, "insecure": False, "timeout_s": 20}
    assert load(json.dumps(_set(_minimal(), "reader.type", "pn532")))["reader"]["baud"] == 115200
    # null means "use the default" as much as a missing key does.
    assert load(json.dumps(_set(_minimal(), "timing", None)))["timing"]["progress_s"] == 300


def test_each_wrong_field_is_named():
    for path, bad, words in (
        ("charger_id", "", "1..32"),
        ("charger_id", "cp 1", "A-Z a-z 0-9 _ -"),
        ("charger_id", "x" * 33, "1..32"),
        ("charger_id", 5, "string"),
        ("operator_id", "DE-ABC", "OperatorID"),
        ("evses", [], "1..4"),
        ("evses", [{"evse_id": "DE*ABC*E%d" % i, "meter_address": i + 1} for i in range(5)],
         "1..4"),
        ("evses", {"evse_id": "DE*ABC*E1"}, "list"),
        ("evses[1].evse_id", "DE*ABC*1", "EvseID"),
        ("evses[0].meter_address", 0, "1..247"),
        ("evses[1].meter_address", 248, "1..247"),
        ("evses[0].connector", 9, "1..8"),
        ("evses[0].product_id", "p" * 51, "1..50"),
        ("evses[1]", "DE*ABC*E0001*2", "object"),
        ("reader.type", "mfrc522", "pn532, rdm6300, line, none"),
        ("reader.uart", 3, "0..2"),
        ("reader.baud", 600, "1200..921600"),
        ("meter.model", "sdm630x", "sdm630"),
        ("meter.baud", 230400, "1200..115200"),
        ("meter.parity", "n", "N, E, O"),
        ("meter.uart", "2", "integer"),
        ("uplink.kind", "ftp", "http, mqtt"),
        ("uplink.url", "ftp://x", "http:// or https:// URL, got 'ftp://x'"),
        ("uplink.url", "https://", "URL"),
        ("uplink.url", "http://hub example", "URL"),
        ("uplink.ca", "", "1..64"),
        ("uplink.insecure", 0, "true or false"),
        ("uplink.timeout_s", 0, "1..120"),
        ("timing.poll_s", 0, "1..3600"),
        ("timing.poll_s", 10.0, "integer"),
        ("timing.ev_wait_s", 5, "10..3600"),
        ("timing.authorize_timeout_s", 121, "1..120"),
        ("timing.start_power_w", 0, "1..50000"),
        ("timing.stop_power_w", -1, "0..50000"),
        ("journal.max_messages", 15, "16..2000"),
        ("journal.max_messages", 2001, "16..2000"),
        ("wifi.ssid", "", "1..32"),
        ("wifi.password", "p" * 64, "0..63"),
        ("log_level", 4, "0..3"),
        ("log_level", True, "integer"),
    ):
        e = raises(ConfigError, _load_with, path, bad)
        msg = str(e)
        assert msg.startswith(path + ": "), (path, msg)
        assert words in msg, (path, msg)


def test_progress_below_five_minutes_names_the_rule():
    e = raises_naming(ConfigError, "timing.progress_s", _load_with, "timing.progress_s", 299)
    assert "5 minutes" in str(e)
    assert _load_with("timing.progress_s", 900)["timing"]["progress_s"] == 900


def test_unknown_keys_are_named():
    for path in ("colour", "timing.pol_s", "evses[1].evse", "reader.pin", "journal.max",
                 "uplink.host", "wifi.psk"):
        e = raises_naming(ConfigError, path + ": unknown key", _load_with, path, 1)
        assert "expected one of" in str(e)


def test_missing_required_fields_are_named():
    for path in ("charger_id", "operator_id", "evses", "evses[0].evse_id", "reader",
                 "reader.type", "meter.model", "uplink", "uplink.url", "uplink.kind"):
        raises_naming(ConfigError, path + ": ", _load_with, path, _DEL)
    raises_naming(ConfigError, "wifi.ssid: required", _load_with, "wifi", {})
    raises_naming(ConfigError, "operator_id: required, an OperatorID", _load_with, "operator_id",
                  _DEL)
    raises_naming(ConfigError, "uplink.url: required, an http", _load_with, "uplink.url", _DEL)
    raises_naming(ConfigError, "evses[1].meter_address: expected an integer 1..247", _load_with,
                  "evses[1].meter_address", "2")


def test_evse_ids_and_meter_addresses_are_unique():
    raises_naming(ConfigError, "evses[1].evse_id", _load_with, "evses[1].evse_id",
                  "de*abc*e00011")  # the same EvseID as DE*ABC*E0001*1, in another spelling
    raises_naming(ConfigError, "evses[1].meter_address", _load_with, "evses[1].meter_address", 1)
    c = _set(_set(_cfg(), "evses[1].meter_address", 1), "meter.model", "none")
    assert load(json.dumps(c))["evses"][1]["meter_address"] == 1  # no meter, no bus clash


def test_custom_meter_map_required_iff_custom():
    raises_naming(ConfigError, "meter.map: required", _load_with, "meter.model", "custom")
    reg = {"power": {"addr": 52, "type": "f32"}, "energy": {"addr": 342, "type": "s32",
                                                           "scale": 0.01, "words": "lo", "fc": 3}}
    raises_naming(ConfigError, "meter.map: required", _load_with, "meter.map", reg)
    c = _set(_set(_cfg(), "meter.model", "custom"), "meter.map", reg)
    m = load(json.dumps(c))["meter"]["map"]
    assert m["power"] == {"addr": 52, "type": "f32", "scale": 1, "words": "hi", "fc": 4}
    assert m["energy"]["scale"] == 0.01 and m["energy"]["words"] == "lo"
    for path, bad, words in (
        ("meter.map", {}, "2..8"),
        ("meter.map.power.addr", 65536, "0..65535"),
        ("meter.map.power.type", "f16", "f32"),
        ("meter.map.power.words", "le", "hi, lo"),
        ("meter.map.power.fc", 6, "3..4"),
        ("meter.map.power.scale", "1", "number"),
        ("meter.map.power.addr", _DEL, "required"),
        ("meter.map.power.bits", 16, "unknown key"),
    ):
        base = _set(_set(_cfg(), "meter.model", "custom"), "meter.map",
                    json.loads(json.dumps(reg)))
        msg = str(raises(ConfigError, _load_with, path, bad, base))
        assert msg.startswith(path + ": ") and words in msg, (path, msg)
    c["meter"]["map"] = {"bad name": {"addr": 1, "type": "u16"}, "power": reg["power"]}
    raises_naming(ConfigError, "meter.map: expected a string", load, json.dumps(c))
    c["meter"]["map"] = {"volts": {"addr": 1, "type": "u16"}, "power": reg["power"]}
    raises_naming(ConfigError, "meter.map.volts: unknown quantity (expected one of energy, power,",
                  load, json.dumps(c))
    c["meter"]["map"] = {"voltage_l1": {"addr": 1, "type": "u16"}, "power": reg["power"]}
    raises_naming(ConfigError, "meter.map.energy: required in a custom map", load, json.dumps(c))


def test_uplink_tls_rules():
    raises_naming(ConfigError, "uplink.ca: required for an https", _load_with, "uplink.ca", _DEL)
    c = _set(_set(_cfg(), "uplink.ca", _DEL), "uplink.insecure", True)
    assert load(json.dumps(c))["uplink"]["insecure"] is True
    raises_naming(ConfigError, "uplink.cert", _load_with, "uplink.key", _DEL)
    mqtt = {"kind": "mqtt", "host": "broker.local"}
    u = _load_with("uplink", mqtt)["uplink"]
    assert u == {"kind": "mqtt", "host": "broker.local", "port": 1883, "user": None,
                 "password": None, "tls": False, "ca": None, "timeout_s": 20, "keepalive_s": 60}
    raises_naming(ConfigError, "uplink.ca: required with uplink.tls", _load_with, "uplink",
                  {"kind": "mqtt", "host": "b", "tls": True})
    u = _load_with("uplink", {"kind": "mqtt", "host": "b", "tls": True, "ca": "ca.pem"})["uplink"]
    assert u["port"] == 8883
    for path, bad, words in (("uplink.port", 0, "1..65535"), ("uplink.host", "", "1..253"),
                             ("uplink.url", "http://x", "unknown key"),
                             ("uplink.tls", "yes", "true or false")):
        msg = str(raises(ConfigError, _load_with, path, bad, _set(_cfg(), "uplink", dict(mqtt))))
        assert msg.startswith(path + ": ") and words in msg, (path, msg)


def test_cross_field_rules():
    raises_naming(ConfigError, "timing.stop_power_w", _load_with, "timing.stop_power_w", 100)
    raises_naming(ConfigError, "timing.poll_s", _load_with, "timing.poll_s", 301)
    raises_naming(ConfigError, "meter.uart: UART 1", _load_with, "meter.uart", 1)
    assert _load_with("reader", {"type": "none", "uart": 2})["reader"]["uart"] == 2


def test_not_a_json_object_is_a_config_error():
    for bad in ("", "{", "[1]", "null", "42", '"x"', b"\xff\xfe{}", b"{\"charger_id\": \"\xc3\"}"):
        e = raises(ConfigError, load, bad)
        assert str(e).startswith("config"), str(e)
    assert isinstance(raises(ValueError, load, "{"), ConfigError)


def test_board_section_defaults_and_pins():
    c = load(json.dumps(MINIMAL))
    assert c["board"] == {"reader_tx": None, "reader_rx": None, "meter_tx": None,
                          "meter_rx": None, "de_pin": None, "led_pin": None, "wdt_s": 8,
                          "evse_pins": None, "plug_low": True}
    two = _set(_minimal(), "evses", [{"evse_id": "+49*536*001", "meter_address": 1},
                                     {"evse_id": "+49*536*002", "meter_address": 2}])
    b = {"meter_tx": 0, "meter_rx": "GP1", "de_pin": False, "led_pin": "LED", "wdt_s": 0,
         "evse_pins": [{"enable": 21, "plug": 22}, {"enable": 23}], "plug_low": False}
    got = load(json.dumps(_set(two, "board", b)))["board"]
    assert got["evse_pins"] == [{"enable": 21, "plug": 22}, {"enable": 23, "plug": None}]
    assert got["de_pin"] is False and got["meter_rx"] == "GP1" and got["wdt_s"] == 0


def test_board_section_wrong_fields_are_named():
    for path, bad, words in (
        ("board.de_pin", 49, "GPIO number 0..48"),
        ("board.de_pin", -1, "GPIO number 0..48"),
        ("board.led_pin", True, "or false (none)"),
        ("board.led_pin", "L E D", "pin name"),
        ("board.reader_tx", "x" * 9, "pin name"),
        ("board.meter_rx", 1.5, "GPIO number"),
        ("board.wdt_s", 61, "0..60"),
        ("board.wdt_s", 2, "0 (off) or at least 4"),
        ("board.plug_low", 1, "true or false"),
        ("board.evse_pins", [], "1..4"),
        ("board.evse_pins", [{"enable": 5}], "one entry per EVSE (2), got 1"),
        ("board.evse_pins[1].plug", 99, "GPIO number"),
        ("board.evse_pins[0].relay", 5, "unknown key"),
        ("board.uart", 1, "unknown key"),
    ):
        c = _cfg()
        c["board"] = {"evse_pins": [{"enable": 5}, {"enable": 6}]}
        msg = str(raises(ConfigError, _load_with, path, bad, c))
        assert msg.startswith(path + ": ") and words in msg, (path, msg)


def test_check_board_names_what_the_port_lacks():
    from cpagent.config import check_board

    c = load(_example_text())  # reader on UART1, meter on UART2, watchdog 8 s
    check_board(c, {1: (27, 26), 2: (17, 16)}, 60)  # an ESP32 takes it
    raises_naming(ConfigError, "meter.uart: expected one of 0, 1 on this board, got 2",
                  check_board, c, {0: (0, 1), 1: (4, 5)}, 8)
    c["meter"]["model"] = "none"  # an unused UART is not asked for
    check_board(c, {0: (0, 1), 1: (4, 5)}, 8)
    raises_naming(ConfigError, "board.wdt_s: expected at most 4", check_board, c, {1: 0}, 4)
    c["wifi"] = None
    raises_naming(ConfigError, "wifi: required", check_board, c, {1: 0}, 60)
