"""Eastron SDM120 (single-phase): its register map (meter_maps' form)."""
from micropython import const

# meter_maps' type codes. MODEL is all literals, so a frozen image keeps it in flash.
_F32 = const(6)
MODEL = (80, 0, (
    (0, 4, 0x48, _F32, 0, 1),  # energy
    (1, 4, 0x0C, _F32, 0, 1),  # power
    (2, 4, 0, _F32, 0, 1),  # voltage L1
    (5, 4, 6, _F32, 0, 1),  # current L1
))
