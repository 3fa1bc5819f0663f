"""`run --report DIR`: report.json, and report.html as a real headless Chromium renders it (plots
with their series and the outage/fault windows, the session and exchange tables)."""
import html.parser
import json
import shutil
import subprocess

from simrun import _run_lines as _run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CARD, CARD2 = "04A1B2C3D4E5F6", "04B2C3D4E5F607"
DOC = {"charger": {"evses": 2}, "chargers": [{"sessions": [
    {"card": CARD, "idle_s": 20, "plug_s": 10, "charge_s": 900},
    {"card": CARD2, "lane": 1, "idle_s": 60, "plug_s": 10, "charge_s": 600}]}],
    "hub": [{"at_s": 300, "refuse_s": 120}, {"at_s": 500, "fault": {"kind": "5xx", "count": 1}}]}


class Dom(html.parser.HTMLParser):
    """What the checks need of the rendered DOM: each SVG's elements, each table's body rows."""

    def __init__(self):
        super().__init__()
        self.svgs, self.tables = {}, {}
        self._svg = self._table = self._row = None
        self._body = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg":
            self._svg = self.svgs.setdefault(a.get("id"), [])
        elif self._svg is not None:
            self._svg.append((tag, a))
        if tag == "table":
            self._table = self.tables.setdefault(a.get("id"), [])
        elif tag == "tbody":
            self._body = True
        elif tag == "tr" and self._body:
            self._row = []
            self._table.append(self._row)
        elif tag == "td" and self._row is not None:
            self._row.append("")

    def handle_endtag(self, tag):
        if tag == "svg":
            self._svg = None
        elif tag == "tbody":
            self._body = False
        elif tag == "tr":
            self._row = None

    def handle_data(self, data):
        if self._row:
            self._row[-1] += data


def _dom(path):
    assert CHROMIUM, "no chromium on PATH: `make test` installs Debian's chromium package"
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                          "--disable-dev-shm-usage", "--no-first-run", "--dump-dom",
                          "file://%s" % path], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    d = Dom()
    d.feed(out.stdout)
    return d


def _of(svg, tag, cls):
    return [a for t, a in svg if t == tag and cls in (a.get("class") or "").split()]


def test_report_html_shows_its_plots_and_tables_in_chromium(tmp_path):
    scn = tmp_path / "s.json"
    scn.write_text(json.dumps(DOC))
    out = tmp_path / "report"
    r, _lines, s = _run("--scenario", scn, "--speed", 300, "--quiet", "--report", out,
                        timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "report: %s" % (out / "report.html") in r.stderr
    doc = json.loads((out / "report.json").read_text())
    assert doc["summary"] == s and len(doc["exchanges"]) == s["exchanges"]["requests"]
    dom = _dom(out / "report.html")
    evses = ["DE*SIM*E0000*1", "DE*SIM*E0000*2"]
    for pid in ("power", "energy"):
        series = _of(dom.svgs[pid], "path", "series")
        assert [a["data-name"] for a in series] == evses
        for a in series:  # a line over the run, not a dot
            assert a["d"].startswith("M") and a["d"].count("L") > 20
        assert len(_of(dom.svgs[pid], "rect", "outage")) == 1  # the 120 s refusal
        assert len(_of(dom.svgs[pid], "line", "fault")) == 1  # the 5xx
    # the energy of a charging EVSE only grows; its power rose above zero
    ys = [float(p.split()[1]) for p in _of(dom.svgs["energy"], "path", "series")[0]["d"]
          .lstrip("M").split(" L")]
    assert ys == sorted(ys, reverse=True) and ys[-1] < ys[0]  # SVG y grows downwards
    ops = {a["data-name"] for a in _of(dom.svgs["latency"], "g", "series")}
    assert {"AuthorizeStart", "Notification", "ChargeDetailRecord"} <= ops
    assert len([t for t, _a in dom.svgs["latency"] if t == "circle"]) == \
        sum(1 for x in doc["exchanges"] if x["status"] is not None)
    sessions = dom.tables["sessions"]
    assert len(sessions) == 2 and all(row[4] == "done" for row in sessions)
    assert {row[2] for row in sessions} == {CARD, CARD2}
    assert len(dom.tables["exchanges"]) == s["exchanges"]["requests"]
    assert any("no reply" in row[5] for row in dom.tables["exchanges"])  # the outage's rows
    assert any(row[5].startswith("503") for row in dom.tables["exchanges"])
    assert [row[2] for row in dom.tables["events"]] == ["refuse 120 s", "fault 5xx x1"]
    assert {row[0] for row in dom.tables["latency-table"]} == ops
