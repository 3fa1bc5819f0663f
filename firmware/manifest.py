"""Freezing recipe for a custom MicroPython image (run by MicroPython's make, not on a device)."""
# ruff: noqa: F821  (metadata, include, require, package, options: MicroPython's manifest API)
# Freezes the agent into a MicroPython 1.27 firmware image: its bytecode runs from flash, so no
# .mpy files to copy and far less RAM at import. In a v1.27.0 checkout with its submodules
# (docs/boards.md has the toolchains):
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/firmware/manifest.py
#   make -C ports/rp2 BOARD=RPI_PICO_W FROZEN_MANIFEST=/path/to/firmware/manifest.py
# FROZEN_MANIFEST replaces the board's own manifest, so this one includes it back: the port's
# modules (asyncio above all). options.port_manifest names another (tools/build_unix_port.sh
# gives the unix port's asyncio). main.py, boot.py, config.json and the certificates stay files
# on the flash (a frozen main.py does not run at boot): make deploy FROZEN=1, see docs/boards.md.
metadata(
    description="Charge-point agent: RFID, Modbus meters, OICP over HTTPS or MQTT",
    version="0.1.0",
)

options.defaults(port_manifest="$(PORT_DIR)/boards/manifest.py")
include(options.port_manifest)
# cpagent/boards/mcu.py sets the clock with ntptime: the ESP32's manifest has it already, the
# rp2 port's has it only in the Pico W's board manifest (bundle-networking), which this one
# replaces.
require("ntptime")

# The core by name (a module added to cpagent/ is added here), the codec, uplinks and drivers
# whole, of the board layers both ports' (each a few hundred bytes; main.py imports only its own)
# and not host.py nor wasm.py.
package("cpagent", files=("__init__.py", "agent.py", "app.py", "charger.py", "clock.py",
                          "compact.py", "dead.py", "fsio.py", "journal.py", "loader.py",
                          "relay.py", "replay.py", "resume.py", "session.py"))
package("cpagent/oicp")
package("cpagent/uplink")
package("cpagent/drivers")
package("cpagent/boards", files=("__init__.py", "mcu.py", "setup.py", "esp32.py", "rp2.py"))
