"""Device filesystem handed to the journal: MicroPython/CPython `os` and `open`, littlefs rules."""
import os


class OsFs:
    """The fs interface of cpagent.journal over the real filesystem (never relies on os.sync)."""

    # The os calls themselves where they fit: a wrapper def each would cost RAM for nothing.
    # littlefs: a file's writes are committed by close(); rename is atomic and overwrites the
    # target. CPython on Windows needs os.replace to overwrite; MicroPython has only os.rename.
    open = staticmethod(open)
    rename = staticmethod(getattr(os, "replace", os.rename))
    remove = staticmethod(os.remove)
    listdir = staticmethod(os.listdir)

    def mkdir(self, d):
        # Errno numbers differ per port (EEXIST is 20 under Emscripten), so any OSError counts
        # as "exists"; a directory that truly failed shows up at the first open().
        try:
            os.mkdir(d)
        except OSError:
            pass
