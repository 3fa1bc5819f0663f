"""MQTT 3.1.1 codec: frames computed by hand from the spec, the stream parser and its limits."""
from check import raises_naming
from cpagent.uplink import mqtt_codec as mqtt
from cpagent.uplink.mqtt_codec import CONNACK, PINGRESP, PUBACK, PUBLISH, SUBACK, MqttError, Parser


def parse(data, step=None):
    """Every packet in `data`, fed `step` bytes at a time (None: all at once)."""
    p = Parser()
    out = []
    step = step or len(data)
    for i in range(0, len(data), step):
        p.feed(data[i:i + step])
        while True:
            k = p.next()
            if k is None:
                break
            out.append(k)
    return out


def test_remaining_length_varint_spec_table():
    # MQTT 3.1.1 table 2.4: the edges of 1, 2, 3 and 4 bytes.
    for n, enc in ((0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
                   (16384, b"\x80\x80\x01"), (2097151, b"\xff\xff\x7f"),
                   (2097152, b"\x80\x80\x80\x01"), (268435455, b"\xff\xff\xff\x7f"),
                   (321, b"\xc1\x02")):
        assert bytes(mqtt.vbi(n)) == enc, n
    raises_naming(MqttError, "remaining length", mqtt.vbi, 268435456)
    raises_naming(MqttError, "remaining length", mqtt.vbi, -1)


def test_connect_with_will_user_password_and_persistent_session():
    frame = mqtt.connect("cp-1", 60, "cp-1", "pw", ("cp/cp-1/status", b"offline"))
    # flags 0xEC: user 0x80, password 0x40, will retain 0x20, will QoS 1 0x08, will 0x04,
    # clean session 0; remaining length 10 (variable header) + 6 + 16 + 9 + 6 + 4 = 51.
    assert bytes(frame) == (b"\x10\x33\x00\x04MQTT\x04\xec\x00\x3c" + b"\x00\x04cp-1"
                            + b"\x00\x0ecp/cp-1/status" + b"\x00\x07offline"
                            + b"\x00\x04cp-1" + b"\x00\x02pw")


def test_connect_minimal_clean_and_password_only_with_a_user():
    assert bytes(mqtt.connect("a", 0, clean=True)) == b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00" \
                                                      b"\x00\x01a"
    # MQTT-3.1.2-22: no password flag without a user name
    assert bytes(mqtt.connect("a", 300, None, "pw")) == b"\x10\x0d\x00\x04MQTT\x04\x00\x01\x2c" \
                                                        b"\x00\x01a"


def test_publish_subscribe_puback_ping_disconnect_frames():
    # QoS 1 (0x02) + DUP (0x08) + RETAIN (0x01): 0x3B; topic, packet id 10, payload
    assert bytes(mqtt.publish("a/b", b"hi", 1, 10, True, True)) == \
        b"\x3b\x09\x00\x03a/b\x00\x0ahi"
    assert bytes(mqtt.publish("t", b"")) == b"\x30\x03\x00\x01t"  # QoS 0: no packet id
    big = mqtt.publish("t", bytes(200), 1, 1)
    assert bytes(big[:7]) == b"\x32\xcd\x01\x00\x01t\x00" and len(big) == 3 + 205
    assert bytes(mqtt.subscribe(1, "cp/x/down")) == b"\x82\x0e\x00\x01\x00\x09cp/x/down\x01"
    assert mqtt.puback(0x1234) == b"\x40\x02\x12\x34"
    assert mqtt.PINGREQ == b"\xc0\x00" and mqtt.DISCONNECT == b"\xe0\x00"


def test_publish_payload_cap_names_the_size():
    e = raises_naming(MqttError, "PUBLISH payload", mqtt.publish, "t", bytes(8193), 1, 1)
    assert "8193 bytes, at most 8192" in str(e)
    assert len(mqtt.publish("t", bytes(8192), 1, 1)) == 8192 + 8  # the cap itself goes


def test_packet_ids_wrap_to_one_never_zero():
    assert mqtt.next_pid(0) == 1 and mqtt.next_pid(1) == 2
    assert mqtt.next_pid(65534) == 65535 and mqtt.next_pid(65535) == 1


def test_parser_reads_broker_packets_whole_or_byte_by_byte():
    data = (b"\x20\x02\x01\x00" + b"\x90\x03\x00\x01\x01" + b"\x40\x02\xff\xff" + b"\xd0\x00"
            + b"\x33\x0c\x00\x06cp/x/d\x00\x07{}" + b"\x30\x04\x00\x01tz")
    want = [(CONNACK, 1, 0), (SUBACK, 1, 1), (PUBACK, 65535), (PINGRESP,),
            (PUBLISH, b"cp/x/d", b"{}", 1, 7, 1), (PUBLISH, b"t", b"z", 0, 0, 0)]
    for step in (None, 1, 3):
        got = parse(data, step)
        assert [tuple(bytes(x) if isinstance(x, (bytes, bytearray)) else x for x in k)
                for k in got] == want, step


def test_parser_names_suback_failure_and_connack_codes():
    assert parse(b"\x90\x03\x12\x34\x80") == [(SUBACK, 0x1234, 0x80)]
    assert parse(b"\x20\x02\x00\x05") == [(CONNACK, 0, 5)]
    assert mqtt.REFUSED[4] == "bad user name or password" and mqtt.REFUSED[5] == "not authorized"


def test_parser_keeps_an_incomplete_packet_and_a_big_one_that_fits():
    p = Parser()
    p.feed(b"\x30\x82")
    assert p.next() is None
    p.feed(b"\x01")  # remaining length 130
    assert p.next() is None
    p.feed(b"\x00\x01t" + bytes(127))
    k = p.next()
    assert k[0] == PUBLISH and len(k[2]) == 127 and p.next() is None
    assert p.room() == 8448  # all consumed
    payload = bytes(8192)
    frame = bytes(mqtt.publish("cp/charger-with-a-long-name-32ch/down", payload, 1, 9))
    assert parse(frame, 1000)[0][2] == payload


def test_parser_errors_name_what_was_wrong():
    for data, words in (
            (b"\x30\xff\xff\xff\xff\x01", "remaining length: more than 4 bytes"),
            (b"\x30\x80\x80\x80\x01", "packet type 3: 2097152 bytes, over"),
            (b"\x34\x05\x00\x01t\x00\x01", "PUBLISH: expected QoS 0/1"),  # QoS 2
            (b"\x36\x05\x00\x01t\x00\x01", "PUBLISH: expected QoS 0/1"),  # QoS 3
            (b"\x32\x05\x00\x01t\x00\x00", "id 1..65535"),  # id 0
            (b"\x32\x04\x00\x01t\x00", "PUBLISH"),  # id cut short
            (b"\x30\x03\x00\x09t", "PUBLISH"),  # topic longer than the packet
            (b"\x30\x01\x00", "PUBLISH"),
            (b"\x50\x02\x00\x01", "packet type 5"),  # PUBREC: we never send QoS 2
            (b"\x10\x00", "packet type 1"),  # CONNECT from a broker
            (b"\x20\x03\x00\x00\x00", "packet type 2"),  # CONNACK of 3 bytes
            (b"\x41\x02\x00\x01", "flags 1"),  # PUBACK with reserved flags set
            (b"\xd0\x01\x00", "packet type 13")):
        raises_naming(MqttError, words, parse, data)


def test_feeding_more_than_the_room_is_refused():
    p = Parser()
    p.feed(bytes(8000))
    raises_naming(MqttError, "parser: room for 448 bytes", p.feed, bytes(449))
    p.reset()
    assert p.room() == 8448
