"""Meter maps: each model decoded from literal register bytes, request plans, "not available"."""
from check import raises_naming
from cpagent.drivers.map_custom import custom
from cpagent.drivers.meter_maps import NAMES, decode, model, models, plan, step

H = bytes.fromhex


def regs(count, at):
    """`count` zero registers, the literal hex at[a] written from register offset a."""
    b = bytearray(2 * count)
    for a in at:
        d = H(at[a])
        b[2 * a:2 * a + len(d)] = d
    return bytes(b)


def near(x, y):
    return x is not None and abs(x - y) < 1e-3 * max(1, abs(y))


def close(got, want):
    return len(got) == len(want) and all(
        want[k] is None and got[k] is None or near(got[k], want[k]) for k in range(len(want)))


def test_plans_use_as_few_requests_as_each_map_allows():
    want = {"sdm630": [(4, 0, 74)], "sdm72d": [(4, 0x34, 22)],
            "sdm120": [(4, 0, 2), (4, 6, 2), (4, 0x0C, 2), (4, 0x48, 2)],  # no gap reads
            "sdm72d_v2": [(4, 0, 54), (4, 0x48, 2)],  # 74 registers exceed its 60
            "abb_b23": [(3, 0x5000, 4), (3, 0x5B00, 22)], "em340": [(4, 0, 54)],
            "wm3m4": [(4, 107, 35), (4, 414, 6)]}
    assert sorted(NAMES) == sorted(want) == sorted(models())
    for m in want:
        assert plan(model(m)) == want[m], m
    tight = {"sdm630": 3, "sdm120": 4, "sdm72d": 2, "sdm72d_v2": 3, "abb_b23": 4, "em340": 4,
             "wm3m4": 4}
    for m in tight:
        assert len(plan(model(m), False)) == tight[m], m
    assert plan(model("abb_b23"), False)[1:] == [(3, 0x5B00, 6), (3, 0x5B0C, 6), (3, 0x5B14, 2)]


def test_sdm630_float32_msw_first():
    d = regs(74, {0: "43663334 43670000 43658000", 6: "41280000 00000000 41820000",
                  0x34: "45DAC000", 0x48: "449A5000"})
    wh, w, v, a = decode(model("sdm630"), [((4, 0, 74), d)])
    assert wh == 1234500 and w == 7000
    assert close(v, (230.2, 231.0, 229.5)) and close(a, (10.5, 0.0, 16.25))
    d = regs(74, {0x34: "C4BB8000", 0x48: "47C34FFF"})  # 99999.99 kWh as float32, -1500 W
    assert decode(model("sdm72d_v2"), [((4, 0, 54), d[:108]), ((4, 0x48, 2), d[144:])])[:2] == (
        99999992, -1500)


def test_sdm120_single_phase_and_sdm72d_without_phases():
    reps = [((4, 0, 2), H("43663334")), ((4, 6, 2), H("41280000")),
            ((4, 0x0C, 2), H("45DAC000")), ((4, 0x48, 2), H("3A83126F"))]
    wh, w, v, a = decode(model("sdm120"), reps)
    assert (wh, w) == (1, 7000)  # 0.001 kWh
    assert close(v, (230.2, None, None)) and close(a, (10.5, None, None))
    d = regs(22, {0: "45DAC000", 0x48 - 0x34: "449A5000"})
    assert decode(model("sdm72d"), [((4, 0x34, 22), d)]) == (1234500, 7000, None, None)


def test_abb_integers_give_exact_wh():
    e = regs(4, {0: "000000000001E240"})  # 123456 x 0.01 kWh
    m = regs(22, {0: "000008FE 00000906 000008F7", 0x0C: "0000041A 00000000 00000659",
                  0x14: "000AAE60"})
    reps = [((3, 0x5000, 4), e), ((3, 0x5B00, 22), m)]
    wh, w, v, a = decode(model("abb_b23"), reps)
    assert wh == 1234560 and w == 7000
    assert close(v, (230.2, 231.0, 229.5)) and close(a, (10.5, 0.0, 16.25))
    big = [((3, 0x5000, 4), H("0000010000000001")), reps[1]]  # beyond any float's precision
    assert decode(model("abb_b23"), big)[0] == 10995116277770
    for raw, watts in (("000AAE91", 7000), ("000AAE92", 7001), ("FFFFFB2E", -12)):
        m = regs(22, {0x14: raw})  # 0.01 W steps round half up to whole W
        assert decode(model("abb_b23"), [reps[0], ((3, 0x5B00, 22), m)])[1] == watts, raw


