"""Energy meter register maps as data: plan() the reads a poll needs, decode() their replies."""

from micropython import const

# Quantities a custom meter map may name (units after scale): kWh, W, V, A; the first two are
# required (config checks a custom map against these).
MAP_NAMES = ("energy", "power", "voltage_l1", "voltage_l2", "voltage_l3",
             "current_l1", "current_l2", "current_l3")

# A model is (max registers per request, whether a read may span unused registers, fields); a
# field is (quantity, fc, addr, type, exponent, factor): quantity indexes MAP_NAMES; the register
# times factor times 10**exponent is kWh, W, V or A, in integers (exact Wh). The models there are
# maps for are literals in drivers/map_<name>.py: a charger imports (and make deploy copies) only
# its own, and a frozen image keeps it in flash.
NAMES = ("sdm630", "sdm120", "sdm72d", "sdm72d_v2", "abb_b23", "em340", "wm3m4")

# Register types, as the map modules write them; 0..7 in the order of config's custom-map type
# names (drivers/map_custom.py).
_U32 = const(2)
_F32 = const(6)
_F64 = const(7)
_T5 = const(8)  # Iskra: signed 8-bit decade exponent, then a 24-bit unsigned value
_T6 = const(9)  # Iskra: the same with a 24-bit signed value
_IE = const(10)  # Iskra energy: s16 decade exponent at addr, u32 Wh counter at addr + 4
_LO = const(16)  # flag: the low word comes first
_SPAN = const((1, 1, 2, 2, 4, 4, 2, 4, 2, 2, 6))  # registers a type spans


def model(name):
    """The register map of the model `name` (one of NAMES), from its module."""
    if name not in NAMES:
        raise ValueError("meter.model: no register map named %r" % (name,))
    return __import__("cpagent.drivers.map_" + name, None, None, ("MODEL",)).MODEL


def models():
    """{name: map} of every model (the host's tools and the tests)."""
    return {n: model(n) for n in NAMES}


def plan(model, gaps=None):
    """The reads (fc, start, count) for one poll, as few as the map allows.

    gaps: whether a read may span registers the map does not use; None: as the model says.
    """
    most, g, fields = model
    gaps = g if gaps is None else gaps
    out = []
    for f in sorted(fields, key=lambda f: (f[1], f[2])):
        a = f[2]
        end = a + _SPAN[f[3] & 15]
        if out:
            fc, s, n = out[-1]
            if fc == f[1] and (gaps or a <= s + n) and max(end, s + n) - s <= most:
                out[-1] = (fc, s, max(end, s + n) - s)
                continue
        out.append((f[1], a, end - a))
    return out


def _find(f, replies):
    # The reply data holding field f and the field's byte offset in it.
    for (fc, s, n), d in replies:
        if fc == f[1] and s <= f[2] and f[2] + _SPAN[f[3] & 15] <= s + n:
            return d, 2 * (f[2] - s)
    raise ValueError("meter map: no reply holds register %d (fc %d)" % (f[2], f[1]))


def _raw(d, o, n, lo):
    v = 0
    for k in range(n):
        j = o + 2 * (n - 1 - k if lo else k)
        v = v << 16 | d[j] << 8 | d[j + 1]
    return v


def _iskra_exp(d, o):
    x = _raw(d, o, 1, 0)
    return None if x == 0x7FFF or x == 0x8000 else x - (x >> 15 << 16)


def _value(f, replies):
    # One quantity: energy int Wh, power int W, V and A float; None for "not available".
    q, _, _, t, e, m = f
    d, o = _find(f, replies)
    k = t & 15
    e += 3 if q == 0 else 6 if q > 1 else 0  # kWh -> Wh; V and A in millionths until the end
    if k == _IE:
        x = _iskra_exp(d, o)
        if x is None:
            return None
        e += x
        o += 8
        k = _U32
    n = _SPAN[k]
    v = _raw(d, o, n, t & _LO)
    bits = 16 * n
    s = 0  # a power of two: a float is v * 2**s
    if k < _F32:
        top = 1 << bits - 1
        if k & 1:  # signed: 0x8000.. and 0x7FFF.. mean "not available"
            if v == top or v == top - 1:
                return None
            if v >= top:
                v -= 1 << bits
        elif v == (1 << bits) - 1:  # unsigned: all 0xFF
            return None
    elif k < _T5:  # IEEE 754 from its bits, so single-precision boards stay exact
        w = 23 if n == 2 else 52  # fraction bits
        top = (1 << bits - 1 - w) - 1  # an all-ones exponent: NaN or infinite
        x = v >> w & top
        if x == top:
            return None
        s = (x or 1) - top // 2 - w
        v = (v & (1 << w) - 1 | (x and 1 << w)) * (1 - 2 * (v >> bits - 1))
    else:  # Iskra T5/T6; FFFFFFFF (T5) and 7FFFFFFF (T6) mean "not available"
        if v == (1 << 32 - (k & 1)) - 1:
            return None
        e += (v >> 24) - (v >> 31 << 8)  # the signed 8-bit exponent
        v &= 0xFFFFFF
        if k == _T6 and v >> 23:
            v -= 1 << 24
    den = 10 ** max(-e, 0) << max(-s, 0)
    v = ((v * m * 10 ** max(e, 0) << max(s, 0) + 1) + den) // (2 * den)  # half up, integers
    return v / 1000000 if q > 1 else v


def decode(model, replies):
    """Reading (wh, w, volts or None, amps or None) from [((fc, start, count), data), ...].

    Phases the map lacks are None inside the tuples; a "not available" register decodes as None.
    """
    q = [None] * 8
    has = [0] * 8
    for f in model[2]:
        q[f[0]] = _value(f, replies)
        has[f[0]] = 1
    return (q[0], q[1], tuple(q[2:5]) if max(has[2:5]) else None,
            tuple(q[5:]) if max(has[5:]) else None)


def step(model, replies, wh):
    """The energy register's resolution in Wh at reading wh (for the frozen-register rule)."""
    for f in model[2]:
        if f[0] == 0:
            k, e, m = f[3] & 15, f[4] + 3, abs(f[5])
            if k == _F32:  # a float32's step is below value / 2**23
                return max(1, wh >> 23)
            if k == _IE:
                e += _iskra_exp(*_find(f, replies)) or 0
            return max(1, m * 10 ** e if e >= 0 else m // 10 ** -e) if k != _F64 else 1
    return 1
