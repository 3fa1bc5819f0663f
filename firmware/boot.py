"""Runs before main.py at each boot: a banner, and a warning while the watchdog is held off."""
import os
import sys

print("cp-agent on %s, MicroPython %s" % (
    sys.platform, ".".join(str(v) for v in sys.implementation.version[:3])))
try:
    os.stat("nowdt")  # cpagent/boards/mcu.py NOWDT, written by tools/deploy.py while it copies
    print("/nowdt: the watchdog stays off; 'mpremote rm :nowdt + reset' arms it again")
except OSError:
    pass
