"""Wall clock from monotonic ticks: ISO 8601 UTC with ms, deferred '@boot:ms' stamps."""
from micropython import const

_MIN_REAL = const(1577836800)  # 2020-01-01: anything earlier is a reset RTC, not a time
_MAX_REAL = const(4102444800)  # 2100-01-01: anything later is a garbled reply
_MONTHS = const("JanFebMarAprMayJunJulAugSepOctNovDec")
_DIGITS = const("0123456789")


def _civil(z):
    """Days since 1970-01-01 -> (year, month, day); Hinnant's civil_from_days, any era."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    m = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (1 if m <= 2 else 0), m, doy - (153 * mp + 2) // 5 + 1


def _days(y, m, d):
    """(year, month, day) -> days since 1970-01-01; the inverse of _civil."""
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m - 3 if m > 2 else m + 9) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _ms(unix_s):
    # Ints stay exact; floats round half up to the ms (single-precision ports: pass ints).
    if isinstance(unix_s, int):
        return unix_s * 1000
    return int((unix_s * 1000 + 0.5) // 1)


def iso_from_ms(ms):
    """Unix ms -> 'YYYY-MM-DDThh:mm:ss.mmmZ'; the same on every port (no time.gmtime)."""
    s, ms = divmod(ms, 1000)
    d, s = divmod(s, 86400)
    y, m, d = _civil(d)
    if not 0 <= y <= 9999:
        raise ValueError("time: year %d outside 0000..9999" % y)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ" % (y, m, d, s // 3600, s // 60 % 60, s % 60, ms)


def _num(s, i, n, lo, hi, what):
    t = s[i:i + n]
    if len(t) != n or t.strip(_DIGITS):
        raise ValueError("time: expected %d digits of %s at %d in %r" % (n, what, i, s))
    v = int(t)
    if not lo <= v <= hi:
        raise ValueError("time: %s %d outside %d..%d in %r" % (what, v, lo, hi, s))
    return v


def _unix(y, m, d, hh, mm, ss, s):
    if _civil(_days(y, m, d)) != (y, m, d):
        raise ValueError("time: no day %d in %04d-%02d in %r" % (d, y, m, s))
    return _days(y, m, d) * 86400 + hh * 3600 + mm * 60 + ss


def unix_from_iso(s):
    """'YYYY-MM-DDThh:mm:ss[.f](Z|+hh:mm|-hh:mm)' -> unix s: an int, or a float for a fraction
    (truncated to the ms). Raises ValueError naming the problem."""
    if not isinstance(s, str) or len(s) < 20 or s[4] + s[7] + s[10] + s[13] + s[16] != "--T::":
        raise ValueError("time: expected YYYY-MM-DDThh:mm:ss[.fff](Z|+hh:mm), got %r" % (s,))
    t = _unix(_num(s, 0, 4, 0, 9999, "year"), _num(s, 5, 2, 1, 12, "month"),
              _num(s, 8, 2, 1, 31, "day"), _num(s, 11, 2, 0, 23, "hour"),
              _num(s, 14, 2, 0, 59, "minute"), _num(s, 17, 2, 0, 59, "second"), s)
    i = 19
    ms = 0
    if s[i] == ".":
        i += 1
        while i < len(s) and s[i] in _DIGITS:
            i += 1
        if not 21 <= i <= 29:
            raise ValueError("time: expected 1..9 fraction digits in %r" % (s,))
        ms = int((s[20:i] + "00")[:3])
    z = s[i:]
    if z != "Z":
        if len(z) != 6 or z[0] not in "+-" or z[3] != ":":
            raise ValueError("time: expected Z or +hh:mm after the seconds in %r" % (s,))
        off = _num(z, 1, 2, 0, 23, "offset hours") * 3600 + _num(z, 4, 2, 0, 59, "offset min") * 60
        t = t - off if z[0] == "+" else t + off
    return t + ms / 1000 if ms else t


def unix_from_http_date(s):
    """HTTP Date header (IMF-fixdate, 'Sun, 06 Nov 1994 08:49:37 GMT') -> unix s (int)."""
    p = s.split(" ") if isinstance(s, str) else ()
    if len(p) != 6 or p[5] != "GMT" or len(p[0]) != 4 or p[0][3] != "," or len(p[1]) != 2 \
            or len(p[2]) != 3 or _MONTHS.find(p[2]) % 3 or len(p[3]) != 4 or len(p[4]) != 8 \
            or p[4][2] + p[4][5] != "::":
        raise ValueError("time: expected an HTTP date like 'Sun, 06 Nov 1994 08:49:37 GMT', "
                         "got %r" % (s,))
    c = p[4]
    return _unix(_num(p[3], 0, 4, 0, 9999, "year"), _MONTHS.find(p[2]) // 3 + 1,
                 _num(p[1], 0, 2, 1, 31, "day"), _num(c, 0, 2, 0, 23, "hour"),
                 _num(c, 3, 2, 0, 59, "minute"), _num(c, 6, 2, 0, 59, "second"), s)


class Clock:
    """Turns ticks into wall time once set_unix() learnt it; before that, stamps are tokens.

    `known` is a bool attribute. Time since boot is an unwrapped ms counter, ms(), advanced by
    ticks_diff on every call, so ticks may wrap (2**30 on MicroPython) as often as they like
    provided the clock is read at least once per half period (~6.2 days).
    A token '@<boot>:<ms>' names that counter; it equals ticks_ms() until the first wrap.
    """

    def __init__(self, ticks_ms, ticks_diff, boot=0):
        self._ticks = ticks_ms
        self._diff = ticks_diff
        self.boot = boot
        self._last = ticks_ms()
        self._mono = self._last
        self.known = False
        self.source = ""
        self._off = self._off0 = None  # unix ms minus _mono: now, and at the first sync
        self._top = 0  # highest ms stamped so far

    def ms(self):
        """Monotonic ms since boot that never wraps (the '@boot:ms' number); subtract freely."""
        t = self._ticks()
        self._mono += self._diff(t, self._last)
        self._last = t
        return self._mono

    def set_unix(self, unix_s, source=""):
        """Learn the wall time; False (and nothing learnt) for times before 2020 or from 2100."""
        if not _MIN_REAL <= unix_s < _MAX_REAL:
            return False
        self._off = _ms(unix_s) - self.ms()
        if self._off0 is None:
            # Tokens always resolve through the first anchor: one fixed offset keeps them in
            # ticks order with each other and before every real stamp issued after them.
            self._off0 = self._off
        self.known = True
        self.source = source
        return True

    def wall_ms(self):
        """Wall time in unix ms, as the next stamp gives it; None while unknown."""
        # A re-sync may move the anchor back (NTP after a coarse HTTP Date); stamps hold still
        # until real time passes the highest one given, so a boot's stamps never go backwards
        # (SessionEnd before SessionStart, or Progress "sooner" than 5 min, would be refused).
        if self._off is None:
            return None
        self._top = max(self._top, self.ms() + self._off)
        return self._top

    def now_unix(self):
        """Wall time in whole unix seconds, or None while unknown."""
        ms = self.wall_ms()
        return None if ms is None else ms // 1000

    def stamp(self):
        """ISO 8601 UTC with ms once known; before that the token '@<boot>:<ms since boot>'."""
        ms = self.wall_ms()
        if ms is None:
            return "@%d:%d" % (self.boot, self.ms())
        return iso_from_ms(ms)

    def resolve(self, v):
        """A token of this boot -> ISO (None until known); ISO passes through; a token of an
        earlier boot -> None (the caller's policy); anything malformed -> ValueError."""
        if isinstance(v, str) and v[:1] == "@":
            p = v[1:].split(":")
            if len(p) == 2 and p[0] and p[1] and not (p[0] + p[1]).strip(_DIGITS):
                if int(p[0]) != self.boot or self._off0 is None:
                    return None
                ms = int(p[1])
                if ms > self.ms():
                    raise ValueError("time token %r is later than now" % v)
                return iso_from_ms(ms + self._off0)
            raise ValueError("time token: expected '@<boot>:<ms>', got %r" % (v,))
        unix_from_iso(v)
        return v
