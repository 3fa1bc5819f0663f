"""OICP 2.3 field validators, hand-written (no `re`): return the value or raise FieldError."""

from micropython import const

_DIGITS = const("0123456789")

# Patterns as flat runs of (class mask, literal chars, min, max), matched greedily. The
# OpenAPI regexes need no backtracking here: every variable run is followed by a char it
# cannot contain. Literal constants, so a frozen image keeps them in flash and the import
# builds nothing (built at import from computed strings they cost 1.3 KB of heap); classes
# are bits, not strings, because a .mpy holds a copy of a string for every tuple it is in.
_DIG = const(1)  # 0-9
_UP = const(2)  # A-Z
_LOW = const(4)  # a-z
_LET = const(6)  # A-Za-z
_ALNUM = const(7)  # A-Za-z0-9
_OP_ISO = const((_LET, "", 2, 2, 0, "*", 0, 1, _ALNUM, "", 3, 3))
_OP_DIN = const((0, "+", 0, 1, _DIG, "", 1, 3, 0, "*", 1, 1, _DIG, "", 3, 3))
_EVSE_ISO = const((_LET, "", 2, 2, 0, "*", 0, 1, _ALNUM, "", 3, 3,
                   0, "*", 0, 1, 0, "E", 1, 1, _ALNUM, "*", 1, 30))
_EVSE_DIN = const((0, "+", 0, 1, _DIG, "", 1, 3, 0, "*", 1, 1, _DIG, "", 3, 3,
                   0, "*", 1, 1, _DIG, "*", 1, 32))
_SESSION = const((_ALNUM, "", 8, 8, 0, "-", 1, 1, _ALNUM, "", 4, 4, 0, "-", 1, 1,
                  _ALNUM, "", 4, 4, 0, "-", 1, 1, _ALNUM, "", 4, 4, 0, "-", 1, 1,
                  _ALNUM, "", 12, 12))
# The spec's classes [\*|-] and [\d|X] also admit a literal "|" by a regex slip; we do not.
_PROVIDER = const((_LET, "", 2, 2, 0, "*-", 0, 1, _ALNUM, "", 3, 3))
_EVCO_ISO = const((_LET, "", 2, 2, 0, "-", 0, 1, _ALNUM, "", 3, 3, 0, "-", 0, 1, 0, "C", 1, 1,
                   _ALNUM, "", 8, 8, 0, "-", 0, 1, _ALNUM, "", 1, 1))
_EVCO_DIN = const((_LET, "", 2, 2, 0, "*-", 0, 1, _ALNUM, "", 3, 3, 0, "*-", 0, 1,
                   _ALNUM, "", 6, 6, 0, "*-", 0, 1, _DIG, "X", 1, 1))


class FieldError(ValueError):
    """A field failed validation; .field names it."""

    def __init__(self, field, msg):
        super().__init__("%s: %s" % (field, msg))
        self.field = field


def bad(field, what, v):
    """Raise FieldError for field: 'expected <what>, got <short repr of v>'."""
    r = repr(v)
    raise FieldError(field, "expected %s, got %s" % (what, r if len(r) <= 40 else r[:37] + "..."))


def _run(v, pat):
    i, n = 0, len(v)
    for j in range(0, len(pat), 4):
        # indexed, not a slice: no tuple per run of every id checked
        m = pat[j]
        cs = pat[j + 1]
        lo = pat[j + 2]
        hi = pat[j + 3]
        k = 0
        while k < hi and i < n:
            c = v[i]
            if not (c in cs or m & _DIG and "0" <= c <= "9" or m & _UP and "A" <= c <= "Z"
                    or m & _LOW and "a" <= c <= "z"):
                break
            i += 1
            k += 1
        if k < lo:
            return False
    return i == n


def _digits(s, lo, hi):
    # strip(), not isdigit(): CPython's isdigit() also accepts digits of other scripts.
    return lo <= len(s) <= hi and not s.strip(_DIGITS)


def _pat(v, field, what, *pats):
    if isinstance(v, str):
        for p in pats:
            if _run(v, p):
                return v
    bad(field, what, v)


def check_str(v, field, maxlen, minlen=0):
    if not isinstance(v, str) or not minlen <= len(v) <= maxlen:
        bad(field, "a string of %d to %d characters" % (minlen, maxlen), v)
    return v


