"""ABB B23 (three-phase): its register map (meter_maps' form)."""
from cpagent.drivers.meter_maps import S32, U32, U64, make

MODEL = make(3, 125, 1, 3, (0x5000, U64, -2), (0x5B14, S32, -2), (0x5B00, U32, -1),
             (0x5B0C, U32, -2))
