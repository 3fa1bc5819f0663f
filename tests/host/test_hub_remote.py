"""The mock hub as Hubject: it calls a CPO endpoint (a stand-in written here) with remote
start/stop, from Python and over HTTP; it refuses overlapping pushes of one operator and, when
asked, keeps Hubject's per-operation rate limits with 429."""
import json
import threading

from hubapi import EVSE, OP, UID, StandIn, get_json, post

from cpagent.oicp import build as oicp
from host_sim.hub import Cpo, HubThread


def control(url, body):
    status, _, out = post(url, "/api/remote", json.dumps(body).encode())
    return status, json.loads(out)


def test_remote_start_and_stop_over_the_control_api_open_and_stop_the_session():
    cpo = StandIn()
    try:
        with HubThread(cpo=Cpo(cpo.url)) as hub:
            status, rec = control(hub.url, {"op": "start", "evse_id": EVSE,
                                            "evco_id": "DE-EMP-C12345678-X"})
            assert status == 200 and rec["code"] == "000" and rec["status"] == 200
            sid = rec["session_id"]
            path, body = cpo.got[0]
            assert path == "/api/oicp/charging/v21/providers/DE-EMP/authorize-remote/start"
            assert body == {"SessionID": sid, "ProviderID": "DE-EMP", "EvseID": EVSE,
                            "Identification": {"RemoteIdentification": {
                                "EvcoID": "DE-EMP-C12345678-X"}}}
            (s,) = hub.call(hub.hub.sessions)   # open before the CPO's notifications come
            assert s["SessionID"] == sid and s["OperatorID"] == OP and s["EvseID"] == EVSE
            status, rec = control(hub.url, {"op": "stop", "evse_id": EVSE})  # its session
            assert status == 200 and rec["code"] == "000" and cpo.got[1][1]["SessionID"] == sid
            assert cpo.got[1][0].endswith("/authorize-remote/stop")
            assert hub.call(hub.hub.sessions)[0]["stopped"] is True
            status, out = control(hub.url, {"op": "pause", "evse_id": EVSE})
            assert status == 400 and "op: expected start or stop" in out["message"]
            status, out = control(hub.url, {"op": "start", "evse_id": EVSE})
            assert status == 400 and "evco_id: required" in out["message"]
            assert len(cpo.got) == 2
            calls = get_json(hub.url, "/api/remote")
            assert [(c["op"], c["code"]) for c in calls] == [("AuthorizeRemoteStart", "000"),
                                                             ("AuthorizeRemoteStop", "000")]
    finally:
        cpo.close()


def test_a_start_the_cpo_refuses_leaves_no_session_and_no_cpo_is_409():
    cpo = StandIn("602")
    try:
        with HubThread(cpo=Cpo(cpo.url)) as hub:
            rec = hub.call(hub.hub.remote, "start", EVSE, evco_id="DE-EMP-C12345678-X")
            assert rec["code"] == "602" and hub.call(hub.hub.sessions) == []
        with HubThread() as hub:
            status, out = control(hub.url, {"op": "start", "evse_id": EVSE})
            assert status == 409 and "no CPO endpoint" in out["message"]
    finally:
        cpo.close()


def test_an_overlapping_status_push_of_one_operator_is_009_and_counted():
    with HubThread() as hub:
        hub.call(hub.hub.add_fault, "latency", seconds=0.5, match="PushEvseStatus")
        path, body = oicp.push_evse_status(OP, [(EVSE, "Available")])
        data = json.dumps(body).encode()
        got = []
        first = threading.Thread(target=lambda: got.append(post(hub.url, path, data)))
        first.start()
        while not hub.call(lambda: hub.hub._pushing):
            pass
        second = post(hub.url, path, data)  # while the first is being handled
        first.join(5)
        assert json.loads(got[0][2])["StatusCode"]["Code"] == "000"
        out = json.loads(second[2])
        assert second[0] == 200 and out["StatusCode"]["Code"] == "009"
        assert "never run in parallel" in out["StatusCode"]["AdditionalInfo"]
        assert hub.call(hub.hub.stats)["overlaps"] == {"PushEvseStatus": 1}
        third = post(hub.url, path, data)   # after it: fine
        assert json.loads(third[2])["StatusCode"]["Code"] == "000"


def test_rate_limits_answer_429_with_retry_after_past_the_limit():
    with HubThread(cards=[UID], rate_limits={"AuthorizeStart": 3}) as hub:
        path, body = oicp.authorize_start(OP, UID, evse_id=EVSE)
        data = json.dumps(body).encode()
        answers = [post(hub.url, path, data) for _ in range(4)]
        assert [a[0] for a in answers] == [200, 200, 200, 429]
        assert 1 <= int(answers[3][1]["Retry-After"]) <= 60
        assert hub.call(hub.hub.stats)["rate_limited"] == {"AuthorizeStart": 1}
        # other operations keep their own budget; no limit set: none kept
        path, body = oicp.push_evse_status(OP, [(EVSE, "Available")])
        assert post(hub.url, path, json.dumps(body).encode())[0] == 200
    with HubThread(cards=[UID]) as hub:   # off by default
        path, body = oicp.authorize_start(OP, UID, evse_id=EVSE)
        assert [post(hub.url, path, json.dumps(body).encode())[0] for _ in range(5)] == [200] * 5