def check_operator_id(v, field="OperatorID"):
    return _pat(v, field, "an OperatorID such as DE*ABC or +49*536", _OP_ISO, _OP_DIN)


def check_evse_id(v, field="EvseID"):
    return _pat(v, field, "an EvseID such as DE*ABC*E123456", _EVSE_ISO, _EVSE_DIN)


def check_session_id(v, field="SessionID"):
    return _pat(v, field, "a GUID such as b2688855-7f00-0002-6d8e-48d883f6abb6", _SESSION)


def check_provider_id(v, field="ProviderID"):
    return _pat(v, field, "a ProviderID such as DE-8EO", _PROVIDER)


def check_evco_id(v, field="EvcoID"):
    return _pat(v, field, "an EvcoID such as DE-8EO-CAB123456-7", _EVCO_ISO, _EVCO_DIN)


def check_uid(v, field="UID"):
    if isinstance(v, str) and len(v) in (8, 14, 20) and not v.strip("0123456789ABCDEF"):
        return v
    bad(field, "8, 14 or 20 upper-case hex digits", v)


def check_product_id(v, field="PartnerProductID"):
    return check_str(v, field, 50, 1)


def check_cpo_session_id(v, field="CPOPartnerSessionID"):
    return check_str(v, field, 250, 1)


_KWH = const((_DIG, "", 1, 20, 0, ".", 1, 1, _DIG, "", 1, 3))  # 2^64 Wh has 17 kWh digits


def kwh(wh):
    """Integer Wh (>= 0: callers clamp) as exact kWh text ("1234.56"); a float32 has 7 digits."""
    t = "%d.%03d" % (wh // 1000, wh % 1000)
    return t.rstrip("0") + "0" if t[-3:] == "000" else t.rstrip("0")


def check_kwh(v, field):
    """kWh as exact decimal text, from kWh text (kwh()) or a finite number >= 0."""
    if not isinstance(v, str):
        # v - v is nan for inf and nan alike; bool is an int subclass and never an energy.
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or v - v != 0 \
                or v > 1e19:
            bad(field, "a finite number of kWh >= 0", v)
        v = kwh(round(v * 1000))
    if v[:1] == "0" and v[1:2] != ".":  # JSON has no leading zeros
        bad(field, "kWh as decimal text such as 12.345", v)
    return _pat(v, field, "kWh as decimal text such as 12.345", _KWH)


def _num(v, i, n, lo, hi):
    s = v[i:i + n]
    if not _digits(s, n, n) or not lo <= int(s) <= hi:
        raise ValueError
    return int(s)


def check_datetime(v, field, deferred=True):
    """ISO 8601 with a zone (Z or +-hh:mm), year >= 2020; or (if deferred) an '@<boot>:<ticks>'
    token, which the clock hands out before it knows the wall time."""
    try:
        if not isinstance(v, str):
            raise TypeError
        if deferred and v[0] == "@":
            b, t = v[1:].split(":")
            if _digits(b, 1, 12) and _digits(t, 1, 12):
                return v
            raise ValueError
        y = _num(v, 0, 4, 2020, 9999)
        m = _num(v, 5, 2, 1, 12)
        leap = y % 4 == 0 and (y % 100 != 0 or y % 400 == 0)
        _num(v, 8, 2, 1, (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[m - 1])
        _num(v, 11, 2, 0, 23)
        _num(v, 14, 2, 0, 59)
        _num(v, 17, 2, 0, 59)
        if v[4] + v[7] + v[10] + v[13] + v[16] != "--T::":
            raise ValueError
        i = 19
        if v[i:i + 1] == ".":
            k = i + 1
            while "0" <= v[k:k + 1] <= "9" and k - i <= 6:
                k += 1
            if k == i + 1:
                raise ValueError
            i = k
        z = v[i:]
        if z != "Z" and not (len(z) == 6 and z[0] in "+-" and z[3] == ":"
                             and _num(z, 1, 2, 0, 14) >= 0 and _num(z, 4, 2, 0, 59) >= 0):
            raise ValueError
        return v
    except (ValueError, TypeError, IndexError, KeyError, AttributeError):
        bad(field, "an ISO 8601 time such as 2024-05-01T12:00:00+02:00 (year >= 2020)", v)
