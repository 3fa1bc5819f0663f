"""Journal unit tests: outbox, ids, coalescing, admission, torn tails, garbage, compaction,
dead letters, attempts, per-session order."""
import json

from faultfs import FaultFs, PowerCut

from check import raises, raises_naming
from cpagent.journal import Journal

P = "/api/oicp/notificationmgmt/v11/charging-notifications"
D = "/j"


def _rand_seq():
    n = [0]

    def rand_hex():
        n[0] += 1
        return "e%07d" % n[0]

    return rand_hex


def _journal(fs=None, cap=200, rand_hex=None):
    fs = fs or FaultFs()
    return Journal(fs, D, cap, rand_hex or _rand_seq()).load()


def _reload(j, cap=200):
    return Journal(j._fs.reboot(), D, cap, _rand_seq()).load()


def _log(j):
    return j._fs.files[D + "/log"]


def test_add_pending_delivered_survive_reboot():
    j = _journal()
    a = j.add("s1", "Start", P, b'{"a":1}')
    b = j.add("s1", "End", P, '{"b":2}')
    assert a != b
    assert j.pending() == [(a, "Start", P, b'{"a":1}'), (b, "End", P, b'{"b":2}')]
    j2 = _reload(j)
    assert j2.pending() == j.pending()
    j2.delivered(a)
    assert j2.pending() == [(b, "End", P, b'{"b":2}')]
    j3 = _reload(j2)
    assert j3.pending() == [(b, "End", P, b'{"b":2}')]
    j3.delivered(b)
    assert _reload(j3).pending() == []


def _dead(j):
    """The dead letters as the export gives them: one dict per JSON line."""
    return [json.loads(line) for line in j.dead_lines()]


def _file(j):
    return [json.loads(x) for x in j._fs.files[D + "/dead.jsonl"].decode().splitlines()]


def test_a_refused_message_is_kept_whole_across_reboot_and_compaction():
    j = _journal()
    j.stamp = lambda: "2026-12-01T22:00:00.000Z"
    body = {"CDR": "x" * 300, "SessionID": "s1"}
    a = j.add("s1", "CDR", P, body)
    b = j.add("s2", "End", P, b"raw end")
    assert j.attempt(a) == 1 and j.attempt(a) == 2
    j.failed(a, "HTTP 400 validation error: " + "x" * 200)
    j.failed(b, "022 no positive authentication response")
    assert [m[0] for m in j.pending()] == []
    want = [{"id": a, "kind": "CDR", "path": P, "key": "s1",
             "reason": ("HTTP 400 validation error: " + "x" * 200)[:120],
             "time": "2026-12-01T22:00:00.000Z", "attempts": 3, "body": body},
            {"id": b, "kind": "End", "path": P, "key": "s2",
             "reason": "022 no positive authentication response",
             "time": "2026-12-01T22:00:00.000Z", "attempts": 1, "body": "raw end"}]
    assert _dead(j) == want and _file(j) == want
    assert j.failures == [(a, "CDR", want[0]["reason"]), (b, "End", want[1]["reason"])]
    j2 = _reload(j)
    assert _dead(j2) == want and _file(j2) == want
    j2._compact()
    j3 = _reload(j2)
    assert _dead(j3) == want and j3.pending() == []


def test_unknown_ids_are_noops_and_write_nothing():
    j = _journal()
    before = j._fs.bytes_written
    j.delivered("nope-1")
    j.failed("nope-2", "x")
    assert j.attempt("nope-3") == 0 and j.requeue("nope-4") == [] and not j.discard("nope-5")
    assert j._fs.bytes_written == before
    assert j.failures == [] and D + "/dead.jsonl" not in j._fs.files


def test_the_counters_and_the_pending_count_follow_each_message():
    j = _journal()
    a = j.add("s1", "Start", P, b"start")
    b = j.add("s1", "CDR", P, {"c": 1})
    j.add("s2", "Start", P, b"start")
    assert j.count() == 3 == len(j.pending())
    j.delivered(a)
    j.delivered(a)  # again: known no more, not counted
    j.failed(b, "019 no")
    j.failed("nope", "019 no")
    s = j.stats
    assert (s["journaled"], s["delivered"], s["failed"], j.count()) == (3, 1, 1, 1)
    j2 = _reload(j)  # the counters are this boot's; the count is what the flash holds
    assert (j2.stats["journaled"], j2.stats["delivered"], j2.count()) == (0, 0, 1)

