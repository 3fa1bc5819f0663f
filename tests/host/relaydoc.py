"""The relay in front of the mock hub as a CPO: its config doc and a bounded wait."""
import time

OP, HUB_CN = "DE*ABC", "HUBJECT"
EVSE, EVCO, PROVIDER = "DE*ABC*E0001*1", "DE-EMP-C12345678-X", "DE-EMP"
USERS = {"cp-1": "pw1", "relay": "rpw"}
BOUND = 3.0  # the relay's command_timeout_s in these tests


def relay_doc(pki, hub, broker, timeout=BOUND):
    cert, key = pki["clients"][OP]
    return {"broker": {"host": broker.host, "port": broker.port, "user": "relay",
                       "password": USERS["relay"], "client_id": "relay-a"},
            "hub": {"url": hub.url, "ca": pki["ca"], "cert": cert, "key": key, "timeout_s": 5},
            "chargers": {"cp-1": {"operator_id": OP, "evses": [EVSE]}},
            "http": {"port": 0},
            "cpo": {"port": 0, "ca": pki["ca"], "cert": pki["server"][0],
                    "key": pki["server"][1], "hub_cn": HUB_CN, "command_timeout_s": timeout}}


def until(cond, what, limit=30.0, lines=()):
    end = time.monotonic() + limit
    while not cond():
        assert time.monotonic() < end, "never happened: %s\n%s" % (what, "\n".join(lines[-30:]))
        time.sleep(0.02)
