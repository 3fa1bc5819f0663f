"""Smoke tests of the test harness itself: both runtimes import firmware and see their own kind."""
import sys

from check import raises, raises_naming


def test_firmware_package_imports():
    import cpagent

    if not cpagent.VERSION:
        raise AssertionError("cpagent.VERSION is empty")


def test_raises_helper_catches_and_names():
    def bad():
        raise ValueError("field Foo is wrong")

    raises_naming(ValueError, "Foo", bad)
    try:
        raises(ValueError, lambda: None)
    except AssertionError:
        return
    raise AssertionError("raises() accepted a call that raised nothing")


def test_const_is_available():
    from micropython import const

    if const(7) != 7:
        raise AssertionError("const shim broken on " + sys.implementation.name)