def test_requeue_puts_them_back_under_fresh_ids_ahead_of_their_session():
    j = _journal()
    a = j.add("s1", "Start", P, b"start")
    b = j.add("s1", "Progress", P, b"p")
    c = j.add("s2", "CDR", P, {"c": 2})
    j.attempt(a)
    j.failed(a, "500 no")
    j.failed(c, "400 no")
    d = j.add("s1", "End", P, b"end")
    new = j.requeue()
    assert len(new) == 2 and a not in new and c not in new and len(set(new + [a, b, c, d])) == 6
    want = [(new[0], "Start", P, b"start"), (b, "Progress", P, b"p"), (d, "End", P, b"end"),
            (new[1], "CDR", P, {"c": 2})]
    assert j.pending() == want and j.dead == [] and D + "/dead.jsonl" not in j._fs.files
    assert j.next_pending()[5] == 0  # a fresh attempt count
    j2 = _reload(j)
    assert j2.pending() == want and j2.dead == [] and j2.next_pending()[5] == 0
    j2._compact()
    assert _reload(j2).pending() == want
    e = j2.add("s3", "Start", P, b"later")
    assert e not in new  # ids stay unique after a requeue


def test_requeue_one_and_discard_one():
    j = _journal()
    a = j.add("s1", "CDR", P, b"a")
    b = j.add("s2", "CDR", P, b"b")
    j.failed(a, "no")
    j.failed(b, "no")
    (n,) = j.requeue(b)
    assert [m[0] for m in j.pending()] == [n] and j.failures == [(a, "CDR", "no")]
    j.failed(n, "no again")  # refused once more: a dead letter under its new id
    assert j.discard(a) and not j.discard(a)
    assert j.failures == [(n, "CDR", "no again")]
    j2 = _reload(j)
    assert j2.failures == [(n, "CDR", "no again")] and _file(j2)[0]["body"] == "b"


def test_a_full_dead_letter_area_refuses_new_sessions_and_drops_nothing():
    j = _journal()
    ids = [j.add(i, "CDR", P, b"c%d" % i) for i in range(10)]
    for i in ids[:7]:
        j.failed(i, "no")
    assert j.can_open_session()
    j.failed(ids[7], "no")
    assert j.dead_full() and not j.can_open_session()
    for i in ids[8:]:  # sessions already open still land there: nothing is dropped
        j.failed(i, "no")
    assert [d["id"] for d in _dead(j)] == ids and len(_file(j)) == 10
    assert not _reload(j).can_open_session()
    j.requeue()
    assert j.can_open_session() and len(j.pending()) == 10


def test_dead_letter_bytes_bound_the_area_too():
    j = _journal()
    for i in range(3):
        j.failed(j.add(i, "CDR", P, b"x" * 6000), "no")
    assert len(j.dead) == 3 and j.dead_full() and not j.can_open_session()


def test_attempt_counts_survive_reboot_and_compaction_and_cost_nothing_untried():
    j = _journal()
    a = j.add("s1", "Start", P, b"a")
    b = j.add("s2", "Start", P, b"b")
    n = j._fs.bytes_written
    j.delivered(b)
    untried = j._fs.bytes_written - n
    assert j.attempt(a) == 1 and j.attempt(a) == 2 and j.attempt(a) == 3
    assert (j._fs.bytes_written - n - untried) // 3 < 40  # a small record per failed try
    assert _reload(j).next_pending()[5] == 3
    j._compact()
    j2 = _reload(j)
    assert j2.next_pending()[0] == a and j2.next_pending()[5] == 3
    j2.failed(a, "no")
    assert _dead(j2)[0]["attempts"] == 4


def test_next_pending_skips_held_sessions_only():
    j = _journal()
    a = j.add("s1", "Start", P, b"1")
    j.add("s1", "End", P, b"2")
    c = j.add(7, "Start", P, b"3")
    d = j.add("s2", "Start", P, b"4")
    s1 = j.next_pending()[4]
    assert j.next_pending()[:4] == (a, "Start", P, b"1")
    assert j.next_pending([s1])[0] == c
    seven = j.next_pending([s1])[4]
    assert j.next_pending([s1, seven])[0] == d
    assert j.next_pending([s1, seven, j.next_pending([s1, seven])[4]]) is None
    assert len({s1, seven}) == 2 and _reload(j).next_pending([s1])[4] == seven


