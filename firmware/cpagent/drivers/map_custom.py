"""A register map from config (meter.model "custom"): meter.map in meter_maps' form."""
from micropython import const

from cpagent.drivers.meter_maps import MAP_NAMES

# Imported only for a custom map: the other chargers keep none of this in RAM.
# config's type names in the order of meter_maps' type codes 0..7, and its low-word-first flag
_TYPES = const(("u16", "s16", "u32", "s32", "u64", "s64", "f32", "f64"))
_LO = const(16)


def custom(map_cfg):
    """The model for config's meter.map: quantity -> {addr, type, scale, words, fc}."""
    f = []
    for name in map_cfg:
        r = map_cfg[name]
        s = r.get("scale", 1)
        # scale = factor * 10**-d, integers to 6 significant digits: 0.01 and 2.5 are exact
        for d in range(16):
            m = s * 10 ** d
            if abs(m - round(m)) <= 1e-6 * abs(m):
                break
        else:
            raise ValueError("meter.map.%s.scale: expected 0 or at least 1e-15" % name)
        m = round(m)
        while m and not m % 10:
            m //= 10
            d -= 1
        f.append((MAP_NAMES.index(name), r.get("fc", 4), r["addr"],
                  _TYPES.index(r["type"]) | (_LO if r.get("words") == "lo" else 0), -d, m))
    return 125, 1, tuple(f)
