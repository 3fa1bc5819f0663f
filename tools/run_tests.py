"""Runs every test: pytest (CPython), then the firmware tests again under real MicroPython."""
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_counts(xml_path):
    """(firmware tests run, all tests run, failures) from pytest's junit report."""
    suite = ET.parse(xml_path).getroot()
    firmware = total = bad = 0
    for case in suite.iter("testcase"):
        if case.find("skipped") is not None:
            continue
        total += 1
        if case.get("classname", "").startswith("tests.firmware."):
            firmware += 1
        if case.find("failure") is not None or case.find("error") is not None:
            bad += 1
    return firmware, total, bad


def main():
    os.makedirs(os.path.join(ROOT, "build"), exist_ok=True)
    xml_path = os.path.join(ROOT, "build", "pytest.xml")
    args = [sys.executable, "-m", "pytest", "--junitxml=" + xml_path] + sys.argv[1:]
    code = subprocess.run(args, cwd=ROOT).returncode
    fw_py, total_py, bad_py = pytest_counts(xml_path)
    node = subprocess.run(
        ["node", os.path.join(ROOT, "tools", "mpy_test.mjs")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    sys.stdout.write(node.stdout)
    sys.stderr.write(node.stderr)
    m = re.search(r"micropython: (\d+) passed, (\d+) failed", node.stdout)
    mp_pass, mp_fail = (int(m.group(1)), int(m.group(2))) if m else (0, 1)
    print()
    print("firmware tests under CPython (pytest): %d" % fw_py)
    print("firmware tests under MicroPython 1.27 (webassembly): %d passed, %d failed"
          % (mp_pass, mp_fail))
    print("host-only tests under CPython: %d" % (total_py - fw_py))
    failed = bad_py + mp_fail
    print("total: %d passed, %d failed" % (total_py - bad_py + mp_pass, failed))
    if code not in (0,) or node.returncode or failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