def test_ids_unique_across_reboots_and_recreation():
    j = _journal()
    seen = set()
    for _ in range(3):
        seen.add(j.add("s", "Start", P, b"x"))
        j.delivered(list(seen)[0])
        j = _reload(j)
    seen.add(j.add("s", "End", P, b"y"))
    assert len(seen) == 4
    # The whole log lost: a new random epoch keeps new ids apart from the old ones.
    fs = FaultFs()
    j1 = Journal(fs, D, rand_hex=lambda: "aaaa").load()
    i1 = j1.add("s", "Start", P, b"x")
    del fs.files[D + "/log"]
    j2 = Journal(fs.reboot(), D, rand_hex=lambda: "bbbb").load()
    assert j2.add("s", "Start", P, b"x") != i1


def test_default_rand_hex_gives_hex_epoch():
    j = Journal(FaultFs(), D).load()
    mid = j.add("s", "Start", P, b"x")
    epoch = mid[:mid.rfind("-")]
    assert len(epoch) == 8 and int(epoch, 16) >= 0


def test_boot_counter_increments_and_load_is_idempotent():
    j = _journal()
    assert j.boot == 1
    j.load()
    assert j.boot == 1
    j2 = _reload(j)
    assert j2.boot == 2
    j2._compact()
    assert _reload(j2).boot == 3


def test_progress_coalesces_per_session_and_kind():
    j = _journal()
    j.add("a", "Start", P, b"sa")
    p1 = j.add("a", "Progress", P, b"pa1")
    j.add("b", "Progress", P, b"pb1")
    j.add("a", "Status", P, b"st1")
    p2 = j.add("a", "Progress", P, b"pa2")
    j.add("a", "Status", P, b"st2")
    bodies = [m[3] for m in j.pending()]
    assert bodies == [b"sa", b"pb1", b"pa2", b"st2"]
    j.delivered(p1)  # superseded: already gone, a no-op
    j2 = _reload(j)
    assert [m[3] for m in j2.pending()] == bodies
    j2.delivered(p2)
    p3 = j2.add("a", "Progress", P, b"pa3")
    assert j2.pending()[-1][0] == p3


def test_admission_control_reserves_must_keep_room():
    j = _journal(cap=12)
    assert j.can_open_session()
    j.put_session("a", {"st": "authorized"})
    j.put_session("b", {"st": "authorized"})
    assert j.can_open_session()  # 0 pending + 3 sessions x 4 = 12
    j.add("a", "Start", P, b"s")
    assert not j.can_open_session()
    j.add("a", "Progress", P, b"p")  # latest-wins kinds do not count
    j.delivered(j.pending()[0][0])
    assert j.can_open_session()
    j.put_session("a", None)
    j.put_session("b", None)
    for i in range(8):
        j.add(i, "CDR", P, b"c")
    assert j.can_open_session()
    j.add(9, "CDR", P, b"c")
    assert not j.can_open_session()


def test_progress_over_cap_is_dropped_must_keep_never():
    j = _journal(cap=3)
    j.add("a", "Start", P, b"s")
    j.add("a", "Progress", P, b"p1")
    j.add("b", "Start", P, b"s")
    assert j.add("b", "Progress", P, b"p") is None
    assert j.stats["dropped_progress"] == 1
    assert j.add("a", "Progress", P, b"p2") is not None  # replaces, does not grow
    for k in ("End", "Error", "CDR"):
        assert j.add("a", k, P, b"k") is not None
    assert [m[1] for m in j.pending()] == ["Start", "Start", "Progress", "End", "Error", "CDR"]


def test_bad_kind_and_oversized_body_raise_naming():
    j = _journal()
    raises_naming(ValueError, "kind", j.add, "a", "Stop", P, b"x")
    raises_naming(ValueError, "body", j.add, "a", "CDR", P, b"x" * 9000)
    assert j.pending() == []


