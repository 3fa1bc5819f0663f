"""Clock tests: literal ISO vectors, HTTP dates, deferred tokens, ticks wrap, re-syncs."""
from check import raises, raises_naming
from cpagent.clock import (
    Clock,
    iso_from_ms,
    unix_from_http_date,
    unix_from_iso,
)

_PERIOD = 1 << 30  # MicroPython's ticks_ms period


class Ticks:
    """A fake ticks_ms that wraps at 2**30, with MicroPython's ticks_diff."""

    def __init__(self, start=0):
        self.t = start % _PERIOD

    def ms(self):
        return self.t

    def advance(self, ms):
        self.t = (self.t + ms) % _PERIOD

    @staticmethod
    def diff(a, b):
        return ((a - b + _PERIOD // 2) & (_PERIOD - 1)) - _PERIOD // 2


def _clock(start=0, boot=3):
    t = Ticks(start)
    return t, Clock(t.ms, Ticks.diff, boot)


T0 = 1700000000  # 2023-11-14T22:13:20Z


def test_iso_vectors_whole_seconds():
    for unix_s, iso in (
        (0, "1970-01-01T00:00:00.000Z"),
        (-1, "1969-12-31T23:59:59.000Z"),
        (-2203891200, "1900-03-01T00:00:00.000Z"),
        (946684800, "2000-01-01T00:00:00.000Z"),  # ESP32's time.time() epoch
        (951782400, "2000-02-29T00:00:00.000Z"),  # 2000 is a leap year (divisible by 400)
        (951868799, "2000-02-29T23:59:59.000Z"),
        (951868800, "2000-03-01T00:00:00.000Z"),
        (1709164800, "2024-02-29T00:00:00.000Z"),
        (T0, "2023-11-14T22:13:20.000Z"),
        (2147483647, "2038-01-19T03:14:07.000Z"),
        (2147483648, "2038-01-19T03:14:08.000Z"),  # past the signed 32-bit limit
        (4107542399, "2100-02-28T23:59:59.000Z"),
        (4107542400, "2100-03-01T00:00:00.000Z"),  # 2100 is not a leap year
        (4294967296, "2106-02-07T06:28:16.000Z"),  # past the unsigned 32-bit limit
        (13574606400, "2400-02-29T12:00:00.000Z"),
        (253402300799, "9999-12-31T23:59:59.000Z"),
    ):
        got = iso_from_ms(unix_s * 1000)
        assert got == iso, (unix_s, got)
        assert unix_from_iso(iso) == unix_s, iso


def _stamp_at(unix_s):
    c = _clock()[1]
    assert c.set_unix(unix_s)
    return c.stamp()


def test_float_wall_time_rounds_half_up_to_the_ms():
    # On a double-precision runtime (CPython, the webassembly port). A single-precision port
    # (the ESP32's and the Pico W's floats have 24 bits: a unix time in seconds is off by up to
    # 64 s there) gets ints from its board (boards/mcu.py: time.time()), as clock.py asks.
    if float(2 ** 24 + 1) == 2 ** 24:
        return
    assert _stamp_at(T0) == "2023-11-14T22:13:20.000Z"
    assert _stamp_at(T0 + 0.5) == "2023-11-14T22:13:20.500Z"
    assert _stamp_at(T0 + 0.0625) == "2023-11-14T22:13:20.063Z"  # 62.5 ms, exact in binary
    assert _stamp_at(T0 + 0.0624) == "2023-11-14T22:13:20.062Z"
    assert _stamp_at(T0 + 39.9996) == "2023-11-14T22:14:00.000Z"  # carries into the minute
    assert _stamp_at(T0 - 0.25) == "2023-11-14T22:13:19.750Z"


def test_iso_from_ms():
    assert iso_from_ms(1700000000123) == "2023-11-14T22:13:20.123Z"
    assert iso_from_ms(999) == "1970-01-01T00:00:00.999Z"


def test_iso_out_of_range_year_refused():
    raises_naming(ValueError, "year", iso_from_ms, 253402300800000)


def test_unix_from_iso_offsets_and_fractions():
    assert unix_from_iso("2023-11-14T22:13:20Z") == T0
    assert unix_from_iso("2023-11-14T23:13:20+01:00") == T0
    assert unix_from_iso("2023-11-14T17:43:20-04:30") == T0
    assert unix_from_iso("2023-11-15T00:13:20+02:00") == T0  # day boundary
    assert unix_from_iso("2023-11-14T22:13:20.5Z") == T0 + 0.5
    assert unix_from_iso("2023-11-14T22:13:20.250000001Z") == T0 + 0.25  # truncated to ms
    assert unix_from_iso("2023-11-14T22:13:20.000Z") == T0
    assert type(unix_from_iso("2023-11-14T22:13:20.000Z")) is int


def test_unix_from_iso_names_the_problem():
    for bad, word in (
        ("2023-13-01T00:00:00Z", "month"),
        ("2023-02-29T00:00:00Z", "no day 29"),
        ("2024-04-31T00:00:00Z", "no day 31"),
        ("2024-01-01T24:00:00Z", "hour"),
        ("2024-01-01T00:60:00Z", "minute"),
        ("2024-01-01T00:00:60Z", "second"),
        ("2024-01-01T00:00:00", "YYYY"),
        ("2024-01-01 00:00:00Z", "YYYY"),
        ("2024-01-01T00:00:00+0100", "+hh:mm"),
        ("2024-01-01T00:00:00+25:00", "offset hours"),
        ("2024-01-01T00:00:00.Z", "fraction"),
        ("2024-01-01T00:00:00.1234567890Z", "fraction"),
        ("20x4-01-01T00:00:00Z", "year"),
        ("2024-01-01T00:00:00z", "Z or"),
        (1700000000, "YYYY"),
    ):
        raises_naming(ValueError, word, unix_from_iso, bad)


def test_http_date():
    assert unix_from_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777
    assert unix_from_http_date("Tue, 14 Nov 2023 22:13:20 GMT") == T0
    assert unix_from_http_date("Thu, 29 Feb 2024 00:00:00 GMT") == 1709164800
    for bad in ("Sun, 06 Nov 1994 08:49:37 UTC", "Sunday, 06-Nov-94 08:49:37 GMT",
                "Sun, 06 Now 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08.49.37 GMT",
                "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 06 Nov 94 08:49:37 GMT", "", None):
        raises_naming(ValueError, "HTTP date", unix_from_http_date, bad)
    raises_naming(ValueError, "no day 30", unix_from_http_date, "Fri, 30 Feb 2024 00:00:00 GMT")


def test_tokens_before_sync_resolve_exactly_after():
    t, c = _clock(start=1000)
    assert c.known is False and c.now_unix() is None
    tok = c.stamp()
    assert tok == "@3:1000"
    assert c.resolve(tok) is None  # not yet known
    t.advance(5000)
    assert c.set_unix(T0, "ntp") is True
    assert c.known is True and c.source == "ntp"
    assert c.resolve(tok) == "2023-11-14T22:13:15.000Z"
    t.advance(250)
    assert c.stamp() == "2023-11-14T22:13:20.250Z"
    assert c.now_unix() == T0
    assert c.resolve(tok) == "2023-11-14T22:13:15.000Z"  # resolving twice is stable


def test_reset_rtc_times_are_refused():
    t, c = _clock()
    for bad in (0, 1, 946684800, 978307200, 1577836799, 4102444800, -5):
        assert c.set_unix(bad) is False, bad
        assert c.known is False
        assert c.stamp()[0] == "@"
    assert c.set_unix(1577836800) is True  # 2020-01-01 is the first real time
    assert c.stamp() == "2020-01-01T00:00:00.000Z"


def test_ticks_wrap_tokens_stay_exact():
    t, c = _clock(start=_PERIOD - 1500)
    tok = c.stamp()
    assert tok == "@3:%d" % (_PERIOD - 1500)
    t.advance(2000)  # wraps: ticks_ms() is now 500
    assert t.ms() == 500
    after = c.stamp()
    assert after == "@3:%d" % (_PERIOD + 500)  # unwrapped count, not 500
    for _ in range(5):  # several more wraps, read at least every half period
        t.advance(_PERIOD // 2 - 1)
        c.stamp()
    t.advance(10)
    assert c.set_unix(T0) is True
    gone = (_PERIOD // 2 - 1) * 5 + 10
    assert c.resolve(after) == iso_from_ms((T0 * 1000) - gone)
    assert c.resolve(tok) == iso_from_ms((T0 * 1000) - gone - 2000)


def test_ms_is_monotonic_across_wraps():
    t, c = _clock(start=_PERIOD - 100)
    first = c.ms()
    for _ in range(4):
        t.advance(_PERIOD // 2 - 1)
        assert c.ms() > first
    assert c.ms() - first == 4 * (_PERIOD // 2 - 1)


def test_other_boot_and_malformed_tokens():
    t, c = _clock(boot=7)
    tok = c.stamp()
    t.advance(10)
    c.set_unix(T0)
    assert c.resolve("@6:%d" % t.ms()) is None  # an earlier boot: its ticks mean nothing now
    assert c.resolve(tok) is not None
    iso = "2023-11-14T23:13:20+01:00"
    assert c.resolve(iso) == iso  # real times pass through unchanged
    for bad in ("@7", "@7:", "@:5", "@7:1:2", "@x:5", "@7:-5", "@ 7:5", "", "now",
                "2024-13-01T00:00:00Z", 5, None):
        raises(ValueError, c.resolve, bad)
    raises_naming(ValueError, "later than now", c.resolve, "@7:%d" % (t.ms() + 1))


def test_resync_backwards_never_moves_stamps_back():
    t, c = _clock()
    c.set_unix(T0)
    t.advance(1000)
    first = c.stamp()
    assert first == "2023-11-14T22:13:21.000Z"
    assert c.set_unix(T0 - 9, "ntp") is True  # NTP says we were 10 s fast
    assert c.stamp() == first  # clamped: held, not stepped back
    assert c.now_unix() == T0 + 1
    t.advance(9000)
    assert c.stamp() == first  # real time (T0 - 9 + 9 s) still below the highest stamp
    t.advance(1500)
    assert c.stamp() == "2023-11-14T22:13:21.500Z"  # moves again once real time passes it


def test_resync_forwards_steps_and_tokens_keep_order():
    t, c = _clock()
    tok = c.stamp()
    t.advance(100)
    c.set_unix(T0, "http-date")
    t.advance(100)
    s1 = c.stamp()
    c.set_unix(T0 + 3600, "ntp")
    s2 = c.stamp()
    assert s1 == "2023-11-14T22:13:20.100Z"
    assert s2 == "2023-11-14T23:13:20.000Z"  # the anchor is T0 + 1 h at this very tick
    # Tokens resolve through the first anchor, so they stay before stamps taken after them.
    assert c.resolve(tok) == "2023-11-14T22:13:19.900Z"
    assert c.resolve(tok) < s1 < s2
