"""`run --report DIR`: report.json (everything the run recorded) and report.html, one file with
inline SVG plots (power and energy per EVSE over virtual time with the hub's outage and fault
windows; latency per operation) and the session, non-conformance and exchange tables."""
import html
import json
import os

from host_sim.sim.record import Row
from host_sim.sim.timeline import answer, hms

MAX_SERIES = 16  # EVSEs sampled for the plots: the first chargers' (more would be unreadable)
MAX_POINTS = 4000  # per series; more: every other sample goes and the step doubles
MAX_HTML_ROWS = 3000  # exchange rows in the page (report.json has them all)
_W, _H, _PAD = 900, 260, 48
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


class Sampler:
    """Power (W) and energy (Wh) of the sampled EVSEs' cars at virtual times."""

    def __init__(self, clock, evses):
        self.clock = clock
        self.evses = evses[:MAX_SERIES]  # [(EvseID, Live)]
        self.series = {e: [] for e, _live in self.evses}
        self._every = 1
        self._n = 0

    def sample(self):
        self._n += 1
        if self._n % self._every:
            return
        t = round(self.clock.now(), 1)
        for evse, live in self.evses:
            live.reading()
            s = self.series[evse]
            s.append((t, live.ev.power_w, live.ev.energy_wh))
            if len(s) > MAX_POINTS:
                del s[1::2]
                self._every *= 2


def _esc(v):
    return html.escape("" if v is None else str(v))


def _plot(pid, title, unit, lines, spans=(), marks=(), x_max=None, dots=False):
    """An SVG plot: lines {name: [(x, y)]} (dots: points instead of a polyline), spans
    [(x0, x1, text)] shaded, marks [(x, text)] as vertical lines."""
    xs = [x for pts in lines.values() for x, _y in pts] + [x for s in spans for x in s[:2]] + \
        [m[0] for m in marks]
    ys = [y for pts in lines.values() for _x, y in pts]
    x1 = max(xs + [x_max or 1.0, 1.0])
    y1 = max(ys + [1.0]) * 1.05
    w, h = _W - 2 * _PAD, _H - 2 * _PAD

    def px(x):
        return _PAD + w * x / x1

    def py(y):
        return _H - _PAD - h * y / y1
    out = ['<svg class="plot" id="%s" viewBox="0 0 %d %d" width="%d" height="%d" role="img">'
           % (pid, _W, _H, _W, _H), '<title>%s</title>' % _esc(title),
           '<text x="%d" y="20" class="ptitle">%s</text>' % (_PAD, _esc(title)),
           '<rect x="%d" y="%d" width="%d" height="%d" class="frame"/>' % (_PAD, _PAD, w, h)]
    for x0, xe, text in spans:
        out.append('<rect class="outage" x="%.1f" y="%d" width="%.1f" height="%d"><title>%s'
                   '</title></rect>' % (px(x0), _PAD, max(1.0, px(xe) - px(x0)), h, _esc(text)))
    for x, text in marks:
        out.append('<line class="fault" x1="%.1f" x2="%.1f" y1="%d" y2="%d"><title>%s</title>'
                   '</line>' % (px(x), px(x), _PAD, _H - _PAD, _esc(text)))
    for k in range(5):
        yv = y1 * k / 4
        out.append('<text x="%d" y="%.1f" class="tick" text-anchor="end">%s</text>'
                   % (_PAD - 4, py(yv) + 4, _num(yv)))
        xv = x1 * k / 4
        out.append('<text x="%.1f" y="%d" class="tick" text-anchor="middle">%s</text>'
                   % (px(xv), _H - _PAD + 16, hms(xv)))
    out.append('<text x="%d" y="%d" class="tick">%s</text>' % (4, _PAD - 8, _esc(unit)))
    for n, (name, pts) in enumerate(lines.items()):
        color = _COLORS[n % len(_COLORS)]
        if dots:
            out.append('<g class="series" data-name="%s" fill="%s">' % (_esc(name), color)
                       + "".join('<circle cx="%.1f" cy="%.1f" r="2"/>' % (px(x), py(y))
                                 for x, y in pts) + "</g>")
        elif pts:
            d = "M" + " L".join("%.1f %.1f" % (px(x), py(y)) for x, y in pts)
            out.append('<path class="series" data-name="%s" stroke="%s" d="%s"/>'
                       % (_esc(name), color, d))
        out.append('<text x="%d" y="%d" fill="%s" class="legend">%s</text>'
                   % (_W - _PAD - 170, _PAD + 14 + 14 * n, color, _esc(name)))
    out.append("</svg>")
    return "\n".join(out)


def _num(v):
    return "%.0f" % v if v >= 10 or v == 0 else "%.2g" % v


def _table(tid, head, rows):
    out = ['<table id="%s"><thead><tr>%s</tr></thead><tbody>' % (
        tid, "".join("<th>%s</th>" % _esc(h) for h in head))]
    out += ["<tr>%s</tr>" % "".join("<td>%s</td>" % _esc(c) for c in r) for r in rows]
    out.append("</tbody></table>")
    return "\n".join(out)