def test_sessions_snapshot_delete_and_unchanged_skip():
    j = _journal()
    st = {"st": "charging", "wh": 10}
    j.put_session("a", st)
    st["wh"] = 20  # the caller mutates its dict: the journal kept a copy
    assert j.sessions() == {"a": {"st": "charging", "wh": 10}}
    j.put_session("a", st)
    n = j.stats["appends"]
    j.put_session("a", {"st": "charging", "wh": 20})
    assert j.stats["appends"] == n
    j.put_session(7, {"x": 1})
    assert _reload(j).sessions() == {"a": {"st": "charging", "wh": 20}, 7: {"x": 1}}
    j.put_session("a", None)
    j.put_session("zz", None)
    assert _reload(j).sessions() == {7: {"x": 1}}


def test_torn_tail_at_every_byte_is_ignored_then_compacted():
    j = _journal()
    a = j.add("s", "Start", P, b"start")
    good = _log(j)
    j.add("s", "End", P, b"end")
    full = _log(j)
    for cut in range(len(good), len(full)):
        fs = j._fs.reboot()
        fs.files[D + "/log"] = full[:cut]
        j2 = Journal(fs, D, rand_hex=_rand_seq()).load()
        assert [m[0] for m in j2.pending()] == [a]
        assert j2.stats["bad_records"] == (1 if cut > len(good) else 0)
        j2.add("s", "CDR", P, b"cdr")  # must not land behind the garbage
        j3 = _reload(j2)
        assert j3.stats["bad_records"] == 0
        assert [m[3] for m in j3.pending()] == [b"start", b"cdr"]


def test_garbage_file_and_corrupt_middle():
    fs = FaultFs()
    fs.dirs.add(D)
    fs.files[D + "/log"] = bytes(range(256)) * 8 + b"\xa5\xff\xff\x00"
    fs.files[D + "/notes.txt"] = b"kept"
    j = Journal(fs, D, rand_hex=_rand_seq()).load()
    assert j.pending() == [] and j.stats["bad_records"] == 1 and j.boot == 1
    a = j.add("s", "Start", P, b"one")
    j.add("s", "Progress", P, b"two")
    end = len(_log(j))
    b = j.add("s", "End", P, b"three")
    log = bytearray(_log(j))
    log[end - 2] ^= 0x01  # bit rot in the Progress body: "two" -> "tvo", caught by the CRC
    j._fs.files[D + "/log"] = bytes(log)
    j2 = _reload(j)
    assert [m[0] for m in j2.pending()] == [a, b]
    assert j2.stats["bad_records"] == 1 and j2.stats["compactions"] == 1
    assert j2._fs.files[D + "/notes.txt"] == b"kept"
    assert _reload(j2).stats["bad_records"] == 0


def test_stale_tmp_is_removed_and_log_wins():
    j = _journal()
    a = j.add("s", "Start", P, b"x")
    fs = j._fs.reboot()
    fs.files[D + "/log.tmp"] = b"half a compaction"
    j2 = Journal(fs, D, rand_hex=_rand_seq()).load()
    assert D + "/log.tmp" not in fs.files
    assert [m[0] for m in j2.pending()] == [a]


def test_compaction_by_size_and_when_idle():
    j = _journal()
    j.put_session("s", {"st": "charging"})
    start = j.add("s", "Start", P, b"s" * 100)
    c0 = j.stats["compactions"]
    for i in range(30):  # coalescing Progress: the log grows, pending does not
        j.add("s", "Progress", P, b"%03d" % i + b"p" * 200)
        assert len(_log(j)) <= 8192 + 400
    assert j.stats["compactions"] - c0 == 1
    assert len(j.pending()) == 2
    j2 = _reload(j)
    assert j2.pending() == j.pending() and j2.sessions() == j.sessions()
    # Idle: the last ack of a finished session shrinks the log to the boot record.
    j.put_session("s", None)
    j.delivered(start)
    c1 = j.stats["compactions"]
    j.delivered(j.pending()[0][0])
    assert j.stats["compactions"] == c1 + 1
    assert len(_log(j)) < 40
    assert _reload(j).pending() == []


def test_a_compaction_without_the_memory_for_it_waits_and_loses_nothing():
    import cpagent.journal as jm

    j = _journal()
    j.put_session("s", {"st": "charging"})
    j.add("s", "Start", P, b"s" * 100)
    real, c0 = jm.once, j.stats["compactions"]

    def no_room(name):
        if name == "compact":
            raise MemoryError("memory allocation failed, allocating 1024 bytes")
        return real(name)

    jm.once = no_room
    try:
        for i in range(30):  # the log outgrows its bound: every compaction fails for memory
            j.add("s", "Progress", P, b"%03d" % i + b"p" * 200)
    finally:
        jm.once = real
    assert j.stats["compactions"] == c0 and len(_log(j)) > 8192  # not compacted, no raise
    assert [k for _m, k, *_ in j.pending()] == ["Start", "Progress"]
    j.add("s", "Progress", P, b"next")  # memory again: the next append compacts
    assert j.stats["compactions"] == c0 + 1 and len(_log(j)) < 8192
    assert _reload(j).pending() == j.pending()


