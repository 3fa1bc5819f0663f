"""One charger core on a FaultFs flash for the tests: config, cards, the rebootable Box."""
import json

from faultfs import FaultFs

from cpagent.charger import Charger
from cpagent.clock import Clock
from cpagent.journal import Journal
from cpagent.oicp.build import encode
from cpagent.oicp.replies import parse_authorization

T0 = 1795320000
CFG = {
    "charger_id": "cp-1",
    "operator_id": "DE*ABC",
    "evses": [{"evse_id": "DE*ABC*E0001*1"}, {"evse_id": "DE*ABC*E0001*2"}],
    "timing": {"progress_s": 300, "ev_wait_s": 600, "authorize_timeout_s": 15,
               "start_power_w": 100, "stop_power_w": 50, "stop_hold_s": 120},
    "journal": {"save_wh": 1000},
}
A = "04A1B2C3D4E5F6"
B = "A1B2C3D4"


class Box:
    """One charger on a FaultFs flash, rebootable, with a clock the test moves."""

    def __init__(self, known=True, max_messages=200, fs=None, cfg=CFG):
        self.now = 0
        self.fs = fs or FaultFs()
        self.journal = Journal(self.fs, "/j", max_messages).load()
        self.clock = Clock(lambda: self.now, lambda a, b: a - b, self.journal.boot)
        if known:
            self.clock.set_unix(T0)
        self.ch = Charger(cfg, self.journal, self.clock)
        self.ch.boot([None, None])
        self.n = 0
        self.statuses = []

    def authorize_all(self):
        for i, _p, _b in self.ch.authorizations():
            self.n += 1
            self.ch.authorized(i, parse_authorization(
                '{"AuthorizationStatus":"Authorized","SessionID":"%08x-0000-0000-0000-'
                '000000000000","StatusCode":{"Code":"000"}}' % self.n))

    def sent(self):
        """The session messages delivered now, in order; the statuses go to self.statuses."""
        out = []
        while True:
            m = self.ch.next_message()
            if m is None:
                return out
            body = json.loads(encode(m[2]))  # what an uplink sends: kWh as JSON numbers
            (self.statuses if "ActionType" in m[2] else out).append(body)
            self.ch.delivered(m[0])

    def settle(self):
        """Deliver the waiting Status messages only (tests of the session messages' order)."""
        hold = []
        while True:
            m = self.ch.next_message(hold)
            if m is None:
                return
            if "ActionType" in m[2]:
                self.statuses.append(m[2])
                self.ch.delivered(m[0])
            else:
                hold.append(m[3])

    def pending(self):
        return [m for m in self.journal.pending() if m[1] != "Status"]
