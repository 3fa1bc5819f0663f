"""A charger world across power cuts: driver, EV, meter and hub go on, the charger reboots."""
import json

from faultfs import FaultFs, PowerCut

from cpagent.charger import Charger
from cpagent.clock import Clock
from cpagent.journal import Journal
from cpagent.oicp.build import encode
from cpagent.oicp.replies import parse_authorization

UID = "04A1B2C3D4E5F6"
T0 = 1795320000
_STEP = 60000  # the world moves a minute at a time
CFG = {
    "charger_id": "cp-1",
    "operator_id": "DE*ABC",
    "evses": [{"evse_id": "DE*ABC*E0001"}],
    "timing": {"progress_s": 300, "ev_wait_s": 600, "authorize_timeout_s": 15,
               "start_power_w": 100, "stop_power_w": 50, "stop_hold_s": 120},
    "journal": {"save_wh": 1000},
}


class Hub:
    """The receiving side: dedupes by message id, as the relay and the mock hub do. With
    `refuse` a kind, it refuses that kind for good until `fixed`; with `busy` a kind, it
    answers the first of that kind "retry later" (an attempt the journal counts)."""

    def __init__(self, refuse=None, busy=None):
        self.seen = {}  # msg id -> body
        self.order = []  # (SessionID, kind) in arrival order, first copy only
        self.sessions = 0
        self.refuse, self.busy = refuse, busy
        self.fixed = False
        self.refused = {}  # msg id -> body refused
        self.by_cpo = {}  # CPOPartnerSessionID -> SessionID: a re-sent AuthorizeStart is the same
        self.statuses = []  # (msg id, EvseStatus) of each status push: latest wins, not checked

    def authorize(self, body):
        sid = self.by_cpo.get(body["CPOPartnerSessionID"])
        if sid is None:
            self.sessions += 1
            sid = "%08x-0000-0000-0000-000000000000" % self.sessions
            self.by_cpo[body["CPOPartnerSessionID"]] = sid
        return parse_authorization('{"AuthorizationStatus":"Authorized","SessionID":"%s",'
                                   '"StatusCode":{"Code":"000"}}' % sid)

    def judge(self, path, body):
        kind = body.get("Type") or ("CDR" if "charge-detail-record" in path else path)
        if kind == self.busy:
            self.busy = None
            return "retry"
        return "fail" if kind == self.refuse and not self.fixed else "ok"

    def receive(self, msg_id, path, body):
        body = json.loads(encode(body))  # what an uplink sends: kWh as JSON numbers
        if "ActionType" in body:
            self.statuses.append((msg_id, body["OperatorEvseStatus"]["EvseStatusRecord"][0][
                "EvseStatus"], len(json.dumps(body, separators=(",", ":")))))
            return
        if msg_id in self.seen:
            if self.seen[msg_id] != body:
                raise AssertionError("resend of %s changed its body" % msg_id)
            return
        self.seen[msg_id] = body
        kind = body.get("Type") or ("CDR" if "charge-detail-record" in path else path)
        self.order.append((body["SessionID"], kind))


class World:
    """Everything outside the charger: time, the EV and its meter, the driver, the hub."""

    def __init__(self, fs, hub=None):
        self.fs = fs
        self.ms = 0
        self.wh = 100000
        self.hub = hub or Hub()
        self.stopped = False
        self.journaled = []  # ids add() returned: each must reach the hub
        self.boots = 0
        self.charger = None

    def ticks(self):
        return self.ms

    def boot(self):
        self.boots += 1
        journal = Journal(self.fs, "/j")
        add = journal.add

        def recording_add(*a, **kw):
            mid = add(*a, **kw)
            if a[1] != "Status":  # a status may be superseded before it is sent: latest wins
                self.journaled.append(mid)
            return mid

        journal.add = recording_add
        journal.load()
        clock = Clock(self.ticks, lambda a, b: a - b, journal.boot)
        clock.set_unix(T0 + self.ms // 1000)  # NTP at boot (a token test lives elsewhere)
        ch = Charger(CFG, journal, clock)
        ch.boot([self.reading_at_boot()])
        self.charger = ch

    def reading_at_boot(self):
        return self.wh

    def progress_seen(self):
        return sum(1 for _, k in self.hub.order if k == "Progress")

    def step(self):
        ch = self.charger
        s = ch.evses[0]
        charging = s.state == "charging"
        if not self.stopped and s.state == "idle":
            self.start(ch)  # (again, if a cut lost the authorization)
        for i, _path, body in ch.authorizations():
            ch.authorized(i, self.hub.authorize(body))
        for key, _path, body in ch.orphans():  # a cut between the hub's answer and the journal
            ch.resolved(key, "ok", self.hub.authorize(body))
        if charging:
            self.wh += 200
        ch.meter(0, self.wh, 7000 if not self.stopped else 0)
        if s.state == "charging" and self.progress_seen() >= 3:
            self.stopped = True  # the driver has decided, even if the power fails mid-stop
            self.stop(ch)
        hold = []
        while True:
            m = ch.next_message(hold)
            if m is None:
                break
            verdict = self.hub.judge(m[1], m[2])
            if verdict == "retry":
                ch.retry(m[0])
                hold.append(m[3])  # its session waits for the next step
            elif verdict == "fail":
                self.hub.refused[m[0]] = json.loads(encode(m[2]))
                ch.failed(m[0], "019 refused")
            else:
                self.hub.receive(m[0], m[1], m[2])
                ch.delivered(m[0])
        if s.state == "idle" and self.stopped and ch.journal.dead:
            self.hub.fixed = True  # a person fixed the cause, then requeues
            ch.journal.requeue()
        self.ms += _STEP

    def start(self, ch):
        ch.tap(UID)

    def stop(self, ch):
        ch.tap(UID)

    def done(self):
        return self.stopped and self.charger.evses[0].state == "idle" and \
            self.charger.next_message() is None and not self.charger.journal.dead


EVCO = "DE-8EO-CAB123456-7"
HSID = "0ac1f1b2-1111-2222-3333-444455556666"


class RemoteWorld(World):
    """The session is started and stopped from an app: the relay sends its command again until
    it has the charger's answer (the broker redelivers what was not acknowledged), and the
    start once more right after its "000" (a duplicate)."""

    answers = None

    def command(self, ch, cmd):
        f = {"cmd": cmd, "session_id": HSID, "evse_id": "DE*ABC*E0001", "provider_id": "DE-8EO",
             "deadline": T0 + 4 * 3600}
        if cmd == "remote_start":
            f.update(evco_id=EVCO, cpo_session_id=None, product_id=None)
        got = ch.remote(f)  # a cut in here: no answer reached the relay
        self.answers = (self.answers or []) + [(cmd, got[0])]

    def start(self, ch):
        self.command(ch, "remote_start")
        if self.answers[-1] == ("remote_start", "000"):
            self.command(ch, "remote_start")  # a duplicate right after the "yes"

    def stop(self, ch):
        self.command(ch, "remote_stop")


def run(cut_at=0, tear_at=None, refuse=None, busy=None, world=World):
    """One whole session with power lost at operation `cut_at`; returns the world after it."""
    w = world(FaultFs(cut_at, tear_at), Hub(refuse, busy))
    while True:
        try:
            if w.charger is None:
                w.boot()
            while not w.done():
                if w.ms > 4 * 3600 * 1000:
                    raise AssertionError("session never finished (cut %d)" % cut_at)
                w.step()
            return w
        except PowerCut:
            w.fs = w.fs.reboot()
            w.charger = None
