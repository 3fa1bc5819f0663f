"""Device filesystem handed to the journal: MicroPython/CPython `os` and `open`, littlefs rules."""
import os

# littlefs: a file's writes are committed by close(); rename is atomic and overwrites the target.
# CPython on Windows needs os.replace to overwrite; MicroPython has only os.rename (lfs2_rename).
_rename = getattr(os, "replace", os.rename)


class OsFs:
    """The fs interface of cpagent.journal over the real filesystem (never relies on os.sync)."""

    def open(self, path, mode):
        return open(path, mode)

    def rename(self, a, b):
        _rename(a, b)

    def remove(self, path):
        os.remove(path)

    def listdir(self, d):
        return os.listdir(d)

    def mkdir(self, d):
        # Errno numbers differ per port (EEXIST is 20 under Emscripten), so any OSError counts
        # as "exists"; a directory that truly failed shows up at the first open().
        try:
            os.mkdir(d)
        except OSError:
            pass
