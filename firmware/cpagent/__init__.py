"""Charge-point agent for EV chargers: OICP 2.3 CPO side, on MicroPython. MIT licence."""
VERSION = "0.1.0"


class ConfigError(ValueError):
    """config.json is wrong; the message starts with the field path (or 'config')."""
