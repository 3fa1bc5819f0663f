"""ABB B23 (three-phase): its register map (meter_maps' form)."""
from micropython import const

# meter_maps' type codes. MODEL is all literals, so a frozen image keeps it in flash.
_U64 = const(4)
_S32 = const(3)
_U32 = const(2)
MODEL = (125, 1, (
    (0, 3, 0x5000, _U64, -2, 1),  # energy
    (1, 3, 0x5B14, _S32, -2, 1),  # power
    (2, 3, 0x5B00, _U32, -1, 1),  # voltage L1
    (3, 3, 0x5B02, _U32, -1, 1),  # voltage L2
    (4, 3, 0x5B04, _U32, -1, 1),  # voltage L3
    (5, 3, 0x5B0C, _U32, -2, 1),  # current L1
    (6, 3, 0x5B0E, _U32, -2, 1),  # current L2
    (7, 3, 0x5B10, _U32, -2, 1),  # current L3
))
