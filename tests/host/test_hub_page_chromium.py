"""The hub's web page in a real headless Chromium: sessions and notifications show as they land."""
import html.parser
import shutil
import subprocess

from hubapi import EVSE, OP, T0, T1, UID, post, start

from cpagent.oicp import build as oicp
from host_sim.hub import HubThread

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class Dom(html.parser.HTMLParser):
    """The rendered DOM, reduced to what the checks need: session rows and notification chips."""

    def __init__(self):
        super().__init__()
        self.rows = {}  # SessionID -> {"class": ..., "notes": [...]}
        self.refused = []  # per tr.refused: {td class: text}
        self.text = {}  # element id -> its text
        self._row = self._note = self._id = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        cls = (a.get("class") or "").split()
        if tag == "tr" and "session" in cls:
            self._row = self.rows.setdefault(a.get("data-session-id"), {"class": cls, "notes": []})
        elif tag == "tr" and "refused" in cls:
            self.refused.append({})
            self._td = None
        elif tag == "td" and self.refused and self._row is None and len(cls) == 1:
            self._td = cls[0]
            self.refused[-1][self._td] = ""
        elif tag == "span" and "note" in cls and self._row is not None:
            self._note = [c for c in cls if c.startswith("note-")]
            self._row["notes"] += self._note
        if a.get("id"):
            self._id = a["id"]
            self.text[self._id] = ""

    def handle_endtag(self, tag):
        if tag == "tr":
            self._row = None
        if tag in ("td", "tr"):
            self._td = None
        self._id = None if tag in ("p", "span") else self._id

    def handle_data(self, data):
        if getattr(self, "_td", None):
            self.refused[-1][self._td] += data
        if self._id:
            self.text[self._id] += data


def render(url):
    """Load the page, let its script poll for a few virtual seconds, return the DOM."""
    assert CHROMIUM, "no chromium on PATH: `make test` installs Debian's chromium package"
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--no-first-run", "--virtual-time-budget=5000", "--dump-dom", url + "/"],
        capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    d = Dom()
    d.feed(out.stdout)
    d.raw = out.stdout
    return d


def test_page_shows_pushed_evses_with_remote_start_and_stop_buttons():
    import re

    from hubapi import StandIn

    from host_sim.hub import Cpo
    cpo = StandIn()
    try:
        with HubThread(cpo=Cpo(cpo.url)) as hub:
            path, body = oicp.push_evse_status(OP, [(EVSE, "Occupied")])
            assert post(hub.url, path, body)[0] == 200
            raw = render(hub.url).raw
    finally:
        cpo.close()
    row = re.search(r'<tr class="evse" data-evse-id="%s">(.*?)</tr>' % re.escape(EVSE), raw)
    assert row, raw[-3000:]
    assert '<td class="status">Occupied</td>' in row.group(1)
    assert 'class="remote-start"' in row.group(1) and 'class="remote-stop"' in row.group(1)


def test_page_shows_sessions_and_their_notifications():
    with HubThread(cards=[UID]) as h:
        done = start(h.url).session_id
        for p, b in (oicp.notification_start(OP, done, EVSE, T0),
                     oicp.notification_end(OP, done, EVSE, T1),
                     oicp.charge_detail_record(OP, done, EVSE, UID, T0, T1, T0, T1, 2.5)):
            assert post(h.url, p, oicp.encode(b))[0] == 200
        running = start(h.url).session_id
        assert post(h.url, *[oicp.encode(x) if isinstance(x, dict) else x for x in
                             oicp.notification_start(OP, running, EVSE, T0)])[0] == 200
        # A second CDR for the closed session: refused for good, a charger's dead letter.
        p, b = oicp.charge_detail_record(OP, done, EVSE, UID, T0, T1, T0, T1, 3.5)
        assert post(h.url, p, oicp.encode(b))[0] == 200
        assert h.hub.stats()["refused"] == 1
        dom = render(h.url)
    assert dom.text.get("error", "") == ""
    assert int(dom.text["updated"]) >= 1  # the script polled /api/sessions and rendered
    assert set(dom.rows) == {done, running}
    assert dom.rows[done]["notes"] == ["note-Start", "note-End"]
    assert "state-closed" in dom.rows[done]["class"]
    assert dom.rows[running]["notes"] == ["note-Start"]
    assert "state-closed" not in dom.rows[running]["class"]
    assert len(dom.refused) == 1 and dom.refused[0]["session"] == done, dom.refused
    row = dom.refused[0]
    assert row["operation"] == "ChargeDetailRecord" and row["code"] and row["reason"], row
    assert "1 refused for good" in dom.text["stats"], dom.text["stats"]
