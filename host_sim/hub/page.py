"""The hub's web page (GET /): sessions and their notifications, polled from /api/sessions.

Stable hooks for browser tests: table#sessions with one tr.session[data-session-id] per session,
td.state, td.notifications holding span.note.note-<Type>, td.cdr; #stats (from /api/stats);
table#refused with one tr.refused[data-seq] per answer a charger takes as a refusal for good
(its dead letters: td.operation, td.session, td.reason), polled from /api/exchanges?since=;
#updated counts successful polls; #error shows the last polling error.
"""

HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Mock OICP hub</title>
<style>
body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;width:100%}
th,td{border:1px solid #ccc;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f3f3f3}
.note{display:inline-block;margin:1px 3px;padding:0 4px;border-radius:3px;background:#e8eef8}
.note-Start{background:#d8f0d8}.note-End{background:#f0e0c8}.note-Error{background:#f5c8c8}
.state-closed{color:#777}#error{color:#b00}
</style></head><body>
<h1>Mock OICP 2.3 hub</h1>
<p id="stats">loading&hellip;</p><p id="error"></p>
<table id="sessions"><thead><tr><th>SessionID</th><th>Operator</th><th>EVSE</th><th>Card</th>
<th>State</th><th>Notifications</th><th>CDR</th><th>Duplicates</th></tr></thead>
<tbody></tbody></table>
<h2>Refused for good</h2>
<p>Answers a charger keeps as dead letters (it does not retry them): the newest 200.</p>
<table id="refused"><thead><tr><th>Time</th><th>Operation</th><th>SessionID</th><th>HTTP</th>
<th>Code</th><th>Reason</th></tr></thead><tbody></tbody></table>
<p>Polls: <span id="updated">0</span></p>
<script>
"use strict";
function cell(tr, cls, text) {
  var td = document.createElement("td");
  td.className = cls;
  if (text !== undefined) td.textContent = text;
  tr.appendChild(td);
  return td;
}
function render(sessions) {
  var body = document.querySelector("#sessions tbody");
  var rows = document.createDocumentFragment();
  sessions.slice().reverse().forEach(function (s) {
    var tr = document.createElement("tr");
    tr.className = "session state-" + s.state;
    tr.dataset.sessionId = s.SessionID;
    cell(tr, "sid", s.SessionID);
    cell(tr, "operator", s.OperatorID);
    cell(tr, "evse", s.EvseID || "");
    cell(tr, "card", Object.values(s.Identification)[0]);
    cell(tr, "state", s.state + (s.stopped ? " (stopped)" : ""));
    var notes = cell(tr, "notifications");
    s.notifications.forEach(function (n) {
      var span = document.createElement("span");
      span.className = "note note-" + n.Type;
      var t = n.EventOccurred || n.ChargingEnd || n.ChargingStart || "";
      var kwh = n.ConsumedEnergyProgress !== undefined ? n.ConsumedEnergyProgress
        : n.ConsumedEnergy;
      span.textContent = n.Type + (t ? " " + t : "")
        + (kwh !== undefined ? " " + kwh + " kWh" : "") + (n.ErrorType ? " " + n.ErrorType : "");
      notes.appendChild(span);
    });
    cell(tr, "cdr", s.cdr ? s.cdr.ConsumedEnergy + " kWh" : "");
    cell(tr, "duplicates", String(s.duplicates));
    rows.appendChild(tr);
  });
  body.replaceChildren(rows);
}
function reason(e) {
  var r = e.reply || {};
  var sc = r.StatusCode || {};
  var errs = (r.validationErrors || []).map(function (v) {
    return v.fieldReference + ": " + v.errorMessage;
  });
  return [sc.Description, r.message].concat(errs).filter(Boolean).join("; ");
}
var lastSeq = 0;
function refused(exchanges) {
  var body = document.querySelector("#refused tbody");
  exchanges.forEach(function (e) {
    lastSeq = Math.max(lastSeq, e.seq);
    if (!e.refused) return;
    var tr = document.createElement("tr");
    tr.className = "refused";
    tr.dataset.seq = String(e.seq);
    cell(tr, "time", e.time);
    cell(tr, "operation", e.operation + (e.request && e.request.Type ? " " + e.request.Type : ""));
    cell(tr, "session", e.session_id || (e.request && e.request.SessionID) || "");
    cell(tr, "status", String(e.status));
    cell(tr, "code", e.code || "");
    cell(tr, "reason", reason(e));
    body.insertBefore(tr, body.firstChild);
  });
  while (body.children.length > 200) body.removeChild(body.lastChild);
}
var polls = 0;
function poll() {
  Promise.all([fetch("/api/sessions"), fetch("/api/stats"),
               fetch("/api/exchanges?since=" + lastSeq)]).then(function (r) {
    if (!r[0].ok || !r[1].ok || !r[2].ok)
      throw new Error("HTTP " + r[0].status + "/" + r[1].status + "/" + r[2].status);
    return Promise.all([r[0].json(), r[1].json(), r[2].json()]);
  }).then(function (d) {
    render(d[0]);
    refused(d[2]);
    var st = d[1];
    document.getElementById("stats").textContent = st.sessions + " sessions, " + st.requests
      + " OICP requests, " + st.duplicates + " duplicates, " + st.refused
      + " refused for good, " + st.faults + " faults queued";
    document.getElementById("updated").textContent = String(++polls);
    document.getElementById("error").textContent = "";
  }).catch(function (e) {
    document.getElementById("error").textContent = "poll failed: " + e;
  }).finally(function () { setTimeout(poll, 1000); });
}
poll();
</script></body></html>
"""
