"""The uplinks' one retry delay: doubling, capped, its jittered share within bounds."""
from cpagent.uplink.result import delay


def _rand(v):
    return lambda n: "%04x" % v  # rand_hex(2) that always gives v


def test_the_ceiling_doubles_up_to_the_cap():
    assert [delay(n, 1000, 10000) for n in range(6)] == [1000, 2000, 4000, 8000, 10000, 10000]
    assert delay(400, 1000, 10000) == 10000  # a long outage: the shift stays small


def test_full_jitter_spans_zero_to_the_ceiling_and_half_keeps_half_fixed():
    assert delay(2, 1000, 60000, _rand(0)) == 0
    assert delay(2, 1000, 60000, _rand(0xFFFF)) == 4000
    assert delay(2, 1000, 60000, _rand(0), 2) == 2000
    assert delay(2, 1000, 60000, _rand(0xFFFF), 2) == 4000
    assert 2000 < delay(2, 1000, 60000, _rand(0x8000), 2) < 4000
