"""Iskra WM3M4 (three-phase; Iskra's exponent types): its register map (meter_maps' form)."""
from cpagent.drivers.meter_maps import IE, T5, T6, make

MODEL = make(4, 125, 1, 3, (414, IE, -3), (140, T6, 0), (107, T5, 0), (126, T5, 0))
