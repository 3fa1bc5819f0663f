"""Iskra WM3M4 (three-phase; Iskra's exponent types): its register map (meter_maps' form)."""
from micropython import const

# meter_maps' type codes. MODEL is all literals, so a frozen image keeps it in flash.
_IE = const(10)
_T6 = const(9)
_T5 = const(8)
MODEL = (125, 1, (
    (0, 4, 414, _IE, -3, 1),  # energy
    (1, 4, 140, _T6, 0, 1),  # power
    (2, 4, 107, _T5, 0, 1),  # voltage L1
    (3, 4, 109, _T5, 0, 1),  # voltage L2
    (4, 4, 111, _T5, 0, 1),  # voltage L3
    (5, 4, 126, _T5, 0, 1),  # current L1
    (6, 4, 128, _T5, 0, 1),  # current L2
    (7, 4, 130, _T5, 0, 1),  # current L3
))
