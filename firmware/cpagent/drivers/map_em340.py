"""Carlo Gavazzi EM340 (three-phase; low word first): its register map (meter_maps' form)."""
from cpagent.drivers.meter_maps import LO, S32, make

MODEL = make(4, 125, 1, 3, (0x34, S32 | LO, -1), (0x28, S32 | LO, -1), (0, S32 | LO, -1),
             (0x0C, S32 | LO, -3))