def test_em340_int32_low_word_first():
    d = regs(54, {0: "08FE0000 09060000 08F70000", 0x0C: "29040000 00000000 3F7A0000",
                  0x28: "11700001", 0x34: "E2400001"})
    wh, w, v, a = decode(model("em340"), [((4, 0, 54), d)])
    assert wh == 12345600 and w == 7000  # 123456 x 0.1 kWh; 70000 x 0.1 W
    assert close(v, (230.2, 231.0, 229.5)) and close(a, (10.5, 0.0, 16.25))


def test_wm3m4_t5_t6_and_the_energy_counter():
    m = regs(35, {0: "FD01E240 000000E7 FE0059A6", 126 - 107: "FD002904 00000000 FE000659",
                  140 - 107: "00FFE4A8"})
    e = regs(6, {0: "0000", 4: "0012D687"})
    reps = [((4, 107, 35), m), ((4, 414, 6), e)]
    wh, w, v, a = decode(model("wm3m4"), reps)
    assert wh == 1234567 and w == -7000  # T6: 24-bit two's complement
    assert close(v, (123.456, 231.0, 229.5)) and close(a, (10.5, 0.0, 16.25))
    for exp, want in (("0001", 12345670), ("FFFF", 123457), ("FFFE", 12346)):
        e = regs(6, {0: exp, 4: "0012D687"})  # counter x 10^exponent Wh, rounded half up
        assert decode(model("wm3m4"), [reps[0], ((4, 414, 6), e)])[0] == want, exp
        assert step(model("wm3m4"), [reps[0], ((4, 414, 6), e)], want) == (
            10 if exp == "0001" else 1)


def test_not_available_markers_decode_as_none():
    nan = regs(74, {0: "7FC00000", 0x34: "7F800000", 0x48: "7FC00000"})
    wh, w, v, a = decode(model("sdm630"), [((4, 0, 74), nan)])
    assert wh is None and w is None and v[0] is None and near(v[1], 0)
    e = [((3, 0x5000, 4), H("FFFFFFFFFFFFFFFF"))]
    for p, want in (("7FFFFFFF", None), ("80000000", None), ("80000001", -21474836)):
        r = decode(model("abb_b23"), e + [((3, 0x5B00, 22), regs(22, {0x14: p, 0: "FFFFFFFF"}))])
        assert r[0] is None and r[1] == want and r[2][0] is None, p
    r = decode(model("em340"), [((4, 0, 54), regs(54, {0x28: "FFFF7FFF", 0x34: "00008000"}))])
    assert r[:2] == (None, None)
    m = [((4, 107, 35), regs(35, {}))]
    wm = model("wm3m4")
    assert decode(wm, m + [((4, 414, 6), regs(6, {0: "8000", 4: "00000001"}))])[0] is None
    assert decode(wm, m + [((4, 414, 6), regs(6, {4: "FFFFFFFF"}))])[0] is None


def test_custom_maps_decode_like_the_builtin_ones():
    cfg = {"energy": {"addr": 0x5000, "type": "u64", "scale": 0.01, "words": "hi", "fc": 3},
           "power": {"addr": 0x5B14, "type": "s32", "scale": 0.01, "words": "hi", "fc": 3},
           "voltage_l2": {"addr": 0x5B02, "type": "u32", "scale": 0.1, "words": "hi", "fc": 3}}
    m = custom(cfg)
    assert plan(m) == [(3, 0x5000, 4), (3, 0x5B02, 20)]
    assert plan(m, False) == [(3, 0x5000, 4), (3, 0x5B02, 2), (3, 0x5B14, 2)]
    e = ((3, 0x5000, 4), H("0000010000000001"))
    r = decode(m, [e, ((3, 0x5B02, 20), regs(20, {0: "00000906", 0x12: "000AAE60"}))])
    assert r[:2] == (10995116277770, 7000) and close(r[2], (None, 231.0, None)) and r[3] is None
    assert step(m, [e], r[0]) == 10
    cfg = {"energy": {"addr": 10, "type": "u16", "scale": 2.5, "words": "hi", "fc": 4},
           "power": {"addr": 20, "type": "f64", "scale": 1000, "words": "lo", "fc": 4},
           "current_l1": {"addr": 12, "type": "s16", "scale": 1, "words": "hi", "fc": 4}}
    m = custom(cfg)
    assert plan(m) == [(4, 10, 14)]
    d = regs(14, {0: "0003", 2: "FFF6", 10: "0000 0000 0000 3FF8"})  # f64 1.5, words reversed
    r = decode(m, [((4, 10, 14), d)])
    assert r[:2] == (7500, 1500) and close(r[3], (-10, None, None)) and r[2] is None
    assert step(m, [], 7500) == 2500