def test_stats_count_appends_and_bytes():
    j = _journal()
    s = j.stats
    assert s["compactions"] == 1 and s["appends"] == 0  # a fresh log is written whole
    b0 = j._fs.bytes_written
    assert s["bytes_written"] == b0
    j.add("s", "Start", P, b"x")
    j.put_session("s", {"a": 1})
    assert s["appends"] == 2
    assert s["bytes_written"] == j._fs.bytes_written == len(_log(j))
    assert _reload(j).stats["appends"] == 1  # the boot record


def test_failed_append_rewrites_log_before_next_append():
    # A write that fails half way (e.g. flash full on FAT) leaves a torn tail behind.
    class HalfFs(FaultFs):
        fail = False

        def open(self, path, mode):
            f = FaultFs.open(self, path, mode)
            if self.fail and mode == "ab":
                self.fail = False

                def bad_write(data):
                    self.files[path] = self.files[path] + bytes(data[:5])
                    raise OSError(28, "no space")

                f.write = bad_write
            return f

    fs = HalfFs()
    j = Journal(fs, D, rand_hex=_rand_seq()).load()
    a = j.add("s", "Start", P, b"x")
    fs.fail = True
    raises(OSError, j.add, "s", "End", P, b"y")
    c = j.stats["compactions"]
    b = j.add("s", "CDR", P, b"z")
    assert j.stats["compactions"] == c + 1
    j2 = Journal(fs.reboot(), D, rand_hex=_rand_seq()).load()
    assert j2.stats["bad_records"] == 0
    assert [m[0] for m in j2.pending()] == [a, b]


def test_faultfs_littlefs_rules_and_power_cut():
    fs = FaultFs(cut_at=3)
    fs.mkdir("/d")
    f = fs.open("/d/a", "wb")
    f.write(b"12")  # op 1
    f.close()  # op 2
    g = fs.open("/d/a", "ab")
    raises(PowerCut, g.write, b"34")  # op 3: power lost
    raises(PowerCut, fs.listdir, "/d")
    fs2 = fs.reboot()
    assert fs2.files == {"/d/a": b"12"} and fs.ops == 3 and fs2.ops == 0
    assert fs2.listdir("/d") == ["a"]
    h = fs2.open("/d/b", "wb")
    h.write(b"new")
    assert fs2.reboot().files["/d/b"] == b""  # exists once opened, data only once closed
    h.close()
    fs2.rename("/d/b", "/d/a")
    assert fs2.files == {"/d/a": b"new"} and fs2.bytes_written == 3
    raises(OSError, fs2.open, "/d/zz", "rb")
    raises(OSError, fs2.remove, "/d/zz")


def test_faultfs_tear_keeps_prefix_of_cut_write():
    fs = FaultFs(cut_at=2, tear_at=3)
    fs.mkdir("/d")
    f = fs.open("/d/a", "ab")
    f.write(b"abc")
    raises(PowerCut, f.write, b"defgh")
    raises(PowerCut, f.close)
    assert fs.reboot().files["/d/a"] == b"abcdef"


def test_osfs_over_the_real_filesystem():
    import os

    from cpagent.fsio import OsFs

    d = "/tmp/cpagent_journal_test"
    fs = OsFs()
    fs.mkdir(d)
    fs.mkdir(d)  # exists: ignored
    for n in fs.listdir(d):
        fs.remove(d + "/" + n)
    with fs.open(d + "/log.tmp", "wb") as f:
        f.write(b"stale")
    j = Journal(fs, d, rand_hex=_rand_seq()).load()
    a = j.add("s", "Start", P, b"x")
    j.put_session("s", {"st": 1})
    j2 = Journal(OsFs(), d, rand_hex=_rand_seq()).load()
    assert j2.pending() == [(a, "Start", P, b"x")] and j2.sessions() == {"s": {"st": 1}}
    assert fs.listdir(d) == ["log"] and j2.boot == 2
    fs.remove(d + "/log")
    os.rmdir(d)


