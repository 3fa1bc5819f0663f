"""One session on a clock the test moves: the timing, a made session, one charging."""
from cpagent.clock import Clock
from cpagent.oicp.replies import parse_authorization
from cpagent.session import CHARGING, Session

OP = "DE*ABC"
EVSE = "DE*ABC*E0001"
UID = "04A1B2C3D4E5F6"
SID = "b2688855-7f00-0002-6d8e-48d883f6abb6"
T0 = 1795320000  # 2026-11-22, a real wall time


class Ticks:
    """A monotonic ms counter the test moves by hand."""

    def __init__(self):
        self.t = 1000

    def __call__(self):
        return self.t


# The timing these tests run with (the config's defaults); a test's keywords override them.
TIMING = {"progress_s": 300, "ev_wait_s": 120, "authorize_timeout_s": 15, "start_power_w": 100,
          "stop_power_w": 50, "stop_hold_s": 120}


def make(known=True, product_id=None, save_wh=100000, **timing):
    # save_wh: the readings journaled between messages have their own tests
    ticks = Ticks()
    clock = Clock(ticks, lambda a, b: a - b)
    if known:
        clock.set_unix(T0)
    t = dict(TIMING)
    t.update(timing)
    return Session(OP, EVSE, clock, t, product_id, save_wh), ticks


def ok_reply(stop=()):
    ids = ",".join('{"RFIDMifareFamilyIdentification":{"UID":"%s"}}' % u for u in stop)
    return parse_authorization(
        '{"AuthorizationStatus":"Authorized","SessionID":"%s","ProviderID":"DE-8EO",'
        '"StatusCode":{"Code":"000"},"AuthorizationStopIdentifications":[%s]}' % (SID, ids))


def charging(**kw):
    s, t = make(**kw)
    s.tap(UID)
    s.authorized(ok_reply())
    s.meter(10000, 0)
    eff = s.meter(10000, 3700)
    assert s.state == CHARGING, s.state
    return s, t, eff
