"""Host side of the charge-point agent (CPython): mock OICP hub, MQTT relay, simulator.

Importing it puts the firmware's top-level package (`cpagent`, and the `micropython` shim) on
sys.path: from an installed wheel they are in host_sim/_firmware/ (pyproject.toml), in
the source tree (and an editable install) in firmware/ next to host_sim/.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _firmware_paths():
    bundled = os.path.join(_HERE, "_firmware")
    fw = bundled if os.path.isdir(bundled) else os.path.join(os.path.dirname(_HERE), "firmware")
    return os.path.join(_HERE, "pyshim"), fw


for _p in _firmware_paths():
    if _p not in sys.path:
        sys.path.append(_p)
