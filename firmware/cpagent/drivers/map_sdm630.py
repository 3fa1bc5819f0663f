"""Eastron SDM630 (three-phase): its register map (meter_maps' form)."""
from micropython import const

# meter_maps' type codes. MODEL is all literals, so a frozen image keeps it in flash.
_F32 = const(6)
MODEL = (80, 1, (
    (0, 4, 0x48, _F32, 0, 1),  # energy
    (1, 4, 0x34, _F32, 0, 1),  # power
    (2, 4, 0, _F32, 0, 1),  # voltage L1
    (3, 4, 2, _F32, 0, 1),  # voltage L2
    (4, 4, 4, _F32, 0, 1),  # voltage L3
    (5, 4, 6, _F32, 0, 1),  # current L1
    (6, 4, 8, _F32, 0, 1),  # current L2
    (7, 4, 0x0A, _F32, 0, 1),  # current L3
))
