"""The journal on real littlefs (2.11, disk format 2.1: the C library MicroPython 1.27 mounts on
the ESP32 and the Pico W, here through littlefs-python) with power lost at every flash program
and erase: after each cut the flash is mounted again, and the session delivers each message
once, in order. tests/firmware/test_journal_power.py runs the same sessions on FaultFs, the
project's own model of littlefs; this runs them, and its dead letters' refusal, requeue and
discard, and a backlog that makes the journal compact its log with messages pending, on
littlefs itself.

A cut is a program or an erase that fails with an I/O error and every later one too, so
littlefs stops there and nothing after it reaches the flash; a torn cut first lands a part of
the program (NOR flash can stop mid-page). The cut call raises PowerCut to the journal, which
never sees it return. The flash is laid out as MicroPython's rp2 port mounts it (4 KB blocks,
reads of 32 and programs of 256 bytes, 1 KB caches, 32 B of lookahead), 128 KB of it.
"""
import journalcuts as power
from faultfs import PowerCut
from littlefs import LittleFS, LittleFSError, UserContext

from cpagent.journal import Journal

BLOCK, BLOCKS = 4096, 32
_IO = -5  # LFS_ERR_IO: what a block device says when it fails


class Flash(UserContext):
    """The flash under littlefs: power fails at block operation `cut_at` (1-based, programs
    and erases counted in `ops`; 0: never); a torn cut programs its first `tear` bytes."""

    def __init__(self, buffer, cut_at, tear):
        super().__init__(buffer=buffer)
        self.cut_at, self.tear, self.ops, self.dead = cut_at, tear, 0, False

    def _cut(self):
        if not self.dead:
            self.ops += 1
            self.dead = self.ops == self.cut_at
            return self.dead
        return True

    def prog(self, cfg, block, off, data):
        if self._cut():
            if self.tear is not None and self.ops == self.cut_at:
                start = block * cfg.block_size + off
                part = data[:self.tear % (len(data) + 1)]
                self.buffer[start:start + len(part)] = part
                self.tear = None  # once: later calls find the power off
            return _IO
        return super().prog(cfg, block, off, data)

    def erase(self, cfg, block):
        return _IO if self._cut() else super().erase(cfg, block)


class LfsFs:
    """The journal's fs interface (as cpagent/fsio.py's OsFs gives it on a device) over littlefs
    on a Flash; reboot() mounts what the flash holds with the next cut point, as FaultFs's does.
    A missing file is an OSError, as on MicroPython."""

    def __init__(self, cut_at=0, tear=None, buffer=None):
        self.flash = Flash(bytearray(b"\xff" * (BLOCK * BLOCKS)) if buffer is None else buffer,
                           0, tear)
        self.lfs = LittleFS(self.flash, mount=False, block_size=BLOCK, block_count=BLOCKS,
                            read_size=32, prog_size=256, cache_size=1024, lookahead_size=32)
        if buffer is None:
            self.lfs.format()
            self.lfs.mount()
            self.lfs.mkdir("/flash")
        else:
            self.lfs.mount()  # a flash littlefs cannot mount fails the test: never re-formatted
        self.flash.ops, self.flash.cut_at = 0, cut_at  # the journal's operations from here

    @property
    def ops(self):
        return self.flash.ops

    def reboot(self, cut_at=0, tear=None):
        return LfsFs(cut_at, tear, bytearray(self.flash.buffer))

    def call(self, fn, *args):
        if self.flash.dead:
            raise PowerCut("power is off")
        try:
            out = fn(*args)
        except LittleFSError as e:
            if self.flash.dead:
                raise PowerCut("power lost in %s" % fn.__name__)
            raise OSError(-e.code, str(e))
        if self.flash.dead:
            raise PowerCut("power lost in %s" % fn.__name__)
        return out

    def open(self, path, mode):
        return File(self, self.call(self.lfs.open, path, mode, 0))

    def rename(self, src, dst):
        self.call(self.lfs.rename, src, dst)

    def remove(self, path):
        self.call(self.lfs.remove, path)

    def listdir(self, path):
        return self.call(self.lfs.listdir, path)

    def mkdir(self, path):
        try:
            self.call(self.lfs.mkdir, path)
        except OSError:
            pass  # exists (fsio.OsFs: any OSError counts as "exists")


class File:
    """A littlefs file whose every call may lose power (unbuffered: each write reaches
    littlefs, which commits a file's writes at close)."""

    def __init__(self, fs, f):
        self._fs, self._f = fs, f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def read(self, n=-1):
        return self._fs.call(self._f.read, n)

    def write(self, b):
        return self._fs.call(self._f.write, bytes(b))

    def seek(self, at, whence=0):
        return self._fs.call(self._f.seek, at, whence)

    def close(self):
        if self._f.closed:
            return
        try:
            self._fs.call(self._f.close)
        finally:
            # littlefs lets go of a file whose close failed (or that the power cut left
            # open); littlefs-python would close it again when collected, which lfs.c asserts
            # against. So it is marked closed the way the binding marks it.
            setattr(self._f, "__IOBase_closed", True)


