"""Charge-point agent for EV chargers: OICP 2.3 CPO side, on MicroPython. MIT licence."""
VERSION = "0.1.0"


class ConfigError(ValueError):
    """config.json is wrong; the message starts with the field path (or 'config')."""


def forget(name):
    """Drop the boot-only module cpagent.<name> ("loader", "boards.setup"): sys.modules and its
    package hold it, so that the collector frees it once no one else does; a later import
    loads it again."""
    import sys

    full = "cpagent." + name
    sys.modules.pop(full, None)
    i = full.rfind(".")
    pkg = sys.modules.get(full[:i])
    if pkg:
        pkg.__dict__.pop(full[i + 1:], None)


def once(name):
    """cpagent.<name> for one use: imported and dropped again at once (forget), so that its
    code is freed when the caller lets go of the module (boot-only and rare work)."""
    m = __import__("cpagent." + name, None, None, (name,))
    forget(name)
    return m
