"""Every message a whole session journals, through the real charger core, meets the schemas."""
import json

import world
from sessionrig import TIMING, charging, make

from cpagent.oicp import build as oicp
from cpagent.session import Session
from host_sim.oicp_schemas import validator


def _schema_for(path, body):
    if "charge-detail-record" in path:
        return "ChargeDetailRecord"
    if path.endswith("/authorize/start"):
        return "AuthorizeStart"
    return "ChargingNotification" + body["Type"]


def _wire(body):
    return json.loads(oicp.encode(body))  # what an uplink sends: the kWh texts as numbers


def test_messages_of_a_full_session_validate():
    w = world.run()
    names = []
    for body in w.hub.seen.values():
        path = "charge-detail-record" if "Type" not in body else "notification"
        name = _schema_for(path, body)
        validator(name).validate(body)
        if name != "ChargeDetailRecord":
            validator("ChargingNotification").validate(body)  # what the hub's endpoint takes
        names.append(name)
    assert sorted(set(names)) == ["ChargeDetailRecord", "ChargingNotificationEnd",
                                  "ChargingNotificationProgress", "ChargingNotificationStart"]


def test_error_path_and_authorize_start_validate():
    s, _t, _ = charging()
    for e in s.fault(False, "meter stopped answering"):
        if e[0] == "journal":
            validator(_schema_for(e[2], e[3])).validate(_wire(e[3]))
    s2, _t2, _ = charging()
    s2.plug(False)
    fresh = Session("DE*ABC", "DE*ABC*E0001", s2.clock, TIMING)
    eff = fresh.tap("04A1B2C3D4E5F6")
    validator("AuthorizeStart").validate(_wire(eff[0][2]))


def test_a_remote_session_and_the_status_and_authorize_stop_validate():
    # RemoteIdentification (the EvcoID) in every message of a remote start, the EVSE status
    # push and a card's AuthorizeStop: each meets the hub's schema.
    w = world.run(world=world.RemoteWorld)
    names = []
    for body in w.hub.seen.values():
        assert body["Identification"] == {"RemoteIdentification": {"EvcoID": world.EVCO}}
        name = _schema_for("charge-detail-record" if "Type" not in body else "n", body)
        validator(name).validate(body)
        names.append(name)
    assert "ChargeDetailRecord" in names and "ChargingNotificationStart" in names
    s, t = make()
    s.remote_start(world.HSID, world.EVCO, "DE-8EO")
    t.t += 600000
    for e in s.tick():  # the EV never came: Error and a 0 kWh CDR
        if e[0] == "journal":
            validator(_schema_for(e[2], e[3])).validate(_wire(e[3]))
    ch, _t, _ = charging()
    eff = ch.tap("DEADBEEF")
    validator("AuthorizeStop").validate(eff[0][2])
    p, b = oicp.push_evse_status("DE*ABC", [("DE*ABC*E0001", "Occupied")])
    validator("PushEvseStatus").validate(b)
