"""A scripted PN532 behind a fake port: ACK and reply per command, queued raw answers first."""
from cpagent.drivers.pn532 import ACK, CHIP, frame


class Chip:
    """A scripted PN532: ACK + reply per command; .queue[cmd] holds raw answers used first."""

    def __init__(self, uid=None):
        self.uid = uid
        self.queue = {}
        self.cmds = []

    def __call__(self, data):
        if data[:2] == b"\x55\x55" or data == ACK:
            return b""
        cmd = data[6]
        self.cmds.append(cmd)
        if self.queue.get(cmd):
            return self.queue[cmd].pop(0)
        if cmd != 0x4A:
            return ACK + frame(bytes((cmd + 1,)), CHIP)
        if self.uid is None:
            return ACK + frame(b"\x4b\x00", CHIP)
        return ACK + frame(bytes((0x4B, 1, 1, 0, 4, 8, len(self.uid))) + self.uid, CHIP)
