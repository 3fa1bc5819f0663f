"""Eastron SDM72D (three-phase, energy and power only): its register map (meter_maps' form)."""
from micropython import const

# meter_maps' type codes. MODEL is all literals, so a frozen image keeps it in flash.
_F32 = const(6)
MODEL = (60, 1, (
    (0, 4, 0x48, _F32, 0, 1),  # energy
    (1, 4, 0x34, _F32, 0, 1),  # power
))
