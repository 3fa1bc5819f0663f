"""Eastron SDM72D (three-phase, energy and power only): its register map (meter_maps' form)."""
from cpagent.drivers.meter_maps import F32, make

MODEL = make(4, 60, 1, 0, (0x48, F32, 0), (0x34, F32, 0))