_STYLE = """body{font:14px system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px;
text-align:left}th{background:#f3f3f3}.plot .frame{fill:none;stroke:#999}
.plot path.series{fill:none;stroke-width:1.5}.plot .outage{fill:#d62728;opacity:.15}
.plot .fault{stroke:#d62728;stroke-dasharray:4 3}.plot .tick{font-size:10px;fill:#555}
.plot .ptitle{font-weight:600}.plot .legend{font-size:11px}pre{background:#f6f6f6;padding:8px;
overflow:auto}.bad{color:#b00}"""


def build(summary, sessions, rows, events, nonconf, expectations, samples, lag):
    """The report's content as a dict (report.json). samples: {EvseID: [(t, W, Wh)]}, lag: the
    loop lag histogram {ms: wakes}."""
    return {"summary": summary, "sessions": sessions, "nonconformance": nonconf,
            "expectations": expectations, "events": events,
            "exchanges": [x.row() for x in rows],
            "samples": {e: [{"t": t, "w": w, "wh": wh} for t, w, wh in s]
                        for e, s in samples.items()},
            "loop_lag_buckets": lag}


def html_page(doc):
    s = doc["summary"]
    spans = [(e["t"], e["until"], e["text"]) for e in doc["events"] if e.get("until")]
    marks = [(e["t"], e["text"]) for e in doc["events"] if not e.get("until")]
    x_max = s.get("virtual_s")
    power = {e: [(p["t"], p["w"]) for p in pts] for e, pts in doc["samples"].items()}
    energy = {e: [(p["t"], p["wh"]) for p in pts] for e, pts in doc["samples"].items()}
    lat = {}
    for x in doc["exchanges"]:
        if x["status"] is not None:
            lat.setdefault(x["op"].split()[0], []).append((x["t"], x["ms"]))
    for k, v in lat.items():
        lat[k] = v[:: max(1, len(v) // MAX_POINTS)]
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>cp-agent run report</title><style>%s</style></head><body>" % _STYLE,
             "<h1>cp-agent run: %s</h1>" % ("passed" if s["ok"] else
                                          '<span class="bad">failed</span>'),
             '<p id="overview">%d chargers, %d/%d sessions, %d exchanges, %s virtual at x%g, '
             '%s real s</p>' % (s["chargers"], s["sessions"], s["sessions_planned"],
                                s["exchanges"]["requests"], hms(s["virtual_s"]), s["speed"],
                                s["duration_s"]),
             "<h2>Power and energy per EVSE</h2>",
             _plot("power", "Power per EVSE (W)", "W", power, spans, marks, x_max),
             _plot("energy", "Energy per EVSE (Wh)", "Wh", energy, spans, marks, x_max),
             "<h2>Hub answer time per operation</h2>",
             _plot("latency", "Round trip per exchange (real ms)", "ms", lat, spans, marks,
                   x_max, dots=True),
             _table("latency-table", ("operation", "n", "p50 ms", "p99 ms", "max ms"),
                    [(op, v["n"], v["p50"], v["p99"], v["max"])
                     for op, v in s["latency_ms"].items()]),
             "<h2>Sessions</h2>",
             _table("sessions", ("charger", "EVSE", "card", "session", "outcome", "kWh",
                                 "duration s", "authorize ms", "retries"),
                    [(r["charger"], r["evse"], r["card"], r["session"], r["outcome"], r["kwh"],
                      r["duration_s"], r["auth_ms"], r["retries"]) for r in doc["sessions"]]),
             "<h2>Expectations</h2>",
             _table("expectations", ("charger", "card", "expected", "got", "met"),
                    [(e["charger"], e["card"], e["expect"], e["got"], e["ok"])
                     for e in doc["expectations"]]),
             "<h2>Hub replies against OICP 2.3</h2>",
             _table("nonconformance", ("operation", "issue", "replies", "first request",
                                       "virtual", "charger", "EVSE", "session"),
                    [(g["op"], g["issue"], g["count"], g["first"]["path"], hms(g["first"]["t"]),
                      g["first"]["charger"], g["first"]["evse"], g["first"]["session"])
                     for g in doc["nonconformance"]]),
             "<h2>Hub events</h2>",
             _table("events", ("virtual", "until", "event"),
                    [(hms(e["t"]), "" if e.get("until") is None else hms(e["until"]),
                      e["text"]) for e in doc["events"]]),
             "<h2>Exchanges</h2>",
             _table("exchanges", ("virtual", "charger", "EVSE", "message", "session", "hub",
                                  "ms", "result", "reason"),
                    [(hms(x["t"]), x["charger"], x["evse"], x["op"], x["session"],
                      answer(Row(x)), x["ms"], x["result"], x["reason"])
                     for x in doc["exchanges"][:MAX_HTML_ROWS]]),
             ("<p>... %d more exchanges in report.json</p>" % (len(doc["exchanges"])
                                                               - MAX_HTML_ROWS)
              if len(doc["exchanges"]) > MAX_HTML_ROWS else ""),
             "<h2>Summary</h2><pre id=\"summary\">%s</pre>" % _esc(json.dumps(s, indent=1)),
             "</body></html>"]
    return "\n".join(parts)


def write(directory, doc):
    """report.json and report.html in directory (made if missing); returns their paths."""
    os.makedirs(directory, exist_ok=True)
    pj, ph = os.path.join(directory, "report.json"), os.path.join(directory, "report.html")
    for path, text in ((pj, json.dumps(doc, separators=(",", ":"))), (ph, html_page(doc))):
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(path + ".tmp", path)
    return pj, ph
