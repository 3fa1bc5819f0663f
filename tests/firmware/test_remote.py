"""The relay's remote-command envelope: fields checked by name, the answer's exact bytes."""
from check import raises_naming
from cpagent.oicp import remote

EVCO = "DE-8EO-CAB123456-7"
SID = "0ac1f1b2-1111-2222-3333-444455556666"
START = {"v": 1, "cmd": "remote_start", "cid": "c-1", "deadline": 1795320030,
         "session_id": SID, "evse_id": "DE*ABC*E0001", "evco_id": EVCO,
         "provider_id": "DE-8EO", "cpo_session_id": None, "product_id": "AC_11"}


def test_a_start_and_a_stop_parse_to_their_fields():
    assert remote.parse(START) == {
        "cmd": "remote_start", "deadline": 1795320030, "session_id": SID,
        "evse_id": "DE*ABC*E0001", "provider_id": "DE-8EO", "evco_id": EVCO,
        "cpo_session_id": None, "product_id": "AC_11"}
    stop = {"v": 1, "cmd": "remote_stop", "cid": "c-2", "deadline": 5, "session_id": SID,
            "evse_id": "DE*ABC*E0001", "provider_id": "DE-8EO"}
    assert remote.parse(stop) == {"cmd": "remote_stop", "deadline": 5, "session_id": SID,
                                  "evse_id": "DE*ABC*E0001", "provider_id": "DE-8EO"}


def test_bad_fields_are_named():
    for key, value, name in (("cmd", "reboot", "cmd"), ("deadline", "soon", "deadline"),
                             ("deadline", True, "deadline"), ("session_id", "x", "session_id"),
                             ("evse_id", "DE*ABC", "evse_id"), ("evco_id", None, "evco_id"),
                             ("provider_id", "DE", "provider_id"),
                             ("cpo_session_id", "", "cpo_session_id"),
                             ("product_id", "x" * 51, "product_id")):
        env = dict(START)
        env[key] = value
        raises_naming(ValueError, name, remote.parse, env)


def test_the_command_id_and_the_answer():
    assert remote.cid(START) == "c-1"
    assert remote.cid({"cid": ""}) is None and remote.cid({"cid": 7}) is None
    assert remote.cid({"cid": "x" * 65}) is None and remote.cid({}) is None
    assert remote.reply("c-1", "000", "started") == \
        b'{"v":1,"reply":"c-1","code":"000","info":"started"}'
    assert len(remote.reply("c-1", "501", "y" * 200)) == len(b'{"v":1,"reply":"c-1","code":'
                                                             b'"501","info":""}') + 80
