// Live updates for the run page (progressive enhancement: the page works without it).
// Listens to /api/v1/runs/{id}/events: `state` events reload the page's status parts by
// re-fetching the page when anything changed; `output` events append to the shown log.
(function () {
  var meta = document.getElementById("run-meta");
  if (!meta || meta.dataset.finished === "true") return;
  var id = meta.dataset.run;
  var log = document.getElementById("log");
  var task = log ? log.dataset.task : "";
  var url = "/api/v1/runs/" + id + "/events" + (task ? "?task=" + task : "");
  var es = new EventSource(url);
  var first = true;
  var shown = log ? log.textContent.length : 0;
  var text = "";
  es.addEventListener("state", function (e) {
    if (first) { first = false; return; }
    try {
      var d = JSON.parse(e.data);
      var st = document.getElementById("run-status");
      if (st) st.textContent = d.run.status;
      (d.steps || []).forEach(function (s) {
        var el = document.getElementById("step-status-" + s.idx);
        if (el && el.textContent !== s.status) { window.location.reload(); }
      });
      (d.tasks || []).forEach(function (t) {
        var el = document.getElementById("task-" + t.id);
        if (!el) { window.location.reload(); return; }
        if (el.dataset.status !== t.status) { window.location.reload(); }
      });
    } catch (err) { /* ignore malformed events */ }
  });
  es.addEventListener("output", function (e) {
    if (!log) return;
    try {
      var c = JSON.parse(e.data);
      if (String(c.task_id) !== String(task)) return;
      text += c.text;
      if (text.length > shown) { log.textContent = text; shown = text.length; }
    } catch (err) { /* ignore */ }
  });
  es.addEventListener("end", function () { es.close(); window.location.reload(); });
})();
