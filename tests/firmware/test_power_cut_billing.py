"""Power cut at every flash write, and the meter dead from the reboot on: the session is closed
and billed within journal.save_wh of what was delivered, never below a reading already sent."""
from world import CFG, World, run

SAVE_WH = CFG["journal"]["save_wh"]


class DeadMeterWorld(World):
    """The meter answers until the first power cut, then never again: after the reboot the
    meter bus reports it dead (as MeterBus does after meter.dead_polls) and the EV stops."""

    def __init__(self, fs, hub=None):
        World.__init__(self, fs, hub)
        self.delivered_wh = None  # the register when the power failed

    def reading_at_boot(self):
        if self.boots > 1 and self.delivered_wh is None:
            self.delivered_wh = self.wh  # nothing flowed since the cut
        return None if self.boots > 1 else self.wh

    def boot(self):
        World.boot(self)
        if self.boots > 1:
            self.charger.fault(0, False, "meter silent")

    def step(self):
        if self.boots > 1:
            self.stopped = True  # no tap restarts a session on a dead meter
            ch = self.charger
            while True:
                m = ch.next_message()
                if m is None:
                    break
                self.hub.receive(m[0], m[1], m[2])
                ch.delivered(m[0])
            self.ms += 60000
            return
        World.step(self)


def test_a_dead_meter_after_a_power_cut_bills_within_save_wh():
    checked = 0
    for k in range(1, 1000):
        w = run(k, world=DeadMeterWorld)
        if w.delivered_wh is None:
            break  # the whole session fit before this cut point: all cut points tried
        cdrs = [b for b in w.hub.seen.values() if "ConsumedEnergy" in b and "Type" not in b]
        if not cdrs:
            continue  # the cut came before the session was authorized: nothing to bill
        assert len(cdrs) == 1, (k, len(cdrs))
        reported = [b.get("MeterValueStart") or 0 for b in w.hub.seen.values()]
        reported += [max((b.get("MeterValueInBetween") or {"meterValues": [0]})["meterValues"])
                     for b in w.hub.seen.values()]
        billed_end = cdrs[0].get("MeterValueEnd")
        if billed_end is None:  # never charged: a 0 kWh record
            assert cdrs[0]["ConsumedEnergy"] == 0, (k, cdrs[0])
            continue
        assert billed_end >= max(reported), (k, billed_end, reported)
        lost_wh = w.delivered_wh - round(billed_end * 1000)
        assert 0 <= lost_wh <= SAVE_WH, (k, w.delivered_wh, billed_end)
        checked += 1
    print("dead meter after a cut: %d cut points billed within %d Wh" % (checked, SAVE_WH))
    assert checked >= 10
