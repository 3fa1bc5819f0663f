"""Modbus RTU codec: the CRC and frame vectors of the hardware research, reply scan and resync."""
from check import raises, raises_naming
from cpagent.drivers.modbus import ModbusError, crc16, request, scan

H = bytes.fromhex


def test_crc_check_value_and_frame_vectors():
    assert crc16(b"123456789") == 0x4B37
    assert crc16(b"") == 0xFFFF
    assert crc16(H("010400000002")) == 0xCB71  # sent low byte first: 71 CB
    assert crc16(H("01040000000271CB")) == 0  # a frame with its CRC appended checks to zero
    assert crc16(H("010404436633341B38")) == 0
    assert crc16(H("010404436633341B39")) != 0


def test_requests_are_the_literal_frames():
    assert request(1, 4, 0, 2) == H("01040000000271CB")
    assert request(1, 4, 0x48, 2) == H("010400480002F1DD")
    assert request(1, 4, 0x0C, 2) == H("0104000C0002B1C8")
    assert request(1, 3, 0, 2) == H("010300000002C40B")
    assert request(33, 4, 105, 8) == H("21040069000826B0")


def test_bad_requests_name_the_field():
    raises_naming(ValueError, "modbus fc: expected 3 or 4", request, 1, 6, 0, 2)
    raises_naming(ValueError, "modbus unit: expected 1..247, got 0", request, 0, 4, 0, 2)
    raises_naming(ValueError, "modbus unit", request, 248, 4, 0, 2)
    raises_naming(ValueError, "modbus registers: expected 1..125", request, 1, 4, 0, 126)
    raises_naming(ValueError, "modbus registers", request, 1, 4, 0, 0)
    raises_naming(ValueError, "modbus registers", request, 1, 4, 65535, 2)
    assert request(1, 4, 65534, 2)[2:6] == H("FFFE0002")


def test_scan_finds_a_reply_and_waits_for_a_partial_one():
    r = H("010404436633341B38")  # 230.2 V from an SDM630
    assert scan(r, len(r), 1, 4, 2) == 0
    for n in range(len(r)):
        assert scan(r, n, 1, 4, 2) == -1
    assert scan(bytearray(r), len(r), 1, 4, 1) == -1  # another length: not our reply
    assert scan(r, len(r), 2, 4, 2) == -1  # another unit's reply
    assert scan(r, len(r), 1, 3, 2) == -1  # another function


def test_scan_resyncs_past_noise_echoes_and_bad_crcs():
    good = H("010404436633341B38")
    echo = H("01040000000271CB")  # a local echo of the request looks like no reply
    bad = H("010404436633351B38")  # one data bit flipped
    other = H("020404436633340000")  # unit 2 (CRC not even checked)
    for noise in (b"\x00", b"\xff\x01\x04", echo, bad, other, b"\x01\x04\x04" + bad):
        buf = noise + good
        assert scan(buf, len(buf), 1, 4, 2) == len(noise), noise
    assert scan(bad, len(bad), 1, 4, 2) == -1  # never a frame whose CRC fails


def test_exception_replies_raise_with_code_and_name():
    e = raises(ModbusError, scan, H("018402C2C1"), 5, 1, 4, 2, 0x48)
    assert e.code == 2
    assert "modbus unit 1 fc 4 addr 72: exception 02 illegal data address" == str(e)
    e = raises(ModbusError, scan, b"\x55" + H("018302C0F1"), 6, 1, 3, 2)
    assert e.code == 2 and "fc 3" in str(e)
    assert scan(H("018402C2C0"), 5, 1, 4, 2) == -1  # bad CRC: ignored
    names = {1: "illegal function", 3: "illegal data value", 4: "server device failure",
             5: "acknowledge", 6: "server device busy", 8: "memory parity error",
             10: "gateway path unavailable", 11: "gateway target failed to respond",
             0x42: "unknown", 0: "unknown", 7: "unknown", 9: "unknown", 12: "unknown"}
    for code in names:
        f = bytearray((1, 0x84, code, 0, 0))
        c = crc16(f[:3])
        f[3], f[4] = c & 255, c >> 8
        e = raises(ModbusError, scan, f, 5, 1, 4, 2)
        assert e.code == code and str(e).endswith("%02X %s" % (code, names[code])), str(e)
    assert isinstance(e, ValueError)
