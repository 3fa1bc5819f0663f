"""tools/check_style.py: the real firmware and tests pass; a planted import across the layers,
or of a test module by a test module, fails naming the file and line."""
import os
import shutil
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import check_style  # noqa: E402

PLANTS = [  # (module, the import planted at its end, the layers the message names)
    ("cpagent/oicp/ids.py", "from cpagent import session", "(layer oicp) imports cpagent.session"),
    ("cpagent/oicp/build.py", "from cpagent.clock import unix_from_iso", "(layer clock)"),
    ("cpagent/drivers/meter.py", "from cpagent.uplink import result", "(layer uplink)"),
    ("cpagent/uplink/link.py", "from cpagent.drivers.tap import read", "(layer drivers)"),
    ("cpagent/uplink/http.py", "import cpagent.journal", "(layer core)"),
    ("cpagent/charger.py", "from cpagent.agent import Agent", "(layer agent)"),
    ("cpagent/agent.py", "from cpagent.boards import host", "(layer boards)"),
]


def test_the_firmware_keeps_its_layers(capsys):
    check_style.main()
    assert "layer" in capsys.readouterr().out


@pytest.mark.parametrize("rel,line,says", PLANTS)
def test_an_import_across_the_layers_fails_naming_both(rel, line, says, tmp_path, capsys):
    fw = tmp_path / "firmware"
    shutil.copytree(os.path.join(ROOT, "firmware"), fw,
                    ignore=shutil.ignore_patterns("__pycache__"))
    with open(fw / rel, "a") as f:
        f.write("\n\ndef _planted():\n    %s\n" % line)
    with pytest.raises(SystemExit) as e:
        check_style.main(str(fw))
    out = capsys.readouterr().out.splitlines()
    assert "1 problem" in str(e.value), out
    assert out[0].startswith(rel.replace("/", os.sep) + ":") and says in out[0], out


TEST_PLANTS = [  # (test module, the import planted at its end, at the top or in a function)
    ("firmware/test_meter_charger.py", "from test_meter import Bank", False),
    ("firmware/test_link.py", "from test_charger import A, B, Box", True),
    ("host/test_sim_foreign_hub.py", "import test_sim_run", False),
    ("host/test_hub_page_chromium.py", "from test_hub_remote import StandIn", True),
    ("host/test_relay_status_order.py", "__import__(\"test_relay_units\")", True),
]


def test_no_test_module_imports_another(capsys):
    check_style.main()
    assert "no test module imports another" in capsys.readouterr().out


@pytest.mark.parametrize("rel,line,inside", TEST_PLANTS)
def test_a_test_module_importing_another_fails_naming_file_and_line(rel, line, inside, tmp_path,
                                                                    capsys):
    tests = tmp_path / "tests"
    os.makedirs(tests / os.path.dirname(rel))
    shutil.copy(os.path.join(ROOT, "tests", rel), tests / rel)
    with open(tests / rel) as f:
        n = len(f.read().splitlines())
    with open(tests / rel, "a") as f:
        f.write("\n\ndef _planted():\n    %s\n" % line if inside else "\n\n%s\n" % line)
    with pytest.raises(SystemExit) as e:
        check_style.main(tests=str(tests))
    out = capsys.readouterr().out.splitlines()
    assert "1 problem" in str(e.value), out
    where = os.path.join("tests", rel.replace("/", os.sep)) + ":%d:" % (n + (4 if inside else 3))
    assert out[0].startswith(where) and "imports the test module test_" in out[0], (where, out)
