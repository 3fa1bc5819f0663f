"""Benchmark inside MicroPython: what a sub-package of cpagent costs on the heap, over a module.

Run: node tools/bench/mpy_steps.mjs tools/bench/package_cost.py (prints one JSON line last).

N one-line modules at the top, then N alike modules each in a package of its own whose
__init__.py is a one-line docstring, as cpagent's are; each import is a step of its own, so the
live heap after it is measured after a collection (mpy_steps.mjs). The difference per module is
the package's cost: its module object and dict, and its __init__'s docstring.
"""
import os
import sys

N = 8
_DIR = "/bench_pkgs"

os.mkdir(_DIR)
for _i in range(N):
    with open("%s/flat%d.py" % (_DIR, _i), "w") as _f:
        _f.write("X = 1\n")
    os.mkdir("%s/pkg%d" % (_DIR, _i))
    with open("%s/pkg%d/__init__.py" % (_DIR, _i), "w") as _f:
        _f.write('"""The drivers (sans-IO): RFID readers, Modbus RTU, energy meters."""\n')
    with open("%s/pkg%d/m.py" % (_DIR, _i), "w") as _f:
        _f.write("X = 1\n")
sys.path.insert(0, _DIR)


def flat():
    for i in range(N):
        __import__("flat%d" % i)


def packaged():
    for i in range(N):
        __import__("pkg%d.m" % i)


STEPS = [("flat", flat), ("packaged", packaged)]


def report(base, marks):
    m = dict(marks)
    module = m["flat"] // N
    in_package = (m["packaged"] - m["flat"]) // N
    return {"module_bytes": module, "module_in_package_bytes": in_package,
            "package_bytes": in_package - module}
