"""The relay pushes its fleet's EVSE master data from its config (PushEvseData v2.3): a full load
at start that the mock hub's schema checks accept, updates and deletes on a reload; a bad record
is a config error naming the field, before anything is sent."""
import copy

import pytest
from oicpdocs import EVSE_DATA
from relaydoc import HUB_CN, OP, USERS, relay_doc, until

from host_sim import certs
from host_sim.broker import Broker
from host_sim.hub import HubThread
from host_sim.relay import Relay
from host_sim.relay.config import Config, ConfigError

E1, E2 = "DE*ABC*E0001*1", "DE*ABC*E0001*2"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return certs.make_test_pki(str(tmp_path_factory.mktemp("pki")), (OP, HUB_CN))


def record(evse, **change):
    r = copy.deepcopy(EVSE_DATA["OperatorEvseData"]["EvseDataRecord"][0])
    r["EvseID"] = evse
    r.update(change)
    return r


def doc_with(pki, hub, broker, records):
    d = relay_doc(pki, hub, broker)
    d["chargers"]["cp-1"]["evses"] = [E1, E2]
    d["evse_data"] = {"operators": {OP: {"name": "ABC Charging", "records": records}}}
    return d


def data_pushes(hub):
    return [e for e in hub.call(lambda: hub.hub.exchanges) if e["operation"] == "PushEvseData"]


def test_full_load_at_start_then_updates_and_deletes_on_reload(pki, tmp_path):
    with HubThread(tls=pki["dir"]) as hub, Broker(tmp_path / "mq", USERS) as broker:
        relay = Relay(Config(doc_with(pki, hub, broker, [record(E1), record(E2)]))).start()
        try:
            until(lambda: data_pushes(hub), "the full load")
            (first,) = data_pushes(hub)
            assert first["request"]["ActionType"] == "fullLoad" and first["code"] == "000"
            assert first["cn"] == OP
            assert sorted(k[1] for k in hub.call(lambda: hub.hub.rules.evse_data)) == [E1, E2]
            changed = Config(doc_with(pki, hub, broker, [record(E1, MaxCapacity=8)]))
            assert relay.reload(changed) == 2
            until(lambda: len(data_pushes(hub)) == 3, "an update and a delete")
            upd, dele = data_pushes(hub)[1:]
            assert upd["request"]["ActionType"] == "update" and upd["code"] == "000"
            assert [r["EvseID"] for r in upd["request"]["OperatorEvseData"]["EvseDataRecord"]] \
                == [E1]
            assert dele["request"]["ActionType"] == "delete" and dele["code"] == "000"
            data = hub.call(lambda: hub.hub.rules.evse_data)
            assert list(data) == [(OP, E1)] and data[(OP, E1)]["MaxCapacity"] == 8
            assert relay.reload(changed) == 0        # nothing changed: nothing sent
            assert hub.call(hub.hub.stats)["overlaps"] == {}
        finally:
            relay.stop()


@pytest.mark.parametrize("change, named", [
    ({"Address": {"City": "Berlin", "Country": "DE"}},
     "evse_data.operators.DE*ABC.records[0].Address"),
    ({"Plugs": ["Type 9"]}, "evse_data.operators.DE*ABC.records[0].Plugs[0]"),
    ({"EvseID": "DE*ABC*E0009"}, "evse_data.operators.DE*ABC.records[0].EvseID: DE*ABC*E0009 "
                                 "is not an EVSE"),
])
def test_a_bad_record_is_a_config_error_naming_the_field_and_nothing_is_sent(
        pki, tmp_path, change, named):
    with HubThread(tls=pki["dir"]) as hub, Broker(tmp_path / "mq", USERS) as broker:
        with pytest.raises(ConfigError) as e:
            Config(doc_with(pki, hub, broker, [record(E1, **change)]))
        assert named in str(e.value)
        assert hub.call(lambda: hub.hub.exchanges) == []


def test_a_full_load_the_hub_did_not_take_is_sent_again(pki, tmp_path):
    with HubThread(tls=pki["dir"]) as hub, Broker(tmp_path / "mq", USERS) as broker:
        hub.call(hub.hub.add_fault, "5xx", match="PushEvseData")   # the first one: a 503
        relay = Relay(Config(doc_with(pki, hub, broker, [record(E1)]))).start()
        try:
            until(lambda: len(data_pushes(hub)) == 2, "the full load again")
            first, again = data_pushes(hub)
            assert first["status"] == 503 and again["code"] == "000"
            assert again["request"] == first["request"]
            assert list(hub.call(lambda: hub.hub.rules.evse_data)) == [(OP, E1)]
        finally:
            relay.stop()