def _clean_ops(atomic=False):
    fs, rx, j, ids = power._session(LfsFs(), atomic=atomic)
    power._check(rx, j, ids, "littlefs, no cut")
    return fs.ops


def test_a_session_on_littlefs_delivers_each_message_once():
    n = _clean_ops()
    # Each append commits at close: a program of the file's block and of the metadata pair.
    assert n > 40, n


def test_power_cut_at_every_flash_operation():
    n = _clean_ops()
    for cut in range(1, n + 1):
        fs, rx, j, ids = power._session(LfsFs(cut_at=cut))
        power._check(rx, j, ids, "littlefs, cut at flash operation %d" % cut)


def test_power_cut_torn_mid_program_at_every_flash_operation():
    n = _clean_ops(atomic=True)
    seed = 4242
    for cut in range(1, n + 1):
        seed = (seed * 1103515245 + 12345) & 0x7FFFFFFF
        tear = seed % 257
        fs, rx, j, ids = power._session(LfsFs(cut_at=cut, tear=tear), atomic=True)
        power._check(rx, j, ids, "littlefs, cut at %d torn at byte %d" % (cut, tear))


def test_second_power_cut_during_recovery():
    n = _clean_ops()
    tried = 0
    for cut in range(1, n + 1, 3):
        m = power._session(LfsFs(cut_at=cut))[0].ops
        for cut2 in range(1, m + 1, 5):
            fs, rx, j, ids = power._session(LfsFs(cut_at=cut), (cut2,))
            power._check(rx, j, ids, "littlefs, cut at %d then %d" % (cut, cut2))
            tried += 1
    assert tried > n, tried


def test_power_cut_at_every_flash_operation_of_dead_letters():
    # A refusal's X record and dead.jsonl's tmp + rename, a requeue, a discard.
    assert power.dead_letter_cuts(LfsFs) >= 10


def _cdrs(n):
    return [power._body("CDR", i, ',"pad":"%s"' % ("x" * 300)) for i in range(n)]


def _backlog(fs, cuts=(), n=18):
    """n charge detail records of three sessions journaled while the hub is away (the log
    passes the journal's 8 KB and is compacted with them pending), then all delivered; after a
    power cut the flash is mounted again with the next cut point and the work carries on from
    what the journal holds. Returns (final fs, receiver log, journal, compactions seen)."""
    rx = []
    cuts = list(cuts)
    rand = power._rand_seq()
    bodies = _cdrs(n)
    compactions = 0
    while True:
        try:
            j = Journal(fs, power.D, rand_hex=rand).load()
            have = {m[3] for m in j.pending()} | {b for _, b in rx}
            for i, body in enumerate(bodies):
                if body not in have:
                    j.add("s%d" % (i % 3), "CDR", power.P, body)
                    compactions = max(compactions, j.stats["compactions"])
            power._drain(j, rx)
            return fs, rx, j, compactions
        except PowerCut:
            fs = fs.reboot(cuts.pop(0) if cuts else 0)


def _check_backlog(rx, j, what, n=18):
    got = []
    for mid, body in rx:
        if (mid, body) not in got:
            got.append((mid, body))  # a resend under its id is the receiver's to drop
    if [b for _, b in got] != _cdrs(n) or len({m for m, _ in got}) != n or j.pending():
        raise AssertionError("%s: the hub got %d of %d, %d still pending"
                             % (what, len(got), n, len(j.pending())))


def test_power_cut_at_every_flash_operation_of_a_compaction_with_messages_pending():
    fs, rx, j, compactions = _backlog(LfsFs())
    _check_backlog(rx, j, "no cut")
    assert compactions >= 1, "the backlog never made the journal compact its log"
    n = fs.ops
    for cut in range(1, n + 1):
        fs, rx, j, _ = _backlog(LfsFs(cut_at=cut))
        _check_backlog(rx, j, "littlefs, backlog, cut at %d" % cut)
    assert n > 100, n


def test_the_flash_model_cuts_where_it_is_told():
    # The test's own part, checked: a cut flash keeps what was committed before the cut, and
    # nothing of the write that lost the power.
    fs = LfsFs()
    with fs.open("/flash/a", "wb") as f:
        f.write(b"kept")
    cut = fs.reboot(cut_at=1)
    try:
        with cut.open("/flash/b", "wb") as f:
            f.write(b"lost")
        raise AssertionError("no power cut")
    except PowerCut:
        pass
    after = cut.reboot()
    with after.open("/flash/a", "rb") as f:
        assert f.read() == b"kept"
    assert after.listdir("/flash") == ["a"]
    try:
        after.open("/flash/b", "rb")
        raise AssertionError("a file written across a power cut survived")
    except OSError:
        pass
