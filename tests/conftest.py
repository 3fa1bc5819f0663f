"""pytest setup: firmware modules import as on the device; `micropython` comes from the shim."""
import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (
    os.path.join(_ROOT, "host_sim", "pyshim"),
    os.path.join(_ROOT, "firmware"),
    os.path.join(_ROOT, "tests", "firmware"),
    _ROOT,
):
    if _p not in sys.path:
        sys.path.insert(0, _p)
