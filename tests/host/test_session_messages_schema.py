"""Every message a whole session journals, through the real charger core, meets the schemas."""
import test_power_cut as world
from test_session import charging

from cpagent.session import Session
from host_sim.oicp_schemas import validator


def _schema_for(path, body):
    if "charge-detail-record" in path:
        return "ChargeDetailRecord"
    if path.endswith("/authorize/start"):
        return "AuthorizeStart"
    return "ChargingNotification" + body["Type"]


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
            validator(_schema_for(e[2], e[3])).validate(e[3])
    s2, _t2, _ = charging()
    s2.plug(False)
    fresh = Session("DE*ABC", "DE*ABC*E0001", s2.clock)
    eff = fresh.tap("04A1B2C3D4E5F6")
    validator("AuthorizeStart").validate(eff[0][2])
