"""Power cut at every journal write: a restartable session still delivers each message once."""

from faultfs import FaultFs
from journalcuts import D, _check, _drive, _rand_seq, _session, dead_letter_cuts

from cpagent.journal import Journal


def _clean_ops():
    fs, rx, j, ids = _session(FaultFs())
    _check(rx, j, ids, "no cut")
    return fs.ops


def test_power_cut_at_every_operation():
    n = _clean_ops()
    for cut in range(1, n + 1):
        fs, rx, j, ids = _session(FaultFs(cut_at=cut))
        _check(rx, j, ids, "cut at %d" % cut)
    print("journal power test: %d cut points tried" % n)
    assert n > 30


def test_power_cut_at_every_operation_with_atomic_add_and_state():
    n = _session(FaultFs(), atomic=True)[0].ops
    seed = 99
    for cut in range(1, n + 1):
        fs, rx, j, ids = _session(FaultFs(cut_at=cut), atomic=True)
        _check(rx, j, ids, "atomic, cut at %d" % cut)
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        fs, rx, j, ids = _session(FaultFs(cut_at=cut, tear_at=seed % 700), atomic=True)
        _check(rx, j, ids, "atomic, cut at %d torn at %d" % (cut, seed % 700))
    print("journal power test (add with state): %d cut points tried, each also torn" % n)
    assert n > 20


def test_power_cut_with_torn_write_at_every_operation():
    n = _clean_ops()
    seed = 12345
    for cut in range(1, n + 1):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        tear = seed % 700
        fs, rx, j, ids = _session(FaultFs(cut_at=cut, tear_at=tear))
        _check(rx, j, ids, "cut at %d torn at byte %d" % (cut, tear))
    print("journal power test (torn writes): %d cut points tried" % n)


def test_second_power_cut_during_recovery():
    n = _clean_ops()
    tried = 0
    seed = 777
    for cut in range(1, n + 1):
        # The recovery run after this cut takes m operations (reboot restarts the count);
        # lose power again at each of them, once under littlefs rules, once with torn writes.
        m = _session(FaultFs(cut_at=cut))[0].ops
        for cut2 in range(1, m + 1):
            fs, rx, j, ids = _session(FaultFs(cut_at=cut), (cut2,))
            _check(rx, j, ids, "cut at %d then %d" % (cut, cut2))
            seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
            tear = seed % 700
            fs, rx, j, ids = _session(FaultFs(cut_at=cut, tear_at=tear), (cut2,), tear)
            _check(rx, j, ids, "cut at %d then %d, torn at byte %d" % (cut, cut2, tear))
            tried += 1
    print("journal power test (double cuts): %d pairs tried, each also torn" % tried)
    assert tried > n * 10


def test_flash_bytes_per_session_at_most_twice_message_bytes():
    fs = FaultFs()
    j = Journal(fs, D, rand_hex=_rand_seq()).load()
    sessions = 20
    msg_bytes = 0
    before = fs.bytes_written
    for n in range(sessions):
        rx = []
        _drive(j, {"tapped": False, "ids": []}, rx, n)
        msg_bytes += sum(len(b) for _, b in rx)
    per = (fs.bytes_written - before) // sessions
    ratio = (fs.bytes_written - before) / msg_bytes
    print("journal: %d flash bytes per session, %d message bytes, ratio %.2f"
          % (per, msg_bytes // sessions, ratio))
    assert j.stats["bytes_written"] == fs.bytes_written
    assert ratio <= 2.0
    assert len(fs.files[D + "/log"]) < 1024 + 600


def test_power_cut_at_every_write_of_a_refusal_requeue_and_discard():
    total = dead_letter_cuts(FaultFs)
    print("journal power test (dead letters): %d cut points tried, each also torn" % total)
    assert total >= 10
