"""In-memory filesystem with littlefs rules that loses power on cue, for power-cut tests."""


class PowerCut(BaseException):
    """Power was lost. A BaseException, so `except Exception` in firmware cannot swallow it."""


class FaultFs:
    """The journal's fs interface (open rb/wb/ab, rename, remove, listdir, mkdir) in RAM.

    Mutating operations are each write() call, a writing file's close(), rename() and remove();
    `ops` counts them and `bytes_written` the bytes given to write(). Operation number `cut_at`
    (1-based; 0 = never) loses power: it raises PowerCut, has no effect, and every later call
    raises PowerCut too. With `tear_at` None the rules are littlefs's: a file's writes count
    only once it is closed, rename is atomic and overwrites. With `tear_at` an int, writes land
    at once (like FAT or a host fs: "wb" truncates at open) and the cut write keeps only its
    first `tear_at` bytes. `files` (path -> bytes) is what survives; reboot() returns it as a
    fresh fs.
    """

    def __init__(self, cut_at=0, tear_at=None, files=None, dirs=None):
        self.files = {} if files is None else files
        self.dirs = set() if dirs is None else dirs
        self.cut_at = cut_at
        self.tear_at = tear_at
        self.ops = 0
        self.bytes_written = 0
        self.dead = False

    def reboot(self, cut_at=0, tear_at=None):
        """The surviving files as a new powered fs (unclosed writes are gone under littlefs)."""
        return FaultFs(cut_at, tear_at, dict(self.files), set(self.dirs))

    def _alive(self):
        if self.dead:
            raise PowerCut("power is off")

    def _tick(self):
        """Count one mutating operation; True if the power fails at it."""
        self._alive()
        self.ops += 1
        if self.ops == self.cut_at:
            self.dead = True
        return self.dead

    def _need(self, path):
        if path not in self.files:
            raise OSError(2, "no such file: " + path)

    def _parent(self, path):
        d = path[:path.rfind("/")]
        if d and d not in self.dirs:
            raise OSError(2, "no such directory: " + d)

    def open(self, path, mode):
        self._alive()
        if mode == "rb":
            self._need(path)
        elif mode in ("wb", "ab"):
            self._parent(path)
            if path not in self.files or (mode == "wb" and self.tear_at is not None):
                self.files[path] = b""  # littlefs: a file exists once opened
        else:
            raise ValueError("FaultFs mode %r: expected rb, wb or ab" % mode)
        return _File(self, path, mode)

    def rename(self, a, b):
        self._alive()
        self._need(a)
        self._parent(b)
        if self._tick():
            raise PowerCut("power lost at rename, operation %d" % self.ops)
        self.files[b] = self.files.pop(a)

    def remove(self, path):
        self._alive()
        self._need(path)
        if self._tick():
            raise PowerCut("power lost at remove, operation %d" % self.ops)
        del self.files[path]

    def listdir(self, d):
        self._alive()
        if d not in self.dirs:
            raise OSError(2, "no such directory: " + d)
        pre = d + "/"
        return [p[len(pre):] for p in list(self.files) + list(self.dirs)
                if p.startswith(pre) and "/" not in p[len(pre):]]

    def mkdir(self, d):
        self._alive()
        self.dirs.add(d)


class _File:
    def __init__(self, fs, path, mode):
        self._fs = fs
        self._path = path
        self._mode = mode
        self._pos = 0
        self._closed = False
        # littlefs keeps a writer's data apart until close(); "ab" starts from the committed file.
        self._buf = bytearray(fs.files[path] if mode == "ab" else b"")

    def seek(self, pos):
        self._pos = pos
        return pos

    def read(self, n=-1):
        self._fs._alive()
        data = self._fs.files[self._path]
        end = len(data) if n < 0 else min(len(data), self._pos + n)
        out = data[self._pos:end]
        self._pos = end
        return out

    def write(self, data):
        fs = self._fs
        if self._mode == "rb" or self._closed:
            raise OSError(9, "file not open for writing: " + self._path)
        cut = fs._tick()
        keep = len(data)
        if cut:
            keep = 0 if fs.tear_at is None else min(fs.tear_at, keep)
        if fs.tear_at is not None:
            fs.files[self._path] = fs.files.get(self._path, b"") + bytes(data[:keep])
        else:
            self._buf += data[:keep]
        fs.bytes_written += keep
        if cut:
            raise PowerCut("power lost at write, operation %d" % fs.ops)
        return len(data)

    def close(self):
        fs = self._fs
        if self._closed or self._mode == "rb":
            self._closed = True
            return
        if fs._tick():
            raise PowerCut("power lost at close, operation %d" % fs.ops)
        self._closed = True
        if fs.tear_at is None:
            fs.files[self._path] = bytes(self._buf)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