def test_json_bodies_and_state_in_the_same_record():
    j = _journal()
    j.put_session("s", {"p": "authorized"})
    body = {"Type": "Start", "SessionID": "s", "kWh": 1.5}
    a = j.add("s", "Start", P, body, state={"p": "charging"})
    body["kWh"] = 99  # the journal kept its own copy
    n = j.stats["appends"]
    b = j.add("s", "CDR", P, {"CDR": 1}, state=None)  # None closes the session
    assert j.stats["appends"] == n + 1
    c = j.add("t", "Start", P, b"raw")  # no state: sessions unchanged
    expect = [(a, "Start", P, {"Type": "Start", "SessionID": "s", "kWh": 1.5}),
              (b, "CDR", P, {"CDR": 1}), (c, "Start", P, b"raw")]
    assert j.pending() == expect and j.sessions() == {}
    assert j.pending(1) == expect[:1]
    j2 = _reload(j)
    assert j2.pending() == expect and j2.sessions() == {}
    j2.put_session("s", {"p": "x"})
    j2._compact()
    j3 = _reload(j2)
    assert j3.pending() == expect and j3.sessions() == {"s": {"p": "x"}}
    j3.add("s", "Progress", P, {"P": 1}, state={"p": "y"})
    assert _reload(j3).sessions() == {"s": {"p": "y"}}


def test_body_rotted_on_flash_after_load_becomes_a_dead_letter_not_the_wire():
    j = _journal()
    a = j.add("s1", "CDR", P, b'{"cdr":"first"}')
    b = j.add("s2", "CDR", P, b'{"cdr":"second"}')
    log = bytearray(_log(j))
    i = log.find(b"first")
    log[i] ^= 0x20  # one flipped bit inside the first body, after load() checked it
    j._fs.files[D + "/log"] = bytes(log)
    assert j.pending() == [(b, "CDR", P, b'{"cdr":"second"}')]
    assert j.failures[-1] == (a, "CDR", "damaged on flash")
    assert _dead(j)[-1]["key"] is None and _dead(j)[-1]["body"] is None  # both were on flash
    assert j.stats["bad_records"] == 1 and j.requeue() == []  # no body: nothing to send
    assert _reload(j).pending() == [(b, "CDR", P, b'{"cdr":"second"}')]


def test_pending_bodies_are_read_back_from_flash():
    j = _journal()
    a = j.add("s1", "Start", P, {"big": "x" * 500})
    # The in-RAM index holds no body: replacing the file's bytes changes what pending() returns.
    log = _log(j).replace(b"x" * 500, b"y" * 500)
    j._fs.files[D + "/log"] = log
    raises(ValueError, lambda: j._read(len(log)))
    assert j.pending(1) == []  # a body held in RAM would still have come back unchanged
    assert j.failures[-1] == (a, "Start", "damaged on flash")


def test_an_older_firmwares_failure_record_loads_as_a_dead_letter_without_body():
    from cpagent.journal import _rec

    j = _journal()
    a = j.add("s1", "CDR", P, b"cdr")
    j._fs.files[D + "/log"] = _log(j) + bytes(_rec("F", a, "CDR", "019 refused"))
    j2 = _reload(j)
    assert j2.pending() == [] and j2.failures == [(a, "CDR", "019 refused")]
    assert _dead(j2)[0]["body"] is None and j2.requeue() == []
    assert _reload(j2).failures == [(a, "CDR", "019 refused")] and j2.discard(a)


def test_the_rare_parts_are_imported_for_one_use_and_dropped_again():
    # replay.py (load), compact.py and dead.py hold no heap between uses: each is out of
    # sys.modules and the package once its call returned, and is loaded again for the next.
    import sys

    import cpagent

    j = _journal()
    a = j.add("s1", "CDR", P, b"cdr")
    j._compact()
    assert j.failed(a, "019 refused") and j.failures == [(a, "CDR", "019 refused")]
    (b,) = j.requeue()
    for name in ("replay", "compact", "dead"):
        assert "cpagent." + name not in sys.modules and name not in dir(cpagent), name
    j2 = _reload(j)
    assert j2.pending() == [(b, "CDR", P, b"cdr")] and "cpagent.replay" not in sys.modules