def test_steps_of_the_builtin_energy_registers():
    assert step(model("sdm630"), [], 1234500) == 1 and step(model("sdm630"), [], 1 << 30) == 128
    assert step(model("abb_b23"), [], 0) == 10 and step(model("em340"), [], 0) == 100


def test_a_missing_reply_names_the_register():
    raises_naming(ValueError, "no reply holds register 72 (fc 4)", decode, model("sdm72d"),
                  [((4, 0x34, 2), H("45DAC000"))])


def test_floats_decode_exactly_from_their_bits_rounded_half_up():
    # 4291.8447265625 kWh: exact Wh even where a float is single precision (ESP32, RP2)
    reps = [((4, 0x34, 22), regs(22, {0: "40200000", 0x48 - 0x34: "45861EC2"}))]
    # 2.5 W rounds half up, as integers do
    assert decode(model("sdm72d"), reps)[:2] == (4291845, 3)
    big = regs(22, {0: "C0200000", 0x48 - 0x34: "4B3FFFFF"})  # 12582911 kWh, -2.5 W
    assert decode(model("sdm72d"), [((4, 0x34, 22), big)])[:2] == (12582911000, -2)
    cfg = {"energy": {"addr": 0, "type": "f64"}, "power": {"addr": 4, "type": "f64"}}
    d = H("3F40624DD2F1A9FC 0000000000000001")  # 0.0005 kWh is a hair above it; 5e-324 W
    assert decode(custom(cfg), [((4, 0, 8), d)])[:2] == (1, 0)
    d = H("7FF0000000000000 FFF8000000000000")  # infinite, NaN
    assert decode(custom(cfg), [((4, 0, 8), d)])[:2] == (None, None)


def test_iskra_not_available_markers():
    m = regs(35, {0: "FFFFFFFF", 126 - 107: "FFFFFFFF", 140 - 107: "7FFFFFFF"})
    reps = [((4, 107, 35), m), ((4, 414, 6), regs(6, {4: "00000001"}))]
    wh, w, v, a = decode(model("wm3m4"), reps)
    assert wh == 1 and w is None and v[0] is None and a[0] is None
    m = regs(35, {140 - 107: "FFFFFFFF"})  # T6 all ones is -0.1 W, a value
    assert decode(model("wm3m4"), [((4, 107, 35), m), reps[1]])[1] == 0


def test_volts_and_amps_are_always_floats():
    cfg = {"energy": {"addr": 0, "type": "u16"}, "power": {"addr": 1, "type": "u16"},
           "voltage_l1": {"addr": 2, "type": "u16", "scale": 10},
           "current_l1": {"addr": 3, "type": "s16"}}
    r = decode(custom(cfg), [((4, 0, 4), H("0001 0002 0017 FFF6"))])
    assert r[:2] == (1000, 2) and r[2][0] == 230 and r[3][0] == -10
    assert type(r[2][0]) is float and type(r[3][0]) is float
    wh, w, v, a = decode(model("wm3m4"), [((4, 107, 35), regs(35, {0: "020000E7"})),
                                   ((4, 414, 6), regs(6, {}))])
    assert v[0] == 23100 and type(v[0]) is float and type(a[0]) is float


def test_custom_scales_are_integer_ratios_exact_beyond_a_float():
    cfg = {"energy": {"addr": 0, "type": "u64", "scale": 2.5},
           "power": {"addr": 4, "type": "s32", "scale": 0.4}}
    m = custom(cfg)
    d = H("1000000000000001 FFFFFFF9")  # 2**60 + 1 counts of 2.5 kWh; -7 x 0.4 W
    assert decode(m, [((4, 0, 6), d)])[:2] == ((2 ** 60 + 1) * 2500, -3)
    assert step(m, [], 0) == 2500
    cfg["energy"]["scale"] = 0.125
    assert step(custom(cfg), [], 0) == 125
    cfg["power"]["scale"] = 1e-20
    raises_naming(ValueError, "meter.map.power.scale", custom, cfg)


def test_config_offers_exactly_the_models_there_are_maps_for():
    from cpagent.config import _SCHEMA

    assert set(_SCHEMA["meter"][2]["model"][2]) == set(NAMES) | {"custom", "none"}
    raises_naming(ValueError, "meter.model: no register map named 'sdm999'", model, "sdm999")
