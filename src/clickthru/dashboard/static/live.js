// Keeps the overview's "Latest clicks" table fresh: every 5 s it asks the reports API for
// clicks newer than the newest row and puts them on top. Every field is untrusted, so rows
// are built with DOM calls and textContent only. This file is the page's only script, and
// it reads its settings from data-* attributes: the CSP allows no inline script.
(function () {
  "use strict";
  var PERIOD_MS = 5000;
  var table = document.getElementById("latest");
  if (!table || !table.dataset.source || !window.fetch) return;
  var body = table.tBodies[0];
  var limit = parseInt(table.dataset.limit, 10) || 20;

  function newestSeq() {
    var newest = 0;
    for (var i = 0; i < body.rows.length; i++) {
      newest = Math.max(newest, parseInt(body.rows[i].dataset.seq, 10) || 0);
    }
    return newest;
  }

  function utc(ms) {
    // "2024-11-28T10:15:03.000Z" -> "2024-11-28 10:15:03", as the server writes it.
    return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
  }

  function addCell(row, text, className) {
    var cell = row.insertCell(-1);
    cell.textContent = text == null ? "" : String(text);
    if (className) cell.className = className;
    return cell;
  }

  function rowFor(click) {
    var row = document.createElement("tr");
    row.dataset.seq = String(click.seq);
    row.className = "fresh";
    var time = document.createElement("time");
    time.dateTime = new Date(click.received_at).toISOString().slice(0, 19) + "Z";
    time.textContent = utc(click.received_at);
    row.insertCell(-1).appendChild(time);
    addCell(row, click.placement);
    addCell(row, click.item, "key");
    addCell(row, click.position, "num");
    addCell(row, click.dest, "url");
    return row;
  }

  function show(clicks) {
    var newest = newestSeq();
    // The API answers newest first: insert oldest first so the newest ends on top.
    for (var i = clicks.length - 1; i >= 0; i--) {
      if (!(clicks[i].seq > newest)) continue;
      body.insertBefore(rowFor(clicks[i]), body.firstChild);
    }
    var empty = body.querySelector("tr.empty");
    if (empty && body.rows.length > 1) empty.remove();
    while (body.rows.length > limit) body.deleteRow(-1);
  }

  function poll() {
    if (document.hidden) return setTimeout(poll, PERIOD_MS);  // no requests from a hidden tab
    var url = new URL(table.dataset.source, document.baseURI);
    url.searchParams.set("after", String(newestSeq()));
    fetch(url, { headers: { accept: "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        // Signed out or no longer allowed: stop asking; a reload shows the sign-in page.
        if (response.status === 401 || response.status === 403) throw new Error("stop");
        return response.ok ? response.json() : { clicks: [] };
      })
      .then(function (answer) {
        show(Array.isArray(answer.clicks) ? answer.clicks : []);
        setTimeout(poll, PERIOD_MS);
      })
      .catch(function (error) {
        // Offline or the server restarting: try again next period.
        if (error.message !== "stop") setTimeout(poll, PERIOD_MS);
      });
  }

  setTimeout(poll, PERIOD_MS);
})();
