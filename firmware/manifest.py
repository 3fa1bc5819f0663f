"""Freezing recipe for a custom MicroPython image (run by MicroPython's make, not on a device)."""
# ruff: noqa: F821  (metadata, include, package: given by MicroPython's manifest runner)
# Freezes the agent into a MicroPython firmware image (bytecode in flash: no .mpy files to copy,
# less RAM at import). In a MicroPython 1.27 checkout:
#   make -C ports/esp32 BOARD=ESP32_GENERIC FROZEN_MANIFEST=/path/to/firmware/manifest.py
#   make -C ports/rp2 BOARD=RPI_PICO_W FROZEN_MANIFEST=/path/to/firmware/manifest.py
# main.py, boot.py and config.json stay files on the flash (a frozen main.py would not run at
# boot): copy them with mpremote, see docs/boards.md.
metadata(
    description="Charge-point agent: RFID, Modbus meters, OICP over HTTPS or MQTT",
    version="0.1.0",
)

# The port's own frozen modules (asyncio, ntptime, ssl, ...): the agent needs asyncio and
# ntptime from there, nothing from micropython-lib besides.
include("$(PORT_DIR)/boards/manifest.py")

package("cpagent")
# Both ports' board modules: each a few hundred bytes, and main.py imports only its own.
package("boards", files=("__init__.py", "mcu.py", "esp32.py", "rp2.py"))
