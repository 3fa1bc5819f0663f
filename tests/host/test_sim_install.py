"""`pip install .` into a fresh virtualenv gives `cp-agent`, which runs from any folder."""
import json
import os
import shutil
import subprocess
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_SOURCES = ("pyproject.toml", "README.md", "host_sim", "firmware/cpagent")


def _fresh_venv(tmp_path):
    """A virtualenv without pip of its own that sees this interpreter's site-packages (pip,
    setuptools and the pinned dependencies of requirements.txt): offline and fast."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                              "['purelib'])"], check=True, capture_output=True,
                             text=True).stdout.strip()
    with open(os.path.join(purelib, "project-venv.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def _source_copy(tmp_path):
    """What the package is built from, copied: the build's own files stay out of the tree."""
    src = tmp_path / "src"
    for rel in _SOURCES:
        a, b = os.path.join(ROOT, rel), src / rel
        if os.path.isdir(a):
            shutil.copytree(a, b, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            os.makedirs(b.parent, exist_ok=True)
            shutil.copy(a, b)
    return src


def test_pip_install_gives_cp_agent_that_runs_a_session_from_another_folder(tmp_path):
    venv = _fresh_venv(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", "--no-deps", "--no-build-isolation",
                        str(_source_copy(tmp_path))], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(tmp_path / "src")  # the installed copy alone must do
    r = subprocess.run([str(venv / "bin" / "cp-agent"), "run", "--chargers", "1", "--sessions",
                        "1", "--speed", "600", "--quiet"], cwd=elsewhere, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["ok"] and summary["sessions"] == 1
    for sub in ("hub", "relay"):
        r = subprocess.run([str(venv / "bin" / "cp-agent"), sub, "--help"], cwd=elsewhere,
                           env=env, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "usage:" in r.stdout, r.stderr[-2000:]
    r = subprocess.run([str(venv / "bin" / "cp-agent")], cwd=elsewhere, env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "usage: cp-agent {hub,relay,run}" in r.stderr
