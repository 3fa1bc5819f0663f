"""Carlo Gavazzi EM340 (three-phase; low word first): its register map (meter_maps' form)."""
from micropython import const

# meter_maps' type codes. MODEL is all literals, so a frozen image keeps it in flash.
_S32 = const(3)
_LO = const(16)
MODEL = (125, 1, (
    (0, 4, 0x34, _S32 | _LO, -1, 1),  # energy
    (1, 4, 0x28, _S32 | _LO, -1, 1),  # power
    (2, 4, 0, _S32 | _LO, -1, 1),  # voltage L1
    (3, 4, 2, _S32 | _LO, -1, 1),  # voltage L2
    (4, 4, 4, _S32 | _LO, -1, 1),  # voltage L3
    (5, 4, 0x0C, _S32 | _LO, -3, 1),  # current L1
    (6, 4, 0x0E, _S32 | _LO, -3, 1),  # current L2
    (7, 4, 0x10, _S32 | _LO, -3, 1),  # current L3
))
