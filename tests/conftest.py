"""pytest setup: firmware modules import as on the device; `micropython` comes from the shim."""
import os
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (
    os.path.join(_ROOT, "host_sim", "pyshim"),
    os.path.join(_ROOT, "firmware"),
    os.path.join(_ROOT, "tests", "firmware"),
    _ROOT,
):
    if _p not in sys.path:
        sys.path.insert(0, _p)

# The helper modules beside the tests (not test_*.py: what several tests share) get pytest's
# assert rewriting too, as the test modules that held their asserts before had it.
for _d in ("firmware", "host"):
    pytest.register_assert_rewrite(*sorted(
        n[:-3] for n in os.listdir(os.path.join(_ROOT, "tests", _d))
        if n.endswith(".py") and not n.startswith(("test_", "conftest"))))
