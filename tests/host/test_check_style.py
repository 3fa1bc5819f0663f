"""tools/check_style.py's layering: the real firmware passes, a planted import across fails."""
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
