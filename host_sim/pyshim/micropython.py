"""CPython stand-in for MicroPython's `micropython` module, so firmware code imports unchanged."""


def const(value):
    """On MicroPython const() folds the value at compile time; on CPython it is the value."""
    return value
