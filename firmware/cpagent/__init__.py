"""Charge-point agent for EV chargers: OICP 2.3 CPO side, on MicroPython. MIT licence."""
VERSION = "0.1.0"
