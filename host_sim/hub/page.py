"""The hub's web page (GET /): sessions and their notifications, polled from /api/sessions.

Stable hooks for browser tests: table#sessions with one tr.session[data-session-id] per session,
td.state, td.notifications holding span.note.note-<Type>, td.cdr; #stats (from /api/stats);
table#refused with one tr.refused[data-seq] per answer a charger takes as a refusal for good
(its dead letters: td.operation, td.session, td.reason), polled from /api/exchanges?since=;
#updated counts successful polls; #error shows the last polling error.
table#evses: one tr.evse[data-evse-id] per EVSE pushed (td.status from PushEvseStatus,
td.data: whether PushEvseData gave its master data), with button.remote-start and
button.remote-stop, which POST /api/remote (the hub calls the CPO as Hubject) with the EvcoID
of input#evco; #remote shows the last call's answer.
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
<h2>EVSEs</h2>
<p>Remote start/stop as Hubject (POST /api/remote): EvcoID <input id="evco"
value="DE-EMP-C12345678-X" size="22"> <span id="remote"></span></p>
<table id="evses"><thead><tr><th>EvseID</th><th>Operator</th><th>Status</th><th>Data</th>
<th>Remote</th></tr></thead><tbody></tbody></table>
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
function remote(op, evse) {
  var body = {op: op, evse_id: evse};
  if (op === "start") body.evco_id = document.getElementById("evco").value;
  fetch("/api/remote", {method: "POST", body: JSON.stringify(body)}).then(function (r) {
    return r.json();
  }).then(function (d) {
    document.getElementById("remote").textContent = d.message || (op + " " + evse + ": "
      + (d.code || d.error || d.status) + " (" + d.seconds + " s)");
  });
}
function evses(list) {
  var body = document.querySelector("#evses tbody");
  var rows = document.createDocumentFragment();
  list.forEach(function (e) {
    var tr = document.createElement("tr");
    tr.className = "evse";
    tr.dataset.evseId = e.EvseID;
    cell(tr, "evse", e.EvseID);
    cell(tr, "operator", e.OperatorID);
    cell(tr, "status", e.EvseStatus);
    cell(tr, "data", e.data ? "yes" : "");
    var td = cell(tr, "remote");
    ["start", "stop"].forEach(function (op) {
      var b = document.createElement("button");
      b.className = "remote-" + op;
      b.textContent = op;
      b.onclick = function () { remote(op, e.EvseID); };
      td.appendChild(b);
    });
    rows.appendChild(tr);
  });
  body.replaceChildren(rows);
}
var polls = 0;
function poll() {
  Promise.all([fetch("/api/sessions"), fetch("/api/stats"),
               fetch("/api/exchanges?since=" + lastSeq), fetch("/api/evses")]).then(function (r) {
    if (!r.every(function (x) { return x.ok; }))
      throw new Error("HTTP " + r.map(function (x) { return x.status; }).join("/"));
    return Promise.all(r.map(function (x) { return x.json(); }));
  }).then(function (d) {
    render(d[0]);
    refused(d[2]);
    evses(d[3]);
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
