"""Every cpagent module imports on this runtime, and so does this runtime's own board module."""
import os
import sys

import cpagent


def _folder(pkg):
    return pkg.__file__.rsplit("/", 1)[0]


def test_every_cpagent_module_imports():
    # The core at the top, the codec, uplinks and drivers in their packages (the board layers:
    # below, each port its own).
    names = []
    for pkg in ("", "oicp", "uplink", "drivers"):
        folder = _folder(cpagent) + ("/" + pkg if pkg else "")
        # .py here, .mpy on a device make deploy filled (tools/rp2_test.py runs these there)
        names.extend((pkg + "." if pkg else "") + n.rsplit(".", 1)[0]
                     for n in sorted(os.listdir(folder))
                     if n.endswith((".py", ".mpy")) and n.rsplit(".", 1)[0] != "__init__")
    assert len(names) >= 26 and "agent" in names and "uplink.mqtt" in names, names
    for name in names:
        __import__("cpagent." + name)
        assert ("cpagent." + name) in sys.modules, name


def test_this_runtimes_board_imports():
    # The ESP32 and Pico W boards import machine/network: tests/host/test_board_stubs.py checks
    # them against the ports' API stubs, tests/firmware/test_board_mcu.py runs them on fakes.
    # The Pico W's and the ESP32's where these run on the real port (tools/rp2_test.py).
    if sys.platform in ("rp2", "esp32"):
        board = __import__("cpagent.boards." + sys.platform, None, None, ["Board"])
        assert board.Board.UARTS
    elif sys.implementation.name == "micropython":
        from cpagent.boards import wasm

        assert wasm.Board
    else:
        from cpagent.boards import host

        assert host.HostBoard
