"""Eastron SDM630 (three-phase): its register map (meter_maps' form)."""
from cpagent.drivers.meter_maps import F32, make

MODEL = make(4, 80, 1, 3, (0x48, F32, 0), (0x34, F32, 0), (0, F32, 0), (6, F32, 0))
