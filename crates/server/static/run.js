// Live updates for the run page (progressive enhancement: the page works without it).
// Listens to /api/v1/runs/{id}/events. Every `state` event (the first one included: the run may
// have moved between the page's rendering and the stream's start) is compared with what the page
// shows — the run's status, each step's status, each shown host cell's status — and the page is
// reloaded once when anything differs. `output` events append to the shown log.
(function () {
  var meta = document.getElementById("run-meta");
  if (!meta || meta.dataset.finished === "true") return;
  var id = meta.dataset.run;
  // The host grid may be filtered by status: cells of other statuses are absent on purpose.
  var filter = meta.dataset.filter || "";
  var log = document.getElementById("log");
  var task = log ? log.dataset.task : "";
  var url = "/api/v1/runs/" + id + "/events" + (task ? "?task=" + task : "");
  var es = new EventSource(url);
  var reloading = false;
  var shown = log ? log.textContent.length : 0;
  var text = "";
  function reload() {
    if (reloading) return;
    reloading = true;
    es.close();
    window.location.reload();
  }
  function differs(d) {
    var st = document.getElementById("run-status");
    if (st && st.textContent !== d.run.status) {
      st.textContent = d.run.status;
      return true;
    }
    var steps = d.steps || [];
    for (var i = 0; i < steps.length; i++) {
      var el = document.getElementById("step-status-" + steps[i].idx);
      if (!el || el.textContent !== steps[i].status) return true;
    }
    var tasks = d.tasks || [];
    for (var j = 0; j < tasks.length; j++) {
      var t = tasks[j];
      var cell = document.getElementById("task-" + t.id);
      if (cell) {
        if (cell.dataset.status !== t.status) return true;
      } else if (!filter || t.status === filter) {
        return true;
      }
    }
    return false;
  }
  es.addEventListener("state", function (e) {
    try {
      if (differs(JSON.parse(e.data))) reload();
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
  es.addEventListener("end", reload);
})();
