"""Eastron SDM120 (single-phase): its register map (meter_maps' form)."""
from cpagent.drivers.meter_maps import F32, make

MODEL = make(4, 80, 0, 1, (0x48, F32, 0), (0x0C, F32, 0), (0, F32, 0), (6, F32, 0))
