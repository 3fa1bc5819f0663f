"""The ESP32 and Pico W board modules against their ports' API stubs (tools/stubcheck.py)."""
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import build  # noqa: E402
import stubcheck  # noqa: E402


@pytest.fixture(scope="module")
def stubs():
    # Installed by `make build` (tools/stubcheck.install); a test does not reach PyPI itself.
    return {port: stubcheck.Stubs(stubcheck.roots(port)) for port in stubcheck.PORTS}


def _source(rel):
    with open(os.path.join(ROOT, "firmware", rel), encoding="utf-8") as f:
        return f.read()


def test_each_board_module_uses_only_its_ports_api():
    for port in stubcheck.PORTS:
        assert stubcheck.check_port(port) == [], port


def test_a_name_the_port_lacks_is_refused(stubs):
    esp, rp2 = stubs["esp32"], stubs["rp2"]
    high = "import machine\np = machine.Pin(5, machine.Pin.OUT)\np.high()\n"
    assert stubcheck.check_source(high, "m.py", rp2) == []  # Pin.high is rp2's only
    assert stubcheck.check_source(high, "m.py", esp) == ["m.py:3: Pin has no high on this port"]
    assert stubcheck.check_source("import esp32\n", "m.py", esp) == []
    assert stubcheck.check_source("import esp32\n", "m.py", rp2) == [
        "m.py:1: imports esp32, which this port does not have"]
    for port, st in stubs.items():
        for src, words in (
            ("import machine\nmachine.UART(1, baudrate=9600, flow=0)\n", "UART() takes no such"),
            ("import machine\nmachine.WDT(8000)\n", "WDT() takes no such call"),  # keyword only
            ("from machine import Pin, Bogus\n", "machine has no Bogus"),
            ("import network\nnetwork.WLAN(network.STA_IF).scan_all()\n", "WLAN has no scan_all"),
            ("import asyncio\nasyncio.sleep_us(5)\n", "asyncio has no sleep_us"),
            ("import time\ntime.sleep_ns(5)\n", "time has no sleep_ns"),
            ("import tls\nc = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)\nc.load_cert_chain_x()\n",
             "SSLContext has no load_cert_chain_x"),
            ("import machine\n\n\nclass B:\n    def a(self):\n        self.u = machine.UART(1)\n\n"
             "    def b(self):\n        return self.u.txdon()\n", "UART has no txdon"),
        ):
            found = stubcheck.check_source(src, "m.py", st)
            assert len(found) == 1 and words in found[0], (port, src, found)


def test_the_real_modules_are_checked_call_by_call(stubs):
    # A slip in the board modules themselves is caught: the check follows their actual calls
    # and objects.
    for rel, old, new, words in (
        ("setup", "board.txdone = u.txdone", "board.txdone = u.tx_done", "UART has no tx_done"),
        ("setup", "txbuf=board.TXBUF, timeout=0)", "txbuf=board.TXBUF, timeout=0, flow=0)",
         "UART() takes no such"),
        ("setup", "tls.CERT_REQUIRED", "tls.CERT_ALWAYS", "tls has no CERT_ALWAYS"),
        ("mcu", "self._wdt.feed()", "self._wdt.kick()", "WDT has no kick"),
        ("mcu", "w.isconnected()", "w.is_connected()", "WLAN has no is_connected"),
        ("mcu", "ntptime.settime()", "ntptime.settime(5)", "settime() takes no such"),
    ):
        path = "cpagent/boards/%s.py" % rel
        src = _source(path)
        assert old in src, old
        for port, st in stubs.items():
            found = stubcheck.check_source(src.replace(old, new), path, st)
            assert found and all(words in f for f in found), (port, new, found)


def test_each_image_holds_its_own_board_modules_only():
    for port, other in (("esp32", "rp2"), ("rp2", "esp32")):
        mods = build.modules(port)
        assert "cpagent/boards/%s.py" % port in mods and "cpagent/boards/mcu.py" in mods
        assert "cpagent/boards/setup.py" in mods
        assert "cpagent/boards/%s.py" % other not in mods
        assert "cpagent/boards/host.py" not in mods and "cpagent/boards/wasm.py" not in mods
        assert set(stubcheck.BOARDS[port]) == {
            m for m in mods if m.startswith("cpagent/boards/")} - {"cpagent/boards/__init__.py"}
